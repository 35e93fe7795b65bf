#!/usr/bin/env python3
"""Benchmark: the L3 routing path with a large FIB, against testpmd `io`
forwarding of the same input on the same core, in the same run.

Input: a pcap of 1024 64-byte UDP frames to destinations spread over the
routed prefixes, replayed endlessly by net_pcap (infinite_rx); output: a
net_null port that does not generate packets. pylb loads N /24 routes through
the Python bulk API (timed), then routes every packet: validate, FIB lookup,
TTL decrement with incremental checksum, next-hop MAC rewrite, TX. testpmd io
only moves the same mbufs from RX to TX.

Usage: .venv/bin/python bench/l3_route.py [--routes 1000000] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PCAP_MAC = "02:70:63:61:70:00"      # net_pcap's MAC for its first instance
GW_MAC = "02:00:00:00:0a:02"


def prefixes(n: int) -> list[str]:
    # /24s from 11.0.0.0 upwards: up to 16 /8s hold 1,048,576 of them.
    return [f"{11 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(n)]


def make_pcap(path: str, n_routes: int) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    rnd = random.Random(1)
    frames = []
    for _ in range(1024):
        i = rnd.randrange(n_routes)
        dst = f"{11 + i // 65536}.{i // 256 % 256}.{i % 256}.7"
        frames.append(Ether(src="02:00:00:00:00:02", dst=PCAP_MAC)
                      / IP(src="10.0.0.2", dst=dst, ttl=64) / UDP(sport=1000, dport=2000)
                      / (b"\0" * 18))
    wrpcap(path, frames)


def devices(pcap: str) -> tuple[str, str]:
    return f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"


def testpmd_once(pcap: str, seconds: float, mode: str = "io") -> dict:
    return common.testpmd(list(devices(pcap)), mode, seconds)


def pylb_side(pcap: str, n_routes: int, seconds: float) -> dict:
    """Runs in its own process (EAL once per process)."""
    from pylb import _native as native
    common.eal_start(native, "pylb-bench-l3")
    rx, tx = devices(pcap)
    dp = native.Dataplane(workers=[1], mbufs=8191, max_routes=max(n_routes + 1024, 65536))
    dp.add_port("p0", rx, link_wait_ms=0)
    dp.add_port("p1", tx, link_wait_ms=0)
    dp.add_address("p0", "10.0.0.1/24")
    dp.add_address("p1", "10.0.1.1/24")
    dp.add_neighbour("p1", "10.0.1.2", GW_MAC)
    routes = prefixes(n_routes)
    t0 = time.perf_counter()
    added = dp.add_routes(routes, ("10.0.1.2", "p1"))
    load_s = time.perf_counter() - t0
    assert added == n_routes
    d = common.worker_deltas(dp, native.COUNTER_NAMES, seconds)
    dp.close()
    common.eal_end(native, "pylb-bench-l3")
    return {"routes": n_routes, "route_load_s": load_s,
            "cycles_per_packet": d["busy_cycles"] / max(d["rx_packets"], 1),
            "packets": d["rx_packets"], "mpps": d["rx_packets"] / seconds / 1e6,
            "forwarded_share": d["forwarded"] / max(d["rx_packets"], 1)}


def pylb_once(pcap: str, n_routes: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--pylb-side", pcap, str(n_routes),
                          str(seconds)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("pylb run failed:\n" + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--pylb-side":
        print(json.dumps(pylb_side(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", default="1000,1000000", help="comma-separated FIB sizes")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", default=RESULTS, help="directory for the pcap and the JSON report")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    summary = {"command": " ".join(sys.argv), "runs": args.runs, "cases": {}}
    lines = ["| case | busy cycles/packet, median (min-max) | Mpps | ratio to testpmd io |",
             "|---|---|---|---|"]

    def row(name, runs, b, tsc):
        v = [r["cycles_per_packet"] for r in runs]
        m = statistics.median(v)
        return f"| {name} | {m:.1f} ({min(v):.1f}-{max(v):.1f}) | {tsc / m:.1f} | {m / b:.2f}x |"
    for n in (int(x) for x in args.routes.split(",")):
        pcap = os.path.join(args.out, f"l3-{n}.pcap")
        make_pcap(pcap, n)
        base, swap, ours = [], [], []
        for _ in range(args.runs):
            base.append(testpmd_once(pcap, args.seconds))
            swap.append(testpmd_once(pcap, args.seconds, "5tswap"))
            ours.append(pylb_once(pcap, n, args.seconds))
        os.unlink(pcap)
        tsc = base[0]["tsc_mhz"]
        b = statistics.median(r["cycles_per_packet"] for r in base)
        summary["machine"] = common.machine(tsc)
        summary["cases"][str(n)] = {
            "testpmd": base, "testpmd_5tswap": swap, "pylb": ours,
            "ratio": statistics.median(r["cycles_per_packet"] for r in ours) / b,
            "route_load_s": [r["route_load_s"] for r in ours],
            "forwarded_share": min(r["forwarded_share"] for r in ours)}
        loads = sorted(r["route_load_s"] for r in ours)
        lines += [row(f"testpmd io, {n:,}-route pcap", base, b, tsc),
                  row("testpmd 5tswap", swap, b, tsc),
                  row(f"pylb routing, {n:,} routes", ours, b, tsc)]
        lines.append(f"| (loading {n:,} routes: {statistics.median(loads):.3f} s median, "
                     f"{loads[0]:.3f}-{loads[-1]:.3f}) | | | |")
    common.report(args.out, "l3_route", summary, lines)


if __name__ == "__main__":
    main()
