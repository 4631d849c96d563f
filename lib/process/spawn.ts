// Starts a mip46 executable as its own process and waits for the JSON log line that says it is
// ready; used by the demo, the lab and the tests.
import { spawn, type ChildProcess } from "node:child_process";

export interface Started<T> {
  child: ChildProcess;
  ready: T;
  /** Everything the process wrote to stderr so far. */
  log(): string;
}

export function spawnUntilReady<T = Record<string, unknown>>(
  command: string, args: string[], readyMsg: string, timeoutMs = 30_000, echo?: (line: string) => void,
): Promise<Started<T>> {
  const child = spawn(command, args, { stdio: ["ignore", "inherit", "pipe"] });
  let buf = "";
  let pending = "";
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${args[0] ?? command} did not log "${readyMsg}" within ${timeoutMs} ms:\n${buf}`)), timeoutMs);
    const finish = (err?: Error, ready?: T) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        if (child.exitCode === null) child.kill("SIGKILL");
        reject(err);
      } else resolve({ child, ready: ready!, log: () => buf });
    };
    child.stderr!.on("data", (d: Buffer) => {
      buf += d.toString();
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        echo?.(line);
        if (!done && line.includes(`"msg":"${readyMsg}"`)) finish(undefined, JSON.parse(line) as T);
      }
    });
    child.once("exit", (code, signal) => finish(new Error(`${args[0] ?? command} exited (${code ?? signal}) before it was ready:\n${buf}`)));
  });
}
