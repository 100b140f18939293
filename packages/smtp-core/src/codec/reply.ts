/**
 * Reply formatting (RFC 5321 §4.2): `code SP text CRLF`, and multiline
 * replies as `code-text` lines ending with `code SP text`. With enhanced
 * status codes (RFC 2034 §3) every line carries the code after the reply
 * code. Replies are built from checked parts, so no text can inject a line.
 */
import { SmtpError } from '../errors.js';

export interface SmtpReply {
  /** Three-digit reply code, 200–599. */
  readonly code: number;
  /** RFC 3463 enhanced status code, e.g. `'2.1.0'`; omitted when undefined. */
  readonly enhanced?: string | undefined;
  /** One string per line. */
  readonly lines: readonly string[];
}

const CONTROL = /[\r\n\0]/;

/** Format a reply as wire text (CRLF after every line). Throws `ERR_SMTP_STATE` for CR, LF or NUL in the text. */
export function formatReply(reply: SmtpReply): string {
  const { code, enhanced } = reply;
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new SmtpError('ERR_SMTP_STATE', `invalid reply code ${code}`, { side: 'local' });
  const lines = reply.lines.length === 0 ? [''] : reply.lines;
  let out = '';
  lines.forEach((line, i) => {
    if (CONTROL.test(line)) throw new SmtpError('ERR_SMTP_STATE', 'reply text contains CR, LF or NUL', { side: 'local' });
    const sep = i === lines.length - 1 ? ' ' : '-';
    const text = enhanced === undefined ? line : line === '' ? enhanced : `${enhanced} ${line}`;
    out += `${code}${sep}${text}`.trimEnd() + '\r\n';
  });
  return out;
}
