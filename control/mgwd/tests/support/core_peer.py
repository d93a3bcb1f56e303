# The core-side peer of mgwd's e2e test, run inside the peers' namespace.
#   tcp <ip> <port> <out> answer|rst|hold : accept one connection, append what it receives to
#       <out>; `answer` replies `MSRP <tid> 200 OK` to each SEND (RFC 4975 section 7.2), `rst`
#       resets the connection (SO_LINGER 0) after the first complete request, `hold` only records.
#   udp <ip> <port> <out> : append each datagram to <out> as one line `<source ip:port> <hex>`.
# Prints `ready` once listening and `eof` when the peer closed; exits after 40 s regardless.
import re, socket, struct, sys, time

kind, ip, port, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
deadline = time.time() + 40
if kind == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    print("ready", flush=True)
    with open(out, "a") as f:
        while time.time() < deadline:
            s.settimeout(max(0.1, deadline - time.time()))
            try:
                d, src = s.recvfrom(65536)
            except socket.timeout:
                break
            f.write("%s:%d %s\n" % (src[0], src[1], d.hex()))
            f.flush()
    sys.exit(0)

mode = sys.argv[5]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(4)
s.settimeout(40)
print("ready", flush=True)
try:
    c, peer = s.accept()
except socket.timeout:
    sys.exit(0)
print("accepted", flush=True)
c.settimeout(1)
buf = b""
with open(out, "ab") as f:
    while time.time() < deadline:
        try:
            d = c.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            print("reset", flush=True)
            break
        if not d:
            print("eof", flush=True)
            break
        f.write(d)
        f.flush()
        buf += d
        while True:
            m = re.match(rb"MSRP (\S+) SEND\r\n", buf)
            if not m:
                break
            tid = m.group(1)
            end = buf.find(b"\r\n-------" + tid)
            if end < 0:
                break
            nl = buf.find(b"\r\n", end + 9 + len(tid))
            if nl < 0:
                break
            req, buf = buf[: nl + 2], buf[nl + 2 :]
            hdr = {}
            for line in req.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
                k, _, v = line.partition(b": ")
                hdr[k] = v
            if mode == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                print("rst", flush=True)
                sys.exit(0)
            if mode == "answer":
                to = hdr.get(b"From-Path", b"")
                frm = hdr.get(b"To-Path", b"").split(b" ")[-1]
                c.sendall(b"MSRP " + tid + b" 200 OK\r\nTo-Path: " + to + b"\r\nFrom-Path: " + frm
                          + b"\r\n-------" + tid + b"$\r\n")
