// The `ring` backend of dataplane/io/frames.ts: our own addon (dataplane/io/native/ring.c), a
// PACKET_MMAP ring per interface with frames sized to the MTU and batched injection.
// - one JavaScript call per wake-up, with every ready frame as a view into the ring (no copy; a
//   view is made once per ring frame and length and handed over again after); the frames go back
//   to the kernel when the handler returns;
// - frames longer than a ring frame are counted (`truncated`) and dropped;
// - our own frames are left out by the kernel (PACKET_IGNORE_OUTGOING);
// - send() copies the frame into a staging buffer (the pipeline reuses its output buffer) and
//   flush() hands the whole batch to sendmmsg(2); the worker flushes after every batch, and a
//   frame sent outside a batch (a neighbour tick, a control plane) is flushed by setImmediate;
// - with `fanout`, the port's socket joins its interface's PACKET_FANOUT group (hash mode): ports
//   of one interface in several worker processes share its frames, each flow on one of them;
// - captureDrops is the ring's own PACKET_STATISTICS, read in the addon (no helper process);
// - a link that goes down and comes back: the socket's error is counted (socketErrors) and
//   capture goes on on the same interface.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ETHERNET_HEADER_LENGTH as ETH } from "../packet/ethernet.js";
import { interfaceMac } from "./cap.js";
import type { FrameBatchHandler, FrameIo, FramePort, FramePortOptions, FramePortStats } from "./frames.js";

export interface RingAddon {
  open(name: string, frameSize: number, frameCount: number, maxBatch: number, onReady: (count: number) => void, fanout: boolean): [object, ArrayBuffer, Int32Array];
  send(handle: object, buffer: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  stats(handle: object): [number, number, number, number, number];
  close(handle: object): void;
  /** The calling thread's kernel id (gettid): where its CPU time is, in /proc/PID/task/TID/stat. */
  threadId(): number;
  /** See forwardingScheduling below: the number of threads made SCHED_BATCH. */
  forwardingScheduling(): number;
}

const ADDON = "mip46ring.node";
/** Where the addon may be: beside the sources (tsx) or from the bundle in dist/. */
function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [
    join(here, "native/build/Release", ADDON),
    join(here, "../dataplane/io/native/build/Release", ADDON),
    join(here, "../../dataplane/io/native/build/Release", ADDON),
  ];
}

let addon: RingAddon | undefined;
let loadError: string | undefined;
/** Loads the addon once; undefined (with ringLoadError() saying why) when it was not built. */
export function loadRingAddon(paths = addonCandidates()): RingAddon | undefined {
  if (addon || loadError) return addon;
  const require = createRequire(import.meta.url);
  const path = paths.find((p) => existsSync(p));
  if (!path) {
    loadError = `${ADDON} not built (npm ci builds it with node-gyp; looked in ${paths.join(", ")})`;
    return undefined;
  }
  try {
    addon = require(path) as RingAddon;
  } catch (e) {
    loadError = `${path}: ${(e as Error).message}`;
  }
  return addon;
}
export function ringLoadError(): string | undefined {
  return loadError;
}

/**
 * Scheduling for the thread that forwards (the addon's forwardingScheduling, ring.c): V8's helper
 * threads, woken by the forwarding thread to compile or collect, preempted it on its own CPU and
 * held a lone frame up to a scheduler tick (bench/README.md, "Issue 12, latency"). Called on the
 * process's main thread, every other thread that exists now becomes SCHED_BATCH (never preempts on
 * wake-up, same share of the CPU); on another thread nothing changes. Undefined when the addon did
 * not build (the backend falls back to cap; nothing is changed).
 */
export function forwardingScheduling(lib = loadRingAddon()): { helpersBatched: number } | undefined {
  if (!lib) return undefined;
  return { helpersBatched: lib.forwardingScheduling() };
}

/** TPACKET2 header (32) + sockaddr_ll (20), aligned, then the Ethernet frame; a power of two ≥ 256. */
export function ringFrameSize(mtu: number): number {
  const need = 80 + 14 + 4 + mtu;
  let size = 256;
  while (size < need) size *= 2;
  return size;
}

const STAGE_FRAMES = 1024;
const STAGE_SLOT = 2048;

class RingPort implements FramePort {
  readonly mac: Uint8Array;
  private readonly handle: object;
  private readonly ring: ArrayBuffer;
  private readonly desc: Int32Array;
  private onBatch?: FrameBatchHandler;
  private readonly s: FramePortStats = { received: 0, batches: 0, sent: 0, sendErrors: 0, truncated: 0, captureDrops: 0, socketErrors: 0 };
  private closed = false;
  private readonly frames: Uint8Array[] = [];
  /**
   * The view last handed over for each ring frame: the next frame in that place with the same
   * length gets the same view, so that a batch allocates no object per frame (the collector's
   * time is the price of a view per frame at a million frames a second).
   */
  private readonly views: (Uint8Array | undefined)[] = [];
  /** The same frames past their Ethernet header (FrameBatchHandler's `packets`), kept alike. */
  private readonly packetViews: Uint8Array[] = [];
  private readonly packets: Uint8Array[] = [];
  /** Where each of those views starts in the ring (reading `byteOffset` back is a builtin call in Node 20). */
  private readonly viewOffsets: Int32Array;
  private readonly frameSize: number;
  private readonly stage: Uint8Array;
  private readonly offsets = new Int32Array(STAGE_FRAMES);
  private readonly lengths = new Int32Array(STAGE_FRAMES);
  private queued = 0;
  private flushScheduled = false;
  private inBatch = false;
  private readonly slot: number;

  constructor(readonly name: string, private readonly lib: RingAddon, options: FramePortOptions) {
    this.mac = interfaceMac(name);
    const mtu = options.mtu ?? 1500;
    const frameSize = ringFrameSize(mtu);
    this.frameSize = frameSize;
    const frameCount = Math.max(64, Math.floor((options.bufferBytes ?? 16 << 20) / frameSize));
    this.slot = Math.max(STAGE_SLOT, ETH + mtu + 64);
    this.stage = new Uint8Array(STAGE_FRAMES * this.slot);
    [this.handle, this.ring, this.desc] = lib.open(name, frameSize, frameCount, options.maxBatch ?? 1024, this.ready, options.fanout ?? false);
    this.viewOffsets = new Int32Array(Math.ceil(this.ring.byteLength / frameSize)).fill(-1);
  }

  start(onBatch: FrameBatchHandler): void {
    this.onBatch = onBatch;
  }

  private readonly ready = (count: number): void => {
    if (this.closed) return;
    const frames = this.frames;
    const desc = this.desc;
    const views = this.views;
    const packets = this.packets;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = desc[2 * i];
      if (off < 0) continue; // truncated: counted in the addon
      const len = desc[2 * i + 1];
      const place = (off / this.frameSize) | 0;
      let view = views[place];
      if (view === undefined || this.viewOffsets[place] !== off || view.length !== len) {
        view = new Uint8Array(this.ring, off, len);
        views[place] = view;
        this.viewOffsets[place] = off;
        this.packetViews[place] = new Uint8Array(this.ring, off + ETH, Math.max(0, len - ETH));
      }
      frames[n] = view;
      packets[n] = this.packetViews[place];
      n++;
    }
    frames.length = n;
    packets.length = n;
    if (n === 0) return;
    this.s.received += n;
    this.s.batches++;
    this.inBatch = true;
    try {
      this.onBatch?.(frames, packets);
    } finally {
      this.inBatch = false;
      frames.length = 0;
      packets.length = 0;
      this.flushSends();
    }
  };

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    const len = frame.length;
    if (len > this.slot || len < ETH) {
      this.s.sendErrors++;
      return false;
    }
    if (this.queued === STAGE_FRAMES) this.flushSends();
    const at = this.queued * this.slot;
    this.stage.set(frame, at);
    this.offsets[this.queued] = at;
    this.lengths[this.queued] = len;
    this.queued++;
    if (!this.inBatch && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
    return true;
  }

  private readonly flushLater = () => {
    this.flushScheduled = false;
    this.flushSends();
  };

  /** Sends every queued frame with one sendmmsg (two when the socket was briefly full). */
  flushSends(): void {
    const n = this.queued;
    if (n === 0 || this.closed) return;
    this.queued = 0;
    this.s.sent += this.lib.send(this.handle, this.stage, this.offsets, this.lengths, n);
  }

  stats(): FramePortStats {
    if (!this.closed) {
      const [drops, truncated, sendRetries, sendErrors, socketErrors] = this.lib.stats(this.handle);
      this.s.sendRetries = sendRetries;
      this.s.captureDrops = drops;
      this.s.socketErrors = socketErrors;
      this.s.truncated = truncated;
      this.s.sendErrors = sendErrors;
    }
    return { ...this.s };
  }

  close(): void {
    if (this.closed) return;
    this.flushSends();
    this.stats();
    this.closed = true;
    this.lib.close(this.handle);
  }
}

export class RingIo implements FrameIo {
  readonly backend = "ring";
  constructor(private readonly lib: RingAddon) {}
  open(interfaceName: string, options: FramePortOptions = {}): FramePort {
    return new RingPort(interfaceName, this.lib, options);
  }
}
