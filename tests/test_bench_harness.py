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
    report = json.loads((tmp_path / "l3_route.json").read_text())["cases"]["10000"]
    assert report["pylb"][0]["packets"] > 0 and report["testpmd"][0]["packets"] > 0
    assert report["forwarded_share"] > 0.99      # every routed packet left by the gateway


def test_paths_bench_runs_once_and_forwards_everything(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "paths.py"), "--flows", "1024",
                        "--syn-flows", "200000", "--fullnat-flows", "2000", "--runs", "1",
                        "--seconds", "0.5",
                        "--memory-probe", "65536", "--acl-prefixes", "10000",
                        "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "paths.json").read_text())
    (est,), (syn,), (route,) = (report["cases"][k] for k in ("established-1024", "syn-200000",
                                                             "route-1000"))
    assert est["tracked"] == 1024 and est["created"] == 0      # every packet a hit
    assert abs(syn["created"] - syn["packets"]) <= 64 and syn["packets"] > 0  # each one new
    (full,), (fnat,), (reply,) = (report["cases"][k] for k in ("table_full-4000", "fullnat-2000",
                                                               "fullnat_reply-2000"))
    assert full["tracked"] == 1024 and full["table_full"] > 0  # the rest balanced statelessly
    assert fnat["tracked"] == 2000 and reply["translated_replies_share"] > 0.99
    assert min(r["forwarded_share"] for r in (est, syn, route, full, fnat, reply)) > 0.99
    (arp,), (icmp,), (vip,) = (report["cases"][k] for k in ("arp-1000", "icmp-1000", "vip-1000"))
    assert min(r["sent_share"] for r in (arp, icmp, vip)) > 0.99   # every request answered
    assert report["memory"]["bytes_per_connection_all"] > 0
    assert (tmp_path / "paths.md").read_text().count("| established,") == 1
    # IPv6 beside IPv4: the same paths, every packet through them.
    (est6,), (syn6,), (route6,), (vip6,) = (report["cases"][k] for k in (
        "established6-1024", "syn6-200000", "route6-1000", "vip6-1000"))
    assert est6["tracked"] == 1024 and est6["created"] == 0
    assert abs(syn6["created"] - syn6["packets"]) <= 64 and syn6["packets"] > 0
    assert min(r["forwarded_share"] for r in (est6, syn6, route6, vip6)) > 0.99
    # Inspection both ways, both families: every packet to the appliance or back from it.
    assert min(report["cases"][f"{k}-1000"][0]["inspected_share"] for k in (
        "inspect_out", "inspect_return", "inspect_out6", "inspect_return6")) > 0.99
    # DPDK's l3fwd routed the routing cases' frames too (the second baseline).
    for kind in ("route", "route6"):
        (l3,) = report["cases"][f"l3fwd-{kind}-1000"]
        assert l3["mpps"] > 0 and l3["cycles_per_packet"] > 0
    assert "| route, 1,000 flows |" in (tmp_path / "paths.md").read_text()


def test_maglev_build_bench_runs_once(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "maglev_build.py"), "--runs", "1",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    cases = json.loads((tmp_path / "maglev_build.json").read_text())["cases_ms"]
    assert len(cases) == 8 and all(v[0] > 0 for v in cases.values())


def test_records_bench_gets_back_what_it_installed(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "records.py"), "--records", "5000",
                        "--runs", "1", "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    (run,) = json.loads((tmp_path / "records.json").read_text())["runs"]
    assert run["same"] and run["installed"] == run["synced"] == 5000


def test_update_latency_bench_loses_nothing(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "update_latency.py"), "--updates", "20",
                        "--runs", "1", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    run, = json.loads((tmp_path / "update_latency.json").read_text())["runs_detail"]
    assert len(run["latency_ms"]) == 20 and run["rx_packets"] > 0
    assert run["drops"] == {}                    # every packet went to one backend or the other


def test_soak_runs_short_and_gives_every_mbuf_and_connection_back(tmp_path):
    """`make soak` in small: every path and malformed frames through a full
    table, then the mempool back to what net_pcap holds and the connection
    table empty once the timeouts have passed."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--packets", "2000000",
                        "--flows", "500", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["packets"] >= 2_000_000 and report["peak_connections"] > 0
    assert report["leaked"] == 0 and report["connections_left"] == 0
    assert report["mbufs_in_use"] == report["mbufs_held_by_pcap"]
    assert report["drop_reasons_seen"] >= 15 and report["counters"]["nat_replies"] > 0
    assert report["counters"]["conn_table_full"] > 0 and report["counters"]["conn_untracked"] > 0


def test_the_stage_cuts_compile_and_the_stages_bench_refuses_what_it_cannot_measure():
    """bench/stages.py builds the dataplane three more times, its pipeline
    cut after each stage (`make bench-stages`, minutes of compiling: not run
    here): each cut compiles warning-free; the cases whose input the
    dataplane under test makes are refused in one line."""
    flags = subprocess.run(["pkg-config", "--cflags", "libdpdk"], capture_output=True,
                           text=True, check=True).stdout.split()
    for cut in (0, 1, 2):
        r = subprocess.run(["cc", *flags, "-march=native", "-DALLOW_EXPERIMENTAL_API",
                            f"-DPYLB_BENCH_CUT={cut}", "-Wall", "-Wextra", "-Werror",
                            "-Inative/include", "-Inative/src", "-fsyntax-only",
                            "native/src/path/pipeline.c"],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "stages.py"), "--cases",
                        "route,inspect_return"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr.strip() == ("stages: inspect_return's input is made by the dataplane "
                                "under test: leave it out")


def test_the_instructions_bench_counts_a_packets_instructions_by_function(tmp_path):
    """bench/instructions.py builds the dataplane for valgrind and counts
    what the pipeline executes per packet (`make bench-instructions`): two
    short cases, the pipeline's functions in their counts; inspect_return's
    input (GENEVE answers) is made by the tree's own dataplane, which runs
    the whole pipeline as the rebuilt one does."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "instructions.py"), "--cases",
                        "route,inspect_return", "--seconds", "0.3", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    cases = json.loads((tmp_path / "instructions.json").read_text())["cases"]
    route = cases["route"]
    assert route["packets"] > 1000 and route["forwarded_share"] > 0.99
    # the pipeline's functions, and DPDK's FIB lookups (no symbols) by their library
    assert {"process", "routed_sub", "librte_fib"} <= set(route["functions"])
    assert 50 < route["per_packet"] < 5000
    # the answers were taken as GENEVE (their cookies checked: AES-NI, no
    # OpenSSL) and routed on
    back = cases["inspect_return"]
    assert back["packets"] > 1000 and "pylb_inspect_return" in back["functions"]
    assert back["inspect_returned_share"] > 0.99 and back["forwarded_share"] > 0.99
    assert not any(f.startswith(("libcrypto", "AES_")) for f in back["functions"])
    assert 50 < back["per_packet"] < 5000
    assert "| route |" in (tmp_path / "instructions.md").read_text()
