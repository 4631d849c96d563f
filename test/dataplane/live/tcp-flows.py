# TCP flows for the threaded worker's live test, run with /usr/bin/python3 inside a namespace.
#   listen ADDRESS PORT N TIMEOUT_S  - prints "ready", accepts N connections, reads each to its end,
#                                      then prints one JSON line {"bytes": [...], "intact": [...]}
#   capture IF TIMEOUT_S             - prints "ready", then "SPORT IPID" for every IPv4 TCP frame
#                                      received on IF carrying records, with a 32 MiB socket buffer
#                                      (a burst of 16 connections overruns the default); ends on
#                                      SIGTERM or after TIMEOUT_S
#   send SRC DST PORT N BYTES        - N connections at once from SRC, each sending BYTES bytes of
#                                      16-byte records b"m46tcp" + flow (2 digits) + record number (8 digits)
import json, socket, sys, threading

def record(flow, i):
    return b"m46tcp%02d%08d" % (flow, i)

def listen(address, port, n, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    s.listen(n)
    s.settimeout(timeout)
    print("ready", flush=True)
    got = []
    def read(c):
        data = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            data += b
        c.close()
        got.append(bytes(data))
    readers = []
    for _ in range(n):
        c, _ = s.accept()
        t = threading.Thread(target=read, args=(c,))
        t.start()
        readers.append(t)
    for t in readers:
        t.join(timeout)
    intact = []
    for data in got:
        flow = int(data[6:8]) if len(data) >= 16 else -1
        intact.append(data == b"".join(record(flow, i) for i in range(len(data) // 16)))
    print(json.dumps({"bytes": [len(d) for d in got], "intact": intact}), flush=True)

def send(src, dst, port, n, size):
    def one(flow):
        c = socket.create_connection((dst, port), timeout=30, source_address=(src, 0))
        c.sendall(b"".join(record(flow, i) for i in range(size // 16)))
        c.close()
    ts = [threading.Thread(target=one, args=(f,)) for f in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

def capture(ifname, timeout):
    import signal, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (root)
    s.bind((ifname, 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING or frame[23] != 6 or b"m46tcp" not in frame:
            continue
        ihl = (frame[14] & 15) * 4
        print("%d %d" % ((frame[14 + ihl] << 8) | frame[15 + ihl], (frame[18] << 8) | frame[19]), flush=True)

cmd = sys.argv[1]
if cmd == "listen":
    listen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
elif cmd == "capture":
    capture(sys.argv[2], float(sys.argv[3]))
elif cmd == "send":
    send(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
