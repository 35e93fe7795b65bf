"""The domain model: what an appliance is asked to do, as typed, immutable
specs (services, backends, health checks, routes, L3 VIPs, neighbours,
timeouts), and the names and limits every layer uses, defined here once.

The YAML reader (pylb.config), the gRPC servicers (pylb.server), pylbctl,
the health checker and the binding (pylb._native) import their names and
types from this module; where the dataplane's C header defines a limit,
it is read from there (pylb._limits), never written twice.

`diff` turns one desired state into another as a list of changes: the
Manager (pylb.manager) applies every change, whatever its source, that way.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from typing import Any

from pylb import _limits
from pylb.errors import InvalidArgument
from pylb.hostport import split_hostport

# Names (the strings operators write, the API returns and the binding maps
# to C's enums). The first of each is the default.
PROTOS = ("tcp", "udp")
PROTO_NUMBERS = {"tcp": 6, "udp": 17}
METHODS = ("nat", "fullnat", "dr", "tunnel", "gue")     # L4 forwarding
SCHEDULERS = ("maglev", "source", "wrr", "wlc")
BACKEND_STATES = ("up", "drain", "down")                 # what an operator sets
HEALTH_STATES = ("up", "down", "unknown", "unavailable")  # what a health check says
VIP_METHODS = ("ipip", "gre", "dr", "gue")               # L3 VIP forwarding
CHECK_TYPES = ("tcp", "http", "udp", "none")
SYN_PROXY_MODES = ("auto", "always", "off")             # SYN cookies (NAT, FullNAT TCP)
PROXY_PROTOCOLS = ("off", "v1", "v2")       # the client's address for FullNAT backends
# A port's reverse-path check of sources (enum pylb_rp_filter's order).
RP_FILTERS = ("strict", "loose", "off")
ACL_TYPES = ("deny", "allow")      # deny: refuse the listed sources; allow: refuse the others
ACL_ACTIONS = ("drop", "reset", "unreachable")
TIMEOUT_KEYS = ("tcp_syn", "tcp_established", "tcp_fin", "tcp_close", "udp")
ROUTE_KINDS = ("gateway", "connected", "local", "vip", "service")
# Inspection pools (GENEVE appliances): what of a flow keeps it on one
# appliance, and what a down or removed appliance's flows do.
STICKINESS = ("5-tuple", "3-tuple", "2-tuple")
FAILOVERS = ("rebalance", "stay")
NEIGHBOUR_STATES = ("incomplete", "reachable", "probing", "static")

# Each name by its name, never by its position (the binding maps them to
# C's enums one by one).
TCP, UDP = PROTOS
NAT, FULLNAT, DR, TUNNEL, GUE = METHODS
MAGLEV, SOURCE, WRR, WLC = SCHEDULERS
UP, DRAIN, DOWN = BACKEND_STATES
_, _, UNKNOWN, UNAVAILABLE = HEALTH_STATES      # (up and down: UP, DOWN)
IPIP, GRE, VIP_DR, VIP_GUE = VIP_METHODS
CHECK_TCP, CHECK_HTTP, CHECK_UDP, CHECK_NONE = CHECK_TYPES
SYN_PROXY_AUTO, SYN_PROXY_ALWAYS, SYN_PROXY_OFF = SYN_PROXY_MODES
PROXY_OFF, PROXY_V1, PROXY_V2 = PROXY_PROTOCOLS
RP_STRICT, RP_LOOSE, RP_OFF = RP_FILTERS
DENY, ALLOW = ACL_TYPES
ACL_DROP, ACL_RESET, ACL_UNREACHABLE = ACL_ACTIONS
GATEWAY, CONNECTED, LOCAL, VIP, SERVICE = ROUTE_KINDS
INCOMPLETE, REACHABLE, PROBING, STATIC = NEIGHBOUR_STATES
STICK_5, STICK_3, STICK_2 = STICKINESS
REBALANCE, STAY = FAILOVERS
# What a probe through the data path is for: methods whose backends hold the VIP.
VIA_VIP = (DR, TUNNEL, GUE)
# Methods that encapsulate the client's packet to its backend (either family).
TUNNELS = (TUNNEL, GUE)

# Limits: the dataplane's (from its header), then the domain's own.
TABLE_SIZE = _limits.MAGLEV_DEFAULT         # lookup table slots (a prime)
TABLE_SIZE_MAX = _limits.MAGLEV_MAX
MAX_BACKENDS = _limits.MAX_BACKENDS         # per service or L3 VIP
MAX_LOCAL_ADDRESSES = _limits.MAX_LIPS      # FullNAT sources per service
MAX_SERVICES = _limits.MAX_SERVICES
CONN_DEFAULT = _limits.CONN_DEFAULT         # tracked connections per lcore
CONN_MIN, CONN_MAX = _limits.CONN_MIN, _limits.CONN_MAX
MAX_BURST = _limits.BURST                   # packets per burst
MAX_ECMP = _limits.MAX_ECMP                 # next hops per route
WEIGHT_MAX = 65535
PORT_MAX = 65535
TIMEOUT_MAX = 30 * 86400                    # seconds
PERSISTENCE_MAX = 7 * 86400                 # seconds
MAX_HTTP_PATH = 1024                        # health check path, bytes
MAX_ACLS = _limits.MAX_ACLS
MAX_POOLS = _limits.MAX_POOLS               # inspection pools
MAX_APPLIANCES = _limits.MAX_APPLIANCES     # per pool
POOL_IDLE = 350                             # seconds a pool remembers an idle flow
LIMIT_MAX = 100_000_000                     # max_connections and the like
LIMIT_KEYS = ("max_connections", "max_new_per_second", "max_per_client")
# The profile's connections.per_source: what a client network is (its
# prefix lengths) and what it may hold half-open (per worker) and open a
# second; (least, most) of each. Left out: the dataplane's default.
PER_SOURCE = {"ipv4_prefix": (1, 32), "ipv6_prefix": (1, 128),
              "half_open_budget": (0, 1 << 30), "new_per_second": (0, LIMIT_MAX)}


def is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


class SpecError(InvalidArgument):
    """A spec that cannot be: `field` (its path within the spec, e.g.
    "backends[1].weight") and what was expected. The specs check
    themselves when made, so every way in (a file, the API, pylbctl, the
    binding's callers) meets the same rules and limits, written here once;
    a file's reader puts the field's place in the file in front."""

    def __init__(self, field: str, expected: str):
        super().__init__(f"{field}: {expected}")
        self.field, self.expected = field, expected

    def within(self, prefix: str) -> "SpecError":
        """The same error, its field a part of `prefix`."""
        return SpecError(f"{prefix}.{self.field}", self.expected)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _integer(field: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(field, f"expected an integer from {lo} to {hi}, got {_show(value)}")


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise SpecError(field, f"expected one of: {', '.join(allowed)}, got {_show(value)}")


def _flag(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(field, "expected true or false")


def unicast(field: str, value: Any,
            loopback: bool = False) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A unicast IPv4 or IPv6 address (an IPv4-mapped IPv6 one is refused:
    it would be a different VIP or backend than the IPv4 address); a
    loopback one only where `loopback` (a backend on this host, as IPVS's
    local node: its health check probes it, tests use that)."""
    try:
        ip = ipaddress.ip_address(value if isinstance(value, str) else "")
    except ValueError:
        raise SpecError(field, f"expected an IPv4 or IPv6 address, got {_show(value)}") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        raise SpecError(field, f"{ip} is an IPv4-mapped IPv6 address; write the IPv4 address "
                               f"{mapped}")
    if ip.is_unspecified or ip.is_multicast or (ip.is_loopback and not loopback):
        raise SpecError(field, f"expected a unicast address, got {ip}")
    return ip


def network(field: str, value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A prefix with no host bits set."""
    try:
        return ipaddress.ip_network(value if isinstance(value, str) else "", strict=True)
    except ValueError:
        pass
    try:
        net = ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        raise SpecError(field, f"expected a prefix like 192.0.2.0/24, got {_show(value)}") \
            from None
    raise SpecError(field, f"{value} has host bits set; write the network {net}")


def encap_source(field: str, value: Any, version: int | None) -> str:
    """A tunnel's outer source: an address (every packet from it), or a
    prefix whose host bits vary with the flow (a backend's NIC then spreads
    the flows over its receive queues; at most the last 32 bits vary). Of
    family `version`, if given."""
    if isinstance(value, str) and "/" in value:
        net = network(field, value)
        src = net.network_address if net.prefixlen == net.max_prefixlen else net
        if net.prefixlen < net.max_prefixlen and (net.is_multicast or net.is_loopback or
                                                  net.prefixlen == 0):
            raise SpecError(field, f"expected a unicast prefix, got {net}")
    else:
        src = unicast(field, value)
    if version is not None and src.version != version:
        raise SpecError(field, f"{src} is not of the VIP's address family")
    return str(src)


def _table_size(field: str, value: Any) -> None:
    _integer(field, value, 2, TABLE_SIZE_MAX)
    if not is_prime(value):
        raise SpecError(field, f"{value} is not a prime; lookup tables have a prime size "
                               f"(e.g. {TABLE_SIZE})")


MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
HTTP_PATH = re.compile(r"^/[\x21-\x7e]{0,%d}\Z" % (MAX_HTTP_PATH - 1))
ACL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}\Z" % (_limits.NAME_LEN - 2))


QUIC_SID_MAX = _limits.QUIC_SID_MAX        # QUIC-LB server id bytes, at most
HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*\Z")


@dataclass(frozen=True)
class BackendSpec:
    ip: str
    port: int                   # 0: the client's destination port
    weight: int = 1
    state: str = UP
    max_connections: int = 0    # open at once, then no new ones (IPVS's u_threshold); 0: none
    server_id: str = ""         # QUIC: the server id in its connection IDs (hex); "": none

    def __post_init__(self):
        object.__setattr__(self, "ip", str(unicast("address", self.ip, loopback=True)))
        _integer("port", self.port, 0, PORT_MAX)
        _integer("weight", self.weight, 0, WEIGHT_MAX)
        _choice("state", self.state, BACKEND_STATES)
        _integer("max_connections", self.max_connections, 0, LIMIT_MAX)
        if not isinstance(self.server_id, str) or not HEX.match(self.server_id) or \
                len(self.server_id) > 2 * QUIC_SID_MAX:
            raise SpecError("server_id", f"expected 1 to {QUIC_SID_MAX} bytes in hex (e.g. "
                                         f"0a01), got {_show(self.server_id)}")
        object.__setattr__(self, "server_id", self.server_id.lower())

    @property
    def key(self) -> tuple[str, int]:
        return self.ip, self.port


@dataclass(frozen=True)
class QuicSpec:
    """QUIC connection-ID routing of a UDP service (draft-ietf-quic-load-
    balancers): its backends put their server_id in the connection IDs they
    choose: a first octet whose 3 high bits are `config_id`, then the
    server id (`server_id_length` bytes) and a nonce (`nonce_length`), in
    plaintext, or encrypted with AES-128 `key` (32 hex digits) in one pass
    (server id and nonce of 16 bytes together)."""
    server_id_length: int = 2
    nonce_length: int = 6
    config_id: int = 0
    key: str | None = None

    def __post_init__(self):
        _integer("server_id_length", self.server_id_length, 1, QUIC_SID_MAX)
        _integer("nonce_length", self.nonce_length, 4, 18)
        if self.server_id_length + self.nonce_length > 19:
            raise SpecError("nonce_length", "server id and nonce are 19 bytes at most together")
        _integer("config_id", self.config_id, 0, 6)
        if self.key is not None:
            if not isinstance(self.key, str) or len(self.key) != 32 or not HEX.match(self.key):
                raise SpecError("key", "expected an AES-128 key: 32 hex digits")
            object.__setattr__(self, "key", self.key.lower())
            if self.server_id_length + self.nonce_length != 16:
                raise SpecError("nonce_length", "encrypted connection IDs (one AES block) need "
                                                "server id and nonce of 16 bytes together")


@dataclass(frozen=True)
class HealthCheckSpec:
    """tcp: a connection opens; http: GET `path` answers `expect_status`;
    udp: a datagram gets an answer; none: always healthy. `port` 0: the
    backend's (or the service's) port. A backend goes down after `fall`
    failures in a row and up after `rise` successes."""
    type: str = CHECK_TCP
    port: int = 0
    path: str = "/"
    expect_status: int = 200
    interval_ms: int = 2000
    timeout_ms: int = 1000
    rise: int = 2
    fall: int = 3

    def __post_init__(self):
        _choice("type", self.type, CHECK_TYPES)
        _integer("port", self.port, 0, PORT_MAX)
        if not isinstance(self.path, str) or not HTTP_PATH.match(self.path):
            raise SpecError("path", f"expected an HTTP path starting with '/', printable, at "
                                    f"most {MAX_HTTP_PATH} bytes, got {_show(self.path)}")
        _integer("expect_status", self.expect_status, 100, 599)
        _integer("interval_ms", self.interval_ms, 100, 3_600_000)
        _integer("timeout_ms", self.timeout_ms, 10, 600_000)
        _integer("rise", self.rise, 1, 100)
        _integer("fall", self.fall, 1, 100)
        if self.timeout_ms > self.interval_ms:
            raise SpecError("timeout_ms", f"{self.timeout_ms} ms is longer than the interval "
                                          f"({self.interval_ms} ms)")


ServiceKey = tuple[str, int, str]       # (VIP, port, protocol)


@dataclass(frozen=True)
class ServiceSpec:
    vip: str
    port: int                   # 0: every port
    proto: str = TCP
    method: str = NAT
    scheduler: str = MAGLEV
    table_size: int = TABLE_SIZE
    persistence: int = 0        # seconds a client sticks to its backend
    persistence_prefix: int = 0
    local_addresses: tuple[str, ...] = ()
    down_reset: bool = False
    syn_proxy: str = SYN_PROXY_AUTO     # auto: under pressure; always; off
    proxy_protocol: str = PROXY_OFF     # FullNAT: a PROXY header (v1 TCP only)
    tunnel_source: str | None = None    # tunnel: outer source, an address or a prefix
    acls: tuple[str, ...] = ()              # names of the ACLs that apply (AclSpec)
    # Limits (0: none): connections open at once, new ones a second, and
    # connections open at once per client address.
    max_connections: int = 0
    max_new_per_second: int = 0
    max_per_client: int = 0
    backends: tuple[BackendSpec, ...] = ()
    health_check: HealthCheckSpec | None = None
    quic: QuicSpec | None = None        # UDP: QUIC connection-ID routing

    def __post_init__(self):
        vip = unicast("vip", self.vip)
        object.__setattr__(self, "vip", str(vip))
        _integer("port", self.port, 0, PORT_MAX)
        _choice("proto", self.proto, PROTOS)
        _choice("method", self.method, METHODS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _table_size("table_size", self.table_size)
        _integer("persistence", self.persistence, 0, PERSISTENCE_MAX)
        _integer("persistence_prefix", self.persistence_prefix, 0, 32 if vip.version == 4 else 128)
        if len(self.local_addresses) > MAX_LOCAL_ADDRESSES:
            raise SpecError("local_addresses", f"{len(self.local_addresses)} local addresses, "
                                               f"at most {MAX_LOCAL_ADDRESSES}")
        object.__setattr__(self, "local_addresses", tuple(
            str(unicast(f"local_addresses[{i}]", a)) for i, a in enumerate(self.local_addresses)))
        _flag("down_reset", self.down_reset)
        _choice("syn_proxy", self.syn_proxy, SYN_PROXY_MODES)
        _choice("proxy_protocol", self.proxy_protocol, PROXY_PROTOCOLS)
        if self.proxy_protocol != PROXY_OFF and self.method != FULLNAT:
            raise SpecError("proxy_protocol", "a PROXY protocol header is for fullnat services "
                                              "(the others' backends see the client's address)")
        if self.proxy_protocol == PROXY_V1 and self.proto != TCP:
            raise SpecError("proxy_protocol", "v1 is for TCP; UDP takes v2")
        if self.tunnel_source is not None:
            if self.method not in TUNNELS:
                raise SpecError("tunnel_source", "an outer source is for tunnel and gue services")
            # The outer packets' family is the backends' (either, 4-in-6
            # and 6-in-4): it applies to those of its own.
            object.__setattr__(self, "tunnel_source",
                               encap_source("tunnel_source", self.tunnel_source, None))
        for i, a in enumerate(self.acls):
            if not isinstance(a, str) or not ACL_NAME.match(a):
                raise SpecError(f"acls[{i}]", f"expected the name of an ACL, got {_show(a)}")
        for k in LIMIT_KEYS:
            _integer(k, getattr(self, k), 0, LIMIT_MAX)
        if self.quic is not None and self.proto != UDP:
            raise SpecError("quic", "QUIC connection-ID routing is for udp services")
        sids: dict[str, int] = {}
        for i, b in enumerate(self.backends):
            if b.server_id and (self.quic is None or
                                len(b.server_id) != 2 * self.quic.server_id_length):
                raise SpecError(f"backends[{i}].server_id", "a server id of the service's quic "
                                "server_id_length" if self.quic else "a server id is for a "
                                "service with quic routing")
            if b.server_id in sids:
                raise SpecError(f"backends[{i}].server_id", f"backends[{sids[b.server_id]}] "
                                                            "has it too")
            if b.server_id:
                sids[b.server_id] = i
        seen: set[tuple[str, int]] = set()
        for i, b in enumerate(self.backends):
            if ipaddress.ip_address(b.ip).version != vip.version and self.method not in TUNNELS:
                raise SpecError(f"backends[{i}].address",
                                f"backend {b.ip} is not of the VIP's address family (a tunnel "
                                f"or gue service's may be: 4-in-6, 6-in-4)")
            if b.key in seen:
                raise SpecError(f"backends[{i}]", f"backend {b.ip}:{b.port} is listed twice")
            seen.add(b.key)

    @property
    def key(self) -> ServiceKey:
        return self.vip, self.port, self.proto

    def name(self) -> str:
        return service_name(self.key)

    def backend(self, ip: str, port: int) -> BackendSpec | None:
        return next((b for b in self.backends if b.key == (ip, port)), None)


def backend(b) -> BackendSpec:
    """A BackendSpec written loosely: 'ip' (port 0: the client's),
    'ip:port', (ip, port[, weight[, state[, max_connections]]]) or a
    BackendSpec."""
    if isinstance(b, BackendSpec):
        return b
    if isinstance(b, str):
        try:
            return BackendSpec(str(ipaddress.ip_address(b)), 0)
        except ValueError:
            try:
                return BackendSpec(*split_hostport(b))
            except ValueError as e:
                raise SpecError("address", f"{_show(b)}: {e}") from None
    if not isinstance(b, (tuple, list)) or not 2 <= len(b) <= 5:
        raise SpecError("backend", f"expected (ip, port[, weight[, state[, max_connections]]]), "
                                   f"got {_show(b)}")
    return BackendSpec(*b)


def service(vip: str, port: int, proto: str = TCP, backends=(), **fields) -> ServiceSpec:
    """A ServiceSpec written loosely, for the binding's callers (tests,
    benchmarks, embedding): backends as `backend` takes them; lists where
    the spec has tuples."""
    return ServiceSpec(vip, port, proto, backends=tuple(backend(b) for b in backends),
                       **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def service_name(key: ServiceKey) -> str:
    """As the dataplane's messages write it: 10.0.0.1:80/tcp, [2001:db8::1]:80/tcp."""
    vip = f"[{key[0]}]" if ":" in key[0] else key[0]
    return f"{vip}:{key[1]}/{key[2]}"


def _inspect(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not POOL_NAME.match(value)):
        raise SpecError("inspect", f"expected an inspection pool's name, got {_show(value)}")


@dataclass(frozen=True)
class RouteSpec:
    prefix: str
    via: tuple[tuple[str | None, str | int], ...]   # (gateway or None, port name or index)
    inspect: str | None = None      # its traffic crosses an appliance of this pool first

    def __post_init__(self):
        net = network("prefix", self.prefix)
        object.__setattr__(self, "prefix", str(net))
        _inspect(self.inspect)
        if not isinstance(self.via, tuple) or not self.via:
            raise SpecError("via", "expected a list of next hops {gateway, port}")
        hops = []
        for i, (gw, port) in enumerate(self.via):
            if gw is not None:
                gw = unicast(f"via[{i}].gateway", gw)
                if gw.version != net.version:
                    raise SpecError(f"via[{i}].gateway",
                                    f"gateway {gw} is not of the route's address family")
                gw = str(gw)
            if not (isinstance(port, str) and 0 < len(port) < 32) and \
                    not (isinstance(port, int) and not isinstance(port, bool) and 0 <= port < 256):
                raise SpecError(f"via[{i}].port", f"expected a port name or index, "
                                                  f"got {_show(port)}")
            hops.append((gw, port))
        object.__setattr__(self, "via", tuple(hops))


@dataclass(frozen=True)
class VipSpec:
    prefix: str
    method: str = IPIP
    table_size: int = TABLE_SIZE
    source: str | None = None
    backends: tuple[tuple[str, int], ...] = ()     # (address, weight)
    inspect: str | None = None      # its traffic crosses an appliance of this pool first

    def __post_init__(self):
        net = network("prefix", self.prefix)
        object.__setattr__(self, "prefix", str(net))
        _choice("method", self.method, VIP_METHODS)
        _inspect(self.inspect)
        _table_size("table_size", self.table_size)
        if self.source is not None:
            object.__setattr__(self, "source", encap_source("source", self.source, net.version))
        backends: list[tuple[str, int]] = []
        for i, (ip, weight) in enumerate(self.backends):
            ip = unicast(f"backends[{i}].address", ip)
            if ip.version != net.version:
                raise SpecError(f"backends[{i}].address",
                                f"backend {ip} is not of the VIP's address family")
            if any(str(ip) == have for have, _ in backends):
                raise SpecError(f"backends[{i}]", f"backend {ip} is listed twice")
            _integer(f"backends[{i}].weight", weight, 0, WEIGHT_MAX)
            backends.append((str(ip), weight))
        object.__setattr__(self, "backends", tuple(backends))


@dataclass(frozen=True)
class PoolSpec:
    """An inspection pool (what AWS's Gateway Load Balancer does): the
    traffic of routes and L3 VIPs that name it crosses one of its
    appliances (firewalls, IDS) first, GENEVE-encapsulated, both directions
    of a flow the same one (`stickiness`: which of addresses, protocol and
    ports make the flow). A down or removed appliance's flows move to
    another (`failover: rebalance`) or stay on it until they end (`stay`);
    a flow ends `idle_timeout` seconds after its last packet. Appliances
    are backends without a port; a health check needs a port."""
    name: str
    appliances: tuple[BackendSpec, ...] = ()
    stickiness: str = STICK_5
    failover: str = REBALANCE
    idle_timeout: int = POOL_IDLE
    table_size: int = TABLE_SIZE
    health_check: HealthCheckSpec | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not POOL_NAME.match(self.name):
            raise SpecError("name", "a name of letters, digits, '.', '-' or '_' (at most "
                                    f"{_limits.NAME_LEN - 1}), got {_show(self.name)}")
        _choice("stickiness", self.stickiness, STICKINESS)
        _choice("failover", self.failover, FAILOVERS)
        _integer("idle_timeout", self.idle_timeout, 1, 7 * 86400)
        _table_size("table_size", self.table_size)
        if not isinstance(self.appliances, tuple):
            raise SpecError("appliances", "expected a list of appliances")
        if len(self.appliances) > MAX_APPLIANCES:
            raise SpecError("appliances", f"{len(self.appliances)} appliances, at most "
                                          f"{MAX_APPLIANCES}")
        seen = set()
        for i, a in enumerate(self.appliances):
            if not isinstance(a, BackendSpec) or a.port != 0 or a.max_connections != 0:
                raise SpecError(f"appliances[{i}]", "an appliance is an address, a weight and "
                                                   "a state (no port, no limit)")
            if a.ip in seen:
                raise SpecError(f"appliances[{i}]", f"appliance {a.ip} is listed twice")
            seen.add(a.ip)
        hc = self.health_check
        if hc is not None and hc.type != CHECK_NONE and hc.port == 0:
            raise SpecError("health_check.port", "an appliance's health check needs a port "
                                                 "(appliances have none of their own)")

    @property
    def key(self) -> str:
        return self.name

    @property
    def check_key(self) -> ServiceKey:
        """Its appliances' health verdicts' key (as a service's)."""
        return (self.name, 0, "pool")

    def appliance(self, ip: str) -> BackendSpec | None:
        return next((a for a in self.appliances if a.ip == ip), None)


@dataclass(frozen=True)
class AclSpec:
    """A list of client (source) prefixes, checked when a connection opens:
    `deny` refuses the sources it lists, `allow` every other one. `action`:
    drop, reset (TCP RST) or unreachable (ICMP, rate limited). It applies
    to every service if `all_services`, else to those that name it."""
    name: str
    type: str = DENY
    action: str = ACL_DROP
    all_services: bool = False
    prefixes: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not ACL_NAME.match(self.name):
            raise SpecError("name", "a name of letters, digits, '.', '-' or '_' (at most 64), "
                                    f"got {_show(self.name)}")
        _choice("type", self.type, ACL_TYPES)
        _choice("action", self.action, ACL_ACTIONS)
        _flag("all_services", self.all_services)
        # Normalised; a prefix listed twice is listed once (in its first place).
        object.__setattr__(self, "prefixes", tuple(dict.fromkeys(
            str(network(f"prefixes[{i}]", p)) for i, p in enumerate(self.prefixes))))

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class NeighbourSpec:
    port: str
    ip: str
    mac: str

    def __post_init__(self):
        if not isinstance(self.port, str) or not self.port:
            raise SpecError("port", f"expected a port name, got {_show(self.port)}")
        object.__setattr__(self, "ip", str(unicast("address", self.ip)))
        if not isinstance(self.mac, str) or not MAC.match(self.mac):
            raise SpecError("mac", f"expected a MAC address like 02:00:00:00:00:01, "
                                   f"got {_show(self.mac)}")
        object.__setattr__(self, "mac", self.mac.lower())

    @property
    def key(self) -> tuple[str, str]:
        return self.port, self.ip


@dataclass(frozen=True)
class AnnounceSpec:
    """When the appliance announces its VIPs by BGP (pylb.bgp): while they
    have `min_healthy_backends` backends up, unless `withdrawn` (by the
    operator: VIP addresses as /32 or /128, L3 VIP prefixes)."""
    min_healthy_backends: int = 1
    withdrawn: tuple[str, ...] = ()


@dataclass(frozen=True)
class BgpPeerSpec:
    address: str            # the router's address, on `port`'s network
    remote_as: int
    port: str               # the pylb port whose kernel interface the session uses
    bfd: bool = True
    hold_time: int = 3      # seconds (BGP's minimum); BFD detects a dead peer sooner


@dataclass(frozen=True)
class BgpSettings:
    """The hardware profile's `bgp` section: the appliance's side of its
    sessions with its routers."""
    local_as: int
    peers: tuple[BgpPeerSpec, ...]
    router_id: str = ""             # "": the first IPv4 port address
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3
    withdraw_wait_ms: int = 2000    # on SIGTERM: withdrawn, then this long before exiting


@dataclass(frozen=True)
class SyncSettings:
    """The profile's `fleet.sync`: connection sync with the fleet's other
    appliances (pylb.sync), from `port`'s address."""
    port: str
    peers: tuple[str, ...]
    udp_port: int = 8848
    interval_ms: int = 20


def timeouts(seconds: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """Timeouts by name (TIMEOUT_KEYS), in seconds: as (name, seconds), in
    TIMEOUT_KEYS order."""
    for k, v in seconds.items():
        if k not in TIMEOUT_KEYS:
            raise SpecError(str(k), f"no such timeout; expected one of: {', '.join(TIMEOUT_KEYS)}")
        _integer(k, v, 1, TIMEOUT_MAX)
    return tuple((k, seconds[k]) for k in TIMEOUT_KEYS if k in seconds)


@dataclass(frozen=True)
class Config:
    """A whole desired state. `timeouts`: those the operator manages (the
    rest are the hardware profile's)."""
    path: str = "(running)"
    services: tuple[ServiceSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = field(default=())
    vips: tuple[VipSpec, ...] = ()
    neighbours: tuple[NeighbourSpec, ...] = ()
    timeouts: tuple[tuple[str, int], ...] = ()     # (name, seconds), in TIMEOUT_KEYS order
    acls: tuple[AclSpec, ...] = ()                  # in order: the first that refuses counts
    announce: AnnounceSpec = AnnounceSpec()
    pools: tuple[PoolSpec, ...] = ()                # inspection pools

    def __post_init__(self):
        try:
            object.__setattr__(self, "timeouts", timeouts(dict(self.timeouts)))
        except SpecError as e:
            raise e.within("timeouts") from None

    def service(self, key: ServiceKey) -> ServiceSpec | None:
        return next((s for s in self.services if s.key == key), None)

    def vip(self, prefix: str) -> VipSpec | None:
        return next((v for v in self.vips if v.prefix == prefix), None)

    def route(self, prefix: str) -> RouteSpec | None:
        return next((r for r in self.routes if r.prefix == prefix), None)

    def neighbour(self, key: tuple[str, str]) -> NeighbourSpec | None:
        return next((n for n in self.neighbours if n.key == key), None)

    def acl(self, name: str) -> AclSpec | None:
        return next((a for a in self.acls if a.name == name), None)

    def pool(self, name: str) -> PoolSpec | None:
        return next((p for p in self.pools if p.name == name), None)

    def normalised(self) -> "Config":
        """The same state in one order (what GetConfig returns): services
        by key, routes, VIPs and neighbours by their keys."""
        return Config(self.path, tuple(sorted(self.services, key=_service_order)),
                      tuple(sorted(self.routes, key=lambda r: _net_order(r.prefix))),
                      tuple(sorted(self.vips, key=lambda v: _net_order(v.prefix))),
                      tuple(sorted(self.neighbours, key=lambda n: (n.port, _ip_order(n.ip)))),
                      self.timeouts,
                      self.acls, AnnounceSpec(self.announce.min_healthy_backends,
                                              tuple(sorted(self.announce.withdrawn,
                                                           key=_net_order))),
                      tuple(sorted(self.pools, key=lambda p: p.name)))


def _ip_order(ip: str):
    import ipaddress
    a = ipaddress.ip_address(ip)
    return a.version, a


def _net_order(prefix: str):
    import ipaddress
    n = ipaddress.ip_network(prefix)
    return n.version, n


def _service_order(s: ServiceSpec):
    return _ip_order(s.vip), s.proto, s.port


# Changes: (action, old, new). The order they are applied in: neighbours
# and routes a service or VIP may need first, deletions of those last.
ACTION_ORDER = {"add-pool": 0, "set-pool": 0, "add-neighbour": 0, "replace-neighbour": 0,
                "add-route": 1, "replace-route": 1, "del-route": 3, "del-neighbour": 4,
                "del-pool": 5}
Change = tuple[str, Any, Any]


def _changes(cur: dict, want: dict, kind: str, in_place=None) -> list[Change]:
    """del-KIND, add-KIND and replace-KIND turning cur into want, or where
    in_place(old, new) gives the steps that make a change in place (a list
    of actions, perhaps empty), those."""
    out: list[Change] = [(f"del-{kind}", v, None) for k, v in cur.items() if k not in want]
    for k, v in want.items():
        old = cur.get(k)
        if old is None:
            out.append((f"add-{kind}", None, v))
        elif old != v:
            steps = in_place(old, v) if in_place else None
            out += [(f"replace-{kind}", old, v)] if steps is None else \
                [(a, old, v) for a in steps]
    return out


def diff(current: Config, desired: Config, base_timeouts: dict | None = None) -> list[Change]:
    """What turns current into desired, in the order to apply it: (action,
    old, new) with action one of add-service, del-service, set-backends
    (backends or health check) and set-limits (the service's limits): both
    hitless, replace-service (anything else about a service), and add-,
    del- and replace- of route, vip (set-vip-backends when only its
    backends changed) and neighbour, add-, set- and del-pool, set-acls (old and new: whole Configs), and set-timeouts (old and new as full
    sets: `base_timeouts` for those a state does not list)."""
    def in_place(old: ServiceSpec, new: ServiceSpec) -> list[str] | None:
        def rest(s: ServiceSpec) -> ServiceSpec:      # what only a replacement changes
            return replace(s, backends=(), health_check=None, acls=(),
                           **dict.fromkeys(LIMIT_KEYS, 0))
        if rest(old) != rest(new):
            return None
        return ["set-backends"] * ((old.backends, old.health_check) !=
                                   (new.backends, new.health_check)) + \
            ["set-limits"] * any(getattr(old, k) != getattr(new, k) for k in LIMIT_KEYS)

    def vip_in_place(old: VipSpec, new: VipSpec) -> list[str] | None:
        return ["set-vip-backends"] if replace(old, backends=()) == replace(new, backends=()) \
            else None
    out = _changes({s.key: s for s in current.services}, {s.key: s for s in desired.services},
                   "service", in_place)
    out += _changes({r.prefix: r for r in current.routes}, {r.prefix: r for r in desired.routes},
                    "route")
    out += _changes({v.prefix: v for v in current.vips}, {v.prefix: v for v in desired.vips},
                    "vip", vip_in_place)
    out += _changes({n.key: n for n in current.neighbours},
                    {n.key: n for n in desired.neighbours}, "neighbour")
    # A pool changes in place (its flows stay), whatever changed.
    out += _changes({p.name: p for p in current.pools}, {p.name: p for p in desired.pools},
                    "pool", lambda old, new: ["set-pool"])
    # ACLs: one step replaces them all; again when a service (re)opens with
    # a new id while any exist.
    def acl_state(c: Config):
        return c.acls, tuple(sorted((s.key, s.acls) for s in c.services if s.acls))
    if acl_state(current) != acl_state(desired) or (desired.acls and any(
            a in ("add-service", "replace-service") for a, _, _ in out)):
        out.append(("set-acls", current, desired))
    base = dict(base_timeouts or {})
    have, want = base | dict(current.timeouts), base | dict(desired.timeouts)
    if have != want:
        out.append(("set-timeouts", tuple(have.items()), tuple(want.items())))
    return sorted(out, key=lambda c: ACTION_ORDER.get(c[0], 2))


def describe(change: Change) -> str:
    action, old, new = change
    obj = new or old
    if action == "set-acls":
        return f"{action} " + (" ".join(f"{a.name}({len(a.prefixes)})" for a in new.acls) or "none")
    if action == "set-timeouts":
        have = dict(old)
        return f"{action} " + " ".join(f"{k}={v}" for k, v in new if have.get(k) != v)
    if isinstance(obj, NeighbourSpec):
        return f"{action} {obj.ip} on {obj.port}"
    if isinstance(obj, (RouteSpec, VipSpec)):
        return f"{action} {obj.prefix}"
    if isinstance(obj, PoolSpec):
        return f"{action} {obj.name}"
    return f"{action} {obj.name()}"


# Why a VIP is (not) announced.
DISABLED = "withdrawn by the operator"
STOPPING = "withdrawn: the appliance is stopping"


@dataclass(frozen=True)
class Announcement:
    prefix: str             # a service's VIP as /32 or /128, an L3 VIP's prefix, a pool address
    announced: bool
    why: str
    # A peer's FullNAT pool address, announced with a longer AS path:
    # routers use it only once the peer's own announcement is gone.
    backup: bool = False


def host_prefix(ip: str) -> str:
    import ipaddress
    a = ipaddress.ip_address(ip)
    return f"{a}/{a.max_prefixlen}"


def announcements(config: Config, stopping: bool = False, pool=(),
                  backups=()) -> list[Announcement]:
    """What the appliance announces for `config` (as in force: backends a
    health check holds down are down). A service VIP is announced while at
    least one of its services has `min_healthy_backends` backends up (one
    failing service does not take the others of its address away); an L3
    VIP while it has that many backends with weight; neither once withdrawn
    by the operator or while the appliance stops. The appliance's FullNAT
    pool addresses (`pool`: its backends' replies come back to them) are
    announced while it runs; `backups`, peers' pool addresses it holds
    synced connections of, with a longer path."""
    policy = config.announce
    need = policy.min_healthy_backends
    by_vip: dict[str, list[ServiceSpec]] = {}
    for s in config.services:
        by_vip.setdefault(host_prefix(s.vip), []).append(s)
    out = []
    for prefix, services in by_vip.items():
        best = max(services, key=lambda s: _up(s))
        up = _up(best)
        why = f"{up} of {len(best.backends)} backends up in {best.name()}"
        out.append(_decide(prefix, up >= need, why, need, policy, stopping))
    for v in config.vips:
        up = sum(1 for _, w in v.backends if w > 0)
        out.append(_decide(v.prefix, up >= need, f"{up} of {len(v.backends)} backends with weight",
                           need, policy, stopping))
    for ip in pool:
        out.append(Announcement(host_prefix(ip), not stopping, STOPPING if stopping else
                                "announced: a FullNAT local address of this appliance"))
    for ip in backups:
        out.append(Announcement(host_prefix(ip), not stopping, STOPPING if stopping else
                                "announced as a backup: a peer's FullNAT local address, "
                                "of connections synced here", backup=True))
    return sorted(out, key=lambda a: _net_order(a.prefix))


def _up(s: ServiceSpec) -> int:
    return sum(1 for b in s.backends if b.state == UP and b.weight > 0)


def _decide(prefix, healthy, why, need, policy, stopping) -> Announcement:
    if stopping:
        return Announcement(prefix, False, STOPPING)
    if prefix in policy.withdrawn:
        return Announcement(prefix, False, DISABLED)
    if healthy:
        return Announcement(prefix, True, f"announced: {why}")
    return Announcement(prefix, False, f"withdrawn: {why} (needs {need})")
