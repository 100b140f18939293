import type { SmtpServerSessionOptions } from '../../src/server/types.js';
import type { SmtpTestSessionOptions } from '../../src/testing/index.js';

/** A receiving server that accepts recipients at example.org and keeps messages in `store`. */
export function receiver(store: { envelope: unknown; body: string }[] = [], extra: Partial<SmtpTestSessionOptions> = {}): SmtpTestSessionOptions {
  const options: Partial<SmtpServerSessionOptions> = {
    hostname: 'mx.example.org',
    authFailureDelayMs: 0,
    onRcptTo: (to) => {
      if (to.asciiDomain !== 'example.org' && to.address !== 'Postmaster') return Promise.reject(smtpReplyLike(550, '5.1.1', 'No such user here'));
      return Promise.resolve();
    },
    onData: async (envelope, body) => {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      store.push({ envelope, body: Buffer.concat(chunks).toString('utf8') });
    },
  };
  return { ...options, ...extra };
}

import { smtpReply } from '../../src/errors.js';
function smtpReplyLike(code: number, enhanced: string, text: string): Error {
  return smtpReply(code, enhanced, text);
}
