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
    inspect: str = ""       # the inspection pool its traffic crosses first


class Backend(NamedTuple):
    ip: str
    weight: int = 1


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
    inspect: str = ""
