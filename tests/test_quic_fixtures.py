"""Packet fixtures for QUIC connection-ID routing (draft-ietf-quic-load-
balancers): a UDP service's backends put their server id in the connection
IDs they choose; a new flow (a client that moved to another address or
port) whose destination connection ID decodes to a backend goes to it,
plaintext or encrypted (AES-128, one pass), long or short header; anything
else (a client's Initial, an unknown id, another config, a wrong key, a
short packet) falls back to the scheduler. Trace agrees."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw, raw

from conftest import CLIENT_MAC, P0_MAC, service
from pylb.errors import InvalidArgument
from pylb.model import BackendSpec, QuicSpec, ServiceSpec, SpecError
from test_l4_fixtures import BACKENDS, BMAC, VIP

SIDS = {"10.0.1.20": "0001", "10.0.1.21": "0002", "10.0.1.22": "0003"}
KEY = "000102030405060708090a0b0c0d0e0f"



def cid(sid: str, nonce_len=6, config_id=0, key=None) -> bytes:
    """A connection ID as a backend chooses it."""
    body = bytes.fromhex(sid) + os.urandom(nonce_len)
    if key is not None:
        enc = Cipher(algorithms.AES(bytes.fromhex(key)), modes.ECB()).encryptor()
        body = enc.update(body) + enc.finalize()
    return bytes([config_id << 5 | 0x1f & os.urandom(1)[0]]) + body


def short(dcid: bytes) -> bytes:
    return bytes([0x40 | 0x01]) + dcid + os.urandom(20)          # 1-RTT: 0b01xxxxxx


def long(dcid: bytes) -> bytes:
    return bytes([0xc0]) + b"\0\0\0\1" + bytes([len(dcid)]) + dcid + bytes([8]) + \
        os.urandom(8) + os.urandom(30)


def datagram(payload: bytes, src="10.0.0.2", sport=40000):
    return Ether(src=CLIENT_MAC, dst=P0_MAC) / IP(src=src, dst=VIP) / \
        UDP(sport=sport, dport=443) / Raw(payload)


@pytest.fixture
def quic(dp):
    for b in BACKENDS:
        dp.add_neighbour("p1", b, BMAC[b])
    return dp


def add(dp, q=QuicSpec(), sids=SIDS, **kw):
    dp.add_service(ServiceSpec(VIP, 443, "udp", quic=q, backends=tuple(
        BackendSpec(b, 4433, server_id=sids.get(b, "")) for b in BACKENDS), **kw))


def backend_of(out) -> str:
    (port, f), = out
    assert port == 1
    return Ether(f)[IP].dst


def test_a_moving_client_stays_on_the_backend_its_connection_id_names(quic):
    add(quic)
    assert quic.service(VIP, 443, "udp").quic == QuicSpec()
    for k, (b, sid) in enumerate(SIDS.items()):
        c = cid(sid)
        # The same connection from 20 addresses and ports (NAT rebinding,
        # migration): each a new flow here, each to the named backend.
        for i in range(20):
            out = quic.inject("p0", [raw(datagram(short(c), f"10.0.0.{2 + i}",
                                                  40000 + 100 * k + i))])
            assert backend_of(out) == b
        assert backend_of(quic.inject("p0", [raw(datagram(long(cid(sid)), "10.0.0.99",
                                                             31000 + int(sid)))])) == b
    t = quic.totals()
    assert (t["quic_routed"], t["quic_unrouted"], t["conn_created"]) == (63, 0, 63)


def test_what_names_no_backend_goes_to_the_scheduler(quic):
    add(quic)
    sched = {}
    cases = {
        "initial": long(os.urandom(8)),                         # the client's own ID
        "unknown": short(cid("0009")),
        "other config": short(cid("0001", config_id=1)),
        "short": b"\x41\x00\x01",
        "empty": b"",
        "long, truncated": long(cid("0001"))[:10],
        "long, other length": long(cid("0001") + b"x"),
    }
    for i, (what, payload) in enumerate(cases.items()):
        pkt = datagram(payload, "10.0.0.7", 50000 + i)
        t = quic.l4_trace("10.0.0.7", VIP, "udp", 50000 + i, 443, payload=payload)
        sched[what] = backend_of(quic.inject("p0", [raw(pkt)]))
        assert t["verdict"] == "new" and t["backend"][0] == sched[what], what
        assert "names no backend" in t["why"], (what, t["why"])
    assert quic.totals()["quic_unrouted"] == len(cases)
    assert quic.totals()["quic_routed"] == 0


def test_an_established_flow_keeps_its_backend_whatever_its_packets_name(quic):
    add(quic)
    first = backend_of(quic.inject("p0", [raw(datagram(long(os.urandom(8))))]))
    other = next(b for b in BACKENDS if b != first)
    assert backend_of(quic.inject("p0", [raw(datagram(short(cid(SIDS[other]))))])) == first


def test_encrypted_connection_ids_are_decrypted_with_the_services_key(quic):
    q = QuicSpec(server_id_length=4, nonce_length=12, key=KEY)
    sids = {b: f"a5a5{s}" for b, s in SIDS.items()}
    add(quic, q, sids)
    assert quic.service(VIP, 443, "udp").quic.key == KEY
    for i, (b, sid) in enumerate(sids.items()):
        c = cid(sid, 12, key=KEY)
        assert c[1:5] != bytes.fromhex(sid)                  # not in the clear
        assert backend_of(quic.inject("p0", [raw(datagram(short(c), sport=41000 + i))])) == b
        t = quic.l4_trace("10.0.0.2", VIP, "udp", 42000 + i, 443, payload=short(c))
        assert t["backend"][0] == b and "QUIC connection ID names" in t["why"]
    # Another key's IDs name nothing (a 4-byte id decrypted at random).
    wrong = cid(sids[BACKENDS[0]], 12, key="ff" * 16)
    quic.inject("p0", [raw(datagram(short(wrong), sport=43000))])
    assert (quic.totals()["quic_routed"], quic.totals()["quic_unrouted"]) == (3, 1)


def test_a_down_backends_ids_go_to_the_scheduler(quic):
    add(quic)
    quic.set_service_backends(VIP, 443, [BackendSpec(b, 4433, state="down" if b == BACKENDS[1]
                                                     else "up", server_id=s)
                                         for b, s in SIDS.items()], proto="udp")
    out = quic.inject("p0", [raw(datagram(short(cid(SIDS[BACKENDS[1]]))))])
    assert backend_of(out) != BACKENDS[1] and quic.totals()["quic_unrouted"] == 1


def test_quic_settings_are_checked(quic):
    for bad, says in ((dict(server_id_length=0), "server_id_length"),
                      (dict(server_id_length=10, nonce_length=10), "19 bytes"),
                      (dict(nonce_length=3), "nonce_length"),
                      (dict(config_id=7), "config_id"),
                      (dict(key="00" * 15), "32 hex"),
                      (dict(key=KEY), "16 bytes together")):
        with pytest.raises(SpecError, match=says):
            QuicSpec(**bad)
    with pytest.raises(SpecError, match="for udp services"):
        ServiceSpec(VIP, 443, "tcp", quic=QuicSpec())
    with pytest.raises(SpecError, match="server_id_length"):
        ServiceSpec(VIP, 443, "udp", quic=QuicSpec(), backends=(BackendSpec(BACKENDS[0], 1,
                                                                            server_id="01"),))
    with pytest.raises(SpecError, match="has it too"):
        ServiceSpec(VIP, 443, "udp", quic=QuicSpec(), backends=(
            BackendSpec(BACKENDS[0], 1, server_id="0001"),
            BackendSpec(BACKENDS[1], 1, server_id="0001")))
    with pytest.raises(SpecError, match="hex"):
        BackendSpec(BACKENDS[0], 1, server_id="xyz")
    # The dataplane's own checks (for any other caller of the binding).
    add(quic)
    with pytest.raises(InvalidArgument, match="server id of 1 bytes"):
        quic.set_service_backends(VIP, 443, [BackendSpec(BACKENDS[0], 1, server_id="01")],
                                  proto="udp")
