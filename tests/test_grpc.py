"""The management API: every RPC against a real server over a real channel (a
unix socket) on a real dataplane, the status codes of bad input, the standard
health and reflection services, `pylb run` serving it, and `pylbctl`."""

from __future__ import annotations

import argparse

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC
from pylb.errors import NotFound
from pylb.model import VipSpec
from pylb.v1 import pylb_pb2 as pb
from test_cli import ROOT, profile

VIP = "10.0.0.100"
KEY = pb.ServiceKey(vip=VIP, port=53, protocol=pb.PROTOCOL_UDP)


def code_of(call, *args) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call(*args)
    return e.value.code(), e.value.details()


def test_services_and_backends_round_trip(api):
    stub, dp, _ = api
    s = stub.AddService(pb.Service(key=KEY, scheduler=pb.SCHEDULER_WLC, down_reset=True,
                                   backends=[pb.Backend(address="10.0.1.20", port=5353, weight=2)]))
    assert (s.key.vip, s.key.port, s.key.protocol, s.method, s.scheduler, s.table_size, s.down_reset) \
        == (VIP, 53, pb.PROTOCOL_UDP, pb.METHOD_NAT, pb.SCHEDULER_WLC, 65537, True)
    assert [(b.address, b.port, b.weight, b.state) for b in s.backends] == \
        [("10.0.1.20", 5353, 2, pb.BACKEND_STATE_UP)]
    # What the dataplane has is what the API says.
    assert dp.service(VIP, 53, "udp").backends[0].weight == 2
    s = stub.SetBackend(pb.SetBackendRequest(service=KEY, backend=pb.Backend(
        address="10.0.1.21", port=5353, weight=1)))
    s = stub.SetBackend(pb.SetBackendRequest(service=KEY, backend=pb.Backend(
        address="10.0.1.20", port=5353, weight=2, state=pb.BACKEND_STATE_DRAIN)))
    assert [(b.address, b.state) for b in s.backends] == \
        [("10.0.1.20", pb.BACKEND_STATE_DRAIN), ("10.0.1.21", pb.BACKEND_STATE_UP)]
    assert [b.state for b in dp.service(VIP, 53, "udp").backends] == ["drain", "up"]
    # Traffic: the flow is listed (streamed) and counted per backend.
    frame = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / UDP(sport=999, dport=53)
    (_, out), = dp.inject("p0", [raw(frame)])
    assert Ether(out)[IP].dst == "10.0.1.21"
    flows = list(stub.ListFlows(pb.ListFlowsRequest(vip=VIP)))
    assert [(f.client, f.client_port, f.backend, f.backend_port, f.state, f.protocol)
            for f in flows] == [("10.0.0.2", 999, "10.0.1.21", 5353, "none", pb.PROTOCOL_UDP)]
    assert list(stub.ListFlows(pb.ListFlowsRequest(client="10.0.0.3"))) == []
    dp.add_neighbour("p0", "10.0.0.2", CLIENT_MAC)
    reply = Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:01:01") / IP(src="10.0.1.21",
                                                                          dst="10.0.0.2") / \
        UDP(sport=5353, dport=999) / (b"x" * 10)
    assert len(dp.inject("p1", [raw(reply)])) == 1
    got = stub.GetService(KEY)
    assert [(b.address, b.active_connections) for b in got.backends] == \
        [("10.0.1.20", 0), ("10.0.1.21", 1)]
    st = got.stats                                          # like ipvsadm --stats
    assert (st.connections, st.in_packets, st.in_bytes, st.out_packets, st.out_bytes) == \
        (1, 1, 28, 1, 38)

    def figures(st):
        return st.connections, st.in_packets, st.in_bytes, st.out_packets, st.out_bytes
    assert [figures(b.stats) for b in got.backends] == [(0, 0, 0, 0, 0), (1, 1, 28, 1, 38)]
    assert [x.key.port for x in stub.ListServices(pb.ListServicesRequest()).services] == [53]
    s = stub.DeleteBackend(pb.BackendKey(service=KEY, address="10.0.1.20", port=5353))
    assert [b.address for b in s.backends] == ["10.0.1.21"]
    assert figures(s.backends[0].stats) == (1, 1, 28, 1, 38)   # kept across the change
    assert len(dp.inject("p0", [raw(frame)])) == 1
    assert figures(stub.GetService(KEY).backends[0].stats) == (1, 2, 56, 1, 38)
    stub.DeleteService(KEY)
    assert dp.services() == []


def test_timeouts_change_while_running(api):
    stub, dp, _ = api
    assert stub.GetTimeouts(pb.GetTimeoutsRequest()) == pb.Timeouts(
        tcp_syn=60, tcp_established=900, tcp_fin=120, tcp_close=10, udp=300)
    stub.AddService(pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", port=5353)]))
    frame = raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / UDP(sport=999, dport=53))
    dp.inject("p0", [frame])
    assert 299_000 < dp.connections()[0].expires_ms <= 300_000
    t = stub.SetTimeouts(pb.Timeouts(udp=20))              # the others stay
    assert (t.udp, t.tcp_established) == (20, 900)
    dp.inject("p0", [frame])                                # takes it at its next packet
    assert 19_000 < dp.connections()[0].expires_ms <= 20_000
    got, details = code_of(stub.SetTimeouts, pb.Timeouts(tcp_fin=0))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "tcp_fin" in details
    got, details = code_of(stub.SetTimeouts, pb.Timeouts(udp=10**8))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "from 1 to 2592000" in details
    assert stub.GetTimeouts(pb.GetTimeoutsRequest()).udp == 20


def test_stats_are_grouped_in_a_stable_order_with_zeros_hidden(api):
    """pylbctl stats: traffic, connections, defences, fleet, inspection, then errors
    (drops by reason); within a group a stable order (STAT_GROUPS'); zeros only
    with --all; every counter the dataplane and sync have belongs to a
    group."""
    from pylb import _native, ctl, sync
    stub, dp, _ = api
    frame = raw(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP())
    dp.inject("p0", [frame])
    text = ctl.render_stats(stub.GetStats(pb.GetStatsRequest()))
    lines = text.splitlines()
    heads = [line.split(" (")[0] for line in lines if not line.startswith(" ")]
    assert heads[:3] == ["traffic", "connections", "errors"], text
    assert [line.split() for line in lines[1:3]] == [["rx_bytes", str(len(frame))],
                                                     ["rx_packets", "1"]]
    assert "  eth_other_host" in text
    assert all(not line.startswith("  ") or line.split()[-1] != "0" for line in lines)
    everything = ctl.render_stats(stub.GetStats(pb.GetStatsRequest()), everything=True)
    heads = [line.split(" (")[0] for line in everything.splitlines() if not line.startswith(" ")]
    assert heads[:6] == ["traffic", "connections", "defences", "fleet", "inspection", "errors"]
    names = [line.split()[0] for line in everything.splitlines() if line.startswith("  ")]
    counters = [n for n in _native.COUNTER_NAMES if n not in _native.DROP_REASONS]
    assert [n for n in names if n in counters] == sorted(counters, key=ctl.stat_place)
    assert [n for n in [*counters, *sync.COUNTERS, "sync_notes_lost"]
            if ctl.stat_group(n) is None] == []


def test_routes_and_stats(api):
    stub, dp, _ = api
    r = stub.AddRoute(pb.Route(prefix="192.0.2.0/24", next_hops=[pb.NextHop(gateway="10.0.1.20",
                                                                            port="p1")]))
    assert (r.prefix, r.kind, r.next_hops[0].gateway, r.next_hops[0].port) == \
        ("192.0.2.0/24", "gateway", "10.0.1.20", "p1")
    routes = {x.prefix: x.kind for x in stub.ListRoutes(pb.ListRoutesRequest()).routes}
    assert routes["192.0.2.0/24"] == "gateway" and routes["10.0.0.0/24"] == "connected"
    assert routes["2001:db8::/64"] == "connected"
    assert all(":" not in p for p in (x.prefix for x in stub.ListRoutes(pb.ListRoutesRequest(
        family=4)).routes))
    stub.DeleteRoute(pb.RouteKey(prefix="192.0.2.0/24"))
    with pytest.raises(NotFound):
        dp.lookup("192.0.2.1")
    dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP())])
    s = stub.GetStats(pb.GetStatsRequest())
    assert s.counters["rx_packets"] == 1 and s.drops["eth_other_host"] == 1
    assert len(s.lcores) == 1 and s.lcores[0].counters["rx_packets"] == 1
    watch = stub.WatchStats(pb.WatchStatsRequest(interval_ms=100))
    first, second = next(watch), next(watch)
    watch.cancel()
    assert second.timestamp_ms - first.timestamp_ms >= 90


@pytest.mark.parametrize("call, request_, code, says", [
    ("AddRoute", pb.Route(prefix="10.0.0.1/8", next_hops=[pb.NextHop(port="p1")]),
     grpc.StatusCode.INVALID_ARGUMENT, "host bits"),
    ("AddRoute", pb.Route(prefix="198.51.100.0/24"), grpc.StatusCode.INVALID_ARGUMENT, "next hop"),
    ("GetService", pb.ServiceKey(vip=VIP, port=80), grpc.StatusCode.NOT_FOUND, "no service"),
    ("GetService", pb.ServiceKey(vip="10.0.0.300", port=80), grpc.StatusCode.INVALID_ARGUMENT,
     "vip: expected an IPv4 or IPv6 address, got '10.0.0.300'"),
    ("AddService", pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20"),
                                                 pb.Backend(address="10.0.1.20")]),
     grpc.StatusCode.INVALID_ARGUMENT, "listed twice"),
    ("AddService", pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", weight=70000)]),
     grpc.StatusCode.INVALID_ARGUMENT, "backends[0].weight: expected an integer from 0 to 65535, got 70000"),
    ("AddService", pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.%d" % (i % 250),
                                                            port=1000 + i) for i in range(4097)]),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "at most"),
    ("DeleteBackend", pb.BackendKey(service=KEY, address="10.0.1.20"), grpc.StatusCode.NOT_FOUND,
     "no service"),
])
def test_bad_input_gets_the_canonical_status(api, call, request_, code, says):
    stub, dp, _ = api
    got, details = code_of(getattr(stub, call), request_)
    assert got == code and says in details
    assert dp.services() == []          # all or nothing


def test_health_check_settings_round_trip(api):
    stub, _, _ = api
    s = stub.AddService(pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", port=5353)],
                                   health_check=pb.HealthCheck(type="udp", interval_ms=500)))
    h = s.health_check
    assert (h.type, h.interval_ms, h.timeout_ms, h.rise, h.fall, h.path) == ("udp", 500, 500, 2, 3, "/")
    assert [b.health for b in stub.GetService(KEY).backends] == ["unknown"]
    got, details = code_of(stub.AddService, pb.Service(
        key=pb.ServiceKey(vip=VIP, port=54), health_check=pb.HealthCheck(type="icmp")))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "icmp" in details


def test_a_duplicate_service_is_already_exists(api):
    stub, _, _ = api
    stub.AddService(pb.Service(key=KEY))
    assert code_of(stub.AddService, pb.Service(key=KEY))[0] == grpc.StatusCode.ALREADY_EXISTS


def test_health_and_reflection(api):
    _, _, ch = api
    health = health_pb2_grpc.HealthStub(ch)
    for name in ("", "pylb.v1.LoadBalancer"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
            health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    (reply,) = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
        list_services="")]))
    names = {s.name for s in reply.list_services_response.service}
    assert {"pylb.v1.LoadBalancer", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_metrics_in_ipvs_exporter_style(api, manager):
    from prometheus_client import generate_latest
    from pylb import metrics
    stub, dp, _ = api
    stub.AddService(pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", port=5353,
                                                             weight=3),
                                                  pb.Backend(address="10.0.1.21", port=5353,
                                                             state=pb.BACKEND_STATE_DOWN)]))
    frame = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / UDP(sport=999, dport=53)
    dp.inject("p0", [raw(frame), raw(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP())])
    manager.add_vip(VipSpec("203.0.113.10/32", backends=(("10.0.1.20", 1),)))
    text = generate_latest(metrics.registry(manager)).decode()
    # The lookup tables' fingerprints, as GetService shows them.
    fp = stub.GetService(KEY).table_fingerprint
    assert fp == dp.service_fingerprint(VIP, 53, "udp") and len(fp) == 16
    assert f'pylb_service_table_info{{fingerprint="{fp}",local_address="10.0.0.100",' \
        'local_port="53",proto="udp"} 1.0' in text
    assert f'pylb_vip_table_info{{fingerprint="{dp.vip_fingerprint("203.0.113.10/32")}",' \
        'prefix="203.0.113.10/32"} 1.0' in text
    # Announcements (no speaker here: decided all the same).
    assert 'pylb_vip_announced{prefix="10.0.0.100/32"} 1.0' in text
    assert 'pylb_vip_announced{prefix="203.0.113.10/32"} 1.0' in text
    labels = 'local_address="10.0.0.100",local_port="53",proto="udp",remote_address="10.0.1.20",' \
        'remote_port="5353"'
    for line in (f"pylb_ipvs_backend_connections_active{{{labels}}} 1.0",
                 f"pylb_ipvs_backend_weight{{{labels}}} 3.0",
                 f"pylb_ipvs_backend_up{{{labels}}} 1.0",
                 'pylb_ipvs_backend_state{local_address="10.0.0.100",local_port="53",proto="udp",'
                 'remote_address="10.0.1.21",remote_port="5353",state="down"} 1.0',
                 "pylb_ipvs_connections_total 1.0", "pylb_ipvs_incoming_packets_total 2.0",
                 "pylb_conntrack_entries 1.0", "pylb_conntrack_table_full_total 0.0",
                 'pylb_drops_total{reason="eth_other_host"} 1.0', "pylb_forwarded_total 1.0",
                 'pylb_port_rx_packets_total{port="p0"} 0.0', 'pylb_lcore_busy_cycles_total{lcore="0"}',
                 'pylb_ipvs_service_incoming_packets_total{local_address="10.0.0.100",'
                 'local_port="53",proto="udp"} 1.0'):
        assert line in text, line
    # Every mbuf is back: the pool's in-use figure is 0, its available one the pool's size.
    pool = dp.mempools()[0]
    assert f'pylb_mempool_mbufs{{pool="{pool["name"]}",socket="{pool["socket"]}",' \
        'state="in_use"} 0.0' in text
    assert f'state="available"}} {float(pool["size"])}' in text


IPVS_GOLDEN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.78.0.100:80 wrr persistent 300 mask 255.255.255.0
  -> 10.78.1.11:8080              Masq    2      0          0
  -> 10.78.1.12:8080              Masq    0      0          0
UDP  10.78.0.100:53 mh
  -> 10.78.1.11:53                Route   1      0          0
"""


IPVS_STATS_GOLDEN = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.78.0.100:80                      0        0        0        0        0
  -> 10.78.1.11:8080                     0        0        0        0        0
  -> 10.78.1.12:8080                     0        0        0        0        0
UDP  10.78.0.100:53                      0        0        0        0        0
  -> 10.78.1.11:53                       0        0        0        0        0
"""


@pytest.mark.e2e        # the appliance on TAP ports
def test_pylb_run_serves_the_api_and_pylbctl_drives_it(tmp_path):
    prof = profile(tmp_path, "grpcrun", ports=[
        {"name": "p0", "vdev": "net_tap0,iface=grpcrun0", "addresses": ["10.78.0.1/24"]},
        {"name": "p1", "vdev": "net_tap1,iface=grpcrun1", "addresses": ["10.78.1.1/24"]}])
    sock = tmp_path / "api.sock"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof,
                          "--grpc", f"unix:{sock}", "--metrics", f"127.0.0.1:{mport}"],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)

    def ctl(*args):
        return subprocess.run([sys.executable, "-m", "pylb.ctl", "--address", f"unix:{sock}", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    try:
        for line in p.stderr:
            if "running:" in line:
                break
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{sock}") as ch:
            assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == \
                health_pb2.HealthCheckResponse.SERVING
        r = ctl("service", "add", "10.78.0.100:80", "--scheduler", "wrr", "--persistence", "300",
                "--persistence-prefix", "24", "--backend", "10.78.1.11:8080",
                "--backend", "10.78.1.12:8080")
        assert r.returncode == 0, r.stderr
        assert ctl("backend", "set-weight", "10.78.0.100:80", "10.78.1.11:8080", "2").returncode == 0
        assert ctl("backend", "drain", "10.78.0.100:80", "10.78.1.12:8080").returncode == 0
        assert ctl("service", "add", "10.78.0.100:53/udp", "--method", "dr",
                   "--backend", "10.78.1.11").returncode == 0
        assert ctl("ipvs", "-L", "-n").stdout == IPVS_GOLDEN
        assert ctl("ipvs", "-L", "-n", "--stats").stdout == IPVS_STATS_GOLDEN
        assert ctl("timeouts", "set", "--udp", "30").returncode == 0
        assert ctl("ipvs", "-L", "--timeout").stdout == "Timeout (tcp tcpfin udp): 900 120 30\n"
        assert ctl("timeouts").stdout == \
            "tcp_syn 60  tcp_established 900  tcp_fin 120  tcp_close 10  udp 30\n"
        listing = json.loads(ctl("-o", "json", "service", "list").stdout)
        assert [(s["key"]["port"], [b["state"] for b in s["backends"]]) for s in listing] == \
            [(80, ["BACKEND_STATE_UP", "BACKEND_STATE_DRAIN"]), (53, ["BACKEND_STATE_UP"])]
        r = ctl("service", "add", "10.78.0.100:443", "--method", "tunnel",
                "--tunnel-source", "10.200.0.0/16", "--backend", "10.78.1.11")
        assert r.returncode == 0 and "tunnel-source 10.200.0.0/16" in r.stdout, r.stderr
        assert "tunnel-source 10.200.0.0/16" in ctl("service", "get", "10.78.0.100:443").stdout
        r = ctl("service", "add", "10.78.0.100:444", "--tunnel-source", "10.200.0.0/16")
        assert r.returncode != 0 and "tunnel_source: an outer source is for tunnel" in r.stderr
        assert ctl("service", "del", "10.78.0.100:443").returncode == 0
        r = ctl("backend", "add", "10.78.0.100:80", "10.78.1.13:8080", "--weight", "70000")
        assert r.returncode == 1 and r.stderr.startswith("pylbctl: error: INVALID_ARGUMENT: ") \
            and "got 70000" in r.stderr
        r = ctl("service", "del", "10.78.0.100:81")
        assert r.returncode == 1 and "NOT_FOUND: no service 10.78.0.100:81/tcp" in r.stderr
        # Defences: an ACL from a file, a service naming it with a limit and cookies.
        listed = tmp_path / "blocked.txt"
        listed.write_text("198.51.100.0/24\n# a comment\n2001:db8:bad::/48\n")
        r = ctl("acl", "set", "blocked", "--action", "reset", "--prefix-file", str(listed),
                "--prefix", "192.0.2.0/25")
        assert r.returncode == 0 and r.stdout == "blocked: 3 prefixes\n", r.stderr
        assert ctl("service", "add", "10.78.0.100:443", "--acl", "blocked", "--max-per-client", "5",
                   "--syn-proxy", "always").returncode == 0
        assert "10.78.0.100:443/tcp nat maglev syn-proxy always acls blocked" in \
            ctl("service", "list").stdout
        assert ctl("service", "add", "10.78.0.100:8443", "--method", "fullnat",
                   "--local-address", "10.78.1.1", "--proxy-protocol", "v2").returncode == 0
        assert "10.78.0.100:8443/tcp fullnat maglev proxy-protocol v2" in \
            ctl("service", "list").stdout
        # A backend's upper threshold: set at add, changed, kept by other changes.
        assert ctl("backend", "add", "10.78.0.100:443", "10.78.1.11:8443",
                   "--max-connections", "100").returncode == 0
        assert ctl("backend", "set-max-connections", "10.78.0.100:443", "10.78.1.11:8443",
                   "250").returncode == 0
        assert ctl("backend", "set-weight", "10.78.0.100:443", "10.78.1.11:8443",
                   "3").returncode == 0
        assert "weight 3     up    active 0 inactive 0 max 250" in \
            ctl("service", "list").stdout
        r = ctl("service", "set-limits", "10.78.0.100:443", "--max-per-client", "8",
                "--max-new-per-second", "1000")
        assert r.returncode == 0 and "max-new-per-second 1000 max-per-client 8" in r.stdout, r

        assert ctl("acl", "list").stdout.split() == ["blocked", "deny", "reset", "listed", "3",
                                                    "prefixes"]
        r = ctl("acl", "del", "blocked")
        assert r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr
        assert ctl("service", "del", "10.78.0.100:443").returncode == 0
        assert ctl("acl", "del", "blocked").returncode == 0 and ctl("acl", "list").stdout == ""
        assert ctl("route", "add", "192.0.2.0/24", "--via", "10.78.1.254@p1").returncode == 0
        routes = json.loads(ctl("-o", "json", "route", "list", "--family", "4").stdout)
        assert {"prefix": "192.0.2.0/24", "kind": "gateway", "inspect": "",
                "next_hops": [{"gateway": "10.78.1.254", "port": "p1"}]} in routes
        assert json.loads(ctl("-o", "json", "flows").stdout) == []
        assert ctl("vip", "add", "203.0.113.10/32", "--backend", "10.78.1.11*2").returncode == 0
        vip = ctl("vip", "list").stdout.split()
        assert vip[:4] + vip[5:] == ["203.0.113.10/32", "ipip", "table", "65537",
                                     "backends", "10.78.1.11*2"] and len(vip[4]) == 16
        assert ctl("neigh", "add", "p1", "10.78.1.40", "02:00:00:00:0c:01").returncode == 0
        assert "10.78.1.40" in ctl("neigh", "list").stdout
        assert [p["name"] for p in json.loads(ctl("-o", "json", "port", "list").stdout)] == \
            ["p0", "p1"]
        running = ctl("config", "get").stdout
        assert "vip: 10.78.0.100" in running and "192.0.2.0/24" in running
        (tmp_path / "running.yaml").write_text(running)
        assert ctl("config", "diff", str(tmp_path / "running.yaml")).stdout == "no changes\n"
        (tmp_path / "less.yaml").write_text(running.replace("port: 53", "port: 54"))
        r = ctl("config", "apply", str(tmp_path / "less.yaml"))
        assert r.stdout.splitlines() == ["del-service 10.78.0.100:53/udp",
                                         "add-service 10.78.0.100:54/udp"], r.stderr
        assert "rx_packets" in json.loads(ctl("-o", "json", "stats").stdout)["counters"]
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
        assert 'pylb_ipvs_backend_weight{local_address="10.78.0.100",local_port="80",proto="tcp",' \
            'remote_address="10.78.1.11",remote_port="8080"} 2.0' in scrape
        assert 'pylb_ipvs_backend_incoming_packets_total{local_address="10.78.0.100",local_port="80",' \
            'proto="tcp",remote_address="10.78.1.11",remote_port="8080"} 0.0' in scrape
        assert 'pylb_port_rx_packets_total{port="p0"}' in scrape
        page = urllib.request.urlopen(f"http://127.0.0.1:{mport}/status", timeout=10).read().decode()
        assert "<title>pylb status</title>" in page and "10.78.0.100:80/tcp" in page
    finally:
        p.terminate()
        p.wait(60)
    assert p.returncode == 0 and not sock.exists()


DESIRED = """\
services:
  - vip: 10.0.0.100
    port: 53
    proto: udp
    backends: ["10.0.1.20:5353", "10.0.1.21:5353"]
  - vip: 10.0.0.101
    port: 80
    scheduler: wrr
    health_check: {type: tcp, interval_ms: 500}
    backends: [{address: "10.0.1.22:8080", weight: 2}]
routes:
  - {prefix: 192.0.2.0/24, via: [{gateway: 10.0.1.20, port: p1}]}
vips:
  - {prefix: 10.0.3.0/24, method: gre, backends: [10.0.1.30, {address: 10.0.1.31, weight: 3}]}
neighbours:                      # the fixture's, and one more
  - {port: p1, address: 10.0.1.20, mac: "02:00:00:00:0b:00"}
  - {port: p1, address: 10.0.1.21, mac: "02:00:00:00:0b:01"}
  - {port: p1, address: 10.0.1.22, mac: "02:00:00:00:0b:02"}
  - {port: p1, address: 10.0.1.40, mac: "02:00:00:00:01:40"}
timeouts: {udp: 120}
"""


def test_apply_config_is_a_minimal_all_or_nothing_diff(api):
    from pylb.config import load_config
    stub, dp, _ = api
    r = stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED, dry_run=True))
    assert list(r.changes) == ["add-neighbour 10.0.1.40 on p1", "add-route 192.0.2.0/24",
                               "add-service 10.0.0.100:53/udp", "add-service 10.0.0.101:80/tcp",
                               "add-vip 10.0.3.0/24", "set-timeouts udp=120"]
    assert dp.services() == [] and dp.vips() == []              # a dry run changes nothing
    assert len(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED)).changes) == 6
    assert dp.timeouts()["udp"] == 120 and dp.timeouts()["tcp_established"] == 900
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED)).changes) == []
    assert [(v.prefix, v.method, v.backends) for v in dp.vips()] == \
        [("10.0.3.0/24", "gre", (("10.0.1.30", 1), ("10.0.1.31", 3)))]
    assert any(n.ip == "10.0.1.40" and n.state == "static" for n in dp.neighbours())
    # GetConfig returns the model: what was asked for (the timeouts it
    # manages, not the profile's), in one order.
    running = stub.GetConfig(pb.GetConfigRequest()).yaml
    assert load_config("a", text=running) == load_config("a", text=DESIRED).normalised()
    # A route's next hops change in one step.
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED.replace(
        "gateway: 10.0.1.20", "gateway: 10.0.1.21"))).changes) == ["replace-route 192.0.2.0/24"]
    assert [[(h.gateway, h.port) for h in r.nexthops] for r in dp.routes(4)
            if r.prefix == "192.0.2.0/24"] == [[("10.0.1.21", 1)]]
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED)).changes) == \
        ["replace-route 192.0.2.0/24"]
    # A VIP's backends change in place.
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(
        yaml=DESIRED.replace("10.0.1.30, ", ""))).changes) == ["set-vip-backends 10.0.3.0/24"]
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=DESIRED)).changes) == \
        ["set-vip-backends 10.0.3.0/24"]
    # Traffic on the UDP service; then only the other service's backends change.
    frames = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP)
                  / UDP(sport=p, dport=53)) for p in range(1000, 1020)]
    dp.inject("p0", frames)
    before = {(c.cport, c.backend) for c in dp.connections(vip=VIP)}
    changed = DESIRED.replace('weight: 2}]', 'weight: 2}, "10.0.1.23:8080"]')
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=changed)).changes) == \
        ["set-backends 10.0.0.101:80/tcp"]
    assert {(c.cport, c.backend) for c in dp.connections(vip=VIP)} == before
    assert [Ether(f)[IP].dst for _, f in dp.inject("p0", frames)] == \
        [b for _, b in sorted(before)]                          # every flow kept its backend
    # Limits change in place too: the open flows stay.
    limited = changed.replace("    proto: udp\n", "    proto: udp\n    max_connections: 500\n")
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=limited)).changes) == \
        ["set-limits 10.0.0.100:53/udp"]
    assert {(c.cport, c.backend) for c in dp.connections(vip=VIP)} == before
    assert dp.service(VIP, 53, "udp").max_connections == 500
    s = stub.SetServiceLimits(pb.ServiceLimits(service=pb.ServiceKey(
        vip=VIP, port=53, protocol=pb.PROTOCOL_UDP), max_per_client=4))
    assert (s.max_connections, s.max_per_client) == (0, 4)
    assert {(c.cport, c.backend) for c in dp.connections(vip=VIP)} == before
    got, details = code_of(stub.SetServiceLimits, pb.ServiceLimits(service=pb.ServiceKey(
        vip=VIP, port=53, protocol=pb.PROTOCOL_UDP), max_per_client=200_000_000))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "from 0 to 100000000" in details
    assert list(stub.ApplyConfig(pb.ApplyConfigRequest(yaml=changed)).changes) == \
        ["set-limits 10.0.0.100:53/udp"]
    # A change the dataplane refuses half way leaves everything as it was.
    bad = changed.replace("routes:", """  - vip: 10.0.0.102
    port: 80
    method: fullnat
    local_addresses: [10.9.9.9]
routes:""").replace("192.0.2.0/24", "198.51.100.0/24").replace("10.0.3.0/24", "10.0.4.0/24") \
        .replace("10.0.1.40", "10.0.1.41").replace("udp: 120", "udp: 60")
    def dataplane():
        return (dp.services(), list(dp.routes(4)), list(dp.vips()), dp.timeouts(),
                [(n.ip, n.port, n.mac, n.state) for n in dp.neighbours()])
    before = dataplane()
    got, details = code_of(stub.ApplyConfig, pb.ApplyConfigRequest(yaml=bad))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "nothing was changed" in details
    assert dataplane() == before                    # the steps made were undone
    assert stub.GetConfig(pb.GetConfigRequest()).yaml != running    # (the applied change)
    assert load_config("c", text=stub.GetConfig(pb.GetConfigRequest()).yaml) == \
        load_config("c", text=changed).normalised()
    got, details = code_of(stub.ApplyConfig, pb.ApplyConfigRequest(yaml="services: [{vip: 1}]"))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "(request):1: services[0]" in details


def test_trace_says_what_would_happen_and_why(api):
    stub, dp, _ = api
    stub.AddService(pb.Service(key=pb.ServiceKey(vip=VIP, port=80), scheduler=pb.SCHEDULER_MAGLEV,
                               backends=[pb.Backend(address="10.0.1.20", port=8080),
                                         pb.Backend(address="10.0.1.21", port=8080)]))
    dp.add_route("198.51.100.0/24", [("10.0.1.20", "p1"), ("10.0.1.21", "p1")])

    def trace(src, dst, sport=0, dport=0, **kw):
        return stub.Trace(pb.TraceRequest(source=src, destination=dst, source_port=sport,
                                          destination_port=dport, **kw))
    new = trace("10.0.0.2", VIP, 4000, 80)
    assert (new.verdict, new.route_kind, new.service.port, new.backend_port) == ("new", "service", 80, 8080)
    assert "5-tuple hash" in new.why and new.next_hop.port == "p1"
    # The trace agrees with what the dataplane then does, and sees the connection.
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / TCP(sport=4000, dport=80,
                                                                                flags="S")
    (_, out), = dp.inject("p0", [raw(syn)])
    assert Ether(out)[IP].dst == new.backend
    conn = trace("10.0.0.2", VIP, 4000, 80, not_syn=True)
    assert (conn.verdict, conn.backend, conn.connection_state) == ("connection", new.backend, "syn_sent")
    # An ACK of no connection here is one opened elsewhere: picked up (mid_flow), as the
    # fast path then does.
    pick = trace("10.0.0.2", VIP, 4001, 80, not_syn=True)
    assert pick.verdict == "pick_up" and pick.backend in ("10.0.1.20", "10.0.1.21")
    ack = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / TCP(sport=4001, dport=80,
                                                                                flags="A")
    (_, out), = dp.inject("p0", [raw(ack)])
    assert Ether(out)[IP].dst == pick.backend
    assert trace("10.0.0.2", VIP, 4001, 80, not_syn=True).verdict == "connection"
    refused = trace("10.0.0.2", VIP, 4001, 81)
    assert (refused.verdict, refused.drop_reason) == ("drop", "no_service")
    routed = trace("10.0.0.2", "198.51.100.7")
    assert routed.verdict == "route" and "ECMP" in routed.why and routed.next_hop.gateway in \
        ("10.0.1.20", "10.0.1.21")
    assert trace("10.0.0.2", "10.0.0.1").verdict == "local"
    assert trace("10.0.0.2", "203.0.113.9").verdict == "no_route"
    got, details = code_of(stub.Trace, pb.TraceRequest(source="10.0.0.2", destination="2001:db8::5"))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "family" in details


def test_vips_neighbours_and_ports(api):
    stub, dp, _ = api
    v = stub.AddVip(pb.Vip(prefix="203.0.113.10/32", backends=[
        pb.VipBackend(address="10.0.1.20"), pb.VipBackend(address="10.0.1.21", weight=3)]))
    assert (v.prefix, v.method, v.table_size, [(b.address, b.weight) for b in v.backends]) == \
        ("203.0.113.10/32", "ipip", 65537, [("10.0.1.20", 1), ("10.0.1.21", 3)])
    v = stub.SetVipBackends(pb.Vip(prefix="203.0.113.10/32",
                                   backends=[pb.VipBackend(address="10.0.1.22")]))
    assert [b.address for b in v.backends] == ["10.0.1.22"] and \
        [b.ip for b in dp.vip("203.0.113.10/32").backends] == ["10.0.1.22"]
    assert [(x.prefix, x.table_fingerprint) for x in stub.ListVips(pb.ListVipsRequest()).vips] \
        == [("203.0.113.10/32", dp.vip_fingerprint("203.0.113.10/32"))] == \
        [("203.0.113.10/32", v.table_fingerprint)]
    got, details = code_of(stub.AddVip, pb.Vip(prefix="203.0.113.11/24"))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "host bits" in details
    stub.DeleteVip(pb.VipKey(prefix="203.0.113.10/32"))
    assert dp.vips() == []
    stub.AddNeighbour(pb.Neighbour(port="p1", address="10.0.1.30", mac="02:00:00:00:0c:01"))
    ns = {(n.port, n.address): (n.mac.lower(), n.state)
          for n in stub.ListNeighbours(pb.ListNeighboursRequest()).neighbours}
    assert ns[("p1", "10.0.1.30")] == ("02:00:00:00:0c:01", "static")
    got, details = code_of(stub.AddNeighbour, pb.Neighbour(port="p9", address="10.0.1.31",
                                                           mac="02:00:00:00:0c:02"))
    assert got in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT) and "p9" in details
    stub.DeleteNeighbour(pb.Neighbour(port="p1", address="10.0.1.30"))
    assert ("p1", "10.0.1.30") not in {(n.port, n.address) for n in
                                       stub.ListNeighbours(pb.ListNeighboursRequest()).neighbours}
    ports = stub.ListPorts(pb.ListPortsRequest()).ports
    assert [(p.name, list(p.addresses)) for p in ports] == \
        [("p0", ["10.0.0.1/24", "2001:db8::1/64"]), ("p1", ["10.0.1.1/24", "2001:db8:1::1/64"])]
    assert "rx_packets" in ports[0].nic


def test_acls_through_the_api(api):
    """SetAcl, a service naming it, the dataplane refusing accordingly (the
    domain maps names to its service ids), ListAcls, DeleteAcl."""
    stub, dp, _ = api
    tcp = pb.ServiceKey(vip=VIP, port=80)
    assert code_of(stub.AddService, pb.Service(key=tcp, acls=["partners"]))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    a = stub.SetAcl(pb.Acl(name="partners", type="allow", prefixes=["10.0.0.0/28"]))
    assert (a.type, a.action, a.prefix_count) == ("allow", "drop", 1)
    stub.AddService(pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", port=53)]))
    stub.AddService(pb.Service(key=tcp, acls=["partners"],
                               backends=[pb.Backend(address="10.0.1.20", port=8080)]))
    assert list(stub.GetService(tcp).acls) == ["partners"]

    def syn(src):
        return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=VIP) /
                   TCP(sport=1234, dport=80, flags="S"))
    assert len(dp.inject("p0", [syn("10.0.0.2")])) == 1
    assert dp.inject("p0", [syn("10.0.0.99")]) == []
    # Replaced live: now 10.0.0.99 is in, 10.0.0.2 out; the UDP service has none.
    stub.SetAcl(pb.Acl(name="partners", type="allow", action="reset", prefixes=["10.0.0.64/26"]))
    assert len(dp.inject("p0", [syn("10.0.0.99")])) == 1
    (port, f), = dp.inject("p0", [syn("10.0.0.3")])
    assert port == 0 and Ether(f)[TCP].flags == "RA"
    stub.SetAcl(pb.Acl(name="blocked", all_services=True, prefixes=["10.0.0.96/27"]))

    def udp(src):
        return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=VIP) /
                   UDP(sport=1234, dport=53))
    assert dp.inject("p0", [udp("10.0.0.99")]) == [] and len(dp.inject("p0", [udp("10.0.0.2")])) == 1
    acls = stub.ListAcls(pb.ListAclsRequest(with_prefixes=True)).acls
    assert [(x.name, list(x.prefixes)) for x in acls] == [("partners", ["10.0.0.64/26"]),
                                                          ("blocked", ["10.0.0.96/27"])]
    assert code_of(stub.DeleteAcl, pb.AclKey(name="partners"))[0] == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(stub.SetAcl, pb.Acl(name="bad", prefixes=["10.0.0.1/8"]))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    # A prefix listed many times is one (issue 27.3h).
    a = stub.SetAcl(pb.Acl(name="blocked", all_services=True,
                           prefixes=["10.0.0.96/27"] * 10000 + ["10.9.0.0/16"]))
    assert a.prefix_count == 2
    assert stub.GetConfig(pb.GetConfigRequest()).yaml.count("10.0.0.96/27") == 1
    stub.DeleteService(tcp)
    stub.DeleteAcl(pb.AclKey(name="partners"))
    assert [x.name for x in stub.ListAcls(pb.ListAclsRequest()).acls] == ["blocked"]
    assert code_of(stub.DeleteAcl, pb.AclKey(name="partners"))[0] == grpc.StatusCode.NOT_FOUND



def test_proxy_protocol_through_the_api(api):
    """A FullNAT service's PROXY protocol header: set by AddService, read
    back by GetService, in force in the dataplane, in the exported
    configuration; refused on a NAT service with the key to fix."""
    stub, dp, _ = api
    key = pb.ServiceKey(vip=VIP, port=443)
    stub.AddService(pb.Service(key=key, method=pb.METHOD_FULLNAT, local_addresses=["10.0.1.1"],
                               proxy_protocol=pb.PROXY_PROTOCOL_V2,
                               backends=[pb.Backend(address="10.0.1.20", port=8443)]))
    assert stub.GetService(key).proxy_protocol == pb.PROXY_PROTOCOL_V2
    assert dp.service(VIP, 443, "tcp").proxy_protocol == "v2"
    assert "proxy_protocol: v2" in stub.GetConfig(pb.GetConfigRequest()).yaml
    tunnel = pb.ServiceKey(vip=VIP, port=444)
    stub.AddService(pb.Service(key=tunnel, method=pb.METHOD_TUNNEL,
                               tunnel_source="10.200.0.0/16"))
    assert stub.GetService(tunnel).tunnel_source == "10.200.0.0/16"
    assert dp.service(VIP, 444, "tcp").tunnel_source == "10.200.0.0/16"
    assert "tunnel_source: 10.200.0.0/16" in stub.GetConfig(pb.GetConfigRequest()).yaml
    got, details = code_of(stub.AddService, pb.Service(
        key=pb.ServiceKey(vip=VIP, port=80), proxy_protocol=pb.PROXY_PROTOCOL_V1))
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "proxy_protocol" in details


def test_pylbctl_trace_takes_tcp_flags_by_letter():
    from pylb import ctl
    assert (ctl.tcp_flags("S"), ctl.tcp_flags("SA"), ctl.tcp_flags("pa")) == (0x02, 0x12, 0x18)
    with pytest.raises(argparse.ArgumentTypeError, match="letters of FSRPAU"):
        ctl.tcp_flags("SX")


def test_pools_over_the_api(api):
    stub, dp, _ = api
    p = pb.Pool(name="fw", stickiness="3-tuple", failover="stay",
                appliances=[pb.Appliance(address="10.0.1.50"),
                            pb.Appliance(address="10.0.1.51", weight=2, state=pb.BACKEND_STATE_DRAIN)],
                health_check=pb.HealthCheck(type="tcp", port=8081))
    got = stub.SetPool(p)
    assert (got.name, got.stickiness, got.failover, got.idle_timeout) == ("fw", "3-tuple", "stay", 350)
    assert [(a.address, a.weight, a.state) for a in got.appliances] == [
        ("10.0.1.50", 1, pb.BACKEND_STATE_UP), ("10.0.1.51", 2, pb.BACKEND_STATE_DRAIN)]
    stub.AddRoute(pb.Route(prefix="100.64.0.0/24", next_hops=[pb.NextHop(gateway="10.0.1.20",
                                                                          port="p1")],
                           inspect="fw"))
    assert dp.route("100.64.0.0/24").inspect == "fw"
    assert [r.inspect for r in stub.ListRoutes(pb.ListRoutesRequest()).routes
            if r.prefix == "100.64.0.0/24"] == ["fw"]
    (listed,) = stub.ListPools(pb.ListPoolsRequest()).pools
    assert list(listed.inspects) == ["100.64.0.0/24"] and listed.flows == 0
    # Replaced in place: the dataplane has the new settings.
    p.failover = "rebalance"
    stub.SetPool(p)
    assert dp.pool("fw")["failover"] == "rebalance"
    t = stub.Trace(pb.TraceRequest(source="10.0.0.2", destination="100.64.0.9",
                                   protocol=pb.PROTOCOL_TCP, source_port=1000,
                                   destination_port=80))
    assert (t.verdict, t.inspect_pool, t.appliance) == ("inspect", "fw", "10.0.1.50")
    assert "to a new flow's appliance 10.0.1.50 of pool fw first" in t.why
    for request, code, says in (
            (pb.Pool(name="x y"), grpc.StatusCode.INVALID_ARGUMENT, "name"),
            (pb.Pool(name="fw2", stickiness="4-tuple"), grpc.StatusCode.INVALID_ARGUMENT,
             "5-tuple, 3-tuple, 2-tuple"),
            (pb.Pool(name="fw2", health_check=pb.HealthCheck(type="tcp")),
             grpc.StatusCode.INVALID_ARGUMENT, "needs a port")):
        got, details = code_of(stub.SetPool, request)
        assert got == code and says in details, details
    got, details = code_of(stub.DeletePool, pb.PoolKey(name="fw"))
    assert got == grpc.StatusCode.FAILED_PRECONDITION and "100.64.0.0/24" in details
    stub.DeleteRoute(pb.RouteKey(prefix="100.64.0.0/24"))
    stub.DeletePool(pb.PoolKey(name="fw"))
    assert not stub.ListPools(pb.ListPoolsRequest()).pools
    got, _ = code_of(stub.DeletePool, pb.PoolKey(name="fw"))
    assert got == grpc.StatusCode.NOT_FOUND
