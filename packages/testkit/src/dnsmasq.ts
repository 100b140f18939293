/**
 * A private dnsmasq (Debian's `dnsmasq-base`) answering for test zones on a
 * loopback high port, as PEERS.md describes: no upstream servers, no
 * /etc/hosts, `local=/zone/` so unknown names in a zone are NXDOMAIN.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPeer } from '@pigeonpost/wire/testing';
import type { PeerStatus } from '@pigeonpost/wire/testing';
import { killGroup, registerForExit } from './cleanup.js';
import { freePorts } from './ports.js';

export interface StartDnsmasqOptions {
  /** Zones answered locally (`local=/zone/`): unknown names under them are NXDOMAIN. */
  readonly zones: readonly string[];
  /** dnsmasq configuration lines for the records: `mx-host=…`, `host-record=…`, `cname=…`, `txt-record=…`. */
  readonly records: readonly string[];
  /** Loopback address to listen on. Default `127.0.0.1`. */
  readonly listenAddress?: string;
  /** Port. Default: a free one (retried on a clash). */
  readonly port?: number;
  /** `local-ttl` in seconds for the records. Default 300. */
  readonly ttl?: number;
}

export interface RunningDnsmasq {
  readonly port: number;
  /** `127.0.0.1:port`, for a resolver's `servers`. */
  readonly address: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Whether dnsmasq can run here (throws under CI=true when it is missing). */
export function dnsmasqAvailable(): PeerStatus {
  return findPeer('dnsmasq', { debianPackage: 'dnsmasq-base' });
}

export async function startDnsmasq(options: StartDnsmasqOptions): Promise<RunningDnsmasq> {
  const dir = await mkdtemp(join(tmpdir(), 'pigeonpost-dnsmasq-'));
  const listen = options.listenAddress ?? '127.0.0.1';
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePorts(1))[0];
    if (port === undefined) throw new Error('no free port');
    const conf = join(dir, 'dnsmasq.conf');
    await writeFile(
      conf,
      [
        `port=${port}`,
        `listen-address=${listen}`,
        'bind-interfaces',
        'no-resolv',
        'no-hosts',
        'no-poll',
        'user=root',
        `pid-file=${join(dir, 'dnsmasq.pid')}`,
        `local-ttl=${options.ttl ?? 300}`,
        ...options.zones.map((z) => `local=/${z}/`),
        ...options.records,
        '',
      ].join('\n'),
    );
    const child = spawn('dnsmasq', ['--keep-in-foreground', `--conf-file=${conf}`, '--log-facility=-'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    const pid = child.pid;
    if (pid === undefined) throw new Error('dnsmasq did not start');
    const unregister = registerForExit(pid, dir);
    let log = '';
    const outcome = await new Promise<'started' | 'failed'>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString('utf8');
        if (/started, version/.test(log)) resolve('started');
      });
      child.once('exit', () => resolve('failed'));
      child.once('error', () => resolve('failed'));
    });
    if (outcome === 'started') {
      child.stderr.resume();
      return {
        port,
        address: `${listen}:${port}`,
        pid,
        async stop() {
          const exited = new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) resolve();
            else child.once('exit', () => resolve());
          });
          killGroup(pid, 'SIGTERM');
          await exited;
          unregister();
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    unregister();
    lastError = log;
    if (!/in use/i.test(log) || options.port !== undefined) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`dnsmasq failed to start: ${lastError.trim()}`);
}
