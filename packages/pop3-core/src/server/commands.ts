/**
 * Commands as data (STYLE habit 9): each command declares the RFC 1939 states
 * that allow it, whether it is enabled on this session, and its handler. Its
 * argument grammar is `parseCommand` in the codec. One dispatcher
 * (`Pop3ServerSession.dispatch`) checks them in this order: known → state →
 * enabled → grammar → handler. The README's state table is this table.
 */
import type { Pop3Command, Pop3Verb } from '../codec/command.js';
import type { Pop3ServerSession } from './session.js';
import type { Pop3State } from './types.js';

export interface CommandSpec {
  /** States where the command is allowed (UPDATE allows none: it is entered only by QUIT). */
  readonly states: readonly Pop3State[];
  readonly handler: (session: Pop3ServerSession, command: Pop3Command) => Promise<void>;
}

const AUTHORIZATION: readonly Pop3State[] = ['authorization'];
const TRANSACTION: readonly Pop3State[] = ['transaction'];
const BOTH: readonly Pop3State[] = ['authorization', 'transaction'];

type Of<V extends Pop3Verb> = Extract<Pop3Command, { verb: V }>;

export const commandTable: Readonly<Record<Pop3Verb, CommandSpec>> = {
  // RFC 1939 §7 (USER, PASS, APOP), RFC 2595 §4 (STLS), RFC 5034 §4 (AUTH), RFC 6856 §2 (UTF8): AUTHORIZATION only.
  USER: { states: AUTHORIZATION, handler: (s, c) => s.cmdUser(c as Of<'USER'>) },
  PASS: { states: AUTHORIZATION, handler: (s, c) => s.cmdPass(c as Of<'PASS'>) },
  APOP: { states: AUTHORIZATION, handler: (s, c) => s.cmdApop(c as Of<'APOP'>) },
  STLS: { states: AUTHORIZATION, handler: (s) => s.cmdStls() },
  AUTH: { states: AUTHORIZATION, handler: (s, c) => s.cmdAuth(c as Of<'AUTH'>) },
  UTF8: { states: AUTHORIZATION, handler: (s) => s.cmdUtf8() },
  // RFC 1939 §5: TRANSACTION only.
  STAT: { states: TRANSACTION, handler: (s) => s.cmdStat() },
  LIST: { states: TRANSACTION, handler: (s, c) => s.cmdList(c as Of<'LIST'>) },
  UIDL: { states: TRANSACTION, handler: (s, c) => s.cmdUidl(c as Of<'UIDL'>) },
  RETR: { states: TRANSACTION, handler: (s, c) => s.cmdRetr(c as Of<'RETR'>) },
  TOP: { states: TRANSACTION, handler: (s, c) => s.cmdTop(c as Of<'TOP'>) },
  DELE: { states: TRANSACTION, handler: (s, c) => s.cmdDele(c as Of<'DELE'>) },
  RSET: { states: TRANSACTION, handler: (s) => s.cmdRset() },
  NOOP: { states: TRANSACTION, handler: (s) => s.cmdNoop() },
  // Both states: QUIT (RFC 1939 §4, §6), CAPA (RFC 2449 §5), LANG (RFC 6856 §3).
  QUIT: { states: BOTH, handler: (s) => s.cmdQuit() },
  CAPA: { states: BOTH, handler: (s) => s.cmdCapa() },
  LANG: { states: BOTH, handler: (s, c) => s.cmdLang(c as Of<'LANG'>) },
};
