import { PigeonpostError, type PigeonpostErrorOptions } from '@pigeonpost/wire';

export type RelayErrorCode =
  /** Another process holds the spool (its pid is in the message). */
  | 'ERR_RELAY_SPOOL_LOCKED'
  /** A queue file that cannot be read back (reported and moved to `corrupt/`, never deleted). */
  | 'ERR_RELAY_SPOOL_CORRUPT'
  /** `enqueue()` arguments that cannot be queued: no recipients, too many, an invalid address, a body over the size limit. */
  | 'ERR_RELAY_INVALID_MESSAGE'
  /** The message is larger than `maxMessageBytes`. */
  | 'ERR_RELAY_MESSAGE_TOO_BIG'
  /** No such queue ID. */
  | 'ERR_RELAY_NO_SUCH_MESSAGE'
  /** The relay is closed. */
  | 'ERR_RELAY_CLOSED';

const SMTP: Partial<Record<RelayErrorCode, { code: number; enhanced: string }>> = {
  ERR_RELAY_INVALID_MESSAGE: { code: 554, enhanced: '5.6.0' },
  ERR_RELAY_MESSAGE_TOO_BIG: { code: 552, enhanced: '5.3.4' },
  ERR_RELAY_SPOOL_LOCKED: { code: 451, enhanced: '4.3.0' },
  ERR_RELAY_CLOSED: { code: 421, enhanced: '4.3.2' },
};

export class RelayError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/RelayError');
  declare readonly code: RelayErrorCode;

  constructor(code: RelayErrorCode, message: string, options: Omit<PigeonpostErrorOptions, 'reply'> = {}) {
    const smtp = SMTP[code];
    super(code, message, { side: 'local', ...options, ...(smtp ? { reply: { smtp, text: message } } : {}) });
  }
}
