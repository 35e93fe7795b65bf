#!/usr/bin/env python3
"""Benchmark: how long one `SetBackend` takes on a service with many tracked
connections, and that its answer carries the backends' connection counts.

One worker forwards a pcap (net_pcap, read once) of N distinct
UDP flows to a NAT service (10.0.0.100:53, four backends out of a net_null
port); once the worker tracks all N connections, the benchmark calls
`SetBackend` over gRPC (a unix socket; the server runs in this process, as
in `pylb run`, over the same domain) to toggle one backend's weight, and
measures each call's round trip. The counts come from per-lcore counters
the workers keep, so the call does not depend on N (the previous design
scanned every table on each answer).

Usage: .venv/bin/python bench/set_backend.py [--connections 1000000] [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
VIP = "10.0.0.100"
BACKENDS = [f"10.0.1.{20 + i}" for i in range(4)]


def _ip_checksum(h: bytes) -> int:
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def pcap(path: str, n: int) -> None:
    """N UDP flows from distinct clients 10.64.0.0/10 to VIP:53, one frame each."""
    eth = bytes.fromhex("027063617000" "020000000002" "0800")
    vip = bytes(int(x) for x in VIP.split("."))

    def frames():
        for i in range(n):
            src = bytes((10, 64 + (i >> 16), (i >> 8) & 255, i & 255))
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + 18, 0, 0, 64, 17, 0, src, vip)
            ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
            yield eth + ip + struct.pack("!HHHH", 1024, 53, 8 + 18, 0) + b"\0" * 18
    common.write_pcap(path, frames())


def one_run(path: str, n: int, calls: int) -> dict:
    """Runs in its own process (EAL once per process)."""
    sys.path.insert(0, ROOT)
    import grpc
    from pylb import _native as native
    from pylb.manager import Manager, direct_submitter
    from pylb.model import BackendSpec, ServiceSpec
    from pylb.server import Server
    from pylb.v1 import pylb_pb2 as pb
    from pylb.v1 import pylb_pb2_grpc as pb_grpc
    common.eal_start(native, "pylb-bench-setb")
    dp = native.Dataplane(workers=[1], mbufs=16383, conn_capacity=n + n // 4 + 1024,
                          timeouts={"udp": 3600})
    dp.add_port("p0", f"net_pcap0,rx_pcap={path}", link_wait_ms=0)
    dp.add_port("p1", "net_null1,no-rx=1", link_wait_ms=0)
    dp.add_address("p0", "10.0.0.1/24")
    dp.add_address("p1", "10.0.1.1/24")
    dp.add_route("10.64.0.0/10", [("10.0.0.2", "p0")])       # the clients, behind a router
    manager = Manager(direct_submitter(dp))
    for i, b in enumerate(BACKENDS):
        manager.add_neighbour("p1", b, f"02:00:00:00:0b:{i:02x}")
    manager.add_service(ServiceSpec(VIP, 53, "udp", backends=tuple(
        BackendSpec(b, 5353) for b in BACKENDS)))
    sock = tempfile.mktemp(prefix="pylb-bench-", suffix=".sock")
    server = Server(manager, f"unix:{sock}").start()
    server.serving(True)
    dp.start()
    start = time.monotonic()
    while dp.conn_count() < n:
        if time.monotonic() - start > 600:
            raise RuntimeError(f"only {dp.conn_count()} of {n} connections after 600 s")
        time.sleep(0.05)
    fill_s = time.monotonic() - start
    rtt, answered = [], []
    key = pb.ServiceKey(vip=VIP, port=53, protocol=pb.PROTOCOL_UDP)
    with grpc.insecure_channel(f"unix:{sock}") as ch:
        stub = pb_grpc.LoadBalancerStub(ch)
        stub.GetService(key)                                # connected
        for c in range(calls):
            t0 = time.perf_counter()
            s = stub.SetBackend(pb.SetBackendRequest(service=key, backend=pb.Backend(
                address=BACKENDS[0], port=5353, weight=1 + c % 2)))
            rtt.append(time.perf_counter() - t0)
            answered.append(sum(b.active_connections for b in s.backends))
    tracked = dp.conn_count()
    server.stop()
    dp.close()
    common.eal_end(native, "pylb-bench-setb")
    return {"call_ms": [x * 1e3 for x in rtt], "active_in_answer": answered,
            "tracked": tracked, "fill_s": fill_s}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        print(json.dumps(one_run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "set-backend.pcap")
    pcap(path, args.connections)
    try:
        out = subprocess.run([sys.executable, __file__, "--run", path, str(args.connections),
                              str(args.calls)], capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise RuntimeError("run failed:\n" + out.stderr[-3000:])
    run = json.loads(out.stdout.strip().splitlines()[-1])
    summary = {"command": " ".join(sys.argv), "connections": args.connections,
               "calls": args.calls, "machine": common.machine(0), "run": run}
    lines = ["| SetBackend round trip | ms |", "|---|---|"]
    lines += [f"| p{p} | {common.pct(run['call_ms'], p):.3f} |" for p in (50, 99, 100)]
    lines += [f"| mean | {statistics.mean(run['call_ms']):.3f} |",
              f"\n{run['tracked']:,} connections tracked by the worker; each answer's active "
              f"connections summed: {min(run['active_in_answer']):,} to "
              f"{max(run['active_in_answer']):,}."]
    common.report(args.out, "set_backend", summary, lines)


if __name__ == "__main__":
    main()
