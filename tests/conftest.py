"""Shared fixtures: an in-process EAL for packet fixtures, and helpers to run
the real appliance on TAP ports with clients in network namespaces."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from pylb import hostinfo
from pylb.model import service  # noqa: F401 (tests write services with it)

FIXTURE_PREFIX = f"pylb-fixtures-{os.getpid()}"
CLIENT_MAC = "02:00:00:00:00:02"
P0_MAC = "02:00:00:00:01:00"
P1_MAC = "02:00:00:00:01:01"


# The tiers (markers, pyproject.toml): a test's own mark (a `pylb run` on
# TAP ports in a file of unit tests is e2e), else by file where the file
# says it all, else by whether a test takes the in-process dataplane.
TIERS = ("unit", "fixture", "e2e", "build", "slow")
TIER_BY_FILE = {"test_bench_harness.py": "slow", "test_fuzz.py": "slow",
                "test_cli.py": "build", "test_docs.py": "build"}


def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(t) for t in TIERS):
            continue
        name = item.path.name
        tier = "e2e" if name.startswith("test_e2e_") else TIER_BY_FILE.get(name) or \
            ("fixture" if "native" in getattr(item, "fixturenames", ()) else "unit")
        item.add_marker(tier)




@pytest.fixture(scope="session", autouse=True)
def scratch():
    """What the harness writes (appliances' profiles, web roots, routers'
    and fleets' directories) goes in one directory, removed with the
    session: a run leaves nothing in /tmp (before, each run left a profile
    per appliance and a web root per site)."""
    d = tempfile.mkdtemp(prefix="pylb-tests-")
    os.chmod(d, 0o755)          # daemons that drop privileges read their files in it
    before, tempfile.tempdir = tempfile.tempdir, d
    yield d
    tempfile.tempdir = before
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_snapshots_left():
    """What the session's appliances leave in /run/pylb for a next start of
    their instance (connection snapshots, BIRD's directory of one killed)
    goes with the session: another session's test must not restore them."""
    import glob
    import shutil

    def seen():
        return {p: os.stat(p).st_mtime_ns for p in glob.glob("/run/pylb/*.conns") +
                glob.glob("/run/pylb/*.bgp")}
    before = seen()
    yield
    # New, or written again (an instance name an earlier run used too).
    for path, mtime in seen().items():
        if before.get(path) != mtime:
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)


@pytest.fixture(scope="session")
def native():
    """EAL in this process, once: no hugepages, no PCI, main lcore only."""
    from pylb import _native
    _native.eal_init(["pylb-tests", "--no-huge", "-m", "1024", "--no-pci", "-l", "0",
                      "--file-prefix", FIXTURE_PREFIX, "--log-level", "*:error"])
    yield _native
    _native.eal_cleanup()
    hostinfo.remove_instance_files(FIXTURE_PREFIX)


@pytest.fixture
def dp(native, request):
    """A worker-less dataplane with two detached ports:
    p0 02:00:00:00:01:00 10.0.0.1/24 2001:db8::1/64 and
    p1 02:00:00:00:01:01 10.0.1.1/24 2001:db8:1::1/64; Dataplane's
    keywords from the test's `dp_settings` mark, if any.
    Fails the test if any mbuf is still held when the test ends."""
    mark = request.node.get_closest_marker("dp_settings")
    d = native.Dataplane(mbufs=1023, mbuf_cache=0, **(mark.kwargs if mark else {}))
    d.add_port("p0", mac=P0_MAC)
    d.add_port("p1", mac=P1_MAC)
    d.add_address(0, "10.0.0.1/24")
    d.add_address(1, "10.0.1.1/24")
    d.add_address(0, "2001:db8::1/64")
    d.add_address(1, "2001:db8:1::1/64")
    full = d.mbufs_available()
    yield d
    assert d.mbufs_available() == full, "mbufs leaked"
    d.close()


# The domain and the gRPC API over the test's dataplane (test_grpc,
# test_importers, test_top).
@pytest.fixture
def manager(dp):
    """The domain over the test's dataplane: the one the API serves."""
    from pylb.manager import Manager, direct_submitter
    m = Manager(direct_submitter(dp))
    for i in range(3):
        m.add_neighbour("p1", f"10.0.1.{20 + i}", f"02:00:00:00:0b:0{i}")
    return m


@pytest.fixture
def api(dp, manager, tmp_path):
    """(stub, dp, channel): the API served on tmp_path/api.sock."""
    import grpc
    from pylb.server import Server
    from pylb.v1 import pylb_pb2_grpc as pb_grpc
    server = Server(manager, f"unix:{tmp_path}/api.sock").start()
    server.serving(True)
    with grpc.insecure_channel(server.address) as ch:
        yield pb_grpc.LoadBalancerStub(ch), dp, ch
    server.stop()
