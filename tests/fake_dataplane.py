"""An in-memory stand-in for pylb._native.Dataplane: the methods the domain
(pylb.manager) calls, with the same results and the same validation errors
(class and message), and no EAL, hugepages or packets. The domain tier
(tests/test_domain.py) runs on it in seconds; tests/test_contract.py runs
one sequence of operations on it and on the real binding and compares
every answer, so it cannot drift.

What it does not do: forward packets (its counters stay 0, it tracks no
connection), trace, or learn neighbours.
"""

from __future__ import annotations

import hashlib
import ipaddress

from pylb import model
from pylb.records import Neighbour, NextHop, PortInfo, Route
from pylb.errors import (AlreadyExists, CapacityExhausted, FailedPrecondition, InvalidArgument,
                         NotFound)

PROFILE_TIMEOUTS = {"tcp_syn": 60, "tcp_established": 900, "tcp_fin": 120, "tcp_close": 10,
                    "udp": 300}
COUNTERS = ("rx_packets", "forwarded")


def _net(prefix: str, what: str):
    try:
        return ipaddress.ip_network(prefix, strict=True)
    except ValueError:
        raise InvalidArgument(f"{what} {prefix!r} is not a prefix like 192.0.2.0/24") from None


def _ip(text: str, what: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"{what} {text!r} is not an IPv4 or IPv6 address") from None


def _proto(proto: str) -> None:
    if proto not in model.PROTOS:
        raise InvalidArgument(f"protocol '{proto}' is not one of {', '.join(model.PROTOS)}")


class FakeDataplane:
    """`ports`: (name, (address/len, ...)), as a hardware profile gives them."""

    def __init__(self, ports=(("p0", ("10.0.0.1/24",)), ("p1", ("10.0.1.1/24",))),
                 timeouts: dict | None = None):
        self._ports = [PortInfo(i, name, f"net_null{i}", i, f"02:00:00:00:00:{i:02x}", True,
                                10000, tuple(addrs)) for i, (name, addrs) in enumerate(ports)]
        self._timeouts = PROFILE_TIMEOUTS | (timeouts or {})
        self._routes: dict = {}         # network -> Route
        self._neigh: dict = {}          # (port index, ip) -> Neighbour
        self._services: dict = {}       # (vip, port, proto) -> dict
        self._ids: dict = {}            # id -> key
        self._vips: dict = {}           # prefix -> dict
        self._pools: dict = {}          # name -> PoolSpec
        for p in self._ports:
            for a in p.addresses:
                iface = ipaddress.ip_interface(a)
                self._routes[iface.network] = Route(str(iface.network), "connected",
                                                    (NextHop(None, p.index),))
                host = ipaddress.ip_network(f"{iface.ip}/{iface.max_prefixlen}")
                self._routes[host] = Route(str(host), "local", (NextHop(None, p.index),))

    # Ports and neighbours

    def ports(self):
        return list(self._ports)

    def port_index(self, port) -> int:
        if isinstance(port, str):
            for p in self._ports:
                if p.name == port:
                    return p.index
            raise NotFound(f"no port named '{port}'")
        if isinstance(port, int) and 0 <= port < len(self._ports):
            return port
        raise NotFound(f"no port {port!r}")

    def add_neighbour(self, port, ip, mac):
        idx = self.port_index(port)
        a = _ip(ip, "neighbour")
        self._neigh[idx, a] = Neighbour(str(a), idx, mac.lower(), 0, model.STATIC)

    def del_neighbour(self, port, ip):
        idx = self.port_index(port)
        if self._neigh.pop((idx, _ip(ip, "neighbour")), None) is None:
            raise NotFound(f"no such neighbour on port {self._ports[idx].name}")

    def neighbours(self):
        return sorted(self._neigh.values(), key=lambda n: (n.port, ipaddress.ip_address(n.ip).version,
                                                           ipaddress.ip_address(n.ip)))

    # Routes

    def _hops(self, net, via) -> tuple:
        via = [via] if isinstance(via, tuple) else list(via)
        if not 0 < len(via) <= model.MAX_ECMP:
            raise InvalidArgument(f"a route needs 1 to {model.MAX_ECMP} next hops")
        hops = []
        for i, (gw, port) in enumerate(via):
            idx = self.port_index(port)
            if gw is None:
                if len(via) != 1:
                    raise InvalidArgument("a route to a port without a gateway has only that "
                                          "next hop")
                hops.append(NextHop(None, idx))
                continue
            g = _ip(gw, "gateway")
            if g.version != net.version:
                raise InvalidArgument(f"next hop {i}: gateway family differs from the route's")
            if not any(g in ipaddress.ip_interface(a).network
                       for a in self._ports[idx].addresses):
                raise InvalidArgument(f"gateway {g} is on no connected network of port "
                                      f"{self._ports[idx].name}; add an address on its network "
                                      "to that port first")
            if NextHop(str(g), idx) in hops:
                raise InvalidArgument(f"next hop {i} is listed twice")
            hops.append(NextHop(str(g), idx))
        return tuple(hops)

    def _address_network(self, net) -> bool:
        return any(ipaddress.ip_interface(a).network == net
                   for p in self._ports for a in p.addresses)

    def _pool_named(self, name) -> str:
        if name and name not in self._pools:
            raise NotFound(f"no inspection pool {name}")
        return name or ""

    def add_route(self, prefix, via, inspect=None):
        net = _net(prefix, "route")
        hops = self._hops(net, via)
        if self._address_network(net):
            raise FailedPrecondition(f"{net} is the connected network of a port address: it "
                                     "goes with the address, not as a route")
        if net in self._routes:
            raise AlreadyExists(f"a route to {net} already exists; delete it first, or "
                                "replace it")
        self._routes[net] = Route(str(net), "gateway", hops, self._pool_named(inspect))

    def replace_route(self, prefix, via, inspect=None):
        net = _net(prefix, "route")
        hops = self._hops(net, via)
        if net not in self._routes:
            raise NotFound(f"no route to {net} to replace")
        self._routes[net] = Route(str(net), "gateway", hops, self._pool_named(inspect))

    def del_route(self, prefix):
        net = _net(prefix, "route")
        r = self._routes.get(net)
        if r is None:
            raise NotFound(f"no route to {net}")
        if r.kind in ("vip", "service"):
            raise InvalidArgument(f"{net} is a VIP; delete the VIP or its services")
        if r.kind == "local":
            raise InvalidArgument(f"{net} is a port address; it cannot be deleted as a route")
        if r.kind == "connected":
            raise FailedPrecondition(f"{net} is the connected network of a port address: it "
                                     "goes with the address, not as a route")
        del self._routes[net]

    def routes(self, family=4):
        return [r for n, r in sorted(((n, r) for n, r in self._routes.items()
                                      if n.version == family),
                                     key=lambda kv: (kv[0].network_address, kv[0].prefixlen))]

    def lookup(self, ip):
        a = _ip(ip, "address")
        best = max((n for n in self._routes if n.version == a.version and a in n),
                   key=lambda n: n.prefixlen, default=None)
        if best is None:
            raise NotFound(f"no route to {a}")
        return self._routes[best]

    # L4 services

    def add_service(self, spec, id=None):
        """As the binding's: `spec` (a ServiceSpec) has checked itself; what
        only the dataplane can refuse is refused here."""
        vip, port, proto, method = spec.vip, spec.port, spec.proto, spec.method
        local_addresses, backends = spec.local_addresses, spec.backends
        a = _ip(vip, "VIP")
        _proto(proto)
        key = (str(a), port, proto)
        name = model.service_name(key)
        if method == model.FULLNAT:
            if not 0 < len(local_addresses) <= model.MAX_LOCAL_ADDRESSES:
                raise InvalidArgument(f"service {name}: FullNAT needs 1 to "
                                      f"{model.MAX_LOCAL_ADDRESSES} local addresses (the "
                                      "service's local_addresses, or the profile's ports' "
                                      "local_addresses)")
            for la in local_addresses:
                la = _ip(la, "local address")
                r = self._routes.get(ipaddress.ip_network(la))
                if la.version != a.version or r is None or r.kind != "local":
                    raise InvalidArgument(f"service {name}: local address {la} is not this "
                                          "appliance's (a port's addresses or local_addresses, "
                                          "of the VIP's family)")
        if key in self._services:
            raise AlreadyExists(f"service {name} already exists")
        if id is None:
            id = next(i for i in reversed(range(model.MAX_SERVICES)) if i not in self._ids)
        elif id in self._ids:
            raise AlreadyExists(f"service {name}: id {id} is in use")
        self._ids[id] = key
        self._services[key] = {"id": id, "method": method, "backends": []}
        host = ipaddress.ip_network(a)
        self._routes.setdefault(host, Route(str(host), "service", ()))
        if backends:
            try:
                self.set_service_backends(vip, port, backends, proto=proto)
            except BaseException:
                self.del_service(vip, port, proto)
                raise

    def _service(self, vip, port, proto):
        key = (str(_ip(vip, "VIP")), port, proto)
        s = self._services.get(key)
        if s is None:
            raise NotFound(f"no service {model.service_name(key)}")
        return key, s

    def del_service(self, vip, port, proto=model.TCP):
        key, s = self._service(vip, port, proto)
        del self._services[key], self._ids[s["id"]]
        if not any(k[0] == key[0] for k in self._services):
            del self._routes[ipaddress.ip_network(key[0])]

    def set_service_limits(self, vip, port, proto=model.TCP, max_connections=0,
                           max_new_per_second=0, max_per_client=0):
        self._service(vip, port, proto)

    def set_service_backends(self, vip, port, backends, proto=model.TCP):
        key, s = self._service(vip, port, proto)
        name = model.service_name(key)
        if len(backends) > model.MAX_BACKENDS:
            raise CapacityExhausted(f"{len(backends)} backends, at most {model.MAX_BACKENDS}")
        backends = [(b.ip, b.port, b.weight, b.state, b.max_connections)
                    if isinstance(b, model.BackendSpec) else b for b in backends]
        seen = set()
        for i, (ip, bport, weight, state, _max) in enumerate(backends):
            if _ip(ip, "backend").version != ipaddress.ip_address(key[0]).version:
                raise InvalidArgument(f"service {name}: backend {i} is not of the VIP's "
                                      "address family")
            if s["method"] == model.DR and bport not in (0, port):
                raise InvalidArgument(f"service {name}: direct routing cannot translate ports "
                                      f"(backend {i})")
            if (ip, bport) in seen:
                raise AlreadyExists(f"service {name}: backend listed twice")
            seen.add((ip, bport))
        s["backends"] = list(backends)

    def service_stats(self, vip, port, proto=model.TCP):
        _, s = self._service(vip, port, proto)
        zero = dict.fromkeys(("conns", "in_packets", "in_bytes", "out_packets", "out_bytes",
                              "active", "inactive"), 0)
        return zero | {"backends": [dict(zero) for _ in s["backends"]]}

    def service_fingerprint(self, vip, port, proto=model.TCP):
        return _fingerprint(self._service(vip, port, proto)[1]["backends"])

    # L3 VIPs

    def vip_fingerprint(self, prefix):
        net = _net(prefix, "VIP")
        if net not in self._vips:
            raise NotFound(f"no VIP {net}")
        return _fingerprint(self._vips[net]["backends"])

    def add_vip(self, prefix, method=model.IPIP, table_size=model.TABLE_SIZE,
                source=None, backends=(), inspect=None):
        net = _net(prefix, "VIP")
        self._pool_named(inspect)
        if net in self._vips:
            raise AlreadyExists(f"VIP {net} already exists")
        if net in self._routes:
            raise AlreadyExists(f"a route to {net} already exists; delete it first, or "
                                "replace it")
        self._vips[net] = {"method": method, "backends": list(backends), "inspect": inspect}
        self._routes[net] = Route(str(net), "vip", ())

    def set_backends(self, prefix, backends):
        net = _net(prefix, "VIP")
        if net not in self._vips:
            raise NotFound(f"no VIP {net}")
        if len(backends) > model.MAX_BACKENDS:
            raise CapacityExhausted(f"VIP {net}: {len(backends)} backends, at most "
                                    f"{model.MAX_BACKENDS}")
        self._vips[net]["backends"] = list(backends)

    def del_vip(self, prefix):
        net = _net(prefix, "VIP")
        if self._vips.pop(net, None) is None:
            raise NotFound(f"no VIP {net}")
        del self._routes[net]

    # Inspection pools

    def add_pool(self, spec):
        if spec.name in self._pools:
            raise AlreadyExists(f"inspection pool {spec.name} already exists")
        if len(self._pools) >= model.MAX_POOLS:
            raise CapacityExhausted(f"at most {model.MAX_POOLS} inspection pools")
        self._pools[spec.name] = spec

    def set_pool(self, spec):
        self._pool_named(spec.name)
        self._pools[spec.name] = spec

    def del_pool(self, name):
        self._pool_named(name)
        users = sum(r.inspect == name for r in self._routes.values()) + \
            sum(v["inspect"] == name for v in self._vips.values())
        if users:
            raise FailedPrecondition(f"inspection pool {name} inspects {users} routes or VIPs; "
                                     "unmark them first")
        del self._pools[name]

    def pool(self, name):
        p = self._pools[self._pool_named(name)]
        return {"name": p.name, "stickiness": p.stickiness, "failover": p.failover,
                "table_size": p.table_size, "idle_timeout": p.idle_timeout, "flows": 0,
                "appliances": [(a.ip, a.weight, a.state) for a in p.appliances]}

    # Timeouts, connections, counters

    def timeouts(self):
        return dict(self._timeouts)

    def set_timeouts(self, **seconds):
        unknown = set(seconds) - set(model.TIMEOUT_KEYS)
        if unknown:
            raise InvalidArgument(f"unknown timeout {sorted(unknown)[0]!r}; expected one of: "
                                  f"{', '.join(model.TIMEOUT_KEYS)}")
        for k, v in seconds.items():
            if not isinstance(v, int) or v < 1:
                raise InvalidArgument(f"timeout {k}: {v!r} is not a whole number of seconds >= 1")
        self._timeouts.update(seconds)
        return self.timeouts()

    def connections(self, vip=None, backend=None, client=None):
        return []

    def conn_count(self):
        return 0

    def conn_capacity(self):
        return 65536

    def half_open(self):
        return 0

    def set_acls(self, lists, service_lists):
        lists = list(lists)
        if len(lists) > model.MAX_ACLS:
            raise CapacityExhausted(f"{len(lists)} ACLs, at most {model.MAX_ACLS}")
        for i, (kind, action, prefixes) in enumerate(lists):
            if kind not in model.ACL_TYPES or action not in model.ACL_ACTIONS:
                raise InvalidArgument(f"ACL {i}: type {kind!r} must be one of "
                                      f"{', '.join(model.ACL_TYPES)} and action {action!r} "
                                      f"one of {', '.join(model.ACL_ACTIONS)}")
            for p in prefixes:
                ipaddress.ip_network(p)
        for sid, idx in service_lists.items():
            if sid not in self._ids or any(not 0 <= j < len(lists) for j in idx):
                raise InvalidArgument(f"service id {sid}: unknown service or ACL")
        self._acls = (lists, dict(service_lists))

    def totals(self):
        return dict.fromkeys(COUNTERS, 0)

    hash_fingerprint = "0000000000000000"

    def drops(self):
        return {}

    def lcore_counters(self):
        return [dict.fromkeys(COUNTERS, 0)]

    def mempools(self):
        return []


def _fingerprint(backends) -> str:
    """A stand-in for the binding's table fingerprint (16 hex digits that
    follow the backend set; not the same numbers: the fake has no table)."""
    return hashlib.sha256(repr(sorted(map(tuple, backends))).encode()).hexdigest()[:16]
