"""`pylbctl top` in a pseudo-terminal, against a running dataplane (its
domain and API) carrying traffic: the screen is redrawn at each update and
shows non-zero rates for the service under load, its backends and the
drops by reason."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC
from pylb.v1 import pylb_pb2 as pb
from test_cli import ROOT


@pytest.mark.fixture
def test_top_shows_the_rates_of_the_service_under_load(api, tmp_path):
    stub, dp, ch = api
    # (No SYN cookies: each SYN opens a connection, the oldest half-open
    # ones make room.)
    stub.AddService(pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=80),
                               syn_proxy=pb.SYN_PROXY_OFF,
                               backends=[pb.Backend(address="10.0.1.20", port=8080)]))
    address = f"unix:{tmp_path}/api.sock"
    stop = threading.Event()

    def load():
        sport = 1024
        while not stop.is_set():
            frames = [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst="10.0.0.100")
                          / TCP(sport=sport + i, dport=80, flags="S")) for i in range(50)]
            frames.append(raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2",
                                                                    dst="192.0.2.9")))
            dp.inject("p0", frames)
            sport = 1024 + (sport + 50) % 60000
            time.sleep(0.02)
    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    main, child = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "pylb.ctl", "--address", address, "top",
                              "--interval-ms", "300", "--iterations", "6"],
                             stdin=child, stdout=child, stderr=child, cwd=ROOT,
                             env=dict(os.environ, COLUMNS="120", LINES="40"))
        os.close(child)
        out = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        assert p.wait(30) == 0, out.decode(errors="replace")[-2000:]
    finally:
        stop.set()
        loader.join(10)
        os.close(main)
    screens = out.decode().split("\x1b[H\x1b[2J")[1:]
    assert len(screens) == 6, out.decode()[-2000:]
    last = screens[-1]
    assert "pylb top" in last and address in last
    line = next(x for x in last.splitlines() if x.startswith("10.0.0.100:80/tcp"))
    conns, new, pkts = line.split()[3:6]
    assert int(conns) > 0 and new != "0" and pkts != "0", last
    assert re.search(r"-> 10\.0\.1\.20:8080\s+up", last), last
    assert re.search(r"drops\s+\S+/s: .*no_route", last), last
    assert re.search(r"traffic\s+in [1-9]", last), last
