"""pylb as a system service (docs/operator-guide.md#running-as-a-service):
the systemd unit as systemd reads it, the notifications a Type=notify
service sends (readiness once the dataplane forwards, reload, stop,
watchdog) to a socket the test owns (no systemd as PID 1 here), the
hugepages the unit's ExecStartPre reserves, and the man pages."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pylb import hostinfo

from test_cli import ROOT, error_line, profile, pylb

UNIT = ROOT / "packaging" / "systemd" / "pylb@.service"


def verify(unit_text: str, tmp_path) -> subprocess.CompletedProcess:
    """systemd-analyze verify of the unit, its /usr/bin/pylb this checkout's."""
    path = tmp_path / "pylb@.service"
    path.write_text(unit_text.replace("/usr/bin/pylb", shutil.which("pylb") or
                                      str(Path(sys.executable).parent / "pylb")))
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.unit
def test_the_unit_is_what_systemd_reads(tmp_path):
    text = UNIT.read_text()
    r = verify(text, tmp_path)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
                 "ExecStartPre=/usr/bin/pylb hugepages --profile /etc/pylb/%i/profile.yaml",
                 "WatchdogSec="):
        assert line in text
    # The check can fail: a bad line is reported.
    r = verify(text.replace("Type=notify", "Type=notifyy"), tmp_path)
    assert "Failed to parse service type" in r.stdout + r.stderr


class Listener:
    """The service manager's end of $NOTIFY_SOCKET: a datagram socket."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.got: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str, timeout: float) -> dict[str, str]:
        """The first message (after those seen) that sets key=value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                data = self.s.recv(4096).decode()
            except socket.timeout:
                break
            msg = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
            self.got.append(msg)
            if msg.get(key) == value:
                return msg
        raise AssertionError(f"no {key}={value} within {timeout} s; got {self.got}")


@pytest.mark.e2e        # the appliance on a TAP port, in hugepages
def test_ready_once_forwarding_reloading_stopping_and_the_watchdog_are_notified(tmp_path):
    prof = profile(tmp_path, "notif")
    config = tmp_path / "config.yaml"
    config.write_text("services:\n  - {vip: 10.77.0.100, port: 80, backends: ['10.77.0.11:80']}\n")
    listener = Listener(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=listener.path, WATCHDOG_USEC="300000")
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof, "--config",
                          str(config)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        ready = listener.wait_for("READY", "1", 120)
        # Ready means forwarding: the workers run, the configuration is in
        # force and the API answers, at once.
        assert "forwarding" in ready.get("STATUS", "")
        r = pylb("services", "--instance", "notif", "--json")
        assert r.returncode == 0 and "10.77.0.100" in r.stdout, r.stderr
        assert int(ready["MAINPID"]) == p.pid
        listener.wait_for("WATCHDOG", "1", 5)
        config.write_text("services:\n  - {vip: 10.77.0.101, port: 80, backends: ['10.77.0.11:80']}\n")
        p.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING", "1", 30)
        assert int(reloading["MONOTONIC_USEC"]) > 0
        listener.wait_for("READY", "1", 30)
        assert "10.77.0.101" in pylb("services", "--instance", "notif", "--json").stdout
        p.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING", "1", 30)
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)


@pytest.mark.e2e        # reserves hugepages (never fewer than there are)
def test_pylb_hugepages_reserves_what_the_profile_needs(tmp_path):
    nr = Path("/proc/sys/vm/nr_hugepages")
    before = int(nr.read_text())
    r = pylb("hugepages", "--profile", profile(tmp_path, "hp", memory={"hugepages": True,
                                                                        "size_mb": 64}))
    assert r.returncode == 0 and "MiB free" in r.stdout, r.stderr
    assert int(nr.read_text()) >= before and hostinfo.free_hugepage_mb() >= 64
    assert hostinfo.hugetlbfs_mounts()            # mounted, if it was not
    r = pylb("hugepages", "--profile", profile(tmp_path, "nohp", memory={"hugepages": False}))
    assert r.returncode == 0 and "none needed" in r.stdout
    r = pylb("hugepages", "--profile", str(tmp_path / "missing.yaml"))
    assert r.returncode != 0 and "missing.yaml" in error_line(r)


@pytest.mark.unit
@pytest.mark.parametrize("prog", ["pylb", "pylbctl"])
def test_every_verb_and_option_says_what_it_is_for(prog):
    from pylb import manpage
    missing = []

    def walk(p, path):
        for a in p._actions:
            if not a.help and not isinstance(a, argparse._SubParsersAction):
                missing.append(f"{path} {'/'.join(a.option_strings) or a.dest}")
        for name, help_, sub in manpage._subparsers(p):
            if not help_:
                missing.append(f"{path} {name}")
            walk(sub, f"{path} {name}")
    walk(manpage.parsers()[prog], prog)
    assert missing == []


@pytest.mark.unit
@pytest.mark.parametrize("prog", ["pylb", "pylbctl"])
def test_man_pages_come_from_the_parsers(prog):
    from pylb import manpage
    page = manpage.render(prog, manpage.parsers()[prog])
    assert page.startswith(f".TH {prog.upper()} 8")
    verbs = [name for name, _, _ in manpage._subparsers(manpage.parsers()[prog])]
    assert len(verbs) > 8 and all(f".SS\n{prog} {v}" in page for v in verbs)
    if shutil.which("groff"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-ww", "-Wbreak"], input=page, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and f"{prog} - " in r.stdout and "warning" not in r.stderr
