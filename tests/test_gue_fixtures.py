"""Packet fixtures for GUE (variant 1: IP in UDP, as FOU): L3 VIPs and L4
services of method gue send the client's packet as it is in an outer IP and
UDP header to the backend's port 6080, the UDP source port from the flow's
hash (each flow its own, the same for all its packets), IPv4 and IPv6, either
family in either."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, service
from pylb.errors import InvalidArgument
from test_l4_fixtures import BACKENDS, BMAC, VIP, c2v

GUE_PORT = 6080
BACKEND6 = "2001:db8:1::20"


@pytest.fixture
def lb(dp):
    for b in BACKENDS:
        dp.add_neighbour("p1", b, BMAC[b])
    dp.add_neighbour("p1", BACKEND6, BMAC[BACKENDS[0]])
    return dp


def gue_of(frame: bytes, outer=IP):
    """(outer IP, UDP, the packet inside) of a GUE frame."""
    e = Ether(frame)
    return e[outer], e[UDP], raw(e[UDP].payload)


def from_client(dst, sport, proto=UDP, src="10.0.0.2"):
    return Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst, ttl=64) / \
        proto(sport=sport, dport=53) / Raw(b"q" * 12)


def test_an_l3_vip_in_gue_carries_the_packet_in_udp_with_a_port_per_flow(lb):
    lb.add_vip("10.0.3.0/24", method="gue", backends=BACKENDS)
    assert lb.vip("10.0.3.0/24").method == "gue"
    sports = {}
    for src in (f"10.0.0.{i}" for i in range(2, 60)):
        pkt = from_client("10.0.3.9", 5000, src=src)
        (port, f), = lb.inject("p0", [raw(pkt)])
        ip, udp, inner = gue_of(f)
        assert port == 1 and ip.proto == 17 and ip.src == "10.0.1.1" and ip.dst in BACKENDS
        assert Ether(f).dst == BMAC[ip.dst]
        assert udp.dport == GUE_PORT and 0xc000 <= udp.sport <= 0xffff
        assert udp.chksum == 0 and udp.len == 8 + len(inner)
        assert inner == raw(pkt[IP])                 # as it came: GUE variant 1
        sports[src] = udp.sport
        again, = lb.inject("p0", [raw(pkt)])        # the same flow: the same port
        assert gue_of(again[1])[1].sport == udp.sport
    assert len(set(sports.values())) > 50           # flows spread over source ports
    assert lb.totals()["vip_packets"] == 2 * 58


def test_an_ipv6_vip_in_gue_computes_the_udp_checksum(lb):
    lb.add_vip("2001:db8:3::/64", method="gue", backends=[BACKEND6])
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8:3::9") / \
        UDP(sport=5000, dport=53) / Raw(b"q" * 12)
    (port, f), = lb.inject("p0", [raw(pkt)])
    ip, udp, inner = gue_of(f, IPv6)
    assert (ip.nh, ip.dst, udp.dport, inner) == (17, BACKEND6, GUE_PORT, raw(pkt[IPv6]))
    sent = udp.chksum
    e = Ether(f)
    del e[UDP].chksum
    assert sent != 0 and Ether(raw(e))[UDP].chksum == sent


def test_a_gue_service_tunnels_each_connection_with_its_own_source_port(lb):
    lb.add_service(service(VIP, 80, method="gue", backends=BACKENDS))
    assert lb.service(VIP, 80).method == "gue"
    syns = lb.inject("p0", [raw(c2v(sport=p)) for p in range(20000, 20100)])
    acks = lb.inject("p0", [raw(c2v(sport=p, flags="A")) for p in range(20000, 20100)])
    for (_, s), (_, a), p in zip(syns, acks, range(20000, 20100)):
        ip, udp, inner = gue_of(s)
        assert ip.dst in BACKENDS and udp.dport == GUE_PORT and inner == raw(c2v(sport=p)[IP])
        assert gue_of(a)[1].sport == udp.sport and Ether(a)[IP].dst == ip.dst
    assert len({gue_of(f)[1].sport for _, f in syns}) > 90
    assert lb.totals()["conn_created"] == 100
    assert {c.backend for c in lb.connections()} <= set(BACKENDS)


def test_a_gue_service_may_have_backends_of_the_other_family(lb):
    lb.add_service(service(VIP, 53, proto="udp", method="gue", backends=[BACKEND6]))
    (port, f), = lb.inject("p0", [raw(c2v(sport=7, dport=53, proto=UDP))])
    ip, udp, inner = gue_of(f, IPv6)
    assert ip.dst == BACKEND6 and udp.dport == GUE_PORT and inner == raw(c2v(sport=7, dport=53,
                                                                            proto=UDP)[IP])
    with pytest.raises(InvalidArgument, match="address family"):
        lb.add_service(service(VIP, 54, proto="udp", method="nat", backends=[(BACKEND6, 53)]))


def test_gue_too_big_tells_the_sender_the_mtu_less_ip_and_udp(lb):
    lb.add_vip("10.0.3.0/24", method="gue", backends=BACKENDS)
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst="10.0.3.9", flags="DF") / \
        TCP(sport=1, dport=2) / Raw(b"z" * (1500 - 40))
    (port, f), = lb.inject("p0", [raw(pkt)])
    icmp = Ether(f)
    assert port == 0 and icmp[IP].dst == "10.0.0.2" and icmp["ICMP"].nexthopmtu == 1500 - 28


GW, GW_MAC = "10.0.1.2", "02:00:00:00:02:02"


def test_backends_follow_a_route_change_from_the_next_packet(lb):
    """A backend's route is remembered with its VIP or service (not looked
    up per packet) while no route or neighbour changes: a new route to it
    takes effect at once, for a VIP, a new connection and an established one,
    and so does its deletion."""
    lb.add_neighbour("p1", GW, GW_MAC)
    lb.add_vip("10.0.3.0/24", method="gue", backends=[BACKENDS[0]])
    lb.add_service(service(VIP, 80, method="gue", backends=[BACKENDS[0]]))
    frames = [raw(from_client("10.0.3.9", 5000)), raw(c2v(sport=20000))]

    def macs(extra=()):
        out = lb.inject("p0", frames + [raw(f) for f in extra])
        assert all(Ether(f)[IP].dst == BACKENDS[0] for _, f in out)
        return {Ether(f).dst for _, f in out}

    assert macs() == {BMAC[BACKENDS[0]]}
    lb.add_route(f"{BACKENDS[0]}/32", (GW, "p1"))
    assert macs([c2v(sport=20001)]) == {GW_MAC}     # VIP, established, new
    lb.del_route(f"{BACKENDS[0]}/32")
    assert macs([c2v(sport=20002)]) == {BMAC[BACKENDS[0]]}
    assert lb.totals()["conn_created"] == 3
