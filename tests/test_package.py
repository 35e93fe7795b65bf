"""The Debian package (`make deb`): built from this checkout, installed with
apt-get as an operator would, run from the installed files (pylb doctor,
config and profile checks, pylbctl, the unit, the man pages), then purged,
leaving nothing behind."""
from __future__ import annotations

import os
import subprocess

import pytest

from test_cli import ROOT

INSTALLED = ["/usr/bin/pylb", "/usr/bin/pylbctl", "/opt/pylb", "/lib/systemd/system/pylb@.service",
             "/usr/share/man/man8/pylb.8.gz", "/usr/share/doc/pylb/examples/demo.yaml"]


def run(*cmd, timeout=300):
    """From / (not this checkout, whose pylb/ would be imported first)."""
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd="/",
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


@pytest.mark.build
@pytest.mark.timeout(1200)
def test_the_package_installs_runs_and_leaves_cleanly(tmp_path):
    if os.path.exists("/usr/bin/pylb"):
        pytest.fail("/usr/bin/pylb exists already: this test installs and purges the package")
    r = run(str(ROOT / "scripts" / "build-deb.sh"), str(tmp_path), timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    deb = r.stdout.strip().splitlines()[-1]
    control = run("dpkg-deb", "--field", deb, "Package", "Version", "Depends").stdout
    assert "Package: pylb" in control and "librte-eal23" in control and \
        "librte-mempool-ring23" in control
    listing = run("dpkg-deb", "--contents", deb).stdout
    for path in INSTALLED:
        assert f".{path}" in listing, path
    try:
        r = run("apt-get", "install", "-y", "-q", "--no-install-recommends", deb, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert all(os.path.exists(p) for p in INSTALLED)
        assert run("/usr/bin/pylb", "--version").stdout.startswith("pylb ")
        r = run("/usr/bin/pylb", "doctor")
        assert r.returncode in (0, 1) and "hugepages" in r.stdout.lower(), r.stderr
        r = run("/usr/bin/pylb", "config", "check", "/usr/share/doc/pylb/examples/demo.yaml")
        assert r.returncode == 0 and ": ok:" in r.stdout, r.stderr
        r = run("/usr/bin/pylb", "profile", "check", "/usr/share/doc/pylb/examples/tap.yaml")
        assert r.returncode == 0 and ": ok:" in r.stdout, r.stderr
        r = run("/usr/bin/pylbctl", "service", "--help")
        assert r.returncode == 0 and "add" in r.stdout
        r = run("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/pylb@.service")
        assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
        # The extension is the package's own, linked against Debian's DPDK.
        r = run("/opt/pylb/bin/python", "-c", "import pylb._native as n; print(n.__file__)")
        assert r.returncode == 0 and r.stdout.startswith("/opt/pylb/"), r.stderr
    finally:
        r = run("apt-get", "purge", "-y", "-q", "pylb", timeout=600)
    assert r.returncode == 0, r.stderr
    assert [p for p in INSTALLED if os.path.lexists(p)] == []
