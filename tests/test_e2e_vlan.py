"""End to end: an 802.1Q sub-interface of a TAP port. This kernel has no
8021q module, so the tagged client is scapy on AF_PACKET in a namespace
holding the TAP's kernel side: it resolves the VLAN's address by ARP and
asks a UDP service through it; the answer comes back tagged. Frames of
other VLANs are dropped by reason; the untagged port keeps working."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from appliance_harness import Appliance, Netns, sh
from test_e2e_l4 import ECHO
from pylb.v1 import pylb_pb2 as pb

CLIENT_MAC = "02:00:00:00:77:01"

# In the client's namespace: ARP for the VLAN's address, then a UDP request
# to the VIP, both tagged; prints what came back.
ASK = """
import json, sys
from scapy.all import ARP, Dot1Q, Ether, IP, UDP, conf, srp1
conf.verb = 0
iface, vid, me, gw, vip, mac = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
out = {}
a = srp1(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=vid) /
         ARP(op=1, hwsrc=mac, psrc=me, pdst=gw), iface=iface, timeout=3)
out["arp"] = [a[Dot1Q].vlan, a[ARP].hwsrc, a[ARP].psrc] if a is not None and ARP in a else None
if a is not None:
    r = srp1(Ether(src=mac, dst=a[ARP].hwsrc) / Dot1Q(vlan=vid) / IP(src=me, dst=vip) /
             UDP(sport=5555, dport=53) / b"hello", iface=iface, timeout=3)
    out["udp"] = [r[Dot1Q].vlan, r[IP].src, r[UDP].sport, bytes(r[UDP].payload).decode()] \\
        if r is not None and UDP in r else None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lab():
    app = Appliance()
    net = app.net
    with open(app.profile) as f:
        prof = yaml.safe_load(f)
    prof["ports"].append({"name": "p0.100", "parent": "p0", "vlan": 100,
                          "addresses": [f"{net}.100.1/24"]})
    with open(app.profile, "w") as f:
        yaml.safe_dump(prof, f)
    app.start()
    c = b = echo = None
    try:
        # The client's namespace holds p0's TAP, with no address: scapy
        # speaks for the tagged client, the kernel for the untagged one.
        c = Netns(f"c{app.instance}", app.ifaces[0], f"{net}.0.2/24")
        b = Netns(f"b{app.instance}", app.ifaces[1], f"{net}.1.2/24")
        b.run("ip", "route", "add", "default", "via", f"{net}.1.1")
        echo = subprocess.Popen(["ip", "netns", "exec", b.name, sys.executable, "-c", ECHO, "b",
                                 "53"], stdout=subprocess.PIPE, text=True)
        assert echo.stdout.readline().strip() == "ready"
        app.api().ApplyConfig(pb.ApplyConfigRequest(yaml=yaml.safe_dump({
            "services": [{"vip": f"{net}.9.53", "port": 53, "proto": "udp",
                          "backends": [f"{net}.1.2:53"]}]})))
        yield app, c, net
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        app.stop()
        for ns in (c, b):
            if ns is not None:
                ns.close()


def ask(c, vid, net, app):
    out = c.run(sys.executable, "-c", ASK, c.iface, str(vid), f"{net}.100.2", f"{net}.100.1",
                f"{net}.9.53", CLIENT_MAC, timeout=30).stdout
    return json.loads(out)


def test_a_tagged_client_reaches_a_service_through_its_vlan(lab):
    app, c, net = lab
    ports = app.ports()
    assert ports["p0.100"]["device"] == "vlan 100 of p0"
    assert ports["p0.100"]["mac"] == ports["p0"]["mac"]
    got = ask(c, 100, net, app)
    # Answered on VLAN 100, by the VLAN's address, with the port's MAC.
    assert got["arp"] == [100, ports["p0"]["mac"], f"{net}.100.1"], got
    assert got["udp"] == [100, f"{net}.9.53", 53, "b hello"], got


def test_other_vlans_are_dropped_and_the_untagged_port_works(lab):
    app, c, net = lab
    before = app.stats()["drops"]["vlan_unknown"]
    assert ask(c, 300, net, app) == {"arp": None}
    assert app.stats()["drops"]["vlan_unknown"] > before
    assert c.ping(f"{net}.0.1", 3) == 3
