#!/usr/bin/env python3
"""Benchmark: worker busy cycles per packet on the host path with net_null ports,
against testpmd `io` forwarding on the same vdev, burst and core, in the same run.

net_null delivers endless 64-byte frames that are not addressed to the appliance,
so this measures the cheapest path: RX burst, parse Ethernet, count a drop, free.
Usage: .venv/bin/python bench/host_null.py [--runs 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

import common
from pylb import telemetry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BURST = common.BURST


def steal_jiffies() -> int:
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def testpmd_once(seconds: float, mode: str) -> dict:
    return common.testpmd(["net_null0,copy=0"], mode, seconds)


def pylb_once(seconds: float) -> dict:
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile",
                          os.path.join(ROOT, "hwconfig", "null.yaml"), "--instance", "bench"],
                         stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if "running:" in line:
                break
        else:
            raise RuntimeError("pylb did not start")
        time.sleep(0.5)
        s0, t0 = telemetry.query("pylb-bench", "/pylb/stats")["counters"], time.monotonic()
        time.sleep(seconds)
        s1, t1 = telemetry.query("pylb-bench", "/pylb/stats")["counters"], time.monotonic()
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    pkts = s1["rx_packets"] - s0["rx_packets"]
    return {"cycles_per_packet": (s1["busy_cycles"] - s0["busy_cycles"]) / pkts,
            "packets": pkts, "mpps": pkts / (t1 - t0) / 1e6}


def summary(samples: list[dict], key: str) -> dict:
    vals = [s[key] for s in samples]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()

    steal0 = steal_jiffies()
    cases = {"testpmd io": lambda: testpmd_once(args.seconds, "io"),
             "testpmd 5tswap": lambda: testpmd_once(args.seconds, "5tswap"),
             "pylb host path (drop other-host)": lambda: pylb_once(args.seconds)}
    results = {name: [run() for _ in range(args.runs)] for name, run in cases.items()}
    steal = steal_jiffies() - steal0
    base = summary(results["testpmd io"], "cycles_per_packet")["median"]
    report = {
        "command": " ".join(sys.argv), "cpu": cpu_model(), "tsc_mhz": results["testpmd io"][0]["tsc_mhz"],
        "steal_jiffies": steal, "burst": BURST, "runs": args.runs, "seconds": args.seconds,
        "cases": {n: {"cycles_per_packet": summary(r, "cycles_per_packet"), "mpps": summary(r, "mpps"),
                      "ratio_to_testpmd_io": summary(r, "cycles_per_packet")["median"] / base}
                  for n, r in results.items()},
    }
    lines = [f"CPU: {report['cpu']}, TSC {report['tsc_mhz']} MHz, steal {steal} jiffies, "
             f"burst {BURST}, {args.runs} runs x {args.seconds:g} s",
             "", "| case | busy cycles/packet median (min-max) | Mpps median | ratio to testpmd io |",
             "|---|---|---|---|"]
    for n, c in report["cases"].items():
        cp, mp = c["cycles_per_packet"], c["mpps"]
        lines.append(f"| {n} | {cp['median']:.1f} ({cp['min']:.1f}-{cp['max']:.1f}) | "
                     f"{mp['median']:.1f} | {c['ratio_to_testpmd_io']:.2f}x |")
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with open(os.path.join(args.out, f"host_null-{stamp}.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, f"host_null-{stamp}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
