// Crash-test child: delivers self-checking messages in a loop and reports
// each resolved delivery (`<uid> <sha256>\n`) on stdout right after deliver()
// resolves. The parent kills it with SIGKILL at random points.
import { createHash, randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { createMaildirStore } from '../../src/maildir/index.js';

const root = process.argv[2]!;
const store = createMaildirStore({ root, fsync: true });
writeSync(1, 'ready\n');
for (;;) {
  const rest = Buffer.concat([Buffer.from('Subject: crash\r\n\r\n'), Buffer.from(randomBytes(1 + Math.floor(Math.random() * 48_000)).toString('base64'))]);
  const sum = createHash('sha256').update(rest).digest('hex');
  const body = Buffer.concat([Buffer.from(`X-Check: ${sum}\r\n`), rest]);
  const r = await store.deliver({ user: 'crash', body, ...(Math.random() < 0.3 ? { flags: ['\\Flagged', '$Crash'] } : {}) });
  writeSync(1, `${r.uid} ${createHash('sha256').update(body).digest('hex')}\n`);
}
