"""What the benchmarks share: the baseline (dpdk-testpmd forwarding on the
same vdevs, burst and core as pylb, with its own cycle accounting), and the
measurement of a running pylb worker from its counters."""

from __future__ import annotations

import os
import re
import subprocess
import time

from pylb import hostinfo

BURST = 32
PREFIX = "pylb-bench-testpmd"


def testpmd(vdevs: list[str], mode: str, seconds: float, mbufs: int = 0,
            mbuf_size: int = 0) -> dict:
    """testpmd in `mode` (io, 5tswap, ...) for `seconds` on one worker core
    (with `mbufs` mbufs of `mbuf_size` bytes: a pcap replayed endlessly holds
    all its frames)."""
    cmd = ["stdbuf", "-oL", "dpdk-testpmd", "-l", "0,1", "--no-pci", "--in-memory", "--file-prefix", PREFIX]
    for v in vdevs:
        cmd += ["--vdev", v]
    cmd += ["--log-level", "*:error", "--", f"--forward-mode={mode}", "--auto-start",
            "--record-core-cycles", "--nb-cores=1", "--rxq=1", "--txq=1", f"--burst={BURST}"]
    if mbufs:
        cmd.append(f"--total-num-mbufs={mbufs}")
    if mbuf_size:
        cmd.append(f"--mbuf-size={mbuf_size}")
    # testpmd stops when its stdin says so.
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    # Timed from when it forwards (loading a large pcap takes seconds; its
    # output is line-buffered so that the line comes when written).
    head = []
    for line in p.stdout:
        head.append(line)
        if "Press enter to exit" in line:
            break
    time.sleep(seconds)
    out, _ = p.communicate("\n", timeout=60)
    out = "".join(head) + out
    hostinfo.remove_instance_files(PREFIX)
    m = re.search(r"CPU cycles/packet=([\d.]+) \(total cycles=(\d+) / total \w+ packets=(\d+)\) "
                  r"at (\d+) MHz", out)
    if not m:
        raise RuntimeError("testpmd gave no cycle figures:\n" + out[-2000:])
    # Mpps: what the core forwards while busy (the TSC rate over cycles/packet).
    return {"cycles_per_packet": float(m.group(1)), "packets": int(m.group(3)),
            "mpps": int(m.group(4)) / float(m.group(1)), "tsc_mhz": int(m.group(4))}


def die_with_parent() -> None:
    """A benchmark's side process ends with the process that started it
    (killed on a timeout, it must not leave a worker spinning)."""
    import ctypes
    import signal
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def eal_start(native, prefix: str, name: str = "pylb-bench") -> None:
    """EAL for a benchmark's pylb side (vdevs only, in memory, its own
    prefix); the side dies with its parent."""
    die_with_parent()
    native.eal_init([name, "-l", "0,1", "--no-pci", "--in-memory", "--file-prefix", prefix,
                     "--log-level", "*:error"])


def eal_end(native, prefix: str) -> None:
    """EAL cleanup, and the runtime directory DPDK leaves behind removed."""
    native.eal_cleanup()
    hostinfo.remove_instance_files(prefix)


def worker_deltas(dp, names, seconds: float, warmup: float = 1.0) -> dict:
    """Start dp's workers and return how its summed counters moved over
    `seconds` (after `warmup`), by counter name; then close it."""
    dp.start()
    time.sleep(warmup)
    c0 = dp.counters.sum(axis=0).copy()
    time.sleep(seconds)
    c1 = dp.counters.sum(axis=0).copy()
    return {n: int(c1[i] - c0[i]) for i, n in enumerate(names)}


def _cpu_times() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


_START = _cpu_times()        # when the benchmark began


def machine(tsc_mhz: int = 0) -> dict:
    """What the figures came from: CPU model, cores, TSC frequency, and the
    share of CPU time the hypervisor stole, since boot and while this
    benchmark ran (a busy hypervisor inflates cycles)."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    now = _cpu_times()
    run = [b - a for a, b in zip(_START, now)]
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "tsc_mhz": tsc_mhz,
            "steal_share_since_boot": now[7] / sum(now) if sum(now) else 0.0,
            "steal_share_during_run": run[7] / sum(run) if sum(run) else 0.0}


def pct(v: list[float], p: float) -> float:
    """The p-th percentile of v (nearest rank)."""
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def write_pcap(path: str, frames) -> None:
    """A classic pcap (microsecond stamps, Ethernet) of `frames` (bytes)."""
    import struct
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for b in frames:
            f.write(struct.pack("<IIII", 0, 0, len(b), len(b)))
            f.write(b)


def report(out_dir: str, name: str, summary: dict, lines: list[str]) -> None:
    """Write NAME.json (summary) and NAME.md (the command, the machine and
    the table `lines`) to out_dir, and print the table."""
    import json
    text = "\n".join(lines)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(summary, f, indent=2)
    m = summary.get("machine", {})
    tsc = f", {m['tsc_mhz']} MHz TSC" if m.get("tsc_mhz") else ""
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(f"`{summary['command']}` on {m.get('cpu', '?')}{tsc}, "
                f"{m.get('steal_share_during_run', 0):.2%} of CPU time stolen during the run"
                f"\n\n{text}\n")
    print(text)
