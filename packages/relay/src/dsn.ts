/**
 * Delivery status notifications (RFC 3464) in a multipart/report (RFC 6522):
 * a human-readable part, the machine-readable message/delivery-status, and the
 * original message (RET=FULL) or its header (RET=HDRS, or when the message is
 * larger than the bounce size limit) as text/rfc822-headers.
 */
import { randomBytes } from 'node:crypto';
import type { ReplySummary } from './types.js';

export type DsnKind = 'failure' | 'delay' | 'success';

export interface DsnRecipient {
  readonly address: string;
  readonly orcpt?: string;
  /** `failed`, `delayed`, `relayed` (RFC 3464 §2.3.3). */
  readonly action: 'failed' | 'delayed' | 'relayed' | 'delivered';
  /** RFC 3463 status, e.g. `5.1.1`. */
  readonly status: string;
  readonly remoteMta?: string;
  readonly reply?: ReplySummary;
  readonly lastAttemptAt?: number;
  /** For a delay: until when the queue keeps trying. */
  readonly willRetryUntil?: number;
}

export interface BuildDsnOptions {
  readonly kind: DsnKind;
  /** This MTA's name: Reporting-MTA and the From: of the notice. */
  readonly reportingMta: string;
  /** The original sender: the notice goes to them. */
  readonly to: string;
  readonly queueId: string;
  readonly arrivalDate: number;
  readonly now: number;
  readonly envid?: string;
  readonly recipients: readonly DsnRecipient[];
  /** The original message, or its first bytes. */
  readonly original: Buffer;
  /** True when `original` is the whole message. */
  readonly originalComplete: boolean;
  /** RET from the envelope. Default: FULL when the message fits. */
  readonly ret?: 'FULL' | 'HDRS';
  /** Random source for the boundary and Message-ID (tests pass a fixed one). */
  readonly random?: (bytes: number) => Buffer;
}

/** RFC 5322 date-time, always with a numeric zone. */
export function rfc5322Date(ms: number): string {
  const d = new Date(ms);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** The header block of a message (up to and including the empty line), CRLF or LF. */
export function headerBlock(message: Buffer): Buffer {
  for (let i = 0; i < message.length; i++) {
    if (message[i] !== 0x0a) continue;
    if (message[i + 1] === 0x0a) return message.subarray(0, i + 2);
    if (message[i + 1] === 0x0d && message[i + 2] === 0x0a) return message.subarray(0, i + 3);
  }
  return message;
}

function crlf(text: Buffer): Buffer {
  // Bare LF → CRLF, so the notice is valid on the wire whatever the original used.
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const b = text[i] ?? 0;
    if (b === 0x0a && text[i - 1] !== 0x0d) out.push(0x0d);
    if (b === 0x0d && text[i + 1] !== 0x0a) {
      out.push(0x0d, 0x0a);
      continue;
    }
    out.push(b);
  }
  return Buffer.from(out);
}

function xtextSafe(value: string): string {
  return value.replace(/[^\x21-\x7e ]/g, '?');
}

function addressType(address: string): string {
  // RFC 6533: UTF-8 addresses go as utf-8; ASCII ones as rfc822.
  return /\P{ASCII}/u.test(address) ? 'utf-8' : 'rfc822';
}

/** Builds the notice as bytes with CRLF line ends, ready to enqueue from `<>`. */
export function buildDsn(options: BuildDsnOptions): Buffer {
  const random = options.random ?? randomBytes;
  const boundary = `${options.queueId}.${random(6).toString('hex')}/${options.reportingMta}`;
  const subject =
    options.kind === 'failure'
      ? 'Undelivered Mail Returned to Sender'
      : options.kind === 'delay'
        ? 'Delayed Mail (still being retried)'
        : 'Successful Mail Delivery Report';
  const human: string[] = [];
  human.push(`This is the mail system at host ${options.reportingMta}.`, '');
  if (options.kind === 'failure') {
    human.push("I'm sorry to have to inform you that your message could not", 'be delivered to one or more recipients. It\'s attached below.', '');
  } else if (options.kind === 'delay') {
    human.push('Your message could not be delivered yet. The mail system will keep', 'trying; you do not have to send it again.', '');
  } else {
    human.push('Your message was successfully delivered to the destination(s)', 'listed below. Those that were handed to a system that does not', 'report delivery status may send you no further notice.', '');
  }
  for (const r of options.recipients) {
    const why = r.reply ? `${r.remoteMta ? `host ${r.remoteMta} said: ` : ''}${r.reply.code} ${r.reply.enhanced ? `${r.reply.enhanced} ` : ''}${r.reply.text}` : r.status;
    human.push(`<${r.address}>: ${why}`);
    if (r.willRetryUntil !== undefined) human.push(`    (will keep trying until ${rfc5322Date(r.willRetryUntil)})`);
  }

  const status: string[] = [`Reporting-MTA: dns; ${options.reportingMta}`, `X-Pigeonpost-Queue-ID: ${options.queueId}`];
  if (options.envid !== undefined) status.push(`Original-Envelope-Id: ${xtextSafe(options.envid)}`);
  status.push(`Arrival-Date: ${rfc5322Date(options.arrivalDate)}`);
  for (const r of options.recipients) {
    status.push('');
    status.push(`Final-Recipient: ${addressType(r.address)}; ${r.address}`);
    if (r.orcpt !== undefined) status.push(`Original-Recipient: ${addressType(r.orcpt)}; ${r.orcpt}`);
    status.push(`Action: ${r.action}`, `Status: ${r.status}`);
    if (r.remoteMta !== undefined) status.push(`Remote-MTA: dns; ${r.remoteMta}`);
    if (r.reply !== undefined) status.push(`Diagnostic-Code: smtp; ${r.reply.code} ${r.reply.enhanced ? `${r.reply.enhanced} ` : ''}${r.reply.text.replace(/[\r\n]+/g, ' ')}`);
    if (r.lastAttemptAt !== undefined) status.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttemptAt)}`);
    if (r.willRetryUntil !== undefined) status.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
  }

  const full = options.originalComplete && options.ret !== 'HDRS';
  const attached = full ? crlf(options.original) : crlf(headerBlock(options.original));
  const utf8 = options.recipients.some((r) => addressType(r.address) === 'utf-8') || addressType(options.to) === 'utf-8';

  const head = [
    `From: MAILER-DAEMON@${options.reportingMta} (Mail Delivery System)`,
    `To: <${options.to}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(options.now)}`,
    `Message-ID: <${options.queueId}.${random(8).toString('hex')}@${options.reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 8bit',
    '',
    'This is a MIME-encapsulated message.',
    '',
    `--${boundary}`,
    'Content-Description: Notification',
    'Content-Type: text/plain; charset=utf-8',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Description: Delivery report',
    `Content-Type: ${utf8 ? 'message/global-delivery-status' : 'message/delivery-status'}`,
    '',
    ...status,
    '',
    `--${boundary}`,
    `Content-Description: ${full ? 'Undelivered Message' : 'Undelivered Message Headers'}`,
    `Content-Type: ${full ? (utf8 ? 'message/global' : 'message/rfc822') : utf8 ? 'message/global-headers' : 'text/rfc822-headers'}`,
    'Content-Transfer-Encoding: 8bit',
    '',
    '',
  ].join('\r\n');
  const tail = Buffer.from(`${attached.length > 0 && attached[attached.length - 1] !== 0x0a ? '\r\n' : ''}\r\n--${boundary}--\r\n`);
  return Buffer.concat([Buffer.from(head, 'utf8'), attached, tail]);
}
