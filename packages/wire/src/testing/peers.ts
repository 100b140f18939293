import { spawnSync } from 'node:child_process';

/** The answer of `findPeer`: where the program is, or why it is not usable. */
export type PeerStatus =
  | { readonly available: true; readonly name: string; readonly path: string }
  | { readonly available: false; readonly name: string; readonly reason: string };

export interface FindPeerOptions {
  /** Arguments that make the program print its version and exit 0. Default `['--version']`. */
  readonly versionArgs?: readonly string[];
  /** The Debian package that provides it, named in the skip message. */
  readonly debianPackage?: string;
  /** Environment to read `CI` from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Whether a real peer program (openssl, swaks, dovecot, …) can be run for an
 * interop test. Outside CI a missing peer is reported so the test can skip and
 * say why; under `CI=true` a missing peer throws, because CI installs every
 * peer and a silent skip there would count a test that never ran.
 */
export function findPeer(command: string, options: FindPeerOptions = {}): PeerStatus {
  const env = options.env ?? process.env;
  const which = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' });
  const path = which.status === 0 ? which.stdout.trim() : '';
  let reason: string | undefined;
  if (path === '') {
    reason = `${command} is not installed${options.debianPackage ? ` (apt-get install ${options.debianPackage})` : ''}`;
  } else {
    const probe = spawnSync(path, [...(options.versionArgs ?? ['--version'])], { encoding: 'utf8', timeout: 10_000 });
    if (probe.error) reason = `${command} did not run: ${probe.error.message}`;
  }
  if (reason === undefined) return { available: true, name: command, path };
  if (env['CI'] === 'true') {
    throw new Error(`interop peer missing under CI=true: ${reason}`);
  }
  return { available: false, name: command, reason };
}
