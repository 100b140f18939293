/**
 * A `Pop3Backend` over `@pigeonpost/mailbox-store` (or any store with the
 * same shape): the POP3 maildrop is `UserMailStore.openPop3()` — a snapshot
 * of INBOX with the maildrop lock held, marks applied atomically on commit.
 *
 * The types below are structural: this package never imports the store
 * (DESIGN: protocol packages define the backend they need), and any object
 * shaped like `MailStore` fits, so the server never knows which backend
 * (memory, Maildir, a database) holds the mail.
 */
import { timingSafeEqual } from 'node:crypto';
import { Secret } from '@pigeonpost/wire';
import { pop3Reply } from '../errors.js';
import type { Pop3Backend, Pop3ServerMaildrop } from './types.js';

/** The part of mailbox-store's `Pop3Maildrop` this adapter uses. */
export interface StorePop3Maildrop {
  messages(): readonly { readonly number: number; readonly uidl: string; readonly size: number }[];
  read(number: number, options?: { readonly lines?: number }): AsyncIterable<Uint8Array>;
  /** Optional (mailbox-store's maildrops have it): the whole message when it is in memory now, else undefined. */
  readNow?(number: number): Uint8Array | undefined;
  markDeleted(number: number): void;
  commit(options?: { readonly seen?: readonly number[] }): Promise<unknown>;
  release(): Promise<void>;
}

/** The part of mailbox-store's `MailStore` this adapter uses. */
export interface Pop3MailStore {
  user(name: string): Promise<{ openPop3(): Promise<StorePop3Maildrop> }>;
}

export interface MailStoreBackendOptions {
  readonly store: Pop3MailStore;
  /**
   * Plain passwords by login name (tests, small set-ups); also enables APOP.
   * Give `verifyPassword` instead to check hashes (wire's `verifyPassword`).
   */
  readonly users?: Readonly<Record<string, string | Secret<string>>>;
  /** Check a password; wins over `users`. */
  readonly verifyPassword?: (user: string, password: Secret<string>) => Promise<boolean>;
  /** APOP's shared secret (the plain password); wins over `users`. Without either, APOP is off. */
  readonly getApopSecret?: (user: string) => Promise<Secret<string> | undefined>;
  /** The store user of a login name. Default: the login name itself. Return undefined for "no maildrop". */
  readonly storeUser?: (login: string) => string | undefined;
}

const storeCode = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;

/** Turn the store's error codes into POP3 replies (mailbox-store README, "Errors": the POP3 column). */
function translate(error: unknown): unknown {
  switch (storeCode(error)) {
    case 'ERR_STORE_IN_USE':
      return pop3Reply('IN-USE', 'Maildrop is locked by another POP3 session');
    case 'ERR_STORE_NO_SUCH_USER':
      return pop3Reply('SYS/PERM', 'No maildrop for this user');
    case 'ERR_STORE_NO_SUCH_MESSAGE':
      return pop3Reply(undefined, 'Message was removed by another session');
    case 'ERR_STORE_CLOSED':
      return pop3Reply('SYS/TEMP', 'Mail store is closed, try again later');
    default:
      return error;
  }
}

async function* translated(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield* source;
  } catch (error) {
    throw translate(error);
  }
}

function equalSecrets(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A `Pop3Backend` over a mailbox store and user credentials. */
export function mailStoreBackend(options: MailStoreBackendOptions): Pop3Backend {
  const users = options.users;
  const secretOf = (user: string): Secret<string> | undefined => {
    const value = users !== undefined && Object.hasOwn(users, user) ? users[user] : undefined;
    return value === undefined ? undefined : Secret.from(value);
  };
  const verify =
    options.verifyPassword ??
    (users === undefined
      ? undefined
      : (user: string, password: Secret<string>): Promise<boolean> => {
          const secret = secretOf(user);
          // Compare against something even for unknown users: same work either way.
          return Promise.resolve(equalSecrets(secret?.expose() ?? '\0unknown', password.expose()) && secret !== undefined);
        });
  const apop = options.getApopSecret ?? (users === undefined ? undefined : (user: string) => Promise.resolve(secretOf(user)));
  const backend: Pop3Backend = {
    async openMaildrop(login) {
      const name = options.storeUser === undefined ? login : options.storeUser(login);
      if (name === undefined) throw pop3Reply('SYS/PERM', 'No maildrop for this user');
      let drop: StorePop3Maildrop;
      try {
        drop = await (await options.store.user(name)).openPop3();
      } catch (error) {
        throw translate(error);
      }
      return storeMaildrop(drop);
    },
    ...(verify === undefined ? {} : { verifyPassword: ({ user, password }) => verify(user, password) }),
    ...(apop === undefined ? {} : { getApopSecret: ({ user }) => apop(user) }),
  };
  return backend;
}

/** Wrap a store's POP3 maildrop as this package's `Pop3ServerMaildrop`. */
export function storeMaildrop(drop: StorePop3Maildrop): Pop3ServerMaildrop {
  const messages = drop.messages().map((m) => ({ uidl: m.uidl, size: m.size }));
  const readNow = drop.readNow?.bind(drop);
  return {
    messages,
    read: (number, readOptions) => translated(drop.read(number, readOptions)),
    ...(readNow === undefined
      ? {}
      : {
          readNow: (number: number) => {
            try {
              return readNow(number);
            } catch {
              // Never an answer here: read() reports it.
              return undefined;
            }
          },
        }),
    async commit({ deleted, seen }) {
      try {
        for (const n of deleted) drop.markDeleted(n);
        return await drop.commit({ seen });
      } catch (error) {
        throw translate(error);
      }
    },
    release: () => drop.release(),
  };
}
