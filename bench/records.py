#!/usr/bin/env python3
"""Benchmark: connection records, exported from and installed into the
tables, on one core: what a restart's snapshot costs (export while the
workers run, install before they start), and connection sync's rates
(target: at least a million records a second sent, and applied): records
packed into tagged datagrams (pylb.sync.Codec), and datagrams checked and
their records applied by a second dataplane.

N records of established NAT connections (distinct clients 10.64.0.0/10 to
10.0.0.100:80, four backends) are installed into a dataplane with room for
them, exported again, and checked to be the same set; each step is timed
over --runs runs, each in a fresh process (EAL once per process).

Usage: .venv/bin/python bench/records.py [--records 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import common
from pylb import model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
VIP = "10.0.0.100"
BACKENDS = [f"10.0.1.{20 + i}" for i in range(4)]


def records(n: int, size: int) -> bytes:
    """N records of established NAT connections (struct pylb_conn_record)."""
    import numpy as np
    rec = np.zeros((n, size), dtype=np.uint8)
    i = np.arange(n, dtype=np.uint32)
    rec[:, 0], rec[:, 1], rec[:, 2], rec[:, 3] = 4, 6, 4, 0     # IPv4, TCP, established, NAT
    words = rec.view(np.uint16)                                 # little-endian host order
    words[:, 2] = 40000                                         # cport
    words[:, 3] = 80                                            # vport
    words[:, 4] = 8080                                          # bport
    words[:, 5] = 40000                                         # lport (NAT: the client's)
    rec[:, 20:24].view(np.uint32)[:, 0] = 600_000               # expires_ms
    client = np.stack([np.full(n, 10), 64 + (i >> 16), (i >> 8) & 255, i & 255], axis=1)
    rec[:, 24:28] = client
    rec[:, 40:44] = [int(x) for x in VIP.split(".")]
    for b, ip in enumerate(BACKENDS):
        rec[b::len(BACKENDS), 56:60] = [int(x) for x in ip.split(".")]
    rec[:, 72:76] = client                                      # local: the client (NAT)
    return rec.tobytes()


def one_run(n: int) -> dict:
    """Runs in its own process."""
    sys.path.insert(0, ROOT)
    from pylb import _native as native
    prefix = f"pylb-bench-records-{os.getpid()}"
    common.eal_start(native, prefix)
    try:
        def dataplane(k):
            d = native.Dataplane(mbufs=1023, mbuf_cache=0, conn_capacity=n + 1024,
                                 half_open_budget=1, sync=True)
            d.add_port("p0", f"net_null{2 * k},copy=0", link_wait_ms=0)
            d.add_address("p0", "10.0.0.1/24")
            d.add_port("p1", f"net_null{2 * k + 1},copy=0", link_wait_ms=0)
            d.add_address("p1", "10.0.1.1/24")
            d.add_service(model.service(VIP, 80, backends=[(b, 8080) for b in BACKENDS]))
            return d
        dp = dataplane(0)
        data = records(n, native.RECORD_SIZE)
        t0 = time.perf_counter()
        installed = dp.install_connections(data)
        t1 = time.perf_counter()
        out = dp.export_connections()
        t2 = time.perf_counter()
        size = native.RECORD_SIZE
        # The same records back, but for the time left (bytes 20-23).
        def key(b, k):
            return b[k:k + 20] + b[k + 24:k + size]
        same = installed == n and len(out) == len(data) and \
            sorted(key(out, k) for k in range(0, len(out), size)) == \
            sorted(key(data, k) for k in range(0, len(data), size))
        # Sync: the records packed and tagged (the sender's work), then
        # checked and applied by a peer (the receiver's).
        from pylb.sync import Codec, key_for
        key = key_for(b"a fleet secret for the benchmark")
        tx, rx = Codec(key, size, ["rx"]), Codec(key, size, ["tx"])
        t3 = time.perf_counter()
        grams = tx.datagrams(out)
        t4 = time.perf_counter()
        peer = dataplane(1)
        t5 = time.perf_counter()
        applied = sum(peer.sync_apply(rx.accept(g, "tx")) for g in grams)
        t6 = time.perf_counter()
        dp.close()
        peer.close()
        return {"installed": installed, "install_s": t1 - t0, "export_s": t2 - t1, "same": same,
                "sync_send_s": t4 - t3, "sync_apply_s": t6 - t5, "synced": applied,
                "datagrams": len(grams)}
    finally:
        common.eal_end(native, prefix)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(one_run(int(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=RESULTS, help="where records.json and records.md go")
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, __file__, "--one", str(args.records)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert all(r["same"] and r["installed"] == r["synced"] == args.records for r in runs), runs
    install = statistics.median(args.records / r["install_s"] for r in runs)
    export = statistics.median(args.records / r["export_s"] for r in runs)
    send = statistics.median(args.records / r["sync_send_s"] for r in runs)
    apply = statistics.median(args.records / r["sync_apply_s"] for r in runs)
    summary = {"command": f"bench/records.py --records {args.records} --runs {args.runs}",
               "machine": common.machine(), "records": args.records, "runs": runs,
               "install_per_s": install, "export_per_s": export,
               "sync_send_per_s": send, "sync_apply_per_s": apply}
    lines = ["| step | records/s (median of runs) | target |", "|---|---|---|",
             f"| install (restore before start; sync's apply) | {install / 1e6:.2f} M | >= 1 M |",
             f"| export (the snapshot, workers running) | {export / 1e6:.2f} M | - |",
             f"| sync: packed in tagged datagrams (sender) | {send / 1e6:.2f} M | >= 1 M |",
             f"| sync: datagrams checked, records applied (receiver) | {apply / 1e6:.2f} M "
             "| >= 1 M |"]
    common.report(args.out, "records", summary, lines)


if __name__ == "__main__":
    main()
