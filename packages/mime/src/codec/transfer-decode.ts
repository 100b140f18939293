import type { MessageStructure } from './structure.js';
import { SectionOutput, resolveSection } from './section.js';
import type { SectionSpec } from './section.js';

/** A Content-Transfer-Encoding that BINARY cannot undo (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`). */
export interface UnknownCte {
  readonly unknownCte: string;
}

/** RFC 2045 §6.8 base64: anything outside the alphabet is skipped. */
export function decodeBase64(data: Uint8Array): Buffer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1').replace(/[^A-Za-z0-9+/]/g, '');
  return Buffer.from(text.slice(0, text.length - (text.length % 4 === 1 ? 1 : 0)), 'base64');
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * RFC 2045 §6.7 quoted-printable: `=XX` decoded, `=` at the end of a line is a
 * soft line break, whitespace before a line end is dropped (rule 3), line ends
 * become CRLF, and a broken `=` is kept as it is.
 */
export function decodeQuotedPrintable(data: Uint8Array): Buffer {
  const src = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = Buffer.allocUnsafe(src.length + 64 + (src.length >> 2));
  let o = 0;
  let lineStart = 0;
  while (lineStart < src.length) {
    let lf = src.indexOf(0x0a, lineStart);
    const hasLf = lf >= 0;
    if (!hasLf) lf = src.length;
    let end = lf;
    if (hasLf && end > lineStart && src[end - 1] === 0x0d) end--;
    while (end > lineStart && (src[end - 1] === 0x20 || src[end - 1] === 0x09)) end--;
    let soft = false;
    for (let i = lineStart; i < end; i++) {
      const c = src[i]!;
      if (c !== 0x3d) {
        out[o++] = c;
        continue;
      }
      if (i + 1 === end) {
        soft = true;
        break;
      }
      const h = hex(src[i + 1] ?? 0);
      const l = hex(src[i + 2] ?? 0);
      if (i + 2 < end && h >= 0 && l >= 0) {
        out[o++] = (h << 4) | l;
        i += 2;
      } else {
        out[o++] = c;
      }
    }
    if (hasLf && !soft) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    }
    lineStart = lf + 1;
  }
  return out.subarray(0, o);
}

/**
 * IMAP BINARY[section] (RFC 3516): the part's body with its
 * Content-Transfer-Encoding undone. 7bit, 8bit and binary bodies come out as
 * they are stored; an encoding we do not know gives `{ unknownCte }`.
 */
export function binarySection(structure: MessageStructure, section: string | SectionSpec, message: Uint8Array): Buffer | UnknownCte {
  const resolved = resolveSection(structure, section);
  const msg = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const [start, end] = resolved.ranges[0] ?? [0, 0];
  const body = msg.subarray(start, end);
  const part = resolved.part;
  // Unencoded content goes out with CRLF line ends, NULs kept (BINARY allows them, RFC 3516 §4.2).
  const raw = (): Buffer => new SectionOutput({ replaceNul: false }).write(body);
  if (part === undefined || part.kind === 'multipart' || part.kind === 'message') return raw();
  const cte = (part.encoding ?? '7bit').toLowerCase();
  switch (cte) {
    case 'base64':
      return decodeBase64(body);
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    case '7bit':
    case '8bit':
    case 'binary':
      return raw();
    default:
      return { unknownCte: cte };
  }
}
