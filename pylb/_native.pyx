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

import ipaddress
from typing import NamedTuple

import numpy as np

from pylb.errors import (AlreadyExists, CapacityExhausted, DataplaneError,
                         InvalidArgument, NotFound, PortError)

_ERRORS = {
    PYLB_E_INVAL: InvalidArgument,
    PYLB_E_NOMEM: CapacityExhausted,
    PYLB_E_EXIST: AlreadyExists,
    PYLB_E_NOENT: NotFound,
    PYLB_E_FULL: CapacityExhausted,
    PYLB_E_EAL: DataplaneError,
    PYLB_E_PORT: PortError,
    PYLB_E_STATE: DataplaneError,
}

COUNTER_NAMES = tuple(pylb_counter_name(i).decode() for i in range(PYLB_CNT_MAX))
DROP_FIRST = PYLB_DROP_FIRST
DROP_REASONS = COUNTER_NAMES[DROP_FIRST:]
MAX_BURST = 32


cdef int _check(int rc) except -1:
    if rc >= 0:
        return rc
    exc = _ERRORS.get(-rc, DataplaneError)
    detail = pylb_last_error().decode(errors="replace")
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


class PortInfo(NamedTuple):
    index: int
    name: str
    device: str
    ethdev: int
    mac: str
    link_up: bool
    link_speed_mbps: int
    addresses: tuple


class Neighbour(NamedTuple):
    ip: str
    port: int
    mac: str
    age_ms: int


cdef str _fmt_mac(const uint8_t *m):
    return ":".join(f"{m[i]:02x}" for i in range(6))


cdef uint32_t _ip_be(addr) except? 0:
    # ipaddress.packed is network order; keep it as-is in memory.
    cdef bytes packed = addr.packed
    cdef uint32_t v
    memcpy(&v, PyBytes_AS_STRING(packed), 4)
    return v


cdef str _ip_str(uint32_t be):
    return str(ipaddress.IPv4Address(PyBytes_FromStringAndSize(<char *>&be, 4)))


cdef void _copy_str(char *dst, str s, size_t cap, str what) except *:
    cdef bytes b = s.encode()
    if len(b) >= cap:
        raise InvalidArgument(f"{what} '{s}' is longer than {cap - 1} bytes")
    memset(dst, 0, cap)
    memcpy(dst, PyBytes_AS_STRING(b), len(b))


cdef class Dataplane:
    """A dataplane: ports, addresses, worker lcores, counters.

    With `workers` empty it has no worker and only detached ports, and packets
    are run through the real processing function with `inject`.
    """
    cdef pylb_dp *dp
    cdef int _exports
    cdef bint _closing
    cdef uint32_t _n_slots

    def __cinit__(self, *, workers=(), int mbufs=8191, int mbuf_cache=256,
                  int neigh_capacity=4096):
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
        conf.neigh_capacity = neigh_capacity
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

    def add_port(self, str name, str device="", mac=None, int rx_desc=0,
                 int tx_desc=0, int link_wait_ms=5000):
        """Add a port; returns its index. `device` empty: detached (needs `mac`)."""
        cdef pylb_port_conf conf
        cdef uint16_t idx
        cdef int rc
        cdef pylb_dp *dp = self._live()
        memset(&conf, 0, sizeof(conf))
        _copy_str(conf.name, name, PYLB_NAME_LEN, "port name")
        _copy_str(conf.device, device, PYLB_DEVARGS_LEN, "device")
        if mac is not None:
            parts = str(mac).split(":")
            try:
                octets = [int(p, 16) for p in parts]
            except ValueError:
                octets = []
            if len(parts) != 6 or len(octets) != 6 or not all(0 <= o < 256 for o in octets):
                raise InvalidArgument(f"port {name}: MAC '{mac}' is not six hex octets like 02:00:00:00:00:01")
            for i in range(6):
                conf.mac[i] = octets[i]
        conf.rx_desc = rx_desc
        conf.tx_desc = tx_desc
        conf.link_wait_ms = link_wait_ms
        with nogil:
            rc = pylb_dp_port_add(dp, &conf, &idx)
        _check(rc)
        return idx

    def add_address(self, int port, str address):
        """Give `port` an IPv4 address with prefix, e.g. '10.99.0.1/24'."""
        cdef pylb_dp *dp = self._live()
        cdef int rc
        try:
            iface = ipaddress.IPv4Interface(address)
        except ValueError:
            raise InvalidArgument(f"'{address}' is not an IPv4 address with a prefix length, like 10.99.0.1/24")
        if "/" not in address:
            raise InvalidArgument(f"'{address}' has no prefix length; write it like 10.99.0.1/24")
        cdef uint32_t ip = _ip_be(iface.ip)
        cdef uint8_t plen = iface.network.prefixlen
        if port < 0 or port >= pylb_dp_port_count(dp):
            raise NotFound(f"no port {port}")
        with nogil:
            rc = pylb_dp_addr_add(dp, port, ip, plen)
        _check(rc)

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
        """Control-side work (neighbour learning). Call from one thread only."""
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
            addrs = tuple(f"{_ip_str(info.addrs[i])}/{info.prefix_lens[i]}"
                          for i in range(info.n_addrs))
            out.append(PortInfo(p, info.name.decode(), info.device.decode(), info.ethdev,
                                _fmt_mac(info.mac), bool(info.link_up),
                                info.link_speed_mbps, addrs))
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
                    return sorted((Neighbour(_ip_str(buf[i].ip), buf[i].port, _fmt_mac(buf[i].mac),
                                             buf[i].age_ms) for i in range(n)),
                                  key=lambda nb: (nb.port, ipaddress.IPv4Address(nb.ip)))
            finally:
                free(buf)
            cap *= 2

    def mbufs_available(self):
        return pylb_dp_mbufs_available(self._live())

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

    def inject(self, int port, frames):
        """Run `frames` (bytes) through the real processing function as if
        received on `port`; returns [(port, bytes)] of what it sends."""
        cdef pylb_dp *dp = self._live()
        cdef rte_mbuf *pkts[32]
        cdef rte_mbuf *out[64]
        cdef uint16_t n, k, got
        cdef uint32_t ln
        cdef bytes b
        cdef int rc
        frames = list(frames)
        n_ports = pylb_dp_port_count(dp)
        if port < 0 or port >= n_ports:
            raise NotFound(f"no port {port}")
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
                    n += 1
            except BaseException:
                for k in range(n):
                    pylb_mbuf_free(pkts[k])
                raise
            rc = pylb_dp_inject(dp, port, pkts, n)
            if rc < 0:
                for k in range(n):
                    pylb_mbuf_free(pkts[k])
                _check(rc)
            for p in range(n_ports):
                got = pylb_dp_collect(dp, p, out, 64)
                for k in range(got):
                    ln = pylb_mbuf_len(out[k])
                    b = PyBytes_FromStringAndSize(NULL, ln)
                    pylb_mbuf_copy_out(out[k], PyBytes_AS_STRING(b), ln)
                    pylb_mbuf_free(out[k])
                    result.append((p, b))
        return result
