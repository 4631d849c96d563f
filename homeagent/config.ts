// A home agent's configuration file (YAML): the data-plane worker's keys (workerId, interfaces,
// routes, metricsListen, capture, tickMs: see deploy/examples/dataplane.yaml) plus a `homeAgent`
// section. Keys come from a separate file, readable by the home agent only, and are never logged.
import { fieldReaders, isObject } from "../lib/config/fields.js";
import { readFileSync, statSync } from "node:fs";
import { parse } from "yaml";
import { parseAddress, parseCidr } from "../lib/net/address.js";
import { parseWorkerConfig, WorkerConfigError, type WorkerConfig } from "../dataplane/worker/config.js";

export class HomeAgentConfigError extends Error {
  override name = "HomeAgentConfigError";
}

const { text, integer } = fieldReaders((m) => new HomeAgentConfigError(m));

export type HomeAgentProtocol = "mip4" | "mip6";
export type AuthAlgorithm = "hmac-md5" | "hmac-sha256";

export interface HomeAgentKey {
  homeAddress: string;
  spi: number;
  /** MIPv4 only (RFC 5944 §3.5.1 HMAC-MD5, or HMAC-SHA-256); MIPv6 uses RFC 4285's algorithm. */
  algorithm: AuthAlgorithm;
  key: Uint8Array;
}

export interface HomeAgentSettings {
  protocol: HomeAgentProtocol;
  /** r1 192.0.2.2 / r2 2001:db8:1::1 */
  address: string;
  /** The home network: "192.0.2.0/24" / "2001:db8:1::/64". */
  homeNetwork: string;
  /** The worker interface on the home link: proxy ARP/NDP and announcements go there. */
  interface: string;
  maxLifetimeS: number;
  replayToleranceS: number;
  keys: HomeAgentKey[];
}

export interface HomeAgentFileConfig {
  homeAgent: HomeAgentSettings;
  worker: WorkerConfig;
}




/** Keys: a YAML list of { homeAddress, spi, algorithm?, key: hex }. The key's value never appears in an error. */
export function parseKeys(value: unknown, field: string, protocol: HomeAgentProtocol | "any"): HomeAgentKey[] {
  if (!Array.isArray(value)) throw new HomeAgentConfigError(`${field}: must be a list of { homeAddress, spi, algorithm, key }`);
  const seen = new Set<string>();
  return value.map((v, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(v)) throw new HomeAgentConfigError(`${f}: must be a mapping`);
    const homeAddress = text(v.homeAddress, `${f}.homeAddress`);
    let parsed;
    try {
      parsed = parseAddress(homeAddress, `${f}.homeAddress`);
    } catch (e) {
      throw new HomeAgentConfigError((e as Error).message);
    }
    if (protocol !== "any" && (parsed.family === 6) !== (protocol === "mip6")) throw new HomeAgentConfigError(`${f}.homeAddress: must be an IPv${protocol === "mip6" ? 6 : 4} address`);
    if (seen.has(parsed.text)) throw new HomeAgentConfigError(`${f}.homeAddress: ${parsed.text} has two keys`);
    seen.add(parsed.text);
    // RFC 5944 §3.5.1: SPIs 0–255 are reserved. No default: both ends must name the same one.
    if (v.spi === undefined) throw new HomeAgentConfigError(`${f}.spi: required, an integer in 256..${0xffffffff}`);
    const spi = integer(v.spi, `${f}.spi`, -1, 256, 0xffffffff);
    const algorithm = (v.algorithm ?? (parsed.family === 6 ? "hmac-sha256" : "hmac-md5")) as AuthAlgorithm;
    if (algorithm !== "hmac-md5" && algorithm !== "hmac-sha256") throw new HomeAgentConfigError(`${f}.algorithm: must be hmac-md5 or hmac-sha256`);
    if (typeof v.key !== "string" || !/^([0-9a-fA-F]{2}){16,64}$/.test(v.key)) throw new HomeAgentConfigError(`${f}.key: must be 16 to 64 bytes in hex (the value is not shown)`);
    return { homeAddress: parsed.text, spi, algorithm, key: Uint8Array.from(Buffer.from(v.key, "hex")) };
  });
}

export function loadKeysFile(path: string, protocol: HomeAgentProtocol | "any", field = "homeAgent.keysFile"): HomeAgentKey[] {
  let raw: string;
  try {
    const st = statSync(path);
    // Keys readable by others are refused, as ssh does with private keys.
    if ((st.mode & 0o077) !== 0) throw new HomeAgentConfigError(`${field}: ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    raw = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof HomeAgentConfigError) throw e;
    throw new HomeAgentConfigError(`${field}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parse(raw);
  } catch {
    throw new HomeAgentConfigError(`${field}: ${path} is not YAML`);
  }
  return parseKeys(value, `${field}(${path})`, protocol);
}

export function parseHomeAgentConfig(value: unknown, baseDir = "."): HomeAgentFileConfig {
  if (!isObject(value)) throw new HomeAgentConfigError("the configuration must be a YAML mapping");
  const { homeAgent: ha, ...rest } = value;
  if (!isObject(ha)) throw new HomeAgentConfigError("homeAgent: required, a mapping");
  const allowed = new Set(["protocol", "address", "homeNetwork", "interface", "maxLifetimeS", "replayToleranceS", "keysFile", "keys"]);
  for (const k of Object.keys(ha)) if (!allowed.has(k)) throw new HomeAgentConfigError(`homeAgent.${k}: unknown key`);
  const protocol = ha.protocol;
  if (protocol !== "mip4" && protocol !== "mip6") throw new HomeAgentConfigError("homeAgent.protocol: must be mip4 (RFC 5944) or mip6 (RFC 6275)");
  let worker: WorkerConfig;
  try {
    worker = parseWorkerConfig(rest);
  } catch (e) {
    if (e instanceof WorkerConfigError) throw new HomeAgentConfigError(e.message);
    throw e;
  }
  const family = protocol === "mip4" ? 4 : 6;
  let address: string;
  let homeNetwork: string;
  try {
    const a = parseAddress(text(ha.address, "homeAgent.address"), "homeAgent.address");
    if (a.family !== family) throw new HomeAgentConfigError(`homeAgent.address: must be an IPv${family} address`);
    address = a.text;
    const n = parseCidr(text(ha.homeNetwork, "homeAgent.homeNetwork"), "homeAgent.homeNetwork");
    if (n.network.family !== family) throw new HomeAgentConfigError(`homeAgent.homeNetwork: must be an IPv${family} prefix`);
    homeNetwork = `${n.network.text}/${n.length}`;
  } catch (e) {
    if (e instanceof HomeAgentConfigError) throw e;
    throw new HomeAgentConfigError((e as Error).message);
  }
  const iface = text(ha.interface, "homeAgent.interface");
  if (!worker.interfaces.some((i) => i.name === iface)) throw new HomeAgentConfigError(`homeAgent.interface: no worker interface is named '${iface}'`);
  let keys: HomeAgentKey[];
  if (ha.keysFile !== undefined) {
    const path = text(ha.keysFile, "homeAgent.keysFile");
    keys = loadKeysFile(path.startsWith("/") ? path : `${baseDir}/${path}`, protocol);
  } else if (ha.keys !== undefined) {
    keys = parseKeys(ha.keys, "homeAgent.keys", protocol);
  } else {
    throw new HomeAgentConfigError("homeAgent.keysFile: required (or homeAgent.keys inline, for tests)");
  }
  return {
    homeAgent: {
      protocol, address, homeNetwork, interface: iface, keys,
      maxLifetimeS: integer(ha.maxLifetimeS, "homeAgent.maxLifetimeS", 600, 4, 65535),
      replayToleranceS: integer(ha.replayToleranceS, "homeAgent.replayToleranceS", 7, 1, 3600),
    },
    worker,
  };
}

export function loadHomeAgentConfig(path: string): HomeAgentFileConfig {
  let value: unknown;
  try {
    value = parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new HomeAgentConfigError(`${path}: ${(e as Error).message}`);
  }
  return parseHomeAgentConfig(value, path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".");
}
