import { describe, expect, it } from 'vitest';
import { runSmtpTranscript } from '../../src/testing/index.js';
import { receiver } from './helpers.js';

/** RFC 5321 Appendix D.1, with our texts (reply codes and order are the RFC's). */
const d1 = `
S: 220 mx.example.org ESMTP
C: EHLO bar.com
S: 250-mx.example.org Hello bar.com [192.0.2.1]
S: 250-PIPELINING
S: 250-SIZE 52428800
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-STARTTLS
S: 250 HELP
C: MAIL FROM:<Smith@bar.com>
S: 250 2.1.0 Sender OK
C: RCPT TO:<Jones@example.org>
S: 250 2.1.5 Recipient OK
C: RCPT TO:<Green@foo.com>
S: 550 5.1.1 No such user here
C: RCPT TO:<Brown@example.org>
S: 250 2.1.5 Recipient OK
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Blah blah blah...
C: ...etc. etc. etc.
C: .
S: 250 2.0.0 Message accepted
C: QUIT
S: 221 2.0.0 mx.example.org Bye
`;

/** RFC 5321 Appendix D.3 (a VRFY that is not answered) and D.4-like RSET use. */
const d3 = `
S: 220 mx.example.org ESMTP
C: HELO bar.com
S: 250 mx.example.org Hello bar.com [192.0.2.1]
C: VRFY Crispin
S: 252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery
C: MAIL FROM:<Smith@bar.com>
S: 250 2.1.0 Sender OK
C: RSET
S: 250 2.0.0 Flushed
C: RCPT TO:<Jones@example.org>
S: 503 5.5.1 Bad sequence of commands
C: NOOP
S: 250 2.0.0 OK
C: QUIT
S: 221 2.0.0 mx.example.org Bye
`;

/** RFC 2920 §3.2 example: a pipelined transaction, replies in one write. */
const pipelined = `
S: 220 mx.example.org ESMTP
C: EHLO dbc.mtview.ca.us
S: 250-mx.example.org Hello dbc.mtview.ca.us [192.0.2.1]
S: 250-PIPELINING
S: 250-SIZE 52428800
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-STARTTLS
S: 250 HELP
C: MAIL FROM:<mrose@dbc.mtview.ca.us>
C: RCPT TO:<ned@example.org>
C: RCPT TO:<dan@example.org>
C: RCPT TO:<kvc@example.org>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: Date: Thu, 21 May 1998 05:33:29 -0700
C: 
C: Hi
C: .
C: QUIT
S: 250 2.0.0 Message accepted
S: 221 2.0.0 mx.example.org Bye
`;

/** RFC 3030 §4.1-like: BDAT chunks (the sizes count the CRLFs the runner adds). */
const bdat = `
S: 220 mx.example.org ESMTP
C: EHLO x.example
S: 250-*
S: 250-PIPELINING
S: 250-SIZE 52428800
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-STARTTLS
S: 250 HELP
C: MAIL FROM:<Sam@Random.com>
C: RCPT TO:<Susan@example.org>
C: BDAT 7
C: Hello
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 250 2.0.0 7 octets received
C: BDAT 8 LAST
C: World!
S: 250 2.0.0 Message accepted
C: BDAT 0 LAST
S: 503 5.5.1 Bad sequence of commands
`;

/** RFC 5321 Appendix D.2-like (a source route, which §3.3 says to ignore) and D.4 (aborted transaction). */
const d2d4 = `
S: 220 mx.example.org ESMTP
C: EHLO foo.com
S: 250-mx.example.org Hello foo.com [192.0.2.1]
S: 250-PIPELINING
S: 250-SIZE 52428800
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-STARTTLS
S: 250 HELP
C: MAIL FROM:<JQP@bar.com>
S: 250 2.1.0 Sender OK
C: RCPT TO:<@foo.com,@jkl.org:userc@example.org>
S: 250 2.1.5 Recipient OK
C: RSET
S: 250 2.0.0 Flushed
C: QUIT
S: 221 2.0.0 mx.example.org Bye
`;

/** RFC 4954 §4 example: AUTH PLAIN with an initial response ("test", "test", "1234"), then the empty challenge form. */
const rfc4954 = `
S: 220 mx.example.org ESMTP
C: EHLO client.example
S: 250-*
S: 250-PIPELINING
S: 250-SIZE 52428800
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-AUTH PLAIN
S: 250 HELP
C: AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=
S: 235 2.7.0 Authentication successful
C: MAIL FROM:<test@example.org>
C: RCPT TO:<a@example.org>
C: DATA
S: 250 2.1.0 Sender OK
S: 250 2.1.5 Recipient OK
S: 354 End data with <CR><LF>.<CR><LF>
C: x
C: .
S: 250 2.0.0 Message accepted
`;

const secureAuth = {
  connection: { secure: true },
  submission: true,
  auth: { mechanisms: ['PLAIN' as const], backend: { verifyPassword: ({ authcid, password }: { authcid: string; password: { expose(): string } }) => Promise.resolve(authcid === 'test' && password.expose() === '1234') } },
};

describe('RFC transcripts', () => {
  for (const byteByByte of [false, true]) {
    it(`RFC 5321 D.2/D.4 source route and RSET${byteByByte ? ' (one byte at a time)' : ''}`, async () => {
      const { expected, actual } = await runSmtpTranscript(d2d4, receiver(), { byteByByte });
      expect(actual).toEqual(expected);
    });
    it(`RFC 4954 AUTH PLAIN${byteByByte ? ' (one byte at a time)' : ''}`, async () => {
      const store: { envelope: unknown; body: string }[] = [];
      const { expected, actual } = await runSmtpTranscript(rfc4954, receiver(store, secureAuth), { byteByByte });
      expect(actual).toEqual(expected);
      expect(store).toHaveLength(1);
    });
  }

  for (const [name, transcript, extra] of [
    ['RFC 5321 D.1', d1, 1],
    ['RFC 5321 D.3 VRFY/RSET', d3, 0],
    ['RFC 2920 pipelining', pipelined, 1],
    ['RFC 3030 BDAT', bdat, 1],
  ] as const) {
    for (const byteByByte of [false, true]) {
      it(`${name}${byteByByte ? ' (one byte at a time)' : ''}`, async () => {
        const store: { envelope: unknown; body: string }[] = [];
        const { expected, actual } = await runSmtpTranscript(transcript, receiver(store), { byteByByte });
        expect(actual).toEqual(expected);
        expect(store.length).toBe(extra);
      });
    }
  }
});
