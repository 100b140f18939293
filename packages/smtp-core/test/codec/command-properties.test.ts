import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineFramer } from '@pigeonpost/wire';
import { parseCommand } from '../../src/codec/command.js';
import { createSmtpTestSession } from '../../src/testing/index.js';
import { receiver } from '../server/helpers.js';

const support = { size: true, eightBitMime: true, binaryMime: true, smtputf8: true, dsn: true, auth: true, requireTls: true, maxMessageBytes: 1000 };

const commandish = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom('MAIL FROM:', 'RCPT TO:', 'EHLO ', 'BDAT ', 'AUTH ', 'XCLIENT ', 'DATA', 'VRFY ').chain((verb) =>
    fc.tuple(fc.constant(verb), fc.string({ unit: fc.constantFrom('<', '>', '@', '"', '\\', '.', '[', ']', ':', ' ', '=', '+', 'a', 'Z', '1', 'é', '用', ';', ','), maxLength: 60 })).map(([v, a]) => v + a),
  ),
);

describe('command parser properties', () => {
  it('never throws, whatever the line', () => {
    fc.assert(
      fc.property(commandish, fc.boolean(), fc.boolean(), (line, utf8, lenient) => {
        const r = parseCommand(line, { support, transactionUtf8: utf8, lenientAddresses: lenient });
        expect(typeof r.ok).toBe('boolean');
        if (!r.ok) expect(r.error.code).toBeGreaterThanOrEqual(500);
      }),
      { numRuns: 2000 },
    );
  });

  it('framing + parsing give the same commands for every chunking', () => {
    fc.assert(
      fc.property(fc.array(commandish, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }), (lines, cuts) => {
        const input = Buffer.from(lines.map((l) => l.replace(/[\r\n]/g, '') + '\r\n').join(''), 'utf8');
        const parseAll = (chunks: Buffer[]): string[] => {
          const framer = new LineFramer({ maxLineLength: 512 });
          const out: string[] = [];
          for (const chunk of chunks) {
            framer.push(chunk);
            for (const ev of framer) {
              out.push(ev.type === 'line' ? JSON.stringify(parseCommand(ev.line.toString('utf8'), { support })) : ev.type);
            }
          }
          return out;
        };
        const chunks: Buffer[] = [];
        let at = 0;
        for (const cut of cuts) {
          if (at >= input.length) break;
          chunks.push(input.subarray(at, Math.min(input.length, at + cut)));
          at += cut;
        }
        if (at < input.length) chunks.push(input.subarray(at));
        expect(parseAll(chunks)).toEqual(parseAll([input]));
      }),
      { numRuns: 300 },
    );
  });

  it('the whole session answers the same for every chunking', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }), async (cuts) => {
        const script = Buffer.from('EHLO a.example\r\nMAIL FROM:<a@a.example> SIZE=10\r\nRCPT TO:<b@example.org>\r\nFOO\r\nDATA\r\nhi\r\n..x\r\n.\r\nBDAT 1\r\nxRSET\r\nQUIT\r\n');
        const run = async (chunks: Buffer[]): Promise<string> => {
          const t = await createSmtpTestSession(receiver());
          for (const c of chunks) await t.send(c);
          return t.writes.join('');
        };
        const chunks: Buffer[] = [];
        let at = 0;
        for (const cut of cuts) {
          if (at >= script.length) break;
          chunks.push(script.subarray(at, at + cut));
          at += cut;
        }
        if (at < script.length) chunks.push(script.subarray(at));
        expect(await run(chunks)).toBe(await run([script]));
      }),
      { numRuns: 25 },
    );
  });
});

describe('DATA bodies with bare CR/LF', () => {
  it('reject and normalize give the same outcome for every chunking', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('a', '\r', '\n', '\r\n', '.', 'b\r\n'), { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 30 }),
        fc.constantFrom('reject' as const, 'normalize' as const),
        async (parts, cuts, policy) => {
          const script = Buffer.from(`EHLO a\r\nMAIL FROM:<a@a.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n${parts.join('')}\r\n.\r\nQUIT\r\n`);
          const run = async (chunks: Buffer[]) => {
            const store: { envelope: unknown; body: string }[] = [];
            const t = await createSmtpTestSession(receiver(store, { bareLineEndings: policy }));
            for (const c of chunks) await t.send(c);
            return { out: t.writes.join(''), bodies: store.map((m) => m.body) };
          };
          const chunks: Buffer[] = [];
          let at = 0;
          for (const cut of cuts) {
            if (at >= script.length) break;
            chunks.push(script.subarray(at, at + cut));
            at += cut;
          }
          if (at < script.length) chunks.push(script.subarray(at));
          const whole = await run([script]);
          expect(await run(chunks)).toEqual(whole);
          // normalize never stores a bare CR or LF
          for (const body of whole.bodies) expect(body.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
        },
      ),
      { numRuns: 60 },
    );
  });
});
