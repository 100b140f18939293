/**
 * The objects and arrays that a `MessageStructure` keeps are made here, never
 * with object or array literals. V8 "pretenures" the objects of a literal
 * whose objects mostly outlive a young-generation GC: from then on it
 * allocates them straight in the old generation. A caller that keeps
 * structures (a cache, a mailbox index) would thus make every later
 * structure, the short-lived ones too, old-generation garbage that only a
 * full GC frees, and each young GC would copy everything they point to. With
 * 20,000 structures held from the first parse on, the parser took 2× its
 * time or more with literals, and about its usual time with these (see
 * bench/README.md, `bench/mime`, the "fresh process" row). `Object.create` and
 * `new Array()` have no allocation site, so they are never pretenured; the
 * results are ordinary objects and arrays.
 */

/** A plain object (prototype `Object.prototype`), as `{}` would give. */
export function newRecord(): Record<string, unknown> {
  return Object.create(Object.prototype) as Record<string, unknown>;
}

/** An empty array, as `[]` would give. */
export function newList<T>(): T[] {
  return new Array<T>();
}

/** `[a, b]`. */
export function pair<A, B>(a: A, b: B): [A, B] {
  const p = new Array<A | B>();
  p.push(a, b);
  return p as [A, B];
}
