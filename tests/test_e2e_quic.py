"""End to end for QUIC connection-ID routing on TAP: real QUIC (aioquic)
servers in the three backend namespaces put their server id in the
connection IDs they choose (tests/quic_peer.py); an aioquic client asks
through the VIP, then moves to a new local port (and a new connection ID)
again and again. Each move is a new flow to the appliance: its connection
ID keeps it on its backend, plaintext and encrypted, where the 5-tuple
alone would scatter it."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest

from appliance_harness import sh
from test_e2e_l3 import Lab

HERE = os.path.dirname(__file__)
AES_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
MOVES = 6


def self_signed(directory: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pylb-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(
        key.public_key()).serial_number(1).not_valid_before(now).not_valid_after(
        now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    paths = os.path.join(directory, "quic.crt"), os.path.join(directory, "quic.key")
    with open(paths[0], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    lab.cert = self_signed(lab.www)
    yield lab
    lab.close()


def servers(lab, port, sid_len, nonce_len, key=None):
    for i, (ns, _) in enumerate(lab.backends):
        sid = f"{i + 1:0{2 * sid_len}x}"
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                              os.path.join(HERE, "quic_peer.py"), "server", ns, str(port),
                              *lab.cert, sid, str(nonce_len), *([key] if key else [])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        lab.procs.append(p)


def client(lab, vip, port):
    out = lab.client.run(sys.executable, os.path.join(HERE, "quic_peer.py"), "client", vip,
                         str(port), str(MOVES), timeout=120).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_quic_client_that_moves_stays_on_its_backend(lab, encrypted):
    from pylb.v1 import pylb_pb2 as pb
    net = lab.app.net
    vip, port = f"{net}.9.{40 + encrypted}", 4433 + encrypted
    sid_len, nonce_len = (4, 12) if encrypted else (2, 6)
    servers(lab, port, sid_len, nonce_len, AES_KEY if encrypted else None)
    quic = pb.QuicLb(server_id_length=sid_len, nonce_length=nonce_len,
                     key=AES_KEY if encrypted else "")
    lab.app.api().AddService(pb.Service(
        key=pb.ServiceKey(vip=vip, port=443, protocol=pb.PROTOCOL_UDP), quic=quic,
        backends=[pb.Backend(address=ip, port=port, server_id=f"{i + 1:0{2 * sid_len}x}")
                  for i, (_, ip) in enumerate(lab.backends)]))
    names = {ns for ns, _ in lab.backends}
    before = lab.app.stats()["counters"]
    for _ in range(3):
        steps = client(lab, vip, 443)
        assert len(steps) == MOVES + 1 and len({p for p, _ in steps}) == MOVES + 1, steps
        answers = {a for _, a in steps}
        assert len(answers) == 1 and answers <= names, steps     # one backend throughout
    after = lab.app.stats()["counters"]
    assert after["quic_routed"] - before["quic_routed"] >= 3 * MOVES
    out = sh(sys.executable, "-m", "pylb.ctl", "--instance", lab.app.instance,
             "service", "get", f"{vip}:443/udp").stdout
    assert f"quic {sid_len}+{nonce_len}" in out, out
    assert all(f"server-id {i + 1:0{2 * sid_len}x}" in out for i in range(len(lab.backends))), out


def test_pylbctl_adds_a_quic_service(lab):
    net = lab.app.net
    vip = f"{net}.9.42"
    ip = lab.backends[0][1]
    r = sh(sys.executable, "-m", "pylb.ctl", "--instance", lab.app.instance, "service", "add",
           f"{vip}:443/udp", "--quic", f"4:12:1:{AES_KEY}", "--backend", f"{ip}:4433=0000abcd",
           check=False)
    assert r.returncode == 0, r.stderr
    assert "quic 4+12 config 1 encrypted" in r.stdout and "server-id 0000abcd" in r.stdout
    r = sh(sys.executable, "-m", "pylb.ctl", "--instance", lab.app.instance, "service", "add",
           f"{vip}:444/udp", "--quic", "4:12:0:00", check=False)
    assert r.returncode != 0 and "key" in r.stderr
