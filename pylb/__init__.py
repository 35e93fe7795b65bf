"""pylb: an L3/L4 load-balancer appliance on a DPDK dataplane."""

import os

# numpy (imported by the binding) would start an OpenBLAS thread per core,
# which spin on the workers' cores and steal their cycles (seen in perf as
# blas_thread_server); pylb does no linear algebra.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
