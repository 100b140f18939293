/**
 * One buffer per thread for whole files that are decoded as soon as they are
 * read and then dropped: the index checkpoint and `dovecot-uidlist` (~10 MB
 * and ~6 MB for 100k messages). Memory fresh from the system costs a page
 * fault per 4 KiB page the first time it is written: on the VMs this
 * project is measured on ~17 µs a page, ~40 ms for a 100k checkpoint — a
 * quarter of a warm open — against ~1 ms to read it into pages already
 * mapped. Kept while in use now and then (a server opening folders), given
 * back after `SCRATCH_IDLE_MS` without use.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

/** Files larger than this get a buffer of their own (not kept). */
export const SCRATCH_MAX_BYTES = 64 * 1024 * 1024;
/** The buffer is dropped when not taken for this long (an idle process holds no scratch memory). */
export const SCRATCH_IDLE_MS = 10_000;

const scratch: { buf: Buffer | undefined; taken: boolean; timer: ReturnType<typeof setTimeout> | undefined } = { buf: undefined, taken: false, timer: undefined };

/**
 * A buffer of at least `size` bytes for a read that is decoded and let go
 * before `releaseScratch`: the thread's scratch buffer when it is free and
 * `size` is within SCRATCH_MAX_BYTES, a fresh one otherwise (a concurrent
 * reader, a huge file). Nothing read into it may be kept after the release
 * (decode into strings, numbers and copies, never views).
 */
export function takeScratch(size: number): Buffer {
  if (scratch.taken || size > SCRATCH_MAX_BYTES) return Buffer.allocUnsafe(size);
  scratch.taken = true;
  if (scratch.buf === undefined || scratch.buf.length < size) {
    // A quarter more than asked, so a file that grows a little does not need a new buffer at every read.
    scratch.buf = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX_BYTES, Math.max(64 * 1024, Math.ceil(size * 1.25))));
  }
  return scratch.buf;
}

/** Give back a buffer `takeScratch` or `readWholeIntoScratch` returned, or a part of it (a fresh one is simply dropped). */
export function releaseScratch(buf: Buffer): void {
  if (scratch.buf === undefined || buf.buffer !== scratch.buf.buffer || !scratch.taken) return;
  scratch.taken = false;
  if (scratch.timer === undefined) {
    scratch.timer = setTimeout(dropIdle, SCRATCH_IDLE_MS);
    scratch.timer.unref();
  } else scratch.timer.refresh();
}

function dropIdle(): void {
  scratch.timer = undefined;
  if (!scratch.taken) scratch.buf = undefined;
}

/**
 * The whole file at `path` in a scratch buffer (undefined when it does not
 * exist), read with synchronous calls when `sync` (readMode 'sync-batched')
 * or through libuv. Release it with `releaseScratch` once decoded.
 */
export async function readWholeIntoScratch(path: string, sync: boolean): Promise<Buffer | undefined> {
  if (sync) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const size = fstatSync(fd).size;
      const buf = takeScratch(size);
      try {
        return buf.subarray(0, readFullySync(fd, buf, size, 0));
      } catch (error) {
        releaseScratch(buf);
        throw error;
      }
    } finally {
      closeSync(fd);
    }
  }
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return await readHandleIntoScratch(fh, (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}

/** Up to `size` bytes of an open file, from its start, in a scratch buffer (released here if the read fails). */
export async function readHandleIntoScratch(fh: FileHandle, size: number): Promise<Buffer> {
  const buf = takeScratch(size);
  try {
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } catch (error) {
    releaseScratch(buf);
    throw error;
  }
}

/** Read `length` bytes at `position` of `fd` into the start of `buf`, fewer at the end of the file; the count read. */
export function readFullySync(fd: number, buf: Buffer, length: number, position: number): number {
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** The kept buffer's size (0: none), for tests. */
export function scratchBytes(): number {
  return scratch.buf?.length ?? 0;
}
