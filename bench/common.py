"""What the benchmarks share: the baselines (dpdk-testpmd forwarding on the
same vdevs, burst and core as pylb, with its own cycle accounting; DPDK's
l3fwd routing the same input), and the measurement of a running pylb worker
from its counters."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from pylb import hostinfo

BURST = 32
PREFIX = "pylb-bench-testpmd"
L3FWD_PREFIX = "pylb-bench-l3fwd"
EXAMPLES = "/usr/share/dpdk/examples"       # dpdk-doc: DPDK's example sources
BUILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build")


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


def l3fwd_binary() -> str:
    """DPDK's l3fwd, built once (bench/build/) from the example sources
    Debian's dpdk-doc installs (scripts/install-deps.sh), asking for no RX
    checksum offload (it asks for it, which the vdevs refuse; it never reads
    the result)."""
    binary = os.path.join(BUILD, "l3fwd", "build", "l3fwd")
    if os.path.exists(binary):
        return binary
    if not os.path.isdir(os.path.join(EXAMPLES, "l3fwd")):
        raise RuntimeError(f"no l3fwd sources in {EXAMPLES}: apt-get install dpdk-doc")
    shutil.rmtree(BUILD, ignore_errors=True)
    for d in ("l3fwd", "common"):               # l3fwd includes ../common
        shutil.copytree(os.path.join(EXAMPLES, d), os.path.join(BUILD, d))
    main = os.path.join(BUILD, "l3fwd", "main.c")
    with open(main) as f:
        src = f.read()
    asked = ".offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,"
    if src.count(asked) != 1:
        raise RuntimeError(f"l3fwd's main.c is not the one this bench knows ({asked!r})")
    with open(main, "w") as f:
        f.write(src.replace(asked, ".offloads = 0,"))
    out = subprocess.run(["make", "-s", "-C", os.path.join(BUILD, "l3fwd")],
                         capture_output=True, text=True)
    if out.returncode != 0 or not os.path.exists(binary):
        raise RuntimeError("building l3fwd failed:\n" + out.stderr[-2000:])
    return binary


def telemetry(prefix: str, timeout: float = 60):
    """A query function on the telemetry socket of the EAL instance `prefix`."""
    path = os.path.join(hostinfo.DPDK_RUNTIME, prefix, "dpdk_telemetry.v2")
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no telemetry socket at {path}")
        time.sleep(0.1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(4096)                                # its greeting

    def query(cmd: str) -> dict:
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 16))
    return query


def l3fwd(vdevs: list[str], routes4: list[tuple[str, int]], routes6: list[tuple[str, int]],
          seconds: float, tsc_mhz: float) -> dict:
    """DPDK's l3fwd (rte_fib lookups, as pylb's; RFC 1812 checks, TTL and
    checksum, MACs) routing the frames of vdevs[0] by `routes` (prefix,
    port) on one worker core, for `seconds` after a second's warm-up: its
    rate from the TX port's counters (telemetry); cycles per packet at the
    TSC rate `tsc_mhz` (the core does nothing else: the input never runs
    dry)."""
    with tempfile.TemporaryDirectory() as tmp:
        rules = []
        for name, routes in (("v4", routes4), ("v6", routes6)):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.writelines(f"R{p} {port}\n" for p, port in routes)
            rules.append(path)
        # One lcore (l3fwd makes a TX queue per lcore; net_pcap has one).
        cmd = [l3fwd_binary(), "-l", "1", "--no-pci", "--in-memory", "--file-prefix",
               L3FWD_PREFIX, "--log-level", "*:error"]
        for v in vdevs:
            cmd += ["--vdev", v]
        cmd += ["--", "-p", "0x3", "--config=(0,0,1),(1,0,1)", f"--rule_ipv4={rules[0]}",
                f"--rule_ipv6={rules[1]}", "--lookup=fib", "--parse-ptype"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            query = telemetry(L3FWD_PREFIX)
            time.sleep(1)
            t0, a = time.monotonic(), query("/ethdev/stats,1")["/ethdev/stats"]["opackets"]
            time.sleep(seconds)
            t1, b = time.monotonic(), query("/ethdev/stats,1")["/ethdev/stats"]["opackets"]
            received = query("/ethdev/stats,0")["/ethdev/stats"]["ipackets"]
        except Exception as e:
            p.kill()
            raise RuntimeError(f"l3fwd: {e}\n" + p.communicate()[0][-2000:]) from e
        finally:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
            hostinfo.remove_instance_files(L3FWD_PREFIX)
    pps = (b - a) / (t1 - t0)
    if pps == 0:
        raise RuntimeError(f"l3fwd forwarded nothing ({received} received)")
    return {"mpps": pps / 1e6, "cycles_per_packet": tsc_mhz * 1e6 / pps}


def build_copy(tree: str, **env: str) -> str:
    """A copy of the project's tree in `tree`, its extension built from
    scratch with `env` added to the environment (PYLB_CFLAGS, PYLB_MARCH:
    setup.py); the copy's path."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("native", "pylb", "proto", "setup.py", "pyproject.toml", "README.md"):
        src, dst = os.path.join(root, name), os.path.join(tree, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.so", "__pycache__"))
        else:
            os.makedirs(tree, exist_ok=True)
            shutil.copy2(src, dst)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return tree


def rebuilt_cases(tool: str, text: str, whole_pipeline: bool = False) -> list[str]:
    """bench/paths.py's cases from a comma-separated list, for a benchmark
    that runs them on a dataplane built again (stages.py, instructions.py).
    The inspect_return cases' input is made by a dataplane
    (bench/paths.py --geneve-frames, the tree's own build): refused in one
    line unless the rebuilt one runs the whole pipeline as that one does
    (instructions.py; stages.py cuts it)."""
    cases = text.split(",")
    bad = [c for c in cases if c.startswith("inspect_return")]
    if bad and not whole_pipeline:
        sys.exit(f"{tool}: {bad[0]}'s input is made by the dataplane under test: leave it out")
    return cases


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
