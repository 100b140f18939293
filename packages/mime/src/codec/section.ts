import { MimeError } from '../errors.js';
import type { MessageStructure, MimePart } from './structure.js';

/** A parsed IMAP section-spec (RFC 3501 §6.4.5, RFC 9051 §6.4.5). */
export interface SectionSpec {
  /** Part numbers, `[]` for the whole message. */
  readonly part: readonly number[];
  /** What of the part: `''` = the part's body (`[]` or `[1.2]`), or HEADER / HEADER.FIELDS / HEADER.FIELDS.NOT / TEXT / MIME. */
  readonly text: '' | 'HEADER' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT' | 'TEXT' | 'MIME';
  /** Field names of HEADER.FIELDS[.NOT], upper-cased. */
  readonly fields?: readonly string[];
}

/** A partial fetch `<origin.length>`, in bytes of the CRLF form. */
export interface Partial {
  readonly offset: number;
  readonly length?: number;
}

function syntax(message: string): MimeError {
  return new MimeError('ERR_SECTION_SYNTAX', message, { side: 'remote', reply: { imap: { status: 'BAD' }, text: message } });
}

/** Parse the text between `[` and `]` of BODY[...] / BINARY[...]. Throws `MimeError` `ERR_SECTION_SYNTAX`. */
export function parseSection(spec: string): SectionSpec {
  const m = /^((?:[1-9][0-9]*)(?:\.[1-9][0-9]*)*)?(?:(^|\.)(.*))?$/s.exec(spec);
  if (m === null) throw syntax(`bad section: ${spec}`);
  const part = m[1] === undefined ? [] : m[1].split('.').map(Number);
  const rest = m[3] ?? '';
  if (part.length > 0 && rest === '' && m[2] === '.') throw syntax(`bad section: ${spec}`);
  if (rest === '') return { part, text: '' };
  const upper = rest.toUpperCase();
  if (upper === 'HEADER' || upper === 'TEXT') return { part, text: upper };
  if (upper === 'MIME') {
    if (part.length === 0) throw syntax('MIME needs a part number');
    return { part, text: 'MIME' };
  }
  const fm = /^HEADER\.FIELDS(\.NOT)?\s*\((.*)\)$/is.exec(rest);
  if (fm === null) throw syntax(`bad section: ${spec}`);
  const fields = (fm[2] ?? '')
    .trim()
    .split(/\s+/)
    .filter((f) => f !== '')
    .map((f) => f.replace(/^"(.*)"$/s, '$1').toUpperCase());
  if (fields.length === 0) throw syntax('empty header list');
  return { part, text: fm[1] === undefined ? 'HEADER.FIELDS' : 'HEADER.FIELDS.NOT', fields };
}

/** Dovecot's imap_msgpart_find: walk part numbers through multiparts and encapsulated messages. */
export function findPart(structure: MessageStructure, numbers: readonly number[]): MimePart | undefined {
  let part: MimePart | undefined = structure.root;
  for (let i = 0; i < numbers.length && part !== undefined; i++) {
    const num = numbers[i]!;
    const more = i + 1 < numbers.length;
    if (part.kind === 'multipart') {
      part = part.children?.[num - 1];
    } else if (num !== 1 || (more && part.kind !== 'message')) {
      part = undefined;
    }
    if (part !== undefined && part.kind === 'message' && more) part = part.message;
  }
  return part;
}

/**
 * Where a section's bytes are in the stored message. `ranges` are byte
 * ranges to send in order (before CRLF normalisation); `headerFilter` is set
 * for HEADER.FIELDS[.NOT], whose lines must be picked from the one range.
 * `missing` is true when the part does not exist (IMAP sends an empty string).
 */
export interface ResolvedSection {
  readonly ranges: readonly (readonly [start: number, end: number])[];
  /** Size of the result in CRLF form (before a partial), when it is known without reading: every kind but HEADER.FIELDS[.NOT]. */
  readonly size: number | undefined;
  readonly headerFilter?: { readonly fields: readonly string[]; readonly exclude: boolean; readonly addMissingEoh: boolean };
  /** The part whose body a BINARY fetch decodes. */
  readonly part?: MimePart;
  readonly missing: boolean;
}

/** Resolve a section (a string like `'1.2.HEADER.FIELDS (FROM TO)'` or a parsed `SectionSpec`) to byte ranges. */
export function resolveSection(structure: MessageStructure, section: string | SectionSpec): ResolvedSection {
  const spec = typeof section === 'string' ? parseSection(section) : section;
  const empty: ResolvedSection = { ranges: [], size: 0, missing: true };
  if (spec.part.length === 0) {
    const root = structure.root;
    switch (spec.text) {
      case '':
        return { ranges: [[0, structure.size]], size: structure.virtualSize, missing: false, part: root };
      case 'HEADER':
        return { ranges: [[root.headerStart, root.bodyStart]], size: root.headerVirtualSize, missing: false };
      case 'TEXT':
        return { ranges: [[root.bodyStart, root.bodyEnd]], size: root.bodyVirtualSize, missing: false, part: root };
      default:
        return {
          ranges: [[root.headerStart, root.bodyStart]],
          size: undefined,
          missing: false,
          headerFilter: { fields: spec.fields ?? [], exclude: spec.text === 'HEADER.FIELDS.NOT', addMissingEoh: spec.text === 'HEADER.FIELDS' },
        };
    }
  }
  let part = findPart(structure, spec.part);
  if (part === undefined) return empty;
  switch (spec.text) {
    case '':
      return { ranges: [[part.bodyStart, part.bodyEnd]], size: part.bodyVirtualSize, missing: false, part };
    case 'MIME':
      return { ranges: [[part.headerStart, part.bodyStart]], size: part.headerVirtualSize, missing: false };
    default:
      // HEADER and TEXT of a part: only a message/rfc822 part has them (its encapsulated message's).
      if (part.kind !== 'message' || part.message === undefined) return empty;
      part = part.message;
      if (spec.text === 'HEADER') return { ranges: [[part.headerStart, part.bodyStart]], size: part.headerVirtualSize, missing: false };
      if (spec.text === 'TEXT') return { ranges: [[part.bodyStart, part.bodyEnd]], size: part.bodyVirtualSize, missing: false, part };
      return {
        ranges: [[part.headerStart, part.bodyStart]],
        size: undefined,
        missing: false,
        headerFilter: { fields: spec.fields ?? [], exclude: spec.text === 'HEADER.FIELDS.NOT', addMissingEoh: false },
      };
  }
}

/** Reads bytes `[start, end)` of the stored message: the store's way to hand them over, in one piece or streamed. */
export type ByteRangeReader = (start: number, end: number) => Uint8Array | Promise<Uint8Array> | AsyncIterable<Uint8Array>;

export interface SectionOutputOptions {
  /** `<origin.length>` of the FETCH. */
  readonly partial?: Partial;
  /** Turn NUL bytes into 0x80, as Dovecot does for BODY[] (IMAP literals must not carry NUL, RFC 3501 §4.3). Default true. */
  readonly replaceNul?: boolean;
}

/**
 * The CRLF normaliser and partial cutter for section output: a bare LF becomes
 * CRLF (RFC 3501 §2.3.1: messages go out with CRLF), NUL becomes 0x80, and
 * only `[offset, offset+length)` of the result comes out. Stateful, so it
 * works across chunks.
 */
export class SectionOutput {
  private prev = -1;
  private position = 0;
  private readonly from: number;
  private readonly to: number;
  private readonly replaceNul: boolean;

  constructor(options: SectionOutputOptions = {}) {
    this.from = options.partial?.offset ?? 0;
    this.to = options.partial?.length === undefined ? Number.POSITIVE_INFINITY : this.from + options.partial.length;
    this.replaceNul = options.replaceNul ?? true;
  }

  /** Transform one chunk; returns the bytes to send (may be empty). */
  write(chunk: Uint8Array): Buffer {
    const pieces: Buffer[] = [];
    const src = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let runStart = 0;
    const flush = (end: number): void => {
      if (end > runStart) this.emit(src.subarray(runStart, end), pieces);
    };
    for (let i = 0; i < src.length; i++) {
      const c = src[i]!;
      if ((c === 0x0a && this.prevByte(i, src) !== 0x0d) || (c === 0 && this.replaceNul)) {
        flush(i);
        this.emit(Buffer.from(c === 0 ? [0x80] : [0x0d, 0x0a]), pieces);
        runStart = i + 1;
      }
    }
    flush(src.length);
    if (src.length > 0) this.prev = src[src.length - 1]!;
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
  }

  private prevByte(i: number, src: Buffer): number {
    return i > 0 ? src[i - 1]! : this.prev;
  }

  private emit(bytes: Buffer, pieces: Buffer[]): void {
    const start = this.position;
    const end = start + bytes.length;
    this.position = end;
    const a = Math.max(start, this.from);
    const b = Math.min(end, this.to);
    if (b > a) pieces.push(bytes.subarray(a - start, b - start));
  }

  /** Bytes written so far in CRLF form (before the partial cut). */
  get size(): number {
    return this.position;
  }
}

function lineFieldName(line: string): string | undefined {
  const colon = line.indexOf(':');
  if (colon < 0) return undefined;
  return line.slice(0, colon).replace(/[ \t]+$/, '').toUpperCase();
}

/**
 * Pick the header lines of HEADER.FIELDS[.NOT] from a header block (byte
 * string): whole fields, continuation lines included, in message order, then
 * the empty line. Lines come out with their own line ends (CRLF added later).
 */
export function filterHeader(header: string, fields: readonly string[], exclude: boolean, addMissingEoh: boolean): string {
  const wanted = new Set(fields.map((f) => f.toUpperCase()));
  let out = '';
  let matched = false;
  let first = true;
  let sawEoh = false;
  let lastEol = '\r\n';
  let pos = 0;
  while (pos < header.length) {
    const lf = header.indexOf('\n', pos);
    const end = lf < 0 ? header.length : lf + 1;
    const line = header.slice(pos, end);
    pos = end;
    if (line === '\n' || line === '\r\n') {
      sawEoh = true;
      out += line;
      break;
    }
    const c0 = line.charCodeAt(0);
    if (first || (c0 !== 0x20 && c0 !== 0x09)) {
      const name = lineFieldName(line);
      matched = name !== undefined && wanted.has(name) !== exclude;
      if (name === undefined) matched = exclude;
      first = false;
    }
    if (matched) {
      out += line;
      if (lf >= 0) lastEol = line.endsWith('\r\n') ? '\r\n' : '\n';
    }
  }
  if (!sawEoh && addMissingEoh) out += lastEol;
  return out;
}

async function* readRange(read: ByteRangeReader, start: number, end: number): AsyncGenerator<Uint8Array> {
  if (end <= start) return;
  const got = read(start, end);
  if (got instanceof Uint8Array) yield got;
  else if (typeof (got as Promise<Uint8Array>).then === 'function') yield await (got as Promise<Uint8Array>);
  else yield* got as AsyncIterable<Uint8Array>;
}

/**
 * Stream the bytes of a section, as IMAP BODY[section]<partial> sends them
 * (CRLF line ends, NUL as 0x80), reading the stored message through `read`.
 * A missing part gives nothing (IMAP sends `""`).
 */
export async function* streamSection(
  structure: MessageStructure,
  section: string | SectionSpec | ResolvedSection,
  read: ByteRangeReader,
  options: SectionOutputOptions = {},
): AsyncGenerator<Buffer> {
  const resolved = typeof section === 'object' && 'ranges' in section ? section : resolveSection(structure, section);
  const output = new SectionOutput(options);
  if (resolved.headerFilter !== undefined) {
    const [start, end] = resolved.ranges[0] ?? [0, 0];
    const chunks: Buffer[] = [];
    for await (const c of readRange(read, start, end)) chunks.push(Buffer.from(c));
    const f = resolved.headerFilter;
    const text = filterHeader(Buffer.concat(chunks).toString('latin1'), f.fields, f.exclude, f.addMissingEoh);
    const out = output.write(Buffer.from(text, 'latin1'));
    if (out.length > 0) yield out;
    return;
  }
  for (const [start, end] of resolved.ranges) {
    for await (const c of readRange(read, start, end)) {
      const out = output.write(c);
      if (out.length > 0) yield out;
    }
  }
}

/** `streamSection` over a message held in memory, as one Buffer. */
export function sectionBytes(structure: MessageStructure, section: string | SectionSpec, message: Uint8Array, options: SectionOutputOptions = {}): Buffer {
  const resolved = resolveSection(structure, section);
  const msg = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const output = new SectionOutput(options);
  if (resolved.headerFilter !== undefined) {
    const [start, end] = resolved.ranges[0] ?? [0, 0];
    const f = resolved.headerFilter;
    return output.write(Buffer.from(filterHeader(msg.toString('latin1', start, end), f.fields, f.exclude, f.addMissingEoh), 'latin1'));
  }
  return Buffer.concat(resolved.ranges.map(([s, e]) => output.write(msg.subarray(s, e))));
}
