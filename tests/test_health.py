"""Health checks on real sockets (loopback listeners as backends): TCP, HTTP and
UDP probes drive backend states in a real dataplane through the domain;
new connections avoid a backend marked down and come back after `rise`."""

from __future__ import annotations

import concurrent.futures
import http.server
import socket
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC
from pylb.model import BackendSpec, HealthCheckSpec, ServiceSpec
from pylb.health import HealthChecker, checker, probe_path
from pylb.manager import Manager, direct_submitter

VIP = "10.0.0.100"
FAST = dict(interval_ms=100, timeout_ms=80, rise=2, fall=2)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def listener(port=0) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)            # the kernel completes handshakes; nobody needs to accept
    return s


@pytest.fixture
def mgr(dp):
    submit = direct_submitter(dp)
    m = Manager(submit, health=checker(submit, anywhere=True))
    yield m, dp
    m.close()


def states(dp, port=80, proto="tcp"):
    return {(b.ip, b.port): b.state for b in dp.service(VIP, port, proto).backends}


def test_tcp_check_takes_a_dead_backend_out_and_back(mgr):
    m, dp = mgr
    a, b = listener(), listener()
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    m.add_service(ServiceSpec(VIP, 80, backends=(BackendSpec("127.0.0.1", pa),
                                                 BackendSpec("127.0.0.1", pb)),
                              health_check=HealthCheckSpec("tcp", **FAST)))
    wait_for(lambda: {x.health for x in m.service(VIP, 80, "tcp").backends} == {"up"})
    b.close()                                               # the server stops
    wait_for(lambda: states(dp)[("127.0.0.1", pb)] == "down")
    assert [x.health for x in m.service(VIP, 80, "tcp").backends] == ["up", "down"]
    syns = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP)
                / TCP(sport=p, dport=80, flags="S")) for p in range(1000, 1040)]
    dp.inject("p0", syns)                                   # (no route to 127/8: dropped)
    assert {c.bport for c in dp.connections()} == {pa}      # no new connection on the dead one
    b = listener(pb)                                        # it comes back
    wait_for(lambda: states(dp)[("127.0.0.1", pb)] == "up")
    dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.3", dst=VIP)
                         / TCP(sport=p, dport=80, flags="S")) for p in range(2000, 2040)])
    assert pb in {c.bport for c in dp.connections(client="10.0.0.3")}
    a.close()
    b.close()


def test_a_probe_that_raises_counts_as_failed_and_the_checks_go_on():
    """Whatever goes wrong around a probe (here: the dataplane's thread does
    not answer in time, as at a restart under load) counts as a failed
    probe: the backend's checks go on rather than stopping at their last
    verdict (issue 27.4: a restarted appliance's backends stayed down)."""
    s = listener()
    calls = []

    def path(ip):
        calls.append(ip)
        if len(calls) <= 3:
            raise concurrent.futures.TimeoutError()
        return "lo", ""
    verdicts = []
    hc = HealthChecker(lambda key, target, v: verdicts.append(v), path)
    try:
        hc.watch((VIP, 80, "tcp"), HealthCheckSpec("tcp", **FAST),
                 [("127.0.0.1", s.getsockname()[1])])
        wait_for(lambda: verdicts[-1:] == ["up"])
        assert verdicts == ["down", "up"] and len(calls) > 3
    finally:
        hc.close()
        s.close()


def test_a_verdict_the_dataplane_refused_is_sent_again():
    """A verdict that could not be put in force (the dataplane refused it,
    as while an appliance starts) is sent again at the next probe, not
    dropped until the backend changes (issue 27.4)."""
    s = listener()
    applied = []

    def set_state(key, target, verdict):
        if not applied:
            applied.append(None)
            raise RuntimeError("not yet")
        applied.append(verdict)
    hc = HealthChecker(set_state, lambda ip: ("lo", ""))
    try:
        hc.watch((VIP, 80, "tcp"), HealthCheckSpec("tcp", **FAST),
                 [("127.0.0.1", s.getsockname()[1])])
        wait_for(lambda: applied[1:] == ["up"])
        time.sleep(0.3)
        assert applied == [None, "up"]          # then in force: not sent again
        assert hc.status[(VIP, 80, "tcp"), ("127.0.0.1", s.getsockname()[1])] == "up"
    finally:
        hc.close()
        s.close()


def test_an_operators_drain_is_left_alone(mgr):
    m, dp = mgr
    s = listener()
    port = s.getsockname()[1]
    s.close()                                               # nothing listens: unhealthy
    m.add_service(ServiceSpec(VIP, 80, backends=(BackendSpec("127.0.0.1", port, 1, "drain"),),
                              health_check=HealthCheckSpec("tcp", **FAST)))
    wait_for(lambda: m.service(VIP, 80, "tcp").backends[0].health == "down")
    assert states(dp) == {("127.0.0.1", port): "drain"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_http_check_expects_its_status(mgr):
    m, dp = mgr
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    try:
        m.add_service(ServiceSpec(VIP, 80, backends=(BackendSpec("127.0.0.1", port),),
                                  health_check=HealthCheckSpec("http", path="/ok", **FAST)))
        m.add_service(ServiceSpec(VIP, 81, backends=(BackendSpec("127.0.0.1", port),),
                                  health_check=HealthCheckSpec("http", path="/missing", **FAST)))
        wait_for(lambda: m.service(VIP, 80, "tcp").backends[0].health == "up")
        wait_for(lambda: states(dp, 81)[("127.0.0.1", port)] == "down")
        assert states(dp, 80)[("127.0.0.1", port)] == "up"
    finally:
        srv.shutdown()


def test_udp_check_needs_an_answer(mgr):
    m, dp = mgr
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    port = echo.getsockname()[1]
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    quiet.bind(("127.0.0.1", 0))
    closed = quiet.getsockname()[1]
    quiet.close()                                           # ICMP port unreachable

    def serve():
        while True:
            try:
                data, peer = echo.recvfrom(2048)
            except OSError:
                return
            echo.sendto(data, peer)
    threading.Thread(target=serve, daemon=True).start()
    m.add_service(ServiceSpec(VIP, 53, proto="udp",
                              backends=(BackendSpec("127.0.0.1", port), BackendSpec("127.0.0.1", closed)),
                              health_check=HealthCheckSpec("udp", **FAST)))
    wait_for(lambda: [b.health for b in m.service(VIP, 53, "udp").backends] == ["up", "down"])
    assert states(dp, 53, "udp") == {("127.0.0.1", port): "up", ("127.0.0.1", closed): "down"}
    echo.close()


def test_probes_leave_only_through_the_exception_path(dp):
    """Without a kernel interface on the port towards a backend (or with no
    route to it), nothing is probed: the health reads `unavailable` and the
    backend's state is left as it is, rather than probing through whatever
    the host routes (here: loopback, where a listener would answer)."""
    submit = direct_submitter(dp)
    m = Manager(submit, health=checker(submit))
    try:
        s = listener()
        s.settimeout(0.5)
        dp.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:00")
        m.add_service(ServiceSpec(VIP, 80, backends=(BackendSpec("10.0.1.20", 80),
                                                     BackendSpec("127.0.0.1",
                                                                 s.getsockname()[1])),
                                  health_check=HealthCheckSpec("tcp", **FAST)))
        wait_for(lambda: [x.health for x in m.service(VIP, 80, "tcp").backends]
                 == ["unavailable", "unavailable"])
        time.sleep(0.5)
        assert set(states(dp).values()) == {"up"}
        with pytest.raises(socket.timeout):
            s.accept()                              # never probed through loopback
        assert probe_path(submit, "10.0.1.20") == (None, "port p1 has no kernel interface "
                                             "(kernel_iface): probes leave only through the "
                                             "appliance's exception path")
        s.close()
    finally:
        m.close()
