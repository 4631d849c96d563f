// Shared setup of the MIPv4 home agent tests: the lab's r1 (paper §lab addresses), its VMs and keys.
import { Mip4HomeAgent, type Mip4HomeAgentConfig, type Mip4RequestOutcome, type Mip4SecurityAssociation } from "../../../homeagent/mip4/homeagent.js";

export const HA = "192.0.2.2";
export const HOME_NETWORK = "192.0.2.0/24";
/** The IPv4 VM of flow 3.1, keyed with HMAC-MD5. */
export const HOA = "192.0.2.1";
/** A second VM, keyed with HMAC-SHA-256. */
export const HOA_SHA = "192.0.2.5";
/** Has an association but lies outside the home network. */
export const HOA_FOREIGN = "203.0.113.10";
export const COA = "198.51.100.2";
export const COA2 = "198.51.100.3";
export const MN_PORT = 40000;

/** 2026-11-26 15:00:00 UTC. */
export const NOW = Date.UTC(2026, 10, 26, 15, 0, 0);

export const SA_MD5: Mip4SecurityAssociation = { spi: 0x1000, algorithm: "hmac-md5", key: Uint8Array.from(Buffer.from("vm 192.0.2.1 md5 key")) };
export const SA_SHA: Mip4SecurityAssociation = { spi: 0x2000, algorithm: "hmac-sha256", key: Uint8Array.from(Buffer.from("vm 192.0.2.5 sha-256 key, 32 bytes")) };
export const SA_FOREIGN: Mip4SecurityAssociation = { spi: 0x3000, algorithm: "hmac-md5", key: Uint8Array.from(Buffer.from("foreign key")) };

export function config(over: Partial<Mip4HomeAgentConfig> = {}): Mip4HomeAgentConfig {
  return {
    homeAgentAddress: HA,
    homeNetwork: HOME_NETWORK,
    maxLifetimeS: 600,
    securityAssociations: new Map([[HOA, SA_MD5], [HOA_SHA, SA_SHA], [HOA_FOREIGN, SA_FOREIGN]]),
    ...over,
  };
}

export function newAgent(over: Partial<Mip4HomeAgentConfig> = {}): Mip4HomeAgent {
  return new Mip4HomeAgent(config(over));
}

/** Hands `payload` to the agent as if it came from `source`:MN_PORT to r1. */
export function deliver(agent: Mip4HomeAgent, payload: Uint8Array, nowMs: number, source = COA): Mip4RequestOutcome {
  return agent.handleRequest({ source, destination: HA, sourcePort: MN_PORT, payload }, nowMs);
}
