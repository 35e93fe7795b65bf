"""Packet fixtures for a fleet of appliances: lookup-table fingerprints that
agree exactly when the choices do, and TCP packets picked up mid-flow (ECMP
moved the flow from another appliance, or this one restarted) by the
consistent choice, within the half-open budgets."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC, service
from pylb.errors import InvalidArgument, NotFound
from test_defence_fixtures import SEED_A, SEED_B
from test_l4_fixtures import BACKENDS, BMAC, CLIENT, VIP, c2v, checksums_ok, small_dp

PAIRS = [(b, 8080) for b in BACKENDS]


def appliance(native, **kw):
    """One appliance of a fleet sharing SEED_A, with the client known."""
    d = small_dp(native, hash_seed=kw.pop("hash_seed", SEED_A), **kw)
    d.add_neighbour("p0", CLIENT, CLIENT_MAC)
    return d


def drops(d):
    return {k: v for k, v in d.drops().items() if v}


# Fingerprints.

def test_the_table_fingerprint_names_the_choices(native):
    """Equal for the same backends under the same key, in whatever order
    they were added; different under another key, another weight, another
    state, another table size; L3 VIPs alike."""
    def fingerprints(seed, backends, size=65537, vip_backends=(("10.0.1.40", 1),)):
        d = appliance(native, hash_seed=seed)
        d.add_service(service(VIP, 80, backends=backends, table_size=size))
        d.add_vip("10.0.3.0/24", backends=list(vip_backends))
        out = (d.service_fingerprint(VIP, 80), d.vip_fingerprint("10.0.3.0/24"))
        d.close()
        return out

    base = fingerprints(SEED_A, PAIRS)
    assert all(len(f) == 16 and int(f, 16) >= 0 for f in base)
    assert fingerprints(SEED_A, PAIRS[::-1]) == base
    assert fingerprints(SEED_B, PAIRS)[0] != base[0]
    assert fingerprints(SEED_A, PAIRS[:2] + [(BACKENDS[2], 8080, 2)])[0] != base[0]
    assert fingerprints(SEED_A, PAIRS[:2] + [(BACKENDS[2], 8080, 1, "down")])[0] != base[0]
    assert fingerprints(SEED_A, PAIRS, size=251)[0] != base[0]
    assert fingerprints(SEED_A, PAIRS, vip_backends=[("10.0.1.41", 1)])[1] != base[1]


def test_a_changed_backend_set_changes_the_fingerprint_live(native):
    d = appliance(native)
    d.add_service(service(VIP, 80, backends=PAIRS))
    before = d.service_fingerprint(VIP, 80)
    d.set_service_backends(VIP, 80, PAIRS[:2])
    after = d.service_fingerprint(VIP, 80)
    d.set_service_backends(VIP, 80, PAIRS)
    assert after != before and d.service_fingerprint(VIP, 80) == before
    d.close()


# Mid-flow pick-up.

def opened_elsewhere(native, method="nat", syn_proxy="off", **dp_settings):
    """A connection opened on appliance A (its SYN's backend) and the same
    fleet's appliance B, which never saw it."""
    a, b = appliance(native), appliance(native, **dp_settings)
    for d in (a, b):
        d.add_service(service(VIP, 80, method=method, backends=BACKENDS if method != "nat" else PAIRS, syn_proxy=syn_proxy))
    (_, f), = a.inject("p0", [raw(c2v())])
    chosen = Ether(f)
    a.close()
    return b, chosen


def test_a_nat_flow_moved_by_ecmp_goes_on_to_its_backend(native):
    b, syn = opened_elsewhere(native)
    backend = syn[IP].dst
    (port, f), = b.inject("p0", [raw(c2v(flags="PA", seq=1001, ack=5001, payload=b"more"))])
    out = Ether(f)
    assert port == 1 and out.dst == BMAC[backend] and out.src == P1_MAC
    assert (out[IP].dst, out[TCP].dport, out[TCP].sport) == (backend, 8080, 40000)
    assert checksums_ok(f)
    (c,) = b.connections()
    assert (c.backend, c.state) == (backend, "mid_flow")
    assert b.totals()["conn_picked_up"] == 1 and b.totals()["conn_created"] == 0
    # Half-open until the backend answers: then established.
    assert b.half_open() == 1
    (port, f), = b.inject("p1", [raw(Ether(src=BMAC[backend], dst=P1_MAC) /
                                     IP(src=backend, dst=CLIENT) /
                                     TCP(sport=8080, dport=40000, flags="A", seq=5001, ack=1005))])
    assert port == 0 and (Ether(f)[IP].src, Ether(f)[TCP].sport) == (VIP, 80)
    assert b.connections()[0].state == "established" and b.half_open() == 0
    # More client packets follow the entry; nothing was dropped.
    (_, f), = b.inject("p0", [raw(c2v(flags="A", seq=1005, ack=5001))])
    assert Ether(f)[IP].dst == backend and drops(b) == {}
    b.close()


@pytest.mark.parametrize("method", ["dr", "tunnel"])
def test_dr_and_tunnel_flows_survive_with_no_sync(native, method):
    b, syn = opened_elsewhere(native, method)
    (port, f), = b.inject("p0", [raw(c2v(flags="A", seq=1001, ack=5001))])
    out = Ether(f)
    if method == "dr":
        assert out.dst == syn.dst and out[IP].dst == VIP
    else:
        assert out[IP].dst == syn[IP].dst and out[IP].proto == 4
    assert b.connections()[0].state == "mid_flow" and b.half_open() == 1
    # The client's next packet confirms it (the backend's are not seen).
    b.inject("p0", [raw(c2v(flags="PA", seq=1001, ack=5001, payload=b"x"))])
    assert b.connections()[0].state == "established" and b.half_open() == 0
    b.close()


def test_a_fin_or_rst_of_a_moved_flow_is_passed_on(native):
    b, syn = opened_elsewhere(native)
    (_, f), = b.inject("p0", [raw(c2v(flags="R", seq=1001))])
    assert Ether(f)[IP].dst == syn[IP].dst and b.conn_count() == 0    # never tracked
    (_, f), = b.inject("p0", [raw(c2v(flags="FA", seq=1001, ack=5001))])
    assert Ether(f)[IP].dst == syn[IP].dst and b.connections()[0].state == "fin_wait"
    b.close()


def test_what_cannot_be_picked_up_is_refused(native):
    """FullNAT (the backend knows the connection by the local address and
    port chosen where it opened), a service that always proxies the
    handshake (its sequence numbers are the cookie's), and an appliance
    with pick-up off."""
    d = appliance(native)
    d.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=PAIRS))
    d.add_service(service(VIP, 81, backends=PAIRS, syn_proxy="always"))
    assert d.inject("p0", [raw(c2v(flags="A", seq=1001, ack=5001)),
                           raw(c2v(flags="A", seq=1001, ack=5001, dport=81))]) == []
    assert drops(d) == {"tcp_no_conn": 1, "syn_cookie_invalid": 1} and d.conn_count() == 0
    d.close()
    off = appliance(native, mid_flow=False)
    off.add_service(service(VIP, 80, backends=PAIRS))
    assert off.inject("p0", [raw(c2v(flags="A", seq=1001, ack=5001))]) == []
    assert drops(off) == {"tcp_no_conn": 1}
    off.close()


def test_an_ack_that_is_no_cookie_is_picked_up_while_cookies_are_sent(native):
    """An `auto` service sending cookies (a SYN flood) still takes the
    connections moved to it: an ACK that is not a cookie's answer is one."""
    b, syn = opened_elsewhere(native, syn_proxy="auto", half_open_budget=1)
    b.inject("p0", [raw(c2v(sport=50000 + i, src=f"10.0.0.{30 + i}")) for i in range(2)])
    assert b.totals()["syn_cookies_sent"] >= 1
    (_, f), = b.inject("p0", [raw(c2v(flags="A", seq=1001, ack=5001))])
    assert Ether(f)[IP].dst == syn[IP].dst
    assert b.totals()["conn_untracked"] + b.totals()["conn_picked_up"] == 1
    b.close()


def test_a_spoofed_ack_flood_fills_only_the_half_open_budget(native):
    """Picked-up entries are half-open until confirmed: a flood of ACKs
    from random sources gets at most the budget's worth, then goes
    stateless (still to the consistent backend), and evicts nobody: not an
    established connection, not a handshake in progress."""
    d = appliance(native, half_open_budget=32, rp_filter="off")   # sources from anywhere
    d.add_service(service(VIP, 80, backends=PAIRS, syn_proxy="off"))
    d.inject("p0", [raw(c2v(sport=1000))])                        # a handshake in progress
    flood = [raw(c2v(src=f"10.8.{i // 200}.{i % 200 + 3}", sport=2000 + i, flags="A",
                     seq=7, ack=9)) for i in range(400)]
    out = d.inject("p0", flood)
    assert len(out) == 400 and all(Ether(f)[IP].dst in BACKENDS for _, f in out)
    t = d.totals()
    assert t["conn_picked_up"] == 31 and t["conn_untracked"] == 369
    assert t["half_open_evicted"] == 0 and d.half_open() == 32
    assert any(c.cport == 1000 and c.state == "syn_sent" for c in d.connections())
    d.close()


def test_each_network_has_its_share_of_picked_up_entries(native):
    d = appliance(native, per_source={"half_open_budget": 4}, rp_filter="off")
    d.add_service(service(VIP, 80, backends=PAIRS, syn_proxy="off"))
    flood = [raw(c2v(sport=2000 + i, flags="A", seq=7, ack=9)) for i in range(20)]
    assert len(d.inject("p0", flood)) == 20
    assert d.half_open(source=CLIENT) == 4 and d.totals()["source_half_open_full"] == 16
    # Another network still gets its entries.
    d.inject("p0", [raw(c2v(src="10.0.9.9", sport=3000, flags="A", seq=7, ack=9))])
    assert d.half_open(source="10.0.9.9") == 1
    d.close()


# Connection records: what a restart restores (pylb.snapshot).

def moved(native, build, **dp_settings):
    """Connections opened on A by `build(A)` (each returns what to check),
    exported, and installed in a fresh B with the same configuration."""
    a, b = appliance(native), appliance(native, **dp_settings)
    out = build(a)
    records = a.export_connections()
    a.close()
    return b, records, out


def test_nat_and_wrr_connections_are_restored_both_ways(native):
    """WRR's choices are not the consistent table's: only the record keeps
    them. Both directions go on after the install; the counts follow."""
    def setup(d):
        d.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
        chosen = {}
        for sport in range(40000, 40006):
            (_, f), = d.inject("p0", [raw(c2v(sport=sport))])
            chosen[sport] = Ether(f)[IP].dst
            d.inject("p1", [raw(Ether(src=BMAC[chosen[sport]], dst=P1_MAC) /
                                IP(src=chosen[sport], dst=CLIENT) /
                                TCP(sport=8080, dport=sport, flags="SA", seq=5000, ack=1001))])
            d.inject("p0", [raw(c2v(sport=sport, flags="A", seq=1001, ack=5001))])
        return chosen

    b, records, chosen = moved(native, setup)
    assert len(records) == 6 * native.RECORD_SIZE
    b.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
    assert b.install_connections(records) == 6
    assert {c.cport: (c.backend, c.state) for c in b.connections()} == \
        {p: (ip, "established") for p, ip in chosen.items()}
    for sport, backend in chosen.items():
        (port, f), = b.inject("p0", [raw(c2v(sport=sport, flags="PA", seq=1001, ack=5001,
                                             payload=b"x"))])
        assert port == 1 and Ether(f)[IP].dst == backend and checksums_ok(f)
        (port, f), = b.inject("p1", [raw(Ether(src=BMAC[backend], dst=P1_MAC) /
                                         IP(src=backend, dst=CLIENT) /
                                         TCP(sport=8080, dport=sport, flags="A", seq=5001,
                                             ack=1002))])
        assert port == 0 and (Ether(f)[IP].src, Ether(f)[TCP].sport) == (VIP, 80)
    t = b.totals()
    assert t["conn_restored"] == 6 and t["conn_picked_up"] == 0 and drops(b) == {}
    stats = b.service_stats(VIP, 80)
    assert sum(s["active"] for s in stats["backends"]) == 6
    b.close()


TCP_STATES = {"syn_sent", "syn_recv", "mid_flow", "established", "fin_wait", "close_wait",
              "time_wait", "close"}


def test_restored_records_are_checked_and_their_time_left_capped(native):
    """Issue 27.3f: a record is not trusted. Time left beyond its state's
    timeout is cut to it; records with random bytes changed are installed
    only if they still make sense (a known state for their protocol, a
    configured service and backend), never with more time than their
    state's timeout."""
    import random
    import struct

    def setup(d):
        d.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
        d.add_service(service(VIP, 53, proto="udp", backends=[(b, 5353) for b in BACKENDS]))
        for sport in range(40000, 40040):
            d.inject("p0", [raw(c2v(sport=sport)), raw(c2v(sport=sport, proto=UDP, dport=53))])

    b, records, _ = moved(native, setup, timeouts={"tcp_syn": 30, "udp": 40})
    b.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
    b.add_service(service(VIP, 53, proto="udp", backends=[(b_, 5353) for b_ in BACKENDS]))
    size = native.RECORD_SIZE
    # expires_ms at offset 20 (after af..method, four ports, flags, reserved, seq_delta)
    forever = b"".join(r[:20] + struct.pack("<I", 47 * 86400 * 1000) + r[24:]
                       for r in (records[i:i + size] for i in range(0, len(records), size)))
    assert b.install_connections(forever) == 80
    limit = {"syn_recv": 30_000, "syn_sent": 30_000, "none": 40_000}
    assert all(c.expires_ms <= limit[c.state] for c in b.connections())
    b.close()
    rnd = random.Random(27)
    for _ in range(20):
        b, records, _ = moved(native, setup, timeouts={"tcp_syn": 30, "udp": 40})
        b.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
        b.add_service(service(VIP, 53, proto="udp", backends=[(b_, 5353) for b_ in BACKENDS]))
        damaged = bytearray(records)
        for i in range(0, len(damaged), size):
            for _ in range(6):
                damaged[i + rnd.randrange(size)] = rnd.randrange(256)
        b.install_connections(bytes(damaged))
        for c in b.connections():
            assert c.state in TCP_STATES if c.proto == "tcp" else c.state == "none"
            assert c.expires_ms <= 15 * 60 * 1000    # tcp_established's default, the longest
            assert c.backend in BACKENDS and c.vip == VIP
        b.close()


def test_fullnat_connections_are_restored_with_their_local_ports(native):
    def setup(d):
        d.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=PAIRS))
        (_, f), = d.inject("p0", [raw(c2v(sport=41000, payload=b"hi"))])
        return Ether(f)[IP].dst, Ether(f)[TCP].sport

    b, records, (backend, lport) = moved(native, setup)
    b.add_service(service(VIP, 80, method="fullnat", local_addresses=["10.0.1.1"], backends=PAIRS))
    assert b.install_connections(records) == 1
    (port, f), = b.inject("p1", [raw(Ether(src=BMAC[backend], dst=P1_MAC) /
                                     IP(src=backend, dst="10.0.1.1") /
                                     TCP(sport=8080, dport=lport, flags="SA"))])
    back = Ether(f)
    assert port == 0 and (back[IP].src, back[IP].dst, back[TCP].dport) == (VIP, CLIENT, 41000)
    (_, f), = b.inject("p0", [raw(c2v(sport=41000, flags="A", seq=1001, ack=1))])
    assert (Ether(f)[IP].src, Ether(f)[TCP].sport, Ether(f)[IP].dst) == ("10.0.1.1", lport, backend)
    # Its local port is taken towards its backend: no new connection gets it.
    sides = {(Ether(f)[IP].dst, Ether(f)[TCP].sport)
             for _, f in b.inject("p0", [raw(c2v(sport=p)) for p in range(60)])}
    assert (backend, lport) not in sides and len(sides) == 60
    b.close()


def test_a_tunnels_connections_to_backends_of_the_other_family_are_restored(native):
    """4-in-6 and 6-in-4 records carry their backend's family."""
    six = "2001:db8:1::20"

    def dual(d):
        d.add_address("p0", "2001:db8::1/64")
        d.add_address("p1", "2001:db8:1::1/64")
        d.add_neighbour("p1", six, "02:00:00:00:0b:20")

    def setup(d):
        dual(d)
        d.add_service(service(VIP, 80, method="tunnel", backends=[six]))
        d.add_service(service("2001:db8::100", 80, method="tunnel", backends=[BACKENDS[0]]))
        d.inject("p0", [raw(c2v(sport=p)) for p in (41000, 41001)])
        d.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC)
                            / IPv6(src="2001:db8::2", dst="2001:db8::100")
                            / TCP(sport=5000, dport=80, flags="S"))])
        return {(c.vip, c.cport): c.backend for c in d.connections()}

    b, records, before = moved(native, setup)
    assert before == {(VIP, 41000): six, (VIP, 41001): six, ("2001:db8::100", 5000): BACKENDS[0]}
    dual(b)
    b.add_service(service(VIP, 80, method="tunnel", backends=[six]))
    b.add_service(service("2001:db8::100", 80, method="tunnel", backends=[BACKENDS[0]]))
    assert b.install_connections(records) == 3
    assert {(c.vip, c.cport): c.backend for c in b.connections()} == before
    (_, f), = b.inject("p0", [raw(c2v(sport=41000, flags="A", seq=1001))])
    assert Ether(f)[IPv6].dst == six and Ether(f)[IPv6].nh == 4
    b.close()


def test_a_proxied_connection_keeps_its_sequence_offset(native):
    from test_defence_fixtures import b2c, open_proxied, proxy_dp
    a = proxy_dp(native)
    a.add_service(service(VIP, 80, backends=[(BACKENDS[0], 8080)], syn_proxy="always"))
    cookie, b_isn, _ = open_proxied(a)
    records = a.export_connections()
    a.close()
    b = proxy_dp(native)
    b.add_service(service(VIP, 80, backends=[(BACKENDS[0], 8080)], syn_proxy="always"))
    assert b.install_connections(records) == 1
    # The backend's numbers reach the client as the cookie's, as on A.
    _, f = next((p, Ether(x)) for p, x in b.inject("p1", [raw(b2c(b_isn + 1, 1001, "A"))]))
    assert f[TCP].seq == cookie + 1 and checksums_ok(raw(f))
    b.close()


def test_records_of_what_is_not_configured_are_skipped(native):
    def setup(d):
        d.add_service(service(VIP, 80, backends=PAIRS, syn_proxy="off"))
        d.add_service(service(VIP, 81, backends=PAIRS, syn_proxy="off"))
        d.inject("p0", [raw(c2v(sport=s, dport=p)) for s in (1, 2) for p in (80, 81)])
        return {c.cport: c.backend for c in d.connections() if c.vport == 80}

    b, records, chosen = moved(native, setup)
    # 81 is gone; 80 lost one backend and changed method on nothing else.
    gone = chosen[1]
    b.add_service(service(VIP, 80, backends=[p for p in PAIRS if p[0] != gone], syn_proxy="off"))
    installed = b.install_connections(records)
    assert installed == sum(1 for ip in chosen.values() if ip != gone)
    assert b.install_connections(records) == 0                    # already there
    with pytest.raises(InvalidArgument, match="not whole connection records"):
        b.install_connections(records[:-1])
    # Garbage of the right size installs nothing and breaks nothing.
    assert b.install_connections((bytes(range(256)) * 2)[:native.RECORD_SIZE * 4]) == 0
    b.close()


# Connection sync: the records of what changed, applied by a peer.

def test_sync_notes_what_opened_and_what_moved_and_a_peer_follows(native):
    a, b = appliance(native, sync=True), appliance(native, sync=True)
    for d in (a, b):
        d.add_service(service(VIP, 80, scheduler="wrr", backends=PAIRS, syn_proxy="off"))
    (_, f), = a.inject("p0", [raw(c2v(sport=40000))])
    backend = Ether(f)[IP].dst
    first = a.sync_collect()
    assert len(first) == native.RECORD_SIZE and a.sync_collect() == b""   # read once
    assert b.sync_apply(first) == 1
    (c,) = b.connections()
    assert (c.backend, c.state) == (backend, "syn_sent") and b.totals()["conn_synced"] == 1
    # The backend answers and the client ACKs on A: established, sent again.
    a.inject("p1", [raw(Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst=CLIENT) /
                        TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=1001))])
    a.inject("p0", [raw(c2v(sport=40000, flags="A", seq=1001, ack=5001))])
    moved = a.sync_collect()
    assert len(moved) == 2 * native.RECORD_SIZE                # syn_recv, established
    assert b.sync_apply(moved) == 2 and b.connections()[0].state == "established"
    assert b.half_open() == 0
    # B forwards the moved flow to A's choice (WRR: not the consistent table's).
    (_, f), = b.inject("p0", [raw(c2v(sport=40000, flags="PA", seq=1001, ack=5001,
                                      payload=b"x"))])
    assert Ether(f)[IP].dst == backend and b.totals()["conn_picked_up"] == 0
    # A connection of B's own is never overwritten by a peer's record.
    (_, f), = b.inject("p0", [raw(c2v(sport=40001))])
    own = {c.cport: c.backend for c in b.connections()}[40001]
    (_, f), = a.inject("p0", [raw(c2v(sport=40001))])
    assert b.sync_apply(a.sync_collect()) == 0                 # skipped (before start: at once)
    assert {c.cport: c.backend for c in b.connections()}[40001] == own
    assert a.sync_lost() == 0
    a.close()
    b.close()


def test_sync_apply_needs_sync_on(native):
    from pylb.errors import FailedPrecondition
    d = appliance(native)
    with pytest.raises(FailedPrecondition, match="sync is off"):
        d.sync_apply(bytes(native.RECORD_SIZE))
    d.close()


# Addresses that move between appliances: a peer's FullNAT pool address held
# as a backup, a fleet's gateway.

def test_a_peers_pool_address_takes_its_synced_fullnat_replies(native):
    """A's FullNAT source is a pool address (a host address of its own, not
    on a port's network). B, holding A's synced connection, takes A's pool
    address as its own once A is gone: the backends' replies to it, routed
    to B, go back to the client; given up, they are routed as before."""
    pool_a, pool_b = "10.0.5.1", "10.0.5.2"
    a, b = appliance(native, sync=True), appliance(native, sync=True)
    for d, pool in ((a, pool_a), (b, pool_b)):
        d.add_address("p1", f"{pool}/32", mirror=False)
        d.add_service(service(VIP, 80, method="fullnat", local_addresses=[pool], backends=PAIRS, syn_proxy="off"))
    (_, f), = a.inject("p0", [raw(c2v(sport=42000, payload=b"hi"))])
    backend, lport = Ether(f)[IP].dst, Ether(f)[TCP].sport
    assert Ether(f)[IP].src == pool_a
    records = a.sync_collect()
    (held, ms), = native.fullnat_locals(records).items()   # what B announces as a backup
    assert held == pool_a and 0 < ms <= 60_000
    assert b.sync_apply(records) == 1
    reply = raw(Ether(src=BMAC[backend], dst=P1_MAC) / IP(src=backend, dst=pool_a) /
                TCP(sport=8080, dport=lport, flags="SA"))

    def to_client(d):
        return [(p, Ether(x)[IP].src, Ether(x)[IP].dst, Ether(x)[TCP].dport)
                for p, x in d.inject("p1", [reply]) if Ether(x)[IP].dst == CLIENT]

    assert to_client(b) == []                # not B's address: not a reply B translates
    b.add_address("p1", f"{pool_a}/32", mirror=False)
    assert to_client(b) == [(0, VIP, CLIENT, 42000)]
    b.del_address("p1", pool_a)
    assert to_client(b) == []
    with pytest.raises(NotFound, match="no such host address"):
        b.del_address("p1", pool_a)
    with pytest.raises(NotFound, match="no such host address"):
        b.del_address("p1", "10.0.1.1")      # a network's address stays
    a.close()
    b.close()


def test_a_gateway_taken_over_is_told_to_the_link_and_answered(native):
    """The address is the port's (ARP answered) from add_address to
    del_address; announce_address sends a gratuitous ARP (IPv4) or an
    unsolicited advertisement with the override flag (IPv6)."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import ARP
    gw, gw6 = "10.0.1.254", "2001:db8:1::fe"
    d = appliance(native)
    who_has = raw(Ether(src=BMAC[BACKENDS[0]], dst="ff:ff:ff:ff:ff:ff") /
                  ARP(op=1, hwsrc=BMAC[BACKENDS[0]], psrc=BACKENDS[0], pdst=gw))
    assert d.inject("p1", [who_has]) == []
    with pytest.raises(InvalidArgument, match="not one of port p1's"):
        d.announce_address("p1", gw)
    d.add_address("p1", f"{gw}/32", mirror=False)
    d.add_address("p1", f"{gw6}/128", mirror=False)
    (port, f), = d.inject("p1", [who_has])
    assert port == 1 and (Ether(f)[ARP].op, Ether(f)[ARP].psrc) == (2, gw)
    d.announce_address("p1", gw)
    d.announce_address("p1", gw6)
    (p4, garp), (p6, na) = d.collect()
    garp, na = Ether(garp), Ether(na)
    assert (p4, garp.dst, garp[ARP].op, garp[ARP].hwsrc, garp[ARP].psrc, garp[ARP].pdst) == \
        (1, "ff:ff:ff:ff:ff:ff", 1, P1_MAC, gw, gw)
    assert (p6, na.dst, na[IPv6].src, na[IPv6].dst, na[IPv6].hlim) == \
        (1, "33:33:00:00:00:01", gw6, "ff02::1", 255)
    adv = na[ICMPv6ND_NA]
    assert (adv.R, adv.S, adv.O, adv.tgt, adv[ICMPv6NDOptDstLLAddr].lladdr) == \
        (0, 0, 1, gw6, P1_MAC)
    again = na.copy()
    del again[ICMPv6ND_NA].cksum
    assert Ether(raw(again))[ICMPv6ND_NA].cksum == adv.cksum
    assert d.totals()["neigh_announcements_sent"] == 2
    d.del_address("p1", gw)
    assert d.inject("p1", [who_has]) == []
    d.close()
