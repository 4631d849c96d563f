// The two protocol cores (mip4/homeagent.ts, mip6/homeagent.ts) behind one face, for run.ts:
// a registration packet in, the binding changes and the reply packet out.
import { ipv4FromBytes, parseIPv4 } from "../lib/net/address.js";
import { buildUdp4, verifyUdpChecksum } from "../dataplane/packet/udp.js";
import { pseudoHeaderSum4At } from "../dataplane/packet/checksum.js";
import { IPPROTO } from "../dataplane/packet/ipv4.js";
import { MIP4_PORT } from "../mobility/mip4/protocol.js";
import type { HomeAgentSettings } from "./config.js";
import { Mip4HomeAgent, type Mip4BindingEvent } from "./mip4/homeagent.js";
import { Mip6HomeAgent, type Mip6BindingEvent } from "./mip6/homeagent.js";

export type BindingEvent = Mip4BindingEvent | Mip6BindingEvent;

export interface HandledRegistration {
  events: BindingEvent[];
  /** The whole IP packet of the answer, to route; absent when there is none. */
  reply?: Uint8Array;
  /** For the metric: "accepted", or why refused or dropped. */
  result: string;
  /** Set when refused or dropped: what to log. */
  refused?: { message: string; fields: Record<string, unknown> };
}

export interface HomeAgentCore {
  handle(pkt: Uint8Array, nowMs: number): HandledRegistration;
  expire(nowMs: number): BindingEvent[];
  bindings(): { homeAddress: string; careOfAddress: string; expiresAtMs: number }[];
}

export function homeAgentCore(ha: HomeAgentSettings): HomeAgentCore {
  const keys = ha.keys;
  if (ha.protocol === "mip4") {
    const core = new Mip4HomeAgent({
      homeAgentAddress: ha.address, homeNetwork: ha.homeNetwork, maxLifetimeS: ha.maxLifetimeS, replayToleranceS: ha.replayToleranceS,
      securityAssociations: new Map(keys.map((k) => [k.homeAddress, { spi: k.spi, algorithm: k.algorithm, key: k.key }])),
    });
    const own = parseIPv4(ha.address, "address").bytes;
    return {
      handle(pkt, now) {
        const ihl = (pkt[0] & 0x0f) << 2;
        const udpLen = (pkt[ihl + 4] << 8) | pkt[ihl + 5];
        const source = ipv4FromBytes(pkt.subarray(12, 16)).text;
        // RFC 768, RFC 1122 §4.1.3.4: a UDP datagram whose checksum is present (not zero) and
        // wrong is discarded silently, however well it is signed.
        const present = pkt[ihl + 6] !== 0 || pkt[ihl + 7] !== 0;
        if (present && (udpLen < 8 || ihl + udpLen > pkt.length || !verifyUdpChecksum(pkt, ihl, udpLen, pseudoHeaderSum4At(pkt, 0, IPPROTO.UDP, udpLen)))) {
          return { events: [], result: "bad-udp-checksum", refused: { message: "registration dropped", fields: { source, reason: "bad-udp-checksum" } } };
        }
        const out = core.handleRequest({ source, destination: ha.address, sourcePort: (pkt[ihl] << 8) | pkt[ihl + 1], payload: pkt.subarray(ihl + 8, Math.min(pkt.length, ihl + udpLen)) }, now);
        return {
          events: out.events,
          result: out.reason ?? (out.code <= 1 ? "accepted" : `code-${out.code}`),
          ...(out.reason ? { refused: { message: "registration refused", fields: { source, code: out.code, reason: out.reason } } } : {}),
          // RFC 5944 §3.8.3.1: to the request's source address and port.
          ...(out.reply !== undefined ? { reply: buildUdp4({ src: own, dst: parseIPv4(out.replyTo.address, "replyTo").bytes, srcPort: MIP4_PORT, dstPort: out.replyTo.port }, out.reply) } : {}),
        };
      },
      expire: (now) => core.expire(now),
      bindings: () => core.bindings(),
    };
  }
  const core = new Mip6HomeAgent({
    homeAgentAddress: ha.address, homePrefix: ha.homeNetwork, maxLifetimeS: ha.maxLifetimeS, replayToleranceS: ha.replayToleranceS,
    securityAssociations: new Map(keys.map((k) => [k.homeAddress, { spi: k.spi, key: k.key }])),
  });
  return {
    handle(pkt, now) {
      const out = core.handlePacket(pkt, now);
      return {
        events: out.events,
        result: out.reason ?? (out.status === undefined ? "dropped" : out.status < 128 ? "accepted" : `status-${out.status}`),
        ...(out.reason ? { refused: { message: "binding update refused", fields: { status: out.status, reason: out.reason } } } : {}),
        ...(out.reply !== undefined ? { reply: out.reply } : {}),
      };
    },
    expire: (now) => core.expire(now),
    bindings: () => core.bindings(),
  };
}
