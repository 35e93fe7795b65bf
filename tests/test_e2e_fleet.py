"""End to end for a fleet: real BGP (BIRD 2 on the appliance, driven by pylb,
and BIRD 2 on a router namespace with BFD and ECMP into its kernel table),
real kernel TCP from the router's side through the route it learned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from appliance_harness import Appliance, Netns, Router, sh
from pylb.v1 import pylb_pb2 as pb

pytestmark = pytest.mark.skipif(subprocess.run(["which", "bird"], capture_output=True).returncode,
                                reason="BIRD 2 (bird2) is not installed: make deps")

GET = """
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}/", timeout=5).read().decode().strip())
"""


def with_bgp(app: Appliance, routers: list[str], **settings) -> None:
    """Give the appliance's profile a bgp section peering with `routers` on p0."""
    with open(app.profile) as f:
        prof = yaml.safe_load(f)
    prof["bgp"] = {"local_as": 65001, "peers": [{"address": r, "as": 65000, "port": "p0"}
                                                 for r in routers], **settings}
    with open(app.profile, "w") as f:
        yaml.safe_dump(prof, f)


class Site:
    """One appliance behind a router namespace (on p0), one backend
    namespace (on p1) serving HTTP on 8081."""

    def __init__(self, withdraw_wait_ms=3000):
        self.app = Appliance(kernel=True)
        net = self.app.net
        self.router_ip, self.vip = f"{net}.0.2", f"{net}.9.100"
        with_bgp(self.app, [self.router_ip], withdraw_wait_ms=withdraw_wait_ms)
        self.www = tempfile.mkdtemp(prefix="pylb-www-")
        with open(os.path.join(self.www, "index.html"), "w") as f:
            f.write("backend\n")
        self.r = self.b = self.router = self.server = None
        try:
            self.app.start()
            self.r = Netns(f"r{self.app.instance}", self.app.ifaces[0], f"{net}.0.2/24")
            self.b = Netns(f"b{self.app.instance}", self.app.ifaces[1], f"{net}.1.2/24")
            self.b.run("ip", "route", "add", "default", "via", f"{net}.1.1")
            self.router = Router(self.r, self.router_ip, [(self.router_ip, f"{net}.0.1", 65001)])
            self.serve()
        except BaseException:
            self.close()
            raise

    def serve(self):
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.b.name, sys.executable, "-m", "http.server", "8081",
             "--bind", "0.0.0.0", "--directory", self.www],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def unserve(self):
        self.server.terminate()
        self.server.wait()

    def close(self):
        if self.server is not None:
            self.unserve()
        self.app.stop()
        for x in (self.router, self.r, self.b):
            if x is not None:
                x.close()


@pytest.fixture(scope="module")
def site():
    s = Site()
    yield s
    s.close()


def bgp(stub) -> tuple[dict, list]:
    r = stub.GetBgp(pb.GetBgpRequest())
    return {a.prefix: (a.announced, a.why) for a in r.announcements}, list(r.peers)


def test_a_vip_is_announced_while_healthy_and_serves_through_the_route(site):
    stub = site.app.api()
    stub.AddService(pb.Service(
        key=pb.ServiceKey(vip=site.vip, port=80), backends=[pb.Backend(address=f"{site.app.net}.1.2",
                                                                      port=8081)],
        health_check=pb.HealthCheck(type="http", path="/", interval_ms=300, timeout_ms=250,
                                    rise=2, fall=2)))
    prefix = f"{site.vip}/32"
    site.router.wait(prefix, lambda hops: hops == [f"{site.app.net}.0.1"])
    announced, peers = bgp(stub)
    assert announced[prefix][0] and "1 of 1 backends up" in announced[prefix][1]
    (peer,) = peers
    assert (peer.address, peer.remote_as, peer.state) == (site.router_ip, 65000, "Established")
    deadline = time.monotonic() + 10
    while bgp(stub)[1][0].bfd != "Up":
        assert time.monotonic() < deadline, bgp(stub)[1]
        time.sleep(0.1)
    # The router's own kernel reaches the service by the learned route.
    assert site.r.run(sys.executable, "-c", GET, site.vip).stdout.strip() == "backend"


def test_all_backends_down_withdraws_and_back_announces(site):
    stub = site.app.api()
    prefix = f"{site.vip}/32"
    site.router.wait(prefix, lambda hops: len(hops) == 1)
    site.unserve()
    # fall (2) x interval (0.3 s) + a probe's timeout, then BIRD's update.
    took = site.router.wait(prefix, lambda hops: hops == [], timeout=10)
    assert took < 4, took
    announced, _ = bgp(stub)
    assert announced[prefix] == (False, f"withdrawn: 0 of 1 backends up in {site.vip}:80/tcp "
                                        "(needs 1)")
    site.serve()
    site.router.wait(prefix, lambda hops: len(hops) == 1, timeout=15)
    assert bgp(stub)[0][prefix][0]


def test_the_operator_withdraws_and_announces_again(site):
    from test_cli import ROOT
    prefix = f"{site.vip}/32"
    site.router.wait(prefix, lambda hops: len(hops) == 1)

    def ctl(*args):
        return subprocess.run([sys.executable, "-m", "pylb.ctl", "--address", site.app.grpc, *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=30)
    r = ctl("bgp", "withdraw", site.vip)
    assert r.returncode == 0 and f"{prefix}" in r.stdout and "withdrawn by the operator" in r.stdout
    site.router.wait(prefix, lambda hops: hops == [])
    cfg = site.app.api().GetConfig(pb.GetConfigRequest()).yaml
    assert yaml.safe_load(cfg)["announce"]["withdrawn"] == [prefix]
    r = ctl("bgp", "announce", site.vip)
    assert r.returncode == 0 and "announced" in r.stdout
    site.router.wait(prefix, lambda hops: len(hops) == 1)
    out = ctl("bgp").stdout
    assert f"peer {site.router_ip} AS 65000: Established bfd Up" in out, out
    r = ctl("bgp", "withdraw", "10.0.0.1/8")
    assert r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr


def test_sigterm_withdraws_before_the_appliance_stops(site):
    prefix = f"{site.vip}/32"
    site.router.wait(prefix, lambda hops: len(hops) == 1)
    site.app.proc.send_signal(signal.SIGTERM)
    took = site.router.wait(prefix, lambda hops: hops == [], timeout=10)
    # Gone from the router while the appliance still serves (it waits
    # withdraw_wait_ms, 3 s, before stopping).
    assert site.app.proc.poll() is None and took < 2.5, took
    assert site.app.proc.wait(30) == 0
    assert any("every VIP withdrawn" in line for line in site.app.stderr)
    site.app.proc = None
