#!/usr/bin/env node
// The two commands of the README, on a machine that has only Node 20 and npm:
//   npm start  — install, build, run the mail server on embedded defaults
//   npm test   — install, build, run every test (unit, integration, interop)
// It installs the pinned pnpm into .tools/ when the one on PATH is missing or
// another version (corepack is not used: it fails on some machines).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = String(pkg.packageManager).replace(/^pnpm@/, '');
const toolsDir = join(root, '.tools');
const env = { ...process.env };

function run(cmd, args, options = {}) {
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env, ...options });
  if (res.error) throw res.error;
  return res.status ?? 1;
}

function must(cmd, args, what) {
  const status = run(cmd, args);
  if (status !== 0) {
    console.error(`\n✖ ${what} failed (exit ${status}): ${cmd} ${args.join(' ')}`);
    process.exit(status);
  }
}

function pnpmOnPath() {
  const res = spawnSync('pnpm', ['--version'], { env, encoding: 'utf8' });
  return res.status === 0 ? res.stdout.trim() : undefined;
}

function ensurePnpm() {
  if (pnpmOnPath() === pnpmVersion) return;
  const localBin = join(toolsDir, 'node_modules', '.bin');
  env.PATH = `${localBin}${delimiter}${env.PATH ?? ''}`;
  if (pnpmOnPath() === pnpmVersion) return;
  console.log(`→ installing pnpm ${pnpmVersion} into .tools/`);
  mkdirSync(toolsDir, { recursive: true });
  must('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', toolsDir, `pnpm@${pnpmVersion}`], 'installing pnpm');
  if (pnpmOnPath() !== pnpmVersion) {
    console.error(`✖ pnpm ${pnpmVersion} is still not usable after installing it into .tools/`);
    process.exit(1);
  }
}

function install() {
  ensurePnpm();
  console.log('→ pnpm install --frozen-lockfile');
  must('pnpm', ['install', '--frozen-lockfile'], 'installing dependencies');
}

function build() {
  console.log('→ building every package');
  must('pnpm', ['run', 'build'], 'build');
}

function test() {
  const report = join(root, '.turbo', 'vitest-report.json');
  rmSync(report, { force: true });
  console.log('→ vitest run (every project: unit, integration, interop)');
  const status = run('pnpm', ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`]);
  if (existsSync(report)) {
    const r = JSON.parse(readFileSync(report, 'utf8'));
    const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // The plain closing line that CI reads, whatever the test runner.
    console.log(`\nTests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  }
  if (status !== 0) process.exit(status);
  console.log('→ README examples compile');
  must('node', ['scripts/check-readme-examples.mjs'], 'README examples');
}

const command = process.argv[2];
if (command === 'test') {
  install();
  build();
  test();
} else if (command === 'start') {
  install();
  build();
  must('pnpm', ['--filter', '@pigeonpost/example-mail-server', 'run', 'start', ...process.argv.slice(3)], 'mail server');
} else {
  console.error('usage: node scripts/bootstrap.mjs start|test');
  process.exit(2);
}
