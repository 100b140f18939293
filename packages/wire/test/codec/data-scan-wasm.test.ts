/**
 * The WebAssembly kernel of the DATA codec (src/codec/data-scan.ts) against
 * the JavaScript loops: the same events and bytes for arbitrary inputs and
 * chunkings, and the committed wasm bytes are the compiled .wat.
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import wabtInit from 'wabt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DataDecoder, DataEncoder, decodeData, encodeData } from '../../src/codec/data-codec.js';
import type { DataDecoderEvent, DataDecoderOptions } from '../../src/codec/data-codec.js';
import { WASM_INPUT_CAP, WASM_MIN_DECODE_BYTES, dataScanWasmActive, setDataScanWasm } from '../../src/codec/data-scan.js';
import { DATA_SCAN_WASM_BASE64 } from '../../src/codec/wasm/data-scan-wasm.js';
import { bytesOf, split } from './chunking.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

afterEach(() => {
  setDataScanWasm(true);
  vi.unstubAllGlobals();
  vi.resetModules();
});

/** Every event of a decoder fed `chunks`, exactly (data chunk boundaries included), then the leftover. */
function decodeEvents(chunks: readonly Uint8Array[], options?: DataDecoderOptions): unknown[] {
  const decoder = new DataDecoder(options);
  const out: unknown[] = [];
  const add = (ev: DataDecoderEvent): void => {
    if (ev.type === 'data') out.push({ type: 'data', data: ev.chunk.toString('latin1'), bareCr: ev.bareCr, bareLf: ev.bareLf });
    else if (ev.type === 'error') out.push({ type: 'error', code: ev.error.code });
    else out.push({ ...ev });
  };
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (const ev of decoder) add(ev);
    out.push({ type: 'pushed', ended: decoder.ended, buffered: decoder.bufferedBytes });
  }
  out.push({ type: 'leftover', data: decoder.takeLeftover().toString('latin1') });
  return out;
}

/** Run `fn` with the JS loops only, then with the kernel taking every input (threshold 0). */
function bothPaths<T>(fn: () => T): { js: T; wasm: T } {
  setDataScanWasm(false);
  const js = fn();
  setDataScanWasm(true, { minBytes: 0 });
  const wasm = fn();
  setDataScanWasm(true);
  return { js, wasm };
}

/** Bodies biased toward the bytes that matter: CR, LF, '.', NUL, and runs of text. */
const piece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('\r', '\n', '.', '\0', '\r\n', '\r\n.', '\r\n.\r\n', '.\r', '\r.', '\n.', 'a') },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('x', 'y', ' ', 'z'), minLength: 1, maxLength: 40 }) },
);
const wire = fc.array(piece, { maxLength: 120 }).map((parts) => b(parts.join('')));
const cuts = fc.array(fc.nat({ max: 5000 }), { maxLength: 12 });
const limits = fc.record({ maxDataBytes: fc.integer({ min: 1, max: 400 }), maxDataLineLength: fc.integer({ min: 1, max: 60 }) });

describe('DATA codec: WebAssembly kernel', () => {
  it('is in use on this Node (so the properties below compare two different paths)', () => {
    expect(dataScanWasmActive()).toBe(true);
    const api = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
    expect(api.validate(Buffer.from(DATA_SCAN_WASM_BASE64, 'base64'))).toBe(true);
  });

  it('the committed wasm bytes are data-scan.wat compiled (pnpm --filter @pigeonpost/wire gen:wasm)', async () => {
    const wabt = await wabtInit();
    const wat = readFileSync(new URL('../../src/codec/wasm/data-scan.wat', import.meta.url), 'utf8');
    const module = wabt.parseWat('data-scan.wat', wat, { simd: true, bulk_memory: true });
    module.resolveNames();
    module.validate();
    const { buffer } = module.toBinary({ log: false, write_debug_names: false });
    module.destroy();
    expect(Buffer.from(buffer).toString('base64')).toBe(DATA_SCAN_WASM_BASE64);
  });

  it('falls back to the JS loops where WebAssembly is missing or refuses the SIMD module', async () => {
    const input = b('.a\r\n'.repeat(100) + 'b\nc\rd\r\n.\r\nleft');
    const expected = decodeData(input);
    for (const stub of [undefined, { validate: (): boolean => false }, { validate: (): boolean => true, Module: class { constructor() { throw new Error('no compiler'); } } }]) {
      vi.resetModules();
      vi.stubGlobal('WebAssembly', stub);
      const scan = await import('../../src/codec/data-scan.js');
      const codec = await import('../../src/codec/data-codec.js');
      expect(scan.dataScanWasmActive()).toBe(false);
      const got = codec.decodeData(input);
      expect(got?.body.equals(expected!.body)).toBe(true);
      expect(got?.end).toEqual(expected?.end);
      expect(got?.leftover.toString('latin1')).toBe('left');
      expect(codec.encodeData(input).equals(encodeData(input))).toBe(true);
      vi.unstubAllGlobals();
    }
    // The same fresh import with the real WebAssembly takes the kernel.
    vi.resetModules();
    const scan = await import('../../src/codec/data-scan.js');
    expect(scan.dataScanWasmActive()).toBe(true);
  });

  it('the switch turns the kernel off and on', () => {
    expect(setDataScanWasm(false)).toBe(true);
    expect(dataScanWasmActive()).toBe(false);
    expect(setDataScanWasm(true)).toBe(false);
    expect(dataScanWasmActive()).toBe(true);
  });

  it('decoder: the same events as the JS path for any input, chunking and limits', () => {
    fc.assert(
      fc.property(wire, cuts, fc.option(limits, { nil: undefined }), (input, points, options) => {
        const chunks = split(input, points);
        const { js, wasm } = bothPaths(() => decodeEvents(chunks, options));
        expect(wasm).toEqual(js);
      }),
      { numRuns: 400 },
    );
  });

  it('decoder: the same events fed one byte at a time, and with the terminator and leftover', () => {
    fc.assert(
      fc.property(wire, wire, (body, after) => {
        const input = Buffer.concat([body, b('\r\n.\r\n'), after]);
        for (const chunks of [[input], bytesOf(input)]) {
          const { js, wasm } = bothPaths(() => decodeEvents(chunks, { maxDataLineLength: 20 }));
          expect(wasm).toEqual(js);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('decoder: every SMTP smuggling sequence ends nothing early, on both paths, whole and byte by byte', () => {
    const smuggling = ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r', '\r.\r', '\r\n.\r\r\n', '\r\n.\x00\r\n'];
    const text = 'Subject: one\r\n\r\n' + 'first body line, long enough to take the kernel\r\n'.repeat(12);
    for (const seq of smuggling) {
      const input = b(`${text}first body${seq}MAIL FROM:<evil@client.example>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n`);
      for (const chunks of [[input], bytesOf(input), split(input, [text.length + 3, text.length + 11])]) {
        const { js, wasm } = bothPaths(() => decodeEvents(chunks));
        expect(wasm).toEqual(js);
        // With the default threshold too (the long body goes through the kernel).
        expect(decodeEvents(chunks)).toEqual(js);
      }
      // The only end is the real CRLF "." CRLF: the smuggled command is body.
      const whole = decodeData(input);
      expect(whole?.body.toString('latin1')).toContain('MAIL FROM:<evil@client.example>');
      expect(whole?.leftover.toString('latin1')).toBe('QUIT\r\n');
    }
  });

  it('decoder: bare CRs, bare LFs and long lines counted the same across the kernel window', () => {
    // Over WASM_INPUT_CAP in one chunk: the kernel takes it in windows.
    const line = (i: number): string => (i % 7 === 0 ? '.' : '') + 'x'.repeat(i % 120) + (i % 11 === 0 ? '\r' : i % 13 === 0 ? '\n' : '\r\n');
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < WASM_INPUT_CAP * 2 + 1000; i++) {
      parts.push(line(i));
      size += line(i).length;
    }
    const input = Buffer.concat([b(parts.join('')), b('\r\n.\r\n')]);
    const { js, wasm } = bothPaths(() => decodeEvents([input], { maxDataLineLength: 100, maxDataBytes: 1 << 30 }));
    expect(wasm).toEqual(js);
    const end = (js as { type: string }[]).find((ev) => ev.type === 'end') as unknown as { bareCr: number; bareLf: number; longLines: number };
    expect(end.bareCr).toBeGreaterThan(0);
    expect(end.bareLf).toBeGreaterThan(0);
    expect(end.longLines).toBeGreaterThan(0);
  });

  it('decoder: a chunk changed after it was consumed is read afresh (no stale copy in the kernel)', () => {
    setDataScanWasm(true, { minBytes: 0 });
    const buf = b('line one\r\nline two\r\n'.repeat(20));
    const first = decodeEvents([buf]);
    buf.write('\r\n.\r\nafter\r\n', 0, 'latin1');
    const second = decodeEvents([buf]);
    setDataScanWasm(false);
    expect(second).toEqual(decodeEvents([buf]));
    expect(second).not.toEqual(first);
  });

  it('decoder: a chunk reused after a body ended in it, or after its decoder was dropped, is read afresh', () => {
    setDataScanWasm(true, { minBytes: 0 });
    const buf = b('first line\r\n.\r\n' + 'MAIL FROM:<a@b.example>\r\n'.repeat(10));
    const ended = new DataDecoder();
    ended.push(buf);
    expect([...ended].at(-1)?.type).toBe('end');
    // The caller reuses the Buffer for new bytes and gives it to a new decoder.
    buf.fill('z');
    buf.write('\r\n.\r\n', 50, 'latin1');
    const afterEnd = decodeEvents([buf]);
    // A decoder dropped while it was inside a chunk (stopped at a stuffed period).
    const other = b('xxxxxxxx\r\n.yyyy\r\n'.repeat(10));
    const dropped = new DataDecoder();
    dropped.push(other);
    expect(dropped.next()).toMatchObject({ type: 'data' });
    other.fill('w');
    other.write('\r\n.\r\n', 20, 'latin1');
    const afterDrop = decodeEvents([other]);
    setDataScanWasm(false);
    expect(afterEnd).toEqual(decodeEvents([buf]));
    expect(afterDrop).toEqual(decodeEvents([other]));
  });

  it('decoder: interleaved decoders over different chunks do not see each other’s bytes', () => {
    setDataScanWasm(true, { minBytes: 0 });
    const a = new DataDecoder();
    const c = new DataDecoder();
    a.push(b('aaaa\r\n.stuffed\r\nmore aaaa\r\n'));
    c.push(b('cccc\r\n..x\r\n\n.\n\r\n.\r\nleft'));
    const got: string[] = [];
    for (;;) {
      const x = a.next();
      const y = c.next();
      if (x === undefined && y === undefined) break;
      if (x?.type === 'data') got.push(`a:${x.chunk.toString('latin1')}`);
      if (y?.type === 'data') got.push(`c:${y.chunk.toString('latin1')}`);
    }
    expect(got.filter((g) => g.startsWith('a:')).map((g) => g.slice(2)).join('')).toBe('aaaa\r\nstuffed\r\nmore aaaa\r\n');
    expect(got.filter((g) => g.startsWith('c:')).map((g) => g.slice(2)).join('')).toBe('cccc\r\n.x\r\n\n.\n\r\n');
    expect(c.takeLeftover().toString('latin1')).toBe('left');
  });

  it('encoder: push gives the same bytes as the JS path for any input and chunking', () => {
    fc.assert(
      fc.property(wire, cuts, (input, points) => {
        const chunks = split(input, points);
        const run = (): string[] => {
          const encoder = new DataEncoder();
          const out = chunks.map((chunk) => {
            const got = encoder.push(chunk);
            // The input itself comes back exactly when nothing changes, on both paths.
            return `${got === chunk ? 'same:' : ''}${got.toString('latin1')}`;
          });
          out.push(encoder.end().toString('latin1'));
          return out;
        };
        const { js, wasm } = bothPaths(run);
        expect(wasm).toEqual(js);
      }),
      { numRuns: 400 },
    );
  });

  it('encoder: encodeInto gives the same bytes as the JS path for any input, chunking and sub-range', () => {
    fc.assert(
      fc.property(wire, cuts, fc.nat({ max: 7 }), (input, points, pad) => {
        const chunks = split(input, points);
        const run = (): string => {
          const encoder = new DataEncoder();
          const target = Buffer.alloc(2 * input.length + 16 + pad);
          let o = pad;
          for (const chunk of chunks) {
            // The chunk inside a larger source, encoded as a sub-range.
            const source = Buffer.concat([b('\r.'), chunk, b('\n.')]);
            o = encoder.encodeInto(source, target, o, 2, 2 + chunk.length);
          }
          o = encoder.endInto(target, o);
          return target.subarray(pad, o).toString('latin1');
        };
        const { js, wasm } = bothPaths(run);
        expect(wasm).toEqual(js);
      }),
      { numRuns: 400 },
    );
  });

  it('encoder: the same bytes over the kernel window, and a round trip through the decoder', () => {
    const body = b(Array.from({ length: 60000 }, (_, i) => `${i % 5 === 0 ? '.' : ''}line ${i}${i % 3 === 0 ? '\n' : i % 17 === 0 ? '\r' : '\r\n'}`).join(''));
    expect(body.length).toBeGreaterThan(WASM_INPUT_CAP);
    const encode = (): Buffer => {
      const encoder = new DataEncoder();
      const target = Buffer.alloc(DataEncoder.maxEncodedLength(body.length) + 5);
      return target.subarray(0, encoder.endInto(target, encoder.encodeInto(body, target, 0)));
    };
    const { js, wasm } = bothPaths(encode);
    expect(wasm.equals(js)).toBe(true);
    // Default threshold: the whole body is one kernel call per window.
    expect(encode().equals(js)).toBe(true);
    const decoded = decodeData(wasm, { maxDataBytes: 1 << 30 });
    expect(decoded?.end.bareCr).toBe(0);
    expect(decoded?.end.bareLf).toBe(0);
    expect(decoded?.body.toString('latin1')).toBe(body.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'));
  });

  it('decoder and encoder: inputs under the threshold stay in JavaScript, and give the same result', () => {
    const small = b('.a\r\nb\nc\r'.repeat(3));
    expect(small.length).toBeLessThan(WASM_MIN_DECODE_BYTES);
    const { js, wasm } = bothPaths(() => decodeEvents(bytesOf(small)));
    expect(wasm).toEqual(js);
  });
});
