# BFCP peers (RFC 8855) for mgwd's BFCP end-to-end test, run inside the peers' namespace.
#
#   server-tcp <ip> <port>                 floor control server on kernel TCP (Ver 1)
#   server-udp <ip> <port>                 floor control server on kernel UDP (Ver 2)
#   client-tls <ip> <port> <crt> <key> <fp> BFCP client over TLS with a client certificate; the
#                                          server's certificate must have SHA-256 fingerprint <fp>
#                                          (hex, colons allowed: RFC 8122), self-signed is fine;
#                                          prints `local <ip:port>` once connected
#   client-udp <bind ip> <bind port> <ip> <port>   BFCP client over kernel UDP (Ver 2)
#   client-udp-lossy <bind ip> <bind port> <ip> <port>   the same, but it loses (prints
#                                          `lost <hex>`, does not acknowledge) the first copy of
#                                          each server-initiated message, so that the server
#                                          must retransmit it (RFC 8855 section 8.3.1)
#
# Clients send each stdin line (hex) as given: one message per line, malformed ones included,
# as one TLS write or one datagram. Over UDP they acknowledge server-initiated FloorRequestStatus
# and FloorStatus (RFC 8855 sections 5.3.14, 5.3.15, 8).
# Servers answer: Hello -> HelloAck (SUPPORTED-PRIMITIVES, SUPPORTED-ATTRIBUTES), FloorRequest ->
# FloorRequestStatus Pending then a server-initiated FloorRequestStatus Granted, FloorRelease ->
# FloorRequestStatus Released, Goodbye -> GoodbyeAck; unparseable input -> Error (code 10).
# Over UDP the server also answers Ver 1 requests (RFC 4582 framing, as pre-RFC 8855 UDP clients
# sent it), in the request's version.
# Every peer prints `ready` (listening / connected), `sent <hex>` and `recv <hex>` per message,
# `bad <hex>` for what it could not parse, `eof` when the peer closed, and the UDP server
# `from <ip:port>` per datagram; exits after 40 s regardless.
import hashlib, os, select, socket, ssl, struct, sys, time

DEADLINE = time.time() + 40
HELLO, HELLO_ACK, FLOOR_REQUEST, FLOOR_RELEASE, FRS, FLOOR_STATUS = 11, 12, 1, 2, 4, 8
FRS_ACK, FS_ACK, GOODBYE, GOODBYE_ACK, ERROR = 14, 15, 16, 17, 13
# Attribute types (RFC 8855 section 5.2).
FLOOR_ID, FLOOR_REQUEST_ID, REQUEST_STATUS, ERROR_CODE = 2, 3, 5, 6
SUPPORTED_ATTRIBUTES, SUPPORTED_PRIMITIVES = 10, 11
FLOOR_REQUEST_INFORMATION, FLOOR_REQUEST_STATUS, OVERALL_REQUEST_STATUS = 15, 17, 18
PENDING, GRANTED, RELEASED = 1, 3, 6


def say(word, b=b""):
    print(word, b.hex(), flush=True) if b else print(word, flush=True)


def header(ver, r, prim, payload, conf, tid, user):
    # Section 5.1: Ver(3) R(1) F(1) Res(3) | Primitive | Payload Length in 4-octet units.
    assert len(payload) % 4 == 0
    return struct.pack("!BBHIHH", (ver << 5) | (0x10 if r else 0), prim, len(payload) // 4,
                       conf, tid, user) + payload


def attr(typ, value, mandatory=True):
    # Section 5.2: Type(7) M(1) Length (octets, header included, padding excluded), padded to 4.
    n = 2 + len(value)
    return bytes([(typ << 1) | int(mandatory), n]) + value + b"\0" * (-n % 4)


def grouped(typ, ident, inner):
    # Grouped attributes (5.2.14-5.2.18): Length covers the header and the padded contents.
    return bytes([(typ << 1) | 1, 4 + len(inner)]) + struct.pack("!H", ident) + inner


def attributes(payload):
    """(type, value) pairs; raises ValueError on a malformed attribute."""
    out, i = [], 0
    while i < len(payload):
        if len(payload) - i < 2 or payload[i + 1] < 2 or i + payload[i + 1] > len(payload):
            raise ValueError("attribute")
        typ, n = payload[i] >> 1, payload[i + 1]
        out.append((typ, payload[i + 2: i + n]))
        if typ in (14, 15, 16, 17, 18):
            i += 4  # descend into a grouped attribute: its members follow its header
        else:
            i += n + (-n % 4)
    return out


def parse(msg, versions):
    """(ver, r, primitive, conf, tid, user, attributes); ValueError if not a whole message."""
    if len(msg) < 12:
        raise ValueError("short")
    b0, prim, units, conf, tid, user = struct.unpack("!BBHIHH", msg[:12])
    if b0 >> 5 not in versions or b0 & 0x08 or 12 + 4 * units != len(msg):
        raise ValueError("header")
    return b0 >> 5, bool(b0 & 0x10), prim, conf, tid, user, attributes(msg[12:])


class Server:
    """A floor control server (RFC 8855) for one client."""

    def __init__(self, reliable):
        # Section 5.1: Ver 1 over reliable transports, Ver 2 over unreliable ones. Over UDP this
        # server also answers Ver 1 (RFC 4582 framing, as pre-RFC 8855 UDP clients sent it) in
        # the version of the request, as libre's BFCP does.
        self.reliable, self.next_frid, self.next_tid = reliable, 1, 0x4000
        self.versions, self.ver = ((1,) if reliable else (1, 2)), 1 if reliable else 2

    def server_tid(self):
        # Section 8: server-initiated transactions use Transaction ID 0 over reliable
        # transports, and a fresh non-zero one over unreliable transports.
        if self.reliable:
            return 0
        self.next_tid += 1
        return self.next_tid

    def frs(self, r, conf, tid, user, frid, floor, status):
        # 5.3.4: FLOOR-REQUEST-INFORMATION{OVERALL-REQUEST-STATUS{REQUEST-STATUS},
        # FLOOR-REQUEST-STATUS{floor}}.
        ors = grouped(OVERALL_REQUEST_STATUS, frid, attr(REQUEST_STATUS, bytes([status, 0])))
        fl = grouped(FLOOR_REQUEST_STATUS, floor, b"")
        return header(self.ver, r, FRS, grouped(FLOOR_REQUEST_INFORMATION, frid, ors + fl),
                      conf, tid, user)

    def answer(self, msg):
        """The messages to send back for `msg`."""
        try:
            self.ver, r, prim, conf, tid, user, attrs = parse(msg, self.versions)
        except ValueError:
            say("bad", msg)
            return [header(self.ver, self.ver == 2, ERROR, attr(ERROR_CODE, bytes([10])), 0, 0, 0)]
        say("recv", msg)
        r_resp = self.ver == 2  # the R flag exists only in Ver 2 (5.1)
        if r:
            return []  # an acknowledgement of one of ours
        if prim == HELLO:
            prims = bytes([1, 2, 4, 8, 11, 12, 13, 14, 15, 16, 17])
            supp = bytes(t << 1 for t in (2, 3, 5, 6, 10, 11, 15, 17, 18))
            body = attr(SUPPORTED_PRIMITIVES, prims) + attr(SUPPORTED_ATTRIBUTES, supp)
            return [header(self.ver, r_resp, HELLO_ACK, body, conf, tid, user)]
        if prim == FLOOR_REQUEST:
            floor = next(struct.unpack("!H", v)[0] for t, v in attrs if t == FLOOR_ID)
            frid, self.next_frid = self.next_frid, self.next_frid + 1
            return [self.frs(r_resp, conf, tid, user, frid, floor, PENDING),
                    self.frs(False, conf, self.server_tid(), user, frid, floor, GRANTED)]
        if prim == FLOOR_RELEASE:
            frid = next(struct.unpack("!H", v)[0] for t, v in attrs if t == FLOOR_REQUEST_ID)
            return [self.frs(r_resp, conf, tid, user, frid, 1, RELEASED)]
        if prim == GOODBYE:
            return [header(self.ver, r_resp, GOODBYE_ACK, b"", conf, tid, user)]
        return []


def frames(buf):
    """Splits whole Ver 1 messages off a TCP byte stream (5.1: Payload Length)."""
    out = []
    while len(buf) >= 12:
        n = 12 + 4 * struct.unpack("!H", buf[2:4])[0]
        if len(buf) < n:
            break
        out.append(buf[:n])
        buf = buf[n:]
    return out, buf


def client_ack(msg):
    """Over UDP a client acknowledges server-initiated FloorRequestStatus/FloorStatus."""
    try:
        _, r, prim, conf, tid, user, _ = parse(msg, (2,))
    except ValueError:
        return None
    if r or prim not in (FRS, FLOOR_STATUS):
        return None
    return header(2, True, FRS_ACK if prim == FRS else FS_ACK, b"", conf, tid, user)


def stdin_lines(buf):
    chunk = os.read(0, 65536)
    if not chunk:
        return None, buf
    buf += chunk
    *lines, rest = buf.split(b"\n")
    return [bytes.fromhex(l.decode().strip()) for l in lines if l.strip()], rest


def run_server_tcp(ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(1)
    s.settimeout(40)
    say("ready")
    c, _ = s.accept()
    say("accepted")
    srv, buf = Server(True), b""
    while time.time() < DEADLINE:
        if not select.select([c], [], [], 0.5)[0]:
            continue
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            say("reset")
            return
        if not d:
            say("eof")
            return
        msgs, buf = frames(buf + d)
        for m in msgs:
            for a in srv.answer(m):
                c.sendall(a)
                say("sent", a)


def run_server_udp(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    say("ready")
    srv = Server(False)
    while time.time() < DEADLINE:
        if not select.select([s], [], [], 0.5)[0]:
            continue
        d, src = s.recvfrom(65536)
        print("from %s:%d" % src, flush=True)
        for a in srv.answer(d):
            s.sendto(a, src)
            say("sent", a)


def run_client(sock, send, recv_msgs, tls, lossy=False):
    """stdin lines out; received messages printed (and acknowledged over UDP)."""
    inbuf, seen = b"", set()
    while time.time() < DEADLINE:
        ready = [sock] if tls and sock.pending() else \
            select.select([0, sock], [], [], 0.5)[0]
        if 0 in ready:
            lines, inbuf = stdin_lines(inbuf)
            if lines is None:
                return
            for m in lines:
                send(m)
                say("sent", m)
        if sock in ready:
            msgs = recv_msgs()
            if msgs is None:
                say("eof")
                return
            for m in msgs:
                ack = None if tls else client_ack(m)
                if lossy and ack and m not in seen:
                    seen.add(m)
                    say("lost", m)
                    continue
                say("recv", m)
                if ack:
                    send(ack)
                    say("sent", ack)


def run_client_tls(ip, port, crt, key, fp):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The gateway's certificate is self-signed; it is authenticated by its fingerprint from
    # the Local SDP (RFC 8122 section 5), checked below before any BFCP byte is sent.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(crt, key)
    raw = socket.create_connection((ip, port), timeout=10)
    sock = ctx.wrap_socket(raw)
    got = hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()
    if got != fp.replace(":", "").lower():
        say("fingerprint-mismatch", bytes.fromhex(got))
        sys.exit(2)
    say("ready")
    print("tls", sock.version(), flush=True)
    print("local %s:%d" % sock.getsockname()[:2], flush=True)
    sock.setblocking(False)
    state = {"buf": b""}

    def recv_msgs():
        try:
            d = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            return []
        except (ConnectionResetError, ssl.SSLError):
            return None
        if not d:
            return None
        msgs, state["buf"] = frames(state["buf"] + d)
        return msgs

    def send(m):
        sock.setblocking(True)
        sock.sendall(m)
        sock.setblocking(False)

    run_client(sock, send, recv_msgs, True)


def run_client_udp(bind_ip, bind_port, ip, port, lossy=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((bind_ip, bind_port))
    s.connect((ip, port))
    say("ready")

    def recv_msgs():
        try:
            return [s.recv(65536)]
        except ConnectionRefusedError:
            return []

    run_client(s, s.send, recv_msgs, False, lossy)


role = sys.argv[1]
if role == "server-tcp":
    run_server_tcp(sys.argv[2], int(sys.argv[3]))
elif role == "server-udp":
    run_server_udp(sys.argv[2], int(sys.argv[3]))
elif role == "client-tls":
    run_client_tls(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6])
elif role == "client-udp":
    run_client_udp(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
elif role == "client-udp-lossy":
    run_client_udp(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), True)
else:
    sys.exit("unknown role " + role)
