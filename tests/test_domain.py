"""The domain tier: the Manager and the gRPC servicers on the in-memory fake
dataplane (tests/fake_dataplane.py, kept honest by tests/test_contract.py).
No EAL, no hugepages: it runs alone in seconds (pytest tests/test_domain.py)."""

from __future__ import annotations

import ast
import pathlib
import queue
import re
import threading
from dataclasses import replace

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fake_dataplane import FakeDataplane
from pylb import model
from pylb.config import dump, load_config
from pylb.errors import DataplaneError, InvalidArgument, NotFound
from pylb.manager import Manager, direct_submitter, queue_submitter
from pylb.model import BackendSpec, HealthCheckSpec, ServiceSpec
from pylb.server import Server
from pylb.v1 import pylb_pb2 as pb
from pylb.v1 import pylb_pb2_grpc as pb_grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PORTS = (("p0", ("10.0.0.1/24", "2001:db8::1/64")), ("p1", ("10.0.1.1/24", "2001:db8:1::1/64")))

START = """\
services:
  - vip: 10.0.0.100
    port: 80
    scheduler: wlc
    health_check: {type: http, path: /healthz, interval_ms: 500}
    backends: ["10.0.1.20:8080", {address: "10.0.1.21:8080", weight: 3, state: drain}]
  - {vip: "2001:db8::100", port: 53, proto: udp, backends: ["[2001:db8:1::20]:5353"]}
  - {vip: 10.0.0.101, port: 443, method: fullnat, local_addresses: [10.0.1.1],
     backends: [10.0.1.30]}
routes:
  - {prefix: 203.0.113.0/24, via: [{gateway: 10.0.1.254, port: p1}, {gateway: 10.0.1.253, port: p1}]}
vips:
  - {prefix: 10.0.3.0/24, method: gre, backends: [10.0.1.40, {address: 10.0.1.41, weight: 2}]}
neighbours:
  - {port: p1, address: 10.0.1.254, mac: "02:00:00:00:0f:fe"}
timeouts: {udp: 120, tcp_established: 600}
"""


def state(dp: FakeDataplane):
    """Everything the fake dataplane holds."""
    return (dict(dp._routes), {k: (v["id"], v["method"], list(v["backends"]))
                               for k, v in dp._services.items()},
            {k: dict(v) for k, v in dp._vips.items()}, dict(dp._neigh), dp.timeouts())


@pytest.fixture
def fake():
    return FakeDataplane(PORTS)


@pytest.fixture
def api(fake, tmp_path):
    m = Manager(direct_submitter(fake))
    server = Server(m, f"unix:{tmp_path}/api.sock").start()
    server.serving(True)
    with grpc.insecure_channel(server.address) as ch:
        yield pb_grpc.LoadBalancerStub(ch), m
    server.stop()


def test_the_main_loop_waiting_for_the_domain_runs_the_holders_task(fake):
    """A change from another thread (the API, a health verdict) holds the
    domain's lock while its task waits for the main loop; the main loop,
    wanting the lock too (the fleet's housekeeping: set_backups; a reload;
    a SIGTERM's withdrawal), runs that task meanwhile and both go through.
    Before, each waited for the other until the submit timed out: a
    restarted appliance's verdicts and announcements 30 s late, a SIGTERM
    unheard (issue 27.4)."""
    tasks: queue.SimpleQueue = queue.SimpleQueue()
    m = Manager(queue_submitter(tasks, timeout=5, dp=fake))
    done = []
    change = threading.Thread(target=lambda: done.append(m.add_service(
        ServiceSpec("10.0.0.100", 80, backends=(BackendSpec("10.0.1.20", 8080),)))))
    change.start()
    while tasks.empty():            # its task waits for the main loop, the lock held
        change.join(0.01)
    m.set_backups(["10.9.9.9"])     # on the main loop: wants the lock
    change.join()
    assert len(done) == 1 and len(fake._services) == 1


def test_start_up_config_is_what_get_config_returns(fake):
    m = Manager(direct_submitter(fake))
    start = load_config("start.yaml", START)
    m.apply_config(start)
    assert m.current_config() == replace(start, path="(running)").normalised()
    # Written back to YAML and read again: the same model.
    assert load_config("again", dump(m.current_config())) == \
        replace(start, path="again").normalised()
    # The dataplane got exactly that: services with the domain's ids, and
    # the model's timeouts over the profile's.
    assert sorted(v["id"] for v in fake._services.values()) == [0, 1, 2]
    assert fake.timeouts()["udp"] == 120 and fake.timeouts()["tcp_syn"] == 60


def test_get_config_over_grpc_is_the_model(api):
    stub, m = api
    stub.ApplyConfig(pb.ApplyConfigRequest(yaml=START))
    got = load_config("got", stub.GetConfig(pb.GetConfigRequest()).yaml)
    assert got == load_config("got", START).normalised()


class FailingAt(FakeDataplane):
    """A fake whose `fail_at`-th change raises (a fault of the dataplane)."""
    CHANGES = ("add_service", "del_service", "set_service_backends", "add_route", "del_route",
               "replace_route", "add_vip", "del_vip", "set_backends", "add_neighbour",
               "del_neighbour", "set_timeouts")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.fail_at, self.calls = None, 0
        for name in self.CHANGES:
            setattr(self, name, self._counted(getattr(self, name)))

    def _counted(self, fn):
        def call(*a, **kw):
            self.calls += 1
            if self.fail_at is not None and self.calls == self.fail_at:
                self.fail_at = None                 # the undo goes through
                raise DataplaneError("injected fault")
            return fn(*a, **kw)
        return call


def configs():
    """Random desired states over a few services, routes, VIPs and neighbours."""
    backend = st.builds(BackendSpec, st.sampled_from([f"10.0.1.{i}" for i in range(20, 26)]),
                        st.sampled_from([0, 8080]), st.integers(0, 3),
                        st.sampled_from(model.BACKEND_STATES))
    service = st.builds(
        lambda vip, port, sched, bs, check: ServiceSpec(
            vip, port, scheduler=sched, backends=tuple({b.key: b for b in bs}.values()),
            health_check=HealthCheckSpec() if check else None),
        st.sampled_from(["10.0.0.100", "10.0.0.101"]), st.sampled_from([80, 443]),
        st.sampled_from(model.SCHEDULERS), st.lists(backend, max_size=4), st.booleans())
    route = st.builds(lambda p, gw: model.RouteSpec(p, ((gw, "p1"),)),
                      st.sampled_from(["192.0.2.0/24", "198.51.100.0/24"]),
                      st.sampled_from(["10.0.1.253", "10.0.1.254"]))
    vip = st.builds(lambda p, w: model.VipSpec(p, backends=(("10.0.1.40", w),)),
                    st.sampled_from(["10.0.3.0/24", "10.0.4.0/24"]), st.integers(0, 2))
    neigh = st.builds(lambda ip, mac: model.NeighbourSpec("p1", ip, mac),
                      st.sampled_from(["10.0.1.253", "10.0.1.254"]),
                      st.sampled_from(["02:00:00:00:00:aa", "02:00:00:00:00:bb"]))
    timeouts = st.dictionaries(st.sampled_from(model.TIMEOUT_KEYS), st.integers(1, 1000))

    def unique(items, key):
        return tuple({key(x): x for x in items}.values())
    return st.builds(
        lambda s, r, v, n, t: model.Config(
            "x", unique(s, lambda x: x.key), unique(r, lambda x: x.prefix),
            unique(v, lambda x: x.prefix), unique(n, lambda x: x.key),
            tuple((k, t[k]) for k in model.TIMEOUT_KEYS if k in t)),
        st.lists(service, max_size=3), st.lists(route, max_size=2), st.lists(vip, max_size=2),
        st.lists(neigh, max_size=2), timeouts)


@settings(max_examples=150, deadline=None)
@given(configs(), configs(), st.integers(1, 30))
def test_a_change_that_fails_half_way_leaves_everything_as_it_was(first, second, fail_at):
    fake = FailingAt(PORTS)
    m = Manager(direct_submitter(fake))
    m.apply_config(first)
    model_before, dp_before = m.current_config(), state(fake)
    fake.calls, fake.fail_at = 0, fail_at
    try:
        m.apply_config(second)
    except DataplaneError as e:
        assert "injected fault" in str(e) and "nothing was changed" in str(e)
        assert m.current_config() == model_before
        assert state(fake) == dp_before
    else:
        assert m.current_config() == replace(second, path="(running)").normalised()
    # Either way the domain goes on: the second state can be reached.
    m.apply_config(second)
    assert m.current_config() == replace(second, path="(running)").normalised()


def test_health_verdicts_change_what_is_in_force_not_the_model(fake):
    m = Manager(direct_submitter(fake))
    m.apply_config(load_config("start", START))
    key = ("10.0.0.100", 80, "tcp")
    m._health_verdict(key, ("10.0.1.20", 8080), model.DOWN)
    m._health_verdict(key, ("10.0.1.21", 8080), model.DOWN)    # drained: stays drained
    assert fake._services[key]["backends"] == [("10.0.1.20", 8080, 1, model.DOWN, 0),
                                               ("10.0.1.21", 8080, 3, model.DRAIN, 0)]
    assert m.current_config() == replace(load_config("start", START), path="(running)").normalised()
    assert [b.spec.state for b in m.service(*key).backends] == [model.DOWN, model.DRAIN]
    # An operator's change keeps the verdict; the verdict up lifts it.
    m.set_backend(*key, BackendSpec("10.0.1.20", 8080, 5))
    assert fake._services[key]["backends"][0] == ("10.0.1.20", 8080, 5, model.DOWN, 0)
    m._health_verdict(key, ("10.0.1.20", 8080), model.UP)
    assert fake._services[key]["backends"][0] == ("10.0.1.20", 8080, 5, model.UP, 0)
    # An operator's down is not lifted by a check.
    m.set_backend(*key, BackendSpec("10.0.1.20", 8080, 5, model.DOWN))
    m._health_verdict(key, ("10.0.1.20", 8080), model.UP)
    assert fake._services[key]["backends"][0][3] == model.DOWN
    # Without a health check, verdicts are forgotten.
    s = m.current_config().service(key)
    m.apply_config(replace(m.current_config(), services=tuple(
        replace(x, health_check=None, backends=(BackendSpec("10.0.1.20", 8080),))
        if x.key == key else x for x in m.current_config().services)))
    m._health_verdict(key, ("10.0.1.20", 8080), model.DOWN)
    assert fake._services[key]["backends"] == [("10.0.1.20", 8080, 1, model.UP, 0)]
    assert s.health_check is not None


def test_service_ids_are_the_domains_and_reused_last(fake):
    m = Manager(direct_submitter(fake))
    for port in (1, 2, 3):
        m.add_service(ServiceSpec("10.0.0.100", port))
    m.delete_service("10.0.0.100", 1, "tcp")
    m.add_service(ServiceSpec("10.0.0.100", 4))
    assert {k[1]: v["id"] for k, v in fake._services.items()} == {2: 1, 3: 2, 4: 3}


@pytest.mark.parametrize("call, request_, code", [
    ("GetService", pb.ServiceKey(vip="10.0.0.100", port=80), grpc.StatusCode.NOT_FOUND),
    ("AddService", pb.Service(key=pb.ServiceKey(vip="10.0.0.1000", port=80)),
     grpc.StatusCode.INVALID_ARGUMENT),
    ("AddRoute", pb.Route(prefix="10.0.0.0/24", next_hops=[pb.NextHop(port="p1")]),
     grpc.StatusCode.FAILED_PRECONDITION),
    ("AddService", pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=80), backends=[
        pb.Backend(address=f"10.0.1.{i % 250}", port=1000 + i) for i in range(4097)]),
     grpc.StatusCode.RESOURCE_EXHAUSTED),
    ("AddNeighbour", pb.Neighbour(port="p9", address="10.0.1.9", mac="02:00:00:00:00:09"),
     grpc.StatusCode.NOT_FOUND),
])
def test_errors_keep_their_meaning(api, call, request_, code):
    stub, _ = api
    with pytest.raises(grpc.RpcError) as e:
        getattr(stub, call)(request_)
    assert e.value.code() == code and e.value.details()


def test_a_duplicate_is_already_exists_and_a_fault_internal(api, fake):
    stub, m = api
    stub.AddService(pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=80)))
    with pytest.raises(grpc.RpcError) as e:
        stub.AddService(pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=80)))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS

    def broken(*a, **kw):
        raise DataplaneError("the FIB is corrupt")
    fake.add_route = broken
    with pytest.raises(grpc.RpcError) as e:
        stub.AddRoute(pb.Route(prefix="192.0.2.0/24",
                               next_hops=[pb.NextHop(gateway="10.0.1.9", port="p1")]))
    assert e.value.code() == grpc.StatusCode.INTERNAL and "corrupt" in e.value.details()
    assert m.current_config().routes == ()          # the model did not take it


def test_set_backend_answers_with_the_counts(api):
    stub, _ = api
    stub.AddService(pb.Service(key=pb.ServiceKey(vip="10.0.0.100", port=80)))
    s = stub.SetBackend(pb.SetBackendRequest(service=pb.ServiceKey(vip="10.0.0.100", port=80),
                                             backend=pb.Backend(address="10.0.1.20", port=80)))
    assert [(b.address, b.active_connections, b.inactive_connections) for b in s.backends] == \
        [("10.0.1.20", 0, 0)]


@pytest.mark.parametrize("call, request_, file, field", [
    ("SetAcl", pb.Acl(name="bad name", prefixes=["192.0.2.0/24"]),
     "acls: [{name: bad name, prefixes: [192.0.2.0/24]}]", "name"),
    ("SetAcl", pb.Acl(name="a", prefixes=["192.0.2.0/24", "192.0.2.1/24"]),
     "acls: [{name: a, prefixes: [192.0.2.0/24, 192.0.2.1/24]}]", "prefixes[1]"),
    ("SetAcl", pb.Acl(name="a", action="reject"),
     "acls: [{name: a, action: reject}]", "action"),
    ("SetTimeouts", pb.Timeouts(tcp_syn=model.TIMEOUT_MAX + 1),
     f"timeouts: {{tcp_syn: {model.TIMEOUT_MAX + 1}}}", "tcp_syn"),
])
def test_acls_and_timeouts_are_checked_by_the_model_whichever_way_they_come(
        api, call, request_, file, field):
    """The spec refuses, with the same words: the API names its field, the
    file the field's place (and line)."""
    stub, _ = api
    with pytest.raises(grpc.RpcError) as e:
        getattr(stub, call)(request_)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    api_field, expected = e.value.details().split(": ", 1)
    assert api_field == field
    with pytest.raises(InvalidArgument) as f:
        load_config("c.yaml", file)
    assert f"{field}" in str(f.value) and expected in str(f.value)


def test_the_servicer_makes_specs_not_files():
    """server.py reads the file format only for the calls that carry a file
    (ApplyConfig, GetConfig)."""
    used = re.findall(r"\bconfig\.(\w+)", (ROOT / "pylb/server.py").read_text())
    assert set(used) == {"load_config", "dump"}


# Names are defined once: each method, scheduler, state and protocol name
# is a string literal in pylb/model.py only. ("source", a scheduler, is
# also a plain word for addresses; a port's link is up or down.)
NAMES = set(model.METHODS + model.VIP_METHODS + model.SCHEDULERS + model.BACKEND_STATES
            + model.PROTOS) - {"source"}


def lines(path, cache={}):
    if path not in cache:
        cache[path] = path.read_text().splitlines()
    return cache[path]


def test_each_name_is_written_once():
    offenders = []
    for path in sorted((ROOT / "pylb").glob("*.py")):
        if path.name == "model.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in NAMES and \
                    "link" not in lines(path)[node.lineno - 1]:
                offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
    for path in sorted((ROOT / "pylb").glob("*.pyx")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            offenders += [f"{path.name}:{i}: {m}" for m in re.findall(r"[\"']([a-z]+)[\"']", code)
                          if m in NAMES]
    assert offenders == []


def test_the_model_reads_the_dataplanes_limits():
    header = (ROOT / "native/include/pylb_dp.h").read_text()
    assert re.search(rf"PYLB_MAGLEV_DEFAULT\s+{model.TABLE_SIZE}\b", header)
    assert re.search(rf"PYLB_MAX_BACKENDS\s+{model.MAX_BACKENDS}\b", header)
    with pytest.raises(InvalidArgument):
        load_config("x", "services: [{vip: 10.0.0.1, port: 80, table_size: 65536}]")


class Speaker:
    """Records what the domain tells its BGP speaker (the real one, BIRD,
    is tested end to end in tests/test_e2e_fleet.py)."""

    def __init__(self):
        self.told: list[tuple[str, ...]] = []
        self.backups: tuple[str, ...] = ()

    def announce(self, prefixes, backups=()):
        self.told.append(tuple(sorted(prefixes)))
        self.backups = tuple(sorted(backups))

    def peers(self):
        return []


def test_announcements_follow_health_the_operator_and_the_stop(fake):
    speaker = Speaker()
    m = Manager(direct_submitter(fake), speaker=speaker)
    m.apply_config(load_config("start", START))
    key = ("10.0.0.100", 80, "tcp")
    every = ("10.0.0.100/32", "10.0.0.101/32", "10.0.3.0/24", "2001:db8::100/128")
    assert speaker.told[-1] == every
    got = {a.prefix: (a.announced, a.why) for a in m.announcements()}
    assert got["10.0.0.100/32"] == (True, "announced: 1 of 2 backends up in 10.0.0.100:80/tcp")
    assert got["10.0.3.0/24"] == (True, "announced: 2 of 2 backends with weight")
    # Its only live backend checked down: withdrawn, and why.
    m._health_verdict(key, ("10.0.1.20", 8080), model.DOWN)
    assert "10.0.0.100/32" not in speaker.told[-1]
    assert {a.prefix: a.why for a in m.announcements()}["10.0.0.100/32"] == \
        "withdrawn: 0 of 2 backends up in 10.0.0.100:80/tcp (needs 1)"
    m._health_verdict(key, ("10.0.1.20", 8080), model.UP)
    assert speaker.told[-1] == every
    # The operator's withdrawal is part of the configuration.
    m.set_withdrawn("10.0.3.0/24", True)
    assert "10.0.3.0/24" not in speaker.told[-1]
    assert m.current_config().announce.withdrawn == ("10.0.3.0/24",)
    assert "withdrawn:\n  - 10.0.3.0/24" in dump(m.current_config())
    m.set_withdrawn("10.0.3.0/24", False)
    assert speaker.told[-1] == every
    with pytest.raises(InvalidArgument, match="VIP address or prefix"):
        m.set_withdrawn("10.0.3.1/24", True)
    # Only VIPs (issue 27.3e): anything else is not found, nothing stored.
    for other in ("8.8.8.8", "0.0.0.0/0", "10.0.3.0/25", "10.0.1.20"):
        for withdrawn in (True, False):
            with pytest.raises(NotFound, match="not a VIP"):
                m.set_withdrawn(other, withdrawn)
    assert m.current_config().announce.withdrawn == ()
    # A withdrawal lists as a change in a dry run as it does when applied.
    m.set_withdrawn("10.0.3.0/24", True)
    assert m.apply_config(load_config("start", START), dry_run=True) == ["set announce"]
    assert m.apply_config(load_config("start", START)) == ["set announce"]
    # A higher bar from the file: the VIP with one backend up goes.
    m.apply_config(replace(load_config("start", START),
                           announce=model.AnnounceSpec(min_healthy_backends=2)))
    assert "10.0.0.101/32" not in speaker.told[-1] and "10.0.3.0/24" in speaker.told[-1]
    # Stopping: every VIP withdrawn.
    m.stop_announcing()
    assert speaker.told[-1] == ()
    assert {a.why for a in m.announcements()} == {model.STOPPING}


def test_the_appliance_pool_serves_fullnat_services_that_name_no_sources(fake):
    """One configuration for a fleet: a FullNAT service without
    local_addresses takes each appliance's pool (of its VIP's family), shown
    in force, never written into the configuration; the pool and the peers'
    pool addresses held as backups are announced."""
    speaker = Speaker()
    m = Manager(direct_submitter(fake), speaker=speaker, pool=("10.0.1.1", "2001:db8:1::1"))
    m.apply_config(load_config("fleet", """\
services:
  - {vip: 10.0.0.102, port: 80, method: fullnat, backends: [10.0.1.30]}
"""))
    (s,) = m.services()
    assert s.spec.local_addresses == ("10.0.1.1",)
    assert "local_addresses" not in dump(m.current_config())
    assert speaker.told[-1] == ("10.0.0.102/32", "10.0.1.1/32", "2001:db8:1::1/128")
    m.set_backups(["10.0.1.9"])
    assert speaker.backups == ("10.0.1.9/32",)
    why = {a.prefix: (a.announced, a.backup, a.why) for a in m.announcements()}
    assert why["10.0.1.1/32"] == (True, False, "announced: a FullNAT local address of this "
                                               "appliance")
    assert why["10.0.1.9/32"][:2] == (True, True)
    m.stop_announcing()
    assert speaker.told[-1] == () and speaker.backups == ()
    # Without a pool, the service needs its own sources: said how.
    bare = Manager(direct_submitter(FakeDataplane(PORTS)))
    with pytest.raises(InvalidArgument, match="profile's ports' local_addresses"):
        bare.apply_config(load_config("fleet", """\
services:
  - {vip: 10.0.0.102, port: 80, method: fullnat, backends: [10.0.1.30]}
"""))


def test_a_checked_appliance_found_down_is_down_in_the_dataplane_not_the_model(fake):
    m = Manager(direct_submitter(fake))
    check = model.HealthCheckSpec(port=8081)
    fw = model.PoolSpec("fw", (BackendSpec("10.0.1.50", 0), BackendSpec("10.0.1.51", 0, 1, "drain")),
                        health_check=check)
    m.add_pool(fw)
    m._health_verdict(fw.check_key, ("10.0.1.50", 8081), model.DOWN)
    m._health_verdict(fw.check_key, ("10.0.1.51", 8081), model.DOWN)    # drained stays drained
    assert fake.pool("fw")["appliances"] == [("10.0.1.50", 1, "down"), ("10.0.1.51", 1, "drain")]
    assert m.current_config().pool("fw") == fw
    assert [a.spec.state for a in m.pool("fw").appliances] == ["down", "drain"]
    m._health_verdict(fw.check_key, ("10.0.1.50", 8081), model.UP)
    assert fake.pool("fw")["appliances"][0] == ("10.0.1.50", 1, "up")
    # An appliance gone, its verdicts go too.
    m.set_pool(replace(fw, appliances=fw.appliances[1:]))
    m._health_verdict(fw.check_key, ("10.0.1.50", 8081), model.DOWN)
    assert fake.pool("fw")["appliances"] == [("10.0.1.51", 1, "drain")]
