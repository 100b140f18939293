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

/**
 * Known differences, as `message-file-prefix item` → reason. The README's
 * "Differences from Dovecot" list says the same.
 */
export const KNOWN_DIFFERENCES: Record<string, string> = {};
