import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

// STYLE habit 1: the protocol core (src/codec, src/server, src/client, and
// wire's src/sasl) may not reach for sockets, DNS, timers or the clock. The
// repository's ESLint config enforces it; this test proves the rule fires
// where it must and stays quiet in the Node adapter (src/node).
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const offending = [
  "import { connect } from 'node:net';",
  "import * as tls from 'tls';",
  "import { setTimeout as sleep } from 'node:timers/promises';",
  'export const started = Date.now();',
  'export const timer = setTimeout(() => {}, 10);',
  'export const use = [connect, tls, sleep];',
  '',
].join('\n');

async function ruleIds(relativePath: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: repoRoot });
  const [result] = await eslint.lintText(offending, { filePath: `${repoRoot}${relativePath}` });
  return (result?.messages ?? []).map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

describe('ESLint keeps I/O and time out of the pure core', () => {
  it.each(['packages/wire/src/codec/line-framer.ts', 'packages/wire/src/sasl/server.ts'])('flags sockets, timers and the clock in %s', async (file) => {
    const ids = await ruleIds(file);
    expect(ids.filter((id) => id === 'no-restricted-imports')).toHaveLength(3);
    expect(ids).toContain('no-restricted-properties');
    expect(ids).toContain('no-restricted-globals');
  });

  it('allows them in the Node adapter', async () => {
    const ids = await ruleIds('packages/wire/src/node/listener.ts');
    expect(ids).not.toContain('no-restricted-imports');
    expect(ids).not.toContain('no-restricted-properties');
    expect(ids).not.toContain('no-restricted-globals');
    expect(ids.filter((id) => id.startsWith('fatal'))).toEqual([]);
  });
});
