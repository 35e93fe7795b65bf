#!/usr/bin/env python3
"""Soak: at least 100 million packets mixing every path of the dataplane with
malformed frames, on one worker; then every mbuf must be back in its pool
and, once the timeouts have passed, the connection table empty.

Traffic: two pcaps replayed endlessly by net_pcap (infinite_rx), one on each
port. The client side (p0) sends ARP and NDP for the port's address and for
VIPs, ICMP and ICMPv6 echo, routed UDP, packets with no route and with TTL 1
(ICMP errors), IPIP and GRE L3 VIP traffic, TCP connections (SYN, ACK, data,
FIN, RST) and UDP flows to NAT, FullNAT, DR, tunnel and IPv6 NAT services
from 20,000 client ports (--flows), into a table for a fifth of them: it
fills, so the untracked path runs too. The backend side (p1) answers: SYN-ACKs and UDP
replies of NAT flows (tracked or not), FullNAT replies, ARP replies. Both
add malformed frames: every drop reason the parser has, and random bytes.

After the run: the services and VIPs are deleted (the traffic goes on, but
opens and refreshes nothing), the clock moves past every timeout, and the
worker's incremental aging must empty the table. Then the worker stops, and the mbufs
in use must be exactly those the ports held before it started (net_pcap keeps one per
frame of the pcaps).

Usage: .venv/bin/python bench/soak.py [--packets 100000000] [--out bench/results]
Prints the figures and writes soak.json / soak.md; exits 1 if an invariant
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time

import common
from pylb import model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
P0, P1 = "02:70:63:61:70:00", "02:70:63:61:70:01"      # net_pcap0/1's MACs
CLIENT_GW, CLIENT = "02:00:00:00:00:02", "10.0.0.2"
BACKENDS = ["10.0.1.20", "10.0.1.21", "10.0.1.22"]
BMAC = "02:00:00:00:0b:00"


def frames(flows: int) -> tuple[list[bytes], list[bytes]]:
    """(client side, backend side) frames."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw, raw
    rng = random.Random(7)
    e0, e1 = Ether(src=CLIENT_GW, dst=P0), Ether(src=BMAC, dst=P1)
    c: list = [
        Ether(src=CLIENT_GW, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, hwsrc=CLIENT_GW,
                                                            pdst="10.0.0.1"),
        Ether(src=CLIENT_GW, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, hwsrc=CLIENT_GW,
                                                            pdst="10.0.0.100"),
        e0 / IP(src=CLIENT, dst="10.0.0.1") / ICMP() / Raw(b"ping"),
        e0 / IP(src=CLIENT, dst="10.0.0.100") / ICMP(),
        e0 / IP(src="10.1.0.9", dst="198.51.100.7") / UDP(sport=9, dport=9),
        e0 / IP(src="10.1.0.9", dst="192.0.2.1") / UDP(),                    # no route
        e0 / IP(src="10.1.0.9", dst="198.51.100.7", ttl=1) / UDP(),          # time exceeded
        e0 / IP(src="10.1.0.9", dst="203.0.113.9") / TCP(flags="S"),         # L3 VIP, IPIP
        e0 / IP(src="10.1.0.9", dst="203.0.114.1") / UDP(),                  # L3 VIP, GRE
        e0 / IP(src="10.1.0.9", dst="203.0.113.9") / UDP() / Raw(b"x" * 1480),   # too big
        Ether(src=CLIENT_GW, dst="33:33:ff:00:00:01") / IPv6(src="2001:db8::2",
                                                             dst="ff02::1:ff00:1", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_GW),
        Ether(src=CLIENT_GW, dst="33:33:ff:00:01:00") / IPv6(src="2001:db8::2",
                                                             dst="ff02::1:ff00:100", hlim=255)
        / ICMPv6ND_NS(tgt="2001:db8::100") / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_GW),
        e0 / IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoRequest(),
        # Malformed: one of each reason the parser knows, then noise.
        Raw(b"\x02\x70\x63\x61\x70\x00short"),
        Ether(src=CLIENT_GW, dst="02:00:00:00:99:99") / IP(dst="10.0.0.1") / ICMP(),
        Ether(src=CLIENT_GW, dst=P0) / Dot1Q(vlan=7) / IP(dst="10.0.0.1") / ICMP(),
        Ether(src=CLIENT_GW, dst=P0, type=0x88b5) / Raw(b"x" * 46),
        Raw(raw(Ether(src=CLIENT_GW, dst=P0) / ARP(psrc=CLIENT, pdst="10.0.0.1"))[:30]),
        e0 / IP(src=CLIENT, dst="10.0.0.1", version=5) / ICMP(),
        e0 / IP(src=CLIENT, dst="10.0.0.1", ihl=3) / ICMP(),
        e0 / IP(src=CLIENT, dst="10.0.0.1", len=1000) / ICMP(),
        e0 / IP(src=CLIENT, dst="10.0.0.1", chksum=1) / ICMP(),
        e0 / IP(src="127.0.0.1", dst="10.0.0.1") / ICMP(),
        e0 / IP(src=CLIENT, dst="10.0.0.100") / TCP(dport=80, flags="SF"),
        e0 / IP(src=CLIENT, dst="10.0.0.100", proto=6) / Raw(b"abc"),
        e0 / IPv6(src="2001:db8::2", dst="2001:db8::1", plen=500) / ICMPv6EchoRequest(),
        e0 / IP(src=CLIENT, dst="10.0.0.100", flags="MF") / TCP(dport=80),
    ]
    b: list = [Ether(src=BMAC, dst=P1) / ARP(op=2, psrc="10.0.1.40", hwsrc=BMAC,
                                             pdst="10.0.1.1", hwdst=P1)]
    for i in range(flows):
        client, sport = f"10.1.{i // 250}.{1 + i % 250}", 1024 + i
        kind = i % 5
        vip, dport = [("10.0.0.100", 80), ("10.0.0.101", 80), ("10.0.0.102", 22),
                      ("10.0.0.103", 443), ("10.0.0.100", 53)][kind]
        if kind == 4:       # UDP to NAT, and the backend's reply
            c.append(e0 / IP(src=client, dst=vip) / UDP(sport=sport, dport=dport) / Raw(b"q"))
            b.append(e1 / IP(src=BACKENDS[i % 3], dst=client) / UDP(sport=5353, dport=sport))
            continue
        for flags in ("S", "A", "PA", "FA", "R") if i % 7 == 0 else ("S", "A", "PA", "FA"):
            c.append(e0 / IP(src=client, dst=vip) / TCP(sport=sport, dport=dport, flags=flags)
                     / (Raw(b"GET /") if flags == "PA" else Raw()))
        if kind == 0:       # NAT: the SYN-ACK and the FIN of whichever backend had it
            for flags in ("SA", "FA"):
                b.append(e1 / IP(src=BACKENDS[i % 3], dst=client)
                         / TCP(sport=8080, dport=sport, flags=flags))
        if kind == 1:       # FullNAT: replies to the local ports
            b.append(e1 / IP(src=BACKENDS[i % 3], dst="10.0.1.1")
                     / TCP(sport=8080, dport=1024 + i // 5, flags="SA"))
        if i % 50 == 0:
            c.append(e0 / IPv6(src=f"2001:db8::{i % 1000 + 2:x}", dst="2001:db8::100")
                     / TCP(sport=sport, dport=80, flags="S"))
    noise = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))) for _ in range(300)]
    # Noise with a plausible start: our MAC, then IPv4 or IPv6 and junk.
    noise += [bytes.fromhex(P0.replace(":", "")) + bytes.fromhex(CLIENT_GW.replace(":", ""))
              + rng.choice([b"\x08\x00", b"\x86\xdd", b"\x08\x06"])
              + bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 120))) for _ in range(300)]
    client = [raw(x) for x in c] + noise
    backend = [raw(x) for x in b] + noise[::3]
    return client, backend


def configure(dp) -> None:
    dp.add_address("p0", "10.0.0.1/24")
    dp.add_address("p1", "10.0.1.1/24")
    dp.add_address("p0", "2001:db8::1/64")
    dp.add_address("p1", "2001:db8:1::1/64")
    dp.add_neighbour("p0", CLIENT, CLIENT_GW)
    dp.add_neighbour("p0", "2001:db8::2", CLIENT_GW)
    for ip in BACKENDS + ["10.0.1.254"]:
        dp.add_neighbour("p1", ip, BMAC)
    dp.add_neighbour("p1", "2001:db8:1::20", BMAC)
    dp.add_route("10.1.0.0/16", [(CLIENT, "p0")])
    dp.add_route("198.51.100.0/24", [("10.0.1.254", "p1")])


def add_objects(dp) -> None:
    be = [(ip, 8080) for ip in BACKENDS]
    dp.add_service(model.service("10.0.0.100", 80, scheduler="wrr", backends=be))
    dp.add_service(model.service("10.0.0.100", 53, proto="udp", backends=[(ip, 5353) for ip in BACKENDS]))
    dp.add_service(model.service("10.0.0.101", 80, method="fullnat", scheduler="wlc", local_addresses=["10.0.1.1"], backends=be))
    dp.add_service(model.service("10.0.0.102", 0, method="dr", scheduler="source", persistence=60, backends=BACKENDS))
    dp.add_service(model.service("10.0.0.103", 443, method="tunnel", backends=BACKENDS))
    dp.add_service(model.service("2001:db8::100", 80, backends=[("2001:db8:1::20", 8080)]))
    dp.add_vip("203.0.113.0/24", method="ipip", backends=BACKENDS[:2])
    dp.add_vip("203.0.114.1/32", method="gre", backends=BACKENDS[2:])


def soak(packets: int, client_pcap: str, backend_pcap: str, held: int, capacity: int) -> dict:
    """Runs in its own process (EAL once per process)."""
    from pylb import _native as native
    common.eal_start(native, "pylb-bench-soak", "pylb-soak")
    dp = native.Dataplane(workers=[1], mbufs=held + 8191, conn_capacity=capacity,
                          timeouts={"tcp_syn": 60, "tcp_established": 900, "tcp_fin": 120,
                                    "tcp_close": 10, "udp": 300})
    dp.add_port("p0", f"net_pcap0,rx_pcap={client_pcap},infinite_rx=1", link_wait_ms=0)
    dp.add_port("p1", f"net_pcap1,rx_pcap={backend_pcap},infinite_rx=1", link_wait_ms=0)
    configure(dp)
    add_objects(dp)
    before = sum(p["in_use"] for p in dp.mempools())     # what the ports hold
    t0 = time.monotonic()
    dp.start()
    peak = 0
    while True:                              # the appliance's main loop, as pylb run does
        dp.housekeep()
        totals = dp.totals()
        peak = max(peak, dp.conn_count())
        if totals["rx_packets"] >= packets:
            break
        time.sleep(0.005)
    seconds = time.monotonic() - t0
    during = {k: v for k, v in dp.totals().items() if v}
    drops = {k: v for k, v in dp.drops().items() if v}
    # The traffic goes on, but opens and refreshes nothing: with their
    # services gone, packets to the former VIPs are routed to p0's network,
    # where static neighbours keep them from waiting for resolution.
    for s in dp.services():
        dp.del_service(s.vip, s.port, s.proto)
    for v in dp.vips():
        dp.del_vip(v.prefix)
    for vip in ("10.0.0.100", "10.0.0.101", "10.0.0.102", "10.0.0.103"):
        dp.add_neighbour("p0", vip, CLIENT_GW)
    dp.add_neighbour("p0", "2001:db8::100", CLIENT_GW)
    dp.clock_advance(901_000)                # past every timeout (the longest: 900 s)
    end = time.monotonic() + 60
    while dp.conn_count() and time.monotonic() < end:
        dp.housekeep()
        time.sleep(0.01)
    left = dp.conn_count()
    time.sleep(0.1)                          # the worker sends what housekeeping queued
    dp.stop()
    pools = dp.mempools()
    dp.close()
    common.eal_end(native, "pylb-bench-soak")
    in_use = sum(p["in_use"] for p in pools)
    return {"packets": during["rx_packets"], "seconds": seconds,
            "mpps": during["rx_packets"] / seconds / 1e6, "peak_connections": peak,
            "connections_left": left, "mbufs_in_use": in_use, "mbufs_held_by_pcap": held,
            "mbufs_in_use_before": before,
            "counters": during, "drops": drops,
            "drop_reasons_seen": len(drops), "leaked": in_use - before}


def run(packets: int, out_dir: str, flows: int = 20_000) -> dict:
    client, backend = frames(flows)
    os.makedirs(out_dir, exist_ok=True)
    cp, bp = os.path.join(out_dir, "soak-client.pcap"), os.path.join(out_dir, "soak-backend.pcap")
    common.write_pcap(cp, client)
    common.write_pcap(bp, backend)
    try:
        r = subprocess.run([sys.executable, __file__, "--side", str(packets), cp, bp,
                            str(len(client) + len(backend)), str(max(16, flows // 5))],
                           capture_output=True, text=True, timeout=3600)
    finally:
        os.unlink(cp)
        os.unlink(bp)
    if r.returncode != 0:
        raise RuntimeError("soak failed:\n" + r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 7 and sys.argv[1] == "--side":
        print(json.dumps(soak(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]),
                              int(sys.argv[6]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=100_000_000)
    ap.add_argument("--flows", type=int, default=20_000,
                    help="client ports in the pcap (building it takes ~5 ms each)")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    r = run(args.packets, args.out, args.flows)
    ok = r["leaked"] == 0 and r["connections_left"] == 0
    lines = ["| measure | value |", "|---|---|",
             f"| packets received | {r['packets']:,} in {r['seconds']:.1f} s "
             f"({r['mpps']:.1f} Mpps on one worker) |",
             f"| connections at the peak (the table's capacity) | {r['peak_connections']:,} |",
             f"| new connections sent untracked (table full) | "
             f"{r['counters'].get('conn_table_full', 0):,} |",
             f"| drop reasons seen | {r['drop_reasons_seen']} |",
             f"| connections left after the timeouts | {r['connections_left']} |",
             f"| mbufs in use after the run, beyond net_pcap's {r['mbufs_held_by_pcap']:,} | "
             f"{r['leaked']} |",
             f"| invariants | {'hold' if ok else 'FAILED'} |"]
    common.report(args.out, "soak", {"command": " ".join(sys.argv), "machine": common.machine(),
                                     **r}, lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
