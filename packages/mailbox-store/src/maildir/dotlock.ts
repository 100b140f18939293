/**
 * Dovecot-compatible dot-locks (Dovecot lib/file-dotlock.c): `<file>.lock`
 * created exclusively (see tryCreate), holding `<pid>:<hostname>`. A lock is
 * overridden (unlinked, then taken) when
 *  - it names a process on this host that no longer exists (kill(pid, 0)
 *    fails with ESRCH), or names this process but this process does not hold
 *    it (a leftover from an earlier process with the same PID); or
 *  - neither the lock file nor the file it protects changed for
 *    `staleTimeoutMs` (Dovecot: 120 s for dovecot-uidlist), which covers locks
 *    of other hosts (NFS) and empty lock files.
 * Before unlinking, the lock file is checked to be the same inode we judged
 * stale, so a fresh lock taken meanwhile by someone else survives.
 *
 * Two holders in one process (two stores on one Maildir) contend like two
 * processes: the PID in the file is ours, but the process-wide registry
 * below says it is held, so it is not stale.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, unlinkSync, writeFileSync } from 'node:fs';
import { link, lstat, open, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Clock } from '@pigeonpost/wire';
import { StoreError } from '../errors.js';

/** Lock paths held by this process, so a second holder in the same process waits instead of overriding. */
const heldHere = new Set<string>();

export interface DotlockOptions {
  readonly clock: Clock;
  /** The file the lock protects; its changes count as the holder being alive. */
  readonly protects?: string;
  /** No change for this long: stale. Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT is 120 s. `Infinity`: only the PID decides. */
  readonly staleTimeoutMs: number;
  /** Give up waiting after this long (ERR_STORE_IN_USE). Dovecot waits stale timeout + 2 s. 0: try once. */
  readonly timeoutMs: number;
  /**
   * Take and release the lock with synchronous calls (a few microseconds each on a local
   * file system, against a libuv round trip each: the lock of every change to a folder).
   * Waiting for a held lock and judging it stale stay asynchronous.
   */
  readonly sync?: boolean;
}

export interface Dotlock {
  readonly path: string;
  /** Refresh the lock's mtime (a long operation still holds it). */
  touch(): Promise<void>;
  release(): Promise<void>;
  /** Replace `target` with the lock file itself (Dovecot's file_dotlock_replace): the lock's content becomes the file. */
  replaceWith?(target: string): Promise<void>;
}

const myHost = hostname();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Which file a lock file is: its inode and birth time (a file made after
 * ours was removed may get the same inode number; not the same birth time,
 * where the file system keeps one: 0 where it does not).
 */
interface LockIdentity {
  readonly ino: bigint;
  readonly birthtimeNs: bigint;
}

async function identityOf(path: string): Promise<LockIdentity> {
  const st = await lstat(path, { bigint: true });
  return { ino: st.ino, birthtimeNs: st.birthtimeNs };
}

function identityOfSync(path: string): LockIdentity {
  const st = lstatSync(path, { bigint: true });
  return { ino: st.ino, birthtimeNs: st.birthtimeNs };
}

function lockContent(): string {
  return `${process.pid}:${myHost}`;
}

function tempNameFor(path: string): string {
  return `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

/** tryCreate, with synchronous calls. */
function tryCreateSync(path: string): LockIdentity | undefined {
  const temp = tempNameFor(path);
  writeFileSync(temp, lockContent(), { mode: 0o666, flag: 'wx' });
  try {
    linkSync(temp, path);
    return identityOfSync(temp);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw error;
  } finally {
    try {
      unlinkSync(temp);
    } catch {
      // gone already
    }
  }
}

/** The identity of the lock file we made, or undefined when the lock is taken. */
async function tryCreate(path: string): Promise<LockIdentity | undefined> {
  // The lock appears with its content at once: a temp file holding `pid:host`
  // is linked to the lock name, and link(2) fails with EEXIST exactly like
  // O_CREAT|O_EXCL (Dovecot does this with dotlock_use_excl=no, and for NFS).
  // With a bare O_EXCL create, a crash between create and write would leave an
  // empty lock that only the stale timeout (120 s) clears; an empty lock from
  // another program is still handled that way.
  const temp = tempNameFor(path);
  await writeFile(temp, lockContent(), { mode: 0o666, flag: 'wx' });
  try {
    await link(temp, path);
    // Ours from here on: remembered to tell our lock from one that replaced it (see release()).
    return await identityOf(temp);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

interface Observed {
  ino: number;
  mtimeMs: number;
  size: number;
  lastChange: number;
}

/** Decide whether the lock at `path` is stale; unlinks it when it is. Returns true when the caller should retry at once. */
async function checkStale(path: string, options: DotlockOptions, seen: { lock?: Observed; file?: Observed }): Promise<boolean> {
  let st;
  try {
    st = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw error;
  }
  const now = options.clock.now();
  const changed = seen.lock === undefined || seen.lock.ino !== st.ino || seen.lock.mtimeMs !== st.mtimeMs || seen.lock.size !== st.size;
  if (changed) {
    // First look: date the last change from the file itself (Dovecot does the same), later ones from when we saw it change.
    const lastChange = seen.lock === undefined ? Math.min(now, st.mtimeMs) : now;
    seen.lock = { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, lastChange };
  }
  let content: string;
  try {
    content = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw error;
  }
  const m = /^(\d+):(.*)$/.exec(content.trim());
  if (m && m[2] === myHost) {
    const pid = Number(m[1]);
    const alive = pid === process.pid ? heldHere.has(path) : pidAlive(pid);
    if (alive) return false;
    return override(path, st.ino);
  }
  if (!Number.isFinite(options.staleTimeoutMs)) return false;
  let lastChange = seen.lock!.lastChange;
  if (options.protects !== undefined) {
    try {
      const fst = await stat(options.protects);
      if (seen.file === undefined) seen.file = { ino: fst.ino, mtimeMs: fst.mtimeMs, size: fst.size, lastChange: Math.min(now, fst.mtimeMs) };
      else if (seen.file.ino !== fst.ino || seen.file.mtimeMs !== fst.mtimeMs || seen.file.size !== fst.size) {
        seen.file = { ino: fst.ino, mtimeMs: fst.mtimeMs, size: fst.size, lastChange: now };
      }
      lastChange = Math.max(lastChange, seen.file.lastChange);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  if (now > lastChange + options.staleTimeoutMs) return override(path, st.ino);
  return false;
}

async function override(path: string, ino: number): Promise<boolean> {
  try {
    const again = await lstat(path);
    if (again.ino !== ino) return true; // replaced meanwhile: look again
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return true;
}

/** True when the lock file at `path` is still the one we made; false when it is gone or another. */
async function stillOurs(path: string, ours: LockIdentity, sync: boolean): Promise<boolean> {
  try {
    const now = sync ? identityOfSync(path) : await identityOf(path);
    return now.ino === ours.ino && now.birthtimeNs === ours.birthtimeNs;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/** Take the lock at `lockPath`, waiting (polling with a short random back-off) up to `timeoutMs`. */
export async function acquireDotlock(lockPath: string, options: DotlockOptions): Promise<Dotlock> {
  const start = options.clock.now();
  const seen: { lock?: Observed; file?: Observed } = {};
  let delay = 2;
  let ours: LockIdentity | undefined;
  for (;;) {
    // Within this process, wait without touching the file while a holder here has it.
    if (!heldHere.has(lockPath)) {
      ours = options.sync === true ? tryCreateSync(lockPath) : await tryCreate(lockPath);
      if (ours !== undefined) break;
      if (await checkStale(lockPath, options, seen)) continue;
    }
    if (options.clock.now() - start >= options.timeoutMs) {
      throw new StoreError('ERR_STORE_IN_USE', `lock ${lockPath} is held by another process`);
    }
    await sleep(options.clock, delay + Math.floor(Math.random() * delay));
    delay = Math.min(delay * 2, 100);
  }
  heldHere.add(lockPath);
  let released = false;
  return {
    path: lockPath,
    async touch() {
      const now = new Date(options.clock.now());
      await utimes(lockPath, now, now).catch(() => undefined);
    },
    async release() {
      if (released) return;
      released = true;
      heldHere.delete(lockPath);
      // Only our own lock file is removed: one that another process made after judging ours
      // stale (no change for the stale timeout) is theirs now, as Dovecot's file_dotlock_delete
      // checks ("our dotlock file was overridden").
      const sync = options.sync === true;
      if (!(await stillOurs(lockPath, ours, sync))) return;
      try {
        if (sync) unlinkSync(lockPath);
        else await unlink(lockPath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    },
    async replaceWith(target: string) {
      if (released) throw new Error('lock already released');
      released = true;
      heldHere.delete(lockPath);
      // Never put another process's lock file in the target's place (file_dotlock_replace checks too).
      if (!(await stillOurs(lockPath, ours, options.sync === true))) throw new StoreError('ERR_STORE_IN_USE', `lock ${lockPath} was overridden by another process: ${target} not replaced`);
      await rename(lockPath, target);
    },
  };
}

/**
 * Write `content` to `target` through its dot-lock file, as Dovecot replaces dovecot-keywords: lock, write the lock file, rename it over the target.
 * `growMtime`: the new file's mtime (in whole seconds) is made later than the old one's, as Dovecot's
 * maildir_keywords_write_fd() does ("mtime must grow every time"): Dovecot re-reads dovecot-keywords only when
 * its st_mtime (seconds) differs from the one it read last, so a rewrite within the same second would go unseen.
 */
export async function writeThroughDotlock(target: string, content: string, options: DotlockOptions, fsync: boolean, growMtime = false): Promise<void> {
  const lockPath = `${target}.lock`;
  const lock = await acquireDotlock(lockPath, options);
  try {
    await writeFile(lockPath, content);
    if (growMtime) await growMtimeOver(lockPath, target, options.clock);
    if (fsync) {
      const fh = await open(lockPath, 'r+');
      await fh.sync().finally(() => fh.close());
    }
    await lock.replaceWith!(target);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Give `path` an mtime later, in whole seconds, than `previous`'s (when `previous` exists): at least the next second. */
export async function growMtimeOver(path: string, previous: string, clock: Clock): Promise<void> {
  let oldSec: number;
  try {
    oldSec = Math.floor((await stat(previous)).mtimeMs / 1000);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const st = await stat(path);
  if (Math.floor(st.mtimeMs / 1000) > oldSec) return;
  const nowSec = Math.floor(clock.now() / 1000);
  const mtime = new Date(Math.max(nowSec, oldSec + 1) * 1000);
  await utimes(path, st.atime, mtime);
}
