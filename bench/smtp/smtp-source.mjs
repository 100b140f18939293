/**
 * bench/smtp/smtp-source.mjs — the arguments of Postfix's smtp-source as the
 * SMTP benchmarks run it (run.mjs, floor.mjs): `count` messages of `kb` KB
 * from a@bench.test to b@bench.test, `sessions` in parallel; with
 * `perMessage` false (`-d`) one connection per session, else one per message.
 */
export function smtpSourceArgs({ port, sessions, perMessage, kb, count }) {
  const args = ['-s', String(sessions), '-m', String(count), '-l', String(kb * 1024), '-M', 'bench.test', '-f', 'a@bench.test', '-t', 'b@bench.test'];
  if (!perMessage) args.push('-d');
  args.push(`127.0.0.1:${port}`);
  return args;
}
