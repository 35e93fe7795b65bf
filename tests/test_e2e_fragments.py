"""End to end: fragmented UDP through L4 services, two workers. A client
namespace on p0 and a backend namespace on p1, both with 1,500-byte links;
the backend echoes every UDP datagram. 4,000-byte datagrams go through NAT
and FullNAT services (IPv4 and IPv6) and a DR service (IPv4): the client's
kernel fragments them on the way in, the backend's on the way back, so
fragments are followed both ways. Some are sent by scapy on AF_PACKET with
their fragments in reverse order (the later ones are held until their first
comes). Every answer must come back whole and intact."""

from __future__ import annotations

import pytest
import yaml

from appliance_harness import Ends, sh
from pylb.v1 import pylb_pb2 as pb

ECHO = """
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 53))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""

# In the client's namespace: `count` datagrams of 4,000 random bytes to
# vip:53, each answer compared; "kernel": sent by a socket (the kernel
# fragments them in order), "reversed": fragmented by scapy and sent last
# fragment first on AF_PACKET, from the port a socket listens on. Prints
# how many answers were intact.
ASK = """
import json, os, socket, sys
from scapy.all import Ether, IP, IPv6, IPv6ExtHdrFragment, UDP, Raw, conf, fragment, fragment6, sendp
conf.verb = 0
vip, mode, count, iface, me, mac = sys.argv[1:7]
v6 = ":" in vip
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("::" if v6 else "0.0.0.0", 0))
s.settimeout(3)
port = s.getsockname()[1]
ok = 0
for i in range(int(count)):
    data = os.urandom(4000)
    if mode == "kernel":
        s.sendto(data, (vip, 53))
    elif v6:
        pkt = IPv6(src=me, dst=vip) / IPv6ExtHdrFragment(id=1000 + i) / UDP(sport=port, dport=53) / Raw(data)
        sendp([Ether(dst=mac) / f for f in reversed(fragment6(pkt, 1500))], iface=iface)
    else:
        pkt = IP(src=me, dst=vip, id=1000 + i) / UDP(sport=port, dport=53) / Raw(data)
        sendp([Ether(dst=mac) / f for f in reversed(fragment(pkt, 1480))], iface=iface)
    try:
        ok += s.recv(65535) == data
    except socket.timeout:
        pass
print(ok)
"""

COUNT = 20


class Lab(Ends):
    def __init__(self):
        super().__init__(workers="1-2", cpu_map="0@0,1@1,2@1", mbufs=16383)

    def setup(self):
        net, k, b4 = self.net, self.k, self.addr["B", 4]
        self.vips = {("nat", "v4"): f"{net}.9.1", ("fullnat", "v4"): f"{net}.9.2",
                     ("dr", "v4"): f"{net}.9.3", ("nat", "v6"): f"fd00:{k}:9::1",
                     ("fullnat", "v6"): f"fd00:{k}:9::2"}
        # DR: the VIP is the backend's own, never answered for by ARP.
        sh("ip", "-n", self.ns["B"], "addr", "add", f"{self.vips['dr', 'v4']}/32", "dev", "lo")
        sh("ip", "netns", "exec", self.ns["B"], "sysctl", "-qw",
           "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
        self.serve("B", ECHO)
        services = []
        for fam in (4, 6):
            b = self.addr["B", fam]
            backend = f"[{b}]:53" if fam == 6 else f"{b}:53"
            services += [{"vip": self.vips["nat", f"v{fam}"], "port": 53, "proto": "udp",
                          "backends": [backend]},
                         {"vip": self.vips["fullnat", f"v{fam}"], "port": 53, "proto": "udp",
                          "method": "fullnat", "local_addresses": [self.port_addr["B", fam]],
                          "backends": [backend]}]
        services.append({"vip": self.vips["dr", "v4"], "port": 53, "proto": "udp",
                         "method": "dr", "backends": [b4]})
        self.app.api().ApplyConfig(pb.ApplyConfigRequest(yaml=yaml.safe_dump(
            {"services": services})))
        # The appliance's MAC, for the frames scapy sends.
        for fam in (4, 6):
            gw = self.port_addr["C", fam]
            assert sh("ip", "netns", "exec", self.ns["C"], "ping", "-c", "1", "-w", "10", gw,
                      check=False).returncode == 0, gw
        out = sh("ip", "-n", self.ns["C"], "neigh", "show", self.port_addr["C", 4]).stdout.split()
        self.mac = out[out.index("lladdr") + 1]

    def ask(self, vip, mode):
        me = self.addr["C", 6 if ":" in vip else 4]
        return int(self.run("C", ASK, vip, mode, str(COUNT), self.app.ifaces[0], me, self.mac))


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    yield lab
    lab.close()


@pytest.mark.parametrize("method, family", [("nat", "v4"), ("nat", "v6"), ("fullnat", "v4"),
                                            ("fullnat", "v6"), ("dr", "v4")])
@pytest.mark.parametrize("mode", ["kernel", "reversed"])
def test_fragmented_datagrams_are_echoed_intact(lab, method, family, mode):
    assert lab.ask(lab.vips[method, family], mode) == COUNT


def test_fragments_were_followed_not_dropped(lab):
    st = lab.app.stats()
    counters, drops = st["counters"], st["drops"]
    # Every datagram's two later fragments, each way (DR's replies bypass pylb).
    assert counters["fragments_followed"] >= 2 * COUNT * (2 * 9 + 1)
    assert counters["fragments_held"] >= 2 * COUNT * 5
    assert not {r: n for r, n in drops.items() if r.startswith("frag_") and n}
