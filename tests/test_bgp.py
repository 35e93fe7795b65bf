"""The BGP speaker's driver (pylb.bgp.Bird) on its own: what it writes for
BIRD, and a BIRD that cannot reload never fails the change that moved the
announcements (the real sessions: tests/test_e2e_fleet.py)."""

from __future__ import annotations

import logging

from pylb.bgp import Bird
from pylb.model import BgpPeerSpec, BgpSettings

SETTINGS = BgpSettings(65001, (BgpPeerSpec("10.9.0.254", 65000, "p0"),))
PORTS = {"p0": ("k0", ["10.9.0.1/24"])}


def test_the_configuration_announces_what_it_is_told(tmp_path):
    b = Bird(SETTINGS, PORTS, str(tmp_path))
    b.announce(["10.9.9.1/32", "2001:db8::1/128"])
    conf = b.render()
    assert "router id 10.9.0.1;" in conf and "local 10.9.0.1 as 65001;" in conf
    assert "route 10.9.9.1/32 blackhole;" in conf and "route 2001:db8::1/128 blackhole;" in conf
    assert 'interface "k0"' in conf and "bfd on;" in conf and "strict bind on;" in conf


def test_a_bird_that_cannot_reload_is_logged_and_tried_again(tmp_path, caplog):
    b = Bird(SETTINGS, PORTS, str(tmp_path))
    b.proc = object()                  # "running", but no control socket answers
    with caplog.at_level(logging.ERROR, logger="pylb"):
        b.announce(["10.9.9.1/32"])
    assert "bgp: announcing 10.9.9.1/32 failed" in caplog.text
    assert b.prefixes is None          # the next call reloads again
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pylb"):
        b.announce(["10.9.9.1/32"])
    assert "failed" in caplog.text
    b.proc = None


def test_a_backup_is_announced_with_a_longer_path(tmp_path):
    """A peer's pool address held as a backup: its own static protocol,
    exported with the AS path prepended, so routers take it only once the
    owner's shorter one is gone."""
    b = Bird(SETTINGS, PORTS, str(tmp_path))
    b.announce(["10.9.9.1/32"], ["10.9.8.2/32"])
    conf = b.render()
    vips, backups = conf.split("protocol static backups_ipv4")[0], \
        conf.split("protocol static backups_ipv4")[1].split("}")[0]
    assert "route 10.9.9.1/32 blackhole;" in vips and "10.9.8.2" not in vips
    assert "route 10.9.8.2/32 blackhole;" in backups
    assert ('if proto = "backups_ipv4" then { ' + "bgp_path.prepend(65001); " * 3 + "accept; }"
            ) in conf
    import shutil
    import subprocess
    if shutil.which("bird"):            # BIRD itself accepts it
        path = tmp_path / "check.conf"
        path.write_text(conf)
        r = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
