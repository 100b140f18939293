import iconv from 'iconv-lite';
import libmime from 'libmime';
import type { MimeParam } from './params.js';

/**
 * Header text for people, from a raw header value (a byte string, one char
 * per byte, or a Buffer): RFC 2047 encoded words decoded through libmime
 * (which converts charsets with iconv-lite), and RFC 6532 raw UTF-8 read as
 * UTF-8. Bytes that are not valid UTF-8 are read as windows-1252, the
 * common legacy case. Folding (RFC 5322 §2.2.3) is removed.
 */
export function decodeHeaderValue(raw: string | Uint8Array): string {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const text = decodeBytes(bytes).replace(/\r?\n(?=[ \t])/g, '');
  return libmime.decodeWords(text);
}

function decodeBytes(bytes: Buffer): string {
  const utf8 = bytes.toString('utf8');
  if (!utf8.includes('\uFFFD') || bytes.includes(Buffer.from('\uFFFD'))) return utf8;
  return iconv.decode(bytes, 'windows-1252');
}

/**
 * Decode MIME parameters (as `MimePart.params` holds them) for people:
 * RFC 2231 `name*` values (`charset'lang'%XX…`) are percent-decoded and
 * converted from their charset, RFC 2047 encoded words inside quoted values
 * (a common violation, RFC 2047 §5 forbids it) are decoded too. Names come
 * out lower-cased, without the `*`. The first of repeated names wins.
 */
export function decodeParams(params: readonly MimeParam[] | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [rawName, rawValue] of params ?? []) {
    let name = rawName.toLowerCase();
    let value: string;
    if (name.endsWith('*')) {
      name = name.slice(0, -1);
      const m = /^([^']*)'[^']*'(.*)$/s.exec(rawValue);
      const charset = m?.[1] || 'us-ascii';
      const encoded = m === null ? rawValue : (m[2] ?? '');
      const bytes = Buffer.from(encoded.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
      value = iconv.encodingExists(charset) ? iconv.decode(bytes, charset) : decodeBytes(bytes);
    } else {
      value = decodeHeaderValue(rawValue);
    }
    if (!(name in out)) out[name] = value;
  }
  return out;
}

/** The file name of a part (Content-Disposition `filename`, else Content-Type `name`), decoded. */
export function partFilename(part: { readonly dispositionParams?: readonly MimeParam[]; readonly params?: readonly MimeParam[] }): string | undefined {
  return decodeParams(part.dispositionParams)['filename'] ?? decodeParams(part.params)['name'];
}
