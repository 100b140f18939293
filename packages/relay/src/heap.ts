/** A binary min-heap of (time, id), for the scheduler's "what is due next". Stale entries are skipped by the caller. */
export class TimeHeap {
  readonly #times: number[] = [];
  readonly #ids: string[] = [];

  get size(): number {
    return this.#times.length;
  }

  push(time: number, id: string): void {
    this.#times.push(time);
    this.#ids.push(id);
    let i = this.#times.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.#times[parent] as number) <= time) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  peekTime(): number | undefined {
    return this.#times[0];
  }

  pop(): { time: number; id: string } | undefined {
    const n = this.#times.length;
    if (n === 0) return undefined;
    const top = { time: this.#times[0] as number, id: this.#ids[0] as string };
    this.#swap(0, n - 1);
    this.#times.pop();
    this.#ids.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n - 1 && (this.#times[l] as number) < (this.#times[m] as number)) m = l;
      if (r < n - 1 && (this.#times[r] as number) < (this.#times[m] as number)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
    return top;
  }

  #swap(a: number, b: number): void {
    const t = this.#times[a] as number;
    this.#times[a] = this.#times[b] as number;
    this.#times[b] = t;
    const id = this.#ids[a] as string;
    this.#ids[a] = this.#ids[b] as string;
    this.#ids[b] = id;
  }
}
