"""The Grafana dashboard and the Prometheus alerting rules
(packaging/grafana, packaging/prometheus): the rules pass promtool's
check and its unit tests (each alert fires when it should and not
otherwise), every dashboard query is PromQL promtool parses, and every
metric they name is one pylb exports (scraped from the collector over a
dataplane with traffic)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from prometheus_client import generate_latest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC
from pylb import metrics
from pylb.manager import Manager, direct_submitter
from test_cli import ROOT

RULES = ROOT / "packaging" / "prometheus" / "pylb-alerts.yml"
DASHBOARD = ROOT / "packaging" / "grafana" / "pylb-dashboard.json"


def run(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=120,
                          cwd=RULES.parent)


def queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


@pytest.mark.unit
def test_the_alerting_rules_pass_promtool_and_their_unit_tests():
    r = run("promtool", "check", "rules", RULES.name)
    assert r.returncode == 0 and "SUCCESS: 7 rules found" in r.stdout, r.stdout + r.stderr
    r = run("promtool", "test", "rules", "pylb-alerts.test.yml")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


@pytest.mark.unit
def test_the_dashboards_queries_are_promql(tmp_path):
    """Each query as a recording rule (Grafana's $instance as a value):
    promtool parses them all."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"pylb:dashboard_{i}", "expr": q.replace("$instance", ".*")}
        for i, q in enumerate(queries())]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    r = subprocess.run(["promtool", "check", "rules", str(tmp_path / "dashboard.yml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.fixture
def test_every_metric_the_dashboard_and_rules_name_is_exported(dp):
    m = Manager(direct_submitter(dp))
    m.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:00")
    from pylb.model import ServiceSpec, BackendSpec
    m.add_service(ServiceSpec("10.0.0.100", 80, backends=(BackendSpec("10.0.1.20", 8080),)))
    dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst="02:00:00:00:99:99") / IP())])
    text = generate_latest(metrics.registry(m)).decode()
    # Every family, with samples or not (no BGP peer here, no worker lcore).
    exported = {name.removesuffix("_total") + ("_total" if kind == "counter" else "")
                for name, kind in re.findall(r"^# TYPE (pylb_[a-z0-9_]+) (\w+)$", text, re.M)}
    named = set()
    for q in queries() + [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"]
                          for r in g["rules"]]:
        named |= set(re.findall(r"\b(pylb_[a-z0-9_]+)", q))
    assert named - exported == set()
    assert {"pylb_lcore_polls_total", "pylb_conntrack_capacity"} <= exported
