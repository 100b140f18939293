/**
 * The Maildir backend against a real Dovecot 2.3 on the same mail root:
 *  1. a Maildir written by our store is served by Dovecot with the same UIDs,
 *     UIDVALIDITY, flags, keywords, names, subscriptions, bytes and sizes;
 *  2. a Maildir written by Dovecot (IMAP and LMTP) is read by our store the same way;
 *  3. both changing one Maildir in turn keep agreeing on every UID, and each
 *     waits for the other's dovecot-uidlist.lock.
 *
 * Dovecot runs as `nobody` when the test runs as root; our store runs as the
 * test's user, so every step of ours is followed by `chownForDovecot` (in
 * production both run as one mail uid). Dovecot is configured with the '/'
 * separator so IMAP names and our names are spelled alike; on disk it is
 * Maildir++ ('.' between levels, modified UTF-7) either way.
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectImap, deliverLmtp, dovecotAvailable, imapQuote, startDovecot } from '@pigeonpost/testkit';
import type { ImapResult, RawImap, RunningDovecot } from '@pigeonpost/testkit';
import { acquireDotlock } from '../../src/maildir/dotlock.js';
import { createMaildirStore } from '../../src/maildir/index.js';
import { decodeMutf7, encodeMutf7 } from '../../src/maildir/mutf7.js';
import type { MailStore } from '../../src/types.js';
import { systemClock } from '@pigeonpost/wire/node';

const peer = dovecotAvailable();
if (!peer.available) console.warn(`skipping Dovecot Maildir interop tests: ${peer.reason}`);

const USERS = ['alice', 'bob', 'carol', 'dave', 'erin'].map((name) => ({ name, password: `${name}-password` }));

/** One message as either side sees it. */
interface Seen {
  uid: number;
  flags: string[];
  size: number;
  /** The bytes as IMAP sends them (bare LF as CRLF). */
  body: string;
  internalDate: number;
}
interface SeenMailbox {
  uidValidity: number;
  uidNext: number;
  messages: number;
  list: Seen[];
}
interface SeenUser {
  /** name → \Noselect */
  names: Record<string, boolean>;
  subscribed: string[];
  mailboxes: Record<string, SeenMailbox>;
}

const sortFlags = (flags: readonly string[]): string[] => flags.filter((f) => f !== '\\Recent').sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1));
const crlf = (bytes: Buffer): string => bytes.toString('latin1').replace(/\r?\n/g, '\r\n');
const q = (name: string): string => imapQuote(encodeMutf7(name));

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function parseInternalDate(text: string): number {
  const m = /^ ?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$/.exec(text);
  if (!m) throw new Error(`bad INTERNALDATE ${text}`);
  const offset = (Number(m[8]) * 60 + Number(m[9])) * 60_000 * (m[7] === '-' ? -1 : 1);
  return Date.UTC(Number(m[3]), MONTHS.indexOf(m[2]!), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6])) - offset;
}

function ok(result: ImapResult, what: string): ImapResult {
  if (result.status !== 'OK') throw new Error(`${what}: ${result.status} ${result.text}`);
  return result;
}

/** An IMAP mailbox name from a LIST/LSUB line (atom, quoted string or literal), decoded from modified UTF-7. */
function listName(raw: string, literal: Buffer | undefined): string {
  if (literal !== undefined) return decodeMutf7(literal.toString('latin1'));
  if (raw.startsWith('"')) return decodeMutf7(raw.slice(1, -1).replace(/\\(["\\])/g, '$1'));
  return decodeMutf7(raw);
}

async function dovecotList(imap: RawImap, command: 'LIST' | 'LSUB'): Promise<{ name: string; noselect: boolean; raw: string }[]> {
  const result = ok(await imap.command(`${command} "" "*"`), command);
  return result.untagged
    .filter((r) => r.text.startsWith(`* ${command} `))
    .map((r) => {
      const m = new RegExp(`^\\* ${command} \\(([^)]*)\\) (?:"[^"]*"|NIL) (.*)$`, 's').exec(r.text);
      if (!m) throw new Error(`cannot parse ${r.text}`);
      const raw = m[2]!.replace(/\{\d+\}\r\n.*$/s, '');
      return { name: listName(m[2]!, r.literals[0]), noselect: /\\Noselect|\\NonExistent/i.test(m[1]!), raw };
    });
}

async function dovecotMailbox(imap: RawImap, name: string): Promise<SeenMailbox> {
  const status = ok(await imap.command(`STATUS ${q(name)} (UIDVALIDITY UIDNEXT MESSAGES)`), `STATUS ${name}`);
  const line = status.untagged.find((r) => r.text.startsWith('* STATUS'))!.text;
  const num = (key: string): number => Number(new RegExp(`${key} (\\d+)`).exec(line)![1]);
  ok(await imap.command(`EXAMINE ${q(name)}`), `EXAMINE ${name}`);
  const fetched = ok(await imap.command('UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])'), `FETCH ${name}`);
  const list = fetched.untagged
    .filter((r) => / FETCH \(/.test(r.text))
    .map((r) => ({
      uid: Number(/UID (\d+)/.exec(r.text)![1]),
      flags: sortFlags(/FLAGS \(([^)]*)\)/.exec(r.text)![1]!.split(' ').filter((f) => f !== '')),
      size: Number(/RFC822\.SIZE (\d+)/.exec(r.text)![1]),
      internalDate: parseInternalDate(/INTERNALDATE "([^"]+)"/.exec(r.text)![1]!),
      body: r.literals[0]!.toString('latin1'),
    }))
    .sort((a, b) => a.uid - b.uid);
  ok(await imap.command('CLOSE'), 'CLOSE');
  return { uidValidity: num('UIDVALIDITY'), uidNext: num('UIDNEXT'), messages: num('MESSAGES'), list };
}

/** Everything Dovecot says about a user, over a fresh IMAP session. */
async function dovecotView(dovecot: RunningDovecot, user: string): Promise<SeenUser> {
  const imap = await connectImap({ port: dovecot.ports.imap });
  try {
    await imap.login(user, `${user}-password`);
    const listed = await dovecotList(imap, 'LIST');
    const names = Object.fromEntries(listed.map((e) => [e.name, e.noselect]));
    const subscribed = (await dovecotList(imap, 'LSUB')).map((e) => e.name).sort();
    const mailboxes: Record<string, SeenMailbox> = {};
    for (const e of listed) if (!e.noselect) mailboxes[e.name] = await dovecotMailbox(imap, e.name);
    await imap.logout();
    return { names, subscribed, mailboxes };
  } catch (error) {
    imap.close();
    throw error;
  }
}

/** Everything our store says about a user (a fresh store on the same root, so nothing is cached). */
async function ourView(root: string, user: string): Promise<SeenUser> {
  await using store = createMaildirStore({ root, fsync: false });
  const u = await store.user(user);
  const listed = await u.list();
  const names = Object.fromEntries(listed.map((e) => [e.name, !e.selectable]));
  const subscribed = listed
    .filter((e) => e.subscribed)
    .map((e) => e.name)
    .sort();
  const mailboxes: Record<string, SeenMailbox> = {};
  for (const e of listed) {
    if (!e.selectable) continue;
    const status = await u.status(e.name);
    await using box = await u.open(e.name, { readOnly: true });
    const list: Seen[] = [];
    const dates = await box.internalDates(box.messages().map((m) => m.uid));
    for (const [k, m] of box.messages().entries()) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of box.read(m.uid)) chunks.push(chunk);
      list.push({ uid: m.uid, flags: sortFlags(m.flags), size: m.size, internalDate: Math.floor(dates[k]! / 1000) * 1000, body: crlf(Buffer.concat(chunks)) });
    }
    mailboxes[e.name] = { uidValidity: status.uidValidity, uidNext: status.uidNext, messages: status.messages, list };
  }
  return { names, subscribed, mailboxes };
}

/** APPENDUID's UID from a tagged APPEND reply. */
function appendUid(result: ImapResult): number {
  const m = /\[APPENDUID (\d+) (\d+)\]/.exec(ok(result, 'APPEND').text);
  if (!m) throw new Error(`no APPENDUID in ${result.text}`);
  return Number(m[2]);
}

async function uidFlags(imap: RawImap): Promise<Record<number, string[]>> {
  const fetched = ok(await imap.command('UID FETCH 1:* (UID FLAGS)'), 'UID FETCH');
  return Object.fromEntries(
    fetched.untagged
      .filter((r) => / FETCH \(/.test(r.text))
      .map((r) => [Number(/UID (\d+)/.exec(r.text)![1]), sortFlags(/FLAGS \(([^)]*)\)/.exec(r.text)![1]!.split(' ').filter((f) => f !== ''))]),
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

const CRLF_MESSAGE = Buffer.from('From: a@example.test\r\nTo: b@example.test\r\nSubject: crlf\r\nMessage-ID: <1@example.test>\r\n\r\nHello\r\n.dot line\r\n');
const LF_MESSAGE = Buffer.from('From: a@example.test\nSubject: bare LF\n\nline 1\nline 2\n');
const EIGHT_BIT = Buffer.from('From: a@example.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCafé, Été, 日本語\r\n');
const msg = (n: string): Buffer => Buffer.from(`From: x@example.test\r\nSubject: ${n}\r\n\r\nbody ${n}\r\n`);

describe.skipIf(!peer.available)('Maildir backend against Dovecot 2.3', () => {
  let dovecot: RunningDovecot;
  let root: string;
  const stores: MailStore[] = [];
  const ourStore = (): MailStore => {
    const s = createMaildirStore({ root, fsync: false });
    stores.push(s);
    return s;
  };
  /** Our store wrote as our uid: give the user's tree back to Dovecot's. */
  const handBack = (user: string): Promise<void> => dovecot.chownForDovecot(join(root, user));

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: USERS,
      protocols: ['imap', 'lmtp'],
      mailFsync: 'never',
      extraConfig: ['namespace inbox {', '  inbox = yes', '  separator = /', '}'],
    });
    root = dovecot.mailRoot;
  }, 30_000);

  afterAll(async () => {
    for (const s of stores) await s.close();
    await dovecot?.stop();
  });

  const withLogs = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (error) {
      console.error(dovecot.logs());
      throw error;
    }
  };

  it('serves a Maildir written by our store with the same UIDs, flags, keywords, names, subscriptions and bytes', () =>
    withLogs(async () => {
      const store = ourStore();
      await store.createUser('alice'); // INBOX, Drafts, Sent, Trash, Junk, Archive — subscribed
      const alice = await store.user('alice');
      await alice.create('Work/2024', { subscribe: true });
      await alice.create('Été', { subscribe: true });
      await alice.create('Café/Sub', { subscribe: true });
      await alice.create('R&D');
      await alice.setSubscribed('Junk', false);

      const date = Date.UTC(2024, 0, 2, 3, 4, 5);
      const d1 = await store.deliver({ user: 'alice', body: CRLF_MESSAGE, flags: ['\\Flagged', '$Label1'], internalDate: date });
      const d2 = await store.deliver({ user: 'alice', body: LF_MESSAGE }); // no flags: stays in new/
      const d3 = await store.deliver({ user: 'alice', body: EIGHT_BIT, flags: ['\\Seen'] });
      const d4 = await store.deliver({ user: 'alice', body: msg('to expunge') });
      expect([d1.uid, d2.uid, d3.uid, d4.uid]).toEqual([1, 2, 3, 4]);
      {
        await using inbox = await alice.open('INBOX');
        await inbox.setFlags([1], { mode: 'add', flags: ['\\Seen', 'Work'] });
        await inbox.setFlags([3], { mode: 'add', flags: ['\\Answered', '\\Draft', 'Project-X'] });
        await inbox.setFlags([1], { mode: 'remove', flags: ['$Label1'] });
        await inbox.setFlags([4], { mode: 'add', flags: ['\\Deleted'] });
        expect(await inbox.expunge()).toEqual([4]);
      }
      expect((await store.deliver({ user: 'alice', body: msg('after expunge') })).uid).toBe(5);
      await store.deliver({ user: 'alice', mailbox: 'Work/2024', body: msg('nested'), flags: ['Later', '\\Flagged'] });
      await store.deliver({ user: 'alice', mailbox: 'Été', body: EIGHT_BIT });
      await store.deliver({ user: 'alice', mailbox: 'R&D', body: msg('ampersand'), flags: ['$Forwarded'] });
      await handBack('alice');

      const ours = await ourView(root, 'alice');
      const theirs = await dovecotView(dovecot, 'alice');
      expect(theirs.names).toEqual(ours.names);
      expect(theirs.names).toMatchObject({ INBOX: false, Work: true, 'Work/2024': false, Été: false, Café: true, 'Café/Sub': false, 'R&D': false });
      expect(theirs.subscribed).toEqual(ours.subscribed);
      expect(theirs.subscribed).toEqual(['Archive', 'Café/Sub', 'Drafts', 'INBOX', 'Sent', 'Trash', 'Work/2024', 'Été'].sort());
      expect(theirs.mailboxes).toEqual(ours.mailboxes);
      const inbox = theirs.mailboxes['INBOX']!;
      expect(inbox.list.map((m) => [m.uid, m.flags])).toEqual([
        [1, ['\\Flagged', '\\Seen', 'Work']],
        [2, []],
        [3, ['\\Answered', '\\Draft', '\\Seen', 'Project-X']],
        [5, []],
      ]);
      expect(inbox.uidNext).toBe(6);
      expect(inbox.list[0]!.body).toBe(CRLF_MESSAGE.toString('latin1'));
      expect(inbox.list[0]!.internalDate).toBe(date);
      expect(inbox.list[1]!.size).toBe(crlf(LF_MESSAGE).length);
      expect(inbox.list[2]!.body).toBe(EIGHT_BIT.toString('latin1'));

      // Dovecot looked (and indexed, and may have moved new/ to cur/): we still see the same, and so does it.
      await handBack('alice');
      expect(await ourView(root, 'alice')).toEqual(ours);
      await handBack('alice');
      expect(await dovecotView(dovecot, 'alice')).toEqual(theirs);

      // Our subscriptions file is in Dovecot's spelling (modified UTF-7 levels), so Dovecot can remove
      // what we added: it looks for the exact line. (It would also list raw UTF-8, but never unsubscribe it.)
      const subscriptions = await readFile(join(dovecot.maildir('alice'), 'subscriptions'), 'utf8');
      expect(subscriptions.split('\n')).toEqual(expect.arrayContaining(['&AMk-t&AOk-', 'Caf&AOk-\tSub', 'Work\t2024']));
      const imap = await connectImap({ port: dovecot.ports.imap });
      await imap.login('alice', 'alice-password');
      ok(await imap.command(`UNSUBSCRIBE ${q('Été')}`), 'UNSUBSCRIBE');
      ok(await imap.command(`UNSUBSCRIBE ${q('Café/Sub')}`), 'UNSUBSCRIBE');
      expect((await dovecotList(imap, 'LSUB')).map((e) => e.name)).not.toContain('Été');
      await imap.logout();
      expect((await ourView(root, 'alice')).subscribed).toEqual(['Archive', 'Drafts', 'INBOX', 'Sent', 'Trash', 'Work/2024']);
    }));

  it('reads a Maildir written by Dovecot (IMAP and LMTP) with the same UIDs, flags, keywords, names and subscriptions', () =>
    withLogs(async () => {
      const imap = await connectImap({ port: dovecot.ports.imap });
      await imap.login('bob', 'bob-password');
      for (const name of ['Work/2024', 'Été', 'Café/Sub', 'R&D', 'Old']) ok(await imap.command(`CREATE ${q(name)}`), `CREATE ${name}`);
      for (const name of ['INBOX', 'Work/2024', 'Été', 'Café/Sub', 'R&D', 'Old']) ok(await imap.command(`SUBSCRIBE ${q(name)}`), `SUBSCRIBE ${name}`);
      ok(await imap.command(`UNSUBSCRIBE ${q('Old')}`), 'UNSUBSCRIBE');
      const date = 'Tue, 02 Jan 2024 03:04:05 +0000';
      const uids = [
        appendUid(await imap.command(['APPEND INBOX (\\Seen $Label1) "02-Jan-2024 03:04:05 +0000" ', CRLF_MESSAGE])),
        appendUid(await imap.command(['APPEND INBOX () ', msg('two')])),
        appendUid(await imap.command(['APPEND INBOX (\\Flagged Foo) ', EIGHT_BIT])),
        appendUid(await imap.command(['APPEND INBOX () ', msg('four')])),
      ];
      expect(uids).toEqual([1, 2, 3, 4]);
      appendUid(await imap.command([`APPEND ${q('Work/2024')} (Later \\Answered) `, msg('nested')]));
      appendUid(await imap.command([`APPEND ${q('Été')} (\\Draft) `, EIGHT_BIT]));
      appendUid(await imap.command([`APPEND ${q('R&D')} ($Forwarded) `, msg('ampersand')]));
      await imap.select('INBOX');
      ok(await imap.command('UID STORE 2 +FLAGS (\\Answered Bar)'), 'STORE');
      ok(await imap.command('UID STORE 1 -FLAGS ($Label1)'), 'STORE');
      ok(await imap.command('UID STORE 4 +FLAGS (\\Deleted)'), 'STORE');
      ok(await imap.command('EXPUNGE'), 'EXPUNGE');
      await imap.logout();
      const replies = await deliverLmtp(dovecot, ['bob'], LF_MESSAGE);
      expect(replies.map((r) => r.code)).toEqual([250]);

      const theirs = await dovecotView(dovecot, 'bob');
      // Dovecot's own spelling in its subscriptions file: modified UTF-7 levels, TAB between levels.
      const subscriptions = await readFile(join(dovecot.maildir('bob'), 'subscriptions'), 'utf8');
      expect(subscriptions).toContain('\n&AMk-t&AOk-\n');
      expect(subscriptions).toContain('\nCaf&AOk-\tSub\n');
      expect(subscriptions).toContain('\nR&-D\n');

      const ours = await ourView(root, 'bob');
      expect(ours.names).toEqual(theirs.names);
      expect(ours.subscribed).toEqual(theirs.subscribed);
      expect(ours.subscribed).toEqual(['Café/Sub', 'INBOX', 'R&D', 'Work/2024', 'Été'].sort());
      expect(ours.mailboxes).toEqual(theirs.mailboxes);
      const inbox = ours.mailboxes['INBOX']!;
      expect(inbox.list.map((m) => [m.uid, m.flags])).toEqual([
        [1, ['\\Seen']],
        [2, ['\\Answered', 'Bar']],
        [3, ['\\Flagged', 'Foo']],
        [5, []],
      ]);
      expect(inbox.uidNext).toBe(6);
      expect(inbox.list[0]!.internalDate).toBe(Date.parse(date));
      expect(inbox.list[2]!.body).toBe(EIGHT_BIT.toString('latin1'));

      // Our store synced (moved LMTP's new/ file to cur/, wrote the uidlist): Dovecot still agrees.
      await handBack('bob');
      expect(await dovecotView(dovecot, 'bob')).toEqual(theirs);

      // Subscriptions changed by us are read by Dovecot, in its own encoding.
      const store = ourStore();
      const bob = await store.user('bob');
      await bob.setSubscribed('Été', false);
      await bob.setSubscribed('Old', true);
      await bob.create('Ünïcode/Ñested', { subscribe: true });
      await handBack('bob');
      const after = await dovecotView(dovecot, 'bob');
      expect(after.subscribed).toEqual(['Café/Sub', 'INBOX', 'Old', 'R&D', 'Work/2024', 'Ünïcode/Ñested'].sort());
      expect(after.names).toMatchObject({ Ünïcode: true, 'Ünïcode/Ñested': false });
    }));

  it('agrees on UIDs and flags when Dovecot and our store change the same Maildir in turn', () =>
    withLogs(async () => {
      const store = ourStore();
      await store.createUser('carol', { mailboxes: [{ name: 'Lists/Node', specialUse: '\\Archive' }] });
      const carol = await store.user('carol');
      const inboxUidValidity = (await carol.status('INBOX')).uidValidity;
      const given: number[] = [];
      given.push((await store.deliver({ user: 'carol', body: msg('ours 1') })).uid);
      await handBack('carol');

      // A Dovecot session that stays open through all the steps below.
      const imap = await connectImap({ port: dovecot.ports.imap });
      await imap.login('carol', 'carol-password');
      const selected = await imap.select('INBOX');
      expect(selected.untagged.some((r) => r.text.includes(`[UIDVALIDITY ${inboxUidValidity}]`))).toBe(true);
      given.push(appendUid(await imap.command(['APPEND INBOX () ', msg('dovecot 2')])));
      ok(await imap.command('UID STORE 1 +FLAGS (\\Seen DovKw)'), 'STORE');
      await deliverLmtp(dovecot, ['carol'], msg('lmtp 3'));

      // Ours: a new message and a new keyword, within the second Dovecot wrote dovecot-keywords.
      given.push((await store.deliver({ user: 'carol', body: msg('ours 4') })).uid);
      {
        await using inbox = await carol.open('INBOX');
        await inbox.setFlags([2], { mode: 'add', flags: ['\\Flagged', 'OurKw'] });
        await inbox.setFlags([1], { mode: 'add', flags: ['\\Answered'] });
      }
      await handBack('carol');

      ok(await imap.command('NOOP'), 'NOOP');
      expect(await uidFlags(imap)).toEqual({ 1: ['\\Answered', '\\Seen', 'DovKw'], 2: ['\\Flagged', 'OurKw'], 3: [], 4: [] });
      // Dovecot adds a keyword of its own after ours: it must take a new letter, not OurKw's.
      ok(await imap.command('UID STORE 3 +FLAGS (DovKw2)'), 'STORE');
      ok(await imap.command('UID STORE 4 +FLAGS (\\Deleted)'), 'STORE');
      ok(await imap.command('EXPUNGE'), 'EXPUNGE');

      // Ours: UID 4 is gone and never comes back.
      given.push((await store.deliver({ user: 'carol', body: msg('ours 5') })).uid);
      {
        await using inbox = await carol.open('INBOX');
        expect(inbox.messages().map((m) => [m.uid, sortFlags(m.flags)])).toEqual([
          [1, ['\\Answered', '\\Seen', 'DovKw']],
          [2, ['\\Flagged', 'OurKw']],
          [3, ['DovKw2']],
          [5, []],
        ]);
        await inbox.setFlags([3], { mode: 'add', flags: ['OurKw2', '\\Deleted'] });
        expect(await inbox.expunge()).toEqual([3]);
      }
      await handBack('carol');

      ok(await imap.command('NOOP'), 'NOOP');
      given.push(appendUid(await imap.command(['APPEND INBOX (OurKw) ', msg('dovecot 6')])));
      await deliverLmtp(dovecot, ['carol'], msg('lmtp 7'));
      given.push((await store.deliver({ user: 'carol', body: msg('ours 8'), flags: ['DovKw2'] })).uid);
      await handBack('carol');
      ok(await imap.command('NOOP'), 'NOOP');
      expect(await uidFlags(imap)).toEqual({ 1: ['\\Answered', '\\Seen', 'DovKw'], 2: ['\\Flagged', 'OurKw'], 5: [], 6: ['OurKw'], 7: [], 8: ['DovKw2'] });
      await imap.logout();

      expect(given).toEqual([1, 2, 4, 5, 6, 8]);
      const ours = await ourView(root, 'carol');
      await handBack('carol');
      const theirs = await dovecotView(dovecot, 'carol');
      expect(theirs).toEqual(ours);
      expect(theirs.mailboxes['INBOX']).toMatchObject({ uidValidity: inboxUidValidity, uidNext: 9, messages: 6 });
      const keywords = (await readFile(join(dovecot.maildir('carol'), 'dovecot-keywords'), 'utf8')).trim().split('\n');
      expect(keywords.map((l) => l.split(' ')[1]).sort()).toEqual(['DovKw', 'DovKw2', 'OurKw', 'OurKw2']);
      expect(new Set(keywords.map((l) => l.split(' ')[0])).size).toBe(4);
    }));

  it('gives dovecot-keywords a later mtime on every rewrite, so an open Dovecot session re-reads it', () =>
    withLogs(async () => {
      // Dovecot re-reads dovecot-keywords only when its st_mtime (whole seconds) differs from the one it last
      // read, and bumps the mtime of its own rewrites ("mtime must grow every time"). Two keywords added by
      // Dovecot within one second leave the file dated one second ahead; a rewrite of ours in that second
      // must still look newer, or Dovecot names our letter "unknown-N" and writes that name over ours.
      const store = ourStore();
      await store.createUser('erin', { mailboxes: [] });
      for (const n of ['1', '2']) await store.deliver({ user: 'erin', body: msg(n) });
      await handBack('erin');
      const keywordsPath = join(dovecot.maildir('erin'), 'dovecot-keywords');

      const imap = await connectImap({ port: dovecot.ports.imap });
      await imap.login('erin', 'erin-password');
      await imap.select('INBOX');
      await sleep(1000 - (Date.now() % 1000) + 20); // both STOREs within one second
      ok(await imap.command('UID STORE 1 +FLAGS (K1)'), 'STORE');
      ok(await imap.command('UID STORE 1 +FLAGS (K2)'), 'STORE');
      const dovecotMtime = (await stat(keywordsPath)).mtimeMs;
      if (dovecotMtime > Date.now()) await sleep(dovecotMtime - Date.now() + 20); // into the second Dovecot dated its file

      const erin = await store.user('erin');
      {
        await using inbox = await erin.open('INBOX');
        await inbox.setFlags([2], { mode: 'add', flags: ['OurKw'] });
      }
      expect(Math.floor((await stat(keywordsPath)).mtimeMs / 1000)).toBeGreaterThan(Math.floor(dovecotMtime / 1000));
      await handBack('erin');
      ok(await imap.command('NOOP'), 'NOOP');
      expect(await uidFlags(imap)).toEqual({ 1: ['K1', 'K2'], 2: ['OurKw'] });
      await imap.logout();
      expect(await readFile(keywordsPath, 'utf8')).toBe('0 K1\n1 K2\n2 OurKw\n');
    }));

  it('makes Dovecot wait for our dovecot-uidlist.lock, and waits for a lock Dovecot holds', () =>
    withLogs(async () => {
      const store = ourStore();
      await store.createUser('dave', { mailboxes: [] });
      await store.deliver({ user: 'dave', body: msg('1') });
      await handBack('dave');
      const maildir = dovecot.maildir('dave');
      const lockPath = join(maildir, 'dovecot-uidlist.lock');

      // Our lock (the one every change of our store takes): Dovecot's APPEND waits until it is released.
      const imap = await connectImap({ port: dovecot.ports.imap, timeoutMs: 20_000 });
      await imap.login('dave', 'dave-password');
      const lock = await acquireDotlock(lockPath, { clock: systemClock, protects: join(maildir, 'dovecot-uidlist'), staleTimeoutMs: 120_000, timeoutMs: 1000 });
      const append = imap.command(['APPEND INBOX () ', msg('2')]);
      expect(await settlesWithin(append, 1500)).toBe(false);
      await lock.release();
      expect(appendUid(await append)).toBe(2);
      await imap.logout();

      // A lock in Dovecot's format, naming a live Dovecot process on this host: our delivery waits for it.
      await writeFile(lockPath, `${dovecot.pid}:${hostname()}`);
      const delivery = store.deliver({ user: 'dave', body: msg('3') });
      expect(await settlesWithin(delivery, 1500)).toBe(false);
      await rm(lockPath);
      expect((await delivery).uid).toBe(3);
      await handBack('dave');
      expect((await dovecotView(dovecot, 'dave')).mailboxes['INBOX']!.list.map((m) => m.uid)).toEqual([1, 2, 3]);
    }));
});
