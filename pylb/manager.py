"""The domain: the appliance's desired state, owned here, and every change
to it. The Manager holds the current model (pylb.model.Config: what the
operator asked for) and the health checks' verdicts; every mutation,
whatever its source (an API call, the configuration file at start,
SIGHUP, ApplyConfig, a health verdict, an operator's drain), builds the
next model, is computed as a diff against the current one, and is applied
through one path (`_commit`) with undo on failure. Service ids are
allocated here. The dataplane's state is written, never read back to
reconstruct intent: listings are the model plus live counters.

Every call that touches the dataplane runs on the appliance's main loop
through `submit`, so changes happen on one thread, between housekeeping
passes, while workers forward. The gRPC servicers (pylb.server) are thin
translations over this; tests drive it directly, against the real binding
or an in-memory fake with the same methods (tests/fake_dataplane.py).
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from pylb import model
from pylb.errors import (AlreadyExists, CapacityExhausted, FailedPrecondition, InvalidArgument,
                         NotFound, PylbError)
from pylb.model import (Announcement, announcements, AclSpec, BackendSpec, Change, Config,
                        host_prefix,
                        NeighbourSpec, PoolSpec, RouteSpec, ServiceKey,
                        ServiceSpec, VipSpec, describe, diff, service_name)

Submit = Callable[[Callable[[Any], Any]], Any]
log = logging.getLogger("pylb")


def run_tasks(tasks: queue.SimpleQueue, dp) -> None:
    """On the main loop's thread: run the tasks submitted to it."""
    while not tasks.empty():
        tasks.get()(dp)


def queue_submitter(tasks: queue.SimpleQueue, timeout: float | None = 30.0,
                    dp=None) -> Submit:
    """A `submit` that hands f(dp) to the main loop's task queue and waits;
    with `dp`, calls from the thread that made it (the main loop itself,
    e.g. the configuration at start) run at once."""
    owner = threading.get_ident()

    def submit(fn):
        if dp is not None and threading.get_ident() == owner:
            return fn(dp)
        fut: Future = Future()

        def task(dp):
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(dp))
                except BaseException as e:      # handed back to the caller's thread
                    fut.set_exception(e)
        tasks.put(task)
        return fut.result(timeout)

    def pump() -> None:
        """On the main loop's thread: run the tasks waiting (what another
        thread, holding something the main loop waits for, may need)."""
        if dp is not None and threading.get_ident() == owner:
            run_tasks(tasks, dp)
    submit.pump = pump
    return submit


class _Lock:
    """The domain's lock (reentrant). Its holders may wait on the main loop
    (a submit); so the main loop, waiting for it, runs their tasks
    meanwhile (`pump`), or each would wait for the other until the submit
    timed out (30 s without announcements, verdicts or the API, a SIGTERM
    unheard)."""

    def __init__(self, pump: Callable[[], None] | None):
        self._lock = threading.RLock()
        self._pump = pump

    def __enter__(self):
        if self._pump is None:
            self._lock.acquire()
        else:
            while not self._lock.acquire(timeout=0.005):
                self._pump()
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


def direct_submitter(dp) -> Submit:
    """A `submit` for a dataplane owned by the calling thread (tests, tools)."""
    lock = threading.Lock()

    def submit(fn):
        with lock:
            return fn(dp)
    return submit


@dataclass(frozen=True)
class BackendView:
    spec: BackendSpec           # as in force: an operator's up a health check holds down is down
    active: int
    inactive: int
    health: str = ""            # a model.HEALTH_STATES; "" when not checked
    stats: dict = field(default_factory=dict)   # as ServiceView's, for this backend


@dataclass(frozen=True)
class ServiceView:
    spec: ServiceSpec           # as in force
    backends: tuple[BackendView, ...]
    stats: dict                 # conns, in/out packets and bytes, active, inactive
    fingerprint: str = ""       # its lookup table's choices under the flow-hash key


@dataclass(frozen=True)
class VipView:
    spec: VipSpec
    fingerprint: str            # as ServiceView's


@dataclass(frozen=True)
class RouteView:
    prefix: str
    kind: str
    next_hops: tuple[tuple[str | None, str], ...]   # (gateway or None, port name)
    inspect: str = ""           # the inspection pool its traffic crosses first


@dataclass(frozen=True)
class ApplianceView:
    spec: BackendSpec           # as in force
    health: str                 # the check's verdict ("" without one)


@dataclass(frozen=True)
class PoolView:
    spec: PoolSpec              # as configured
    appliances: tuple[ApplianceView, ...]
    flows: int                  # remembered by the workers
    users: tuple[str, ...]      # the routes and VIPs it inspects


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"{what} {text!r} is not an IPv4 or IPv6 address") from None


def _prefix_order(prefix: str):
    n = ipaddress.ip_network(prefix)
    return n.network_address, n.prefixlen


Verdicts = dict[tuple[ServiceKey, tuple[str, int]], str]


def _checked(desired: Config, k: tuple[ServiceKey, tuple[str, int]]) -> bool:
    """Whether the backend k[1] of the service k[0] (or the appliance of
    the pool whose check_key k[0] is) has a health check in `desired`."""
    if k[0][2] == "pool":
        p = desired.pool(k[0][0])
        return p is not None and p.health_check is not None and \
            p.appliance(k[1][0]) is not None
    s = desired.service(k[0])
    return s is not None and s.health_check is not None and s.backend(*k[1]) is not None


def in_force(desired: Config, verdicts: Verdicts, pool: tuple[str, ...] = ()) -> Config:
    """What the dataplane carries for a model: a backend the operator set up
    that its health check finds down is down; a FullNAT service that names
    no local addresses takes the appliance's pool (`pool`: the profile's
    ports' local_addresses) of its VIP's family: one configuration for a
    fleet, each appliance its own sources."""
    def down(key: ServiceKey, backends: tuple[BackendSpec, ...], target) -> tuple:
        """backends, those up that key's check finds down (target(b): its
        verdict's target) down."""
        return tuple(replace(b, state=model.DOWN) if b.state == model.UP and
                     verdicts.get((key, target(b))) == model.DOWN else b for b in backends)

    def service(s: ServiceSpec) -> ServiceSpec:
        if s.method == model.FULLNAT and not s.local_addresses and pool:
            v = ipaddress.ip_address(s.vip).version
            s = replace(s, local_addresses=tuple(
                a for a in pool if ipaddress.ip_address(a).version == v))
        if s.health_check is None:
            return s
        return replace(s, backends=down(s.key, s.backends, lambda b: b.key))

    def checked(p: PoolSpec) -> PoolSpec:
        if p.health_check is None:
            return p
        return replace(p, appliances=down(p.check_key, p.appliances,
                                          lambda a: (a.ip, p.health_check.port)))
    return replace(desired, services=tuple(service(s) for s in desired.services),
                   pools=tuple(checked(p) for p in desired.pools))


class Manager:
    """`health`: the services' health checks, made by the runtime
    (pylb.health.checker: given where verdicts go, it returns the checker);
    None: none. The domain imports no runtime module."""

    def __init__(self, submit: Submit, health: Callable | None = None,
                 speaker=None, counters: Callable[[], dict] | None = None,
                 pool: tuple[str, ...] = ()):
        """`speaker`: announces the VIPs to routers (pylb.bgp.Bird); None:
        their announcements are decided and shown, nobody is told.
        `counters`: more counters for GetStats (connection sync's).
        `pool`: the appliance's FullNAT local addresses (see in_force)."""
        self._submit = submit
        self.speaker = speaker
        self._pool = tuple(pool)
        self._backups: tuple[str, ...] = ()     # peers' pool addresses held (pylb.sync)
        self._counters = counters or dict
        self._stopping = False                  # all withdrawn: the appliance stops
        self._lock = _Lock(getattr(submit, "pump", None))     # one change at a time
        self.model = Config()                   # what the operator asked for
        self._verdicts: Verdicts = {}           # the health checks' (up or down)
        self._ids: dict[ServiceKey, int] = {}   # service -> its dataplane slot
        self._next_id = 0
        # The hardware profile's timeouts: those the model does not list.
        self._base_timeouts = submit(lambda dp: dp.timeouts())
        self.health = health(self._health_verdict) if health else None

    def close(self) -> None:
        if self.health is not None:
            self.health.close()

    # BGP announcements (pylb.bgp)

    def announcements(self) -> list[Announcement]:
        with self._lock:
            return announcements(self._forced(self.model, self._verdicts), self._stopping,
                                 self._pool, self._backups)

    def _announce(self) -> None:
        if self.speaker is not None:
            on = [a for a in self.announcements() if a.announced]
            self.speaker.announce([a.prefix for a in on if not a.backup],
                                  [a.prefix for a in on if a.backup])

    def set_backups(self, addresses) -> None:
        """The peers' FullNAT pool addresses this appliance holds synced
        connections of (announced as backups)."""
        with self._lock:
            if tuple(addresses) != self._backups:
                self._backups = tuple(addresses)
                self._announce()

    def _forced(self, config: Config, verdicts: Verdicts) -> Config:
        return in_force(config, verdicts, self._pool)

    def set_withdrawn(self, prefix: str, withdrawn: bool) -> list[Announcement]:
        """The operator withdraws a VIP (an address or an L3 VIP prefix) or
        lets it be announced again by its health."""
        try:
            net = str(ipaddress.ip_network(prefix, strict=True))
        except ValueError:
            raise InvalidArgument(f"expected a VIP address or prefix, got {prefix!r}") from None
        with self._lock:
            vips = {host_prefix(s.vip) for s in self.model.services} | \
                {v.prefix for v in self.model.vips}
            # Only a VIP (or one withdrawn before it went) is on the list.
            if net not in vips and (withdrawn or net not in self.model.announce.withdrawn):
                raise NotFound(f"{net} is not a VIP (a service's address or an L3 VIP prefix) "
                               "of this appliance")
            now = tuple(p for p in self.model.announce.withdrawn if p != net)
            if withdrawn:
                now += (net,)
            self._commit(replace(self.model, announce=replace(self.model.announce,
                                                             withdrawn=now)))
            return self.announcements()

    def stop_announcing(self) -> None:
        """Shutting down: every VIP withdrawn (routers move the traffic away)."""
        with self._lock:
            self._stopping = True
            self._announce()

    def bgp_peers(self) -> list:
        return self.speaker.peers() if self.speaker is not None else []

    # The one way a change is made

    def _commit(self, desired: Config, verdicts: Verdicts | None = None, dry_run: bool = False,
                whole: bool = False) -> list[str]:
        """Make `desired` (and `verdicts`) the appliance's state, all or
        nothing: the diff from the current state is applied in one task on
        the main loop; on the first failure what was done is undone and the
        error raised (`whole`: a whole configuration, said in the error).
        Returns the changes, made or (dry_run) that would be made."""
        with self._lock:
            desired = replace(desired, path="(running)")
            missing = sorted({n for s in desired.services for n in s.acls} -
                             {a.name for a in desired.acls})
            if missing:
                raise InvalidArgument(f"no ACL is named {missing[0]!r}")
            missing = sorted({x.inspect for x in desired.routes + desired.vips if x.inspect} -
                             {p.name for p in desired.pools})
            if missing:
                raise InvalidArgument(f"no inspection pool is named {missing[0]!r}")
            # Verdicts last while their backend is checked: a backend a
            # check holds down stays down through other changes.
            verdicts = {k: v for k, v in (self._verdicts if verdicts is None else verdicts).items()
                        if _checked(desired, k)}
            changes = diff(self._forced(self.model, self._verdicts), self._forced(desired, verdicts),
                           self._base_timeouts)
            done = [describe(c) for c in changes]
            if desired.announce != self.model.announce:
                done.append("set announce")     # a diff lists what a reload makes
            if dry_run or not changes:
                if not dry_run:
                    self.model, self._verdicts = desired, verdicts
                    self._announce()
                return done
            ids = self._allocate(changes)
            try:
                self._submit(lambda dp: self._run(dp, changes, ids))
            except PylbError as e:
                if whole:
                    raise type(e)(f"{e} (nothing was changed)") from None
                raise
            before = self.model
            self.model, self._verdicts, self._ids = desired, verdicts, ids
            self._watch(before, desired)
            self._announce()
            return done

    def _allocate(self, changes: list[Change]) -> dict[ServiceKey, int]:
        """Service ids after `changes`: a new service takes the next free
        one, round-robin, so a deleted service's id is reused last."""
        ids = dict(self._ids)
        for action, old, _ in changes:
            if action in ("del-service", "replace-service"):
                del ids[old.key]
        for action, _, new in changes:
            if action in ("add-service", "replace-service"):
                used = set(ids.values())
                if len(used) >= model.MAX_SERVICES:
                    raise CapacityExhausted(f"at most {model.MAX_SERVICES} services")
                while self._next_id in used:
                    self._next_id = (self._next_id + 1) % model.MAX_SERVICES
                ids[new.key] = self._next_id
                self._next_id = (self._next_id + 1) % model.MAX_SERVICES
        return ids

    def _run(self, dp, changes: list[Change], ids: dict[ServiceKey, int]) -> None:
        undo: list[Callable[[], Any]] = []
        try:
            for action, old, new in changes:
                _STEPS[action](dp, old, new, undo, self._ids, ids)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except PylbError as again:      # reported, the rest still undone
                    log.error("could not undo a step: %s", again)
            raise

    def _watch(self, before: Config, after: Config) -> None:
        """(Re)start the health checks of services whose check or backends changed."""
        if self.health is None:
            return
        def checks(config):
            return {s.key: (s.health_check, [b.key for b in s.backends], s.method)
                    for s in config.services} | \
                {p.check_key: (p.health_check, [(a.ip, p.health_check.port if p.health_check
                                                 else 0) for a in p.appliances], "pool")
                 for p in config.pools}
        old, new = checks(before), checks(after)
        for key in old.keys() - new.keys():
            self.health.watch(key, None, [])
        for key, (check, targets, method) in new.items():
            if old.get(key) != (check, targets, method):
                self.health.watch(key, check, targets, method)

    def _health_verdict(self, key: ServiceKey, target: tuple[str, int], state: str) -> None:
        """A checker's verdict: the backend is in force down (or up again),
        unless the operator drained or downed it."""
        with self._lock:
            if not _checked(self.model, (key, target)):
                return                  # the service or backend went meanwhile
            self._commit(self.model, self._verdicts | {(key, target): state})

    # Services

    def _views(self, dp, specs: list[ServiceSpec]) -> list[ServiceView]:
        status = self.health.status if self.health else {}
        out = []
        for s in specs:
            stats = dp.service_stats(*s.key)
            per = stats.pop("backends")
            out.append(ServiceView(s, tuple(
                BackendView(b, st["active"], st["inactive"],
                            status.get((s.key, b.key), model.UNKNOWN) if s.health_check else "", st)
                for b, st in zip(s.backends, per)), stats, dp.service_fingerprint(*s.key)))
        return out

    def _in_force(self, key: ServiceKey) -> ServiceSpec:
        s = self._forced(self.model, self._verdicts).service(key)
        if s is None:
            raise NotFound(f"no service {service_name(key)}")
        return s

    def services(self) -> list[ServiceView]:
        with self._lock:
            specs = list(self._forced(self.model, self._verdicts).normalised().services)
        return self._submit(lambda dp: self._views(dp, specs))

    def service(self, vip: str, port: int, proto: str) -> ServiceView:
        key = (_address(vip, "VIP"), port, proto)
        with self._lock:
            s = self._in_force(key)
        return self._submit(lambda dp: self._views(dp, [s]))[0]

    def add_service(self, s: ServiceSpec) -> ServiceView:
        with self._lock:
            if self.model.service(s.key) is not None:
                raise AlreadyExists(f"service {s.name()} already exists")
            self._commit(replace(self.model, services=self.model.services + (s,)))
            return self.service(*s.key)

    def delete_service(self, vip: str, port: int, proto: str) -> None:
        key = (_address(vip, "VIP"), port, proto)
        with self._lock:
            if self.model.service(key) is None:
                raise NotFound(f"no service {service_name(key)}")
            self._commit(replace(self.model, services=tuple(
                x for x in self.model.services if x.key != key)))

    def _with_service(self, key: ServiceKey, change) -> ServiceView:
        with self._lock:
            s = self.model.service(key)
            if s is None:
                raise NotFound(f"no service {service_name(key)}")
            new = change(s)
            self._commit(replace(self.model, services=tuple(
                new if x.key == key else x for x in self.model.services)))
            return self.service(*key)

    def set_limits(self, vip: str, port: int, proto: str, **limits: int) -> ServiceView:
        """The service's limits (model.LIMIT_KEYS), changed in place."""
        key = (_address(vip, "VIP"), port, proto)
        for k, v in limits.items():
            if k not in model.LIMIT_KEYS or not 0 <= v <= model.LIMIT_MAX:
                raise InvalidArgument(f"limit {k} {v!r}: expected one of "
                                      f"{', '.join(model.LIMIT_KEYS)} from 0 to {model.LIMIT_MAX}")
        return self._with_service(key, lambda s: replace(s, **limits))

    def set_backend(self, vip: str, port: int, proto: str, b: BackendSpec) -> ServiceView:
        """Adds the backend, or sets its weight and state."""
        key = (_address(vip, "VIP"), port, proto)
        b = replace(b, ip=_address(b.ip, "backend"))

        def set_(s: ServiceSpec) -> ServiceSpec:
            if s.backend(*b.key) is None:
                if len(s.backends) >= model.MAX_BACKENDS:
                    raise CapacityExhausted(f"service {s.name()}: {len(s.backends) + 1} "
                                            f"backends, at most {model.MAX_BACKENDS}")
                return replace(s, backends=s.backends + (b,))
            return replace(s, backends=tuple(b if x.key == b.key else x for x in s.backends))
        return self._with_service(key, set_)

    def delete_backend(self, vip: str, port: int, proto: str, ip: str, bport: int) -> ServiceView:
        key, ip = (_address(vip, "VIP"), port, proto), _address(ip, "backend")

        def delete(s: ServiceSpec) -> ServiceSpec:
            if s.backend(ip, bport) is None:
                raise NotFound(f"service {s.name()} has no backend {ip}:{bport}")
            return replace(s, backends=tuple(x for x in s.backends if x.key != (ip, bport)))
        return self._with_service(key, delete)

    # The whole desired state (configuration files)

    def current_config(self) -> Config:
        """The model: what the operator asked for (backend states as set,
        whatever the health checks say), in one order."""
        with self._lock:
            return self.model.normalised()

    def apply_config(self, desired: Config, dry_run: bool = False) -> list[str]:
        """Make the running state `desired`, all or nothing: on the first
        failure, what was done is undone and the error raised. Unchanged
        services are not touched; a service whose backends or health check
        changed keeps its connections. Returns the changes (made, or that
        would be made with dry_run)."""
        return self._commit(desired, dry_run=dry_run, whole=True)

    # Routes

    def routes(self, family: int = 0) -> list[RouteView]:
        """The forwarding table as it is: the operator's routes and those
        the dataplane derives (connected, local, VIPs, services)."""
        if family not in (0, 4, 6):
            raise InvalidArgument(f"family {family} is not 4, 6 or 0 (both)")

        def list_(dp):
            names = {p.index: p.name for p in dp.ports()}
            return [RouteView(r.prefix, r.kind, tuple((h.gateway, names.get(h.port, str(h.port)))
                                                      for h in r.nexthops), r.inspect)
                    for f in ((4, 6) if family == 0 else (family,))
                    for r in sorted(dp.routes(f), key=lambda r: _prefix_order(r.prefix))]
        return self._submit(list_)

    def _route_view(self, r: RouteSpec) -> RouteView:
        names = {p.index: p.name for p in self.ports()}
        return RouteView(r.prefix, model.GATEWAY, tuple(
            (g, names.get(p, str(p)) if isinstance(p, int) else p) for g, p in r.via),
            r.inspect or "")

    def add_route(self, prefix: str, next_hops: list[tuple[str | None, str]],
                  inspect: str | None = None) -> RouteView:
        if not next_hops:
            raise InvalidArgument(f"route {prefix}: give at least one next hop (gateway, port)")
        r = RouteSpec(prefix, tuple(next_hops), inspect)
        with self._lock:
            if self.model.route(prefix) is not None:
                raise AlreadyExists(f"a route to {prefix} already exists; delete it first, "
                                    "or replace it")
            self._commit(replace(self.model, routes=self.model.routes + (r,)))
        return self._route_view(r)

    def replace_route(self, prefix: str, next_hops: list[tuple[str | None, str]],
                      inspect: str | None = None) -> None:
        """New next hops (and inspection) for an existing route, in one step."""
        with self._lock:
            if self.model.route(prefix) is None:
                raise NotFound(f"no route to {prefix} to replace")
            r = RouteSpec(prefix, tuple(next_hops), inspect)
            self._commit(replace(self.model, routes=tuple(
                r if x.prefix == prefix else x for x in self.model.routes)))

    def delete_route(self, prefix: str) -> None:
        with self._lock:
            if self.model.route(prefix) is None:
                # Not the operator's: the dataplane says what it is (a
                # port's connected network, a VIP's, or nothing).
                self._submit(lambda dp: dp.del_route(prefix))
                return
            self._commit(replace(self.model, routes=tuple(
                x for x in self.model.routes if x.prefix != prefix)))

    # What would happen to a packet

    def trace(self, src: str, dst: str, proto: str = model.TCP, sport: int = 0, dport: int = 0,
              tcp_flags: int = 0x02, seq: int = 0, ack: int = 0, payload: bytes = b"") -> dict:
        """Read only: which route, service, connection and backend a packet
        from src to dst would get, and why (for a service: the fast path's
        own decision)."""
        src, dst = _address(src, "source"), _address(dst, "destination")

        def trace(dp):
            out = {"verdict": "", "why": "", "route": None, "service": None, "backend": None,
                   "state": "", "next_hop": None, "reason": "", "inspect": None}
            names = {p.index: p.name for p in dp.ports()}

            def next_hop(to, flow_hash):
                """The route to `to` and the next hop the workers' ECMP
                choice (in C, as they make it) takes for flow_hash."""
                try:
                    r, i = dp.route_pick(to, flow_hash)
                except NotFound:
                    return None, None, None
                if i is None:
                    return r, None, None
                h = r.nexthops[i]
                return r, (h.gateway, names.get(h.port, str(h.port))), i
            flow = dp.flow_hash(src, dst)
            r, hop, i = next_hop(dst, flow)
            if r is None:
                out.update(verdict="no_route", why=f"no route to {dst}: dropped, ICMP unreachable")
                return out
            out["route"] = (r.prefix, r.kind)
            if r.kind == model.SERVICE:
                t = dp.l4_trace(src, dst, proto, sport, dport, tcp_flags, seq, ack, payload)
                out.update(verdict=t["verdict"], why=t["why"], service=t["service"],
                           backend=t["backend"], state=t["state"], reason=t["reason"])
                if t["backend"]:
                    out["next_hop"] = next_hop(t["backend"][0], t["route_hash"])[1]
            elif r.kind == model.VIP:
                v = dp.vip(r.prefix)
                b = dp.vip_pick(r.prefix, src, dst)
                out.update(verdict="vip" if b else "no_backend", backend=(b, 0) if b else None,
                           why=f"L3 VIP {r.prefix} ({v.method}): the backend of the consistent "
                               "hash of (source, destination)" if b else
                               f"L3 VIP {r.prefix} has no backend: dropped (vip_no_backend)")
                if b:
                    out["next_hop"] = next_hop(b, flow)[1]
            elif r.kind == model.LOCAL:
                out.update(verdict="local", why="an address of the appliance: ICMP echo is "
                                                "answered here, the rest goes to the kernel interface")
            else:
                n = len(r.nexthops)
                ecmp = f" (ECMP: next hop {i + 1} of {n} by the flow hash)" if n > 1 else ""
                out.update(verdict="route", next_hop=hop, why=f"routed by {r.prefix}{ecmp}")
            pool = r.inspect or (dp.vip(r.prefix).inspect if r.kind == model.VIP else "")
            if pool:
                # Inspected first: the appliance the workers send the flow
                # to (remembered or new, in C, as they decide) and their ECMP
                # choice towards it; then what the packet gets back.
                a, what, h = dp.pool_pick(pool, proto, src, sport, dst, dport)
                if a is None:
                    out.update(verdict="no_appliance", next_hop=None, why=(
                        f"inspected by pool {pool}, which has no appliance up: dropped "
                        "(inspect_no_appliance)"))
                else:
                    whose = {"remembered": "the flow's", "new": "a new flow's",
                             "stayed": "the flow's (down or gone: failover stay)",
                             "moved": "the flow's new (its own down or gone)"}[what]
                    out.update(verdict="inspect", inspect=(pool, a), next_hop=next_hop(a, h)[1],
                               why=f"to {whose} appliance {a} of pool {pool} first (GENEVE); "
                                   f"back from it: {out['verdict']}: {out['why']}")
            return out
        return self._submit(trace)

    # L3 VIPs and neighbours

    def vips(self) -> list[VipView]:
        with self._lock:
            specs = list(self.model.normalised().vips)
        return self._submit(lambda dp: [VipView(v, dp.vip_fingerprint(v.prefix)) for v in specs])

    def _vip_view(self, v: VipSpec) -> VipView:
        return VipView(v, self._submit(lambda dp: dp.vip_fingerprint(v.prefix)))

    def vip(self, prefix: str) -> VipSpec:
        v = self.model.vip(prefix)
        if v is None:
            raise NotFound(f"no VIP {prefix}")
        return v

    def add_vip(self, v: VipSpec) -> VipView:
        with self._lock:
            if self.model.vip(v.prefix) is not None:
                raise AlreadyExists(f"VIP {v.prefix} already exists")
            self._commit(replace(self.model, vips=self.model.vips + (v,)))
            return self._vip_view(v)

    def set_vip_backends(self, prefix: str, backends: list[tuple[str, int]]) -> VipView:
        with self._lock:
            v = replace(self.vip(prefix), backends=tuple(backends))
            self._commit(replace(self.model, vips=tuple(
                v if x.prefix == prefix else x for x in self.model.vips)))
            return self._vip_view(v)

    def delete_vip(self, prefix: str) -> None:
        with self._lock:
            self.vip(prefix)
            self._commit(replace(self.model, vips=tuple(
                x for x in self.model.vips if x.prefix != prefix)))

    # Inspection pools

    def pools(self) -> list[PoolView]:
        """Each pool as configured, its appliances as in force (a check's
        verdict applied), the flows its workers remember, who it inspects."""
        with self._lock:
            specs = list(self.model.normalised().pools)
            forced = self._forced(self.model, self._verdicts)
            users = {p.name: tuple(x.prefix for x in self.model.routes + self.model.vips
                                   if x.inspect == p.name) for p in specs}
        status = self.health.status if self.health else {}

        def view(dp, p: PoolSpec) -> PoolView:
            port = p.health_check.port if p.health_check else 0
            return PoolView(p, tuple(
                ApplianceView(a, status.get((p.check_key, (a.ip, port)), model.UNKNOWN)
                              if p.health_check else "")
                for a in forced.pool(p.name).appliances), dp.pool(p.name)["flows"],
                users[p.name])
        return self._submit(lambda dp: [view(dp, p) for p in specs])

    def pool(self, name: str) -> PoolView:
        v = next((v for v in self.pools() if v.spec.name == name), None)
        if v is None:
            raise NotFound(f"no inspection pool {name}")
        return v

    def add_pool(self, p: PoolSpec) -> PoolView:
        with self._lock:
            if self.model.pool(p.name) is not None:
                raise AlreadyExists(f"inspection pool {p.name} already exists")
            self._commit(replace(self.model, pools=self.model.pools + (p,)))
        return self.pool(p.name)

    def set_pool(self, p: PoolSpec) -> PoolView:
        """A pool added, or the one of its name replaced in one step: its
        settings and appliances (its flows keep their appliances, as its
        failover says)."""
        with self._lock:
            self._commit(replace(self.model, pools=tuple(
                x for x in self.model.pools if x.name != p.name) + (p,)))
        return self.pool(p.name)

    def delete_pool(self, name: str) -> None:
        with self._lock:
            if self.model.pool(name) is None:
                raise NotFound(f"no inspection pool {name}")
            users = [x.prefix for x in self.model.routes + self.model.vips if x.inspect == name]
            if users:
                raise FailedPrecondition(f"inspection pool {name} inspects {', '.join(users)}; "
                                         "unmark them first")
            self._commit(replace(self.model, pools=tuple(
                x for x in self.model.pools if x.name != name)))

    def neighbours(self) -> list[tuple[str, Any]]:
        """[(port name, Neighbour)]: the static ones and those learned."""
        def list_(dp):
            names = {p.index: p.name for p in dp.ports()}
            return [(names.get(n.port, str(n.port)), n) for n in dp.neighbours()]
        return self._submit(list_)

    def add_neighbour(self, port: str, ip: str, mac: str) -> NeighbourSpec:
        """A static neighbour (replacing one of the same port and address)."""
        n = NeighbourSpec(port, ip, mac)
        with self._lock:
            self._commit(replace(self.model, neighbours=tuple(
                x for x in self.model.neighbours if x.key != n.key) + (n,)))
        return n

    def delete_neighbour(self, port: str, ip: str) -> None:
        with self._lock:
            if self.model.neighbour((port, ip)) is None:
                # Not a static one: a learned entry is flushed (or the
                # dataplane says there is none).
                self._submit(lambda dp: dp.del_neighbour(port, ip))
                return
            self._commit(replace(self.model, neighbours=tuple(
                x for x in self.model.neighbours if x.key != (port, ip))))

    # ACLs

    def acls(self) -> tuple[AclSpec, ...]:
        return self.model.acls

    def set_acl(self, a: AclSpec) -> AclSpec:
        """Adds the ACL, or replaces the one of its name (live: open
        connections are not touched)."""
        with self._lock:
            have = self.model.acl(a.name) is not None
            acls = tuple(a if x.name == a.name else x for x in self.model.acls) if have \
                else self.model.acls + (a,)
            if len(acls) > model.MAX_ACLS:
                raise CapacityExhausted(f"{len(acls)} ACLs, at most {model.MAX_ACLS}")
            self._commit(replace(self.model, acls=acls))
            return a

    def delete_acl(self, name: str) -> None:
        with self._lock:
            if self.model.acl(name) is None:
                raise NotFound(f"no ACL is named {name!r}")
            users = [s.name() for s in self.model.services if name in s.acls]
            if users:
                raise FailedPrecondition(f"ACL {name!r} is used by service {users[0]}; "
                                         "remove it from the service first")
            self._commit(replace(self.model, acls=tuple(a for a in self.model.acls
                                                        if a.name != name)))

    # Timeouts, flows and counters

    def timeouts(self) -> dict:
        """The timeouts in force: the model's, and the profile's for the rest."""
        with self._lock:
            return self._base_timeouts | dict(self.model.timeouts)

    def set_timeouts(self, seconds: dict) -> dict:
        """Manage some timeouts (like ipvsadm --set); the rest stay."""
        with self._lock:
            merged = dict(self.model.timeouts) | dict(model.timeouts(seconds))
            self._commit(replace(self.model, timeouts=tuple(merged.items())))
            return self.timeouts()

    def ports(self) -> list:
        return self._submit(lambda dp: dp.ports())

    def flows(self, vip: str = "", backend: str = "", client: str = "", limit: int = 0) -> list:
        kw = {k: _address(v, k) for k, v in (("vip", vip), ("backend", backend),
                                            ("client", client)) if v}
        out = self._submit(lambda dp: dp.connections(**kw))
        return out[:limit] if limit else out

    def stats(self) -> dict:
        def read(dp):
            return {"counters": {**dp.totals(), **self._counters()}, "drops": dp.drops(),
                    "lcores": dp.lcore_counters(),
                    "connections": dp.conn_count(), "half_open": dp.half_open(),
                    "capacity": dp.conn_capacity(),
                    "mempools": dp.mempools(),
                    "hash_fingerprint": dp.hash_fingerprint,
                    "timestamp_ms": int(time.time() * 1000)}
        return self._submit(read)


# The steps of a change on the dataplane, each registering its undo:
# step(dp, old, new, undo, ids before, ids after).

def _add_service(dp, s: ServiceSpec, sid: int) -> None:
    dp.add_service(s, id=sid)           # with its backends, all or nothing


def _del_service(dp, old, new, undo, ids, _):
    dp.del_service(*old.key)
    undo.append(lambda: _add_service(dp, old, ids[old.key]))


def _new_service(dp, old, new, undo, _, ids):
    _add_service(dp, new, ids[new.key])
    undo.append(lambda: dp.del_service(*new.key))


def _replace_service(dp, old, new, undo, ids_before, ids):
    _del_service(dp, old, new, undo, ids_before, ids)
    _new_service(dp, old, new, undo, ids_before, ids)


def _set_backends(dp, old, new, undo, *_):
    dp.set_service_backends(new.vip, new.port, new.backends, proto=new.proto)
    undo.append(lambda: dp.set_service_backends(old.vip, old.port, old.backends,
                                                proto=old.proto))


def _set_limits(dp, old, new, undo, *_):
    dp.set_service_limits(new.vip, new.port, new.proto,
                          **{k: getattr(new, k) for k in model.LIMIT_KEYS})
    undo.append(lambda: dp.set_service_limits(old.vip, old.port, old.proto,
                                              **{k: getattr(old, k) for k in model.LIMIT_KEYS}))


def _add_route(dp, old, new, undo, *_):
    dp.add_route(new.prefix, list(new.via), new.inspect)
    undo.append(lambda: dp.del_route(new.prefix))


def _del_route(dp, old, new, undo, *_):
    dp.del_route(old.prefix)
    undo.append(lambda: dp.add_route(old.prefix, list(old.via), old.inspect))


def _replace_route(dp, old, new, undo, *_):
    # One step: no packet finds no route.
    dp.replace_route(new.prefix, list(new.via), new.inspect)
    undo.append(lambda: dp.replace_route(old.prefix, list(old.via), old.inspect))


def _add_pool(dp, old, new, undo, *_):
    dp.add_pool(new)
    undo.append(lambda: dp.del_pool(new.name))


def _set_pool(dp, old, new, undo, *_):
    dp.set_pool(new)
    undo.append(lambda: dp.set_pool(old))


def _del_pool(dp, old, new, undo, *_):
    dp.del_pool(old.name)
    undo.append(lambda: dp.add_pool(old))


def _add_vip_to(dp, v: VipSpec) -> None:
    dp.add_vip(v.prefix, method=v.method, table_size=v.table_size, source=v.source,
               backends=list(v.backends), inspect=v.inspect)


def _add_vip(dp, old, new, undo, *_):
    _add_vip_to(dp, new)
    undo.append(lambda: dp.del_vip(new.prefix))


def _del_vip(dp, old, new, undo, *_):
    dp.del_vip(old.prefix)
    undo.append(lambda: _add_vip_to(dp, old))


def _replace_vip(dp, old, new, undo, *_):
    _del_vip(dp, old, new, undo)
    _add_vip(dp, old, new, undo)


def _set_vip_backends(dp, old, new, undo, *_):
    dp.set_backends(new.prefix, list(new.backends))
    undo.append(lambda: dp.set_backends(old.prefix, list(old.backends)))


def _add_neighbour(dp, old, new, undo, *_):
    dp.add_neighbour(new.port, new.ip, new.mac)
    undo.append(lambda: dp.del_neighbour(new.port, new.ip))


def _del_neighbour(dp, old, new, undo, *_):
    dp.del_neighbour(old.port, old.ip)
    undo.append(lambda: dp.add_neighbour(old.port, old.ip, old.mac))


def _replace_neighbour(dp, old, new, undo, *_):
    _del_neighbour(dp, old, new, undo)
    _add_neighbour(dp, old, new, undo)


def _acl_args(c: Config, ids: dict[ServiceKey, int]) -> tuple[list, dict]:
    """The dataplane's form of c's ACLs: the lists, and per service id the
    indices of those that apply (all_services ones first)."""
    index = {a.name: i for i, a in enumerate(c.acls)}
    every = [i for i, a in enumerate(c.acls) if a.all_services]
    return ([(a.type, a.action, a.prefixes) for a in c.acls],
            {ids[s.key]: every + [index[n] for n in s.acls] for s in c.services if s.key in ids})


def _set_acls(dp, old, new, undo, ids_before, ids_after):
    dp.set_acls(*_acl_args(new, ids_after))
    undo.append(lambda: dp.set_acls(*_acl_args(old, ids_before)))


def _set_timeouts(dp, old, new, undo, *_):
    dp.set_timeouts(**dict(new))
    undo.append(lambda: dp.set_timeouts(**dict(old)))


_STEPS = {"add-service": _new_service, "del-service": _del_service,
          "replace-service": _replace_service, "set-backends": _set_backends,
          "set-limits": _set_limits,
          "add-route": _add_route, "del-route": _del_route, "replace-route": _replace_route,
          "add-vip": _add_vip, "del-vip": _del_vip, "replace-vip": _replace_vip,
          "set-vip-backends": _set_vip_backends, "add-neighbour": _add_neighbour,
          "del-neighbour": _del_neighbour, "replace-neighbour": _replace_neighbour,
          "set-timeouts": _set_timeouts, "set-acls": _set_acls,
          "add-pool": _add_pool, "set-pool": _set_pool, "del-pool": _del_pool}
