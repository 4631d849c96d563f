// Hands frames to Debian's tshark as an independent decoder and collects what it complains about.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LINKTYPE_ETHERNET, writePcapFile, type LinkType } from "./pcap.js";

export const TSHARK = "/usr/bin/tshark";

/** Expert-info severities as tshark prints them (epan/proto.h PI_*). */
const SEVERITY_WARN = 0x00600000;

export interface ExpertProblem {
  /** 1-based frame number in the list given. */
  frame: number;
  severity: "warning" | "error";
  message: string;
}

export interface TsharkResult {
  /** `tshark -T json` output: one object per frame, layers under `_source.layers`. */
  packets: TsharkPacket[];
  /** Expert items of severity warning or error, and malformed-packet markers. */
  problems: ExpertProblem[];
}

export interface TsharkPacket {
  _source: { layers: Record<string, unknown> };
}

/** Preferences that make tshark check every checksum it knows and skip flow analysis across frames. */
const PREFS = [
  "ip.check_checksum:TRUE",
  "udp.check_checksum:TRUE",
  "tcp.check_checksum:TRUE",
  "tcp.analyze_sequence_numbers:FALSE",
];

function tshark(args: string[]): string {
  if (!existsSync(TSHARK)) throw new Error(`${TSHARK} is missing: install the Debian tshark package`);
  return execFileSync(TSHARK, args, { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"] });
}

function prefArgs(): string[] {
  // An unknown preference makes tshark exit; keep only those this build knows.
  const known = knownPrefs();
  return PREFS.filter((p) => known.has(p.split(":")[0])).flatMap((p) => ["-o", p]);
}

let knownPrefsCache: Set<string> | undefined;
function knownPrefs(): Set<string> {
  if (knownPrefsCache === undefined) {
    const out = tshark(["-G", "defaultprefs"]);
    knownPrefsCache = new Set();
    for (const line of out.split("\n")) {
      const m = /^#?\s*([a-z0-9_.]+):/.exec(line);
      if (m) knownPrefsCache.add(m[1]);
    }
  }
  return knownPrefsCache;
}

/**
 * Decodes `frames` (Ethernet frames, or raw IP packets with LINKTYPE_RAW) with tshark and
 * returns the JSON decode and the warning/error expert items. Throws if tshark is missing or
 * fails.
 */
export function decodeWithTshark(frames: readonly Uint8Array[], linkType: LinkType = LINKTYPE_ETHERNET): TsharkResult {
  const dir = mkdtempSync(join(tmpdir(), "mip46-tshark-"));
  try {
    const file = join(dir, "frames.pcap");
    writePcapFile(file, frames, linkType);
    const prefs = prefArgs();
    const packets = JSON.parse(tshark(["-r", file, "-n", ...prefs, "-T", "json"])) as TsharkPacket[];
    const fields = tshark([
      "-r", file, "-n", ...prefs, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\u001f", "-E", "separator=\t",
      "-e", "frame.number", "-e", "_ws.expert.severity", "-e", "_ws.expert.message", "-e", "_ws.malformed",
    ]);
    const problems: ExpertProblem[] = [];
    for (const line of fields.split("\n")) {
      if (line.trim() === "") continue;
      const [num, sev = "", msg = "", malformed = ""] = line.split("\t");
      const severities = sev === "" ? [] : sev.split("\u001f");
      const messages = msg === "" ? [] : msg.split("\u001f");
      severities.forEach((s, i) => {
        const value = Number(s);
        if (value >= SEVERITY_WARN) problems.push({ frame: Number(num), severity: value > SEVERITY_WARN ? "error" : "warning", message: messages[i] ?? "" });
      });
      if (malformed !== "") problems.push({ frame: Number(num), severity: "error", message: `malformed: ${malformed}` });
    }
    return { packets, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The protocol stack tshark saw for each frame, e.g. "eth:ethertype:ip:udp:data". */
export function frameProtocols(result: TsharkResult): string[] {
  return result.packets.map((p) => {
    const frame = p._source.layers.frame as Record<string, unknown> | undefined;
    return String(frame?.["frame.protocols"] ?? "");
  });
}
