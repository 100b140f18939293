/**
 * Last-resort cleanup: peers still running when the test process exits
 * (a test forgot `stop()`, or threw before it) are killed, process group and
 * all, and their temp folders removed. `process.on('exit')` handlers must be
 * synchronous, so this sends SIGKILL and removes with `rmSync`.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';

interface Registered {
  /** Process group id (the peer is started as a group leader). */
  readonly pgid: number;
  /** Temp folder to remove, or undefined to keep it. */
  readonly dir: string | undefined;
}

const running = new Set<Registered>();
let installed = false;

function onExit(): void {
  for (const entry of running) {
    killGroup(entry.pgid, 'SIGKILL');
    if (entry.dir !== undefined) {
      try {
        rmSync(entry.dir, { recursive: true, force: true });
      } catch {
        // Exiting anyway: a leftover temp folder is not worth a crash here.
      }
    }
  }
  running.clear();
}

/** Track a started peer until `unregister` is called. */
export function registerForExit(pgid: number, dir: string | undefined): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', onExit);
  }
  const entry: Registered = { pgid, dir };
  running.add(entry);
  return () => {
    running.delete(entry);
  };
}

/** Signal every process of a group; false when the group no longer exists. */
export function killGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** State and process group of a process from `/proc`, or undefined when it is gone (or not Linux). */
export function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', pgrp: Number(rest[2]) };
  } catch {
    return undefined;
  }
}

/**
 * Running, and not a zombie. A peer's children, and a daemonized master, are
 * reaped by PID 1, which may take a while under load; a zombie holds no port,
 * file or lock, so it counts as gone.
 */
export function processAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** Whether a process group has a live (non-zombie) member. Without `/proc`, whether it has any member. */
export function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return killGroup(pgid, 0);
  }
  return entries.some((name) => {
    if (!/^\d+$/.test(name)) return false;
    const stat = procStat(Number(name));
    return stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X';
  });
}

/**
 * End what is left of a process group: wait up to `graceMs` for its members
 * to exit on their own, SIGKILL the rest, and wait (up to `killWaitMs`) until
 * none is alive, so the caller can rely on it being gone when this resolves.
 * Returns false only if a member outlived SIGKILL that long.
 */
export async function endGroup(pgid: number, graceMs = 1000, killWaitMs = 5000): Promise<boolean> {
  const graceEnd = Date.now() + graceMs;
  while (groupAlive(pgid)) {
    if (Date.now() >= graceEnd) {
      killGroup(pgid, 'SIGKILL');
      const killEnd = Date.now() + killWaitMs;
      while (groupAlive(pgid)) {
        if (Date.now() >= killEnd) return false;
        await pause(25);
      }
      return true;
    }
    await pause(50);
  }
  return true;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
