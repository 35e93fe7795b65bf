"""End to end: path MTU discovery through pylb. Routers on both sides of
the appliance have a 1,280-byte hop towards the far end (a route with
`mtu lock 1280`: the endpoints' own links stay at 1,500, so TCP's MSS does
not hide the bottleneck). Every 'fragmentation needed' / 'packet too big'
those routers send is about a packet that went through pylb, so it reaches
its sender only if pylb matches it to the connection and translates it.
5 MB each way through NAT and FullNAT services, IPv4 and IPv6, a tunnel
service (IPv4; the backend decapsulates in user space: this kernel has no
ipip module) and a DR service (its backend on pylb's LAN, beside the
router); afterwards both endpoints have learned the path's MTU (1,280;
through the tunnel the client learns 1,260: IPIP takes 20; DR's backend,
whose replies alone meet a bottleneck, learns it from RC's error, which
pylb passes to its MAC)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from appliance_harness import Appliance, dual_stack, sh, teardown
from pylb.v1 import pylb_pb2 as pb

# A server (dual-stack) that takes N bytes, answers their SHA-256, then
# sends N bytes of its own.
BULK = """
import hashlib, socket, threading
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 9100))
s.listen(16)
print("ready", flush=True)
def serve(c):
    n = int.from_bytes(c.recv(8, socket.MSG_WAITALL), "big")
    h, got = hashlib.sha256(), 0
    while got < n:
        d = c.recv(65536)
        if not d:
            return
        h.update(d)
        got += len(d)
    c.sendall(h.digest())
    c.sendall(bytes(range(256)) * (n // 256))
    c.close()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""

# The client: N random bytes up, the server's digest of them checked, N
# bytes down checked.
TRANSFER = """
import hashlib, json, os, socket, sys
vip, n = sys.argv[1], int(sys.argv[2])
c = socket.create_connection((vip, 9100), 10)
c.settimeout(60)
data = os.urandom(n)
c.sendall(n.to_bytes(8, "big") + data)
ok_up = c.recv(32, socket.MSG_WAITALL) == hashlib.sha256(data).digest()
down = bytearray()
while len(down) < n:
    d = c.recv(65536)
    if not d:
        break
    down += d
print(json.dumps([ok_up, bytes(down) == bytes(range(256)) * (n // 256)]))
"""

SIZE = 5 * 1024 * 1024


def ns_add(name):
    sh("ip", "netns", "del", name, check=False)
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def pmtu(ns: str, dst: str) -> int | None:
    """The path MTU `ns` has learned towards dst (None: none learned)."""
    out = sh("ip", "-n", ns, "route", "get", dst, check=False).stdout.split()
    return int(out[out.index("mtu") + 1]) if "mtu" in out else None


class Path:
    """C -- RC ==pylb== RB -- B; RC's route to C and RB's route to B have
    `mtu lock 1280`."""

    def __init__(self):
        self.app = Appliance()
        net = self.app.net                       # 10.1NN
        k = dual_stack(self.app)
        self.v4 = {"c": f"{net}.20.2", "b": f"{net}.30.2", "nat": f"{net}.9.80",
                   "fullnat": f"{net}.9.81", "tunnel": f"{net}.9.82", "dr": f"{net}.9.83",
                   "bd": f"{net}.1.3", "lip": f"{net}.1.1"}
        self.v6 = {"c": f"fd00:{k}:20::2", "b": f"fd00:{k}:30::2", "nat": f"fd00:{k}:9::80",
                   "fullnat": f"fd00:{k}:9::81", "lip": f"fd00:{k}:1::1"}
        tag = self.app.instance
        self.ns = {x: f"{x}{tag}" for x in ("C", "RC", "RB", "B", "BD")}
        self.procs = []
        try:
            self._build(net, k)
        except BaseException:
            self.close()
            raise

    def _build(self, net, k):
        C, RC, RB, B = (self.ns[x] for x in ("C", "RC", "RB", "B"))
        for ns in self.ns.values():
            ns_add(ns)
        for r in (RC, RB):
            sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1",
               "net.ipv6.conf.all.forwarding=1")
        self.app.start()
        # C -- RC, RB -- B: 1,500-byte links.
        for end, router, net4, net6 in ((C, RC, f"{net}.20", f"fd00:{k}:20:"),
                                        (B, RB, f"{net}.30", f"fd00:{k}:30:")):
            a, b = f"e{end}"[:15], f"r{end}"[:15]
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", end)
            sh("ip", "link", "set", b, "netns", router)
            for ns, dev, host in ((end, a, 2), (router, b, 1)):
                sh("ip", "-n", ns, "addr", "add", f"{net4}.{host}/24", "dev", dev)
                sh("ip", "-n", ns, "addr", "add", f"{net6}:{host}/64", "dev", dev, "nodad")
                sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", end, "route", "add", "default", "via", f"{net4}.1")
            sh("ip", "-n", end, "-6", "route", "add", "default", "via", f"{net6}:1")
            # The bottleneck: the router's hop towards the far end.
            sh("ip", "-n", router, "route", "replace", f"{net4}.0/24", "dev", b, "mtu", "lock",
               "1280")
            sh("ip", "-n", router, "-6", "route", "replace", f"{net6}:/64", "dev", b, "metric",
               "256", "mtu", "lock", "1280")    # (the kernel's own has metric 256)
        # RC -- pylb's p0; pylb's p1 on a LAN (a bridge in RB) with RB and
        # the DR backend BD.
        dev = self.app.ifaces[0]
        sh("ip", "link", "set", dev, "netns", RC)
        sh("ip", "-n", RC, "addr", "add", f"{net}.0.2/24", "dev", dev)
        sh("ip", "-n", RC, "addr", "add", f"fd00:{k}:0::2/64", "dev", dev, "nodad")
        sh("ip", "-n", RC, "link", "set", dev, "up")
        BD = self.ns["BD"]
        dev = self.app.ifaces[1]
        sh("ip", "link", "set", dev, "netns", RB)
        sh("ip", "-n", RB, "link", "add", "br0", "type", "bridge")
        # (A TAP's kernel side has the port's MAC: as a bridge port it must
        # not claim it.)
        sh("ip", "-n", RB, "link", "set", dev, "address", "02:00:00:00:ee:01")
        sh("ip", "-n", RB, "link", "set", dev, "master", "br0", "up")
        sh("ip", "-n", RB, "addr", "add", f"{net}.1.2/24", "dev", "br0")
        sh("ip", "-n", RB, "addr", "add", f"fd00:{k}:1::2/64", "dev", "br0", "nodad")
        sh("ip", "-n", RB, "link", "set", "br0", "up")
        a, b = f"e{BD}"[:15], f"r{BD}"[:15]
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", BD)
        sh("ip", "link", "set", b, "netns", RB)
        sh("ip", "-n", RB, "link", "set", b, "master", "br0", "up")
        sh("ip", "-n", BD, "addr", "add", f"{self.v4['bd']}/24", "dev", a)
        sh("ip", "-n", BD, "link", "set", a, "up")
        sh("ip", "-n", BD, "route", "add", "default", "via", f"{net}.1.2")
        # The DR VIP is the backend's own, never answered for by ARP.
        sh("ip", "-n", BD, "addr", "add", f"{self.v4['dr']}/32", "dev", "lo")
        sh("ip", "netns", "exec", BD, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
           "net.ipv4.conf.all.arp_announce=2")
        sh("ip", "-n", RC, "route", "add", f"{net}.9.0/24", "via", f"{net}.0.1")
        sh("ip", "-n", RC, "-6", "route", "add", f"fd00:{k}:9::/64", "via", f"fd00:{k}:0::1")
        sh("ip", "-n", RB, "route", "add", f"{net}.20.0/24", "via", f"{net}.1.1")   # NAT replies
        sh("ip", "-n", RB, "-6", "route", "add", f"fd00:{k}:20::/64", "via", f"fd00:{k}:1::1")
        # The tunnel's VIP is the backend's own; IPIP is taken off in user space.
        sh("ip", "-n", B, "addr", "add", f"{self.v4['tunnel']}/32", "dev", "lo")
        for ns, cmd in ((B, [sys.executable, "-c", BULK]), (BD, [sys.executable, "-c", BULK]),
                        (B, [sys.executable,
                             os.path.join(os.path.dirname(__file__), "ipip_decap.py")])):
            srv = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE,
                                   text=True)
            assert srv.stdout.readline().strip() == "ready"
            self.procs.append(srv)
        routes = [(f"{net}.20.0/24", f"{net}.0.2", "p0"), (f"fd00:{k}:20::/64", f"fd00:{k}:0::2", "p0"),
                  (f"{net}.30.0/24", f"{net}.1.2", "p1"), (f"fd00:{k}:30::/64", f"fd00:{k}:1::2", "p1")]
        services = []
        for fam in (self.v4, self.v6):
            backend = f"[{fam['b']}]:9100" if ":" in fam["b"] else f"{fam['b']}:9100"
            services += [{"vip": fam["nat"], "port": 9100, "backends": [backend]},
                         {"vip": fam["fullnat"], "port": 9100, "method": "fullnat",
                          "local_addresses": [fam["lip"]], "backends": [backend]}]
        services += [{"vip": self.v4["tunnel"], "port": 9100, "method": "tunnel",
                      "backends": [f"{self.v4['b']}:9100"]},
                     {"vip": self.v4["dr"], "port": 9100, "method": "dr",
                      "backends": [self.v4["bd"]]}]
        self.app.api().ApplyConfig(pb.ApplyConfigRequest(yaml=yaml.safe_dump({
            "services": services,
            "routes": [{"prefix": p, "via": [{"gateway": g, "port": port}]}
                       for p, g, port in routes]})))

    def transfer(self, vip: str) -> list[bool]:
        out = sh("ip", "netns", "exec", self.ns["C"], sys.executable, "-c", TRANSFER, vip,
                 str(SIZE), timeout=180).stdout
        return json.loads(out)

    def close(self):
        teardown(self.app, self.procs, self.ns.values())


@pytest.fixture(scope="module")
def path():
    p = Path()
    yield p
    p.close()


@pytest.mark.parametrize("method, family", [("nat", "v4"), ("nat", "v6"), ("fullnat", "v4"),
                                            ("fullnat", "v6"), ("tunnel", "v4"), ("dr", "v4")])
def test_five_megabytes_each_way_learn_the_path_mtu(path, method, family):
    fam = getattr(path, family)
    before = dict(path.app.api().GetStats(pb.GetStatsRequest()).counters)
    assert path.transfer(fam[method]) == [True, True]
    # The client learned it for the VIP (upload: RB's error, translated by
    # pylb; through the tunnel, about the IPIP packet, less its 20 bytes);
    # the backend for whom it answers (download: RC's error about the VIP's
    # packet, translated back): the client, or FullNAT's address.
    # DR: the backend shares pylb's LAN, so only its replies meet a
    # bottleneck (RC's), and the error about them reaches it by its MAC.
    if method == "dr":
        assert pmtu(path.ns["BD"], fam["c"]) == 1280
    else:
        assert pmtu(path.ns["C"], fam[method]) == (1260 if method == "tunnel" else 1280)
        assert pmtu(path.ns["B"], fam["lip"] if method == "fullnat" else fam["c"]) == 1280
    after = dict(path.app.api().GetStats(pb.GetStatsRequest()).counters)
    assert after["icmp_errors_translated"] >= before["icmp_errors_translated"] + 2
