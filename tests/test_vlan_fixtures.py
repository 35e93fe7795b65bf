"""Packet fixtures for 802.1Q sub-interfaces: a VLAN of a port is a port
like any other (its own addresses, neighbours, routes; services reached
through it), its frames tagged on the wire; the untagged port keeps
working; frames of other VLANs are dropped by reason."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import AlreadyExists, InvalidArgument
from test_l4_fixtures import BACKENDS, BMAC

V100_CLIENT = "10.0.100.2"

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"vlan_unknown"}


@pytest.fixture
def lb(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC)
    d.add_port("p1", mac=P1_MAC)
    d.add_port("p0.100", parent="p0", vlan=100)
    d.add_port("p0.200", parent="p0", vlan=200)
    for port, net in (("p0", "10.0.0.1/24"), ("p1", "10.0.1.1/24"), ("p0.100", "10.0.100.1/24"),
                      ("p0.200", "10.0.200.1/24")):
        d.add_address(port, net)
    for b in BACKENDS:
        d.add_neighbour("p1", b, BMAC[b])
    full = d.mbufs_available()
    yield d
    assert d.mbufs_available() == full, "mbufs leaked"
    d.close()


def tagged(vid, pkt, dst=P0_MAC):
    return Ether(src=CLIENT_MAC, dst=dst) / Dot1Q(vlan=vid) / pkt


def test_a_vlan_is_a_port_of_its_own(lb):
    ports = {p.name: p for p in lb.ports()}
    assert ports["p0.100"].mac == P0_MAC and ports["p0.100"].device == "vlan 100 of p0"
    assert ports["p0.100"].addresses == ("10.0.100.1/24",)
    who = ARP(op=1, hwsrc=CLIENT_MAC, psrc=V100_CLIENT, pdst="10.0.100.1")
    (port, f), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") /
                                      Dot1Q(vlan=100) / who)])
    out = Ether(f)
    # Answered on the VLAN: tagged 100, from the port's MAC.
    assert port == 2 and out[Dot1Q].vlan == 100 and out.src == P0_MAC
    assert (out[ARP].op, out[ARP].psrc, out[ARP].pdst) == (2, "10.0.100.1", V100_CLIENT)
    # The VLAN's address is not the port's, nor the port's the VLAN's.
    assert lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") /
                                ARP(op=1, hwsrc=CLIENT_MAC, psrc="10.0.0.2",
                                    pdst="10.0.100.1"))]) == []
    assert lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=100) /
                                ARP(op=1, hwsrc=CLIENT_MAC, psrc=V100_CLIENT,
                                    pdst="10.0.0.1"))]) == []
    # The untagged port keeps working.
    (port, f), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) /
                                      IP(src="10.0.0.2", dst="10.0.0.1") / ICMP())])
    assert port == 0 and Dot1Q not in Ether(f) and Ether(f)[ICMP].type == 0
    (port, f), = lb.inject("p0", [raw(tagged(100, IP(src=V100_CLIENT, dst="10.0.100.1") /
                                             ICMP()))])
    assert port == 2 and Ether(f)[Dot1Q].vlan == 100 and Ether(f)[ICMP].type == 0


def test_other_tags_are_dropped_by_reason(lb):
    assert lb.inject("p0", [raw(tagged(300, IP(src="10.0.0.2", dst="10.0.0.1") / ICMP()))]) == []
    assert lb.inject("p1", [raw(tagged(100, IP(src="10.0.1.2", dst="10.0.1.1") / ICMP(),
                                       dst=P1_MAC))]) == []      # p1 has no VLANs
    assert {k: v for k, v in lb.drops().items() if v} == {"vlan_unknown": 2}


def test_a_service_reached_through_a_vlan_answers_on_it(lb):
    vip = "10.0.100.50"
    lb.add_service(service(vip, 80, backends=[(BACKENDS[0], 8080)], syn_proxy="off"))
    lb.add_neighbour("p0.100", V100_CLIENT, CLIENT_MAC)
    syn = tagged(100, IP(src=V100_CLIENT, dst=vip) / TCP(sport=40000, dport=80, flags="S"))
    (port, f), = lb.inject("p0", [raw(syn)])
    assert port == 1 and Dot1Q not in Ether(f) and Ether(f)[IP].dst == BACKENDS[0]
    reply = Ether(src=BMAC[BACKENDS[0]], dst=P1_MAC) / IP(src=BACKENDS[0], dst=V100_CLIENT) / \
        TCP(sport=8080, dport=40000, flags="SA")
    (port, f), = lb.inject("p1", [raw(reply)])
    back = Ether(f)
    assert port == 2 and back[Dot1Q].vlan == 100 and back.dst == CLIENT_MAC
    assert (back[IP].src, back[TCP].sport) == (vip, 80)


def test_routes_leave_by_a_vlan_tagged(lb):
    lb.add_neighbour("p0.200", "10.0.200.254", "02:00:00:00:02:fe")
    lb.add_route("10.9.0.0/16", [("10.0.200.254", "p0.200")])
    (port, f), = lb.inject("p1", [raw(Ether(src=BMAC[BACKENDS[0]], dst=P1_MAC) /
                                      IP(src=BACKENDS[0], dst="10.9.1.1") / ICMP())])
    out = Ether(f)
    assert port == 3 and out[Dot1Q].vlan == 200 and out.dst == "02:00:00:00:02:fe"


def test_vlans_are_checked(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC)
    d.add_port("p0.100", parent="p0", vlan=100)
    for kw, err, says in (({"parent": "p0", "vlan": 4095}, InvalidArgument, "not in 1..4094"),
                          ({"parent": "p0", "vlan": 100}, AlreadyExists, "already has VLAN 100"),
                          ({"parent": "p0.100", "vlan": 7}, InvalidArgument, "not a VLAN itself"),
                          ({"vlan": 7}, InvalidArgument, "both its parent port and its tag")):
        with pytest.raises(err, match=says):
            d.add_port("vx", **kw)
    d.close()
