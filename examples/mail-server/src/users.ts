import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hashPassword, Secret, verifyPassword } from '@pigeonpost/wire';
import type { UserConfig } from './config.js';

/** The development users' names, created in the first local domain when the config names no users. */
export const devUserNames = ['alice', 'bob'] as const;

export interface DevUser {
  readonly address: string;
  readonly password: string;
}

/**
 * Development users with random passwords, kept in `<dataDir>/dev-users.json`
 * (mode 0600) so they stay the same from one start to the next. For
 * development only: the passwords are stored in clear so they can be printed.
 */
export async function ensureDevUsers(dataDir: string, domain: string): Promise<readonly DevUser[]> {
  const file = join(dataDir, 'dev-users.json');
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { users?: DevUser[] };
    const users = saved.users?.filter((u) => typeof u.address === 'string' && typeof u.password === 'string' && u.address.endsWith(`@${domain}`));
    if (users !== undefined && users.length === devUserNames.length) return users;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof SyntaxError)) throw error;
  }
  const users = devUserNames.map((name) => ({ address: `${name}@${domain}`, password: randomBytes(12).toString('base64url') }));
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify({ note: 'Development users of the Pigeonpost example server. Not for production.', users }, null, 2)}\n`, { mode: 0o600 });
  return users;
}

/**
 * Turn plain development users into configured users (hashing their
 * passwords). The first one also receives `postmaster@` each local domain,
 * which RFC 5321 §4.5.1 requires a domain to accept.
 */
export async function hashDevUsers(users: readonly DevUser[], domains: readonly string[]): Promise<UserConfig[]> {
  return Promise.all(
    users.map(async (u, i) => ({
      address: u.address,
      passwordHash: await hashPassword(new Secret(u.password)),
      ...(i === 0 ? { aliases: domains.map((d) => `postmaster@${d}`) } : {}),
    })),
  );
}

/**
 * Who receives mail here and who may log in: the local domains and the users
 * with their aliases. Addresses compare case-insensitively; the store user
 * (the Maildir owner) is the user's main address.
 */
export class UserDirectory {
  readonly #domains: ReadonlySet<string>;
  readonly #byAddress = new Map<string, UserConfig>();
  readonly #users: readonly UserConfig[];
  #dummyHash: Promise<string> | undefined;

  constructor(domains: readonly string[], users: readonly UserConfig[]) {
    this.#domains = new Set(domains.map((d) => d.toLowerCase()));
    this.#users = users;
    for (const u of users) {
      for (const a of [u.address, ...(u.aliases ?? [])]) this.#byAddress.set(a.toLowerCase(), u);
    }
  }

  get users(): readonly UserConfig[] {
    return this.#users;
  }

  get domains(): readonly string[] {
    return [...this.#domains];
  }

  isLocalDomain(domain: string): boolean {
    return this.#domains.has(domain.toLowerCase().replace(/\.$/, ''));
  }

  /** The store user that mail for `address` goes to, or undefined. */
  storeUserFor(address: string): string | undefined {
    return this.#byAddress.get(address.toLowerCase())?.address;
  }

  /** The store user of a login name (the user's main address), or undefined. */
  storeUserForLogin(login: string): string | undefined {
    const user = this.#byAddress.get(login.toLowerCase());
    return user !== undefined && user.address === login.toLowerCase() ? user.address : undefined;
  }

  /** May the user logged in as `login` send with `address` as its envelope sender? Its own address and aliases only. */
  mayUseSender(login: string, address: string): boolean {
    const owner = this.storeUserForLogin(login);
    return owner !== undefined && this.#byAddress.get(address.toLowerCase())?.address === owner;
  }

  /**
   * Check a login. Unknown logins are checked against a throw-away hash, so
   * the answer takes as long either way and does not tell which users exist.
   */
  async verify(login: string, password: Secret<string>): Promise<boolean> {
    const user = this.storeUserForLogin(login) === undefined ? undefined : this.#byAddress.get(login.toLowerCase());
    if (user === undefined) {
      this.#dummyHash ??= hashPassword(new Secret(randomBytes(16).toString('hex')));
      await verifyPassword(password, await this.#dummyHash);
      return false;
    }
    return verifyPassword(password, user.passwordHash);
  }
}
