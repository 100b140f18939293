/**
 * xtext (RFC 3461 §4): printable ASCII except `+` and `=`, everything else as
 * `+XX` with two upper-case hex digits. Used by ENVID, ORCPT and MAIL's AUTH=.
 */

/** Decode xtext; `undefined` when `text` is not valid xtext. */
export function decodeXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (c >= 33 && c <= 126 && c !== 0x3d) {
      out += text[i];
    } else {
      return undefined;
    }
  }
  return out;
}

/** Encode a string (ASCII, or UTF-8 bytes as Latin-1) as xtext. */
export function encodeXtext(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte >= 33 && byte <= 126 && byte !== 0x2b && byte !== 0x3d) out += String.fromCharCode(byte);
    else out += '+' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
