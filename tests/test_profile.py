"""Hardware profile validation: every bad field is named with its file, line and what is expected."""

from __future__ import annotations

import glob
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pylb.errors import ProfileError
from pylb.profile import load_profile, parse_lcore_list

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
name: t1
lcores:
  main: 0
  workers: "1"
memory:
  hugepages: false
  size_mb: 128
ports:
  - name: p0
    vdev: net_tap0,iface=x0
    addresses: [10.9.0.1/24]
"""


KGOOD = GOOD + "    kernel_iface: k0\n"
BGP = """\
bgp:
  local_as: 65001
  peers: [{address: 10.9.0.254, as: 65000, port: p0}]
"""


def write(tmp_path, text):
    p = tmp_path / "profile.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_good_profile_gives_eal_arguments(tmp_path):
    prof = load_profile(write(tmp_path, GOOD))
    assert prof.eal_argv() == ["pylb", "-l", "0,1", "--main-lcore", "0", "--file-prefix", "pylb-t1",
                               "--no-huge", "-m", "128", "--no-pci", "--log-level", "*:notice"]
    assert prof.ports[0].device == "net_tap0,iface=x0"


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "hwconfig" / "*.yaml"))))
def test_shipped_profiles_are_valid(path):
    prof = load_profile(path)
    assert prof.ports and prof.workers


def test_pci_ports_go_to_the_allow_list_and_pci_is_not_disabled():
    prof = load_profile(str(ROOT / "hwconfig" / "baremetal.example.yaml"))
    argv = prof.eal_argv()
    assert "--no-pci" not in argv
    assert argv.count("-a") == 2 and "0000:3b:00.0" in argv


BAD = {
    "unknown top key": (GOOD + "turbo: yes\n", "turbo", "unknown key", 12),
    "unknown port key": (GOOD + "    speed: 10G\n", "ports[0].speed", "unknown key", 12),
    "bad lcore list": (GOOD.replace('workers: "1"', 'workers: "1-"'), "lcores.workers",
                       "lcore list like", 4),
    "reversed lcore range": (GOOD.replace('workers: "1"', 'workers: "3-1"'), "lcores.workers",
                             "lcore list like", 4),
    "worker is main": (GOOD.replace('workers: "1"', 'workers: "0-1"'), "lcores.workers",
                       "main lcore", 4),
    "address does not parse": (GOOD.replace("10.9.0.1/24", "10.9.0.300/24"), "ports[0].addresses[0]",
                               "address with prefix length like 10.99.0.1/24", 11),
    "address without prefix": (GOOD.replace("10.9.0.1/24", "10.9.0.1"), "ports[0].addresses[0]",
                               "address with prefix length like 10.99.0.1/24", 11),
    "no device": (GOOD.replace("    vdev: net_tap0,iface=x0\n", ""), "ports[0]", "exactly one of", 9),
    "unknown timeout": (GOOD + "connections:\n  timeouts:\n    tcp_forever: 5\n",
                        "connections.timeouts.tcp_forever", "unknown key", 14),
    "per-source prefix too long": (GOOD + "connections:\n  per_source:\n    ipv4_prefix: 33\n",
                                   "connections.per_source.ipv4_prefix", "from 1 to 32", 14),
    "per-source unknown key": (GOOD + "connections:\n  per_source:\n    syn_rate: 5\n",
                               "connections.per_source.syn_rate", "unknown key", 14),
    "kernel interface name too long": (GOOD.replace("    vdev: net_tap0,iface=x0\n",
                                                    "    vdev: net_tap0,iface=x0\n    kernel_iface: abcdefghijklmnopq\n"),
                                       "ports[0].kernel_iface", "at most 15", 11),
    "both devices": (GOOD.replace("    vdev: net_tap0,iface=x0\n",
                                  "    vdev: net_tap0\n    pci: '0000:01:00.0'\n"),
                     "ports[0]", "exactly one of", 9),
    "bad pci address": (GOOD.replace("    vdev: net_tap0,iface=x0\n", "    pci: 01:00\n"),
                        "ports[0].pci", "PCI address", 10),
    "bad vdev": (GOOD.replace("net_tap0,iface=x0", "tap0"), "ports[0].vdev", "virtual device", 10),
    "duplicate address": (GOOD + "  - name: p1\n    vdev: net_tap1\n    addresses: [10.9.0.1/16]\n",
                          "ports[1].addresses[0]", "already on port p0", 14),
    "duplicate port name": (GOOD + "  - name: p0\n    vdev: net_tap1\n", "ports[1].name", "used twice", 12),
    "size not a number": (GOOD.replace("size_mb: 128", "size_mb: lots"), "memory.size_mb",
                          "integer from 64", 7),
    "hugepages not a bool": (GOOD.replace("hugepages: false", "hugepages: maybe"), "memory.hugepages",
                             "true or false", 6),
    "no ports": (GOOD.split("ports:")[0], "ports", "missing", None),
    "mid_flow not a bool": (GOOD + "connections:\n  mid_flow: sometimes\n", "connections.mid_flow",
                            "true or false", 13),
    "bgp without local_as": (GOOD + BGP.replace("  local_as: 65001\n", ""), "bgp.local_as",
                             "missing", None),
    "bgp peer without kernel_iface": (GOOD + BGP, "bgp.peers[0].port", "no kernel_iface", 14),
    "bgp peer off the port's network": (KGOOD + BGP.replace("10.9.0.254", "10.8.0.254"),
                                        "bgp.peers[0].address", "not on a network of port p0", 15),
    "bgp peer of no port": (KGOOD + BGP.replace("port: p0", "port: p9"), "bgp.peers[0].port",
                            "one of the ports (p0)", 15),
    "bgp bad AS": (KGOOD + BGP.replace("as: 65000", "as: 0"), "bgp.peers[0].as",
                   "integer from 1", 15),
    "bgp hold time below 3": (KGOOD + BGP.replace("port: p0", "port: p0, hold_time: 1"),
                              "bgp.peers[0].hold_time", "integer from 3", 15),
    "bgp IPv6 router id": (KGOOD + BGP + "  router_id: '2001:db8::1'\n", "bgp.router_id",
                           "IPv4 address", 16),
    "yaml syntax": (GOOD + "  - name: [\n", "(file)", "not valid YAML", None),
}


@pytest.mark.parametrize("text,key,expected,line", BAD.values(), ids=BAD.keys())
def test_bad_field_is_named_with_what_is_expected(tmp_path, text, key, expected, line):
    path = write(tmp_path, text)
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    assert e.value.key == key
    assert expected in str(e.value)
    assert str(e.value).startswith(path)
    if line is not None:
        assert e.value.line == line


def test_missing_file_is_a_profile_error(tmp_path):
    with pytest.raises(ProfileError, match="cannot read: No such file"):
        load_profile(str(tmp_path / "nope.yaml"))


def test_lcore_lists():
    assert parse_lcore_list("1-3,5") == [1, 2, 3, 5]
    assert parse_lcore_list(2) == [2]
    for bad in ("", "a", "1,1", "2-1", "1-"):
        with pytest.raises(ValueError):
            parse_lcore_list(bad)


@pytest.mark.parametrize("text,code", [(GOOD, 0), (BAD["bad lcore list"][0], 2),
                                       (BAD["address does not parse"][0], 2)])
def test_profile_check_command_exit_codes(tmp_path, text, code):
    path = write(tmp_path, text)
    r = subprocess.run([sys.executable, "-m", "pylb", "profile", "check", path],
                       capture_output=True, text=True)
    assert r.returncode == code
    if code:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"pylb: error: {path}:")


def test_fleet_secret_file_is_read_and_checked(tmp_path):
    secret = tmp_path / "fleet.key"
    prof = GOOD + f"fleet:\n  secret_file: {secret}\n"
    with pytest.raises(ProfileError, match=r"fleet.secret_file.*cannot read"):
        load_profile(write(tmp_path, prof))
    secret.write_bytes(b"short\n")
    secret.chmod(0o600)
    with pytest.raises(ProfileError, match=r"holds 5 bytes; a secret needs at least 16"):
        load_profile(write(tmp_path, prof))
    for weak in (b"\0" * 100, b"a" * 16, b"ab" * 40):
        secret.write_bytes(weak)
        secret.chmod(0o600)
        with pytest.raises(ProfileError, match=r"weak secret .* at least 100, e.g. 32 random"):
            load_profile(write(tmp_path, prof))
    secret.write_bytes(b"  a fleet's shared secret of some length \n")
    secret.chmod(0o644)
    with pytest.raises(ProfileError, match=r"can be read by others \(mode 644\); chmod 600"):
        load_profile(write(tmp_path, prof))
    secret.chmod(0o600)
    loaded = load_profile(write(tmp_path, prof))
    assert loaded.fleet_secret == b"a fleet's shared secret of some length"
    assert "secret of" not in repr(loaded)
    assert load_profile(write(tmp_path, GOOD)).fleet_secret is None


def test_bgp_settings_are_read(tmp_path):
    from pylb.model import BgpPeerSpec, BgpSettings
    p = load_profile(write(tmp_path, KGOOD + BGP + "  withdraw_wait_ms: 500\n"))
    assert p.bgp == BgpSettings(65001, (BgpPeerSpec("10.9.0.254", 65000, "p0", True, 3),),
                                withdraw_wait_ms=500)
    assert load_profile(write(tmp_path, GOOD)).bgp is None and p.mid_flow is True


def test_per_source_limits_are_read(tmp_path):
    p = load_profile(write(tmp_path, GOOD + "connections:\n  per_source:\n    ipv6_prefix: 48\n"
                                            "    new_per_second: 200\n"))
    assert dict(p.per_source) == {"ipv6_prefix": 48, "new_per_second": 200}
    assert load_profile(write(tmp_path, GOOD)).per_source == ()


def test_fleet_sync_is_read_and_checked(tmp_path):
    from pylb.model import SyncSettings
    secret = tmp_path / "fleet.key"
    secret.write_bytes(b"a fleet's shared secret of some length\n")
    secret.chmod(0o600)
    sync = "  sync: {port: p0, peers: [10.9.0.2]}\n"
    p = load_profile(write(tmp_path, KGOOD + f"fleet:\n  secret_file: {secret}\n" + sync))
    assert p.sync == SyncSettings("p0", ("10.9.0.2",))
    for text, key, says in (
            (KGOOD + "fleet:\n" + sync, "fleet.sync", "give fleet.secret_file too"),
            (GOOD + f"fleet:\n  secret_file: {secret}\n" + sync, "fleet.sync.port",
             "no kernel_iface"),
            (KGOOD + f"fleet:\n  secret_file: {secret}\n" + sync.replace("10.9.0.2", "10.8.0.2"),
             "fleet.sync.peers[0]", "not on an IPv4 network of port p0"),
            (KGOOD + f"fleet:\n  secret_file: {secret}\n" + sync.replace("p0", "p7"),
             "fleet.sync.port", "one of the ports")):
        with pytest.raises(ProfileError) as e:
            load_profile(write(tmp_path, text))
        assert e.value.key == key and says in str(e.value), str(e.value)


def test_a_pool_and_the_fleets_gateways_are_read_and_checked(tmp_path):
    secret = tmp_path / "fleet.key"
    secret.write_bytes(b"a fleet's shared secret of some length\n")
    secret.chmod(0o600)
    pool = "    local_addresses: [10.98.0.1, '2001:db8:98::1']\n"
    fleet = f"fleet:\n  secret_file: {secret}\n  sync: {{port: p0, peers: [10.9.0.2]}}\n"
    gw = "  gateways: [{port: p0, address: 10.9.0.254}]\n"
    p = load_profile(write(tmp_path, KGOOD + pool + fleet + gw))
    assert p.pool == ("10.98.0.1", "2001:db8:98::1") and p.gateways == (("p0", "10.9.0.254"),)
    assert load_profile(write(tmp_path, GOOD)).pool == ()
    for text, key, says in (
            (KGOOD + "    local_addresses: [10.9.0.1]\n", "ports[0].local_addresses[0]",
             "already on port p0"),
            (KGOOD + "    local_addresses: 10.98.0.1\n", "ports[0].local_addresses",
             "expected a list"),
            (KGOOD + "    local_addresses: [10.98.0.0/24]\n", "ports[0].local_addresses[0]",
             "expected an IPv4 or IPv6 address"),
            (KGOOD + f"fleet:\n  secret_file: {secret}\n" + gw, "fleet.gateways",
             "give fleet.sync too"),
            (KGOOD + fleet + gw.replace("10.9.0.254", "10.9.1.254"), "fleet.gateways[0].address",
             "not on a network of port p0"),
            (KGOOD + fleet + gw.replace("10.9.0.254", "10.9.0.1"), "fleet.gateways[0].address",
             "an address of this appliance's own"),
            (KGOOD + fleet + gw.replace("p0", "p9"), "fleet.gateways[0].port", "one of the ports"),
            (KGOOD + fleet + "  gateways: [{port: p0}]\n", "fleet.gateways[0].address", "missing")):
        with pytest.raises(ProfileError) as e:
            load_profile(write(tmp_path, text))
        assert e.value.key == key and says in str(e.value), str(e.value)


def test_a_ports_mtu_is_read_and_needs_mbufs_that_hold_its_frames(tmp_path):
    p = load_profile(write(tmp_path, GOOD + "    mtu: 1280\n"))
    assert p.ports[0].mtu == 1280 and load_profile(write(tmp_path, GOOD)).ports[0].mtu == 0
    jumbo = GOOD + "    mtu: 9000\n"
    with pytest.raises(ProfileError) as e:
        load_profile(write(tmp_path, jumbo))
    assert e.value.key == "ports[0].mtu" and "needs mbuf_size of at least 9146" in str(e.value)
    assert load_profile(write(tmp_path, "mbuf_size: 9216\n" + jumbo)).ports[0].mtu == 9000
    with pytest.raises(ProfileError, match="ports.0..mtu"):
        load_profile(write(tmp_path, GOOD + "    mtu: 40\n"))


def test_vlans_are_ports_of_their_parents(tmp_path):
    vlan = "  - {name: p0.100, parent: p0, vlan: 100, addresses: [10.9.100.1/24]}\n"
    p = load_profile(write(tmp_path, GOOD + vlan))
    v = p.ports[1]
    assert (v.name, v.parent, v.vlan, v.device, v.addresses) == \
        ("p0.100", "p0", 100, "", ("10.9.100.1/24",))
    for text, key, says in (
            (GOOD + vlan.replace("parent: p0, ", ""), "ports[1]", "needs 'parent'"),
            (GOOD + vlan.replace("parent: p0", "parent: p9"), "ports[1].parent",
             "an earlier port that is not a VLAN"),
            (GOOD + vlan.replace("vlan: 100", "vlan: 4095"), "ports[1].vlan", "4094"),
            (GOOD + vlan + vlan.replace("p0.100", "p0.101"), "ports[2].vlan",
             "already has VLAN 100"),
            (GOOD + vlan.replace("vlan: 100,", "vlan: 100, vdev: net_null0,"), "ports[1].vdev",
             "its parent's vdev")):
        with pytest.raises(ProfileError) as e:
            load_profile(write(tmp_path, text))
        assert e.value.key == key and says in str(e.value), str(e.value)
