"""The status page (/status on the metrics listener) in a real headless
browser (Debian's Chromium) against a running dataplane with traffic: the
page renders each service and its backends, a backend marked down shows as
down, the rates move, and /metrics is still Prometheus'."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import urllib.request

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from conftest import CLIENT_MAC, P0_MAC
from pylb import model, status
from pylb.manager import Manager, direct_submitter
from pylb.model import BackendSpec, ServiceSpec


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    pytest.fail("no Chromium: scripts/install-deps.sh installs Debian's chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(dp, n=40, first=1024):
    dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2", dst="10.0.0.100")
                         / TCP(sport=first + i, dport=80, flags="S")) for i in range(n)])


@pytest.mark.fixture
def test_the_status_page_renders_services_and_a_down_backend_in_a_browser(dp, tmp_path):
    m = Manager(direct_submitter(dp))
    for i in range(2):
        m.add_neighbour("p1", f"10.0.1.{20 + i}", f"02:00:00:00:0b:0{i}")
    m.add_service(ServiceSpec("10.0.0.100", 80, scheduler=model.WRR, backends=(
        BackendSpec("10.0.1.20", 8080), BackendSpec("10.0.1.21", 8080))))
    m.set_backend("10.0.0.100", 80, model.TCP, BackendSpec("10.0.1.21", 8080, state=model.DOWN))
    port = free_port()
    server = status.start(m, "127.0.0.1", port)
    try:
        url = f"http://127.0.0.1:{port}/status"
        load(dp)
        urllib.request.urlopen(url, timeout=10).read()          # the rates' first look
        load(dp, first=3000)
        dp.inject("p0", [raw(Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src="10.0.0.2",
                                                                    dst="192.0.2.9"))])
        r = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}/chromium",
                            "--dump-dom", url], capture_output=True, text=True, timeout=120)
        dom = r.stdout
        assert "<title>pylb status</title>" in dom, r.stderr[-2000:]
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", dom, re.S)
        cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
        svc = next(c for c in cells if c and c[0] == "10.0.0.100:80/tcp")
        assert svc[1] == "nat wrr" and float(svc[6]) > 0 and float(svc[7]) > 0, svc
        up = next(c for c in cells if c and c[0].endswith("10.0.1.20:8080"))
        down = next(c for c in cells if c and c[0].endswith("10.0.1.21:8080"))
        assert up[1] == model.UP and down[1] == model.DOWN
        assert re.search(r'<td class="l down">down</td>', dom)
        assert int(up[5]) == 80 and int(down[5]) == 0            # (SYNs: inactive connections)
        assert any(c and c[0] == "no_route" for c in cells)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                         timeout=10).read().decode()
        assert "pylb_ipvs_backend_up" in metrics
    finally:
        server.shutdown()
        server.server_close()
