import { PigeonpostError } from '@pigeonpost/wire';
import type { PigeonpostErrorOptions, ProtocolReply } from '@pigeonpost/wire';

/** Every error code of the store, documented in the README. */
export type StoreErrorCode =
  | 'ERR_STORE_NO_SUCH_USER'
  | 'ERR_STORE_USER_EXISTS'
  | 'ERR_STORE_NO_SUCH_MAILBOX'
  | 'ERR_STORE_MAILBOX_EXISTS'
  | 'ERR_STORE_INVALID_NAME'
  | 'ERR_STORE_INVALID_FLAG'
  | 'ERR_STORE_CANNOT_DELETE'
  | 'ERR_STORE_NO_SUCH_MESSAGE'
  | 'ERR_STORE_READ_ONLY'
  | 'ERR_STORE_OVER_QUOTA'
  | 'ERR_STORE_TOO_LARGE'
  | 'ERR_STORE_LIMIT'
  | 'ERR_STORE_IN_USE'
  | 'ERR_STORE_CORRUPT'
  | 'ERR_STORE_IO'
  | 'ERR_STORE_CLOSED';

/** The reply each protocol gives for each code (IMAP response codes from RFC 5530/9051/9208, POP3 from RFC 2449/3206, SMTP from RFC 3463). */
const replies: Record<StoreErrorCode, Omit<ProtocolReply, 'text'>> = {
  ERR_STORE_NO_SUCH_USER: { smtp: { code: 550, enhanced: '5.1.1' }, imap: { status: 'NO', code: 'AUTHENTICATIONFAILED' }, pop3: { code: 'AUTH' } },
  ERR_STORE_USER_EXISTS: { imap: { status: 'NO', code: 'ALREADYEXISTS' }, pop3: {} },
  ERR_STORE_NO_SUCH_MAILBOX: { smtp: { code: 550, enhanced: '5.2.0' }, imap: { status: 'NO', code: 'NONEXISTENT' }, pop3: {} },
  ERR_STORE_MAILBOX_EXISTS: { imap: { status: 'NO', code: 'ALREADYEXISTS' }, pop3: {} },
  ERR_STORE_INVALID_NAME: { imap: { status: 'NO', code: 'CANNOT' }, pop3: {} },
  ERR_STORE_INVALID_FLAG: { imap: { status: 'BAD' }, pop3: {} },
  ERR_STORE_CANNOT_DELETE: { imap: { status: 'NO', code: 'CANNOT' }, pop3: {} },
  ERR_STORE_NO_SUCH_MESSAGE: { imap: { status: 'NO', code: 'EXPUNGEISSUED' }, pop3: {} },
  ERR_STORE_READ_ONLY: { imap: { status: 'NO', code: 'READ-ONLY' }, pop3: {} },
  ERR_STORE_OVER_QUOTA: { smtp: { code: 552, enhanced: '5.2.2' }, imap: { status: 'NO', code: 'OVERQUOTA' }, pop3: {} },
  ERR_STORE_TOO_LARGE: { smtp: { code: 552, enhanced: '5.3.4' }, imap: { status: 'NO', code: 'TOOBIG' }, pop3: {} },
  ERR_STORE_LIMIT: { smtp: { code: 452, enhanced: '4.3.1' }, imap: { status: 'NO', code: 'LIMIT' }, pop3: {} },
  ERR_STORE_IN_USE: { smtp: { code: 450, enhanced: '4.2.0' }, imap: { status: 'NO', code: 'INUSE' }, pop3: { code: 'IN-USE' } },
  ERR_STORE_CORRUPT: { smtp: { code: 451, enhanced: '4.3.0' }, imap: { status: 'NO', code: 'SERVERBUG' }, pop3: { code: 'SYS/TEMP' } },
  ERR_STORE_IO: { smtp: { code: 451, enhanced: '4.3.0' }, imap: { status: 'NO', code: 'UNAVAILABLE' }, pop3: { code: 'SYS/TEMP' } },
  ERR_STORE_CLOSED: { smtp: { code: 421, enhanced: '4.3.2' }, imap: { status: 'BYE', code: 'UNAVAILABLE' }, pop3: { code: 'SYS/TEMP' } },
};

/** Store failures. `reply` is filled in from the code, with the message as text. */
export class StoreError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/StoreError');
  declare readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options: Omit<PigeonpostErrorOptions, 'reply'> = {}) {
    // The peer did not break a protocol: a store error is about the request's target or the environment.
    super(code, message, { side: 'none', ...options, reply: { ...replies[code], text: message.replace(/[\r\n]+/g, ' ') } });
  }
}
