#!/usr/bin/env python3
"""One-way latency probe for bench/latency.ts, UDP with kernel receive timestamps.

  latency.py recv FAMILY PORT COUNT TIMEOUT_S   prints "ready", then one JSON line
  latency.py send FAMILY ADDRESS PORT COUNT RATE_PPS

The sender writes a sequence number and CLOCK_REALTIME (ns) into each datagram just before
sendto(2); the receiver takes the kernel's receive time (SO_TIMESTAMPNS, the same clock), so the
receiver's scheduling is not in the figure. Sender and receiver share the host's clock: they are
namespaces of one machine.
"""
import json
import socket
import struct
import sys
import time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def family_of(text):
    return socket.AF_INET6 if text == "6" else socket.AF_INET


def recv(family, port, count, timeout_s):
    s = socket.socket(family_of(family), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("::" if family == "6" else "0.0.0.0", port))
    s.settimeout(timeout_s)
    print("ready", flush=True)
    lat, seqs = [], set()
    try:
        while len(lat) < count:
            data, anc, _flags, _addr = s.recvmsg(64, socket.CMSG_SPACE(16))
            if len(data) < 12:
                continue
            seq, sent = struct.unpack("!IQ", data[:12])
            rx = None
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    rx = sec * 1_000_000_000 + nsec
            if rx is None or seq in seqs:
                continue
            seqs.add(seq)
            lat.append(rx - sent)
    except socket.timeout:
        pass
    print(json.dumps({"received": len(lat), "latencyNs": lat}), flush=True)


def send(family, address, port, count, rate):
    s = socket.socket(family_of(family), socket.SOCK_DGRAM)
    interval = 1.0 / rate
    start = time.monotonic()
    for seq in range(count):
        due = start + seq * interval
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        s.sendto(struct.pack("!IQ", seq, time.time_ns()) + b"m" * 6, (address, port))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "recv":
        recv(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "send":
        send(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit(f"unknown mode {mode}")
