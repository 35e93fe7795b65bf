"""Packet fixtures for inspection (GENEVE appliance mode): traffic to a route
or an L3 VIP marked for inspection goes GENEVE-encapsulated to one appliance
of its pool, the same for both directions of a flow; what an appliance sends
back is checked (its cookie) and forwarded; pools' stickiness and failover;
malformed and forged answers dropped by reason."""

from __future__ import annotations

import socket
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scapy.contrib.geneve import GENEVE
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, P1_MAC
from pylb import model
from pylb.errors import FailedPrecondition, InvalidArgument, NotFound
from pylb.model import BackendSpec, PoolSpec

CLIENT = "10.0.0.2"
GW, GW_MAC = "10.0.1.2", "02:00:00:00:02:02"
GW6, GW6_MAC = "2001:db8:1::2", "02:00:00:00:02:06"
APPS = {"10.0.1.31": "02:00:00:00:03:01", "10.0.1.32": "02:00:00:00:03:02",
        "10.0.1.33": "02:00:00:00:03:03"}
APP6, APP6_MAC = "2001:db8:1::31", "02:00:00:00:03:06"
SERVERS, CLIENTS = "198.51.100.0/24", "192.0.2.0/24"

EXERCISED = {"inspect_no_appliance", "inspect_no_route", "inspect_too_big", "inspect_malformed",
             "inspect_bad_cookie", "inspect_unroutable"}


def pool(*apps, **kw) -> PoolSpec:
    return PoolSpec("fw", tuple(a if isinstance(a, BackendSpec) else BackendSpec(a, 0)
                                for a in apps), **kw)


@pytest.fixture
def gwlb(dp):
    """Servers (198.51.100.0/24) behind GW on p1 and clients (192.0.2.0/24)
    behind the client on p0, both routes inspected by pool fw (appliances
    .31 and .32 on p1)."""
    for ip, mac in APPS.items():
        dp.add_neighbour("p1", ip, mac)
    dp.add_neighbour("p1", GW, GW_MAC)
    dp.add_neighbour("p1", GW6, GW6_MAC)
    dp.add_neighbour("p1", APP6, APP6_MAC)
    dp.add_neighbour("p0", CLIENT, CLIENT_MAC)
    dp.add_pool(pool("10.0.1.31", "10.0.1.32"))
    dp.add_route(SERVERS, (GW, "p1"), inspect="fw")
    dp.add_route(CLIENTS, (CLIENT, "p0"), inspect="fw")
    return dp


def flow(src="192.0.2.9", dst="198.51.100.7", sport=40000, dport=443, flags="S", ttl=64,
         size=20, **ip):
    return Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=dst, ttl=ttl, id=9, **ip) / \
        TCP(sport=sport, dport=dport, flags=flags) / Raw(b"x" * size)


def back(pkt):
    """The server's side of pkt's flow, arriving on p1."""
    return Ether(src=GW_MAC, dst=P1_MAC) / IP(src=pkt[IP].dst, dst=pkt[IP].src, ttl=64, id=10) / \
        TCP(sport=pkt[TCP].dport, dport=pkt[TCP].sport, flags="SA") / Raw(b"y" * 20)


def geneve_of(frame: bytes):
    """(outer Ether/IP/UDP, pool slot, cookie, inner bytes) of a GENEVE frame
    pylb sent; the option parsed by hand, as an appliance would."""
    e = Ether(frame)
    g = bytes(e[UDP].payload)
    ver_optlen, _, proto = struct.unpack("!BBH", g[:4])
    assert ver_optlen >> 6 == 0 and proto in (0x0800, 0x86DD)
    opts = g[8:8 + 4 * (ver_optlen & 0x3f)]
    cls, typ, length = struct.unpack("!HBB", opts[:4])
    assert (cls, typ, length & 0x1f) == (0xfff0, 1, 3)
    slot, zero = struct.unpack("!HH", opts[4:8])
    assert zero == 0
    return e, slot, opts[8:16], g[8 + 4 * (ver_optlen & 0x3f):]


def bounce(frame: bytes, mac=None, sport=7777) -> bytes:
    """What an appliance sends back: the GENEVE payload unchanged, to the
    sender's port 6081, from the appliance (its MAC)."""
    e = Ether(frame)
    outer = e.payload                               # (IP in e: an inner one too)
    return raw(Ether(src=mac or e.dst, dst=e.src) /
               (IP if isinstance(outer, IP) else IPv6)(src=outer.dst, dst=outer.src) /
               UDP(sport=sport, dport=6081) / Raw(bytes(e[UDP].payload)))


def appliance_of(out) -> str:
    (port, frame), = out
    assert port == 1
    e = Ether(frame)
    assert APPS[e[IP].dst] == e.dst
    return e[IP].dst


def test_a_flow_goes_to_an_appliance_in_geneve_with_its_packet_unchanged(gwlb):
    pkt = flow()
    out = gwlb.inject("p0", [raw(pkt)])
    app = appliance_of(out)
    e, slot, cookie, inner = geneve_of(out[0][1])
    assert e.src == P1_MAC and e[IP].src == "10.0.1.1" and e[IP].ttl == 64
    assert e[UDP].dport == 6081 and 0xc000 <= e[UDP].sport <= 0xffff
    assert e[UDP].chksum == 0 and e[IP].proto == 17
    assert inner == raw(pkt)[14:]                 # not routed yet: TTL as sent
    assert slot == 0 and len(cookie) == 8
    assert GENEVE(bytes(e[UDP].payload)).proto == 0x0800
    t = gwlb.totals()
    assert (t["inspect_sent"], t["inspect_flows_new"]) == (1, 1)
    assert gwlb.pool("fw")["flows"] == 1
    assert app in APPS


def test_both_directions_of_a_flow_cross_the_same_appliance_with_the_same_cookie(gwlb):
    for sport in range(40000, 40040):
        pkt = flow(sport=sport)
        out = gwlb.inject("p0", [raw(pkt)])
        rev = gwlb.inject("p1", [raw(back(pkt))])
        assert appliance_of(out) == appliance_of(rev)
        assert geneve_of(out[0][1])[2] == geneve_of(rev[0][1])[2]
    assert gwlb.totals()["inspect_flows_new"] == 40      # one flow each, not two


SEED = b"a fleet's shared secret, 32 bytes"


def mac(key: bytes, blocks: bytes) -> bytes:
    """The cookies' MAC (docs/inspection.md): AES-128 CBC-MAC, the last
    block's first 8 bytes."""
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return (enc.update(blocks) + enc.finalize())[-16:][:8]


@pytest.mark.dp_settings(hash_seed=SEED)
def test_the_cookie_is_the_documented_mac_of_the_flow(gwlb, native):
    """What docs/inspection.md says an operator can check: the cookie is the
    MAC of 'G', family, protocol, pool, the lower side's port then the
    higher's, the lower address then the higher (IPv6: after 8 zero bytes),
    whichever way the packet goes; 3-tuple stickiness leaves the ports out."""
    key = struct.pack("<27Q", *native.hash_key(SEED))[200:216]   # the flow-hash key's bytes
    a, b = socket.inet_aton("192.0.2.9"), socket.inet_aton("198.51.100.7")
    fwd = flow(sport=40000, dport=443)
    for port, pkt in (("p0", fwd), ("p1", back(fwd))):
        _, slot, cookie, _ = geneve_of(gwlb.inject(port, [raw(pkt)])[0][1])
        assert (slot, cookie) == (0, mac(key, b"G\x04\x06\x00" + struct.pack("!HH", 40000, 443) +
                                         a + b))
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", stickiness="3-tuple"))
    _, _, cookie, _ = geneve_of(gwlb.inject("p0", [raw(flow(sport=40001))])[0][1])
    assert cookie == mac(key, b"G\x04\x06\x00" + bytes(4) + a + b)
    gwlb.add_pool(PoolSpec("fw6", (BackendSpec(APP6, 0),)))
    gwlb.add_route("2001:db8:99::/48", (GW6, "p1"), inspect="fw6")
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8:99::7") / \
        UDP(sport=5000, dport=53)
    _, slot, cookie, _ = geneve_of(gwlb.inject("p0", [raw(pkt)])[0][1])
    lo, hi = (socket.inet_pton(socket.AF_INET6, x) for x in ("2001:db8::2", "2001:db8:99::7"))
    assert (slot, cookie) == (1, mac(key, b"G\x06\x11\x01" + struct.pack("!HH", 5000, 53) +
                                     bytes(8) + lo + hi))


def test_a_burst_with_several_packets_of_new_flows_remembers_each_flow_once(gwlb):
    """A burst's flows are looked up together: packets of a flow not yet
    remembered, in one burst, make one entry and cross one appliance, in
    order."""
    frames = [raw(flow(sport=40000 + i % 4, size=20 + i)) for i in range(24)]
    out = gwlb.inject("p0", frames)
    assert len(out) == 24
    by_flow = {}
    for _, f in out:
        e, _, cookie, inner = geneve_of(f)
        by_flow.setdefault(IP(inner)[TCP].sport, []).append((e[IP].dst, cookie, len(inner)))
    for sport, sent in by_flow.items():
        assert len({(app, cookie) for app, cookie, _ in sent}) == 1
        assert [n for _, _, n in sent] == sorted(n for _, _, n in sent)    # in order
    t = gwlb.totals()
    assert (t["inspect_sent"], t["inspect_flows_new"]) == (24, 4)
    assert gwlb.pool("fw")["flows"] == 4


def test_an_appliances_answer_is_checked_and_routed_on(gwlb):
    pkt = flow(ttl=9)
    out = gwlb.inject("p0", [raw(pkt)])
    app = appliance_of(out)
    done = gwlb.inject("p1", [bounce(out[0][1], APPS[app])])
    ip = pkt[IP].copy()
    ip.ttl -= 1
    del ip.chksum
    assert done == [(1, raw(Ether(src=P1_MAC, dst=GW_MAC) / ip))]
    assert gwlb.totals()["inspect_returned"] == 1
    # And the other way: back to the client on p0.
    rev = gwlb.inject("p1", [raw(back(pkt))])
    done = gwlb.inject("p1", [bounce(rev[0][1], APPS[app])])
    assert len(done) == 1 and done[0][0] == 0
    assert Ether(done[0][1])[IP].dst == "192.0.2.9"


def test_forged_and_malformed_answers_are_dropped_by_reason(gwlb):
    pkt = flow()
    out = gwlb.inject("p0", [raw(pkt)])
    good = Ether(bounce(out[0][1], APPS[appliance_of(out)]))
    payload = bytes(good[UDP].payload)
    cookie_at = 8 + 8                               # GENEVE header, option header, pool
    forged = bytearray(payload)
    forged[cookie_at] ^= 1
    other_flow = bytearray(payload)
    other_flow[24 + 20 + 1] ^= 1                    # the inner TCP source port
    other_pool = bytearray(payload)
    other_pool[8 + 5] = 7
    no_option = payload[:0] + bytes([0]) + payload[1:8] + payload[24:]
    not_ip = bytearray(payload)
    not_ip[2:4] = b"\x65\x58"                         # Ethernet inside: not what pylb sent
    short = payload[:10]

    def frame(p):
        return raw(Ether(src=good.src, dst=good.dst) / IP(src=good[IP].src, dst=good[IP].dst) /
                   UDP(sport=1, dport=6081) / Raw(bytes(p)))
    for p in (forged, other_flow, other_pool, no_option, not_ip, short):
        assert gwlb.inject("p1", [frame(p)]) == []
    d = gwlb.drops()
    assert (d["inspect_bad_cookie"], d["inspect_malformed"]) == (3, 3)
    assert gwlb.totals()["inspect_returned"] == 0


def test_a_nic_checked_outer_header_does_not_vouch_for_the_inner_one(gwlb):
    """A NIC with RX checksum offload marks the outer IPv4 header good: the
    inner header an appliance sends back is still checked (a damaged one
    dropped by its reason), and a sound one goes on."""
    pkt = flow()
    out = gwlb.inject("p0", [raw(pkt)])
    good = bytearray(bounce(out[0][1], APPS[appliance_of(out)]))
    inner_ip = len(good) - len(raw(pkt)) + 14
    damaged = bytearray(good)
    damaged[inner_ip + 10] ^= 0x40                  # the inner header's checksum
    assert gwlb.inject("p1", [bytes(damaged)], rx_ip_cksum="good") == []
    assert gwlb.drops()["ipv4_bad_checksum"] == 1
    done = gwlb.inject("p1", [bytes(good)], rx_ip_cksum="good")
    assert len(done) == 1 and Ether(done[0][1])[IP].dst == "198.51.100.7"
    assert gwlb.totals()["inspect_returned"] == 1        # the sound one alone


def test_a_burst_of_answers_is_checked_answer_by_answer(gwlb):
    """A burst of answers, good and forged mixed, IPv4 beside IPv6, towards
    the servers and back to the clients: each meets its own fate, in order
    on each port (answers are checked and routed one by one as the burst
    reaches them; gathering them for one FIB lookup was measured slower:
    docs/benchmarks.md)."""
    gwlb.set_pool(pool("10.0.1.31", APP6))
    gwlb.add_route("2001:db8:99::/48", (GW6, "p1"), inspect="fw")
    out = [flow(sport=41000 + i, ttl=30 + i) for i in range(6)]
    rev = [back(flow(sport=43000 + i)) for i in range(6)]
    six = [Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8:99::7") /
           UDP(sport=42000 + i, dport=53) / Raw(b"q" * 8) for i in range(4)]
    sent = (gwlb.inject("p0", [raw(p) for p in out + six]) +
            gwlb.inject("p1", [raw(p) for p in rev]))
    pkts = out + six + rev
    order = [0, 6, 10, 1, 11, 7, 2, 12, 3, 8, 13, 4, 9, 14, 5, 15]    # mixed
    answers, good = [], []
    for n, i in enumerate(order):
        b = bytearray(bounce(sent[i][1]))
        if n % 3 == 1:
            geneve = len(b) - len(Ether(b)[UDP].payload)
            b[geneve + 8 + 8 + 7] ^= 0xff                # the cookie's last byte
        else:
            good.append(pkts[i])
        answers.append(bytes(b))
    done = gwlb.inject("p1", answers)
    assert len(done) == len(good)
    # In order on each port (what leaves by p0 is listed first).
    good.sort(key=lambda p: not (IP in p and p[IP].dst == "192.0.2.9"))
    for (port, f), p in zip(done, good):
        e = Ether(f)
        if IPv6 in p:
            assert (port, e.dst, e[IPv6].dst, e[UDP].sport) == (
                1, GW6_MAC, "2001:db8:99::7", p[UDP].sport)
        elif p[IP].dst == "192.0.2.9":
            assert (port, e.dst, e[IP].dst, e[TCP].dport) == (0, CLIENT_MAC, "192.0.2.9",
                                                              p[TCP].dport)
        else:
            assert (port, e.dst, e[IP].dst, e[IP].ttl, e[TCP].sport) == (
                1, GW_MAC, "198.51.100.7", p[IP].ttl - 1, p[TCP].sport)
    assert gwlb.drops()["inspect_bad_cookie"] == len(answers) - len(good)
    assert gwlb.totals()["inspect_returned"] == len(good)


def test_an_answer_whose_destination_has_no_route_is_dropped(gwlb):
    pkt = flow(dst="203.0.113.5")
    gwlb.add_route("203.0.113.0/24", (GW, "p1"), inspect="fw")
    out = gwlb.inject("p0", [raw(pkt)])
    gwlb.del_route("203.0.113.0/24")
    assert gwlb.inject("p1", [bounce(out[0][1], APPS[appliance_of(out)])]) == []
    assert gwlb.drops()["inspect_unroutable"] == 1


def test_3_tuple_stickiness_keeps_a_pair_of_hosts_on_one_appliance(gwlb):
    apps = {appliance_of(gwlb.inject("p0", [raw(flow(sport=s, dport=d))]))
            for s in range(40000, 40030) for d in (80, 443)}
    assert len(apps) == 2                           # 5-tuple: flows spread
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", stickiness="3-tuple"))
    for src in ("192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12"):
        apps = {appliance_of(gwlb.inject("p0", [raw(flow(src=src, sport=s, dport=d))]))
                for s in range(41000, 41010) for d in (80, 443)}
        assert len(apps) == 1
    # 2-tuple: TCP and UDP between two hosts too.
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", stickiness="2-tuple"))
    tcp = appliance_of(gwlb.inject("p0", [raw(flow(src="192.0.2.20"))]))
    udp = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="192.0.2.20", dst="198.51.100.7") / \
        UDP(sport=5353, dport=53)
    assert appliance_of(gwlb.inject("p0", [raw(udp)])) == tcp


def flows_by_appliance(dp, n=60):
    return {s: appliance_of(dp.inject("p0", [raw(flow(sport=s))])) for s in range(30000, 30000 + n)}


def test_adding_an_appliance_moves_no_flow(gwlb):
    before = flows_by_appliance(gwlb)
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", "10.0.1.33"))
    assert flows_by_appliance(gwlb) == before
    new = {appliance_of(gwlb.inject("p0", [raw(flow(sport=s))])) for s in range(50000, 50100)}
    assert "10.0.1.33" in new                      # new flows reach it


@pytest.mark.parametrize("failover", model.FAILOVERS)
def test_a_down_appliances_flows_move_or_stay_as_the_pool_says(gwlb, failover):
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", failover=failover))
    before = flows_by_appliance(gwlb)
    assert set(before.values()) == {"10.0.1.31", "10.0.1.32"}
    gwlb.set_pool(pool(BackendSpec("10.0.1.31", 0, state="down"), "10.0.1.32",
                       failover=failover))
    after = flows_by_appliance(gwlb)
    for s, app in before.items():
        if app == "10.0.1.32":
            assert after[s] == app                  # the others' flows never move
        else:
            assert after[s] == ("10.0.1.32" if failover == model.REBALANCE else app)
    t = gwlb.totals()
    moved = sum(a == "10.0.1.31" for a in before.values())
    assert (t["inspect_flows_moved"], t["inspect_flows_stayed"]) == \
        ((moved, 0) if failover == model.REBALANCE else (0, moved))
    new = {appliance_of(gwlb.inject("p0", [raw(flow(sport=s))])) for s in range(50000, 50050)}
    assert new == {"10.0.1.32"}                     # new flows: the live one only


@pytest.mark.parametrize("failover", model.FAILOVERS)
def test_a_removed_appliances_flows_move_or_stay(gwlb, failover):
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", failover=failover))
    before = flows_by_appliance(gwlb)
    gwlb.set_pool(pool("10.0.1.32", failover=failover))
    after = flows_by_appliance(gwlb)
    assert after == (dict.fromkeys(before, "10.0.1.32") if failover == model.REBALANCE
                     else before)


def test_flows_are_forgotten_after_the_idle_timeout(gwlb):
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", idle_timeout=30))
    before = flows_by_appliance(gwlb, 20)
    assert gwlb.pool("fw")["flows"] == 20
    gwlb.clock_advance(20_000)
    gwlb.housekeep()
    assert gwlb.pool("fw")["flows"] == 20
    gwlb.clock_advance(31_000)
    gwlb.housekeep()
    assert gwlb.pool("fw")["flows"] == 0
    assert gwlb.totals()["inspect_flows_expired"] == 20
    # Forgotten: a new choice from the table (here: the same, nothing changed).
    assert flows_by_appliance(gwlb, 20) == before


def test_without_an_appliance_up_inspected_traffic_is_dropped(gwlb):
    gwlb.set_pool(pool(BackendSpec("10.0.1.31", 0, state="down")))
    assert gwlb.inject("p0", [raw(flow())]) == []
    gwlb.set_pool(pool())
    assert gwlb.inject("p0", [raw(flow())]) == []
    assert gwlb.drops()["inspect_no_appliance"] == 2


def test_an_appliance_without_a_route_drops_what_would_go_to_it(gwlb):
    gwlb.set_pool(pool("10.9.9.9"))
    assert gwlb.inject("p0", [raw(flow())]) == []
    assert gwlb.drops()["inspect_no_route"] == 1


def test_too_big_once_encapsulated_the_sender_is_told_the_mtu_less_geneve(gwlb):
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="192.0.2.9", dst="198.51.100.7",
                                                 flags="DF") / TCP(sport=1, dport=2) / \
        Raw(b"z" * (1500 - 40))
    out = gwlb.inject("p0", [raw(pkt)])
    (port, frame), = out
    icmp = Ether(frame)
    assert port == 0 and icmp[ICMP].type == 3 and icmp[ICMP].code == 4
    assert icmp[ICMP].nexthopmtu == 1500 - 52       # IPv4, UDP, GENEVE and pylb's option
    assert gwlb.drops()["inspect_too_big"] == 1


def test_ipv6_flows_are_inspected_by_an_ipv6_appliance(gwlb):
    gwlb.add_pool(PoolSpec("fw6", (BackendSpec(APP6, 0),)))
    gwlb.add_route("2001:db8:99::/48", (GW6, "p1"), inspect="fw6")
    pkt = Ether(src=CLIENT_MAC, dst=P0_MAC) / IPv6(src="2001:db8::2", dst="2001:db8:99::7") / \
        UDP(sport=5000, dport=53) / Raw(b"q" * 10)
    (port, frame), = gwlb.inject("p0", [raw(pkt)])
    e, slot, _, inner = geneve_of(frame)
    assert (port, e.dst, e[IPv6].dst, e[IPv6].src, slot) == (1, APP6_MAC, APP6, "2001:db8:1::1", 1)
    assert inner == raw(pkt)[14:]
    assert UDP(raw(e[UDP])).chksum == e[UDP].chksum != 0      # IPv6: computed
    sent = e[UDP].chksum
    del e[UDP].chksum
    assert IPv6(raw(e[IPv6]))[UDP].chksum == sent
    done = gwlb.inject("p1", [bounce(frame, APP6_MAC)])
    assert len(done) == 1 and Ether(done[0][1]).dst == GW6_MAC
    assert Ether(done[0][1])[IPv6].hlim == 63


def test_an_inspected_l3_vip_reaches_its_backend_after_the_appliance(gwlb):
    gwlb.add_vip("10.0.3.0/24", backends=[("10.0.1.40", 1)], inspect="fw")
    gwlb.add_neighbour("p1", "10.0.1.40", "02:00:00:00:04:00")
    pkt = flow(dst="10.0.3.9")
    out = gwlb.inject("p0", [raw(pkt)])
    app = appliance_of(out)
    (port, frame), = gwlb.inject("p1", [bounce(out[0][1], APPS[app])])
    e = Ether(frame)
    assert (port, e[IP].dst, e[IP].proto) == (1, "10.0.1.40", 4)   # IPIP to the backend
    assert raw(e[IP].payload) == raw(pkt)[14:]


def test_pools_in_use_and_unknown_pools_are_refused(gwlb):
    with pytest.raises(FailedPrecondition, match="inspects 2 routes or VIPs; unmark them"):
        gwlb.del_pool("fw")
    with pytest.raises(NotFound, match="no inspection pool nope"):
        gwlb.add_route("203.0.113.0/24", (GW, "p1"), inspect="nope")
    with pytest.raises(NotFound, match="no inspection pool nope"):
        gwlb.add_vip("10.0.3.0/24", inspect="nope")
    with pytest.raises(NotFound, match="no inspection pool nope"):
        gwlb.del_pool("nope")
    with pytest.raises(InvalidArgument, match="at most 31 bytes"):
        gwlb.add_route("203.0.113.0/24", (GW, "p1"), inspect="x" * 40)
    # Unmarked (replaced without inspection), the pool goes.
    gwlb.replace_route(SERVERS, (GW, "p1"))
    gwlb.replace_route(CLIENTS, (CLIENT, "p0"))
    assert gwlb.route(SERVERS).inspect == ""
    gwlb.del_pool("fw")
    out = gwlb.inject("p0", [raw(flow())])
    assert Ether(out[0][1]).dst == GW_MAC          # routed, no longer inspected


def test_routes_and_vips_say_which_pool_inspects_them(gwlb):
    assert gwlb.route(SERVERS).inspect == "fw"
    gwlb.add_vip("10.0.3.0/24", inspect="fw")
    assert gwlb.vip("10.0.3.0/24").inspect == "fw"
    assert gwlb.pool("fw") | {"flows": 0} == {
        "name": "fw", "stickiness": "5-tuple", "failover": "rebalance", "table_size": 65537,
        "idle_timeout": 350, "flows": 0,
        "appliances": [("10.0.1.31", 1, "up"), ("10.0.1.32", 1, "up")]}


def test_a_remembered_flow_follows_a_new_route_to_its_appliance(gwlb):
    """The flow's cached route to its appliance goes when the routes change."""
    out = gwlb.inject("p0", [raw(flow())])
    app = appliance_of(out)
    gwlb.add_route(f"{app}/32", (GW, "p1"))                 # now via a gateway
    (port, f), = gwlb.inject("p0", [raw(flow())])
    assert (port, Ether(f).dst, Ether(f)[IP].dst) == (1, GW_MAC, app)
    gwlb.del_route(f"{app}/32")
    assert Ether(gwlb.inject("p0", [raw(flow())])[0][1]).dst == APPS[app]


def test_more_flows_than_a_worker_remembers_are_still_sent_and_places_come_back(gwlb):
    """A worker's flow table holds PYLB_INSPECT_FLOWS (65536) flows. Past
    that, new flows still go to the table's appliance, chosen each time and
    counted (inspect_untracked); once idle, every place is freed and taken
    again."""
    gwlb.set_pool(pool("10.0.1.31", "10.0.1.32", idle_timeout=30))
    frames = []
    for dst in ("198.51.100.7", "198.51.100.8"):
        tpl = bytearray(raw(flow(dst=dst)))
        for sport in range(1024, 1024 + 40_000):
            tpl[34:36] = sport.to_bytes(2, "big")
            frames.append(bytes(tpl))
    out = gwlb.inject("p0", frames)
    assert len(out) == 80_000 and {p for p, _ in out} == {1}
    t = gwlb.totals()
    remembered = gwlb.pool("fw")["flows"]
    assert t["inspect_flows_new"] == remembered and t["inspect_sent"] == 80_000
    # All places taken, or nearly (a flow whose two buckets are full is
    # not remembered either).
    assert 65_536 * 0.99 <= remembered <= 65_536
    assert t["inspect_untracked"] == 80_000 - remembered
    # Each remembered flow is found again, in whichever of its buckets.
    assert len(gwlb.inject("p0", frames)) == 80_000
    t = gwlb.totals()
    assert t["inspect_flows_new"] == remembered
    assert t["inspect_untracked"] == 2 * (80_000 - remembered)
    gwlb.clock_advance(31_000)
    gwlb.housekeep()
    assert gwlb.pool("fw")["flows"] == 0
    assert gwlb.totals()["inspect_flows_expired"] == remembered
    again = gwlb.inject("p0", frames[:20_000])
    assert len(again) == 20_000
    t = gwlb.totals()
    assert gwlb.pool("fw")["flows"] == 20_000
    assert t["inspect_flows_new"] == remembered + 20_000
    assert t["inspect_untracked"] == 2 * (80_000 - remembered)
