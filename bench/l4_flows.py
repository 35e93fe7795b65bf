#!/usr/bin/env python3
"""Benchmark: established L4 flows (NAT), against testpmd `io` forwarding of
the same input on the same core, in the same run; and the memory a tracked
connection costs.

Input: a pcap of N UDP packets from N different client ports to one NAT
service, replayed endlessly by net_pcap (infinite_rx) into a net_null (no-rx)
output. The first pass creates N connections; from then on every packet is
an established flow: connection lookup, DNAT with incremental checksums,
routing to the backend, TX. Memory: hugepages taken by a dataplane with
1,000,000 connections per lcore, minus one with 16, divided by the
connections (both lcore tables).
A connection is tracked on the lcore that owns it only; the figure is per
connection and table.

Usage: .venv/bin/python bench/l4_flows.py [--flows 16384] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PCAP_MAC = "02:70:63:61:70:00"      # net_pcap's MAC for its first instance
VIP, BACKEND = "10.0.0.100", "10.0.1.20"


def make_pcap(path: str, flows: int) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    frames = [Ether(src="02:00:00:00:00:02", dst=PCAP_MAC)
              / IP(src=f"10.0.{i >> 14}.{2 + (i >> 8) % 64}", dst=VIP, ttl=64)
              / UDP(sport=1024 + i % 60000, dport=53) / (b"\0" * 18)
              for i in range(flows)]
    wrpcap(path, frames)


def devices(pcap: str) -> list[str]:
    return [f"net_pcap0,rx_pcap={pcap},infinite_rx=1", "net_null0,no-rx=1"]


def huge_free() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("HugePages_Free:"):
                return int(line.split()[1])
    return 0


def pylb_side(pcap: str, flows: int, seconds: float, probe: int) -> dict:
    """Runs in its own process (EAL once per process)."""
    from pylb import _native as native
    native.eal_init(["pylb-bench", "-l", "0,1", "--no-pci", "--in-memory", "--file-prefix",
                     "pylb-bench-l4", "--log-level", "*:error"])
    # Memory per connection, from the hugepages two dataplanes take.
    sizes = {}
    for cap in (16, probe):
        before = huge_free()
        d = native.Dataplane(mbufs=255, mbuf_cache=0, conn_capacity=cap)
        sizes[cap] = (before - huge_free()) * 2 * 1024 * 1024
        d.close()
    per_conn = (sizes[probe] - sizes[16]) / (2 * (probe - 16))   # worker + control tables
    dp = native.Dataplane(workers=[1], mbufs=max(8191, 2 * flows + 4096), conn_capacity=2 * flows)
    dp.add_port("p0", devices(pcap)[0], link_wait_ms=0)
    dp.add_port("p1", devices(pcap)[1], link_wait_ms=0)
    dp.add_address("p0", "10.0.0.1/16")
    dp.add_address("p1", "10.0.1.1/24")
    dp.add_neighbour("p1", BACKEND, "02:00:00:00:0b:00")
    dp.add_service(VIP, 53, proto="udp", backends=[(BACKEND, 5353)])
    d = common.worker_deltas(dp, native.COUNTER_NAMES, seconds)
    conns = dp.conn_count()
    dp.close()
    native.eal_cleanup()
    return {"flows": flows, "tracked": conns, "bytes_per_connection": per_conn,
            "cycles_per_packet": d["busy_cycles"] / max(d["rx_packets"], 1),
            "packets": d["rx_packets"], "mpps": d["rx_packets"] / seconds / 1e6,
            "forwarded_share": d["forwarded"] / max(d["rx_packets"], 1),
            "new_in_window": d["conn_created"]}


def pylb_once(pcap: str, flows: int, seconds: float, probe: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--pylb-side", pcap, str(flows), str(seconds),
                          str(probe)],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError("pylb run failed:\n" + out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--pylb-side":
        print(json.dumps(pylb_side(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                                   int(sys.argv[5]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=16384)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--memory-probe", type=int, default=1_000_000,
                    help="connections per lcore of the dataplane whose memory is measured")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    pcap = os.path.join(args.out, f"l4-{args.flows}.pcap")
    make_pcap(pcap, args.flows)
    base, ours = [], []
    for _ in range(args.runs):
        base.append(common.testpmd(devices(pcap), "io", args.seconds))
        ours.append(pylb_once(pcap, args.flows, args.seconds, args.memory_probe))
    b = statistics.median(r["cycles_per_packet"] for r in base)
    o = statistics.median(r["cycles_per_packet"] for r in ours)
    summary = {"command": " ".join(sys.argv), "flows": args.flows, "runs": args.runs,
               "testpmd_io_cycles_per_packet": b, "pylb_established_cycles_per_packet": o,
               "ratio": o / b, "bytes_per_connection": ours[0]["bytes_per_connection"],
               "forwarded_share": min(r["forwarded_share"] for r in ours),
               "testpmd": base, "pylb": ours}
    with open(os.path.join(args.out, "l4_flows.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{'path':<40}{'cycles/pkt':>12}{'ratio':>8}")
    print(f"{'testpmd io (baseline)':<40}{b:>12.1f}{1.0:>8.2f}")
    print(f"{f'pylb NAT, {args.flows} established flows':<40}{o:>12.1f}{o / b:>8.2f}")
    print(f"memory per tracked connection: {summary['bytes_per_connection']:.0f} bytes; "
          f"forwarded share {summary['forwarded_share']:.3f}")


if __name__ == "__main__":
    main()
