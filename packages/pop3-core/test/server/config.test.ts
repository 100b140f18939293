import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { Pop3ClientError, Pop3Error, pop3Reply } from '../../src/errors.js';
import { resolvePop3ClientLimits, resolvePop3Limits } from '../../src/limits.js';
import { createPop3Server } from '../../src/node/server.js';
import { createPop3ServerSession } from '../../src/server/session.js';
import { createMemoryPop3Backend } from '../../src/testing/index.js';

const noop = (): void => undefined;
const transport = { write: () => true, drain: () => Promise.resolve(), startTls: noop, close: noop, pause: noop, resume: noop };

describe('errors and options', () => {
  it('pop3Reply builds a branded error with its response code, and refuses CR/LF and bad codes', () => {
    const e = pop3Reply('IN-USE', 'locked');
    expect(Pop3Error.isInstance(e)).toBe(true);
    expect(Pop3ClientError.isInstance(e)).toBe(false);
    expect([e.code, e.responseCode, e.reply?.text, e.side]).toEqual(['ERR_POP3_REJECTED', 'IN-USE', 'locked', 'remote']);
    expect(pop3Reply(undefined, 'plain').responseCode).toBeUndefined();
    expect(() => pop3Reply('AUTH', 'a\r\n+OK')).toThrow(expect.objectContaining({ code: 'ERR_POP3_STATE' }));
    expect(() => pop3Reply('BAD CODE', 'x')).toThrow(expect.objectContaining({ code: 'ERR_POP3_STATE' }));
    const client = new Pop3ClientError('ERR_POP3_CLIENT_REPLY', 'RETR: -ERR [SYS/TEMP] busy', { side: 'remote', serverReply: { ok: false, responseCode: 'SYS/TEMP', text: 'busy' } });
    expect([Pop3Error.isInstance(client), client.responseCode, client.reply?.text]).toEqual([true, 'SYS/TEMP', 'busy']);
  });

  it('bad options fail at construction with ERR_POP3_CONFIG or RangeError', () => {
    const base = { backend: createMemoryPop3Backend(), clock: new VirtualClock(0) };
    expect(() => createPop3ServerSession({ ...base, hostname: 'two words' }, transport, { remoteAddress: '::1' })).toThrow(expect.objectContaining({ code: 'ERR_POP3_CONFIG' }));
    expect(() => createPop3ServerSession({ ...base, loginDelaySeconds: 60 }, transport, { remoteAddress: '::1' })).toThrow(expect.objectContaining({ code: 'ERR_POP3_CONFIG' }));
    expect(() => createPop3ServerSession({ ...base, maxBadCommands: -1 }, transport, { remoteAddress: '::1' })).toThrow(RangeError);
    expect(() => createPop3Server({ backend: base.backend, secure: true })).toThrow(expect.objectContaining({ code: 'ERR_POP3_CONFIG' }));
    expect(resolvePop3Limits(['maxBadCommands'], { maxBadCommands: 0 })).toEqual({ maxBadCommands: 0 });
    expect(() => resolvePop3ClientLimits({ commandTimeoutMs: Number.NaN })).toThrow(RangeError);
  });
});
