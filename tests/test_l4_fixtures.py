"""Packet fixtures for L4 services: scheduling, connection tracking, the TCP
state machine and timeouts, NAT both ways, DR, tunnel, port translation,
drain, table-full fallback. Checksums are verified by recomputing them with
scapy."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import AlreadyExists, InvalidArgument, NotFound

CLIENT = "10.0.0.2"
VIP = "10.0.0.100"
BACKENDS = ["10.0.1.20", "10.0.1.21", "10.0.1.22"]
BMAC = {b: f"02:00:00:00:0b:{i:02x}" for i, b in enumerate(BACKENDS)}

# Drop reasons provoked here (see test_host_fixtures.test_every_drop_reason_is_exercised).
EXERCISED = {"l4_truncated", "no_service", "tcp_no_conn", "tcp_bad_flags", "service_no_backend",
             "fullnat_no_port", "backend_down", "ipv6_ext_truncated", "ipv6_ext_invalid"}


# A half-open budget above the capacity: none (tables of unanswered flows
# stay as they are; tests/test_defence_fixtures.py covers the budget).
NO_BUDGET = 1 << 30


def drops_of(dp):
    return {k: v for k, v in dp.drops().items() if v}


@pytest.fixture
def lb(dp):
    for b in BACKENDS:
        dp.add_neighbour("p1", b, BMAC[b])
    return dp


def c2v(sport=40000, flags="S", dport=80, payload=b"", proto=TCP, src=CLIENT, seq=1000, **kw):
    l4 = TCP(sport=sport, dport=dport, flags=flags, seq=seq, **kw) if proto is TCP else \
        UDP(sport=sport, dport=dport)
    return Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=VIP, ttl=64, id=9) / l4 / Raw(payload)


def checksums_ok(frame: bytes) -> bool:
    ip = Ether(frame)[IP]
    l4 = ip.payload
    got = (ip.chksum, l4.chksum)
    del ip.chksum
    del l4.chksum
    again = IP(raw(ip))
    return got == (again.chksum, again.payload.chksum)


def test_nat_translates_both_ways_with_valid_checksums(lb):
    lb.add_service(service(VIP, 80, backends=[(b, 8080) for b in BACKENDS]))
    (port, f), = lb.inject("p0", [raw(c2v(payload=b"hello"))])
    out = Ether(f)
    backend = out[IP].dst
    assert port == 1 and backend in BACKENDS and out.dst == BMAC[backend] and out.src == P1_MAC
    assert (out[IP].src, out[TCP].sport, out[TCP].dport, out[IP].ttl) == (CLIENT, 40000, 8080, 63)
    assert checksums_ok(f)
    # The backend answers the client directly; the appliance puts the VIP back.
    lb.add_neighbour("p0", CLIENT, CLIENT_MAC)
    reply = (Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst=CLIENT, ttl=64)
             / TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=1001))
    (port, f), = lb.inject("p1", [raw(reply)])
    back = Ether(f)
    assert port == 0 and (back[IP].src, back[TCP].sport, back[IP].dst) == (VIP, 80, CLIENT)
    assert checksums_ok(f)
    assert lb.totals()["nat_replies"] == 1
    # The client's ACK establishes it; later packets go to the same backend.
    (_, f), = lb.inject("p0", [raw(c2v(flags="A", payload=b"GET /"))])
    assert Ether(f)[IP].dst == backend and checksums_ok(f)
    (conn,) = lb.connections()
    assert (conn.client, conn.cport, conn.vip, conn.vport, conn.backend, conn.bport, conn.state) == \
        (CLIENT, 40000, VIP, 80, backend, 8080, "established")
    assert conn.packets == 3
    counts = {b.ip: (st["active"], st["inactive"]) for b, st in
              zip(lb.service(VIP, 80).backends, lb.service_stats(VIP, 80)["backends"])}
    assert counts[backend] == (1, 0) and sum(a for a, _ in counts.values()) == 1
    assert [c.cport for c in lb.connections(backend=backend)] == [40000]
    assert lb.connections(client="10.0.0.9") == []


def test_tcp_teardown_and_timeouts(native):
    d = small_dp(native, timeouts={"tcp_syn": 5, "tcp_fin": 3, "tcp_close": 2,
                                   "tcp_established": 30})
    d.add_service(service(VIP, 80, method="dr", backends=[BACKENDS[0]]))
    d.inject("p0", [raw(c2v(sport=1)), raw(c2v(sport=2)), raw(c2v(sport=3))])
    d.inject("p0", [raw(c2v(sport=2, flags="A")), raw(c2v(sport=3, flags="A"))])
    d.inject("p0", [raw(c2v(sport=3, flags="R"))])
    states = {c.cport: c.state for c in d.connections()}
    assert states == {1: "syn_recv", 2: "established", 3: "close"}
    d.clock_advance(2500)
    d.housekeep()
    assert {c.cport for c in d.connections()} == {1, 2}       # closed one gone after 2 s
    d.inject("p0", [raw(c2v(sport=2, flags="FA"))])
    assert {c.cport: c.state for c in d.connections()}[2] == "fin_wait"
    d.clock_advance(3500)
    d.housekeep()
    assert d.connections() == []                                # syn 5 s, fin 3 s
    assert d.totals()["conn_expired"] == 3
    d.close()


def test_udp_nat_request_and_reply(lb):
    lb.add_neighbour("p0", CLIENT, CLIENT_MAC)
    lb.add_service(service(VIP, 53, proto="udp", backends=[f"{BACKENDS[1]}:5353"]))
    (_, f), = lb.inject("p0", [raw(c2v(proto=UDP, sport=3333, dport=53, payload=b"q"))])
    assert (Ether(f)[IP].dst, Ether(f)[UDP].dport) == (BACKENDS[1], 5353) and checksums_ok(f)
    rep = (Ether(src=BMAC[BACKENDS[1]], dst=P1_MAC) / IP(src=BACKENDS[1], dst=CLIENT)
           / UDP(sport=5353, dport=3333) / Raw(b"a"))
    (_, f), = lb.inject("p1", [raw(rep)])
    assert (Ether(f)[IP].src, Ether(f)[UDP].sport) == (VIP, 53) and checksums_ok(f)
    assert [c.state for c in lb.connections()] == ["none"]


def test_fullnat_rewrites_both_addresses_both_ways(lb):
    lb.add_neighbour("p0", CLIENT, CLIENT_MAC)
    lb.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=[(b, 8080) for b in BACKENDS]))
    (port, f), = lb.inject("p0", [raw(c2v(sport=41000, payload=b"hi"))])
    out = Ether(f)
    backend, lport = out[IP].dst, out[TCP].sport
    assert port == 1 and out[IP].src == "10.0.1.1" and lport >= 1024
    assert (out[TCP].dport, out[IP].ttl) == (8080, 63) and checksums_ok(f)
    # The backend answers the local address, whatever its own routes.
    rep = (Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst="10.0.1.1")
           / TCP(sport=8080, dport=lport, flags="SA"))
    (port, f), = lb.inject("p1", [raw(rep)])
    back = Ether(f)
    assert port == 0 and (back[IP].src, back[TCP].sport, back[IP].dst, back[TCP].dport) == \
        (VIP, 80, CLIENT, 41000)
    assert checksums_ok(f)
    (conn,) = lb.connections()
    assert (conn.local, conn.lport, conn.backend) == ("10.0.1.1", lport, backend)
    # Each connection gets its own local port.
    ports = {Ether(f)[TCP].sport for _, f in lb.inject("p0", [raw(c2v(sport=p)) for p in range(50)])}
    assert len(ports) == 50
    with pytest.raises(InvalidArgument, match="local address"):
        lb.add_service(service(VIP, 81, method="fullnat", local_addresses=["10.0.1.99"]))


def test_dr_rewrites_only_the_mac(lb):
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    pkt = c2v()
    (_, f), = lb.inject("p0", [raw(pkt)])
    mac = Ether(f).dst
    assert mac in BMAC.values() and f[14:] == raw(pkt[IP])


def test_tunnel_encapsulates_in_ipip(lb):
    lb.add_service(service(VIP, 80, method="tunnel", backends=BACKENDS))
    pkt = c2v()
    (_, f), = lb.inject("p0", [raw(pkt)])
    outer = Ether(f)[IP]
    assert outer.proto == 4 and outer.src == "10.0.1.1" and outer.dst in BACKENDS
    assert raw(outer.payload) == raw(pkt[IP])


def test_a_tunnel_source_prefix_gives_each_connection_its_own_source(lb):
    """tunnel_source a prefix: every connection (client address and port)
    leaves from its own address of it, the same for all its packets (a
    backend's NIC hashes them to one queue, and connections over all);
    an address: every one from it. IPv6 alike."""
    lb.add_service(service(VIP, 80, method="tunnel", tunnel_source="10.200.0.0/16",
                           backends=BACKENDS))
    assert lb.service(VIP, 80).tunnel_source == "10.200.0.0/16"
    syns = lb.inject("p0", [raw(c2v(sport=p)) for p in range(20000, 20200)])
    acks = lb.inject("p0", [raw(c2v(sport=p, flags="A")) for p in range(20000, 20200)])
    src = [Ether(f)[IP].src for _, f in syns]
    assert [Ether(f)[IP].src for _, f in acks] == src
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.200.0.0/16") for a in src)
    assert len(set(src)) > 190
    assert raw(Ether(syns[0][1])[IP].payload) == raw(c2v(sport=20000)[IP])
    # An address: every connection from it.
    lb.del_service(VIP, 80)
    lb.add_service(service(VIP, 81, method="tunnel", tunnel_source="10.200.0.9",
                           backends=BACKENDS))
    assert {Ether(f)[IP].src for _, f in lb.inject(
        "p0", [raw(c2v(sport=p, dport=81)) for p in range(100)])} == {"10.200.0.9"}

    lb.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    lb.add_service(service("2001:db8::100", 80, method="tunnel",
                           tunnel_source="2001:db8:7::/96", backends=["2001:db8:1::20"]))
    out = lb.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC)
                               / IPv6(src="2001:db8::2", dst="2001:db8::100")
                               / TCP(sport=p, dport=80, flags="S")) for p in range(100)])
    src6 = {Ether(f)[IPv6].src for _, f in out}
    assert len(src6) > 95 and all(
        ipaddress.ip_address(a) in ipaddress.ip_network("2001:db8:7::/96") for a in src6)
    assert drops_of(lb) == {}


def test_a_tunnel_source_is_for_tunnel_services(lb):
    with pytest.raises(InvalidArgument, match="tunnel_source: an outer source is for tunnel"):
        service(VIP, 80, method="nat", tunnel_source="10.200.0.0/16")
    with pytest.raises(InvalidArgument, match="host bits set"):
        service(VIP, 80, method="tunnel", tunnel_source="10.200.0.1/16")
    # The binding's callers that bypass the spec meet the dataplane's check.
    spec = service(VIP, 80, method="tunnel", tunnel_source="10.200.0.0/16")
    object.__setattr__(spec, "method", "dr")
    with pytest.raises(InvalidArgument, match="for tunnel services"):
        lb.add_service(spec)
    assert lb.services() == []


def test_a_tunnel_service_carries_ipv4_in_ipv6_and_ipv6_in_ipv4(lb):
    """A tunnel service's backends may be of the other family (IPVS's
    heterogeneous pools, Katran's 4-in-6): the client's packet as it is,
    in the backend's family (IPv4 in IPv6: next header 4; IPv6 in IPv4:
    protocol 41), its connection on that backend, from the source prefix
    of the backends' family; the connection lists its backend as it is."""
    lb.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    lb.add_service(service(VIP, 80, method="tunnel", tunnel_source="2001:db8:7::/96",
                           backends=["2001:db8:1::20"]))
    syn, ack = c2v(sport=41000), c2v(sport=41000, flags="A", seq=1001)
    out = [Ether(f) for _, f in lb.inject("p0", [raw(syn), raw(ack)])]
    assert [(o[IPv6].dst, o[IPv6].nh) for o in out] == [("2001:db8:1::20", 4)] * 2
    assert raw(out[0][IPv6].payload) == raw(syn[IP]) and raw(out[1][IPv6].payload) == raw(ack[IP])
    assert out[0][IPv6].src == out[1][IPv6].src and \
        ipaddress.ip_address(out[0][IPv6].src) in ipaddress.ip_network("2001:db8:7::/96")
    (conn,) = lb.connections()
    assert (conn.client, conn.backend, conn.state) == (CLIENT, "2001:db8:1::20", "established")
    # 6-in-4: an IPv6 VIP over IPv4 backends (from the port's address: the
    # source prefix is IPv6's).
    lb.add_service(service("2001:db8::100", 80, method="tunnel", backends=BACKENDS))
    pkt = (Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::100")
           / TCP(sport=5000, dport=80, flags="S"))
    (port, f), = lb.inject("p0", [raw(pkt)])
    outer = Ether(f)[IP]
    assert (port, outer.src, outer.proto, outer.flags.DF) == (1, "10.0.1.1", 41, 1)
    assert outer.dst in BACKENDS and raw(outer.payload) == raw(pkt[IPv6])
    v6conn = next(c for c in lb.connections() if c.vip == "2001:db8::100")
    assert v6conn.backend == outer.dst
    # Trace says the same backend.
    t = lb.l4_trace("2001:db8::2", "2001:db8::100", "tcp", 5000, 80, 0x10)
    assert t["verdict"] == "connection" and t["backend"][0] == outer.dst
    # Other methods' backends are of the VIP's family.
    with pytest.raises(InvalidArgument, match="a tunnel or gue service's may be"):
        service(VIP, 81, method="dr", backends=["2001:db8:1::20"])
    assert drops_of(lb) == {}


def test_established_connections_keep_their_backend_and_drain(lb):
    lb.add_service(service(VIP, 80, backends=[(b, 80) for b in BACKENDS]))
    syns = [raw(c2v(sport=p)) for p in range(20000, 20300)]
    first = {p: Ether(f)[IP].dst for p, (_, f) in zip(range(20000, 20300), lb.inject("p0", syns))}
    assert set(first.values()) == set(BACKENDS)
    gone = BACKENDS[1]
    lb.set_service_backends(VIP, 80, [(b, 80, 0 if b == gone else 1) for b in BACKENDS])  # drain
    acks = [raw(c2v(sport=p, flags="A")) for p in range(20000, 20300)]
    after = {p: Ether(f)[IP].dst for p, (_, f) in zip(range(20000, 20300), lb.inject("p0", acks))}
    assert after == first                                   # every open connection stays
    new = [Ether(f)[IP].dst for _, f in lb.inject("p0", [raw(c2v(sport=p)) for p in range(30000, 30200)])]
    assert gone not in new                                  # no new ones on the drained backend
    lb.set_service_backends(VIP, 80, [(b, 80) for b in BACKENDS if b != gone])  # removed
    again = {p: Ether(f)[IP].dst for p, (_, f) in zip(range(20000, 20300), lb.inject("p0", acks))}
    assert again == first


def test_source_hash_keeps_a_client_on_one_backend(lb):
    lb.add_service(service(VIP, 80, scheduler="source", backends=BACKENDS))
    for client in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        dsts = {Ether(f)[IP].dst for _, f in lb.inject("p0", [raw(c2v(sport=p, src=client))
                                                             for p in range(1000, 1040)])}
        assert len(dsts) == 1


def test_persistence_keeps_a_client_network_on_its_backend(lb):
    def backend_of(src, sport):
        (_, f), = lb.inject("p0", [raw(c2v(sport=sport, src=src))])
        return Ether(f).dst
    # What the scheduler alone chooses (same backends, same table).
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    sched = {p: backend_of("10.0.0.2", p) for p in range(5000, 5040)}
    lb.del_service(VIP, 80)
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS, persistence=60, persistence_prefix=24))
    first = backend_of("10.0.0.2", 1000)
    # Other connections of the client, and of its /24, go to the same backend,
    # although the 5-tuple hash alone would spread them.
    assert {backend_of("10.0.0.2", p) for p in range(1001, 1040)} == {first}
    assert {backend_of("10.0.0.77", p) for p in range(2000, 2020)} == {first}
    # Draining that backend moves new connections, and they stick to the new one.
    mine = [b for b in BACKENDS if BMAC[b] == first][0]
    lb.set_service_backends(VIP, 80, [(b, 0, 0 if b == mine else 1) for b in BACKENDS])
    moved = {backend_of("10.0.0.2", p) for p in range(3000, 3020)}
    assert len(moved) == 1 and first not in moved
    # Once persistence (and the old connections) time out, the scheduler
    # chooses again, and the client sticks to that.
    lb.set_service_backends(VIP, 80, BACKENDS)
    lb.clock_advance(61_000)
    lb.housekeep()
    p = next(p for p in sched if sched[p] not in moved)
    assert backend_of("10.0.0.2", p) == sched[p]
    assert backend_of("10.0.0.2", 6000) == sched[p]


def test_weighted_round_robin_follows_the_weights_exactly(lb):
    lb.add_service(service(VIP, 80, method="dr", scheduler="wrr", backends=[(BACKENDS[0], 0, 1), (BACKENDS[1], 0, 2), (BACKENDS[2], 0, 0)]))
    macs = [Ether(f).dst for _, f in lb.inject("p0", [raw(c2v(sport=p)) for p in range(300)])]
    counts = [macs.count(BMAC[b]) for b in BACKENDS]
    assert counts == [100, 200, 0]
    # Smoothly interleaved, not in runs.
    assert max(len(run) for run in "".join("ab"[BMAC[BACKENDS[1]] == m] for m in macs).split("a")) <= 2


def test_all_ports_service_keeps_the_port(lb):
    lb.add_service(service(VIP, 0, backends=[BACKENDS[0]]))
    (_, f), = lb.inject("p0", [raw(c2v(dport=4443))])
    assert (Ether(f)[IP].dst, Ether(f)[TCP].dport) == (BACKENDS[0], 4443) and checksums_ok(f)


def small_dp(native, rp_filter="strict", **kw):
    """A dataplane like `dp` (IPv4 only) with its own settings, backends
    resolved. `rp_filter` of both ports: "off" for clients of networks
    the dataplane has no route to."""
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, **kw)
    d.add_port("p0", mac=P0_MAC, rp_filter=rp_filter)
    d.add_port("p1", mac=P1_MAC, rp_filter=rp_filter)
    d.add_address("p0", "10.0.0.1/24")
    d.add_address("p1", "10.0.1.1/24")
    for b in BACKENDS:
        d.add_neighbour("p1", b, BMAC[b])
    return d


def test_full_table_falls_back_to_the_stateless_choice(native):
    d = small_dp(native, conn_capacity=16, half_open_budget=NO_BUDGET)
    d.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(100, 130)])
    assert len(out) == 30 and d.conn_count() == 16
    assert d.totals()["conn_table_full"] == 14 and d.totals()["conn_created"] == 16
    with pytest.raises(InvalidArgument, match="16 to 16777215"):
        native.Dataplane(conn_capacity=4)
    d.close()


def test_fullnat_without_room_drops_new_connections(native):
    # FullNAT cannot fall back to a stateless choice: replies need the entry.
    d = small_dp(native, conn_capacity=16, half_open_budget=NO_BUDGET)
    d.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=[BACKENDS[0]], syn_proxy="off"))
    assert len(d.inject("p0", [raw(c2v(sport=p)) for p in range(20)])) == 16
    assert {k: v for k, v in d.drops().items() if v} == {"fullnat_no_port": 4}
    d.close()


def test_icmp_echo_to_a_service_vip_is_answered(lb):
    lb.add_service(service(VIP, 80, backends=BACKENDS))
    req = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP) / ICMP(id=1, seq=1)
    (_, f), = lb.inject("p0", [raw(req)])
    assert Ether(f)[ICMP].type == 0 and Ether(f)[IP].src == VIP


def test_bad_l4_input_is_dropped_and_counted(lb):
    lb.add_service(service(VIP, 80, backends=BACKENDS))
    lb.add_service(service(VIP, 81))
    frames = [raw(c2v(flags="A", dport=22)),            # not a SYN, to no service (issue 28.3)
              raw(c2v(flags="A", dport=81)),            # not a SYN, to a service without backends
              raw(c2v(flags="SF")),                      # SYN+FIN
              raw(c2v(dport=22)),                        # no service on that port
              raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP, proto=6)
                  / Raw(b"x" * 10)),                     # TCP header cut short
              raw(c2v(dport=81))]                        # a service without backends
    assert lb.inject("p0", frames) == []
    assert drops_of(lb) == {"tcp_bad_flags": 1, "no_service": 2, "l4_truncated": 1,
                            "service_no_backend": 2}


def test_tcp_reset_policy_answers_what_no_service_takes(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, tcp_reset=True)
    d.add_port("p0", mac=P0_MAC)
    d.add_address("p0", "10.0.0.1/24")
    d.add_service(service(VIP, 80))
    syn = c2v(dport=22, sport=5000)                       # no service on 22
    (port, f), = d.inject("p0", [raw(syn)])
    rst = Ether(f)
    assert port == 0 and (rst[IP].src, rst[IP].dst, rst[TCP].sport, rst[TCP].dport) == \
        (VIP, CLIENT, 22, 5000)
    assert rst[TCP].flags == "RA" and rst[TCP].ack == 1001 and checksums_ok(f)
    stray = c2v(dport=80, flags="A", sport=5001, ack=777)  # no connection, no backend
    (_, f), = d.inject("p0", [raw(stray)])
    assert Ether(f)[TCP].flags == "R" and Ether(f)[TCP].seq == 777 and checksums_ok(f)
    assert d.totals()["tcp_resets_sent"] == 2
    assert {k: v for k, v in d.drops().items() if v} == {"no_service": 1, "service_no_backend": 1}
    d.close()


def test_service_api_errors(lb):
    lb.add_service(service(VIP, 80))
    assert lb.lookup(VIP).kind == "service"
    with pytest.raises(AlreadyExists, match="service 10.0.0.100:80/tcp already exists"):
        lb.add_service(service(VIP, 80))
    with pytest.raises(InvalidArgument, match="tcp, udp"):
        lb.add_service(service(VIP, 80, proto="sctp"))
    with pytest.raises(InvalidArgument, match="method"):
        lb.add_service(service(VIP, 90, method="fullnat2"))
    with pytest.raises(InvalidArgument, match="scheduler"):
        lb.add_service(service(VIP, 90, scheduler="lc"))
    with pytest.raises(AlreadyExists, match="already routed"):
        lb.add_service(service("10.0.0.1", 80))                   # a port address
    with pytest.raises(NotFound, match="no service"):
        lb.set_service_backends(VIP, 8080, BACKENDS)
    with pytest.raises(InvalidArgument, match="address family"):
        lb.set_service_backends(VIP, 80, ["2001:db8::5"])
    with pytest.raises(InvalidArgument, match="cannot translate"):
        lb.add_service(service(VIP, 443, method="dr", backends=[(BACKENDS[0], 8443)]))
    # A refused service leaves nothing behind (issue 28.2).
    assert [(s.vip, s.port, s.proto) for s in lb.services()] == [(VIP, 80, "tcp")]
    lb.del_service(VIP, 80)
    assert lb.services() == [] and lb.lookup(VIP).prefix != f"{VIP}/32"


def test_ipv6_service_nat(dp):
    dp.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    dp.add_service(service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)]))
    pkt = (Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::100")
           / TCP(sport=5555, dport=80, flags="S"))
    (_, f), = dp.inject("p0", [raw(pkt)])
    out = Ether(f)[IPv6]
    assert (out.dst, out[TCP].dport, out.hlim) == ("2001:db8:1::20", 8080, 63)
    ck = out[TCP].chksum
    del out[TCP].chksum
    assert IPv6(raw(out))[TCP].chksum == ck


def test_ipv6_extension_headers_are_walked_to_the_transport_header(dp):
    """Hop-by-hop, destination options, a routing header with no segment
    left and a first fragment: the service is found and the packet NATed
    with its extension headers kept; what has no transport header for this
    hop (segments left) is not a service's; a later fragment waits for its
    first (tests/test_frag_fixtures.py); bad chains are dropped by reason."""
    from scapy.layers.inet6 import (IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                    IPv6ExtHdrRouting)
    dp.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    dp.add_service(service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)]))
    dp.add_service(service("2001:db8::100", 53, proto="udp", backends=[("2001:db8:1::20", 5353)]))
    ip6 = IPv6(src="2001:db8::2", dst="2001:db8::100")
    eth = Ether(src=CLIENT_MAC, dst=P0_MAC)
    chains = [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt(),
              IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[], segleft=0) / IPv6ExtHdrDestOpt(),
              IPv6ExtHdrFragment(offset=0, m=0, id=7)]
    for n, chain in enumerate(chains):
        pkt = eth / ip6 / chain / TCP(sport=6000 + n, dport=80, flags="S")
        (_, f), = dp.inject("p0", [raw(pkt)])
        out = Ether(f)[IPv6]
        assert (out.dst, out[TCP].dport, out[TCP].sport) == ("2001:db8:1::20", 8080, 6000 + n)
        n_ext = len(raw(chain))
        assert raw(out.payload)[:n_ext] == raw(pkt[IPv6].payload)[:n_ext]   # kept as they were
        ck = out[TCP].chksum
        del out[TCP].chksum
        assert IPv6(raw(out))[TCP].chksum == ck
    # UDP after a hop-by-hop header, and the backend's reply back through NAT.
    (_, f), = dp.inject("p0", [raw(eth / ip6 / IPv6ExtHdrHopByHop() / UDP(sport=7000, dport=53))])
    assert Ether(f)[UDP].dport == 5353
    before = drops_of(dp)
    # No transport header for this hop: not a service's; a later fragment
    # waits for its first, which never comes.
    for chain in (IPv6ExtHdrRouting(addresses=["2001:db8::9"], segleft=1),
                  IPv6ExtHdrFragment(offset=2, m=0, id=8, nh=6)):
        assert dp.inject("p0", [raw(eth / ip6 / chain / Raw(b"\0" * 20))]) == []
    assert drops_of(dp)["no_service"] == before.get("no_service", 0) + 1
    dp.clock_advance(1100)
    dp.housekeep()
    assert drops_of(dp)["frag_timeout"] == 1
    # Bad chains: cut short, hop-by-hop not first, too many headers.
    cut = raw(eth / ip6 / IPv6ExtHdrDestOpt(len=4) / TCP(dport=80))[:14 + 40 + 16]
    cut = cut[:18] + (16).to_bytes(2, "big") + cut[20:]                 # payload length: 16
    long_chain = IPv6ExtHdrDestOpt()
    for _ in range(9):
        long_chain = long_chain / IPv6ExtHdrDestOpt()
    bad = [cut, raw(eth / ip6 / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / TCP(dport=80)),
           raw(eth / ip6 / long_chain / TCP(dport=80))]
    assert dp.inject("p0", bad) == []
    d = drops_of(dp)
    assert (d["ipv6_ext_truncated"], d["ipv6_ext_invalid"]) == (1, 2)


def test_nat_tcp_state_machine_sees_both_directions(lb):
    lb.add_neighbour("p0", CLIENT, CLIENT_MAC)
    lb.add_service(service(VIP, 80, backends=[(BACKENDS[0], 8080)]))

    def state():
        (c,) = lb.connections()
        return c.state

    def from_backend(flags):
        lb.inject("p1", [raw(Ether(src=BMAC[BACKENDS[0]], dst=P1_MAC)
                             / IP(src=BACKENDS[0], dst=CLIENT)
                             / TCP(sport=8080, dport=40000, flags=flags))])
    lb.inject("p0", [raw(c2v())])
    assert state() == "syn_sent"
    from_backend("SA")
    assert state() == "syn_recv"
    lb.inject("p0", [raw(c2v(flags="A"))])
    assert state() == "established"
    from_backend("FA")                                  # the backend closes first
    assert state() == "close_wait"
    lb.inject("p0", [raw(c2v(flags="FA"))])
    assert state() == "time_wait"


def backend_of(d, sport, flags="S", **kw):
    out = d.inject("p0", [raw(c2v(sport=sport, flags=flags, **kw))])
    return Ether(out[0][1])[IP].dst if out else None


def test_backend_states_drain_and_down(lb):
    lb.add_service(service(VIP, 80, backends=[(b, 80) for b in BACKENDS]))
    first = {p: backend_of(lb, p) for p in range(100, 400)}
    victim = BACKENDS[0]
    mine = [p for p, b in first.items() if b == victim]
    assert mine
    for state in ("drain", "down"):
        lb.set_backend(VIP, 80, victim, 80, state=state)
        assert lb.service(VIP, 80).backends[0].state == state
        # Open connections finish (the service does not reset them) ...
        assert {backend_of(lb, p, "A") for p in mine} == {victim}
        # ... and none is new.
        assert victim not in {backend_of(lb, p) for p in range(1000, 1100)}
    lb.set_backend(VIP, 80, victim, 80, state="up")
    assert victim in {backend_of(lb, p) for p in range(2000, 2100)}
    with pytest.raises(InvalidArgument, match="up, drain, down"):
        lb.set_backend(VIP, 80, victim, 80, state="sleeping")
    with pytest.raises(NotFound, match="no backend 10.0.1.99:80"):
        lb.set_backend(VIP, 80, "10.0.1.99", 80, weight=3)


def test_down_backend_connections_are_reset_when_the_service_says_so(lb):
    lb.add_service(service(VIP, 80, backends=BACKENDS, down_reset=True))
    lb.add_service(service(VIP, 53, proto="udp", backends=BACKENDS, down_reset=True))
    assert lb.service(VIP, 80).down_reset
    tcp = {p: backend_of(lb, p) for p in range(100, 200)}
    udp = {p: backend_of(lb, p, proto=UDP, dport=53) for p in range(100, 200)}
    victim = BACKENDS[2]
    for port in (80, 53):
        lb.set_backend(VIP, port, victim, 0, proto="tcp" if port == 80 else "udp", state="down")
    mine = [p for p, b in tcp.items() if b == victim]
    # TCP: the client gets a RST, the connection is gone.
    out = lb.inject("p0", [raw(c2v(sport=p, flags="A", ack=55)) for p in mine])
    assert all(port == 0 and Ether(f)[TCP].flags == "R" and Ether(f)[IP].src == VIP and
               checksums_ok(f) for port, f in out) and len(out) == len(mine)
    assert victim not in {c.backend for c in lb.connections() if c.proto == "tcp"}
    # The others are untouched.
    assert all(backend_of(lb, p, "A") == b for p, b in tcp.items() if b != victim)
    # UDP: the flow starts again on a live backend.
    moved = {p: backend_of(lb, p, proto=UDP, dport=53) for p, b in udp.items() if b == victim}
    assert moved and victim not in moved.values()
    assert lb.totals()["conn_reset_down"] == len(mine) + len(moved)
    assert drops_of(lb) == {"backend_down": len(mine)}


def test_weighted_least_connections(lb):
    lb.add_service(service(VIP, 80, method="dr", scheduler="wlc", backends=[(BACKENDS[0], 0, 1), (BACKENDS[1], 0, 1), (BACKENDS[2], 0, 2)]))
    mac_of = {v: k for k, v in BMAC.items()}

    def open_(ports):
        return [mac_of[Ether(f).dst] for _, f in lb.inject("p0", [raw(c2v(sport=p)) for p in ports])]
    first = open_(range(100, 140))
    assert [first.count(b) for b in BACKENDS] == [10, 10, 20]
    # Connections of the first backend end: the next ones go there until the
    # load per weight is even again.
    ended = [p for p, b in zip(range(100, 140), first) if b == BACKENDS[0]]
    lb.inject("p0", [raw(c2v(sport=p, flags="R")) for p in ended])
    lb.clock_advance(11_000)                            # past the close timeout
    lb.housekeep()
    assert set(open_(range(200, 210))) == {BACKENDS[0]}
    # A new backend set keeps the counts (carried over, not rescanned).
    lb.set_service_backends(VIP, 80, [(BACKENDS[0], 0, 1), (BACKENDS[1], 0, 1),
                                      (BACKENDS[2], 0, 2), ("10.0.1.23", 0, 1)])
    lb.add_neighbour("p1", "10.0.1.23", "02:00:00:00:0b:03")
    mac_of["02:00:00:00:0b:03"] = "10.0.1.23"
    assert set(open_(range(300, 310))) == {"10.0.1.23"}


def test_backend_counts_are_kept_by_the_workers(lb):
    """Active (established, UDP) and inactive (other TCP states) per backend
    follow every open, move, end and backend-set change: always what a scan
    of the table finds, without one."""
    lb.add_service(service(VIP, 80, method="nat", scheduler="wrr", backends=[(b, 8080) for b in BACKENDS]))

    def scan():
        out = {b: [0, 0] for b in BACKENDS + ["10.0.1.23"]}
        for c in lb.connections():
            out[c.backend][c.state not in ("established", "udp")] += 1
        return out

    def kept():
        svc = lb.service(VIP, 80)
        got = {b: [0, 0] for b in BACKENDS + ["10.0.1.23"]}
        for b, st in zip(svc.backends, lb.service_stats(VIP, 80)["backends"]):
            got[b.ip] = [st["active"], st["inactive"]]
        return got

    def check():
        want = scan()
        have = kept()
        live = {b.ip for b in lb.service(VIP, 80).backends}
        assert {b: v for b, v in have.items() if b in live} == \
            {b: v for b, v in want.items() if b in live}
        total = lb.service_stats(VIP, 80)
        assert (total["active"], total["inactive"]) == \
            (sum(have[b][0] for b in live), sum(have[b][1] for b in live))
    lb.inject("p0", [raw(c2v(sport=p)) for p in range(100, 130)])          # SYN: inactive
    check()
    lb.inject("p0", [raw(c2v(sport=p, flags="A")) for p in range(100, 120)])   # established
    check()
    lb.inject("p0", [raw(c2v(sport=p, flags="FA")) for p in range(100, 105)])  # fin_wait
    lb.inject("p0", [raw(c2v(sport=p, flags="R")) for p in range(120, 125)])   # close
    check()
    # A new backend set: one leaves, one joins, the order changes.
    lb.add_neighbour("p1", "10.0.1.23", "02:00:00:00:0b:03")
    lb.set_service_backends(VIP, 80, [("10.0.1.23", 8080), (BACKENDS[2], 8080),
                                      (BACKENDS[0], 8080)])
    check()
    lb.inject("p0", [raw(c2v(sport=p)) for p in range(200, 230)])
    lb.inject("p0", [raw(c2v(sport=p, flags="A")) for p in list(range(200, 215))
                     + list(range(105, 110))])
    check()
    lb.clock_advance(15_000)                # close (10 s) and syn... ends
    lb.housekeep()
    check()
    lb.clock_advance(1_000_000)             # everything ends
    lb.housekeep()
    check()
    assert lb.connections() == [] and kept() == {b: [0, 0] for b in kept()}


def test_thousands_of_connections_each_keep_their_backend(native):
    d = small_dp(native, conn_capacity=4096, half_open_budget=NO_BUDGET)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    d.add_service(service(VIP, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS]))
    clients = [(f"10.0.0.{2 + i % 90}", 1024 + i) for i in range(4000)]
    for ip, _ in clients[:90]:
        d.add_neighbour("p0", ip, CLIENT_MAC)
    first = {}
    for i in range(0, 4000, 500):
        batch = clients[i:i + 500]
        for (ip, p), (_, f) in zip(batch, d.inject("p0", [raw(c2v(proto=UDP, src=ip, sport=p, dport=53))
                                                           for ip, p in batch])):
            first[ip, p] = Ether(f)[IP].dst
    assert d.conn_count() == 4000 and d.totals()["conn_table_full"] == 0
    # Every one is found again, from both sides.
    for i in range(0, 4000, 500):
        batch = clients[i:i + 500]
        again = d.inject("p0", [raw(c2v(proto=UDP, src=ip, sport=p, dport=53)) for ip, p in batch])
        assert [Ether(f)[IP].dst for _, f in again] == [first[k] for k in batch]
        replies = d.inject("p1", [raw(Ether(src=BMAC[first[ip, p]], dst=P1_MAC)
                                      / IP(src=first[ip, p], dst=ip) / UDP(sport=5353, dport=p))
                                  for ip, p in batch])
        assert [(Ether(f)[IP].src, Ether(f)[IP].dst, Ether(f)[UDP].dport) for _, f in replies] == \
            [(VIP, ip, p) for ip, p in batch]
    assert d.conn_count() == 4000 and d.totals()["conn_created"] == 4000
    d.close()


def test_ipv6_connections_have_a_quarter_of_the_table(native):
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, conn_capacity=64, half_open_budget=NO_BUDGET)
    d.add_port("p0", mac=P0_MAC)
    d.add_port("p1", mac=P1_MAC)
    d.add_address("p0", "2001:db8::1/64")
    d.add_address("p1", "2001:db8:1::1/64")
    d.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKENDS[0]])
    d.add_service(service("2001:db8::100", 80, method="dr", backends=["2001:db8:1::20"]))
    syns = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::100")
                / TCP(sport=p, dport=80, flags="S")) for p in range(20)]
    assert len(d.inject("p0", syns)) == 20              # beyond 16: the stateless choice
    assert d.conn_count() == 16 and d.totals()["conn_table_full"] == 4
    d.close()


def test_trace_takes_the_next_hop_the_workers_take(lb):
    """ECMP towards backends behind two gateways: for NAT, FullNAT, tunnel
    and plain routing, what Trace says (one choice, in C) is the gateway the
    packet then leaves through, before and after the connection exists."""
    from pylb.manager import Manager, direct_submitter
    gateway_of = {BMAC[b]: b for b in BACKENDS[:2]}
    via = [(BACKENDS[0], "p1"), (BACKENDS[1], "p1")]
    lb.add_route("192.0.2.0/24", via)
    lb.add_route("198.51.100.0/24", via)
    far = [("192.0.2.10", 8080), ("192.0.2.11", 8080)]
    lb.add_service(service(VIP, 80, backends=far))
    lb.add_service(service(VIP, 81, method="tunnel", backends=[(ip, 0) for ip, _ in far]))
    lb.add_service(service(VIP, 82, method="fullnat", local_addresses=["10.0.1.1"], backends=far))
    m = Manager(direct_submitter(lb))
    taken = set()
    for i in range(40):
        src = f"10.0.0.{10 + i}"
        for dport, dst in ((80, VIP), (81, VIP), (82, VIP), (9, "198.51.100.7")):
            before = m.trace(src, dst, "tcp", 5000 + i, dport)["next_hop"]
            frame = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst, ttl=64) / \
                TCP(sport=5000 + i, dport=dport, flags="S")
            (port, out), = lb.inject("p0", [raw(frame)])
            after = m.trace(src, dst, "tcp", 5000 + i, dport, tcp_flags=0x10)["next_hop"]
            assert port == 1 and before == after == (gateway_of[Ether(out).dst], "p1"), \
                (dport, src, before, after, Ether(out).dst)
            taken.add((dport, before[0]))
    # NAT, tunnel and routed flows spread over both next hops (FullNAT's
    # hash is its local address and the backend: two backends, few choices).
    assert all({g for d, g in taken if d == k} == set(BACKENDS[:2]) for k in (80, 81, 9)), taken
