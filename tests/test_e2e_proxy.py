"""End to end: the client's address reaches FullNAT backends by the PROXY
protocol. A client namespace on p0, a backend namespace on p1 whose
servers parse the header (v2 on one port, v1 on another, v2 per datagram
for UDP) and answer with the client address they read, then take 10 MB
from the client (answering its SHA-256) and send 10 MB back. The backend
sees only pylb's local address as its peer; the header must name the
client, and every byte after it must arrive intact both ways (the
sequence numbers are shifted for the whole connection)."""

from __future__ import annotations

import json

import pytest
import yaml

from appliance_harness import Ends
from pylb.v1 import pylb_pb2 as pb

# The backend: TCP 9000 (v2), 9001 (v1), UDP 9053 (v2). Answers the client
# address the header names and the peer it sees, as a JSON line; then the
# bulk exchange (TCP).
SERVER = r"""
import hashlib, ipaddress, json, socket, struct, threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"

def v2(data):
    assert data[:12] == SIG and data[12] == 0x21, data[:16]
    fam, n = data[13], struct.unpack("!H", data[14:16])[0]
    body = data[16:16 + n]
    alen = 4 if fam >> 4 == 1 else 16
    src = ipaddress.ip_address(body[:alen])
    sport = struct.unpack("!H", body[2 * alen:2 * alen + 2])[0]
    return f"{src}:{sport}", data[16 + n:]

def exact(c, n):
    b = bytearray()
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return bytes(b)

def serve(c, version):
    if version == 2:
        head = exact(c, 16)
        seen, _ = v2(head + exact(c, struct.unpack("!H", head[14:16])[0]))
    else:
        line = b""
        while not line.endswith(b"\r\n"):
            line += exact(c, 1)
        parts = line.split()
        seen = f"{parts[2].decode()}:{parts[4].decode()}"
    c.sendall(json.dumps({"client": seen, "peer": c.getpeername()[0]}).encode() + b"\n")
    n = int.from_bytes(exact(c, 8), "big")
    h, got = hashlib.sha256(), 0
    while got < n:
        d = c.recv(min(65536, n - got))
        h.update(d)
        got += len(d)
    c.sendall(h.digest())
    c.sendall(bytes(range(256)) * (n // 256))
    c.close()

def listen(port, version):
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(16)
    def loop():
        while True:
            threading.Thread(target=serve, args=(s.accept()[0], version), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()

listen(9000, 2)
listen(9001, 1)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
u.bind(("::", 9053))
print("ready", flush=True)
while True:
    data, peer = u.recvfrom(65535)
    seen, rest = v2(data)
    u.sendto(json.dumps({"client": seen, "peer": peer[0], "data": rest.decode()}).encode(), peer)
"""

# The client: the server's JSON line, then N bytes up (digest checked) and
# N down (checked). UDP: one datagram, the answer.
CLIENT = r"""
import hashlib, json, os, socket, sys
vip, port, proto, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fam = socket.AF_INET6 if ":" in vip else socket.AF_INET
if proto == "udp":
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.connect((vip, port))
    u.send(b"hello")
    out = json.loads(u.recv(65535))
    out["me"] = f"{u.getsockname()[0]}:{u.getsockname()[1]}"
    print(json.dumps(out))
    sys.exit()
c = socket.create_connection((vip, port), 10)
c.settimeout(60)
f = c.makefile("rb")
out = json.loads(f.readline())
out["me"] = f"{c.getsockname()[0]}:{c.getsockname()[1]}"
data = os.urandom(n)
c.sendall(n.to_bytes(8, "big") + data)
out["up"] = f.read(32) == hashlib.sha256(data).digest()
out["down"] = f.read(n) == bytes(range(256)) * (n // 256)
print(json.dumps(out))
"""

SIZE = 10 * 1024 * 1024


class Lab(Ends):
    """Only the client routes through the appliance: the backend answers
    pylb's local address, on its own link."""

    def __init__(self):
        super().__init__(routed=("C",))

    def setup(self):
        self.lip = {af: self.port_addr["B", af] for af in (4, 6)}
        self.vip = {4: f"{self.net}.9.1", 6: f"fd00:{self.k}:9::1"}
        self.serve("B", SERVER)
        services = []
        for af in (4, 6):
            b = self.addr["B", af] if af == 4 else f"[{self.addr['B', af]}]"
            for port, proto, version in ((9000, "tcp", "v2"), (9001, "tcp", "v1"),
                                         (9053, "udp", "v2")):
                services.append({"vip": self.vip[af], "port": port, "proto": proto,
                                 "method": "fullnat", "local_addresses": [self.lip[af]],
                                 "proxy_protocol": version, "backends": [f"{b}:{port}"]})
        self.app.api().ApplyConfig(pb.ApplyConfigRequest(yaml=yaml.safe_dump(
            {"services": services})))

    def ask(self, af, port, proto, n=SIZE):
        return json.loads(self.run("C", CLIENT, self.vip[af], str(port), proto, str(n),
                                   timeout=180))


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    yield lab
    lab.close()


@pytest.mark.parametrize("af", [4, 6])
@pytest.mark.parametrize("port", [9000, 9001])
def test_the_backend_reads_the_client_address_and_ten_megabytes_go_each_way(lab, af, port):
    out = lab.ask(af, port, "tcp")
    assert out["client"] == out["me"].replace("::ffff:", "")    # the header names the client
    assert out["peer"].replace("::ffff:", "") == lab.lip[af]   # the socket sees pylb's address
    assert out["up"] and out["down"]


@pytest.mark.parametrize("af", [4, 6])
def test_each_udp_datagram_names_its_client(lab, af):
    out = lab.ask(af, 9053, "udp")
    assert out["client"] == out["me"] and out["data"] == "hello"
    assert out["peer"].replace("::ffff:", "") == lab.lip[af]


def test_headers_were_counted(lab):
    st = lab.app.stats()
    assert st["counters"]["proxy_headers_sent"] >= 6
    assert st["drops"]["proxy_no_room"] == 0 and st["drops"]["proxy_fragment"] == 0
