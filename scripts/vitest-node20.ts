// vitest 5's reporters call Map.groupBy / Object.groupBy (Node 21+). On Node 20
// they crash while printing a failure, hiding its details, so supply both here:
// this file is loaded by the main vitest process, where the reporters run.
type GroupBy = <K, T>(items: Iterable<T>, key: (item: T, index: number) => K) => Map<K, T[]>;
const mapCtor = Map as unknown as { groupBy?: GroupBy };
mapCtor.groupBy ??= <K, T>(items: Iterable<T>, key: (item: T, index: number) => K): Map<K, T[]> => {
  const out = new Map<K, T[]>();
  let i = 0;
  for (const item of items) {
    const k = key(item, i++);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
};
const objectCtor = Object as unknown as { groupBy?: (items: Iterable<unknown>, key: (item: unknown, index: number) => PropertyKey) => Record<PropertyKey, unknown[]> };
objectCtor.groupBy ??= (items, key) => Object.fromEntries(mapCtor.groupBy!(items, key));

export {};
