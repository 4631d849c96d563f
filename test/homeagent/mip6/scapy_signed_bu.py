# A Binding Update built by scapy and signed in Python (hmac/hashlib), so that neither the
# packet layout nor the RFC 4285 §5.1 authenticator comes from our TypeScript codec.
# Loaded by the tests through scapyBuild's `imports`, after `from scapy.all import *`.
import hashlib
import hmac
import socket


def signed_bu(coa, ha, hoa, seq, mhtime, spi, key_hex, timestamp, flags="AH", ipv4_coa=None, dest_opt_type=None):
    opts = []
    if ipv4_coa is not None:
        # RFC 5555 §3.1.3, type 32 (IANA), which scapy does not know: reserved 16 bits + address.
        # First in the list, so it starts at MH offset 12, the 4n its alignment asks for.
        opts.append(MIP6OptUnknown(otype=32, odata=b"\0\0" + socket.inet_aton(ipv4_coa)))
    opts.append(MIP6OptReplayProtection(timestamp=timestamp))
    auth = MIP6OptMsgAuth(subtype=1, mspi=spi, authdata=b"\0" * 12)
    opts.append(auth)

    def build():
        # dest_opt_type: one more option of that type (2 bytes of data) before the Home Address option.
        extra = [] if dest_opt_type is None else [HBHOptUnknown(otype=dest_opt_type, optdata=b"\0\0")]
        return IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=extra + [HAO(hoa=hoa)]) / MIP6MH_BU(seq=seq, flags=flags, mhtime=mhtime, options=opts)

    raw = bytes(build())
    mh_at = 40 + (raw[41] + 1) * 8
    mh = bytearray(raw[mh_at:])
    marker = bytes([9, 17, 1]) + spi.to_bytes(4, "big")
    auth_at = mh.rindex(marker)
    covered = bytearray(mh[: auth_at + 7])
    covered[4:6] = b"\0\0"
    data = socket.inet_pton(socket.AF_INET6, coa) + socket.inet_pton(socket.AF_INET6, hoa) + bytes(covered)
    auth.authdata = hmac.new(bytes.fromhex(key_hex), data, hashlib.sha1).digest()[:12]
    if dest_opt_type is None:
        return build()
    # scapy takes the Home Address as the checksum's source only when it is the header's first
    # option; computed here as RFC 6275 §6.1.1 says (pseudo-header from the home address).
    pkt = build()
    pkt[MIP6MH_BU].cksum = 0
    raw = bytearray(bytes(pkt))
    mh_at = 40 + (raw[41] + 1) * 8
    mh = bytes(raw[mh_at:])
    pseudo = socket.inet_pton(socket.AF_INET6, hoa) + socket.inet_pton(socket.AF_INET6, ha) + len(mh).to_bytes(4, "big") + b"\0\0\0\x87"
    data = pseudo + mh + (b"\0" if len(mh) % 2 else b"")
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    raw[mh_at + 4:mh_at + 6] = (~total & 0xFFFF).to_bytes(2, "big")
    return IPv6(bytes(raw))
