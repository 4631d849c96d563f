// A home agent's configuration file (YAML): the data-plane worker's keys (workerId, interfaces,
// routes, metricsListen, capture, tickMs: see deploy/examples/dataplane.yaml) plus a `homeAgent`
// section. Keys come from a separate file, readable by the home agent only, and are never logged.
import { fieldReaders, isObject } from "../lib/config/fields.js";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { parseAddress, parseCidr } from "../lib/net/address.js";
import { KeyConfigError, loadKeysFile, parseKeys, type MnHaKey, type MobilityProtocolName } from "../mobility/keys.js";
import { parseWorkerConfig, WorkerConfigError, type WorkerConfig } from "../dataplane/worker/config.js";

export class HomeAgentConfigError extends Error {
  override name = "HomeAgentConfigError";
}

const { text, integer } = fieldReaders((m) => new HomeAgentConfigError(m));

export type HomeAgentProtocol = MobilityProtocolName;

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
  keys: MnHaKey[];
}

export interface HomeAgentFileConfig {
  homeAgent: HomeAgentSettings;
  worker: WorkerConfig;
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
  if (ha.keysFile === undefined && ha.keys === undefined) throw new HomeAgentConfigError("homeAgent.keysFile: required (or homeAgent.keys inline, for tests)");
  let keys: MnHaKey[];
  try {
    if (ha.keysFile !== undefined) {
      const path = text(ha.keysFile, "homeAgent.keysFile");
      keys = loadKeysFile(path.startsWith("/") ? path : `${baseDir}/${path}`, protocol);
    } else {
      keys = parseKeys(ha.keys, "homeAgent.keys", protocol);
    }
  } catch (e) {
    if (e instanceof KeyConfigError) throw new HomeAgentConfigError(e.message);
    throw e;
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
