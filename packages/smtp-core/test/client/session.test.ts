import { describe, expect, it } from 'vitest';
import { SmtpClientError } from '../../src/errors.js';
import { SmtpClientSession } from '../../src/client/session.js';

const s = (text: string): Buffer => Buffer.from(text);

function stateError(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(SmtpClientError.isInstance(err)).toBe(true);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_STATE');
    expect((err as SmtpClientError).side).toBe('local');
    return;
  }
  throw new Error('expected ERR_SMTP_CLIENT_STATE');
}

describe('SmtpClientSession (sans I/O)', () => {
  it('pairs pipelined replies with the commands in order, whatever the grouping of bytes', () => {
    const session = new SmtpClientSession();
    session.receive(s('220 hi\r\n'));
    expect(session.nextEvent()).toMatchObject({ type: 'reply', to: 'greeting' });
    expect(session.send({ name: 'EHLO', domain: 'c.example' }).toString()).toBe('EHLO c.example\r\n');
    session.receive(s('250-mx\r\n250 PIPELINING\r\n'));
    expect(session.nextEvent()).toMatchObject({ to: 'EHLO', reply: { code: 250 } });
    expect(session.capabilities?.pipelining).toBe(true);
    session.send({ name: 'MAIL', from: 'a@b.example' });
    session.send({ name: 'RCPT', to: 'c@d.example' });
    session.send({ name: 'DATA' });
    expect(session.owed).toEqual(['MAIL', 'RCPT', 'DATA']);
    session.receive(s('250 ok\r\n250 ok\r\n35'));
    expect(session.nextEvent()).toMatchObject({ to: 'MAIL' });
    expect(session.nextEvent()).toMatchObject({ to: 'RCPT' });
    expect(session.nextEvent()).toBeUndefined();
    session.receive(s('4 go\r\n'));
    expect(session.nextEvent()).toMatchObject({ to: 'DATA', reply: { code: 354 } });
    expect(session.phase).toBe('body');
    expect(session.bodyChunk(s('.x\n')).toString()).toBe('..x\r\n');
    expect(session.bodyEnd().toString()).toBe('.\r\n');
    expect(session.owed).toEqual(['data-end']);
    expect(session.phase).toBe('ready');
  });

  it('refuses commands the phase does not allow', () => {
    const session = new SmtpClientSession();
    stateError(() => session.send({ name: 'EHLO', domain: 'c.example' }));
    session.receive(s('220 hi\r\n'));
    session.nextEvent();
    stateError(() => session.send({ name: 'LHLO', domain: 'c.example' }));
    stateError(() => session.send({ name: 'RCPT', to: 'a@b.example' }));
    stateError(() => session.bodyChunk(s('x')));
    session.send({ name: 'EHLO', domain: 'c.example' });
    session.send({ name: 'MAIL', from: '' });
    stateError(() => session.send({ name: 'MAIL', from: '' }));
    stateError(() => session.send({ name: 'STARTTLS' }));
    session.send({ name: 'QUIT' });
    stateError(() => session.send({ name: 'NOOP' }));
  });

  it('a reply nobody asked for is a protocol error, except 421', () => {
    const session = new SmtpClientSession();
    session.receive(s('220 hi\r\n250 unasked\r\n421 4.3.2 shutting down\r\n'));
    session.nextEvent();
    expect(session.nextEvent()).toMatchObject({ type: 'error', error: { code: 'ERR_SMTP_CLIENT_MALFORMED_REPLY' } });
    expect(session.nextEvent()).toMatchObject({ type: 'reply', reply: { code: 421, enhanced: '4.3.2' } });
  });

  it('STARTTLS: bytes after the 220 are dropped and the capabilities forgotten', () => {
    const session = new SmtpClientSession();
    session.receive(s('220 hi\r\n'));
    session.nextEvent();
    session.send({ name: 'EHLO', domain: 'c.example' });
    session.receive(s('250-mx\r\n250 STARTTLS\r\n'));
    session.nextEvent();
    session.send({ name: 'STARTTLS' });
    session.receive(s('220 go\r\n250-fake\r\n250 AUTH PLAIN\r\n'));
    expect(session.nextEvent()).toMatchObject({ to: 'STARTTLS', reply: { code: 220 } });
    expect(session.startTls()).toBe('250-fake\r\n250 AUTH PLAIN\r\n'.length);
    expect(session.capabilities).toBeUndefined();
    expect(session.secure).toBe(true);
    expect(session.nextEvent()).toBeUndefined();
    stateError(() => session.send({ name: 'STARTTLS' }));
  });

  it('LMTP owes one reply per accepted recipient after the data', () => {
    const session = new SmtpClientSession({ lmtp: true });
    session.receive(s('220 hi\r\n'));
    session.nextEvent();
    session.send({ name: 'LHLO', domain: 'c.example' });
    session.send({ name: 'MAIL', from: '' });
    for (const to of ['a@x.example', 'b@x.example', 'c@x.example']) session.send({ name: 'RCPT', to });
    session.send({ name: 'DATA' });
    session.receive(s('250 lmtp\r\n250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n'));
    for (let i = 0; i < 6; i++) session.nextEvent();
    expect(session.acceptedRecipients).toBe(2);
    session.bodyEnd();
    expect(session.owed).toEqual(['data-end', 'data-end']);
  });
});
