"""Writes the fuzzers' seed corpora: fuzz/corpus/packet/seed-* (one frame for
each path of native/fuzz/packet.c's configuration, built with scapy,
prefixed by the entry byte) and fuzz/corpus/api/seed-* (a valid request of
each kind tests/fuzz_api.py checks). Run again after changing either."""

from __future__ import annotations

import os

from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6PacketTooBig,
                                ICMPv6NDOptSrcLLAddr, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw, raw

P0, P1, C, B = "02:00:00:00:01:00", "02:00:00:00:01:01", "02:00:00:00:00:02", "02:00:00:00:0b:00"


def c2(dst, l4, src="10.0.0.2"):
    return Ether(src=C, dst=P0) / IP(src=src, dst=dst) / l4


def b2(src, l4, dst="10.0.0.2"):
    return Ether(src=B, dst=P1) / IP(src=src, dst=dst) / l4


def c6(dst, l4, src="2001:db8::2"):
    return Ether(src=C, dst=P0) / IPv6(src=src, dst=dst) / l4


SEEDS = {
    "arp-request": (0, Ether(src=C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.2", hwsrc=C,
                                                                  pdst="10.0.0.1")),
    "arp-vip": (0, Ether(src=C, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.2", hwsrc=C,
                                                              pdst="10.0.0.100")),
    "arp-reply": (1, Ether(src=B, dst=P1) / ARP(op=2, psrc="10.0.1.40", hwsrc=B,
                                                pdst="10.0.1.1", hwdst=P1)),
    "echo": (0, c2("10.0.0.1", ICMP() / Raw(b"ping"))),
    "echo-vip": (0, c2("10.0.0.100", ICMP())),
    "routed": (0, c2("198.51.100.7", UDP(sport=1, dport=2))),
    "routed-ttl1": (0, Ether(src=C, dst=P0) / IP(src="10.0.0.2", dst="198.51.100.7", ttl=1) / UDP()),
    "no-route": (0, c2("192.0.2.1", UDP())),
    "unresolved": (0, c2("10.0.1.99", UDP())),
    "vip-ipip": (0, c2("203.0.113.9", TCP(flags="S"))),
    "vip-gre": (0, c2("203.0.114.1", UDP())),
    "vip-dr": (0, c2("10.0.0.50", UDP())),
    "vip-big": (0, c2("203.0.113.9", UDP() / Raw(b"x" * 1480))),
    "nat-syn": (0, c2("10.0.0.100", TCP(sport=40000, dport=80, flags="S"))),
    "nat-ack": (0, c2("10.0.0.100", TCP(sport=40000, dport=80, flags="A"))),
    "nat-fin": (0, c2("10.0.0.100", TCP(sport=40000, dport=80, flags="FA"))),
    "nat-reply": (1, b2("10.0.1.21", TCP(sport=8080, dport=40000, flags="SA"))),
    "nat-reply-untracked": (1, b2("10.0.1.22", TCP(sport=8080, dport=41000, flags="A"))),
    "udp-nat": (0, c2("10.0.0.100", UDP(sport=5000, dport=53) / Raw(b"q"))),
    "udp-reply": (1, b2("10.0.1.21", UDP(sport=8080, dport=5000))),
    "fullnat-syn": (0, c2("10.0.0.101", TCP(sport=40001, dport=80, flags="S"))),
    "fullnat-reply": (1, b2("10.0.1.21", TCP(sport=8080, dport=1024, flags="SA"),
                            dst="10.0.1.1")),
    "dr-allports": (0, c2("10.0.0.102", TCP(sport=40002, dport=22, flags="S"))),
    "tunnel-udp": (0, c2("10.0.0.103", UDP(sport=40003, dport=9999))),
    "no-service": (0, c2("10.0.0.100", TCP(sport=1, dport=81, flags="S"))),
    "rst": (0, c2("10.0.0.100", TCP(sport=40000, dport=80, flags="R"))),
    "bad-flags": (0, c2("10.0.0.100", TCP(sport=40000, dport=80, flags="SF"))),
    "fragment": (0, Ether(src=C, dst=P0) / IP(src="10.0.0.2", dst="10.0.0.100", flags="MF")
                 / TCP(dport=80)),
    "icmp-error-about-nat": (1, b2("10.0.1.21", ICMP(type=3, code=4) /
                                   IP(src="10.0.0.2", dst="10.0.1.21") / TCP(sport=40000, dport=8080))),
    # ICMP errors about connections (icmperr.c): with their SYN in the burst seed.
    "icmp-error-nat-in": (0, c2("10.0.0.100", ICMP(type=3, code=4, nexthopmtu=1280) /
                                IP(src="10.0.0.100", dst="10.0.0.2") / TCP(sport=80, dport=40000),
                                src="10.0.0.250")),
    "icmp-error-fullnat-in": (0, c2("10.0.0.101", ICMP(type=3, code=4, nexthopmtu=1280) /
                                    IP(src="10.0.0.101", dst="10.0.0.2") /
                                    TCP(sport=80, dport=40000), src="10.0.0.250")),
    "icmp-error-dr-in": (0, c2("10.0.0.102", ICMP(type=11) / IP(src="10.0.0.102", dst="10.0.0.2")
                               / TCP(sport=80, dport=40000), src="10.0.0.250")),
    "icmp-error-fullnat-out": (1, b2("10.0.1.250", ICMP(type=3, code=4, nexthopmtu=1280) /
                                     IP(src="10.0.1.1", dst="10.0.1.21") /
                                     TCP(sport=1025, dport=80), dst="10.0.1.1")),
    "icmp-error-tunnel": (1, b2("10.0.1.250", ICMP(type=3, code=4, nexthopmtu=1400) /
                                IP(src="10.0.1.1", dst="10.0.1.21", proto=4) /
                                IP(src="10.0.0.2", dst="10.0.0.103") / UDP(sport=40003, dport=9999),
                                dst="10.0.1.1")),
    "icmp-error-l3-vip": (0, c2("203.0.113.5", ICMP(type=3, code=4) /
                                IP(src="203.0.113.5", dst="10.0.0.2") / UDP(), src="10.0.0.250")),
    "v6-packet-too-big": (0, c6("2001:db8::100", ICMPv6PacketTooBig(mtu=1280) /
                                IPv6(src="2001:db8::100", dst="2001:db8::2") /
                                TCP(sport=80, dport=40000), src="2001:db8::fa")),
    "vlan": (0, Ether(src=C, dst=P0) / Dot1Q(vlan=5) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP()),
    "v6-ns": (0, Ether(src=C, dst="33:33:ff:00:00:01") /
              IPv6(src="2001:db8::2", dst="ff02::1:ff00:1", hlim=255) /
              ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr=C)),
    "v6-ns-vip": (0, Ether(src=C, dst="33:33:ff:00:01:00") /
                  IPv6(src="2001:db8::2", dst="ff02::1:ff00:100", hlim=255) /
                  ICMPv6ND_NS(tgt="2001:db8::100") / ICMPv6NDOptSrcLLAddr(lladdr=C)),
    "v6-na": (1, Ether(src=B, dst=P1) / IPv6(src="2001:db8:1::20", dst="2001:db8:1::1", hlim=255)
              / ICMPv6ND_NA(tgt="2001:db8:1::20")),
    "v6-echo": (0, c6("2001:db8::1", ICMPv6EchoRequest())),
    "v6-nat-syn": (0, c6("2001:db8::100", TCP(sport=40000, dport=80, flags="S"))),
    "v6-fullnat-syn": (0, c6("2001:db8::101", TCP(sport=40000, dport=443, flags="S"))),
    "v6-fragment": (0, c6("2001:db8::100", IPv6ExtHdrFragment() / TCP(dport=80))),
    "v6-ext-chain": (0, c6("2001:db8::100", IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
                           IPv6ExtHdrRouting(addresses=[], segleft=0) / UDP(dport=53))),
    "v6-routed": (0, c6("2001:db8:1::77", UDP())),
    "kernel-out": (3, Ether(src=P1, dst=P1) / IP(src="10.0.1.1", dst="10.0.1.20") /
                   TCP(sport=33000, dport=8080, flags="S")),
    "kernel-out-v6": (2, Ether(src=P0, dst=P0) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP()),
    "worker-nat-syn": (4, c2("10.0.0.100", TCP(sport=40010, dport=80, flags="S"), src="10.0.0.9")),
    "worker-nat-reply": (5, b2("10.0.1.21", TCP(sport=8080, dport=40010, flags="SA"),
                               dst="10.0.0.9")),
    "worker-fullnat-reply": (5, b2("10.0.1.21", TCP(sport=8080, dport=1025, flags="A"),
                                   dst="10.0.1.1")),
    # Fragments of one UDP datagram to a NAT VIP (frag.c): the later ones
    # before the first in the burst seed too.
    "frag-later": (0, Ether(src=C, dst=P0) / IP(src="10.0.0.2", dst="10.0.0.100", id=77, frag=26,
                                                proto=17) / Raw(bytes(120))),
    "frag-first": (0, Ether(src=C, dst=P0) / IP(src="10.0.0.2", dst="10.0.0.100", id=77,
                                                flags="MF") / UDP(sport=40001, dport=53) /
                   Raw(bytes(200))),
    "v6-frag-later": (0, c6("2001:db8::100", IPv6ExtHdrFragment(id=78, offset=26, nh=17) /
                            Raw(bytes(120)))),
    "v6-frag-first": (0, c6("2001:db8::100", IPv6ExtHdrFragment(id=78, m=1) /
                            UDP(sport=40001, dport=53) / Raw(bytes(200)))),
    # An answer to the data-path probe packet.c keeps in flight (its
    # acknowledgement is the fuzzer's to find).
    "probe-answer": (1, b2("10.0.0.102", TCP(sport=80, dport=61000, flags="SA", ack=1),
                           dst="10.0.1.1")),
    "housekeep": (6, Raw(b"\x0b")),
    "gre-in": (0, c2("10.0.0.1", GRE() / IP(src="1.2.3.4", dst="5.6.7.8"))),
    # A NIC's IPv4 checksum mark (byte 0 >> 3 & 3): good on a header whose
    # sum is wrong, bad on one whose sum is right.
    "nic-good-wrong-sum": (0 | 2 << 3, Ether(src=C, dst=P0) /
                           IP(src="10.0.0.2", dst="10.0.1.9", chksum=0x1234) / UDP(dport=9)),
    "nic-bad-right-sum": (0 | 3 << 3, c2("10.0.1.9", UDP(dport=9))),
}


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for name, (entry, pkt) in SEEDS.items():
        with open(os.path.join(out, f"seed-{name}"), "wb") as f:
            f.write(bytes([entry]) + raw(pkt))
    burst = b"".join(bytes([len(raw(p))]) + raw(p) for e, p in SEEDS.values()
                     if e == 0 and len(raw(p)) < 256)
    with open(os.path.join(out, "seed-burst"), "wb") as f:
        f.write(b"\x07" + burst)


def api_seeds(out: str) -> None:
    from pylb.v1 import pylb_pb2 as pb
    key = pb.ServiceKey(vip="10.0.0.100", port=80)
    requests = [
        pb.Service(key=key, scheduler=pb.SCHEDULER_WRR, table_size=65537,
                   backends=[pb.Backend(address="10.0.1.20", port=8080, weight=2)],
                   health_check=pb.HealthCheck(type="http", path="/healthz", interval_ms=1000)),
        pb.Vip(prefix="203.0.113.0/24", method="gre", backends=[pb.VipBackend(address="10.0.1.9")]),
        key,
        pb.SetBackendRequest(service=key, backend=pb.Backend(address="10.0.1.21", port=80)),
        pb.Route(prefix="198.51.100.0/24", next_hops=[pb.NextHop(gateway="10.0.1.254", port="p1")]),
        pb.Neighbour(port="p1", address="10.0.1.9", mac="02:00:00:00:00:09"),
        pb.Timeouts(udp=30, tcp_fin=60),
    ]
    os.makedirs(out, exist_ok=True)
    for kind, r in enumerate(requests):
        with open(os.path.join(out, f"seed-{type(r).__name__}"), "wb") as f:
            f.write(bytes([kind]) + r.SerializeToString())


if __name__ == "__main__":
    main("fuzz/corpus/packet")
    api_seeds("fuzz/corpus/api")
