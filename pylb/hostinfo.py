"""Facts about the host that DPDK depends on: hugepages, hugetlbfs, runtime files."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

SYS_NODES = "/sys/devices/system/node"
SYS_HUGEPAGES = "/sys/kernel/mm/hugepages"
DPDK_RUNTIME = "/var/run/dpdk"


@dataclass(frozen=True)
class HugepagePool:
    node: int | None          # None: the system-wide counters
    size_kb: int
    total: int
    free: int


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def hugepage_pools() -> list[HugepagePool]:
    """Hugepages per NUMA node and page size (system-wide when there is no NUMA info)."""
    out = []
    for d in sorted(glob.glob(f"{SYS_NODES}/node*/hugepages/hugepages-*kB")):
        node = int(re.search(r"node(\d+)", d).group(1))
        size = int(re.search(r"hugepages-(\d+)kB", d).group(1))
        out.append(HugepagePool(node, size, _read_int(f"{d}/nr_hugepages"), _read_int(f"{d}/free_hugepages")))
    if not out:
        for d in sorted(glob.glob(f"{SYS_HUGEPAGES}/hugepages-*kB")):
            size = int(re.search(r"hugepages-(\d+)kB", d).group(1))
            out.append(HugepagePool(None, size, _read_int(f"{d}/nr_hugepages"), _read_int(f"{d}/free_hugepages")))
    return out


def hugetlbfs_mounts() -> list[tuple[str, str]]:
    """(mount point, options) of every hugetlbfs mount."""
    out = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[2] == "hugetlbfs":
                    out.append((parts[1].replace("\\040", " "), parts[3]))
    except OSError:
        pass
    return out


def free_hugepage_mb() -> int:
    return sum(p.free * p.size_kb for p in hugepage_pools()) // 1024


def hugepage_problem(size_mb: int, huge_dir: str | None = None) -> str | None:
    """Why an appliance needing `size_mb` of hugepage memory cannot start, or None."""
    mounts = [m for m, _ in hugetlbfs_mounts()]
    fix = ("reserve them with 'echo 512 > /proc/sys/vm/nr_hugepages' and 'mount -t hugetlbfs "
           "nodev /dev/hugepages' (or run 'make hugepages'), or set memory.hugepages: false")
    if not mounts:
        return f"no hugetlbfs mount: {fix}"
    if huge_dir and huge_dir not in mounts:
        return f"memory.huge_dir {huge_dir} is not a hugetlbfs mount (mounts: {', '.join(mounts)})"
    free = free_hugepage_mb()
    if free < size_mb:
        return f"only {free} MiB of free hugepages, the profile needs {size_mb} MiB: {fix}"
    return None


def default_hugepage_kb() -> int:
    """The size of the hugepages nr_hugepages counts (/proc/meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Hugepagesize:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 2048


def reserve_hugepages(size_mb: int, huge_dir: str | None = None,
                      nr_path: str = "/proc/sys/vm/nr_hugepages") -> str:
    """Make `size_mb` of default-size hugepages free, reserving more if
    needed (never fewer: other processes may use them), and mount hugetlbfs
    at `huge_dir` (or /dev/hugepages) if nothing is mounted there. What was
    done, in one line; raises OSError with what failed."""
    size_kb = default_hugepage_kb()
    have = _read_int(nr_path)
    free = sum(p.free for p in hugepage_pools() if p.size_kb == size_kb)
    short = -(-size_mb * 1024 // size_kb) - free
    if short > 0:
        with open(nr_path, "w") as f:
            f.write(str(have + short))
        if _read_int(nr_path) < have + short:
            raise OSError(f"only {_read_int(nr_path)} hugepages could be reserved "
                          f"({have + short} needed for {size_mb} MiB free)")
    where = huge_dir or "/dev/hugepages"
    mounted = [m for m, _ in hugetlbfs_mounts()]
    if where not in mounted and (huge_dir or not mounted):
        os.makedirs(where, exist_ok=True)
        r = subprocess.run(["mount", "-t", "hugetlbfs", "nodev", where], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise OSError(f"cannot mount hugetlbfs at {where}: {r.stderr.strip()}")
        mounted.append(where)
    return (f"hugepages: {free_hugepage_mb()} MiB free ({_read_int(nr_path)} reserved, "
            f"{max(short, 0)} added); hugetlbfs at {', '.join(mounted)}")


def instance_files(prefix: str) -> list[str]:
    """Hugepage files and the runtime directory an EAL instance with `prefix` leaves behind."""
    files = []
    for mount, _ in hugetlbfs_mounts():
        files += glob.glob(os.path.join(glob.escape(mount), f"{glob.escape(prefix)}map_*"))
    run_dir = os.path.join(DPDK_RUNTIME, prefix)
    if os.path.isdir(run_dir):
        files.append(run_dir)
    return sorted(files)


def instance_alive(prefix: str) -> bool:
    """Does a process use the EAL runtime files of `prefix`? (Every process
    of an instance keeps a shared flock on its memory maps' `fbarray_*`
    files while it lives, telemetry or not.)"""
    import fcntl
    run_dir = os.path.join(DPDK_RUNTIME, prefix)
    for path in glob.glob(os.path.join(glob.escape(run_dir), "fbarray_*")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
    return False


def remove_instance_files(prefix: str) -> list[str]:
    """Remove what `instance_files` finds; returns what was removed."""
    removed = []
    for path in instance_files(prefix):
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed
