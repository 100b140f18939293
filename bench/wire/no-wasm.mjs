// Preload for "before" runs of the other benchmarks: the DATA codec's
// JavaScript loops only, in every Node process that inherits the variable:
//   NODE_OPTIONS="--import ./bench/wire/no-wasm.mjs" node bench/smtp/run.mjs ...
// (a path relative to the repository root, or absolute). Uses the built dist.
const { setDataScanWasm } = await import(new URL('../../packages/wire/dist/testing.js', import.meta.url).href);
setDataScanWasm(false);
