# cython: language_level=3
"""The dataplane's limits, read from its C headers (no DPDK needed): the
domain model (pylb.model) takes them from here, so they are written once."""

cdef extern from "pylb_dp.h":
    enum:
        PYLB_MAX_BACKENDS
        PYLB_MAGLEV_DEFAULT
        PYLB_MAGLEV_MAX
        PYLB_MAX_LIPS
        PYLB_MAX_ECMP
        PYLB_MAX_ACLS
        PYLB_MAX_POOLS
        PYLB_MAX_APPLIANCES
        PYLB_NAME_LEN
        PYLB_QUIC_SID_MAX

cdef extern from "tunables.h":
    enum:
        PYLB_BURST
        PYLB_MAX_SERVICES
        PYLB_CONN_DEFAULT
        PYLB_CONN_MIN
        PYLB_CT_MAX

MAX_BACKENDS = PYLB_MAX_BACKENDS
MAGLEV_DEFAULT = PYLB_MAGLEV_DEFAULT
MAGLEV_MAX = PYLB_MAGLEV_MAX
MAX_LIPS = PYLB_MAX_LIPS
MAX_ECMP = PYLB_MAX_ECMP
MAX_ACLS = PYLB_MAX_ACLS
MAX_POOLS = PYLB_MAX_POOLS
MAX_APPLIANCES = PYLB_MAX_APPLIANCES
NAME_LEN = PYLB_NAME_LEN
QUIC_SID_MAX = PYLB_QUIC_SID_MAX
BURST = PYLB_BURST
MAX_SERVICES = PYLB_MAX_SERVICES
CONN_DEFAULT = PYLB_CONN_DEFAULT
CONN_MIN = PYLB_CONN_MIN
CONN_MAX = PYLB_CT_MAX
