/**
 * `pigeonpost-queue`: Postfix's `mailq` / `postqueue -f` / `postsuper` for a
 * Pigeonpost spool. Reads need no lock (they work beside a running relay);
 * changes go to the relay that owns the spool as control requests, or, when
 * none runs, straight to the spool.
 */
import { Relay, writeControlRequest, type ControlRequest } from './relay.js';
import { Spool } from './spool.js';
import type { Deliverer } from './delivery.js';
import type { QueueEntry } from './types.js';

export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
}

const USAGE = `usage: pigeonpost-queue [--spool DIR] [--json] <command> [ID|ALL]

commands:
  list              the queue, like mailq (* active, ! held)
  show ID           one message: envelope, each recipient's state and last reply
  flush [ID]        try deferred messages now (all, or one)
  hold ID|ALL       keep messages from being tried
  release ID|ALL    let held messages be tried again
  delete ID|ALL     remove messages without delivering or bouncing them

The spool is --spool, or $PIGEONPOST_SPOOL.
`;

const neverDeliver: Deliverer = {
  deliver: () => Promise.reject(new Error('inspection only')),
  destinationOf: (domain) => domain,
  close: () => Promise.resolve(),
};

function date(ms: number): string {
  return new Date(ms).toUTCString().replace(' GMT', '');
}

/** mailq's layout. */
export function formatQueue(entries: readonly QueueEntry[]): string {
  if (entries.length === 0) return 'Mail queue is empty\n';
  const lines = ['-Queue ID-------------  --Size-- ----Arrival Time---- -Sender/Recipient-------'];
  let bytes = 0;
  for (const e of entries) {
    bytes += e.size;
    const mark = e.held ? '!' : e.active ? '*' : ' ';
    lines.push(`${(e.id + mark).padEnd(22)} ${String(e.size).padStart(8)} ${date(e.arrivalTime).slice(0, 20).padEnd(20)} ${e.from === '' ? 'MAILER-DAEMON' : e.from}`);
    for (const r of e.recipients) {
      if (r.status === 'delivered' || r.status === 'bounced') continue;
      if (r.lastReply) lines.push(`${' '.repeat(41)}(${r.remoteMta ? `host ${r.remoteMta} said: ` : ''}${r.lastReply.code} ${r.lastReply.enhanced ?? ''} ${r.lastReply.text})`.replace(/ +\)/, ')'));
      lines.push(`${' '.repeat(41)}${r.address}`);
    }
    lines.push('');
  }
  lines.push(`-- ${Math.ceil(bytes / 1024)} Kbytes in ${entries.length} Request${entries.length === 1 ? '' : 's'}.`);
  return `${lines.join('\n')}\n`;
}

function formatEntry(e: QueueEntry): string {
  const out = [
    `id: ${e.id}${e.held ? ' (held)' : ''}${e.active ? ' (active)' : ''}`,
    `from: ${e.from === '' ? '<>' : e.from}`,
    `size: ${e.size}`,
    `arrival: ${new Date(e.arrivalTime).toISOString()}`,
    `attempts: ${e.attempts}`,
    `next attempt: ${e.nextAttemptAt === undefined ? '-' : new Date(e.nextAttemptAt).toISOString()}`,
  ];
  if (e.dsn) out.push(`dsn: ${JSON.stringify(e.dsn)}`);
  for (const r of e.recipients) {
    out.push(`recipient: ${r.address} ${r.status} attempts=${r.attempts}${r.remoteMta ? ` host=${r.remoteMta}` : ''}`);
    if (r.lastReply) out.push(`  last reply: ${r.lastReply.code} ${r.lastReply.enhanced ?? ''} ${r.lastReply.text}`.replace(/  +/g, ' '));
  }
  return `${out.join('\n')}\n`;
}

/** Runs the command; resolves with the exit status (0 ok, 1 failure, 2 usage). */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const args = [...argv];
  let spoolDir = io.env['PIGEONPOST_SPOOL'];
  let json = false;
  const rest: string[] = [];
  while (args.length > 0) {
    const a = args.shift() as string;
    if (a === '--spool') spoolDir = args.shift();
    else if (a.startsWith('--spool=')) spoolDir = a.slice(8);
    else if (a === '--json') json = true;
    else if (a === '-h' || a === '--help') {
      io.stdout.write(USAGE);
      return 0;
    } else rest.push(a);
  }
  const [command, target] = rest;
  if (spoolDir === undefined || spoolDir === '' || command === undefined) {
    io.stderr.write(USAGE);
    return 2;
  }
  try {
    switch (command) {
      case 'list': {
        const entries = await Relay.inspect(spoolDir);
        io.stdout.write(json ? `${JSON.stringify(entries, null, 2)}\n` : formatQueue(entries));
        return 0;
      }
      case 'show': {
        if (target === undefined) throw usage('show needs a queue ID');
        const entry = (await Relay.inspect(spoolDir)).find((e) => e.id === target);
        if (entry === undefined) {
          io.stderr.write(`pigeonpost-queue: no message ${target}\n`);
          return 1;
        }
        io.stdout.write(json ? `${JSON.stringify(entry, null, 2)}\n` : formatEntry(entry));
        return 0;
      }
      case 'flush':
      case 'hold':
      case 'release':
      case 'delete': {
        if (command !== 'flush' && target === undefined) throw usage(`${command} needs a queue ID or ALL`);
        const all = target === undefined || target === 'ALL';
        const request: ControlRequest = { op: command, ...(all ? {} : { id: target }) };
        const owner = await Spool.owner(spoolDir);
        if (owner !== undefined) {
          if (command === 'delete' && all) {
            for (const e of await Relay.inspect(spoolDir)) await writeControlRequest(spoolDir, { op: 'delete', id: e.id });
          } else {
            await writeControlRequest(spoolDir, request);
          }
          io.stdout.write(`pigeonpost-queue: ${command} requested from the relay (pid ${owner})\n`);
          return 0;
        }
        const relay = await Relay.open({ spoolDir, deliverer: neverDeliver, hostname: 'localhost', start: false });
        try {
          const ids = all ? relay.list().map((e) => e.id) : [target];
          for (const id of ids) {
            if (command === 'hold') await relay.hold(id);
            else if (command === 'release') await relay.release(id);
            else if (command === 'delete') await relay.delete(id);
          }
          // flush without a running relay: the next start tries them anyway; say so.
          io.stdout.write(command === 'flush' ? 'pigeonpost-queue: no relay is running on this spool; messages are tried when it starts\n' : `pigeonpost-queue: ${command}: ${ids.length} message(s)\n`);
        } finally {
          await relay.close();
        }
        return 0;
      }
      default:
        throw usage(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`pigeonpost-queue: ${error.message}\n${USAGE}`);
      return 2;
    }
    io.stderr.write(`pigeonpost-queue: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

class UsageError extends Error {}
function usage(message: string): UsageError {
  return new UsageError(message);
}
