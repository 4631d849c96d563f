// The hypervisor's own phases of a live migration, as its hook (deploy/libvirt/) reports them: a
// unix socket, one JSON request a line, one JSON reply a line. This module only checks what
// arrives and carries the answer back; what a phase means to the agent is `handler`'s.
import { chmodSync, mkdirSync, rmSync, statSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { dirname } from "node:path";
import type { Logger } from "../../lib/log.js";
import { isObject } from "../../lib/config/schema.js";

export type HypervisorPhase = "prepare" | "migrate" | "started" | "release";
const PHASES: ReadonlySet<string> = new Set(["prepare", "migrate", "started", "release"]);

export interface HypervisorInterface {
  /** Lower case, colon-separated. */
  mac: string;
  /** The tap's name (libvirt's <target dev>), when the domain XML has one. */
  dev?: string;
  /** The bridge the tap joins (libvirt's <source bridge>), when the domain XML has one. */
  bridge?: string;
}

export interface HypervisorEvent {
  phase: HypervisorPhase;
  /** The hypervisor's name for the VM (libvirt's domain name). */
  domain: string;
  interfaces: HypervisorInterface[];
}

/** A request line the agent refuses; `message` starts with the field at fault. */
export class HypervisorEventError extends Error {
  override name = "HypervisorEventError";
  constructor(readonly field: string, reason: string) {
    super(`${field}: ${reason}`);
  }
}

export const MAX_LINE_BYTES = 64 * 1024;

function only(value: Record<string, unknown>, allowed: string[], at: string): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) throw new HypervisorEventError(at + key, "unknown field");
}

/** A Linux interface name: 1 to 15 bytes (IFNAMSIZ - 1), no '/', no white space. */
function ifname(value: unknown, field: string): string {
  if (typeof value !== "string" || !/^[^\s/]{1,15}$/.test(value) || value === "." || value === "..") {
    throw new HypervisorEventError(field, "must be an interface name (1 to 15 characters, no '/' or space)");
  }
  return value;
}

export function parseHypervisorEvent(value: unknown): HypervisorEvent {
  if (!isObject(value)) throw new HypervisorEventError("request", "must be a JSON object");
  only(value, ["phase", "domain", "interfaces"], "");
  const { phase, domain, interfaces } = value;
  if (typeof phase !== "string" || !PHASES.has(phase)) throw new HypervisorEventError("phase", "must be one of prepare, migrate, started, release");
  if (typeof domain !== "string" || domain.length === 0 || domain.length > 1024) throw new HypervisorEventError("domain", "required, a string of 1 to 1024 characters");
  if (!Array.isArray(interfaces)) throw new HypervisorEventError("interfaces", "required, a list");
  return {
    phase: phase as HypervisorPhase,
    domain,
    interfaces: interfaces.map((nic, i) => {
      const at = `interfaces[${i}]`;
      if (!isObject(nic)) throw new HypervisorEventError(at, "must be an object");
      only(nic, ["mac", "dev", "bridge"], `${at}.`);
      if (typeof nic.mac !== "string" || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(nic.mac)) throw new HypervisorEventError(`${at}.mac`, "required, a MAC address (xx:xx:xx:xx:xx:xx)");
      // The group bit: a VM's own address is never multicast (IEEE 802, the first byte's low bit).
      if (parseInt(nic.mac.slice(0, 2), 16) & 1) throw new HypervisorEventError(`${at}.mac`, `a multicast address is not a VM's: '${nic.mac}'`);
      return {
        mac: nic.mac.toLowerCase(),
        ...(nic.dev === undefined ? {} : { dev: ifname(nic.dev, `${at}.dev`) }),
        ...(nic.bridge === undefined ? {} : { bridge: ifname(nic.bridge, `${at}.bridge`) }),
      };
    }),
  };
}

export class HypervisorEventServer {
  private server?: Server;
  private readonly connections = new Set<Socket>();

  constructor(private readonly path: string, private readonly handler: (e: HypervisorEvent) => Promise<string[]>, private readonly log: Logger) {}

  async start(): Promise<void> {
    // The umask would narrow the mode (the agent's unit has 0077): set it once made.
    if (mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 })) chmodSync(dirname(this.path), 0o750);
    const existing = statSync(this.path, { throwIfNoEntry: false });
    if (existing && !existing.isSocket()) throw new Error(`hypervisor.eventSocket: ${this.path} exists and is not a socket; not removing it`);
    // Only a socket no one answers on is stale: another agent's live socket is never taken over.
    if (existing && (await answers(this.path))) throw new Error(`hypervisor.eventSocket: another process listens on ${this.path}`);
    if (existing) unlinkSync(this.path);
    const server = createServer((socket) => this.serve(socket));
    server.listen(this.path);
    await once(server, "listening");
    // The hook runs as root; the agent's group may connect too. The parent is 0750.
    chmodSync(this.path, 0o660);
    server.on("error", (e) => this.log.error("hypervisor event socket failed", { path: this.path, err: e }));
    this.server = server;
    this.log.info("listening for the hypervisor's phases", { path: this.path });
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private serve(socket: Socket): void {
    this.connections.add(socket);
    socket.on("close", () => this.connections.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = Buffer.alloc(0);
    // One request at a time per connection, so the replies come back in the order of the lines.
    let queue = Promise.resolve();
    const reply = (answer: () => Promise<object> | object, last = false) => {
      queue = queue.then(answer).then((r) => {
        if (!socket.writable) return;
        if (last) socket.end(JSON.stringify(r) + "\n");
        else socket.write(JSON.stringify(r) + "\n");
      });
    };
    const tooLong = () => {
      socket.pause();
      socket.removeAllListeners("data");
      reply(() => ({ ok: false, error: `line: longer than ${MAX_LINE_BYTES} bytes` }), true);
    };
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let end = pending.indexOf(0x0a); end >= 0; end = pending.indexOf(0x0a)) {
        const line = pending.subarray(0, end);
        pending = pending.subarray(end + 1);
        if (line.length > MAX_LINE_BYTES) return tooLong();
        reply(() => this.answer(line.toString("utf8")));
      }
      if (pending.length > MAX_LINE_BYTES) tooLong();
    });
  }

  private async answer(line: string): Promise<object> {
    let event: HypervisorEvent;
    try {
      event = parseHypervisorEvent(parseLine(line));
    } catch (e) {
      this.log.warn("hypervisor event refused", { err: e });
      return { ok: false, error: (e as Error).message };
    }
    try {
      return { ok: true, vms: await this.handler(event) };
    } catch (e) {
      this.log.warn("hypervisor event failed", { phase: event.phase, domain: event.domain, err: e });
      return { ok: false, error: (e as Error)?.message || String(e) };
    }
  }
}

function parseLine(line: string): unknown {
  if (line.trim() === "") throw new HypervisorEventError("line", "empty");
  try {
    return JSON.parse(line);
  } catch (e) {
    throw new HypervisorEventError("line", `not JSON (${(e as Error).message})`);
  }
}

/** Whether someone accepts a connection on the unix socket at `path`. */
async function answers(path: string): Promise<boolean> {
  const probe = createConnection(path);
  try {
    await once(probe, "connect");
    return true;
  } catch {
    return false;
  } finally {
    probe.destroy();
  }
}
