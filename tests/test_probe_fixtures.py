"""Packet fixtures for health probes through the data path (DR and tunnel
backends): the probe is what a client's packet to the VIP becomes on its
way to that backend (a SYN to the VIP, to the backend's MAC or in IPIP),
sent from the appliance's address; the backend's SYN-ACK is caught, noted
and answered with a RST by the same method; a RST is a refusal; other
packets to that address and port are not taken for answers."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import P1_MAC, service
from pylb.errors import CapacityExhausted, InvalidArgument, NotFound
from test_icmp_fixtures import BACKEND6 as B6, BMAC6, VIP6
from test_icmp_fixtures import lb  # noqa: F401  (the fixture: backends and clients known)
from test_l4_fixtures import BACKENDS, BMAC, VIP

B = BACKENDS[0]
ME = "10.0.1.1"                         # p1's address: towards the backends
ME6 = "2001:db8:1::1"

def sums_ok(pkt) -> bool:
    again = pkt.__class__(raw(pkt))
    for layer in (IP, TCP, UDP):
        if layer in again:
            fresh = again.copy()
            del fresh[layer].chksum
            if again.__class__(raw(fresh))[layer].chksum != again[layer].chksum:
                return False
    return True


def answer(syn, flags="SA", ack=None, mac=BMAC[B]):
    """The backend's answer to a probe SYN (as its kernel sends it: from the
    VIP, straight to the appliance's address)."""
    ip = syn[IP] if IP in syn else syn[IPv6]
    t = ip[TCP]
    l3 = IP(src=ip.dst, dst=ip.src) if IP in syn else IPv6(src=ip.dst, dst=ip.src)
    return Ether(src=mac, dst=P1_MAC) / l3 / TCP(sport=t.dport, dport=t.sport, flags=flags,
                                                 seq=5000, ack=t.seq + 1 if ack is None else ack)


def test_a_dr_probe_is_a_syn_to_the_vip_at_the_backends_mac(lb):
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    pid = lb.probe_start(VIP, 80, "tcp", B, "dr")
    (port, f), = lb.collect()
    syn = Ether(f)
    assert port == 1 and syn.dst == BMAC[B] and syn.src == P1_MAC
    assert (syn[IP].src, syn[IP].dst, syn[TCP].dport, syn[TCP].flags) == (ME, VIP, 80, "S")
    assert syn[TCP].sport == 61000 + pid and sums_ok(syn[IP])
    assert lb.probe_state(pid) == "pending"
    # The backend's SYN-ACK: noted, and a RST goes back to it the same way.
    (port, f), = lb.inject("p1", [raw(answer(syn))])
    rst = Ether(f)
    assert port == 1 and rst.dst == BMAC[B]
    assert (rst[IP].src, rst[IP].dst, rst[TCP].sport, rst[TCP].dport) == (ME, VIP, syn[TCP].sport, 80)
    assert rst[TCP].flags == "R" and rst[TCP].seq == syn[TCP].seq + 1 and sums_ok(rst[IP])
    assert lb.probe_state(pid) == "answered"
    t = lb.totals()
    assert (t["probes_sent"], t["probe_answers"]) == (1, 1)
    lb.probe_end(pid)
    with pytest.raises(NotFound):
        lb.probe_state(pid)


def test_a_rst_is_a_refusal_and_strangers_are_not_answers(lb):
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    pid = lb.probe_start(VIP, 80, "tcp", B, "dr")
    (_, f), = lb.collect()
    syn = Ether(f)
    # Not the probe's: a wrong acknowledgement, another source, a plain ACK.
    strangers = [answer(syn, ack=12345), answer(syn, flags="A")]
    other = answer(syn)
    other[IP].src = "10.0.1.99"
    strangers.append(other)
    assert lb.inject("p1", [raw(s) for s in strangers]) == []
    assert lb.drops()["local_unhandled"] == 3 and lb.probe_state(pid) == "pending"
    assert lb.inject("p1", [raw(answer(syn, flags="RA"))]) == []
    assert lb.probe_state(pid) == "refused"
    # Once settled, a late SYN-ACK is not taken.
    assert lb.inject("p1", [raw(answer(syn))]) == []
    assert lb.drops()["local_unhandled"] == 4
    lb.probe_end(pid)


def test_a_tunnel_probe_is_encapsulated_to_the_backend(lb):
    lb.add_service(service(VIP, 80, method="tunnel", backends=BACKENDS))
    pid = lb.probe_start(VIP, 80, "tcp", B, "tunnel")
    (port, f), = lb.collect()
    outer = Ether(f)[IP]
    assert port == 1 and (outer.dst, outer.proto) == (B, 4)
    inner = outer.payload
    assert (inner.src, inner.dst, inner[TCP].flags) == (ME, VIP, "S")
    # The backend takes the IPIP off and answers from the VIP.
    rst = lb.inject("p1", [raw(answer(Ether() / inner))])
    assert lb.probe_state(pid) == "answered"
    (_, f), = rst
    assert Ether(f)[IP].dst == B and Ether(f)[IP].payload[TCP].flags == "R"
    lb.probe_end(pid)


def test_udp_and_ipv6_probes(lb):
    lb.add_service(service(VIP, 53, proto="udp", method="dr", backends=BACKENDS))
    pid = lb.probe_start(VIP, 53, "udp", B, "dr")
    (_, f), = lb.collect()
    probe = Ether(f)
    assert probe[UDP].dport == 53 and raw(probe[UDP].payload) == b"pylb-health\n"
    assert sums_ok(probe[IP])
    reply = Ether(src=BMAC[B], dst=P1_MAC) / IP(src=VIP, dst=ME) / \
        UDP(sport=53, dport=probe[UDP].sport) / Raw(b"ok")
    assert lb.inject("p1", [raw(reply)]) == []
    assert lb.probe_state(pid) == "answered"
    lb.probe_end(pid)
    lb.add_service(service(VIP6, 80, method="dr", backends=[B6]))
    pid = lb.probe_start(VIP6, 80, "tcp", B6, "dr")
    (_, f), = lb.collect()
    syn = Ether(f)
    assert (syn.dst, syn[IPv6].src, syn[IPv6].dst) == (BMAC6, ME6, VIP6)
    assert lb.inject("p1", [raw(answer(syn, mac=BMAC6))])
    assert lb.probe_state(pid) == "answered"
    lb.probe_end(pid)


def test_bad_probes_are_refused_with_a_reason(lb):
    with pytest.raises(InvalidArgument, match="DR and tunnel"):
        lb.probe_start(VIP, 80, "tcp", B, "nat")
    with pytest.raises(InvalidArgument, match="no route"):
        lb.probe_start(VIP, 80, "tcp", "192.0.2.7", "dr")
    with pytest.raises(InvalidArgument, match="one family"):
        lb.probe_start(VIP, 80, "tcp", B6, "dr")
    with pytest.raises(InvalidArgument, match="port"):
        lb.probe_start(VIP, 0, "tcp", B, "dr")
    ids = [lb.probe_start(VIP, 80, "tcp", B, "dr") for _ in range(256)]
    lb.collect()
    with pytest.raises(CapacityExhausted):
        lb.probe_start(VIP, 80, "tcp", B, "dr")
    for i in ids:
        lb.probe_end(i)
    with pytest.raises(NotFound):
        lb.probe_end(ids[0])


@pytest.mark.parametrize("reply, verdict", [("SA", True), ("RA", False), (None, False)])
def test_the_health_checkers_probe_reads_the_answer(lb, reply, verdict):
    """pylb.health.probe_vip against the real dataplane: a backend that
    answers passes; a RST or silence (past the timeout) fails; the probe
    is forgotten either way."""
    import asyncio
    import threading
    from pylb.health import probe_vip
    from pylb.manager import direct_submitter
    lb.add_service(service(VIP, 80, method="dr", backends=BACKENDS))
    submit = direct_submitter(lb)

    def backend():
        """The backend's kernel: the probe's SYN, answered."""
        for _ in range(200):
            got = submit(lambda dp: dp.collect())
            if got:
                syn = Ether(got[0][1])
                if reply:
                    submit(lambda dp: dp.inject("p1", [raw(answer(syn, flags=reply))]))
                return
            threading.Event().wait(0.005)
    t = threading.Thread(target=backend)
    t.start()
    assert asyncio.run(probe_vip(submit, (VIP, 80, "tcp"), "dr", B, 80, 300)) is verdict
    t.join()
    lb.collect()                                    # (the RST)
    with pytest.raises(NotFound):
        lb.probe_state(0)
