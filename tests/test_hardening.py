"""Defects found by running pylb as an attacker and a careless operator would
(issue 12), each with the test that failed before its fix: connected routes
deleted, YAML alias bombs and other hostile files, NAT connections lost when
the connection table is full, IPv6 VIPs without NDP, and the gaps between
what the API and the configuration file accept."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, \
    ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.config import load_config
from pylb.errors import ConfigError, FailedPrecondition, InvalidArgument
from test_cli import ROOT, error_line
from test_grpc import code_of
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP, c2v, checksums_ok, small_dp
from pylb.v1 import pylb_pb2 as pb

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"nat_untracked_ambiguous", "nat_reply_ambiguous", "source_own", "source_broadcast",
             "source_reverse_path", "nat_tuple_in_use"}

# Ten levels of nine aliases: 9**10 values once expanded, in 390 bytes.
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))


# 1. Connected routes go with their port's address.

def test_the_connected_route_of_a_port_address_cannot_be_deleted_or_replaced(dp):
    for call in (lambda: dp.del_route("10.0.1.0/24"),
                 lambda: dp.del_route("2001:db8:1::/64"),
                 lambda: dp.replace_route("10.0.1.0/24", ("10.0.0.9", "p0")),
                 lambda: dp.add_route("10.0.0.0/24", ("10.0.1.9", "p1"))):
        with pytest.raises(FailedPrecondition, match="connected network of a port address"):
            call()
    assert dp.route("10.0.1.0/24").kind == "connected"
    # A route out of a port that is not an address's network is the operator's.
    dp.add_route("192.0.2.0/24", (None, "p1"))
    dp.del_route("192.0.2.0/24")


def test_delete_route_of_a_connected_network_is_refused_over_grpc(api):
    stub, dp, _ = api
    code, details = code_of(stub.DeleteRoute, pb.RouteKey(prefix="10.0.1.0/24"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "port address" in details
    assert dp.lookup("10.0.1.20").kind == "connected"
    # A configuration file that routes a port's network is refused, nothing changed.
    text = ("routes:\n  - {prefix: 10.0.1.0/24, via: [{gateway: 10.0.0.9, port: p0}]}\n"
            "  - {prefix: 198.51.100.0/24, via: [{gateway: 10.0.0.9, port: p0}]}\n")
    code, details = code_of(stub.ApplyConfig, pb.ApplyConfigRequest(yaml=text))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "nothing was changed" in details
    assert [r.prefix for r in stub.ListRoutes(pb.ListRoutesRequest()).routes
            if r.kind == "gateway"] == []


# 2 and 6. Hostile and mistaken files: one line each, bounded time and memory.

def _bounded(*args):
    """`pylb ARGS` with 1 GiB of address space and 60 s at most (prlimit: no
    preexec_fn in a process that has gRPC threads). Under AddressSanitizer
    (make test-asan), whose shadow memory needs terabytes of address space,
    only the time is bounded."""
    limit = [] if "libasan" in os.environ.get("LD_PRELOAD", "") else \
        ["prlimit", f"--as={1 << 30}"]
    return subprocess.run([*limit, sys.executable, "-m", "pylb", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("text, line, key, says", [
    (ALIAS_BOMB, None, "(file)", "aliases"),
    ("services:\n" + "  " * 1 + "[" * 5000 + "]" * 5000 + "\n", None, "(file)", "nested"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    port: 81\n", 4, "services[0].port",
     "duplicate key (also on line 3)"),
    ("services:\n  - {vip: 10.0.0.1, port: 80, table_size: 65536}\n", 2,
     "services[0].table_size", "not a prime"),
    ("vips:\n  - {prefix: 10.0.3.0/24, table_size: 4294967295}\n", 2, "vips[0].table_size",
     "from 2 to 1048573"),
    ("services:\n  - vip: 10.0.0.1\n    port: [80\n", 4, "(file)", "not valid YAML"),
    ("services:\n  - {vip: '::ffff:10.0.0.205', port: 80}\n", 2, "services[0].vip",
     "write the IPv4 address 10.0.0.205"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    health_check: {type: http, path: '/"
     + "a" * 2000 + "'}\n", 4, "services[0].health_check.path", "at most 1024"),
    ("services:\n  - {vip: 10.0.0.1, port: 0x_}\n", 2, "services[0].port",
     "cannot read the value '0x_'"),
], ids=["alias bomb", "5000 deep", "duplicate key", "table not prime", "table too large",
        "syntax", "ipv4-mapped vip", "long http path", "unreadable integer (found by fuzzing)"])
def test_hostile_files_get_one_line_with_file_line_and_key(tmp_path, text, line, key, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert e.value.key == key and says in str(e.value) and len(str(e.value)) < 300
    if line is not None:
        assert e.value.line == line
    r = _bounded("config", "check", str(path))
    assert r.returncode == 2 and says in error_line(r) and len(r.stderr.splitlines()) == 1


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("services:\n" + "  - {vip: 10.0.0.1, port: 80}\n" * 2_000_000)
    r = _bounded("config", "check", str(path))
    assert r.returncode == 2 and "larger than the limit of 8 MiB" in error_line(r)


def test_an_alias_bomb_sent_to_the_api_is_refused(api):
    stub, dp, _ = api
    code, details = code_of(stub.ApplyConfig, pb.ApplyConfigRequest(yaml=ALIAS_BOMB,
                                                                    dry_run=True))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "aliases" in details
    assert stub.GetConfig(pb.GetConfigRequest()).yaml      # still serving


def test_run_with_an_alias_bomb_exits_2_without_starting(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    r = _bounded("run", "--profile", "hwconfig/tap.yaml", "--config", str(path))
    assert r.returncode == 2 and "aliases" in error_line(r)


# 3. NAT through a full connection table.

def fill(d):
    """16 established connections to VIP:80 in a table of 16 (half-open
    ones would make room for new ones: the half-open budget)."""
    for p in range(100, 116):
        (_, f), = d.inject("p0", [raw(c2v(sport=p))])
        d.inject("p1", [raw(Ether(src=BMAC[Ether(f)[IP].dst], dst=P1_MAC) /
                            IP(src=Ether(f)[IP].dst, dst=CLIENT) /
                            TCP(sport=8080, dport=p, flags="SA", seq=5000, ack=1001))])
        d.inject("p0", [raw(c2v(sport=p, flags="A"))])
    assert d.conn_count() == 16


@pytest.mark.parametrize("scheduler", ["wrr", "wlc", "maglev"])
def test_nat_connections_work_while_the_table_is_full(native, scheduler):
    d = small_dp(native, conn_capacity=16)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    # No SYN cookies in the way.
    d.add_service(service(VIP, 80, scheduler=scheduler, backends=[(b, 8080) for b in BACKENDS], syn_proxy="off"))
    fill(d)
    for sport in range(200, 230):
        # The SYN: to the consistent table's backend, untracked.
        (port, f), = d.inject("p0", [raw(c2v(sport=sport))])
        syn = Ether(f)
        backend = syn[IP].dst
        assert port == 1 and backend in BACKENDS and syn[TCP].dport == 8080
        assert checksums_ok(f)
        # The backend's SYN-ACK leaves with the VIP as its source.
        reply = (Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst=CLIENT)
                 / TCP(sport=8080, dport=sport, flags="SA", seq=5000, ack=1001))
        (port, f), = d.inject("p1", [raw(reply)])
        back = Ether(f)
        assert port == 0 and (back[IP].src, back[TCP].sport) == (VIP, 80) and checksums_ok(f)
        # The client's ACK and data reach the same backend.
        for flags in ("A", "PA", "FA"):
            (port, f), = d.inject("p0", [raw(c2v(sport=sport, flags=flags))])
            assert Ether(f)[IP].dst == backend and Ether(f)[TCP].dport == 8080
    t = d.totals()
    # The SYN and each later packet found no room (each could have been
    # picked up mid-flow).
    assert d.conn_count() == 16 and t["conn_table_full"] == 30 * 4
    assert t["conn_untracked"] == 30 * 4 and t["nat_replies_untracked"] == 30
    assert d.drops().get("tcp_no_conn", 0) == 0
    d.close()


VIP2 = "10.0.0.101"


def shared_backends_dp(native, scheduler):
    """Two NAT services over one pool (the second over two of the first's
    three backends), a table of 16 full of established connections."""
    d = small_dp(native, conn_capacity=16)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.add_service(service(VIP, 80, scheduler=scheduler, backends=[(b, 8080) for b in BACKENDS], syn_proxy="off"))
    d.add_service(service(VIP2, 80, scheduler=scheduler, backends=[(b, 8080) for b in BACKENDS[:2]], syn_proxy="off"))
    fill(d)
    return d


@pytest.mark.parametrize("scheduler", ["wrr", "maglev"])
def test_a_full_table_never_lets_a_shared_backends_reply_leave_untranslated(native, scheduler):
    """Issue 27.2: a backend in two NAT services. Every new connection
    while the table is full either works (its replies carry its own VIP)
    or is refused visibly (a RST, counted); a reply no service can claim
    alone is dropped and counted, never sent on with the backend's address."""
    d = shared_backends_dp(native, scheduler)
    worked = refused = 0
    for vip in (VIP, VIP2):
        for sport in range(200, 260):
            syn = c2v(sport=sport)
            syn[IP].dst = vip
            (port, f), = d.inject("p0", [raw(syn)])
            out = Ether(f)
            if port == 0:            # refused: a RST back to the client
                assert out[TCP].flags == "RA" and out[IP].src == vip
                refused += 1
                continue
            backend = out[IP].dst
            reply = (Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst=CLIENT)
                     / TCP(sport=8080, dport=sport, flags="SA", seq=5000, ack=1001))
            (port, f), = d.inject("p1", [raw(reply)])
            back = Ether(f)
            assert port == 0 and (back[IP].src, back[TCP].sport) == (vip, 80) and checksums_ok(f)
            worked += 1
    drops = d.drops()
    assert worked > 0 and refused > 0 and drops["nat_untracked_ambiguous"] == refused
    # Replies of connections nobody opened here (another appliance's, or
    # forged): to the VIP that chose the backend, or dropped.
    before = d.totals()["nat_replies_untracked"]
    translated = 0
    for b in BACKENDS[:2]:
        for dport in range(300, 340):
            reply = (Ether(src=BMAC[b], dst=P1_MAC) / IP(src=b, dst=CLIENT)
                     / TCP(sport=8080, dport=dport, flags="SA", seq=5000, ack=1001))
            for port, f in d.inject("p1", [raw(reply)]):
                assert port == 0 and Ether(f)[IP].src in (VIP, VIP2)
                translated += 1
    assert d.totals()["nat_replies_untracked"] - before == translated
    assert d.drops()["nat_reply_ambiguous"] == 80 - translated > 0
    d.close()


def test_ipv6_shared_backends_replies_are_their_own_vips_or_dropped(native):
    """The same for IPv6: two VIPs over one pool, the table full."""
    from scapy.layers.inet6 import IPv6
    d = shared_backends_dp(native, "maglev")
    d.add_address("p0", "2001:db8::1/64")
    d.add_address("p1", "2001:db8:1::1/64")
    pool = [f"2001:db8:1::{20 + i}" for i in range(3)]
    for i, b in enumerate(pool):
        d.add_neighbour("p1", b, BMAC[BACKENDS[i]])
    d.add_neighbour("p0", "2001:db8::2", CLIENT_MAC)
    vips = ("2001:db8::100", "2001:db8::101")
    d.add_service(service(vips[0], 80, backends=[(b, 8080) for b in pool], syn_proxy="off"))
    d.add_service(service(vips[1], 80, backends=[(b, 8080) for b in pool[:2]], syn_proxy="off"))
    worked = refused = 0
    for vip in vips:
        for sport in range(200, 240):
            syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst=vip) / \
                TCP(sport=sport, dport=80, flags="S", seq=1000)
            (port, f), = d.inject("p0", [raw(syn)])
            if port == 0:
                refused += 1
                continue
            backend = Ether(f)[IPv6].dst
            reply = Ether(src=P1_MAC, dst=P1_MAC) / IPv6(src=backend, dst="2001:db8::2") / \
                TCP(sport=8080, dport=sport, flags="SA", seq=5000, ack=1001)
            (port, f), = d.inject("p1", [raw(reply)])
            assert port == 0 and Ether(f)[IPv6].src == vip
            worked += 1
    assert worked > 0 and refused > 0 and d.drops()["nat_untracked_ambiguous"] == refused
    for dport in range(300, 330):
        reply = Ether(src=P1_MAC, dst=P1_MAC) / IPv6(src=pool[0], dst="2001:db8::2") / \
            TCP(sport=8080, dport=dport, flags="SA", seq=5000, ack=1001)
        for port, f in d.inject("p1", [raw(reply)]):
            assert Ether(f)[IPv6].src in vips
    assert d.drops()["nat_reply_ambiguous"] > 0
    d.close()


def test_a_shared_backends_untracked_udp_is_refused_with_port_unreachable(native):
    from scapy.layers.inet import ICMP, UDP
    d = shared_backends_dp(native, "maglev")
    d.add_service(service(VIP, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS]))
    d.add_service(service(VIP2, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS[:2]]))
    refused = 0
    for sport in range(200, 260):
        (port, f), = d.inject("p0", [raw(c2v(sport=sport, proto=UDP, dport=53))])
        if port == 0:
            icmp = Ether(f)[ICMP]
            assert (icmp.type, icmp.code) == (3, 3)
            refused += 1
    assert refused > 0 and d.drops()["nat_untracked_ambiguous"] == refused
    d.close()


@pytest.mark.parametrize("scheduler", ["maglev", "wrr"])
def test_one_client_port_to_two_vips_never_meets_itself_at_a_shared_backend(native, scheduler):
    """Issue 27.4 (a fleet e2e test's client, one run in about 30 under
    load, could not connect for 60 s): Linux picks a client's port per
    destination, so one port may go to two VIPs at once; NAT keeps it, and a
    backend in both services would see the second connection on the first's
    tuple (its SYN answered with the first's ACK, never a SYN-ACK). Such a
    connection goes to another backend (counted), its replies to its own
    VIP; with no other backend it is refused with a RST (counted)."""
    from scapy.layers.inet import UDP
    d = small_dp(native)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.add_service(service(VIP, 80, scheduler=scheduler, backends=[(b, 8080) for b in BACKENDS],
                          syn_proxy="off"))
    d.add_service(service(VIP2, 80, scheduler=scheduler,
                          backends=[(b, 8080) for b in BACKENDS[:2]], syn_proxy="off"))
    d.add_service(service("10.0.0.102", 80, backends=[(BACKENDS[0], 8080)], syn_proxy="off"))

    def send(vip, sport, **kw):
        """A client's packet (c2v's) from port sport to vip: what leaves."""
        pkt = c2v(sport=sport, **kw)
        pkt[IP].dst = vip
        return [(port, Ether(f)) for port, f in d.inject("p0", [raw(pkt)])]
    for sport in range(200, 240):
        (_, first), = send(VIP, sport)
        (port, second), = send(VIP2, sport)
        assert port == 1 and second[IP].dst != first[IP].dst, (sport, first[IP].dst)
        for vip, out in ((VIP, first), (VIP2, second)):
            reply = (Ether(src=BMAC[out[IP].dst], dst=P1_MAC) / IP(src=out[IP].dst, dst=CLIENT)
                     / TCP(sport=8080, dport=sport, flags="SA", seq=5000, ack=1001))
            (port, f), = d.inject("p1", [raw(reply)])
            assert port == 0 and (Ether(f)[IP].src, Ether(f)[TCP].sport) == (vip, 80)
        if BACKENDS[0] in (first[IP].dst, second[IP].dst):
            # The third VIP's one backend has this port's connection: refused.
            (port, out), = send("10.0.0.102", sport)
            assert port == 0 and out[TCP].flags == "RA"
    assert d.totals()["nat_tuple_moved"] > 0 and d.drops()["nat_tuple_in_use"] > 0
    # A connection that ended (a RST: close; time_wait alike) holds the tuple
    # no more: the new one takes it, the old entry ends (conn_reused).
    d.add_service(service("10.0.0.105", 80, backends=[(BACKENDS[0], 8080)], syn_proxy="off"))
    reused = d.totals()["conn_reused"]
    send("10.0.0.102", 6000)
    send("10.0.0.102", 6000, flags="R")
    assert [(p, out[IP].dst) for p, out in send("10.0.0.105", 6000)] == [(1, BACKENDS[0])]
    assert d.totals()["conn_reused"] == reused + 1
    # UDP alike: each port's datagram to the second VIP avoids the first's backend.
    d.add_service(service(VIP, 53, proto="udp", backends=[(BACKENDS[0], 5353)]))
    d.add_service(service(VIP2, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS[:2]]))
    for sport in range(900, 920):
        udp = {"proto": UDP, "dport": 53}
        assert [out[IP].dst for _, out in send(VIP, sport, **udp) + send(VIP2, sport, **udp)] \
            == BACKENDS[:2]
    # A DR connection of the port to the same backend is no such tuple:
    # its backend sees the VIP as destination.
    d.add_service(service("10.0.0.103", 8080, method="dr", backends=[(BACKENDS[2], 8080)]))
    d.add_service(service("10.0.0.104", 80, backends=[(BACKENDS[2], 8080)], syn_proxy="off"))
    (port, dr), = send("10.0.0.103", 5000, dport=8080)
    assert port == 1 and dr.dst == BMAC[BACKENDS[2]] and dr[IP].dst == "10.0.0.103"
    assert [(p, out[IP].dst) for p, out in send("10.0.0.104", 5000)] == [(1, BACKENDS[2])]
    d.close()


def test_with_mid_flow_off_packets_without_a_connection_are_refused(native):
    d = small_dp(native, conn_capacity=16, mid_flow=False)
    d.add_service(service(VIP, 80, scheduler="wrr", backends=[(b, 8080) for b in BACKENDS]))
    assert d.inject("p0", [raw(c2v(sport=7, flags="A"))]) == []
    assert d.drops()["tcp_no_conn"] == 1 and d.totals()["conn_untracked"] == 0
    d.close()


@pytest.fixture
def lb_small(native):
    d = small_dp(native, conn_capacity=16)
    d.add_service(service(VIP, 80, scheduler="wrr", backends=[(b, 8080) for b in BACKENDS]))
    yield d
    d.close()


# 4. IPv6 VIPs answer neighbour solicitations, as IPv4 VIPs answer ARP.

def test_an_ipv6_service_vip_is_answered_by_ndp(dp):
    vip6 = "2001:db8::100"
    dp.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    dp.add_service(service(vip6, 80, backends=[("2001:db8:1::20", 8080)]))
    ns = (Ether(src=CLIENT_MAC, dst="33:33:ff:00:01:00") /
          IPv6(src="2001:db8::2", dst="ff02::1:ff00:100", hlim=255) /
          ICMPv6ND_NS(tgt=vip6) / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))
    (port, f), = dp.inject("p0", [raw(ns)])
    na = Ether(f)
    assert port == 0 and na.dst == CLIENT_MAC and na[ICMPv6ND_NA].tgt == vip6
    assert na[ICMPv6NDOptDstLLAddr].lladdr == P0_MAC and na[IPv6].src == vip6
    # Not on the port's network: not ours.
    dp.add_service(service("2001:db8:77::1", 80, backends=[("2001:db8:1::20", 8080)]))
    ns[ICMPv6ND_NS].tgt = "2001:db8:77::1"
    assert dp.inject("p0", [raw(ns)]) == [] and dp.drops()["nd_not_ours"] == 1


# 7. The API and the file meet the same rules and limits: the specs' own (pylb.model).

KEY = pb.ServiceKey(vip="10.0.0.100", port=80, protocol=pb.PROTOCOL_TCP)


@pytest.mark.parametrize("service, says", [
    (pb.Service(key=KEY, table_size=2**32 - 1), "table_size: expected an integer from 2 to 1048573"),
    (pb.Service(key=KEY, table_size=65536), "table_size: 65536 is not a prime"),
    (pb.Service(key=KEY, health_check=pb.HealthCheck(interval_ms=0)),
     "health_check.interval_ms: expected an integer from 100"),
    (pb.Service(key=KEY, health_check=pb.HealthCheck(type="http", path="/" + "x" * 1_000_000)),
     "health_check.path: expected an HTTP path"),
    (pb.Service(key=pb.ServiceKey(vip="::ffff:10.0.0.205", port=80)),
     "write the IPv4 address 10.0.0.205"),
    (pb.Service(key=pb.ServiceKey(vip="x" * 100_000, port=80)), "expected an IPv4 or IPv6"),
    (pb.Service(key=KEY, backends=[pb.Backend(address="10.0.1.20", port=70000)]),
     "backends[0].port: expected an integer from 0 to 65535, got 70000"),
    (pb.Service(key=KEY, method=pb.METHOD_FULLNAT, local_addresses=["10.0.0.77"]),
     "local address 10.0.0.77 is not this appliance's"),
], ids=["table 2^32-1", "table not prime", "interval 0", "1 MB path", "ipv4-mapped vip",
        "100 KB vip", "backend port", "fullnat local address"])
def test_api_errors_name_the_field_and_the_value_briefly(api, service, says):
    stub, dp, _ = api
    code, details = code_of(stub.AddService, service)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and says in details, details
    assert len(details) < 300 and dp.services() == []


def test_api_and_file_share_their_limits(api):
    stub, _, _ = api
    for call, request, says in (
            (stub.SetTimeouts, pb.Timeouts(udp=0), "udp: expected an integer from 1 to 2592000"),
            (stub.AddVip, pb.Vip(prefix="10.0.3.0/24", table_size=10), "10 is not a prime"),
            (stub.AddNeighbour, pb.Neighbour(port="p1", address="10.0.1.9", mac="zz"),
             "mac: expected a MAC address"),
            (stub.AddRoute, pb.Route(prefix="10.9.0.1/16", next_hops=[pb.NextHop(port="p1")]),
             "prefix: 10.9.0.1/16 has host bits set; write the network 10.9.0.0/16")):
        code, details = code_of(call, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and says in details, details


def test_an_unexpected_server_fault_is_internal_and_not_echoed(api, monkeypatch):
    stub, _, _ = api
    from pylb.manager import Manager

    def broken(self):
        raise RuntimeError("secret detail " + "y" * 100_000)
    monkeypatch.setattr(Manager, "services", broken)
    code, details = code_of(stub.ListServices, pb.ListServicesRequest())
    assert code == grpc.StatusCode.INTERNAL and "secret" not in details and len(details) < 200


# The flaky e2e health test: a client reusing the port of a connection that
# ended (HTTP/1.0: the server closes first, so the client holds no TIME_WAIT
# and may reuse the port at once) reached that connection's backend, down
# since. A SYN on an ended connection now opens a new one.

def test_a_syn_reusing_an_ended_connection_is_scheduled_again(lb_small):
    d = lb_small
    (_, f), = d.inject("p0", [raw(c2v(sport=5000))])
    first = Ether(f)[IP].dst
    for flags in ("A", "FA", "A"):
        d.inject("p0", [raw(c2v(sport=5000, flags=flags))])
    reply_fin = (Ether(src=BMAC[first], dst=P1_MAC) / IP(src=first, dst=CLIENT)
                 / TCP(sport=8080, dport=5000, flags="FA"))
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.inject("p1", [raw(reply_fin)])
    assert [c.state for c in d.connections()] == ["time_wait"]
    d.set_backend(VIP, 80, first, 8080, state="down")
    (_, f), = d.inject("p0", [raw(c2v(sport=5000))])
    assert Ether(f)[IP].dst != first and d.totals()["conn_reused"] == 1
    assert [c.backend for c in d.connections()] == [Ether(f)[IP].dst]


def test_services_are_listed_in_a_stable_order(api):
    """By VIP, protocol and port, whatever slots they took (a replaced
    service takes a new one)."""
    stub, dp, _ = api
    for vip, port in (("10.0.0.102", 80), ("10.0.0.100", 53), ("10.0.0.100", 22),
                      ("10.0.0.101", 80)):
        stub.AddService(pb.Service(key=pb.ServiceKey(vip=vip, port=port)))
    stub.DeleteService(pb.ServiceKey(vip="10.0.0.100", port=22))
    stub.AddService(pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=22)))
    listed = [[(s.key.vip, s.key.port) for s in stub.ListServices(
        pb.ListServicesRequest()).services] for _ in range(3)]
    assert listed[0] == listed[1] == listed[2] == [
        ("10.0.0.100", 22), ("10.0.0.100", 53), ("10.0.0.101", 80), ("10.0.0.102", 80)]


# Issue 27.3a: sources from pylb's own side arriving on the client port.

def rp_dp(native, rp_filter):
    d = small_dp(native, rp_filter=rp_filter)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.add_address("p0", "2001:db8::1/64")
    d.add_address("p1", "2001:db8:1::1/64")
    d.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    d.add_service(service(VIP, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS]))
    d.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 8080) for b in BACKENDS]))
    d.add_service(service("2001:db8::100", 53, proto="udp", backends=[("2001:db8:1::20", 5353)]))
    d.add_route("198.51.100.0/24", ("10.0.0.2", "p0"))      # clients behind a router
    return d


def udp_from(src, dst=VIP, dport=53, sport=5353):
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / ip / UDP(sport=sport, dport=dport) / b"q")


@pytest.mark.parametrize("rp_filter", ["strict", "loose", "off"])
def test_spoofed_sources_on_the_client_port_are_dropped_by_reason(native, rp_filter):
    """One datagram from a backend's address to the VIP started an endless
    echo between two backends; a LAND packet opened VIP -> VIP."""
    d = rp_dp(native, rp_filter)
    RP = "source_reverse_path"
    # The reason by mode (strict, loose, off); None: it goes on.
    sources = {
        BACKENDS[2]: (RP, None, None),              # a backend, on p1's network
        "10.0.1.1": ("source_own",) * 3,             # a port's (and FullNAT's) address
        "10.0.0.1": ("source_own",) * 3,
        VIP: ("source_own",) * 3,                    # LAND
        "10.0.0.255": ("source_broadcast",) * 3,
        "10.0.1.255": ("source_broadcast",) * 3,
        "203.0.113.9": (RP, RP, None),               # routed nowhere
        "2001:db8:1::20": (RP, None, None),
        "2001:db8::100": ("source_own",) * 3,
        "2001:db8:77::1": (RP, RP, None),
    }
    mode = ("strict", "loose", "off").index(rp_filter)
    want: dict[str, int] = {}
    for src, reasons in sources.items():
        why = reasons[mode]
        out = d.inject("p0", [udp_from(src, "2001:db8::100" if ":" in src else VIP)])
        if why is None:
            assert [port for port, _ in out] == [1], src      # on to a backend
        else:
            assert out == [], src
            want[why] = want.get(why, 0) + 1
    assert {k: v for k, v in d.drops().items() if v} == want
    # Clients, on the port's network or behind its routes, go on; no
    # connection names an address of ours as its client.
    for src in (CLIENT, "198.51.100.7"):
        (port, _), = d.inject("p0", [udp_from(src, sport=4000)])
        assert port == 1
    assert not {c.client for c in d.connections()} & {VIP, "10.0.0.1", "10.0.1.1"}
    # For the appliance's own addresses the routes are not asked (a
    # FullNAT reply may come back through an upstream router): a backend's
    # address on p0 reaches the FullNAT address (here: no connection and no
    # kernel interface, so as far as local delivery).
    before = d.drops()
    assert d.inject("p0", [udp_from(BACKENDS[2], "10.0.1.1", dport=1500)]) == []
    after = d.drops()
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == \
        {"local_unhandled": 1}
    d.close()


def test_strict_accepts_either_port_of_an_ecmp_route(native):
    d = rp_dp(native, "strict")
    d.add_route("192.0.2.0/24", [("10.0.0.2", "p0"), ("10.0.1.20", "p1")])
    assert len(d.inject("p0", [udp_from("192.0.2.7")])) == 1
    assert d.drops().get("source_reverse_path", 0) == 0
    d.close()


def test_an_unknown_rp_filter_is_refused(native):
    d = native.Dataplane(mbufs=255, mbuf_cache=0)
    with pytest.raises(InvalidArgument, match="rp_filter 'sometimes' is not one of strict"):
        d.add_port("p0", mac=P0_MAC, rp_filter="sometimes")
    d.close()
