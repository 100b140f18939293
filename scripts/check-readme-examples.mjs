#!/usr/bin/env node
// Every ```ts block of every package README is compiled against the built
// package, so the README cannot drift from the code (STYLE habit 11), and
// every name a package exports must appear in its README.
// Each block becomes one module in <package>/.readme-examples/, where the
// package's own name resolves to its built `exports` (self-reference).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readmes = [join(root, 'README.md')];
for (const group of ['packages', 'examples']) {
  const dir = join(root, group);
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const readme = join(dir, name, 'README.md');
    if (existsSync(readme)) readmes.push(readme);
  }
}

/** Names exported by a package's entry files, following `export * from` one level. */
function exportedNames(pkgDir) {
  const names = new Set();
  const read = (file, depth) => {
    if (!existsSync(file)) return;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
      for (const part of m[1].split(',')) {
        const name = part.trim().split(/\s+as\s+/).pop();
        if (name) names.add(name);
      }
    }
    for (const m of text.matchAll(/export (?:const|function|class|interface|type) (\w+)/g)) names.add(m[1]);
    if (depth > 0) for (const m of text.matchAll(/export \* from '(.+)\.js'/g)) read(join(dirname(file), `${m[1]}.ts`), depth - 1);
  };
  for (const entry of ['src/index.ts', 'src/node/index.ts', 'src/testing/index.ts']) read(join(pkgDir, entry), 1);
  return names;
}

let blocks = 0;
let failed = false;
for (const readme of readmes) {
  const pkgDir = dirname(readme);
  const text = readFileSync(readme, 'utf8');
  if (existsSync(join(pkgDir, 'src', 'index.ts'))) {
    const undocumented = [...exportedNames(pkgDir)].filter((name) => !new RegExp(`\\b${name}\\b`).test(text));
    if (undocumented.length > 0) {
      failed = true;
      console.error(`✖ ${relative(root, readme)} does not mention these exports: ${undocumented.join(', ')}`);
    }
  }
  const found = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  if (found.length === 0 || !existsSync(join(pkgDir, 'package.json'))) continue;
  const outDir = join(pkgDir, '.readme-examples');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  found.forEach((code, i) => {
    // A block without import/export would be a script sharing one global scope with the others.
    const body = /^\s*(import|export)\s/m.test(code) ? code : `${code}\nexport {};\n`;
    writeFileSync(join(outDir, `example-${String(i + 1).padStart(2, '0')}.ts`), body);
  });
  writeFileSync(
    join(outDir, 'tsconfig.json'),
    JSON.stringify(
      {
        extends: relative(outDir, join(root, 'tsconfig.base.json')),
        compilerOptions: { noUnusedLocals: false, noEmit: true },
        include: ['*.ts'],
      },
      null,
      2,
    ),
  );
  blocks += found.length;
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const res = spawnSync(process.execPath, [tsc, '-p', join(outDir, 'tsconfig.json')], { cwd: pkgDir, encoding: 'utf8' });
  const where = relative(root, readme);
  if (res.status !== 0) {
    failed = true;
    console.error(`✖ ${where}: ${found.length} example(s), compile errors:\n${res.stdout}${res.stderr}`);
  } else {
    console.log(`✓ ${where}: ${found.length} example(s) compile`);
  }
}
if (failed) process.exit(1);
console.log(`README examples: ${blocks} compiled`);
