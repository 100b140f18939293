import { readFileSync } from 'node:fs';
import { it } from 'vitest';
import { parseMessage, sectionBytes } from '../src/index.js';
it('dbg', () => {
  const b = readFileSync('/work/main/packages/mime/test/corpus/messages/110-deep-multipart-100.eml');
  const s = parseMessage(b);
  const x = sectionBytes(s, '1', b).toString('latin1');
  console.log(JSON.stringify(x.slice(-400)));
  let p = s.root; let d = 0; while (p.children?.[0]) { p = p.children[0]; d++; }
  console.log(d, JSON.stringify({ ...p, envelope: undefined }));
});
