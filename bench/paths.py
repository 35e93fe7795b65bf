#!/usr/bin/env python3
"""Benchmark: the dataplane's paths on one worker (host, L3 routing, L3 VIP,
L4 connection tracking), against testpmd `io` forwarding of the same input on
the same core and burst, in the same run; the routing cases (route, route6)
also against DPDK's l3fwd (`--lookup=fib`: rte_fib, as pylb; RFC 1812 checks,
TTL, MACs) routing the same pcap on the same core (bench/common.py builds it
from dpdk-doc's example sources).

Input: a pcap of N frames (Ethernet/IPv4/UDP or TCP, checksums right), each
from its own client (address, port), replayed endlessly by net_pcap
(infinite_rx) on the worker's core into pylb, which forwards to a net_null
port. Mbufs of 192 bytes (128 of headroom; 256 for IPv6) on both sides, so that
ten million frames fit in hugepages. Cases:

- arp: ARP requests for the port's address, each from its own sender: pylb
  answers every one (out of the pcap port, whose TX drops);
- icmp: ICMP echo requests to the port's address: pylb answers every one;
- route: the frames to a routed address (no service): the L3 reference;
- vip: the frames to an L3 VIP (a /24), IPIP-encapsulated to its backend;
  vip_flowsrc: the same from an outer source prefix, each flow its own address;
- tunnel, tunnel_flowsrc: the established case's UDP to a tunnel service
  (IPIP to the backend), from the port's address / a source prefix per flow;
- established_quic: the established case to a service with QUIC
  connection-ID routing (its backend's server id in no packet: the IDs are
  read when a flow opens, never on its established packets);
- vip_gue, gue: the vip case's VIP and the tunnel case's service of method
  gue (IP in UDP to the backend's port 6080, the source port per flow);
- inspect_out: UDP to a route marked for inspection (10.2.0.0/16, pool of
  one appliance on the backends' side): each flow looked up in the worker's
  flow table (its first packet remembered), its cookie made, GENEVE to the
  appliance (docs/inspection.md);
- inspect_return: what that appliance sends back, GENEVE from it to the
  port's address (made by a dataplane of the same key, bounced): the
  cookie checked, decapsulated, routed on;
- inspect_out6, inspect_return6: the same over IPv6 (an IPv6 appliance; the
  cookie's MAC three blocks, IPv4's one);
- established: UDP to a NAT service. The first pass creates N connections;
  then the worker's busy cycles are measured while every packet is a
  connection hit (lookup, DNAT with incremental checksums, cached next hop,
  TX);
- established_defended: the established case with every defence on: a deny
  ACL of 1,000,000 prefixes on the service, its three limits, a backend
  limit, per-source budgets and rates (all set high enough never to refuse):
  what the defences cost packets of established connections;
- syn: TCP SYNs of N new flows to a NAT service, measured during the first
  pass only: scheduling (Maglev-style table) and insertion per packet;
- table_full: the same SYNs to a table of 1,024 connections: once it is full,
  every new flow is balanced statelessly (the same choice, not tracked);
- syn_acl: the syn case with a deny ACL of 1,000,000 prefixes (/24s none
  of the clients are in) on the service: what the lookup adds to a new
  connection (established traffic never looks); also the seconds the ACL
  took to build and publish;
- syn_sync: the syn case with connection sync on: every new connection
  noted for the peers (the records collected every 20 ms on the main lcore,
  as the appliance does); target: at most 1.15x syn.
- synflood: the same SYNs (each its own spoofed client) to a NAT service that
  answers SYNs with cookies (syn_proxy always), one frame in ten being UDP of
  1,000 established connections to another service: measured after the first
  pass, every SYN is answered with a cookie SYN-ACK and every UDP packet
  forwarded; nothing is stored;
- fullnat: UDP to a FullNAT service (SNAT to the port address, DNAT to the
  backend), established as above, at most 64,512 flows (one backend, one
  local address);
- fullnat_reply: the backend's replies to those connections: a second pcap
  of replies to the local ports the connections were given (1024 + i for
  flow i, checked: the share translated is reported), replayed endlessly on
  the backend-side port while the client-side pcap plays once;
- icmp_error: "fragmentation needed" from a router on the clients' side to
  the VIP, each quoting the reply of one of N established UDP NAT flows (its
  own client): a pcap of the clients' packets plays once (creating the
  connections) on p0 while the errors replay endlessly on p1; every error
  is matched to its connection, translated (outer, quoted, checksums) and
  sent to the backend (icmperr.c);
- fragments: UDP datagrams of N established NAT flows, each in two
  fragments (the first with the ports, a later one of 24 bytes): the first
  makes (or finds) the datagram's entry, the later one takes its ports from
  it and follows to the backend (frag.c); at most 1,000 flows (the entries
  live a second, 1,024 per lcore);
- route6, vip6, established6, syn6: the same as route, vip (IPv6 in IPv6),
  established (up to 1,000,000 flows) and syn over IPv6 (client fd01::1 +
  f // 50000), beside their IPv4 cases;
- memory: hugepages taken by a dataplane with 1,000,000 connections per lcore
  minus one with 16, per connection (--memory-probe).

net_pcap keeps every frame of the pcap in an mbuf, so ten million flows need
about 4 GB of hugepages for the frames and 1 GB for the worker's connection
table (testpmd needs the 4 GB too): `make bench` reserves 4096 x 2 MiB.

Usage: .venv/bin/python bench/paths.py [--flows 1000,100000,1000000,10000000] [--runs 5]
       [--cases route,route6,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time

import common
from pylb import model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PCAP_MAC = "02:70:63:61:70:00"      # net_pcap's MAC for its first instance
VIP, BACKEND = "10.0.0.100", "10.0.1.20"
L3_VIP = "10.0.9.0/24"
VIP6, BACKEND6 = "fd00::100", "fd00:1::20"
L3_VIP6 = "fd00:9::/64"
INSPECTED, APPLIANCE, APPLIANCE_RET = "10.2.0.0/16", "10.0.1.50", "10.0.0.50"
INSPECTED6, APPLIANCE6, APPLIANCE6_RET = "fd02::/48", "fd00:1::50", "fd00::50"
L3FWD_ROUTE, L3FWD_ROUTE6 = "10.0.1.0/24", "fd00:1::/64"    # l3fwd's routes to BACKEND(6)
SEED = bytes(range(32))             # inspect_return's frames are made under this key
MBUF_SIZE = 192
LIMIT = 100_000_000                 # limits set, never reached


ACL_PREFIXES = 1_000_000            # --acl-prefixes


def million() -> list[str]:
    """A deny ACL of a million /24s (--acl-prefixes), none of them the
    clients' (10.1.0.0/16)."""
    return [f"{16 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(ACL_PREFIXES)]


def mbuf_size(kind: str) -> int:
    """192 bytes (64 of data) hold the IPv4 frames; IPv6's headers take 64
    more, and so does a frame that arrives long or grows in its mbuf: a
    GENEVE answer, an ICMP error's quote, the options of a cookie SYN-ACK
    (written in the SYN's own mbuf). inspect_return6 needs both: 320."""
    long = kind in ("synflood", "icmp_error") or kind.startswith("inspect_return")
    return MBUF_SIZE + 64 * kind.endswith("6") + 64 * long
PORTS_PER_CLIENT = 50000
# The outer sources of the *_flowsrc cases: each flow its own (issue 28.4).
FLOW_SOURCES = "10.200.0.0/16"


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return s


def _adjust(ck: int, old: bytes, new: bytes) -> int:
    """RFC 1624: checksum ck with 16-bit words `old` replaced by `new`."""
    s = (~ck) & 0xffff
    for i in range(0, len(old), 2):
        s += (~int.from_bytes(old[i:i + 2], "big")) & 0xffff
        s += int.from_bytes(new[i:i + 2], "big")
    return (~_fold(s)) & 0xffff


def make_reply_pcap(path: str, flows: int) -> None:
    """Flow f's reply: backend:5353 -> local address 10.0.1.1, port 1024 + f."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    tpl = bytes(Ether(src="02:00:00:00:0b:00", dst=PCAP_MAC[:-1] + "1")
                / IP(src=BACKEND, dst="10.0.1.1", ttl=64) / UDP(sport=5353, dport=1024, chksum=0)
                / (b"\0" * 18))

    def frames():
        for i in range(flows):
            b = bytearray(tpl)
            b[36:38] = (1024 + i).to_bytes(2, "big")
            yield b
    common.write_pcap(path, frames())


def make_error_pcap(path: str, flows: int) -> None:
    """Flow f's error: 10.0.0.2 -> VIP, fragmentation needed, quoting the
    reply VIP:53 -> flow f's client and port (its IP header and 8 bytes)."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import Ether
    quoted = bytes(IP(src=VIP, dst="10.1.0.1", ttl=60) / UDP(sport=53, dport=1024, chksum=0))
    tpl = bytes(Ether(src="02:00:00:00:00:02", dst=PCAP_MAC[:-1] + "1")
                / IP(src="10.0.0.2", dst=VIP, ttl=64) / ICMP(type=3, code=4, nexthopmtu=1280)
                / quoted[:28])
    # Quoted at 42: its destination (the client) at 58, its UDP destination
    # port at 64; the checksums over them: the quoted IP header's (52), ICMP's (36).
    common.write_pcap(path, per_flow(tpl, flows, 58, 4, 64, {52: "addr", 36: "both"}))


def make_fragment_pcap(path: str, flows: int) -> None:
    """Flow f's datagram (id f): 10.1.0.1:1024 + f -> VIP:53, 40 bytes of
    UDP in two fragments."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    eth = Ether(src="02:00:00:00:00:02", dst=PCAP_MAC)

    def frames():
        for f in range(flows):
            ip = dict(src="10.1.0.1", dst=VIP, ttl=64, id=f, proto=17)
            yield bytes(eth / IP(flags="MF", **ip) / UDP(sport=1024 + f, dport=53, len=48, chksum=0)
                        / (b"\0" * 16))
            yield bytes(eth / IP(frag=3, **ip) / (b"\0" * 24))
    common.write_pcap(path, frames())


def per_flow(tpl: bytes, flows: int, src_at: int, src_len: int, port_at: int, sums: dict):
    """Frames of `flows` flows from template tpl: flow f from source address
    base + f // PORTS_PER_CLIENT and port 1024 + f % PORTS_PER_CLIENT, each
    checksum at offset o in `sums` updated for what it covers ("addr",
    "port" or "both")."""
    old_src, old_port = tpl[src_at:src_at + src_len], tpl[port_at:port_at + 2]
    base = int.from_bytes(old_src, "big")
    cks = {o: struct.unpack_from("!H", tpl, o)[0] for o in sums}
    for i in range(flows):
        src = (base + i // PORTS_PER_CLIENT).to_bytes(src_len, "big")
        port = (1024 + i % PORTS_PER_CLIENT).to_bytes(2, "big")
        b = bytearray(tpl)
        b[src_at:src_at + src_len], b[port_at:port_at + 2] = src, port
        for o, covers in sums.items():
            old, new = {"addr": (old_src, src), "port": (old_port, port),
                        "both": (old_src + old_port, src + port)}[covers]
            struct.pack_into("!H", b, o, _adjust(cks[o], old, new))
        yield b


def make_frames6(kind: str, flows: int):
    """IPv6 flow f: client fd01::1 + f // 50000, port 1024 + f % 50000."""
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    syn = kind == "syn"
    dst = {"route": BACKEND6, "vip": "fd00:9::1", "inspect_out": "fd02::1"}.get(kind, VIP6)
    l4 = TCP(sport=1024, dport=80, flags="S", seq=1) if syn else \
        UDP(sport=1024, dport=53) / (b"\0" * 18)
    tpl = bytes(Ether(src="02:00:00:00:00:02", dst=PCAP_MAC) / IPv6(src="fd01::1", dst=dst, hlim=64) / l4)
    # Per flow: the source address and port, and the L4 checksum over them.
    return per_flow(tpl, flows, 22, 16, 54, {70 if syn else 60: "both"})


def make_pcap6(path: str, kind: str, flows: int) -> None:
    common.write_pcap(path, make_frames6(kind, flows))


def make_pcap(path: str, kind: str, flows: int) -> None:
    """Flow f: client 10.1.x.y = 10.1.0.1 + f // 50000, port 1024 + f % 50000."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP, Ether
    if kind == "fullnat_reply":
        return make_reply_pcap(path, flows)
    if kind == "icmp_error":
        return make_error_pcap(path, flows)
    if kind == "fragments":
        return make_fragment_pcap(path, flows)
    if kind in ("inspect_return", "inspect_return6"):
        return make_return_pcap(path, flows, kind.endswith("6"))
    if kind == "arp":
        tpl = bytes(Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff")
                    / ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1"))

        def arps():
            for i in range(flows):
                b = bytearray(tpl)
                b[28:32] = (0x0a000002 + (i % 250)).to_bytes(4, "big")    # 10.0.0.2..
                b[22:28] = b[6:12] = (0x020000000000 + i).to_bytes(6, "big")
                yield b
        return common.write_pcap(path, arps())
    if kind.endswith("6"):
        return make_pcap6(path, kind[:-1], flows)
    if kind == "synflood":
        syns = make_frames("syn", flows)
        udp = list(make_frames("established", 1000))

        def mixed():
            for i, f in enumerate(syns):
                yield f
                if i % 9 == 8:
                    yield udp[i // 9 % len(udp)]
        return common.write_pcap(path, mixed())
    common.write_pcap(path, make_frames(kind, flows))


def make_frames(kind: str, flows: int):
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    syn = kind in ("syn", "syn_acl", "table_full", "syn_sync")
    dst = {"route": BACKEND, "vip": "10.0.9.1", "vip_flowsrc": "10.0.9.1", "vip_gue": "10.0.9.1",
           "icmp": "10.0.0.1", "inspect_out": "10.2.0.1"}.get(kind, VIP)
    l4 = TCP(sport=1024, dport=80, flags="S", seq=1) if syn else \
        ICMP(type=8, id=1024, seq=1) / (b"\0" * 18) if kind == "icmp" else \
        UDP(sport=1024, dport=53, chksum=0) / (b"\0" * 18)
    tpl = bytes(Ether(src="02:00:00:00:00:02", dst=PCAP_MAC) / IP(src="10.1.0.1", dst=dst, ttl=64) / l4)
    # Per flow: the source address and port (ICMP: the echo id), and the
    # checksums that cover them (ICMP's covers no address; UDP's is 0, none).
    sums = {24: "addr", **({50: "both"} if syn else {36: "port"} if kind == "icmp" else {})}
    return per_flow(tpl, flows, 26, 4, 38 if kind == "icmp" else 34, sums)


def addressed(dp) -> None:
    """Ports p0 (the clients' side: 10.1.0.0/16, fd01::/64 behind it) and p1
    (the backends'), both families."""
    dp.add_address("p0", "10.0.0.1/24")
    dp.add_address("p1", "10.0.1.1/24")
    dp.add_neighbour("p1", BACKEND, "02:00:00:00:0b:00")
    dp.add_neighbour("p0", "10.0.0.2", "02:00:00:00:00:02")
    dp.add_route("10.1.0.0/16", [("10.0.0.2", "p0")])            # the clients
    dp.add_address("p0", "fd00::1/64")
    dp.add_address("p1", "fd00:1::1/64")
    dp.add_neighbour("p1", BACKEND6, "02:00:00:00:0b:00")
    dp.add_neighbour("p0", "fd00::2", "02:00:00:00:00:02")
    dp.add_route("fd01::/64", [("fd00::2", "p0")])


def inspected(dp, appliance: str, port: str, v6: bool = False) -> None:
    """Pool fw of one appliance (on `port`) inspecting 10.2.0.0/16 (v6:
    fd02::/48)."""
    dp.add_neighbour(port, appliance, "02:00:00:00:0a:50")
    dp.add_pool(model.PoolSpec("fw", (model.BackendSpec(appliance, 0),)))
    dp.add_route(INSPECTED6 if v6 else INSPECTED, [(BACKEND6 if v6 else BACKEND, "p1")],
                 inspect="fw")


def make_return_pcap(path: str, flows: int, v6: bool) -> None:
    """inspect_out's (v6: inspect_out6's) frames through a dataplane of key
    SEED (in a process of its own: EAL once a process), each GENEVE output
    bounced as an appliance on the clients' side (APPLIANCE_RET) sends it
    back."""
    out = subprocess.run([sys.executable, __file__, "--geneve-frames", path, str(flows),
                          str(int(v6))],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError("making the GENEVE answers failed:\n" + out.stderr[-3000:])


def geneve_frames(path: str, flows: int, v6: bool) -> None:
    from pylb import _native as native
    common.eal_start(native, "pylb-bench-geneve")
    dp = native.Dataplane(mbufs=4095, mbuf_cache=0, hash_seed=SEED)
    dp.add_port("p0", mac=PCAP_MAC)
    dp.add_port("p1", mac="02:00:00:00:01:01")
    addressed(dp)
    inspected(dp, APPLIANCE6_RET if v6 else APPLIANCE_RET, "p0", v6)
    frames = list(make_frames6("inspect_out", flows) if v6 else make_frames("inspect_out", flows))
    # The outer addresses and UDP source port; IPv6's UDP checksum.
    src, dst, sport = (slice(22, 38), slice(38, 54), 54) if v6 else \
        (slice(26, 30), slice(30, 34), 34)

    def bounced():
        for i in range(0, len(frames), 32):
            for port, f in dp.inject("p0", [bytes(b) for b in frames[i:i + 32]]):
                b = bytearray(f)
                # Ethernet: back to the port, from the appliance; IP: the
                # addresses swapped (the checksums hold); UDP: from 40000
                # (IPv4's checksum 0, IPv6's adjusted).
                b[0:6], b[6:12] = b[6:12], b[0:6]
                b[src], b[dst] = b[dst], b[src]
                old, b[sport:sport + 2] = bytes(b[sport:sport + 2]), struct.pack("!H", 40000)
                if v6:
                    ck = struct.unpack_from("!H", b, sport + 6)[0]
                    struct.pack_into("!H", b, sport + 6, _adjust(ck, old, b[sport:sport + 2]))
                yield b
    common.write_pcap(path, bounced())
    if dp.totals()["inspect_sent"] != flows:
        raise RuntimeError(f"{dp.totals()['inspect_sent']} of {flows} frames went to the appliance")
    dp.close()
    common.eal_end(native, "pylb-bench-geneve")


def first_pass(kind: str) -> str:
    """The case whose pcap creates a two-pass case's connections."""
    return {"fullnat_reply": "fullnat", "icmp_error": "established"}[kind]


def huge_free() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


def memory(native, probe: int) -> dict:
    sizes = {}
    for cap in (16, probe):
        before = huge_free()
        d = native.Dataplane(mbufs=255, mbuf_cache=0, conn_capacity=cap)   # one (control) table
        sizes[cap] = (before - huge_free()) * 2 * 1024 * 1024
        d.close()
    return {"bytes_per_connection_all": (sizes[probe] - sizes[16]) / (probe - 16),
            # entry line, a seventh of a bucket line, free-list index
            "bytes_per_connection_table": 64 + 64 / 7 + 4}


def sample(dp, names) -> dict:
    c = dp.counters.sum(axis=0)
    return {n: int(c[i]) for i, n in enumerate(names)}


def pylb_side(kind: str, pcap: str, flows: int, seconds: float) -> dict:
    """Runs in its own process (EAL once per process)."""
    from pylb import _native as native
    common.eal_start(native, "pylb-bench-l4")
    if kind == "memory":
        out = memory(native, flows)
        common.eal_end(native, "pylb-bench-l4")
        return out
    two_pass = kind in ("fullnat_reply", "icmp_error")
    dp = native.Dataplane(workers=[1], mbufs=(2 if two_pass or kind == "synflood" else 1) *
                          flows + 16384,
                          mbuf_size=mbuf_size(kind),
                          # IPv6 addresses take a side table of a quarter of the entries
                          conn_capacity=1024 if kind == "table_full" else
                          (4 if kind.endswith("6") else 1) * flows + 1024,
                          # The pcaps carry one direction: its flows stand for
                          # established ones, not a flood (no half-open budget).
                          half_open_budget=1 << 30,
                          per_source={"new_per_second": LIMIT} if kind == "established_defended"
                          else None, sync=kind == "syn_sync",
                          hash_seed=SEED if kind.startswith("inspect_return") else None)
    if two_pass:
        # The clients' pcap plays once (creating the connections), the
        # backend's replies (the errors) endlessly.
        dp.add_port("p0", f"net_pcap0,rx_pcap={pcap.replace(kind, first_pass(kind))}",
                    link_wait_ms=0)
        dp.add_port("p1", f"net_pcap1,rx_pcap={pcap},infinite_rx=1", link_wait_ms=0)
    else:
        dp.add_port("p0", f"net_pcap0,rx_pcap={pcap},infinite_rx=1", link_wait_ms=0)
        dp.add_port("p1", "net_null0,no-rx=1", link_wait_ms=0)
    addressed(dp)
    v6 = kind.endswith("6")
    vip, backend = (VIP6, BACKEND6) if v6 else (VIP, BACKEND)
    acl_s = None
    if kind in ("syn", "syn6", "syn_acl", "table_full", "syn_sync"):
        # New connections, tracked (no cookies: they would answer once an
        # eighth of the table is half-open).
        dp.add_service(model.service(vip, 80, proto="tcp", backends=[(backend, 8080)], syn_proxy="off"), id=0)
        if kind == "syn_acl":
            t0 = time.monotonic()
            dp.set_acls([("deny", "drop", million())], {0: [0]})
            acl_s = time.monotonic() - t0
    elif kind in ("established", "established6", "icmp_error", "fragments"):
        dp.add_service(model.service(vip, 53, proto="udp", backends=[(backend, 5353)]))
    elif kind == "established_quic":
        dp.add_service(model.service(vip, 53, proto="udp", quic=model.QuicSpec(), backends=[
            model.BackendSpec(backend, 5353, server_id="0001")]))
    elif kind == "established_defended":
        dp.add_service(model.service(vip, 53, proto="udp", backends=[(backend, 5353, 1, "up", LIMIT)], max_connections=LIMIT, max_new_per_second=LIMIT, max_per_client=LIMIT), id=0)
        dp.set_acls([("deny", "drop", million())], {0: [0]})
    elif kind == "synflood":
        dp.add_service(model.service(vip, 80, proto="tcp", backends=[(backend, 8080)], syn_proxy="always"))
        dp.add_service(model.service(vip, 53, proto="udp", backends=[(backend, 5353)]))
    elif kind in ("vip", "vip6", "vip_flowsrc", "vip_gue"):
        dp.add_vip(L3_VIP6 if v6 else L3_VIP, method="gue" if kind == "vip_gue" else "ipip",
                   backends=[backend],
                   source=FLOW_SOURCES if kind == "vip_flowsrc" else None)
    elif kind in ("tunnel", "tunnel_flowsrc", "gue"):
        dp.add_service(model.service(vip, 53, proto="udp", method="gue" if kind == "gue"
                                     else "tunnel", backends=[backend],
                                     tunnel_source=FLOW_SOURCES if kind == "tunnel_flowsrc"
                                     else None))
    elif kind in ("inspect_out", "inspect_out6"):
        inspected(dp, APPLIANCE6 if v6 else APPLIANCE, "p1", v6)
    elif kind in ("inspect_return", "inspect_return6"):
        inspected(dp, APPLIANCE6_RET if v6 else APPLIANCE_RET, "p0", v6)
    elif kind.startswith("fullnat"):
        dp.add_service(model.service(VIP, 53, proto="udp", method="fullnat", local_addresses=["10.0.1.1"], backends=[(BACKEND, 5353)]))
    names = native.COUNTER_NAMES
    dp.start()
    if kind in ("syn", "syn6", "syn_acl", "syn_sync"):
        # The first pass only (up to 90% of it): every packet of the window
        # opens a connection. With sync, its records are collected as the
        # appliance does (every 20 ms, on the main lcore).
        a = b = None
        collected = 0.0
        while True:
            if kind == "syn_sync" and time.monotonic() - collected >= 0.02:
                dp.sync_collect()
                collected = time.monotonic()
            s = sample(dp, names)
            if s["conn_created"] >= flows // 10 and a is None:
                a = s
            if s["rx_packets"] >= flows * 9 // 10:
                break
            # (the worker counts a burst's packets before its connections)
            if a is not None and s["rx_packets"] > a["rx_packets"] + 1000:
                b = s
            time.sleep(0.005)
        if a is None or b is None:
            raise RuntimeError("the SYN pass was too short to measure")
    else:
        # Measured once the first pass is behind us (and, for replies, every
        # connection exists).
        while sample(dp, names)["rx_packets"] < 2 * flows or \
                (two_pass and dp.conn_count() < flows):
            time.sleep(0.01)
        a = sample(dp, names)
        time.sleep(seconds)
        b = sample(dp, names)
    d = {n: b[n] - a[n] for n in names}
    if kind != "table_full" and d["conn_untracked"]:
        raise RuntimeError(f"{kind}: {d['conn_untracked']} packets went untracked: the table is too small")
    out = {"flows": flows, "tracked": dp.conn_count(), "packets": d["rx_packets"],
           "cycles_per_packet": d["busy_cycles"] / d["rx_packets"],
           "forwarded_share": d["forwarded"] / d["rx_packets"],
           "sent_share": d["tx_packets"] / d["rx_packets"],      # host cases: the answers
           "created": d["conn_created"], "table_full": d["conn_table_full"],
           "cookies_share": d["syn_cookies_sent"] / d["rx_packets"],
           **({"acl_build_s": acl_s} if acl_s is not None else {}),
           "translated_replies_share": d["nat_replies"] / d["rx_packets"],
           "translated_errors_share": d["icmp_errors_translated"] / d["rx_packets"],
           "followed_fragments_share": d["fragments_followed"] / d["rx_packets"],
           "inspected_share": (d["inspect_sent"] + d["inspect_returned"]) / d["rx_packets"]}
    dp.close()
    common.eal_end(native, "pylb-bench-l4")
    return out


def pylb_once(kind: str, pcap: str, flows: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--pylb-side", kind, pcap, str(flows),
                          str(seconds), str(ACL_PREFIXES)], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError("pylb run failed:\n" + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(runs: list[dict], key: str) -> tuple[float, float, float]:
    v = [r[key] for r in runs]
    return statistics.median(v), min(v), max(v)


def main() -> None:
    global ACL_PREFIXES
    if len(sys.argv) == 5 and sys.argv[1] == "--geneve-frames":
        return geneve_frames(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
    if len(sys.argv) == 7 and sys.argv[1] == "--pylb-side":
        ACL_PREFIXES = int(sys.argv[6])
        print(json.dumps(pylb_side(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", default="1000,100000,1000000,10000000",
                    help="comma-separated flow counts for the established case")
    ap.add_argument("--syn-flows", type=int, default=1_000_000)
    ap.add_argument("--fullnat-flows", type=int, default=50_000,
                    help="flows of the FullNAT cases (at most 64,512); twice that for table_full")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--memory-probe", type=int, default=1_000_000,
                    help="connections per lcore of the dataplane whose memory is measured")
    ap.add_argument("--acl-prefixes", type=int, default=ACL_PREFIXES,
                    help="prefixes of the deny ACL of syn_acl and established_defended (a "
                         "million need more hugepages than `make test` reserves)")
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--cases", default="", help="comma-separated cases to run (default: all)")
    args = ap.parse_args()
    ACL_PREFIXES = args.acl_prefixes
    os.makedirs(args.out, exist_ok=True)
    flows = [int(f) for f in args.flows.split(",")]
    cases = [("arp", 1000), ("icmp", 1000), ("route", 1000), ("route6", 1000), ("vip", 1000),
             ("vip_flowsrc", 1000), ("vip_gue", 1000), ("vip6", 1000)] + \
        [(k, f) for f in flows for k in ("established", "established_defended", "established6",
                                         "tunnel", "tunnel_flowsrc", "gue", "established_quic")
         if k == "established" or f <= 1_000_000] + \
        [("syn", args.syn_flows), ("syn6", args.syn_flows), ("syn_acl", args.syn_flows),
         ("syn_sync", args.syn_flows),
         ("synflood", args.syn_flows),
         ("table_full", args.fullnat_flows * 2),
         ("fullnat", args.fullnat_flows), ("fullnat_reply", args.fullnat_flows),
         ("icmp_error", args.fullnat_flows), ("fragments", 1000),
         ("inspect_out", 1000), ("inspect_return", 1000), ("inspect_out6", 1000),
         ("inspect_return6", 1000)]
    if args.cases:
        cases = [c for c in cases if c[0] in args.cases.split(",")]
    rows, results = [], {}
    mhz = 0
    for kind, flows in cases:
        pcap = os.path.join(args.out, f"l4-{kind}-{flows}.pcap")
        make_pcap(pcap, kind, flows)
        if kind in ("fullnat_reply", "icmp_error"):
            make_pcap(pcap.replace(kind, first_pass(kind)), first_pass(kind), flows)
        # The baseline: testpmd io on the same pcap (replaying a million frames
        # costs the driver cache misses that a thousand do not).
        base = [common.testpmd([f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"],
                               "io", args.seconds, mbufs=(2 if kind == "synflood" else 1) * flows +
                               16384, mbuf_size=mbuf_size(kind))
                for _ in range(args.runs)]
        runs = [pylb_once(kind, pcap, flows, args.seconds) for _ in range(args.runs)]
        # The routing cases' second baseline: DPDK's l3fwd on the same pcap.
        l3 = [common.l3fwd([f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"],
                           [(L3FWD_ROUTE, 1)], [(L3FWD_ROUTE6, 1)], args.seconds,
                           base[0]["tsc_mhz"])
              for _ in range(args.runs)] if kind in ("route", "route6") else []
        if l3:
            results[f"l3fwd-{kind}-{flows}"] = l3
        os.unlink(pcap)
        if kind in ("fullnat_reply", "icmp_error"):
            os.unlink(pcap.replace(kind, first_pass(kind)))
        mhz = base[0]["tsc_mhz"]
        results[f"{kind}-{flows}"] = runs
        results[f"testpmd-{kind}-{flows}"] = base
        rows.append((kind, flows, median(runs, "cycles_per_packet"), median(base, "cycles_per_packet"),
                     min(r["sent_share"] for r in runs),
                     median(l3, "cycles_per_packet")[0] if l3 else None))
    mem = pylb_once("memory", "-", args.memory_probe, 0)
    summary = {"command": " ".join(sys.argv), "runs": args.runs, "machine": common.machine(mhz),
               "cases": results, "memory": mem}
    lines = ["| case | pylb cycles/packet, median (min-max) | testpmd io, same pcap | ratio | "
             "Mpps per core | sent / received | l3fwd (fib), same pcap | ratio to l3fwd |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, flows, cyc, b, fwd, l3 in rows:
        ref = f"{l3:.1f} | {cyc[0] / l3:.2f}" if l3 else "- | -"
        lines.append(f"| {kind}, {flows:,} flows | {cyc[0]:.1f} ({cyc[1]:.0f}-{cyc[2]:.0f}) | "
                     f"{b[0]:.1f} | {cyc[0] / b[0]:.2f} | {mhz / cyc[0]:.1f} | {fwd:.3f} | {ref} |")
    lines.append(f"\nMemory per tracked connection: {mem['bytes_per_connection_table']:.0f} bytes in the "
                 f"connection table (entry and index), {mem['bytes_per_connection_all']:.0f} bytes with "
                 "the IPv6-address and persistence side tables.")
    common.report(args.out, "paths", summary, lines)


if __name__ == "__main__":
    main()
