// mipctl: the operator's view of a mip46 engine.
import { versionLine } from "../../lib/process/version.js";
import { parseArgs } from "node:util";
import { status, type ServiceError } from "@grpc/grpc-js";
import { isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { splitHostPort } from "../../lib/metrics/http.js";
import { connectControl, type ControlClient } from "../control.js";
import { connectControlAny } from "../failover.js";
import {
  Binding, type GetRuleTableResponse, Lease, LeasePurpose, ListPrefixesResponse, MapCorrespondentResponse, Pool, ReleaseCareOfResponse, TunnelKind,
} from "../../gen/mip46/v1/control.js";
import { rulesOf, trace, TraceUsageError } from "./trace.js";
import { call, CallUsageError } from "./call.js";
import { backup, BackupUsageError } from "./backup.js";
import { renderTable } from "./table.js";
import { advice, cordon, enumName, hosts, hostTable, migrations, type Output, time, where } from "./where.js";
import { cluster, waitApplied, workers } from "./workers.js";
import { watch } from "./watch.js";

const HELP = `mipctl: operator CLI of the mip46 control engine

Usage: mipctl [--engine HOST:PORT] [--ca FILE --cert FILE --key FILE] [--json] COMMAND

Commands:
  pools                     IPv4 pools and segment care-of ranges, with use
  leases                    leased addresses (care-of, translation, correspondent)
                            (leases, bindings and hosts take --host HOST_ID and --vm VM_ID
                            as filters; for leases --vm is the holder)
  prefixes                  IPv4 segments and their IPv6 prefixes
  bindings                  VMs away from home, with their care-of addresses
  hosts                     hypervisor hosts, their network, state and VMs
  migrations                registered migrations, newest first, with their cause (advice,
                            hypervisor, operator); --page-size N (default and most 1000),
                            --page-token TOKEN for the next page
  get lease ADDRESS | binding VM_ID | host HOST_ID
                            one record by its key (NOT_FOUND when there is none)
  where VM_ID               where a VM is: host, at home or away, addresses, since when, and its
                            last migration with the cause
  advice [VM_ID]            the migration advice the engine gave, and what became of it
  cordon HOST_ID            take a host out as a destination: no VM is advised to move to it
  uncordon HOST_ID          put it back (and end a drain)
  drain HOST_ID             cordon it, and advise each of its VMs to move away (the hypervisor
                            hook carries it out); progress in hosts and where
  rules                     the data-plane rule table and its revision
  watch [--changes-only] [--count N]
                            a stream of changes, as gobgp monitor: the current state (rule
                            revision, bindings, leases), then each rule revision, binding, lease
                            and migration as it changes; --json: one JSON object a line; ends
                            after N changes, or on Ctrl-C
  workers                   the data-plane workers connected to this engine (replica): the
                            revision each applied, and its lag in revisions and in time
  cluster                   the engine replicas, which one leads, and each etcd member's health
  wait [REVISION]           until every connected worker has applied REVISION (default: the rule
                            table's revision now), as OVN's --wait=hv; --timeout S (default 30)
  release ADDRESS           release a lease (it cools down before reuse); a lease a binding
                            uses is refused, naming the binding
  release --vm VM_ID        release a VM's care-of lease
  release --force ...       also remove the binding that uses the lease, its rules and its
                            translation lease (or the correspondent's mapping), in one change
  map IPV6                  a pool IPv4 address for an IPv6 correspondent (MapCorrespondent, RFC 7757)
  unmap IPV6                give a correspondent's mapping back
  eam [--csv]               the translator's explicit address mappings, IPv6 beside IPv4
  backup FILE               an online backup of the engine's SQLite store into a new FILE (checked
                            with SQLite's integrity_check); on etcd use etcdctl snapshot save
  call METHOD [JSON]        any ControlEngine RPC with a proto3 JSON request (default {}), the
                            answer as proto3 JSON (as grpcurl -d does; Debian has no grpcurl)
  trace --table FILE [--live] [--ingress IF] SRC DST [tcp PORT|udp PORT|icmp]
  trace --table FILE [--live] [--ingress IF] --pcap FILE
                            packets through the worker's pipeline, as ovn-trace shows a flow:
                            what it did with each and what it would send where, decoded; the
                            worker's settings (and rules) from an offline table file, with
                            --live the engine's rule table as it is now

Options:
  --engine HOST:PORT[,...]  the engine's gRPC address, or every replica's (comma-separated: a call
                            that finds one down goes to the next); default $MIP46_ENGINE or [::1]:50046
  --ca FILE                 mutual TLS: the deployment's CA (PEM); with --cert and --key
  --cert FILE               this operator's certificate (spiffe://mip46/operator/NAME)
  --key FILE                its private key
                            (defaults: $MIP46_TLS_CA, $MIP46_TLS_CERT, $MIP46_TLS_KEY; none: plaintext)
  --json                    print canonical proto3 JSON instead of a table (enum names,
                            64-bit integers as strings); rules as the offline table file has them
  --csv                     eam: comma-separated values
  --wait                    release, map, unmap, cordon, uncordon, drain: then wait until every
                            connected worker has applied the rule table (as wait); --timeout S
  --version                 print the version and exit
  -h, --help                this text`;


/**
 * Whether `address` answers a TLS handshake: a plaintext call to a TLS engine only says "No
 * connection established". A finished handshake, or a TLS alert (an engine that wants a client
 * certificate), both prove TLS; a closed or refused connection does not.
 */
function speaksTls(address: string): Promise<boolean> {
  let host: string, port: number;
  try {
    ({ host, port } = splitHostPort(address));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, servername: isIP(host) ? undefined : host, timeout: 2000 });
    const done = (v: boolean) => {
      socket.destroy();
      resolve(v);
    };
    socket.once("secureConnect", () => done(true));
    socket.once("error", (e: Error & { code?: string }) => done(/alert|SSL|certificate/i.test(`${e.code ?? ""} ${e.message}`)));
    socket.once("timeout", () => done(false));
    socket.once("close", () => done(false));
  });
}

/**
 * The rule table as the offline-mode table file holds it (dataplane/offline/README.md): the
 * revision as a string of digits and each rule in lib/rules' shape, so that `mipctl --json rules`
 * can be fed to `mip46-dataplane --offline` or `mipctl trace`.
 */
function ruleTableJson(r: GetRuleTableResponse): { revision: string; rules: unknown[] } {
  return { revision: r.revision.toString(), rules: rulesOf(r) };
}

const withLength = (address: string, bits: number) => (address.includes("/") ? address : `${address}/${bits}`);

interface Options {
  timeout?: string;
  table?: string;
  live?: boolean;
  ingress?: string;
  pcap?: string;
  vm?: string;
  host?: string;
  csv?: boolean;
  force?: boolean;
  pageSize?: string;
  pageToken?: string;
}

async function run(client: ControlClient, command: string, rest: string[], o: Options): Promise<Output> {
  const { vm, csv = false, force = false } = o;
  switch (command) {
    case "pools": {
      const r = await client.listPools({});
      return { json: r.pools.map((x) => Pool.toJSON(x)), table: renderTable(["POOL", "KIND", "FIRST", "LAST", "SIZE", "LEASED", "COOLING", "FREE"],
        r.pools.map((p) => [p.name, p.kind, p.first, p.last, String(p.size), String(p.leased), String(p.cooling), String(p.free)])) };
    }
    case "leases":
      return leaseTable((await client.listLeases({ hostId: o.host ?? "", holder: vm ?? "" })).leases);
    case "prefixes": {
      const r = await client.listPrefixes({});
      const table = renderTable(["IPV4 SEGMENT", "IPV6 PREFIX", "CARE-OF RANGE"],
        r.prefixes.map((p) => [p.ipv4Segment, p.ipv6Prefix || "-", p.careOfFirst ? `${p.careOfFirst}-${p.careOfLast}` : "-"]));
      return { json: ListPrefixesResponse.toJSON(r), table: `${table}\ntranslation prefix: ${r.translationPrefix || "-"}\nIPv6 networks: ${r.ipv6Networks.join(", ") || "-"}\n` };
    }
    case "bindings":
      return bindingTable((await client.listBindings({ hostId: o.host ?? "", vmId: vm ?? "" })).bindings);
    case "get": {
      const [kind, key] = rest;
      if (rest.length !== 2 || !["lease", "binding", "host"].includes(kind)) throw new UsageError("get takes lease ADDRESS, binding VM_ID or host HOST_ID");
      // One record, in the list's shape; --json prints the record itself.
      const one = (out: Output) => ({ ...out, json: (out.json as unknown[])[0] });
      if (kind === "lease") return one(leaseTable([(await client.getLease({ address: key })).lease!]));
      if (kind === "binding") return one(bindingTable([(await client.getBinding({ vmId: key })).binding!]));
      return one(hostTable([(await client.getHost({ hostId: key })).host!]));
    }
    case "hosts":
      return hosts(client, o.host, vm);
    case "migrations": {
      const size = Number(o.pageSize ?? "0");
      if (!Number.isInteger(size) || size < 0) throw new UsageError("--page-size takes a whole number of zero or more");
      return migrations(client, size, o.pageToken ?? "");
    }
    case "where":
      if (rest.length !== 1) throw new UsageError("where takes one VM_ID");
      return where(client, rest[0]);
    case "cordon":
    case "uncordon":
    case "drain":
      if (rest.length !== 1) throw new UsageError(`${command} takes one HOST_ID`);
      return cordon(client, rest[0], command);
    case "advice":
      if (rest.length > 1) throw new UsageError("advice takes at most one VM_ID");
      return advice(client, rest[0]);
    case "rules": {
      const r = await client.getRuleTable({});
      const rows = r.rules.map((rule) => {
        const k = rule.kind;
        switch (k?.$case) {
          case "reencap4in4To4in6": return [rule.key, "reencap 4in4->4in6", `${k.value.poolIpv4} -> ${k.value.careOfIpv6}`];
          case "reencap6in6To6in4": return [rule.key, "reencap 6in6->6in4", `${k.value.careOfIpv6} -> ${k.value.careOfIpv4}`];
          case "tunnelPeer": return [rule.key, `peer ${enumName(TunnelKind, k.value.kind, "TUNNEL_KIND_")}`, `${k.value.peer}${k.value.innerSource ? ` inner ${k.value.innerSource}` : ""}`];
          case "addressMapping": return [rule.key, "address mapping", `${k.value.ipv4} <-> ${k.value.ipv6}`];
          case "translationPrefix": return [rule.key, "translation prefix", k.value.prefix];
          case "encapsulate": return [rule.key, `encap ${enumName(TunnelKind, k.value.kind, "TUNNEL_KIND_")}`, `${k.value.innerSource || "any"} -> ${k.value.innerDestination || "any"} via ${k.value.local || "(default)"} -> ${k.value.remote}`];
          default: return [rule.key, "?", ""];
        }
      });
      return { json: ruleTableJson(r), table: `revision ${r.revision}\n${renderTable(["KEY", "KIND", "RULE"], rows)}` };
    }
    case "release": {
      if ((rest.length === 1) === (vm !== undefined)) throw new UsageError("release takes an ADDRESS or --vm VM_ID");
      const r = await client.releaseCareOf({ address: rest[0] ?? "", vmId: vm ?? "", force });
      return { json: ReleaseCareOfResponse.toJSON(r), table: `released ${r.address}${force ? " (and any binding that used it)" : ""}; it cools down until ${time(r.cooldownUntilMs)}\n` };
    }
    case "map": {
      if (rest.length !== 1) throw new UsageError("map takes one IPV6 address");
      const r = await client.mapCorrespondent({ ipv6Address: rest[0] });
      return { json: MapCorrespondentResponse.toJSON(r), table: `${rest[0]} is mapped to ${r.ipv4Address}; IPv4 nodes reach it there\n` };
    }
    case "unmap": {
      if (rest.length !== 1) throw new UsageError("unmap takes one IPV6 address");
      const leases = (await client.listLeases({})).leases.filter((l) => l.holder === rest[0] && l.purpose === LeasePurpose.LEASE_PURPOSE_CORRESPONDENT);
      if (leases.length === 0) throw new Error(`${rest[0]}: no correspondent mapping`);
      const r = await client.releaseCareOf({ address: leases[0].address, vmId: "" });
      return { json: ReleaseCareOfResponse.toJSON(r), table: `${rest[0]}: its mapping to ${r.address} is given back; the address cools down until ${time(r.cooldownUntilMs)}\n` };
    }
    case "backup":
      if (rest.length > 1) throw new UsageError("backup takes one FILE");
      return backup(client, rest[0]);
    case "call":
      if (rest.length > 2) throw new UsageError("call takes a METHOD and at most one JSON request");
      return call(client, rest[0], rest[1]);
    case "workers":
      return workers(client);
    case "cluster":
      if (rest.length > 0) throw new UsageError("cluster takes no arguments");
      return cluster(client);
    case "wait": {
      if (rest.length > 1 || (rest.length === 1 && !/^\d+$/.test(rest[0]))) throw new UsageError("wait takes at most one REVISION, a whole number");
      return waitApplied(client, rest.length === 1 ? BigInt(rest[0]) : undefined, timeoutMs(o.timeout));
    }
    case "trace":
      return trace(client, { table: o.table, live: o.live ?? false, ingress: o.ingress, pcap: o.pcap, words: rest });
    case "eam": {
      const r = await client.getRuleTable({});
      const rows = r.rules.flatMap((rule) => (rule.kind?.$case === "addressMapping" ? [[withLength(rule.kind.value.ipv6, 128), withLength(rule.kind.value.ipv4, 32)]] : []));
      rows.sort((a, b) => a[1].localeCompare(b[1], "en", { numeric: true }));
      const table = csv ? ["IPv6 Prefix,IPv4 Prefix", ...rows.map((x) => x.join(","))].join("\n") + "\n" : renderTable(["IPV6 PREFIX", "IPV4 PREFIX"], rows);
      return { json: rows.map(([ipv6, ipv4]) => ({ ipv6, ipv4 })), table };
    }
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

class UsageError extends Error {}

function leaseTable(leases: Lease[]): Output {
  return { json: leases.map((x) => Lease.toJSON(x)), table: renderTable(["ADDRESS", "POOL", "HOLDER", "PURPOSE", "HOST", "EXPIRES"],
    leases.map((l) => [l.address, l.pool, l.holder, enumName(LeasePurpose, l.purpose, "LEASE_PURPOSE_"), l.hostId || "-", l.expiresAtMs === 0n ? "held" : time(l.expiresAtMs)])) };
}

function bindingTable(bindings: Binding[]): Output {
  return { json: bindings.map((x) => Binding.toJSON(x)), table: renderTable(["VM", "HOME", "HOME AGENT", "HOST", "CARE-OF IPV4", "CARE-OF IPV6", "TRANSLATED", "UPDATED"],
    bindings.map((b) => [b.vmId, b.homeAddress, b.homeAgent, b.hostId, b.careOfIpv4, b.careOfIpv6, b.translatedIpv4 || b.translatedIpv6 || "-", time(b.updatedAtMs)])) };
}

async function watchCommand(client: ControlClient, rest: string[], v: { count?: string; "changes-only"?: boolean; json?: boolean }): Promise<number> {
  if (rest.length > 0) throw new UsageError("watch takes no arguments");
  const count = v.count === undefined ? undefined : Number(v.count);
  if (count !== undefined && !(Number.isInteger(count) && count > 0)) throw new UsageError(`--count takes a whole number above 0, not ${JSON.stringify(v.count)}`);
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  await watch(client, { changesOnly: v["changes-only"] ?? false, count, json: v.json ?? false, signal: stop.signal }, (line) => process.stdout.write(line + "\n"));
  return 0;
}

/** The commands that change what the workers hold, which --wait may follow. */
const WAITABLE = new Set(["release", "map", "unmap", "cordon", "uncordon", "drain"]);

function timeoutMs(text: string | undefined): number {
  const s = Number(text ?? "30");
  if (!Number.isFinite(s) || s <= 0 || s > 3600) throw new UsageError(`--timeout takes seconds, more than 0 and at most 3600, not ${JSON.stringify(text)}`);
  return s * 1000;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        engine: { type: "string" }, ca: { type: "string" }, cert: { type: "string" }, key: { type: "string" }, json: { type: "boolean" },
        vm: { type: "string" }, host: { type: "string" }, csv: { type: "boolean" }, "page-size": { type: "string" }, "page-token": { type: "string" }, force: { type: "boolean" }, count: { type: "string" }, "changes-only": { type: "boolean" }, timeout: { type: "string" }, wait: { type: "boolean" }, table: { type: "string" }, live: { type: "boolean" }, ingress: { type: "string" }, pcap: { type: "string" }, version: { type: "boolean" }, help: { type: "boolean", short: "h" },
      },
      allowPositionals: true, strict: true,
    });
  } catch (e) {
    process.stderr.write(`mipctl: ${(e as Error).message}\n\n${HELP}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(versionLine("mipctl") + "\n");
    return 0;
  }
  if (values.help || positionals.length === 0) {
    (values.help ? process.stdout : process.stderr).write(HELP + "\n");
    return values.help ? 0 : 2;
  }
  const ca = values.ca ?? process.env.MIP46_TLS_CA;
  const cert = values.cert ?? process.env.MIP46_TLS_CERT;
  const key = values.key ?? process.env.MIP46_TLS_KEY;
  if ((ca === undefined) !== (cert === undefined) || (ca === undefined) !== (key === undefined)) {
    process.stderr.write("mipctl: --ca, --cert and --key go together\n");
    return 2;
  }
  let client: ControlClient;
  const engines = (values.engine ?? process.env.MIP46_ENGINE ?? "[::1]:50046").split(",").map((a) => a.trim()).filter((a) => a !== "");
  try {
    const tls = ca ? { ca, cert: cert!, key: key! } : undefined;
    client = engines.length === 1 ? connectControl(engines[0], 5000, tls)
      : connectControlAny(engines, { deadlineMs: 10_000, attemptMs: 3000, connect: (a) => connectControl(a, 3000, tls) });
  } catch (e) {
    process.stderr.write(`mipctl: ${(e as Error).message}\n`);
    return 1;
  }
  try {
    if (values.force && positionals[0] !== "release") throw new UsageError("--force goes with release only");
    if (values.wait && !WAITABLE.has(positionals[0])) throw new UsageError(`--wait goes with ${[...WAITABLE].join(", ")}`);
    if (values.timeout !== undefined && !values.wait && positionals[0] !== "wait") throw new UsageError("--timeout goes with wait and --wait");
    if (positionals[0] === "watch") return await watchCommand(client, positionals.slice(1), values);
    const options = { ...values, pageSize: values["page-size"], pageToken: values["page-token"] };
    const wait = values.wait ? timeoutMs(values.timeout) : undefined;
    const out = await run(client, positionals[0], positionals.slice(1), options);
    if (wait !== undefined) out.table += (await waitApplied(client, undefined, wait)).table;
    process.stdout.write(values.json ? JSON.stringify(out.json, undefined, 2) + "\n" : out.table);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || e instanceof TraceUsageError || e instanceof CallUsageError || e instanceof BackupUsageError) {
      process.stderr.write(`mipctl: ${e.message}\n\n${HELP}\n`);
      return 2;
    }
    const err = e as ServiceError;
    if (err.code === status.UNAVAILABLE && !ca) {
      const tlsEngines = [];
      for (const a of engines) if (await speaksTls(a)) tlsEngines.push(a);
      if (tlsEngines.length > 0) {
        process.stderr.write(`mipctl: ${tlsEngines.join(", ")}: this engine wants TLS: give --ca, --cert and --key (or $MIP46_TLS_CA, $MIP46_TLS_CERT, $MIP46_TLS_KEY)\n`);
        return 1;
      }
    }
    process.stderr.write(`mipctl: ${err.details ?? err.message}\n`);
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => process.exit(code));
