// The per-translator working state the pipeline steps share: resolved settings and scratch
// buffers reused from packet to packet, so translating allocates only its output.
import type { IPv4Header } from "../packet/ipv4.js";
import type { IPv6Chain, IPv6Header } from "../packet/ipv6.js";
import type { PrefixViews } from "../packet/buffers.js";
import type { ResolvedConfig } from "./config.js";

export interface TranslatorState {
  readonly cfg: ResolvedConfig;
  /** The outer packet's translated addresses (IPv4 → IPv6 direction). */
  readonly src6: Uint8Array;
  readonly dst6: Uint8Array;
  /** A quoted packet's translated addresses (RFC 7915 §4.3). */
  readonly innerSrc6: Uint8Array;
  readonly innerDst6: Uint8Array;
  readonly ip4: IPv4Header;
  readonly ip6: IPv6Header;
  readonly chain: IPv6Chain;
  readonly innerChain: IPv6Chain;
  /**
   * Where a whole translated packet is written when it fits (alloc.ts outputPacket): the
   * forwarder's output buffer, as views of it by length (made once each). The packet returned
   * is then a view of it, valid until the next translation. Absent: each packet gets a buffer of its own.
   */
  readonly output: PrefixViews | undefined;
  /** RFC 7915 §5.1 "Identification": the translator's fragment identification generator. */
  nextIdentification(): number;
}
