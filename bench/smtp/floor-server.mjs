/**
 * bench/smtp/floor-server.mjs — the least any Node.js SMTP server can do per
 * connection, for bench/smtp/floor.mjs: a greeting, then canned replies by
 * verb (EHLO/HELO, DATA → 354, QUIT → 221 and close, anything else → 250),
 * and the body skipped up to CRLF.CRLF. No parsing, no checks, no limits, no
 * timeouts, no session object: not a server, a lower bound. What it costs
 * is Node's and the kernel's part of an SMTP connection, which every Node
 * server pays.
 *
 *   node bench/smtp/floor-server.mjs      # run by hand: prints {"port":N}
 *
 * FLOOR_NODELAY=0 leaves Nagle on (no setsockopt per connection).
 * Answers IPC `{ stats: id }` with its CPU time, like bench/smtp/server.mjs.
 */
import net from 'node:net';

const noDelay = process.env.FLOOR_NODELAY !== '0';
const server = net.createServer((socket) => {
  if (noDelay) socket.setNoDelay(true);
  let inData = false;
  let carry = '';
  socket.on('error', () => {});
  socket.write('220 floor.bench.test ESMTP\r\n');
  socket.on('data', (chunk) => {
    let text = carry + chunk.toString('latin1');
    carry = '';
    while (text.length > 0) {
      if (inData) {
        const end = text.indexOf('\r\n.\r\n');
        if (end < 0) {
          carry = text.slice(-4);
          return;
        }
        inData = false;
        text = text.slice(end + 5);
        socket.write('250 2.0.0 Ok: queued\r\n');
        continue;
      }
      const eol = text.indexOf('\r\n');
      if (eol < 0) {
        carry = text;
        return;
      }
      const verb = text.slice(0, 4).toUpperCase();
      text = text.slice(eol + 2);
      if (verb === 'EHLO') socket.write('250-floor.bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
      else if (verb === 'DATA') {
        socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        inData = true;
        text = `\r\n${text}`; // the body's first line starts right after DATA's CRLF
      } else if (verb === 'QUIT') {
        socket.end('221 2.0.0 Bye\r\n');
        return;
      } else socket.write('250 2.0.0 Ok\r\n');
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  if (process.send) process.send({ port });
  else console.log(JSON.stringify({ port }));
});
process.on('message', (msg) => {
  if (msg && msg.stats !== undefined) {
    const cpu = process.cpuUsage();
    process.send({ stats: msg.stats, cpuUs: cpu.user + cpu.system });
  }
});
process.on('disconnect', () => process.exit(0));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
