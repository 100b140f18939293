import { MimeError } from '../errors.js';
import { resolveMimeLimits } from '../limits.js';
import type { MimeLimits } from '../limits.js';
import { newList, newRecord } from './alloc.js';
import { parseParams } from './params.js';
import type { MimeParam } from './params.js';
import { Lexer, NUL_REPLACEMENT } from './rfc822-lexer.js';
import { STRUCTURE_VERSION } from './structure.js';
import type { MessageStructure, MimePart, PartKind } from './structure.js';

export interface MimeParserOptions extends Partial<MimeLimits> {
  /**
   * Treat message/global (RFC 6532 §3.5) as an encapsulated message, like
   * message/rfc822. Default true, as RFC 9051 §9 (`media-message`) asks;
   * Dovecot 2.3 treats it as an opaque leaf.
   */
  readonly encapsulateGlobal?: boolean;
}

/**
 * The header fields the parser looks at: the Content-* fields kept for
 * BODYSTRUCTURE (every part, ids 0–7), MIME-Version (8: it only makes the
 * part MIME), and the fields kept for ENVELOPE (message roots, ids 9–18).
 * Every other field is skipped without making a string of it.
 */
const FIELD_NAMES = [
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'content-md5',
  'content-disposition',
  'content-language',
  'content-location',
  'mime-version',
  'date',
  'subject',
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'in-reply-to',
  'message-id',
] as const;
const ID_CONTENT_TYPE = 0;
const ID_MIME_VERSION = 8;
const FIRST_ENVELOPE_ID = 9;
/** FIELDS_BY_LENGTH[n]: the [id, lower-case name bytes] of the names n bytes long. */
const FIELDS_BY_LENGTH: (readonly [number, Uint8Array])[][] = [];
FIELD_NAMES.forEach((name, id) => (FIELDS_BY_LENGTH[name.length] ??= []).push([id, Buffer.from(name, 'latin1')]));

/** The id of the field name at `b[s..s+len)`, compared as `toLowerCase()` would (ASCII letters only), or -1. */
function fieldId(b: Uint8Array, s: number, len: number): number {
  const list = FIELDS_BY_LENGTH[len];
  if (list === undefined) return -1;
  next: for (const [id, name] of list) {
    for (let k = 0; k < len; k++) {
      let c = b[s + k]!;
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c !== name[k]) continue next;
    }
    return id;
  }
  return -1;
}

/** RFC 5322 §2.1.1 and Dovecot: a longer "name" is taken as a value. */
const MAX_HEADER_NAME = 1000;
const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
const NO_BYTES = Buffer.alloc(0);

interface Counters {
  offset: number;
  lf: number;
  bare: number;
}

interface Field {
  name: string;
  value: string;
  keep: boolean;
}
/** The field being skipped (not kept): its continuation lines are skipped too. */
const SKIPPED_FIELD: Field = Object.freeze({ name: '', value: '', keep: false });

interface Draft {
  kind: PartKind;
  depth: number;
  parent: Draft | undefined;
  headerStart: number;
  bodyStart: Counters | undefined;
  bodyEnd: Counters | undefined;
  headerStartCounters: Counters;
  mime: boolean;
  digest: boolean;
  overflow?: 'depth' | 'parts' | 'header';
  truncated: boolean;
  fields: Field[];
  keptBytes: number;
  headerCount: number;
  headerLinesSeen: number;
  wantsEnvelope: boolean;
  /** BODYSTRUCTURE fields from the Content-* header fields (MIME parts only). */
  data: PartData | undefined;
  envelope: Record<string, unknown> | undefined;
  children: Draft[];
  message: Draft | undefined;
  boundary: string | undefined;
}

interface Boundary {
  readonly part: Draft;
  /** The boundary, a byte string (one char per byte). */
  readonly text: string;
}

/** The Content-* values of a part, every key present (one shape), in the order a frozen part lists them. */
interface PartData {
  type: string | undefined;
  subtype: string | undefined;
  params: MimeParam[] | undefined;
  id: string | undefined;
  description: string | undefined;
  encoding: string | undefined;
  md5: string | undefined;
  disposition: string | undefined;
  dispositionParams: MimeParam[] | undefined;
  language: string[] | undefined;
  location: string | undefined;
}

/** A NUL byte becomes U+FFFD, as Dovecot does; `includes` first, as a NUL is rare and `replaceAll` is not free. */
function withoutNul(value: string): string {
  return value.includes('\0') ? value.replaceAll('\0', NUL_REPLACEMENT) : value;
}

/** The limits most parsers use, resolved once. */
let defaultLimits: MimeLimits | undefined;

/**
 * Incremental RFC 5322 / MIME structural parser (RFC 2045–2049). Feed bytes
 * with `push(chunk)`, split anywhere, then call `end()` for the
 * `MessageStructure`: the same for every chunking. It never throws on input
 * and never buffers a body: memory is bounded by the limits (one line prefix,
 * the kept header fields, the boundary stack), whatever the message size.
 *
 * Boundary and header rules follow Dovecot's message-parser, so the IMAP
 * values built from the structure match Dovecot's: a boundary line matches on
 * its prefix (`--b` followed by anything), the longest (then innermost)
 * matching boundary wins, an outer boundary closes every part inside it, a
 * boundary line ends a header and takes the line end before it (even the
 * empty line that ended the header), and content after the limits is opaque
 * text.
 *
 * How it stays fast: lines are read in place from the pushed chunk (only a
 * line cut by the end of a chunk is copied, its first `lineCap` bytes), body
 * lines that cannot be boundaries (not starting with `--`, or no multipart
 * open) are only counted, and strings are made only of the header fields kept
 * for ENVELOPE and BODYSTRUCTURE and of nothing else.
 */
export class MimeParser {
  private readonly limits: MimeLimits;
  private readonly encapsulateGlobal: boolean;
  // Position counters: bytes consumed, LFs seen, LFs without a CR before them.
  private offset = 0;
  private lfCount = 0;
  private bareCount = 0;
  private readonly root: Draft;
  private current: Draft;
  private mode: 'header' | 'body' = 'header';
  private firstBodyLine = false;
  private boundaries: Boundary[] = [];
  private parts = 1;
  private ended = false;
  /** Terminator length of the previous line (0 at the start). */
  private prevTerm: 0 | 1 | 2 = 0;
  private prevTermBare = false;
  // Start counters of the line being read.
  private lineStart = 0;
  private lineLf = 0;
  private lineBare = 0;
  // A line cut by the end of a chunk: its first bytes (up to lineCap), its length so far, its last three bytes.
  private carry: Buffer | undefined;
  private carryLength = 0;
  private lineLength = 0;
  private tailA = -1;
  private tailB = -1;
  private tailC = -1;
  // The complete line being processed: `la` bytes at lb[ls] (the first min(content, lineCap) bytes),
  // `lc` content bytes (without the line end), line end `lt`, last two content bytes lt1, lt2.
  private lb: Buffer = NO_BYTES;
  private ls = 0;
  private la = 0;
  private lc = 0;
  private lt: 0 | 1 | 2 = 0;
  private lt1 = -1;
  private lt2 = -1;
  // The header field being collected.
  private field: Field | undefined;
  /**
   * Set while a boundary line that ended a header is processed again: `at` is
   * where the header (and the body of every part from `part` down) ends, before
   * the line end that the boundary took from the header; `part` is the part
   * whose header lost it. Dovecot (message-parser.c, parse_next_header) adds
   * that line end to the body of `part`'s parent, so the parts above `part`
   * that the boundary closes end after it.
   */
  private cut: { at: Counters; part: Draft } | undefined;
  /**
   * Set for one line after an empty line ended a header: Dovecot still
   * checks that line for a boundary as part of the header, and when an outer
   * boundary is there, the empty line belongs to the boundary (for every
   * kind of part, at any depth).
   */
  private afterEoh: { part: Draft; at: Counters } | undefined;

  constructor(options: MimeParserOptions = {}) {
    let custom = false;
    for (const key in options) if (key !== 'encapsulateGlobal' && (options as Record<string, unknown>)[key] !== undefined) custom = true;
    this.limits = custom ? resolveMimeLimits(options) : (defaultLimits ??= resolveMimeLimits());
    this.encapsulateGlobal = options.encapsulateGlobal ?? true;
    this.root = this.newPart(undefined, this.posCounters());
    this.current = this.root;
  }

  private newPart(parent: Draft | undefined, at: Counters): Draft {
    return {
      kind: 'text',
      depth: parent === undefined ? 0 : parent.depth + 1,
      parent,
      headerStart: at.offset,
      headerStartCounters: at,
      bodyStart: undefined,
      bodyEnd: undefined,
      mime: false,
      digest: false,
      truncated: false,
      fields: [],
      keptBytes: 0,
      headerCount: 0,
      headerLinesSeen: 0,
      wantsEnvelope: parent === undefined || parent.kind === 'message',
      data: undefined,
      envelope: undefined,
      children: [],
      message: undefined,
      boundary: undefined,
    };
  }

  private posCounters(): Counters {
    return { offset: this.offset, lf: this.lfCount, bare: this.bareCount };
  }

  /** Counters at the start of the line being processed. */
  private lineCounters(): Counters {
    return { offset: this.lineStart, lf: this.lineLf, bare: this.lineBare };
  }

  /** How many bytes of a line are looked at: a header field's worth in a header, a boundary's worth in a body. */
  private get lineCap(): number {
    return this.mode === 'header' ? this.limits.maxFieldBytes + MAX_HEADER_NAME + 2 : this.limits.maxBoundaryLength + 8;
  }

  /** Feed the next bytes of the message. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new MimeError('ERR_PARSER_ENDED', 'push() after end()', { side: 'local' });
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const len = buf.length;
    /** Offset of buf[0] in the message. */
    const base = this.offset;
    let i = 0;
    if (this.lineLength > 0) {
      // The end of a line begun in an earlier chunk.
      const lf = buf.indexOf(LF, 0);
      this.appendCarry(buf, 0, lf < 0 ? len : lf);
      this.offset = this.lineStart + this.lineLength;
      if (lf < 0) return;
      const cr = this.tailC === CR;
      const content = cr ? this.lineLength - 1 : this.lineLength;
      this.lb = this.carry!;
      this.ls = 0;
      this.la = Math.min(this.carryLength, content);
      this.lc = content;
      this.lt1 = cr ? this.tailA : this.tailB;
      this.lt2 = cr ? this.tailB : this.tailC;
      this.endLine(cr, base + lf + 1);
      i = lf + 1;
    }
    while (i < len) {
      if (this.mode === 'body' && this.afterEoh === undefined) i = this.skipBody(buf, i, base);
      if (i >= len) break;
      const lf = buf.indexOf(LF, i);
      if (lf < 0) {
        this.appendCarry(buf, i, len);
        this.offset = this.lineStart + this.lineLength;
        break;
      }
      const cr = lf > i && buf[lf - 1] === CR;
      const content = cr ? lf - 1 - i : lf - i;
      this.lb = buf;
      this.ls = i;
      this.la = Math.min(content, this.lineCap);
      this.lc = content;
      this.lt1 = content >= 2 ? buf[i + content - 2]! : -1;
      this.lt2 = content >= 1 ? buf[i + content - 1]! : -1;
      this.endLine(cr, base + lf + 1);
      i = lf + 1;
    }
    // Hold no reference to the caller's chunk between pushes.
    this.lb = NO_BYTES;
  }

  /**
   * Body lines that cannot be boundaries only move the counters: skip them,
   * up to the first line that starts with "--" (when a multipart is open) or
   * that the chunk cuts. Returns the index of that line.
   */
  private skipBody(buf: Buffer, from: number, base: number): number {
    const watch = this.boundaries.length > 0;
    let i = from;
    let lfCount = this.lfCount;
    let bareCount = this.bareCount;
    let lastCr = false;
    for (;;) {
      const lf = buf.indexOf(LF, i);
      if (lf < 0 || (watch && lf - i >= 2 && buf[i] === DASH && buf[i + 1] === DASH)) break;
      lastCr = lf > i && buf[lf - 1] === CR;
      lfCount++;
      if (!lastCr) bareCount++;
      i = lf + 1;
    }
    if (i === from) return i;
    // What processing each skipped line one by one would have left.
    this.lfCount = this.lineLf = lfCount;
    this.bareCount = this.lineBare = bareCount;
    this.offset = this.lineStart = base + i;
    this.prevTerm = lastCr ? 2 : 1;
    this.prevTermBare = !lastCr;
    this.firstBodyLine = false;
    return i;
  }

  /** Keep the first bytes (up to lineCap) and the last three bytes of a line that a chunk cuts. */
  private appendCarry(buf: Buffer, from: number, to: number): void {
    const n = to - from;
    if (n === 0) return;
    const cap = this.lineCap;
    if (this.carryLength < cap) {
      const take = Math.min(n, cap - this.carryLength);
      const need = this.carryLength + take;
      if (this.carry === undefined || this.carry.length < need) {
        const grown = Buffer.allocUnsafe(Math.min(cap, Math.max(need, 2 * (this.carry?.length ?? 0), 256)));
        if (this.carry !== undefined) this.carry.copy(grown, 0, 0, this.carryLength);
        this.carry = grown;
      }
      buf.copy(this.carry, this.carryLength, from, from + take);
      this.carryLength = need;
    }
    this.lineLength += n;
    if (n >= 3) {
      this.tailA = buf[to - 3]!;
      this.tailB = buf[to - 2]!;
      this.tailC = buf[to - 1]!;
    } else {
      for (let k = from; k < to; k++) {
        this.tailA = this.tailB;
        this.tailB = this.tailC;
        this.tailC = buf[k]!;
      }
    }
  }

  /** A line ended with LF (CR LF when `cr`): count it, process it, start the next one at `next`. */
  private endLine(cr: boolean, next: number): void {
    this.offset = next;
    this.lfCount++;
    if (!cr) this.bareCount++;
    this.lt = cr ? 2 : 1;
    this.processLine();
    this.startNextLine(cr ? 2 : 1);
  }

  private startNextLine(term: 0 | 1 | 2): void {
    this.prevTerm = term;
    this.prevTermBare = term === 1;
    this.lineStart = this.offset;
    this.lineLf = this.lfCount;
    this.lineBare = this.bareCount;
    this.lineLength = 0;
    this.carryLength = 0;
    this.tailA = this.tailB = this.tailC = -1;
  }

  /** Counters at the end of the previous line's content (before its line end). */
  private beforePrevTerm(): Counters {
    if (this.prevTerm === 0) return this.lineCounters();
    return { offset: this.lineStart - this.prevTerm, lf: this.lineLf - 1, bare: this.lineBare - (this.prevTermBare ? 1 : 0) };
  }

  /** Dovecot's boundary_find: the longest boundary that prefixes the line, innermost first on ties. */
  private findBoundary(): { boundary: Boundary; index: number; closing: boolean } | undefined {
    const b = this.lb;
    const s = this.ls;
    if (this.boundaries.length === 0 || this.lc < 2) return undefined;
    if (b[s] !== DASH || b[s + 1] !== DASH) return undefined;
    if (this.parts >= this.limits.maxParts) {
      this.current.overflow ??= 'parts';
      return undefined;
    }
    const len = this.lc - 2;
    const trailingDashes = len > 2 && this.lt1 === DASH && this.lt2 === DASH;
    let best: Boundary | undefined;
    let bestIndex = -1;
    for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const boundary = this.boundaries[i]!;
      const n = boundary.text.length;
      if (n <= len && n + 2 <= this.la && (best === undefined || best.text.length < n) && this.lineHas(boundary.text, 2)) {
        best = boundary;
        bestIndex = i;
        if (n === len || (n === len - 2 && trailingDashes)) break;
      }
    }
    if (best === undefined) return undefined;
    const at = 2 + best.text.length;
    const closing = this.lc >= at + 2 && at + 1 < this.la && b[s + at] === DASH && b[s + at + 1] === DASH;
    return { boundary: best, index: bestIndex, closing };
  }

  /** Whether the line has the byte string `text` at `at` (the caller checked that it fits in the first `la` bytes). */
  private lineHas(text: string, at: number): boolean {
    const b = this.lb;
    const s = this.ls + at;
    for (let k = 0; k < text.length; k++) if (b[s + k] !== text.charCodeAt(k)) return false;
    return true;
  }

  private processLine(): void {
    const eoh = this.afterEoh;
    if (eoh !== undefined) {
      this.afterEoh = undefined;
      const found = this.findBoundary();
      if (found !== undefined && found.boundary.part !== eoh.part) {
        const part = eoh.part;
        part.bodyStart = eoh.at;
        if (part.message !== undefined) part.message.headerStartCounters = part.message.bodyStart = eoh.at;
        if (part.message !== undefined) part.message.headerStart = eoh.at.offset;
        this.cut = { at: eoh.at, part };
        this.processLine();
        this.cut = undefined;
        return;
      }
    }
    if (this.mode === 'header') {
      const found = this.findBoundary();
      if (found !== undefined && found.boundary.part !== this.current) {
        // A boundary inside a header ends it; the previous line end belongs to the boundary.
        const outer = this.cut;
        const part = this.current;
        const at = outer?.at ?? (part.headerLinesSeen > 0 ? this.beforePrevTerm() : this.lineCounters());
        this.endHeader(at, true);
        this.cut = outer ?? { at, part };
        this.processLine();
        this.cut = outer;
        return;
      }
      if (this.lc === 0 && this.lt !== 0) {
        const part = this.current;
        this.endHeader(this.posCounters(), false);
        if (this.boundaries.length > 0) this.afterEoh = { part, at: this.lineCounters() };
        return;
      }
      const part = this.current;
      if (part.headerCount >= this.limits.maxHeaderCount || this.offset - part.headerStart > this.limits.maxHeaderBytes) {
        part.overflow ??= 'header';
        this.endHeader(this.lineCounters(), false);
        this.processLine();
        return;
      }
      part.headerLinesSeen++;
      this.headerLine();
      return;
    }
    const found = this.findBoundary();
    if (found === undefined) {
      this.firstBodyLine = false;
      return;
    }
    const cut = this.cut;
    const end = cut?.at ?? (this.firstBodyLine ? this.lineCounters() : this.beforePrevTerm());
    const owner = found.boundary.part;
    // The parts above the one whose header the boundary cut end after the line end it lost (see `cut`).
    let after: Counters | undefined;
    for (let p: Draft | undefined = this.current; p !== undefined && p !== owner; p = p.parent) {
      p.bodyEnd = after ?? end;
      if (p === cut?.part) after = this.lineCounters();
    }
    this.boundaries.length = found.closing ? found.index : found.index + 1;
    this.current = owner;
    if (this.lt === 0) return;
    if (!found.closing) {
      const child = this.newPart(owner, this.posCounters());
      child.mime = true;
      owner.children.push(child);
      this.parts++;
      this.current = child;
      this.mode = 'header';
    } else {
      this.mode = 'body';
      this.firstBodyLine = true;
    }
  }

  private headerLine(): void {
    const b = this.lb;
    const s = this.ls;
    const n = this.la;
    const first = n > 0 ? b[s] : -1;
    if ((first === 0x20 || first === 0x09) && this.field !== undefined) {
      if (this.field.keep) this.field.value += `\n${b.toString('latin1', s, s + n)}`;
      return;
    }
    this.finishField();
    const part = this.current;
    part.headerCount++;
    let colon = -1;
    for (let p = s; p < s + n; p++) {
      if (b[p] === 0x3a) {
        colon = p - s;
        break;
      }
    }
    let id = -1;
    let valueStart = 0;
    if (colon >= 0) {
      let nameEnd = colon;
      while (nameEnd > 0 && (b[s + nameEnd - 1] === 0x20 || b[s + nameEnd - 1] === 0x09)) nameEnd--;
      if (nameEnd <= MAX_HEADER_NAME) {
        id = fieldId(b, s, nameEnd);
        // Skip the whitespace after ':' (all of it, unless that is all there is: then one).
        let p = colon + 1;
        while (p < n && (b[s + p] === 0x20 || b[s + p] === 0x09)) p++;
        if (p === n && p > colon + 1) p = colon + 2;
        valueStart = p;
      }
    }
    if (id === ID_MIME_VERSION || id === ID_CONTENT_TYPE) part.mime = true;
    const keep = id >= 0 && (id < ID_MIME_VERSION || (id >= FIRST_ENVELOPE_ID && part.wantsEnvelope));
    this.field = keep ? { name: FIELD_NAMES[id]!, value: b.toString('latin1', s + valueStart, s + n), keep } : SKIPPED_FIELD;
  }

  private finishField(): void {
    const f = this.field;
    this.field = undefined;
    if (f === undefined || !f.keep) return;
    const part = this.current;
    let value = f.value;
    if (value.length > this.limits.maxFieldBytes) value = value.slice(0, this.limits.maxFieldBytes);
    if (part.keptBytes + value.length > this.limits.maxKeptHeaderBytes) return;
    part.keptBytes += value.length;
    f.value = value;
    part.fields.push(f);
  }

  /**
   * End the current part's header at `end`. `cut`: a boundary line ended it,
   * not an empty line; a multipart's own boundary then never counts (Dovecot
   * registers it only at the empty line), so its body runs to the boundary.
   */
  private endHeader(end: Counters, cut: boolean): void {
    this.finishField();
    const part = this.current;
    part.bodyStart = end;
    this.analyseHeader(part);
    this.mode = 'body';
    this.firstBodyLine = true;
    if (part.kind === 'multipart' && part.boundary !== undefined) {
      if (!cut) this.boundaries.push({ part, text: part.boundary });
    } else if (part.kind === 'message') {
      const child = this.newPart(part, { offset: end.offset, lf: end.lf, bare: end.bare });
      part.message = child;
      this.parts++;
      this.current = child;
      this.mode = 'header';
    }
  }

  /** Content-* and envelope fields → kind, boundary, BODYSTRUCTURE data (Dovecot's message-part-data rules). */
  private analyseHeader(part: Draft): void {
    let seenType = false;
    let typeValue = '';
    let typeOk = false;
    const data: PartData = {
      type: undefined,
      subtype: undefined,
      params: undefined,
      id: undefined,
      description: undefined,
      encoding: undefined,
      md5: undefined,
      disposition: undefined,
      dispositionParams: undefined,
      language: undefined,
      location: undefined,
    };
    const env = newRecord();
    for (const { name, value } of part.fields) {
      switch (name) {
        case 'content-type': {
          if (seenType) break;
          seenType = true;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const ct = lx.contentType();
          typeValue = ct.value;
          const slash = typeValue.indexOf('/');
          data.type = slash < 0 ? typeValue : typeValue.slice(0, slash);
          data.subtype = slash < 0 ? '' : typeValue.slice(slash + 1);
          if (ct.ret >= 0) {
            typeOk = true;
            const { params } = parseParams(lx);
            if (params.length > 0) data.params = params;
          }
          break;
        }
        case 'content-transfer-encoding': {
          if (data.encoding !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const out: string[] = [];
          const token = lx.mimeToken(out) >= 0 && lx.skipLwsp() === 0 ? out.join('') : '';
          if (token.length > 0) data.encoding = token;
          break;
        }
        case 'content-id':
        case 'content-md5':
        case 'content-description':
        case 'content-location': {
          const key = name === 'content-id' ? 'id' : name === 'content-md5' ? 'md5' : name === 'content-description' ? 'description' : 'location';
          if (data[key] === undefined) data[key] = withoutNul(value);
          break;
        }
        case 'content-disposition': {
          // Dovecot keeps reading Content-Disposition fields until one has parameters.
          if (data.dispositionParams !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const out: string[] = [];
          if (lx.mimeToken(out) < 0) break;
          data.disposition = out.join('');
          const { params } = parseParams(lx);
          if (params.length > 0) data.dispositionParams = params;
          break;
        }
        case 'content-language': {
          if (data.language !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const langs = newList<string>();
          for (;;) {
            const out: string[] = [];
            if (lx.atom(out) < 0) break;
            langs.push(out.join(''));
            if (lx.atEnd || lx.peek() !== 0x2c) break;
            lx.pos++;
            lx.skipLwsp();
          }
          if (langs.length > 0) data.language = langs;
          break;
        }
        default:
          if (!part.wantsEnvelope) break;
          switch (name) {
            case 'date':
            case 'subject':
            case 'in-reply-to':
            case 'message-id':
              env[name === 'in-reply-to' ? 'inReplyTo' : name === 'message-id' ? 'messageId' : name] = withoutNul(value);
              break;
            default: {
              const key = name === 'reply-to' ? 'replyTo' : name;
              ((env[key] ??= newList<string>()) as string[]).push(value);
            }
          }
      }
    }
    if (part.wantsEnvelope) part.envelope = env;
    const parentDigest = part.parent?.kind === 'multipart' && part.parent.digest;
    let kind: PartKind = 'other';
    if (part.mime) {
      const t = typeValue.toLowerCase();
      if (t === 'message/rfc822' || (this.encapsulateGlobal && t === 'message/global')) kind = 'message';
      else if (t.startsWith('text') && (t.length === 4 || t[4] === '/')) kind = 'text';
      else if (t.startsWith('multipart/')) {
        kind = 'multipart';
        part.digest = t === 'multipart/digest';
      }
      part.data = data;
    }
    if (!seenType || !part.mime) kind = parentDigest ? 'message' : 'text';
    if (kind === 'multipart' && typeOk) {
      const boundary = data.params?.find(([k]) => k.toLowerCase() === 'boundary');
      if (boundary !== undefined) {
        if (part.depth + 1 >= this.limits.maxDepth) {
          part.overflow = 'depth';
          part.truncated = true;
          kind = 'other';
        } else {
          part.boundary = boundary[1].slice(0, this.limits.maxBoundaryLength);
        }
      }
    }
    if (kind === 'message' && (part.depth + 1 >= this.limits.maxDepth || this.parts >= this.limits.maxParts)) {
      part.overflow = part.depth + 1 >= this.limits.maxDepth ? 'depth' : 'parts';
      part.truncated = true;
      kind = 'other';
    }
    part.kind = kind;
    part.fields = [];
  }

  /** Finish the message and return its structure. */
  end(): MessageStructure {
    if (this.ended) throw new MimeError('ERR_PARSER_ENDED', 'end() called twice', { side: 'local' });
    if (this.lineLength > 0) {
      // The last line, without a line end.
      this.lb = this.carry!;
      this.ls = 0;
      this.la = this.carryLength;
      this.lc = this.lineLength;
      this.lt = 0;
      this.lt1 = this.tailB;
      this.lt2 = this.tailC;
      this.processLine();
      this.startNextLine(0);
    }
    this.ended = true;
    // A header cut by the end of the input ends there (Dovecot: end of headers at EOF).
    while (this.mode === 'header') this.endHeader(this.posCounters(), false);
    const end = this.posCounters();
    for (let p: Draft | undefined = this.current; p !== undefined; p = p.parent) p.bodyEnd ??= end;
    const structure = newRecord();
    structure['version'] = STRUCTURE_VERSION;
    structure['size'] = this.offset;
    structure['virtualSize'] = this.offset + this.bareCount;
    structure['root'] = this.freeze(this.root, end);
    return structure as unknown as MessageStructure;
  }

  private freeze(d: Draft, eof: Counters): MimePart {
    const hs = d.headerStartCounters;
    const bs = d.bodyStart ?? eof;
    const be = d.bodyEnd ?? eof;
    // Not a literal: see alloc.ts (the structure is what callers keep).
    const part = newRecord();
    part['kind'] = d.kind;
    part['headerStart'] = hs.offset;
    part['bodyStart'] = bs.offset;
    part['bodyEnd'] = be.offset;
    part['headerVirtualSize'] = bs.offset - hs.offset + bs.bare - hs.bare;
    part['headerLines'] = bs.lf - hs.lf;
    part['bodyVirtualSize'] = be.offset - bs.offset + be.bare - bs.bare;
    part['bodyLines'] = be.lf - bs.lf;
    if (d.mime) part['mime'] = true;
    if (d.overflow !== undefined) part['overflow'] = d.overflow;
    if (d.truncated) part['truncated'] = true;
    const data = d.data;
    if (data !== undefined) {
      if (data.type !== undefined) part['type'] = data.type;
      if (data.subtype !== undefined) part['subtype'] = data.subtype;
      if (data.params !== undefined) part['params'] = data.params;
      if (data.id !== undefined) part['id'] = data.id;
      if (data.description !== undefined) part['description'] = data.description;
      if (data.encoding !== undefined) part['encoding'] = data.encoding;
      if (data.md5 !== undefined) part['md5'] = data.md5;
      if (data.disposition !== undefined) part['disposition'] = data.disposition;
      if (data.dispositionParams !== undefined) part['dispositionParams'] = data.dispositionParams;
      if (data.language !== undefined) part['language'] = data.language;
      if (data.location !== undefined) part['location'] = data.location;
    }
    if (d.envelope !== undefined) part['envelope'] = d.envelope;
    if (d.kind === 'multipart') part['children'] = d.children.map((c) => this.freeze(c, eof));
    if (d.message !== undefined) part['message'] = this.freeze(d.message, eof);
    return part as unknown as MimePart;
  }
}

/** Parse a whole message held in memory. */
export function parseMessage(bytes: Uint8Array | string, options?: MimeParserOptions): MessageStructure {
  const parser = new MimeParser(options);
  parser.push(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  return parser.end();
}

/** Parse a message from a stream of chunks (a `fs.createReadStream`, a socket, any async iterable of bytes). */
export async function parseMessageStream(source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, options?: MimeParserOptions): Promise<MessageStructure> {
  const parser = new MimeParser(options);
  for await (const chunk of source) parser.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  return parser.end();
}
