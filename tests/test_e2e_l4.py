"""End to end for L4 services on TAP with real kernel TCP and UDP: the same lab
as the L3 tests (client namespace on p0, three backend namespaces behind a
bridge on p1), the appliance driven through its Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from appliance_harness import Many, sh
from test_e2e_l3 import Lab

ECHO = """
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", port))
def udp():
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(name.encode() + b" " + data, peer)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(64)
print("ready", flush=True)
def serve(c):
    while data := c.recv(2048):
        c.sendall(name.encode() + b" " + data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# A client that keeps one TCP connection open and talks on it when told to
# (a line on stdin), printing who answered.
LONG = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
for line in sys.stdin:
    s.sendall(line.strip().encode())
    print(s.recv(2048).decode().split()[0], flush=True)
"""

UDP_ASK = """
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
data, peer = u.recvfrom(2048)
print(json.dumps([data.decode().split()[0], peer[0], peer[1]]))
""".replace("import socket, sys", "import json, socket, sys")


@pytest.fixture(scope="module")
def lab():
    """Backends also run a TCP/UDP echo server on 9000 and an IPIP endpoint,
    and carry the DR/tunnel VIPs on their loopback."""
    lab = Lab()
    for ns, _ in lab.backends:
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", ECHO, ns, "9000"],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        lab.procs.append(p)
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                              os.path.join(os.path.dirname(__file__), "ipip_decap.py")],
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        lab.procs.append(p)
        for method in ("dr", "tunnel"):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{vip_of(lab, method)}/32", "dev", "lo")
    yield lab
    lab.close()


def vip_of(lab, method):
    return f"{lab.app.net}.9.{ {'nat': 80, 'dr': 81, 'tunnel': 82}[method] }"


@pytest.mark.parametrize("method", ["nat", "dr", "tunnel"])
def test_300_connections_spread_by_weight(lab, method):
    vip = vip_of(lab, method)
    weights = [1, 1, 2]
    # NAT translates port 80 to the servers' 8080; DR and tunnel keep the port.
    port = 80 if method == "nat" else 8080
    from pylb.v1 import pylb_pb2 as pb
    lab.app.api().AddService(pb.Service(
        key=pb.ServiceKey(vip=vip, port=port), method=getattr(pb, f"METHOD_{method.upper()}"),
        backends=[pb.Backend(address=ip, port=8080, weight=w)
                  for (_, ip), w in zip(lab.backends, weights)]))
    got = lab.fetch([f"{lab.app.net}.0.2"], vip, port=port)
    assert list(got.values())[0] in [ns for ns, _ in lab.backends], got
    out = lab.client.run(sys.executable, "-c", """
import http.client, json, sys
seen = []
for _ in range(300):
    c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
    c.request("GET", "/who")
    seen.append(c.getresponse().read().decode().strip())
    c.close()
print(json.dumps(seen))
""", vip, str(port), timeout=180).stdout
    seen = json.loads(out)
    assert len(seen) == 300
    for (ns, _), w in zip(lab.backends, weights):
        share = seen.count(ns) / 300
        assert abs(share - w / sum(weights)) < 0.10, (ns, share)
    conns = lab.app.call("connections", vip=vip)
    assert conns and all(c[7] in ("fin_wait", "time_wait", "close", "established") for c in conns)
    # `pylb services` shows them per backend, like ipvsadm -L -n, as pylbctl does.
    out = sh(sys.executable, "-m", "pylb", "services", "--instance", lab.app.instance).stdout
    assert out == sh(sys.executable, "-m", "pylb.ctl", "--instance", lab.app.instance, "service",
                     "list").stdout
    assert f"{vip}:{port}/tcp {method}" in out
    line = next(x for x in out.splitlines() if f"-> {lab.backends[2][1]}:8080" in x)
    assert "weight 2 " in line and int(line.split("active ")[1].split()[0]) + \
        int(line.split("inactive ")[1].split()[0]) > 0
    out = sh(sys.executable, "-m", "pylb", "conns", "--instance", lab.app.instance).stdout
    rows = out.splitlines()[1:]
    assert len(rows) >= 300 and all(x.startswith("TCP ") and " -> " in x for x in rows)


def test_long_lived_connection_survives_backend_changes_and_drain(lab):
    vip = f"{lab.app.net}.9.90"
    names = [ns for ns, _ in lab.backends]
    ips = [ip for _, ip in lab.backends]
    lab.app.call("add_service", vip, 9000, backends=[(ips[0], 9000), (ips[1], 9000)])
    p = subprocess.Popen(["ip", "netns", "exec", lab.client.name, sys.executable, "-c", LONG,
                          vip, "9000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def ask():
            p.stdin.write("hello\n")
            p.stdin.flush()
            return p.stdout.readline().strip()
        first = ask()
        assert first in names[:2]
        mine = names.index(first)
        other = 1 - mine
        lab.app.call("set_service_backends", vip, 9000,
                     [(ips[0], 9000), (ips[1], 9000), (ips[2], 9000)])          # add one
        assert ask() == first
        lab.app.call("set_service_backends", vip, 9000,
                     [(ips[mine], 9000, 3), (ips[2], 9000, 1)])                # remove one, reweigh
        assert ask() == first
        lab.app.call("set_service_backends", vip, 9000,
                     [(ips[mine], 9000, 0), (ips[2], 9000, 1), (ips[other], 9000, 1)])  # drain mine
        assert ask() == first                                                   # still served
        fresh = lab.client.run(sys.executable, "-c", """
import socket, sys
names = []
for _ in range(40):
    s = socket.create_connection((sys.argv[1], 9000), 5)
    s.sendall(b"x")
    names.append(s.recv(100).decode().split()[0])
    s.close()
print(" ".join(names))
""", vip).stdout.split()
        assert len(fresh) == 40 and first not in fresh                          # no new ones on it
    finally:
        p.stdin.close()
        p.wait(10)


def test_udp_request_and_reply_through_the_vip(lab):
    vip = f"{lab.app.net}.9.53"
    lab.app.call("add_service", vip, 53, proto="udp", backends=[(lab.backends[2][1], 9000)])
    out = json.loads(lab.client.run(sys.executable, "-c", UDP_ASK, vip, "53").stdout)
    assert out == [lab.backends[2][0], vip, 53]
    assert any(c[0] == "udp" for c in lab.app.call("connections", vip=vip))


def test_two_workers_keep_both_directions_of_every_connection_together():
    """Two workers (lcores mapped onto the two cores): the TAP queues spread
    flows across them, so a packet often lands on the worker that does not
    own its connection; it is handed to the owner (NAT: the worker of the
    client's address; FullNAT replies: the worker owning the local port)."""
    lab = Lab(workers="1-2", cpu_map="0@0,1@1,2@1", mbufs=16383)
    try:
        net = lab.app.net
        lab.app.call("add_service", f"{net}.9.80", 80, backends=[(ip, 8080) for _, ip in lab.backends])
        lab.app.call("add_service", f"{net}.9.83", 80, method="fullnat",
                     local_addresses=[f"{net}.1.1"], backends=[(ip, 8080) for _, ip in lab.backends])
        for vip in (f"{net}.9.80", f"{net}.9.83"):
            out = lab.client.run(sys.executable, "-c", """
import http.client, sys
ok = 0
for _ in range(100):
    c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
    try:
        c.request("GET", "/who")
        ok += c.getresponse().status == 200
    except OSError:
        pass
    c.close()
print(ok)
""", vip, timeout=300).stdout
            assert int(out) == 100, vip
        st = lab.app.stats()
        assert st["counters"]["redirected"] > 0 and st["drops"]["redirect_full"] == 0
    finally:
        lab.close()


def test_fullnat_works_whatever_the_backends_routes(lab):
    """The backends lose their default route: only their own LAN is
    reachable, so NAT replies could not come back; FullNAT's can."""
    net = lab.app.net
    vip = f"{net}.9.83"
    for ns, _ in lab.backends:
        sh("ip", "netns", "exec", ns, "ip", "route", "del", "default")
    try:
        lab.app.call("add_service", vip, 80, method="fullnat", local_addresses=[f"{net}.1.1"],
                     backends=[(ip, 8080) for _, ip in lab.backends])
        out = lab.client.run(sys.executable, "-c", """
import http.client, json, sys
seen = []
for _ in range(60):
    c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
    c.request("GET", "/who")
    seen.append(c.getresponse().read().decode().strip())
    c.close()
print(json.dumps(seen))
""", vip, timeout=120).stdout
        seen = json.loads(out)
        assert len(seen) == 60 and len(set(seen)) == 3
        conns = lab.app.call("connections", vip=vip)
        assert conns and all(c[11] == f"{net}.1.1" and c[12] >= 1024 for c in conns)
    finally:
        for ns, _ in lab.backends:
            sh("ip", "netns", "exec", ns, "ip", "route", "add", "default", "via", f"{net}.1.1")


WHO_MANY = """
import http.client, json, sys
seen = []
for _ in range(int(sys.argv[3])):
    c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5)
    try:
        c.request("GET", "/who")
        seen.append(c.getresponse().read().decode().strip())
    except OSError as e:
        seen.append(f"error: {e}")
    c.close()
print(json.dumps(seen))
"""


def test_health_checks_through_the_exception_path_take_a_stopped_server_out(lab):
    """The appliance's health checker probes the backends from the host's
    kernel, through p1's kernel interface and the dataplane (never from the
    worker); a stopped HTTP server goes down after `fall` failures, gets no
    new connections, and comes back after `rise` once it serves again."""
    import grpc
    from pylb.v1 import pylb_pb2 as pb
    from pylb.v1 import pylb_pb2_grpc as pb_grpc
    vip = f"{lab.app.net}.9.90"
    key = pb.ServiceKey(vip=vip, port=80)
    with grpc.insecure_channel(lab.app.grpc) as ch:
        stub = pb_grpc.LoadBalancerStub(ch)
        # Servers of their own on 8081: a backend still holds the earlier tests'
        # connections on 8080 in TIME_WAIT (it closed them), and NAT shows it the
        # client's own address and port, which the client reuses freely for
        # another VIP: a SYN on such a tuple is refused for up to 60 s (PAWS).
        servers = {ns: subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", "8081", "--bind",
             "0.0.0.0", "--directory", os.path.join(lab.www, ns)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for ns, _ in lab.backends}
        stub.AddService(pb.Service(key=key, scheduler=pb.SCHEDULER_WRR,
                                   health_check=pb.HealthCheck(type="http", path="/who",
                                                               interval_ms=1000, timeout_ms=900,
                                                               rise=2, fall=3),
                                   backends=[pb.Backend(address=ip, port=8081)
                                             for _, ip in lab.backends]))

        def health():
            return [b.health for b in stub.GetService(key).backends]

        def wait(cond):
            for _ in range(400):
                if cond(health()):
                    return
                time.sleep(0.1)
            raise AssertionError(f"health {health()}")
        try:
            wait(lambda h: h == ["up", "up", "up"])
            victim_ns, _ = lab.backends[0]
            victim = servers[victim_ns]
            victim.terminate()
            victim.wait()
            wait(lambda h: h[0] == "down")
            assert stub.GetService(key).backends[0].state == pb.BACKEND_STATE_DOWN
            seen = json.loads(lab.client.run(sys.executable, "-c", WHO_MANY, vip, "80", "30",
                                             timeout=120).stdout)
            # The stopped server gets none, and every request is answered.
            errors = [x for x in seen if "error" in x]
            assert len(seen) == 30 and victim_ns not in seen and not errors, \
                (errors, health(), lab.app.stats()["drops"],
                 [c for c in lab.app.call("connections", vip=vip) if c[7] != "time_wait"])
            servers[victim_ns] = subprocess.Popen(victim.args, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL)
            wait(lambda h: h == ["up", "up", "up"])
            seen = json.loads(lab.client.run(sys.executable, "-c", WHO_MANY, vip, "80", "30",
                                             timeout=120).stdout)
            assert victim_ns in seen and not [x for x in seen if "error" in x], seen
        finally:
            for p in servers.values():
                p.terminate()
                p.wait()
        stub.DeleteService(key)


@pytest.mark.parametrize("method", ["dr", "tunnel"])
def test_a_backend_that_cannot_take_the_vips_traffic_is_marked_down(lab, method):
    """DR and tunnel: the last backend's server runs (its own address
    answers) but it lacks the VIP on its loopback, so it would blackhole
    every connection sent to it. The health check also probes through the
    data path (a SYN to the VIP by the backend's method): that backend
    goes down, the others stay up, and 300 of 300 requests succeed."""
    from pylb.v1 import pylb_pb2 as pb
    vip = f"{lab.app.net}.9.{ {'dr': 93, 'tunnel': 94}[method] }"
    for ns, _ in lab.backends[:2]:
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{vip}/32", "dev", "lo")
    api = lab.app.api()
    key = pb.ServiceKey(vip=vip, port=8080)
    api.AddService(pb.Service(
        key=key, method=getattr(pb, f"METHOD_{method.upper()}"),
        health_check=pb.HealthCheck(type="tcp", interval_ms=300, timeout_ms=250, rise=1, fall=1),
        backends=[pb.Backend(address=ip, port=8080) for _, ip in lab.backends]))
    try:
        for _ in range(200):
            health = [b.health for b in api.GetService(key).backends]
            if health == ["up", "up", "down"]:
                break
            time.sleep(0.1)
        assert health == ["up", "up", "down"]
        seen = json.loads(lab.client.run(sys.executable, "-c", WHO_MANY, vip, "8080", "300",
                                         timeout=300).stdout)
        assert len(seen) == 300 and set(seen) == {ns for ns, _ in lab.backends[:2]}, \
            [x for x in seen if "error" in x][:3]
        st = lab.app.stats()["counters"]
        assert st["probes_sent"] > 0 and st["probe_answers"] > 0
    finally:
        api.DeleteService(key)
        for ns, _ in lab.backends[:2]:
            sh("ip", "netns", "exec", ns, "ip", "addr", "del", f"{vip}/32", "dev", "lo")


def test_a_reload_breaks_no_connection_of_unchanged_services(lab):
    import grpc
    from pylb.v1 import pylb_pb2 as pb
    from pylb.v1 import pylb_pb2_grpc as pb_grpc
    a, b = f"{lab.app.net}.9.91", f"{lab.app.net}.9.92"
    ips = [ip for _, ip in lab.backends]

    def config(b_backends):
        return ("services:\n"
                f"  - {{vip: {a}, port: 9000, backends: [{', '.join(f'{ip}:9000' for ip in ips)}]}}\n"
                f"  - {{vip: {b}, port: 9000, backends: [{', '.join(f'{ip}:9000' for ip in b_backends)}]}}\n")
    with grpc.insecure_channel(lab.app.grpc) as ch:
        stub = pb_grpc.LoadBalancerStub(ch)
        # (The whole desired state: what earlier tests left is removed.)
        stub.ApplyConfig(pb.ApplyConfigRequest(yaml=config(ips[:1])))
        many = Many(lab.client.name, a, n=30, wait=5)
        ask = many.talk
        try:
            before = ask()
            assert len(set(before)) > 1 and "broken" not in before
            for step in (ips, ips[1:], ips[:1]):        # B changes three times; A does not
                changes = stub.ApplyConfig(pb.ApplyConfigRequest(yaml=config(step))).changes
                assert list(changes) == [f"set-backends {b}:9000/tcp"]
                assert ask() == before                  # 0 broken, every one on its backend
            # Removing B and adding C leaves A's connections alone too.
            c = config(ips[:1]).replace(b, f"{lab.app.net}.9.93")
            assert sorted(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=c)).changes) == \
                [f"add-service {lab.app.net}.9.93:9000/tcp", f"del-service {b}:9000/tcp"]
            assert ask() == before
        finally:
            many.close()
        for vip in (a, f"{lab.app.net}.9.93"):
            stub.DeleteService(pb.ServiceKey(vip=vip, port=9000))
