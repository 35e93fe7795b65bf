"""Which DPDK poll-mode drivers are installed, read from the ELF files.

Like dpdk-pmdinfo: librte_eal's .rodata holds 'DPDK_PLUGIN_PATH=<dir>', and each
driver's .rodata holds 'PMD_INFO_STRING=<json>' describing the driver.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Pmd:
    name: str
    path: str
    kmod: str | None
    pci_ids: int
    params: str | None


def rodata_strings(path: str, marker: bytes) -> list[str]:
    """Every NUL-terminated string in `path`'s .rodata that starts with `marker`."""
    try:
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".rodata")
            data = sec.data() if sec is not None else b""
    except (OSError, ELFError):
        return []
    out, pos = [], data.find(marker)
    while pos >= 0:
        end = data.find(b"\0", pos)
        out.append(data[pos + len(marker):end].decode(errors="replace"))
        pos = data.find(marker, end)
    return out


def eal_library() -> str | None:
    """Path of the librte_eal shared object the dynamic linker would load."""
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.strip().startswith("librte_eal.so") and "=>" in line:
            return line.split("=>", 1)[1].strip()
    found = sorted(glob.glob("/usr/lib/*/librte_eal.so.*") + glob.glob("/usr/local/lib*/librte_eal.so.*"))
    return found[0] if found else None


def plugin_dir(eal: str | None = None) -> str | None:
    eal = eal or eal_library()
    if not eal:
        return None
    paths = rodata_strings(eal, b"DPDK_PLUGIN_PATH=")
    return paths[0] if paths else None


def installed_pmds(directory: str | None = None) -> list[Pmd]:
    """Drivers in the plugin directory, one entry per driver name."""
    directory = directory or plugin_dir()
    if not directory or not os.path.isdir(directory):
        return []
    seen: dict[str, Pmd] = {}
    files = {os.path.realpath(p) for p in glob.glob(os.path.join(directory, "*.so*"))}
    for path in sorted(files):
        for s in rodata_strings(path, b"PMD_INFO_STRING="):
            try:
                info = json.loads(s)
            except ValueError:
                continue
            name = info.get("name")
            if name and name not in seen:
                seen[name] = Pmd(name, path, info.get("kmod"), len(info.get("pci_ids", [])),
                                 info.get("params"))
    return sorted(seen.values(), key=lambda p: p.name)
