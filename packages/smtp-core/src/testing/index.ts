/**
 * Test helpers for SMTP servers built on @pigeonpost/smtp-core: drive a
 * server session without sockets (`createSmtpTestSession`) and check it
 * against `C:`/`S:` transcripts (`runSmtpTranscript`), the format of the RFCs'
 * own examples.
 */
import type { Clock } from '@pigeonpost/wire';
import { createSessionHarness, runTranscript, VirtualClock } from '@pigeonpost/wire/testing';
import type { SessionHarness, TranscriptResult } from '@pigeonpost/wire/testing';
import { createSmtpServerSession } from '../server/session.js';
import type { SmtpServerSession } from '../server/session.js';
import type { SmtpConnectionInfo, SmtpServerSessionOptions } from '../server/types.js';

export interface SmtpTestSessionOptions extends Omit<SmtpServerSessionOptions, 'clock'> {
  /** Default: a `VirtualClock` at 0 (advance it yourself). */
  readonly clock?: Clock;
  /** The connection as the session sees it. Default: 192.0.2.1, plaintext, STARTTLS available. */
  readonly connection?: Partial<SmtpConnectionInfo>;
  /** Complete a requested TLS handshake at once (simulated). Default true. */
  readonly autoTls?: boolean;
}

/** The session, its clock, and wire's `SessionHarness` calls: `writes`, `events`, `isClosed`, `take`, `send`. */
export interface SmtpTestSession extends Pick<SessionHarness, 'writes' | 'events' | 'isClosed' | 'take' | 'send'> {
  readonly session: SmtpServerSession;
  readonly clock: Clock;
}

/** Start a session on an in-memory transport (wire's `createSessionHarness`) and wait for its greeting. */
export async function createSmtpTestSession(options: SmtpTestSessionOptions = {}): Promise<SmtpTestSession> {
  const clock = options.clock ?? new VirtualClock(0);
  const harness = createSessionHarness(options.autoTls === undefined ? {} : { autoTls: options.autoTls });
  const connection: SmtpConnectionInfo = { remoteAddress: '192.0.2.1', remotePort: 40000, startTlsAvailable: true, ...options.connection };
  const session: SmtpServerSession = createSmtpServerSession({ ...options, clock }, harness.transport, connection);
  harness.attach(session);
  const started = session.start();
  if (!(clock instanceof VirtualClock) || (options.greetingDelayMs ?? 0) === 0) await started;
  const { writes, events, isClosed, take, send } = harness;
  return { session, clock, writes, events, isClosed, take, send };
}

export type { TranscriptResult } from '@pigeonpost/wire/testing';

/**
 * Run a `C:`/`S:` transcript against a fresh session (wire's `runTranscript`).
 * Consecutive `C:` lines are sent as one pipelined chunk (each followed by
 * CRLF), or one byte at a time with `byteByByte`; consecutive `S:` lines are
 * the replies expected next. In an `S:` line, `*` matches any text. Other
 * lines are ignored. Compare `expected` with `actual`.
 */
export async function runSmtpTranscript(transcript: string, options: SmtpTestSessionOptions = {}, runOptions: { byteByByte?: boolean } = {}): Promise<TranscriptResult> {
  return runTranscript(await createSmtpTestSession(options), transcript, runOptions);
}
