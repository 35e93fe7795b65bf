"""Packet fixtures for the PROXY protocol under FullNAT: the header (v1 text,
v2 binary) goes in front of the client's first byte, once per connection
and again with each retransmission of that segment; the client's sequence
numbers are shifted by its length towards the backend, the backend's
acknowledgements and SACK edges back, and its SYN-ACK's MSS made that much
smaller; UDP datagrams (v2) each carry one. Every checksum is checked."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import InvalidArgument
from test_icmp_fixtures import BACKEND6 as B6, BMAC6, BROUTER, CLIENT6, LIP, VIP6, quote_of, too_big
from test_icmp_fixtures import lb  # noqa: F401  (the fixture: backends and clients known)
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP

B, LIP6 = BACKENDS[0], "2001:db8:1::1"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"proxy_no_room", "proxy_fragment"}

def sums_ok(ip) -> bool:
    again = ip.__class__(raw(ip))
    fresh = again.copy()
    for layer in (IP, TCP, UDP):
        if layer in fresh:
            del fresh[layer].chksum
    fresh = ip.__class__(raw(fresh))
    return all(fresh[layer].chksum == again[layer].chksum for layer in (IP, TCP, UDP)
               if layer in again)


class Conn:
    """A client's TCP connection through the service, and its backend's side."""

    def __init__(self, lb, v6=False):
        self.lb, self.v6 = lb, v6
        self.l3 = IPv6 if v6 else IP
        self.client, self.vip = (CLIENT6, VIP6) if v6 else (CLIENT, VIP)
        self.bmac = BMAC6 if v6 else BMAC[B]
        syn = self.c2v("S", 1000, options=[("MSS", 1460)])
        (_, f), = lb.inject("p0", [raw(syn)])
        self.seen = Ether(f)[self.l3]
        self.lport = self.seen[TCP].sport

    def c2v(self, flags, seq, payload=b"", ack=0, **kw):
        return Ether(src=CLIENT_MAC, dst=P0_MAC) / self.l3(src=self.client, dst=self.vip) / \
            TCP(sport=40000, dport=80, flags=flags, seq=seq, ack=ack, **kw) / Raw(payload)

    def send(self, *args, **kw):
        """A client's segment: what the backend gets (its IP packet)."""
        (_, f), = self.lb.inject("p0", [raw(self.c2v(*args, **kw))])
        ip = Ether(f)[self.l3]
        assert sums_ok(ip)
        return ip

    def reply(self, flags, seq, ack, **kw):
        """A backend's segment: what the client gets."""
        ip = self.seen
        pkt = Ether(src=self.bmac, dst=P1_MAC) / self.l3(src=ip.dst, dst=ip.src) / \
            TCP(sport=8080, dport=self.lport, flags=flags, seq=seq, ack=ack, **kw)
        (_, f), = self.lb.inject("p1", [raw(pkt)])
        got = Ether(f)[self.l3]
        assert sums_ok(got) and got.dst == self.client
        return got[TCP]


def v2_header(client, vip, sport, dport, dgram=False):
    a, b = ipaddress.ip_address(client), ipaddress.ip_address(vip)
    fam = (0x10 if a.version == 4 else 0x20) | (2 if dgram else 1)
    body = a.packed + b.packed + struct.pack("!HH", sport, dport)
    return SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def test_v2_header_once_then_numbers_shifted_both_ways(lb):
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], syn_proxy="off", proxy_protocol="v2", backends=[(B, 8080)]))
    c = Conn(lb)
    hdr = v2_header(CLIENT, VIP, 40000, 80)
    n = len(hdr)
    assert n == 28
    # The backend's SYN-ACK: its MSS less the header.
    synack = c.reply("SA", 5000, 1001, options=[("MSS", 1460)])
    assert synack.ack == 1001 and dict(synack.options)["MSS"] == 1460 - n
    # The handshake's last ACK carries it already (a server may speak first).
    ack = c.send("A", 1001, ack=5001)
    assert ack[TCP].seq == 1001 and raw(ack[TCP].payload) == hdr
    first = c.send("PA", 1001, b"GET / HTTP/1.0\r\n\r\n", ack=5001)
    assert first[TCP].seq == 1001 and raw(first[TCP].payload) == hdr + b"GET / HTTP/1.0\r\n\r\n"
    # A retransmission of the first segment: the same header again.
    again = c.send("PA", 1001, b"GET / HTTP/1.0\r\n\r\n", ack=5001)
    assert raw(again[TCP].payload) == raw(first[TCP].payload)
    assert lb.totals()["proxy_headers_sent"] == 3
    # Later data: n bytes further on in the backend's numbers.
    assert c.send("PA", 1019, b"more", ack=5001)[TCP].seq == 1019 + n
    # The backend's acknowledgements and SACK edges: back in the client's.
    got = c.reply("A", 5001, 1019 + n + 4, options=[("SAck", (1040 + n, 1050 + n))])
    assert got.ack == 1023 and dict(got.options)["SAck"] == (1040, 1050)
    assert c.reply("A", 5001, 1001 + 10).ack == 1001     # inside the header: nothing yet
    assert c.reply("A", 5001, 1001).ack == 1001
    # An ICMP error about a shifted segment reaches the client in its numbers.
    shifted = c.send("PA", 1023, b"x" * 1400, ack=5001)
    assert shifted[TCP].seq == 1023 + n
    err = too_big(BROUTER, LIP, shifted, ingress_mac=BMAC[B], port_mac=P1_MAC)
    (port, f), = lb.inject("p1", [raw(err)])
    _, inner = quote_of(f)
    assert port == 0 and (inner.src, inner[TCP].sport, inner[TCP].seq) == (CLIENT, 40000, 1023)
    lb.del_service(VIP, 80)


def test_pure_acks_carry_the_header_until_the_backend_has_it(lb):
    """A server that speaks first: the client only acknowledges. Its ACKs
    carry the header until the backend acknowledges it, then are shifted
    like everything after it."""
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], syn_proxy="off", proxy_protocol="v2", backends=[(B, 8080)]))
    c = Conn(lb)
    n = len(v2_header(CLIENT, VIP, 40000, 80))
    c.reply("SA", 5000, 1001)
    assert len(c.send("A", 1001, ack=5001)[TCP].payload) == n
    assert c.reply("PA", 5001, 1001, ).ack == 1001       # the banner; the header not yet
    assert len(c.send("A", 1001, ack=5002)[TCP].payload) == n
    assert c.reply("PA", 5002, 1001 + n).ack == 1001     # now it has it
    got = c.send("A", 1001, ack=5003)
    assert (got[TCP].seq, len(got[TCP].payload)) == (1001 + n, 0)
    first = c.send("PA", 1001, b"QUIT\r\n", ack=5003)   # data still gets it (the same bytes)
    assert raw(first[TCP].payload)[:n] == v2_header(CLIENT, VIP, 40000, 80)


def test_v1_header_ipv4_and_ipv6(lb):
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], syn_proxy="off", proxy_protocol="v1", backends=[(B, 8080)]))
    c = Conn(lb)
    got = c.send("PA", 1001, b"hello", ack=1)
    assert raw(got[TCP].payload) == b"PROXY TCP4 10.0.0.2 10.0.0.100 40000 80\r\nhello"
    lb.add_service(service(VIP6, 80, method="fullnat", local_addresses=[LIP6], syn_proxy="off", proxy_protocol="v1", backends=[(B6, 8080)]))
    c6 = Conn(lb, v6=True)
    line = b"PROXY TCP6 2001:db8::2 2001:db8::100 40000 80\r\n"
    got = c6.send("PA", 1001, b"hello", ack=1)
    assert raw(got[TCP].payload) == line + b"hello"
    assert c6.send("PA", 1006, b"x", ack=1)[TCP].seq == 1006 + len(line)


def test_v2_ipv6_header(lb):
    lb.add_service(service(VIP6, 80, method="fullnat", local_addresses=[LIP6], syn_proxy="off", proxy_protocol="v2", backends=[(B6, 8080)]))
    got = Conn(lb, v6=True).send("PA", 1001, b"x", ack=1)
    assert raw(got[TCP].payload) == v2_header(CLIENT6, VIP6, 40000, 80) + b"x"


def test_udp_datagrams_each_carry_a_v2_header(lb):
    lb.add_service(service(VIP, 53, proto="udp", method="fullnat", local_addresses=[LIP], proxy_protocol="v2", backends=[(B, 5353)]))
    for payload in (b"one", b"two"):
        q = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP) / \
            UDP(sport=40000, dport=53) / Raw(payload)
        (_, f), = lb.inject("p0", [raw(q)])
        ip = Ether(f)[IP]
        assert sums_ok(ip) and ip.dst == B and ip.src == LIP
        assert raw(ip[UDP].payload) == v2_header(CLIENT, VIP, 40000, 53, dgram=True) + payload
    # A fragment cannot take one without reassembly.
    frag = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP, flags="MF") / \
        UDP(sport=40000, dport=53) / Raw(b"x" * 64)
    assert lb.inject("p0", [raw(frag)]) == []
    assert lb.drops()["proxy_fragment"] == 1
    # A frame with no room left in its buffer for the header.
    big = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP) / \
        UDP(sport=40000, dport=53) / Raw(b"x" * (2040 - 42))
    assert lb.inject("p0", [raw(big)]) == []
    assert lb.drops()["proxy_no_room"] == 1


def test_proxy_protocol_is_for_fullnat(lb):
    """The spec refuses it (pylb.model), whoever makes it: the file, the API, a caller of the binding."""
    with pytest.raises(InvalidArgument, match="is for fullnat services"):
        lb.add_service(service(VIP, 80, method="nat", proxy_protocol="v2", backends=[(B, 8080)]))
    with pytest.raises(InvalidArgument, match="v1 is for TCP"):
        lb.add_service(service(VIP, 53, proto="udp", method="fullnat", local_addresses=[LIP], proxy_protocol="v1"))
    with pytest.raises(InvalidArgument, match="proxy_protocol: expected one of: off, v1, v2, got 'v3'"):
        lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], proxy_protocol="v3"))
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], proxy_protocol="v2"))
    assert lb.service(VIP, 80, "tcp").proxy_protocol == "v2"


def test_a_syn_cookie_offers_room_for_the_header(lb):
    """Under SYN cookies the client's MSS comes from the cookie's SYN-ACK,
    before any backend answers: it leaves room for the header too."""
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=[LIP], syn_proxy="always", proxy_protocol="v2", backends=[(B, 8080)]))
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP) / \
        TCP(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1460)])
    (port, f), = lb.inject("p0", [raw(syn)])
    synack = Ether(f)[TCP]
    assert port == 0 and synack.flags == "SA"
    assert dict(synack.options)["MSS"] == 1460 - len(v2_header(CLIENT, VIP, 40000, 80))
