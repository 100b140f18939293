// Micro-benchmark of @pigeonpost/wire's DATA codec: the JavaScript loops
// against the WebAssembly SIMD kernel (the copies into and out of its memory
// included), per byte, on CRLF and LF bodies of 78-byte lines cut into
// chunks. Uses the built dist: run `pnpm --filter @pigeonpost/wire build` first.
//   node bench/wire/codec.mjs [--ms 300] [--json]
const dist = new URL('../../packages/wire/dist/', import.meta.url);
const { DataDecoder, DataEncoder } = await import(new URL('index.js', dist).href);
const { dataScanWasmActive, setDataScanWasm } = await import(new URL('testing.js', dist).href);

const args = process.argv.slice(2);
const ms = Number(args[args.indexOf('--ms') + 1] ?? 300) || 300;

/** A body of `size` bytes: 76 printable bytes and a line end per line, one line in 40 starting with a period. */
function body(size, eol) {
  const out = Buffer.alloc(size);
  let o = 0;
  for (let line = 0; o < size; line++) {
    const text = (line % 40 === 7 ? '.' : '') + `line ${line} of the body `.padEnd(76, 'x');
    out.write(text.slice(0, 76) + eol, o, 'latin1');
    o += 76 + eol.length;
  }
  return out;
}

function chunks(buf, size) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, Math.min(buf.length, i + size)));
  return out;
}

/** ns per input byte of fn(), best of 5 timed rounds of ~ms/5 each. */
function time(fn, bytes) {
  for (let i = 0; i < 50; i++) fn();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    let t;
    do {
      for (let i = 0; i < 20; i++) fn();
      n += 20;
      t = process.hrtime.bigint();
    } while (Number(t - t0) < (ms * 1e6) / 5);
    best = Math.min(best, Number(t - t0) / n / bytes);
  }
  return best;
}

const terminator = Buffer.from('\r\n.\r\n', 'latin1');
function decodeRun(parts) {
  const decoder = new DataDecoder({ maxDataBytes: 1 << 30 });
  let got = 0;
  for (const part of parts) {
    decoder.push(part);
    for (const ev of decoder) if (ev.type === 'data') got += ev.chunk.length;
  }
  decoder.push(terminator);
  for (const ev of decoder) if (ev.type === 'end') return got + ev.size;
  throw new Error('no end');
}
function pushRun(parts) {
  const encoder = new DataEncoder();
  let n = 0;
  for (const part of parts) n += encoder.push(part).length;
  return n + encoder.end().length;
}
const target = Buffer.alloc(2 * 1024 * 1024);
function encodeIntoRun(parts) {
  const encoder = new DataEncoder();
  let o = 0;
  for (const part of parts) o = encoder.encodeInto(part, target, o);
  return encoder.endInto(target, o);
}

const rows = [];
const cases = [];
for (const [eol, name] of [['\r\n', 'CRLF'], ['\n', 'LF']]) {
  for (const size of [1024, 4096, 100 * 1024]) {
    for (const chunk of [1024, 16 * 1024, 64 * 1024]) {
      if (chunk > size && chunk !== 1024 && size !== 100 * 1024 && chunk !== 16 * 1024) continue;
      if (chunk > size && cases.some((c) => c.eol === name && c.size === size && c.chunk >= size)) continue;
      cases.push({ eol: name, size, chunk, input: body(size, eol) });
    }
  }
}
if (!dataScanWasmActive()) throw new Error('the WebAssembly kernel is not available here');
for (const c of cases) {
  const parts = chunks(c.input, c.chunk);
  // The decoder reads wire bytes: a LF body as sent by a client that does not fix line ends.
  const ops = { decode: () => decodeRun(parts), push: () => pushRun(parts), encodeInto: () => encodeIntoRun(parts) };
  for (const [op, fn] of Object.entries(ops)) {
    setDataScanWasm(false);
    const js = time(fn, c.input.length);
    const outJs = fn();
    setDataScanWasm(true);
    const wasm = time(fn, c.input.length);
    if (fn() !== outJs) throw new Error(`${op}: the two paths differ`);
    rows.push({ op, body: c.eol, size: c.input.length, chunk: Math.min(c.chunk, c.input.length), jsNsPerByte: js, wasmNsPerByte: wasm, speedup: js / wasm });
  }
}
if (args.includes('--json')) console.log(JSON.stringify(rows, null, 2));
else {
  console.log('| op | line ends | body | chunk | JS ns/byte | WASM ns/byte | JS / WASM |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.op} | ${r.body} | ${r.size} | ${r.chunk} | ${r.jsNsPerByte.toFixed(3)} | ${r.wasmNsPerByte.toFixed(3)} | ${r.speedup.toFixed(2)}× |`);
}
