/**
 * The conformance suite every `MailStore` backend must pass: memory,
 * Maildir, and users' own (PostgreSQL, …). The test framework is injected
 * (`t`), so this package does not depend on vitest: pass vitest's
 * `{ describe, it, expect, beforeEach, afterEach }` (or any framework with
 * the same shapes).
 */
import { createHash } from 'node:crypto';
import { imapBodyStructure } from '@pigeonpost/mime';
import type { StoreLimits } from '../limits.js';
import type { MailStore, MessageSource, StoreChange, UserMailStore } from '../types.js';

/** One assertion, the subset of vitest/jest matchers the suite uses. */
export interface ConformanceAssertion {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toBeGreaterThan(expected: number): void;
  toBeGreaterThanOrEqual(expected: number): void;
  toBeLessThanOrEqual(expected: number): void;
  toHaveLength(expected: number): void;
  toContain(expected: unknown): void;
  toBeUndefined(): void;
  readonly not: ConformanceAssertion;
}

/** The test framework, injected: vitest's or jest's functions fit. */
export interface ConformanceTestApi {
  readonly describe: (name: string, body: () => void) => void;
  readonly it: (name: string, body: () => Promise<void>, timeout?: number) => void;
  readonly expect: (actual: unknown) => ConformanceAssertion;
  readonly beforeEach: (hook: () => Promise<void>) => void;
  readonly afterEach: (hook: () => Promise<void>) => void;
}

/** A clock the suite can move (a `VirtualClock` from `@pigeonpost/wire/testing` fits). */
export interface ConformanceClock {
  now(): number;
  advance(ms: number): void;
}

export interface ConformanceCreateOptions {
  /** Limits for this store; omitted ones take the defaults. */
  readonly limits?: Partial<StoreLimits>;
}

/** A store made for one test. */
export interface ConformanceInstance {
  readonly store: MailStore;
  /** The store's clock, when the test can move it: then INTERNALDATE defaults are checked against it. */
  readonly clock?: ConformanceClock;
  /** Persistent backends: close `store` and open a new store over the same data. */
  reopen?(): Promise<MailStore>;
  /** Remove everything the instance made (temp folders, databases). The suite closes stores itself. */
  cleanup(): Promise<void>;
}

export interface ConformanceCapabilities {
  /** `create()` honours `options.limits` (needed by the limit tests). Default true. */
  readonly limits?: boolean;
  /** The store outlives `close()`: `reopen()` is provided and checked. Default false. */
  readonly persistent?: boolean;
  /** Run the 5 MB streamed-message test. Default true. */
  readonly largeMessages?: boolean;
}

export interface ConformanceSubject {
  readonly name: string;
  create(options: ConformanceCreateOptions): Promise<ConformanceInstance>;
  readonly capabilities?: ConformanceCapabilities;
}

// ---------------------------------------------------------------------------
// Helpers

const USER = 'alice@example.org';

/** A small RFC 5322 message with CRLF line ends. */
function message(subject: string, body = 'Hello.\r\n'): Buffer {
  return Buffer.from(`From: Bob <bob@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.org>\r\n\r\n${body}`);
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function caught(work: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (error) {
    return error;
  }
  return undefined;
}

function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : error === undefined ? 'resolved' : error;
}

/** Next change of a watch, or 'timeout' after `ms` (real time: notifications may cross processes). */
async function nextChange(iterator: AsyncIterator<StoreChange>, ms = 2000): Promise<StoreChange | 'timeout' | 'done'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    const result = await Promise.race([iterator.next(), timeout]);
    if (result === 'timeout') return result;
    return result.done === true ? 'done' : result.value;
  } finally {
    clearTimeout(timer);
  }
}

/** Read changes until one matches, ignoring others (a backend may send more hints than asked). */
async function waitFor(iterator: AsyncIterator<StoreChange>, match: (c: StoreChange) => boolean): Promise<StoreChange | undefined> {
  for (let i = 0; i < 50; i++) {
    const change = await nextChange(iterator);
    if (change === 'timeout' || change === 'done') return undefined;
    if (match(change)) return change;
  }
  return undefined;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---------------------------------------------------------------------------

/** Flags as a set: the interface does not promise an order (Maildir keeps flags as sorted letters). */
function unordered(flags: readonly string[] | undefined): string[] | undefined {
  return flags === undefined ? undefined : [...flags].sort();
}

/** Define the conformance tests of one backend. */
export function defineStoreConformance(subject: ConformanceSubject, t: ConformanceTestApi): void {
  const { describe, it, expect, beforeEach, afterEach } = t;
  const caps = { limits: true, persistent: false, largeMessages: true, ...subject.capabilities };

  let instance: ConformanceInstance;
  let store: MailStore;
  let extra: ConformanceInstance[] = [];

  const fresh = async (limits: Partial<StoreLimits>): Promise<MailStore> => {
    const other = await subject.create({ limits });
    extra.push(other);
    await other.store.createUser(USER);
    return other.store;
  };

  const expectCode = async (work: Promise<unknown> | (() => unknown), code: string): Promise<void> => {
    expect(codeOf(await caught(work))).toBe(code);
  };

  const alice = (): Promise<UserMailStore> => store.user(USER);

  const appendTo = async (mailbox: string, subject_: string, flags: readonly string[] = []): Promise<number> => {
    const user = await alice();
    return (await user.append(mailbox, message(subject_), { flags })).uid;
  };

  const itCaps = (needed: boolean, name: string, body: () => Promise<void>, timeout?: number): void => {
    if (needed) it(name, body, timeout);
  };

  describe(`mailbox store conformance: ${subject.name}`, () => {
    beforeEach(async () => {
      extra = [];
      instance = await subject.create({});
      store = instance.store;
      await store.createUser(USER);
    });

    afterEach(async () => {
      for (const i of [instance, ...extra]) {
        await i.store.close();
        await i.cleanup();
      }
      // reopen() may have replaced the store.
      await store.close();
    });

    // -----------------------------------------------------------------------
    describe('users', () => {
      it('creates, lists and finds users', async () => {
        await store.createUser('bob@example.org');
        expect(await store.hasUser('bob@example.org')).toBe(true);
        expect(await store.hasUser('carol@example.org')).toBe(false);
        expect(await store.listUsers()).toEqual([USER, 'bob@example.org'].sort());
        expect((await store.user('bob@example.org')).user).toBe('bob@example.org');
      });

      it('refuses a second createUser with ERR_STORE_USER_EXISTS', async () => {
        await expectCode(store.createUser(USER), 'ERR_STORE_USER_EXISTS');
      });

      it('rejects user() of a missing user with ERR_STORE_NO_SUCH_USER', async () => {
        await expectCode(store.user('nobody@example.org'), 'ERR_STORE_NO_SUCH_USER');
      });

      it('deletes a user and everything it had', async () => {
        const user = await alice();
        await user.append('INBOX', message('gone'));
        await store.deleteUser(USER);
        expect(await store.hasUser(USER)).toBe(false);
        await expectCode(user.status('INBOX'), 'ERR_STORE_NO_SUCH_USER');
        await store.createUser(USER);
        expect((await (await alice()).status('INBOX')).messages).toBe(0);
      });

      it('rejects deleteUser of a missing user with ERR_STORE_NO_SUCH_USER', async () => {
        await expectCode(store.deleteUser('nobody@example.org'), 'ERR_STORE_NO_SUCH_USER');
      });

      for (const bad of ['', '.', '..', '../etc', 'a/b', 'a\\b', 'a\u0000b', 'a\nb']) {
        it(`refuses the user name ${JSON.stringify(bad)} with ERR_STORE_INVALID_NAME`, async () => {
          await expectCode(store.createUser(bad), 'ERR_STORE_INVALID_NAME');
        });
      }

      it('creates the mailboxes given in CreateUserOptions instead of the defaults', async () => {
        await store.createUser('bob@example.org', { mailboxes: [{ name: 'Sent Items', specialUse: '\\Sent' }] });
        const list = await (await store.user('bob@example.org')).list();
        expect(list.map((e) => e.name).sort()).toEqual(['INBOX', 'Sent Items']);
        expect(list.find((e) => e.name === 'Sent Items')?.specialUse).toEqual(['\\Sent']);
      });

      it('takes the quota given in CreateUserOptions', async () => {
        await store.createUser('bob@example.org', { quota: { storage: 1000, messages: 5 } });
        expect((await (await store.user('bob@example.org')).quota()).limits).toEqual({ storage: 1000, messages: 5 });
      });
    });

    // -----------------------------------------------------------------------
    describe('default mailboxes', () => {
      it('has INBOX and the special-use mailboxes, all subscribed and selectable', async () => {
        const list = await (await alice()).list();
        expect(list.map((e) => e.name).sort()).toEqual(['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
        for (const entry of list) {
          expect(entry.subscribed).toBe(true);
          expect(entry.selectable).toBe(true);
          expect(entry.hasChildren).toBe(false);
        }
        expect(new Set(list.map((e) => e.id)).size).toBe(list.length);
      });

      for (const [name, use] of [
        ['Drafts', '\\Drafts'],
        ['Sent', '\\Sent'],
        ['Trash', '\\Trash'],
        ['Junk', '\\Junk'],
        ['Archive', '\\Archive'],
      ] as const) {
        it(`marks ${name} as ${use}`, async () => {
          const entry = (await (await alice()).list()).find((e) => e.name === name);
          expect(entry?.specialUse).toEqual([use]);
        });
      }

      it('treats INBOX case-insensitively', async () => {
        const user = await alice();
        const status = await user.status('inbox');
        expect(status.name).toBe('INBOX');
        expect(status.id).toBe((await user.status('InBoX')).id);
        await user.append('iNbOx', message('case'));
        expect((await user.status('INBOX')).messages).toBe(1);
      });

      it('keeps mailbox ids stable between calls', async () => {
        const user = await alice();
        expect((await user.list()).map((e) => e.id)).toEqual((await user.list()).map((e) => e.id));
        expect((await user.status('Sent')).id).toBe((await user.list()).find((e) => e.name === 'Sent')?.id);
      });
    });

    // -----------------------------------------------------------------------
    describe('invalid mailbox names', () => {
      const cases: readonly (readonly [string, () => string])[] = [
        ['..', () => '..'],
        ['a level ..', () => 'a/../b'],
        ['a level .', () => 'a/./b'],
        ['a leading /', () => '/etc'],
        ['a leading ~', () => '~root'],
        ['cur', () => 'cur'],
        ['new', () => 'new'],
        ['tmp', () => 'tmp'],
        ['a level tmp', () => 'Work/tmp'],
        ['NUL', () => 'a\u0000b'],
        ['CR LF', () => 'a\r\nb'],
        ['a control character', () => 'a\u0001b'],
        ['DEL', () => 'a\u007fb'],
        ['a C1 control', () => 'a\u0085b'],
        ['%', () => 'a%b'],
        ['*', () => 'a*b'],
        ['the empty name', () => ''],
        ['an empty level', () => 'a//b'],
        ['a trailing /', () => 'a/'],
        ['more than maxMailboxNameBytes', () => 'x'.repeat(256)],
        ['more than maxMailboxDepth levels', () => Array.from({ length: 17 }, (_, i) => `l${i}`).join('/')],
        ['a level with outer white space', () => ' a'],
      ];
      it('accepts ordinary names that only resemble Maildir folders in another case (New, Tmp, Work/Cur)', async () => {
        const user = await alice();
        for (const name of ['New', 'Tmp', 'Work/Cur']) await user.create(name);
        const names = (await user.list()).map((m) => m.name);
        for (const name of ['New', 'Tmp', 'Work/Cur']) expect(names).toContain(name);
      });
      for (const [what, name] of cases) {
        it(`refuses ${what} with ERR_STORE_INVALID_NAME`, async () => {
          const user = await alice();
          await expectCode(user.create(name()), 'ERR_STORE_INVALID_NAME');
        });
      }

      it('refuses invalid names in open, status, append, rename, deliver and watch too', async () => {
        const user = await alice();
        await expectCode(user.open('../x'), 'ERR_STORE_INVALID_NAME');
        await expectCode(user.status('cur'), 'ERR_STORE_INVALID_NAME');
        await expectCode(user.append('a//b', message('x')), 'ERR_STORE_INVALID_NAME');
        await expectCode(user.rename('Sent', '/abs'), 'ERR_STORE_INVALID_NAME');
        await expectCode(store.deliver({ user: USER, mailbox: '~x', body: message('x') }), 'ERR_STORE_INVALID_NAME');
        await expectCode(async () => {
          for await (const _ of user.watch({ mailbox: 'a\u0000' })) break;
        }, 'ERR_STORE_INVALID_NAME');
      });

      it('accepts the longest and deepest names within the limits, and Unicode', async () => {
        const user = await alice();
        // Not 255 exactly: a backend's layout may take a few bytes of the name (Maildir++ adds a dot).
        await user.create('x'.repeat(200));
        await user.create(Array.from({ length: 16 }, (_, i) => `l${i}`).join('/'));
        await user.create('Reçus/日本語');
        expect((await user.status('Reçus/日本語')).messages).toBe(0);
      });
    });

    // -----------------------------------------------------------------------
    describe('create, delete, rename, subscribe', () => {
      it('creates a mailbox, unsubscribed and without special use by default', async () => {
        const user = await alice();
        const entry = await user.create('Work');
        expect(entry).toEqual({ id: entry.id, name: 'Work', specialUse: [], subscribed: false, selectable: true, hasChildren: false });
        expect((await user.list()).find((e) => e.name === 'Work')).toEqual(entry);
      });

      it('creates with subscribe and special use', async () => {
        const user = await alice();
        const entry = await user.create('All Mail', { subscribe: true, specialUse: ['\\All'] });
        expect(entry.subscribed).toBe(true);
        expect(entry.specialUse).toEqual(['\\All']);
      });

      it('refuses to create an existing mailbox (and INBOX in any case) with ERR_STORE_MAILBOX_EXISTS', async () => {
        const user = await alice();
        await expectCode(user.create('Sent'), 'ERR_STORE_MAILBOX_EXISTS');
        await expectCode(user.create('inbox'), 'ERR_STORE_MAILBOX_EXISTS');
      });

      it('lists missing superior levels as not selectable, with children', async () => {
        const user = await alice();
        await user.create('a/b/c');
        const list = await user.list();
        const get = (n: string) => list.find((e) => e.name === n);
        expect(get('a')?.selectable).toBe(false);
        expect(get('a')?.hasChildren).toBe(true);
        expect(get('a/b')?.selectable).toBe(false);
        expect(get('a/b')?.hasChildren).toBe(true);
        expect(get('a/b/c')?.selectable).toBe(true);
        expect(get('a/b/c')?.hasChildren).toBe(false);
        await expectCode(user.status('a'), 'ERR_STORE_NO_SUCH_MAILBOX');
        await expectCode(user.open('a/b'), 'ERR_STORE_NO_SUCH_MAILBOX');
      });

      it('makes a superior level selectable when it is created', async () => {
        const user = await alice();
        await user.create('a/b');
        const created = await user.create('a');
        expect(created.selectable).toBe(true);
        expect(created.hasChildren).toBe(true);
      });

      it('allows mailboxes under INBOX', async () => {
        const user = await alice();
        await user.create('inbox/Lists');
        expect((await user.list()).find((e) => e.name === 'INBOX')?.hasChildren).toBe(true);
        expect((await user.status('INBOX/Lists')).name).toBe('INBOX/Lists');
      });

      it('deletes a mailbox and its messages; a new one of that name has a new UIDVALIDITY', async () => {
        const user = await alice();
        await user.create('Tmp1');
        await user.append('Tmp1', message('one'));
        const before = await user.status('Tmp1');
        await user.delete('Tmp1');
        expect((await user.list()).some((e) => e.name === 'Tmp1')).toBe(false);
        await expectCode(user.status('Tmp1'), 'ERR_STORE_NO_SUCH_MAILBOX');
        await user.create('Tmp1');
        const after = await user.status('Tmp1');
        expect(after.messages).toBe(0);
        expect(after.uidValidity).not.toBe(before.uidValidity);
        expect(after.id).not.toBe(before.id);
        expect((await user.quota()).messages).toBe(0);
      });

      it('refuses to delete INBOX with ERR_STORE_CANNOT_DELETE', async () => {
        await expectCode((await alice()).delete('inbox'), 'ERR_STORE_CANNOT_DELETE');
      });

      it('refuses to delete a missing mailbox with ERR_STORE_NO_SUCH_MAILBOX', async () => {
        await expectCode((await alice()).delete('Nope'), 'ERR_STORE_NO_SUCH_MAILBOX');
      });

      it('keeps children when their parent is deleted; the parent becomes not selectable', async () => {
        const user = await alice();
        await user.create('p');
        await user.create('p/q');
        await user.delete('p');
        const list = await user.list();
        expect(list.find((e) => e.name === 'p')?.selectable).toBe(false);
        expect(list.find((e) => e.name === 'p/q')?.selectable).toBe(true);
      });

      it('fails handles of a deleted mailbox with ERR_STORE_NO_SUCH_MAILBOX', async () => {
        const user = await alice();
        await user.create('Doomed');
        const handle = await user.open('Doomed');
        await user.delete('Doomed');
        await expectCode(handle.sync(), 'ERR_STORE_NO_SUCH_MAILBOX');
      });

      it('renames a mailbox with its children, keeping ids, UIDVALIDITY, messages and subscriptions', async () => {
        const user = await alice();
        await user.create('Old', { subscribe: true });
        await user.create('Old/Child');
        await user.append('Old', message('kept'));
        const before = await user.status('Old');
        const child = await user.status('Old/Child');
        await user.rename('Old', 'Newer');
        const after = await user.status('Newer');
        expect(after.id).toBe(before.id);
        expect(after.uidValidity).toBe(before.uidValidity);
        expect(after.messages).toBe(1);
        expect((await user.status('Newer/Child')).id).toBe(child.id);
        await expectCode(user.status('Old'), 'ERR_STORE_NO_SUCH_MAILBOX');
        await expectCode(user.status('Old/Child'), 'ERR_STORE_NO_SUCH_MAILBOX');
        expect((await user.list()).find((e) => e.name === 'Newer')?.subscribed).toBe(true);
      });

      it('renames into a new hierarchy level', async () => {
        const user = await alice();
        await user.rename('Junk', 'Folders/Spam');
        const list = await user.list();
        expect(list.find((e) => e.name === 'Folders')?.selectable).toBe(false);
        expect(list.find((e) => e.name === 'Folders/Spam')?.specialUse).toEqual(['\\Junk']);
      });

      it('refuses to rename onto an existing mailbox with ERR_STORE_MAILBOX_EXISTS', async () => {
        const user = await alice();
        await expectCode(user.rename('Sent', 'Trash'), 'ERR_STORE_MAILBOX_EXISTS');
        await expectCode(user.rename('Sent', 'INBOX'), 'ERR_STORE_MAILBOX_EXISTS');
      });

      it('refuses to rename a missing mailbox with ERR_STORE_NO_SUCH_MAILBOX', async () => {
        await expectCode((await alice()).rename('Missing', 'Other'), 'ERR_STORE_NO_SUCH_MAILBOX');
      });

      it('refuses to rename a mailbox under itself with ERR_STORE_INVALID_NAME', async () => {
        await expectCode((await alice()).rename('Sent', 'Sent/Sub'), 'ERR_STORE_INVALID_NAME');
      });

      it('renames INBOX by moving its messages to a new mailbox; INBOX stays, empty, with its children', async () => {
        const user = await alice();
        await user.create('INBOX/Child');
        await user.append('INBOX', message('one'), { flags: ['\\Flagged', 'Work'] });
        await user.append('INBOX', message('two'));
        const inboxBefore = await user.status('INBOX');
        await user.rename('INBOX', 'Old Mail');
        const inbox = await user.status('INBOX');
        expect(inbox.id).toBe(inboxBefore.id);
        expect(inbox.uidValidity).toBe(inboxBefore.uidValidity);
        expect(inbox.messages).toBe(0);
        expect(inbox.uidNext).toBeGreaterThanOrEqual(inboxBefore.uidNext);
        const moved = await user.status('Old Mail');
        expect(moved.messages).toBe(2);
        expect((await user.status('INBOX/Child')).name).toBe('INBOX/Child');
        const handle = await user.open('Old Mail');
        expect(unordered(handle.messages()[0]?.flags)).toEqual(unordered(['\\Flagged', 'Work']));
        await handle.close();
      });

      it('subscribes and unsubscribes', async () => {
        const user = await alice();
        await user.create('Lists');
        await user.setSubscribed('Lists', true);
        expect((await user.list()).find((e) => e.name === 'Lists')?.subscribed).toBe(true);
        await user.setSubscribed('Lists', false);
        expect((await user.list()).find((e) => e.name === 'Lists')?.subscribed).toBe(false);
        await user.setSubscribed('Sent', false);
        expect((await user.list()).find((e) => e.name === 'Sent')?.subscribed).toBe(false);
      });

      it('refuses to subscribe to a missing mailbox with ERR_STORE_NO_SUCH_MAILBOX', async () => {
        await expectCode((await alice()).setSubscribed('Nope', true), 'ERR_STORE_NO_SUCH_MAILBOX');
      });

      itCaps(caps.limits, 'refuses more than maxMailboxesPerUser mailboxes with ERR_STORE_LIMIT', async () => {
        const small = await fresh({ maxMailboxesPerUser: 7 });
        const user = await small.user(USER);
        await user.create('Seventh');
        await expectCode(user.create('Eighth'), 'ERR_STORE_LIMIT');
      });
    });

    // -----------------------------------------------------------------------
    describe('UID, UIDVALIDITY, MODSEQ', () => {
      it('gives ascending UIDs from 1 and advances UIDNEXT', async () => {
        const user = await alice();
        const first = await user.append('INBOX', message('1'));
        const second = await user.append('INBOX', message('2'));
        expect(first.uid).toBe(1);
        expect(second.uid).toBe(2);
        expect((await user.status('INBOX')).uidNext).toBe(3);
        expect(first.uidValidity).toBe((await user.status('INBOX')).uidValidity);
        expect(first.mailboxId).toBe((await user.status('INBOX')).id);
      });

      it('never reuses a UID after an expunge', async () => {
        const user = await alice();
        await appendTo('INBOX', 'a');
        const last = await appendTo('INBOX', 'b', ['\\Deleted']);
        const handle = await user.open('INBOX');
        await handle.expunge();
        await handle.close();
        const next = await appendTo('INBOX', 'c');
        expect(next).toBeGreaterThan(last);
      });

      it('keeps UIDs and UIDVALIDITY when a mailbox is opened again', async () => {
        const user = await alice();
        await appendTo('INBOX', 'a');
        const h1 = await user.open('INBOX');
        const status = h1.status;
        await h1.close();
        const h2 = await user.open('INBOX');
        expect(h2.status.uidValidity).toBe(status.uidValidity);
        expect(h2.messages().map((m) => m.uid)).toEqual([1]);
        await h2.close();
        expect(await appendTo('INBOX', 'b')).toBe(2);
      });

      itCaps(caps.persistent, 'keeps UIDs, UIDVALIDITY, MODSEQ, flags and the expunge log after the store is reopened', async () => {
        const user = await alice();
        await appendTo('INBOX', 'a', ['Keep']);
        await appendTo('INBOX', 'b', ['\\Deleted']);
        const h = await user.open('INBOX');
        await h.expunge();
        await h.close();
        const before = await user.status('INBOX');
        if (instance.reopen === undefined) throw new Error('capabilities.persistent needs ConformanceInstance.reopen()');
        store = await instance.reopen();
        const again = await alice();
        const after = await again.status('INBOX');
        expect(after.uidValidity).toBe(before.uidValidity);
        expect(after.uidNext).toBe(before.uidNext);
        expect(after.highestModSeq).toBeGreaterThanOrEqual(before.highestModSeq);
        const h2 = await again.open('INBOX');
        expect(h2.messages().map((m) => [m.uid, m.flags])).toEqual([[1, ['Keep']]]);
        expect(await h2.vanishedSince(1)).toEqual([2]);
        await h2.close();
        expect(await appendTo('INBOX', 'c')).toBe(3);
      });

      it('keeps UIDVALIDITY stable across appends, flag changes and expunges', async () => {
        const user = await alice();
        const v = (await user.status('INBOX')).uidValidity;
        expect(v).toBeGreaterThan(0);
        expect(v).toBeLessThanOrEqual(0xffffffff);
        await appendTo('INBOX', 'a', ['\\Deleted']);
        const h = await user.open('INBOX');
        await h.setFlags([1], { mode: 'add', flags: ['\\Seen'] });
        await h.expunge();
        await h.close();
        expect((await user.status('INBOX')).uidValidity).toBe(v);
      });

      it('raises HIGHESTMODSEQ on every append, flag change and expunge', async () => {
        const user = await alice();
        const m0 = (await user.status('INBOX')).highestModSeq;
        expect(m0).toBeGreaterThanOrEqual(1);
        const appended = await user.append('INBOX', message('a'));
        const m1 = (await user.status('INBOX')).highestModSeq;
        expect(m1).toBeGreaterThan(m0);
        expect(appended.modSeq).toBe(m1);
        const h = await user.open('INBOX');
        const { updated } = await h.setFlags([appended.uid], { mode: 'add', flags: ['\\Deleted'] });
        const m2 = (await user.status('INBOX')).highestModSeq;
        expect(m2).toBeGreaterThan(m1);
        expect(updated[0]?.modSeq).toBe(m2);
        await h.expunge();
        const m3 = (await user.status('INBOX')).highestModSeq;
        expect(m3).toBeGreaterThan(m2);
        await h.close();
      });

      it('counts messages, unseen, deleted and size in STATUS', async () => {
        const user = await alice();
        const a = await user.append('INBOX', message('a'), { flags: ['\\Seen'] });
        const b = await user.append('INBOX', message('b'), { flags: ['\\Deleted'] });
        await user.append('INBOX', message('c'));
        const status = await user.status('INBOX');
        expect(status.messages).toBe(3);
        expect(status.unseen).toBe(2);
        expect(status.deleted).toBe(1);
        expect(status.size).toBe(a.size + b.size + message('c').length);
      });
    });

    // -----------------------------------------------------------------------
    describe('flags and keywords', () => {
      it('stores flags given at append, system flags in canonical case', async () => {
        const user = await alice();
        await user.append('INBOX', message('a'), { flags: ['\\seen', '\\FLAGGED', '$Forwarded'] });
        const h = await user.open('INBOX');
        expect(unordered(h.messages()[0]?.flags)).toEqual(unordered(['\\Seen', '\\Flagged', '$Forwarded']));
        await h.close();
      });

      it('keeps the first-seen case of a keyword in a mailbox', async () => {
        await appendTo('INBOX', 'a', ['Project']);
        await appendTo('INBOX', 'b');
        const h = await (await alice()).open('INBOX');
        const first = await h.setFlags([1], { mode: 'add', flags: ['PROJECT'] });
        expect(first.updated).toEqual([]);
        const second = await h.setFlags([2], { mode: 'add', flags: ['project'] });
        expect(second.updated[0]?.flags).toEqual(['Project']);
        await h.close();
      });

      const table: readonly (readonly [string, readonly string[], 'add' | 'remove' | 'replace', readonly string[], readonly string[]])[] = [
        ['add', ['\\Seen'], 'add', ['\\Flagged'], ['\\Seen', '\\Flagged']],
        ['add an existing flag (no change)', ['\\Seen'], 'add', ['\\seen'], ['\\Seen']],
        ['remove', ['\\Seen', '\\Flagged'], 'remove', ['\\Seen'], ['\\Flagged']],
        ['remove a missing flag (no change)', ['\\Seen'], 'remove', ['\\Draft'], ['\\Seen']],
        ['replace', ['\\Seen', 'A'], 'replace', ['\\Answered', 'B'], ['\\Answered', 'B']],
        ['replace with nothing', ['\\Seen', 'A'], 'replace', [], []],
        ['add a keyword', [], 'add', ['$Label1'], ['$Label1']],
        ['remove case-insensitively', ['Work'], 'remove', ['WORK'], []],
      ];
      for (const [what, initial, mode, flags, expected] of table) {
        it(`setFlags: ${what}`, async () => {
          await appendTo('INBOX', 'x', initial);
          const h = await (await alice()).open('INBOX');
          const before = h.messages()[0]!;
          const result = await h.setFlags([1], { mode, flags });
          await h.sync();
          const after = h.messages()[0]!;
          expect([...after.flags].sort()).toEqual([...expected].sort());
          const changed = [...before.flags].sort().join(' ').toLowerCase() !== [...expected].sort().join(' ').toLowerCase();
          expect(result.updated).toHaveLength(changed ? 1 : 0);
          expect(after.modSeq > before.modSeq).toBe(changed);
          await h.close();
        });
      }

      for (const bad of ['\\Recent', '\\Unknown', 'two words', 'paren(', 'quote"', 'brace{', 'star*', 'caf\u00e9', '']) {
        it(`refuses the flag ${JSON.stringify(bad)} with ERR_STORE_INVALID_FLAG`, async () => {
          await appendTo('INBOX', 'x');
          const user = await alice();
          const h = await user.open('INBOX');
          await expectCode(h.setFlags([1], { mode: 'add', flags: [bad] }), 'ERR_STORE_INVALID_FLAG');
          await expectCode(user.append('INBOX', message('y'), { flags: [bad] }), 'ERR_STORE_INVALID_FLAG');
          await h.close();
        });
      }

      it('refuses a keyword longer than maxKeywordBytes with ERR_STORE_INVALID_FLAG', async () => {
        await expectCode((await alice()).append('INBOX', message('y'), { flags: ['k'.repeat(129)] }), 'ERR_STORE_INVALID_FLAG');
      });

      it('allows maxKeywordsPerMailbox distinct keywords and refuses one more with ERR_STORE_LIMIT', async () => {
        await appendTo('INBOX', 'x');
        const h = await (await alice()).open('INBOX');
        const keywords = Array.from({ length: 26 }, (_, i) => `kw${i}`);
        await h.setFlags([1], { mode: 'add', flags: keywords });
        await expectCode(h.setFlags([1], { mode: 'add', flags: ['one-more'] }), 'ERR_STORE_LIMIT');
        // Removing a keyword the mailbox has never seen does not count.
        await h.setFlags([1], { mode: 'remove', flags: ['never-used'] });
        await h.sync();
        expect(h.messages()[0]?.flags).toHaveLength(26);
        await h.close();
      });

      it('refuses an append that would exceed maxKeywordsPerMailbox with ERR_STORE_LIMIT', async () => {
        const user = await alice();
        await user.append('INBOX', message('x'), { flags: Array.from({ length: 26 }, (_, i) => `kw${i}`) });
        await expectCode(user.append('INBOX', message('y'), { flags: ['extra'] }), 'ERR_STORE_LIMIT');
        expect((await user.status('INBOX')).messages).toBe(1);
        // Keywords are per mailbox.
        await user.append('Archive', message('z'), { flags: ['extra'] });
      });

      it('reports UNCHANGEDSINCE conflicts and changes only the others', async () => {
        await appendTo('INBOX', 'a');
        await appendTo('INBOX', 'b');
        const h = await (await alice()).open('INBOX');
        const base = h.status.highestModSeq;
        await h.setFlags([2], { mode: 'add', flags: ['\\Flagged'] });
        const result = await h.setFlags([1, 2], { mode: 'add', flags: ['\\Seen'], unchangedSince: base });
        expect(result.conflicts).toEqual([2]);
        expect(result.updated.map((m) => m.uid)).toEqual([1]);
        await h.sync();
        expect(h.messages()[1]?.flags).toEqual(['\\Flagged']);
        await h.close();
      });

      it('accepts UNCHANGEDSINCE equal to the message MODSEQ', async () => {
        await appendTo('INBOX', 'a');
        const h = await (await alice()).open('INBOX');
        const modSeq = h.messages()[0]!.modSeq;
        const result = await h.setFlags([1], { mode: 'add', flags: ['\\Seen'], unchangedSince: modSeq });
        expect(result.conflicts).toEqual([]);
        expect(result.updated).toHaveLength(1);
        await h.close();
      });

      it('ignores UIDs that do not exist in setFlags', async () => {
        await appendTo('INBOX', 'a');
        const h = await (await alice()).open('INBOX');
        const result = await h.setFlags([1, 99], { mode: 'add', flags: ['\\Seen'] });
        expect(result.updated.map((m) => m.uid)).toEqual([1]);
        await h.close();
      });

      it('refuses setFlags, expunge and move on a read-only handle with ERR_STORE_READ_ONLY, allows copy', async () => {
        await appendTo('INBOX', 'a', ['\\Deleted']);
        const h = await (await alice()).open('INBOX', { readOnly: true });
        expect(h.readOnly).toBe(true);
        await expectCode(h.setFlags([1], { mode: 'add', flags: ['\\Seen'] }), 'ERR_STORE_READ_ONLY');
        await expectCode(h.expunge(), 'ERR_STORE_READ_ONLY');
        await expectCode(h.move([1], 'Archive'), 'ERR_STORE_READ_ONLY');
        expect((await h.copy([1], 'Archive')).mapping).toEqual([[1, 1]]);
        await h.close();
      });
    });

    // -----------------------------------------------------------------------
    describe('copy and move', () => {
      it('copies with a UIDPLUS mapping and keeps content, flags and INTERNALDATE', async () => {
        const user = await alice();
        await user.append('Archive', message('pre'));
        await user.append('INBOX', message('a'), { flags: ['\\Seen', 'Tag'], internalDate: 1_000_000 });
        await user.append('INBOX', message('b'), { internalDate: 2_000_000 });
        const h = await user.open('INBOX');
        const result = await h.copy([2, 1], 'Archive');
        expect(result.uidValidity).toBe((await user.status('Archive')).uidValidity);
        expect(result.mapping).toEqual([
          [1, 2],
          [2, 3],
        ]);
        expect((await user.status('INBOX')).messages).toBe(2);
        const dest = await user.open('Archive');
        const copied = dest.messages().find((m) => m.uid === 2)!;
        expect(unordered(copied.flags)).toEqual(unordered(['\\Seen', 'Tag']));
        expect(await dest.internalDates([3, 2])).toEqual([2_000_000, 1_000_000]);
        expect(copied.size).toBe(message('a').length);
        expect(await collect(dest.read(2))).toEqual(message('a'));
        await dest.close();
        await h.close();
      });

      it('moves with a mapping; the source is expunged and the message keeps content, flags, INTERNALDATE and EMAILID', async () => {
        const user = await alice();
        await user.append('INBOX', message('m'), { flags: ['\\Flagged'], internalDate: 5_000_000 });
        const h = await user.open('INBOX');
        const original = h.messages()[0]!;
        const result = await h.move([1], 'Trash');
        expect(result.mapping).toEqual([[1, 1]]);
        expect((await user.status('INBOX')).messages).toBe(0);
        expect(await h.vanishedSince(original.modSeq)).toEqual([1]);
        const t2 = await user.open('Trash');
        const moved = t2.messages()[0]!;
        expect(moved.flags).toEqual(['\\Flagged']);
        expect(await t2.internalDates([moved.uid])).toEqual([5_000_000]);
        expect(moved.emailId).toBe(original.emailId);
        expect(moved.size).toBe(original.size);
        expect(await collect(t2.read(1))).toEqual(message('m'));
        await t2.close();
        await h.close();
      });

      it('refuses a missing destination with ERR_STORE_NO_SUCH_MAILBOX', async () => {
        await appendTo('INBOX', 'a');
        const h = await (await alice()).open('INBOX');
        await expectCode(h.copy([1], 'Nope'), 'ERR_STORE_NO_SUCH_MAILBOX');
        await expectCode(h.move([1], 'Nope'), 'ERR_STORE_NO_SUCH_MAILBOX');
        expect((await (await alice()).status('INBOX')).messages).toBe(1);
        await h.close();
      });

      it('skips UIDs that do not exist', async () => {
        await appendTo('INBOX', 'a');
        const h = await (await alice()).open('INBOX');
        expect((await h.copy([5, 6], 'Archive')).mapping).toEqual([]);
        expect((await h.copy([1, 6], 'Archive')).mapping).toEqual([[1, 1]]);
        await h.close();
      });

      it('refuses a copy over quota with ERR_STORE_OVER_QUOTA, but moves within quota', async () => {
        const user = await alice();
        await appendTo('INBOX', 'a');
        await user.setQuota({ messages: 1 });
        const h = await user.open('INBOX');
        await expectCode(h.copy([1], 'Archive'), 'ERR_STORE_OVER_QUOTA');
        expect((await h.move([1], 'Archive')).mapping).toEqual([[1, 1]]);
        await h.close();
      });

      it('refuses a copy that would exceed the destination keyword limit with ERR_STORE_LIMIT', async () => {
        const user = await alice();
        await user.append('Archive', message('x'), { flags: Array.from({ length: 26 }, (_, i) => `kw${i}`) });
        await user.append('INBOX', message('y'), { flags: ['other'] });
        const h = await user.open('INBOX');
        await expectCode(h.copy([1], 'Archive'), 'ERR_STORE_LIMIT');
        expect((await user.status('Archive')).messages).toBe(1);
        await h.close();
      });
    });

    // -----------------------------------------------------------------------
    describe('expunge, VANISHED, CHANGEDSINCE', () => {
      it('expunges every \\Deleted message', async () => {
        await appendTo('INBOX', 'a', ['\\Deleted']);
        await appendTo('INBOX', 'b');
        await appendTo('INBOX', 'c', ['\\Deleted']);
        const h = await (await alice()).open('INBOX');
        expect(await h.expunge()).toEqual([1, 3]);
        expect(await h.expunge()).toEqual([]);
        await h.sync();
        expect(h.messages().map((m) => m.uid)).toEqual([2]);
        await h.close();
      });

      it('expunges only the given UIDs that are \\Deleted (UID EXPUNGE)', async () => {
        await appendTo('INBOX', 'a', ['\\Deleted']);
        await appendTo('INBOX', 'b');
        await appendTo('INBOX', 'c', ['\\Deleted']);
        const h = await (await alice()).open('INBOX');
        expect(await h.expunge([2, 3])).toEqual([3]);
        await h.sync();
        expect(h.messages().map((m) => m.uid)).toEqual([1, 2]);
        await h.close();
      });

      it('answers vanishedSince from the expunge log', async () => {
        await appendTo('INBOX', 'a', ['\\Deleted']);
        await appendTo('INBOX', 'b', ['\\Deleted']);
        await appendTo('INBOX', 'c');
        const user = await alice();
        const h = await user.open('INBOX');
        const before = (await user.status('INBOX')).highestModSeq;
        await h.expunge([1]);
        const middle = (await user.status('INBOX')).highestModSeq;
        await h.expunge([2]);
        expect(await h.vanishedSince(before)).toEqual([1, 2]);
        expect(await h.vanishedSince(middle)).toEqual([2]);
        expect(await h.vanishedSince((await user.status('INBOX')).highestModSeq)).toEqual([]);
        await h.close();
        const again = await user.open('INBOX');
        expect(await again.vanishedSince(0)).toEqual([1, 2]);
        await again.close();
      });

      it('answers changedSince with messages changed after a MODSEQ', async () => {
        await appendTo('INBOX', 'a');
        await appendTo('INBOX', 'b');
        const h = await (await alice()).open('INBOX');
        const base = h.status.highestModSeq;
        await h.setFlags([2], { mode: 'add', flags: ['\\Answered'] });
        const changed = await h.changedSince(base);
        expect(changed.map((m) => m.uid)).toEqual([2]);
        expect(changed[0]?.flags).toEqual(['\\Answered']);
        expect((await h.changedSince(0)).map((m) => m.uid)).toEqual([1, 2]);
        await h.close();
      });
    });

    // -----------------------------------------------------------------------
    describe('sync() across handles', () => {
      it('changes the view only on sync', async () => {
        await appendTo('INBOX', 'a');
        const user = await alice();
        const h1 = await user.open('INBOX');
        const h2 = await user.open('INBOX');
        await user.append('INBOX', message('b'));
        await h2.setFlags([1], { mode: 'add', flags: ['\\Seen', '\\Deleted'] });
        // The handle that changed the flags sees them, but not the message appended since it synced.
        expect(h2.messages().map((m) => [m.uid, [...m.flags].sort()])).toEqual([[1, ['\\Deleted', '\\Seen']]]);
        expect(h1.messages().map((m) => m.uid)).toEqual([1]);
        expect(h1.messages()[0]?.flags).toEqual([]);
        expect(h1.status.messages).toBe(1);
        const changes = await h1.sync();
        expect(changes.added.map((m) => m.uid)).toEqual([2]);
        expect(changes.flagsChanged.map((m) => m.uid)).toEqual([1]);
        expect(changes.expunged).toEqual([]);
        expect(changes.uidNext).toBe(3);
        expect(h1.status.messages).toBe(2);
        await h2.expunge();
        expect(h1.messages().map((m) => m.uid)).toEqual([1, 2]);
        const second = await h1.sync();
        expect(second.expunged).toEqual([1]);
        expect(second.highestModSeq).toBe((await user.status('INBOX')).highestModSeq);
        expect(h1.messages().map((m) => m.uid)).toEqual([2]);
        const third = await h1.sync();
        expect([third.added, third.expunged, third.flagsChanged]).toEqual([[], [], []]);
        await h1.close();
        await h2.close();
      });

      it("has the session's own changes in its view at once, and sync() does not report them again", async () => {
        await appendTo('INBOX', 'a');
        await appendTo('INBOX', 'b');
        await appendTo('INBOX', 'c');
        await appendTo('INBOX', 'd');
        const user = await alice();
        const h = await user.open('INBOX');
        const other = await user.open('INBOX');
        // Another session's change waits for sync(); this one's own are there at once.
        await other.setFlags([4], { mode: 'add', flags: ['\\Answered'] });
        await h.setFlags([1, 2], { mode: 'add', flags: ['\\Seen'] });
        await h.setFlags([3], { mode: 'add', flags: ['\\Deleted'] });
        expect(h.messages().map((m) => [m.uid, m.flags])).toEqual([
          [1, ['\\Seen']],
          [2, ['\\Seen']],
          [3, ['\\Deleted']],
          [4, []],
        ]);
        expect(await h.expunge()).toEqual([3]);
        const moved = await h.move([2], 'Archive');
        expect(moved.mapping.map(([from]) => from)).toEqual([2]);
        expect(h.messages().map((m) => m.uid)).toEqual([1, 4]);
        expect(h.status.messages).toBe(2);
        const changes = await h.sync();
        expect(changes.expunged).toEqual([]);
        expect(changes.added).toEqual([]);
        expect(changes.flagsChanged.map((m) => [m.uid, m.flags])).toEqual([[4, ['\\Answered']]]);
        // The other session learns of all of it at its sync.
        const seen = await other.sync();
        expect(seen.expunged).toEqual([2, 3]);
        expect(seen.flagsChanged.map((m) => m.uid)).toEqual([1]);
        await h.close();
        await other.close();
      });

      it('rejects read() and structure() of a message expunged by another handle before the view syncs', async () => {
        await appendTo('INBOX', 'a', ['\\Deleted']);
        const user = await alice();
        const h1 = await user.open('INBOX');
        const h2 = await user.open('INBOX');
        await h2.expunge();
        expect(h1.messages().map((m) => m.uid)).toEqual([1]);
        await expectCode(collect(h1.read(1)), 'ERR_STORE_NO_SUCH_MESSAGE');
        await expectCode(h1.structure(1), 'ERR_STORE_NO_SUCH_MESSAGE');
        await expectCode(h1.internalDates([1]), 'ERR_STORE_NO_SUCH_MESSAGE');
        await h1.close();
        await h2.close();
      });

      it('reports a message added and expunged between two syncs in neither list', async () => {
        const user = await alice();
        const h1 = await user.open('INBOX');
        const h2 = await user.open('INBOX');
        await user.append('INBOX', message('brief'), { flags: ['\\Deleted'] });
        await h2.expunge();
        const changes = await h1.sync();
        expect(changes.added).toEqual([]);
        expect(changes.expunged).toEqual([]);
        await h1.close();
        await h2.close();
      });
    });

    // -----------------------------------------------------------------------
    describe('read() and structure()', () => {
      it('reads back exactly the appended bytes', async () => {
        const user = await alice();
        const body = message('exact', 'line one\r\nline two\r\n');
        await user.append('INBOX', body);
        const h = await user.open('INBOX');
        expect(await collect(h.read(1))).toEqual(body);
        await h.close();
      });

      const ranges: readonly (readonly [number, number])[] = [
        [0, 10],
        [5, 20],
        [0, 0],
        [7, 7],
        [30, 1000],
        [1000, 2000],
      ];
      for (const [start, end] of ranges) {
        it(`reads the byte range [${start}, ${end})`, async () => {
          const user = await alice();
          const body = message('ranges');
          await user.append('INBOX', body);
          const h = await user.open('INBOX');
          expect(await collect(h.read(1, { start, end }))).toEqual(body.subarray(start, end));
          await h.close();
        });
      }

      it('rejects read() of a UID that never existed with ERR_STORE_NO_SUCH_MESSAGE', async () => {
        const h = await (await alice()).open('INBOX');
        await expectCode(collect(h.read(42)), 'ERR_STORE_NO_SUCH_MESSAGE');
        await h.close();
      });

      it('keeps 8-bit bytes unchanged', async () => {
        const user = await alice();
        const body = Buffer.concat([Buffer.from('Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'), Buffer.from([0xe9, 0xff, 0x80, 0x00, 0x0d, 0x0a])]);
        const result = await user.append('INBOX', body);
        expect(result.size).toBe(body.length);
        const h = await user.open('INBOX');
        expect(await collect(h.read(1))).toEqual(body);
        await h.close();
      });

      it('counts every bare LF as CRLF in RFC822.SIZE, and stores the bytes as given', async () => {
        const user = await alice();
        const body = Buffer.from('Subject: lf\nFrom: a@b\n\nline\r\nbare\n');
        const result = await user.append('INBOX', body);
        expect(result.size).toBe(body.length + 4);
        const h = await user.open('INBOX');
        expect(h.messages()[0]?.size).toBe(body.length + 4);
        expect(await collect(h.read(1))).toEqual(body);
        await h.close();
      });

      it('counts CRLF split across chunks once', async () => {
        const user = await alice();
        const parts = [Buffer.from('Subject: split\r'), Buffer.from('\n\r'), Buffer.from('\nbody\r'), Buffer.from('\n')];
        const result = await user.append('INBOX', parts);
        expect(result.size).toBe(Buffer.concat(parts).length);
      });

      itCaps(
        caps.largeMessages,
        'streams a 5 MB message in chunks, in and out',
        async () => {
          const user = await alice();
          const line = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n');
          const header = Buffer.from('Subject: big\r\n\r\n');
          const chunk = Buffer.concat(Array.from({ length: 1024 }, () => line));
          const count = Math.ceil((5 * 1024 * 1024) / chunk.length);
          const hash = createHash('sha256').update(header);
          for (let i = 0; i < count; i++) hash.update(chunk);
          const expectedHash = hash.digest('hex');
          async function* source(): AsyncGenerator<Uint8Array> {
            yield header;
            for (let i = 0; i < count; i++) {
              await Promise.resolve(); // as a socket would, between chunks
              yield Buffer.from(chunk);
            }
          }
          const result = await user.append('INBOX', source());
          const total = header.length + count * chunk.length;
          expect(result.size).toBe(total);
          const h = await user.open('INBOX');
          const out = createHash('sha256');
          let pieces = 0;
          for await (const piece of h.read(result.uid)) {
            out.update(piece);
            pieces++;
          }
          expect(out.digest('hex')).toBe(expectedHash);
          expect(pieces).toBeGreaterThan(1);
          const tail = await collect(h.read(result.uid, { start: total - line.length, end: total }));
          expect(sha256(tail)).toBe(sha256(line));
          await h.close();
        },
        60_000,
      );

      it('gives a structure for each message, the same for a copy', async () => {
        const user = await alice();
        await user.append('INBOX', message('structured', 'part\r\n'));
        const h = await user.open('INBOX');
        const structure = await h.structure(1);
        expect(typeof structure).toBe('object');
        await h.copy([1], 'Archive');
        const a = await user.open('Archive');
        expect(await a.structure(1)).toEqual(structure);
        await expectCode(h.structure(7), 'ERR_STORE_NO_SUCH_MESSAGE');
        // BODYSTRUCTURE: the IMAP string of that structure, cached or not.
        expect(await h.bodyStructure(1)).toBe(imapBodyStructure(structure));
        expect(await a.bodyStructure(1)).toBe(imapBodyStructure(structure));
        await expectCode(h.bodyStructure(7), 'ERR_STORE_NO_SUCH_MESSAGE');
        await a.close();
        await h.close();
      });

      it('gives INTERNALDATEs in the order asked, the same after a reopen', async () => {
        const user = await alice();
        await user.append('INBOX', message('one'), { internalDate: 3_000_000 });
        await user.append('INBOX', message('two'), { internalDate: 1_000_000 });
        await user.append('INBOX', message('three'), { internalDate: 2_000_000 });
        const h = await user.open('INBOX');
        expect(await h.internalDates([3, 1, 2, 1])).toEqual([2_000_000, 3_000_000, 1_000_000, 3_000_000]);
        expect(await h.internalDates([])).toEqual([]);
        await expectCode(h.internalDates([1, 9]), 'ERR_STORE_NO_SUCH_MESSAGE');
        await h.close();
        if (caps.persistent && instance.reopen) {
          store = await instance.reopen();
          const again = await (await alice()).open('INBOX');
          expect(await again.internalDates([1, 2, 3])).toEqual([3_000_000, 1_000_000, 2_000_000]);
          await again.close();
        }
      });
    });

    // -----------------------------------------------------------------------
    describe('quota', () => {
      it('reports usage and limits', async () => {
        const user = await alice();
        expect(await user.quota()).toEqual({ storage: 0, messages: 0, limits: {} });
        const a = await user.append('INBOX', message('a'));
        const b = await user.append('Sent', message('b'));
        await user.setQuota({ storage: 10_000, messages: 10 });
        expect(await user.quota()).toEqual({ storage: a.size + b.size, messages: 2, limits: { storage: 10_000, messages: 10 } });
      });

      it('refuses an append over the storage quota with ERR_STORE_OVER_QUOTA', async () => {
        const user = await alice();
        await user.setQuota({ storage: message('a').length + 10 });
        await user.append('INBOX', message('a'));
        await expectCode(user.append('INBOX', message('b')), 'ERR_STORE_OVER_QUOTA');
        expect((await user.status('INBOX')).messages).toBe(1);
      });

      it('refuses a delivery over the message quota with ERR_STORE_OVER_QUOTA', async () => {
        const user = await alice();
        await user.setQuota({ messages: 1 });
        await store.deliver({ user: USER, body: message('a') });
        await expectCode(store.deliver({ user: USER, body: message('b') }), 'ERR_STORE_OVER_QUOTA');
      });

      it('frees quota on expunge and mailbox delete, and lifts limits with setQuota', async () => {
        const user = await alice();
        await user.setQuota({ messages: 1 });
        await appendTo('INBOX', 'a', ['\\Deleted']);
        const h = await user.open('INBOX');
        await h.expunge();
        await h.close();
        await user.append('Sent', message('b'));
        await user.delete('Sent');
        await user.append('INBOX', message('c'));
        await user.setQuota({});
        await user.append('INBOX', message('d'));
        expect((await user.quota()).messages).toBe(2);
      });
    });

    // -----------------------------------------------------------------------
    describe('watch()', () => {
      it('tells about appends, flag changes and expunges', async () => {
        const user = await alice();
        const controller = new AbortController();
        const it_ = user.watch({ signal: controller.signal })[Symbol.asyncIterator]();
        const appended = await user.append('INBOX', message('w'));
        const a = await waitFor(it_, (c) => c.type === 'append');
        expect(a).toEqual({ type: 'append', mailboxId: appended.mailboxId, mailbox: 'INBOX', uids: [1], modSeq: appended.modSeq });
        const h = await user.open('INBOX');
        await h.setFlags([1], { mode: 'add', flags: ['\\Deleted'] });
        const f = await waitFor(it_, (c) => c.type === 'flags');
        expect(f?.type === 'flags' ? f.uids : undefined).toEqual([1]);
        await h.expunge();
        const e = await waitFor(it_, (c) => c.type === 'expunge');
        expect(e?.type === 'expunge' ? [e.uids, e.modSeq] : undefined).toEqual([[1], (await user.status('INBOX')).highestModSeq]);
        controller.abort();
        await h.close();
      });

      it('tells about mailbox creation, rename, deletion and subscription', async () => {
        const user = await alice();
        const controller = new AbortController();
        const it_ = user.watch({ signal: controller.signal })[Symbol.asyncIterator]();
        const created = await user.create('Watched');
        expect(await waitFor(it_, (c) => c.type === 'mailbox-created')).toEqual({ type: 'mailbox-created', mailboxId: created.id, mailbox: 'Watched' });
        await user.setSubscribed('Watched', true);
        expect(await waitFor(it_, (c) => c.type === 'subscription')).toEqual({ type: 'subscription', mailboxId: created.id, mailbox: 'Watched', subscribed: true });
        await user.rename('Watched', 'Renamed');
        expect(await waitFor(it_, (c) => c.type === 'mailbox-renamed')).toEqual({ type: 'mailbox-renamed', mailboxId: created.id, mailbox: 'Renamed', oldName: 'Watched' });
        await user.delete('Renamed');
        expect(await waitFor(it_, (c) => c.type === 'mailbox-deleted')).toEqual({ type: 'mailbox-deleted', mailboxId: created.id, mailbox: 'Renamed' });
        controller.abort();
      });

      it('filters by mailbox', async () => {
        const user = await alice();
        const controller = new AbortController();
        const it_ = user.watch({ signal: controller.signal, mailbox: 'Sent' })[Symbol.asyncIterator]();
        await user.append('INBOX', message('not this'));
        await user.append('Sent', message('this'));
        const change = await nextChange(it_);
        expect(change !== 'timeout' && change !== 'done' && change.type !== 'resync' ? change.mailbox : change).toBe('Sent');
        controller.abort();
      });

      it('ends on abort, also while waiting', async () => {
        const user = await alice();
        const controller = new AbortController();
        const it_ = user.watch({ signal: controller.signal })[Symbol.asyncIterator]();
        const pending = nextChange(it_);
        controller.abort();
        expect(await pending).toBe('done');
        const ended = user.watch({ signal: AbortSignal.abort() })[Symbol.asyncIterator]();
        expect(await nextChange(ended)).toBe('done');
      });

      it('does not tell one user about another', async () => {
        await store.createUser('bob@example.org');
        const controller = new AbortController();
        const it_ = (await alice()).watch({ signal: controller.signal })[Symbol.asyncIterator]();
        await store.deliver({ user: 'bob@example.org', body: message('bob') });
        expect(await nextChange(it_, 200)).toBe('timeout');
        controller.abort();
      });

      it('says when it is ready (changes of other writers seen from then on), for every watcher', async () => {
        const user = await alice();
        const controller = new AbortController();
        const first = user.watch({ signal: controller.signal });
        const second = user.watch({ signal: controller.signal, mailbox: 'INBOX' });
        const late = (ms: number) => new Promise<string>((resolve) => setTimeout(() => resolve('not ready'), ms));
        expect(await Promise.race([first.ready.then(() => 'ready'), late(5000)])).toBe('ready');
        expect(await Promise.race([second.ready.then(() => 'ready'), late(5000)])).toBe('ready');
        // Ready, the watcher still reports what this store does.
        const it_ = second[Symbol.asyncIterator]();
        await user.append('INBOX', message('after ready'));
        const change = await waitFor(it_, (c) => c.type === 'append');
        expect(change?.type === 'append' ? [change.mailbox, change.uids] : change).toEqual(['INBOX', [1]]);
        controller.abort();
      });

      it('ends when the store closes', async () => {
        const it_ = (await alice()).watch()[Symbol.asyncIterator]();
        const pending = nextChange(it_);
        await store.close();
        expect(await pending).toBe('done');
      });
    });

    // -----------------------------------------------------------------------
    describe('POP3', () => {
      const fill = async (n: number): Promise<void> => {
        for (let i = 1; i <= n; i++) await store.deliver({ user: USER, body: message(`pop${i}`, `line1\r\nline2\r\nline3\r\n`) });
      };

      it('lists a numbered snapshot of INBOX with sizes and UIDLs', async () => {
        await fill(3);
        await (await alice()).append('Sent', message('not in pop'));
        const drop = await (await alice()).openPop3();
        const list = drop.messages();
        expect(list.map((m) => [m.number, m.uid, m.deleted])).toEqual([
          [1, 1, false],
          [2, 2, false],
          [3, 3, false],
        ]);
        expect(list[0]?.size).toBe(message('pop1', 'line1\r\nline2\r\nline3\r\n').length);
        for (const m of list) expect(/^[0-9a-f]{16}$/.test(m.uidl)).toBe(true);
        expect(new Set(list.map((m) => m.uidl)).size).toBe(3);
        await drop.release();
      });

      it('keeps UIDLs stable across sessions and the snapshot stable within one', async () => {
        await fill(2);
        const user = await alice();
        const first = await user.openPop3();
        const uidls = first.messages().map((m) => m.uidl);
        await store.deliver({ user: USER, body: message('late') });
        expect(first.messages()).toHaveLength(2);
        await first.release();
        const second = await user.openPop3();
        expect(second.messages().map((m) => m.uidl).slice(0, 2)).toEqual(uidls);
        expect(second.messages()).toHaveLength(3);
        await second.release();
      });

      it('marks, resets and commits: expunges marked messages and sets \\Seen on read ones', async () => {
        await fill(3);
        const user = await alice();
        const drop = await user.openPop3();
        drop.markDeleted(1);
        expect(drop.messages()[0]?.deleted).toBe(true);
        drop.reset();
        expect(drop.messages()[0]?.deleted).toBe(false);
        drop.markDeleted(2);
        await expectCode(collect(drop.read(2)), 'ERR_STORE_NO_SUCH_MESSAGE');
        await expectCode(() => drop.markDeleted(2), 'ERR_STORE_NO_SUCH_MESSAGE');
        const { expunged } = await drop.commit({ seen: [1, 2] });
        expect(expunged).toBe(1);
        const h = await user.open('INBOX');
        expect(h.messages().map((m) => [m.uid, m.flags])).toEqual([
          [1, ['\\Seen']],
          [3, []],
        ]);
        expect(await h.vanishedSince(0)).toEqual([2]);
        await h.close();
      });

      it('holds the maildrop lock: a second session fails with ERR_STORE_IN_USE until release or commit', async () => {
        const user = await alice();
        const first = await user.openPop3();
        await expectCode(user.openPop3(), 'ERR_STORE_IN_USE');
        await first.release();
        const second = await user.openPop3();
        await second.commit();
        const third = await user.openPop3();
        await third[Symbol.asyncDispose]();
        await (await user.openPop3()).release();
      });

      it('release() applies nothing', async () => {
        await fill(1);
        const user = await alice();
        const drop = await user.openPop3();
        drop.markDeleted(1);
        await drop.release();
        expect((await user.status('INBOX')).messages).toBe(1);
      });

      it('reads whole messages and TOP with a number of body lines', async () => {
        await fill(1);
        const drop = await (await alice()).openPop3();
        const full = message('pop1', 'line1\r\nline2\r\nline3\r\n');
        expect(await collect(drop.read(1))).toEqual(full);
        const headerEnd = full.indexOf('\r\n\r\n') + 4;
        expect((await collect(drop.read(1, { lines: 0 }))).toString()).toBe(full.subarray(0, headerEnd).toString());
        expect((await collect(drop.read(1, { lines: 2 }))).toString()).toBe(full.subarray(0, headerEnd).toString() + 'line1\r\nline2\r\n');
        expect(await collect(drop.read(1, { lines: 100 }))).toEqual(full);
        await expectCode(collect(drop.read(9)), 'ERR_STORE_NO_SUCH_MESSAGE');
        await drop.release();
      });

      it('skips at commit a message another session expunged meanwhile', async () => {
        await fill(2);
        const user = await alice();
        const drop = await user.openPop3();
        const h = await user.open('INBOX');
        await h.setFlags([1], { mode: 'add', flags: ['\\Deleted'] });
        await h.expunge();
        await h.close();
        drop.markDeleted(1);
        drop.markDeleted(2);
        expect((await drop.commit()).expunged).toBe(1);
        expect((await user.status('INBOX')).messages).toBe(0);
      });

      it('refuses use after commit with ERR_STORE_CLOSED', async () => {
        const drop = await (await alice()).openPop3();
        await drop.commit();
        await expectCode(() => drop.reset(), 'ERR_STORE_CLOSED');
      });
    });

    // -----------------------------------------------------------------------
    describe('deliver()', () => {
      it('delivers to INBOX by default', async () => {
        const result = await store.deliver({ user: USER, body: message('mda') });
        const inbox = await (await alice()).status('INBOX');
        expect(result.mailboxId).toBe(inbox.id);
        expect(result.uid).toBe(1);
        expect(result.uidValidity).toBe(inbox.uidValidity);
        expect(result.size).toBe(message('mda').length);
        expect(inbox.messages).toBe(1);
      });

      it('delivers to a named mailbox with flags and INTERNALDATE', async () => {
        const result = await store.deliver({ user: USER, mailbox: 'Junk', body: message('spam'), flags: ['$Junk', '\\Seen'], internalDate: 1_234_000 });
        const h = await (await alice()).open('Junk');
        const meta = h.messages()[0]!;
        expect(meta.uid).toBe(result.uid);
        expect(unordered(meta.flags)).toEqual(unordered(['$Junk', '\\Seen']));
        expect(await h.internalDates([meta.uid])).toEqual([1_234_000]);
        await h.close();
      });

      it('uses the store clock for INTERNALDATE by default', async () => {
        instance.clock?.advance(60_000);
        const before = instance.clock?.now() ?? Date.now();
        await store.deliver({ user: USER, body: message('now') });
        const after = instance.clock?.now() ?? Date.now();
        const h = await (await alice()).open('INBOX');
        const [date] = await h.internalDates([h.messages()[0]!.uid]);
        expect(date).toBeGreaterThanOrEqual(before);
        expect(date).toBeLessThanOrEqual(after);
        await h.close();
      });

      it('refuses a missing user with ERR_STORE_NO_SUCH_USER', async () => {
        await expectCode(store.deliver({ user: 'nobody@example.org', body: message('x') }), 'ERR_STORE_NO_SUCH_USER');
      });

      it('refuses a missing mailbox with ERR_STORE_NO_SUCH_MAILBOX and does not create it', async () => {
        await expectCode(store.deliver({ user: USER, mailbox: 'Lists/Fresh', body: message('x') }), 'ERR_STORE_NO_SUCH_MAILBOX');
        expect((await (await alice()).list()).some((e) => e.name === 'Lists/Fresh')).toBe(false);
      });

      it('accepts every MessageSource shape', async () => {
        const body = message('shapes');
        const sources: MessageSource[] = [
          new Uint8Array(body),
          [body.subarray(0, 10), body.subarray(10)],
          (async function* () {
            await Promise.resolve();
            yield body.subarray(0, 3);
            yield body.subarray(3);
          })(),
        ];
        for (const source of sources) {
          const result = await store.deliver({ user: USER, body: source });
          const h = await (await alice()).open('INBOX');
          expect(await collect(h.read(result.uid))).toEqual(body);
          await h.close();
        }
      });

      itCaps(caps.limits, 'refuses a message over maxMessageBytes with ERR_STORE_TOO_LARGE and stores nothing', async () => {
        const small = await fresh({ maxMessageBytes: 100 });
        await expectCode(small.deliver({ user: USER, body: Buffer.alloc(101, 0x61) }), 'ERR_STORE_TOO_LARGE');
        await small.deliver({ user: USER, body: Buffer.alloc(100, 0x61) });
        expect((await (await small.user(USER)).status('INBOX')).messages).toBe(1);
      });

      itCaps(caps.limits, 'stops reading a source as soon as it exceeds maxMessageBytes', async () => {
        const small = await fresh({ maxMessageBytes: 1000 });
        let pulled = 0;
        function* endless(): Generator<Uint8Array> {
          for (;;) {
            pulled += 100;
            yield Buffer.alloc(100, 0x62);
          }
        }
        await expectCode((async () => (await small.user(USER)).append('INBOX', endless()))(), 'ERR_STORE_TOO_LARGE');
        expect(pulled).toBeLessThanOrEqual(1100);
        expect((await (await small.user(USER)).quota()).messages).toBe(0);
      });
    });

    // -----------------------------------------------------------------------
    describe('a closed store', () => {
      const ops: readonly (readonly [string, (s: MailStore, u: UserMailStore) => Promise<unknown>])[] = [
        ['createUser', (s) => s.createUser('x@example.org')],
        ['deleteUser', (s) => s.deleteUser(USER)],
        ['hasUser', (s) => s.hasUser(USER)],
        ['listUsers', (s) => s.listUsers()],
        ['user', (s) => s.user(USER)],
        ['deliver', (s) => s.deliver({ user: USER, body: message('closed') })],
        ['list', (_, u) => u.list()],
        ['create', (_, u) => u.create('X')],
        ['status', (_, u) => u.status('INBOX')],
        ['open', (_, u) => u.open('INBOX')],
        ['append', (_, u) => u.append('INBOX', message('closed'))],
        ['quota', (_, u) => u.quota()],
        ['openPop3', (_, u) => u.openPop3()],
      ];
      for (const [name, op] of ops) {
        it(`rejects ${name} with ERR_STORE_CLOSED`, async () => {
          const user = await alice();
          await store.close();
          await expectCode(op(store, user), 'ERR_STORE_CLOSED');
        });
      }

      it('fails open handles with ERR_STORE_CLOSED; close() is idempotent; asyncDispose closes', async () => {
        await appendTo('INBOX', 'a');
        const h = await (await alice()).open('INBOX');
        await store[Symbol.asyncDispose]();
        await store.close();
        await expectCode(h.sync(), 'ERR_STORE_CLOSED');
        await expectCode(collect(h.read(1)), 'ERR_STORE_CLOSED');
        await expectCode(h.setFlags([1], { mode: 'add', flags: ['\\Seen'] }), 'ERR_STORE_CLOSED');
      });
    });
  });
}
