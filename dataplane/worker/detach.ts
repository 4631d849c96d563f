// --detach: the worker as a process of its own, for systemd's ExecReload, which must return once
// the reload is done (systemd.service(5)) and after which systemd reads PIDFile= again to find the
// main process. The command starts the same executable with the same flags but --detach, with an
// IPC channel, and waits: for the worker to say it forwards and, after a takeover, for the old
// worker to have exited, so that the old main process ends while the reload is still running
// and systemd then takes the new pid from takeover.pidFile. Exit 0 then; 1 when the worker
// exited first (its own log says why, on the same stderr).
import { spawn } from "node:child_process";
import type { Logger } from "../../lib/log.js";

/** How long the command waits for the old worker to exit once the new one forwards. */
const OLD_EXIT_MS = 15_000;

export async function detached(argv: string[], log: Logger): Promise<number> {
  const args = argv.filter((a) => a !== "--detach");
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args], { detached: true, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const said = await new Promise<{ started: true; tookOverFrom?: number } | undefined>((resolve) => {
    child.once("message", (m) => resolve(m as { started: true; tookOverFrom?: number }));
    child.once("exit", () => resolve(undefined));
  });
  if (!said) return 1;
  child.disconnect();
  child.unref();
  const old = said.tookOverFrom;
  const deadline = Date.now() + OLD_EXIT_MS;
  while (old !== undefined && alive(old) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  if (old !== undefined && alive(old)) {
    log.error("--detach: the new worker forwards, the old one has not exited", { pid: child.pid, old });
    return 1;
  }
  log.info("--detach: the worker runs on its own", { pid: child.pid, ...(old !== undefined ? { tookOverFrom: old } : {}) });
  return 0;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** In the worker started by --detach: tells the command it forwards (and whom it replaced), and drops the channel. */
export async function tellParent<T extends { tookOverFrom?: number }>(running: Promise<T>): Promise<T> {
  const r = await running;
  if (process.send && process.connected) {
    process.send({ started: true, tookOverFrom: r.tookOverFrom });
    process.disconnect();
  }
  return r;
}
