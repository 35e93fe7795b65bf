#!/usr/bin/env python3
"""Benchmark: building a lookup table (L3 VIPs, Maglev-scheduled services)
from scratch, for M slots and N backends, equal and mixed weights (1..5).
Pure computation on the calling thread, as the control plane does it before
swapping a table in; timed around `pylb._native.maglev_table`, so the
figures include turning the Python list of backends into C structs.

Usage: .venv/bin/python bench/maglev_build.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from pylb._native import maglev_table  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows, cases = [], {}
    for m in (65537, 655373):
        for n in (100, 1000):
            ips = [f"10.{i // 250}.{i % 250}.1" for i in range(n)]
            for kind, backends in (("equal", ips), ("weighted", [(ip, 1 + i % 5)
                                                                 for i, ip in enumerate(ips)])):
                maglev_table(backends, m)                       # warm
                ms = []
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    maglev_table(backends, m)
                    ms.append((time.perf_counter() - t0) * 1e3)
                cases[f"M{m}-N{n}-{kind}"] = ms
                rows.append((m, n, kind, statistics.median(ms), min(ms), max(ms)))
    summary = {"command": " ".join(sys.argv), "runs": args.runs,
               "machine": common.machine(0), "cases_ms": cases}
    lines = ["| slots M | backends N | weights | build ms, median (min-max) |", "|---|---|---|---|"]
    lines += [f"| {m:,} | {n:,} | {kind} | {med:.2f} ({lo:.2f}-{hi:.2f}) |"
              for m, n, kind, med, lo, hi in rows]
    common.report(args.out, "maglev_build", summary, lines)


if __name__ == "__main__":
    main()
