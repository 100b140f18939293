/**
 * Commands as data (STYLE habit 9, after WildDuck's imap-core): each command
 * declares the transaction states that allow it, the switch that enables it,
 * whether a submission server needs AUTH first, and its handler. Its argument
 * grammar is `parseCommand` in the codec. One dispatcher
 * (`SmtpServerSession.dispatch`) checks them in this order: enabled → state →
 * AUTH → grammar → handler. The README's state table is this table.
 */
import type { SmtpCommand, SmtpVerb } from '../codec/command.js';
import type { SmtpServerSession } from './session.js';

/** Where the session is in the mail transaction. */
export type TransactionState =
  /** Connected (or just after STARTTLS / XCLIENT): no EHLO yet. */
  | 'fresh'
  /** After EHLO/HELO/LHLO, no transaction. */
  | 'greeted'
  /** After MAIL. */
  | 'mail'
  /** After at least one accepted RCPT. */
  | 'rcpt'
  /** Between BDAT chunks (RFC 3030). */
  | 'bdat';

export interface CommandSpec {
  readonly states: readonly TransactionState[];
  readonly enabled: (session: SmtpServerSession) => boolean;
  /** Refused with 530 5.7.0 before AUTH when the server requires it (RFC 4954 §6). */
  readonly needsAuth: boolean;
  readonly handler: (session: SmtpServerSession, command: SmtpCommand) => Promise<void>;
}

const ANY: readonly TransactionState[] = ['fresh', 'greeted', 'mail', 'rcpt', 'bdat'];
const NOT_IN_BDAT: readonly TransactionState[] = ['fresh', 'greeted', 'mail', 'rcpt'];
const always = (): boolean => true;

type Of<V extends SmtpVerb> = Extract<SmtpCommand, { verb: V }>;

export const commandTable: Readonly<Record<SmtpVerb, CommandSpec>> = {
  HELO: { states: NOT_IN_BDAT, enabled: (s) => s.isEnabled('smtp'), needsAuth: false, handler: (s, c) => s.cmdHello(c as Of<'HELO'>) },
  EHLO: { states: NOT_IN_BDAT, enabled: (s) => s.isEnabled('smtp'), needsAuth: false, handler: (s, c) => s.cmdHello(c as Of<'EHLO'>) },
  LHLO: { states: NOT_IN_BDAT, enabled: (s) => s.isEnabled('lmtp'), needsAuth: false, handler: (s, c) => s.cmdHello(c as Of<'LHLO'>) },
  MAIL: { states: ['greeted'], enabled: always, needsAuth: true, handler: (s, c) => s.cmdMail(c as Of<'MAIL'>) },
  RCPT: { states: ['mail', 'rcpt'], enabled: always, needsAuth: true, handler: (s, c) => s.cmdRcpt(c as Of<'RCPT'>) },
  DATA: { states: ['rcpt'], enabled: always, needsAuth: true, handler: (s) => s.cmdData() },
  BDAT: { states: ['rcpt', 'bdat'], enabled: (s) => s.isEnabled('chunking'), needsAuth: true, handler: (s, c) => s.cmdBdat(c as Of<'BDAT'>) },
  RSET: { states: ANY, enabled: always, needsAuth: false, handler: (s) => s.cmdRset() },
  NOOP: { states: ANY, enabled: always, needsAuth: false, handler: (s, c) => s.cmdSimple(c) },
  QUIT: { states: ANY, enabled: always, needsAuth: false, handler: (s, c) => s.cmdSimple(c) },
  HELP: { states: NOT_IN_BDAT, enabled: always, needsAuth: false, handler: (s, c) => s.cmdSimple(c) },
  VRFY: { states: NOT_IN_BDAT, enabled: always, needsAuth: false, handler: (s, c) => s.cmdSimple(c) },
  EXPN: { states: NOT_IN_BDAT, enabled: always, needsAuth: false, handler: (s, c) => s.cmdSimple(c) },
  STARTTLS: { states: ['greeted'], enabled: (s) => s.isEnabled('starttls'), needsAuth: false, handler: (s) => s.cmdStartTls() },
  AUTH: { states: ['greeted'], enabled: (s) => s.isEnabled('auth'), needsAuth: false, handler: (s, c) => s.cmdAuth(c as Of<'AUTH'>) },
  XCLIENT: { states: ['fresh', 'greeted'], enabled: (s) => s.isEnabled('xclient'), needsAuth: false, handler: (s, c) => s.cmdXclient(c as Of<'XCLIENT'>) },
};
