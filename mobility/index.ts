// The mobile-node side of both Mobile IPs, and what the mobile node shares with its home agent.
import { mip4 } from "./mip4/protocol.js";
import { mip6 } from "./mip6/protocol.js";
import type { MobilityProtocol } from "./protocol.js";

export type { CareOfAddresses, MobileNode, MobilityProtocol, Registration, RegistrationCheck } from "./protocol.js";
export type { MnHaKey, MobilityProtocolName } from "./keys.js";

/** The Mobile IP of an address family: RFC 5944 for IPv4 home addresses, RFC 6275 for IPv6. */
export function mobilityProtocol(family: 4 | 6): MobilityProtocol {
  return family === 4 ? mip4 : mip6;
}
