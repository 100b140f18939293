/**
 * Last-resort cleanup: peers still running when the test process exits
 * (a test forgot `stop()`, or threw before it) are killed, process group and
 * all, and their temp folders removed. `process.on('exit')` handlers must be
 * synchronous, so this sends SIGKILL and removes with `rmSync`.
 */
import { rmSync } from 'node:fs';

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
