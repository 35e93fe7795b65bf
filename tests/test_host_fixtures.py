"""Packet fixtures: the real burst-processing function, in process, on frames
built with scapy. Input frame -> exact output bytes, or a named drop."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import AlreadyExists, InvalidArgument

CLIENT_IP = "10.0.0.2"


def arp_request(tip="10.0.0.1", sip=CLIENT_IP, smac=CLIENT_MAC):
    return Ether(src=smac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=smac, psrc=sip, pdst=tip)


def echo_request(dst="10.0.0.1", payload=b"pylb-fixture-payload", **ip):
    return (Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT_IP, dst=dst, id=4242, **ip)
            / ICMP(type=8, id=0x1234, seq=7) / Raw(payload))


def drops_of(dp):
    return {k: v for k, v in dp.drops().items() if v}


def test_arp_request_for_owned_address_gets_exact_reply(dp):
    out = dp.inject(0, [raw(arp_request())])
    expected = Ether(src=P0_MAC, dst=CLIENT_MAC) / ARP(
        op=2, hwsrc=P0_MAC, psrc="10.0.0.1", hwdst=CLIENT_MAC, pdst=CLIENT_IP)
    assert out == [(0, raw(expected))]
    t = dp.totals()
    assert (t["arp_requests"], t["arp_replies_sent"], t["tx_packets"]) == (1, 1, 1)


def test_arp_is_answered_only_on_the_port_that_owns_the_address(dp):
    # 10.0.1.1 belongs to p1: asked on p0, nobody answers.
    assert dp.inject(0, [raw(arp_request(tip="10.0.1.1"))]) == []
    assert drops_of(dp) == {"arp_not_ours": 1}


def test_arp_is_answered_for_vips_on_the_ports_network(dp):
    dp.add_service(service("10.0.0.100", 80))
    dp.add_vip("10.0.0.128/30", method="ipip")
    dp.add_service(service("192.0.2.1", 80))                       # on no port's network
    out = dp.inject(0, [raw(arp_request(tip=ip)) for ip in ("10.0.0.100", "10.0.0.129",
                                                              "192.0.2.1", "10.0.0.101")])
    assert [(Ether(f)[ARP].psrc, Ether(f)[ARP].hwsrc) for _, f in out] == \
        [("10.0.0.100", P0_MAC), ("10.0.0.129", P0_MAC)]
    assert drops_of(dp) == {"arp_not_ours": 2}


def test_arp_learns_neighbours_on_connected_networks_only(dp):
    dp.inject(0, [raw(arp_request())])
    reply = Ether(src="02:00:00:00:00:03", dst=P0_MAC) / ARP(
        op=2, hwsrc="02:00:00:00:00:03", psrc="10.0.0.3", hwdst=P0_MAC, pdst="10.0.0.1")
    stranger = arp_request(sip="192.168.7.7", smac="02:00:00:00:00:09")
    out = dp.inject(0, [raw(reply), raw(stranger)])
    assert [Ether(f)[ARP].pdst for _, f in out] == ["192.168.7.7"]  # answered, not learned
    dp.housekeep()
    got = {(n.port, n.ip, n.mac) for n in dp.neighbours()}
    assert got == {(0, CLIENT_IP, CLIENT_MAC), (0, "10.0.0.3", "02:00:00:00:00:03")}
    assert dp.totals()["arp_replies_received"] == 1
    assert dp.totals()["neigh_learned"] == 2


def test_neighbour_mac_change_is_updated_not_duplicated(dp):
    dp.inject(0, [raw(arp_request())])
    dp.inject(0, [raw(arp_request(smac="02:00:00:00:00:aa"))])
    dp.housekeep()
    assert [(n.ip, n.mac) for n in dp.neighbours()] == [(CLIENT_IP, "02:00:00:00:00:aa")]
    assert dp.totals()["neigh_learned"] == 1


def test_icmp_echo_gets_exact_reply(dp):
    req = echo_request(ttl=17, tos=0x10, flags="DF")
    out = dp.inject(0, [raw(req)])
    expected = (Ether(src=P0_MAC, dst=CLIENT_MAC)
                / IP(src="10.0.0.1", dst=CLIENT_IP, id=4242, ttl=64, tos=0x10, flags="DF")
                / ICMP(type=0, id=0x1234, seq=7) / Raw(b"pylb-fixture-payload"))
    assert out == [(0, raw(expected))]
    t = dp.totals()
    assert (t["icmp_echo_requests"], t["icmp_echo_replies"]) == (1, 1)


def test_echo_to_another_ports_address_is_answered_on_the_ingress_port(dp):
    out = dp.inject(0, [raw(echo_request(dst="10.0.1.1"))])
    assert len(out) == 1 and out[0][0] == 0
    assert IP(out[0][1][14:]).src == "10.0.1.1"


def test_ethernet_padding_is_not_echoed(dp):
    frame = raw(echo_request(payload=b"x")).ljust(60, b"\0")
    (port, reply), = dp.inject(0, [frame])
    assert len(reply) == 14 + 20 + 8 + 1
    assert ICMP(reply[34:]).load == b"x"


def test_replies_checksums_verify_in_scapy(dp):
    for size in (0, 1, 57, 1000, 1472):
        (_, reply), = dp.inject(0, [raw(echo_request(payload=b"\xab" * size))])
        pkt = Ether(reply)
        ip_ck, icmp_ck = pkt[IP].chksum, pkt[ICMP].chksum
        del pkt[IP].chksum, pkt[ICMP].chksum
        again = Ether(raw(pkt))
        assert (again[IP].chksum, again[ICMP].chksum) == (ip_ck, icmp_ck)


def test_a_burst_of_100_pings_gets_100_replies_in_order(dp):
    frames = [raw(echo_request(payload=i.to_bytes(2, "big"))) for i in range(100)]
    out = dp.inject(0, frames)
    assert [ICMP(r[34:]).load for _, r in out] == [i.to_bytes(2, "big") for i in range(100)]


def _ipv4(**kw):
    return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", **kw) / ICMP())


def _with_ip_byte(frame: bytes, offset: int, value: int) -> bytes:
    b = bytearray(frame)
    b[14 + offset] = value
    return bytes(b)


MALFORMED = {
    "empty-ish frame": (b"\x01\x02\x03", "eth_truncated"),
    "13-byte ethernet": (raw(Ether(dst=P0_MAC))[:13], "eth_truncated"),
    "vlan tag cut off": (raw(Ether(dst=P0_MAC, type=0x8100)), "eth_truncated"),
    "vlan-tagged": (raw(Ether(dst=P0_MAC) / Dot1Q(vlan=5) / IP(src=CLIENT_IP, dst="10.0.0.1")), "vlan_unknown"),
    "other host mac": (raw(Ether(dst="02:00:00:00:09:09") / IP(src=CLIENT_IP, dst="10.0.0.1") / ICMP()), "eth_other_host"),
    # The port's MAC is compared in one 8-byte word: its first and sixth
    # bytes count, what follows them does not.
    "mac off in its first byte": (raw(Ether(dst="06:00:00:00:01:00") / IP(src=CLIENT_IP, dst="10.0.0.1")
                                      / ICMP()), "eth_other_host"),
    "mac off in its last byte": (raw(Ether(dst="02:00:00:00:01:01") / IP(src=CLIENT_IP, dst="10.0.0.1")
                                     / ICMP()), "eth_other_host"),
    "unknown ethertype": (raw(Ether(dst=P0_MAC, type=0x88b5) / Raw(b"x" * 46)), "ethertype_unsupported"),
    "truncated arp": (raw(arp_request())[:14 + 20], "arp_truncated"),
    "arp bad hw type": (raw(arp_request())[:14] + b"\x00\x06" + raw(arp_request())[16:], "arp_invalid"),
    "arp for another host": (raw(arp_request(tip="10.0.0.77")), "arp_not_ours"),
    "arp bad opcode": (raw(Ether(dst=P0_MAC) / ARP(op=9, hwsrc=CLIENT_MAC, pdst="10.0.0.1")), "arp_invalid"),
    "arp multicast sender": (raw(arp_request(smac="01:00:5e:00:00:01")), "arp_invalid"),
    "ipv4 shorter than header": (_ipv4()[:14 + 12], "ipv4_truncated"),
    "ipv4 version 6": (_with_ip_byte(_ipv4(), 0, 0x65), "ipv4_bad_version"),
    "ipv4 ihl 4": (_with_ip_byte(_ipv4(), 0, 0x44), "ipv4_bad_ihl"),
    "ipv4 ihl beyond frame": (_with_ip_byte(_ipv4(), 0, 0x4f)[:14 + 40], "ipv4_truncated"),
    "ipv4 total length beyond frame": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", len=200) / ICMP()),
                                       "ipv4_bad_total_length"),
    "ipv4 total length below header": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", len=12) / ICMP()),
                                       "ipv4_bad_total_length"),
    "ipv4 bad checksum": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", chksum=0x1234) / ICMP()),
                          "ipv4_bad_checksum"),
    "ipv4 multicast destination": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="224.0.0.5") / ICMP()),
                                   "ipv4_martian"),
    "ipv4 loopback source": (raw(Ether(dst=P0_MAC) / IP(src="127.0.0.1", dst="10.0.1.9") / ICMP()),
                             "ipv4_martian"),
    "ipv4 this-network source": (raw(Ether(dst=P0_MAC) / IP(src="0.1.2.3", dst="10.0.1.9") / ICMP()),
                                 "ipv4_martian"),
    "ipv4 limited broadcast": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="255.255.255.255")
                                   / ICMP()), "ipv4_martian"),
    "ipv4 broadcast frame to route": (raw(Ether(dst="ff:ff:ff:ff:ff:ff") / IP(src=CLIENT_IP, dst="10.0.1.9")
                                          / ICMP()), "ipv4_martian"),
    # Sources that are no client's (issue 27.3a): ours, a network's broadcast,
    # another port's network or none routed (strict by default).
    "ipv4 own address as source": (raw(Ether(dst=P0_MAC) / IP(src="10.0.0.1", dst="10.0.0.1")
                                       / ICMP()), "source_own"),
    "ipv4 broadcast source": (raw(Ether(dst=P0_MAC) / IP(src="10.0.0.255", dst="10.0.1.9")
                                  / ICMP()), "source_broadcast"),
    "ipv4 source of another port": (raw(Ether(dst=P0_MAC) / IP(src="10.0.1.9", dst="10.0.1.8")
                                        / ICMP()), "source_reverse_path"),
    "ipv6 source not routed": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8:77::2", dst="2001:db8:1::9")
                                   / ICMPv6EchoRequest()), "source_reverse_path"),
    # Without a kernel interface, what the fast path does not answer has nowhere to go.
    "ipv4 fragment to us": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", flags="MF") / ICMP()),
                            "local_unhandled"),
    "tcp to us": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1") / TCP(dport=22)), "local_unhandled"),
    "icmp truncated": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1", proto=1) / Raw(b"\x08\0\0")),
                       "icmp_truncated"),
    "icmp bad checksum": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1") / ICMP(chksum=0x1111)),
                          "icmp_bad_checksum"),
    "icmp not echo": (raw(Ether(dst=P0_MAC) / IP(src=CLIENT_IP, dst="10.0.0.1") / ICMP(type=13)), "local_unhandled"),
    "ipv6 shorter than header": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1"))[:14 + 30],
                                 "ipv6_truncated"),
    "ipv6 version 4": (_with_ip_byte(raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1")),
                                     0, 0x40), "ipv6_bad_version"),
    "ipv6 payload beyond frame": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1", plen=99)
                                      / UDP()), "ipv6_bad_payload_length"),
    "ipv6 multicast source": (raw(Ether(dst=P0_MAC) / IPv6(src="ff02::1", dst="2001:db8::1") / UDP()),
                              "ipv6_martian"),
    "ipv6 multicast udp": (raw(Ether(dst="33:33:00:00:00:01") / IPv6(src="2001:db8::2", dst="ff02::1")
                               / UDP()), "ipv6_martian"),
    "icmpv6 truncated": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1", nh=58)
                             / Raw(b"\x80\0")), "icmp6_truncated"),
    "icmpv6 bad checksum": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1")
                                / ICMPv6EchoRequest(cksum=0x1234)), "icmp6_bad_checksum"),
    "ns hop limit 64": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=64)
                            / ICMPv6ND_NS(tgt="2001:db8::1")), "nd_invalid"),
    "ns for another host": (raw(Ether(dst="33:33:ff:00:00:09") / IPv6(src="2001:db8::2", dst="ff02::1:ff00:9")
                                / ICMPv6ND_NS(tgt="2001:db8::9")), "nd_not_ours"),
    "ns bad option length": (raw(Ether(dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::1")
                                 / ICMPv6ND_NS(tgt="2001:db8::1") / Raw(b"\x01\x00" + b"\0" * 6)), "nd_invalid"),
    "kernel-bound arp from kernel": None,   # see test_l3_fixtures (inject from the kernel side)
}
MALFORMED = {k: v for k, v in MALFORMED.items() if v is not None}


@pytest.mark.parametrize("frame,reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_are_dropped_under_their_reason(dp, frame, reason):
    assert dp.inject(0, [frame]) == []
    assert drops_of(dp) == {reason: 1}
    # and the dataplane keeps answering
    assert len(dp.inject(0, [raw(echo_request())])) == 1


def test_martian_addresses_are_told_by_their_first_octet(dp):
    """l3.h's table of first octets: 0/8, 127/8 and 224/3, as a source or
    a destination, are martians; every other first octet is not."""
    for octet in range(256):
        martian = octet in (0, 127) or octet >= 224
        for src, dst in ((f"{octet}.1.2.3", "10.0.1.9"), (CLIENT_IP, f"{octet}.1.2.3")):
            before = drops_of(dp).get("ipv4_martian", 0)
            dp.inject(0, [raw(Ether(dst=P0_MAC, src=CLIENT_MAC) / IP(src=src, dst=dst) / UDP(dport=9))])
            assert drops_of(dp).get("ipv4_martian", 0) - before == martian, (src, dst)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tos=st.integers(0, 255), ident=st.integers(0, 0xffff), ttl=st.integers(2, 255),
       last=st.integers(2, 254), chksum=st.one_of(st.none(), st.integers(0, 0xffff)))
def test_an_ipv4_header_passes_exactly_when_its_checksum_is_right(dp, tos, ident, ttl, last,
                                                                   chksum):
    """The header check (l3.h: ipv4_cksum_ok, a sum taken modulo 0xffff)
    agrees with scapy's checksum for any header: right ones are routed,
    every other value is a bad checksum."""
    with contextlib.suppress(AlreadyExists):     # (one dataplane for every example)
        dp.add_neighbour("p1", "10.0.1.9", "02:00:00:00:0b:09")
    datagram = IP(src=f"10.0.0.{last}", dst="10.0.1.9", tos=tos, id=ident, ttl=ttl) / UDP(dport=9)
    right = IP(raw(datagram)).chksum
    datagram.chksum = right if chksum is None else chksum
    before = drops_of(dp).get("ipv4_bad_checksum", 0)
    dp.inject(0, [raw(Ether(dst=P0_MAC, src=CLIENT_MAC) / datagram)])
    assert drops_of(dp).get("ipv4_bad_checksum", 0) - before == (datagram.chksum != right)


def test_a_nics_checksum_mark_is_taken_for_the_header_it_checked(dp):
    """A NIC with RX checksum offload (enabled where it has one) marks each
    IPv4 header good or bad: the mark decides, no sum is taken again. An
    unknown mark is refused with a one-line error."""
    dp.add_neighbour("p1", "10.0.1.9", "02:00:00:00:0b:09")
    frame = Ether(dst=P0_MAC, src=CLIENT_MAC) / IP(src="10.0.0.5", dst="10.0.1.9") / UDP(dport=9)
    right = raw(frame)
    wrong = bytearray(right)
    wrong[14 + 10] ^= 0xff                                      # the header's checksum
    assert dp.inject(0, [right], rx_ip_cksum="bad") == []
    assert drops_of(dp)["ipv4_bad_checksum"] == 1
    assert len(dp.inject(0, [bytes(wrong)], rx_ip_cksum="good")) == 1
    assert len(dp.inject(0, [right], rx_ip_cksum="good")) == 1
    with pytest.raises(InvalidArgument, match="rx_ip_cksum"):
        dp.inject(0, [right], rx_ip_cksum="yes")
    assert drops_of(dp)["ipv4_bad_checksum"] == 1


def test_every_drop_reason_is_exercised():
    from pylb._native import DROP_REASONS
    from test_l3_fixtures import EXERCISED as L3
    from test_l4_fixtures import EXERCISED as L4
    from test_defence_fixtures import EXERCISED as DEFENCE
    from test_icmp_fixtures import EXERCISED as ICMP
    from test_vlan_fixtures import EXERCISED as VLAN
    from test_frag_fixtures import EXERCISED as FRAG
    from test_proxy_fixtures import EXERCISED as PROXY
    from test_hardening import EXERCISED as HARDENING
    from test_inspect_fixtures import EXERCISED as INSPECT
    # Resource exhaustion reasons cannot be provoked with well-sized pools.
    resources = {"tx_full", "alloc_failed", "vip_no_headroom", "redirect_full",
                 "vlan_no_headroom"}
    untested = set(DROP_REASONS) - {r for _, r in MALFORMED.values()} - L3 - L4 - DEFENCE - ICMP \
        - VLAN - FRAG - PROXY - HARDENING - INSPECT - resources
    assert not untested


def test_counters_are_a_live_view_not_a_copy(dp):
    view = dp.counters
    col = dp.counters.shape[1]
    from pylb._native import COUNTER_NAMES
    rx = COUNTER_NAMES.index("rx_packets")
    assert col == len(COUNTER_NAMES) and view[:, rx].sum() == 0
    dp.inject(0, [raw(echo_request())] * 3)
    assert view[:, rx].sum() == 3
    assert not view.flags.writeable
    assert dp.totals()["rx_bytes"] == 3 * len(raw(echo_request()))


def test_view_outliving_close_stays_readable(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC)
    d.add_address(0, "10.0.0.1/24")
    d.inject(0, [raw(echo_request())])
    view = d.counters
    d.close()
    assert view.sum() > 0
    with pytest.raises(Exception, match="closed"):
        d.inject(0, [])


def test_long_injections_return_every_reply(dp):
    # 96 frames are three bursts; the seam collects the TX buffers after each
    # burst, so no reply is lost to a full buffer.
    out = dp.inject(0, [raw(echo_request())] * 96)
    assert len(out) == 96 and "tx_full" not in drops_of(dp)


def test_many_neighbours_are_listed_and_ring_overflow_is_counted(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, neigh_capacity=4096)
    d.add_port("p0", mac=P0_MAC)
    d.add_address(0, "10.0.0.1/20")
    ips = [f"10.0.{i // 250}.{i % 250 + 2}" for i in range(1500)]
    for start in range(0, 1500, 500):
        d.inject(0, [raw(arp_request(sip=ip, smac=f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}"))
                     for i, ip in enumerate(ips[start:start + 500], start)])
        d.housekeep()
    assert {n.ip for n in d.neighbours()} == set(ips)
    # Without housekeeping the 1024-entry learn ring overflows, and says so.
    d.inject(0, [raw(arp_request(sip=f"10.0.9.{i % 250 + 2}")) for i in range(1100)])
    assert d.totals()["neigh_learn_overflow"] == 1100 - 1024 + 1  # ring holds size - 1
    d.housekeep()
    d.close()
