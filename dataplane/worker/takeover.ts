// Worker restart without a traffic gap (issue 11 §6): `mip46-dataplane --takeover` starts a new
// process beside the running one and takes over from it, instead of stop-then-start (which cut
// traffic for about 3 s: the new process synced its table and resolved its neighbours while
// nobody forwarded).
//
// The running worker listens on `takeover.socket`, a unix socket (newline-delimited JSON, one
// request per line). The new process:
//   1. loads its configuration and its table file, and syncs its rule table from the engine
//      (`takeover.syncTimeoutMs`; without a snapshot in that time it exits 1 and the running
//      worker stays, untouched);
//   2. asks the running worker for its neighbours ({"op":"neighbours"}) and learns them as STALE
//      (RFC 4861 §7.3.3, RFC 1122 §2.3.2.1's ARP cache alike): used at once, confirmed by a
//      unicast probe after the delay, so that the first packets after the takeover need no
//      resolution;
//   3. ring backend: opens its rings, which join each interface's PACKET_FANOUT group
//      (packet(7)) beside the old process's; from then on every frame goes to exactly one of
//      the two (no frame is forwarded twice), each flow to one of them by its hash. The one
//      exception: the kernel lets a socket join a fanout group only once it is bound, so between
//      the two system calls (bind, then PACKET_FANOUT: microseconds, in ring.c) the new socket
//      sees every frame; a frame arriving then may be forwarded by both processes (none was in
//      bench/restart.ts's runs, nor in the live test's);
//      cap backend (libpcap, no fanout): after step 4, not before, so that both never capture;
//   4. tells the running worker to go ({"op":"leave"}): it takes its correspondent bindings
//      (route optimisation, RFC 6275 §9.5: they live in its memory alone), closes its rings
//      (its share of the flows moves to the new one's), its metrics endpoint and its engine
//      stream, answers {"left": true, "bindings": [...]} and exits 0; the new one adopts the
//      bindings still alive, so the correspondents' traffic keeps the short way;
//   5. serves the metrics on the same address, listens on the socket itself and writes
//      `takeover.pidFile` (systemd's PIDFile=, re-read after ExecReload).
// What the overlap costs: the frames the old process's rings hold when it closes them (those of
// the last event-loop turn, a few at most), and the frames of a flow the fanout moves to the new
// process may overtake those of the same flow still in the old one's ring (reordering bounded by
// one batch), both at the join and at the leave. A worker that started without --takeover
// refuses to start while another answers on the socket (it would forward every frame a second
// time).
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Logger } from "../../lib/log.js";
import type { SharedLearn } from "../neighbour/cache.js";
import type { NeighbourEntry } from "../neighbour/cache.js";
import type { Binding, CorrespondentChange } from "../forward/correspondent.js";
import { ipv4FromBytes, ipv6FromBytes, parseIPv4, parseIPv6 } from "../../lib/net/address.js";

/** A neighbour as it crosses the socket: by interface name (the new configuration may order them otherwise). */
export interface HandedNeighbour { interface: string; family: 4 | 6; address: string; mac: string }

/**
 * A correspondent binding (route optimisation, RFC 6275 §9.5) as it crosses the socket. Bindings
 * live only in a worker's memory: without this a restart would send the correspondents' traffic
 * back through the home agent until each VM refreshed its binding update.
 */
export interface HandedBinding { home: string; correspondent: string; careOfIPv6: string; careOfIPv4: string; sequence: number; expiresAtMs: number }

export interface TakeoverPeer {
  pid: number;
  workerId: string;
  revision: string;
  neighbours: HandedNeighbour[];
  /**
   * Tells the old worker to go; resolves once it closed its rings, its metrics endpoint and its
   * engine stream, with the correspondent bindings it held when it closed them.
   */
  leave(): Promise<HandedBinding[]>;
  close(): void;
}

export class TakeoverError extends Error {
  override name = "TakeoverError";
}

/** What the running worker answers with. */
export interface TakeoverSide {
  workerId: string;
  revision(): bigint;
  neighbours(): HandedNeighbour[] | Promise<HandedNeighbour[]>;
  /** The correspondent bindings held now, taken just before leave() closes the rings. */
  bindings?(): HandedBinding[] | Promise<HandedBinding[]>;
  /** Closes the rings, the metrics endpoint and the engine stream; the process exits after the answer. */
  leave(): Promise<void>;
  /** After the answer to a leave; default: SIGTERM to this process, the daemon's own stop path (lib/process/main.ts). */
  afterLeft?(): void;
}

export function handedBindings(list: Iterable<Binding>): HandedBinding[] {
  return [...list].map((b) => ({
    home: ipv6FromBytes(b.home).text, correspondent: ipv6FromBytes(b.correspondent).text, careOfIPv6: ipv6FromBytes(b.careOfIPv6).text,
    careOfIPv4: ipv4FromBytes(b.careOfIPv4).text, sequence: b.sequence, expiresAtMs: b.expiresAtMs,
  }));
}

/**
 * The handed bindings as the new forwarder adopts them: those still alive at `nowMs` and well
 * formed (a bad entry is left out, not trusted). The new forwarder checks each against its own
 * rule table whenever it uses it, as for bindings it took itself.
 */
export function bindingsToAdopt(handed: unknown, nowMs: number): CorrespondentChange[] {
  if (!Array.isArray(handed)) return [];
  const out: CorrespondentChange[] = [];
  for (const h of handed as Partial<HandedBinding>[]) {
    try {
      if (typeof h.sequence !== "number" || typeof h.expiresAtMs !== "number" || h.expiresAtMs <= nowMs) continue;
      out.push({ binding: {
        home: parseIPv6(h.home, "home").bytes, correspondent: parseIPv6(h.correspondent, "correspondent").bytes,
        careOfIPv6: parseIPv6(h.careOfIPv6, "careOfIPv6").bytes, careOfIPv4: parseIPv4(h.careOfIPv4, "careOfIPv4").bytes,
        sequence: h.sequence & 0xffff, expiresAtMs: h.expiresAtMs,
      } });
    } catch { /* not an address: left out */ }
  }
  return out;
}

/** The reachable and stale entries of a cache (not the incomplete ones, not the configured permanent ones), by interface name. */
export function handedNeighbours(entries: Iterable<NeighbourEntry>, names: string[]): HandedNeighbour[] {
  const out: HandedNeighbour[] = [];
  for (const e of entries) {
    if (e.state !== "reachable" && e.state !== "stale") continue;
    const name = names[e.ifIndex];
    if (name === undefined) continue;
    out.push({ interface: name, family: e.family as 4 | 6, address: Buffer.from(e.address).toString("hex"), mac: Buffer.from(e.mac).toString("hex") });
  }
  return out;
}

/** The handed neighbours as the new forwarder's learnShared input: unconfirmed, created, so STALE. Those of an interface it has not are left out. */
export function neighboursToLearn(handed: HandedNeighbour[], names: string[]): SharedLearn[] {
  const out: SharedLearn[] = [];
  for (const n of handed) {
    const ifIndex = names.indexOf(n.interface);
    const address = Buffer.from(n.address, "hex");
    const mac = Buffer.from(n.mac, "hex");
    if (ifIndex < 0 || (n.family !== 4 && n.family !== 6) || address.length !== (n.family === 4 ? 4 : 16) || mac.length !== 6) continue;
    out.push({ ifIndex, family: n.family, address: new Uint8Array(address), mac: new Uint8Array(mac), opts: { confirmed: false, create: true } });
  }
  return out;
}

/** The running worker's side: answers on `path` (an old socket nobody answers on is removed first). */
export async function serveTakeover(path: string, side: TakeoverSide, log: Logger): Promise<Server> {
  if (await answering(path)) throw new TakeoverError(`another worker answers on takeover.socket ${path}: start with --takeover to replace it, or stop it first`);
  // Nobody answers: a socket file left by a worker that died (or by the one that just left).
  rmSync(path, { force: true });
  const server = createServer((socket) => {
    const lines = createInterface({ input: socket });
    const reply = (o: unknown) => socket.write(JSON.stringify(o) + "\n");
    lines.on("line", (line) => {
      let op: unknown;
      try {
        op = (JSON.parse(line) as { op?: unknown }).op;
      } catch {
        op = undefined;
      }
      if (op === "neighbours") {
        Promise.resolve(side.neighbours()).then(
          (neighbours) => reply({ pid: process.pid, workerId: side.workerId, revision: side.revision().toString(), neighbours }),
          (e) => reply({ error: (e as Error).message }));
      } else if (op === "leave") {
        log.info("taken over: leaving", { revision: side.revision() });
        let bindings: HandedBinding[] = [];
        Promise.resolve(side.bindings?.() ?? []).then((b) => { bindings = b; }, () => undefined).then(() => side.leave()).then(() => {
          socket.end(JSON.stringify({ left: true, pid: process.pid, bindings }) + "\n", () => {
            server.close();
            (side.afterLeft ?? (() => process.kill(process.pid, "SIGTERM")))();
          });
        }, (e) => reply({ error: (e as Error).message }));
      } else {
        reply({ error: `unknown request ${JSON.stringify(line.slice(0, 64))}: "neighbours" or "leave"` });
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/** True when a worker answers on `path`. */
export async function answering(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** The new process's side: the running worker on `path` and its neighbours, or undefined when none answers. */
export async function connectTakeover(path: string, timeoutMs = 5_000): Promise<TakeoverPeer | undefined> {
  if (!existsSync(path)) return undefined;
  const socket = await new Promise<Socket | undefined>((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => resolve(s));
    s.once("error", () => resolve(undefined));
  });
  if (!socket) return undefined;
  const answers: ((o: Record<string, unknown>) => void)[] = [];
  let ended: ((e: Error) => void) | undefined;
  createInterface({ input: socket }).on("line", (l) => answers.shift()?.(JSON.parse(l) as Record<string, unknown>));
  socket.on("error", (e) => ended?.(e));
  socket.on("close", () => ended?.(new TakeoverError("the running worker closed the takeover socket without an answer")));
  const ask = (op: string) => new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TakeoverError(`no answer to "${op}" on ${path} within ${timeoutMs} ms`)), timeoutMs);
    ended = (e) => { clearTimeout(timer); reject(e); };
    answers.push((o) => {
      clearTimeout(timer);
      ended = undefined;
      if (typeof o.error === "string") reject(new TakeoverError(`the running worker refused "${op}": ${o.error}`));
      else resolve(o);
    });
    socket.write(JSON.stringify({ op }) + "\n");
  });
  try {
    const hello = await ask("neighbours");
    return {
      pid: Number(hello.pid), workerId: String(hello.workerId), revision: String(hello.revision),
      neighbours: Array.isArray(hello.neighbours) ? (hello.neighbours as HandedNeighbour[]) : [],
      async leave() {
        const left = await ask("leave");
        return Array.isArray(left.bindings) ? (left.bindings as HandedBinding[]) : [];
      },
      close: () => socket.destroy(),
    };
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

/** The first table applied from the engine: applied() says it came; wait() resolves once it has, or rejects after `timeoutMs`. */
export function firstSnapshot(): { applied(): void; wait(timeoutMs: number): Promise<void> } {
  let came = false;
  let resolve: (() => void) | undefined;
  return {
    applied() {
      came = true;
      resolve?.();
    },
    wait(timeoutMs) {
      if (came) return Promise.resolve();
      return new Promise<void>((ok, fail) => {
        const timer = setTimeout(() => fail(new TakeoverError(`no rule table from the engine within takeover.syncTimeoutMs (${timeoutMs} ms): the running worker stays`)), timeoutMs);
        resolve = () => {
          clearTimeout(timer);
          ok();
        };
      });
    },
  };
}

export function writePidFile(path: string | undefined): void {
  if (path) writeFileSync(path, `${process.pid}\n`);
}
