// The forwarder's control-plane hooks, part two: `setProxied` (proxy ARP/NDP for a home agent's
// bindings), `announce` (gratuitous ARP / unsolicited NA) and promiscuous ports (hooks.test.ts
// has intercept and inject). Frames are built with our codec; what the hooks emit is also
// decoded by tshark.
import test from "ava";
import { Forwarder, ForwarderConfigError, parseForwarderConfig } from "../../../dataplane/forward/index.js";
import { ARP_OPERATION, parseArp } from "../../../dataplane/packet/arp.js";
import { BROADCAST_MAC, formatMac, parseMac } from "../../../dataplane/packet/ethernet.js";
import { ICMP6_TYPE } from "../../../dataplane/packet/icmp6.js";
import { ALL_NODES, parseNd } from "../../../dataplane/packet/nd.js";
import { decodeWithTshark, frameProtocols } from "../../helpers/tshark.js";
import { collector, ip4, ip6, labWorker, MAC, udp4Frame, udp6Frame } from "./helpers.js";

import { arpRequest, field, hex, ipPayload, lab, neighborSolicitation } from "./hook-helpers.js";

// ---------------------------------------------------------------- setProxied

test("setProxied: ARP for a proxied address on its own connected subnet is answered with the port MAC, until it is turned off", (t) => {
  const { f } = lab();
  const c = collector();
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 0, "192.0.2.1 is on the asking link: no proxy ARP before");
  f.setProxied("192.0.2.1", true);
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 1);
  const reply = c.sent[0].frame;
  t.is(c.sent[0].ifIndex, 1);
  t.is(formatMac(reply, 0), "02:00:00:00:04:55");
  t.is(formatMac(reply, 6), formatMac(MAC.v4));
  const a = parseArp(reply, 14)!;
  t.is(a.operation, ARP_OPERATION.REPLY);
  t.is(formatMac(reply, a.senderMacOffset), formatMac(MAC.v4));
  t.is(hex(reply.subarray(a.senderIpOffset, a.senderIpOffset + 4)), hex(ip4("192.0.2.1")));
  // On every link: the IPv6 port answers as well.
  f.processFrame(2, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 2);
  t.is(formatMac(c.sent[1].frame, 6), formatMac(MAC.v6));
  f.setProxied("192.0.2.1", false);
  f.processFrame(1, arpRequest("192.0.2.1"), c.emit, 0);
  t.is(c.sent.length, 2);
  t.is(f.counters.actions.arp, 2);
});

test("setProxied: an NS for a proxied IPv6 address is answered with an NA (port MAC, S set, O and R clear), until it is turned off", (t) => {
  const { f } = lab();
  const c = collector();
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 0);
  f.setProxied("2001:db8:1::2", true);
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 1);
  const frame = c.sent[0].frame;
  t.is(formatMac(frame, 0), "02:00:00:00:06:55");
  t.is(formatMac(frame, 6), formatMac(MAC.v6));
  const ip = ipPayload(frame);
  t.is(hex(ip.subarray(24, 40)), hex(ip6("2001:db8:1::55")));
  const nd = parseNd(ip, 40, ip.length - 40)!;
  t.is(nd.type, ICMP6_TYPE.NEIGHBOR_ADVERTISEMENT);
  t.is(hex(ip.subarray(nd.targetOffset, nd.targetOffset + 16)), hex(ip6("2001:db8:1::2")));
  t.true(nd.solicited);
  // RFC 4861 §7.2.8: a proxy leaves O clear so the owner's own NA wins when it comes back.
  t.false(nd.override);
  // The address is a VM's, a host: R clear, as in announce().
  t.is(ip[44] & 0x80, 0);
  t.is(formatMac(ip, nd.targetLinkLayerOffset), formatMac(MAC.v6));
  const decoded = decodeWithTshark([frame]);
  t.deepEqual(decoded.problems, []);
  f.setProxied("2001:db8:1::2", false);
  f.processFrame(2, neighborSolicitation("2001:db8:1::2"), c.emit, 0);
  t.is(c.sent.length, 1);
  t.is(f.counters.drops["not-for-us"], 2);
});

test("setProxied rejects what is not an address", (t) => {
  const { f } = lab();
  t.throws(() => f.setProxied("192.0.2.300", true));
  t.throws(() => f.setProxied("2001:db8::g", true));
});

// ---------------------------------------------------------------- announce

test("announce: a gratuitous ARP request and an unsolicited NA (O set, to ff02::1) that tshark decodes without warnings", (t) => {
  const { f } = lab();
  const c = collector();
  const vmMac = parseMac("02:00:00:00:04:21");
  f.announce("v4", "192.0.2.1", c.emit, vmMac);
  f.announce("v6", "2001:db8:1::2", c.emit, vmMac);
  f.announce("v6", "2001:db8:1::3", c.emit);
  t.deepEqual(c.sent.map((s) => s.ifIndex), [1, 2, 2]);

  // Our own decode.
  const arpFrame = c.sent[0].frame;
  t.is(formatMac(arpFrame, 0), "ff:ff:ff:ff:ff:ff");
  t.is(formatMac(arpFrame, 6), formatMac(MAC.v4), "Ethernet source: the port, so switches keep the VM's MAC where it is");
  const a = parseArp(arpFrame, 14)!;
  t.is(a.operation, ARP_OPERATION.REQUEST);
  t.is(formatMac(arpFrame, a.senderMacOffset), formatMac(vmMac));
  t.is(a.senderIp, a.targetIp);
  t.is(hex(arpFrame.subarray(a.targetIpOffset, a.targetIpOffset + 4)), hex(ip4("192.0.2.1")));
  const na = ipPayload(c.sent[1].frame);
  t.is(formatMac(c.sent[1].frame, 0), "33:33:00:00:00:01");
  t.is(hex(na.subarray(24, 40)), hex(ALL_NODES));
  t.is(na[7], 255);
  const m = parseNd(na, 40, na.length - 40)!;
  t.true(m.override);
  t.false(m.solicited);
  t.is(formatMac(na, m.targetLinkLayerOffset), formatMac(vmMac));
  t.is(formatMac(ipPayload(c.sent[2].frame), parseNd(ipPayload(c.sent[2].frame), 40)!.targetLinkLayerOffset), formatMac(MAC.v6), "default: the port's MAC");

  // tshark's.
  const d = decodeWithTshark(c.sent.map((s) => s.frame));
  t.deepEqual(d.problems, []);
  t.deepEqual(frameProtocols(d), ["eth:ethertype:arp", "eth:ethertype:ipv6:icmpv6", "eth:ethertype:ipv6:icmpv6"]);
  const [arp, adv] = d.packets;
  t.is(field(arp, "eth.src"), formatMac(MAC.v4));
  t.is(field(arp, "arp.opcode"), "1");
  t.is(field(arp, "arp.src.hw_mac"), formatMac(vmMac));
  t.is(field(arp, "arp.src.proto_ipv4"), "192.0.2.1");
  t.is(field(arp, "arp.dst.proto_ipv4"), "192.0.2.1");
  t.is(field(adv, "eth.src"), formatMac(MAC.v6));
  t.is(field(adv, "ipv6.dst"), "ff02::1");
  t.is(field(adv, "icmpv6.type"), "136");
  t.is(field(adv, "icmpv6.nd.na.flag.o"), "1");
  t.is(field(adv, "icmpv6.nd.na.flag.s"), "0");
  t.is(field(adv, "icmpv6.nd.na.flag.r"), "0");
  t.is(field(adv, "icmpv6.nd.na.target_address"), "2001:db8:1::2");
  t.is(field(adv, "icmpv6.opt.linkaddr"), formatMac(vmMac));

  t.is(f.counters.actions.arp, 1);
  t.is(f.counters.actions.nd, 2);
  t.is(f.counters.interfaces.get(2)!.txPackets, 2, "announcements count as sent");
  t.throws(() => f.announce("eth9", "192.0.2.1", c.emit), { instanceOf: ForwarderConfigError, message: /eth9/ });
});

// ---------------------------------------------------------------- promiscuous

test("promiscuous: a unicast frame to a foreign MAC is dropped `not-for-us` on a normal port and routed on a promiscuous one", (t) => {
  const oldRouter = parseMac("02:00:00:00:04:99");
  const normal = lab();
  const c = collector();
  normal.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: oldRouter }), c.emit, 0);
  t.is(normal.f.counters.drops["not-for-us"], 1);
  t.is(c.sent.length, 0);

  const config = labWorker();
  config.interfaces[0].promiscuous = true;
  const promiscuous = lab(() => false, config);
  promiscuous.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: oldRouter }), c.emit, 0);
  t.is(promiscuous.f.counters.actions.route, 1);
  t.is(c.sent.length, 1);
  t.is(formatMac(c.sent[0].frame, 6), formatMac(MAC.v4));
  // Only that port: the IPv6 port still drops frames for other stations.
  promiscuous.f.processFrame(2, udp6Frame("2001:db8:1::99", "2001:db8:2::9", { to: oldRouter }), c.emit, 0);
  t.is(promiscuous.f.counters.drops["not-for-us"], 1);
  // IP to a broadcast MAC is still not routed (RFC 1812 §5.3.4).
  promiscuous.f.processFrame(1, udp4Frame("192.0.2.1", "203.0.113.9", { to: BROADCAST_MAC }), c.emit, 0);
  t.is(promiscuous.f.counters.drops["not-for-us"], 2);
});

test("promiscuous: the configuration accepts a boolean and rejects anything else, naming the field", (t) => {
  const config = labWorker();
  config.interfaces[1].promiscuous = false;
  t.false(parseForwarderConfig(config).interfaces[1].promiscuous);
  (config.interfaces[1] as unknown as Record<string, unknown>).promiscuous = "yes";
  const e = t.throws(() => parseForwarderConfig(config), { instanceOf: ForwarderConfigError });
  t.is(e!.field, "worker.interfaces[1].promiscuous");
  t.regex(e!.message, /^worker\.interfaces\[1\]\.promiscuous: /);
  t.throws(() => new Forwarder(config), { instanceOf: ForwarderConfigError, message: /interfaces\[1\]\.promiscuous/ });
});
