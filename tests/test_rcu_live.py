"""Configuration changes while a worker polls: every publish waits for the
worker's quiescent state (RCU) and returns; the worker keeps running."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, time
    from pylb import _native, hostinfo
    prefix = f"pylb-rcu-{os.getpid()}"
    _native.eal_init(["t", "--no-huge", "-m", "256", "--no-pci", "-l", "0,1",
                      "--file-prefix", prefix, "--log-level", "*:error"])
    dp = _native.Dataplane(workers=[1], mbufs=4095)
    p = dp.add_port("p0", "net_null0,copy=0", link_wait_ms=0)
    dp.start()
    t0 = time.monotonic()
    for i in range(16):
        dp.add_address(p, f"10.55.{i}.1/24")
    elapsed = time.monotonic() - t0
    # A worker owns its table now: restoring connections is refused.
    try:
        dp.install_connections(bytes(_native.RECORD_SIZE))
        refused = "no"
    except Exception as e:
        refused = type(e).__name__
    time.sleep(0.2)
    dp.stop()
    rx = dp.totals()["rx_packets"]
    drops = dp.drops()["eth_other_host"]
    addrs = dp.ports()[0].addresses
    dp.close()
    _native.eal_cleanup()
    hostinfo.remove_instance_files(prefix)
    print(len(addrs), rx > 0, drops == rx, round(elapsed, 3), refused)
""")


def test_address_updates_publish_while_a_worker_forwards():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    n_addrs, received, all_dropped_as_other_host, _elapsed, refused = r.stdout.split()
    assert (n_addrs, received, all_dropped_as_other_host) == ("16", "True", "True")
    assert refused == "FailedPrecondition"
