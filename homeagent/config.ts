// A home agent's configuration file (YAML): the data-plane worker's keys (workerId, interfaces,
// routes, metricsListen, capture, tickMs: see deploy/examples/dataplane.yaml) plus a `homeAgent`
// section. Keys come from a separate file, readable by the home agent only, and are never logged.
import { ConfigFieldError, integer, oneOf, parseShape, readYamlFile, strict, text, z } from "../lib/config/schema.js";
import { dirname } from "node:path";
import { parseAddress, parseCidr } from "../lib/net/address.js";
import { configuredKeys, KeyConfigError, type MnHaKey, type MobilityProtocolName } from "../mobility/keys.js";
import { WORKER_KEYS, workerConfig, type WorkerConfig } from "../dataplane/worker/config.js";

export class HomeAgentConfigError extends ConfigFieldError {
  override name = "HomeAgentConfigError";
}

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

const HOME_AGENT_FILE = strict({
  ...WORKER_KEYS,
  homeAgent: strict({
    protocol: oneOf(["mip4", "mip6"], () => "must be mip4 (RFC 5944) or mip6 (RFC 6275)"),
    address: text("an IP address"),
    homeNetwork: text("a prefix"),
    interface: text(),
    maxLifetimeS: integer(4, 65535).default(600),
    replayToleranceS: integer(1, 3600).default(7),
    keysFile: text("a file path").optional(),
    /** Inline keys, for tests: checked by parseKeys. */
    keys: z.unknown().optional(),
  }),
});

export function parseHomeAgentConfig(value: unknown, baseDir = "."): HomeAgentFileConfig {
  const { homeAgent: ha, ...rest } = parseShape(HOME_AGENT_FILE, value, (m, f) => new HomeAgentConfigError(m, f));
  const protocol = ha.protocol;
  const worker = workerConfig(rest);
  const family = protocol === "mip4" ? 4 : 6;
  let address: string;
  let homeNetwork: string;
  try {
    const a = parseAddress(ha.address, "homeAgent.address");
    if (a.family !== family) throw new HomeAgentConfigError(`homeAgent.address: must be an IPv${family} address`);
    address = a.text;
    const n = parseCidr(ha.homeNetwork, "homeAgent.homeNetwork");
    if (n.network.family !== family) throw new HomeAgentConfigError(`homeAgent.homeNetwork: must be an IPv${family} prefix`);
    homeNetwork = `${n.network.text}/${n.length}`;
  } catch (e) {
    if (e instanceof HomeAgentConfigError) throw e;
    throw new HomeAgentConfigError((e as Error).message);
  }
  const iface = ha.interface;
  if (!worker.interfaces.some((i) => i.name === iface)) throw new HomeAgentConfigError(`homeAgent.interface: no worker interface is named '${iface}'`);
  if (ha.keysFile === undefined && ha.keys === undefined) throw new HomeAgentConfigError("homeAgent.keysFile: required (or homeAgent.keys inline, for tests)");
  let keys: MnHaKey[];
  try {
    keys = configuredKeys(ha, baseDir, protocol, "homeAgent.");
  } catch (e) {
    if (e instanceof KeyConfigError) throw new HomeAgentConfigError(e.message);
    throw e;
  }
  return {
    homeAgent: {
      protocol, address, homeNetwork, interface: iface, keys, maxLifetimeS: ha.maxLifetimeS, replayToleranceS: ha.replayToleranceS,
    },
    worker,
  };
}

export function loadHomeAgentConfig(path: string): HomeAgentFileConfig {
  return parseHomeAgentConfig(readYamlFile(path, (m) => new HomeAgentConfigError(m)), dirname(path));
}
