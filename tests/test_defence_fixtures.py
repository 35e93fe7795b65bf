"""Packet fixtures for the defences against attack (issue 16): the keyed
flow hash, SYN cookies and the proxied handshake."""

from __future__ import annotations

import ipaddress
import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import CapacityExhausted, InvalidArgument
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP, c2v, small_dp

SEED_A = b"fleet secret number one, 32 byte"
SEED_B = b"fleet secret number two, 32 byte"


def choices(d, clients=64):
    """The backend each of `clients` clients' first SYN goes to."""
    frames = [raw(c2v(src=f"10.0.0.{10 + i}", sport=40000 + i)) for i in range(clients)]
    return [Ether(f)[IP].dst for _, f in d.inject("p0", frames)]


def test_the_flow_hash_is_keyed_by_the_seed(native):
    """The same seed chooses alike (a fleet agrees); another seed chooses
    otherwise (nobody without it can predict where a flow goes)."""
    picks, prints = [], []
    for seed in (SEED_A, SEED_A, SEED_B, None):
        d = small_dp(native, hash_seed=seed)
        d.add_service(service(VIP, 80, backends=BACKENDS))
        picks.append(choices(d))
        prints.append(d.hash_fingerprint)
        if seed is not None:
            assert d.hash_fingerprint == native.key_fingerprint(native.hash_key(seed))
        d.close()
    assert picks[0] == picks[1] and prints[0] == prints[1]
    assert picks[2] != picks[0] and prints[2] != prints[0]
    assert set(picks[0]) == set(BACKENDS)
    # No seed: a random key, different every time.
    assert prints[3] not in prints[:3]
    with pytest.raises(InvalidArgument, match="at least 16 bytes"):
        native.hash_key(b"short")


def test_collisions_under_one_key_are_not_collisions_under_another(native):
    """A CRC with a secret seed is linear: inputs that collide under one seed
    collide under all, so an attacker could aim at a bucket offline. The
    keyed hash is strongly universal: pairs found colliding (in the 20 bits
    that pick among a million buckets) under key A are not under key B."""
    a, b = (small_dp(native, hash_seed=s) for s in (SEED_A, SEED_B))
    rng = random.Random(16)
    seen: dict[int, str] = {}
    pairs = []
    for _ in range(12000):
        src = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        h = a.flow_hash(src, VIP) & 0xFFFFF
        if h in seen:
            pairs.append((seen[h], src))
        seen[h] = src
    assert len(pairs) >= 20
    still = sum((b.flow_hash(x, VIP) & 0xFFFFF) == (b.flow_hash(y, VIP) & 0xFFFFF)
                for x, y in pairs)
    assert still <= 1, f"{still} of {len(pairs)} collisions under key A collide under key B"
    a.close()
    b.close()


# SYN cookies and the proxied handshake (synproxy.c).

BACKEND = BACKENDS[0]
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 0)), ("NOP", None), ("WScale", 7)]
EXERCISED = {"syn_cookie_invalid", "syn_cookie_expired", "syn_proxy_unsupported",
             "syn_proxy_no_entry", "syn_proxy_hold_full", "syn_proxy_unexpected", "acl_denied",
             "limit_client_conns", "limit_service_conns", "limit_service_rate",
             "limit_source_rate", "limit_backend_conns"}


def proxy_dp(native, **kw):
    """small_dp with a fixed key and the client's MAC known (for replies)."""
    d = small_dp(native, hash_seed=SEED_A, **kw)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    return d


@pytest.fixture
def proxy(native):
    """A NAT service on VIP:80 to BACKEND:8080 that always answers SYNs
    with cookies; no mbuf may be left held when the test ends."""
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], syn_proxy="always"))
    full = d.mbufs_available()
    yield d
    assert d.mbufs_available() == full, "mbufs leaked"
    d.close()


def drops(d):
    return {k: v for k, v in d.drops().items() if v}


def b2c(seq, ack, flags="A", payload=b"", sport=8080, dport=40000, dst=CLIENT, **kw):
    """The backend's packet to the client (NAT: to the client's address)."""
    return Ether(src=BMAC[BACKEND], dst=P1_MAC) / IP(src=BACKEND, dst=dst, ttl=64) / \
        TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **kw) / Raw(payload)


def one(d, port, frame):
    out = d.inject(port, [raw(frame)])
    assert len(out) == 1, out
    return out[0][0], Ether(out[0][1])


def checksums_ok(pkt) -> bool:
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    l4 = pkt[TCP]
    got = (getattr(ip, "chksum", None), l4.chksum)
    again = (IP if IP in pkt else IPv6)(raw(ip.copy()))
    for layer in (again, again[TCP]):
        if hasattr(layer, "chksum"):
            del layer.chksum
    again = (IP if IP in pkt else IPv6)(raw(again))
    return got == (getattr(again, "chksum", None), again[TCP].chksum)


def cookie_for(d, sport=40000, seq=1000, options=SYN_OPTS):
    port, sa = one(d, "p0", c2v(sport=sport, options=options))
    assert port == 0 and sa[TCP].flags == "SA"
    return sa[TCP].seq


def test_a_syn_is_answered_with_a_cookie_and_nothing_is_stored(proxy):
    port, sa = one(proxy, "p0", c2v(options=SYN_OPTS, window=29200))
    assert port == 0 and (sa.src, sa.dst) == (P0_MAC, CLIENT_MAC)
    assert (sa[IP].src, sa[IP].dst, sa[IP].ttl) == (VIP, CLIENT, 64)
    t = sa[TCP]
    assert (t.sport, t.dport, t.flags, t.ack, t.window) == (80, 40000, "SA", 1001, 8192)
    # MSS (one of four), SACK permitted, window scale: kept; timestamps: not.
    assert t.options == [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""),
                         ("NOP", None), ("WScale", 7)]
    assert checksums_ok(sa) and len(raw(sa)) == 14 + 20 + 32
    assert proxy.conn_count() == 0 and proxy.totals()["syn_cookies_sent"] == 1
    # The same SYN gets the same cookie; another ISN or port another one.
    assert cookie_for(proxy) == t.seq
    assert cookie_for(proxy, sport=40001) != t.seq
    # No options: MSS 536, no SACK, no scaling (NOPs in their place).
    _, sa = one(proxy, "p0", c2v(sport=40002))
    assert sa[TCP].options == [("MSS", 536)] + [("NOP", None)] * 8
    # An odd MSS rounds down to one the cookie can carry.
    _, sa = one(proxy, "p0", c2v(sport=40003, options=[("MSS", 1400)]))
    assert sa[TCP].options[0] == ("MSS", 1220)


def open_proxied(d, sport=40000, ws=7, wscale_backend=5, win=502):
    """Client SYN, cookie SYN-ACK, client ACK (-> SYN to the backend),
    backend SYN-ACK (-> last ACK to the backend). Returns (cookie, the
    backend's ISN, the SYN the backend got)."""
    opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", ws)] if ws is not None else [("MSS", 1460)]
    cookie = cookie_for(d, sport=sport, options=opts)
    port, syn = one(d, "p0", c2v(sport=sport, flags="A", seq=1001, ack=cookie + 1, window=win))
    assert port == 1 and syn[TCP].flags == "S"
    b_isn = 5000
    bopts = [("MSS", 1400), ("SAckOK", b"")] + ([("WScale", wscale_backend)]
                                                if wscale_backend is not None else [])
    port, ack = one(d, "p1", b2c(b_isn, syn[TCP].seq + 1, "SA", dport=sport, options=bopts))
    assert port == 1 and ack[TCP].flags == "A"
    assert (ack[IP].src, ack[IP].dst, ack[TCP].sport, ack[TCP].dport) == \
        (CLIENT, BACKEND, sport, 8080)
    assert (ack[TCP].seq, ack[TCP].ack) == (1001, b_isn + 1) and checksums_ok(ack)
    return cookie, b_isn, syn


def test_a_valid_ack_opens_the_connection_with_the_clients_options(proxy):
    cookie = cookie_for(proxy)
    port, syn = one(proxy, "p0", c2v(flags="A", seq=1001, ack=cookie + 1, window=502))
    assert port == 1 and syn.dst == BMAC[BACKEND]
    assert (syn[IP].src, syn[IP].dst, syn[TCP].sport, syn[TCP].dport) == \
        (CLIENT, BACKEND, 40000, 8080)
    t = syn[TCP]
    assert (t.flags, t.seq, t.ack) == ("S", 1000, 0)
    # The client's own options as the cookie kept them; its window unscaled.
    assert t.options == [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""),
                         ("NOP", None), ("WScale", 7)]
    assert t.window == 502 << 7 and checksums_ok(syn)
    assert proxy.conn_count() == 1
    assert proxy.totals()["syn_proxy_opened"] == 1
    # The backend's SYN-ACK: the handshake's last ACK goes back to it.
    port, ack = one(proxy, "p1", b2c(5000, 1001, "SA", options=[("MSS", 1400), ("WScale", 5)]))
    assert port == 1 and (ack[TCP].flags, ack[TCP].seq, ack[TCP].ack) == ("A", 1001, 5001)
    assert ack[TCP].window == 65535 >> 7 and checksums_ok(ack)
    [c] = proxy.connections()
    assert c.state == "established" and proxy.totals()["syn_proxy_established"] == 1


def test_sequence_numbers_sack_and_windows_are_translated_for_the_flows_life(proxy):
    cookie, b_isn, _ = open_proxied(proxy, ws=7, wscale_backend=5)
    delta = (b_isn - cookie) % 2**32
    # Client -> backend: acknowledgement and SACK edges in the backend's numbers.
    sack = [("NOP", None), ("NOP", None), ("SAck", (cookie + 11, cookie + 21))]
    port, f = one(proxy, "p0", c2v(flags="PA", seq=1001, ack=cookie + 1, payload=b"GET /",
                                   options=sack))
    t = f[TCP]
    assert port == 1 and (t.seq, t.ack) == (1001, b_isn + 1)
    assert dict(t.options)["SAck"] == ((b_isn + 11) % 2**32, (b_isn + 21) % 2**32)
    assert checksums_ok(f) and t.load == b"GET /"
    # Backend -> client: its sequence numbers in the cookie's terms, its
    # window (scale 5) in the scale the client was given (7).
    port, f = one(proxy, "p1", b2c(b_isn + 1, 1006, "PA", b"200 OK", window=1000))
    t = f[TCP]
    assert port == 0 and (f[IP].src, t.sport, f[IP].dst) == (VIP, 80, CLIENT)
    assert (t.seq, t.ack) == ((b_isn + 1 - delta) % 2**32, 1006) and t.seq == cookie + 1
    assert t.window == (1000 << 5) >> 7 and checksums_ok(f) and t.load == b"200 OK"
    # Its SACK blocks are about the client's data: left as they are.
    port, f = one(proxy, "p1", b2c(b_isn + 7, 1006, "A", options=[
        ("NOP", None), ("NOP", None), ("SAck", (1500, 1600))]))
    assert dict(f[TCP].options)["SAck"] == (1500, 1600) and checksums_ok(f)


def test_no_window_scaling_when_the_client_offers_none(proxy):
    cookie, b_isn, syn = open_proxied(proxy, ws=None, wscale_backend=None, win=5000)
    assert "WScale" not in dict(syn[TCP].options) and syn[TCP].window == 5000
    _, f = one(proxy, "p1", b2c(b_isn + 1, 1001, "A", window=4321))
    assert f[TCP].window == 4321 and f[TCP].seq == cookie + 1


def test_client_packets_wait_for_the_backend_then_follow_the_ack(proxy):
    cookie = cookie_for(proxy)
    one(proxy, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    data = [raw(c2v(flags="PA", seq=1001 + 3 * i, ack=cookie + 1, payload=b"abc"))
            for i in range(3)]
    assert proxy.inject("p0", data) == [] and proxy.totals()["syn_proxy_held"] == 3
    out = proxy.inject("p1", [raw(b2c(7000, 1001, "SA", options=[("MSS", 1460)]))])
    got = [Ether(f)[TCP] for _, f in out]
    assert [(t.flags, t.seq, t.ack) for t in got] == \
        [("A", 1001, 7001)] + [("PA", 1001 + 3 * i, 7001) for i in range(3)]


def test_a_backend_that_does_not_answer_is_asked_again(native):
    """The SYN to the backend (or its answer) lost: the SYN is sent again
    after 1 s unanswered, then 2 s and 4 s (the client's retransmissions
    held meanwhile); once the backend answers, the held packets follow the
    handshake's ACK and the SYN's copy is freed. Unanswered after its last
    try, the connection ends, and the client's next packet (carrying the
    cookie again) opens it anew."""
    proxy = proxy_dp(native, clock_stopped=True)
    proxy.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], syn_proxy="always"))
    full = proxy.mbufs_available()

    def aged(ms):
        proxy.clock_advance(ms)
        proxy.housekeep()
        return [(port, Ether(f)) for port, f in proxy.collect()]

    def lost_syn(sport):
        cookie = cookie_for(proxy, sport=sport)
        _, syn = one(proxy, "p0", c2v(sport=sport, flags="A", seq=1001, ack=cookie + 1))
        request = raw(c2v(sport=sport, flags="PA", seq=1001, ack=cookie + 1, payload=b"GET /"))
        assert proxy.inject("p0", [request]) == []
        return syn, request

    syn, request = lost_syn(40000)
    for wait in (1000, 2000):
        assert aged(wait - 1) == []
        [(port, again)] = aged(1)
        assert port == 1 and raw(again) == raw(syn) and checksums_ok(again)
    out = proxy.inject("p1", [raw(b2c(7000, 1001, "SA", options=[("MSS", 1460)]))])
    assert [(Ether(f)[TCP].flags, Ether(f)[TCP].ack, bytes(Ether(f)[TCP].payload))
            for _, f in out] == [("A", 7001, b""), ("PA", 7001, b"GET /")]
    assert proxy.connections()[0].state == "established" and aged(10_000) == []
    assert proxy.totals()["syn_proxy_resent"] == 2 and proxy.mbufs_available() == full
    # Three times unanswered (1 + 2 + 4 s), then 8 s more: it ends.
    syn, request = lost_syn(40001)
    assert [raw(f) for wait in (1000, 2000, 4000) for _, f in aged(wait)] == [raw(syn)] * 3
    assert aged(8000) == [] and proxy.totals()["syn_proxy_unanswered"] == 1
    assert proxy.conn_count() == 1 and proxy.mbufs_available() == full
    port, again = one(proxy, "p0", Ether(request))
    assert port == 1 and raw(again) == raw(syn) and proxy.totals()["syn_proxy_opened"] == 3
    out = proxy.inject("p1", [raw(b2c(7000, 1001, "SA", dport=40001))])
    assert [Ether(f)[TCP].flags for _, f in out] == ["A"] and not drops(proxy)
    assert proxy.mbufs_available() == full
    proxy.close()


def test_forged_expired_and_replayed_acks(proxy):
    cookie = cookie_for(proxy)
    forged = [c2v(flags="A", seq=1001, ack=cookie + 2),         # another cookie
              c2v(flags="A", seq=2001, ack=cookie + 1),         # another ISN
              c2v(flags="A", seq=1001, ack=cookie + 1, sport=40009)]   # another port
    assert proxy.inject("p0", [raw(f) for f in forged]) == []
    assert drops(proxy) == {"syn_cookie_invalid": 3} and proxy.conn_count() == 0
    # A cookie is good in its period (64 s) and the next; then it expired.
    proxy.clock_advance(64_000)
    port, _ = one(proxy, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    assert port == 1
    # Replayed while the backend answers: held, not a second SYN; after:
    # a duplicate ACK of the connection.
    assert proxy.inject("p0", [raw(c2v(flags="A", seq=1001, ack=cookie + 1))]) == []
    out = proxy.inject("p1", [raw(b2c(5000, 1001, "SA"))])
    assert [Ether(f)[TCP].flags for _, f in out] == ["A", "A"]
    port, f = one(proxy, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    assert port == 1 and f[TCP].flags == "A" and f[TCP].ack == 5001
    assert proxy.conn_count() == 1 and proxy.totals()["syn_proxy_opened"] == 1
    late = cookie_for(proxy, sport=40001)
    proxy.clock_advance(3 * 64_000)
    assert proxy.inject("p0", [raw(c2v(sport=40001, flags="A", seq=1001, ack=late + 1))]) == []
    assert drops(proxy)["syn_cookie_expired"] == 1


def test_a_backend_that_refuses_resets_the_client(proxy):
    cookie = cookie_for(proxy)
    one(proxy, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    assert proxy.inject("p0", [raw(c2v(flags="PA", seq=1001, ack=cookie + 1, payload=b"x"))]) == []
    port, rst = one(proxy, "p1", b2c(0, 1001, "RA"))
    assert port == 0 and (rst[IP].src, rst[TCP].sport) == (VIP, 80)
    assert (rst[TCP].flags, rst[TCP].seq) == ("R", cookie + 1) and checksums_ok(rst)
    assert proxy.totals()["syn_proxy_refused"] == 1      # the held packet is gone too
    [c] = proxy.connections()
    assert c.state == "close"


def test_proxy_drops_what_it_cannot_take(native):
    d = proxy_dp(native, conn_capacity=16)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], syn_proxy="always"))
    # A SYN with IP options: not answered (a plain header only).
    opt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=CLIENT, dst=VIP, options=b"\x01" * 4) / \
        TCP(sport=1, dport=80, flags="S")
    assert d.inject("p0", [raw(opt)]) == []
    # A full table (15 connections established, one opening: under the
    # half-open budget of 2, nothing to evict): a valid ACK has no entry.
    cookies = [cookie_for(d, sport=p) for p in range(100, 117)]
    for p, c in zip(range(100, 116), cookies):
        one(d, "p0", c2v(sport=p, flags="A", seq=1001, ack=c + 1))
        if p < 115:
            one(d, "p1", b2c(5000, 1001, "SA", dport=p))
    assert d.inject("p0", [raw(c2v(sport=116, flags="A", seq=1001, ack=cookies[16] + 1))]) == []
    # Held packets: at most 64 per lcore, the opening SYN's copy among them.
    data = [raw(c2v(sport=115, flags="PA", seq=1001, ack=cookies[15] + 1, payload=b"x"))] * 64
    assert d.inject("p0", data) == []
    # While opening, the backend's packet that is not a SYN-ACK or RST.
    assert d.inject("p1", [raw(b2c(5000, 1001, "A", dport=115))]) == []
    assert drops(d) == {"syn_proxy_unsupported": 1, "syn_proxy_no_entry": 1,
                        "syn_proxy_hold_full": 1, "syn_proxy_unexpected": 1}
    d.close()              # the held packets are freed with their table


def test_fullnat_is_proxied_from_its_local_address(native):
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=[(BACKEND, 8080)], syn_proxy="always"))
    cookie = cookie_for(d)
    port, syn = one(d, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    assert port == 1 and (syn[IP].src, syn[IP].dst, syn[TCP].flags) == ("10.0.1.1", BACKEND, "S")
    lport = syn[TCP].sport
    port, ack = one(d, "p1", b2c(9000, 1001, "SA", dport=lport, dst="10.0.1.1"))
    assert (ack[IP].src, ack[TCP].sport, ack[TCP].flags, ack[TCP].ack) == \
        ("10.0.1.1", lport, "A", 9001)
    port, f = one(d, "p1", b2c(9001, 1001, "PA", b"hi", dport=lport, dst="10.0.1.1"))
    assert port == 0 and (f[IP].src, f[IP].dst, f[TCP].dport) == (VIP, CLIENT, 40000)
    assert f[TCP].seq == cookie + 1 and checksums_ok(f)
    d.close()


def test_ipv6_syns_get_cookies_too(native):
    d = small_dp(native, hash_seed=SEED_A)
    d.add_address("p0", "2001:db8::1/64")
    d.add_address("p1", "2001:db8:1::1/64")
    d.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKEND])
    d.add_service(service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)], syn_proxy="always"))
    syn = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8::100") / \
        TCP(sport=40000, dport=80, flags="S", seq=1000, options=[("MSS", 1440)])
    port, sa = one(d, "p0", syn)
    assert port == 0 and sa[TCP].flags == "SA" and sa[TCP].options[0] == ("MSS", 1440)
    assert sa[IPv6].dst == "2001:db8::2" and checksums_ok(sa)
    ack = syn.copy()
    ack[TCP].flags, ack[TCP].seq, ack[TCP].ack, ack[TCP].options = "A", 1001, sa[TCP].seq + 1, []
    port, bsyn = one(d, "p0", ack)
    assert port == 1 and bsyn[IPv6].dst == "2001:db8:1::20" and bsyn[TCP].flags == "S"
    assert checksums_ok(bsyn)
    d.close()


def test_auto_mode_sends_cookies_only_from_the_threshold(native):
    d = proxy_dp(native, half_open_budget=4)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]))
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(100, 110)])
    to_backend = [Ether(f)[TCP].sport for p, f in out if p == 1]
    assert to_backend == [100, 101, 102, 103]                # then cookies
    assert d.conn_count() == 4 and d.totals()["syn_cookies_sent"] == 6
    # Half-open entries that complete make room again.
    for p in range(100, 102):
        d.inject("p1", [raw(b2c(5000, 1001, "SA", dport=p))])
        d.inject("p0", [raw(c2v(sport=p, flags="A", seq=1001, ack=5001))])
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(200, 204)])
    assert sorted(p for p, _ in out) == [0, 0, 1, 1]
    # DR services cannot proxy: their SYNs always go to the backend.
    d.add_service(service(VIP, 81, method="dr", backends=[BACKEND], syn_proxy="always"))
    out = d.inject("p0", [raw(c2v(sport=p, dport=81)) for p in range(300, 310)])
    assert [p for p, _ in out] == [1] * 10
    d.close()


# The half-open budget (state exhaustion).

def test_half_open_budget_evicts_the_oldest_half_open_entry_never_an_established_one(native):
    d = proxy_dp(native, conn_capacity=64, half_open_budget=4)
    d.add_service(service(VIP, 80, method="dr", backends=[BACKEND]))
    for p in (100, 101):                          # established (DR: the client's ACK)
        d.inject("p0", [raw(c2v(sport=p)), raw(c2v(sport=p, flags="A"))])
    assert d.half_open() == 0 and d.conn_count() == 2
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(300, 310)])
    assert len(out) == 10                         # every SYN still goes to the backend
    assert d.conn_count() == 6 and d.half_open() == 4
    assert d.totals()["half_open_evicted"] == 6
    kept = sorted(c.cport for c in d.connections())
    assert kept == [100, 101, 306, 307, 308, 309]   # the oldest half-open went first
    d.close()


def test_unanswered_udp_counts_as_half_open(native):
    d = proxy_dp(native, conn_capacity=64, half_open_budget=4)
    d.add_service(service(VIP, 53, proto="udp", backends=[(BACKEND, 5353)]))
    udp = [raw(c2v(sport=p, proto=UDP, dport=53)) for p in range(100, 102)]
    d.inject("p0", udp)
    for p in (100, 101):                          # answered: no longer half-open
        d.inject("p1", [raw(Ether(src=BMAC[BACKEND], dst=P1_MAC) / IP(src=BACKEND, dst=CLIENT) /
                            UDP(sport=5353, dport=p) / Raw(b"answer"))])
    assert d.half_open() == 0
    flood = [raw(c2v(sport=p, proto=UDP, dport=53)) for p in range(2000, 2050)]
    assert len(d.inject("p0", flood)) == 50
    assert d.conn_count() == 6 and d.half_open() == 4
    assert d.totals()["half_open_evicted"] == 46
    assert {100, 101} <= {c.cport for c in d.connections()}
    d.close()


# Per client network (source prefix): its own half-open budget and rate.

def network(i: int) -> str:
    """The i-th client of 10.0.0.0/28 (one network under ipv4_prefix 28)."""
    return f"10.0.0.{2 + i % 8}"


def test_a_client_network_has_its_own_half_open_budget(native):
    d = proxy_dp(native, conn_capacity=256, half_open_budget=32,
                 per_source={"ipv4_prefix": 28, "half_open_budget": 4})
    for ip in ("10.0.0.3", "10.0.0.100"):
        d.add_neighbour("p0", ip, CLIENT_MAC)
    d.add_service(service(VIP, 80, method="dr", backends=[BACKEND]))
    d.add_service(service(VIP, 81, backends=[(BACKEND, 8080)]))          # NAT, syn_proxy auto
    # DR: a network's SYNs past its budget go stateless, still to the backend.
    out = d.inject("p0", [raw(c2v(src=network(i), sport=100 + i)) for i in range(10)])
    assert [p for p, _ in out] == [1] * 10
    assert d.half_open() == 4 and d.totals()["source_half_open_full"] == 6
    assert d.half_open(source="10.0.0.15") == 4 and d.half_open(source="10.0.0.16") == 0
    assert sorted(c.cport for c in d.connections()) == [100, 101, 102, 103]
    # Another network is not held back by it.
    d.inject("p0", [raw(c2v(src="10.0.0.200", sport=p)) for p in range(100, 104)])
    assert d.half_open() == 8 and d.totals()["source_half_open_full"] == 6
    # NAT with syn_proxy auto: a network at its budget gets a cookie, a
    # third one its backend.
    out = d.inject("p0", [raw(c2v(src="10.0.0.3", sport=200, dport=81)),
                          raw(c2v(src="10.0.0.33", sport=200, dport=81))])
    assert sorted((p, Ether(f)[TCP].flags) for p, f in out) == [(0, "SA"), (1, "S")]
    assert d.totals()["syn_cookies_sent"] == 1
    # Handshakes that complete give the network its budget back.
    d.inject("p0", [raw(c2v(src=network(i), sport=100 + i, flags="A")) for i in range(4)])
    d.inject("p0", [raw(c2v(src=network(1), sport=300))])
    assert d.totals()["source_half_open_full"] == 6 and d.conn_count() == 10
    assert d.half_open() == 6 and d.half_open(source=CLIENT) == 1
    d.close()


def test_a_client_networks_unanswered_udp_stays_within_its_budget(native):
    d = proxy_dp(native, conn_capacity=256, half_open_budget=32,
                 per_source={"half_open_budget": 4})
    d.add_service(service(VIP, 53, proto="udp", backends=[(BACKEND, 5353)]))
    out = d.inject("p0", [raw(c2v(sport=p, proto=UDP, dport=53)) for p in range(100, 120)])
    # Every datagram reaches the backend (NAT: stateless past the budget).
    assert [(p, Ether(f)[UDP].dport) for p, f in out] == [(1, 5353)] * 20
    assert d.half_open() == 4 and d.conn_count() == 4
    assert d.totals()["source_half_open_full"] == 16 and d.totals()["half_open_evicted"] == 0
    d.close()


def test_a_client_networks_new_connections_a_second(native):
    d = proxy_dp(native, per_source={"ipv4_prefix": 28, "new_per_second": 5})
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]))
    d.add_service(service(VIP, 53, proto="udp", backends=[(BACKEND, 5353)]))
    # 5 a second (a second's worth at once); the rest dropped, not reset:
    # that is where floods come from.
    out = d.inject("p0", [raw(c2v(src=network(i), sport=100 + i)) for i in range(8)])
    assert [p for p, _ in out] == [1] * 5
    assert drops(d) == {"limit_source_rate": 3}
    # Another network has its own bucket.
    out = d.inject("p0", [raw(c2v(src="10.0.0.200", sport=p)) for p in range(100, 105)])
    assert [p for p, _ in out] == [1] * 5
    # New UDP flows count too; a token every 200 ms.
    d.clock_advance(400)
    out = d.inject("p0", [raw(c2v(sport=p, proto=UDP, dport=53)) for p in range(100, 103)])
    assert [p for p, _ in out] == [1, 1]
    # Packets of open connections are never limited.
    out = d.inject("p0", [raw(c2v(src=network(0), sport=100, flags="A"))] * 10)
    assert [p for p, _ in out] == [1] * 10
    assert drops(d) == {"limit_source_rate": 4}
    d.close()


@pytest.mark.parametrize("plen4,plen6,inside,outside", [
    (24, 64, ("10.0.0.200", "2001:db8::ffff:1"), ("10.0.1.5", "2001:db8:0:1::2")),
    (20, 56, ("10.0.15.200", "2001:db8:0:ff::1"), ("10.0.16.1", "2001:db8:0:100::1")),
])
def test_a_client_network_is_its_prefix(native, plen4, plen6, inside, outside):
    """Addresses of one prefix share their network's budget, whatever the
    prefix length (bytes cut in the middle too); others do not."""
    d = small_dp(native, hash_seed=SEED_A, conn_capacity=256, half_open_budget=32,
                 per_source={"ipv4_prefix": plen4, "ipv6_prefix": plen6, "half_open_budget": 2},
                 rp_filter="off")           # clients of networks it has no route to
    d.add_address("p0", "2001:db8::1/64")
    d.add_address("p1", "2001:db8:1::1/64")
    d.add_neighbour("p1", "2001:db8:1::20", BMAC[BACKEND])
    d.add_service(service(VIP, 80, method="dr", backends=[BACKEND]))
    d.add_service(service("2001:db8::100", 80, method="dr", backends=["2001:db8:1::20"]))

    def syn(src, sport):
        ip = IPv6(src=src, dst="2001:db8::100") if ":" in src else IP(src=src, dst=VIP)
        return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / ip / TCP(sport=sport, dport=80, flags="S"))
    for first, same, other in zip(("10.0.0.2", "2001:db8::2"), inside, outside):
        d.inject("p0", [syn(first, 100), syn(first, 101)])
        assert d.half_open(source=same) == 2 and d.half_open(source=other) == 0
        full = d.totals()["source_half_open_full"]
        assert len(d.inject("p0", [syn(same, 102)])) == 1          # stateless, still sent
        assert d.totals()["source_half_open_full"] == full + 1
        d.inject("p0", [syn(other, 100)])
        assert d.half_open(source=other) == 1
    d.close()


def test_per_source_settings_are_checked(native):
    for bad, msg in (({"ipv4_prefix": 0}, "ipv4_prefix: 0 is not in 1..32"),
                     ({"ipv6_prefix": 129}, "ipv6_prefix: 129 is not in 1..128"),
                     ({"rate": 5}, "'rate' is not one of"),
                     ({"new_per_second": -1}, "new_per_second: -1")):
        with pytest.raises(InvalidArgument, match=msg):
            native.Dataplane(per_source=bad)


# Backends' upper threshold (max_connections).

def test_a_full_backend_takes_no_new_connections(native):
    d = proxy_dp(native)
    two = BACKENDS[:2]
    d.add_service(service(VIP, 80, scheduler="wrr", backends=[(b, 8080, 1, "up", 2) for b in two]))
    assert [b.max_connections for b in d.service(VIP, 80).backends] == [2, 2]
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(100, 105)])
    assert sorted(p for p, _ in out) == [0, 1, 1, 1, 1]
    assert sorted(Ether(f)[IP].dst for p, f in out if p == 1) == sorted(two * 2)
    rst = next(Ether(f) for p, f in out if p == 0)
    assert rst[TCP].flags == "RA" and rst[TCP].dport == 104
    assert drops(d) == {"limit_backend_conns": 1}
    # The consistent-hash scheduler sends what its choice cannot take to a
    # backend with room. (Other client ports: the same ones would meet the
    # first service's connections at the shared backends, nat_tuple_free.)
    d.add_service(service(VIP, 81, backends=[(two[0], 8080, 1, "up", 1), (two[1], 8080)]))
    out = d.inject("p0", [raw(c2v(sport=p, dport=81)) for p in range(300, 320)])
    to = [Ether(f)[IP].dst for p, f in out]
    assert len(to) == 20 and to.count(two[0]) == 1
    # A raised limit applies at once and keeps the open connections.
    d.set_service_backends(VIP, 80, [(b, 8080, 1, "up", 3) for b in two])
    assert d.conn_count() == 24
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(200, 203)])
    assert sorted(p for p, _ in out) == [0, 1, 1]
    # Ended connections count (as inactive, like IPVS's) until they go.
    d.inject("p0", [raw(c2v(sport=p, flags="R")) for p in range(100, 104)])
    assert [p for p, _ in d.inject("p0", [raw(c2v(sport=300))])] == [0]
    d.clock_advance(11_000)                                # past the close timeout
    d.housekeep()
    assert [p for p, _ in d.inject("p0", [raw(c2v(sport=301))])] == [1]
    d.close()


# ACLs.

def test_acls_refuse_new_connections_by_list_and_action(native):
    d = proxy_dp(native)
    d.add_neighbour("p0", "10.0.0.200", CLIENT_MAC)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]), id=0)
    d.add_service(service(VIP, 81, backends=[(BACKEND, 8080)]), id=1)
    d.add_service(service(VIP, 53, proto="udp", backends=[(BACKEND, 5353)]), id=2)
    d.set_acls([("deny", "drop", ["10.0.0.0/28", "2001:db8::/64"]),
                ("allow", "reset", ["10.0.0.0/25"]),
                ("deny", "unreachable", ["10.0.0.64/26"])],
               {0: [0], 1: [1, 2], 2: [0]})
    assert d.acl_check(CLIENT, 0) == 0 and d.acl_check("10.0.0.50", 0) is None
    # Service 0: the denied /28 gets nothing; others pass.
    assert d.inject("p0", [raw(c2v())]) == []
    port, _ = one(d, "p0", c2v(src="10.0.0.50"))
    assert port == 1
    # Service 1: allowed (in the /25, not in the denied /26) passes; a
    # source outside the allow list gets a RST; one in the deny list an
    # ICMP "administratively prohibited".
    port, _ = one(d, "p0", c2v(src="10.0.0.20", dport=81))
    assert port == 1
    port, rst = one(d, "p0", c2v(src="10.0.0.200", dport=81))
    assert port == 0 and rst[TCP].flags == "RA" and rst[IP].dst == "10.0.0.200"
    from scapy.layers.inet import ICMP
    port, icmp = one(d, "p0", c2v(src="10.0.0.70", dport=81))
    assert port == 0 and (icmp[ICMP].type, icmp[ICMP].code) == (3, 13)
    # UDP: the same lists; `reset` has no RST for UDP (dropped).
    assert d.inject("p0", [raw(c2v(proto=UDP, dport=53))]) == []
    assert drops(d) == {"acl_denied": 4}
    d.close()


def test_an_acl_change_keeps_established_connections(native):
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]), id=0)
    one(d, "p0", c2v())
    d.set_acls([("deny", "drop", ["10.0.0.0/24"])], {0: [0]})
    port, f = one(d, "p0", c2v(flags="PA", payload=b"still here"))   # the open connection
    assert port == 1 and f[TCP].load == b"still here"
    assert d.inject("p0", [raw(c2v(sport=40001))]) == []              # a new one: refused
    d.set_acls([], {})
    port, _ = one(d, "p0", c2v(sport=40001))
    assert port == 1
    d.close()


def test_an_acl_change_between_a_syn_and_its_cookies_ack_refuses_the_ack(native):
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], syn_proxy="always"), id=0)
    cookie = cookie_for(d)
    d.set_acls([("deny", "reset", ["10.0.0.0/24"])], {0: [0]})
    port, rst = one(d, "p0", c2v(flags="A", seq=1001, ack=cookie + 1))
    assert port == 0 and rst[TCP].flags == "R" and d.conn_count() == 0
    assert drops(d) == {"acl_denied": 1}
    d.close()


def test_nested_prefixes_of_different_lists_all_match(native):
    """A source matches every list with a prefix covering it, however the
    lists' prefixes nest (the longest match carries them all)."""
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]), id=0)
    d.add_service(service(VIP, 81, backends=[(BACKEND, 8080)]), id=1)
    d.set_acls([("deny", "drop", ["10.0.0.0/8", "2001:db8::/32"]),
                ("allow", "drop", ["10.1.0.0/16", "10.1.2.0/24", "2001:db8:1::/48"])],
               {0: [0], 1: [1]})
    assert d.acl_check("10.1.2.3", 0) == 0 and d.acl_check("10.1.2.3", 1) is None
    assert d.acl_check("10.2.0.1", 0) == 0 and d.acl_check("10.2.0.1", 1) == 1
    assert d.acl_check("11.0.0.1", 0) is None and d.acl_check("11.0.0.1", 1) == 1
    assert d.acl_check("2001:db8:1::9", 0) == 0 and d.acl_check("2001:db8:1::9", 1) is None
    assert d.acl_check("2001:db8:2::9", 1) == 1
    d.close()


def test_a_million_prefixes_and_the_limit_of_long_ones(native):
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)]), id=0)
    million = [f"{16 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(1_000_000)]
    d.set_acls([("deny", "drop", million)], {0: [0]})
    assert d.acl_check("16.0.0.1", 0) == 0 and d.acl_check("31.66.63.200", 0) == 0
    assert d.acl_check("31.66.64.1", 0) is None and d.acl_check("10.0.0.2", 0) is None
    # Prefixes longer than /24 each take a group of the FIB: at most 32,766.
    hosts = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}/32" for i in range(40_000)]
    with pytest.raises(CapacityExhausted, match="40000 IPv4 prefixes longer than /24, at most 32766"):
        d.set_acls([("deny", "drop", hosts)], {0: [0]})
    assert d.acl_check("16.0.0.1", 0) == 0           # the ACLs in force are kept
    d.close()


# Limits.

def test_a_client_limited_to_five_connections_has_its_sixth_refused(native):
    d = proxy_dp(native)
    d.add_neighbour("p0", "10.0.0.3", CLIENT_MAC)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], max_per_client=5))
    assert d.service(VIP, 80).max_per_client == 5
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(100, 106)])
    assert sorted(p for p, _ in out) == [0, 1, 1, 1, 1, 1]
    rst = next(Ether(f) for p, f in out if p == 0)
    assert rst[TCP].flags == "RA" and rst[TCP].dport == 105
    assert drops(d) == {"limit_client_conns": 1}
    # Another client is not limited by this one.
    port, _ = one(d, "p0", c2v(src="10.0.0.3", sport=100))
    assert port == 1
    # A connection that ends (a RST, here) makes room at once.
    one(d, "p0", c2v(sport=100, flags="R"))
    port, _ = one(d, "p0", c2v(sport=106))
    assert port == 1
    d.close()


def test_service_limits_on_open_connections_and_new_ones_a_second(native):
    d = proxy_dp(native)
    d.add_service(service(VIP, 80, backends=[(BACKEND, 8080)], max_connections=3))
    d.add_service(service(VIP, 81, backends=[(BACKEND, 8080)], max_new_per_second=10))
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(100, 105)])
    assert sorted(p for p, _ in out) == [0, 0, 1, 1, 1]
    # 10 a second (a second's worth at once), then one every 100 ms.
    out = d.inject("p0", [raw(c2v(sport=p, dport=81)) for p in range(200, 215)])
    assert sorted(p for p, _ in out) == [0] * 5 + [1] * 10
    d.clock_advance(250)
    out = d.inject("p0", [raw(c2v(sport=p, dport=81)) for p in range(300, 305)])
    assert sorted(p for p, _ in out) == [0, 0, 0, 1, 1]
    assert drops(d) == {"limit_service_conns": 2, "limit_service_rate": 8}
    # Changed in place: the open connections stay and still count.
    d.set_service_limits(VIP, 80, max_connections=5)
    assert d.service(VIP, 80).max_connections == 5 and d.conn_count() == 15
    out = d.inject("p0", [raw(c2v(sport=p)) for p in range(400, 403)])
    assert sorted(p for p, _ in out) == [0, 1, 1]
    port, f = one(d, "p0", c2v(sport=100, flags="PA", payload=b"still"))
    assert port == 1 and f[TCP].load == b"still"
    d.close()
