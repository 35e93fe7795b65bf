"""The benchmark harness keeps working: one tiny run, figures present (never asserted as timings)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_host_null_bench_runs_once(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "host_null.py"), "--runs", "1",
                        "--seconds", "0.5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads(next(tmp_path.glob("host_null-*.json")).read_text())
    assert set(report["cases"]) == {"testpmd io", "testpmd 5tswap", "pylb host path (drop other-host)"}
    for case in report["cases"].values():
        assert case["cycles_per_packet"]["median"] > 0 and case["mpps"]["median"] > 0


def test_l3_route_bench_runs_once_and_routes_everything(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "l3_route.py"), "--routes", "10000",
                        "--runs", "1", "--seconds", "0.5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "l3_route.json").read_text())
    assert report["pylb"][0]["packets"] > 0 and report["testpmd"][0]["packets"] > 0
    assert report["forwarded_share"] > 0.99      # every routed packet left by the gateway


def test_l4_flows_bench_runs_once_and_forwards_everything(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "l4_flows.py"), "--flows", "1024",
                        "--runs", "1", "--seconds", "0.5", "--memory-probe", "65536",
                        "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "l4_flows.json").read_text())
    assert report["pylb"][0]["tracked"] == 1024          # one connection per flow
    assert report["forwarded_share"] > 0.99 and report["bytes_per_connection"] > 0
