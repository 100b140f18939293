/**
 * Shared by the Dovecot differential test: what we ask for, how we compute our
 * answer, and the known differences (each with its reason) that the README
 * lists too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binarySection, imapBody, imapBodyStructure, imapEnvelope, parseMessage, sectionBytes } from '../../src/index.js';
import type { MessageStructure } from '../../src/index.js';

export const corpusDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'corpus', 'messages');

export function loadCorpus(): { name: string; bytes: Buffer }[] {
  return readdirSync(corpusDir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((name) => ({ name, bytes: readFileSync(join(corpusDir, name)) }));
}

/** FETCH items compared for every message. */
export const ITEMS = [
  'ENVELOPE',
  'BODYSTRUCTURE',
  'BODY',
  'RFC822.SIZE',
  'BODY[]',
  'BODY[HEADER]',
  'BODY[TEXT]',
  'BODY[1]',
  'BODY[1.MIME]',
  'BODY[2]',
  'BODY[2.MIME]',
  'BODY[1.1]',
  'BODY[2.1]',
  'BODY[1.2]',
  'BODY[2.HEADER]',
  'BODY[2.TEXT]',
  'BODY[HEADER.FIELDS (FROM SUBJECT)]',
  'BODY[HEADER.FIELDS.NOT (FROM SUBJECT)]',
  'BODY[2.HEADER.FIELDS (SUBJECT)]',
  'BODY[TEXT]<5.20>',
  'BINARY[1]',
  'BINARY.SIZE[1]',
  'BINARY[2]',
] as const;

/** The item name as the FETCH command spells it (PEEK so that \Seen does not change). */
export function fetchName(item: string): string {
  return item.replace(/^BODY\[/, 'BODY.PEEK[').replace(/^BINARY\[/, 'BINARY.PEEK[');
}

/** Our value of one item, as the bytes Dovecot would put after the item name (literals as `{n}\r\n…`). */
export function ours(item: string, structure: MessageStructure, bytes: Buffer): Buffer | undefined {
  switch (item) {
    case 'ENVELOPE':
      return Buffer.from(imapEnvelope(structure), 'latin1');
    case 'BODYSTRUCTURE':
      return Buffer.from(imapBodyStructure(structure), 'latin1');
    case 'BODY':
      return Buffer.from(imapBody(structure), 'latin1');
    case 'RFC822.SIZE':
      return Buffer.from(String(structure.virtualSize));
  }
  const m = /^(BODY|BINARY|BINARY\.SIZE)\[([^\]]*)\](?:<(\d+)\.(\d+)>)?$/.exec(item);
  if (m === null) throw new Error(`unknown item ${item}`);
  const [, kind, section = '', off, len] = m;
  if (kind === 'BODY') {
    return sectionBytes(structure, section, bytes, off === undefined ? {} : { partial: { offset: Number(off), length: Number(len) } });
  }
  const decoded = binarySection(structure, section, bytes);
  if (!Buffer.isBuffer(decoded)) return undefined;
  return kind === 'BINARY.SIZE' ? Buffer.from(String(decoded.length)) : decoded;
}

export { parseMessage };
export { findPart } from '../../src/index.js';

/**
 * HEADER.FIELDS[.NOT] of an encapsulated message whose header does not end
 * with an empty line of its own (a boundary cut it, or took its empty line).
 */
const HEADER_FIELDS_PAST_THE_PART =
  "HEADER.FIELDS of an encapsulated message whose header has no empty line of its own: Dovecot (imap-msgpart.c imap_msgpart_get_partial_header, istream-header-filter.c) filters the lines from where that message starts up to the next empty line or the end of the whole message, past the part (boundary line, epilogue, the next part's header: an empty line for 100 and 237, the Subject line and an empty line for 238); we filter only the header, the bytes of BODY[2.HEADER] (Dovecot's too), as RFC 3501 §6.4.5 defines HEADER.FIELDS";

/**
 * Known differences, as `message-file-prefix item` → reason. The table in
 * the README's "Dovecot is the oracle" section says the same.
 */
export const KNOWN_DIFFERENCES: Record<string, string> = {
  '102 BODYSTRUCTURE': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '102 BODY': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '102 BODY[2.1]': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '102 BODY[2.HEADER]': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '102 BODY[2.TEXT]': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '102 BODY[2.HEADER.FIELDS (SUBJECT)]': 'message/global is encapsulated (RFC 9051 §9 media-message, RFC 6532 §3.5); Dovecot 2.3 treats it as an opaque leaf',
  '070 BINARY[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '070 BINARY.SIZE[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '100 BODY[2.HEADER.FIELDS (SUBJECT)]': HEADER_FIELDS_PAST_THE_PART,
  '237 BODY[2.HEADER.FIELDS (SUBJECT)]': HEADER_FIELDS_PAST_THE_PART,
  '238 BODY[2.HEADER.FIELDS (SUBJECT)]': HEADER_FIELDS_PAST_THE_PART,
  '070 BINARY[2]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '167 BINARY[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '167 BINARY.SIZE[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '172 BINARY[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '172 BINARY.SIZE[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '181 BINARY[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '181 BINARY.SIZE[1]': 'invalid base64/quoted-printable: Dovecot answers NO [PARSE]; we decode leniently (RFC 2045 §6.8 says to ignore characters outside the alphabet)',
  '161 BINARY[1]': 'unparseable Content-Transfer-Encoding value: Dovecot answers NO [UNKNOWN-CTE]; we treat it as 7bit, as BODYSTRUCTURE does',
  '161 BINARY.SIZE[1]': 'unparseable Content-Transfer-Encoding value: Dovecot answers NO [UNKNOWN-CTE]; we treat it as 7bit, as BODYSTRUCTURE does',
  '095 BINARY[1]': "Content-Transfer-Encoding without MIME-Version or Content-Type: Dovecot decodes it for BINARY; we do not (RFC 2045 §4: without MIME-Version the Content-* fields do not apply, and Dovecot's own BODYSTRUCTURE says 7bit)",
  '095 BINARY.SIZE[1]': "Content-Transfer-Encoding without MIME-Version or Content-Type: Dovecot decodes it for BINARY; we do not (RFC 2045 §4: without MIME-Version the Content-* fields do not apply, and Dovecot's own BODYSTRUCTURE says 7bit)",
};

/** BINARY of a multipart/message part: see the README (Dovecot re-encodes nested parts). */
export const BINARY_OF_CONTAINER = 'BINARY of a multipart or message part: Dovecot re-encodes every nested part to binary and rewrites its Content-Transfer-Encoding header; we send the part unchanged';
