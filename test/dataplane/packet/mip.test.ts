import test from "ava";
import { createHmac } from "node:crypto";
import { pseudoHeaderSum6 } from "../../../dataplane/packet/checksum.js";
import { IPPROTO } from "../../../dataplane/packet/ipv4.js";
import { walkIPv6Extensions } from "../../../dataplane/packet/ipv6.js";
import {
  MIP4_EXTENSION, MIP4_PORT, MIP4_REPLY_CODE, MIP4_REQUEST_LENGTH, appendMobileHomeAuth, buildRegistrationReply, buildRegistrationRequest, parseMip4, verifyMobileHomeAuth,
  type Mip4RegistrationReply, type Mip4RegistrationRequest,
} from "../../../dataplane/packet/mip4.js";
import {
  AUTH_SUBTYPE, BA_STATUS, BE_STATUS, IPV4_ACK_STATUS, MH_TYPE, MOBILITY_OPTION, alternateCareOfAddressOption, authOption, bindingAuthorizationDataOption,
  bindingRefreshAdviceOption, buildBindingAcknowledgement, buildBindingError, buildBindingRefreshRequest, buildBindingUpdate, buildMobilityPacket, buildTest,
  buildTestInit, computeMnHaAuthenticator, decodeMobilityOption, ipv4AddressAcknowledgementOption, ipv4CareOfAddressOption, ipv4HomeAddressOption, messageIdOption,
  nonceIndicesOption, parseMobilityHeader, verifyMhChecksum, type MobilityMessage,
} from "../../../dataplane/packet/mip6.js";
import { buildUdp4 } from "../../../dataplane/packet/udp.js";
import { LINKTYPE_RAW } from "../../helpers/pcap.js";
import { scapyBuild } from "../../helpers/scapy.js";
import { decodeWithTshark } from "../../helpers/tshark.js";
import { a4, a6, hex, patternBytes, u32 } from "./fixtures.js";

const MIP4_IMPORTS = "from scapy.layers.mobileip import *";
const KEY = Uint8Array.from(Buffer.from("mn-ha shared key 0123456789"));
const MN6 = a6("2001:db8:aaaa::10"); // home address
const COA6 = a6("2001:db8:cccc::10");
const HA6 = a6("2001:db8:aaaa::1");

function request(): Uint8Array {
  return buildRegistrationRequest({
    simultaneousBindings: true, decapsulationByMobileNode: true, reverseTunnel: true, lifetime: 600,
    homeAddress: a4("192.0.2.10"), homeAgent: a4("192.0.2.1"), careOfAddress: a4("198.51.100.77"), identification: 0x0123456789abcdefn,
  });
}

test("MIPv4 Registration Request round trip with the Mobile-Home Authentication Extension", (t) => {
  const msg = appendMobileHomeAuth(request(), 0x1000, KEY);
  const p = parseMip4(msg) as Mip4RegistrationRequest;
  t.is(p.type, 1);
  t.true(p.simultaneousBindings);
  t.false(p.broadcast);
  t.true(p.decapsulationByMobileNode);
  t.false(p.minimalEncapsulation);
  t.false(p.greEncapsulation);
  t.true(p.reverseTunnel);
  t.is(p.lifetime, 600);
  t.is(p.homeAddress, u32("192.0.2.10"));
  t.is(p.homeAgent, u32("192.0.2.1"));
  t.is(p.careOfAddress, u32("198.51.100.77"));
  t.is(p.identification, 0x0123456789abcdefn);
  t.is(p.extensions.length, 1);
  t.is(p.extensions[0].type, MIP4_EXTENSION.MOBILE_HOME_AUTH);
  t.is(p.extensions[0].data.length, 20);
  t.true(verifyMobileHomeAuth(msg, p, 0x1000, KEY));
  t.false(verifyMobileHomeAuth(msg, p, 0x1001, KEY), "another SPI");
  t.false(verifyMobileHomeAuth(msg, p, 0x1000, Uint8Array.from(Buffer.from("wrong key"))), "another key");
  const tampered = msg.slice(); tampered[3] ^= 1;
  t.false(verifyMobileHomeAuth(tampered, parseMip4(tampered)!, 0x1000, KEY), "lifetime changed after signing");
});

test("MIPv4 Registration Reply round trip", (t) => {
  const msg = appendMobileHomeAuth(buildRegistrationReply({
    code: MIP4_REPLY_CODE.HA_MOBILE_NODE_FAILED_AUTHENTICATION, lifetime: 0, homeAddress: a4("192.0.2.10"), homeAgent: a4("192.0.2.1"), identification: 42n,
  }, [{ type: 130, data: Uint8Array.of(1, 2, 3) }]), 7, KEY);
  const p = parseMip4(msg) as Mip4RegistrationReply;
  t.is(p.type, 3);
  t.is(p.code, 131);
  t.is(p.lifetime, 0);
  t.is(p.identification, 42n);
  t.deepEqual(p.extensions.map((e) => e.type), [130, 32]);
  t.true(verifyMobileHomeAuth(msg, p, 7, KEY));
});

test("MIPv4 Mobile-Home Authentication with HMAC-SHA-256: 32-byte authenticator, and the algorithms do not mix", (t) => {
  const msg = appendMobileHomeAuth(request(), 0x2000, KEY, "hmac-sha256");
  t.is(msg.length, MIP4_REQUEST_LENGTH + 2 + 4 + 32);
  const p = parseMip4(msg) as Mip4RegistrationRequest;
  t.is(p.extensions[0].data.length, 36);
  t.is(msg[MIP4_REQUEST_LENGTH + 1], 36, "length covers the SPI and the authenticator");
  // The authenticator, computed here with node:crypto over the message, type, length and SPI (RFC 5944 §3.5.1).
  const expected = createHmac("sha256", KEY).update(msg.subarray(0, MIP4_REQUEST_LENGTH + 6)).digest();
  t.is(hex(msg.subarray(MIP4_REQUEST_LENGTH + 6)), expected.toString("hex"));
  t.true(verifyMobileHomeAuth(msg, p, 0x2000, KEY, "hmac-sha256"));
  t.false(verifyMobileHomeAuth(msg, p, 0x2000, KEY), "checked as HMAC-MD5 it fails");
  const md5 = appendMobileHomeAuth(request(), 0x2000, KEY);
  t.false(verifyMobileHomeAuth(md5, parseMip4(md5)!, 0x2000, KEY, "hmac-sha256"), "an MD5 authenticator checked as SHA-256 fails");
  t.is(hex(md5.subarray(MIP4_REQUEST_LENGTH + 6)), createHmac("md5", KEY).update(md5.subarray(0, MIP4_REQUEST_LENGTH + 6)).digest("hex"));
  const tampered = msg.slice(); tampered[20] ^= 1;
  t.false(verifyMobileHomeAuth(tampered, parseMip4(tampered)!, 0x2000, KEY, "hmac-sha256"), "identification changed after signing");
});

test("MIPv4 malformed inputs parse to undefined", (t) => {
  const msg = appendMobileHomeAuth(request(), 1, KEY);
  t.is(parseMip4(msg.subarray(0, 23)), undefined, "request cut short");
  t.is(parseMip4(msg.subarray(0, msg.length - 1)), undefined, "extension past the end");
  t.is(parseMip4(msg.subarray(0, 25)), undefined, "extension header cut");
  t.is(parseMip4(Uint8Array.of(2, 0, 0, 0)), undefined, "unknown type");
  t.is(parseMip4(new Uint8Array(0)), undefined, "empty");
  t.is(parseMip4(buildRegistrationReply({ code: 0, lifetime: 1, homeAddress: 0, homeAgent: 0, identification: 0n }).subarray(0, 19)), undefined, "reply cut short");
});

test("scapy MobileIP registration messages parse to the right fields, and ours match their bytes", (t) => {
  const [rrq, rrp] = scapyBuild([
    `MobileIP(type=1)/MobileIPRRQ(flags=0x82, lifetime=600, homeaddr="192.0.2.10", haaddr="192.0.2.1", coaddr="198.51.100.77", id=0x0123456789abcdef)`,
    `MobileIP(type=3)/MobileIPRRP(code=0, lifetime=300, homeaddr="192.0.2.10", haaddr="192.0.2.1", id=99)`,
  ], MIP4_IMPORTS);
  const q = parseMip4(rrq) as Mip4RegistrationRequest;
  t.is(q.type, 1);
  t.true(q.simultaneousBindings);
  t.true(q.reverseTunnel);
  t.false(q.decapsulationByMobileNode);
  t.is(q.lifetime, 600);
  t.is(q.careOfAddress, u32("198.51.100.77"));
  t.is(q.identification, 0x0123456789abcdefn);
  const r = parseMip4(rrp) as Mip4RegistrationReply;
  t.is(r.type, 3);
  t.is(r.code, 0);
  t.is(r.lifetime, 300);
  t.is(r.identification, 99n);
  t.is(hex(buildRegistrationReply({ code: 0, lifetime: 300, homeAddress: a4("192.0.2.10"), homeAgent: a4("192.0.2.1"), identification: 99n })), hex(rrp));
  t.is(hex(buildRegistrationRequest({ simultaneousBindings: true, reverseTunnel: true, lifetime: 600, homeAddress: a4("192.0.2.10"), homeAgent: a4("192.0.2.1"), careOfAddress: a4("198.51.100.77"), identification: 0x0123456789abcdefn })), hex(rrq));
});

function parsedMh(packet: Uint8Array): { mh: MobilityMessage; checksumOk: boolean } {
  const chain = walkIPv6Extensions(packet, 0)!;
  const mh = parseMobilityHeader(packet, chain.upperOffset, packet.length - chain.upperOffset)!;
  const src = chain.homeAddressOffset >= 0 ? packet.subarray(chain.homeAddressOffset, chain.homeAddressOffset + 16) : packet.subarray(8, 24);
  const dst = chain.routingType2AddressOffset >= 0 ? packet.subarray(chain.routingType2AddressOffset, chain.routingType2AddressOffset + 16) : packet.subarray(24, 40);
  const checksumOk = verifyMhChecksum(packet, chain.upperOffset, mh.length, pseudoHeaderSum6(src, 0, dst, 0, IPPROTO.MOBILITY, mh.length));
  return { mh, checksumOk };
}

function bindingUpdatePacket(): Uint8Array {
  return buildMobilityPacket({ src: COA6, dst: HA6, homeAddress: MN6 }, buildBindingUpdate(
    { sequence: 4242, acknowledge: true, homeRegistration: true, keyManagementCapability: false, lifetime: 150 },
    [alternateCareOfAddressOption(COA6), ipv4CareOfAddressOption(a4("198.51.100.77")), ipv4HomeAddressOption(a4("192.0.2.10"), 32, false), messageIdOption(0x1122334455667788n), authOption(AUTH_SUBTYPE.MN_HA, 0x100, new Uint8Array(12))],
  ));
}

test("MIPv6 Binding Update round trip: flags, lifetime, options, checksum with the home address as source", (t) => {
  const p = bindingUpdatePacket();
  const { mh, checksumOk } = parsedMh(p);
  t.true(checksumOk);
  if (mh.mhType !== MH_TYPE.BINDING_UPDATE) return t.fail(`MH type ${mh.mhType}`);
  t.is(mh.payloadProto, IPPROTO.NONE);
  t.is(mh.length % 8, 0);
  t.is(mh.sequence, 4242);
  t.true(mh.acknowledge);
  t.true(mh.homeRegistration);
  t.false(mh.linkLocalCompatibility);
  t.false(mh.keyManagementCapability);
  t.is(mh.lifetime, 150);
  t.deepEqual(mh.options.map((o) => o.type), [3, 32, 29, 10, 9]);
  t.deepEqual(decodeMobilityOption.alternateCareOfAddress(mh.options[0]), COA6);
  t.is((mh.options[0].offset - mh.offset) % 8, 6, "alternate CoA at 8n+6 (RFC 6275 §6.2.5)");
  t.is(decodeMobilityOption.ipv4CareOfAddress(mh.options[1]), u32("198.51.100.77"));
  t.deepEqual(decodeMobilityOption.ipv4HomeAddress(mh.options[2]), { prefixLength: 32, requestPrefix: false, homeAddress: u32("192.0.2.10") });
  t.is(decodeMobilityOption.messageId(mh.options[3]), 0x1122334455667788n);
  t.deepEqual(decodeMobilityOption.auth(mh.options[4]), { subtype: 1, spi: 0x100, authenticationData: new Uint8Array(12) });
});

test("MIPv6 BA, BE, BRR, HoTI, CoTI, HoT, CoT round trip", (t) => {
  const ba = buildMobilityPacket({ src: HA6, dst: COA6, routingHomeAddress: MN6 }, buildBindingAcknowledgement(
    { status: BA_STATUS.ACCEPTED, keyManagementCapability: true, sequence: 4242, lifetime: 100 },
    [bindingRefreshAdviceOption(50), ipv4AddressAcknowledgementOption(IPV4_ACK_STATUS.SUCCESS, a4("192.0.2.10"), 24)],
  ));
  const b = parsedMh(ba);
  t.true(b.checksumOk, "checksum with the type 2 routing header's address as destination");
  if (b.mh.mhType !== 6) return t.fail();
  t.is(b.mh.status, 0);
  t.true(b.mh.keyManagementCapability);
  t.is(b.mh.sequence, 4242);
  t.is(b.mh.lifetime, 100);
  t.is(decodeMobilityOption.bindingRefreshAdvice(b.mh.options[0]), 50);
  t.deepEqual(decodeMobilityOption.ipv4AddressAcknowledgement(b.mh.options[1]), { status: 0, prefixLength: 24, homeAddress: u32("192.0.2.10") });

  const be = parsedMh(buildMobilityPacket({ src: HA6, dst: COA6 }, buildBindingError(BE_STATUS.UNRECOGNIZED_MH_TYPE, MN6)));
  t.true(be.checksumOk);
  if (be.mh.mhType !== 7) return t.fail();
  t.is(be.mh.status, 2);
  t.deepEqual(be.mh.homeAddress, MN6);

  const brr = parsedMh(buildMobilityPacket({ src: HA6, dst: MN6 }, buildBindingRefreshRequest()));
  t.is(brr.mh.mhType, 0);
  t.is(brr.mh.length, 8);

  const cookie = patternBytes(8, 1);
  const token = patternBytes(8, 2);
  const hoti = parsedMh(buildMobilityPacket({ src: MN6, dst: HA6 }, buildTestInit(false, cookie)));
  const coti = parsedMh(buildMobilityPacket({ src: COA6, dst: HA6 }, buildTestInit(true, cookie)));
  const hot = parsedMh(buildMobilityPacket({ src: HA6, dst: MN6 }, buildTest(false, 77, cookie, token, [nonceIndicesOption(1, 2)])));
  const cot = parsedMh(buildMobilityPacket({ src: HA6, dst: COA6 }, buildTest(true, 78, cookie, token, [bindingAuthorizationDataOption(patternBytes(12, 3))])));
  for (const m of [hoti, coti, hot, cot]) t.true(m.checksumOk);
  if (hoti.mh.mhType !== 1 || coti.mh.mhType !== 2 || hot.mh.mhType !== 3 || cot.mh.mhType !== 4) return t.fail();
  t.deepEqual(hoti.mh.cookie, cookie);
  t.deepEqual(coti.mh.cookie, cookie);
  t.is(hot.mh.nonceIndex, 77);
  t.deepEqual(hot.mh.keygenToken, token);
  t.deepEqual(decodeMobilityOption.nonceIndices(hot.mh.options[0]), { homeNonceIndex: 1, careOfNonceIndex: 2 });
  t.is(cot.mh.nonceIndex, 78);
  t.is(cot.mh.options[0].type, MOBILITY_OPTION.BINDING_AUTHORIZATION_DATA);
  t.is((cot.mh.options[0].offset - cot.mh.offset) % 8, 2, "authorization data at 8n+2 (RFC 6275 §6.2.7)");
});

test("MIPv6 malformed inputs parse to undefined", (t) => {
  const mh = buildBindingUpdate({ sequence: 1, lifetime: 1 }, [alternateCareOfAddressOption(COA6)]);
  t.is(parseMobilityHeader(mh, 0, 7), undefined, "shorter than 8");
  t.is(parseMobilityHeader(mh, 0, mh.length - 8), undefined, "Header Len past what is there");
  const unknown = mh.slice(); unknown[2] = 42;
  t.is(parseMobilityHeader(unknown, 0), undefined, "unknown MH type");
  const shortBa = buildBindingRefreshRequest(); shortBa[2] = 6;
  t.is(parseMobilityHeader(shortBa, 0), undefined, "BA shorter than its fixed part");
  const badOpt = mh.slice(); badOpt[15] = 200;
  t.is(parseMobilityHeader(badOpt, 0), undefined, "option past the end");
});

test("our Binding Update and Binding Acknowledgement are byte-identical to scapy's (checksums included)", (t) => {
  const [bu, ba] = scapyBuild([
    `IPv6(src="2001:db8:cccc::10", dst="2001:db8:aaaa::1")/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:aaaa::10")])/MIP6MH_BU(seq=9, flags="AH", mhtime=75, options=[MIP6OptAltCoA(acoa="2001:db8:cccc::10")])`,
    `IPv6(src="2001:db8:aaaa::1", dst="2001:db8:cccc::10")/IPv6ExtHdrRouting(type=2, segleft=1, addresses=["2001:db8:aaaa::10"])/MIP6MH_BA(status=0, flags=0, seq=9, mhtime=75)`,
  ]);
  const ours = buildMobilityPacket({ src: COA6, dst: HA6, homeAddress: MN6 }, buildBindingUpdate({ sequence: 9, acknowledge: true, homeRegistration: true, lifetime: 75 }, [alternateCareOfAddressOption(COA6)]));
  t.is(hex(ours), hex(bu));
  const oursBa = buildMobilityPacket({ src: HA6, dst: COA6, routingHomeAddress: MN6 }, buildBindingAcknowledgement({ status: 0, sequence: 9, lifetime: 75 }));
  t.is(hex(oursBa), hex(ba));
});

test("the RFC 4285 options sit where scapy puts them: replay protection at 8n+2, authentication at 4n+1", (t) => {
  const [bu] = scapyBuild([
    `IPv6(src="2001:db8:cccc::10", dst="2001:db8:aaaa::1")/IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:aaaa::10")])/MIP6MH_BU(seq=3, flags="AH", mhtime=10, options=[MIP6OptReplayProtection(timestamp=0x0102030405060708), MIP6OptMsgAuth(subtype=1, mspi=0x4242, authdata=b"B"*12)])`,
  ]);
  const ours = buildMobilityPacket({ src: COA6, dst: HA6, homeAddress: MN6 }, buildBindingUpdate(
    { sequence: 3, acknowledge: true, homeRegistration: true, lifetime: 10 },
    [messageIdOption(0x0102030405060708n), authOption(AUTH_SUBTYPE.MN_HA, 0x4242, Uint8Array.from(Buffer.from("B".repeat(12))))],
  ));
  t.is(hex(ours), hex(bu));
});

test("scapy-built mobility messages with RFC 4285 options parse to the right fields", (t) => {
  const [bu, hot] = scapyBuild([
    `IPv6(src="2001:db8:cccc::10", dst="2001:db8:aaaa::1")/MIP6MH_BU(seq=3, flags="AHK", mhtime=10, options=[MIP6OptReplayProtection(timestamp=0x0102030405060708), MIP6OptMsgAuth(subtype=1, mspi=0x4242, authdata=b"B"*12)])`,
    `IPv6(src="2001:db8:aaaa::1", dst="2001:db8:aaaa::10")/MIP6MH_HoT(index=5, cookie=b"C"*8, token=b"T"*8)`,
  ]);
  const b = parsedMh(bu);
  t.true(b.checksumOk);
  if (b.mh.mhType !== 5) return t.fail();
  t.is(b.mh.sequence, 3);
  t.true(b.mh.acknowledge && b.mh.homeRegistration && b.mh.keyManagementCapability);
  t.is(b.mh.lifetime, 10);
  const mesg = b.mh.options.find((o) => o.type === MOBILITY_OPTION.MESG_ID)!;
  const auth = b.mh.options.find((o) => o.type === MOBILITY_OPTION.AUTH)!;
  t.truthy(mesg);
  t.deepEqual(decodeMobilityOption.auth(auth), { subtype: 1, spi: 0x4242, authenticationData: Uint8Array.from(Buffer.from("B".repeat(12))) });
  const h = parsedMh(hot);
  t.true(h.checksumOk);
  if (h.mh.mhType !== 3) return t.fail();
  t.is(h.mh.nonceIndex, 5);
  t.deepEqual(h.mh.cookie, Uint8Array.from(Buffer.from("CCCCCCCC")));
});

test("MN-HA authenticator (RFC 4285 §5.1) changes with the message and the key", (t) => {
  const mh = buildBindingUpdate({ sequence: 1, acknowledge: true, homeRegistration: true, lifetime: 10 }, [authOption(AUTH_SUBTYPE.MN_HA, 0x100, new Uint8Array(12))]);
  const authAt = parseMobilityHeader(mh, 0)!.options[0].offset;
  const a1 = computeMnHaAuthenticator(KEY, COA6, MN6, mh, authAt);
  t.is(a1.length, 12);
  mh.set(a1, authAt + 7);
  t.deepEqual(computeMnHaAuthenticator(KEY, COA6, MN6, mh, authAt), a1, "the authentication data itself is not covered");
  mh[4] = 0x12;
  t.deepEqual(computeMnHaAuthenticator(KEY, COA6, MN6, mh, authAt), a1, "the checksum is taken as zero");
  mh[11] = 11;
  t.notDeepEqual(computeMnHaAuthenticator(KEY, COA6, MN6, mh, authAt), a1, "lifetime is covered");
  t.notDeepEqual(computeMnHaAuthenticator(Uint8Array.of(1), COA6, MN6, mh, authAt), computeMnHaAuthenticator(KEY, COA6, MN6, mh, authAt));
});

test("tshark decodes our MIPv4 and MIPv6 messages without complaint and reads the IANA option types", (t) => {
  const rrq = buildUdp4({ src: a4("198.51.100.77"), dst: a4("192.0.2.1"), srcPort: 40000, dstPort: MIP4_PORT }, appendMobileHomeAuth(request(), 0x1000, KEY));
  const rrp = buildUdp4({ src: a4("192.0.2.1"), dst: a4("198.51.100.77"), srcPort: MIP4_PORT, dstPort: 40000 }, appendMobileHomeAuth(buildRegistrationReply({ code: 0, lifetime: 600, homeAddress: a4("192.0.2.10"), homeAgent: a4("192.0.2.1"), identification: 5n }), 0x1000, KEY));
  const ba = buildMobilityPacket({ src: HA6, dst: COA6, routingHomeAddress: MN6 }, buildBindingAcknowledgement({ status: BA_STATUS.NOT_HOME_SUBNET, sequence: 1, lifetime: 0 }, [ipv4AddressAcknowledgementOption(0, a4("192.0.2.10"), 24)]));
  const be = buildMobilityPacket({ src: HA6, dst: COA6 }, buildBindingError(BE_STATUS.UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION, MN6));
  const hot = buildMobilityPacket({ src: HA6, dst: MN6 }, buildTest(false, 1, patternBytes(8), patternBytes(8, 4), [nonceIndicesOption(1, 2)]));
  const others = [
    buildMobilityPacket({ src: MN6, dst: HA6 }, buildTestInit(false, patternBytes(8))),
    buildMobilityPacket({ src: COA6, dst: HA6 }, buildTestInit(true, patternBytes(8))),
    buildMobilityPacket({ src: HA6, dst: COA6 }, buildTest(true, 2, patternBytes(8), patternBytes(8, 5), [bindingAuthorizationDataOption(patternBytes(12, 3))])),
    buildMobilityPacket({ src: HA6, dst: MN6 }, buildBindingRefreshRequest([bindingRefreshAdviceOption(10)])),
  ];
  const r = decodeWithTshark([rrq, rrp, bindingUpdatePacket(), ba, be, hot, ...others], LINKTYPE_RAW);
  t.deepEqual(r.problems, []);
  const mip = r.packets[0]._source.layers.mip as Record<string, unknown>;
  t.truthy(mip, "tshark saw Mobile IP on port 434");
  t.is(mip["mip.type"], "1");
  t.is(mip["mip.coa"], "198.51.100.77");
  // The mobility header sits inside the ipv6 layer of tshark's JSON, after the extension headers.
  const json = JSON.stringify(r.packets[2]._source.layers);
  t.true(json.includes(`"mip6.ipv4coa.addr":"198.51.100.77"`), "option 32 decodes as the IPv4 care-of address");
  t.true(json.includes(`"mip6.ipv4ha.ha":"192.0.2.10"`), "option 29 decodes as the IPv4 home address");
  t.true(json.includes(`"mip6.auth.mobility_spi":"256"`), "option 9 decodes as the RFC 4285 authentication option");
  t.true(json.includes(`"mip6.acoa.acoa":"2001:db8:cccc::10"`));
  // tshark 4.0 does not verify MH checksums; the byte-identical comparison with scapy above does.
});
