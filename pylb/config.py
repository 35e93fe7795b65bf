"""The desired state of an appliance, declared in YAML: L4 services with their
backends, static routes, L3 VIPs and static neighbours. `load_config` validates a whole file before
anything is applied, and names the file, line, key and what is expected for
the first problem; the Manager (pylb.manager) then applies it as a diff.
The types, names and rules are the domain model's (pylb.model): the specs
check themselves, so the API (which makes specs from its messages, not
from this format) meets the same checks.

    services:
      - vip: 10.99.0.100
        port: 80
        proto: tcp                 # tcp (default) or udp
        method: nat                # nat (default), fullnat, dr, tunnel or gue
        scheduler: maglev          # maglev (default), source, wrr or wlc
        persistence: 0             # seconds a client sticks to its backend
        persistence_prefix: 0      # client netmask for persistence (0: host)
        local_addresses: []        # fullnat: port addresses used as sources
        down_reset: false          # reset the connections of a backend set down
        syn_proxy: auto            # SYN cookies: auto (under pressure), always or off
        proxy_protocol: off        # fullnat: off, v1 (TCP) or v2: the client's address
        max_connections: 0         # limits (0: none): open at once,
        max_new_per_second: 0      #   new a second,
        max_per_client: 0          #   open at once per client address
        backends:
          - {address: 10.99.1.11:8080, weight: 1, state: up}
      - vip: 10.99.0.100           # QUIC: routed by the server id in connection IDs
        port: 443
        proto: udp
        quic: {server_id_length: 2, nonce_length: 6, config_id: 0}   # key: 32 hex: encrypted
        backends: [{address: 10.99.1.11, server_id: "0001"}]
    routes:
      - {prefix: 192.0.2.0/24, via: [{gateway: 10.99.1.254, port: p1}]}
      - {prefix: 10.99.5.0/24, via: [{port: p1}], inspect: fw}   # through pool fw first
    vips:                          # L3: a prefix balanced over backends, no port
      - prefix: 10.99.3.0/24
        method: ipip               # ipip (default), gre, dr or gue
        source: 10.99.1.1          # tunnel source (default: the output port's address)
        inspect: fw                # optional: through an appliance of pool fw first
        backends: [{address: 10.99.1.21, weight: 1}]
    pools:                         # inspection (GENEVE appliances, like AWS GWLB)
      - name: fw
        stickiness: 5-tuple        # 5-tuple (default), 3-tuple or 2-tuple
        failover: rebalance        # rebalance (default): a down appliance's flows move; stay
        idle_timeout: 350          # seconds a flow is remembered idle
        health_check: {type: tcp, port: 80}    # a port is needed
        appliances: [10.99.2.11, {address: 10.99.2.12, weight: 1, state: up}]
    neighbours:                    # static: never age, never overridden
      - {port: p1, address: 10.99.1.21, mac: "02:00:00:00:00:21"}
    timeouts: {tcp_established: 900, udp: 300}    # seconds; those listed are managed
    acls:                          # source prefixes checked when a connection opens
      - name: blocked
        type: deny                 # deny (default): refuse these; allow: refuse all others
        action: drop               # drop (default), reset (TCP RST) or unreachable (ICMP)
        all_services: true         # else: the services that list it (services[].acls)
        prefixes: [198.51.100.0/24]  # and/or prefix_file: a file of them, one per line
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from pylb import files, model, yamlsrc
from pylb.errors import ConfigError
from pylb.model import SpecError
from pylb.hostport import split_hostport
from pylb.model import (AclSpec, BackendSpec, Config, HealthCheckSpec, NeighbourSpec,
                        PoolSpec, RouteSpec, ServiceSpec, VipSpec)

TOP_KEYS = {"services", "routes", "vips", "neighbours", "timeouts", "acls", "announce", "pools"}
ANNOUNCE_KEYS = {"min_healthy_backends", "withdrawn"}
ACL_KEYS = {"name", "type", "action", "all_services", "prefixes", "prefix_file"}
# A service's keys and a health check's are their specs' fields: a field
# added to the model is read and written here with no change.
SERVICE_KEYS = {f.name for f in dataclasses.fields(ServiceSpec)}
CHECK_KEYS = {f.name for f in dataclasses.fields(HealthCheckSpec)}
BACKEND_KEYS = {"address", "weight", "state", "max_connections", "server_id"}
QUIC_KEYS = {f.name for f in dataclasses.fields(model.QuicSpec)}
ROUTE_KEYS = {"prefix", "via", "inspect"}
VIA_KEYS = {"gateway", "port"}
VIP_KEYS = {"prefix", "method", "table_size", "source", "backends", "inspect"}
POOL_KEYS = {f.name for f in dataclasses.fields(PoolSpec)}
APPLIANCE_KEYS = {"address", "weight", "state"}
VIP_BACKEND_KEYS = {"address", "weight"}
NEIGHBOUR_KEYS = {"port", "address", "mac"}


def spec(c: yamlsrc.Checker, key: str, make):
    """make(): a spec (pylb.model), which checks itself; what it refuses
    is reported at its field under `key`, with the field's line."""
    try:
        return make()
    except SpecError as e:
        raise c.fail(f"{key}.{e.field}", e.expected) from None


def parse_address(c: yamlsrc.Checker, value: Any, key: str) -> ipaddress._BaseAddress:
    """A unicast IPv4 or IPv6 address (model.unicast)."""
    try:
        return model.unicast("", value)
    except SpecError as e:
        raise c.fail(key, e.expected) from None


def parse_backend(c: yamlsrc.Checker, raw: Any, key: str) -> BackendSpec:
    """A backend (its family is the service's business: ServiceSpec)."""
    if isinstance(raw, str):
        raw = {"address": raw}
    b = c.mapping(raw, key, BACKEND_KEYS)
    if not isinstance(b.get("server_id", ""), str):
        raise c.fail(f"{key}.server_id", "a server id in hex, quoted (YAML reads 0001 as a "
                                         "number)")
    try:
        host, port = split_hostport(b.get("address", ""))
    except ValueError as e:
        raise c.fail(f"{key}.address", str(e)) from None
    return spec(c, key, lambda: BackendSpec(host, port, b.get("weight", 1),
                                            b.get("state", model.UP),
                                            b.get("max_connections", 0),
                                            b.get("server_id", "")))


def health_check(c: yamlsrc.Checker, raw: Any, key: str) -> HealthCheckSpec:
    h = c.mapping(raw, key, CHECK_KEYS)
    interval = h.get("interval_ms", 2000)
    given = {k: h[k] for k in CHECK_KEYS if k in h}
    if "timeout_ms" not in given and isinstance(interval, int):
        given["timeout_ms"] = min(1000, interval)
    return spec(c, key, lambda: HealthCheckSpec(**given))


def _choice(c: yamlsrc.Checker, s: dict, name: str, key: str, allowed: tuple[str, ...]) -> str:
    value = s.get(name, allowed[0])
    if not isinstance(value, str) or value not in allowed:
        raise c.fail(f"{key}.{name}", f"expected one of: {', '.join(allowed)}, "
                                      f"got {yamlsrc.show(value)}")
    return value


def parse_service(c: yamlsrc.Checker, raw: Any, key: str) -> ServiceSpec:
    s = c.mapping(raw, key, SERVICE_KEYS)
    if "vip" not in s or "port" not in s:
        raise c.fail(key, "a service needs 'vip' and 'port' (0: all ports)")
    given = {k: s[k] for k in SERVICE_KEYS - {"backends", "health_check", "quic"} if k in s}
    for k in ("local_addresses", "acls"):
        given[k] = tuple(_items(c, s, k, key, k.replace("_", " ")))
    backends = tuple(parse_backend(c, b, f"{key}.backends[{i}]")
                     for i, b in enumerate(_items(c, s, "backends", key, "backends")))
    check = health_check(c, s["health_check"], f"{key}.health_check") \
        if "health_check" in s else None
    quic = spec(c, f"{key}.quic", lambda: model.QuicSpec(
        **c.mapping(s["quic"], f"{key}.quic", QUIC_KEYS))) if "quic" in s else None
    return spec(c, key, lambda: ServiceSpec(**given, backends=backends, health_check=check,
                                            quic=quic))


def parse_route(c: yamlsrc.Checker, raw: Any, key: str) -> RouteSpec:
    r = c.mapping(raw, key, ROUTE_KEYS)
    via = r.get("via")
    if not isinstance(via, list) or not via:
        raise c.fail(f"{key}.via", "expected a list of next hops {gateway, port}")
    hops = []
    for i, h in enumerate(via):
        h = c.mapping(h, f"{key}.via[{i}]", VIA_KEYS)
        if "port" not in h:
            raise c.fail(f"{key}.via[{i}]", "a next hop needs a 'port' (name or index)")
        hops.append((h.get("gateway"), h["port"]))
    return spec(c, key, lambda: RouteSpec(r.get("prefix"), tuple(hops), r.get("inspect")))


def parse_prefix(c: yamlsrc.Checker, value: Any, key: str) -> ipaddress._BaseNetwork:
    """A prefix with no host bits set (model.network)."""
    try:
        return model.network("", value)
    except SpecError as e:
        raise c.fail(key, e.expected) from None


def parse_vip(c: yamlsrc.Checker, raw: Any, key: str) -> VipSpec:
    v = c.mapping(raw, key, VIP_KEYS)
    if "prefix" not in v:
        raise c.fail(key, "a VIP needs a 'prefix' (an address/32 for one address)")
    backends = []
    for i, raw_b in enumerate(_items(c, v, "backends", key, "backends")):
        b = c.mapping({"address": raw_b} if isinstance(raw_b, str) else raw_b,
                      f"{key}.backends[{i}]", VIP_BACKEND_KEYS)
        backends.append((b.get("address"), b.get("weight", 1)))
    return spec(c, key, lambda: VipSpec(v["prefix"], v.get("method", model.IPIP),
                                        v.get("table_size", model.TABLE_SIZE), v.get("source"),
                                        tuple(backends), v.get("inspect")))


def parse_pool(c: yamlsrc.Checker, raw: Any, key: str) -> PoolSpec:
    """An inspection pool; its appliances addresses (or {address, weight,
    state})."""
    p = c.mapping(raw, key, POOL_KEYS)
    if "name" not in p:
        raise c.fail(key, "a pool needs a 'name'")
    apps = []
    for i, raw_a in enumerate(_items(c, p, "appliances", key, "appliances")):
        k = f"{key}.appliances[{i}]"
        a = c.mapping({"address": raw_a} if isinstance(raw_a, str) else raw_a, k, APPLIANCE_KEYS)
        apps.append(spec(c, k, lambda: BackendSpec(a.get("address"), 0, a.get("weight", 1),
                                                   a.get("state", model.UP))))
    check = health_check(c, p["health_check"], f"{key}.health_check") \
        if "health_check" in p else None
    given = {k: p[k] for k in POOL_KEYS - {"appliances", "health_check"} if k in p}
    return spec(c, key, lambda: PoolSpec(**given, appliances=tuple(apps), health_check=check))


def parse_acl(c: yamlsrc.Checker, raw: Any, key: str) -> AclSpec:
    """An ACL; its prefixes listed, or in `prefix_file` (one per line, '#'
    comments), or both."""
    a = c.mapping(raw, key, ACL_KEYS)
    places = [f"{key}.prefixes[{i}]" for i in range(len(_items(c, a, "prefixes", key, "prefixes")))]
    prefixes = list(a.get("prefixes") or ())
    if "prefix_file" in a:
        path = c.string(a["prefix_file"], f"{key}.prefix_file", "a path to a file of prefixes")
        try:
            lines = files.read_text(path).splitlines()
        except OSError as e:
            raise c.fail(f"{key}.prefix_file", f"cannot read {path}: {e.strerror}") from None
        for n, line in enumerate(lines, 1):
            if line.split("#")[0].strip():
                prefixes.append(line.split("#")[0].strip())
                places.append(f"{key}.prefix_file ({path}:{n})")
    try:
        return AclSpec(a.get("name"), a.get("type", model.DENY), a.get("action", model.ACL_DROP),
                       a.get("all_services", False), tuple(prefixes))
    except SpecError as e:
        if e.field.startswith("prefixes["):     # where the file lists it
            raise c.fail(places[int(e.field[9:-1])], e.expected) from None
        raise c.fail(f"{key}.{e.field}", e.expected) from None


def parse_announce(c: yamlsrc.Checker, raw: Any, key: str) -> model.AnnounceSpec:
    """When VIPs are announced by BGP: `min_healthy_backends` up, and the
    VIPs the operator `withdrawn` (addresses or prefixes)."""
    a = c.mapping(raw, key, ANNOUNCE_KEYS)
    withdrawn = []
    for i, p in enumerate(_items(c, a, "withdrawn", key, "withdrawn VIPs")):
        withdrawn.append(str(parse_prefix(c, p, f"{key}.withdrawn[{i}]")))
    return model.AnnounceSpec(c.integer(a.get("min_healthy_backends", 1),
                                        f"{key}.min_healthy_backends", 1, model.MAX_BACKENDS),
                              tuple(dict.fromkeys(withdrawn)))


def check_acls(c: yamlsrc.Checker, config: Config) -> None:
    """At most MAX_ACLS, named once; every name a service gives, an ACL's."""
    if len(config.acls) > model.MAX_ACLS:
        raise c.fail("acls", f"{len(config.acls)} ACLs, at most {model.MAX_ACLS}")
    _unique(c, config.acls, "acls", lambda a: a.name, lambda a: f"ACL {a.name}")
    names = {a.name for a in config.acls}
    for i, s in enumerate(config.services):
        for j, n in enumerate(s.acls):
            if n not in names:
                raise c.fail(f"services[{i}].acls[{j}]", f"no ACL is named {n!r}")


def parse_neighbour(c: yamlsrc.Checker, raw: Any, key: str) -> NeighbourSpec:
    n = c.mapping(raw, key, NEIGHBOUR_KEYS)
    for k in sorted(NEIGHBOUR_KEYS):
        if k not in n:
            raise c.fail(key, "a neighbour needs 'port' (a port name), 'address' and 'mac'")
    return spec(c, key, lambda: NeighbourSpec(n["port"], n["address"], n["mac"]))


def parse_timeouts(c: yamlsrc.Checker, raw: Any, key: str) -> tuple[tuple[str, int], ...]:
    return spec(c, key, lambda: model.timeouts(c.mapping(raw, key, set(model.TIMEOUT_KEYS))))


def _items(c: yamlsrc.Checker, d: dict, name: str, key: str, what: str) -> list:
    value = d.get(name, [])
    if not isinstance(value, list):
        raise c.fail(f"{key}.{name}" if key else name, f"expected a list of {what}")
    return value


def _unique(c: yamlsrc.Checker, items: tuple, name: str, key, what) -> None:
    seen: dict = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise c.fail(f"{name}[{i}]", f"{what(item)} is also {name}[{seen[k]}]")
        seen[k] = i


def load_config(path: str, text: str | None = None) -> Config:
    """Parse and validate a configuration file; raises ConfigError."""
    src = yamlsrc.read(path, text, ConfigError)
    c = yamlsrc.Checker(src, ConfigError)
    top = c.mapping(src.data if src.data is not None else {}, "", TOP_KEYS)

    def section(name, what, parse):
        return tuple(parse(c, raw, f"{name}[{i}]")
                     for i, raw in enumerate(_items(c, top, name, "", what)))
    config = Config(path, section("services", "services", parse_service),
                    section("routes", "routes", parse_route), section("vips", "L3 VIPs", parse_vip),
                    section("neighbours", "neighbours", parse_neighbour),
                    parse_timeouts(c, top.get("timeouts", {}), "timeouts"),
                    section("acls", "ACLs", parse_acl),
                    parse_announce(c, top.get("announce", {}), "announce"),
                    section("pools", "inspection pools", parse_pool))
    check_acls(c, config)
    if len(config.pools) > model.MAX_POOLS:
        raise c.fail("pools", f"{len(config.pools)} pools, at most {model.MAX_POOLS}")
    _unique(c, config.pools, "pools", lambda p: p.name, lambda p: f"pool {p.name}")
    names = {p.name for p in config.pools}
    for kind, items in (("routes", config.routes), ("vips", config.vips)):
        for i, x in enumerate(items):
            if x.inspect and x.inspect not in names:
                raise c.fail(f"{kind}[{i}].inspect", f"no pool is named {x.inspect!r}")
    _unique(c, config.services, "services", lambda s: s.key,
            lambda s: f"service {s.vip}:{s.port}/{s.proto}")
    _unique(c, config.routes, "routes", lambda r: r.prefix, lambda r: f"route {r.prefix}")
    _unique(c, config.vips, "vips", lambda v: v.prefix, lambda v: f"VIP {v.prefix}")
    _unique(c, config.neighbours, "neighbours", lambda n: n.key,
            lambda n: f"neighbour {n.ip} on {n.port}")
    return config


def _check_dict(h: HealthCheckSpec) -> dict:
    return {f.name: getattr(h, f.name) for f in dataclasses.fields(HealthCheckSpec)
            if f.name == "type" or getattr(h, f.name) != f.default}


def dump(config: Config) -> str:
    """The configuration as YAML that load_config reads back to the same Config."""
    import yaml
    services = []
    for s in config.services:
        out: dict[str, Any] = {"vip": s.vip, "port": s.port}
        for f in dataclasses.fields(ServiceSpec):
            value = getattr(s, f.name)
            if f.name in ("vip", "port", "backends", "health_check", "quic") or \
                    value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if s.health_check is not None:
            out["health_check"] = _check_dict(s.health_check)
        if s.quic is not None:
            out["quic"] = {k: v for k, v in dataclasses.asdict(s.quic).items() if v is not None}
        out["backends"] = [{"address": (f"[{b.ip}]" if ":" in b.ip else b.ip)
                            + (f":{b.port}" if b.port else ""), "weight": b.weight,
                            "state": b.state}
                           | ({"max_connections": b.max_connections} if b.max_connections else {})
                           | ({"server_id": b.server_id} if b.server_id else {})
                           for b in s.backends]
        services.append(out)
    routes = [{"prefix": r.prefix, "via": [{"gateway": g, "port": p} if g else {"port": p}
                                           for g, p in r.via]}
              | ({"inspect": r.inspect} if r.inspect else {}) for r in config.routes]
    out: dict[str, Any] = {"services": services, "routes": routes}
    if config.vips:
        out["vips"] = [{"prefix": v.prefix, "method": v.method}
                       | ({"table_size": v.table_size} if v.table_size != model.TABLE_SIZE else {})
                       | ({"source": v.source} if v.source else {})
                       | ({"inspect": v.inspect} if v.inspect else {})
                       | {"backends": [{"address": a, "weight": w} for a, w in v.backends]}
                       for v in config.vips]
    if config.neighbours:
        out["neighbours"] = [{"port": n.port, "address": n.ip, "mac": n.mac}
                             for n in config.neighbours]
    if config.timeouts:
        out["timeouts"] = dict(config.timeouts)
    if config.acls:
        out["acls"] = [{"name": a.name, "type": a.type, "action": a.action}
                       | ({"all_services": True} if a.all_services else {})
                       | {"prefixes": list(a.prefixes)} for a in config.acls]
    if config.pools:
        out["pools"] = [{f.name: getattr(p, f.name) for f in dataclasses.fields(PoolSpec)
                         if f.name not in ("appliances", "health_check") and
                         (f.name == "name" or getattr(p, f.name) != f.default)}
                        | ({"health_check": _check_dict(p.health_check)} if p.health_check
                           else {})
                        | {"appliances": [{"address": a.ip, "weight": a.weight, "state": a.state}
                                          for a in p.appliances]} for p in config.pools]
    if config.announce != model.AnnounceSpec():
        out["announce"] = {"min_healthy_backends": config.announce.min_healthy_backends,
                           "withdrawn": list(config.announce.withdrawn)}
    return yaml.safe_dump(out, sort_keys=False)
