/**
 * Modified UTF-7 (RFC 3501 §5.1.3), the encoding Dovecot and Courier use for
 * Maildir++ folder names on disk: printable US-ASCII except `&` stands for
 * itself, `&` is `&-`, anything else is `&` + modified BASE64 of UTF-16BE +
 * `-`, with `,` in place of `/`.
 */

function isDirect(code: number): boolean {
  return code >= 0x20 && code <= 0x7e;
}

export function encodeMutf7(text: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const bytes = Buffer.alloc(pending.length * 2);
    pending.forEach((unit, i) => bytes.writeUInt16BE(unit, i * 2));
    out += '&' + bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-';
    pending = [];
  };
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (isDirect(code)) {
      flush();
      out += code === 0x26 ? '&-' : text[i];
    } else {
      pending.push(code);
    }
  }
  flush();
  return out;
}

/** Decode modified UTF-7; throws a RangeError on malformed input (a name another tool wrote badly). */
export function decodeMutf7(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const code = text.charCodeAt(i);
    if (!isDirect(code)) throw new RangeError('modified UTF-7: raw non-ASCII character');
    if (ch !== '&') {
      out += ch;
      i++;
      continue;
    }
    const end = text.indexOf('-', i + 1);
    if (end < 0) throw new RangeError('modified UTF-7: unterminated shift');
    const b64 = text.slice(i + 1, end);
    if (b64.length === 0) {
      out += '&';
    } else {
      if (!/^[A-Za-z0-9+,]+$/.test(b64)) throw new RangeError('modified UTF-7: bad base64');
      const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
      if (bytes.length % 2 !== 0 || bytes.length === 0) throw new RangeError('modified UTF-7: odd UTF-16 length');
      let units = '';
      for (let j = 0; j < bytes.length; j += 2) units += String.fromCharCode(bytes.readUInt16BE(j));
      // A shifted run must not encode what could have been written directly (RFC 3501 §5.1.3: shortest form).
      for (let j = 0; j < units.length; j++) if (isDirect(units.charCodeAt(j))) throw new RangeError('modified UTF-7: direct character in shift');
      out += units;
    }
    i = end + 1;
  }
  return out;
}
