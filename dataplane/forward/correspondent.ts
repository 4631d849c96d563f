// Route optimisation at the engine (paper, flow 3.2 k–m): the engine is the correspondents'
// first hop ("CNs reach the clouds through it"), and it keeps their binding cache for them, as a
// correspondent router (RFC 4889 §2.5 names the idea). Correspondents need no Mobile IPv6 of
// their own, which matters in practice: Linux without CONFIG_IPV6_MIP6, like every lab client,
// answers a Binding Update with an ICMPv6 Parameter Problem.
//
// A binding update from a migrated VM to a correspondent (k), unwrapped from the VM's tunnel (l),
// is taken here and recorded (m): from then on, what the correspondent sends to the home address
// goes IPv6-in-IPv4 straight to the VM's IPv4 care-of address instead of through the home agent.
// For an IPv4 correspondent (its IPv6 form is its address behind the translation prefix), this is
// the paper's rewrite of the binding into one between the pool address the VM has and its IPv4
// care-of address: the translated packets take the same shortcut.
//
// Authorisation. RFC 6275 §5.2 has a correspondent check a binding update with return
// routability. Here the correspondent router is the engine itself, which assigned the care-of
// addresses: it accepts a binding only when its own rule table already binds the home address and
// the care-of address to the same IPv4 care-of address (the VM's tunnel from that address is
// allowed both sources), so nobody can bind a home address the engine did not register.
import type { TunnelPeer } from "../tunnel/peers.js";
import { AddressMap, innerSourceAllowed } from "../tunnel/peers.js";
import type { IPv6Chain } from "../packet/ipv6.js";
import { IPPROTO } from "../packet/ipv4.js";
import { pseudoHeaderSum6 } from "../packet/checksum.js";
import { BA_STATUS, buildBindingAcknowledgement, buildMobilityPacket, isNewerSequence, MH_TYPE, parseMobilityHeader, verifyMhChecksum } from "../packet/mip6.js";

/** Longest binding we keep, whatever the update asks (RFC 6275 §9.5.1 lets the node shorten it). */
const MAX_LIFETIME_MS = 600_000;

export interface Binding {
  home: Uint8Array;
  correspondent: Uint8Array;
  careOfIPv6: Uint8Array;
  careOfIPv4: Uint8Array;
  sequence: number;
  expiresAtMs: number;
}

export interface CorrespondentUpdate {
  /** What happened: a binding added/refreshed/removed, or why the update was refused. */
  result: "bound" | "unbound" | "refused" | "stale-sequence" | "malformed";
  /** A Binding Acknowledgement to send back (to the care-of address, RFC 6275 §9.5.4), when asked for or refused. */
  acknowledgement?: Uint8Array;
}

/** What the rule table says about a VM's IPv6 care-of address. */
export interface CareOfLookup {
  /** The IPv4 care-of address paired with this IPv6 care-of address (reencap-6in6-to-6in4), or undefined. */
  careOfIPv4For(careOfIPv6: Uint8Array): Uint8Array | undefined;
  /** The 6in4 tunnel peer at that IPv4 care-of address. */
  peer6in4(careOfIPv4: Uint8Array): TunnelPeer | undefined;
}

/**
 * A binding an update added (`binding`) or removed (`unbound`), as plain data: a worker with
 * several threads hands it to the others (adopt), since the correspondent's packets may arrive on
 * another thread than the VM's binding update (dataplane/worker/threads.ts).
 */
export type CorrespondentChange =
  | { binding: Binding; unbound?: undefined }
  | { unbound: { home: Uint8Array; correspondent: Uint8Array }; binding?: undefined };

export class CorrespondentBindings {
  /** Home address → correspondent → binding: the packet path probes by bytes, nothing is built. */
  private readonly byHome = new AddressMap<AddressMap<Binding>>();
  private readonly all = new Set<Binding>();

  /** `changed`: called with every binding an update adds or removes (not with expiry, which each cache does by the same clock). */
  constructor(private readonly changed?: (c: CorrespondentChange) => void) {}

  /** A change another thread's cache made (`changed`), applied here without calling `changed`. */
  adopt(c: CorrespondentChange): void {
    const home = c.binding?.home ?? c.unbound!.home;
    const correspondent = c.binding?.correspondent ?? c.unbound!.correspondent;
    const old = this.byHome.get(home, 0, 6)?.get(correspondent, 0, 6);
    if (old !== undefined) this.remove(old);
    if (c.binding !== undefined) this.put({ ...c.binding });
  }

  get size(): number {
    return this.all.size;
  }

  /** The bindings held, as copies (a takeover hands them to the next worker process). */
  list(): Binding[] {
    return [...this.all].map((b) => ({ ...b }));
  }

  /**
   * A decapsulated IPv6 packet carrying a Mobility Header (`c`: its chain, as well-formedness
   * walked it): a Binding Update from a VM to a correspondent is processed here (true returned);
   * anything else is left alone (false).
   */
  isCorrespondentUpdate(pkt: Uint8Array, c: IPv6Chain): boolean {
    // A home registration (H flag, RFC 6275 §6.1.7) goes on to the home agent.
    return c.upperProtocol === IPPROTO.MOBILITY && c.upperOffset + 12 <= pkt.length && pkt[c.upperOffset + 2] === MH_TYPE.BINDING_UPDATE && (pkt[c.upperOffset + 8] & 0x40) === 0;
  }

  update(pkt: Uint8Array, c: IPv6Chain, rules: CareOfLookup, nowMs: number): CorrespondentUpdate {
    // RFC 6275 §9.5.1: an update to a correspondent comes from the care-of address and names the home address in a Home Address option.
    if (c.homeAddressOffset < 0) return { result: "malformed" };
    const home = pkt.slice(c.homeAddressOffset, c.homeAddressOffset + 16);
    const mh = parseMobilityHeader(pkt, c.upperOffset, pkt.length - c.upperOffset);
    if (mh === undefined || mh.mhType !== MH_TYPE.BINDING_UPDATE || mh.homeRegistration) return { result: "malformed" };
    const careOf = pkt.slice(8, 24);
    const correspondent = pkt.slice(24, 40);
    // RFC 6275 §9.2: a wrong checksum (pseudo-header source: the home address, §6.1.1) or a
    // Payload Proto other than 59 is discarded without an answer.
    if (mh.payloadProto !== IPPROTO.NONE || !verifyMhChecksum(pkt, mh.offset, mh.length, pseudoHeaderSum6(home, 0, correspondent, 0, IPPROTO.MOBILITY, mh.length))) return { result: "malformed" };
    const ack = (status: number, lifetime: number) => buildMobilityPacket(
      { src: correspondent, dst: careOf, routingHomeAddress: home },
      buildBindingAcknowledgement({ status, sequence: mh.sequence, lifetime }),
    );
    // Authorisation (see the top of this file).
    const careOfIPv4 = rules.careOfIPv4For(careOf);
    const peer = careOfIPv4 === undefined ? undefined : rules.peer6in4(careOfIPv4);
    if (careOfIPv4 === undefined || peer === undefined || !innerSourceAllowed(peer, home, 0, 6) || !innerSourceAllowed(peer, careOf, 0, 6)) {
      return { result: "refused", acknowledgement: ack(BA_STATUS.ADMINISTRATIVELY_PROHIBITED, 0) };
    }
    const old = this.byHome.get(home, 0, 6)?.get(correspondent, 0, 6);
    // RFC 6275 §9.5.1: an update not newer than the cached one gets status 135.
    if (old !== undefined && old.expiresAtMs > nowMs && !isNewerSequence(mh.sequence, old.sequence)) {
      return { result: "stale-sequence", acknowledgement: buildMobilityPacket({ src: correspondent, dst: careOf, routingHomeAddress: home }, buildBindingAcknowledgement({ status: BA_STATUS.SEQUENCE_NUMBER_OUT_OF_WINDOW, sequence: old.sequence, lifetime: 0 })) };
    }
    let sameAddress = true;
    for (let i = 0; i < 16; i++) if (careOf[i] !== home[i]) sameAddress = false;
    if (mh.lifetime === 0 || sameAddress) {
      // §9.5.1: lifetime zero or care-of = home address deletes the entry.
      if (old !== undefined) {
        this.remove(old);
        this.changed?.({ unbound: { home, correspondent } });
      }
      return { result: "unbound", acknowledgement: mh.acknowledge ? ack(BA_STATUS.ACCEPTED, 0) : undefined };
    }
    const lifetimeMs = Math.min(mh.lifetime * 4000, MAX_LIFETIME_MS);
    if (old !== undefined) this.remove(old);
    const binding = { home, correspondent, careOfIPv6: careOf, careOfIPv4, sequence: mh.sequence, expiresAtMs: nowMs + lifetimeMs };
    this.put(binding);
    this.changed?.({ binding: { ...binding } });
    return { result: "bound", acknowledgement: mh.acknowledge ? ack(BA_STATUS.ACCEPTED, Math.floor(lifetimeMs / 4000)) : undefined };
  }

  /**
   * The IPv4 care-of address to send an IPv6 packet to directly, when its source (a
   * correspondent) holds a binding for its destination (a home address) that is still alive and
   * still matches the rule table; undefined otherwise (route it as usual).
   */
  shortcut(pkt: Uint8Array, rules: CareOfLookup, nowMs: number): { careOfIPv6: Uint8Array; careOfIPv4: Uint8Array } | undefined {
    const b = this.byHome.get(pkt, 24, 6)?.get(pkt, 8, 6);
    if (b === undefined) return undefined;
    const now4 = rules.careOfIPv4For(b.careOfIPv6);
    let current = now4 !== undefined && b.expiresAtMs > nowMs;
    for (let i = 0; current && i < 4; i++) if (now4![i] !== b.careOfIPv4[i]) current = false;
    if (!current) {
      // The VM moved on or came home (its rules are gone), or the binding ran out.
      this.remove(b);
      return undefined;
    }
    return b;
  }

  /** Drops bindings whose lifetime ended. */
  expire(nowMs: number): void {
    for (const b of this.all) if (b.expiresAtMs <= nowMs) this.remove(b);
  }

  private put(b: Binding): void {
    let byCorrespondent = this.byHome.get(b.home, 0, 6);
    if (byCorrespondent === undefined) {
      byCorrespondent = new AddressMap<Binding>();
      this.byHome.set(b.home, byCorrespondent);
    }
    byCorrespondent.set(b.correspondent, b);
    this.all.add(b);
  }

  private remove(b: Binding): void {
    if (!this.all.delete(b)) return;
    const byCorrespondent = this.byHome.get(b.home, 0, 6);
    byCorrespondent?.delete(b.correspondent);
    if (byCorrespondent !== undefined && byCorrespondent.size === 0) this.byHome.delete(b.home);
  }
}
