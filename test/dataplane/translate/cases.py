# Packet pairs for the RFC 7915 translator tests, built by scapy, independent of our codec.
# Prints a JSON list of cases: name, direction, input hex, expected action and packets.
# Addresses: documentation ranges only (RFC 5737, RFC 3849).
# One file over ~400 lines on purpose: one scapy process builds every pair, and the cases read as one list.
import json
import sys
from scapy.utils import checksum
from scapy.all import (IP, IPv6, UDP, TCP, ICMP, Raw, raw, fragment, IPOption_LSRR,
                       ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6DestUnreach, ICMPv6PacketTooBig,
                       ICMPv6TimeExceeded, ICMPv6ParamProblem, ICMPv6ND_NS,
                       IPv6ExtHdrFragment, IPv6ExtHdrRouting, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, HAO)
import scapy.config
scapy.config.conf.verb = 0

CN4, CN6 = "198.51.100.10", "2001:db8:64::198.51.100.10"       # RFC 6052 /96 prefix 2001:db8:64::/96
POOL4, VM6 = "192.0.2.10", "2001:db8:1::10"                    # explicit address mapping
ROUTER4, ROUTER4_6 = "198.51.100.254", "2001:db8:64::198.51.100.254"
ROUTER6 = "2001:db8:ffff::1"                                    # no IPv4 form: RFC 6791 source
RFC6791 = "198.51.100.99"
SELF4 = "198.51.100.1"                                          # translator's own IPv4 address
PAY = bytes(range(32)) * 4

cases = []

def h(p):
    return raw(p).hex()

def case(name, direction, inp, action, outs=(), reason=None, ignore=(), config=None):
    cases.append({"name": name, "direction": direction, "input": h(inp) if not isinstance(inp, bytes) else inp.hex(),
                  "action": action, "outputs": [o.hex() if isinstance(o, bytes) else h(o) for o in outs],
                  "reason": reason, "ignore": list(ignore), "config": config or {}})

V4_FREE = [4, 5, 10, 11]  # RFC 7915 §5.1 leaves the Identification to the translator; the header checksum follows it.
V4_CKSUM = [10, 11]

# --- UDP, TCP, echo ---
case("§4.1 §4.5 UDP 4→6", "4to6", IP(src=CN4, dst=POOL4, ttl=64, tos=0x28) / UDP(sport=1234, dport=9) / PAY,
     "forward", [IPv6(src=CN6, dst=VM6, hlim=63, tc=0x28) / UDP(sport=1234, dport=9) / PAY])
case("§5.1 §5.5 UDP 6→4", "6to4", IPv6(src=VM6, dst=CN6, hlim=64, tc=0x28, fl=12345) / UDP(sport=9, dport=1234) / PAY,
     "forward", [IP(src=POOL4, dst=CN4, ttl=63, tos=0x28, id=0) / UDP(sport=9, dport=1234) / PAY], ignore=V4_FREE)
tcp = dict(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
case("§4.1 §4.5 TCP 4→6", "4to6", IP(src=CN4, dst=POOL4) / TCP(**tcp) / (b"x" * 11), "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / TCP(**tcp) / (b"x" * 11)])
case("§5.1 §5.5 TCP 6→4", "6to4", IPv6(src=VM6, dst=CN6) / TCP(**tcp) / (b"y" * 13), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / TCP(**tcp) / (b"y" * 13)], ignore=V4_FREE)
case("§4.2 ICMP echo request 4→6", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=8, id=7, seq=1) / b"ping", "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / ICMPv6EchoRequest(id=7, seq=1, data=b"ping")])
case("§4.2 ICMP echo reply 4→6", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=0, id=7, seq=2) / PAY, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / ICMPv6EchoReply(id=7, seq=2, data=PAY)])
case("§5.2 ICMPv6 echo request 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6EchoRequest(id=9, seq=3, data=PAY), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=8, id=9, seq=3) / PAY], ignore=V4_FREE)
case("§5.2 ICMPv6 echo reply 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6EchoReply(id=9, seq=4, data=b"pong"), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=0, id=9, seq=4) / b"pong"], ignore=V4_FREE)
case("§4.1 protocol without a transport rule passes 4→6", "4to6", IP(src=CN4, dst=POOL4, proto=253) / PAY, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63, nh=253) / PAY])

# --- ICMP errors with their quoted packets, IPv4 → IPv6 (§4.2, §4.3) ---
q4 = IP(src=POOL4, dst=CN4, ttl=60) / UDP(sport=5000, dport=9) / PAY[:40]
q6 = IPv6(src=VM6, dst=CN6, hlim=60) / UDP(sport=5000, dport=9) / PAY[:40]
case("§4.2 §4.3 port unreachable 4→6", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=3, code=3) / q4, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / ICMPv6DestUnreach(code=4) / q6])
case("§4.2 §4.3 host unreachable 4→6", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=1) / q4, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6DestUnreach(code=0) / q6])
case("§4.2 admin prohibited 4→6", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=13) / q4, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6DestUnreach(code=1) / q6])
q4df = IP(src=POOL4, dst=CN4, ttl=60, flags="DF") / UDP(sport=5000, dport=9) / PAY
q6df = IPv6(src=VM6, dst=CN6, hlim=60) / UDP(sport=5000, dport=9) / PAY
case("§4.2 fragmentation needed → packet too big, MTU + 20", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=4, nexthopmtu=1400) / q4df, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6PacketTooBig(mtu=1420) / q6df])
case("§4.2 §5 packet too big never below 1280", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=4, nexthopmtu=1000) / q4df, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6PacketTooBig(mtu=1280) / q6df])
case("§4.2 packet too big limited by the IPv6 next-hop MTU", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=4, nexthopmtu=1492) / q4df, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6PacketTooBig(mtu=1500) / q6df])
case("§4.2 time exceeded 4→6", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=11, code=0) / q4, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=0) / q6])
case("§4.2 parameter problem pointer 9 → 6 (Figure 3)", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=12, code=0, ptr=9) / q4, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6ParamProblem(code=0, ptr=6) / q6])
case("§4.2 parameter problem pointer 16 → 24 (Figure 3)", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=12, code=0, ptr=16) / q4, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6ParamProblem(code=0, ptr=24) / q6])
case("§4.2 parameter problem pointer 4 (Identification) has no counterpart", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=12, code=0, ptr=4) / q4, "drop", reason="icmp-untranslatable")
case("§4.2 protocol unreachable → parameter problem code 1 pointer 6", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=3, code=2) / q4, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / ICMPv6ParamProblem(code=1, ptr=6) / q6])
q4echo = IP(src=POOL4, dst=CN4, ttl=3) / ICMP(type=8, id=1, seq=1) / b"ping"
q6echo = IPv6(src=VM6, dst=CN6, hlim=3) / ICMPv6EchoRequest(id=1, seq=1, data=b"ping")
case("§4.3 time exceeded quoting an echo request 4→6", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=11, code=0) / q4echo, "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=0) / q6echo])
full6 = raw(IPv6(src=VM6, dst=CN6, hlim=60) / UDP(sport=5000, dport=9) / PAY)
case("§4.3 truncated quote is translated as far as it goes", "4to6",
     IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=1) / Raw(raw(IP(src=POOL4, dst=CN4, ttl=60) / UDP(sport=5000, dport=9) / PAY)[:48]), "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6DestUnreach(code=0) / Raw(full6[:68])])
case("§4.3 an error quoting an error is dropped", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=1) / IP(src=POOL4, dst=CN4) / ICMP(type=3, code=3) / q4, "drop", reason="icmp-error-inner")
case("§4.3 an error with a bad ICMP checksum is dropped, not repaired", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=1, chksum=0x1234) / q4, "drop", reason="icmp-checksum")
case("§4.2 source quench is dropped", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=4) / q4, "drop", reason="icmp-untranslatable")
case("§4.2 timestamp request is dropped", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=13), "drop", reason="icmp-untranslatable")
case("§4.2 host precedence violation is dropped", "4to6", IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=14) / q4, "drop", reason="icmp-untranslatable")

# --- ICMPv6 errors, IPv6 → IPv4 (§5.2, §5.3) ---
p6 = IPv6(src=CN6, dst=VM6, hlim=50) / UDP(sport=9, dport=5000) / PAY[:40]
p4 = IP(src=CN4, dst=POOL4, ttl=50, id=0) / UDP(sport=9, dport=5000) / PAY[:40]
case("§5.2 §5.3 port unreachable 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6DestUnreach(code=4) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=3) / p4], ignore=V4_FREE)
case("§5.2 no route → host unreachable 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6DestUnreach(code=0) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=1) / p4], ignore=V4_FREE)
case("§5.2 admin prohibited → code 10 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6DestUnreach(code=1) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=10) / p4], ignore=V4_FREE)
case("§5.2 RFC 6791 source for an error from an unmapped IPv6 router", "6to4", IPv6(src=ROUTER6, dst=CN6) / ICMPv6TimeExceeded(code=0) / p6, "forward",
     [IP(src=RFC6791, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0) / p4], ignore=V4_FREE)
p6big = IPv6(src=CN6, dst=VM6, hlim=50) / UDP(sport=9, dport=5000) / PAY
p4big = IP(src=CN4, dst=POOL4, ttl=50, id=0) / UDP(sport=9, dport=5000) / PAY
case("§5.2 packet too big → fragmentation needed, MTU − 20", "6to4", IPv6(src=ROUTER6, dst=CN6) / ICMPv6PacketTooBig(mtu=1400) / p6big, "forward",
     [IP(src=RFC6791, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=4, nexthopmtu=1380) / p4big], ignore=V4_FREE)
case("§5.2 parameter problem pointer 24 → 16 (Figure 6)", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ParamProblem(code=0, ptr=24) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=12, code=0, ptr=16) / p4], ignore=V4_FREE)
case("§5.2 parameter problem pointer 7 → 8 (Figure 6)", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ParamProblem(code=0, ptr=7) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=12, code=0, ptr=8) / p4], ignore=V4_FREE)
case("§5.2 parameter problem pointer 2 (Flow Label) has no counterpart", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ParamProblem(code=0, ptr=2) / p6, "drop", reason="icmp-untranslatable")
case("§5.2 unrecognized next header → protocol unreachable", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ParamProblem(code=1, ptr=6) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=2) / p4], ignore=V4_FREE)
case("§5.2 unrecognized option is dropped", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ParamProblem(code=2, ptr=42) / p6, "drop", reason="icmp-untranslatable")
case("§5.2 time exceeded code 1 6→4", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=1) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=1) / p4], ignore=V4_FREE)
p6echo = IPv6(src=CN6, dst=VM6, hlim=2) / ICMPv6EchoRequest(id=5, seq=6, data=b"abcd")
p4echo = IP(src=CN4, dst=POOL4, ttl=2, id=0) / ICMP(type=8, id=5, seq=6) / b"abcd"
case("§5.3 time exceeded quoting an echo request 6→4", "6to4", IPv6(src=ROUTER6, dst=CN6) / ICMPv6TimeExceeded() / p6echo, "forward",
     [IP(src=RFC6791, dst=CN4, ttl=63, id=0) / ICMP(type=11) / p4echo], ignore=V4_FREE)
case("§5.3 an error quoting an error is dropped", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6DestUnreach(code=0) / IPv6(src=CN6, dst=VM6) / ICMPv6DestUnreach(code=4) / p6, "drop", reason="icmp-error-inner")
case("§5.2 neighbour solicitation is dropped", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6ND_NS(tgt=CN6), "drop", reason="icmp-untranslatable")
case("§5.3 an error with a bad ICMPv6 checksum is dropped, not repaired", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6DestUnreach(code=4, cksum=0x1234) / p6, "drop", reason="icmp-checksum")

# --- RFC 4884 extensions (§4.2, §5.2 "ICMP Error Payload") ---
ext = bytes.fromhex("20000000") + bytes.fromhex("000801010a0b0c0d")  # version 2 header, one object (checksum left 0)
q4pad = raw(q4) + bytes(128 - len(raw(q4)))
inner6 = raw(q6)
q6pad = inner6 + bytes(max(128, (len(inner6) + 7) & ~7) - len(inner6))
case("§4.2 RFC 4884 extension: length attribute rescaled 4→6", "4to6",
     IP(src=ROUTER4, dst=POOL4) / ICMP(type=11, code=0, length=32) / Raw(q4pad + ext), "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=0, length=len(q6pad) // 8) / Raw(q6pad + ext)])

p4pad = raw(p4) + bytes(128 - len(raw(p4)))
p6pad = raw(p6) + bytes(128 - len(raw(p6)))
case("§5.2 RFC 4884 extension: length attribute rescaled 6→4", "6to4",
     IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0, length=16) / Raw(p6pad + ext), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0, length=32) / Raw(p4pad + ext)], ignore=V4_FREE)
jumbo = PAY * 32
q4cut = raw(IP(src=POOL4, dst=CN4, ttl=60, flags="DF") / UDP(sport=5000, dport=9) / jumbo[:3972])[:548]
q6cut = raw(IPv6(src=VM6, dst=CN6, hlim=60) / UDP(sport=5000, dport=9) / jumbo[:3972])[:40 + 528]
case("§4.2 fragmentation needed without MTU → RFC 1191 plateau below the quoted length", "4to6",
     IP(src=ROUTER4, dst=POOL4) / ICMP(type=3, code=4, nexthopmtu=0) / Raw(q4cut), "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6PacketTooBig(mtu=2022) / Raw(q6cut)], config={"ipv6Mtu": 9000, "ipv4Mtu": 9000})
qwhole = IP(src=POOL4, dst=CN4, id=0x99, ttl=60) / UDP(sport=5000, dport=9) / (PAY * 4)
qfrag = fragment(qwhole, fragsize=256)[0]
qup6 = raw(IPv6(src=VM6, dst=CN6) / UDP(sport=5000, dport=9) / (PAY * 4))[40:]
case("§4.3 a quoted IPv4 fragment gets a Fragment Header", "4to6", IP(src=CN4, dst=POOL4) / ICMP(type=11, code=1) / qfrag, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=1) / IPv6(src=VM6, dst=CN6, hlim=60) / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x99) / Raw(qup6[:256])])

# --- ICMP error sizes (RFC 1812 §4.3.2.3, RFC 4884 §4.1, RFC 7915 §4.2 §5.3) ---
def ext_with(n):  # an RFC 4884 §7 extension: version 2 header, one object of n data bytes, checksum over the whole
    e = bytearray(bytes.fromhex("20000000") + (4 + n).to_bytes(2, "big") + bytes([1, 1]) + (bytes(range(256)) * 8)[:n])
    e[2:4] = checksum(bytes(e)).to_bytes(2, "big")
    return bytes(e)
long6 = IPv6(src=CN6, dst=VM6, hlim=50) / UDP(sport=9, dport=5000) / (PAY * 8)      # 1048 bytes
long4 = raw(IP(src=CN4, dst=POOL4, ttl=50, id=0) / UDP(sport=9, dport=5000) / (PAY * 8))  # 1028 bytes
case("RFC 1812 §4.3.2.3 translated ICMPv4 error capped at 576 bytes", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0) / long6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0) / Raw(long4[:548])], ignore=V4_FREE)
case("RFC 1812 §4.3.2.3 icmp4ErrorMaxBytes 1500 keeps the whole quote", "6to4", IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0) / long6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0) / Raw(long4)], ignore=V4_FREE, config={"icmp4ErrorMaxBytes": 1500})
ext12 = ext_with(8)  # 16 bytes
mid6q = raw(IPv6(src=CN6, dst=VM6, hlim=50) / UDP(sport=9, dport=5000) / (PAY * 9)[:1032])      # 1080 bytes, 135 words of 8
mid4q = raw(IP(src=CN4, dst=POOL4, ttl=50, id=0) / UDP(sport=9, dport=5000) / (PAY * 9)[:1032])  # 1060 bytes
case("RFC 4884 §4.1 ICMPv4 length attribute fits 8 bits: quote cut to 255 words, extension whole", "6to4",
     IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0, length=135) / Raw(mid6q + ext12), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0, length=255) / Raw(mid4q[:1020] + ext12)], ignore=V4_FREE, config={"icmp4ErrorMaxBytes": 1500})
case("RFC 1812 §4.3.2.3 RFC 4884 576-byte cap cuts the quote, not the extension", "6to4",
     IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0, length=135) / Raw(mid6q + ext12), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0, length=133) / Raw(mid4q[:532] + ext12)], ignore=V4_FREE)
ext500 = ext_with(492)
case("RFC 4884 §4.1 extension that cannot fit beside 128 bytes of quote is dropped 6→4", "6to4",
     IPv6(src=VM6, dst=CN6) / ICMPv6TimeExceeded(code=0, length=16) / Raw(p6pad + ext500), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=11, code=0) / p4], ignore=V4_FREE)
ext252 = ext_with(244)
# Longer than quote and extension together, or tshark checks the quoted UDP over the extension's bytes.
q4long = raw(IP(src=POOL4, dst=CN4, ttl=60) / UDP(sport=5000, dport=9) / (PAY * 12))
q6long = raw(IPv6(src=VM6, dst=CN6, hlim=60) / UDP(sport=5000, dport=9) / (PAY * 12))
case("§4.2 RFC 4884 extension past 1280 once translated: quote cut, extension whole", "4to6",
     IP(src=ROUTER4, dst=POOL4) / ICMP(type=11, code=0, length=250) / Raw(q4long[:1000] + ext252), "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=0, length=122) / Raw(q6long[:976] + ext252)])
ext1200 = ext_with(1192)
case("§4.2 RFC 4884 extension that cannot fit beside 128 bytes of quote is dropped 4→6", "4to6",
     IP(src=ROUTER4, dst=POOL4) / ICMP(type=11, code=0, length=32) / Raw(q4pad + ext1200), "forward",
     [IPv6(src=ROUTER4_6, dst=VM6, hlim=63) / ICMPv6TimeExceeded(code=0) / q6])

# --- Fragments (§4.1 Fragment Header, §5.1.1) ---
whole4 = IP(src=CN4, dst=POOL4, id=0x4242, ttl=64) / UDP(sport=1000, dport=2000) / (PAY * 12)
upper6 = raw(IPv6(src=CN6, dst=VM6) / UDP(sport=1000, dport=2000) / (PAY * 12))[40:]
for i, f in enumerate(fragment(whole4, fragsize=600)):
    start = f.frag * 8
    piece = upper6[start:start + len(f.payload)]
    case(f"§4.1 IPv4 fragment {i} → IPv6 Fragment Header", "4to6", f, "forward",
         [IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=17, offset=f.frag, m=int(f.flags.MF), id=0x4242) / Raw(piece)])
upper4 = raw(IP(src=POOL4, dst=CN4) / UDP(sport=2000, dport=1000) / (PAY * 8))[20:]
upper6b = raw(IPv6(src=VM6, dst=CN6) / UDP(sport=2000, dport=1000) / (PAY * 8))[40:]
for i, (a, b) in enumerate([(0, 600), (600, len(upper6b))]):
    m = 1 if b < len(upper6b) else 0
    case(f"§5.1.1 IPv6 fragment {i} → IPv4 fragment", "6to4",
         IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(nh=17, offset=a // 8, m=m, id=0xabcd1234) / Raw(upper6b[a:b]), "forward",
         [IP(src=POOL4, dst=CN4, ttl=63, id=0x1234, flags="MF" if m else 0, frag=a // 8, proto=17) / Raw(upper4[a:b])], ignore=V4_CKSUM)
fx = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(offset=0, m=1, id=7) / IPv6ExtHdrDestOpt() / UDP() / PAY
case("§5.1.1 §5.4 extension header after the fragment header → administratively prohibited (erratum 3061)", "6to4", fx, "icmp",
     [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6DestUnreach(code=1) / Raw(raw(fx))], reason="fragment-extension-headers")
case("§5.1.1 extension header after the fragment header is dropped without untranslatable errors", "6to4", fx, "drop",
     reason="fragment-extension-headers", config={"sendUntranslatableErrors": False})
# RFC 6946 §4: an atomic fragment is a whole packet.
case("§5.2 RFC 6946 §4 ICMPv6 echo request in an atomic fragment → ICMP echo request", "6to4",
     IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(offset=0, m=0, id=0x55) / ICMPv6EchoRequest(id=9, seq=3, data=PAY), "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=8, id=9, seq=3) / PAY], ignore=V4_FREE)
case("§5.2 RFC 6946 §4 ICMPv6 error in an atomic fragment → ICMP error", "6to4",
     IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(offset=0, m=0, id=0x56) / ICMPv6DestUnreach(code=4) / p6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=3) / p4], ignore=V4_FREE)
# RFC 4443 §2.4(e): an ICMPv6 error is never answered with one, whatever the reason it is not translated.
err6 = ICMPv6DestUnreach(code=4) / p6
case("RFC 4443 §2.4(e) ICMPv6 error with hop limit 1 is dropped, not answered", "6to4", IPv6(src=VM6, dst=CN6, hlim=1) / err6, "drop", reason="ttl-expired")
case("RFC 4443 §2.4(e) ICMPv6 error behind a routing header with segments left is dropped, not answered", "6to4",
     IPv6(src=VM6, dst=CN6) / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=1) / err6, "drop", reason="segments-left")
case("RFC 4443 §2.4(e) fragmented ICMPv6 error is dropped, not answered", "6to4",
     IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(offset=0, m=1, id=8) / err6, "drop", reason="icmp-fragmented")
case("RFC 4443 §2.4(e) ICMPv6 error behind headers after the fragment header is dropped, not answered", "6to4",
     IPv6(src=VM6, dst=CN6) / IPv6ExtHdrFragment(offset=0, m=1, id=9) / IPv6ExtHdrDestOpt() / err6, "drop", reason="fragment-extension-headers")
# RFC 7915 §4.1: ICMPv4 errors from RFC 1812 §5.3.7 "illegal" sources are translated.
case("§4.1 ICMPv4 error from 127.0.0.1 is translated", "4to6", IP(src="127.0.0.1", dst=POOL4) / ICMP(type=3, code=1) / q4, "forward",
     [IPv6(src="2001:db8:64::127.0.0.1", dst=VM6, hlim=63) / ICMPv6DestUnreach(code=0) / q6])
fi = fragment(IP(src=CN4, dst=POOL4, id=9) / ICMP(type=8) / (PAY * 8), fragsize=256)[0]
case("§4.2 fragmented ICMPv4 → administratively prohibited", "4to6", fi, "icmp",
     [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=3, code=13) / Raw(raw(fi)[:548])], reason="icmp-fragmented", ignore=V4_FREE)

# --- DF and MTU (§4.1, §5.1) ---
big4 = IP(src=CN4, dst=POOL4, id=0x777, flags=0) / UDP(sport=1000, dport=2000) / (PAY * 11)[:1372]  # 1400 bytes
big6 = raw(IPv6(src=CN6, dst=VM6) / UDP(sport=1000, dport=2000) / (PAY * 11)[:1372])[40:]
case("§4.1 no DF and bigger than lowest-ipv6-mtu → IPv6 fragments of 1280", "4to6", big4, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x777) / Raw(big6[:1232]),
      IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=17, offset=1232 // 8, m=0, id=0x777) / Raw(big6[1232:])])
# The same for TCP (its checksum in the first fragment follows the addresses), for an echo request
# (rewritten to ICMPv6 before it is cut) and for UDP without a checksum (§4.5 option 2: computed
# over the whole datagram before it is cut).
big4t = IP(src=CN4, dst=POOL4, id=0x778, flags=0) / TCP(sport=1000, dport=2000, flags="A", seq=1) / (PAY * 11)[:1360]
big6t = raw(IPv6(src=CN6, dst=VM6) / TCP(sport=1000, dport=2000, flags="A", seq=1) / (PAY * 11)[:1360])[40:]
case("§4.1 no DF, TCP bigger than lowest-ipv6-mtu → IPv6 fragments, the TCP checksum updated in the first", "4to6", big4t, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=0x778) / Raw(big6t[:1232]),
      IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=6, offset=1232 // 8, m=0, id=0x778) / Raw(big6t[1232:])])
big4e = IP(src=CN4, dst=POOL4, id=0x779, flags=0) / ICMP(type=8, id=5, seq=6) / (PAY * 11)[:1372]
big6e = raw(IPv6(src=CN6, dst=VM6) / ICMPv6EchoRequest(id=5, seq=6, data=(PAY * 11)[:1372]))[40:]
case("§4.1 §4.2 no DF, echo request bigger than lowest-ipv6-mtu → ICMPv6 echo request in IPv6 fragments", "4to6", big4e, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=58, offset=0, m=1, id=0x779) / Raw(big6e[:1232]),
      IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=58, offset=1232 // 8, m=0, id=0x779) / Raw(big6e[1232:])])
big4z = IP(src=CN4, dst=POOL4, id=0x77a, flags=0) / UDP(sport=1000, dport=2000, chksum=0) / (PAY * 11)[:1372]
case("§4.1 §4.5 no DF, UDP without checksum bigger than lowest-ipv6-mtu → checksum computed, then IPv6 fragments", "4to6", big4z, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=17, offset=0, m=1, id=0x77a) / Raw(big6[:1232]),
      IPv6(src=CN6, dst=VM6, hlim=63) / IPv6ExtHdrFragment(nh=17, offset=1232 // 8, m=0, id=0x77a) / Raw(big6[1232:])])
case("§4.1 no DF and lowest-ipv6-mtu 1500 → one packet, no Fragment Header", "4to6", big4, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63, nh=17) / Raw(big6)], config={"lowestIpv6Mtu": 1500})
small4 = IP(src=CN4, dst=POOL4, flags=0) / UDP(sport=1, dport=2) / PAY
case("§4 small packet without DF gets no Fragment Header", "4to6", small4, "forward", [IPv6(src=CN6, dst=VM6, hlim=63) / UDP(sport=1, dport=2) / PAY])
df4 = IP(src=CN4, dst=POOL4, flags="DF") / UDP(sport=1000, dport=2000) / (PAY * 12)[:1462]  # 1490 bytes → 1510 in IPv6
case("§4.1 DF and too big for the IPv6 next hop → fragmentation needed", "4to6", df4, "icmp",
     [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=3, code=4, nexthopmtu=1480) / Raw(raw(df4)[:548])], reason="packet-too-big", ignore=V4_FREE)
df4ok = IP(src=CN4, dst=POOL4, flags="DF") / UDP(sport=1000, dport=2000) / (PAY * 12)[:1452]  # 1480 → 1500
case("§4.1 DF and fits the IPv6 next hop → one packet", "4to6", df4ok, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / UDP(sport=1000, dport=2000) / (PAY * 12)[:1452]])
d1280 = (PAY * 10)[:1232]
case("§5.1 1260-byte IPv4 result → DF clear", "6to4", IPv6(src=VM6, dst=CN6) / UDP(sport=3, dport=4) / d1280, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0, flags=0) / UDP(sport=3, dport=4) / d1280], ignore=V4_FREE)
d1281 = (PAY * 10)[:1233]
case("§5.1 1261-byte IPv4 result → DF set", "6to4", IPv6(src=VM6, dst=CN6) / UDP(sport=3, dport=4) / d1281, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0, flags="DF") / UDP(sport=3, dport=4) / d1281], ignore=V4_FREE)
big6in = IPv6(src=VM6, dst=CN6) / UDP(sport=3, dport=4) / (PAY * 12)[:1452]  # 1500 → 1480 in IPv4
case("§5.1 DF result bigger than the IPv4 next hop → packet too big (MTU + 20)", "6to4", big6in, "icmp",
     [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6PacketTooBig(mtu=1420) / Raw(raw(big6in)[:1232])], reason="packet-too-big", config={"ipv4Mtu": 1400})
mid6 = IPv6(src=VM6, dst=CN6) / UDP(sport=3, dport=4) / (PAY * 8)[:952]  # 1000 → 980 in IPv4, DF clear
mid4 = raw(IP(src=POOL4, dst=CN4) / UDP(sport=3, dport=4) / (PAY * 8)[:952])[20:]
case("§5.1 RFC 791 §2.3 DF-clear result bigger than the IPv4 next hop → IPv4 fragments", "6to4", mid6, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0, flags="MF", frag=0, proto=17) / Raw(mid4[:552]),
      IP(src=POOL4, dst=CN4, ttl=63, id=0, flags=0, frag=552 // 8, proto=17) / Raw(mid4[552:])], ignore=V4_FREE, config={"ipv4Mtu": 576})

# --- TTL / hop limit (§4.1, §5.1) ---
t4 = IP(src=CN4, dst=POOL4, ttl=1) / UDP(sport=1, dport=2) / b"ttl"
case("§4.1 TTL 1 → time exceeded", "4to6", t4, "icmp", [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=11, code=0) / Raw(raw(t4))], reason="ttl-expired", ignore=V4_FREE)
t6 = IPv6(src=VM6, dst=CN6, hlim=1) / UDP(sport=1, dport=2) / b"hop"
case("§5.1 hop limit 1 → time exceeded", "6to4", t6, "icmp", [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6TimeExceeded(code=0) / Raw(raw(t6))], reason="ttl-expired")
case("§4.1 time exceeded is not sent about an ICMP error", "4to6", IP(src=ROUTER4, dst=POOL4, ttl=1) / ICMP(type=3, code=1) / q4, "drop", reason="ttl-expired")

# --- UDP zero checksum (§4.5) ---
z4 = IP(src=CN4, dst=POOL4) / UDP(sport=7, dport=8, chksum=0) / PAY
case("§4.5 UDP zero checksum → computed for IPv6", "4to6", z4, "forward", [IPv6(src=CN6, dst=VM6, hlim=63) / UDP(sport=7, dport=8) / PAY])
case("§4.5 UDP zero checksum, configured to drop → administratively prohibited", "4to6", z4, "icmp",
     [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=3, code=13) / Raw(raw(z4))], reason="udp-zero-checksum", ignore=V4_FREE, config={"udpZeroChecksum": "drop"})
zf = fragment(IP(src=CN4, dst=POOL4, id=3) / UDP(sport=7, dport=8, chksum=0) / (PAY * 8), fragsize=512)
case("§4.5 fragmented UDP with zero checksum → dropped, administratively prohibited", "4to6", zf[0], "icmp",
     [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=3, code=13) / Raw(raw(zf[0])[:548])], reason="udp-zero-checksum-fragment", ignore=V4_FREE)

# --- Untranslatable and stripped headers (§4.1, §5.1, §4.4, §5.4) ---
lsrr = IP(src=CN4, dst=POOL4, options=[IPOption_LSRR(routers=["203.0.113.5"], pointer=4)]) / UDP(sport=1, dport=2) / b"route"
case("§4.1 unexpired source route → source route failed", "4to6", lsrr, "icmp",
     [IP(src=SELF4, dst=CN4, tos=0xc0, ttl=64, id=0) / ICMP(type=3, code=5) / Raw(raw(lsrr))], reason="source-route", ignore=V4_FREE)
# scapy would checksum against the last route entry; once the route is spent the destination is final (RFC 791 §3.1).
ck = IP(raw(IP(src=CN4, dst=POOL4) / UDP(sport=1, dport=2) / b"route"))[UDP].chksum
lsrr_done = IP(src=CN4, dst=POOL4, options=[IPOption_LSRR(routers=["203.0.113.5"], pointer=8)]) / UDP(sport=1, dport=2, chksum=ck) / b"route"
case("§4.1 expired source route and other options are ignored", "4to6", lsrr_done, "forward",
     [IPv6(src=CN6, dst=VM6, hlim=63) / UDP(sport=1, dport=2) / b"route"])
rh = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=1, nh=253) / b"rh"  # no checksum: tshark checks quoted ones against the wrong destination
case("§5.1 routing header with segments left → parameter problem at the field", "6to4", rh, "icmp",
     [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6ParamProblem(code=0, ptr=43) / Raw(raw(rh))], reason="segments-left")
rh0 = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=0) / UDP(sport=1, dport=2) / b"rh"
case("§5.1 routing header with segments left 0 is removed", "6to4", rh0, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / UDP(sport=1, dport=2) / b"rh"], ignore=V4_FREE)
rh2 = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=1) / IPv6ExtHdrRouting(addresses=["2001:db8::6"], segleft=0, nh=253) / b"rh"
case("§5.1 two routing headers, the first with segments left → parameter problem at its field", "6to4", rh2, "icmp",
     [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6ParamProblem(code=0, ptr=43) / Raw(raw(rh2))], reason="segments-left")
rh2b = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrRouting(addresses=["2001:db8::5"], segleft=0) / IPv6ExtHdrRouting(addresses=["2001:db8::6"], segleft=1, nh=253) / b"rh"
case("§5.1 two routing headers, the second with segments left → parameter problem at its field", "6to4", rh2b, "icmp",
     [IPv6(src=CN6, dst=VM6, hlim=64) / ICMPv6ParamProblem(code=0, ptr=67) / Raw(raw(rh2b))], reason="segments-left")
# RFC 6275 §6.3, RFC 8200 §8.1: a mobile node's checksums cover its home address; scapy computes them so.
# §5.1 translates the Source Address (the care-of address, VM6 here) and drops the options header.
HOME6 = "2001:db8:1::99"
hao = IPv6ExtHdrDestOpt(options=[HAO(hoa=HOME6)])
case("§5.1 §5.5 Home Address option: UDP checksum follows the home address", "6to4", IPv6(src=VM6, dst=CN6) / hao / UDP(sport=9, dport=1234) / PAY,
     "forward", [IP(src=POOL4, dst=CN4, ttl=63, id=0) / UDP(sport=9, dport=1234) / PAY], ignore=V4_FREE)
case("§5.1 §5.5 Home Address option: TCP SYN checksum follows the home address", "6to4", IPv6(src=VM6, dst=CN6) / hao / TCP(**tcp),
     "forward", [IP(src=POOL4, dst=CN4, ttl=63, id=0) / TCP(**tcp)], ignore=V4_FREE)
case("§5.2 Home Address option: ICMPv6 echo request checksum follows the home address", "6to4", IPv6(src=VM6, dst=CN6) / hao / ICMPv6EchoRequest(id=9, seq=3, data=PAY),
     "forward", [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=8, id=9, seq=3) / PAY], ignore=V4_FREE)
case("§5.2 Home Address option: an ICMPv6 error's checksum is verified against the home address", "6to4", IPv6(src=VM6, dst=CN6) / hao / ICMPv6DestUnreach(code=4) / p6,
     "forward", [IP(src=POOL4, dst=CN4, ttl=63, id=0) / ICMP(type=3, code=3) / p4], ignore=V4_FREE)
hbh = IPv6(src=VM6, dst=CN6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2) / b"hbh"
case("§5.1 hop-by-hop and destination options headers are removed", "6to4", hbh, "forward",
     [IP(src=POOL4, dst=CN4, ttl=63, id=0) / UDP(sport=1, dport=2) / b"hbh"], ignore=V4_FREE)
un6 = IPv6(src="2001:db8:ffff::2", dst=CN6) / UDP(sport=1, dport=2) / b"who"
case("§5.4 unmapped IPv6 source → administratively prohibited", "6to4", un6, "icmp",
     [IPv6(src=CN6, dst="2001:db8:ffff::2", hlim=64) / ICMPv6DestUnreach(code=1) / Raw(raw(un6))], reason="unmapped-source")
case("§4.6 unmapped IPv4 destination is not translated", "4to6", IP(src=CN4, dst="203.0.114.1") / UDP(sport=1, dport=2) / b"x", "drop", reason="unmapped-destination", config={"noPrefix": True})
case("§5 unmapped IPv6 destination is not translated", "6to4", IPv6(src=VM6, dst="2001:db8:ffff::3") / UDP(sport=1, dport=2) / b"x", "drop", reason="unmapped-destination")

# --- EAM vs RFC 6052 (RFC 7757 §3.3), EAM prefixes (RFC 7757 §3.2) ---
case("RFC 7757 §3.3 EAM wins over the RFC 6052 prefix, 4→6", "4to6", IP(src=CN4, dst="198.51.100.20") / UDP(sport=1, dport=2) / b"eam", "forward",
     [IPv6(src=CN6, dst="2001:db8:2::20", hlim=63) / UDP(sport=1, dport=2) / b"eam"])
case("RFC 7757 §3.3 EAM wins over the RFC 6052 prefix, 6→4", "6to4", IPv6(src=VM6, dst="2001:db8:64::198.51.100.30") / UDP(sport=1, dport=2) / b"eam", "forward",
     [IP(src=POOL4, dst="192.0.2.30", ttl=63, id=0) / UDP(sport=1, dport=2) / b"eam"], ignore=V4_FREE)
case("RFC 7757 §3.2 EAM prefix entry /24 ↔ /120, 4→6", "4to6", IP(src="203.0.113.77", dst=POOL4) / UDP(sport=1, dport=2) / b"pfx", "forward",
     [IPv6(src="2001:db8:ea::4d", dst=VM6, hlim=63) / UDP(sport=1, dport=2) / b"pfx"])
case("RFC 7757 §3.2 EAM prefix entry /24 ↔ /120, 6→4", "6to4", IPv6(src=VM6, dst="2001:db8:ea::4e") / UDP(sport=1, dport=2) / b"pfx", "forward",
     [IP(src=POOL4, dst="203.0.113.78", ttl=63, id=0) / UDP(sport=1, dport=2) / b"pfx"], ignore=V4_FREE)

# --- EAM hairpinning (RFC 7757 §4): VM6 (EAM 192.0.2.10) to the RFC 6052 form of another EAM's IPv4 address ---
HP6 = "2001:db8:64::198.51.100.20"   # 198.51.100.20 is the EAM of 2001:db8:2::20
case("RFC 7757 §4 EAM hairpinning: UDP comes back as IPv6 to the EAM's IPv6 address, source in RFC 6052 form", "6to4",
     IPv6(src=VM6, dst=HP6, hlim=64) / UDP(sport=1, dport=2) / PAY, "forward",
     [IPv6(src="2001:db8:64::192.0.2.10", dst="2001:db8:2::20", hlim=62) / UDP(sport=1, dport=2) / PAY])
case("RFC 7757 §4 EAM hairpinning: ICMPv6 echo request comes back as ICMPv6", "6to4",
     IPv6(src=VM6, dst=HP6, hlim=64) / ICMPv6EchoRequest(id=4, seq=5, data=b"hairpin"), "forward",
     [IPv6(src="2001:db8:64::192.0.2.10", dst="2001:db8:2::20", hlim=62) / ICMPv6EchoRequest(id=4, seq=5, data=b"hairpin")])
case("RFC 7757 §4 the reply hairpins the same way back", "6to4",
     IPv6(src="2001:db8:2::20", dst="2001:db8:64::192.0.2.10", hlim=64) / UDP(sport=2, dport=1) / PAY, "forward",
     [IPv6(src=HP6, dst=VM6, hlim=62) / UDP(sport=2, dport=1) / PAY])
case("RFC 7757 §4 EAM hairpinning off: the IPv4 form goes out", "6to4",
     IPv6(src=VM6, dst=HP6, hlim=64) / UDP(sport=1, dport=2) / PAY, "forward",
     [IP(src=POOL4, dst="198.51.100.20", ttl=63, id=0) / UDP(sport=1, dport=2) / PAY], ignore=V4_FREE, config={"eamHairpinning": False})
case("RFC 7757 §4 EAM hairpinning with hop limit 2 is dropped (no ICMPv4 error to an IPv6 node)", "6to4",
     IPv6(src=VM6, dst=HP6, hlim=2) / UDP(sport=1, dport=2) / PAY, "drop", reason="ttl-expired")

# --- Every RFC 6052 prefix length: the examples of RFC 6052 §2.4 for 192.0.2.33 ---
for prefix, length, embedded in [("2001:db8::", 32, "2001:db8:c000:221::"), ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
                                 ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"), ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
                                 ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"), ("2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33")]:
    cfg = {"prefix": prefix, "length": length}
    case(f"RFC 6052 §2.2 /{length} 4→6", "4to6", IP(src="192.0.2.33", dst=POOL4) / UDP(sport=1, dport=2) / b"len", "forward",
         [IPv6(src=embedded, dst=VM6, hlim=63) / UDP(sport=1, dport=2) / b"len"], config=cfg)
    case(f"RFC 6052 §2.2 /{length} 6→4", "6to4", IPv6(src=VM6, dst=embedded) / UDP(sport=1, dport=2) / b"len", "forward",
         [IP(src=POOL4, dst="192.0.2.33", ttl=63, id=0) / UDP(sport=1, dport=2) / b"len"], ignore=V4_FREE, config=cfg)


# --- IPv4-translatable destinations (RFC 6052 §2, RFC 6144): 192.0.2.32/27 are IPv6 nodes at the prefix ---
import ipaddress
def embed(prefix, length, v4):  # RFC 6052 §2.2, written out here so the test does not use our codec
    p = bytearray(ipaddress.IPv6Address(prefix).packed)
    a = ipaddress.IPv4Address(v4).packed
    at = length // 8
    for b in a:
        if at == 8:
            at += 1  # bits 64..71 (the "u" octet) stay zero
        p[at] = b
        at += 1
    for i in range(at, 16):
        p[i] = 0
    return str(ipaddress.IPv6Address(bytes(p)))
for prefix, length, embedded in [("2001:db8::", 32, "2001:db8:c000:221::"), ("2001:db8:100::", 40, "2001:db8:1c0:2:21::"),
                                 ("2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"), ("2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"),
                                 ("2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"), ("2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33")]:
    assert embed(prefix, length, "192.0.2.33") == str(ipaddress.IPv6Address(embedded))  # RFC 6052 §2.4's own examples
    cfg = {"prefix": prefix, "length": length, "translatable": ["192.0.2.32/27"], "forwarder": True}
    cn = embed(prefix, length, CN4)
    case(f"RFC 6052 §2 /{length}: 4→6 to an IPv4-translatable destination", "4to6", IP(src=CN4, dst="192.0.2.33", ttl=64) / UDP(sport=7, dport=8) / b"pool6",
         "forward", [IPv6(src=cn, dst=embedded, hlim=63) / UDP(sport=7, dport=8) / b"pool6"], config=cfg)
    case(f"RFC 6052 §2 /{length}: the reply 6→4 from the IPv4-translatable address", "6to4", IPv6(src=embedded, dst=cn, hlim=64) / UDP(sport=8, dport=7) / b"reply",
         "forward", [IP(src="192.0.2.33", dst=CN4, ttl=63, id=0) / UDP(sport=8, dport=7) / b"reply"], ignore=V4_FREE, config=cfg)
POOL6 = {"translatable": ["192.0.2.0/24"], "forwarder": True}
case("RFC 7757 §3.3: an EAM wins over an IPv4-translatable prefix that covers it, 4→6", "4to6", IP(src=CN4, dst=POOL4) / UDP(sport=1, dport=2) / b"eam",
     "forward", [IPv6(src=CN6, dst=VM6, hlim=63) / UDP(sport=1, dport=2) / b"eam"], config=POOL6)
case("RFC 6052 §2: an IPv4-translatable destination beside the EAMs, 4→6", "4to6", IP(src=CN4, dst="192.0.2.77") / UDP(sport=1, dport=2) / b"t",
     "forward", [IPv6(src=CN6, dst="2001:db8:64::192.0.2.77", hlim=63) / UDP(sport=1, dport=2) / b"t"], config=POOL6)
case("RFC 6052 §2: a destination outside the IPv4-translatable list is not translated", "4to6", IP(src=CN4, dst="192.0.2.77") / UDP(sport=1, dport=2) / b"x",
     "drop", reason="unmapped-destination", config={"translatable": ["192.0.2.32/27"], "forwarder": True})
case("RFC 6052 §2: without a list, only EAM destinations are translated", "4to6", IP(src=CN4, dst="192.0.2.33") / UDP(sport=1, dport=2) / b"x",
     "drop", reason="unmapped-destination", config={"forwarder": True})

# --- EAM with an IPv6 suffix longer than the IPv4 suffix (RFC 7757 §3.2): 203.0.113.0/24 ↔ 2001:db8:ea::/72 ---
def eam_long(v4):  # the 8 suffix bits right after the 72-bit prefix, the rest zero
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:ea::")) | ((int(ipaddress.IPv4Address(v4)) & 0xff) << 48)))
LONG = {"eamLong": True}
case("RFC 7757 §3.2 EAM /24 ↔ /72, 4→6", "4to6", IP(src="203.0.113.77", dst=POOL4) / UDP(sport=1, dport=2) / b"pfx", "forward",
     [IPv6(src=eam_long("203.0.113.77"), dst=VM6, hlim=63) / UDP(sport=1, dport=2) / b"pfx"], config=LONG)
case("RFC 7757 §3.2 EAM /24 ↔ /72, 6→4", "6to4", IPv6(src=VM6, dst=eam_long("203.0.113.78")) / UDP(sport=1, dport=2) / b"pfx", "forward",
     [IP(src=POOL4, dst="203.0.113.78", ttl=63, id=0) / UDP(sport=1, dport=2) / b"pfx"], ignore=V4_FREE, config=LONG)
case("RFC 7757 §3.2 EAM /24 ↔ /72, 6→4: the IPv6 suffix bits past the IPv4 suffix are ignored", "6to4",
     IPv6(src=str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(eam_long("203.0.113.79"))) | 0xabcdef)), dst=CN6) / UDP(sport=1, dport=2) / b"pfx", "forward",
     [IP(src="203.0.113.79", dst=CN4, ttl=63, id=0) / UDP(sport=1, dport=2) / b"pfx"], ignore=V4_FREE, config=LONG)

CASES_JSON = json.dumps(cases).encode()
if __name__ == "__main__" and len(sys.argv) > 1:
    sys.stdout.write(CASES_JSON.decode())
