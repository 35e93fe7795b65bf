"""End to end on TAP: inspection (GENEVE appliance mode). A client namespace
on p0; on p1 a LAN with a server and two "firewall" namespaces that bounce
GENEVE back from a UDP socket (tests/geneve_bounce.py: this kernel has no
geneve module) and log each inner packet. Routes to the server and to the
client are marked for inspection by pool fw, configured through pylbctl;
kernel TCP clients and servers; the firewalls' health checked over TCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from appliance_harness import Appliance, Netns, sh

HERE = os.path.dirname(__file__)

# Holds TCP connections open from the client namespace: reads commands on
# stdin ("open PORT N": N connections to the server's PORT; "echo": a line
# through each, in order), answers one JSON line each: per connection its
# local port and whether its echo came back.
CLIENT = r"""
import json, socket, sys
server = sys.argv[1]
conns = []
for line in sys.stdin:
    cmd = line.split()
    out = []
    if cmd[0] == "open":
        for _ in range(int(cmd[2])):
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect((server, int(cmd[1])))
                conns.append(s)
                out.append([s.getsockname()[1], True])
            except OSError:
                out.append([0, False])
    elif cmd[0] == "echo":
        for s in conns:
            try:
                s.sendall(b"ping\n")
                out.append([s.getsockname()[1], s.recv(100) == b"ping\n"])
            except OSError:
                out.append([s.getsockname()[1], False])
    print(json.dumps(out), flush=True)
"""

ECHO = r"""
import socket, sys, threading
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while (data := c.recv(4096)):
        c.sendall(data)
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


class Lab:
    def __init__(self):
        self.app = Appliance(kernel=True, driver=True).start()
        net = self.app.net
        self.procs: dict[str, subprocess.Popen] = {}
        self.namespaces: list[str] = []
        self.tmp = tempfile.mkdtemp(prefix="pylb-gwlb-")
        self.client_ip, self.server_ip = f"{net}.0.2", f"{net}.1.11"
        self.client = Netns(f"{self.app.instance}c", self.app.ifaces[0], f"{self.client_ip}/24")
        self.namespaces.append(self.client.name)
        self.client.run("ip", "route", "add", "default", "via", f"{net}.0.1")
        self.client.run("ip", "link", "set", self.client.iface, "mtu", "1400")
        lan = f"{self.app.instance}l"
        self._ns(lan)
        sh("ip", "link", "set", self.app.ifaces[1], "netns", lan)
        sh("ip", "-n", lan, "link", "set", self.app.ifaces[1], "address", "02:00:00:00:ee:01")
        sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lan, "link", "set", "br0", "up")
        sh("ip", "-n", lan, "link", "set", self.app.ifaces[1], "master", "br0", "up")
        self.firewalls = {}
        for i, name in enumerate(("server", "fwa", "fwb")):
            ns, ip = f"{self.app.instance}{name}", f"{net}.1.{11 if i == 0 else 20 + i}"
            self._ns(ns)
            v = f"{self.app.instance}v{i}"
            sh("ip", "link", "add", v, "type", "veth", "peer", "name", v + "p")
            sh("ip", "link", "set", v, "netns", lan)
            sh("ip", "link", "set", v + "p", "netns", ns)
            sh("ip", "-n", lan, "link", "set", v, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", v + "p", "name", "eth0")
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up", "mtu", "1400" if i == 0 else "1500")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", f"{net}.1.1")
            if i == 0:
                self._start(name, ns, [sys.executable, "-c", ECHO, "8080", "9999"])
            else:
                self.firewalls[name] = (ns, ip, os.path.join(self.tmp, f"{name}.log"))
                self.start_firewall(name)
        self.clients: list[subprocess.Popen] = []

    def _ns(self, name):
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)

    def _start(self, key, ns, cmd):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        self.procs[key] = p

    def start_firewall(self, name, drop_port=0):
        ns, _, log = self.firewalls[name]
        self.stop(name)
        self._start(name, ns, [sys.executable, os.path.join(HERE, "geneve_bounce.py"),
                               "--log", log, "--drop-port", str(drop_port)])

    def stop(self, key):
        p = self.procs.pop(key, None)
        if p is not None:
            p.kill()
            p.wait()

    def seen(self, name) -> list[tuple]:
        """The inner flows firewall `name` has seen (each packet)."""
        with open(self.firewalls[name][2]) as f:
            return [tuple(json.loads(line)) for line in f]

    def clear_logs(self):
        for _, _, log in self.firewalls.values():
            open(log, "w").close()

    def ctl(self, *args):
        r = sh(sys.executable, "-m", "pylb.ctl", "--instance", self.app.instance, *args,
               check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def connections(self):
        """A client process that holds connections (CLIENT's commands)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.client.name, sys.executable, "-c",
                              CLIENT, self.server_ip], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.clients.append(p)

        def ask(cmd):
            p.stdin.write(cmd + "\n")
            p.stdin.flush()
            return json.loads(p.stdout.readline())
        return ask

    def close(self):
        for p in self.clients:
            p.kill()
            p.wait()
        for key in list(self.procs):
            self.stop(key)
        self.app.stop()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        os.unlink(self.app.profile)
        sh("rm", "-rf", self.tmp)


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    try:
        net = lab.app.net
        lab.ctl("pool", "set", "fw", "--appliance", f"{net}.1.21", "--appliance", f"{net}.1.22",
                "--check-port", "8081")
        lab.ctl("route", "add", f"{lab.server_ip}/32", "--via", "@p1", "--inspect", "fw")
        lab.ctl("route", "add", f"{lab.client_ip}/32", "--via", "@p0", "--inspect", "fw")
        _wait(lambda: "(up)" in lab.ctl("pool", "list") and
              lab.ctl("pool", "list").count("(up)") == 2, "both firewalls healthy")
        yield lab
    finally:
        lab.close()


def _wait(cond, what, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _by_firewall(lab, port):
    """{firewall: set of directions} each firewall saw client port `port`'s flow in."""
    out = {}
    for name in lab.firewalls:
        for proto, src, sport, dst, dport in lab.seen(name):
            if port in (sport, dport) and proto == 6:
                out.setdefault(name, set()).add("in" if src == lab.client_ip else "out")
    return out


def test_each_flow_crosses_one_firewall_both_ways(lab):
    lab.clear_logs()
    ask = lab.connections()
    opened = ask("open 8080 24")
    assert all(ok for _, ok in opened), opened
    assert all(ok for _, ok in ask("echo")), "an echo got lost"
    used = set()
    for port, _ in opened:
        seen = _by_firewall(lab, port)
        assert len(seen) == 1, (port, seen)         # one firewall per flow ...
        (fw, dirs), = seen.items()
        assert dirs == {"in", "out"}                # ... in both directions
        used.add(fw)
        # The API's trace names the firewall the fast path chose.
        t = json.loads(lab.ctl("-o", "json", "trace", f"{lab.client_ip}:{port}",
                               f"{lab.server_ip}:8080"))
        assert t["verdict"] == "inspect" and t["appliance"] == lab.firewalls[fw][1], t
    assert used == set(lab.firewalls)               # 24 flows: both firewalls take some
    c = lab.app.stats()["counters"]
    assert c["inspect_sent"] == c["inspect_returned"] > 0
    pools = json.loads(lab.ctl("-o", "json", "pool", "list"))
    assert int(pools[0]["flows"]) >= 24 and sorted(pools[0]["inspects"]) == sorted(
        [f"{lab.server_ip}/32", f"{lab.client_ip}/32"])


def settled(read, quiet=0.5, limit=10.0):
    """read()'s value once it stopped changing for `quiet` seconds (the
    closing handshakes' last packets still crossing the firewalls)."""
    deadline, value = time.monotonic() + limit, read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if now == value:
            return value
        value = now
    raise AssertionError(f"still changing after {limit} s: {value}")


def test_a_firewall_that_drops_is_a_firewall_that_drops(lab):
    for name in lab.firewalls:
        lab.start_firewall(name, drop_port=9999)
    lab.clear_logs()
    ask = lab.connections()
    assert all(ok for _, ok in ask("open 8080 4"))
    returned = settled(lambda: lab.app.stats()["counters"]["inspect_returned"])
    assert not any(ok for _, ok in ask("open 9999 4"))
    # The SYNs reached the firewalls, which dropped them: none came back.
    syns = [f for n in lab.firewalls for f in lab.seen(n) if f[4] == 9999]
    assert len(syns) >= 4, syns
    assert lab.app.stats()["counters"]["inspect_returned"] == returned
    for name in lab.firewalls:
        lab.start_firewall(name)
    assert all(ok for _, ok in ask("open 9999 2"))


def test_stopping_a_firewall_moves_only_its_flows(lab):
    lab.clear_logs()
    ask = lab.connections()
    opened = ask("open 8080 30")
    assert all(ok for _, ok in opened)
    assert all(ok for _, ok in ask("echo"))
    where = {port: next(iter(_by_firewall(lab, port))) for port, _ in opened}
    assert set(where.values()) == {"fwa", "fwb"}
    lab.clear_logs()
    lab.stop("fwa")                                  # and its health check listener
    _wait(lambda: "down" in lab.ctl("pool", "list"), "fwa seen down")
    assert all(ok for _, ok in ask("echo")), "a connection broke"    # fwa's moved to fwb
    for port, fw in where.items():
        assert set(_by_firewall(lab, port)) == {"fwb"}, (port, fw)
    assert lab.app.stats()["counters"]["inspect_flows_moved"] > 0
    lab.start_firewall("fwa")
    _wait(lambda: lab.ctl("pool", "list").count("(up)") == 2, "fwa up again")
    # Back up, it takes new flows; the flows that moved stay where they are.
    lab.clear_logs()
    assert all(ok for _, ok in ask("echo"))
    for port in where:
        assert set(_by_firewall(lab, port)) == {"fwb"}


def test_3_tuple_stickiness_keeps_a_pair_of_hosts_on_one_firewall(lab):
    net = lab.app.net
    lab.ctl("pool", "set", "fw", "--appliance", f"{net}.1.21", "--appliance", f"{net}.1.22",
            "--check-port", "8081", "--stickiness", "3-tuple")
    lab.clear_logs()
    ask = lab.connections()
    opened = ask("open 8080 12") + ask("open 9999 12")
    assert all(ok for _, ok in opened)
    fws = {fw for port, _ in opened for fw in _by_firewall(lab, port)}
    assert len(fws) == 1, fws
    assert "3-tuple" in lab.ctl("pool", "list")
