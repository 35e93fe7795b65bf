"""The management domain: what operators can ask of a running appliance,
validated, in plain Python types (no gRPC here). Every call that touches the
dataplane runs on the appliance's main loop through `submit`, so changes
happen on one thread, between housekeeping passes, while workers forward.

The gRPC servicers (pylb.server) are thin translations over this; tests and
tools may drive it directly.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from pylb.config import (BackendSpec, Config, HealthCheckSpec, NeighbourSpec, RouteSpec,
                         ServiceSpec, VipSpec, describe)
from pylb.config import diff as config_diff
from pylb.errors import InvalidArgument, NotFound, PylbError
from pylb import kernel
from pylb.health import HealthChecker

Submit = Callable[[Callable[[Any], Any]], Any]
log = logging.getLogger("pylb")


def queue_submitter(tasks: queue.SimpleQueue, timeout: float | None = 30.0) -> Submit:
    """A `submit` that hands f(dp) to the main loop's task queue and waits."""
    def submit(fn):
        fut: Future = Future()

        def task(dp):
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(dp))
                except BaseException as e:      # handed back to the caller's thread
                    fut.set_exception(e)
        tasks.put(task)
        return fut.result(timeout)
    return submit


def direct_submitter(dp) -> Submit:
    """A `submit` for a dataplane owned by the calling thread (tests, tools)."""
    lock = threading.Lock()

    def submit(fn):
        with lock:
            return fn(dp)
    return submit


@dataclass(frozen=True)
class BackendView:
    spec: BackendSpec
    active: int
    inactive: int
    health: str = ""            # up, down or unknown; "" when not checked
    stats: dict = field(default_factory=dict)   # as ServiceView's, for this backend


@dataclass(frozen=True)
class ServiceView:
    spec: ServiceSpec
    backends: tuple[BackendView, ...]
    stats: dict                 # conns, in/out packets and bytes


@dataclass(frozen=True)
class RouteView:
    prefix: str
    kind: str
    next_hops: tuple[tuple[str | None, str], ...]   # (gateway or None, port name)


def _address(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"{what} {text!r} is not an IPv4 or IPv6 address") from None


class Manager:
    """`health`: run the services' health checks (pylb.health), through the
    exception path unless `probe_anywhere` (tests with loopback backends)."""

    def __init__(self, submit: Submit, health: bool = False, probe_anywhere: bool = False):
        self._submit = submit
        self._checks: dict[tuple[str, int, str], HealthCheckSpec] = {}
        self.health = HealthChecker(self._health_verdict,
                                    None if probe_anywhere else self.probe_path) \
            if health else None

    def close(self) -> None:
        if self.health is not None:
            self.health.close()

    # Services

    def _view(self, dp, s) -> ServiceView:
        key = (s.vip, s.port, s.proto)
        counts = dp.service_counts(*key)
        check = self._checks.get(key)
        spec = ServiceSpec(s.vip, s.port, s.proto, s.method, s.scheduler, s.table_size,
                           s.persistence, s.persistence_prefix, tuple(s.local_addresses),
                           s.down_reset,
                           tuple(BackendSpec(b.ip, b.port, b.weight, b.state) for b in s.backends),
                           check)
        status = self.health.status if self.health and check else {}
        stats = dp.service_stats(*key)
        return ServiceView(spec, tuple(BackendView(BackendSpec(b.ip, b.port, b.weight, b.state),
                                                   active, inactive,
                                                   status.get((key, (b.ip, b.port)), "unknown")
                                                   if check else "", st)
                                       for (b, active, inactive), st in
                                       zip(counts, stats.pop("backends"))),
                           stats)

    def watch(self, view_or_spec) -> None:
        """(Re)start the health checks of a service as it now is."""
        spec = getattr(view_or_spec, "spec", view_or_spec)
        if self.health is None:
            return
        check = spec.health_check if spec.health_check is not None else self._checks.get(spec.key)
        if check is not None:
            self._checks[spec.key] = check
        self.health.watch(spec.key, check, [(b.ip, b.port) for b in spec.backends])

    def _health_verdict(self, key, target, state: str) -> None:
        """A checker's verdict: up or down, unless an operator drained it."""
        def apply(dp):
            cur = [_tuple(b) for b in dp.service(*key).backends]
            at = [i for i, b in enumerate(cur) if (b[0], b[1]) == target]
            if at and cur[at[0]][3] in ("up", "down") and cur[at[0]][3] != state:
                cur[at[0]] = cur[at[0]][:3] + (state,)
                dp.set_service_backends(key[0], key[1], cur, proto=key[2])
        self._submit(apply)

    def probe_path(self, ip: str) -> tuple[str | None, str]:
        """The kernel interface health probes of `ip` leave through: that of
        the port the dataplane routes ip out of, if it is up and carries
        the port's MAC (another process may have changed it); else (None,
        why not)."""
        def find(dp):
            try:
                r = dp.lookup(ip)
            except NotFound:
                return None, f"no route to {ip}"
            port = next((p for p in dp.ports() if r.nexthops and p.index == r.nexthops[0].port),
                        None)
            if port is None:
                return None, f"{ip} is not behind a port ({r.kind} route {r.prefix})"
            return port, ""
        port, why = self._submit(find)
        if port is None:
            return None, why
        iface = port.kernel_iface
        if not iface:
            return None, (f"port {port.name} has no kernel interface (kernel_iface): probes "
                          "leave only through the appliance's exception path")
        return (iface, "") if kernel.usable(iface, port.mac) else \
            (None, f"kernel interface {iface} of port {port.name} is missing, down, or not "
                   f"carrying the port's MAC {port.mac}")

    def services(self) -> list[ServiceView]:
        return self._submit(lambda dp: [self._view(dp, s) for s in dp.services()])

    def service(self, vip: str, port: int, proto: str) -> ServiceView:
        vip = _address(vip, "VIP")
        return self._submit(lambda dp: self._view(dp, dp.service(vip, port, proto)))

    def add_service(self, s: ServiceSpec) -> ServiceView:
        def add(dp):
            dp.add_service(s.vip, s.port, proto=s.proto, method=s.method, scheduler=s.scheduler,
                           table_size=s.table_size, persistence=s.persistence,
                           persistence_prefix=s.persistence_prefix,
                           local_addresses=s.local_addresses, down_reset=s.down_reset)
            try:
                if s.backends:
                    dp.set_service_backends(s.vip, s.port, [_tuple(b) for b in s.backends],
                                            proto=s.proto)
            except BaseException:
                dp.del_service(s.vip, s.port, s.proto)     # all or nothing
                raise
            return self._view(dp, dp.service(s.vip, s.port, s.proto))
        _address(s.vip, "VIP")
        if s.health_check is not None:
            self._checks[s.key] = s.health_check
        try:
            view = self._submit(add)
        except BaseException:
            self._checks.pop(s.key, None)
            raise
        self.watch(view)
        return view

    def delete_service(self, vip: str, port: int, proto: str) -> None:
        vip = _address(vip, "VIP")
        self._submit(lambda dp: dp.del_service(vip, port, proto))
        self._checks.pop((vip, port, proto), None)
        if self.health is not None:
            self.health.watch((vip, port, proto), None, [])

    def set_backend(self, vip: str, port: int, proto: str, b: BackendSpec) -> ServiceView:
        """Adds the backend, or sets its weight and state."""
        vip, ip = _address(vip, "VIP"), _address(b.ip, "backend")

        def set_(dp):
            cur = [_tuple(x) for x in dp.service(vip, port, proto).backends]
            new = (ip, b.port, b.weight, b.state)
            at = [i for i, x in enumerate(cur) if (x[0], x[1]) == (ip, b.port)]
            if at:
                cur[at[0]] = new
            else:
                cur.append(new)
            dp.set_service_backends(vip, port, cur, proto=proto)
            return self._view(dp, dp.service(vip, port, proto))
        view = self._submit(set_)
        self.watch(view)
        return view

    def delete_backend(self, vip: str, port: int, proto: str, ip: str, bport: int) -> ServiceView:
        vip, ip = _address(vip, "VIP"), _address(ip, "backend")

        def delete(dp):
            cur = [_tuple(x) for x in dp.service(vip, port, proto).backends]
            rest = [x for x in cur if (x[0], x[1]) != (ip, bport)]
            if len(rest) == len(cur):
                raise NotFound(f"service {vip}:{port}/{proto} has no backend {ip}:{bport}")
            dp.set_service_backends(vip, port, rest, proto=proto)
            return self._view(dp, dp.service(vip, port, proto))
        view = self._submit(delete)
        self.watch(view)
        return view

    # The whole desired state (configuration files)

    def current_config(self) -> Config:
        """The running services (with the operators' backend states: a down
        a health check decided reads as up) and gateway routes, as a Config
        that reproduces them."""
        status = self.health.status if self.health else {}

        def intent(v: ServiceView) -> ServiceSpec:
            k = v.spec.key
            return replace(v.spec, backends=tuple(
                replace(b.spec, state="up") if b.spec.state == "down" and
                status.get((k, (b.spec.ip, b.spec.port))) == "down" else b.spec
                for b in v.backends))
        routes = tuple(RouteSpec(r.prefix, r.next_hops) for r in self.routes()
                       if r.kind == "gateway")
        vips = tuple(VipSpec(v.prefix, v.method, v.table_size, v.source,
                             tuple((b.ip, b.weight) for b in v.backends)) for v in self.vips())
        neighbours = tuple(NeighbourSpec(port, n.ip, n.mac) for port, n in self.neighbours()
                           if n.state == "static")
        return Config("(running)", tuple(intent(v) for v in self.services()), routes, vips,
                      neighbours, tuple(self.timeouts().items()))

    def apply_config(self, desired: Config, dry_run: bool = False) -> list[str]:
        """Make the running state `desired`, all or nothing: on the first
        failure, what was done is undone and the error raised. Unchanged
        services are not touched; a service whose backends or health check
        changed keeps its connections. Returns the changes (made, or that
        would be made with dry_run)."""
        order = {"add-neighbour": 0, "replace-neighbour": 0, "add-route": 1, "replace-route": 1,
                 "del-route": 3, "del-neighbour": 4}
        changes = sorted(config_diff(self.current_config(), desired),
                         key=lambda c: order.get(c[0], 2))
        if dry_run:
            return [describe(c) for c in changes]
        undo: list[Callable[[], Any]] = []
        try:
            for action, old, new in changes:
                self._change(action, old, new, undo)
        except BaseException as e:
            for step in reversed(undo):
                try:
                    step()
                except PylbError as again:      # reported, the rest still undone
                    log.error("config: could not undo a step: %s", again)
            raise type(e)(f"{e} (nothing was changed)") if isinstance(e, PylbError) else e
        return [describe(c) for c in changes]

    def _change(self, action: str, old, new, undo: list) -> None:
        if action in ("del-service", "replace-service"):
            self.delete_service(*old.key)
            undo.append(lambda: self.add_service(old))
        if action in ("add-service", "replace-service"):
            self.add_service(new)
            undo.append(lambda: self.delete_service(*new.key))
        if action == "set-backends":
            self._set_backends(new)
            undo.append(lambda: self._set_backends(old))
        if action == "replace-route":           # one step: no packet finds no route
            self.replace_route(new.prefix, list(new.via))
            undo.append(lambda: self.replace_route(old.prefix, list(old.via)))
        if action == "del-route":
            self.delete_route(old.prefix)
            undo.append(lambda: self.add_route(old.prefix, list(old.via)))
        if action == "add-route":
            self.add_route(new.prefix, list(new.via))
            undo.append(lambda: self.delete_route(new.prefix))
        if action in ("del-vip", "replace-vip"):
            self.delete_vip(old.prefix)
            undo.append(lambda: self._add_vip(old))
        if action in ("add-vip", "replace-vip"):
            self._add_vip(new)
            undo.append(lambda: self.delete_vip(new.prefix))
        if action == "set-vip-backends":
            self.set_vip_backends(new.prefix, list(new.backends))
            undo.append(lambda: self.set_vip_backends(old.prefix, list(old.backends)))
        if action in ("del-neighbour", "replace-neighbour"):
            self.delete_neighbour(old.port, old.ip)
            undo.append(lambda: self.add_neighbour(old.port, old.ip, old.mac))
        if action in ("add-neighbour", "replace-neighbour"):
            self.add_neighbour(new.port, new.ip, new.mac)
            undo.append(lambda: self.delete_neighbour(new.port, new.ip))
        if action == "set-timeouts":
            self.set_timeouts(dict(new))
            undo.append(lambda: self.set_timeouts(dict(old)))

    def _add_vip(self, v: VipSpec):
        return self.add_vip(v.prefix, v.method, v.table_size, v.source, list(v.backends))

    def _set_backends(self, s: ServiceSpec) -> None:
        """A service's backends and health check, hitless: a backend a
        health check holds down stays down."""
        status = self.health.status if self.health else {}
        backends = [(b.ip, b.port, b.weight,
                     "down" if b.state == "up" and
                     status.get((s.key, (b.ip, b.port))) == "down" else b.state)
                    for b in s.backends]
        self._checks.pop(s.key, None)
        if s.health_check is not None:
            self._checks[s.key] = s.health_check
        self._submit(lambda dp: dp.set_service_backends(s.vip, s.port, backends, proto=s.proto))
        self.watch(s if s.health_check is not None else replace(s, backends=()))

    # Routes

    def routes(self, family: int = 0) -> list[RouteView]:
        if family not in (0, 4, 6):
            raise InvalidArgument(f"family {family} is not 4, 6 or 0 (both)")

        def list_(dp):
            names = {p.index: p.name for p in dp.ports()}
            return [RouteView(r.prefix, r.kind, tuple((h.gateway, names.get(h.port, str(h.port)))
                                                      for h in r.nexthops))
                    for f in ((4, 6) if family == 0 else (family,)) for r in dp.routes(f)]
        return self._submit(list_)

    def add_route(self, prefix: str, next_hops: list[tuple[str | None, str]]) -> RouteView:
        if not next_hops:
            raise InvalidArgument(f"route {prefix}: give at least one next hop (gateway, port)")

        def add(dp):
            dp.add_route(prefix, list(next_hops))
            return next(v for v in self._routes_of(dp, prefix))
        return self._submit(add)

    def _routes_of(self, dp, prefix) -> Iterator[RouteView]:
        names = {p.index: p.name for p in dp.ports()}
        r = dp.route(prefix)
        yield RouteView(r.prefix, r.kind, tuple((h.gateway, names.get(h.port, str(h.port)))
                                                for h in r.nexthops))

    def replace_route(self, prefix: str, next_hops: list[tuple[str | None, str]]) -> None:
        """New next hops for an existing route, in one step."""
        self._submit(lambda dp: dp.replace_route(prefix, list(next_hops)))

    def delete_route(self, prefix: str) -> None:
        self._submit(lambda dp: dp.del_route(prefix))

    # What would happen to a packet

    def trace(self, src: str, dst: str, proto: str = "tcp", sport: int = 0, dport: int = 0,
              tcp_flags: int = 0x02) -> dict:
        """Read only: which route, service, connection and backend a packet
        from src to dst would get, and why."""
        src, dst = _address(src, "source"), _address(dst, "destination")

        def trace(dp):
            from pylb import _native
            out = {"verdict": "", "why": "", "route": None, "service": None, "backend": None,
                   "state": "", "next_hop": None}
            names = {p.index: p.name for p in dp.ports()}

            def next_hop(to):
                try:
                    r = dp.lookup(to)
                except NotFound:
                    return None, None
                if not r.nexthops:
                    return r, None
                h = r.nexthops[_native.flow_hash(src, dst) % len(r.nexthops)]
                return r, (h.gateway, names.get(h.port, str(h.port)))
            r, hop = next_hop(dst)
            if r is None:
                out.update(verdict="no_route", why=f"no route to {dst}: dropped, ICMP unreachable")
                return out
            out["route"] = (r.prefix, r.kind)
            if r.kind == "service":
                t = dp.l4_trace(src, dst, proto, sport, dport, tcp_flags)
                out.update(verdict=t["verdict"], why=t["why"], service=t["service"],
                           backend=t["backend"], state=t["state"])
                if t["backend"]:
                    out["next_hop"] = next_hop(t["backend"][0])[1]
            elif r.kind == "vip":
                v = dp.vip(r.prefix)
                b = dp.vip_pick(r.prefix, src, dst)
                out.update(verdict="vip" if b else "no_backend", backend=(b, 0) if b else None,
                           why=f"L3 VIP {r.prefix} ({v.method}): the backend of the consistent "
                               "hash of (source, destination)" if b else
                               f"L3 VIP {r.prefix} has no backend: dropped (vip_no_backend)")
                if b:
                    out["next_hop"] = next_hop(b)[1]
            elif r.kind == "local":
                out.update(verdict="local", why="an address of the appliance: ICMP echo is "
                                                "answered here, the rest goes to the kernel interface")
            else:
                n = len(r.nexthops)
                ecmp = f" (ECMP: next hop {_native.flow_hash(src, dst) % n + 1} of {n} by the " \
                    "flow hash)" if n > 1 else ""
                out.update(verdict="route", next_hop=hop, why=f"routed by {r.prefix}{ecmp}")
            return out
        return self._submit(trace)

    # L3 VIPs and neighbours

    def vips(self) -> list:
        return self._submit(lambda dp: list(dp.vips()))

    def add_vip(self, prefix: str, method: str, table_size: int, source: str | None,
                backends: list[tuple[str, int]]):
        def add(dp):
            dp.add_vip(prefix, method=method, table_size=table_size, source=source,
                       backends=backends)
            return dp.vip(prefix)
        return self._submit(add)

    def set_vip_backends(self, prefix: str, backends: list[tuple[str, int]]):
        def set_(dp):
            dp.set_backends(prefix, backends)
            return dp.vip(prefix)
        return self._submit(set_)

    def delete_vip(self, prefix: str) -> None:
        self._submit(lambda dp: dp.del_vip(prefix))

    def neighbours(self) -> list[tuple[str, Any]]:
        """[(port name, Neighbour)]."""
        def list_(dp):
            names = {p.index: p.name for p in dp.ports()}
            return [(names.get(n.port, str(n.port)), n) for n in dp.neighbours()]
        return self._submit(list_)

    def add_neighbour(self, port: str, ip: str, mac: str) -> None:
        self._submit(lambda dp: dp.add_neighbour(port, ip, mac))

    def delete_neighbour(self, port: str, ip: str) -> None:
        self._submit(lambda dp: dp.del_neighbour(port, ip))

    # Flows and counters

    def ports(self) -> list:
        return self._submit(lambda dp: dp.ports())

    def flows(self, vip: str = "", backend: str = "", client: str = "", limit: int = 0) -> list:
        kw = {k: _address(v, k) for k, v in (("vip", vip), ("backend", backend),
                                            ("client", client)) if v}
        out = self._submit(lambda dp: dp.connections(**kw))
        return out[:limit] if limit else out

    def timeouts(self) -> dict:
        return self._submit(lambda dp: dp.timeouts())

    def set_timeouts(self, seconds: dict) -> dict:
        return self._submit(lambda dp: dp.set_timeouts(**seconds))

    def stats(self) -> dict:
        def read(dp):
            from pylb import _native
            rows = dp.counters.copy()
            return {"counters": dp.totals(), "drops": dp.drops(),
                    "lcores": [dict(zip(_native.COUNTER_NAMES, map(int, row))) for row in rows],
                    "connections": dp.conn_count(), "mempools": dp.mempools(),
                    "timestamp_ms": int(time.time() * 1000)}
        return self._submit(read)


def _tuple(b) -> tuple:
    return (b.ip, b.port, b.weight, b.state)
