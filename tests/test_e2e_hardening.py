"""End to end for the hardening defects (issue 12), on the TAP lab with real
kernel TCP: new connections through a full connection table, a second
instance that fails to start without disturbing the first, health probes
that stay on the exception path, the TAP link seen from another namespace,
mbufs in the stats, and the files a killed run leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import grpc
import pytest

from appliance_harness import sh
from pylb import hostinfo
from pylb.v1 import pylb_pb2 as pb
from pylb.v1 import pylb_pb2_grpc as pb_grpc
from test_cli import ROOT, error_line, profile, pylb
from test_e2e_l3 import Lab
from test_e2e_l4 import WHO_MANY

# Opens N TCP connections and keeps them (the servers wait for a request).
HOLD = """
import socket, sys
held = [socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
        for _ in range(int(sys.argv[3]))]
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def lab():
    lab = Lab(connections={"capacity": 16})
    yield lab
    lab.close()


def test_new_connections_work_while_the_table_is_full(lab):
    """16 long-lived connections fill a table of 16; 30 new HTTP requests to
    a weighted round-robin NAT service all succeed, sent untracked by the
    consistent table (each reply translated back)."""
    vip = f"{lab.app.net}.9.70"
    lab.app.call("add_service", vip, 80, scheduler="wrr",
                 backends=[(ip, 8080) for _, ip in lab.backends])
    held = subprocess.Popen(["ip", "netns", "exec", lab.client.name, sys.executable, "-c", HOLD,
                             vip, "80", "16"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert held.stdout.readline().strip() == "ready"
        for _ in range(100):
            if lab.app.call("conn_count") >= 16:
                break
            time.sleep(0.1)
        assert lab.app.call("conn_count") == 16
        before = lab.app.call("totals")
        seen = json.loads(lab.client.run(sys.executable, "-c", WHO_MANY, vip, "80", "30",
                                         timeout=120).stdout)
        after = lab.app.call("totals")
        assert len(seen) == 30 and not [x for x in seen if "error" in x], seen
        assert set(seen) <= {ns for ns, _ in lab.backends}
        assert after["conn_table_full"] - before["conn_table_full"] >= 30
        assert after["nat_replies_untracked"] > before["nat_replies_untracked"]
    finally:
        held.kill()
        held.wait()
        lab.app.call("del_service", vip, 80)


def test_a_second_instance_that_cannot_start_leaves_the_first_alone(lab):
    """The same profile under another instance name: refused before anything
    is touched (its TAPs would have been the first instance's own, shared,
    re-addressed and brought down on the way out)."""
    kiface = lab.app.kernel_ifaces[1]
    before = sh("ip", "-o", "link", "show", kiface).stdout
    r = pylb("run", "--profile", lab.app.profile, "--instance", "second", timeout=120)
    assert r.returncode == 1 and "already exists (another appliance" in error_line(r)
    assert sh("ip", "-o", "link", "show", kiface).stdout == before     # up, same MAC
    assert not os.path.exists("/run/pylb/second.sock")


def test_health_probes_stay_on_the_exception_path(lab):
    """Probes leave bound to p1's kernel interface. When that interface no
    longer carries the port's MAC (what a failed second start used to do:
    it gave the interface its own port's MAC, so the kernel dropped every
    frame the appliance handed up, and every backend went down), the health
    reads `unavailable` and the backends' states are left as they are;
    once the MAC is back, they are checked again."""
    vip = f"{lab.app.net}.9.71"
    key = pb.ServiceKey(vip=vip, port=80)
    kiface = lab.app.kernel_ifaces[1]
    mac = sh("cat", f"/sys/class/net/{kiface}/address").stdout.strip()
    # Servers of their own (see test_e2e_l4's health test: the backends hold
    # the first test's tuples on 8080 in TIME_WAIT).
    servers = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server",
                                 "8082", "--bind", "0.0.0.0", "--directory",
                                 os.path.join(lab.www, ns)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for ns, _ in lab.backends]
    with grpc.insecure_channel(lab.app.grpc) as ch:
        stub = pb_grpc.LoadBalancerStub(ch)
        stub.AddService(pb.Service(key=key, health_check=pb.HealthCheck(
            type="http", path="/who", interval_ms=300, timeout_ms=250, rise=1, fall=2),
            backends=[pb.Backend(address=ip, port=8082) for _, ip in lab.backends]))

        def wait(want):
            for _ in range(200):
                got = [b.health for b in stub.GetService(key).backends]
                if got == [want] * 3:
                    return
                time.sleep(0.1)
            raise AssertionError(f"health {got}, wanted {want}")
        try:
            wait("up")
            sh("ip", "link", "set", kiface, "address", "02:00:00:00:99:99")
            wait("unavailable")
            time.sleep(1)
            s = stub.GetService(key)
            assert [b.state for b in s.backends] == [pb.BACKEND_STATE_UP] * 3
            seen = json.loads(lab.client.run(sys.executable, "-c", WHO_MANY, vip, "80", "6",
                                             timeout=120).stdout)
            assert len(seen) == 6 and not [x for x in seen if "error" in x], seen
            sh("ip", "link", "set", kiface, "address", mac)
            wait("up")
        finally:
            sh("ip", "link", "set", kiface, "address", mac)
            for p in servers:
                p.terminate()
                p.wait()
        stub.DeleteService(key)


def test_a_tap_moved_to_another_namespace_reads_link_up(lab):
    ports = lab.app.ports()
    assert all(p["link_up"] for p in ports.values()), ports
    out = pylb("ports", "--instance", lab.app.instance).stdout
    assert "link down" not in out and out.count("link up") == 2, out


def test_stats_show_the_mbufs_of_each_pool(lab):
    stats = lab.app.stats()
    pools = {k: v for k, v in stats["mbufs"].items() if not k.endswith("_size")}
    assert pools and all(0 < v < stats["mbufs"][k + "_size"] for k, v in pools.items())
    out = pylb("stats", "--instance", lab.app.instance).stdout
    assert "mbufs " in out and " in use of " in out
    with grpc.insecure_channel(lab.app.grpc) as ch:
        s = pb_grpc.LoadBalancerStub(ch).GetStats(pb.GetStatsRequest())
    assert s.mempools and all(p.size == p.available + p.in_use for p in s.mempools)


def test_a_killed_run_leaves_files_that_the_next_start_removes(tmp_path):
    prof = profile(tmp_path, "killed", ports=[{"name": "p0", "vdev": "net_null0",
                                              "addresses": ["10.77.0.1/24"]}])
    prefix = "pylb-killed"
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "running:" in line:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = hostinfo.instance_files(prefix)
    assert left and os.path.exists("/run/pylb/killed.sock")
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    log = []
    for line in p.stderr:
        log.append(line)
        if "running:" in line:
            break
    assert any("removed" in x and "previous run of 'pylb-killed' left behind" in x for x in log), log
    p.terminate()
    assert p.wait(60) == 0
    assert hostinfo.instance_files(prefix) == [] and not os.path.exists("/run/pylb/killed.sock")


def test_a_running_instance_without_telemetry_is_not_taken_for_a_dead_one(tmp_path):
    """The same instance started twice, the first without telemetry: the
    second sees the first's runtime files in use and refuses, removing none."""
    prof = profile(tmp_path, "quiet", eal_args=["--no-telemetry"],
                   ports=[{"name": "p0", "vdev": "net_null0", "addresses": ["10.77.0.1/24"]}])
    first = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof, "--grpc",
                              "none"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in first.stderr:
            if "running:" in line:
                break
        files = hostinfo.instance_files("pylb-quiet")
        assert files and hostinfo.instance_alive("pylb-quiet")
        r = pylb("run", "--profile", prof, "--grpc", "none", timeout=120)
        assert r.returncode == 1 and "is already running" in error_line(r)
        assert hostinfo.instance_files("pylb-quiet") == files and first.poll() is None
    finally:
        first.terminate()
        assert first.wait(60) == 0
    assert not hostinfo.instance_alive("pylb-quiet")
