"""Trace agrees with the fast path (issue 29): random packets go through
Trace and then through the dataplane (the injection seam), and what the
dataplane did (its counters and its output) must be what Trace said: the
same verdict, drop reason and backend, every time, for every forwarding
method and scheduler, with mid-flow pick-up, ACLs, limits, budgets, SYN
cookies, persistence, down backends and the clock moving."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC, service
from pylb._native import DROP_REASONS
from test_l4_fixtures import BACKENDS, BMAC, VIP, small_dp

CLIENTS = ["10.0.0.2", "10.0.0.3", "10.0.0.66"]   # .66: ACL-denied on 80, 82
# port: (method, scheduler, keywords); 85 has no service, 86 no live backend.
SERVICES = {
    80: ("nat", "maglev", dict(max_per_client=2)),
    81: ("fullnat", "wrr", dict(local_addresses=["10.0.1.1"])),
    82: ("dr", "wlc", dict(persistence=30, down_reset=True)),
    83: ("tunnel", "source", dict(max_new_per_second=2)),
    84: ("nat", "wrr", dict(syn_proxy="always")),
    53: ("nat", "maglev", dict(max_connections=3)),
}
FLAGS = {"S": 0x02, "A": 0x10, "PA": 0x18, "FA": 0x11, "R": 0x04, "RA": 0x14, "SA": 0x12}
MAC_BACKEND = {m: b for b, m in BMAC.items()}
EVENTS = {"conn_created": "new", "conn_picked_up": "pick_up", "conn_untracked": "untracked",
          "syn_cookies_sent": "cookie", "syn_proxy_opened": "cookie_ack", "syn_proxy_held": "held"}

# (SYNs, ACKs and the cookie service drawn more often: they open what the rest meets.)
packet = st.tuples(st.sampled_from(CLIENTS), st.sampled_from([1000, 1001, 1002]),
                   st.sampled_from([80, 81, 82, 83, 84, 84, 84, 85, 86, 53]),
                   st.sampled_from(["S", "S", "S", "A", "A", "PA", "FA", "R", "RA", "SA"]))
step = st.one_of(
    packet.map(lambda p: ("packet",) + p),
    packet.map(lambda p: ("packet",) + p),
    st.tuples(st.just("cookie"), st.sampled_from(CLIENTS), st.sampled_from([1000, 1001, 1002])),
    st.tuples(st.just("advance"), st.sampled_from([200, 1500, 130_000])),
    st.tuples(st.just("down"), st.sampled_from(BACKENDS)),
)


def appliance(native, conn_capacity=16, half_open_budget=6, source_budget=3, source_rate=50):
    """Small tables and budgets (untracked, eviction and budgets happen), a
    per-source budget, a source rate, every method and scheduler."""
    d = small_dp(native, conn_capacity=conn_capacity, half_open_budget=half_open_budget,
                 hash_seed=b"trace agrees, 32 bytes of seed!!", clock_stopped=True,
                 per_source={"ipv4_prefix": 31, "half_open_budget": source_budget,
                                                  "new_per_second": source_rate})
    try:
        d.add_neighbour("p0", CLIENTS[0], CLIENT_MAC)
        for i, (port, (method, sched, kw)) in enumerate(SERVICES.items()):
            d.add_service(service(VIP, port, "udp" if port == 53 else "tcp", method=method, scheduler=sched, **kw, backends=[(b, 0 if method in ("dr", "tunnel") else 8080)
                                    for b in BACKENDS]), id=i)
        d.add_service(service(VIP, 86, method="nat", backends=[(BACKENDS[0], 8080, 0)]))
        d.set_acls([("deny", "reset", ["10.0.0.66/31"]), ("deny", "unreachable", ["10.0.0.66/31"])],
                   {list(SERVICES).index(80): [0], list(SERVICES).index(82): [1]})
    except Exception:
        d.close()
        raise
    return d


def frame(src, sport, dport, flags, seq=1000, ack=0):
    l4 = UDP(sport=sport, dport=dport) if dport == 53 else \
        TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    return raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=VIP) / l4)


def backend_of(out, method):
    """The backend the dataplane sent a client's packet to (None: none)."""
    for port, f in out:
        e = Ether(f)
        if port != 1:
            continue
        if method == "dr":
            return MAC_BACKEND.get(e.dst)
        return e[IP].dst
    return None


def observed(before, after):
    """The verdict the counters show, and a drop's reason."""
    delta = {k for k in after if after[k] != before[k]}
    drops = sorted(delta & set(DROP_REASONS))
    if drops:
        assert len(drops) == 1, drops
        return "drop", drops[0]
    events = [EVENTS[k] for k in EVENTS if k in delta]
    if "cookie_ack" in events:      # (its entry counts as created too)
        events.remove("new")
    assert len(events) <= 1, events
    return (events[0] if events else "connection"), ""


def agrees(d, cookies, src, sport, dport, flags, seq=1000, ack=0):
    """Trace the packet, send it, and require that the dataplane did what
    Trace said; the verdict and reason."""
    proto = "udp" if dport == 53 else "tcp"
    t = d.l4_trace(src, VIP, proto, sport, dport, flags, seq, ack)
    before = d.totals() | d.drops()
    out = d.inject("p0", [frame(src, sport, dport, flags, seq, ack)])
    verdict, reason = observed(before, d.totals() | d.drops())
    said = f"{src}:{sport} -> {dport} flags {flags:#x}: trace said {t['verdict']} {t['reason']} " \
           f"({t['why']})"
    assert (t["verdict"], t["reason"]) == (verdict, reason), said
    if verdict in ("new", "pick_up", "untracked", "connection", "cookie_ack"):
        assert backend_of(out, SERVICES.get(dport, ("nat",))[0]) == t["backend"][0], said
    if verdict == "cookie":
        (_, f), = out
        cookies[src, sport] = Ether(f)[TCP].seq
    return f"{verdict} {reason}".strip()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=10, max_size=60))
def test_trace_says_what_the_fast_path_then_does(native, steps):
    d = appliance(native)
    cookies: dict = {}
    try:
        for s in steps:
            if s[0] == "advance":
                d.clock_advance(s[1])
            elif s[0] == "down":
                d.set_backend(VIP, 82, s[1], 0, state="down")
            elif s[0] == "cookie":
                _, src, sport = s
                if (src, sport) in cookies:
                    event(agrees(d, cookies, src, sport, 84, 0x10, 1001, cookies[src, sport] + 1))
            else:
                _, src, sport, dport, name = s
                event(agrees(d, cookies, src, sport, dport, FLAGS[name]))
    finally:
        d.close()


def test_trace_agrees_through_limits_budgets_and_a_full_table(native):
    """A seeded walk long enough to meet every limit and budget (the random
    sequences above seldom fill them): Trace agrees on each packet, and
    each of these verdicts was met."""
    rng = random.Random(29)
    d = appliance(native, conn_capacity=64, half_open_budget=40, source_budget=16, source_rate=10)
    d.set_service_backends(VIP, 80, [(b, 8080, 1, "up", 2) for b in BACKENDS])
    cookies: dict = {}
    seen = set()
    try:
        for i in range(1500):
            if i % 100 == 99:
                d.clock_advance(rng.choice([300, 1500, 130_000]))
            src = f"10.0.0.{rng.choice([2, 3, 4, 5, 66])}"
            sport = rng.randrange(1000, 1040)
            if (src, sport) in cookies and rng.random() < 0.5:
                seen.add(agrees(d, cookies, src, sport, 84, 0x10, 1001, cookies.pop((src, sport)) + 1))
                continue
            seen.add(agrees(d, cookies, src, sport, rng.choice([80, 81, 82, 83, 84, 53]),
                            rng.choice([0x02, 0x02, 0x10, 0x18, 0x11, 0x04])))
    finally:
        d.close()
    assert {"new", "connection", "pick_up", "untracked", "cookie", "cookie_ack",
            "drop limit_client_conns", "drop limit_service_rate", "drop limit_service_conns",
            "drop limit_backend_conns", "drop acl_denied", "drop tcp_no_conn",
            "drop nat_untracked_ambiguous", "drop limit_source_rate"} <= seen, " ".join(sorted(seen))


@pytest.mark.parametrize("mid_flow", [True, False])
def test_an_ack_of_no_connection_is_traced_as_the_fast_path_takes_it(native, mid_flow):
    """The case Trace once got wrong: an ACK of no connection here is picked
    up (mid_flow, the default), or dropped as tcp_no_conn without it."""
    d = small_dp(native, mid_flow=mid_flow, clock_stopped=True)
    d.add_service(service(VIP, 80, backends=[(b, 8080) for b in BACKENDS]))
    t = d.l4_trace("10.0.0.2", VIP, "tcp", 4000, 80, 0x10)
    (port, f), = d.inject("p0", [frame("10.0.0.2", 4000, 80, 0x10)]) or [(None, None)]
    if mid_flow:
        assert t["verdict"] == "pick_up" and Ether(f)[IP].dst == t["backend"][0]
        assert d.l4_trace("10.0.0.2", VIP, "tcp", 4000, 80, 0x10)["verdict"] == "connection"
    else:
        assert (t["verdict"], t["reason"]) == ("drop", "tcp_no_conn") and port is None
    d.close()


# L3: routes (ECMP over two gateways), L3 VIPs (each method), the
# appliance's own addresses and no route, through the domain's Trace.
GATEWAYS = {"10.0.1.250": "02:00:00:00:0c:01", "10.0.1.251": "02:00:00:00:0c:02"}
L3_VIPS = {"203.0.113.0/28": "ipip", "203.0.113.16/28": "gre", "203.0.113.32/28": "dr"}
l3_packet = st.tuples(
    st.sampled_from(CLIENTS),
    st.one_of(st.integers(0, 47).map(lambda i: f"203.0.113.{i}"),          # the VIPs
              st.integers(1, 254).map(lambda i: f"198.51.100.{i}"),        # ECMP route
              st.sampled_from(["10.0.0.1", "10.0.1.1", "192.0.2.9"])),     # local; no route
    st.integers(1024, 65535))


def l3_appliance(native):
    d = small_dp(native, hash_seed=b"trace agrees, 32 bytes of seed!!")
    d.add_neighbour("p0", CLIENTS[0], CLIENT_MAC)
    for gw, mac in GATEWAYS.items():
        d.add_neighbour("p1", gw, mac)
    d.add_route("198.51.100.0/24", [(gw, "p1") for gw in GATEWAYS])
    for prefix, method in L3_VIPS.items():
        d.add_vip(prefix, method=method, backends=BACKENDS)
    return d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets=st.lists(l3_packet, min_size=1, max_size=8))
def test_trace_says_where_an_l3_packet_goes(native, packets):
    """For each packet: Trace's verdict, backend and next hop (through the
    domain, as gRPC and pylbctl ask it) are what the fast path then does:
    the frame's destination MAC (the backend's, or the ECMP gateway's),
    a VIP's encapsulation to that backend, local, or dropped unrouted."""
    from pylb.manager import Manager, direct_submitter
    d = l3_appliance(native)
    try:
        m = Manager(direct_submitter(d))
        gw_of = {mac: gw for gw, mac in GATEWAYS.items()}
        for src, dst, sport in packets:
            t = m.trace(src, dst, "udp", sport, 53)
            frame = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst, ttl=64) / \
                UDP(sport=sport, dport=53)
            no_route = d.drops()["no_route"]
            out = d.inject("p0", [raw(frame)])
            said = f"{src} -> {dst}: trace said {t['verdict']} ({t['why']})"
            event(t["verdict"])
            if t["verdict"] == "route":
                (port, f), = out
                assert port == 1 and gw_of[Ether(f).dst] == t["next_hop"][0], said
            elif t["verdict"] == "vip":
                (port, f), = out
                backend = t["backend"][0]
                assert port == 1 and Ether(f).dst == BMAC[backend], said
                if L3_VIPS[t["route"][0]] != "dr":
                    assert Ether(f)[IP].dst == backend, said
            elif t["verdict"] == "local":
                # Not forwarded: nothing leaves by a port towards dst.
                assert [f for port, f in out if port in (0, 1) and Ether(f)[IP].dst == dst] \
                    == [], said
            else:
                # Dropped as unrouted (at most an ICMP unreachable back to the client).
                assert t["verdict"] == "no_route" and d.drops()["no_route"] == no_route + 1, said
                assert all(Ether(f)[IP].dst == src and Ether(f)[IP].proto == 1
                           for _, f in out), said
    finally:
        d.close()


# Inspection: flows to a route a pool inspects, the pool changing between
# packets (appliances down, removed, added; stickiness, failover): Trace
# names the appliance the fast path then sends the packet to (remembered
# flows included) and the ECMP next hop towards it, or says it is dropped.
APPLIANCES = ["10.0.5.1", "10.0.5.2", "10.0.5.3"]      # behind both gateways (ECMP)
inspect_step = st.one_of(
    st.tuples(st.just("packet"), st.sampled_from(CLIENTS[:2]), st.just(1000),
              st.just("198.51.100.7"), st.sampled_from([80, 443]), st.sampled_from(["tcp", "udp"])),
    st.tuples(st.just("packet"), st.sampled_from(CLIENTS[:2]), st.just(1000),
              st.just("198.51.100.7"), st.sampled_from([80, 443]), st.sampled_from(["tcp", "udp"])),
    st.tuples(st.just("pool"), st.sets(st.sampled_from(APPLIANCES)),
              st.sets(st.sampled_from(APPLIANCES)),
              st.sampled_from(["5-tuple", "3-tuple", "2-tuple"]),
              st.sampled_from(["rebalance", "stay"])),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(inspect_step, min_size=1, max_size=20))
def test_trace_names_the_appliance_an_inspected_packet_crosses(native, steps):
    from pylb.manager import Manager, direct_submitter
    from pylb.model import BackendSpec, PoolSpec
    d = small_dp(native, hash_seed=b"trace agrees, 32 bytes of seed!!")
    try:
        d.add_neighbour("p0", CLIENTS[0], CLIENT_MAC)
        for gw, mac in GATEWAYS.items():
            d.add_neighbour("p1", gw, mac)
        gw = "10.0.1.250"
        m = Manager(direct_submitter(d))
        m.add_route("10.0.5.0/24", [(g, "p1") for g in GATEWAYS])
        m.add_pool(PoolSpec("fw", tuple(BackendSpec(b, 0) for b in APPLIANCES)))
        m.add_route("198.51.100.0/24", [(gw, "p1")], "fw")
        for s in steps:
            if s[0] == "pool":
                _, members, down, stickiness, failover = s
                m.set_pool(PoolSpec("fw", tuple(BackendSpec(b, 0, state="down" if b in down
                                                            else "up")
                                                for b in sorted(members)),
                                    stickiness=stickiness, failover=failover))
                continue
            _, src, sport, dst, dport, proto = s
            t = m.trace(src, dst, proto, sport, dport)
            l4 = TCP(sport=sport, dport=dport, flags="S") if proto == "tcp" else \
                UDP(sport=sport, dport=dport)
            frame = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst) / l4
            dropped = d.drops()["inspect_no_appliance"]
            out = d.inject("p0", [raw(frame)])
            said = f"{s}: trace said {t['verdict']} ({t['why']})"
            event(t["why"].split(" appliance")[0])
            if t["verdict"] == "inspect":
                (port, f), = out
                assert port == 1 and Ether(f)[IP].dst == t["inspect"][1], said
                assert Ether(f).dst == GATEWAYS[t["next_hop"][0]], said
            else:
                assert t["verdict"] == "no_appliance" and out == [], said
                assert d.drops()["inspect_no_appliance"] == dropped + 1, said
    finally:
        d.close()
