"""pylb: an L3/L4 load-balancer appliance on a DPDK dataplane."""

__version__ = "0.1.0"
