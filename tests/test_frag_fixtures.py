"""Packet fixtures for fragments of TCP/UDP datagrams through L4 services:
every fragment of a datagram reaches the backend its first fragment went to
(translated for NAT and FullNAT, as it is for DR), replies' fragments get
the VIP back, fragments before their first are held until it comes, and
the limits and timeouts drop by reason. Each datagram is put together
again with scapy and its transport checksum checked."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from test_icmp_fixtures import BACKEND6, BMAC6, CLIENT6, LIP, VIP6
from test_icmp_fixtures import lb  # noqa: F401  (the fixture: backends and clients known)
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP

PAYLOAD = bytes(range(256)) * 16          # 4,096 bytes: three or more fragments

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"frag_table_full", "frag_hold_full", "frag_timeout", "frag_no_conn"}

def frags4(src=CLIENT, dst=VIP, sport=40000, dport=80, ident=7, payload=PAYLOAD, mac=CLIENT_MAC,
           port_mac=P0_MAC, proto=UDP):
    """A datagram's IPv4 fragments (1,480-byte pieces), as frames."""
    l4 = UDP(sport=sport, dport=dport) if proto is UDP else \
        TCP(sport=sport, dport=dport, flags="A", seq=1, ack=1)
    pkt = IP(src=src, dst=dst, id=ident, ttl=64) / l4 / Raw(payload)
    return [raw(Ether(src=mac, dst=port_mac) / f) for f in fragment(pkt, fragsize=1480)]


def frags6(src=CLIENT6, dst=VIP6, sport=40000, dport=80, ident=7, payload=PAYLOAD,
           mac=CLIENT_MAC, port_mac=P0_MAC):
    pkt = IPv6(src=src, dst=dst, hlim=64) / IPv6ExtHdrFragment(id=ident) / \
        UDP(sport=sport, dport=dport) / Raw(payload)
    return [raw(Ether(src=mac, dst=port_mac) / f) for f in fragment6(pkt, 1500)]


def whole4(frames):
    """The datagram the IPv4 fragments make (every header checksum checked),
    its transport checksum checked."""
    ips = sorted((Ether(f)[IP] for f in frames), key=lambda ip: ip.frag)
    assert all(IP(raw(ip)).chksum == ip.chksum for ip in ips)
    first = ips[0]
    assert first.frag == 0 and ips[-1].flags.MF == 0
    body = b"".join(raw(ip.payload) for ip in ips)
    got = IP(raw(IP(src=first.src, dst=first.dst, proto=first.proto, ttl=first.ttl) / Raw(body)))
    again = got.copy()
    del again.payload.chksum
    assert IP(raw(again)).payload.chksum == got.payload.chksum, "transport checksum"
    return got


def whole6(frames):
    """The datagram IPv6 fragments make (by hand: scapy's defragment6
    wants every fragment header in place)."""
    ips = [Ether(f)[IPv6] for f in frames]
    parts = sorted((ip[IPv6ExtHdrFragment].offset * 8, raw(ip[IPv6ExtHdrFragment].payload))
                   for ip in ips)
    body = b"".join(p for _, p in parts)
    first = ips[0]
    pkt = IPv6(src=first.src, dst=first.dst, nh=17, hlim=first.hlim) / UDP(body)
    got = IPv6(raw(pkt))
    again = got.copy()
    del again[UDP].chksum
    assert IPv6(raw(again))[UDP].chksum == got[UDP].chksum, "transport checksum"
    return got


@pytest.mark.parametrize("order", ["in order", "last first"])
def test_nat_fragments_follow_their_first_to_one_backend(lb, order):
    lb.add_service(service(VIP, 80, method="nat", proto="udp", backends=[(b, 8080) for b in BACKENDS]))
    frames = frags4()
    assert len(frames) == 3
    if order == "last first":
        assert lb.inject("p0", frames[:0:-1]) == []     # held until the first comes
        sent = lb.inject("p0", frames[:1])
        assert lb.totals()["fragments_held"] == 2
    else:
        sent = lb.inject("p0", frames)
    assert len(sent) == 3 and {p for p, _ in sent} == {1}
    assert len({Ether(f).dst for _, f in sent}) == 1    # one backend
    got = whole4([f for _, f in sent])
    assert got.dst in BACKENDS and got.src == CLIENT
    assert (got[UDP].dport, raw(got[UDP].payload)) == (8080, PAYLOAD)
    assert lb.totals()["fragments_followed"] == 2


def test_fullnat_fragments_both_ways(lb):
    lb.add_service(service(VIP, 80, method="fullnat", proto="udp", local_addresses=[LIP], backends=[(b, 8080) for b in BACKENDS]))
    sent = lb.inject("p0", frags4())
    got = whole4([f for _, f in sent])
    backend, lport = got.dst, got[UDP].sport
    assert got.src == LIP and got[UDP].dport == 8080
    # The backend's answer, fragmented, the first fragment last.
    reply = frags4(src=backend, dst=LIP, sport=8080, dport=lport, ident=99,
                   payload=PAYLOAD[::-1], mac=BMAC[backend], port_mac=P1_MAC)
    out = lb.inject("p1", reply[1:]) + lb.inject("p1", reply[:1])
    assert len(out) == 3 and {p for p, _ in out} == {0}
    back = whole4([f for _, f in out])
    assert (back.src, back.dst, back[UDP].sport, back[UDP].dport) == (VIP, CLIENT, 80, 40000)
    assert raw(back[UDP].payload) == PAYLOAD[::-1]


def test_nat_reply_fragments_get_the_vip_back(lb):
    lb.add_service(service(VIP, 80, method="nat", proto="udp", backends=[(BACKENDS[0], 8080)]))
    lb.inject("p0", frags4())
    reply = frags4(src=BACKENDS[0], dst=CLIENT, sport=8080, dport=40000, ident=5,
                   mac=BMAC[BACKENDS[0]], port_mac=P1_MAC)
    out = lb.inject("p1", reply)
    assert len(out) == 3
    back = whole4([f for _, f in out])
    assert (back.src, back.dst, back[UDP].sport) == (VIP, CLIENT, 80)


def test_dr_fragments_go_as_they_are(lb):
    lb.add_service(service(VIP, 80, method="dr", proto="udp", backends=BACKENDS))
    frames = frags4()
    sent = lb.inject("p0", [frames[2], frames[0], frames[1]])
    assert len(sent) == 3 and len({Ether(f).dst for _, f in sent}) == 1
    by_offset = {Ether(f)[IP].frag: Ether(f)[IP] for _, f in sent}
    for orig in frames:
        ip, was = by_offset[Ether(orig)[IP].frag], Ether(orig)[IP]
        assert (ip.src, ip.dst, ip.id, raw(ip.payload)) == \
            (was.src, was.dst, was.id, raw(was.payload))
    assert whole4([f for _, f in sent]).dst == VIP


def test_tcp_fragments_follow(lb):
    lb.add_service(service(VIP, 80, method="nat", backends=[(b, 8080) for b in BACKENDS], syn_proxy="off"))
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP) / \
        TCP(sport=40000, dport=80, flags="S", seq=0)
    (_, f), = lb.inject("p0", [raw(syn)])
    sent = lb.inject("p0", frags4(proto=TCP))
    assert len(sent) == 3 and {Ether(x).dst for _, x in sent} == {Ether(f).dst}
    got = whole4([x for _, x in sent])
    assert got[TCP].dport == 8080 and raw(got[TCP].payload) == PAYLOAD


def test_ipv6_fragments_follow_out_of_order(lb):
    lb.add_service(service(VIP6, 80, method="nat", proto="udp", backends=[(BACKEND6, 8080)]))
    frames = frags6()
    assert len(frames) == 3
    out = lb.inject("p0", frames[1:]) + lb.inject("p0", frames[:1])
    assert len(out) == 3 and {p for p, _ in out} == {1}
    got = whole6([f for _, f in out])
    assert (got.dst, got[UDP].dport, raw(got[UDP].payload)) == (BACKEND6, 8080, PAYLOAD)
    reply = frags6(src=BACKEND6, dst=CLIENT6, sport=8080, dport=40000, ident=3,
                   mac=BMAC6, port_mac=P1_MAC)
    back = whole6([f for _, f in lb.inject("p1", reply)])
    assert (back.src, back[UDP].sport) == (VIP6, 80)


def test_held_fragments_time_out(lb):
    lb.add_service(service(VIP, 80, method="nat", proto="udp", backends=[(BACKENDS[0], 8080)]))
    frames = frags4()
    assert lb.inject("p0", frames[1:]) == []
    lb.clock_advance(1500)
    lb.housekeep()
    assert lb.drops()["frag_timeout"] == 2
    # The first alone now: its datagram's entry is gone, it goes on.
    assert len(lb.inject("p0", frames[:1])) == 1


# The clock stands still (the fragment entries live "a second" whatever the
# machine's load; issue 27.4): it moves only when the test moves it.
@pytest.mark.dp_settings(clock_stopped=True)
def test_limits(lb):
    lb.add_service(service(VIP, 80, method="nat", proto="udp", backends=[(BACKENDS[0], 8080)]))
    # More later fragments of one datagram than are held.
    big = frags4(payload=bytes(1480 * 11))
    assert len(big) == 12
    assert lb.inject("p0", big[1:]) == []
    assert lb.drops()["frag_hold_full"] == 11 - 8
    assert len(lb.inject("p0", big[:1])) == 9
    # A table full of live datagrams: a new one's later fragments do not follow.
    firsts = [frags4(ident=i, payload=b"x" * 2000)[0] for i in range(100, 100 + 1024)]
    lb.inject("p0", firsts)                         # (within an entry's second: no time passes)
    late = frags4(ident=5000, payload=b"x" * 2000)
    assert len(lb.inject("p0", late[:1])) == 1
    assert lb.inject("p0", late[1:]) == []
    assert lb.drops()["frag_table_full"] == 1
    lb.clock_advance(1500)
    lb.housekeep()


def test_a_later_fragment_without_its_connection_is_dropped(lb):
    lb.add_service(service(VIP, 80, method="fullnat", backends=[(BACKENDS[0], 8080)], syn_proxy="off", local_addresses=[LIP]))
    frames = frags4(proto=TCP)                      # an ACK: FullNAT picks up no connection
    assert lb.inject("p0", frames) == []
    drops = lb.drops()
    assert drops["tcp_no_conn"] == 1 and drops["frag_no_conn"] == 2


def test_fragments_of_other_protocols_are_not_followed(lb):
    """Fragments of a big ping to the VIP are not held: only TCP/UDP
    datagrams gather."""
    lb.add_service(service(VIP, 80, method="nat", proto="udp", backends=[(BACKENDS[0], 8080)]))
    pkt = IP(src=CLIENT, dst=VIP, id=3) / ICMP() / Raw(PAYLOAD)
    frames = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / f) for f in fragment(pkt, 1480)]
    lb.inject("p0", frames[1:])
    assert lb.totals()["fragments_held"] == 0
