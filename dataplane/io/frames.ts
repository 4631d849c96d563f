// Frame I/O per interface, as the worker sees it: frames arrive in batches through one callback
// and leave one at a time. The forwarding pipeline only talks to this interface, so a faster
// backend (AF_XDP, a PACKET_MMAP ring read in C) can replace `cap` without the packet logic
// changing.

/**
 * Called with every frame that arrived since the last call (at most one event-loop turn's worth).
 * The frames are views into a buffer the port reuses: they are valid until the handler returns,
 * so a caller that keeps one (a frame queued behind a neighbour resolution) copies it.
 * `packets`, when the port keeps them: each frame past its 14-byte Ethernet header
 * (frames[i].subarray(14)), views made once per place in its buffer as the frames are, so the
 * forwarder makes none per frame.
 */
export type FrameBatchHandler = (frames: readonly Uint8Array[], packets?: readonly Uint8Array[]) => void;

export interface FramePortStats {
  /** Frames handed to the batch handler. */
  received: number;
  /** Batches handed to the batch handler (received / batches is the mean batch size). */
  batches: number;
  sent: number;
  sendErrors: number;
  /** Sends that found the socket full (EAGAIN, ENOBUFS) and tried the rest of the batch once more (ring backend). */
  sendRetries?: number;
  /** Frames larger than the capture buffer, cut short and dropped. */
  truncated: number;
  /** Frames the capture socket dropped because its buffer was full (libpcap's ps_drop). */
  captureDrops: number;
  /** Errors the capture socket reported and capture went on after (ENETDOWN while the link was down). */
  socketErrors?: number;
}

export interface FramePort {
  /** The interface name, e.g. "eth1". */
  readonly name: string;
  /** The interface's own MAC (6 bytes); frames from it are never handed to the handler. */
  readonly mac: Uint8Array;
  /** Starts delivering frames; call once. */
  start(onBatch: FrameBatchHandler): void;
  /** Sends one complete Ethernet frame, or queues it for flush() (the bytes may be reused once it returns). */
  send(frame: Uint8Array): boolean;
  /** The batch form: sends every frame send() queued, in one system call (backends that batch). */
  flushSends?(): void;
  stats(): FramePortStats;
  close(): void;
}

export interface FramePortOptions {
  /** Kernel capture buffer in bytes; small buffers drop bursts. */
  bufferBytes?: number;
  /** Hand the batch over at once when it holds this many frames (else at the end of the turn). */
  maxBatch?: number;
  /** The interface MTU: ring backends size their frames to it (a longer frame is counted and dropped). */
  mtu?: number;
  /**
   * Share the interface's frames with the other ports opened with `fanout` on it (the ring
   * backend's PACKET_FANOUT, hash mode): each flow goes to one of them, in order.
   */
  fanout?: boolean;
}

/** Opens ports on interfaces; one implementation per backend. */
export interface FrameIo {
  readonly backend: string;
  open(interfaceName: string, options?: FramePortOptions): FramePort;
  /** Brings counters that are read in the background (captureDrops) up to date. */
  refreshStats?(): Promise<void>;
}
