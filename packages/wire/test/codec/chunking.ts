/** Helpers for the "every chunking gives the same result" property tests. */

/** Cut `input` at the given points (taken modulo its length + 1, deduplicated, in order). Empty chunks are kept on purpose: a push of 0 bytes must be harmless. */
export function split(input: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((x, y) => x - y);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(input.subarray(prev, p));
    prev = p;
  }
  chunks.push(input.subarray(prev));
  return chunks;
}

/** One chunk per byte. */
export const bytesOf = (input: Buffer): Buffer[] => [...input].map((x) => Buffer.from([x]));
