"""Packet fixtures for ICMP errors about the flows pylb carries (path MTU
discovery through the load balancer): an error quoting a connection's
packet reaches whoever sent that packet, in its own terms, for every
method, both directions, IPv4 and IPv6; an error about an L3 VIP flow
reaches the backend its flow goes to. Every checksum is recomputed with
scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, defragment
from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP, c2v

ROUTER = "10.0.0.250"           # a router on the clients' side
BROUTER = "10.0.1.250"          # one on the backends' side
LIP = "10.0.1.1"                # FullNAT's local address (p1's)
CLIENT6, VIP6, BACKEND6 = "2001:db8::2", "2001:db8::100", "2001:db8:1::20"
BMAC6 = "02:00:00:00:0b:66"

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"mtu_exceeded", "icmp_bad_checksum", "icmp_mtu_invalid", "icmp_relay_limited"}


@pytest.fixture
def lb(dp):
    for b in BACKENDS:
        dp.add_neighbour("p1", b, BMAC[b])
    dp.add_neighbour("p0", CLIENT, CLIENT_MAC)
    dp.add_neighbour("p0", ROUTER, "02:00:00:00:00:fa")
    dp.add_neighbour("p1", BROUTER, "02:00:00:00:0b:fa")
    dp.add_neighbour("p1", BACKEND6, BMAC6)
    dp.add_neighbour("p0", CLIENT6, CLIENT_MAC)
    return dp


def counted(dp):
    t = dp.totals()
    return t["icmp_errors_translated"], t["icmp_errors_unmatched"]


def opened(dp, method="nat", **svc):
    """A connection CLIENT:40000 -> VIP:80 through `method`: (backend, the
    packet the backend got)."""
    backends = [(b, 8080) for b in BACKENDS] if method in ("nat", "fullnat") else BACKENDS
    dp.add_service(service(VIP, 80, method=method, backends=backends, syn_proxy="off", **svc))
    (_, f), = dp.inject("p0", [raw(c2v(payload=b"x" * 100))])
    sent = Ether(f)
    if method == "dr":                      # unchanged, to the backend's MAC
        return next(b for b, mac in BMAC.items() if mac == sent.dst), sent
    return sent[IP].dst, sent


def too_big(src, dst, quoted, mtu=1280, ingress_mac=CLIENT_MAC, port_mac=P0_MAC):
    """An IPv4 'fragmentation needed' from src to dst quoting `quoted` (576
    bytes of it at most, as RFC 1812 says)."""
    return Ether(src=ingress_mac, dst=port_mac) / IP(src=src, dst=dst, ttl=64) / \
        ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(raw(quoted)[:548])


def resummed(pkt, layer):
    """pkt's `layer` checksum as scapy computes it afresh."""
    again = pkt.copy()
    del again[layer].chksum
    return type(pkt)(raw(again))[layer].chksum


def quote_of(frame):
    """The outer IP header and the quoted packet of an IPv4 error, every
    checksum checked (the quoted transport's when it is quoted whole)."""
    ip = Ether(frame)[IP]
    assert resummed(ip, IP) == ip.chksum and resummed(ip, ICMP) == ip[ICMP].chksum
    body = raw(ip[ICMP])[8:]
    inner = IP(body)
    assert resummed(inner, IP) == inner.chksum, "quoted IP checksum"
    if len(body) >= inner.len:
        whole = IP(body[:inner.len])
        l4 = TCP if whole.proto == 6 else UDP
        assert resummed(whole, l4) == whole[l4].chksum, "quoted transport checksum"
    return ip, inner


def test_nat_errors_from_the_clients_side_reach_the_backend(lb):
    backend, _ = opened(lb)
    # A router towards the client cannot pass the VIP's 1,500-byte reply.
    reply = IP(src=VIP, dst=CLIENT, ttl=60) / TCP(sport=80, dport=40000, flags="A", seq=7000,
                                                   ack=1101) / Raw(b"y" * 1400)
    (port, f), = lb.inject("p0", [raw(too_big(ROUTER, VIP, reply))])
    ip, inner = quote_of(f)
    assert port == 1 and Ether(f).dst == BMAC[backend]
    assert (ip.src, ip.dst, ip[ICMP].type, ip[ICMP].code, ip[ICMP].nexthopmtu) == \
        (ROUTER, backend, 3, 4, 1280)
    # In the backend's terms: the packet it sent, backend:8080 -> client.
    assert (inner.src, inner.dst, inner[TCP].sport, inner[TCP].dport, inner[TCP].seq) == \
        (backend, CLIENT, 8080, 40000, 7000)
    assert counted(lb) == (1, 0)


def test_nat_errors_from_the_backends_side_reach_the_client(lb):
    backend, sent = opened(lb)
    for src in (backend, BROUTER):          # the backend itself, a router in front of it
        quoted = sent[IP].copy()
        err = too_big(src, CLIENT, quoted, ingress_mac=BMAC[backend], port_mac=P1_MAC)
        (port, f), = lb.inject("p1", [raw(err)])
        ip, inner = quote_of(f)
        assert port == 0 and Ether(f).dst == CLIENT_MAC
        # The backend's address never shows: the VIP sent it, as far as the client knows.
        assert (ip.src, ip.dst) == (VIP if src == backend else BROUTER, CLIENT)
        assert (inner.src, inner.dst, inner[TCP].sport, inner[TCP].dport) == \
            (CLIENT, VIP, 40000, 80)
    assert counted(lb) == (2, 0)


def test_fullnat_errors_both_ways(lb):
    backend, sent = opened(lb, "fullnat", local_addresses=[LIP])
    lport = sent[TCP].sport
    assert sent[IP].src == LIP
    # From the clients' side: to the backend, about what it sent to LIP:lport.
    reply = IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    (port, f), = lb.inject("p0", [raw(too_big(ROUTER, VIP, reply))])
    ip, inner = quote_of(f)
    assert port == 1 and (ip.src, ip.dst) == (LIP, backend)
    assert (inner.src, inner.dst, inner[TCP].sport, inner[TCP].dport) == \
        (backend, LIP, 8080, lport)
    # From the backends' side: to the client, about what it sent to the VIP.
    err = too_big(BROUTER, LIP, sent[IP].copy(), ingress_mac=BMAC[backend], port_mac=P1_MAC)
    (port, f), = lb.inject("p1", [raw(err)])
    ip, inner = quote_of(f)
    assert port == 0 and (ip.src, ip.dst) == (VIP, CLIENT)
    assert (inner.src, inner.dst, inner[TCP].sport, inner[TCP].dport) == \
        (CLIENT, VIP, 40000, 80)
    assert counted(lb) == (2, 0)


@pytest.mark.parametrize("method", ["dr", "tunnel"])
def test_dr_and_tunnel_errors_reach_the_backend_as_they_are(lb, method):
    """The backend sent the quoted packet itself (from the VIP it holds)."""
    backend, _ = opened(lb, method)
    reply = IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    err = too_big(ROUTER, VIP, reply)
    (port, f), = lb.inject("p0", [raw(err)])
    out = Ether(f)
    assert port == 1 and out.dst == BMAC[backend]
    got = out[IP] if method == "dr" else out[IP].payload
    if method == "tunnel":
        assert (out[IP].proto, out[IP].dst) == (4, backend)
    assert raw(got[ICMP]) == raw(err[ICMP])
    assert (got.src, got.dst) == (ROUTER, VIP)
    assert counted(lb) == (1, 0)


def test_errors_about_no_connection_are_counted_and_not_passed_on(lb):
    opened(lb)
    stranger = IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=41111, flags="A")
    out = lb.inject("p0", [raw(too_big(ROUTER, VIP, stranger))])
    assert all(p != 1 for p, _ in out)
    assert counted(lb) == (0, 1)
    # A forged checksum is dropped by reason.
    bad = too_big(ROUTER, VIP, IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000))
    bad[ICMP].chksum = 0x1234
    assert lb.inject("p0", [raw(bad)]) == []
    assert lb.drops()["icmp_bad_checksum"] == 1


def test_a_short_quote_is_translated_too(lb):
    """Old routers quote 8 bytes of the transport header (RFC 792): the
    ports are there, the checksum is not."""
    backend, _ = opened(lb)
    reply = IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    short = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=ROUTER, dst=VIP) / \
        ICMP(type=11, code=0) / Raw(raw(reply)[:28])
    (port, f), = lb.inject("p0", [raw(short)])
    ip = Ether(f)[IP]
    body = raw(ip[ICMP])[8:]
    assert port == 1 and len(body) == 28 and ip.dst == backend
    assert IP(body[:20]).src == backend and int.from_bytes(body[20:22], "big") == 8080


def test_the_syn_proxys_connections_get_the_backends_sequence_numbers(native):
    from test_defence_fixtures import BACKEND, open_proxied, proxy_dp
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], syn_proxy="always"))
    cookie, b_isn, _ = open_proxied(d)
    # The client saw the backend's bytes numbered from the cookie.
    reply = IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="A", seq=cookie + 1)
    (port, f), = d.inject("p0", [raw(too_big(ROUTER, VIP, reply))])
    _, inner = quote_of(f)
    assert inner[TCP].seq == b_isn + 1
    d.close()


def test_l3_vip_errors_go_where_their_flow_goes(lb):
    lb.add_vip("10.0.3.0/24", backends=[(b, 1) for b in BACKENDS], method="ipip")
    flow = {}
    for host in range(1, 40):
        x = f"10.0.3.{host}"
        (_, f), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) /
                                       IP(src=CLIENT, dst=x) / UDP(sport=5, dport=6))])
        flow[x] = Ether(f)[IP].dst
        reply = IP(src=x, dst=CLIENT) / UDP(sport=6, dport=5)
        (_, f), = lb.inject("p0", [raw(too_big(ROUTER, x, reply))])
        assert Ether(f)[IP].dst == flow[x], x
    assert len(set(flow.values())) > 1


def test_ipv6_packet_too_big_both_ways(lb):
    lb.add_service(service(VIP6, 80, backends=[(BACKEND6, 8080)], syn_proxy="off"))
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst=VIP6) / \
        TCP(sport=40000, dport=80, flags="S", seq=1000)
    (_, f), = lb.inject("p0", [raw(syn)])
    sent = Ether(f)[IPv6]
    assert sent.dst == BACKEND6

    def ptb(src, dst, quoted, mac, port_mac):
        return Ether(src=mac, dst=port_mac) / IPv6(src=src, dst=dst) / \
            ICMPv6PacketTooBig(mtu=1280) / Raw(raw(quoted)[:1232])

    def checked(frame):
        ip6 = Ether(frame)[IPv6]
        icmp = ip6[ICMPv6PacketTooBig]
        again = ip6.copy()
        del again[ICMPv6PacketTooBig].cksum
        assert IPv6(raw(again))[ICMPv6PacketTooBig].cksum == icmp.cksum, "ICMPv6 checksum"
        return ip6, IPv6(raw(icmp)[8:])

    reply = IPv6(src=VIP6, dst=CLIENT6) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    (port, f), = lb.inject("p0", [raw(ptb("2001:db8::fa", VIP6, reply, CLIENT_MAC, P0_MAC))])
    ip6, inner = checked(f)
    assert port == 1 and ip6.dst == BACKEND6 and ip6[ICMPv6PacketTooBig].mtu == 1280
    assert (inner.src, inner.dst, inner[TCP].sport) == (BACKEND6, CLIENT6, 8080)
    (port, f), = lb.inject("p1", [raw(ptb(BACKEND6, CLIENT6, sent, BMAC6, P1_MAC))])
    ip6, inner = checked(f)
    assert port == 0 and (ip6.src, ip6.dst) == (VIP6, CLIENT6)
    assert (inner.src, inner.dst, inner[TCP].dport) == (CLIENT6, VIP6, 80)
    assert counted(lb) == (2, 0)


# Forged errors (issue 27.3d).

def test_an_mtu_below_the_protocol_minimum_is_never_relayed(lb):
    backend, sent = opened(lb)
    reply = IP(src=VIP, dst=CLIENT, ttl=60) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    for mtu in (0, 1, 67):
        assert lb.inject("p0", [raw(too_big(ROUTER, VIP, reply, mtu=mtu))]) == []
        err = too_big(backend, CLIENT, sent[IP].copy(), mtu=mtu, ingress_mac=BMAC[backend],
                      port_mac=P1_MAC)
        assert lb.inject("p1", [raw(err)]) == []
    assert lb.drops()["icmp_mtu_invalid"] == 6 and counted(lb) == (0, 0)
    (port, _), = lb.inject("p0", [raw(too_big(ROUTER, VIP, reply, mtu=68))])
    assert port == 1
    # IPv6: below 1,280.
    lb.add_service(service(VIP6, 80, backends=[(BACKEND6, 8080)], syn_proxy="off"))
    lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst=VIP6) /
                         TCP(sport=40000, dport=80, flags="S", seq=1000))])
    reply6 = IPv6(src=VIP6, dst=CLIENT6) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    for mtu in (0, 1, 68, 1279):
        ptb = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::fa", dst=VIP6) / \
            ICMPv6PacketTooBig(mtu=mtu) / Raw(raw(reply6))
        assert lb.inject("p0", [raw(ptb)]) == []
    assert lb.drops()["icmp_mtu_invalid"] == 10


def test_relayed_errors_are_rate_limited_per_host_and_network(lb):
    """100,000 forged errors at a live connection were all relayed before;
    now a host gets at most 100 a second, a network sends at most 200."""
    backend, _ = opened(lb)
    reply = IP(src=VIP, dst=CLIENT, ttl=60) / TCP(sport=80, dport=40000, flags="A", seq=7000)
    sent = 0
    for _ in range(10):
        sent += len(lb.inject("p0", [raw(too_big(ROUTER, VIP, reply, mtu=1400))] * 32))
    assert 100 <= sent < 110                  # the burst, and what the time it took refilled
    assert lb.drops()["icmp_relay_limited"] == 320 - sent
    assert counted(lb)[0] == sent


# The egress MTU: checked for every routed or translated packet.

def mtu_dp(native, p0=1500, p1=1500):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC, mtu=p0)
    d.add_port("p1", mac=P1_MAC, mtu=p1)
    for port, net in (("p0", "10.0.0.1/24"), ("p1", "10.0.1.1/24"), ("p0", "2001:db8::1/64"),
                      ("p1", "2001:db8:1::1/64")):
        d.add_address(port, net)
    for b in BACKENDS:
        d.add_neighbour("p1", b, BMAC[b])
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.add_neighbour("p1", BACKEND6, BMAC6)
    d.add_neighbour("p0", CLIENT6, CLIENT_MAC)
    return d


def big(n=1400, df=True, **kw):
    frame = c2v(payload=b"z" * (n - 40), **kw)
    frame[IP].flags = "DF" if df else 0
    return frame


def test_too_big_with_df_is_refused_with_the_mtu_in_the_senders_terms(native):
    """A client's 1,400 bytes through a NAT service to a 1,280-byte backend
    network: the client is told 1,280, about the packet it sent (to the
    VIP); dropped as mtu_exceeded. Without DF: two fragments, translated."""
    d = mtu_dp(native, p1=1280)
    assert [p.mtu for p in d.ports()] == [1500, 1280]
    d.add_service(service(VIP, 80, backends=[(b, 8080) for b in BACKENDS], syn_proxy="off"))
    (_, f), = d.inject("p0", [raw(c2v())])                  # the SYN: small, resolves the output
    backend = Ether(f)[IP].dst
    (port, f), = d.inject("p0", [raw(big(flags="A"))])
    err = Ether(f)
    assert port == 0 and err.dst == CLIENT_MAC
    assert (err[IP].dst, err[ICMP].type, err[ICMP].code, err[ICMP].nexthopmtu) == \
        (CLIENT, 3, 4, 1280)
    assert (IP(raw(err[ICMP])[8:]).dst) == VIP
    assert d.drops()["mtu_exceeded"] == 1
    frags = d.inject("p0", [raw(big(flags="A", df=False))])
    assert [p for p, _ in frags] == [1, 1]
    parts = [Ether(x)[IP] for _, x in frags]
    assert all(p.dst == backend and len(p) <= 1280 and resummed(p, IP) == p.chksum
               for p in parts)
    assert (parts[0].flags, parts[0].frag, parts[1].flags) == (1, 0, 0)   # MF, then the last
    whole = raw(parts[0].payload) + raw(parts[1].payload)
    assert parts[1].frag * 8 == len(raw(parts[0].payload)) and len(whole) == 1380
    assert TCP(whole).dport == 8080
    assert d.totals()["ipv4_fragmented"] == 1
    d.close()


def test_a_tunnel_service_fragments_the_outer_packet_of_ipv4_without_df(native):
    """1,400 bytes without DF fit the 1,420-byte backend network but not in
    IPIP (1,420): the outer packet goes in two fragments (RFC 2003 5.1),
    which reassemble to IPIP carrying the client's packet as it was sent.
    With DF the client is told 1,400: the MTU less the tunnel's 20 bytes."""
    d = mtu_dp(native, p1=1420)
    d.add_service(service(VIP, 80, method="tunnel", backends=[BACKENDS[0]], syn_proxy="off"))
    d.inject("p0", [raw(c2v())])
    sent = big(n=1410, flags="A", df=False)
    frags = d.inject("p0", [raw(sent)])
    assert [p for p, _ in frags] == [1, 1] and all(len(x) - 14 <= 1420 for _, x in frags)
    outer = defragment([Ether(x)[IP] for _, x in frags])
    whole, = [p for p in outer if not p.flags.MF and p.frag == 0]
    assert (whole.dst, whole.proto) == (BACKENDS[0], 4) and raw(whole.payload) == raw(sent[IP])
    (port, f), = d.inject("p0", [raw(big(n=1410, flags="A"))])
    err = Ether(f)
    assert port == 0 and (err[ICMP].type, err[ICMP].code, err[ICMP].nexthopmtu) == (3, 4, 1400)
    d.close()


def test_a_backends_reply_too_big_for_the_client_side_is_told_to_the_backend(native):
    """The reply is translated before its egress is known: the error goes
    back through the connection, about what the backend sent."""
    d = mtu_dp(native, p0=1280)
    d.add_service(service(VIP, 80, backends=[(BACKENDS[0], 8080)], syn_proxy="off"))
    d.inject("p0", [raw(c2v())])
    reply = Ether(src=BMAC[BACKENDS[0]], dst=P1_MAC) / IP(src=BACKENDS[0], dst=CLIENT,
                                                          flags="DF") / \
        TCP(sport=8080, dport=40000, flags="A") / Raw(b"r" * 1400)
    (port, f), = d.inject("p1", [raw(reply)])
    ip, inner = quote_of(f)
    assert port == 1 and Ether(f).dst == BMAC[BACKENDS[0]]
    assert (ip.dst, ip[ICMP].nexthopmtu) == (BACKENDS[0], 1280)
    assert (inner.src, inner[TCP].sport, inner.dst) == (BACKENDS[0], 8080, CLIENT)
    d.close()


def test_routed_and_ipv6_packets_meet_the_egress_mtu(native):
    d = mtu_dp(native, p1=1280)
    d.add_route("10.0.9.0/24", [("10.0.1.254", "p1")])
    d.add_neighbour("p1", "10.0.1.254", "02:00:00:00:0b:fe")
    routed = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst="10.0.9.9", flags="DF") / \
        UDP(sport=1, dport=2) / Raw(b"u" * 1400)
    (port, f), = d.inject("p0", [raw(routed)])
    assert port == 0 and Ether(f)[ICMP].nexthopmtu == 1280
    routed[IP].flags = 0
    assert len(d.inject("p0", [raw(routed)])) == 2
    d.add_service(service(VIP6, 80, backends=[(BACKEND6, 8080)], syn_proxy="off"))
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst=VIP6) / \
        TCP(sport=40000, dport=80, flags="S")
    d.inject("p0", [raw(syn)])
    data = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src=CLIENT6, dst=VIP6) / \
        TCP(sport=40000, dport=80, flags="A") / Raw(b"v" * 1400)
    (port, f), = d.inject("p0", [raw(data)])
    ptb = Ether(f)[IPv6]
    assert port == 0 and (ptb.dst, ptb[ICMPv6PacketTooBig].mtu) == (CLIENT6, 1280)
    assert IPv6(raw(ptb[ICMPv6PacketTooBig])[8:]).dst == VIP6
    assert d.drops()["mtu_exceeded"] == 2
    d.close()


def test_an_mtu_a_port_cannot_take_is_refused(native):
    from pylb.errors import InvalidArgument
    d = native.Dataplane(mbufs=1023, mbuf_cache=0)
    with pytest.raises(InvalidArgument, match="MTU 40 is not in 68..65535"):
        d.add_port("p0", mac=P0_MAC, mtu=40)
    d.close()


# Too big inside a tunnel: the error about what pylb encapsulated becomes
# the error about the packet inside, for its sender.

@pytest.mark.parametrize("kind", ["tunnel", "ipip", "gre"])
def test_a_tunnels_too_big_reaches_the_sender_of_what_it_carried(lb, kind):
    if kind == "tunnel":
        backend, sent = opened(lb, "tunnel")
        dst, sport = VIP, 40000
    else:
        lb.add_vip("10.0.3.0/24", backends=[(BACKENDS[0], 1)], method=kind)
        dst, sport = "10.0.3.7", 41000
        (_, f), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) /
                                       IP(src=CLIENT, dst=dst) /
                                       TCP(sport=sport, dport=80, flags="A") / Raw(b"x" * 100))])
        sent = Ether(f)
        backend = sent[IP].dst
    outer = sent[IP]
    assert outer.proto == (47 if kind == "gre" else 4) and outer.src == LIP
    err = too_big(BROUTER, outer.src, outer.copy(), mtu=1400, ingress_mac=BMAC[backend],
                  port_mac=P1_MAC)
    (port, f), = lb.inject("p1", [raw(err)])
    ip, inner = quote_of(f)
    overhead = 24 if kind == "gre" else 20
    assert port == 0 and (ip.src, ip.dst, ip[ICMP].nexthopmtu) == (dst, CLIENT, 1400 - overhead)
    assert (inner.src, inner.dst, inner[TCP].sport) == (CLIENT, dst, sport)
    assert counted(lb)[0] == 1


def test_a_too_big_about_a_tunnel_packet_of_the_other_family_is_dropped_and_counted(lb):
    """4-in-6 and 6-in-4 (internet.md: not translated across families): an
    error about the outer packet is counted and goes nowhere (the dp
    fixture checks that no mbuf leaked)."""
    lb.add_service(service(VIP, 80, method="tunnel", backends=[BACKEND6]))
    lb.add_service(service(VIP6, 80, method="tunnel", backends=[BACKENDS[0]]))
    (_, f4), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP)
                                    / TCP(sport=40000, dport=80, flags="S"))])
    (_, f6), = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC)
                                    / IPv6(src=CLIENT6, dst=VIP6)
                                    / TCP(sport=40000, dport=80, flags="S"))])
    outer6, outer4 = Ether(f4)[IPv6], Ether(f6)[IP]
    assert (outer6.nh, outer4.proto) == (4, 41)
    before = sum(counted(lb)) + sum(lb.drops().values())
    err6 = (Ether(src=BMAC6, dst=P1_MAC) / IPv6(src="2001:db8:1::250", dst=outer6.src)
            / ICMPv6PacketTooBig(mtu=1280) / Raw(raw(outer6)[:1232]))
    err4 = too_big(BROUTER, outer4.src, outer4.copy(), mtu=1300, ingress_mac=BMAC[BACKENDS[0]],
                   port_mac=P1_MAC)
    assert lb.inject("p1", [raw(err6), raw(err4)]) == []
    assert sum(counted(lb)) + sum(lb.drops().values()) == before + 2
