// A small QMP client (QEMU Machine Protocol, JSON lines over a unix socket): the greeting,
// qmp_capabilities, `execute` answered in order by id, and asynchronous events.
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { retry } from "../../lib/retry.js";

export interface QmpEvent { event: string; data?: Record<string, unknown>; timestamp?: { seconds: number; microseconds: number } }

export class QmpError extends Error {
  override name = "QmpError";
}

export class Qmp extends EventEmitter {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private next = 1;
  private closed = false;

  private constructor(private readonly sock: Socket) {
    super();
    createInterface({ input: sock }).on("line", (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (typeof msg.event === "string") {
        this.emit("event", msg as unknown as QmpEvent);
        return;
      }
      const p = this.pending.get(msg.id as number);
      if (!p) return;
      this.pending.delete(msg.id as number);
      if (msg.error) p.reject(new QmpError(`${(msg.error as { class: string }).class}: ${(msg.error as { desc: string }).desc}`));
      else p.resolve(msg.return);
    });
    sock.on("close", () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new QmpError("QMP connection closed"));
      this.pending.clear();
      this.emit("close");
    });
    sock.on("error", () => undefined);
  }

  /**
   * Connects, reads the greeting and leaves capabilities negotiation mode. A connect that finds
   * the monitor's listen queue full (EAGAIN on a unix socket: QEMU has not yet taken the last
   * client's close, as after destinationRefused's polling) is tried again until `timeoutMs`.
   */
  static async open(path: string, timeoutMs = 5_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    const sock = await retry(() => new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const timer = setTimeout(() => { s.destroy(); reject(new QmpError(`QMP ${path}: no connection in ${timeoutMs} ms`)); }, Math.max(1, deadline - Date.now()));
      s.once("connect", () => { clearTimeout(timer); resolve(s); });
      s.once("error", (e: NodeJS.ErrnoException) => { clearTimeout(timer); reject(Object.assign(new QmpError(`QMP ${path}: ${e.message}`), { code: e.code })); });
    }), { baseMs: 10, capMs: 100, deadline, retryable: (e) => (e as { code?: string }).code === "EAGAIN" });
    const greeting = await new Promise<string>((resolve, reject) => {
      let buf = "";
      // QEMU serves one monitor client at a time: a connection left open would lock others out.
      const timer = setTimeout(() => { sock.destroy(); reject(new QmpError(`QMP ${path}: no greeting`)); }, timeoutMs);
      const onData = (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf("\n");
        if (i < 0) return;
        clearTimeout(timer);
        sock.off("data", onData);
        sock.pause();
        if (buf.length > i + 1) sock.unshift(Buffer.from(buf.slice(i + 1)));
        resolve(buf.slice(0, i));
      };
      sock.on("data", onData);
    });
    if (!greeting.includes("\"QMP\"")) throw new QmpError(`QMP ${path}: unexpected greeting ${greeting}`);
    const qmp = new Qmp(sock);
    sock.resume();
    await qmp.execute("qmp_capabilities");
    return qmp;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new QmpError("QMP connection closed"));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id }) + "\n");
    });
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
  }
}
