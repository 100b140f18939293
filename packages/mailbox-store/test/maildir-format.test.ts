import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@pigeonpost/wire/node';
import { describe, expect, it } from 'vitest';
import { writeThroughDotlock } from '../src/maildir/dotlock.js';
import { compareForUids, curName, parseFilename, sortForUids, splitInfo, UniqueNames } from '../src/maildir/filename.js';
import { createMaildirStore } from '../src/maildir/index.js';
import { decodeRecords, encodeRecord } from '../src/maildir/index-log.js';
import { KeywordTable, parseKeywordsFile, serializeKeywordsFile } from '../src/maildir/keywords.js';
import { folderDirName, mailboxNameOfDir, parseSubscriptions, serializeSubscriptions } from '../src/maildir/layout.js';
import { decodeMutf7, encodeMutf7 } from '../src/maildir/mutf7.js';
import { parseUidlist, serializeUidlist } from '../src/maildir/uidlist.js';

const limits = { maxMailboxNameBytes: 255, maxMailboxDepth: 16 };

// As Dovecot 2.3 writes it (recreated file, then one record appended in place).
const DOVECOT_UIDLIST =
  '3 V1700000000 N4 G2f1a0c3b9d8e7f60112233445566778899\n'.replace('99\n', '\n') +
  '1 :1700000001.M1P10.host,S=100,W=102\n' +
  '2 W2048 :1700000002.M2P10.host\n' +
  '3 G0011 P00000001 :1700000003.M3P10.host,S=5\n';

describe('the order new files get their UIDs in (Dovecot\'s maildir_filename_sort_cmp)', () => {
  it('sorts by the seconds as a number, then by M<usec> when both names have one, then by the rest of the base', () => {
    // Postfix's names within one second: by microseconds, not by device and inode (string order).
    const a = '1700000000.V801I9M50.mx';
    const b = '1700000000.V801I10M100.mx';
    expect([b, a].sort()).toEqual([b, a]);
    expect([b, a].sort(compareForUids)).toEqual([a, b]);
    // Seconds as numbers: a nine-digit time before a ten-digit one.
    expect(['1000000000.M0P1.h', '999999999.M5P1.h'].sort(compareForUids)).toEqual(['999999999.M5P1.h', '1000000000.M0P1.h']);
    // Only one with microseconds, or equal ones: the rest of the base decides; the info is not looked at.
    expect(compareForUids('1700000000.P1Q2.h', '1700000000.M1P1.h')).toBeGreaterThan(0);
    expect(compareForUids('1700000000.M7P1Q1.h', '1700000000.M7P1Q2.h')).toBeLessThan(0);
    expect(compareForUids('1700000000.M7P1.h:2,S', '1700000000.M7P1.h:2,FS')).toBe(0);
    expect(compareForUids('1700000000.M7P1.h', '1700000000.M7P1.h.x')).toBeLessThan(0);
    // Ours: <sec>.M<usec>P<pid>Q<n>R<rand>.<host>.
    const ours = ['1700000001.M3P9Q2Rab.h', '1700000001.M20P1Q1Rcd.h', '1700000000.M999999P1Q9Ref.h'];
    expect([...ours].sort(compareForUids)).toEqual(['1700000000.M999999P1Q9Ref.h', '1700000001.M3P9Q2Rab.h', '1700000001.M20P1Q1Rcd.h']);
  });

  it('sortForUids sorts as compareForUids does (names with and without M<usec>, ties, other digit counts)', () => {
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const names: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const secs = [999999998, 999999999, 1700000000, 1700000001][next(4)]!;
      const uniq = next(3) === 0 ? `P${next(50)}Q${next(5)}` : next(2) === 0 ? `M${next(20)}P${next(5)}` : `V801I${next(30).toString(16)}M${next(20)}`;
      names.push(`${secs}.${uniq}.${['a', 'mx', 'host'][next(3)]}`);
    }
    expect(sortForUids(names)).toEqual([...names].sort(compareForUids));
    expect(sortForUids([])).toEqual([]);
  });

  it('numbers files another program left in new/ within one second by their microseconds', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-order-'));
    try {
      const store = createMaildirStore({ root, fsync: false });
      await store.createUser('tim', { mailboxes: [] });
      const maildir = join(root, 'tim', 'Maildir');
      // Written in this order, which is neither their names' string order nor their inodes'.
      const names = ['1700000000.V801I10M300000.mx', '1700000000.V801I9M100000.mx', '1700000000.V801I11M200000.mx'];
      for (const name of names) await writeFile(join(maildir, 'new', name), `Subject: ${name}\n\nhi\n`);
      const h = await (await store.user('tim')).open('INBOX');
      const subjects = [];
      for (const m of h.messages()) {
        const chunks: Uint8Array[] = [];
        for await (const chunk of h.read(m.uid)) chunks.push(chunk);
        subjects.push(/Subject: (\S+)/.exec(Buffer.concat(chunks).toString('latin1'))![1]);
      }
      expect(subjects).toEqual(['1700000000.V801I9M100000.mx', '1700000000.V801I11M200000.mx', '1700000000.V801I10M300000.mx']);
      expect(h.messages().map((m) => m.uid)).toEqual([1, 2, 3]);
      await h.close();
      await store.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('dovecot-uidlist v3', () => {
  it('parses Dovecot\'s format, keeping extensions', () => {
    const list = parseUidlist(DOVECOT_UIDLIST);
    expect(list).toMatchObject({ version: 3, uidValidity: 1700000000, nextUid: 4, guid: '2f1a0c3b9d8e7f601122334455667788' });
    expect(list.records.map((r) => r.uid)).toEqual([1, 2, 3]);
    expect(list.records[1]).toEqual({ uid: 2, extensions: ['W2048'], base: '1700000002.M2P10.host' });
    expect(list.records[2]!.extensions).toEqual(['G0011', 'P00000001']);
  });
  it('round-trips through serialize', () => {
    const list = parseUidlist(DOVECOT_UIDLIST);
    expect(serializeUidlist(list)).toBe(DOVECOT_UIDLIST);
    expect(parseUidlist(serializeUidlist(list))).toEqual(list);
  });
  it('ignores a record still being appended, reads version 1, refuses garbage', () => {
    expect(parseUidlist(DOVECOT_UIDLIST + '4 :17000000').records).toHaveLength(3);
    expect(parseUidlist('1 123 5\n3 a.b.c\n')).toMatchObject({ version: 1, uidValidity: 123, nextUid: 5, records: [{ uid: 3, base: 'a.b.c' }] });
    expect(() => parseUidlist('x\n')).toThrow(/version/);
    expect(() => parseUidlist('3 V0 N1\n')).toThrow(/broken header/);
    expect(() => parseUidlist('3 V1 N5 G00000000000000000000000000000000\n2 :a\n1 :b\n')).toThrow(/not ordered/);
  });
  it('raises nextUid above the highest record', () => {
    expect(parseUidlist('3 V1 N2 G00000000000000000000000000000000\n7 :a\n').nextUid).toBe(8);
  });
});

describe('dovecot-keywords', () => {
  it('parses and writes `<idx> <name>` lines, skipping bad ones', () => {
    const slots = parseKeywordsFile('0 $Label1\n2 Junk\nbad\n30 x\n3 $Label1\n');
    expect(slots).toEqual(['$Label1', undefined, 'Junk']);
    expect(serializeKeywordsFile(slots)).toBe('0 $Label1\n2 Junk\n');
  });
  it('fills gaps, is case-insensitive and enforces the limit', () => {
    const t = new KeywordTable(['$a', undefined, 'c'], 4);
    expect(t.add(['$A', 'new'])).toBe(true);
    expect(t.letterOf('NEW')).toBe('b');
    expect(t.canonical('$A')).toBe('$a');
    expect(t.add(['d'])).toBe(true);
    expect(() => t.add(['e'])).toThrow(expect.objectContaining({ code: 'ERR_STORE_LIMIT' }));
  });
});

describe('dovecot-keywords rewrites', () => {
  it('always get a later mtime in whole seconds, as Dovecot needs to notice them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pp-keywords-'));
    try {
      const path = join(dir, 'dovecot-keywords');
      const lockOptions = { clock: systemClock, staleTimeoutMs: 120_000, timeoutMs: 1000 };
      // Dovecot dates its own rewrite a second ahead when it already read a file of this second. This one
      // is far enough ahead (30 s) that the rewrite cannot catch up with it on a slow machine.
      const ahead = (Math.floor(Date.now() / 1000) + 30) * 1000;
      await writeFile(path, '0 K1\n');
      await utimes(path, new Date(ahead), new Date(ahead));
      await writeThroughDotlock(path, '0 K1\n1 Ours\n', lockOptions, false, true);
      expect(await readFile(path, 'utf8')).toBe('0 K1\n1 Ours\n');
      expect((await stat(path)).mtimeMs).toBe(ahead + 1000);
      // An older file: the new one simply has the current time.
      await utimes(path, new Date(0), new Date(0));
      // The kernel stamps files from a clock that may lag Date.now() by a tick (a few ms): 50 ms of slack.
      const before = Math.floor((Date.now() - 50) / 1000) * 1000;
      await writeThroughDotlock(path, '0 K1\n', lockOptions, false, true);
      expect((await stat(path)).mtimeMs).toBeGreaterThanOrEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Maildir file names', () => {
  it('parses sizes, flags and keywords', () => {
    const p = parseFilename('1700000000.M12P34Q5R0a.host,S=1234,W=1260:2,FRSab');
    expect(p).toEqual({ base: '1700000000.M12P34Q5R0a.host,S=1234,W=1260', info: 'FRSab', hasInfo: true, physicalSize: 1234, virtualSize: 1260 });
    expect(splitInfo('DFPRSTaz')).toEqual({ flags: ['\\Draft', '\\Flagged', '\\Answered', '\\Seen', '\\Deleted'], keywordIndexes: [0, 25], other: 'P' });
    expect(parseFilename('123.abc.host')).toEqual({ base: '123.abc.host', info: '', hasInfo: false });
    expect(parseFilename('1.x,S=12x:2,').physicalSize).toBeUndefined();
  });
  it('writes flags in ASCII order', () => {
    expect(curName('b', 'baTSFD')).toBe('b:2,DFSTab');
  });
  it('generates unique names in the qmail/Dovecot form', () => {
    const g = new UniqueNames();
    const a = g.next(1_700_000_000_123);
    expect(a).toMatch(/^1700000000\.M123\d{3}P\d+Q1R[0-9a-f]{16}\.[^/:,]+$/);
    expect(g.next(1_700_000_000_123)).not.toBe(a);
  });
});

describe('modified UTF-7 and folder names', () => {
  it('matches RFC 3501 examples', () => {
    expect(encodeMutf7('~peter/mail/台北/日本語')).toBe('~peter/mail/&U,BTFw-/&ZeVnLIqe-');
    expect(decodeMutf7('~peter/mail/&U,BTFw-/&ZeVnLIqe-')).toBe('~peter/mail/台北/日本語');
    expect(encodeMutf7('A&B')).toBe('A&-B');
    expect(decodeMutf7('A&-B')).toBe('A&B');
    expect(() => decodeMutf7('&AGE-')).toThrow();
    expect(() => decodeMutf7('&U,BTFw')).toThrow();
  });
  it('maps hierarchy to Maildir++ and refuses dots', () => {
    expect(folderDirName('INBOX')).toBe('');
    expect(folderDirName('Été/Sub')).toBe('.&AMk-t&AOk-.Sub');
    expect(mailboxNameOfDir('.&AMk-t&AOk-.Sub', limits)).toBe('Été/Sub');
    expect(mailboxNameOfDir('..', limits)).toBeUndefined();
    expect(mailboxNameOfDir('..tmp-1', limits)).toBeUndefined();
    expect(() => folderDirName('a.b')).toThrow(expect.objectContaining({ code: 'ERR_STORE_INVALID_NAME' }));
  });
  it('writes Dovecot v2 subscriptions', () => {
    const text = serializeSubscriptions(['INBOX', 'Work/2024']);
    expect(text).toBe('V\t2\n\nINBOX\nWork\t2024\n');
    expect(parseSubscriptions(text)).toEqual(['INBOX', 'Work/2024']);
    expect(parseSubscriptions('INBOX\nWork.2024\n')).toEqual(['INBOX', 'Work/2024']);
  });
  it('keeps subscription levels in modified UTF-7, as Dovecot 2.3 writes and reads them', () => {
    // What Dovecot 2.3.19 wrote after SUBSCRIBE "&AMk-t&AOk-", "Caf&AOk-/Sub" and "R&-D".
    const dovecot = 'V\t2\n\n&AMk-t&AOk-\nCaf&AOk-\tSub\nR&-D\nINBOX\n';
    expect(parseSubscriptions(dovecot)).toEqual(['Été', 'Café/Sub', 'R&D', 'INBOX']);
    expect(serializeSubscriptions(['Été', 'Café/Sub', 'R&D', 'INBOX'])).toBe(dovecot);
    // Lines an earlier Pigeonpost wrote in raw UTF-8 are still read, and merge with their mUTF-7 spelling.
    expect(parseSubscriptions('V\t2\n\nÉté\n&AMk-t&AOk-\nR&D\n')).toEqual(['Été', 'R&D']);
  });
});

describe('index log records', () => {
  it('stops at a torn tail and at a bad checksum', () => {
    const a = encodeRecord({ t: 'H', v: 1, uv: 5, floor: 1 });
    const b = encodeRecord({ t: 'X', u: [1], m: 2 });
    expect(decodeRecords(Buffer.concat([a, b])).stop).toBe('end');
    const torn = decodeRecords(Buffer.concat([a, b.subarray(0, 5)]));
    expect(torn).toMatchObject({ consumed: a.length, stop: 'partial' });
    const bad = Buffer.concat([a, b]);
    bad[a.length + 12] = bad[a.length + 12]! ^ 1;
    expect(decodeRecords(bad)).toMatchObject({ consumed: a.length, stop: 'corrupt' });
  });
});
