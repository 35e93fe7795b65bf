"""End to end on TAP: the appliance routes between a client namespace and a
server LAN (a bridge namespace with three backend namespaces), balances an L3
VIP over backends that decapsulate IPIP, and carries the host's own traffic
through its exception path. Driven through the Python API of the running
appliance."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from appliance_harness import Appliance, Netns, sh

HERE = os.path.dirname(__file__)
N_BACKENDS = 3

FETCH = """
import http.client, json, sys
out = {}
for src in json.loads(sys.argv[1]):
    c = http.client.HTTPConnection(sys.argv[2], int(sys.argv[3]), timeout=5, source_address=(src, 0))
    try:
        c.request("GET", "/who")
        out[src] = c.getresponse().read().decode().strip()
    except OSError as e:
        out[src] = f"error: {e}"
    finally:
        c.close()
print(json.dumps(out))
"""


class Lab:
    """Client namespace on p0; on p1 a LAN namespace bridging the TAP to
    three backend namespaces, each serving HTTP on :8080 with its name."""

    def __init__(self, **appliance):
        self.app = Appliance(kernel=True, driver=True, **appliance).start()
        net = self.app.net
        self.procs: list[subprocess.Popen] = []
        self.namespaces: list[str] = []
        self.client = Netns(f"{self.app.instance}c", self.app.ifaces[0], f"{net}.0.2/24")
        self.namespaces.append(self.client.name)
        self.client.run("ip", "route", "add", "default", "via", f"{net}.0.1")
        self.lan = f"{self.app.instance}l"
        self._ns(self.lan)
        sh("ip", "link", "set", self.app.ifaces[1], "netns", self.lan)
        # A TAP's kernel side starts with the dataplane port's own MAC; as a
        # bridge port it must not claim that address.
        self._in(self.lan, "ip", "link", "set", self.app.ifaces[1], "address", "02:00:00:00:ee:01")
        self._in(self.lan, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self.lan, "ip", "link", "set", "br0", "up")
        self._in(self.lan, "ip", "link", "set", self.app.ifaces[1], "master", "br0", "up")
        self.backends = []
        self.www = tempfile.mkdtemp(prefix="pylb-www-")
        for i in range(N_BACKENDS):
            ns, ip = f"{self.app.instance}b{i}", f"{net}.1.{11 + i}"
            self._ns(ns)
            v = f"{self.app.instance}v{i}"
            sh("ip", "link", "add", v, "type", "veth", "peer", "name", v + "p")
            sh("ip", "link", "set", v, "netns", self.lan)
            sh("ip", "link", "set", v + "p", "netns", ns)
            self._in(self.lan, "ip", "link", "set", v, "master", "br0", "up")
            self._in(ns, "ip", "link", "set", v + "p", "name", "eth0")
            self._in(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self._in(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            self._in(ns, "ip", "link", "set", "eth0", "up")
            self._in(ns, "ip", "link", "set", "lo", "up")
            self._in(ns, "ip", "route", "add", "default", "via", f"{net}.1.1")
            root = os.path.join(self.www, ns)
            os.mkdir(root)
            with open(os.path.join(root, "who"), "w") as f:
                f.write(ns)
            self.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", "8080",
                 "--bind", "0.0.0.0", "--directory", root],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.backends.append((ns, ip))
        for ns, ip in self.backends:
            self._wait_listening(ns)

    def _ns(self, name):
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)

    def _in(self, ns, *cmd):
        return sh("ip", "netns", "exec", ns, *cmd)

    def _wait_listening(self, ns, port=8080):
        for _ in range(100):
            if f":{port}" in self._in(ns, "ss", "-ltn").stdout:
                return
            time.sleep(0.05)
        raise AssertionError(f"no HTTP server in {ns}")

    def fetch(self, sources, dst, port=8080):
        """Which backend answers each client source address."""
        out = self.client.run(sys.executable, "-c", FETCH, json.dumps(sources), dst, str(port),
                              timeout=120)
        return json.loads(out.stdout)

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait()
        self.app.stop()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        os.unlink(self.app.profile)
        sh("rm", "-rf", self.www)


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    yield lab
    lab.close()


def test_client_and_server_on_different_subnets_route_through_the_appliance(lab):
    ns, ip = lab.backends[0]
    assert lab.client.ping(ip, 10) == 10
    assert lab.fetch([f"{lab.app.net}.0.2"], ip) == {f"{lab.app.net}.0.2": ns}
    trace = lab.client.run("traceroute", "-n", "-q", "1", "-w", "2", "-m", "5", ip).stdout
    hops = [line.split()[1] for line in trace.splitlines()[1:]]
    assert hops == [f"{lab.app.net}.0.1", ip], trace
    st = lab.app.stats()
    assert st["counters"]["forwarded"] > 0 and st["counters"]["icmp_errors_sent"] >= 1
    # The appliance learned the client and the backend by ARP.
    got = {(n["port"], n["ip"]) for n in lab.app.neighbours()}
    assert {("p0", f"{lab.app.net}.0.2"), ("p1", ip)} <= got


def test_l3_vip_spreads_sources_over_ipip_backends_and_removal_keeps_the_rest(lab):
    net = lab.app.net
    vip = f"{net}.9.9"
    decaps = []
    for ns, _ in lab.backends:
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{vip}/32", "dev", "lo")
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                              os.path.join(HERE, "ipip_decap.py")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        decaps.append(p)
        lab.procs.append(p)
    sources = [f"{net}.0.{100 + i}" for i in range(60)]
    for s in sources:
        lab.client.run("ip", "addr", "add", f"{s}/24", "dev", lab.client.iface)
    from pylb.v1 import pylb_pb2 as pb
    api = lab.app.api()
    api.AddVip(pb.Vip(prefix=f"{vip}/32", method="ipip",
                      backends=[pb.VipBackend(address=ip) for _, ip in lab.backends]))

    before = lab.fetch(sources, vip)
    names = [ns for ns, _ in lab.backends]
    assert set(before.values()) == set(names), before
    assert min(list(before.values()).count(n) for n in names) >= 8
    # What the workers chose is what the API says they choose.
    for s in sources:
        picked = lab.app.call("vip_pick", f"{vip}/32", s, vip)
        assert before[s] == names[[ip for _, ip in lab.backends].index(picked)]

    api.SetVipBackends(pb.Vip(prefix=f"{vip}/32", backends=[
        pb.VipBackend(address=ip) for i, (_, ip) in enumerate(lab.backends) if i != 1]))
    after = lab.fetch(sources, vip)
    for s in sources:
        if before[s] != names[1]:
            assert after[s] == before[s], (s, before[s], after[s])
        else:
            assert after[s] in (names[0], names[2])
    assert lab.app.stats()["counters"]["vip_packets"] >= 120
    # Operators see it with `pylb vips` (the API underneath, as pylbctl).
    out = sh(sys.executable, "-m", "pylb", "vips", "--instance", lab.app.instance).stdout
    assert f"{vip}/32" in out and "ipip" in out and lab.backends[0][1] in out
    assert lab.backends[1][1] not in out


def test_exception_path_serves_the_hosts_sockets_both_ways(lab):
    net = lab.app.net
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((f"{net}.0.1", 2222))
    srv.listen()

    def serve():
        conn, _ = srv.accept()
        conn.sendall(b"hello from the host\n")
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    out = lab.client.run(sys.executable, "-c",
                         "import socket; s = socket.create_connection(('%s.0.1', 2222), 5);"
                         "print(s.recv(100).decode().strip())" % net).stdout
    t.join(5)
    srv.close()
    assert out.strip() == "hello from the host"
    # The host reaches a backend through the dataplane's routes.
    ns, ip = lab.backends[2]
    c = socket.create_connection((ip, 8080), timeout=5)
    c.sendall(b"GET /who HTTP/1.0\r\n\r\n")
    reply = b""
    while chunk := c.recv(4096):
        reply += chunk
    c.close()
    assert reply.endswith(ns.encode())
    st = lab.app.stats()["counters"]
    assert st["to_kernel"] > 0 and st["from_kernel"] > 0


def test_route_churn_keeps_traffic_on_an_unchanged_route(lab):
    ns, ip = lab.backends[0]
    gw = lab.backends[2][1]
    result = {}

    def pinger():
        result["received"] = lab.client.ping(ip, 300, interval=0.01)
    t = threading.Thread(target=pinger)
    t.start()
    prefixes = [f"172.{16 + i // 256}.{i % 256}.0/24" for i in range(1000)]
    for chunk in range(0, 1000, 100):
        lab.app.batch([("add_route", (p, (gw, "p1")), {}) for p in prefixes[chunk:chunk + 100]])
        time.sleep(0.1)
    assert lab.app.call("route_count", 4) >= 1000
    out = sh(sys.executable, "-m", "pylb", "routes", "--instance", lab.app.instance).stdout
    assert f"172.16.0.0/24{' ' * 32}gateway    via {gw} p1" in out.splitlines()
    assert sum(x.startswith("172.") for x in out.splitlines()) >= 1000
    for chunk in range(0, 1000, 100):
        lab.app.batch([("del_route", (p,), {}) for p in prefixes[chunk:chunk + 100]])
        time.sleep(0.1)
    t.join(60)
    assert result["received"] == 300
    assert lab.app.call("route_count", 4) < 1000


def test_ipv6_routing_with_neighbour_discovery(lab):
    v6 = f"fd00:{lab.app.net.split('.')[1]}"
    lab.app.call("add_address", "p0", f"{v6}::1/64")
    lab.app.call("add_address", "p1", f"{v6}:1::1/64")
    ns, _ = lab.backends[0]
    for name, iface, addr, gw in ((lab.client.name, lab.client.iface, f"{v6}::2", f"{v6}::1"),
                                  (ns, "eth0", f"{v6}:1::11", f"{v6}:1::1")):
        sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
        sh("ip", "netns", "exec", name, "ip", "-6", "addr", "add", f"{addr}/64", "dev", iface, "nodad")
        sh("ip", "netns", "exec", name, "ip", "-6", "route", "add", "default", "via", gw)
    assert lab.client.ping(f"{v6}::1", 3) == 3             # ICMPv6 echo by the fast path
    assert lab.client.ping(f"{v6}:1::11", 10) == 10        # routed, both sides resolved by NDP
    # The whole table (the lab has many neighbours by now).
    got = {(n[1], n[0]) for n in lab.app.call("neighbours")}
    assert {(0, f"{v6}::2"), (1, f"{v6}:1::11")} <= got
    c = lab.app.stats()["counters"]
    assert c["nd_adverts_sent"] >= 1 and c["nd_adverts_received"] >= 1


def test_gue_vip_and_service_reach_backends_a_source_port_per_flow(lab):
    """An L3 VIP and an L4 service of method gue: the backends decapsulate
    in user space (tests/gue_decap.py: UDP 6080 into a TUN, as Linux's fou
    would), hold the VIPs and answer the clients directly; every flow has
    its own outer UDP source port."""
    net = lab.app.net
    vip, svc = f"{net}.9.20", f"{net}.9.21"
    logs = []
    for ns, _ in lab.backends:
        for a in (vip, svc):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{a}/32", "dev", "lo")
        log = os.path.join(lab.www, f"{ns}.gue")
        logs.append(log)
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                              os.path.join(HERE, "gue_decap.py"), "gue0", log],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        lab.procs.append(p)
    from pylb.v1 import pylb_pb2 as pb
    api = lab.app.api()
    api.AddVip(pb.Vip(prefix=f"{vip}/32", method="gue",
                      backends=[pb.VipBackend(address=ip) for _, ip in lab.backends]))
    api.AddService(pb.Service(key=pb.ServiceKey(vip=svc, port=8080), method=pb.METHOD_GUE,
                              backends=[pb.Backend(address=ip) for _, ip in lab.backends]))
    sources = [f"{net}.0.{170 + i}" for i in range(30)]
    for s in sources:
        lab.client.run("ip", "addr", "add", f"{s}/24", "dev", lab.client.iface)
    names = {ns for ns, _ in lab.backends}
    for dst in (vip, svc):
        got = lab.fetch(sources, dst)
        assert set(got.values()) <= names and len(set(got.values())) >= 2, got
    ports = [int(x) for log in logs for x in open(log).read().split()]
    assert all(0xc000 <= p <= 0xffff for p in ports)
    assert len(set(ports)) >= 40, sorted(set(ports))       # 60 connections
    assert lab.app.stats()["counters"]["vip_packets"] > 0
