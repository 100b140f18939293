import { parseAddressList } from './address.js';
import { imapString, imapStringForHumans, imapStringNoLf } from './imap-quote.js';
import type { MimeParam } from './params.js';
import type { EnvelopeFields, MessageStructure, MimePart } from './structure.js';

/*
 * IMAP FETCH values built from a MessageStructure (RFC 3501 §7.4.2,
 * RFC 9051 §7.5.2), byte for byte as Dovecot writes them. The results are
 * byte strings (one char per byte) of IMAP syntax, ready to write after
 * `ENVELOPE ` / `BODYSTRUCTURE ` / `BODY `; `Buffer.from(s, 'latin1')` gives
 * the wire bytes (8-bit values go out as literals).
 */

const EMPTY_ENVELOPE = 'NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL';
const EMPTY_BODY = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)';
const EMPTY_BODYSTRUCTURE = '("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)';

function addresses(values: readonly string[] | undefined): string {
  if (values === undefined) return 'NIL';
  // Repeated fields are merged, as if comma-separated (Dovecot does the same).
  let out = '';
  for (const value of values) {
    for (const a of parseAddressList(value)) {
      out += `(${a.name === null ? 'NIL' : imapStringForHumans(a.name)} ${imapString(a.route)} ${imapString(a.mailbox)} ${imapString(a.domain)})`;
    }
  }
  return out === '' ? 'NIL' : `(${out})`;
}

/** The inside of an ENVELOPE list (without the outer parentheses). */
function envelopeBody(env: EnvelopeFields | undefined): string {
  if (env === undefined) return EMPTY_ENVELOPE;
  const from = addresses(env.from);
  return [
    imapStringNoLf(env.date),
    env.subject === undefined ? 'NIL' : imapStringForHumans(env.subject),
    from,
    env.sender === undefined ? from : addresses(env.sender),
    env.replyTo === undefined ? from : addresses(env.replyTo),
    addresses(env.to),
    addresses(env.cc),
    addresses(env.bcc),
    imapStringNoLf(env.inReplyTo),
    imapStringNoLf(env.messageId),
  ].join(' ');
}

/** IMAP ENVELOPE of the message (or of the encapsulated message `part`), with its parentheses. */
export function imapEnvelope(structure: MessageStructure | MimePart): string {
  const part = 'root' in structure ? structure.root : structure;
  return `(${envelopeBody(part.envelope)})`;
}

function params(list: readonly MimeParam[] | undefined, defaultCharset: boolean): string {
  if (list === undefined || list.length === 0) return defaultCharset ? '("charset" "us-ascii")' : 'NIL';
  let out = '';
  let seenCharset = false;
  for (const [name, value] of list) {
    if (defaultCharset && !seenCharset && name.length === 7 && name.toLowerCase() === 'charset') seenCharset = true;
    out += `${out === '' ? '' : ' '}${imapString(name)} ${imapString(value)}`;
  }
  if (defaultCharset && !seenCharset) out += ' "charset" "us-ascii"';
  return `(${out})`;
}

/** disposition, language, location: the extension data every part has. */
function commonExtension(p: MimePart): string {
  const disposition = p.disposition === undefined ? 'NIL' : `(${imapString(p.disposition)} ${params(p.dispositionParams, false)})`;
  const language = p.language === undefined || p.language.length === 0 ? 'NIL' : `(${p.language.map((l) => imapString(l)).join(' ')})`;
  return ` ${disposition} ${language} ${imapStringNoLf(p.location)}`;
}

function part(p: MimePart, extended: boolean): string {
  if (p.kind === 'multipart') {
    const children = p.children ?? [];
    let out = '';
    for (const c of children) out += `(${part(c, extended)})`;
    if (out === '') out = extended ? EMPTY_BODYSTRUCTURE : EMPTY_BODY;
    out += ` ${imapString(p.subtype ?? '')}`;
    if (!extended) return out;
    return `${out} ${params(p.params, false)}${commonExtension(p)}`;
  }
  let out: string;
  let text = false;
  if (p.kind === 'message' && p.message !== undefined) {
    // Written in lower case whatever the header says, as Dovecot does.
    out = p.subtype?.toLowerCase() === 'global' ? '"message" "global"' : '"message" "rfc822"';
  } else if (p.truncated === true) {
    // A multipart or message part a limit turned opaque (Dovecot: application/octet-stream).
    out = '"application" "octet-stream"';
  } else if (p.type === undefined) {
    text = true;
    out = '"text" "plain"';
  } else {
    text = p.type.length === 4 && p.type.toLowerCase() === 'text';
    out = `${imapString(p.type)} ${imapString(p.subtype ?? '')}`;
  }
  out += ` ${params(p.params, text)} ${imapStringNoLf(p.id)} ${imapStringNoLf(p.description)} ${p.encoding === undefined ? '"7bit"' : imapString(p.encoding)} ${p.bodyVirtualSize}`;
  if (text) {
    out += ` ${p.bodyLines}`;
  } else if (p.kind === 'message' && p.message !== undefined) {
    out += ` (${envelopeBody(p.message.envelope)}) (${part(p.message, extended)}) ${p.bodyLines}`;
  }
  if (!extended) return out;
  return `${out} ${imapStringNoLf(p.md5)}${commonExtension(p)}`;
}

/** IMAP BODYSTRUCTURE (with extension data: MD5, disposition, language, location), with its parentheses. */
export function imapBodyStructure(structure: MessageStructure | MimePart): string {
  const p = 'root' in structure ? structure.root : structure;
  return `(${part(p, true)})`;
}

/** IMAP BODY (BODYSTRUCTURE without extension data), with its parentheses. */
export function imapBody(structure: MessageStructure | MimePart): string {
  const p = 'root' in structure ? structure.root : structure;
  return `(${part(p, false)})`;
}

/** IMAP RFC822.SIZE: the message size with bare LFs counted as CRLF. */
export function imapRfc822Size(structure: MessageStructure): number {
  return structure.virtualSize;
}
