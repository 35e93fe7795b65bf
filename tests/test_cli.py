"""The build, the `pylb` command's failure modes, and `pylb doctor`, run for real."""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pylb import hostinfo

ROOT = Path(__file__).resolve().parent.parent


def pylb(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "pylb", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


def error_line(r) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("pylb: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def profile(tmp_path, name, **over):
    prof = {"name": name, "lcores": {"main": 0, "workers": "1"},
            "memory": {"hugepages": True, "size_mb": 128},
            "ports": [{"name": "p0", "vdev": f"net_tap0,iface={name}0", "addresses": ["10.77.0.1/24"]}]}
    prof.update(over)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(prof))
    return str(p)


def test_native_sources_compile_warning_free(tmp_path):
    """Compiled for real, optimised as the build does (-O3 runs the analyses
    that -fsyntax-only does not), every warning an error."""
    cflags = shlex.split(subprocess.run(["pkg-config", "--cflags", "libdpdk"], check=True,
                                        capture_output=True, text=True).stdout)
    flags = cflags + ["-O3", "-march=native", "-DALLOW_EXPERIMENTAL_API", "-Werror"]
    r = subprocess.run(["make", "-s", "-C", str(ROOT / "native"), f"-j{os.cpu_count() or 1}",
                        f"O={tmp_path}", "CFLAGS_DP=" + shlex.join(flags)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def test_build_without_dpdk_says_which_package_to_install():
    env = dict(os.environ, PKG_CONFIG_LIBDIR="/nonexistent", PKG_CONFIG_PATH="")
    r = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1] == (
        "pylb: DPDK development files not found (pkg-config libdpdk); "
        "install them with: apt-get install libdpdk-dev")


def test_native_module_imports_with_counter_names():
    from pylb import _native
    assert "rx_packets" in _native.COUNTER_NAMES
    assert {"eth_truncated", "arp_truncated", "ipv4_bad_ihl",
            "ipv4_bad_total_length"} <= set(_native.DROP_REASONS)


def test_bad_profile_exits_2_with_one_line(tmp_path):
    path = profile(tmp_path, "badp", lcores={"main": 0, "workers": "x"})
    r = pylb("run", "--profile", path)
    assert r.returncode == 2
    assert error_line(r).startswith(f"pylb: error: {path}:")
    assert "lcores.workers" in error_line(r)


def test_not_enough_hugepages_exits_1_saying_how_to_fix(tmp_path):
    free = hostinfo.free_hugepage_mb()
    path = profile(tmp_path, "hugep", memory={"hugepages": True, "size_mb": free + 1024})
    r = pylb("run", "--profile", path)
    assert r.returncode == 1
    line = error_line(r)
    assert "free hugepages" in line and "nr_hugepages" in line and "hugepages: false" in line


def test_port_that_fails_to_start_exits_1_naming_the_port(tmp_path):
    path = profile(tmp_path, "badport", ports=[
        {"name": "uplink", "vdev": "net_pcap0,rx_pcap=/nonexistent/in.pcap,tx_pcap=/tmp/pylb-out.pcap"}])
    r = pylb("run", "--profile", path)
    assert r.returncode == 1
    line = error_line(r)
    assert "port uplink" in line and "net_pcap0" in line
    assert hostinfo.instance_files("pylb-badport") == []


def test_missing_dpdk_runtime_exits_1_saying_what_to_install(tmp_path):
    """Hide librte_eal in a private mount namespace, as on a host without the dpdk package."""
    from pylb.pmdinfo import eal_library
    eal = os.path.realpath(eal_library())
    path = profile(tmp_path, "nodpdk")
    cmd = (f"mount --bind /dev/null {shlex.quote(eal)} && "
           f"exec {shlex.quote(sys.executable)} -m pylb run --profile {shlex.quote(path)}")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", cmd], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 1, r.stderr
    line = error_line(r)
    assert "DPDK runtime libraries are missing" in line and "apt-get install dpdk" in line


def test_stats_of_an_instance_that_is_not_running():
    r = pylb("stats", "--instance", "surely-not-running")
    assert r.returncode == 1
    assert "no running pylb instance" in error_line(r)


def test_doctor_reports_hugepages_mounts_and_pmds():
    r = pylb("doctor", "--json")
    report = json.loads(r.stdout)
    assert r.returncode == (0 if report["ready"] else 1)
    assert report["ready"], report["checks"]   # make test reserves hugepages first
    pmds = {p["name"] for p in report["dpdk"]["pmds"]}
    assert {"net_tap", "net_null", "net_ring", "net_pcap", "net_memif"} <= pmds
    assert any(p["size_kb"] == 2048 and p["total"] > 0 for p in report["hugepages"])
    assert any(m["path"] for m in report["hugetlbfs_mounts"])
    assert {c["name"] for c in report["checks"]} >= {"dpdk", "hugepages", "hugetlbfs", "iommu",
                                                     "isolated_cores", "simd", "nics"}
    with open("/proc/cpuinfo") as f:
        assert report["cpus"]["avx512"] == (" avx512f " in f.read())
    text = pylb("doctor").stdout
    assert "hugepages (per NUMA node and size)" in text and "net_tap" in text


def test_pip_builds_a_wheel_with_the_native_extension(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYLB_MARCH="x86-64-v2"))
    assert r.returncode == 0, r.stderr
    import zipfile
    wheel, = tmp_path.glob("pylb-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("pylb/_native") and n.endswith(".so") for n in names)
    assert "pylb/v1/pylb_pb2_grpc.py" in names          # generated by the build
