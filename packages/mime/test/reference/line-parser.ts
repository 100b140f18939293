/**
 * The reference for the property tests in fast-paths.test.ts: the structural
 * parser as it was before the fast paths (commit 77ba2f2), kept as it was
 * apart from its imports, its name and plain Errors. It makes a string of
 * every line and processes the lines one by one: slow but simple, and
 * checked byte for byte against Dovecot by the differential test at the
 * time. The fast parser in src/codec/parser.ts must give the same structure
 * for every input, limits and chunking. Since then the two were changed
 * alike for what the differential test found later: the empty line before
 * an outer boundary belongs to that boundary after the header of every kind
 * of part (not only message/rfc822); the parts above the one whose header a
 * boundary cut end after the line end the boundary took; a multipart whose
 * header a boundary cut has no boundary of its own.
 */
import { resolveMimeLimits } from '../../src/limits.js';
import type { MimeLimits } from '../../src/limits.js';
import type { MimeParserOptions } from '../../src/codec/parser.js';
import { parseParams } from '../../src/codec/params.js';
import type { MimeParam } from '../../src/codec/params.js';
import { Lexer, NUL_REPLACEMENT } from '../../src/codec/rfc822-lexer.js';
import { STRUCTURE_VERSION } from '../../src/codec/structure.js';
import type { MessageStructure, MimePart, PartKind } from '../../src/codec/structure.js';

/** Header fields kept for BODYSTRUCTURE (every part) and ENVELOPE (message roots). */
const CONTENT_FIELDS = new Set([
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'content-md5',
  'content-disposition',
  'content-language',
  'content-location',
]);
const ENVELOPE_FIELDS = new Set(['date', 'subject', 'from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'in-reply-to', 'message-id']);
/** RFC 5322 §2.1.1 and Dovecot: a longer "name" is taken as a value. */
const MAX_HEADER_NAME = 1000;

interface Counters {
  offset: number;
  lf: number;
  bare: number;
}

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
  fields: { name: string; value: string }[];
  keptBytes: number;
  headerCount: number;
  headerLinesSeen: number;
  wantsEnvelope: boolean;
  data: Record<string, unknown>;
  envelope: Record<string, unknown> | undefined;
  children: Draft[];
  message: Draft | undefined;
  boundary: string | undefined;
}

interface Boundary {
  readonly part: Draft;
  readonly text: string;
}

/** A complete line, as the state machine sees it. */
interface Line {
  start: number;
  /** Bytes up to the cap (body: enough for a boundary; header: a field). */
  text: string;
  /** Length without the line end. */
  contentLength: number;
  /** Line end length: 2 (CRLF), 1 (LF) or 0 (last line without one). */
  term: 0 | 1 | 2;
  /** The last two content bytes, for "--boundary--" of a line longer than `text`. */
  tail: string;
}

function counters(c: Counters): Counters {
  return { offset: c.offset, lf: c.lf, bare: c.bare };
}

/**
 * Incremental RFC 5322 / MIME structural parser (RFC 2045–2049). Feed bytes
 * with `push(chunk)`, split anywhere, then call `end()` for the
 * `MessageStructure`: the same for every chunking. It never throws on input
 * and never buffers a body: memory is bounded by the limits (one line prefix,
 * the kept header fields, the boundary stack), whatever the message size.
 *
 * Boundary and header rules follow Dovecot's message-parser, so the IMAP
 * values built from the structure match Dovecot's: a boundary line matches on
 * its prefix (`--b` followed by anything), the innermost matching boundary
 * wins, an outer boundary closes every part inside it, a boundary inside a
 * header ends that header, and content after the limits is opaque text.
 */
export class ReferenceParser {
  private readonly limits: MimeLimits;
  private readonly encapsulateGlobal: boolean;
  private readonly pos: Counters = { offset: 0, lf: 0, bare: 0 };
  private prevByte = -1;
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
  // The line being read.
  private lineStart = 0;
  private lineText = '';
  private lineLength = 0;
  private lineTail = '';
  /** Start counters of the line being read. */
  private lineCounters: Counters = { offset: 0, lf: 0, bare: 0 };
  // The header field being collected.
  private field: { name: string; value: string; keep: boolean } | undefined;
  /**
   * Set while a boundary line that ended a header is processed again: where
   * that header ends, and the part whose header lost its last line end (the
   * parts above it that the boundary closes end after that line end).
   */
  private cut: { at: Counters; part: Draft } | undefined;
  /**
   * Set for one line after an empty line ended a header: Dovecot still
   * checks that line for a boundary as part of the header, and when an outer
   * boundary is there, the empty line's line end belongs to the boundary.
   */
  private afterEoh: { part: Draft; at: Counters } | undefined;

  constructor(options: MimeParserOptions = {}) {
    this.limits = resolveMimeLimits(options);
    this.encapsulateGlobal = options.encapsulateGlobal ?? true;
    this.root = this.newPart(undefined, counters(this.pos));
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
      data: {},
      envelope: undefined,
      children: [],
      message: undefined,
      boundary: undefined,
    };
  }

  private get lineCap(): number {
    return this.mode === 'header' ? this.limits.maxFieldBytes + MAX_HEADER_NAME + 2 : this.limits.maxBoundaryLength + 8;
  }

  /** Feed the next bytes of the message. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new Error('push() after end()');
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let i = 0;
    while (i < buf.length) {
      const lf = buf.indexOf(0x0a, i);
      const end = lf < 0 ? buf.length : lf;
      if (end > i) this.appendLineBytes(buf, i, end);
      if (lf < 0) break;
      // The line ends here.
      const cr = this.prevByte === 0x0d;
      this.pos.offset = this.lineStart + this.lineLength + 1;
      this.pos.lf++;
      if (!cr) this.pos.bare++;
      this.prevByte = 0x0a;
      this.finishLine(cr ? 2 : 1);
      i = lf + 1;
    }
  }

  private appendLineBytes(buf: Buffer, from: number, to: number): void {
    const cap = this.lineCap;
    if (this.lineText.length < cap) this.lineText += buf.toString('latin1', from, Math.min(to, from + cap - this.lineText.length));
    const n = to - from;
    this.lineLength += n;
    this.lineTail = (this.lineTail + buf.toString('latin1', Math.max(from, to - 3), to)).slice(-3);
    this.prevByte = buf[to - 1] ?? -1;
    this.pos.offset = this.lineStart + this.lineLength;
  }

  private finishLine(term: 0 | 1 | 2): void {
    const contentLength = term === 2 ? this.lineLength - 1 : this.lineLength;
    let text = this.lineText;
    if (term === 2 && text.length > contentLength) text = text.slice(0, contentLength);
    const tailFull = term === 2 ? this.lineTail.slice(0, -1) : this.lineTail;
    const line: Line = { start: this.lineStart, text, contentLength, term, tail: tailFull.slice(-2) };
    const startCounters = this.lineCounters;
    this.processLine(line, startCounters);
    this.prevTerm = term;
    this.prevTermBare = term === 1;
    this.lineStart = this.pos.offset;
    this.lineText = '';
    this.lineLength = 0;
    this.lineTail = '';
    this.lineCounters = counters(this.pos);
  }

  /** Counters at the end of the previous line's content (before its line end). */
  private beforePrevTerm(line: Line, at: Counters): Counters {
    if (this.prevTerm === 0) return at;
    return { offset: line.start - this.prevTerm, lf: at.lf - 1, bare: at.bare - (this.prevTermBare ? 1 : 0) };
  }

  /** Dovecot's boundary_find: the longest boundary that prefixes the line, innermost first on ties. */
  private findBoundary(line: Line): { boundary: Boundary; index: number; closing: boolean } | undefined {
    if (this.boundaries.length === 0 || line.contentLength < 2) return undefined;
    if (line.text.charCodeAt(0) !== 0x2d || line.text.charCodeAt(1) !== 0x2d) return undefined;
    if (this.parts >= this.limits.maxParts) {
      this.current.overflow ??= 'parts';
      return undefined;
    }
    const len = line.contentLength - 2;
    const trailingDashes = len > 2 && line.tail === '--';
    let best: { boundary: Boundary; index: number } | undefined;
    for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const b = this.boundaries[i]!;
      if (b.text.length <= len && line.text.startsWith(b.text, 2) && (best === undefined || best.boundary.text.length < b.text.length)) {
        best = { boundary: b, index: i };
        if (b.text.length === len || (b.text.length === len - 2 && trailingDashes)) break;
      }
    }
    if (best === undefined) return undefined;
    const at = 2 + best.boundary.text.length;
    const closing = line.contentLength >= at + 2 && line.text.charCodeAt(at) === 0x2d && line.text.charCodeAt(at + 1) === 0x2d;
    return { ...best, closing };
  }

  private processLine(line: Line, at: Counters): void {
    const eoh = this.afterEoh;
    if (eoh !== undefined) {
      this.afterEoh = undefined;
      const found = this.findBoundary(line);
      if (found !== undefined && found.boundary.part !== eoh.part) {
        const part = eoh.part;
        part.bodyStart = eoh.at;
        if (part.message !== undefined) part.message.headerStartCounters = part.message.bodyStart = eoh.at;
        if (part.message !== undefined) part.message.headerStart = eoh.at.offset;
        this.cut = { at: eoh.at, part };
        this.processLine(line, at);
        this.cut = undefined;
        return;
      }
    }
    if (this.mode === 'header') {
      const found = this.findBoundary(line);
      if (found !== undefined && found.boundary.part !== this.current) {
        // A boundary inside a header ends it; the previous line end belongs to the boundary.
        const outer = this.cut;
        const part = this.current;
        const end = outer?.at ?? (part.headerLinesSeen > 0 ? this.beforePrevTerm(line, at) : at);
        this.endHeader(end, true);
        this.cut = outer ?? { at: end, part };
        this.processLine(line, at);
        this.cut = outer;
        return;
      }
      if (line.contentLength === 0 && line.term !== 0) {
        const part = this.current;
        this.endHeader(counters(this.pos), false);
        this.afterEoh = { part, at };
        return;
      }
      const part = this.current;
      if (part.headerCount >= this.limits.maxHeaderCount || this.pos.offset - part.headerStart > this.limits.maxHeaderBytes) {
        part.overflow ??= 'header';
        this.endHeader(at, false);
        this.processLine(line, at);
        return;
      }
      part.headerLinesSeen++;
      this.headerLine(line);
      return;
    }
    const found = this.findBoundary(line);
    if (found === undefined) {
      this.firstBodyLine = false;
      return;
    }
    const cut = this.cut;
    const end = cut?.at ?? (this.firstBodyLine ? at : this.beforePrevTerm(line, at));
    const owner = found.boundary.part;
    let above = false;
    for (let p: Draft | undefined = this.current; p !== undefined && p !== owner; p = p.parent) {
      p.bodyEnd = above ? at : end;
      if (p === cut?.part) above = true;
    }
    this.boundaries.length = found.closing ? found.index : found.index + 1;
    this.current = owner;
    if (line.term === 0) return;
    if (!found.closing) {
      const child = this.newPart(owner, counters(this.pos));
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

  private headerLine(line: Line): void {
    const text = line.text;
    const first = text.charCodeAt(0);
    if ((first === 0x20 || first === 0x09) && this.field !== undefined) {
      if (this.field.keep) this.field.value += `\n${text}`;
      return;
    }
    this.finishField();
    this.current.headerCount++;
    const colon = text.indexOf(':');
    let name = '';
    let value = text;
    if (colon >= 0) {
      let nameEnd = colon;
      while (nameEnd > 0 && (text.charCodeAt(nameEnd - 1) === 0x20 || text.charCodeAt(nameEnd - 1) === 0x09)) nameEnd--;
      if (nameEnd <= MAX_HEADER_NAME) {
        name = text.slice(0, nameEnd).toLowerCase();
        value = text.slice(colon + 1);
        // Skip the whitespace after ':' (all of it, unless that is all there is: then one).
        let p = 0;
        while (p < value.length && (value.charCodeAt(p) === 0x20 || value.charCodeAt(p) === 0x09)) p++;
        if (p === value.length && p > 0) p = 1;
        value = value.slice(p);
      }
    }
    if (name === 'mime-version') this.current.mime = true;
    if (name === 'content-type') this.current.mime = true;
    const keep = CONTENT_FIELDS.has(name) || (this.current.wantsEnvelope && ENVELOPE_FIELDS.has(name));
    this.field = { name, value: keep ? value : '', keep };
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
    part.fields.push({ name: f.name, value });
  }

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
      const child = this.newPart(part, counters(end));
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
    const data: Record<string, unknown> = {};
    const env: Record<string, unknown> = {};
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
          data['type'] = slash < 0 ? typeValue : typeValue.slice(0, slash);
          data['subtype'] = slash < 0 ? '' : typeValue.slice(slash + 1);
          if (ct.ret >= 0) {
            typeOk = true;
            const { params } = parseParams(lx);
            if (params.length > 0) data['params'] = params;
          }
          break;
        }
        case 'content-transfer-encoding': {
          if (data['encoding'] !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const out: string[] = [];
          if (lx.mimeToken(out) >= 0 && lx.skipLwsp() === 0 && out.join('').length > 0) data['encoding'] = out.join('');
          break;
        }
        case 'content-id':
        case 'content-md5':
        case 'content-description':
        case 'content-location': {
          const key = name === 'content-id' ? 'id' : name === 'content-md5' ? 'md5' : name === 'content-description' ? 'description' : 'location';
          if (data[key] === undefined) data[key] = value.replaceAll('\0', NUL_REPLACEMENT);
          break;
        }
        case 'content-disposition': {
          // Dovecot keeps reading Content-Disposition fields until one has parameters.
          if (data['dispositionParams'] !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const out: string[] = [];
          if (lx.mimeToken(out) < 0) break;
          data['disposition'] = out.join('');
          const { params } = parseParams(lx);
          if (params.length > 0) data['dispositionParams'] = params;
          break;
        }
        case 'content-language': {
          if (data['language'] !== undefined) break;
          const lx = new Lexer(value);
          lx.skipLwsp();
          const langs: string[] = [];
          for (;;) {
            const out: string[] = [];
            if (lx.atom(out) < 0) break;
            langs.push(out.join(''));
            if (lx.atEnd || lx.peek() !== 0x2c) break;
            lx.pos++;
            lx.skipLwsp();
          }
          if (langs.length > 0) data['language'] = langs;
          break;
        }
        default:
          if (!part.wantsEnvelope) break;
          switch (name) {
            case 'date':
            case 'subject':
            case 'in-reply-to':
            case 'message-id':
              env[name === 'in-reply-to' ? 'inReplyTo' : name === 'message-id' ? 'messageId' : name] = value.replaceAll('\0', NUL_REPLACEMENT);
              break;
            default: {
              const key = name === 'reply-to' ? 'replyTo' : name;
              ((env[key] ??= []) as string[]).push(value);
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
      const boundary = (data['params'] as MimeParam[] | undefined)?.find(([k]) => k.toLowerCase() === 'boundary');
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
    if (this.ended) throw new Error('end() called twice');
    if (this.lineLength > 0) this.finishLine(0);
    this.ended = true;
    // A header cut by the end of the input ends there (Dovecot: end of headers at EOF).
    while (this.mode === 'header') this.endHeader(counters(this.pos), false);
    const end = counters(this.pos);
    for (let p: Draft | undefined = this.current; p !== undefined; p = p.parent) p.bodyEnd ??= end;
    return {
      version: STRUCTURE_VERSION,
      size: this.pos.offset,
      virtualSize: this.pos.offset + this.pos.bare,
      root: this.freeze(this.root, end),
    };
  }

  private freeze(d: Draft, eof: Counters): MimePart {
    const hs = d.headerStartCounters;
    const bs = d.bodyStart ?? eof;
    const be = d.bodyEnd ?? eof;
    const part: Record<string, unknown> = {
      kind: d.kind,
      headerStart: hs.offset,
      bodyStart: bs.offset,
      bodyEnd: be.offset,
      headerVirtualSize: bs.offset - hs.offset + bs.bare - hs.bare,
      headerLines: bs.lf - hs.lf,
      bodyVirtualSize: be.offset - bs.offset + be.bare - bs.bare,
      bodyLines: be.lf - bs.lf,
    };
    if (d.mime) part['mime'] = true;
    if (d.overflow !== undefined) part['overflow'] = d.overflow;
    if (d.truncated) part['truncated'] = true;
    for (const key of ['type', 'subtype', 'params', 'id', 'description', 'encoding', 'md5', 'disposition', 'dispositionParams', 'language', 'location']) {
      if (d.data[key] !== undefined) part[key] = d.data[key];
    }
    if (d.envelope !== undefined) part['envelope'] = d.envelope;
    if (d.kind === 'multipart') part['children'] = d.children.map((c) => this.freeze(c, eof));
    if (d.message !== undefined) part['message'] = this.freeze(d.message, eof);
    return part as unknown as MimePart;
  }
}

/** Parse a whole message with the reference parser. */
export function referenceParse(bytes: Uint8Array, options?: MimeParserOptions): MessageStructure {
  const parser = new ReferenceParser(options);
  parser.push(bytes);
  return parser.end();
}
