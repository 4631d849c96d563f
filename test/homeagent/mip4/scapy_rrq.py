# Builds MIPv4 Registration Requests with scapy, independently of our codec: IPv4/UDP/MobileIP
# from scapy.layers.mobileip, the identification as an NTP timestamp computed here, and the
# Mobile-Home Authentication Extension (RFC 5944 §3.5.2) with Python's hmac.
# Reads a JSON list on stdin; for each item prints one line: a request to build becomes the hex of
# an IPv4 packet; {"verify": hex UDP payload, ...} checks the authenticator of a message we made
# (a reply) and prints "ok" or "bad".
import hashlib
import hmac
import json
import logging
import struct
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, UDP, Raw  # noqa: E402
from scapy.layers.mobileip import MobileIP, MobileIPRRQ  # noqa: E402

NTP_EPOCH_OFFSET = 2208988800  # 1900-01-01 to 1970-01-01 in seconds


def ntp(unix_ms, fraction_low):
    seconds = unix_ms // 1000 + NTP_EPOCH_OFFSET
    fraction = (unix_ms % 1000) * (1 << 32) // 1000 + fraction_low
    return ((seconds & 0xFFFFFFFF) << 32) | fraction


def verify(r):
    msg = bytes.fromhex(r["verify"])
    digest = {"hmac-md5": hashlib.md5, "hmac-sha256": hashlib.sha256}[r["algorithm"]]
    at = 20 if msg[0] == 3 else 24  # after the fixed part: the reply's is 20 bytes, the request's 24
    while at < len(msg) and msg[at] != 32:
        at += 2 + msg[at + 1]
    if at + 6 > len(msg) or msg[at + 1] != 4 + digest().digest_size or struct.unpack("!I", msg[at + 2:at + 6])[0] != r["spi"]:
        return "bad"
    want = hmac.new(bytes.fromhex(r["keyHex"]), msg[:at + 6], digest).digest()
    return "ok" if hmac.compare_digest(want, msg[at + 6:at + 6 + len(want)]) else "bad"


for r in json.loads(sys.stdin.read()):
    if "verify" in r:
        print(verify(r))
        continue
    ident = int(r["identification"]) if "identification" in r else ntp(r["unixMs"], r.get("fractionLow", 12345))
    rrq = MobileIP(type=1) / MobileIPRRQ(flags=r["flags"], lifetime=r["lifetime"], homeaddr=r["homeaddr"],
                                         haaddr=r["haaddr"], coaddr=r["coaddr"], id=ident)
    body = bytes(rrq)
    digest = {"hmac-md5": hashlib.md5, "hmac-sha256": hashlib.sha256}[r["algorithm"]]
    head = struct.pack("!BBI", 32, 4 + digest().digest_size, r["spi"])
    auth = hmac.new(bytes.fromhex(r["keyHex"]), body + head, digest).digest()
    pkt = IP(src=r["src"], dst=r["haaddr"]) / UDP(sport=r["sport"], dport=434) / Raw(body + head + auth)
    print(bytes(pkt).hex())
