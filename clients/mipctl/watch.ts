// mipctl watch (issue 14 §4): the engine's changes as they happen, as gobgp monitor shows a RIB's.
import type { ControlClient } from "../control.js";
import { LeasePurpose, WatchResponse } from "../../gen/mip46/v1/control.js";
import { cause, enumName, time } from "./where.js";

/** One watch event as a line: its time, then what changed. */
export function watchLine(e: WatchResponse): string {
  const at = time(e.atMs);
  const ev = e.event;
  switch (ev?.$case) {
    case "revision": {
      const keys = [...ev.value.updated.map((k) => `+${k}`), ...ev.value.removed.map((k) => `-${k}`)];
      return `${at} revision ${ev.value.revision}${keys.length ? `: ${keys.join(" ")}` : ""}`;
    }
    case "binding": {
      const b = ev.value.binding!;
      return ev.value.removed ? `${at} binding ${b.vmId} removed (was at ${b.hostId})`
        : `${at} binding ${b.vmId} at ${b.hostId}: home ${b.homeAddress}, care-of ${b.careOfIpv4 || "-"} ${b.careOfIpv6 || "-"}, home agent ${b.homeAgent}`;
    }
    case "lease": {
      const l = ev.value.lease!;
      return ev.value.released ? `${at} lease ${l.address} released (was ${l.holder})`
        : `${at} lease ${l.address} ${enumName(LeasePurpose, l.purpose, "LEASE_PURPOSE_")} for ${l.holder}${l.hostId ? ` at ${l.hostId}` : ""}`;
    }
    case "migration": {
      const m = ev.value;
      return `${at} migration ${m.migrationId} ${m.vmId} ${m.sourceHostId || "?"} -> ${m.destinationHostId}, cause ${cause(m)}`;
    }
    case "currentEnd":
      return "-- the current state is above; changes follow --";
    default:
      return `${at} (an event this mipctl does not know)`;
  }
}

/**
 * Streams the engine's changes to `write` until `count` changes (not counting the current state)
 * have come, the stream fails, or `signal` aborts. Resolves with the events written.
 */
export function watch(client: ControlClient, o: { changesOnly: boolean; count?: number; json: boolean; signal?: AbortSignal }, write: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = client.raw.watch({ changesOnly: o.changesOnly });
    let changes = 0, written = 0, current = !o.changesOnly, done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      stream.cancel();
      if (err) reject(err);
      else resolve(written);
    };
    o.signal?.addEventListener("abort", () => finish(), { once: true });
    stream.on("data", (e: WatchResponse) => {
      if (done) return;
      write(o.json ? JSON.stringify(WatchResponse.toJSON(e)) : watchLine(e));
      written++;
      if (e.event?.$case === "currentEnd") current = false;
      else if (!current && o.count !== undefined && ++changes >= o.count) finish();
    });
    stream.on("error", (e: Error & { code?: number }) => (e.code === 1 /* CANCELLED */ ? finish() : finish(e)));
    stream.on("end", () => finish());
  });
}
