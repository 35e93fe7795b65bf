"""The fake dataplane's contract: one sequence of domain operations, the
valid and the refused, run on the in-memory fake (tests/fake_dataplane.py)
and on the real binding over DPDK; every answer (views, listings, the
model, and each error's class and message) must be the same, so the fast
domain tier tests what the appliance does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fake_dataplane import FakeDataplane
from conftest import service
from pylb.config import load_config
from pylb.errors import PylbError
from pylb.manager import Manager, ServiceView, VipView, direct_submitter
from pylb.model import BackendSpec, PoolSpec, ServiceSpec, VipSpec

PORTS = (("p0", ("10.0.0.1/24", "2001:db8::1/64")), ("p1", ("10.0.1.1/24", "2001:db8:1::1/64")))
VIP, VIP6 = "10.0.0.100", "2001:db8::100"

FILE = """\
services:
  - {vip: 10.0.0.110, port: 443, backends: ["10.0.1.30:8443", "10.0.1.31:8443"]}
  - {vip: 10.0.0.100, port: 80, scheduler: wlc, backends: ["10.0.1.20:8080"]}
routes:
  - {prefix: 203.0.113.0/24, via: [{gateway: 10.0.1.254, port: p1}]}
vips:
  - {prefix: 10.0.3.0/24, backends: [10.0.1.40]}
neighbours:
  - {port: p1, address: 10.0.1.254, mac: "02:00:00:00:0f:fe"}
timeouts: {tcp_established: 600}
"""


def operations(m: Manager):
    """(what, call) in order; each call's answer is compared."""
    svc = ServiceSpec(VIP, 80, backends=(BackendSpec("10.0.1.20", 8080, 2),))
    yield "add route", lambda: m.add_route("192.0.2.0/24", [("10.0.1.20", "p1")])
    yield "add route again", lambda: m.add_route("192.0.2.0/24", [("10.0.1.21", "p1")])
    yield "gateway off-link", lambda: m.add_route("198.51.100.0/24", [("10.9.9.9", "p1")])
    yield "connected as route", lambda: m.add_route("10.0.0.0/24", [(None, "p1")])
    yield "no such port", lambda: m.add_route("198.51.100.0/24", [("10.0.1.20", "p9")])
    yield "ECMP", lambda: m.add_route("198.51.100.0/24", [("10.0.1.20", "p1"),
                                                          ("10.0.1.21", "p1")])
    yield "replace route", lambda: m.replace_route("198.51.100.0/24", [("10.0.1.22", "p1")])
    yield "add service", lambda: m.add_service(svc)
    yield "add service again", lambda: m.add_service(svc)
    yield "fullnat off-port", lambda: m.add_service(ServiceSpec(
        VIP, 81, method="fullnat", local_addresses=("10.9.9.9",)))
    yield "fullnat", lambda: m.add_service(ServiceSpec(
        VIP, 82, method="fullnat", local_addresses=("10.0.1.1",),
        backends=(BackendSpec("10.0.1.20", 0),)))
    yield "dr translating", lambda: m.add_service(ServiceSpec(
        VIP, 83, method="dr", backends=(BackendSpec("10.0.1.20", 8080),)))
    yield "too many backends", lambda: m.add_service(ServiceSpec(VIP, 84, backends=tuple(
        BackendSpec(f"10.0.{1 + i // 250}.{i % 250 + 1}", 1000) for i in range(4097))))
    yield "ipv6 service", lambda: m.add_service(ServiceSpec(
        VIP6, 80, "udp", scheduler="source", backends=(BackendSpec("2001:db8:1::20", 53),)))
    yield "backend added", lambda: m.set_backend(VIP, 80, "tcp", BackendSpec("10.0.1.21", 8080))
    yield "backend drained", lambda: m.set_backend(VIP, 80, "tcp",
                                                   BackendSpec("10.0.1.21", 8080, 3, "drain"))
    yield "limits", lambda: m.set_limits(VIP, 80, "tcp", max_connections=100, max_per_client=3)
    yield "limits of no service", lambda: m.set_limits(VIP, 99, "tcp", max_connections=1)
    yield "limit too high", lambda: m.set_limits(VIP, 80, "tcp", max_per_client=10**9)
    yield "backend of no service", lambda: m.set_backend(VIP, 99, "tcp",
                                                         BackendSpec("10.0.1.21", 8080))
    yield "no such backend", lambda: m.delete_backend(VIP, 80, "tcp", "10.0.1.99", 8080)
    yield "backend deleted", lambda: m.delete_backend(VIP, 80, "tcp", "10.0.1.21", 8080)
    yield "health check", lambda: m.apply_config(load_config("x", FILE))
    yield "add vip", lambda: m.add_vip(VipSpec("10.0.4.0/24", backends=(("10.0.1.40", 1),)))
    yield "add vip again", lambda: m.add_vip(VipSpec("10.0.4.0/24"))
    yield "vip backends", lambda: m.set_vip_backends("10.0.4.0/24", [("10.0.1.41", 2)])
    fw = PoolSpec("fw", (BackendSpec("10.0.1.50", 0), BackendSpec("10.0.1.51", 0, 2)))
    yield "add pool", lambda: m.add_pool(fw)
    yield "add pool again", lambda: m.add_pool(fw)
    yield "inspected route", lambda: m.add_route("100.64.0.0/24", [("10.0.1.20", "p1")], "fw")
    yield "route of no pool", lambda: m.add_route("100.64.1.0/24", [("10.0.1.20", "p1")], "nope")
    yield "inspected vip", lambda: m.add_vip(VipSpec("10.0.6.0/24", inspect="fw"))
    yield "delete pool in use", lambda: m.delete_pool("fw")
    yield "set pool", lambda: m.set_pool(replace(fw, stickiness="2-tuple", failover="stay"))
    yield "set a new pool", lambda: m.set_pool(PoolSpec("ids"))
    yield "pools", m.pools
    yield "uninspected", lambda: m.replace_route("100.64.0.0/24", [("10.0.1.20", "p1")])
    yield "unmarked vip gone", lambda: m.delete_vip("10.0.6.0/24")
    yield "delete pool", lambda: m.delete_pool("fw")
    yield "delete no pool", lambda: m.delete_pool("fw")
    yield "delete the other", lambda: m.delete_pool("ids")
    yield "neighbour", lambda: m.add_neighbour("p1", "10.0.1.20", "02:00:00:00:0b:20")
    yield "neighbour of no port", lambda: m.add_neighbour("p9", "10.0.1.20", "02:00:00:00:0b:20")
    yield "no such neighbour", lambda: m.delete_neighbour("p1", "10.0.1.77")
    yield "timeouts", lambda: m.set_timeouts({"udp": 120})
    yield "unknown timeout", lambda: m.set_timeouts({"tcp_wait": 1})
    yield "delete connected", lambda: m.delete_route("10.0.0.0/24")
    yield "delete no route", lambda: m.delete_route("100.64.0.0/10")
    half_way = FILE.replace("routes:", """  - {vip: 10.0.0.111, port: 80, method: fullnat,
     local_addresses: [10.9.9.9]}
routes:""").replace("10.0.3.0/24", "10.0.5.0/24")
    yield "refused half way", lambda: m.apply_config(load_config("y", half_way))
    yield "config", m.current_config
    yield "services", m.services
    yield "routes", m.routes
    yield "vips", m.vips
    yield "neighbours", lambda: [(p, n.ip, n.mac, n.state) for p, n in m.neighbours()]
    yield "timeouts now", m.timeouts
    yield "delete service", lambda: m.delete_service(VIP, 80, "tcp")
    yield "delete it again", lambda: m.delete_service(VIP, 80, "tcp")
    yield "delete vip", lambda: m.delete_vip("10.0.4.0/24")
    yield "delete route", lambda: m.delete_route("192.0.2.0/24")
    yield "empty", lambda: m.apply_config(load_config("z", "services: []"))
    yield "routes after", m.routes
    yield "config after", m.current_config


def _comparable(answer):
    """Views with their table fingerprints as their shape: the fake has no
    lookup table (the binding's are tested in test_fleet_fixtures.py)."""
    if isinstance(answer, list):
        return [_comparable(a) for a in answer]
    if isinstance(answer, (ServiceView, VipView)):
        f = answer.fingerprint
        return replace(answer, fingerprint=len(f) == 16 and int(f, 16) >= 0)
    return answer


def answers(dp) -> list:
    m = Manager(direct_submitter(dp))
    out = []
    for what, call in operations(m):
        try:
            out.append((what, _comparable(call())))
        except PylbError as e:
            # The error's kind (a spec's refusal, SpecError, is an InvalidArgument).
            kind = next(c for c in type(e).__mro__ if c.__module__ == "pylb.errors")
            out.append((what, kind.__name__, str(e)))
    return out


def test_the_fake_answers_as_the_binding(dp):
    fake = answers(FakeDataplane(PORTS))
    real = answers(dp)
    for f, r in zip(fake, real):
        assert f == r, f"{f[0]}: the fake answered {f[1:]!r}, the binding {r[1:]!r}"
    assert len(fake) == len(real)
    # The sequence covers refusals of every kind.
    kinds = {a[1] for a in real if len(a) == 3}
    assert kinds == {"AlreadyExists", "InvalidArgument", "NotFound", "FailedPrecondition",
                     "CapacityExhausted"}, kinds


def test_the_fake_starts_as_the_binding(dp):
    fake = FakeDataplane(PORTS)
    assert sorted((r.prefix, r.kind, r.nexthops) for f in (4, 6) for r in fake.routes(f)) == \
        sorted((r.prefix, r.kind, r.nexthops) for f in (4, 6) for r in dp.routes(f))
    assert fake.timeouts() == dp.timeouts()
    assert [(p.index, p.name, p.addresses) for p in fake.ports()] == \
        [(p.index, p.name, p.addresses) for p in dp.ports()]


def test_a_refused_add_service_leaves_nothing_on_either(dp):
    """Issue 28.2: backends of the other family refused, and no service
    left behind (none listed, no VIP route answering echo), on the binding
    as on the fake."""
    from pylb.errors import InvalidArgument, NotFound
    for d in (FakeDataplane(PORTS), dp):
        before = sorted(r.prefix for r in d.routes(4))
        with pytest.raises(InvalidArgument, match="address family"):
            d.add_service(service("10.0.0.100", 80, backends=[("2001:db8:1::20", 8080, 1, "up", 0)]))
        with pytest.raises(NotFound):
            d.service_stats("10.0.0.100", 80)
        assert sorted(r.prefix for r in d.routes(4)) == before
        d.add_service(service("10.0.0.100", 80, backends=[("10.0.1.20", 8080, 1, "up", 0)]))  # free again
