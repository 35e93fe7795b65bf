# cython: language_level=3, boundscheck=False, wraparound=False
"""The only code that touches C: the DPDK dataplane as Python objects.

Every C return code becomes a pylb exception in `_check`; blocking calls
release the GIL.
"""
from cpython.buffer cimport PyBUF_FORMAT
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

import dataclasses
import hashlib
import ipaddress
import os
import struct
import numpy as np

from pylb import kernel, model
from pylb.records import Backend, Connection, Neighbour, NextHop, PortInfo, Route, Vip
from pylb.hostport import split_hostport
from pylb.errors import (AlreadyExists, CapacityExhausted, DataplaneError, FailedPrecondition,
                         InvalidArgument, NotFound, PortError, PylbError)

_ERRORS = {
    PYLB_E_INVAL: InvalidArgument,
    PYLB_E_NOMEM: CapacityExhausted,
    PYLB_E_EXIST: AlreadyExists,
    PYLB_E_NOENT: NotFound,
    PYLB_E_FULL: CapacityExhausted,
    PYLB_E_EAL: DataplaneError,
    PYLB_E_PORT: PortError,
    PYLB_E_STATE: FailedPrecondition,
}

COUNTER_NAMES = tuple(pylb_counter_name(i).decode() for i in range(PYLB_CNT_MAX))
DROP_FIRST = PYLB_DROP_FIRST
DROP_REASONS = COUNTER_NAMES[DROP_FIRST:]
# What the L4 path does with a client's packet (enum pylb_l4_verdict, by value).
L4_VERDICTS = ("drop", "connection", "held", "new", "pick_up", "untracked", "cookie", "cookie_ack")
MAX_BURST = model.MAX_BURST
RECORD_SIZE = sizeof(pylb_conn_record)      # bytes of one exported connection


def _named(table: dict, name, str what):
    """C's value of `name` (one of table's), or InvalidArgument."""
    if name not in table:
        raise InvalidArgument(f"{what} {name!r} is not one of {', '.join(table)}")
    return table[name]


cdef int _check(int rc) except -1:
    if rc >= 0:
        return rc
    exc = _ERRORS.get(-rc, DataplaneError)
    detail = pylb_last_error().decode(errors="replace")
    pylb_clear_error()
    raise exc(detail or pylb_strerror(rc).decode())


_eal_state = "new"


def eal_init(args):
    """Initialise EAL once per process with `args` (argv[0] first)."""
    global _eal_state
    if _eal_state != "new":
        raise DataplaneError(f"EAL is already {_eal_state}; it initialises once per process")
    cdef list enc = [a.encode() for a in args]
    cdef int argc = len(enc)
    cdef char **argv = <char **>malloc((argc + 1) * sizeof(char *))
    cdef int rc
    if argv == NULL:
        raise MemoryError()
    try:
        for i in range(argc):
            argv[i] = enc[i]
        argv[argc] = NULL
        with nogil:
            rc = pylb_eal_init(argc, argv)
    finally:
        free(argv)
    _eal_state = "initialised" if rc == 0 else "failed"
    _check(rc)


def eal_cleanup():
    global _eal_state
    if _eal_state == "initialised":
        with nogil:
            rc = pylb_eal_cleanup()
        _eal_state = "cleaned up"
        _check(rc)


# Names are the domain model's (pylb.model); here they meet C's enums, one
# by one (never by position).
_ROUTE_KINDS = {PYLB_ROUTE_GATEWAY: model.GATEWAY, PYLB_ROUTE_CONNECTED: model.CONNECTED,
                PYLB_ROUTE_LOCAL: model.LOCAL, PYLB_ROUTE_VIP: model.VIP,
                PYLB_ROUTE_SERVICE: model.SERVICE}
_METHODS = {model.IPIP: PYLB_FWD_IPIP, model.GRE: PYLB_FWD_GRE, model.VIP_DR: PYLB_FWD_DR,
            model.VIP_GUE: PYLB_FWD_GUE}
_METHOD_NAMES = {v: k for k, v in _METHODS.items()}
_STICKINESS = {model.STICK_5: PYLB_STICK_5, model.STICK_3: PYLB_STICK_3,
               model.STICK_2: PYLB_STICK_2}
_STICKINESS_NAMES = {v: k for k, v in _STICKINESS.items()}
_FAILOVERS = {model.REBALANCE: PYLB_FAILOVER_REBALANCE, model.STAY: PYLB_FAILOVER_STAY}
_FAILOVER_NAMES = {v: k for k, v in _FAILOVERS.items()}
_NEIGH_STATES = {PYLB_NEIGH_INCOMPLETE: model.INCOMPLETE, PYLB_NEIGH_REACHABLE: model.REACHABLE,
                 PYLB_NEIGH_PROBING: model.PROBING, PYLB_NEIGH_STATIC: model.STATIC}
_PROTOS = model.PROTO_NUMBERS
_PROTO_NAMES = {v: k for k, v in _PROTOS.items()}
_L4_METHODS = {model.NAT: PYLB_L4_NAT, model.FULLNAT: PYLB_L4_FULLNAT, model.DR: PYLB_L4_DR,
               model.TUNNEL: PYLB_L4_TUNNEL, model.GUE: PYLB_L4_GUE}
_L4_METHOD_NAMES = {v: k for k, v in _L4_METHODS.items()}
_SCHEDULERS = {model.MAGLEV: PYLB_SCHED_MAGLEV, model.SOURCE: PYLB_SCHED_SOURCE,
               model.WRR: PYLB_SCHED_WRR, model.WLC: PYLB_SCHED_WLC}
_SCHEDULER_NAMES = {v: k for k, v in _SCHEDULERS.items()}
_BACKEND_STATES = {model.UP: PYLB_BACKEND_UP, model.DRAIN: PYLB_BACKEND_DRAIN,
                   model.DOWN: PYLB_BACKEND_DOWN}
_BACKEND_STATE_NAMES = {v: k for k, v in _BACKEND_STATES.items()}
_SYN_PROXY = {model.SYN_PROXY_AUTO: PYLB_SYN_PROXY_AUTO,
              model.SYN_PROXY_ALWAYS: PYLB_SYN_PROXY_ALWAYS, model.SYN_PROXY_OFF: PYLB_SYN_PROXY_OFF}
_SYN_PROXY_NAMES = {v: k for k, v in _SYN_PROXY.items()}
_PROXY = {model.PROXY_OFF: PYLB_PROXY_OFF, model.PROXY_V1: PYLB_PROXY_V1,
          model.PROXY_V2: PYLB_PROXY_V2}
_PROXY_NAMES = {v: k for k, v in _PROXY.items()}
_RP_FILTERS = {model.RP_STRICT: PYLB_RP_STRICT, model.RP_LOOSE: PYLB_RP_LOOSE,
               model.RP_OFF: PYLB_RP_OFF}
_ACL_TYPES = {model.DENY: PYLB_ACL_DENY, model.ALLOW: PYLB_ACL_ALLOW}
_ACL_ACTIONS = {model.ACL_DROP: PYLB_ACL_DROP, model.ACL_RESET: PYLB_ACL_RESET,
                model.ACL_UNREACHABLE: PYLB_ACL_UNREACHABLE}
BACKEND_STATES = model.BACKEND_STATES
_TIMEOUT_KEYS = model.TIMEOUT_KEYS
TCP, UDP = model.TCP, model.UDP


def _proto(proto):
    if proto not in _PROTOS:
        raise InvalidArgument(f"protocol '{proto}' is not one of tcp, udp")
    return _PROTOS[proto]


def _port(port, what="port"):
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= model.PORT_MAX:
        raise InvalidArgument(f"{what} {port!r} is not in 0..{model.PORT_MAX} (0: all ports)")
    return port


cdef object _route(const pylb_route *r):
    return Route(_get_prefix(&r.dst), _ROUTE_KINDS.get(r.kind, "?"),
                 tuple(NextHop(None if r.nh[i].gw.af == 0 else str(_get_ip(&r.nh[i].gw)),
                               r.nh[i].port) for i in range(r.n_nh)),
                 _get_name(r.inspect))


cdef object _get_name(const char *name):
    return name[:PYLB_NAME_LEN].split(b"\0", 1)[0].decode()


cdef int _set_name(char *out, name, str what) except -1:
    """A pool's name into a char[PYLB_NAME_LEN] (None: "")."""
    b = (name or "").encode()
    if len(b) >= PYLB_NAME_LEN or b"\0" in b:
        raise InvalidArgument(f"{what}: a pool name is at most {PYLB_NAME_LEN - 1} bytes")
    memset(out, 0, PYLB_NAME_LEN)
    memcpy(out, <const char *>b, len(b))
    return 0


def _backend_list(backends):
    out = []
    for b in backends:
        if isinstance(b, Backend):
            ip, weight = b
        elif isinstance(b, (tuple, list)):
            ip, weight = b
        else:
            ip, weight = b, 1
        _check_weight(ip, weight)
        out.append((_parse_ip(ip, "backend"), 0, weight, 0))
    return out


def _check_weight(what, weight):
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= model.WEIGHT_MAX:
        raise InvalidArgument(f"backend {what}: weight {weight!r} must be an integer in "
                              f"0..{model.WEIGHT_MAX}")


def _l4_backend_list(backends):
    """Backends as model.backend takes them -> [(addr, port, weight, state,
    max_connections)]; port 0 keeps the client's destination port."""
    out = []
    for i, b in enumerate(backends):
        try:
            b = model.backend(b)
        except model.SpecError as e:
            raise e.within(f"backends[{i}]") from None
        out.append((ipaddress.ip_address(b.ip), b.port, b.weight, _BACKEND_STATES[b.state],
                    b.max_connections, bytes.fromhex(b.server_id)))
    return out


def _limits(vip, port, *values):
    """A service's (max_connections, max_new_per_second, max_per_client), checked."""
    for k, v in zip(model.LIMIT_KEYS, values):
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= model.LIMIT_MAX:
            raise InvalidArgument(f"service {vip}:{port}: {k} {v!r} is not in 0..{model.LIMIT_MAX}")
    return values


cdef int _fill_backends(pylb_backend *arr, list bl) except -1:
    for i, b in enumerate(bl):
        _set_ip(&arr[i].addr, b[0])
        arr[i].port = b[1]
        arr[i].weight = b[2]
        arr[i].state = b[3] if len(b) > 3 else 0
        arr[i].max_conns = b[4] if len(b) > 4 else 0
        sid = b[5] if len(b) > 5 else b""
        arr[i].sid_len = len(sid)
        if sid:
            memcpy(arr[i].sid, <const char *>sid, len(sid))
    return 0


def fullnat_locals(const unsigned char[:] records):
    """The FullNAT local addresses `records` name, each with the longest
    time left (ms) of a connection naming it: {address: ms}."""
    cdef Py_ssize_t size = sizeof(pylb_conn_record)
    cdef Py_ssize_t i, n = records.shape[0] // size
    cdef const pylb_conn_record *r
    out = {}
    if records.shape[0] % size:
        raise InvalidArgument(f"{records.shape[0]} bytes are not whole connection records "
                              f"({size} bytes each)")
    for i in range(n):
        r = <const pylb_conn_record *>&records[i * size]
        if r.method != PYLB_L4_FULLNAT or (r.af != 4 and r.af != 6):
            continue
        ip = str(ipaddress.ip_address(PyBytes_FromStringAndSize(<const char *>r.local,
                                                                4 if r.af == 4 else 16)))
        if out.get(ip, -1) < r.expires_ms:
            out[ip] = r.expires_ms
    return out


def maglev_table(backends, int size=PYLB_MAGLEV_DEFAULT):
    """The L3 VIP lookup table for `backends` ([(ip, weight)] or [ip]):
    a numpy array of backend indices, one per slot."""
    bl = _backend_list(backends)
    if not bl:
        raise InvalidArgument("at least one backend is needed")
    if len(bl) > PYLB_MAX_BACKENDS:
        raise CapacityExhausted(f"{len(bl)} backends, at most {PYLB_MAX_BACKENDS}")
    cdef pylb_backend *arr = <pylb_backend *>malloc(len(bl) * sizeof(pylb_backend))
    if arr == NULL:
        raise MemoryError()
    table = np.empty(max(size, 1), dtype=np.uint16)
    cdef uint16_t[::1] tv = table
    cdef int rc
    try:
        _fill_backends(arr, bl)
        rc = pylb_maglev_build(arr, len(bl), size, &tv[0])
    finally:
        free(arr)
    _check(rc)
    return table


def hash_key(seed):
    """The flow hash's key words for a secret `seed` (bytes): SHAKE-256 of
    it, so any length of secret gives a full key. The same secret gives the
    same key on every appliance of a fleet."""
    if not isinstance(seed, bytes) or len(seed) < 16:
        raise InvalidArgument("the flow-hash seed must be at least 16 bytes")
    raw = hashlib.shake_256(b"pylb flow hash v1\0" + seed).digest(8 * PYLB_HASH_KEY_WORDS)
    return struct.unpack(f"<{PYLB_HASH_KEY_WORDS}Q", raw)


def key_fingerprint(key):
    """A public name for a flow-hash key: the first 8 bytes of its SHA-256,
    in hex. Appliances that choose alike show the same one; it tells
    nothing of the secret."""
    return hashlib.sha256(struct.pack(f"<{len(key)}Q", *key)).hexdigest()[:16]


cdef str _fmt_mac(const uint8_t *m):
    return ":".join(f"{m[i]:02x}" for i in range(6))


def _parse_mac(mac):
    parts = str(mac).split(":")
    try:
        octets = [int(p, 16) for p in parts]
    except ValueError:
        octets = []
    if len(parts) != 6 or len(octets) != 6 or not all(0 <= o < 256 for o in octets):
        raise InvalidArgument(f"MAC '{mac}' is not six hex octets like 02:00:00:00:00:01")
    return octets


def _parse_ip(value, str what):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidArgument(f"{what} '{value}' is not an IPv4 or IPv6 address") from None


def _parse_prefix(value, str what):
    """A network like 10.1.0.0/16 or 2001:db8::/64 (a bare address is a host)."""
    try:
        return ipaddress.ip_network(str(value))
    except ValueError as e:
        hint = " (host bits set; give the network address)" if "host bits" in str(e) else ""
        raise InvalidArgument(f"{what} '{value}' is not a prefix like 10.1.0.0/16 "
                              f"or 2001:db8::/64{hint}") from None


cdef void _set_ip(pylb_ip *out, addr) except *:
    cdef bytes packed = addr.packed
    memset(out, 0, sizeof(pylb_ip))
    out.af = addr.version
    memcpy(out.ip, PyBytes_AS_STRING(packed), len(packed))


cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    enum:
        AF_INET
        AF_INET6


cdef bint _fast_prefix(object text, pylb_prefix *out):
    """Parse 'a.b.c.d/len' or 'x::y/len' without Python objects; False if it
    does not parse (the caller then gets the full error from ipaddress)."""
    if not isinstance(text, str):
        return False
    cdef bytes b = (<str>text).encode()
    cdef const char *s = b
    cdef char buf[64]
    cdef Py_ssize_t slash = b.find(b"/"), i
    cdef int plen = 0
    if slash <= 0 or slash >= 63 or slash == len(b) - 1 or len(b) - slash > 4:
        return False
    for i in range(slash + 1, len(b)):
        if not (48 <= s[i] <= 57):
            return False
        plen = plen * 10 + (s[i] - 48)
    memcpy(buf, s, slash)
    buf[slash] = 0
    memset(out, 0, sizeof(pylb_prefix))
    if inet_pton(AF_INET, buf, out.addr.ip) == 1:
        out.addr.af = 4
    elif inet_pton(AF_INET6, buf, out.addr.ip) == 1:
        out.addr.af = 6
    else:
        return False
    out.len = plen
    return True


cdef void _set_prefix(pylb_prefix *out, net) except *:
    memset(out, 0, sizeof(pylb_prefix))
    _set_ip(&out.addr, net.network_address)
    out.len = net.prefixlen


cdef object _get_ip(const pylb_ip *a):
    if a.af == 0:
        return None
    n = 4 if a.af == 4 else 16
    return ipaddress.ip_address(PyBytes_FromStringAndSize(<char *>a.ip, n))


cdef str _get_prefix(const pylb_prefix *p):
    return f"{_get_ip(&p.addr)}/{p.len}"


cdef void _set_source(pylb_prefix *out, source, str what) except *:
    """A tunnel's outer source (model.encap_source): an address, or a prefix
    whose host bits vary with the flow; None: the egress port's address."""
    memset(out, 0, sizeof(pylb_prefix))
    if source is not None:
        _set_prefix(out, _parse_prefix(source, what))


cdef object _get_source(const pylb_prefix *p):
    if p.addr.af == 0:
        return None
    return str(_get_ip(&p.addr)) if p.len == (32 if p.addr.af == 4 else 128) else _get_prefix(p)


cdef void _copy_str(char *dst, str s, size_t cap, str what) except *:
    cdef bytes b = s.encode()
    if <size_t>len(b) >= cap:
        raise InvalidArgument(f"{what} '{s}' is longer than {cap - 1} bytes")
    memset(dst, 0, cap)
    memcpy(dst, PyBytes_AS_STRING(b), len(b))


cdef dict _stats_dict(const pylb_svc_stats *st):
    return {"conns": st.conns, "in_packets": st.in_packets, "in_bytes": st.in_bytes,
            "out_packets": st.out_packets, "out_bytes": st.out_bytes,
            "active": st.active, "inactive": st.inactive}


cdef class Dataplane:
    """A dataplane: ports, addresses, worker lcores, counters.

    With `workers` empty it has no worker and only detached ports, and packets
    are run through the real processing function with `inject`.
    `clock_stopped`: time moves only by clock_advance (tests whose outcome
    depends on time, e.g. a rate's tokens, are then exact).
    """
    cdef pylb_dp *dp
    cdef int _exports
    cdef bint _closing
    cdef readonly str hash_fingerprint
    cdef uint32_t _n_slots
    cdef list _ports        # [(name, kernel_iface attached or "")]

    def __cinit__(self, *, workers=(), int mbufs=8191, int mbuf_cache=256, int mbuf_size=0,
                  int neigh_capacity=4096, int neigh_timeout_ms=0, int max_routes=0,
                  int fib_tbl8=0, int conn_capacity=0, timeouts=None, bint tcp_reset=False,
                  hash_seed=None, int half_open_budget=0, per_source=None, bint mid_flow=True,
                  bint sync=False, bint clock_stopped=False):
        cdef pylb_dp_conf conf
        cdef int rc
        memset(&conf, 0, sizeof(conf))
        workers = list(workers)
        if len(workers) > PYLB_MAX_WORKERS:
            raise InvalidArgument(f"{len(workers)} workers requested, at most {PYLB_MAX_WORKERS}")
        conf.n_workers = len(workers)
        for i, lc in enumerate(workers):
            conf.worker_lcores[i] = lc
        conf.mbufs_per_socket = mbufs
        conf.mbuf_cache = mbuf_cache
        conf.mbuf_size = mbuf_size
        conf.neigh_capacity = neigh_capacity
        conf.neigh_timeout_ms = neigh_timeout_ms
        conf.max_routes = max_routes
        conf.fib_tbl8 = fib_tbl8
        conf.conn_capacity = conn_capacity
        conf.tcp_reset = tcp_reset
        conf.mid_flow_off = not mid_flow
        conf.clock_stopped = clock_stopped
        conf.sync = sync
        if half_open_budget < 0:
            raise InvalidArgument(f"half_open_budget {half_open_budget} is negative")
        conf.half_open_budget = half_open_budget
        src = dict(per_source or {})
        for k, v in src.items():
            if k not in model.PER_SOURCE:
                raise InvalidArgument(f"per_source '{k}' is not one of {', '.join(model.PER_SOURCE)}")
            lo, hi = model.PER_SOURCE[k]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise InvalidArgument(f"per_source {k}: {v!r} is not in {lo}..{hi}")
        conf.source_prefix4 = src.get("ipv4_prefix", 0)
        conf.source_prefix6 = src.get("ipv6_prefix", 0)
        conf.source_half_open_budget = src.get("half_open_budget", 0)
        conf.source_new_per_second = src.get("new_per_second", 0)
        for k, v in (timeouts or {}).items():
            if k not in _TIMEOUT_KEYS:
                raise InvalidArgument(f"timeout '{k}' is not one of {', '.join(_TIMEOUT_KEYS)}")
            if not isinstance(v, int) or v <= 0:
                raise InvalidArgument(f"timeout {k}: {v!r} is not a positive number of seconds")
        t = timeouts or {}
        (conf.timeouts.tcp_syn, conf.timeouts.tcp_established, conf.timeouts.tcp_fin,
         conf.timeouts.tcp_close, conf.timeouts.udp) = (t.get(k, 0) for k in _TIMEOUT_KEYS)
        key = hash_key(os.urandom(32) if hash_seed is None else hash_seed)
        for i, w in enumerate(key):
            conf.hash_key[i] = w
        self.hash_fingerprint = key_fingerprint(key)
        self._ports = []
        with nogil:
            rc = pylb_dp_create(&conf, &self.dp)
        _check(rc)
        pylb_dp_counters(self.dp, &self._n_slots)

    def __dealloc__(self):
        if self.dp != NULL:
            with nogil:
                pylb_dp_destroy(self.dp)
            self.dp = NULL

    cdef pylb_dp *_live(self) except NULL:
        if self.dp == NULL or self._closing:
            raise DataplaneError("the dataplane is closed")
        return self.dp

    def port_index(self, port):
        """A port's index from its index or name."""
        if isinstance(port, str):
            for i, (name, _) in enumerate(self._ports):
                if name == port:
                    return i
            raise NotFound(f"no port named '{port}'")
        if isinstance(port, int) and 0 <= port < len(self._ports):
            return port
        raise NotFound(f"no port {port!r}")

    def add_port(self, str name, str device="", mac=None, int rx_desc=0,
                 int tx_desc=0, int link_wait_ms=5000, str kernel_iface="", int mtu=0,
                 parent=None, int vlan=0, str rp_filter=model.RP_STRICT):
        """Add a port; returns its index. `device` empty: detached (needs `mac`).
        `mtu`: the IP MTU (0: the device's; jumbo frames need mbufs that hold
        them: mbuf_size). `parent` and `vlan`: an 802.1Q sub-interface of
        that port (no device, MAC or kernel interface of its own).
        `rp_filter`: strict, loose or off, the check of arriving packets'
        sources against the routes (model.RP_FILTERS).

        `kernel_iface` names the port's exception path: a kernel interface
        with the port's MAC and addresses."""
        cdef pylb_port_conf conf
        cdef uint16_t idx
        cdef int rc
        cdef pylb_dp *dp = self._live()
        memset(&conf, 0, sizeof(conf))
        _copy_str(conf.name, name, PYLB_NAME_LEN, "port name")
        _copy_str(conf.device, device, PYLB_DEVARGS_LEN, "device")
        if mac is not None:
            try:
                octets = _parse_mac(mac)
            except InvalidArgument as e:
                raise InvalidArgument(f"port {name}: {e}") from None
            for i in range(6):
                conf.mac[i] = octets[i]
        conf.rx_desc = rx_desc
        conf.tx_desc = tx_desc
        conf.link_wait_ms = link_wait_ms
        if not 0 <= mtu <= 65535 or 0 < mtu < 68:
            raise InvalidArgument(f"port {name}: MTU {mtu} is not in 68..65535")
        conf.mtu = mtu
        if (parent is None) != (vlan == 0):
            raise InvalidArgument(f"port {name}: a VLAN needs both its parent port and its tag")
        if parent is not None:
            if not 1 <= vlan <= 4094:
                raise InvalidArgument(f"port {name}: VLAN {vlan} is not in 1..4094")
            conf.parent = self.port_index(parent)
            conf.vlan = vlan
        _copy_str(conf.kernel_iface, kernel_iface, PYLB_NAME_LEN, "kernel interface")
        if rp_filter not in model.RP_FILTERS:
            raise InvalidArgument(f"port {name}: rp_filter {rp_filter!r} is not one of "
                                  f"{', '.join(model.RP_FILTERS)}")
        conf.rp_filter = _RP_FILTERS[rp_filter]
        with nogil:
            rc = pylb_dp_port_add(dp, &conf, &idx)
        _check(rc)
        attached = kernel_iface if (kernel_iface and device) else ""
        self._ports.append((name, attached))
        if attached:
            kernel.configure(attached, self.ports()[idx].mac)
        return idx

    def add_address(self, port, str address, bint mirror=True):
        """Give `port` an address with prefix, e.g. '10.99.0.1/24' or
        '2001:db8::1/64': a local route for it and a connected route for its
        network. The port's kernel interface gets it too, unless `mirror` is
        false (a FullNAT pool address, a fleet's gateway: the dataplane's
        alone)."""
        cdef pylb_dp *dp = self._live()
        cdef pylb_prefix pfx
        cdef int rc
        cdef uint16_t idx = self.port_index(port)
        if "/" not in address:
            raise InvalidArgument(f"'{address}' has no prefix length; write it like 10.99.0.1/24")
        try:
            iface = ipaddress.ip_interface(address)
        except ValueError:
            raise InvalidArgument(f"'{address}' is not an address with a prefix length, "
                                  "like 10.99.0.1/24 or 2001:db8::1/64") from None
        _set_ip(&pfx.addr, iface.ip)
        pfx.len = iface.network.prefixlen
        with nogil:
            rc = pylb_dp_addr_add(dp, idx, &pfx)
        _check(rc)
        if mirror and self._ports[idx][1]:
            kernel.add_address(self._ports[idx][1], address, iface.version)

    def del_address(self, port, address):
        """Take a host address (one add_address gave with mirror=False:
        /32 or /128) off `port`."""
        self._port_address(pylb_dp_addr_del, port, address)

    def announce_address(self, port, address):
        """Tell `port`'s link that `address` (one of its own) is here: a
        gratuitous ARP or an unsolicited neighbour advertisement."""
        self._port_address(pylb_dp_addr_announce, port, address)

    def probe_start(self, vip, int port, str proto, backend, str method):
        """Send a data-path health probe to vip:port by the method of
        `backend` (DR or tunnel): a TCP SYN, or a UDP datagram. Its id."""
        cdef pylb_dp *dp = self._live()
        cdef pylb_probe_conf c
        cdef int rc
        if method not in _L4_METHODS:
            raise InvalidArgument(f"probe: method '{method}' is not one of {', '.join(_L4_METHODS)}")
        if not 0 < port < 65536:
            raise InvalidArgument(f"probe: port {port} is not 1..65535")
        memset(&c, 0, sizeof(c))
        _set_ip(&c.vip, _parse_ip(vip, "VIP"))
        _set_ip(&c.backend, _parse_ip(backend, "backend"))
        c.port = port
        c.proto = _proto(proto)
        c.method = _L4_METHODS[method]
        with nogil:
            rc = pylb_dp_probe_start(dp, &c)
        _check(rc)
        return rc

    def probe_state(self, int id):
        """A probe's state: "pending", "answered" (a SYN-ACK, a datagram)
        or "refused" (a RST)."""
        cdef int rc = pylb_dp_probe_state(self._live(), id)
        _check(rc)
        return {PYLB_PROBE_PENDING: "pending", PYLB_PROBE_ANSWERED: "answered",
                PYLB_PROBE_REFUSED: "refused"}[rc]

    def probe_end(self, int id):
        """Forget a probe, answered or not."""
        _check(pylb_dp_probe_end(self._live(), id))

    cdef int _port_address(self, port_address_fn fn, port, address) except -1:
        cdef pylb_dp *dp = self._live()
        cdef pylb_ip ip
        cdef int rc
        cdef uint16_t idx = self.port_index(port)
        _set_ip(&ip, _parse_ip(address, "address"))
        with nogil:
            rc = fn(dp, idx, &ip)
        _check(rc)
        return 0

    # Routes

    cdef int _fill_nexthops(self, pylb_route *r, str what, via) except -1:
        if isinstance(via, (tuple, list)) and len(via) == 2 and not isinstance(via[0], (tuple, list)):
            via = [via]
        via = list(via)
        if not 1 <= len(via) <= PYLB_MAX_ECMP:
            raise InvalidArgument(f"route {what}: give 1 to {PYLB_MAX_ECMP} next hops")
        memset(r, 0, sizeof(pylb_route))
        r.n_nh = len(via)
        for i, hop in enumerate(via):
            try:
                gw, port = hop
            except (TypeError, ValueError):
                raise InvalidArgument(f"route {what}: next hop {hop!r} is not (gateway, port)") from None
            r.nh[i].port = self.port_index(port)
            if gw is not None:
                _set_ip(&r.nh[i].gw, _parse_ip(gw, "gateway"))
        return 0

    def add_route(self, prefix, via, inspect=None):
        """Route `prefix` through `via`: one (gateway, port) pair, or a list
        of them for ECMP. A gateway of None routes to the port directly.
        `inspect`: an inspection pool its traffic crosses first."""
        self._set_route(prefix, via, False, inspect)

    def replace_route(self, prefix, via, inspect=None):
        """Give the route at `prefix` new next hops (and inspection) in one
        step: every packet takes the old or the new ones, none is left
        without a route."""
        self._set_route(prefix, via, True, inspect)

    def _set_route(self, prefix, via, bint replace, inspect):
        cdef pylb_dp *dp = self._live()
        cdef pylb_route r
        cdef int rc
        net = _parse_prefix(prefix, "route")
        self._fill_nexthops(&r, str(prefix), via)
        _set_name(r.inspect, inspect, f"route {prefix}")
        _set_prefix(&r.dst, net)
        with nogil:
            rc = pylb_dp_route_replace(dp, &r) if replace else pylb_dp_route_add(dp, &r)
        _check(rc)

    def add_routes(self, prefixes, via):
        """Add many routes with the same next hops (a full table, a bulk
        load): returns how many were added. Stops at the first error, which
        names the prefix; the routes before it stay."""
        cdef pylb_dp *dp = self._live()
        cdef pylb_route r
        cdef int rc
        cdef long n = 0
        self._fill_nexthops(&r, "(bulk)", via)
        for p in prefixes:
            if not _fast_prefix(p, &r.dst):
                _set_prefix(&r.dst, _parse_prefix(p, "route"))
            rc = pylb_dp_route_add(dp, &r)
            if rc < 0:
                try:
                    _check(rc)
                except PylbError as e:
                    raise type(e)(f"route {p} (after {n} added): {e}") from None
            n += 1
        return n

    def del_route(self, prefix):
        cdef pylb_dp *dp = self._live()
        cdef pylb_prefix p
        cdef int rc
        _set_prefix(&p, _parse_prefix(prefix, "route"))
        with nogil:
            rc = pylb_dp_route_del(dp, &p)
        _check(rc)

    def route(self, prefix):
        """The route at exactly `prefix`."""
        cdef pylb_route r
        cdef pylb_prefix p
        _set_prefix(&p, _parse_prefix(prefix, "route"))
        _check(pylb_dp_route_get(self._live(), &p, &r))
        return _route(&r)

    def lookup(self, ip):
        """The route the workers use for `ip` (longest prefix match)."""
        cdef pylb_route r
        cdef pylb_ip a
        _set_ip(&a, _parse_ip(ip, "address"))
        _check(pylb_dp_route_lookup(self._live(), &a, &r))
        return _route(&r)

    def route_pick(self, to, uint32_t hash):
        """What the workers do to reach `to` for a flow hash (flow_hash, or a
        trace's route_hash): (the route, the index of the next hop their
        ECMP choice takes, or None)."""
        cdef pylb_route r
        cdef pylb_ip a
        cdef int32_t chosen
        _set_ip(&a, _parse_ip(to, "address"))
        _check(pylb_dp_route_pick(self._live(), &a, hash, &r, &chosen))
        return _route(&r), (None if chosen < 0 else chosen)

    def flow_hash(self, src, dst):
        """The flow hash of (source, destination), as the workers compute it
        (ECMP path and VIP slot choice): keyed by this dataplane's key."""
        cdef pylb_ip s, d
        a, b = _parse_ip(src, "source"), _parse_ip(dst, "destination")
        if a.version != b.version:
            raise InvalidArgument("source and destination must be the same family")
        _set_ip(&s, a)
        _set_ip(&d, b)
        return pylb_flow_hash(self._live(), &s, &d)

    def route_count(self, int family=4):
        return pylb_dp_route_count(self._live(), family)

    def routes(self, int family=4):
        """All routes of a family, in prefix order (a generator)."""
        cdef pylb_dp *dp = self._live()
        cdef pylb_route *buf = <pylb_route *>malloc(256 * sizeof(pylb_route))
        cdef pylb_prefix after
        cdef int n
        if buf == NULL:
            raise MemoryError()
        try:
            n = _check(pylb_dp_route_list(dp, family, NULL, buf, 256))
            while n > 0:
                for i in range(n):
                    yield _route(&buf[i])
                if n < 256:
                    break
                after = buf[n - 1].dst
                n = _check(pylb_dp_route_list(self._live(), family, &after, buf, 256))
        finally:
            free(buf)

    # Neighbours

    def add_neighbour(self, port, ip, mac):
        """A static neighbour: never ages, not overridden by what is learned."""
        cdef pylb_ip a
        cdef uint8_t m[6]
        cdef int rc
        cdef uint16_t idx = self.port_index(port)
        _set_ip(&a, _parse_ip(ip, "neighbour"))
        octets = _parse_mac(mac)
        for i in range(6):
            m[i] = octets[i]
        with nogil:
            rc = pylb_dp_neigh_add(self.dp, idx, &a, m)
        _check(rc)

    def del_neighbour(self, port, ip):
        cdef pylb_ip a
        cdef int rc
        cdef uint16_t idx = self.port_index(port)
        _set_ip(&a, _parse_ip(ip, "neighbour"))
        with nogil:
            rc = pylb_dp_neigh_del(self.dp, idx, &a)
        _check(rc)

    # L4 services

    def add_service(self, spec, id=None):
        """A virtual service, as `spec` (a pylb.model.ServiceSpec, which has
        checked itself) says: VIP:port/proto (port 0: all ports), method,
        scheduler, persistence, FullNAT's local addresses, down_reset,
        SYN proxy, PROXY protocol, limits, and its backends, all or nothing
        (backends it cannot take leave no service behind). `id`: the
        service's slot (the domain allocates them from 0 up; None: the
        highest free). Its health check is the domain's business."""
        cdef pylb_service_conf c
        cdef int rc
        memset(&c, 0, sizeof(c))
        if id is None:
            c.id = PYLB_SVC_ID_ANY
        elif not isinstance(id, int) or not 0 <= id < model.MAX_SERVICES:
            raise InvalidArgument(f"service id {id!r} is not in 0..{model.MAX_SERVICES - 1}")
        else:
            c.id = id
        vip, port, proto = spec.vip, spec.port, spec.proto
        _set_ip(&c.vip, _parse_ip(vip, "VIP"))
        c.proto = _proto(proto)
        c.port = _port(port)
        c.method = _named(_L4_METHODS, spec.method, "method")
        c.sched = _named(_SCHEDULERS, spec.scheduler, "scheduler")
        c.table_size = spec.table_size
        c.persistence = spec.persistence
        c.persistence_prefix = spec.persistence_prefix
        c.down_reset = spec.down_reset
        c.syn_proxy = _named(_SYN_PROXY, spec.syn_proxy, "syn_proxy")
        c.proxy_protocol = _named(_PROXY, spec.proxy_protocol, "proxy_protocol")
        _set_source(&c.tunnel_source, spec.tunnel_source, "tunnel source")
        if spec.quic is not None:
            q = spec.quic
            c.quic.sid_len, c.quic.nonce_len, c.quic.config_id = \
                q.server_id_length, q.nonce_length, q.config_id
            if q.key is not None:
                c.quic.encrypted = 1
                key = bytes.fromhex(q.key)
                memcpy(c.quic.key, <const char *>key, 16)
        c.max_connections, c.max_new_per_second, c.max_per_client = _limits(
            vip, port, spec.max_connections, spec.max_new_per_second, spec.max_per_client)
        lips = [_parse_ip(a, "local address") for a in spec.local_addresses]
        if len(lips) > PYLB_MAX_LIPS:
            raise InvalidArgument(f"at most {PYLB_MAX_LIPS} local addresses per service")
        c.n_lips = len(lips)
        for i, a in enumerate(lips):
            _set_ip(&c.lips[i], a)
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_service_add(dp, &c)
        _check(rc)
        if spec.backends:
            # All or nothing: backends it cannot take leave no service behind.
            try:
                self.set_service_backends(vip, port, spec.backends, proto=proto)
            except BaseException:
                self.del_service(vip, port, proto)
                raise

    def del_service(self, vip, int port, str proto=TCP):
        cdef pylb_ip a
        cdef int rc
        _set_ip(&a, _parse_ip(vip, "VIP"))
        cdef uint8_t pr = _proto(proto)
        cdef uint16_t po = _port(port)
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_service_del(dp, &a, pr, po)
        _check(rc)

    def set_service_limits(self, vip, int port, str proto=TCP, max_connections=0,
                           max_new_per_second=0, max_per_client=0):
        """The service's limits, changed in place: open connections stay (a
        per-client limit counts those opened while it is set)."""
        cdef pylb_ip a
        cdef uint32_t mc, mn, mp
        mc, mn, mp = _limits(vip, port, max_connections, max_new_per_second, max_per_client)
        _set_ip(&a, _parse_ip(vip, "VIP"))
        cdef uint8_t pr = _proto(proto)
        cdef uint16_t po = _port(port)
        cdef pylb_dp *dp = self._live()
        cdef int rc
        with nogil:
            rc = pylb_dp_service_limits_set(dp, &a, pr, po, mc, mn, mp)
        _check(rc)

    def set_service_backends(self, vip, int port, backends, str proto=TCP):
        """Replace the service's backends: [BackendSpec], [(ip, port[, weight[,
        state[, max_connections]]])], ['ip:port'] or [L4Backend]. Weight 0 or state
        drain: no new connections, open ones go on; down: no new
        connections, open ones finish or are reset (the service's
        down_reset); max_connections: open at once (0: no limit)."""
        cdef pylb_ip a
        cdef int rc
        cdef uint32_t n
        bl = _l4_backend_list(backends)
        if len(bl) > PYLB_MAX_BACKENDS:
            raise CapacityExhausted(f"{len(bl)} backends, at most {PYLB_MAX_BACKENDS}")
        _set_ip(&a, _parse_ip(vip, "VIP"))
        cdef uint8_t pr = _proto(proto)
        cdef uint16_t po = _port(port)
        cdef pylb_backend *arr = <pylb_backend *>malloc(max(len(bl), 1) * sizeof(pylb_backend))
        if arr == NULL:
            raise MemoryError()
        cdef pylb_dp *dp = self._live()
        try:
            _fill_backends(arr, bl)
            n = len(bl)
            with nogil:
                rc = pylb_dp_service_backends_set(dp, &a, pr, po, arr, n)
        finally:
            free(arr)
        _check(rc)

    def set_backend(self, vip, int port, backend, int backend_port, str proto=TCP,
                    weight=None, state=None):
        """Change one backend's weight and/or state (up, drain, down)."""
        svc = self.service(vip, port, proto)
        addr = str(_parse_ip(backend, "backend"))
        found = [b for b in svc.backends if b.ip == addr and b.port == backend_port]
        if not found:
            raise NotFound(f"service {vip}:{port}/{proto} has no backend {addr}:{backend_port}")
        new = dataclasses.replace(found[0], **{k: v for k, v in (("weight", weight),
                                                                  ("state", state))
                                                if v is not None})
        self.set_service_backends(vip, port, [new if b is found[0] else b for b in svc.backends],
                                  proto=proto)

    def service(self, vip, int port, str proto=TCP):
        """The service as the dataplane holds it: a ServiceSpec (its ACLs
        and health check are the domain's business: none)."""
        cdef pylb_ip a
        cdef pylb_service_conf c
        cdef uint32_t n = 0
        _set_ip(&a, _parse_ip(vip, "VIP"))
        cdef pylb_backend *b = <pylb_backend *>malloc(PYLB_MAX_BACKENDS * sizeof(pylb_backend))
        if b == NULL:
            raise MemoryError()
        try:
            _check(pylb_dp_service_get(self._live(), &a, _proto(proto), _port(port), &c, b,
                                       PYLB_MAX_BACKENDS, &n))
            return model.ServiceSpec(
                str(_get_ip(&c.vip)), c.port, _PROTO_NAMES[c.proto], _L4_METHOD_NAMES[c.method],
                _SCHEDULER_NAMES[c.sched], c.table_size, c.persistence, c.persistence_prefix,
                tuple(str(_get_ip(&c.lips[i])) for i in range(c.n_lips)), bool(c.down_reset),
                _SYN_PROXY_NAMES[c.syn_proxy], _PROXY_NAMES[c.proxy_protocol],
                _get_source(&c.tunnel_source), (), c.max_connections, c.max_new_per_second,
                c.max_per_client,
                tuple(model.BackendSpec(str(_get_ip(&b[i].addr)), b[i].port, b[i].weight,
                                        _BACKEND_STATE_NAMES[b[i].state], b[i].max_conns,
                                        bytes(b[i].sid[:b[i].sid_len]).hex())
                      for i in range(n)), None,
                None if c.quic.sid_len == 0 else model.QuicSpec(
                    c.quic.sid_len, c.quic.nonce_len, c.quic.config_id,
                    bytes(c.quic.key[:16]).hex() if c.quic.encrypted else None))
        finally:
            free(b)

    def service_fingerprint(self, vip, int port, str proto=TCP):
        """The service's lookup table's fingerprint (16 hex digits): the
        same on every appliance that sends each flow to the same backend."""
        cdef pylb_ip a
        cdef uint64_t f
        _set_ip(&a, _parse_ip(vip, "VIP"))
        _check(pylb_dp_service_fingerprint(self._live(), &a, _proto(proto), _port(port), &f))
        return f"{f:016x}"

    def services(self):
        cdef pylb_service_conf *buf = <pylb_service_conf *>malloc(4096 * sizeof(pylb_service_conf))
        if buf == NULL:
            raise MemoryError()
        try:
            n = pylb_dp_service_list(self._live(), buf, 4096)
            keys = [(_get_ip(&buf[i].vip), buf[i].port, _PROTO_NAMES[buf[i].proto])
                    for i in range(n)]
        finally:
            free(buf)
        # A stable order (by VIP, protocol, port), whatever the slots.
        keys.sort(key=lambda k: (k[0].version, k[0], k[2], k[1]))
        return [self.service(str(v), p, pr) for v, p, pr in keys]

    def connections(self, vip=None, backend=None, client=None):
        """Tracked connections on every lcore (a snapshot: workers do not
        stop), optionally only those of a VIP, a backend or a client."""
        cdef pylb_dp *dp = self._live()
        cdef uint32_t cap = <uint32_t>pylb_dp_conn_count(dp) + 1024
        cdef pylb_conn_info *buf = <pylb_conn_info *>malloc(cap * sizeof(pylb_conn_info))
        if buf == NULL:
            raise MemoryError()
        want = {k: str(_parse_ip(v, k)) for k, v in
                (("vip", vip), ("backend", backend), ("client", client)) if v is not None}
        out = []
        try:
            n = pylb_dp_conn_list(dp, buf, cap)
            for i in range(n):
                c = Connection(_PROTO_NAMES.get(buf[i].proto, str(buf[i].proto)),
                               str(_get_ip(&buf[i].client)), buf[i].cport,
                               str(_get_ip(&buf[i].vip)), buf[i].vport,
                               str(_get_ip(&buf[i].backend)), buf[i].bport,
                               pylb_tcp_state_name(buf[i].state).decode()
                               if buf[i].proto == 6 else "none",
                               buf[i].expires_ms, buf[i].packets, buf[i].lcore_slot,
                               None if buf[i].local.af == 0 else str(_get_ip(&buf[i].local)),
                               buf[i].lport)
                if all(getattr(c, k) == v for k, v in want.items()):
                    out.append(c)
        finally:
            free(buf)
        return out

    def conn_count(self):
        return pylb_dp_conn_count(self._live())

    def conn_capacity(self):
        """The entries the connection tables hold at most (every lcore's)."""
        return pylb_dp_conn_capacity(self._live())

    def export_connections(self):
        """Every tracked connection as records (bytes: RECORD_SIZE each), a
        snapshot read while the workers run: what a restart restores."""
        return self._records_out(pylb_dp_conn_export,
                                 <uint32_t>pylb_dp_conn_count(self._live()) + 1024)

    def install_connections(self, const unsigned char[:] records):
        """Install exported records (before start); returns how many were
        installed (the others' service or backend is gone, or their tuple
        is taken)."""
        return self._records_in(pylb_dp_conn_install, records)

    def sync_collect(self, uint32_t most=65536):
        """Connection sync: the connections opened or moved to another
        state since the last call (records; one caller only)."""
        return self._records_out(pylb_dp_sync_collect, most)

    def sync_apply(self, const unsigned char[:] records):
        """A peer's records, for the owning workers to install or update;
        returns how many were queued (installed, before start)."""
        return self._records_in(pylb_dp_sync_apply, records)

    def sync_lost(self):
        """Sync notes lost to a full ring (their connections go unsent)."""
        return pylb_dp_sync_lost(self._live())

    cdef bytes _records_out(self, records_out_fn fn, uint32_t most):
        cdef pylb_dp *dp = self._live()
        cdef pylb_conn_record *buf = <pylb_conn_record *>malloc(most * sizeof(pylb_conn_record))
        if buf == NULL:
            raise MemoryError()
        try:
            n = fn(dp, buf, most)
            return (<char *>buf)[:n * sizeof(pylb_conn_record)]
        finally:
            free(buf)

    cdef int _records_in(self, records_in_fn fn, const unsigned char[:] records) except -1:
        cdef size_t size = sizeof(pylb_conn_record)
        if records.shape[0] % size:
            raise InvalidArgument(f"{records.shape[0]} bytes are not whole connection records "
                                  f"({size} bytes each)")
        if records.shape[0] == 0:
            return 0
        rc = fn(self._live(), <const pylb_conn_record *>&records[0],
                <uint32_t>(records.shape[0] // size))
        _check(rc)
        return rc

    def set_acls(self, lists, service_lists):
        """Replace every ACL at once. `lists`: [(type, action, prefixes)],
        type `deny` or `allow`, action `drop`, `reset` or `unreachable`,
        prefixes an iterable of strings ('192.0.2.0/24', '2001:db8::/32');
        `service_lists`: {service id: [list indices]}. Built aside, then
        published: open connections are not touched; [] removes them all."""
        cdef pylb_dp *dp = self._live()
        cdef list lists_ = list(lists)
        cdef Py_ssize_t n_lists = len(lists_), n = 0, cap = 0, i
        cdef pylb_acl_conf conf[64]
        cdef pylb_acl_prefix *arr = NULL
        cdef uint64_t *svc = <uint64_t *>malloc(model.MAX_SERVICES * sizeof(uint64_t))
        cdef int rc
        if svc == NULL:
            raise MemoryError()
        try:
            if n_lists > PYLB_MAX_ACLS:
                raise CapacityExhausted(f"{n_lists} ACLs, at most {PYLB_MAX_ACLS}")
            memset(svc, 0, model.MAX_SERVICES * sizeof(uint64_t))
            for sid, idx in service_lists.items():
                if not 0 <= sid < model.MAX_SERVICES:
                    raise InvalidArgument(f"service id {sid} is not in 0..{model.MAX_SERVICES - 1}")
                for j in idx:
                    if not 0 <= j < n_lists:
                        raise InvalidArgument(f"service id {sid}: ACL {j} does not exist")
                    svc[sid] |= 1ULL << j
            prefixes = []
            for i, (kind, action, pfx) in enumerate(lists_):
                if kind not in model.ACL_TYPES or action not in model.ACL_ACTIONS:
                    raise InvalidArgument(f"ACL {i}: type {kind!r} must be one of "
                                          f"{', '.join(model.ACL_TYPES)} and action {action!r} "
                                          f"one of {', '.join(model.ACL_ACTIONS)}")
                conf[i].type = _ACL_TYPES[kind]
                conf[i].action = _ACL_ACTIONS[action]
                pfx = pfx if isinstance(pfx, (list, tuple)) else list(pfx)
                prefixes.append(pfx)
                cap += len(pfx)
            arr = <pylb_acl_prefix *>malloc(max(cap, 1) * sizeof(pylb_acl_prefix))
            if arr == NULL:
                raise MemoryError()
            for i, pfx in enumerate(prefixes):
                for text in pfx:
                    if not _fast_prefix(text, &arr[n].prefix):
                        _set_prefix(&arr[n].prefix, _parse_prefix(text, "ACL"))
                    arr[n].list = <uint8_t>i
                    n += 1
            with nogil:
                rc = pylb_dp_acls_set(dp, conf, <uint32_t>n_lists, arr, <uint32_t>n, svc)
            _check(rc)
        finally:
            free(arr)
            free(svc)

    def acl_check(self, src, int service_id):
        """The index of the ACL that would refuse a new connection from `src`
        to service `service_id`, or None."""
        cdef pylb_ip a
        _set_ip(&a, _parse_ip(src, "source"))
        rc = pylb_dp_acl_check(self._live(), &a, service_id)
        _check(rc)
        return None if rc == 0 else rc - 1

    def half_open(self, source=None):
        """Half-open entries, all workers: TCP before its handshake completes,
        NAT and FullNAT UDP before its first reply (what the budget counts).
        `source`: those of its network (connections.per_source; with the
        networks that share its count), 0 if networks are not counted."""
        cdef pylb_ip a
        if source is None:
            return pylb_dp_half_open(self._live(), NULL)
        _set_ip(&a, _parse_ip(source, "source"))
        return pylb_dp_half_open(self._live(), &a)

    def timeouts(self):
        """The connection timeouts in force, in seconds: {tcp_syn,
        tcp_established, tcp_fin, tcp_close, udp}."""
        cdef pylb_timeouts t
        pylb_dp_timeouts_get(self._live(), &t)
        return dict(zip(_TIMEOUT_KEYS, (t.tcp_syn, t.tcp_established, t.tcp_fin, t.tcp_close,
                                        t.udp)))

    def set_timeouts(self, **seconds):
        """Change some timeouts while running (like ipvsadm --set); the rest
        stay. Each connection takes its new timeout at its next packet."""
        cdef pylb_timeouts t
        unknown = set(seconds) - set(_TIMEOUT_KEYS)
        if unknown:
            raise InvalidArgument(f"unknown timeout {sorted(unknown)[0]!r}; expected one of: "
                                  f"{', '.join(_TIMEOUT_KEYS)}")
        cur = self.timeouts()
        cur.update(seconds)
        for k, v in cur.items():
            if not isinstance(v, int) or v < 1:
                raise InvalidArgument(f"timeout {k}: {v!r} is not a whole number of seconds >= 1")
        t.tcp_syn, t.tcp_established, t.tcp_fin, t.tcp_close, t.udp = \
            (cur[k] for k in _TIMEOUT_KEYS)
        _check(pylb_dp_timeouts_set(self._live(), &t))
        return self.timeouts()

    def clock_advance(self, int ms):
        """Move the dataplane's clock forward (tests of timeouts)."""
        if ms < 0:
            raise InvalidArgument("the clock only moves forward")
        pylb_dp_clock_advance(self._live(), ms)

    # L3 VIPs

    def add_vip(self, prefix, str method=model.IPIP, int table_size=PYLB_MAGLEV_DEFAULT,
                source=None, backends=(), inspect=None):
        """An L3 VIP: `prefix` balanced over backends by a consistent hash of
        (source, destination). `method`: ipip, gre, dr (direct routing) or gue."""
        cdef pylb_vip_conf c
        cdef int rc
        net = _parse_prefix(prefix, "VIP")
        if method not in _METHODS:
            raise InvalidArgument(f"VIP {prefix}: method '{method}' is not one of {', '.join(_METHODS)}")
        memset(&c, 0, sizeof(c))
        _set_prefix(&c.prefix, net)
        c.method = _METHODS[method]
        c.table_size = table_size
        _set_source(&c.source, source, "VIP source")
        _set_name(c.inspect, inspect, f"VIP {prefix}")
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_vip_add(dp, &c)
        _check(rc)
        if backends:
            self.set_backends(prefix, backends)

    def del_vip(self, prefix):
        cdef pylb_prefix p
        cdef int rc
        _set_prefix(&p, _parse_prefix(prefix, "VIP"))
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_vip_del(dp, &p)
        _check(rc)

    def vip(self, prefix):
        cdef pylb_vip_conf c
        cdef pylb_prefix p
        cdef uint32_t n = 0
        cdef pylb_backend *b = <pylb_backend *>malloc(PYLB_MAX_BACKENDS * sizeof(pylb_backend))
        if b == NULL:
            raise MemoryError()
        try:
            _set_prefix(&p, _parse_prefix(prefix, "VIP"))
            _check(pylb_dp_vip_get(self._live(), &p, &c, b, PYLB_MAX_BACKENDS, &n))
            return Vip(_get_prefix(&c.prefix), _METHOD_NAMES[c.method], c.table_size,
                       _get_source(&c.source),
                       tuple(Backend(str(_get_ip(&b[i].addr)), b[i].weight) for i in range(n)),
                       _get_name(c.inspect))
        finally:
            free(b)

    # Inspection pools

    cdef int _pool_conf(self, pylb_pool_conf *c, spec) except -1:
        memset(c, 0, sizeof(pylb_pool_conf))
        _set_name(c.name, spec.name, "pool")
        c.stickiness = _STICKINESS[spec.stickiness]
        c.failover = _FAILOVERS[spec.failover]
        c.table_size = spec.table_size
        c.idle_timeout = spec.idle_timeout
        return 0

    def add_pool(self, spec):
        """An inspection pool (a model.PoolSpec), with its appliances."""
        cdef pylb_pool_conf c
        cdef int rc
        self._pool_conf(&c, spec)
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_pool_add(dp, &c)
        _check(rc)
        if spec.appliances:
            try:
                self.set_pool(spec)
            except PylbError:
                pylb_dp_pool_del(dp, c.name)
                raise

    def set_pool(self, spec):
        """The pool's settings and appliances (spec.appliances: backends
        without a port), replaced in one step."""
        cdef pylb_pool_conf c
        cdef int rc
        cdef uint32_t n = len(spec.appliances)
        self._pool_conf(&c, spec)
        bl = [(ipaddress.ip_address(a.ip), 0, a.weight, _BACKEND_STATES[a.state])
              for a in spec.appliances]
        cdef pylb_backend *arr = <pylb_backend *>malloc(max(n, 1) * sizeof(pylb_backend))
        if arr == NULL:
            raise MemoryError()
        cdef pylb_dp *dp = self._live()
        try:
            _fill_backends(arr, bl)
            with nogil:
                rc = pylb_dp_pool_set(dp, &c, arr, n)
        finally:
            free(arr)
        _check(rc)

    def del_pool(self, name):
        cdef char c[PYLB_NAME_LEN]
        cdef int rc
        _set_name(c, name, "pool")
        cdef pylb_dp *dp = self._live()
        with nogil:
            rc = pylb_dp_pool_del(dp, c)
        _check(rc)

    def pool(self, name):
        """{name, stickiness, failover, table_size, idle_timeout, appliances:
        [(ip, weight, state)], flows}."""
        cdef char cname[PYLB_NAME_LEN]
        cdef pylb_pool_conf c
        cdef pylb_pool_stats st
        cdef pylb_backend b[PYLB_MAX_APPLIANCES]
        cdef uint32_t n = 0
        _set_name(cname, name, "pool")
        _check(pylb_dp_pool_get(self._live(), cname, &c, b, PYLB_MAX_APPLIANCES, &n, &st))
        return {"name": _get_name(c.name), "stickiness": _STICKINESS_NAMES[c.stickiness],
                "failover": _FAILOVER_NAMES[c.failover], "table_size": c.table_size,
                "idle_timeout": c.idle_timeout, "flows": st.flows,
                "appliances": [(str(_get_ip(&b[i].addr)), b[i].weight,
                                _BACKEND_STATE_NAMES[b[i].state]) for i in range(n)]}

    def pool_pick(self, name, str proto, src, int sport, dst, int dport):
        """Read only: (appliance address or None, what, hash) the workers do
        with a packet of this flow; what: remembered, stayed (its appliance
        down or gone, failover stay), moved (to another: its own down or
        gone), new (not remembered: the table's) or none (no appliance up);
        hash: the flow hash their ECMP choice towards it takes (route_pick)."""
        cdef char cname[PYLB_NAME_LEN]
        cdef pylb_ip s, d, out
        cdef uint32_t h = 0
        _set_name(cname, name, "pool")
        _set_ip(&s, _parse_ip(src, "source"))
        _set_ip(&d, _parse_ip(dst, "destination"))
        rc = pylb_dp_pool_pick(self._live(), cname, _proto(proto), &s, _port(sport),
                               &d, _port(dport), &out, &h)
        _check(rc)
        what = ("remembered", "stayed", "moved", "new", "none")[rc]
        return (None if what == "none" else str(_get_ip(&out))), what, h

    def vip_fingerprint(self, prefix):
        """The L3 VIP's lookup table's fingerprint (like service_fingerprint)."""
        cdef pylb_prefix p
        cdef uint64_t f
        _set_prefix(&p, _parse_prefix(prefix, "VIP"))
        _check(pylb_dp_vip_fingerprint(self._live(), &p, &f))
        return f"{f:016x}"

    def vips(self):
        cdef pylb_prefix buf[256]
        cdef int n = pylb_dp_vip_list(self._live(), buf, 256)
        out = [_get_prefix(&buf[i]) for i in range(n)]
        return [self.vip(p) for p in out]

    def set_backends(self, prefix, backends):
        """Replace the VIP's backends: [(ip, weight)] or [ip]. The lookup
        table is rebuilt off to the side and swapped in."""
        cdef pylb_prefix p
        cdef int rc
        cdef pylb_dp *dp
        cdef uint32_t n
        bl = _backend_list(backends)
        if len(bl) > PYLB_MAX_BACKENDS:
            raise CapacityExhausted(f"{len(bl)} backends, at most {PYLB_MAX_BACKENDS}")
        cdef pylb_backend *arr = <pylb_backend *>malloc(max(len(bl), 1) * sizeof(pylb_backend))
        if arr == NULL:
            raise MemoryError()
        try:
            _fill_backends(arr, bl)
            _set_prefix(&p, _parse_prefix(prefix, "VIP"))
            dp = self._live()
            n = len(bl)
            with nogil:
                rc = pylb_dp_vip_backends_set(dp, &p, arr, n)
        finally:
            free(arr)
        _check(rc)

    def add_backend(self, prefix, ip, int weight=1):
        current = list(self.vip(prefix).backends)
        addr = str(_parse_ip(ip, "backend"))
        if any(b.ip == addr for b in current):
            raise AlreadyExists(f"VIP {prefix}: backend {addr} already exists")
        self.set_backends(prefix, current + [Backend(addr, weight)])

    def del_backend(self, prefix, ip):
        current = list(self.vip(prefix).backends)
        addr = str(_parse_ip(ip, "backend"))
        kept = [b for b in current if b.ip != addr]
        if len(kept) == len(current):
            raise NotFound(f"VIP {prefix}: no backend {addr}")
        self.set_backends(prefix, kept)

    def service_stats(self, vip, int port, str proto=TCP):
        """A service's traffic, like ipvsadm --stats: conns, in/out packets
        and bytes (out: replies through the appliance), and its tracked
        connections now (active: established or UDP; inactive: other TCP
        states; from counters the workers keep), with "backends": the same
        per backend, in the service's backend order."""
        cdef pylb_ip a
        cdef pylb_svc_stats st
        cdef int n
        cdef pylb_svc_stats *b = <pylb_svc_stats *>malloc(PYLB_MAX_BACKENDS * sizeof(pylb_svc_stats))
        if b == NULL:
            raise MemoryError()
        try:
            _set_ip(&a, _parse_ip(vip, "VIP"))
            n = _check(pylb_dp_service_stats(self._live(), &a, _proto(proto), _port(port), &st,
                                             b, PYLB_MAX_BACKENDS))
            out = _stats_dict(&st)
            out["backends"] = [_stats_dict(&b[i]) for i in range(n)]
            return out
        finally:
            free(b)

    def l4_trace(self, src, dst, str proto=TCP, int sport=0, int dport=0, int tcp_flags=0x02,
                 seq=0, ack=0, bytes payload=b""):
        """What the L4 fast path would do with a packet now (read only; the
        same decision, on the tables of the lcore that would take it): a
        dict with verdict (L4_VERDICTS), reason (a drop's), service (vip,
        port, proto, method, scheduler), backend (ip, port), state, lcore,
        why and route_hash (the flow hash the output to the backend is
        chosen by: give it to route_pick). seq and ack: a TCP segment's
        numbers (whether an ACK answers a SYN cookie). payload: UDP's (a QUIC
        packet's start: its connection ID routes it)."""
        cdef pylb_l4_trace_query q
        cdef pylb_l4_trace t
        memset(&q, 0, sizeof(q))
        if len(payload) > 65507:
            raise InvalidArgument("a UDP payload is 65,507 bytes at most")
        q.payload = <const uint8_t *>payload if payload else NULL
        q.plen = len(payload)
        _set_ip(&q.src, _parse_ip(src, "source"))
        _set_ip(&q.dst, _parse_ip(dst, "destination"))
        q.proto = _proto(proto)
        q.sport = _port(sport, "source port")
        q.dport = _port(dport, "destination port")
        q.tcp_flags = tcp_flags
        q.seq = seq & 0xffffffff
        q.ack = ack & 0xffffffff
        _check(pylb_dp_l4_trace(self._live(), &q, &t))
        verdict = L4_VERDICTS[t.verdict]
        has_service = t.service.vip.af != 0
        has_backend = verdict not in ("drop", "cookie")
        return {"verdict": verdict, "why": t.why.decode(),
                "reason": COUNTER_NAMES[t.reason] if verdict == "drop" else "",
                "service": (str(_get_ip(&t.service.vip)), t.service.port,
                            _PROTO_NAMES[t.service.proto], _L4_METHOD_NAMES[t.service.method],
                            _SCHEDULER_NAMES[t.service.sched]) if has_service else None,
                "backend": (str(_get_ip(&t.backend.addr)), t.backend.port)
                if has_backend else None,
                "state": pylb_tcp_state_name(t.state).decode()
                if verdict in ("connection", "held") else "",
                "lcore": t.lcore_slot, "route_hash": t.route_hash}

    def vip_pick(self, prefix, src, dst):
        """The backend the workers choose for a packet from `src` to `dst`."""
        cdef pylb_prefix p
        cdef pylb_ip s, d
        _set_prefix(&p, _parse_prefix(prefix, "VIP"))
        _set_ip(&s, _parse_ip(src, "source"))
        _set_ip(&d, _parse_ip(dst, "destination"))
        i = pylb_dp_vip_pick(self._live(), &p, &s, &d)
        return None if i < 0 else self.vip(prefix).backends[i].ip

    def start(self):
        cdef pylb_dp *dp = self._live()
        cdef int rc
        with nogil:
            rc = pylb_dp_start(dp)
        _check(rc)

    def stop(self):
        cdef int rc = 0
        if self.dp != NULL:
            with nogil:
                rc = pylb_dp_stop(self.dp)
        _check(rc)

    def close(self):
        """Stop workers, stop and close ports, free memory.

        Freeing waits until no counter view is left, so a view never dangles."""
        self.stop()
        self._closing = True
        if self._exports == 0 and self.dp != NULL:
            with nogil:
                pylb_dp_destroy(self.dp)
            self.dp = NULL

    def housekeep(self):
        """Control-side work: neighbour learning and resolution, held packets,
        aging. Call from one thread only, every few milliseconds."""
        cdef pylb_dp *dp = self._live()
        cdef int n
        with nogil:
            n = pylb_dp_housekeep(dp)
        return n

    def ports(self):
        cdef pylb_dp *dp = self._live()
        cdef pylb_port_info info
        out = []
        for p in range(pylb_dp_port_count(dp)):
            _check(pylb_dp_port_info(dp, p, &info))
            addrs = tuple(_get_prefix(&info.addrs[i]) for i in range(info.n_addrs))
            out.append(PortInfo(p, info.name.decode(), info.device.decode(), info.ethdev,
                                _fmt_mac(info.mac), bool(info.link_up),
                                info.link_speed_mbps, addrs, info.kernel_iface.decode(),
                                {"rx_packets": info.nic_rx_packets, "tx_packets": info.nic_tx_packets,
                                 "rx_bytes": info.nic_rx_bytes, "tx_bytes": info.nic_tx_bytes,
                                 "rx_missed": info.nic_rx_missed, "rx_errors": info.nic_rx_errors,
                                 "tx_errors": info.nic_tx_errors,
                                 "rx_nombuf": info.nic_rx_nombuf}, info.mtu))
        return out

    def neighbours(self):
        cdef pylb_dp *dp = self._live()
        cdef uint32_t cap = 1024
        cdef int n
        cdef pylb_neigh_info *buf
        while True:
            buf = <pylb_neigh_info *>malloc(cap * sizeof(pylb_neigh_info))
            if buf == NULL:
                raise MemoryError()
            try:
                n = pylb_dp_neigh_list(dp, buf, cap)
                if <uint32_t>n < cap:
                    return sorted((Neighbour(str(_get_ip(&buf[i].addr)), buf[i].port,
                                             _fmt_mac(buf[i].mac), buf[i].age_ms,
                                             _NEIGH_STATES[buf[i].state & 3], buf[i].held)
                                   for i in range(n)),
                                  key=lambda nb: (nb.port, ipaddress.ip_address(nb.ip).version,
                                                  ipaddress.ip_address(nb.ip)))
            finally:
                free(buf)
            cap *= 2

    def mbufs_available(self):
        return pylb_dp_mbufs_available(self._live())

    def mempools(self):
        """[{name, socket, size, available, in_use}]: each packet buffer pool."""
        cdef pylb_mempool_info buf[8]
        n = pylb_dp_mempools(self._live(), buf, 8)
        return [{"name": buf[i].name.decode(), "socket": buf[i].socket, "size": buf[i].size,
                 "available": buf[i].available, "in_use": buf[i].size - buf[i].available}
                for i in range(n)]

    @property
    def counters(self):
        """Per-slot counters, no copy: rows are workers then the control slot,
        columns follow COUNTER_NAMES."""
        self._live()
        return np.asarray(self)

    def totals(self):
        """Counters summed over lcores, drops excluded: {name: value}."""
        sums = np.asarray(self).sum(axis=0)
        return {n: int(v) for n, v in zip(COUNTER_NAMES[:DROP_FIRST], sums[:DROP_FIRST])}

    def lcore_counters(self):
        """Each slot's counters (workers, then the control slot): [{name: value}]."""
        return [dict(zip(COUNTER_NAMES, map(int, row))) for row in np.asarray(self).copy()]

    def drops(self):
        """Drops summed over lcores: {reason: value}."""
        sums = np.asarray(self).sum(axis=0)
        return {n: int(v) for n, v in zip(DROP_REASONS, sums[DROP_FIRST:])}

    def __getbuffer__(self, Py_buffer *view, int flags):
        cdef uint32_t n_slots
        cdef const uint64_t *base = pylb_dp_counters(self._live(), &n_slots)
        cdef Py_ssize_t *dims = <Py_ssize_t *>malloc(4 * sizeof(Py_ssize_t))
        if dims == NULL:
            raise MemoryError()
        dims[0] = n_slots
        dims[1] = PYLB_CNT_MAX
        dims[2] = PYLB_CNT_STRIDE * sizeof(uint64_t)
        dims[3] = sizeof(uint64_t)
        view.buf = <void *>base
        view.obj = self
        view.len = n_slots * PYLB_CNT_MAX * sizeof(uint64_t)
        view.readonly = 1
        view.itemsize = sizeof(uint64_t)
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"Q"
        view.ndim = 2
        view.shape = dims
        view.strides = dims + 2
        view.suboffsets = NULL
        view.internal = dims
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        free(view.internal)
        self._exports -= 1
        if self._exports == 0 and self._closing and self.dp != NULL:
            pylb_dp_destroy(self.dp)
            self.dp = NULL

    def inject(self, port, frames, bint kernel=False, rx_ip_cksum=None):
        """Run `frames` (bytes) through the real processing function as if
        received on `port` (from its kernel interface if `kernel`; with
        rx_ip_cksum "good" or "bad", their IPv4 headers marked so, as by a
        NIC's RX checksum offload); returns [(port, bytes)] of what it
        sends towards the wire."""
        cdef pylb_dp *dp = self._live()
        cdef rte_mbuf *pkts[32]
        cdef uint16_t n, k
        cdef bytes b
        cdef int rc
        cdef uint16_t idx = self.port_index(port)
        if rx_ip_cksum not in (None, "good", "bad"):
            raise InvalidArgument(f"rx_ip_cksum {rx_ip_cksum!r}: give None, 'good' or 'bad'")
        frames = list(frames)
        result = []
        for start in range(0, len(frames), MAX_BURST):
            chunk = frames[start:start + MAX_BURST]
            n = 0
            try:
                for f in chunk:
                    b = bytes(f)
                    pkts[n] = pylb_dp_mbuf_from_bytes(dp, PyBytes_AS_STRING(b), len(b))
                    if pkts[n] == NULL:
                        raise CapacityExhausted("no mbuf for an injected frame (empty, too long or pool exhausted)")
                    if rx_ip_cksum is not None:
                        pylb_mbuf_rx_ip_cksum(pkts[n], rx_ip_cksum == "good")
                    n += 1
            except BaseException:
                for k in range(n):
                    pylb_mbuf_free(pkts[k])
                raise
            rc = pylb_dp_inject(dp, idx, kernel, pkts, n)
            if rc < 0:
                for k in range(n):
                    pylb_mbuf_free(pkts[k])
                _check(rc)
            result += self.collect()
        return result

    def collect(self, bint kernel=False):
        """Frames waiting in the control slot (after inject or housekeep):
        [(port, bytes)] towards the wire, or up to the kernel if `kernel`."""
        cdef pylb_dp *dp = self._live()
        cdef rte_mbuf *out[64]
        cdef uint16_t got, k
        cdef uint32_t ln
        cdef bytes b
        result = []
        for p in range(pylb_dp_port_count(dp)):
            while True:
                got = pylb_dp_collect(dp, p, kernel, out, 64)
                for k in range(got):
                    ln = pylb_mbuf_len(out[k])
                    b = PyBytes_FromStringAndSize(NULL, ln)
                    pylb_mbuf_copy_out(out[k], PyBytes_AS_STRING(b), ln)
                    pylb_mbuf_free(out[k])
                    result.append((p, b))
                if got < 64:
                    break
        return result
