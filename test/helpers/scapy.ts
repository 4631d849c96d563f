// Builds packets with scapy (Debian's python3-scapy under /usr/bin/python3, not the pyenv
// python on PATH), so tests have inputs that our own codec did not make.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

export const SCAPY_PYTHON = "/usr/bin/python3";

/**
 * Evaluates each Python expression (e.g. `IP(src="192.0.2.1")/UDP()`) with `from scapy.all import *`
 * plus `imports` (extra Python lines), and returns `bytes(expr)` of each. One Python process for
 * the whole list, because importing scapy takes about a second. Throws if python or scapy is
 * missing or an expression fails, with scapy's error in the message.
 */
export function scapyBuild(expressions: readonly string[], imports = ""): Uint8Array[] {
  if (!existsSync(SCAPY_PYTHON)) throw new Error(`${SCAPY_PYTHON} is missing: install python3-scapy`);
  const script = [
    "import sys, logging",
    "logging.getLogger('scapy.runtime').setLevel(logging.ERROR)",
    "from scapy.all import *",
    imports,
    "exprs = sys.stdin.read().split('\\n\\x00\\n')",
    "for e in exprs:",
    "    print(bytes(eval(e)).hex())",
  ].join("\n");
  let stdout: string;
  try {
    stdout = execFileSync(SCAPY_PYTHON, ["-c", script], { input: expressions.join("\n\x00\n"), encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`scapy failed: ${e.stderr ?? e.message}`);
  }
  const lines = stdout.trim().split("\n");
  if (lines.length !== expressions.length) throw new Error(`scapy printed ${lines.length} packets for ${expressions.length} expressions`);
  return lines.map((l) => Uint8Array.from(Buffer.from(l.trim(), "hex")));
}

/** One packet. */
export function scapy(expression: string, imports = ""): Uint8Array {
  return scapyBuild([expression], imports)[0];
}
