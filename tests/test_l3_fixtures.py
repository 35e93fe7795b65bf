"""Packet fixtures for L3: routing, neighbours, ICMP errors, ECMP, IPv6,
L3 VIPs (IPIP, GRE, direct routing) and the exception path. Input frames are
built with scapy; outputs are compared byte for byte with what scapy builds
for the expected packet."""

from __future__ import annotations

import ipaddress
import time

import pytest
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP, defragment
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest,
                                 ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                                 ICMPv6NDOptSrcLLAddr, ICMPv6TimeExceeded, IPv6)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC
from pylb import model
from pylb.errors import AlreadyExists, InvalidArgument, NotFound

CLIENT = "10.0.0.2"
CLIENT6 = "2001:db8::2"
GW1, GW1_MAC = "10.0.1.2", "02:00:00:00:02:02"
GW2, GW2_MAC = "10.0.1.3", "02:00:00:00:02:03"
GW6, GW6_MAC = "2001:db8:1::2", "02:00:00:00:02:06"

# Drop reasons these fixtures provoke (checked for completeness in
# test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"ttl_exceeded", "no_route", "neigh_queue_full", "neigh_hold_full",
             "neigh_unresolved", "vip_no_backend", "vip_no_route", "vip_too_big", "kernel_invalid"}


def drops_of(dp):
    return {k: v for k, v in dp.drops().items() if v}


@pytest.fixture
def router(dp):
    """dp plus routes: 198.51.100.0/24 via GW1, 203.0.113.0/24 ECMP via GW1
    and GW2, 2001:db8:99::/48 via GW6; gateways are static neighbours."""
    dp.add_neighbour("p1", GW1, GW1_MAC)
    dp.add_neighbour("p1", GW2, GW2_MAC)
    dp.add_neighbour("p1", GW6, GW6_MAC)
    dp.add_route("198.51.100.0/24", (GW1, "p1"))
    dp.add_route("203.0.113.0/24", [(GW1, "p1"), (GW2, "p1")])
    dp.add_route("2001:db8:99::/48", (GW6, "p1"))
    return dp


def from_client(dst, ttl=64, payload=b"x" * 20, src=CLIENT, **kw):
    return Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst, ttl=ttl, id=77, **kw) / UDP(
        sport=5000, dport=53) / Raw(payload)


def routed(pkt, src_mac, dst_mac, hops=1):
    """pkt as the next hop should receive it: new MACs, TTL down, checksum redone."""
    ip = pkt[IP].copy()
    ip.ttl -= hops
    del ip.chksum
    return raw(Ether(src=src_mac, dst=dst_mac) / ip)


def test_forwarding_decrements_ttl_and_rewrites_macs(router):
    pkt = from_client("198.51.100.7", ttl=17, tos=0x28, flags="DF")
    out = router.inject("p0", [raw(pkt)])
    assert out == [(1, routed(pkt, P1_MAC, GW1_MAC))]
    assert router.totals()["forwarded"] == 1


def test_ttl_checksum_is_right_for_every_ttl(router):
    frames = [raw(from_client("198.51.100.9", ttl=t)) for t in range(2, 256)]
    out = router.inject("p0", frames)
    assert len(out) == 254
    for (_, f), t in zip(out, range(2, 256)):
        ip = IP(f[14:])
        sent = ip.chksum
        del ip.chksum
        assert (ip.ttl, IP(raw(ip)).chksum) == (t - 1, sent)


def test_ttl_expiry_sends_time_exceeded_from_the_ingress_address(router):
    pkt = from_client("198.51.100.7", ttl=1)
    out = router.inject("p0", [raw(pkt)])
    quote = raw(pkt[IP])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC)
                / IP(src="10.0.0.1", dst=CLIENT, ttl=64, tos=0xc0, id=0, proto=1)
                / ICMP(type=11, code=0) / Raw(quote))
    assert out == [(0, raw(expected))]
    assert drops_of(router) == {"ttl_exceeded": 1}
    assert router.totals()["icmp_errors_sent"] == 1


def test_no_route_sends_destination_unreachable(router):
    pkt = from_client("192.0.2.55")
    out = router.inject("p0", [raw(pkt)])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC)
                / IP(src="10.0.0.1", dst=CLIENT, ttl=64, tos=0xc0, id=0, proto=1)
                / ICMP(type=3, code=0) / Raw(raw(pkt[IP])))
    assert out == [(0, raw(expected))]
    assert drops_of(router) == {"no_route": 1}


def test_icmp_errors_quote_at_most_548_bytes_and_never_answer_errors(router):
    big = from_client("192.0.2.55", payload=b"z" * 1200)
    (_, err), = router.inject("p0", [raw(big)])
    assert len(IP(err[14:])) == 576
    an_error = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst="192.0.2.1") / ICMP(type=3)
    assert router.inject("p0", [raw(an_error)]) == []


def test_icmp_errors_are_rate_limited_per_lcore(router):
    out = router.inject("p0", [raw(from_client("192.0.2.1"))] * 150)
    assert len(out) == 100                                 # the bucket's burst
    assert router.totals()["icmp_errors_ratelimited"] == 50
    assert drops_of(router) == {"no_route": 150}


def test_ecmp_spreads_by_source_and_destination_and_is_stable(router):
    pkts = [raw(from_client("203.0.113.9", src=f"10.0.0.{i}")) for i in range(2, 202)]
    first = [Ether(f).dst for _, f in router.inject("p0", pkts)]
    again = [Ether(f).dst for _, f in router.inject("p0", pkts)]
    assert first == again
    share = first.count(GW1_MAC) / len(first)
    assert 0.3 < share < 0.7, share
    # The choice is the dataplane's keyed flow hash.
    for i, mac in zip(range(2, 202), first):
        idx = router.flow_hash(f"10.0.0.{i}", "203.0.113.9") % 2
        assert mac == (GW1_MAC, GW2_MAC)[idx]


def test_ipv6_forwarding_decrements_hop_limit(router):
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8:99::5", hlim=9) / UDP() / Raw(b"v6")
    out = router.inject("p0", [raw(pkt)])
    ip6 = pkt[IPv6].copy()
    ip6.hlim = 8
    assert out == [(1, raw(Ether(src=P1_MAC, dst=GW6_MAC) / ip6))]


def test_ipv6_hop_limit_expiry_and_no_route_send_icmpv6_errors(router):
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8:99::5", hlim=1) / UDP()
    (port, f), = router.inject("p0", [raw(pkt)])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC) / IPv6(src="2001:db8::1", dst=CLIENT6, hlim=64)
                / ICMPv6TimeExceeded(code=0) / Raw(raw(pkt[IPv6])))
    assert (port, f) == (0, raw(expected))
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="3fff::1") / UDP()
    (_, f), = router.inject("p0", [raw(pkt)])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC) / IPv6(src="2001:db8::1", dst=CLIENT6, hlim=64)
                / ICMPv6DestUnreach(code=0) / Raw(raw(pkt[IPv6])))
    assert f == raw(expected)
    assert drops_of(router) == {"ttl_exceeded": 1, "no_route": 1}


def test_neighbour_solicitation_for_our_address_gets_an_advertisement(dp):
    ns = (Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:01")
          / IPv6(src=CLIENT6, dst="ff02::1:ff00:1", hlim=255)
          / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))
    out = dp.inject("p0", [raw(ns)])
    na = (Ether(src=P0_MAC, dst=CLIENT_MAC) / IPv6(src="2001:db8::1", dst=CLIENT6, hlim=255)
          / ICMPv6ND_NA(tgt="2001:db8::1", R=1, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=P0_MAC))
    assert out == [(0, raw(na))]
    dp.housekeep()
    assert [(n.ip, n.mac) for n in dp.neighbours()] == [(CLIENT6, CLIENT_MAC)]


def test_icmpv6_echo_gets_exact_reply(dp):
    req = (Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8::1", hlim=33)
           / ICMPv6EchoRequest(id=9, seq=3, data=b"ping6"))
    out = dp.inject("p0", [raw(req)])
    rep = (Ether(src=P0_MAC, dst=CLIENT_MAC) / IPv6(src="2001:db8::1", dst=CLIENT6, hlim=64)
           / ICMPv6EchoReply(id=9, seq=3, data=b"ping6"))
    assert out == [(0, raw(rep))]


def test_unresolved_neighbour_is_asked_held_and_released(dp):
    pkt = from_client("10.0.1.50")
    assert dp.inject("p0", [raw(pkt)]) == []               # handed to the control side
    dp.housekeep()
    (port, req), = dp.collect()
    assert (port, req) == (1, raw(Ether(src=P1_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=P1_MAC, psrc="10.0.1.1", hwdst="00:00:00:00:00:00", pdst="10.0.1.50")))
    assert [(n.ip, n.state, n.held) for n in dp.neighbours()] == [("10.0.1.50", "incomplete", 1)]
    reply = Ether(src="02:00:00:00:05:50", dst=P1_MAC) / ARP(
        op=2, hwsrc="02:00:00:00:05:50", psrc="10.0.1.50", hwdst=P1_MAC, pdst="10.0.1.1")
    dp.inject("p1", [raw(reply)])
    dp.housekeep()
    assert dp.collect() == [(1, routed(pkt, P1_MAC, "02:00:00:00:05:50"))]
    # From now on the fast path sends it directly.
    assert dp.inject("p0", [raw(pkt)]) == [(1, routed(pkt, P1_MAC, "02:00:00:00:05:50"))]


def test_unanswered_resolution_gives_up_after_three_requests(dp):
    dp.inject("p0", [raw(from_client("10.0.1.70"))])
    requests = []
    deadline = time.monotonic() + 3.6
    while time.monotonic() < deadline:
        dp.housekeep()
        requests += [ARP(f[14:]).pdst for _, f in dp.collect()]
        time.sleep(0.05)
    assert requests == ["10.0.1.70"] * 3                  # one a second
    assert dp.neighbours() == []
    assert drops_of(dp) == {"neigh_unresolved": 1}


def test_unresolved_ipv6_neighbour_is_solicited(dp):
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8:1::50") / UDP()
    dp.inject("p0", [raw(pkt)])
    dp.housekeep()
    (port, ns), = dp.collect()
    expected = (Ether(src=P1_MAC, dst="33:33:ff:00:00:50")
                / IPv6(src="2001:db8:1::1", dst="ff02::1:ff00:50", hlim=255)
                / ICMPv6ND_NS(tgt="2001:db8:1::50") / ICMPv6NDOptSrcLLAddr(lladdr=P1_MAC))
    assert (port, ns) == (1, raw(expected))
    na = (Ether(src="02:00:00:00:05:50", dst=P1_MAC) / IPv6(src="2001:db8:1::50", dst="2001:db8:1::1", hlim=255)
          / ICMPv6ND_NA(tgt="2001:db8:1::50", S=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:05:50"))
    dp.inject("p1", [raw(na)])
    dp.housekeep()
    (_, f), = dp.collect()
    assert Ether(f).dst == "02:00:00:00:05:50" and IPv6(f[14:]).hlim == 63


def test_hold_queue_is_bounded_and_ring_overflow_counted(dp):
    dp.inject("p0", [raw(from_client("10.0.1.60", payload=bytes([i]))) for i in range(6)])
    dp.housekeep()
    assert [n.held for n in dp.neighbours()] == [4]
    assert drops_of(dp) == {"neigh_hold_full": 2}
    # Deleting the entry drops what it held, counted.
    dp.del_neighbour("p1", "10.0.1.60")
    assert drops_of(dp)["neigh_unresolved"] == 4
    dp.collect()


def test_handover_ring_overflow_is_counted(native):
    d = native.Dataplane(mbufs=4095, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC)
    d.add_address("p0", "10.0.0.1/24")
    full = d.mbufs_available()
    # Without housekeeping the ring to the control side fills up.
    d.inject("p0", [raw(from_client("10.0.0.61"))] * 1100)
    assert drops_of(d) == {"neigh_queue_full": 1100 - 1023}
    d.housekeep()
    d.del_neighbour("p0", "10.0.0.61")
    d.collect()
    assert d.mbufs_available() == full
    d.close()


def test_learned_neighbours_are_probed_then_expire(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, neigh_timeout_ms=400)
    d.add_port("p0", mac=P0_MAC)
    d.add_address("p0", "10.0.0.1/24")
    d.add_neighbour("p0", "10.0.0.9", "02:00:00:00:00:09")
    d.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=CLIENT_MAC, psrc=CLIENT, pdst="10.0.0.1"))])
    d.housekeep()
    time.sleep(0.35)
    d.housekeep()
    probes = d.collect()
    # Probed by unicast at 3/4 of its life...
    assert probes == [(0, raw(Ether(src=P0_MAC, dst=CLIENT_MAC) / ARP(
        op=1, hwsrc=P0_MAC, psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst=CLIENT)))]
    assert {n.ip: n.state for n in d.neighbours()} == {CLIENT: "probing", "10.0.0.9": "static"}
    time.sleep(0.15)
    d.housekeep()
    d.collect()
    # ...and gone at the end, unanswered; the static entry stays.
    assert [n.ip for n in d.neighbours()] == ["10.0.0.9"]
    assert d.totals()["neigh_expired"] == 1
    d.close()


def test_a_route_is_replaced_in_one_step(router):
    pkt = from_client("198.51.100.7")
    assert router.inject("p0", [raw(pkt)]) == [(1, routed(pkt, P1_MAC, GW1_MAC))]
    router.replace_route("198.51.100.0/24", [(GW2, "p1")])
    assert router.inject("p0", [raw(pkt)]) == [(1, routed(pkt, P1_MAC, GW2_MAC))]
    with pytest.raises(InvalidArgument, match="no connected network"):
        router.replace_route("198.51.100.0/24", [("192.0.2.1", "p1")])
    assert router.inject("p0", [raw(pkt)]) == [(1, routed(pkt, P1_MAC, GW2_MAC))]  # kept
    with pytest.raises(NotFound, match="to replace"):
        router.replace_route("192.0.2.0/24", [(GW1, "p1")])
    with pytest.raises(InvalidArgument, match="not a route"):
        router.replace_route("10.0.1.1/32", [(GW1, "p1")])
    assert drops_of(router) == {}


def test_static_neighbour_is_not_overridden_by_learning(router):
    router.inject("p1", [raw(Ether(src="02:00:00:00:0b:ad", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:0b:ad", psrc=GW1, pdst="10.0.1.1"))])
    router.housekeep()
    assert {n.ip: n.mac for n in router.neighbours()}[GW1] == GW1_MAC


def test_gateway_mac_change_is_picked_up_by_routes(router):
    router.del_neighbour("p1", GW1)
    router.inject("p1", [raw(Ether(src="02:00:00:00:0c:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:0c:01", psrc=GW1, pdst="10.0.1.1"))])
    router.housekeep()
    router.collect()
    (_, f), = router.inject("p0", [raw(from_client("198.51.100.7"))])
    assert Ether(f).dst == "02:00:00:00:0c:01"


# L3 VIPs

def vip_router(dp, method, backends=("10.0.1.20", "10.0.1.21", "10.0.1.22")):
    for i, b in enumerate(backends):
        dp.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    dp.add_vip("203.0.113.10/32", method=method, backends=list(backends))
    return {b: f"02:00:00:00:0b:{i:02x}" for i, b in enumerate(backends)}


@pytest.mark.parametrize("size", [251, 65537])
def test_a_flow_takes_the_table_slot_of_its_hash_modulo_the_size(dp, size):
    """The lookup table's slot is the flow hash modulo the table's size,
    computed without a divide (fib.h: bal_slot): the same as Python's %
    for hashes over the whole 32-bit range, and the packet goes there."""
    from pylb._native import maglev_table
    backends = [f"10.0.1.{20 + i}" for i in range(7)]
    for i, b in enumerate(backends):
        dp.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    dp.add_vip("203.0.113.10/32", method="ipip", table_size=size, backends=backends)
    table = maglev_table(backends, size)
    hashes = []
    for i in range(4000):
        src = f"10.{i % 200}.{i // 200}.9"
        h = dp.flow_hash(src, "203.0.113.10")
        hashes.append(h)
        assert dp.vip_pick("203.0.113.10/32", src, "203.0.113.10") == backends[table[h % size]]
    assert max(hashes) >= 0xf0000000 and min(hashes) < 0x10000000
    for i in range(32):
        src = f"10.0.0.{100 + i}"     # on the clients' network
        (_, f), = dp.inject("p0", [raw(from_client("203.0.113.10", src=src))])
        h = dp.flow_hash(src, "203.0.113.10")
        assert Ether(f)[IP].dst == backends[table[h % size]]


def test_ipip_encapsulation_is_exact(dp):
    macs = vip_router(dp, "ipip")
    pkt = from_client("203.0.113.10", ttl=20, tos=0x10)
    (port, f), = dp.inject("p0", [raw(pkt)])
    backend = dp.vip_pick("203.0.113.10/32", CLIENT, "203.0.113.10")
    expected = (Ether(src=P1_MAC, dst=macs[backend])
                / IP(src="10.0.1.1", dst=backend, ttl=64, id=0, tos=0x10, proto=4) / pkt[IP])
    assert (port, f) == (1, raw(expected))
    assert dp.totals()["vip_packets"] == 1


def test_an_encapsulation_takes_the_address_its_port_has_now(router):
    """A backend's outer headers are made once per lcore (encap.c), the
    egress port's address as their source: the port's address on the
    backend's network, else its first. One added on that network is the
    source from the next packet on. (The address's route moves dp->gen and
    its configuration is published after: the headers are made again on
    either, so this holds whichever a worker sees first; the window between
    the two is a race no API call can hold open for a test.)"""
    router.add_vip("192.0.2.10/32", method="ipip", backends=["198.51.100.20"])
    pkt = from_client("192.0.2.10")
    (_, f), = router.inject("p0", [raw(pkt)])
    assert Ether(f)[IP].src == "10.0.1.1"
    router.add_address("p1", "198.51.96.1/20", mirror=False)
    (_, f), = router.inject("p0", [raw(pkt)])
    assert f == raw(Ether(src=P1_MAC, dst=GW1_MAC)      # the /24 via GW1 stays
                    / IP(src="198.51.96.1", dst="198.51.100.20", ttl=64, id=0, proto=4) / pkt[IP])


def test_gre_encapsulation_is_exact(dp):
    macs = vip_router(dp, "gre")
    pkt = from_client("203.0.113.10")
    (_, f), = dp.inject("p0", [raw(pkt)])
    backend = dp.vip_pick("203.0.113.10/32", CLIENT, "203.0.113.10")
    expected = (Ether(src=P1_MAC, dst=macs[backend])
                / IP(src="10.0.1.1", dst=backend, ttl=64, id=0, proto=47) / GRE(proto=0x0800) / pkt[IP])
    assert f == raw(expected)


def test_ipv6_vip_over_ipv4_backends_is_6in4(dp):
    dp.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:00")
    dp.add_vip("2001:db8:f::/64", method="ipip", backends=["10.0.1.20"])
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8:f::1") / UDP()
    (_, f), = dp.inject("p0", [raw(pkt)])
    # DF: routers answer "fragmentation needed" rather than cut IPv6 (RFC 4213).
    assert f == raw(Ether(src=P1_MAC, dst="02:00:00:00:0b:00")
                    / IP(src="10.0.1.1", dst="10.0.1.20", ttl=64, id=0, proto=41, flags="DF")
                    / pkt[IPv6])


@pytest.mark.parametrize("method", ["ipip", "gre"])
def test_an_outer_source_prefix_varies_per_flow_within_it(dp, method):
    """`source` a prefix: each flow (client, destination) leaves from an
    address of it, its own for good, so a backend's NIC spreads flows over
    its queues; an address: every flow from it. IPv6 alike (the last 32
    bits vary at most)."""
    vip_router(dp, method)
    dp.del_vip("203.0.113.10/32")
    dp.add_vip("203.0.113.10/32", method=method, source="10.200.0.0/20",
               backends=["10.0.1.20", "10.0.1.21", "10.0.1.22"])
    assert dp.vip("203.0.113.10/32").source == "10.200.0.0/20"
    clients = [f"10.0.0.{i}" for i in range(2, 202)]

    def sources():
        out = dp.inject("p0", [raw(from_client("203.0.113.10", src=c)) for c in clients])
        assert len(out) == len(clients)
        return [Ether(f)[IP].src for _, f in out]
    first = sources()
    assert sources() == first                                   # a flow keeps its source
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.200.0.0/20") for a in first)
    assert len(set(first)) > 150                                # and flows spread over 4096
    dp.del_vip("203.0.113.10/32")
    dp.add_vip("203.0.113.10/32", method=method, source="10.200.0.7",
               backends=["10.0.1.20", "10.0.1.21", "10.0.1.22"])
    assert set(sources()) == {"10.200.0.7"}
    assert dp.vip("203.0.113.10/32").source == "10.200.0.7"

    dp.add_neighbour("p1", "2001:db8:1::20", "02:00:00:00:0b:20")
    dp.add_vip("2001:db8:f::/64", method=method, source="2001:db8:5::/64",
               backends=["2001:db8:1::20"])
    out = dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC)
                               / IPv6(src=f"2001:db8::{i:x}", dst="2001:db8:f::1") / UDP())
                           for i in range(2, 202)])
    src6 = {Ether(f)[IPv6].src for _, f in out}
    assert len(out) == 200 and len(src6) > 190
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("2001:db8:5::/64") and
               int(ipaddress.ip_address(a)) >> 32 & 0xffffffff == 0 for a in src6)
    assert drops_of(dp) == {}


def test_an_outer_source_is_refused_with_what_to_fix(dp):
    with pytest.raises(InvalidArgument, match="host bits set"):
        dp.add_vip("203.0.113.10/32", source="10.200.0.1/24")
    with pytest.raises(InvalidArgument, match="length 0"):
        dp.add_vip("203.0.113.10/32", source="0.0.0.0/0")
    assert dp.vips() == []
    with pytest.raises(InvalidArgument, match="not of the VIP's address family"):
        model.VipSpec("203.0.113.10/32", source="2001:db8::/64")
    with pytest.raises(InvalidArgument, match="unicast prefix"):
        model.VipSpec("203.0.113.10/32", source="224.0.0.0/24")


@pytest.mark.parametrize("method", ["ipip", "gre"])
def test_too_big_without_df_goes_out_with_the_outer_packet_in_fragments(dp, method):
    """IPv4 without DF that fits the client's path but not the tunnel: the
    outer packet is fragmented (RFC 2003 5.1); the backend's decapsulation
    reassembles the very packet the client sent. Counted as fragmented."""
    vip_router(dp, method)
    before = dp.totals()["ipv4_fragmented"]
    big = from_client("203.0.113.10", payload=b"b" * 1472)
    assert len(big[IP]) == 1500 and not big[IP].flags.DF
    out = dp.inject("p0", [raw(big)])
    assert len(out) == 2 and all(port == 1 and len(f) - 14 <= 1500 for port, f in out)
    outer = defragment([Ether(f)[IP] for _, f in out])
    whole, = [p for p in outer if not p.flags.MF and p.frag == 0]
    assert (whole.src, whole.proto, whole.flags.DF) == ("10.0.1.1", 4 if method == "ipip" else 47, 0)
    inner = raw(whole.payload)[4:] if method == "gre" else raw(whole.payload)
    assert inner == raw(big[IP])        # as the client sent it (a VIP is no hop)
    assert dp.totals()["ipv4_fragmented"] == before + 1 and "vip_too_big" not in drops_of(dp)


def test_direct_routing_only_rewrites_the_mac(dp):
    macs = vip_router(dp, "dr")
    pkt = from_client("203.0.113.10")
    (_, f), = dp.inject("p0", [raw(pkt)])
    backend = dp.vip_pick("203.0.113.10/32", CLIENT, "203.0.113.10")
    assert f == raw(Ether(src=P1_MAC, dst=macs[backend]) / pkt[IP])


def test_too_big_to_encapsulate_tells_the_source_the_mtu(dp):
    vip_router(dp, "ipip")
    big = from_client("203.0.113.10", payload=b"b" * (1500 - 28), flags="DF")
    assert len(big[IP]) == 1500
    out = dp.inject("p0", [raw(big)])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC)
                / IP(src="10.0.0.1", dst=CLIENT, ttl=64, tos=0xc0, id=0, proto=1)
                / ICMP(type=3, code=4, nexthopmtu=1480) / Raw(raw(big[IP])[:548]))
    assert out == [(0, raw(expected))]
    v6 = (Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst="2001:db8:f::1")
          / UDP() / Raw(b"6" * (1500 - 48)))
    dp.add_vip("2001:db8:f::/64", backends=["10.0.1.20"])
    (_, f), = dp.inject("p0", [raw(v6)])
    assert raw(Ether(f)[IPv6].payload)[:8] == bytes([2, 0]) + raw(Ether(f)[IPv6].payload)[2:4] + (1480).to_bytes(4, "big")
    assert drops_of(dp) == {"vip_too_big": 2}
    # One byte less fits.
    assert len(dp.inject("p0", [raw(from_client("203.0.113.10", payload=b"b" * 1451, flags="DF"))])) == 1


def test_direct_routing_needs_backends_on_a_connected_network(dp):
    dp.add_vip("203.0.113.10/32", method="dr")
    with pytest.raises(InvalidArgument, match="no connected network"):
        dp.set_backends("203.0.113.10/32", ["192.0.2.9"])


def test_vip_prefix_spreads_sources_and_honours_weights(dp):
    for i in range(3):
        dp.add_neighbour("p1", f"10.0.1.{20 + i}", f"02:00:00:00:0b:{i:02x}")
    dp.add_vip("203.0.113.0/24", method="dr",
               backends=[("10.0.1.20", 1), ("10.0.1.21", 1), ("10.0.1.22", 2)])
    frames = [raw(from_client(f"203.0.113.{d}", src=f"10.0.0.{s}"))
              for s in range(2, 102) for d in range(1, 21)]
    macs = [Ether(f).dst for _, f in dp.inject("p0", frames)]
    shares = [macs.count(f"02:00:00:00:0b:{i:02x}") / len(macs) for i in range(3)]
    assert abs(shares[0] - 0.25) < 0.05 and abs(shares[2] - 0.5) < 0.05, shares


def test_a_changed_or_deleted_neighbour_is_followed_at_once(dp):
    """Connected destinations' MACs are remembered per lcore: a new MAC and
    a deleted neighbour take effect from the next packet."""
    dp.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:00")
    dp.add_vip("203.0.113.10/32", method="dr", backends=["10.0.1.20"])
    frame = raw(from_client("203.0.113.10"))
    assert [Ether(f).dst for _, f in dp.inject("p0", [frame] * 2)] == ["02:00:00:00:0b:00"] * 2
    dp.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:99")
    assert [Ether(f).dst for _, f in dp.inject("p0", [frame])] == ["02:00:00:00:0b:99"]
    dp.del_neighbour("p1", "10.0.1.20")
    assert dp.inject("p0", [frame]) == []       # held while pylb asks
    dp.housekeep()
    assert [ARP(f[14:]).pdst for _, f in dp.collect()] == ["10.0.1.20"]
    dp.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:01")
    dp.housekeep()
    assert [Ether(f).dst for _, f in dp.collect()] == ["02:00:00:00:0b:01"]    # released


@pytest.mark.parametrize("method", ["ipip", "gue"])
def test_a_backends_remembered_output_follows_routes_and_gateways(router, method):
    """Each lcore remembers a VIP backend's output (next hop, MAC) until a
    route or neighbour changes: a backend behind a gateway follows the
    gateway's new MAC, a more specific route, an ECMP one (each flow its
    gateway) and a route taken away, from the next packet."""
    router.add_vip("192.0.2.10/32", method=method, backends=["198.51.100.20"])
    frame = raw(from_client("192.0.2.10"))

    def dst_macs(n=1):
        return [Ether(f).dst for _, f in router.inject("p0", [frame] * n)]

    def dst_macs_of_clients():
        frames = [raw(from_client("192.0.2.10", src=f"10.0.0.{i}")) for i in range(3, 35)]
        return {Ether(f).dst for _, f in router.inject("p0", frames)}

    assert dst_macs(2) == [GW1_MAC] * 2
    router.del_neighbour("p1", GW1)         # the gateway answers from a new MAC
    router.inject("p1", [raw(Ether(src="02:00:00:00:0c:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:0c:01", psrc=GW1, pdst="10.0.1.1"))])
    router.housekeep()
    router.collect()
    assert dst_macs() == ["02:00:00:00:0c:01"]
    router.add_route("198.51.100.20/32", (GW2, "p1"))
    assert dst_macs() == [GW2_MAC]
    router.del_route("198.51.100.20/32")      # ECMP: each flow its gateway
    router.add_route("198.51.100.20/32", [(GW1, "p1"), (GW2, "p1")])
    assert dst_macs_of_clients() == {"02:00:00:00:0c:01", GW2_MAC}
    router.del_route("198.51.100.20/32")
    router.del_route("198.51.100.0/24")
    assert dst_macs() == []
    assert drops_of(router) == {"vip_no_route": 1}


def test_removing_a_backend_moves_only_its_sources(dp):
    vip_router(dp, "ipip", backends=[f"10.0.1.{20 + i}" for i in range(5)])
    pairs = [(f"10.{i}.{j}.7", "203.0.113.10") for i in range(10) for j in range(100)]
    before = {p: dp.vip_pick("203.0.113.10/32", *p) for p in pairs}
    dp.del_backend("203.0.113.10/32", "10.0.1.22")
    after = {p: dp.vip_pick("203.0.113.10/32", *p) for p in pairs}
    moved = [p for p in pairs if before[p] != after[p]]
    assert moved and all(before[p] == "10.0.1.22" for p in moved)


def test_vip_drops_without_backends_or_route(dp):
    dp.add_vip("203.0.113.10/32", method="ipip")
    dp.inject("p0", [raw(from_client("203.0.113.10"))])
    dp.set_backends("203.0.113.10/32", ["192.0.2.200"])    # no route to it
    dp.inject("p0", [raw(from_client("203.0.113.10"))])
    assert drops_of(dp) == {"vip_no_backend": 1, "vip_no_route": 1}


# Exception path

@pytest.fixture
def kdp(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC, kernel_iface="k0")
    d.add_port("p1", mac=P1_MAC, kernel_iface="k1")
    d.add_address("p0", "10.0.0.1/24")
    d.add_address("p1", "10.0.1.1/24")
    full = d.mbufs_available()
    yield d
    d.collect()
    d.collect(kernel=True)
    assert d.mbufs_available() == full, "mbufs leaked"
    d.close()


def test_tcp_to_our_address_goes_up_to_the_kernel(kdp):
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst="10.0.0.1") / TCP(dport=22, flags="S")
    assert kdp.inject("p0", [raw(syn)]) == []
    assert kdp.collect(kernel=True) == [(0, raw(syn))]
    # ICMP echo is still answered by the fast path, other ICMP goes up.
    other = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst="10.0.0.1") / ICMP(type=0)
    kdp.inject("p0", [raw(other)])
    assert kdp.collect(kernel=True) == [(0, raw(other))]
    assert kdp.totals()["to_kernel"] == 2


def test_what_the_kernel_sends_is_routed_without_a_ttl_decrement(kdp):
    kdp.add_neighbour("p1", "10.0.1.9", "02:00:00:00:09:09")
    # The kernel interface runs without ARP: it addresses frames to itself.
    pkt = Ether(src=P0_MAC, dst=P0_MAC) / IP(src="10.0.0.1", dst="10.0.1.9", ttl=64) / TCP(dport=80)
    out = kdp.inject("p0", [raw(pkt)], kernel=True)
    assert out == [(1, raw(Ether(src=P1_MAC, dst="02:00:00:00:09:09") / pkt[IP]))]
    assert kdp.totals()["from_kernel"] == 1


def test_kernel_frames_that_are_not_routable_ip_are_dropped(kdp):
    arp = Ether(src=P0_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.9")
    mld = Ether(src=P0_MAC, dst="33:33:00:00:00:16") / IPv6(src="fe80::1", dst="ff02::16") / UDP()
    assert kdp.inject("p0", [raw(arp), raw(mld)], kernel=True) == []
    assert drops_of(kdp) == {"kernel_invalid": 2}


# The Python API validates its input

def test_api_errors_say_what_to_fix(router):
    with pytest.raises(InvalidArgument, match="not a prefix"):
        router.add_route("10.1.0.0/33", (GW1, "p1"))
    with pytest.raises(InvalidArgument, match="host bits"):
        router.add_route("10.1.0.1/16", (GW1, "p1"))
    with pytest.raises(InvalidArgument, match="no connected network of port p0"):
        router.add_route("10.1.0.0/16", ("10.0.1.2", "p0"))
    with pytest.raises(NotFound, match="no port named 'p9'"):
        router.add_route("10.1.0.0/16", (GW1, "p9"))
    with pytest.raises(AlreadyExists, match="already exists"):
        router.add_route("198.51.100.0/24", (GW2, "p1"))
    with pytest.raises(InvalidArgument, match="no connected network of port p1"):
        router.add_route("10.2.0.0/16", ("10.9.9.9", "p1"))
    with pytest.raises(NotFound, match="no route"):
        router.del_route("10.3.0.0/16")
    router.add_vip("192.0.2.0/28")
    with pytest.raises(AlreadyExists, match="VIP 192.0.2.0/28 already exists"):
        router.add_vip("192.0.2.0/28")
    with pytest.raises(AlreadyExists, match="already routed"):
        router.add_vip("198.51.100.0/24")
    with pytest.raises(InvalidArgument, match="prime"):
        router.add_vip("192.0.2.64/28", table_size=65536)
    with pytest.raises(InvalidArgument, match="method"):
        router.add_vip("192.0.2.64/28", method="nat")
    with pytest.raises(InvalidArgument, match="is a VIP"):
        router.del_route("192.0.2.0/28")
    with pytest.raises(InvalidArgument, match="not six hex octets"):
        router.add_neighbour("p1", "10.0.1.77", "zz")


def test_routes_are_listed_looked_up_and_deleted(router):
    kinds = {r.prefix: r.kind for r in router.routes(4)}
    assert kinds == {"10.0.0.0/24": "connected", "10.0.0.1/32": "local", "10.0.1.0/24": "connected",
                     "10.0.1.1/32": "local", "198.51.100.0/24": "gateway", "203.0.113.0/24": "gateway"}
    assert router.route("203.0.113.0/24").nexthops == ((GW1, 1), (GW2, 1))
    assert router.lookup("198.51.100.200").prefix == "198.51.100.0/24"
    assert router.route_count(6) == 5
    router.del_route("198.51.100.0/24")
    with pytest.raises(NotFound):
        router.lookup("198.51.100.200")
    router.add_route("0.0.0.0/0", (GW2, "p1"))
    assert router.lookup("198.51.100.200").nexthops == ((GW2, 1),)
    assert next(iter(router.routes(4))).prefix == "0.0.0.0/0"
