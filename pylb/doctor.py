"""`pylb doctor`: is this host ready to run a DPDK appliance, and if not, why."""

from __future__ import annotations

import glob
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pylb import hostinfo, pmdinfo

PCI_NET_CLASS = "0x02"
DPDK_DRIVERS = {"vfio-pci", "uio_pci_generic", "igb_uio"}


@dataclass
class Check:
    name: str
    status: str         # ok | warn | fail
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": [asdict(c) for c in self.checks], **self.facts}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _link_name(path: str) -> str | None:
    return os.path.basename(os.path.realpath(path)) if os.path.exists(path) else None


def nics() -> list[dict[str, Any]]:
    """Network PCI devices with their kernel driver, and the kernel interface if any."""
    ifaces: dict[str, str] = {}
    for net in glob.glob("/sys/class/net/*"):
        dev = _link_name(f"{net}/device")
        if dev:
            ifaces[dev] = os.path.basename(net)
    out = []
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        if not _read(f"{dev}/class").startswith(PCI_NET_CLASS):
            continue
        addr = os.path.basename(dev)
        driver = _link_name(f"{dev}/driver")
        out.append({"pci": addr, "driver": driver, "interface": ifaces.get(addr),
                    "numa_node": int(_read(f"{dev}/numa_node") or -1),
                    "vendor_device": f"{_read(f'{dev}/vendor')}:{_read(f'{dev}/device')}",
                    "dpdk_ready": driver in DPDK_DRIVERS})
    # Virtual NICs without a PCI device (virtio-mmio, veth, tap) are listed by interface.
    for net in sorted(glob.glob("/sys/class/net/*")):
        name = os.path.basename(net)
        if name == "lo" or _link_name(f"{net}/device") in ifaces:
            continue
        out.append({"pci": None, "driver": _link_name(f"{net}/device/driver"), "interface": name,
                    "numa_node": -1, "vendor_device": None, "dpdk_ready": False})
    return out


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo's first "flags" line)."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def diagnose() -> Report:
    r = Report()

    eal = pmdinfo.eal_library()
    plugins = pmdinfo.plugin_dir(eal) if eal else None
    pmds = pmdinfo.installed_pmds(plugins) if plugins else []
    r.facts["dpdk"] = {"eal_library": eal, "plugin_dir": plugins,
                       "pmds": [asdict(p) for p in pmds]}
    if not eal:
        r.checks.append(Check("dpdk", "fail", "DPDK runtime not found: apt-get install dpdk"))
    elif not pmds:
        r.checks.append(Check("dpdk", "fail", f"{eal}: no poll-mode drivers in {plugins}"))
    else:
        net = [p.name for p in pmds if p.name.startswith("net_")]
        r.checks.append(Check("dpdk", "ok", f"{eal}; {len(pmds)} drivers ({len(net)} net) in {plugins}"))

    pools = hostinfo.hugepage_pools()
    mounts = hostinfo.hugetlbfs_mounts()
    r.facts["hugepages"] = [asdict(p) for p in pools]
    r.facts["hugetlbfs_mounts"] = [{"path": m, "options": o} for m, o in mounts]
    free_mb = hostinfo.free_hugepage_mb()
    per = ", ".join(f"node{p.node if p.node is not None else '-'} {p.size_kb // 1024 if p.size_kb >= 1024 else p.size_kb}"
                    f"{'M' if p.size_kb >= 1024 else 'k'}: {p.free}/{p.total} free" for p in pools)
    if free_mb == 0:
        r.checks.append(Check("hugepages", "fail", f"no free hugepages ({per or 'none'}); "
                              "'make hugepages' or 'echo 512 > /proc/sys/vm/nr_hugepages'"))
    else:
        r.checks.append(Check("hugepages", "ok", f"{free_mb} MiB free ({per})"))
    if mounts:
        r.checks.append(Check("hugetlbfs", "ok", ", ".join(f"{m} ({o})" for m, o in mounts)))
    else:
        r.checks.append(Check("hugetlbfs", "fail", "no hugetlbfs mount: 'mount -t hugetlbfs nodev /dev/hugepages'"))

    groups = len(glob.glob("/sys/kernel/iommu_groups/*"))
    vfio = os.path.isdir("/sys/module/vfio_pci")
    noiommu = _read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode") == "Y"
    r.facts["iommu"] = {"groups": groups, "vfio_pci_loaded": vfio, "noiommu_mode": noiommu,
                        "dev_vfio": os.path.isdir("/dev/vfio")}
    if groups and vfio:
        r.checks.append(Check("iommu", "ok", f"{groups} IOMMU groups, vfio-pci loaded"))
    else:
        missing = []
        if not groups:
            missing.append("no IOMMU groups (enable VT-d/AMD-Vi and intel_iommu=on iommu=pt)")
        if not vfio:
            missing.append("vfio-pci not loaded (modprobe vfio-pci)")
        r.checks.append(Check("iommu", "warn", "; ".join(missing) + ": needed only for PCI NICs, "
                              "vdevs (tap, null, ring, pcap) work without"))

    isolated = _read("/sys/devices/system/cpu/isolated")
    r.facts["cpus"] = {"online": _read("/sys/devices/system/cpu/online"), "isolated": isolated,
                       "nohz_full": _read("/sys/devices/system/cpu/nohz_full")}
    r.checks.append(Check("isolated_cores", "ok" if isolated else "warn",
                          f"isolated: {isolated}" if isolated else
                          "no isolated cores (isolcpus=...): workers share cores with the OS"))

    flags = cpu_flags()
    r.facts["cpus"]["avx512"] = "avx512f" in flags
    r.checks.append(Check("simd", "ok", "AVX-512: the FIB lookups take DPDK's vector code"
                          if "avx512f" in flags else
                          "no AVX-512: the FIB lookups are DPDK's scalar ones (the same answers)"))

    r.facts["nics"] = nics()
    ready = [n for n in r.facts["nics"] if n["dpdk_ready"]]
    r.checks.append(Check("nics", "ok" if ready else "warn",
                          f"{len(ready)} NIC(s) bound to a DPDK driver" if ready else
                          "no NIC bound to vfio-pci (dpdk-devbind.py -b vfio-pci <pci>); vdevs still work"))

    running = sorted(os.path.basename(d) for d in glob.glob(f"{hostinfo.DPDK_RUNTIME}/pylb-*"))
    r.facts["instances"] = running
    return r


def render(r: Report) -> str:
    lines = [f"{'READY' if r.ready else 'NOT READY'}"]
    for c in r.checks:
        lines.append(f"  [{c.status:4}] {c.name:15} {c.detail}")
    lines.append("hugepages (per NUMA node and size):")
    for p in r.facts["hugepages"]:
        node = "-" if p["node"] is None else p["node"]
        lines.append(f"  node {node}  {p['size_kb']:>8} kB  total {p['total']:>6}  free {p['free']:>6}")
    lines.append("hugetlbfs mounts:")
    lines += [f"  {m['path']}  {m['options']}" for m in r.facts["hugetlbfs_mounts"]] or ["  (none)"]
    lines.append("NICs:")
    for n in r.facts["nics"]:
        lines.append(f"  {n['pci'] or '-':14} {n['interface'] or '-':12} driver {n['driver'] or '-':14}"
                     f" {'DPDK-ready' if n['dpdk_ready'] else 'kernel'}")
    pmds = r.facts["dpdk"]["pmds"]
    lines.append(f"poll-mode drivers ({len(pmds)}):")
    names = [p["name"] for p in pmds]
    for i in range(0, len(names), 6):
        lines.append("  " + " ".join(f"{n:20}" for n in names[i:i + 6]).rstrip())
    if r.facts["instances"]:
        lines.append("running pylb instances: " + ", ".join(r.facts["instances"]))
    return "\n".join(lines)
