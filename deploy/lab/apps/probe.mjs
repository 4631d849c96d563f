#!/usr/bin/env node
// A UDP probe for the handover benchmark (bench/handover.ts). Plain node, no tsx, so it starts fast.
//   probe.mjs echo PORT [4|6]
//       UDP echo server (the service in a VM), on the VM's family: "0.0.0.0" for 4, "::" for 6.
//   probe.mjs send HOST PORT RATE_HZ DURATION_MS [--replies]
//       Sends datagrams carrying (seq, send time) at RATE_HZ for DURATION_MS on a drift-free
//       schedule (packet n is due at start + n/RATE, however late the previous one went), keeps
//       listening 500 ms more for late replies, then prints one JSON line (see `summary`).
// Times are epoch ms with sub-ms resolution (performance.timeOrigin + performance.now()), the
// clock migrate() and the agents' logs use, so the gaps line up with the handover timeline.
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const [mode, ...args] = process.argv.slice(2);
const epochMs = () => performance.timeOrigin + performance.now();
const MAGIC = 0x6d343662; // "m46b": only our own datagrams are counted
const SIZE = 64; // magic(4) seq(4) sentAt(8, float64 epoch ms), padded

if (mode === "echo") {
  const port = Number(args[0]);
  const listen = (type, address) => {
    const sock = dgram.createSocket({ type });
    sock.on("message", (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.on("error", (e) => {
      process.stderr.write(`probe echo: ${e.message}\n`);
      process.exit(1);
    });
    sock.bind(port, address, () => process.stdout.write(JSON.stringify({ listening: port, address }) + "\n"));
  };
  // The VM's family when given; else "::" where the namespace has IPv6 (a dual-stack socket,
  // which also takes IPv4), "0.0.0.0" where it cannot bind it.
  if (args[1] === "4") listen("udp4", "0.0.0.0");
  else if (args[1] === "6") listen("udp6", "::");
  else {
    const probe = dgram.createSocket({ type: "udp6" });
    probe.once("error", () => {
      probe.close();
      listen("udp4", "0.0.0.0");
    });
    probe.bind(0, "::", () => {
      probe.close();
      listen("udp6", "::");
    });
  }
} else if (mode === "send") {
  const [host, portText, rateText, durationText, flag] = args;
  const withReplies = flag === "--replies";
  const port = Number(portText), rate = Number(rateText), duration = Number(durationText);
  if (!host || !(port > 0) || !(rate > 0) || !(duration > 0)) usage();
  const sock = dgram.createSocket({ type: isIPv6(host) ? "udp6" : "udp4" });
  const total = Math.floor((duration * rate) / 1000);
  const period = 1000 / rate;
  const sentAt = new Float64Array(total); // epoch ms each seq left
  const firstReply = new Float64Array(total); // epoch ms of each seq's first reply (0: none)
  let sent = 0, received = 0, duplicates = 0, reordered = 0, highest = -1, sendErrors = 0;
  const replies = []; // epoch ms of every first reply, in arrival order
  sock.on("message", (msg) => {
    const at = epochMs();
    if (msg.length < 16 || msg.readUInt32BE(0) !== MAGIC) return;
    const seq = msg.readUInt32BE(4);
    if (seq >= total) return;
    if (firstReply[seq] !== 0) {
      duplicates++;
      return;
    }
    firstReply[seq] = at;
    received++;
    if (seq < highest) reordered++;
    else highest = seq;
    replies.push(at);
  });
  // Sends are async; an unreachable route (ENETUNREACH, EHOSTUNREACH) during the move is a loss, not an end.
  sock.on("error", () => sendErrors++);
  let start = 0;
  const pump = () => {
    const now = epochMs();
    // Every packet due by now goes; the timer wakes slightly early rather than late.
    while (sent < total && start + sent * period <= now) {
      const buf = Buffer.alloc(SIZE);
      buf.writeUInt32BE(MAGIC, 0);
      buf.writeUInt32BE(sent, 4);
      const t = epochMs();
      buf.writeDoubleBE(t, 8);
      sentAt[sent] = t;
      sock.send(buf, port, host, (e) => e && sendErrors++);
      sent++;
    }
    if (sent < total) setTimeout(pump, Math.max(0, start + sent * period - epochMs() - 0.5));
    else setTimeout(finish, 500);
  };
  const finish = () => {
    sock.close();
    process.stdout.write(JSON.stringify(summary()) + "\n");
  };
  const summary = () => {
    // The longest interval with nothing delivered: between consecutive replies, and from the last
    // reply to the last send (a probe that never recovers). The start, from the first send to the
    // first reply (ARP/NDP, caches), is reported apart as `firstReplyAfterMs`; every gap over
    // 5 ms is listed (replies at 1 kHz are 1 ms apart; a busy scheduler adds a few).
    const gaps = [];
    let maxGap = { ms: 0, from: 0, to: 0 };
    const last = sent > 0 ? sentAt[sent - 1] : 0;
    const edges = replies.length ? [...replies, Math.max(last, replies.at(-1))] : [];
    for (let i = 1; i < edges.length; i++) {
      const ms = edges[i] - edges[i - 1];
      if (ms > maxGap.ms) maxGap = { ms, from: edges[i - 1], to: edges[i] };
      if (ms > 5) gaps.push({ ms: round(ms), from: round(edges[i - 1]), to: round(edges[i]) });
    }
    let lostRun = 0, longestLostRun = 0, firstLost = -1, lastLost = -1;
    for (let i = 0; i < sent; i++) {
      if (firstReply[i] === 0) {
        lostRun++;
        longestLostRun = Math.max(longestLostRun, lostRun);
        if (firstLost < 0) firstLost = i;
        lastLost = i;
      } else lostRun = 0;
    }
    const rtts = [];
    for (let i = 0; i < sent; i++) if (firstReply[i] !== 0) rtts.push(firstReply[i] - sentAt[i]);
    rtts.sort((a, b) => a - b);
    const q = (p) => (rtts.length ? round(rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))]) : null);
    return {
      host, port, rateHz: rate, durationMs: duration,
      startedAt: round(start), endedAt: round(sent > 0 ? sentAt[sent - 1] : start),
      sent, received, lost: sent - received, duplicates, reordered, sendErrors,
      longestLostRun,
      firstLost: firstLost >= 0 ? { seq: firstLost, sentAt: round(sentAt[firstLost]) } : null,
      lastLost: lastLost >= 0 ? { seq: lastLost, sentAt: round(sentAt[lastLost]) } : null,
      firstReplyAfterMs: replies.length && sent > 0 ? round(replies[0] - sentAt[0]) : null,
      maxGap: { ms: round(maxGap.ms), from: round(maxGap.from), to: round(maxGap.to) },
      gaps,
      rttMs: { p50: q(0.5), p99: q(0.99), max: rtts.length ? round(rtts.at(-1)) : null },
      ...(withReplies ? { replies: compact(replies) } : {}),
    };
  };
  // Not connected: a connected socket would turn an ICMP error during the move into failed sends.
  sock.bind(0, () => {
    start = epochMs();
    process.stdout.write(JSON.stringify({ started: round(start) }) + "\n");
    pump();
  });
  // The benchmark may stop the probe early; it still reports what it saw.
  process.on("SIGTERM", () => {
    process.stdout.write(JSON.stringify({ ...summary(), stoppedEarly: true }) + "\n");
    process.exit(0);
  });
} else usage();

/** Reply times as the first epoch ms and then µs deltas: 1 kHz for seconds stays small. */
function compact(times) {
  if (times.length === 0) return { firstMs: null, deltasUs: [] };
  const deltasUs = [];
  for (let i = 1; i < times.length; i++) deltasUs.push(Math.round((times[i] - times[i - 1]) * 1000));
  return { firstMs: round(times[0]), deltasUs };
}

function round(x) {
  return Math.round(x * 1000) / 1000;
}

function usage() {
  process.stderr.write("usage: probe.mjs echo PORT [4|6] | send HOST PORT RATE_HZ DURATION_MS [--replies]\n");
  process.exit(2);
}
