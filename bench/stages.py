#!/usr/bin/env python3
"""Benchmark: where a packet's cycles go, stage by stage. The dataplane is
built again with its pipeline cut short (path/pipeline.c, PYLB_BENCH_CUT):
after receiving (every frame sent on at once: the worker's loop and the two
drivers), after parsing (Ethernet and IP validated, the burst's arrays
filled), after classifying (both FIB lookups, the source checks, the
connection-table keys); what is left is sent out of the other port as it
is. bench/paths.py measures the same cases on each cut and on the whole
pipeline, alternating, so each stage's cost is a difference of medians in
one run, without a profiler (this VM has no hardware counters: timer
samples land on the instruction after a slow load).

Each cut is built in a copy of the tree (bench/build/stages/CUT), with
PYLB_CFLAGS=-DPYLB_BENCH_CUT=CUT; the whole pipeline is the tree's own build.
The inspect_return cases are left out: their input is made by the dataplane
under test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
CUTS = {0: "received and sent", 1: "+ parse", 2: "+ classify"}
STAGES = os.path.join(common.BUILD, "stages")


def build_cut(cut: int) -> str:
    """The tree's copy built from scratch with its pipeline cut after stage
    `cut`."""
    return common.build_copy(os.path.join(STAGES, str(cut)), PYLB_CFLAGS=f"-DPYLB_BENCH_CUT={cut}")


def measure(tree: str, cases: str, runs: int, out: str) -> dict:
    """bench/paths.py's summary of `cases` (1,000 flows each) with the
    dataplane of `tree`."""
    env = {**os.environ, "PYTHONPATH": tree}
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "paths.py"), "--cases", cases,
                    "--flows", "1000", "--runs", str(runs), "--out", out], cwd=tree, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "paths.json")) as f:
        return json.load(f)


def cycles(result: dict, key: str) -> float:
    return statistics.median(r["cycles_per_packet"] for r in result["cases"][key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="route,vip,vip_gue,established,gue,inspect_out",
                    help="comma-separated bench/paths.py cases (1,000 flows each)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each case per round")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds, each measuring every cut and the whole pipeline in turn")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    cases = common.rebuilt_cases("stages", args.cases)
    os.makedirs(args.out, exist_ok=True)
    shutil.rmtree(STAGES, ignore_errors=True)
    trees = {cut: build_cut(cut) for cut in CUTS}
    trees[len(CUTS)] = ROOT
    got: dict[int, list[dict]] = {cut: [] for cut in trees}
    for _ in range(args.rounds):
        for cut, tree in trees.items():
            got[cut].append(measure(tree, args.cases, args.runs, os.path.join(STAGES, "out")))
    shutil.rmtree(STAGES)

    def median_of(cut: int, key: str) -> float:
        return statistics.median(cycles(r, key) for r in got[cut])

    names = [*CUTS.values(), "+ the rest (whole pipeline)"]
    lines = ["| case | testpmd io | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    table = {}
    for case in cases:
        key = f"{case}-1000"
        base = statistics.median(cycles(r, f"testpmd-{key}") for cut in trees for r in got[cut])
        c = [median_of(cut, key) for cut in trees]
        table[case] = {"testpmd": base, "cumulative": c}
        cells = [f"{c[0]:.1f}"] + [f"{c[i]:.1f} ({c[i] - c[i - 1]:+.1f})" for i in range(1, len(c))]
        lines.append(f"| {case} | {base:.1f} | " + " | ".join(cells) + " |")
    lines.append("\nCycles per packet, the median of the rounds' medians; in brackets, what the "
                 "stage added.")
    summary = {"command": " ".join(sys.argv), "rounds": args.rounds, "runs": args.runs,
               "machine": common.machine(got[0][0]["machine"]["tsc_mhz"]), "stages": names,
               "cases": table, "runs_by_cut": got}
    common.report(args.out, "stages", summary, lines)


if __name__ == "__main__":
    main()
