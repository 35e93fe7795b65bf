"""End to end: the real appliance on TAP ports, kernel clients in network namespaces."""

from __future__ import annotations

import os
import socket
import subprocess
import time

from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import raw

from appliance_harness import Appliance, Netns, sh
from pylb import hostinfo


def delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def test_client_pings_appliance_20_of_20_and_counters_agree():
    with Appliance() as app, Netns(f"{app.instance}c", app.ifaces[0], app.client_address(0)) as ns:
        mac = app.ports()["p0"]["mac"].lower()
        before = app.stats()
        assert ns.ping(app.addresses[0], 20) == 20
        assert ns.neighbour_mac(app.addresses[0]) == mac
        after = app.stats()
        c = delta(after["counters"], before["counters"])
        assert c["icmp_echo_requests"] == 20 and c["icmp_echo_replies"] == 20
        assert c["arp_requests"] >= 1 and c["arp_replies_sent"] == c["arp_requests"]
        assert c["tx_packets"] == c["icmp_echo_replies"] + c["arp_replies_sent"]
        assert c["rx_packets"] == 20 + c["arp_requests"] + c.get("arp_replies_received", 0) + sum(
            delta(after["drops"], before["drops"]).values())
        client_ip = app.client_address(0).split("/")[0]
        assert any(n["ip"] == client_ip and n["port"] == "p0" for n in app.neighbours())
        assert app.stop() == 0


SENDER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for hexframe in sys.argv[2:]:
    s.send(bytes.fromhex(hexframe))
"""


def test_malformed_frames_on_the_wire_are_counted_and_pings_continue():
    with Appliance() as app, Netns(f"{app.instance}c", app.ifaces[0], app.client_address(0)) as ns:
        assert ns.ping(app.addresses[0], 2) == 2       # resolves the appliance's MAC
        mac = app.ports()["p0"]["mac"].lower()
        client_mac = ns.run("cat", f"/sys/class/net/{app.ifaces[0]}/address").stdout.strip()
        me = app.client_address(0).split("/")[0]
        eth = Ether(src=client_mac, dst=mac)
        good_ip = raw(eth / IP(src=me, dst=app.addresses[0]) / ICMP())
        ihl4 = bytearray(good_ip)
        ihl4[14] = 0x44
        frames = {
            "eth_truncated": raw(Ether(src=client_mac, dst=mac, type=0x8100)),  # tag missing
            "arp_truncated": raw(Ether(src=client_mac, dst="ff:ff:ff:ff:ff:ff") /
                                 ARP(psrc=me, pdst=app.addresses[0]))[:14 + 10],
            "ipv4_bad_ihl": bytes(ihl4),
            "ipv4_bad_total_length": raw(eth / IP(src=me, dst=app.addresses[0], len=1400) / ICMP()),
        }
        before = app.stats()["drops"]
        for _ in range(3):
            ns.run("python3", "-c", SENDER, app.ifaces[0], *(f.hex() for f in frames.values()))
        assert ns.ping(app.addresses[0], 5) == 5
        drops = delta(app.stats()["drops"], before)
        for reason in frames:
            assert drops.get(reason) == 3, (reason, drops)


def test_start_and_stop_twice_leaves_no_process_files_or_interfaces(tmp_path):
    """Also: the fleet secret keys the flow hash, the same key at each start."""
    from pylb import _native
    from pylb.v1 import pylb_pb2 as pb
    secret = tmp_path / "fleet.key"
    secret.write_bytes(b"an e2e fleet secret, 32 bytes ok")
    secret.chmod(0o600)
    for _ in range(2):
        app = Appliance(ports=1, fleet={"secret_file": str(secret)})
        with app, Netns(f"{app.instance}c", app.ifaces[0], app.client_address(0)) as ns:
            assert ns.ping(app.addresses[0], 3) == 3
            assert app.api().GetStats(pb.GetStatsRequest()).hash_fingerprint == \
                _native.key_fingerprint(_native.hash_key(secret.read_bytes()))
            pid = app.proc.pid
            assert hostinfo.instance_files(app.prefix)          # it did use hugepages
            assert app.stop() == 0
        assert not os.path.exists(f"/proc/{pid}")
        assert hostinfo.instance_files(app.prefix) == []
        assert sh("ip", "link", "show", app.ifaces[0], check=False).returncode != 0
        log = "".join(app.stderr)
        assert "stopping" in log and "stopped; removed" in log


def test_two_workers_on_shared_cores_answer_pings():
    """Multi-worker bring-up: three lcores mapped onto the two cores; each port
    gets one queue per worker and the appliance still answers everything."""
    with Appliance(ports=1, workers="1-2", cpu_map="0@0,1@1,2@1") as app, \
            Netns(f"{app.instance}c", app.ifaces[0], app.client_address(0)) as ns:
        assert ns.ping(app.addresses[0], 10) == 10
        assert app.stats()["counters"]["icmp_echo_replies"] == 10


def test_dpdk_dumpcap_captures_a_running_appliances_port(tmp_path):
    """librte_pdump is initialised: DPDK's own capture tool attaches as a
    secondary process and records what port 0 receives."""
    from scapy.utils import rdpcap
    out = tmp_path / "p0.pcapng"
    with Appliance() as app, Netns(f"{app.instance}c", app.ifaces[0], app.client_address(0)) as ns:
        assert ns.ping(app.addresses[0], 1) == 1
        cap = subprocess.Popen(["dpdk-dumpcap", f"--file-prefix=pylb-{app.instance}", "-i", "0",
                                "-c", "4", "-w", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        for _ in range(100):
            if out.exists():
                break
            time.sleep(0.1)
        assert ns.ping(app.addresses[0], 4) == 4
        log, _ = cap.communicate(timeout=30)
        assert cap.returncode == 0, log
    frames = rdpcap(str(out))
    assert len(frames) == 4 and all(f.haslayer(ICMP) for f in frames), [f.summary() for f in frames]
