// The `cap` backend of dataplane/io/frames.ts: libpcap through the `cap` addon.
//
// What `cap` does, and why this file is shaped by it:
// - it calls JavaScript once per captured frame, with the frame copied into one shared buffer,
//   so every frame is copied out before the next arrives (into a slab, not a new Buffer each);
// - it drains the whole capture ring in one libuv poll callback, so frames that arrive together
//   are handed over together: the batch is flushed by setImmediate, which runs right after the
//   poll phase, or at once when it reaches maxBatch;
// - immediate mode is always on and libpcap then uses fixed 64 KiB ring slots (snaplen 65535),
//   so the ring holds bufferBytes / 64 KiB frames: a 64 MiB buffer holds about a thousand;
// - it cannot leave out the frames it sent itself: a BPF filter on our own source MAC does;
// - it does not expose pcap_stats(): the drop counter pcap_stats would report as ps_drop (the
//   ring's tp_drops, getsockopt PACKET_STATISTICS) is read by a short helper process that
//   inherits the capture sockets (found through /proc/self/fd and /proc/net/packet), in the
//   background; sock_diag (`ss`) does not report that counter.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { formatMac } from "../packet/ethernet.js";
import type { FrameBatchHandler, FrameIo, FramePort, FramePortOptions, FramePortStats } from "./frames.js";

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): void;
  send(buffer: Buffer, nbytes?: number): void;
  emit: (event: string, nbytes: number, truncated: boolean) => void;
}
interface CapModule { Cap: { new(): CapHandle; prototype: CapHandle } }

const require = createRequire(import.meta.url);
let capModule: CapModule | undefined;
function loadCap(): CapModule {
  capModule ??= require("cap") as CapModule;
  return capModule;
}

// The addon looks up `emit` on the new object once, in its constructor, and calls it for every
// frame; a prototype of our own with an `emit` that goes straight to the port skips
// EventEmitter's dispatch per frame.
interface OwnedHandle extends CapHandle { port: CapPort }
let fastPrototype: { prototype: object } | undefined;
function newCapHandle(port: CapPort): CapHandle {
  const { Cap } = loadCap();
  if (!fastPrototype) {
    const target = function FastCap() {} as unknown as { prototype: object };
    target.prototype = Object.create(Cap.prototype, {
      emit: {
        value(this: OwnedHandle, _event: string, nbytes: number, truncated: boolean) {
          this.port.captured(nbytes, truncated);
        },
      },
    });
    fastPrototype = target;
  }
  const handle = Reflect.construct(Cap, [], fastPrototype as unknown as new () => CapHandle) as OwnedHandle;
  handle.port = port;
  return handle;
}

export const DEFAULT_CAPTURE_BUFFER = 64 << 20;
const SLAB_BYTES = 4 << 20;
const MAX_FRAME = 65535;

/** The MAC of an interface of this network namespace (sysfs is per namespace under `ip netns exec`). */
export function interfaceMac(name: string): Uint8Array {
  const text = readFileSync(`/sys/class/net/${name}/address`, "utf8").trim();
  const bytes = text.split(":").map((h) => parseInt(h, 16));
  if (bytes.length !== 6 || bytes.some((b) => !(b >= 0 && b <= 255))) throw new Error(`${name}: unreadable MAC '${text}'`);
  return Uint8Array.from(bytes);
}

class CapPort implements FramePort {
  readonly mac: Uint8Array;
  private readonly handle: CapHandle;
  private readonly captureBuffer = Buffer.alloc(MAX_FRAME);
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private slabUsed = 0;
  private batch: Uint8Array[] = [];
  private flushScheduled = false;
  private onBatch?: FrameBatchHandler;
  private readonly maxBatch: number;
  private readonly s: FramePortStats = { received: 0, batches: 0, sent: 0, sendErrors: 0, truncated: 0, captureDrops: 0 };
  private closed = false;
  private sendArrayBuffer?: ArrayBufferLike;
  private sendBuffer?: Buffer;

  constructor(readonly name: string, options: FramePortOptions, private readonly io: CapIo) {
    this.mac = interfaceMac(name);
    this.maxBatch = options.maxBatch ?? 1024;
    this.handle = newCapHandle(this);
    const linkType = this.handle.open(name, `not ether src ${formatMac(this.mac)}`, options.bufferBytes ?? DEFAULT_CAPTURE_BUFFER, this.captureBuffer);
    if (linkType !== "ETHERNET") {
      this.handle.close();
      throw new Error(`${name}: link type ${linkType}, only Ethernet is supported`);
    }
  }

  start(onBatch: FrameBatchHandler): void {
    this.onBatch = onBatch;
  }

  /** Called by the addon for every frame, which sits in captureBuffer until the next one. */
  captured(nbytes: number, truncated: boolean): void {
    if (truncated) {
      this.s.truncated++;
      return;
    }
    if (this.slabUsed + nbytes > this.slab.length) this.flush();
    this.captureBuffer.copy(this.slab, this.slabUsed, 0, nbytes);
    // A plain Uint8Array view is cheaper to make than Buffer#subarray.
    this.batch.push(new Uint8Array(this.slab.buffer, this.slab.byteOffset + this.slabUsed, nbytes));
    this.slabUsed += nbytes;
    if (this.batch.length >= this.maxBatch) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private readonly flushLater = () => {
    this.flushScheduled = false;
    this.flush();
  };

  private flush(): void {
    const frames = this.batch;
    if (frames.length === 0) return;
    this.batch = [];
    this.s.received += frames.length;
    this.s.batches++;
    try {
      if (this.onBatch && !this.closed) this.onBatch(frames);
    } finally {
      // The handler has returned: the slab may be written over.
      this.slabUsed = 0;
    }
  }

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      // The addon sends the first nbytes of a Buffer. The pipeline emits most frames from the
      // start of one reused buffer: one Buffer around it serves them all, instead of a new
      // Buffer object per frame.
      let b: Buffer;
      if (frame.byteOffset === 0) {
        if (frame.buffer !== this.sendArrayBuffer) {
          this.sendArrayBuffer = frame.buffer;
          this.sendBuffer = Buffer.from(frame.buffer);
        }
        b = this.sendBuffer!;
      } else {
        b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
      }
      this.handle.send(b, frame.byteLength);
      this.s.sent++;
      return true;
    } catch {
      // ENOBUFS under load, or the interface went down: counted, never thrown into the pipeline.
      this.s.sendErrors++;
      return false;
    }
  }

  stats(): FramePortStats {
    return { ...this.s, captureDrops: this.io.captureDrops(this.name) };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    this.io.forget(this);
  }
}

/** The packet sockets of this process, by interface name: fd numbers from /proc/self/fd matched
 * by inode to /proc/net/packet, whose interface index sysfs names. */
export function packetSocketsByInterface(): Map<string, number[]> {
  const byInode = new Map<string, number>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) byInode.set(m[1], Number(fd));
    } catch { /* closed meanwhile */ }
  }
  const names = new Map<number, string>();
  for (const name of readdirSync("/sys/class/net")) {
    try {
      names.set(Number(readFileSync(`/sys/class/net/${name}/ifindex`, "utf8")), name);
    } catch { /* gone meanwhile */ }
  }
  const out = new Map<string, number[]>();
  for (const line of readFileSync("/proc/net/packet", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9) continue;
    const fd = byInode.get(f[8]);
    const name = names.get(Number(f[4]));
    if (fd === undefined || name === undefined) continue;
    out.set(name, [...(out.get(name) ?? []), fd]);
  }
  return out;
}

// Reads PACKET_STATISTICS (struct tpacket_stats: tp_packets, tp_drops; reading resets them) of
// the sockets passed as fds 3, 4, ...; prints the drops, one line per socket.
const STATS_SCRIPT = [
  "import socket, struct, sys",
  "for i in range(int(sys.argv[1])):",
  "    s = socket.socket(fileno=3 + i)",
  "    packets, drops = struct.unpack('II', s.getsockopt(263, 6, 8))",
  "    s.detach()",
  "    print(drops)",
].join("\n");

export class CapIo implements FrameIo {
  readonly backend = "cap";
  private readonly ports = new Set<CapPort>();
  private drops = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private refreshing = false;

  constructor(private readonly dropRefreshMs = 5_000, private readonly python = "/usr/bin/python3") {}

  open(interfaceName: string, options: FramePortOptions = {}): FramePort {
    const port = new CapPort(interfaceName, options, this);
    this.ports.add(port);
    if (!this.timer && existsSync(this.python)) {
      this.timer = setInterval(() => void this.refreshStats(), this.dropRefreshMs);
      this.timer.unref();
    }
    return port;
  }

  captureDrops(name: string): number {
    return this.drops.get(name) ?? 0;
  }

  /** Adds what the capture sockets dropped since the last call (also done every dropRefreshMs). */
  refreshStats(): Promise<void> {
    if (this.refreshing) return Promise.resolve();
    let sockets: [string, number][];
    try {
      sockets = [...packetSocketsByInterface()].flatMap(([name, fds]) => fds.map((fd): [string, number] => [name, fd]));
    } catch {
      return Promise.resolve();
    }
    if (sockets.length === 0) return Promise.resolve();
    this.refreshing = true;
    return new Promise((resolve) => {
      const child = spawn(this.python, ["-c", STATS_SCRIPT, String(sockets.length)], {
        stdio: ["ignore", "pipe", "ignore", ...sockets.map(([, fd]) => fd)],
      });
      let out = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      child.once("error", () => undefined);
      child.once("close", () => {
        clearTimeout(timer);
        this.refreshing = false;
        out.trim().split("\n").forEach((line, i) => {
          const n = Number(line);
          if (line !== "" && Number.isFinite(n) && sockets[i]) {
            const name = sockets[i][0];
            this.drops.set(name, (this.drops.get(name) ?? 0) + n);
          }
        });
        resolve();
      });
    });
  }

  forget(port: CapPort): void {
    this.ports.delete(port);
    if (this.ports.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
