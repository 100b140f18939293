/**
 * The WebAssembly SIMD kernel of the DATA codec (`wasm/data-scan.wat`):
 * one call per chunk finds the few places where the decoder's state machine
 * has work (a period at a line start, a CR ending the chunk) and counts bare
 * CRs, bare LFs and long lines on the way; the encoder's kernel writes the
 * dot-stuffed, CRLF-only output. The JavaScript loops in `data-codec.ts`
 * stay the reference (they handle small chunks, and everything when
 * WebAssembly or its SIMD is missing); property tests check both paths give
 * the same events and bytes. Figures: `bench/wire`, wire's README.
 */
import { Buffer } from 'node:buffer';
import { DATA_SCAN_WASM_BASE64 } from './wasm/data-scan-wasm.js';

/** Most input bytes one kernel call takes (memory layout in `wasm/data-scan.wat`); longer chunks go in windows. */
export const WASM_INPUT_CAP = 512 * 1024;
const OUT = WASM_INPUT_CAP + 64;
const RES = OUT + 2 * WASM_INPUT_CAP + 64;

/**
 * Below this many bytes left in a chunk the decoder stays in JavaScript: the
 * kernel call and the copy into its memory cost more than the JS scan saves
 * on a line or two (bench/wire/codec.mjs).
 */
export const WASM_MIN_DECODE_BYTES = 256;
/** The same threshold for the encoder (`push`, `encodeInto`), which also copies the output back. */
export const WASM_MIN_ENCODE_BYTES = 256;
/** Line lengths the kernel's 32-bit counters take (a longer line goes on in JavaScript). */
const MAX_KERNEL_LINE = 0x3fffffff;

/** Decoder states the kernel ends in (`results[0]` after `decode`). */
export const KERNEL_MID = 0;
export const KERNEL_CR = 1;
export const KERNEL_START = 2;

interface KernelExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  decode(p: number, len: number, lineLength: number, maxLine: number): number;
  encode(p: number, len: number, atLineStart: number): number;
}

/** What the codec needs of the global `WebAssembly` (typed here: the project's lib has no DOM types). */
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { readonly exports: unknown };
}

/** The kernel with views on its memory. */
export interface DataScanKernel {
  readonly exports: KernelExports;
  /** All of the kernel's memory. */
  readonly bytes: Uint8Array;
  /** The results of the last call (see the .wat). */
  readonly results: Int32Array;
}

/** The thresholds in force (tests lower them to put small inputs through the kernel). */
export let minDecodeBytes = WASM_MIN_DECODE_BYTES;
export let minEncodeBytes = WASM_MIN_ENCODE_BYTES;

/** undefined: not tried yet; null: not available here. */
let kernel: DataScanKernel | null | undefined;
let wasmEnabled = true;
/**
 * The chunk whose bytes `[loadedBase, loadedEnd)` are in the kernel's input
 * now, and the decoder reading it: reused only by that decoder, for that
 * chunk, while the chunk is still in its queue (so a caller reusing a
 * Buffer it is done with never meets a stale copy).
 */
let loaded: Uint8Array | undefined;
let loadedOwner: object | undefined;
let loadedBase = 0;
let loadedEnd = 0;

function instantiate(): DataScanKernel | null {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) return null;
  try {
    const wasm = Buffer.from(DATA_SCAN_WASM_BASE64, 'base64');
    // validate() is false where the engine lacks SIMD (or WebAssembly is cut down).
    if (!api.validate(wasm)) return null;
    const instance = new api.Instance(new api.Module(wasm));
    const exports = instance.exports as KernelExports;
    return { exports, bytes: new Uint8Array(exports.memory.buffer), results: new Int32Array(exports.memory.buffer, RES, 5) };
  } catch {
    // No memory for the instance, or a runtime that refuses to compile: the JS path works alone.
    return null;
  }
}

/** The kernel, instantiated once on first use; undefined when switched off or not available. */
export function dataScanKernel(): DataScanKernel | undefined {
  if (!wasmEnabled) return undefined;
  if (kernel === undefined) kernel = instantiate();
  return kernel ?? undefined;
}

/** Options of `setDataScanWasm`. */
export interface DataScanWasmOptions {
  /**
   * Send chunks of at least this many bytes through the kernel (default:
   * the built-in thresholds, 256). Tests set 0 so that every input, however
   * small, takes the kernel.
   */
  readonly minBytes?: number;
}

/**
 * Internal switch of the DATA codec (tests, benchmarks): `false` makes
 * `DataDecoder` and `DataEncoder` use only their JavaScript loops, as where
 * WebAssembly SIMD is missing; `true` (the default) uses the WebAssembly
 * kernel where it is available. Returns the previous setting.
 */
export function setDataScanWasm(enabled: boolean, options: DataScanWasmOptions = {}): boolean {
  const old = wasmEnabled;
  wasmEnabled = enabled;
  minDecodeBytes = options.minBytes ?? WASM_MIN_DECODE_BYTES;
  minEncodeBytes = options.minBytes ?? WASM_MIN_ENCODE_BYTES;
  loaded = loadedOwner = undefined;
  return old;
}

/** True when the kernel is in use (available and not switched off). */
export function dataScanWasmActive(): boolean {
  return dataScanKernel() !== undefined;
}

/**
 * Decoder state MID from `buf[pos]`: scan up to `len` (or the end of one
 * kernel window) and return where the body run stops; the new state,
 * counts and line length are in `k.results` (see `decode` in the .wat).
 * The chunk is copied into the kernel once and reused while the decoder
 * works through it.
 */
export function kernelDecode(k: DataScanKernel, owner: object, buf: Uint8Array, pos: number, len: number, lineLength: number, maxLine: number): number {
  if (loaded !== buf || loadedOwner !== owner || pos < loadedBase || pos >= loadedEnd) {
    const end = Math.min(len, pos + WASM_INPUT_CAP);
    k.bytes.set(new Uint8Array(buf.buffer, buf.byteOffset + pos, end - pos), 0);
    loaded = buf;
    loadedOwner = owner;
    loadedBase = pos;
    loadedEnd = end;
  }
  return loadedBase + k.exports.decode(pos - loadedBase, loadedEnd - loadedBase, lineLength, Math.min(maxLine, 0x7fffffff));
}

/** True when the kernel can take a line this long so far. */
export function kernelLineOk(lineLength: number): boolean {
  return lineLength <= MAX_KERNEL_LINE;
}

/** The decoder is done with `buf` (read to its end, or the body ended in it): forget it. */
export function releaseDecodeInput(owner: object): void {
  if (loadedOwner === owner) loaded = loadedOwner = undefined;
}

/**
 * Encode `source[from, to)` (at most WASM_INPUT_CAP bytes) into the kernel's
 * output; returns its length. The output is `kernelOutput(k, n)` until the
 * next call; the new line-start and skip-LF flags are `k.results[0]`, `[1]`.
 */
export function kernelEncode(k: DataScanKernel, source: Uint8Array, from: number, to: number, atLineStart: boolean): number {
  loaded = loadedOwner = undefined;
  k.bytes.set(new Uint8Array(source.buffer, source.byteOffset + from, to - from), 0);
  return k.exports.encode(0, to - from, atLineStart ? 1 : 0);
}

/** A view of the encoder output of the last `kernelEncode` (valid until the next call). */
export function kernelOutput(k: DataScanKernel, n: number): Uint8Array {
  return k.bytes.subarray(OUT, OUT + n);
}
