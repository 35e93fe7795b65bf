"""Robustness of the packet path: random and mutated frames never crash the
dataplane, never leak an mbuf, and every frame is accounted for exactly once."""

from __future__ import annotations

import random

import pytest

from scapy.packet import raw

from conftest import service
from pylb.errors import InvalidArgument
from test_host_fixtures import arp_request, echo_request


def release_held(dp) -> None:
    """Drop the packets held for neighbours that never answered (and the
    requests queued for them), so that every mbuf is back."""
    for n in dp.neighbours():
        if n.state == "incomplete":
            dp.del_neighbour(n.port, n.ip)
    dp.collect()


def settle(dp) -> None:
    """Fragments held for a first fragment that never came expire (a
    second, PYLB_FRAG_TIMEOUT_MS), housekeeping runs, what is queued is
    collected: every frame has ended but those held for neighbours."""
    dp.clock_advance(1100)
    dp.housekeep()
    dp.collect()


def known_ends(dp) -> list[str]:
    """Two backends (IPv4), one IPv6 backend and the client known as
    neighbours; the IPv4 backends."""
    from conftest import CLIENT_MAC
    backends = ["10.0.1.20", "10.0.1.21"]
    for i, b in enumerate(backends):
        dp.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    dp.add_neighbour("p1", "2001:db8:1::20", "02:00:00:00:0b:66")
    dp.add_neighbour("p0", "10.0.0.2", CLIENT_MAC)
    dp.add_neighbour("p0", "2001:db8::2", CLIENT_MAC)
    return backends


def inject_batches(dp, rounds: int, per: int, frame) -> int:
    """`rounds` bursts of `per` frames, frame(i) -> (port index, bytes),
    injected port by port; how many were injected."""
    total = 0
    for _ in range(rounds):
        batch = {0: [], 1: []}
        for i in range(per):
            port, f = frame(i)
            batch[port].append(f)
        for port, frames in batch.items():
            dp.inject(port, frames)
            total += len(frames)
    return total


def test_random_and_mutated_frames_are_all_accounted_for(dp):
    rng = random.Random(20261127)
    seeds = [raw(arp_request()), raw(echo_request()), raw(echo_request(payload=b"z" * 300))]
    frames = []
    for i in range(3000):
        if i % 3 == 0:
            frames.append(rng.randbytes(rng.randrange(0, 200)))
        else:
            f = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                f[rng.randrange(len(f))] = rng.randrange(256)
            frames.append(bytes(f[:rng.randrange(1, len(f) + 1)] if i % 5 == 0 else f))
    out = dp.inject(0, frames)
    t, drops = dp.totals(), dp.drops()
    assert t["rx_packets"] == len(frames)
    assert t["rx_packets"] == sum(drops.values()) + len(out) + t["arp_replies_received"]
    assert len(out) == t["arp_replies_sent"] + t["icmp_echo_replies"]
    # still answering afterwards
    assert len(dp.inject(0, [raw(echo_request())])) == 1


def test_l3_paths_under_random_and_mutated_frames(dp):
    """Routing, VIPs, IPv6, NDP and the kernel side: every frame ends exactly
    once (dropped, answered, forwarded, sent up, consumed or held)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether
    from conftest import CLIENT_MAC, P0_MAC

    dp.add_neighbour("p1", "10.0.1.2", "02:00:00:00:02:02")
    dp.add_route("198.51.100.0/24", ("10.0.1.2", "p1"))
    dp.add_vip("203.0.113.10/32", method="gre", backends=["10.0.1.20", "10.0.1.21"])
    v6 = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8:1::9")
    seeds = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst=d, ttl=t) / UDP() / b"p")
             for d, t in (("198.51.100.7", 64), ("203.0.113.10", 9), ("10.0.1.77", 2), ("192.0.2.1", 1))]
    seeds += [raw(v6 / UDP()), raw(v6 / ICMPv6EchoRequest()),
              raw(Ether(src=CLIENT_MAC, dst="33:33:ff:00:00:01") / IPv6(src="2001:db8::2", dst="ff02::1:ff00:1")
                  / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC))]
    rng = random.Random(11272026)
    frames = []
    for i in range(3000):
        f = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(0, 4)):
            f[rng.randrange(len(f))] = rng.randrange(256)
        frames.append(bytes(f[:rng.randrange(1, len(f) + 1)] if i % 7 == 0 else f))
    dp.inject("p0", frames)
    dp.housekeep()
    dp.collect()                      # neighbour requests
    t, drops = dp.totals(), dp.drops()
    ended = (sum(drops.values()) + t["arp_replies_sent"] + t["icmp_echo_replies"] + t["nd_adverts_sent"]
             + t["forwarded"] + t["to_kernel"] + t["arp_replies_received"] + t["nd_adverts_received"]
             + t["neigh_held"])
    assert t["rx_packets"] == len(frames) == ended
    with pytest.raises(InvalidArgument, match="no kernel interface"):
        dp.inject("p0", frames[:10], kernel=True)
    # still forwarding afterwards; drop what is held so nothing leaks
    assert len(dp.inject("p0", [seeds[0]])) == 1
    release_held(dp)


def test_kernel_side_under_random_frames(native):
    from conftest import P0_MAC, P1_MAC
    d = native.Dataplane(mbufs=2047, mbuf_cache=0)
    d.add_port("p0", mac=P0_MAC, kernel_iface="kf0")
    d.add_port("p1", mac=P1_MAC)
    d.add_address("p0", "10.0.0.1/24")
    d.add_address("p1", "10.0.1.1/24")
    d.add_neighbour("p1", "10.0.1.9", "02:00:00:00:09:09")
    full = d.mbufs_available()
    rng = random.Random(5)
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    seed = raw(Ether(src=P0_MAC, dst=P0_MAC) / IP(src="10.0.0.1", dst="10.0.1.9") / TCP())
    frames = [rng.randbytes(rng.randrange(0, 120)) for _ in range(500)]
    for _ in range(1500):
        f = bytearray(seed)
        f[rng.randrange(len(f))] = rng.randrange(256)
        frames.append(bytes(f))
    out = d.inject("p0", frames, kernel=True)
    d.housekeep()
    t, drops = d.totals(), d.drops()
    assert t["from_kernel"] == len(frames)
    assert t["from_kernel"] == sum(drops.values()) + t["forwarded"] + t["neigh_held"]
    assert len(out) == t["forwarded"]
    release_held(d)
    assert d.mbufs_available() == full
    d.close()


def test_l4_paths_under_random_and_mutated_frames(dp):
    """Service VIPs, NAT replies and tracked connections: every frame ends
    exactly once, nothing leaks, and the table stays consistent."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from conftest import CLIENT_MAC, P0_MAC, P1_MAC

    backends = ["10.0.1.20", "10.0.1.21"]
    for i, b in enumerate(backends):
        dp.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    dp.add_neighbour("p0", "10.0.0.2", CLIENT_MAC)
    dp.add_service(service("10.0.0.100", 80, backends=[(b, 8080) for b in backends]))
    dp.add_service(service("10.0.0.100", 53, proto="udp", backends=backends))
    dp.add_service(service("10.0.0.101", 80, method="dr", backends=backends))
    c = Ether(src=CLIENT_MAC, dst=P0_MAC)
    seeds = [(0, raw(c / IP(src="10.0.0.2", dst="10.0.0.100") / TCP(sport=1000, dport=80, flags="S"))),
             (0, raw(c / IP(src="10.0.0.2", dst="10.0.0.100") / TCP(sport=1000, dport=80, flags="A"))),
             (0, raw(c / IP(src="10.0.0.2", dst="10.0.0.100") / UDP(sport=7, dport=53) / b"q")),
             (0, raw(c / IP(src="10.0.0.2", dst="10.0.0.101") / TCP(sport=9, dport=80, flags="S"))),
             (1, raw(Ether(src="02:00:00:00:0b:00", dst=P1_MAC) / IP(src=backends[0], dst="10.0.0.2")
                     / TCP(sport=8080, dport=1000, flags="SA")))]
    rng = random.Random(4242)

    def mutated(i):
        port, f = rng.choice(seeds)
        f = bytearray(f)
        if i % 2:
            for _ in range(rng.randrange(1, 3)):
                f[rng.randrange(14, len(f))] = rng.randrange(256)
        return port, bytes(f[:rng.randrange(15, len(f) + 1)] if i % 9 == 0 else f)
    total = inject_batches(dp, 20, 150, mutated)
    settle(dp)
    t, drops = dp.totals(), dp.drops()
    ended = (sum(drops.values()) + t["forwarded"] + t["icmp_echo_replies"] + t["neigh_held"]
             + t["to_kernel"] + t["arp_replies_sent"] + t["arp_replies_received"])
    assert t["rx_packets"] == total == ended
    assert dp.conn_count() == len(dp.connections()) <= t["conn_created"] + t["conn_picked_up"]
    release_held(dp)


def test_ipv6_extension_chains_under_random_and_mutated_frames(dp):
    """IPv6 to a service and to a routed address behind random chains of
    extension headers, mutated in their lengths and next-header fields: every
    frame ends exactly once, and nothing leaks."""
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                    IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
    from scapy.layers.l2 import Ether
    from conftest import CLIENT_MAC, P0_MAC

    dp.add_neighbour("p1", "2001:db8:1::20", "02:00:00:00:0b:00")
    dp.add_service(service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)]))
    dp.add_service(service("2001:db8::100", 53, proto="udp", backends=[("2001:db8:1::20", 5353)]))
    full = dp.mbufs_available()
    rng = random.Random(20261129)
    kinds = [lambda: IPv6ExtHdrHopByHop(), lambda: IPv6ExtHdrDestOpt(),
             lambda: IPv6ExtHdrRouting(addresses=[], segleft=0),
             lambda: IPv6ExtHdrRouting(addresses=["2001:db8::9"], segleft=1),
             lambda: IPv6ExtHdrFragment(offset=rng.choice([0, 0, 3]), id=rng.randrange(99))]
    frames = []
    for i in range(2000):
        chain = None
        for _ in range(rng.randrange(0, 11)):
            h = rng.choice(kinds)()
            chain = h if chain is None else chain / h
        l4 = TCP(sport=1000 + i, dport=80, flags="S") if i % 2 else UDP(sport=1000 + i, dport=53)
        dst = "2001:db8::100" if i % 3 else "2001:db8:1::20"
        pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst=dst)
        f = bytearray(raw(pkt / chain / l4 if chain is not None else pkt / l4))
        for _ in range(rng.randrange(0, 3)):            # next headers and lengths
            f[rng.randrange(54, max(55, len(f) - 8))] = rng.randrange(256)
        if i % 11 == 0:
            f = f[:rng.randrange(55, len(f) + 1)]
        frames.append(bytes(f))
    dp.inject("p0", frames)
    settle(dp)
    t, drops = dp.totals(), dp.drops()
    ended = (sum(drops.values()) + t["forwarded"] + t["to_kernel"] + t["neigh_held"])
    assert t["rx_packets"] == len(frames) == ended
    assert drops.get("ipv6_ext_truncated", 0) > 0 and drops.get("ipv6_ext_invalid", 0) > 0
    assert t["conn_created"] > 0
    release_held(dp)
    dp.del_service("2001:db8::100", 80)
    dp.del_service("2001:db8::100", 53, proto="udp")
    assert dp.mbufs_available() == full


@pytest.mark.dp_settings(per_source={"half_open_budget": 8, "new_per_second": 10})
def test_defences_under_random_and_mutated_frames(dp):
    """SYN cookies, proxied handshakes, ACLs, limits and the half-open budget
    under mutated handshakes (valid cookies among them), both directions:
    nothing crashes, and once every connection has aged out every mbuf (held
    ones included) is back."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from conftest import CLIENT_MAC, P0_MAC, P1_MAC

    full = dp.mbufs_available()
    backends = ["10.0.1.20", "10.0.1.21"]
    for i, b in enumerate(backends):
        dp.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    dp.add_neighbour("p0", "10.0.0.2", CLIENT_MAC)
    dp.add_route("10.9.0.0/16", ("10.0.0.2", "p0"))       # clients behind a router
    dp.add_service(service("10.0.0.100", 80, backends=[(b, 8080, 1, "up", 15) for b in backends], syn_proxy="always", max_per_client=40), id=0)
    dp.add_service(service("10.0.0.100", 81, method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 8080) for b in backends], syn_proxy="always", max_new_per_second=500), id=1)
    dp.add_service(service("10.0.0.100", 53, proto="udp", backends=backends, max_connections=50), id=2)
    dp.set_acls([("deny", "reset", ["10.0.0.128/25"]), ("allow", "unreachable", ["10.0.0.0/24"])],
                {0: [0], 1: [0, 1], 2: [1]})
    c = Ether(src=CLIENT_MAC, dst=P0_MAC)
    # One proxied handshake whole first (whether the random frames below
    # complete one depends on the key's choice of backend and on time: the
    # per-source rate): cookie, ACK, data held, the chosen backend's SYN-ACK.
    me = c / IP(src="10.9.5.5", dst="10.0.0.100")
    (_, f), = dp.inject("p0", [raw(me / TCP(sport=7777, dport=80, flags="S", seq=7))])
    cookie = Ether(f)[TCP].seq
    (_, f), = dp.inject("p0", [raw(me / TCP(sport=7777, dport=80, flags="A", seq=8,
                                            ack=cookie + 1))])
    chosen = Ether(f)[IP].dst
    assert dp.inject("p0", [raw(me / TCP(sport=7777, dport=80, flags="PA", seq=8,
                                         ack=cookie + 1) / b"data")]) == []
    dp.inject("p1", [raw(Ether(src="02:00:00:00:0b:00", dst=P1_MAC) /
                         IP(src=chosen, dst="10.9.5.5") /
                         TCP(sport=8080, dport=7777, flags="SA", seq=50, ack=8))])
    assert (dp.totals()["syn_proxy_established"], dp.totals()["syn_proxy_held"]) == (1, 1)
    rng = random.Random(1616)
    frames = {0: [], 1: []}
    for i in range(1200):
        sport, dport = 1000 + i % 300, rng.choice([80, 81])
        src = rng.choice(["10.0.0.2", "10.0.0.2", "10.0.0.200", "10.9.0.1"])
        syn = raw(c / IP(src=src, dst="10.0.0.100") / TCP(sport=sport, dport=dport, flags="S",
                                                         seq=7, options=[("MSS", 1460),
                                                                         ("WScale", 7)]))
        out = dp.inject("p0", [syn])
        cookie = Ether(out[0][1])[TCP].seq if out and TCP in Ether(out[0][1]) else rng.getrandbits(32)
        pick = [raw(c / IP(src=src, dst="10.0.0.100") /
                    TCP(sport=sport, dport=dport, flags="A", seq=8, ack=cookie + 1)),
                raw(c / IP(src=src, dst="10.0.0.100") /
                    TCP(sport=sport, dport=dport, flags="PA", seq=8, ack=cookie + 1) / b"data"),
                raw(c / IP(src=src, dst="10.0.0.100") / UDP(sport=sport, dport=53) / b"q")]
        back = [raw(Ether(src="02:00:00:00:0b:00", dst=P1_MAC) /
                    IP(src=backends[0], dst=dst) /
                    TCP(sport=8080, dport=p, flags=fl, seq=50, ack=8,
                        options=[("SAck", (cookie, cookie + 9))] if fl == "A" else []))
                for dst, p in (("10.0.0.2", sport), ("10.0.1.1", rng.randrange(1024, 1400)))
                for fl in ("SA", "A", "R")]
        f = bytearray(rng.choice(pick))
        if i % 2:
            f[rng.randrange(14, len(f))] = rng.randrange(256)
        frames[0].append(bytes(f[:rng.randrange(15, len(f) + 1)] if i % 7 == 0 else f))
        b = bytearray(rng.choice(back))
        if i % 3 == 0:
            b[rng.randrange(14, len(b))] = rng.randrange(256)
        frames[1].append(bytes(b))
        if len(frames[0]) == 32:
            for port in (0, 1):
                dp.inject(port, frames[port])
                frames[port] = []
    t = dp.totals()
    assert t["syn_cookies_sent"] > 0 and t["syn_proxy_opened"] > 0, t
    assert t["syn_proxy_established"] > 0 and t["syn_proxy_held"] > 0, t
    assert dp.drops().get("acl_denied", 0) > 0
    assert t["source_half_open_full"] > 0 and dp.drops().get("limit_source_rate", 0) > 0, t
    assert dp.drops().get("limit_backend_conns", 0) > 0
    for _ in range(4):      # every connection ends (one opening by a cookie: its SYN resent 3 times)
        dp.clock_advance(10_000_000)
        dp.housekeep()
        dp.collect()
    assert dp.conn_count() == 0 and dp.half_open() == 0
    assert all(dp.half_open(source=s) == 0 for s in ("10.0.0.2", "10.0.0.200", "10.9.0.1"))
    release_held(dp)
    assert dp.mbufs_available() == full


def test_icmp_errors_under_random_and_mutated_quotes(dp):
    """ICMP errors about the connections of every method (to a VIP, routed
    to a client, to the FullNAT address, about a tunnel's packets, IPv4
    and IPv6), their quotes mutated and cut, half of them with the ICMP
    checksum made right again so the parsers past it are reached: every
    frame ends exactly once, and nothing leaks."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6PacketTooBig, IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from conftest import CLIENT_MAC, P0_MAC, P1_MAC

    backends = known_ends(dp)
    dp.add_service(service("10.0.0.100", 80, backends=[(b, 8080) for b in backends], syn_proxy="off"))
    dp.add_service(service("10.0.0.101", 80, method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 8080) for b in backends], syn_proxy="off"))
    dp.add_service(service("10.0.0.102", 80, method="dr", backends=backends))
    dp.add_service(service("10.0.0.103", 80, method="tunnel", backends=backends))
    dp.add_service(service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)], syn_proxy="off"))
    dp.add_vip("203.0.113.0/24", method="gre", backends=backends)
    c = Ether(src=CLIENT_MAC, dst=P0_MAC)
    b = Ether(src="02:00:00:00:0b:00", dst=P1_MAC)
    opened = [raw(c / IP(src="10.0.0.2", dst=f"10.0.0.10{i}") /
                  TCP(sport=40000 + p, dport=80, flags="S")) for i in range(4) for p in range(8)]
    opened += [raw(c / IPv6(src="2001:db8::2", dst="2001:db8::100") /
                   TCP(sport=40000 + p, dport=80, flags="S")) for p in range(8)]
    dp.inject("p0", opened)
    rng = random.Random(29112026)

    def err4(dst, quoted):
        return IP(src="10.0.0.250", dst=dst) / ICMP(type=rng.choice([3, 3, 11, 12]), code=4,
                                                     nexthopmtu=1280) / Raw(raw(quoted)[:548])

    seeds = []
    for p in range(8):
        for i in range(4):
            vip = f"10.0.0.10{i}"
            seeds.append((0, c / err4(vip, IP(src=vip, dst="10.0.0.2") /
                                      TCP(sport=80, dport=40000 + p, flags="A") / (b"d" * 40))))
        seeds.append((1, b / err4("10.0.0.2", IP(src="10.0.0.2", dst=backends[0]) /
                                  TCP(sport=40000 + p, dport=8080))))
        seeds.append((1, b / err4("10.0.1.1", IP(src="10.0.1.1", dst=backends[p % 2]) /
                                  TCP(sport=1024 + p, dport=8080))))
        seeds.append((1, b / err4("10.0.1.1", IP(src="10.0.1.1", dst=backends[0], proto=4) /
                                  IP(src="10.0.0.2", dst="10.0.0.103") /
                                  TCP(sport=40000 + p, dport=80))))
        seeds.append((0, c / err4("203.0.113.9", IP(src="203.0.113.9", dst="10.0.0.2") / UDP())))
        seeds.append((0, c / IPv6(src="2001:db8::fa", dst="2001:db8::100") /
                      ICMPv6PacketTooBig(mtu=1280) /
                      Raw(raw(IPv6(src="2001:db8::100", dst="2001:db8::2") /
                              TCP(sport=80, dport=40000 + p))[:200])))
    def mutated(i):
        port, pkt = rng.choice(seeds)
        f = bytearray(raw(pkt))
        for _ in range(rng.randrange(0, 4)):           # in the quote, mostly
            f[rng.randrange(42, len(f))] = rng.randrange(256)
        if i % 7 == 0:
            f = f[:rng.randrange(34, len(f) + 1)]
        frame = Ether(bytes(f))
        if i % 2 and ICMP in frame:
            del frame[ICMP].chksum
            f = raw(frame)
        elif i % 2 and ICMPv6PacketTooBig in frame:
            del frame[ICMPv6PacketTooBig].cksum
            f = raw(frame)
        return port, bytes(f)
    total = inject_batches(dp, 10, 100, mutated)
    dp.housekeep()
    dp.collect()
    t, drops = dp.totals(), dp.drops()
    ended = (sum(drops.values()) + t["forwarded"] + t["to_kernel"] + t["neigh_held"]
             + t["icmp_echo_replies"])
    assert t["rx_packets"] == total + len(opened)
    assert t["rx_packets"] == ended
    assert t["icmp_errors_translated"] > 100 and t["icmp_errors_unmatched"] > 0
    release_held(dp)


def test_fragment_chains_under_random_and_mutated_frames(dp):
    """Fragments of TCP/UDP datagrams (IPv4 and IPv6, to VIPs of every
    method and back from their backends) in random order, some lost, some
    repeated, their headers mutated (half with the IPv4 header sum made
    right again), identifications colliding: every frame ends exactly
    once (the held ones when their entries expire), nothing leaks."""
    from scapy.layers.inet import IP, UDP, TCP, fragment
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    from conftest import CLIENT_MAC, P0_MAC, P1_MAC

    backends = known_ends(dp)
    dp.add_service(service("10.0.0.100", 53, proto="udp", backends=[(b, 5353) for b in backends]))
    dp.add_service(service("10.0.0.101", 53, proto="udp", method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 5353) for b in backends]))
    dp.add_service(service("10.0.0.102", 53, proto="udp", method="dr", backends=backends))
    dp.add_service(service("10.0.0.100", 80, backends=[(b, 8080) for b in backends], syn_proxy="off"))
    dp.add_service(service("2001:db8::100", 53, proto="udp", backends=[("2001:db8:1::20", 5353)]))
    c = Ether(src=CLIENT_MAC, dst=P0_MAC)
    b = Ether(src="02:00:00:00:0b:00", dst=P1_MAC)
    rng = random.Random(29112027)

    def datagram(ident):
        kind = rng.randrange(6)
        body = Raw(bytes(rng.randrange(256) for _ in range(rng.choice([100, 1600, 3100]))))
        if kind < 3:
            pkt = IP(src="10.0.0.2", dst=f"10.0.0.10{kind}", id=ident) / \
                UDP(sport=40000 + ident % 4, dport=53) / body
        elif kind == 3:
            pkt = IP(src="10.0.0.2", dst="10.0.0.100", id=ident) / \
                TCP(sport=40000 + ident % 4, dport=80, flags="A") / body
        elif kind == 4:
            pkt = IP(src="10.0.1.20", dst=rng.choice(["10.0.0.2", "10.0.1.1"]), id=ident) / \
                UDP(sport=5353, dport=rng.choice([40000, 1024, 1025])) / body
            return [(1, b / f) for f in fragment(pkt, 1480)]
        else:
            pkt = IPv6(src="2001:db8::2", dst="2001:db8::100") / IPv6ExtHdrFragment(id=ident) / \
                UDP(sport=40000 + ident % 4, dport=53) / body
            return [(0, c / f) for f in fragment6(pkt, 1500)]
        return [(0, c / f) for f in fragment(pkt, 1480)]

    frames = []
    for ident in range(300):
        parts = datagram(ident % 40)
        rng.shuffle(parts)
        parts = [p for p in parts if rng.random() > 0.1] + \
            [p for p in parts if rng.random() < 0.05]
        frames += parts

    def mutated(i):
        port, pkt = frames[i % len(frames)]
        f = bytearray(raw(pkt))
        if i % 3 == 0:
            for _ in range(rng.randrange(1, 3)):        # in the headers
                f[rng.randrange(14, 70)] = rng.randrange(256)
            if i % 2 and IP in Ether(bytes(f)):
                frame = Ether(bytes(f))
                del frame[IP].chksum
                f = bytearray(raw(frame))
        return port, bytes(f)

    total = inject_batches(dp, len(frames) // 50 + 1, 50, mutated)
    settle(dp)
    t, drops = dp.totals(), dp.drops()
    ended = sum(drops.values()) + t["forwarded"] + t["to_kernel"] + t["neigh_held"]
    assert t["rx_packets"] == total == ended
    assert t["fragments_followed"] > 100 and t["fragments_held"] > 10
    assert drops["frag_timeout"] > 0
    release_held(dp)
