"""Every incremental checksum update (RFC 1624) against a full recomputation
(issue 28.1): ICMP echo replies, NAT and FullNAT both ways, the IPv4 header,
over random and edge inputs (all-zero, all-ones, words that make 0xffff
sums). A checksum must check out as the receiver checks it: the ones'
complement sum over the covered bytes (pseudo-header included) is 0xffff,
and a UDP checksum is never 0 (it would mean "none")."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from test_l4_fixtures import BACKENDS, BMAC, small_dp

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
VIP = "10.0.0.100"
EDGE_WORDS = st.sampled_from([0, 0xffff, 0x0001, 0xfffe, 0x8000, 0x7fff])
WORD = st.one_of(EDGE_WORDS, st.integers(0, 0xffff))
_clients = itertools.count()


def new_client() -> str:
    """A client of its own per example (no connection of an earlier one)."""
    n = next(_clients)
    return f"172.16.{n // 250 % 256}.{n % 250 + 1}"


def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def ip_ok(ip: IP) -> bool:
    return ones_sum(raw(ip)[:ip.ihl * 4]) == 0xffff


def l4_ok(ip: IP) -> bool:
    """The transport checksum with its pseudo-header, as a receiver checks it."""
    seg = raw(ip.payload)[:ip.len - ip.ihl * 4]
    if ip.proto == 1:
        return ones_sum(seg) == 0xffff
    if ip.proto == 17 and seg[6:8] == b"\0\0":
        return False                     # pylb never leaves a UDP checksum 0 that was set
    pseudo = raw(ip)[12:20] + struct.pack("!BBH", 0, ip.proto, len(seg))
    return ones_sum(pseudo + seg) == 0xffff


@pytest.fixture(scope="module")
def lb(native):
    d = small_dp(native, rp_filter="off")           # any client address
    d.add_neighbour("p0", "10.0.0.2", CLIENT_MAC)
    d.add_route("0.0.0.0/0", ("10.0.0.2", "p0"))
    d.add_service(service(VIP, 80, backends=[(b, 8080) for b in BACKENDS], syn_proxy="off"))
    d.add_service(service(VIP, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS]))
    d.add_service(service(VIP, 81, method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 8081) for b in BACKENDS], syn_proxy="off"))
    yield d
    d.close()


def test_an_all_zero_echo_gets_ffff_not_0000(lb):
    """id 0, sequence 0, no payload: the reply's sum is +0, its checksum 0xffff."""
    for payload in (b"", b"\0" * 56):
        req = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=VIP) / \
            ICMP(type=8, id=0, seq=0) / Raw(payload)
        (_, f), = lb.inject("p0", [raw(req)])
        icmp = Ether(f)[ICMP]
        assert icmp.type == 0 and icmp.chksum == 0xffff and l4_ok(Ether(f)[IP])


@SETTINGS
@given(ident=WORD, seq=WORD, words=st.lists(WORD, max_size=8))
def test_echo_replies_check_out(lb, ident, seq, words):
    req = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst="10.0.0.1", ttl=64) / \
        ICMP(type=8, id=ident, seq=seq) / Raw(b"".join(struct.pack("!H", w) for w in words))
    (_, f), = lb.inject("p0", [raw(req)])
    ip = Ether(f)[IP]
    assert ip_ok(ip) and l4_ok(ip)


@SETTINGS
@given(sport=st.one_of(st.sampled_from([1, 0xffff, 0x7fff, 0x8000]), st.integers(1, 0xffff)),
       udp=st.booleans(), words=st.lists(WORD, max_size=6))
def test_nat_both_ways_checks_out(lb, sport, udp, words):
    client = new_client()
    payload = b"".join(struct.pack("!H", w) for w in words)
    l4 = UDP(sport=sport, dport=53) if udp else TCP(sport=sport, dport=80, flags="S", seq=0)
    out = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=client, dst=VIP) /
                               l4 / Raw(payload))])
    (port, f), = out
    fwd = Ether(f)[IP]
    assert port == 1 and ip_ok(fwd) and l4_ok(fwd)
    backend = fwd.dst
    rl4 = UDP(sport=5353, dport=sport) if udp else \
        TCP(sport=8080, dport=sport, flags="SA", seq=0, ack=1)
    (port, f), = lb.inject("p1", [raw(Ether(src=BMAC[backend], dst=P1_MAC) /
                                      IP(src=backend, dst=client) / rl4 / Raw(payload))])
    back = Ether(f)[IP]
    assert port == 0 and back.src == VIP and ip_ok(back) and l4_ok(back)


@SETTINGS
@given(sport=st.integers(1, 0xffff), words=st.lists(WORD, max_size=6))
def test_fullnat_both_ways_checks_out(lb, sport, words):
    payload = b"".join(struct.pack("!H", w) for w in words)
    client = new_client()
    (port, f), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) /
                                      IP(src=client, dst=VIP) /
                                      TCP(sport=sport, dport=81, flags="S", seq=0) / Raw(payload))])
    fwd = Ether(f)[IP]
    assert port == 1 and fwd.src == "10.0.1.1" and ip_ok(fwd) and l4_ok(fwd)
    (port, f), = lb.inject("p1", [raw(Ether(src=BMAC[fwd.dst], dst=P1_MAC) /
                                      IP(src=fwd.dst, dst="10.0.1.1") /
                                      TCP(sport=8081, dport=fwd[TCP].sport, flags="SA", seq=0,
                                          ack=1) / Raw(payload))])
    back = Ether(f)[IP]
    assert port == 0 and back.dst == client and ip_ok(back) and l4_ok(back)
