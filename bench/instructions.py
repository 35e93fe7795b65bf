#!/usr/bin/env python3
"""Benchmark: the instructions a packet costs, by function, counted rather
than timed. This VM's cycle figures move by 10-20% from run to run, more
than most single changes to the fast path are worth; the instructions the
pipeline executes per packet do not move at all. Valgrind's callgrind
counts them while the worker is inside pylb_host_process (the pipeline:
parsing, classifying, each path, the outputs; not the drivers' RX and TX),
for bench/paths.py's cases (1,000 flows each), and they are divided by the
packets that went through.

The dataplane is built again for it, in a copy of the tree
(bench/build/instructions): for x86-64-v3 (valgrind 3.19 decodes no
AVX-512; the FIBs' bulk lookups then take DPDK's scalar code, as on a CPU
without it) with AES-NI (-maes: the GENEVE cookie's MAC as the bench's CPU
runs it, not OpenSSL's table AES) and with -g (lines for
callgrind_annotate). EAL runs without
hugepages (valgrind cannot map them). Cycles still decide (bench/paths.py);
this says which change removed what, exactly, at once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
TREE = os.path.join(common.BUILD, "instructions")


def side(kind: str, pcap: str, seconds: float) -> None:
    """Under valgrind, in the copy: bench/paths.py's dataplane for `kind`,
    run for `seconds`; prints the packets the pipeline took, in all, and
    of them those forwarded and (GENEVE answers) those taken back."""
    import paths
    from pylb import _native as native

    class Counted(native.Dataplane):
        def close(self):
            # The worker stopped first: valgrind runs one thread at a time,
            # and it would go on taking packets while this one counts.
            self.stop()
            t = self.totals()
            print(json.dumps({n: int(t[n]) for n in ("rx_packets", *SHARES)}))
            super().close()

    def eal_start(native, prefix, name="pylb-bench"):
        common.die_with_parent()
        native.eal_init([name, "-l", "0,1", "--no-pci", "--no-huge", "-m", "1024",
                         "--file-prefix", prefix, "--log-level", "*:error"])

    native.Dataplane = Counted
    common.eal_start = eal_start
    paths.ACL_PREFIXES = 1000
    paths.pylb_side(kind, pcap, 1000, seconds)


# The counters a count reports as shares of the packets: what became of
# them, so that a count of packets that all went the wrong way is not
# taken for the path's.
SHARES = ("forwarded", "inspect_returned")


def functions(callgrind_out: str) -> dict[str, int]:
    """Instructions by function (their inlined code included) from a
    callgrind output file; a library's function without a symbol (DPDK's
    FIB and hash lookups) by the library's name."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100",
                           callgrind_out],
                          capture_output=True, text=True, check=True).stdout
    by = defaultdict(int)
    for line in text.split("file:function", 1)[1].splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+\S*?:(\S+)(?: \[(\S+)\])?", line)
        if m:
            name = m.group(2)
            if name.startswith("0x") and m.group(3):
                name = os.path.basename(m.group(3)).split(".so")[0]
            by[name] += int(m.group(1).replace(",", ""))
    return dict(by)


def count(kind: str, seconds: float, work: str) -> dict:
    """One case's instructions per packet, in all and by function."""
    import paths
    pcap = os.path.join(work, f"{kind}.pcap")
    paths.make_pcap(pcap, kind, 1000)
    out = os.path.join(work, f"{kind}.callgrind")
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--toggle-collect=pylb_host_process",
         f"--callgrind-out-file={out}", sys.executable, os.path.abspath(__file__),
         "--side", kind, pcap, str(seconds)],
        cwd=TREE, env={**os.environ, "PYTHONPATH": os.pathsep.join([TREE, os.path.dirname(__file__)])},
        capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise RuntimeError(f"{kind} under valgrind failed:\n{run.stderr[-3000:]}")
    counted = json.loads(run.stdout.strip().splitlines()[-1])
    packets = counted["rx_packets"]
    by = functions(out)
    return {"packets": packets, "per_packet": sum(by.values()) / packets,
            **{f"{n}_share": counted[n] / packets for n in SHARES},
            "functions": {f: n / packets for f, n in sorted(by.items(), key=lambda x: -x[1])}}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--side":
        return side(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="route,route6,vip,vip_gue,established,tunnel,gue,inspect_out,"
                    "inspect_return",
                    help="comma-separated bench/paths.py cases (1,000 flows each)")
    ap.add_argument("--seconds", type=float, default=2,
                    help="how long each case's dataplane runs under valgrind")
    ap.add_argument("--top", type=int, default=6, help="functions listed per case")
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instructions: valgrind is not installed (apt-get install valgrind)")
    cases = common.rebuilt_cases("instructions", args.cases, whole_pipeline=True)
    os.makedirs(args.out, exist_ok=True)
    shutil.rmtree(TREE, ignore_errors=True)
    common.build_copy(TREE, PYLB_MARCH="x86-64-v3", PYLB_CFLAGS="-g -maes")
    work = os.path.join(TREE, "work")
    os.makedirs(work)
    table = {c: count(c, args.seconds, work) for c in cases}
    shutil.rmtree(TREE)
    lines = ["| case | instructions per packet | where (per packet) |", "|---|---|---|"]
    for c, r in table.items():
        top = ", ".join(f"{f} {n:.0f}" for f, n in list(r["functions"].items())[:args.top]
                        if n >= 0.5)
        lines.append(f"| {c} | {r['per_packet']:.0f} | {top} |")
    lines.append("\nInstructions executed inside pylb_host_process (drivers' RX and TX left "
                 "out), per packet; by function, with what is inlined into it.")
    common.report(args.out, "instructions", {"command": " ".join(sys.argv), "cases": table},
                  lines)


if __name__ == "__main__":
    main()
