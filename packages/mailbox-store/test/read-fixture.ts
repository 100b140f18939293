// A temporary Maildir store for the read-path tests (maildir-read-path, maildir-read-now):
// stores opened on one root with a given readMode, closed and removed after each test; the
// message files in delivery (UID) order; `count` messages delivered from a body maker.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';
import type { MaildirReadMode, MaildirStoreOptions } from '../src/maildir/index.js';
import type { MailStore } from '../src/types.js';

export interface ReadFixture {
  /** The store root of the running test. */
  readonly root: () => string;
  /** A new store on the root (fsync off, the fixture's readMode), closed after the test. */
  readonly open: (options?: Partial<MaildirStoreOptions>) => MailStore;
  /** The message files of the user's INBOX, in delivery (UID) order. */
  readonly files: () => Promise<string[]>;
  /** Create the user and deliver `count` bodies (`body(i, size(i))`, i from 1); returns them. */
  readonly fill: (count: number, size?: (i: number) => number) => Promise<Buffer[]>;
}

/** Register the beforeEach/afterEach of a read-path suite and return its helpers. */
export function useReadFixture(options: {
  readonly prefix: string;
  readonly user: string;
  readonly readMode: MaildirReadMode;
  readonly body: (i: number, bytes?: number) => Buffer;
  readonly afterEach?: () => void;
}): ReadFixture {
  let root = '';
  const stores: MailStore[] = [];
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), options.prefix));
  });
  afterEach(async () => {
    options.afterEach?.();
    for (const s of stores.splice(0)) await s.close();
    await rm(root, { recursive: true, force: true });
  });
  const open = (more: Partial<MaildirStoreOptions> = {}): MailStore => {
    const s = createMaildirStore({ root, fsync: false, readMode: options.readMode, ...more });
    stores.push(s);
    return s;
  };
  const files = async (): Promise<string[]> => {
    const dir = join(root, options.user, 'Maildir');
    const out: string[] = [];
    // Delivery order is the name's counter, `time.M<usec>P<pid>Q<n>…`: matched in the name
    // alone, since the random temp folder's name may hold a "Q" and a digit too.
    const counter = (path: string): number => Number(/P\d+Q(\d+)/.exec(basename(path))?.[1] ?? 0);
    for (const d of ['new', 'cur']) for (const f of await readdir(join(dir, d))) out.push(join(dir, d, f));
    return out.sort((a, b) => counter(a) - counter(b));
  };
  const fill = async (count: number, size?: (i: number) => number): Promise<Buffer[]> => {
    const s = open();
    await s.createUser(options.user, { mailboxes: [] });
    const bodies: Buffer[] = [];
    for (let i = 1; i <= count; i++) {
      const b = options.body(i, size?.(i));
      bodies.push(b);
      await s.deliver({ user: options.user, body: b });
    }
    await s.close();
    return bodies;
  };
  return { root: () => root, open, files, fill };
}
