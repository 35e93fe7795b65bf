"""TCP management with TLS: mutual TLS decides the role in one interceptor.
An admin certificate may change things, another client certificate reads
(changes: PERMISSION_DENIED), a client without one cannot connect; with TLS
but no client CA, clients are unauthenticated (changes: UNAUTHENTICATED)."""

from __future__ import annotations

import socket
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pylb.errors import InvalidArgument
from pylb.manager import Manager, direct_submitter
from pylb.server import Server, Tls
from pylb.v1 import pylb_pb2 as pb
from pylb.v1 import pylb_pb2_grpc as pb_grpc
from test_cli import ROOT

KEY = pb.ServiceKey(vip="10.0.0.100", port=80)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=pylb test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                      ("ops-admin", "extendedKeyUsage=clientAuth"),
                      ("viewer", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
                cwd=d)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(dp, pki, client_ca=True):
    port = free_port()
    tls = Tls((pki / "server.pem").read_bytes(), (pki / "server.key").read_bytes(),
              (pki / "ca.pem").read_bytes() if client_ca else None, frozenset({"ops-admin"}))
    server = Server(Manager(direct_submitter(dp)), f"tcp:127.0.0.1:{port}", tls=tls).start()
    server.serving(True)
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def tls_server(dp, pki):
    server, target = serve(dp, pki)
    yield target
    server.stop()


def stub_for(target, pki, who=None):
    creds = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / f"{who}.key").read_bytes() if who else None,
        (pki / f"{who}.pem").read_bytes() if who else None)
    ch = grpc.secure_channel(target, creds)
    return pb_grpc.LoadBalancerStub(ch), ch


def refused(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as e:
        call(request)
    return e.value.code(), e.value.details()


def test_roles_by_client_certificate(tls_server, pki):
    admin, _ = stub_for(tls_server, pki, "ops-admin")
    viewer, _ = stub_for(tls_server, pki, "viewer")
    anonymous, _ = stub_for(tls_server, pki)
    assert admin.AddService(pb.Service(key=KEY)).key.port == 80
    assert [s.key.port for s in viewer.ListServices(pb.ListServicesRequest()).services] == [80]
    code, details = refused(viewer.DeleteService, KEY)
    assert code == grpc.StatusCode.PERMISSION_DENIED and "admin certificate" in details
    code, _ = refused(viewer.ApplyConfig, pb.ApplyConfigRequest(yaml="services: []"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # Every call that is not a read is an admin's (ACLs, limits, announcements too).
    for call, req in ((viewer.SetAcl, pb.Acl(name="x")), (viewer.DeleteAcl, pb.AclKey(name="x")),
                      (viewer.SetServiceLimits, pb.ServiceLimits(service=KEY)),
                      (viewer.SetAnnounce, pb.SetAnnounceRequest(prefix="10.0.0.100"))):
        assert refused(call, req)[0] == grpc.StatusCode.PERMISSION_DENIED, call
    assert viewer.GetBgp(pb.GetBgpRequest()).peers == []
    code, _ = refused(anonymous.ListServices, pb.ListServicesRequest())
    assert code == grpc.StatusCode.UNAVAILABLE              # no certificate: no connection
    admin.DeleteService(KEY)


def test_tls_without_client_certificates_reads_but_does_not_change(dp, pki):
    server, target = serve(dp, pki, client_ca=False)
    try:
        anonymous, ch = stub_for(target, pki)
        assert list(anonymous.ListServices(pb.ListServicesRequest()).services) == []
        code, details = refused(anonymous.AddService, pb.Service(key=KEY))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "client certificate" in details
        assert dp.services() == []
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == \
            health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop()


def test_tcp_without_tls_is_refused(dp):
    with pytest.raises(InvalidArgument, match="TCP needs TLS"):
        Server(Manager(direct_submitter(dp)), f"tcp:127.0.0.1:{free_port()}")


def test_pylbctl_over_mutual_tls(tls_server, pki):
    def ctl(*args):
        return subprocess.run([sys.executable, "-m", "pylb.ctl", "--address", f"tcp:{tls_server}",
                               "--tls-ca", str(pki / "ca.pem"), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    admin = ("--tls-cert", str(pki / "ops-admin.pem"), "--tls-key", str(pki / "ops-admin.key"))
    viewer = ("--tls-cert", str(pki / "viewer.pem"), "--tls-key", str(pki / "viewer.key"))
    assert ctl(*admin, "service", "add", "10.0.0.100:80").returncode == 0
    r = ctl(*viewer, "service", "del", "10.0.0.100:80")
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr
    assert "10.0.0.100:80/tcp" in ctl(*viewer, "service", "list").stdout
    r = ctl("service", "list")
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr
