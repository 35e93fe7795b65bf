"""What the binding (pylb._native) returns: plain named tuples, defined in
Python so that the domain's fake dataplane (tests/fake_dataplane.py) returns
the very same types without loading DPDK."""

from __future__ import annotations

from typing import NamedTuple

from pylb import model


class PortInfo(NamedTuple):
    index: int
    name: str
    device: str
    ethdev: int
    mac: str
    link_up: bool
    link_speed_mbps: int
    addresses: tuple
    kernel_iface: str = ""
    nic: dict = {}          # the NIC's counters: rx_packets, tx_packets, rx_bytes, ...
    mtu: int = 1500         # IP MTU


class Neighbour(NamedTuple):
    ip: str
    port: int
    mac: str
    age_ms: int
    state: str = "reachable"
    held: int = 0


class NextHop(NamedTuple):
    gateway: str | None     # None: directly connected
    port: int


class Route(NamedTuple):
    prefix: str
    kind: str               # gateway, connected, local, vip or service
    nexthops: tuple


class Backend(NamedTuple):
    ip: str
    weight: int = 1


class L4Backend(NamedTuple):
    ip: str
    port: int               # 0: the client's destination port
    weight: int = 1
    state: str = model.UP   # up, drain (no new connections) or down
    max_connections: int = 0    # open at once, then no new ones; 0: no limit


class Service(NamedTuple):
    vip: str
    port: int               # 0: all ports
    proto: str
    method: str
    scheduler: str
    table_size: int
    backends: tuple
    persistence: int = 0
    persistence_prefix: int = 0
    local_addresses: tuple = ()
    down_reset: bool = False    # a down backend's connections are reset
    syn_proxy: str = "auto"     # SYN cookies: auto, always or off
    proxy_protocol: str = "off"  # FullNAT: off, v1 or v2
    max_connections: int = 0
    max_new_per_second: int = 0
    max_per_client: int = 0


class Connection(NamedTuple):
    proto: str
    client: str
    cport: int
    vip: str
    vport: int
    backend: str
    bport: int
    state: str
    expires_ms: int
    packets: int
    lcore_slot: int
    local: str | None = None    # FullNAT: the source towards the backend
    lport: int = 0


class Vip(NamedTuple):
    prefix: str
    method: str
    table_size: int
    source: str | None
    backends: tuple
