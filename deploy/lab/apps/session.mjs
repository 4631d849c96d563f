#!/usr/bin/env node
// A long-lived TCP session for the lab, with its data checked end to end.
//   session.mjs server PORT            echoes every line back (the service in a VM)
//   session.mjs client HOST PORT [MS]  sends "seq N <payload>" every MS ms (default 20), checks
//                                      that each echo comes back whole and in order, and prints a
//                                      JSON status line every second; SIGTERM/SIGINT (or the
//                                      connection ending) prints the summary and exits: 0 when
//                                      the session is still open and every byte came back right.
import net from "node:net";
import { randomBytes } from "node:crypto";

const [mode, a, b, c] = process.argv.slice(2);
const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");

if (mode === "server") {
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.pipe(sock);
    sock.on("error", () => {});
  });
  server.listen(Number(a), () => print({ listening: Number(a) }));
} else if (mode === "client") {
  const interval = Number(c ?? 20);
  const sock = net.connect({ host: a, port: Number(b) });
  sock.setNoDelay(true);
  const expected = [];
  let buf = "";
  let sent = 0, echoed = 0, mismatches = 0, closed = false, error = "";
  let lastEchoAt = 0, maxGapMs = 0, gapMs = 0, connectedAt = 0;
  let timer;
  // maxGapMs: the longest wait between echoes since the start; gapMs: since the previous status line.
  const status = () => ({ connected: connectedAt > 0 && !closed, sent, echoed, outstanding: expected.length, mismatches, maxGapMs, gapMs, local: `${sock.localAddress}:${sock.localPort}`, remote: `${sock.remoteAddress}:${sock.remotePort}`, error });
  const finish = () => {
    clearInterval(timer);
    clearInterval(report);
    const s = status();
    print({ summary: true, ...s });
    process.exit(s.connected && mismatches === 0 && echoed > 0 ? 0 : 1);
  };
  sock.on("connect", () => {
    connectedAt = lastEchoAt = performance.now();
    print({ connected: true, local: `${sock.localAddress}:${sock.localPort}`, remote: `${sock.remoteAddress}:${sock.remotePort}` });
    timer = setInterval(() => {
      const line = `seq ${sent} ${randomBytes(24).toString("hex")}\n`;
      expected.push(line);
      sent++;
      sock.write(line);
    }, interval);
  });
  sock.on("data", (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i + 1);
      buf = buf.slice(i + 1);
      const want = expected.shift();
      if (line !== want) mismatches++;
      echoed++;
      const now = performance.now();
      maxGapMs = Math.max(maxGapMs, Math.round(now - lastEchoAt));
      gapMs = Math.max(gapMs, Math.round(now - lastEchoAt));
      lastEchoAt = now;
    }
  });
  sock.on("error", (e) => (error = e.message));
  sock.on("close", () => {
    closed = true;
    finish();
  });
  const report = setInterval(() => {
    // A wait still going on counts too.
    if (connectedAt > 0) gapMs = Math.max(gapMs, Math.round(performance.now() - lastEchoAt));
    print(status());
    gapMs = 0;
  }, 1000);
  process.on("SIGTERM", finish);
  process.on("SIGINT", finish);
} else {
  process.stderr.write("usage: session.mjs server PORT | client HOST PORT [INTERVAL_MS]\n");
  process.exit(2);
}
