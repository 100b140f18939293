/**
 * Scripted server transcripts for the pure client: `S:` lines are what the
 * server sends, `C:` lines what the client must send, in order. Consecutive
 * `S:` lines arrive in one read (or one byte per read in byte mode, so every
 * reply is also parsed split at every byte). `TLS` marks the STARTTLS
 * handshake, `WAIT` a server that goes silent, `CLOSE` a server that hangs up.
 */
import type { ChannelBinding } from '@pigeonpost/wire';
import type { ClientTransport } from '../../src/client/connection.js';

type Step = { readonly kind: 'S' | 'C'; readonly text: string } | { readonly kind: 'TLS' | 'WAIT' | 'CLOSE' };

export function parseTranscript(script: string): Step[] {
  const steps: Step[] = [];
  for (const raw of script.split('\n')) {
    const line = raw.replace(/^\s+/, '');
    if (line === '') continue;
    if (line === 'TLS' || line === 'WAIT' || line === 'CLOSE') steps.push({ kind: line });
    else if (line.startsWith('S: ') || line === 'S:') steps.push({ kind: 'S', text: line.slice(3) });
    else if (line.startsWith('C: ') || line === 'C:') steps.push({ kind: 'C', text: line.slice(3) });
    else throw new Error(`bad transcript line ${JSON.stringify(raw)}`);
  }
  return steps;
}

export class ScriptedTransport implements ClientTransport {
  readonly steps: Step[];
  #at = 0;
  #client = '';
  #server: Buffer = Buffer.alloc(0);
  #wait: ((value: null) => void) | undefined;
  readonly errors: string[] = [];
  secure: boolean;
  destroyed = false;
  ended = false;
  discarded = 0;
  tlsStarted = 0;

  constructor(
    script: string,
    readonly byteByByte = false,
    options: { secure?: boolean; channelBinding?: ChannelBinding } = {},
  ) {
    this.steps = parseTranscript(script);
    this.secure = options.secure === true;
  }

  /** True when every step was played and nothing went wrong. */
  get finished(): boolean {
    return this.#at === this.steps.length && this.#client === '' && this.#server.length === 0;
  }

  /** Where the script stopped, for failure messages. */
  get remaining(): string {
    return this.steps
      .slice(this.#at)
      .map((s) => ('text' in s ? `${s.kind}: ${s.text}` : s.kind))
      .join('\n');
  }

  #fail(message: string): Error {
    this.errors.push(message);
    return new Error(message);
  }

  read(): Promise<Uint8Array | null> {
    if (this.destroyed) return Promise.resolve(null);
    if (this.#server.length === 0) {
      if (this.#client !== '') return Promise.reject(this.#fail(`client waits after a partial line ${JSON.stringify(this.#client)}`));
      const step = this.steps[this.#at];
      if (step === undefined) return Promise.resolve(null);
      if (step.kind === 'CLOSE') {
        this.#at++;
        return Promise.resolve(null);
      }
      if (step.kind === 'WAIT') return new Promise((resolve) => (this.#wait = resolve));
      if (step.kind !== 'S') return Promise.reject(this.#fail(`client waits for the server, but the transcript expects ${step.kind}: ${'text' in step ? step.text : ''}`));
      const block: string[] = [];
      for (let s = this.steps[this.#at]; s !== undefined && s.kind === 'S'; s = this.steps[++this.#at]) block.push(`${s.text}\r\n`);
      this.#server = Buffer.from(block.join(''), 'utf8');
    }
    const n = this.byteByByte ? 1 : this.#server.length;
    const chunk = this.#server.subarray(0, n);
    this.#server = this.#server.subarray(n);
    return Promise.resolve(Buffer.from(chunk));
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.destroyed) return Promise.reject(new Error('write after destroy'));
    this.#client += Buffer.from(chunk).toString('utf8');
    for (;;) {
      if (this.#client === '') return Promise.resolve();
      const step = this.steps[this.#at];
      if (step?.kind !== 'C') {
        return Promise.reject(this.#fail(`client sent ${JSON.stringify(this.#client)}, the transcript expects ${step === undefined ? 'the end' : step.kind}`));
      }
      const expected = `${step.text}\r\n`;
      if (this.#client.length < expected.length) {
        if (!expected.startsWith(this.#client)) return Promise.reject(this.#fail(`client sent ${JSON.stringify(this.#client)}, expected ${JSON.stringify(expected)}`));
        return Promise.resolve();
      }
      if (!this.#client.startsWith(expected)) return Promise.reject(this.#fail(`client sent ${JSON.stringify(this.#client.slice(0, expected.length + 20))}, expected ${JSON.stringify(expected)}`));
      this.#client = this.#client.slice(expected.length);
      this.#at++;
    }
  }

  startTls(discardedBytes: number): Promise<{ discardedBytes: number }> {
    // What was not yet handed to the client is dropped too, as upgradeClientSocket drains the socket.
    const dropped = discardedBytes + this.#server.length;
    this.#server = Buffer.alloc(0);
    const step = this.steps[this.#at];
    if (step?.kind !== 'TLS') return Promise.reject(this.#fail(`client starts TLS, the transcript expects ${step?.kind ?? 'the end'}`));
    this.#at++;
    this.secure = true;
    this.discarded = dropped;
    this.tlsStarted++;
    return Promise.resolve({ discardedBytes: dropped });
  }

  end(): Promise<void> {
    this.ended = true;
    return Promise.resolve();
  }

  destroy(): void {
    this.destroyed = true;
    this.#wait?.(null);
  }
}
