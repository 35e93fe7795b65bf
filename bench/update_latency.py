#!/usr/bin/env python3
"""Benchmark: control-plane update latency under traffic, and the packets
lost while updating.

One worker forwards an endless pcap (net_pcap, infinite_rx) of 1,024 flows to
an L3 VIP (10.0.9.0/24, IPIP) out of two net_null ports. The VIP's one
backend alternates between 10.0.1.20 (behind p1) and 10.0.2.20 (behind p2)
with `SetVipBackends` over gRPC (a unix socket; the server runs in this
process, as in `pylb run`, over the same domain layer): each update rebuilds
the VIP's lookup table and swaps it in. Per update:

- latency: from issuing the call to the first packet sent through the new
  backend's port (its NIC TX counter moving, polled in a loop); the call's
  own round trip is reported too;
- loss: packets the worker dropped (every drop reason) during all updates,
  and received minus transmitted.

Usage: .venv/bin/python bench/update_latency.py [--updates 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
VIP = "10.0.9.0/24"
BACKENDS = {"p1": "10.0.1.20", "p2": "10.0.2.20"}


def pcap(path: str) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import raw
    common.write_pcap(path, (raw(Ether(src="02:00:00:00:00:02", dst="02:70:63:61:70:00")
                                 / IP(src=f"10.1.{i // 250}.{i % 250 + 1}", dst=f"10.0.9.{i % 200 + 1}")
                                 / UDP(sport=1024 + i, dport=53) / (b"\0" * 18))
                             for i in range(1024)))


def one_run(path: str, updates: int) -> dict:
    """Runs in its own process (EAL once per process)."""
    sys.path.insert(0, ROOT)
    import grpc
    from pylb import _native as native
    from pylb.manager import Manager, direct_submitter
    from pylb.model import VipSpec
    from pylb.server import Server
    from pylb.v1 import pylb_pb2 as pb
    from pylb.v1 import pylb_pb2_grpc as pb_grpc
    common.eal_start(native, "pylb-bench-upd")
    dp = native.Dataplane(workers=[1], mbufs=16383)
    dp.add_port("p0", f"net_pcap0,rx_pcap={path},infinite_rx=1", link_wait_ms=0)
    for i, (port, ip) in enumerate(BACKENDS.items(), 1):
        dp.add_port(port, f"net_null{i},no-rx=1", link_wait_ms=0)
        dp.add_address(port, f"10.0.{i}.1/24")
        dp.add_neighbour(port, ip, f"02:00:00:00:0b:0{i}")
    dp.add_address("p0", "10.0.0.1/24")
    dp.add_route("10.1.0.0/16", [("10.0.0.2", "p0")])        # the clients, behind a router
    manager = Manager(direct_submitter(dp))
    manager.add_vip(VipSpec(VIP, "ipip", backends=((BACKENDS["p1"], 1),)))
    index = {p.name: p.index for p in dp.ports()}
    sock = tempfile.mktemp(prefix="pylb-bench-", suffix=".sock")
    server = Server(manager, f"unix:{sock}").start()
    server.serving(True)

    def tx(port):
        return dp.ports()[index[port]].nic["tx_packets"]
    dp.start()
    time.sleep(1.0)
    names = list(BACKENDS)
    lat, rtt = [], []
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = pb_grpc.LoadBalancerStub(ch)
        stub.ListVips(pb.ListVipsRequest())                 # connected
        d0, t0 = dp.drops(), dp.totals()
        for u in range(updates):
            to = names[(u + 1) % 2]
            before = tx(to)
            start = time.perf_counter()
            stub.SetVipBackends(pb.Vip(prefix=VIP, method="ipip",
                                       backends=[pb.VipBackend(address=BACKENDS[to])]))
            rtt.append(time.perf_counter() - start)
            while tx(to) == before:
                if time.perf_counter() - start > 10:
                    raise SystemExit(f"no packet reached {to} in 10 s after the update: "
                                     f"drops {dp.drops()}")
            lat.append(time.perf_counter() - start)
        d1, t1 = dp.drops(), dp.totals()
    server.stop()
    dp.close()
    common.eal_end(native, "pylb-bench-upd")
    drops = {k: d1[k] - d0[k] for k in d1 if d1[k] != d0[k]}
    return {"latency_ms": [x * 1e3 for x in lat], "call_ms": [x * 1e3 for x in rtt],
            "rx_packets": t1["rx_packets"] - t0["rx_packets"],
            "forwarded": t1["forwarded"] - t0["forwarded"], "drops": drops}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        print(json.dumps(one_run(sys.argv[2], int(sys.argv[3]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "update-latency.pcap")
    pcap(path)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, __file__, "--run", path, str(args.updates)],
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError("run failed:\n" + out.stderr[-3000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    os.unlink(path)
    rows = []
    for key in ("latency_ms", "call_ms"):
        for p in (50, 99, 100):
            v = [common.pct(r[key], p) for r in runs]
            rows.append((key, p, statistics.median(v), min(v), max(v)))
    lost = [sum(r["drops"].values()) for r in runs]
    gap = [r["rx_packets"] - r["forwarded"] for r in runs]
    summary = {"command": " ".join(sys.argv), "runs": args.runs, "updates": args.updates,
               "machine": common.machine(0), "runs_detail": runs}
    what = {"latency_ms": "call issued -> first packet via the new backend",
            "call_ms": "SetVipBackends round trip"}
    lines = ["| measure | percentile | ms, median of runs (min-max) |", "|---|---|---|"]
    lines += [f"| {what[k]} | p{p} | {med:.3f} ({lo:.3f}-{hi:.3f}) |" for k, p, med, lo, hi in rows]
    lines.append(f"\nPackets dropped during {args.updates:,} updates, per run: {lost} "
                 f"(received minus forwarded: {gap}); packets per run: "
                 f"{[r['rx_packets'] for r in runs]}.")
    common.report(args.out, "update_latency", summary, lines)


if __name__ == "__main__":
    main()
