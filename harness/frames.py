# Frame tools for the live tests, run with /usr/bin/python3 inside a network namespace.
#   capture IF MARKER_HEX MAX TIMEOUT_S  - prints "ready", then one hex frame per line for every
#                                          frame received on IF that contains MARKER; stops after
#                                          MAX frames or TIMEOUT_S seconds
#   send IF COUNT INTERVAL_S             - sends the hex frames read from stdin (one a line), the
#                                          whole list COUNT times, INTERVAL_S apart
#   stream IF INTERVAL_S                 - sends the hex frames read from stdin one by one,
#                                          INTERVAL_S apart
#   udp-listen FAMILY ADDRESS PORT MAX TIMEOUT_S - a real UDP socket; prints "ready", then one JSON
#                                          line {"src","port","data"} per datagram
#   udp-send FAMILY SRC DST PORT COUNT INTERVAL_S DATA - sends DATA (text) COUNT times from a real socket
import json, socket, sys, time

def capture(ifname, marker_hex, limit, timeout):
    marker = bytes.fromhex(marker_hex)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    # A burst must not overrun the socket's queue while this loop prints: 8 MiB, past
    # net.core.rmem_max (SO_RCVBUFFORCE, 33 on Linux, socket(7); we run as root).
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 8 << 20)
    s.bind((ifname, 0))
    s.settimeout(0.2)
    print("ready", flush=True)
    deadline = time.time() + timeout
    n = 0
    while n < limit and time.time() < deadline:
        try:
            frame, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        if marker in frame:
            print(frame.hex(), flush=True)
            n += 1

def send(ifname, count, interval):
    frames = [bytes.fromhex(l.strip()) for l in sys.stdin if l.strip()]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    for i in range(count):
        for f in frames:
            s.send(f)
        if interval > 0 and i + 1 < count:
            time.sleep(interval)

def stream(ifname, interval):
    frames = [bytes.fromhex(l.strip()) for l in sys.stdin if l.strip()]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    for f in frames:
        s.send(f)
        time.sleep(interval)

def udp_listen(family, address, port, limit, timeout):
    s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    s.settimeout(0.2)
    print("ready", flush=True)
    deadline = time.time() + timeout
    n = 0
    while n < limit and time.time() < deadline:
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        print(json.dumps({"src": addr[0], "port": addr[1], "data": data.decode("latin-1")}), flush=True)
        n += 1

def udp_send(family, src, dst, port, count, interval, data):
    s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    for i in range(count):
        s.sendto(data.encode(), (dst, port))
        time.sleep(interval)

cmd = sys.argv[1]
a = sys.argv[2:]
if cmd == "capture":
    capture(a[0], a[1], int(a[2]), float(a[3]))
elif cmd == "send":
    send(a[0], int(a[1]), float(a[2]))
elif cmd == "stream":
    stream(a[0], float(a[1]))
elif cmd == "udp-listen":
    udp_listen(a[0], a[1], int(a[2]), int(a[3]), float(a[4]))
elif cmd == "udp-send":
    udp_send(a[0], a[1], a[2], int(a[3]), int(a[4]), float(a[5]), a[6])
else:
    sys.exit("unknown command " + cmd)
