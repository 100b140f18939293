import { connectImap, dovecotAvailable, startDovecot } from '@pigeonpost/testkit';
import type { RawImap, RawResponse, RunningDovecot } from '@pigeonpost/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY_OF_CONTAINER, ITEMS, KNOWN_DIFFERENCES, fetchName, findPart, loadCorpus, ours, parseMessage } from './differential.js';

const peer = dovecotAvailable();
if (!peer.available) console.warn(`skipping Dovecot differential test: ${peer.reason}`);

/** The value of `item` in a `* n FETCH (UID u ITEM value)` response, as raw bytes. */
function extract(response: RawResponse, item: string): Buffer | 'NIL' {
  const bytes = response.bytes;
  const text = bytes.toString('latin1');
  // Dovecot names a partial BODY[...]<5.20> as BODY[...]<5> in the answer.
  const label = item.replace(/<(\d+)\.\d+>$/, '<$1>');
  const at = text.indexOf(`${label} `);
  if (at < 0) throw new Error(`no ${label} in ${text.slice(0, 200)}`);
  let value = bytes.subarray(at + label.length + 1);
  // Drop the closing ")\r\n" of the FETCH response.
  value = value.subarray(0, value.length - 3);
  if (value.toString('latin1') === 'NIL') return 'NIL';
  if (!item.startsWith('BODY[') && !item.startsWith('BINARY[')) return value;
  const lit = /^~?\{(\d+)\}\r\n/.exec(value.toString('latin1', 0, 32));
  if (lit !== null) return value.subarray(lit[0].length, lit[0].length + Number(lit[1]));
  if (value.toString('latin1') === '""') return Buffer.alloc(0);
  return value;
}

/** BINARY[n] of a multipart or message part (a listed difference, BINARY_OF_CONTAINER). */
function isBinaryOfContainer(item: string, structure: ReturnType<typeof parseMessage>): boolean {
  const m = /^BINARY(?:\.SIZE)?\[([0-9.]+)\]$/.exec(item);
  if (m === null) return false;
  const part = findPart(structure, m[1]!.split('.').map(Number));
  return part !== undefined && (part.kind === 'multipart' || part.kind === 'message');
}

describe.skipIf(!peer.available)('Dovecot differential: our IMAP values equal Dovecot 2.3 byte for byte', () => {
  const corpus = loadCorpus();
  let dovecot: RunningDovecot;
  let imap: RawImap;
  const results = new Map<string, { match: number; known: number; differ: string[] }>();

  beforeAll(async () => {
    dovecot = await startDovecot({ protocols: ['imap'], users: [{ name: 'diff', password: 'diff-pass' }] });
    imap = await connectImap({ host: dovecot.host, port: dovecot.ports.imap });
    expect((await imap.command('LOGIN diff diff-pass')).status).toBe('OK');
    for (const { bytes } of corpus) {
      const r = await imap.command(['APPEND INBOX () ', bytes]);
      expect(r.status, r.text).toBe('OK');
    }
    expect((await imap.command('SELECT INBOX')).status).toBe('OK');
  }, 120_000);

  afterAll(async () => {
    await imap?.command('LOGOUT').catch(() => undefined);
    await dovecot?.stop();
    const lines = [...results].map(([item, r]) => `${item.padEnd(42)} ${r.match}/${corpus.length} match, ${r.known} known differences${r.differ.length ? `, ${r.differ.length} UNEXPECTED` : ''}`);
    console.log(`Dovecot differential (${corpus.length} messages):\n${lines.join('\n')}`);
  });

  for (const item of ITEMS) {
    it(item, async () => {
      const result = { match: 0, known: 0, differ: [] as string[] };
      results.set(item, result);
      for (let i = 0; i < corpus.length; i++) {
        const { name, bytes } = corpus[i]!;
        const structure = parseMessage(bytes);
        const mine = ours(item, structure, bytes);
        const r = await imap.command(`UID FETCH ${i + 1} (${fetchName(item)})`);
        const response = r.untagged.find((u) => u.text.includes(' FETCH ('));
        let theirs: Buffer | 'NIL' | undefined;
        if (r.status !== 'OK' || response === undefined) theirs = undefined;
        else theirs = extract(response, item);
        // NIL from Dovecot (or a NO) matches only our "no such value"; bytes must be equal to the byte.
        const same = theirs === undefined || theirs === 'NIL' ? mine === undefined : mine !== undefined && theirs.equals(mine);
        const key = `${name.slice(0, 3)} ${item}`;
        if (same) result.match++;
        else if (KNOWN_DIFFERENCES[key] !== undefined) result.known++;
        else if (isBinaryOfContainer(item, structure)) {
          result.known++;
          void BINARY_OF_CONTAINER;
        }
        else result.differ.push(`${name}: dovecot=${JSON.stringify(theirs === undefined ? `(${r.status} ${r.text})` : theirs.toString('latin1').slice(0, 600))}\n      ours=${JSON.stringify(mine?.toString('latin1').slice(0, 600))}`);
      }
      expect(result.differ, result.differ.join('\n')).toEqual([]);
    }, 120_000);
  }
});
