// The QMP client against a monitor whose listen queue is full (QEMU serves one client at a time
// and takes a closed client's place back only when it gets to it): the connect fails with EAGAIN
// and is tried again, within the timeout, instead of failing the caller.
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Qmp } from "../../deploy/lab/qmp.js";

const BUSY = join(import.meta.dirname, "fixtures/qmp-busy.py");

test("Qmp.open waits out a monitor whose listen queue is full (EAGAIN) and then connects", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "mip46-qmp-"));
  const path = join(dir, "qmp.sock");
  const monitor = spawn("/usr/bin/python3", [BUSY, path, "0.5", "2"], { stdio: ["ignore", "pipe", "inherit"] });
  let holder: ReturnType<typeof connect> | undefined;
  try {
    await new Promise((resolve) => monitor.stdout!.once("data", resolve));
    // The one place in the queue (backlog 0), taken and never served until the monitor accepts.
    holder = connect(path);
    await new Promise((resolve, reject) => { holder!.once("connect", resolve); holder!.once("error", reject); });
    const qmp = await Qmp.open(path, 5_000);
    qmp.close();
    t.pass();
  } finally {
    holder?.destroy();
    monitor.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
