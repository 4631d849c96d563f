// ARP for IPv4 over Ethernet (RFC 826).
import { BROADCAST_MAC, ETHERTYPE, buildEthernetFrame } from "./ethernet.js";
import { readIPv4Address, writeIPv4Address, type IPv4AddressInput } from "./ipv4.js";

export const ARP_LENGTH = 28;
export const ARP_OPERATION = { REQUEST: 1, REPLY: 2 } as const;

export interface ArpPacket {
  offset: number;
  operation: number;
  senderMacOffset: number;
  /** Unsigned 32-bit. */
  senderIp: number;
  senderIpOffset: number;
  targetMacOffset: number;
  targetIp: number;
  targetIpOffset: number;
}

/**
 * Parses an Ethernet/IPv4 ARP packet at `offset`. Returns undefined if it is shorter than 28
 * bytes or is for another hardware or protocol type (htype 1, ptype 0x0800, hlen 6, plen 4).
 */
export function parseArp(buf: Uint8Array, offset = 0): ArpPacket | undefined {
  if (buf.length - offset < ARP_LENGTH) return undefined;
  if (buf[offset] !== 0 || buf[offset + 1] !== 1 || buf[offset + 2] !== 0x08 || buf[offset + 3] !== 0x00) return undefined;
  if (buf[offset + 4] !== 6 || buf[offset + 5] !== 4) return undefined;
  return {
    offset,
    operation: (buf[offset + 6] << 8) | buf[offset + 7],
    senderMacOffset: offset + 8,
    senderIpOffset: offset + 14,
    senderIp: readIPv4Address(buf, offset + 14),
    targetMacOffset: offset + 18,
    targetIpOffset: offset + 24,
    targetIp: readIPv4Address(buf, offset + 24),
  };
}

export function writeArp(buf: Uint8Array, offset: number, operation: number, senderMac: Uint8Array, senderIp: IPv4AddressInput, targetMac: Uint8Array, targetIp: IPv4AddressInput): number {
  buf[offset] = 0;
  buf[offset + 1] = 1; // Ethernet
  buf[offset + 2] = 0x08;
  buf[offset + 3] = 0x00; // IPv4
  buf[offset + 4] = 6;
  buf[offset + 5] = 4;
  buf[offset + 6] = operation >> 8;
  buf[offset + 7] = operation & 0xff;
  buf.set(senderMac.subarray(0, 6), offset + 8);
  writeIPv4Address(buf, offset + 14, senderIp);
  buf.set(targetMac.subarray(0, 6), offset + 18);
  writeIPv4Address(buf, offset + 24, targetIp);
  return ARP_LENGTH;
}

export function buildArp(operation: number, senderMac: Uint8Array, senderIp: IPv4AddressInput, targetMac: Uint8Array, targetIp: IPv4AddressInput): Uint8Array {
  const out = new Uint8Array(ARP_LENGTH);
  writeArp(out, 0, operation, senderMac, senderIp, targetMac, targetIp);
  return out;
}

const ZERO_MAC = new Uint8Array(6);

/** A broadcast Ethernet frame asking who has `targetIp` (RFC 826; target MAC left zero). */
export function buildArpRequestFrame(senderMac: Uint8Array, senderIp: IPv4AddressInput, targetIp: IPv4AddressInput): Uint8Array {
  return buildEthernetFrame(BROADCAST_MAC, senderMac, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REQUEST, senderMac, senderIp, ZERO_MAC, targetIp));
}

/** A unicast Ethernet frame answering a request: we (senderMac, senderIp) tell the asker. */
export function buildArpReplyFrame(senderMac: Uint8Array, senderIp: IPv4AddressInput, targetMac: Uint8Array, targetIp: IPv4AddressInput): Uint8Array {
  return buildEthernetFrame(targetMac, senderMac, ETHERTYPE.ARP, buildArp(ARP_OPERATION.REPLY, senderMac, senderIp, targetMac, targetIp));
}
