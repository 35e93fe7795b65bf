"""Configuration files (the desired services and routes): validation with the
file, line and key of each problem, `pylb config check`, and `pylb run
--config` applying them to a running appliance."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from dataclasses import replace

from pylb import model
from pylb.config import dump, load_config
from pylb.model import AclSpec, BackendSpec, HealthCheckSpec, NeighbourSpec, VipSpec
from pylb.errors import ConfigError
from test_cli import ROOT, error_line, profile, pylb

GOOD = """\
services:
  - vip: 10.77.0.100
    port: 80
    scheduler: wlc
    down_reset: true
    health_check: {type: http, path: /healthz, interval_ms: 500, timeout_ms: 200, fall: 2}
    backends:
      - 10.77.1.11:8080
      - {address: "10.77.1.12:8080", weight: 3, state: drain, max_connections: 500}
  - vip: 2001:db8::100
    port: 53
    proto: udp
    method: dr
    backends: ["2001:db8:1::5"]
routes:
  - {prefix: 192.0.2.0/24, via: [{gateway: 10.77.0.254, port: p0}]}
vips:
  - {prefix: 10.77.3.0/24, source: 10.77.1.1, backends: [10.77.1.21, {address: 10.77.1.22, weight: 3}]}
neighbours:
  - {port: p1, address: 10.77.1.21, mac: "02:00:00:00:00:AA"}
timeouts: {tcp_established: 600}
"""


def test_a_valid_file_becomes_the_desired_state(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD)
    c = load_config(str(path))
    web, dns = c.services
    assert (web.vip, web.port, web.proto, web.method, web.scheduler, web.down_reset) == \
        ("10.77.0.100", 80, "tcp", "nat", "wlc", True)
    assert web.backends == (BackendSpec("10.77.1.11", 8080), BackendSpec("10.77.1.12", 8080, 3, "drain", 500))
    assert web.health_check == HealthCheckSpec("http", 0, "/healthz", 200, 500, 200, 2, 2)
    assert dns.health_check is None
    assert (dns.vip, dns.proto, dns.backends[0].ip, dns.backends[0].port) == ("2001:db8::100", "udp",
                                                                              "2001:db8:1::5", 0)
    assert c.routes[0].prefix == "192.0.2.0/24" and c.routes[0].via == (("10.77.0.254", "p0"),)
    assert c.vips == (VipSpec("10.77.3.0/24", "ipip", 65537, "10.77.1.1",
                              (("10.77.1.21", 1), ("10.77.1.22", 3))),)
    assert c.neighbours == (NeighbourSpec("p1", "10.77.1.21", "02:00:00:00:00:aa"),)
    assert c.timeouts == (("tcp_established", 600),)
    assert load_config("again", text=dump(c)) == replace(c, path="again")
    r = pylb("config", "check", str(path))
    assert r.returncode == 0 and "2 service(s) with 3 backend(s), 1 route(s), 1 L3 VIP(s), " \
        "1 neighbour(s)" in r.stdout


@pytest.mark.parametrize("text, line, key, says", [
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    colour: red\n", 4, "services[0].colour", "unknown key"),
    ("services:\n  - vip: 10.0.0.300\n    port: 80\n", 2, "services[0].vip", "IPv4 or IPv6"),
    ("services:\n  - vip: 10.0.0.1\n    port: 70000\n", 3, "services[0].port", "0 to 65535"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    method: snat\n", 4, "services[0].method",
     "nat, fullnat, dr, tunnel"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    backends: ['2001:db8::1']\n", 4,
     "services[0].backends[0].address", "address family"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    backends:\n      - 10.0.1.1:80\n"
     "      - 10.0.1.1:80\n", 6, "services[0].backends[1]", "listed twice"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    backends:\n"
     "      - {address: 10.0.1.1, state: asleep}\n", 5, "services[0].backends[0].state", "up, drain, down"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    backends:\n"
     "      - {address: 10.0.1.1, weight: 70000}\n", 5, "services[0].backends[0].weight", "0 to 65535"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    backends:\n"
     "      - {address: 10.0.1.1, max_connections: -1}\n", 5,
     "services[0].backends[0].max_connections", "0 to 100000000"),
    ("services:\n  - {vip: 10.0.0.1, port: 80}\n  - {vip: 10.0.0.1, port: 80}\n", 3, "services[1]",
     "also services[0]"),
    ("routes:\n  - {prefix: 10.0.0.1/8, via: [{port: p0}]}\n", 2, "routes[0].prefix",
     "host bits set; write the network 10.0.0.0/8"),
    ("routes:\n  - {prefix: 10.0.0/8, via: [{port: p0}]}\n", 2, "routes[0].prefix", "prefix like"),
    ("routes:\n  - {prefix: 10.0.0.0/8, via: [{gateway: 10.1.1.1}]}\n", 2, "routes[0].via[0]", "'port'"),
    ("services: [\n", None, "(file)", "not valid YAML"),
    ("vips:\n  - {prefix: 10.0.3.0/24, method: nat}\n", 2, "vips[0].method", "ipip, gre, dr"),
    ("vips:\n  - {prefix: 10.0.3.0/24, backends: ['2001:db8::1']}\n", 2,
     "vips[0].backends[0].address", "address family"),
    ("vips:\n  - {prefix: 10.0.3.0/24}\n  - {prefix: 10.0.3.0/24}\n", 3, "vips[1]", "also vips[0]"),
    ("neighbours:\n  - {port: p1, address: 10.0.1.1, mac: 02:00:00}\n", 2, "neighbours[0].mac",
     "MAC address"),
    ("neighbours:\n  - {port: p1, address: 10.0.1.1}\n", 2, "neighbours[0]", "'mac'"),
    ("timeouts: {tcp: 10}\n", 1, "timeouts.tcp", "unknown key"),
    ("announce: {min_healthy_backends: 0}\n", 1, "announce.min_healthy_backends", "from 1 to"),
    ("announce:\n  withdrawn: [10.0.0.1/8]\n", 2, "announce.withdrawn[0]",
     "host bits set; write the network 10.0.0.0/8"),
    ("announce: {always: true}\n", 1, "announce.always", "unknown key"),
    ("timeouts: {udp: 0}\n", 1, "timeouts.udp", "from 1 to 2592000"),
    ("acls:\n  - {name: a, type: block}\n", 2, "acls[0].type", "deny, allow"),
    ("acls:\n  - {name: a, action: reject}\n", 2, "acls[0].action", "drop, reset, unreachable"),
    ("acls:\n  - {name: a, prefixes: [10.0.0.1/8]}\n", 2, "acls[0].prefixes[0]",
     "host bits set; write the network 10.0.0.0/8"),
    ("acls:\n  - {name: a}\n  - {name: a}\n", 3, "acls[1]", "also acls[0]"),
    ("acls:\n  - {name: a, prefix_file: /nonexistent/x}\n", 2, "acls[0].prefix_file", "cannot read"),
    ("services:\n  - {vip: 10.0.0.1, port: 80, acls: [nope]}\n", 2, "services[0].acls[0]",
     "no ACL is named 'nope'"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    proxy_protocol: v2\n", 4,
     "services[0].proxy_protocol", "for fullnat services"),
    ("services:\n  - {vip: 10.0.0.1, port: 53, proto: udp, method: fullnat, proxy_protocol: v1}\n",
     2, "services[0].proxy_protocol", "v1 is for TCP"),
    ("services:\n  - {vip: 10.0.0.1, port: 80, method: fullnat, proxy_protocol: v3}\n", 2,
     "services[0].proxy_protocol", "off, v1, v2"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    health_check: {type: icmp}\n", 4,
     "services[0].health_check.type", "tcp, http, udp, none"),
    ("services:\n  - vip: 10.0.0.1\n    port: 80\n    health_check:\n      interval_ms: 500\n"
     "      timeout_ms: 900\n", 6, "services[0].health_check.timeout_ms", "longer than the interval"),
    ("pools:\n  - {name: fw, stickiness: 4-tuple}\n", 2, "pools[0].stickiness",
     "5-tuple, 3-tuple, 2-tuple"),
    ("pools:\n  - {name: fw, failover: drain}\n", 2, "pools[0].failover", "rebalance, stay"),
    ("pools:\n  - {stickiness: 5-tuple}\n", 2, "pools[0]", "a pool needs a 'name'"),
    ("pools:\n  - {name: 'a b'}\n", 2, "pools[0].name", "letters, digits"),
    ("pools:\n  - {name: fw, idle_timeout: 0}\n", 2, "pools[0].idle_timeout", "from 1 to"),
    ("pools:\n  - {name: fw, appliances: [10.0.1.1, 10.0.1.1]}\n", 2, "pools[0].appliances[1]",
     "listed twice"),
    ("pools:\n  - {name: fw, appliances: ['10.0.1.1:80']}\n", 2,
     "pools[0].appliances[0].address", "IPv4 or IPv6"),
    ("pools:\n  - {name: fw, health_check: {type: tcp}}\n", 2, "pools[0].health_check.port",
     "needs a port"),
    ("pools:\n  - {name: fw}\n  - {name: fw}\n", 3, "pools[1]", "also pools[0]"),
    ("routes:\n  - {prefix: 10.0.0.0/8, via: [{port: p0}], inspect: fw}\n", 2, "routes[0].inspect",
     "no pool is named 'fw'"),
    ("vips:\n  - {prefix: 10.0.3.0/24, inspect: fw}\n", 2, "vips[0].inspect",
     "no pool is named 'fw'"),
])
def test_each_problem_is_named_with_its_line_and_key(tmp_path, text, line, key, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert e.value.key == key and says in str(e.value)
    if line is not None:
        assert e.value.line == line and str(e.value).startswith(f"{path}:{line}: {key}: ")
    r = pylb("config", "check", str(path))
    assert r.returncode == 2 and key in error_line(r)


@pytest.mark.e2e        # the appliance on TAP ports
def test_run_with_a_config_applies_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.replace("2001:db8::100", "10.77.0.101").replace("2001:db8:1::5", "10.77.1.5"))
    prof = profile(tmp_path, "cfgrun", ports=[
        {"name": "p0", "vdev": "net_tap0,iface=cfgrun0", "addresses": ["10.77.0.1/24"]},
        {"name": "p1", "vdev": "net_tap1,iface=cfgrun1", "addresses": ["10.77.1.1/24"]}])
    p = subprocess.Popen([sys.executable, "-m", "pylb", "run", "--profile", prof, "--config", str(path)],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stderr:
            if "running:" in line:
                break
        assert p.poll() is None
        r = pylb("services", "--instance", "cfgrun", "--json")
        assert r.returncode == 0, r.stderr
        services = {(s["key"]["vip"], s["key"]["port"]): s for s in json.loads(r.stdout)}
        assert [(b["address"], b["port"], b["weight"], b["state"])
                for b in services["10.77.0.100", 80]["backends"]] == \
            [("10.77.1.11", 8080, 1, "BACKEND_STATE_UP"),
             ("10.77.1.12", 8080, 3, "BACKEND_STATE_DRAIN")]
        assert services["10.77.0.101", 53]["key"]["protocol"] == "PROTOCOL_UDP"
        r = pylb("routes", "--instance", "cfgrun")
        assert "192.0.2.0/24" in r.stdout and "10.77.0.254" in r.stdout
        # What started is what the API says is configured.
        r = subprocess.run([sys.executable, "-m", "pylb.ctl", "--instance", "cfgrun", "config",
                            "get"], capture_output=True, text=True, cwd=ROOT)
        assert load_config("got", r.stdout) == replace(load_config(str(path)),
                                                       path="got").normalised()
        # SIGHUP applies the file again, as a diff.
        path.write_text(path.read_text().replace("10.77.1.11:8080", "10.77.1.15:8080"))
        p.send_signal(signal.SIGHUP)
        for _ in range(100):
            out = pylb("services", "--instance", "cfgrun", "--json").stdout
            if '"10.77.1.15"' in out:
                break
            time.sleep(0.1)
        assert '"10.77.1.15"' in out and '"10.77.1.11"' not in out
        assert '"10.77.0.101"' in out
    finally:
        p.terminate()
        p.wait(60)
    assert p.returncode == 0


@pytest.mark.e2e        # the appliance on a TAP port, in hugepages
def test_run_with_a_config_the_dataplane_refuses_exits_2(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("services:\n  - {vip: 10.77.0.100, port: 80, method: fullnat,"
                    " local_addresses: [10.9.9.9]}\n")
    r = pylb("run", "--profile", profile(tmp_path, "cfgbad"), "--config", str(path), timeout=120)
    assert r.returncode == 2 and "local address" in error_line(r)


def test_acls_with_a_prefix_file(tmp_path):
    listed = tmp_path / "blocked.txt"
    listed.write_text("# blocked networks\n198.51.100.0/24\n\n2001:db8:bad::/48  # v6\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
acls:
  - {{name: blocked, all_services: true, prefix_file: {listed}, prefixes: [192.0.2.0/25]}}
  - {{name: partners, type: allow, action: reset, prefixes: [203.0.113.0/24]}}
services:
  - {{vip: 10.0.0.1, port: 80, acls: [partners]}}
""")
    c = load_config(str(path))
    assert c.acls == (AclSpec("blocked", "deny", "drop", True,
                              ("192.0.2.0/25", "198.51.100.0/24", "2001:db8:bad::/48")),
                      AclSpec("partners", "allow", "reset", False, ("203.0.113.0/24",)))
    assert c.services[0].acls == ("partners",)
    assert load_config("again", text=dump(c)) == replace(c, path="again")
    r = pylb("config", "check", str(path))
    assert r.returncode == 0 and "2 ACL(s) of 4 prefix(es)" in r.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("198.51.100.0/24\nnot-a-prefix\n")
    path.write_text(f"acls:\n  - {{name: x, prefix_file: {bad}}}\n")
    with pytest.raises(ConfigError, match=r"acls\[0\]\.prefix_file \(.*bad.txt:2\).*prefix like"):
        load_config(str(path))


def test_pools_and_what_they_inspect_read_back_as_written():
    c = load_config("a", """\
pools:
  - name: fw
    stickiness: 3-tuple
    failover: stay
    idle_timeout: 120
    health_check: {type: tcp, port: 8081, interval_ms: 500}
    appliances: [10.0.1.21, {address: 10.0.1.22, weight: 2, state: drain}]
  - {name: ids6, appliances: ['2001:db8:1::21']}
routes:
  - {prefix: 192.0.2.0/24, via: [{port: p0}], inspect: fw}
vips:
  - {prefix: 10.0.3.0/24, inspect: ids6}
""")
    fw = c.pool("fw")
    assert (fw.stickiness, fw.failover, fw.idle_timeout) == ("3-tuple", "stay", 120)
    assert fw.appliances == (model.BackendSpec("10.0.1.21", 0),
                             model.BackendSpec("10.0.1.22", 0, 2, "drain"))
    assert fw.health_check == model.HealthCheckSpec(port=8081, interval_ms=500, timeout_ms=500)
    assert c.pool("ids6") == model.PoolSpec("ids6", (model.BackendSpec("2001:db8:1::21", 0),))
    assert (c.routes[0].inspect, c.vips[0].inspect) == ("fw", "ids6")
    assert load_config("again", text=dump(c)) == replace(c, path="again")


def test_the_announce_policy_reads_back_as_written():
    c = load_config("a", "announce:\n  min_healthy_backends: 2\n  withdrawn: [203.0.113.10, "
                         "'2001:db8::/64', 203.0.113.10/32]\n")
    assert c.announce == model.AnnounceSpec(2, ("203.0.113.10/32", "2001:db8::/64"))
    assert load_config("again", text=dump(c)) == replace(c, path="again")
    assert "announce" not in dump(load_config("b", "services: []"))
