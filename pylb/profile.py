"""Hardware profiles: which lcores, memory and ports an appliance runs on.

A profile is YAML (see hwconfig/). `load_profile` validates it completely and
raises ProfileError naming the file, line, key and what is expected.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pylb import config, files, model, yamlsrc
from pylb.errors import ProfileError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
PORT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,23}$")    # p0, p0.100 (a VLAN)
PCI_RE = re.compile(r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
VDEV_RE = re.compile(r"^net_[a-z]+[0-9]*(,[A-Za-z0-9_]+=[^,\s]*)*$")

TOP_KEYS = {"name", "lcores", "memory", "mbufs", "mbuf_cache", "mbuf_size", "ports", "log_level", "eal_args",
            "max_routes", "connections", "fleet", "bgp"}
FLEET_KEYS = {"secret_file", "sync", "gateways"}
GATEWAY_KEYS = {"port", "address"}
SYNC_KEYS = {"port", "peers", "udp_port", "interval_ms"}
BGP_KEYS = {"local_as", "router_id", "peers", "bfd_interval_ms", "bfd_multiplier",
            "withdraw_wait_ms"}
BGP_PEER_KEYS = {"address", "as", "port", "bfd", "hold_time"}
SECRET_MIN = 16                         # bytes
SECRET_BITS = 100                       # its estimated entropy (32 random bytes: 150-250)
CONN_KEYS = {"capacity", "timeouts", "tcp_reset", "half_open_budget", "per_source", "mid_flow",
             "snapshot_interval_ms"}
LCORE_KEYS = {"main", "workers", "cpu_map"}
MEMORY_KEYS = {"hugepages", "size_mb", "huge_dir"}
PORT_KEYS = {"name", "vdev", "pci", "addresses", "local_addresses", "rx_desc", "tx_desc",
             "link_wait_ms", "kernel_iface", "mtu", "parent", "vlan", "rp_filter"}
MBUF_HEADROOM = 128                     # RTE_PKTMBUF_HEADROOM
FRAME_OVERHEAD = 14 + 4                 # Ethernet and one 802.1Q tag
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
LOG_LEVELS = {"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}


def file_prefix(instance: str) -> str:
    """EAL file prefix of the appliance instance `instance`."""
    return f"pylb-{instance}"


@dataclass(frozen=True)
class PortProfile:
    name: str
    vdev: str | None
    pci: str | None
    addresses: tuple[str, ...]
    rx_desc: int = 1024
    tx_desc: int = 1024
    link_wait_ms: int = 5000
    kernel_iface: str = ""
    mtu: int = 0                        # IP MTU; 0: the device's (1500)
    # An 802.1Q sub-interface: VLAN `vlan` of port `parent` (no device).
    parent: str = ""
    vlan: int = 0
    # FullNAT sources of this appliance's own, on no network of a port:
    # routed to it (announced by BGP), used by FullNAT services that name
    # none, so a fleet shares one configuration.
    local_addresses: tuple[str, ...] = ()
    rp_filter: str = model.RP_STRICT    # sources checked against the routes

    @property
    def device(self) -> str:
        return self.vdev or self.pci or ""

    @property
    def is_vlan(self) -> bool:
        return self.vlan != 0

    @property
    def kernel_interfaces(self) -> tuple[str, ...]:
        """The kernel interfaces this port creates: a net_tap's (iface=) and
        the exception path's. They must not exist before it starts: a TAP
        of that name would be another process's, shared and disturbed."""
        names = []
        if self.vdev and self.vdev.startswith("net_tap"):
            names += [kv[len("iface="):] for kv in self.vdev.split(",") if kv.startswith("iface=")]
        return tuple(names) + ((self.kernel_iface,) if self.kernel_iface else ())


@dataclass(frozen=True)
class Profile:
    path: str
    name: str
    main_lcore: int
    workers: tuple[int, ...]
    cpu_map: str | None
    hugepages: bool
    size_mb: int
    huge_dir: str | None
    mbufs: int
    mbuf_cache: int
    ports: tuple[PortProfile, ...]
    mbuf_size: int = 0
    log_level: str = "notice"
    eal_args: tuple[str, ...] = field(default=())
    max_routes: int = 65536
    conn_capacity: int = model.CONN_DEFAULT     # tracked connections per lcore
    timeouts: tuple = ()                # ((name, seconds), ...)
    tcp_reset: bool = False             # RST what no connection or service takes
    # A TCP packet of no connection here (ECMP moved it from another
    # appliance; this one restarted) is picked up by the consistent choice.
    mid_flow: bool = True
    # The connection table written to /run/pylb/NAME.conns this often (and
    # as pylb stops), restored by the next start (pylb.snapshot); 0: only
    # as it stops.
    snapshot_interval_ms: int = 1000
    half_open_budget: int = 0           # per worker; 0: the dataplane's default (an eighth)
    per_source: tuple = ()              # ((name, value), ...): connections.per_source
    # The fleet's shared secret (fleet.secret_file): keys the flow hash, so
    # every appliance of a fleet chooses alike. None: a random key per start.
    fleet_secret: bytes | None = field(default=None, repr=False)
    bgp: model.BgpSettings | None = None    # VIPs announced to routers (pylb.bgp)
    sync: model.SyncSettings | None = None  # connection sync with peers (pylb.sync)
    # The fleet's gateways ((port, address), ...): held by one live
    # appliance at a time, elected from sync's heartbeats (NAT backends'
    # route back to their clients).
    gateways: tuple[tuple[str, str], ...] = ()

    @property
    def pool(self) -> tuple[str, ...]:
        """The appliance's FullNAT local addresses (all ports')."""
        return tuple(a for p in self.ports for a in p.local_addresses)

    def file_prefix(self, instance: str | None = None) -> str:
        return file_prefix(instance or self.name)

    def eal_argv(self, instance: str | None = None) -> list[str]:
        """EAL arguments: lcores, memory, a unique file prefix, PCI allow-list or --no-pci."""
        args = ["pylb"]
        if self.cpu_map:
            args += ["--lcores", self.cpu_map]
        else:
            args += ["-l", ",".join(str(c) for c in (self.main_lcore, *self.workers))]
        args += ["--main-lcore", str(self.main_lcore)]
        args += ["--file-prefix", self.file_prefix(instance)]
        if self.hugepages:
            args += ["-m", str(self.size_mb)]
            if self.huge_dir:
                args += ["--huge-dir", self.huge_dir]
        else:
            args += ["--no-huge", "-m", str(self.size_mb)]
        pcis = [p.pci for p in self.ports if p.pci]
        if pcis:
            for pci in pcis:
                args += ["-a", pci]
        else:
            args.append("--no-pci")
        args += ["--log-level", f"*:{self.log_level}"]
        args += list(self.eal_args)
        return args


def parse_lcore_list(text: Any) -> list[int]:
    """'1-3,5' -> [1, 2, 3, 5]; raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if isinstance(text, list):
        text = ",".join(str(x) for x in text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(text)
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(text)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ValueError(text)
        out.extend(range(lo, hi + 1))
    if len(set(out)) != len(out):
        raise ValueError(text)
    return out


def load_profile(path: str) -> Profile:
    """Load and validate the profile at `path`."""
    src = yamlsrc.read(path, None, ProfileError)
    c = yamlsrc.Checker(src, ProfileError)
    top = c.mapping(src.data, "", TOP_KEYS)
    for required in ("lcores", "ports"):
        if required not in top:
            raise c.fail(required, "missing; every profile names its lcores and ports")

    default_name = re.sub(r"[^A-Za-z0-9_-]", "-", os.path.splitext(os.path.basename(path))[0])[:24]
    name = c.string(top.get("name", default_name), "name",
                    "a name of letters, digits, '-' or '_' (at most 24)", NAME_RE)

    lc = c.mapping(top["lcores"], "lcores", LCORE_KEYS)
    main = c.integer(lc.get("main", 0), "lcores.main", 0, 127)
    if "workers" not in lc:
        raise c.fail("lcores.workers", "missing; give the worker lcores as a list like '1' or '1-3,5'")
    try:
        workers = parse_lcore_list(lc["workers"])
    except ValueError:
        raise c.fail("lcores.workers",
                     f"expected an lcore list like '1' or '1-3,5' (no repeats), got {lc['workers']!r}") from None
    if main in workers:
        raise c.fail("lcores.workers", f"lcore {main} is the main lcore; workers must be other lcores")
    if any(w > 127 for w in workers) or len(workers) > 32:
        raise c.fail("lcores.workers", "expected at most 32 workers with lcore ids up to 127")
    cpu_map = lc.get("cpu_map")
    if cpu_map is not None:
        cpu_map = c.string(cpu_map, "lcores.cpu_map", "an EAL --lcores map like '0@0,(1-2)@1'",
                           re.compile(r"^[0-9@(),\-]+$"))

    mem = c.mapping(top.get("memory", {}), "memory", MEMORY_KEYS)
    hugepages = mem.get("hugepages", True)
    if not isinstance(hugepages, bool):
        raise c.fail("memory.hugepages", f"expected true or false, got {hugepages!r}")
    size_mb = c.integer(mem.get("size_mb", 512), "memory.size_mb", 64, 1 << 20)
    huge_dir = mem.get("huge_dir")
    if huge_dir is not None:
        huge_dir = c.string(huge_dir, "memory.huge_dir", "an absolute path to a hugetlbfs mount",
                            re.compile(r"^/"))

    mbufs = c.integer(top.get("mbufs", 8191), "mbufs", 1023, 1 << 26)
    mbuf_cache = c.integer(top.get("mbuf_cache", 256), "mbuf_cache", 0, 512)
    mbuf_size = c.integer(top.get("mbuf_size", 2176), "mbuf_size", 192, 65535)
    log_level = top.get("log_level", "notice")
    if log_level not in LOG_LEVELS:
        raise c.fail("log_level", f"expected one of: {', '.join(sorted(LOG_LEVELS))}")
    eal_args = top.get("eal_args", [])
    if not isinstance(eal_args, list) or not all(isinstance(a, str) for a in eal_args):
        raise c.fail("eal_args", "expected a list of extra EAL arguments (strings)")

    raw_ports = top["ports"]
    if not isinstance(raw_ports, list) or not raw_ports:
        raise c.fail("ports", "expected a non-empty list of ports")
    if len(raw_ports) > 16:
        raise c.fail("ports", "expected at most 16 ports")
    ports: list[PortProfile] = []
    seen_names: set[str] = set()
    seen_addrs: dict = {}
    for i, rp in enumerate(raw_ports):
        key = f"ports[{i}]"
        rp = c.mapping(rp, key, PORT_KEYS)
        pname = c.string(rp.get("name"), f"{key}.name",
                         "a port name of letters, digits, '.', '-' or '_' (at most 24)",
                         PORT_NAME_RE)
        if pname in seen_names:
            raise c.fail(f"{key}.name", f"port name '{pname}' is used twice")
        seen_names.add(pname)
        parent, vlan = "", 0
        if "vlan" in rp or "parent" in rp:
            # An 802.1Q sub-interface of an earlier port.
            if "parent" not in rp or "vlan" not in rp:
                raise c.fail(key, "a VLAN needs 'parent' (an earlier port's name) and 'vlan' "
                                  "(its tag, 1..4094)")
            parent = rp["parent"]
            owner = next((p for p in ports if p.name == parent), None)
            if owner is None or owner.is_vlan:
                raise c.fail(f"{key}.parent", f"expected an earlier port that is not a VLAN, "
                                              f"got {yamlsrc.show(parent)}")
            vlan = c.integer(rp["vlan"], f"{key}.vlan", 1, 4094)
            if any(p.parent == parent and p.vlan == vlan for p in ports):
                raise c.fail(f"{key}.vlan", f"port {parent} already has VLAN {vlan}")
            for k in ("vdev", "pci", "kernel_iface", "mtu"):
                if k in rp:
                    raise c.fail(f"{key}.{k}", f"a VLAN has its parent's {k}")
        elif ("vdev" in rp) == ("pci" in rp):
            raise c.fail(key, "expected exactly one of 'vdev' (e.g. net_tap0,iface=pylb0) "
                              "or 'pci' (e.g. 0000:03:00.0), or 'parent' and 'vlan' for a VLAN")
        vdev = pci = None
        if "vdev" in rp:
            vdev = c.string(rp["vdev"], f"{key}.vdev",
                            "a virtual device like 'net_tap0,iface=pylb0' or 'net_null0'", VDEV_RE)
        elif "pci" in rp:
            pci = c.string(rp["pci"], f"{key}.pci", "a PCI address like '0000:03:00.0'", PCI_RE)
        addrs = rp.get("addresses", [])
        if not isinstance(addrs, list):
            raise c.fail(f"{key}.addresses", "expected a list of addresses like ['10.99.0.1/24', '2001:db8::1/64']")
        for j, a in enumerate(addrs):
            akey = f"{key}.addresses[{j}]"
            try:
                if not isinstance(a, str) or "/" not in a:
                    raise ValueError
                iface = ipaddress.ip_interface(a)
                if iface.network.prefixlen == 0:
                    raise ValueError
            except ValueError:
                raise c.fail(akey, "expected an address with prefix length like 10.99.0.1/24 "
                                   f"or 2001:db8::1/64, got {a!r}") from None
            if iface.ip in seen_addrs:
                raise c.fail(akey, f"address {iface.ip} is already on port {seen_addrs[iface.ip]}")
            seen_addrs[iface.ip] = pname
        pool = rp.get("local_addresses", [])
        if not isinstance(pool, list):
            raise c.fail(f"{key}.local_addresses", "expected a list of addresses like "
                                                   "['10.98.0.1', '2001:db8:98::1']")
        pool_ips = []
        for j, a in enumerate(pool):
            akey = f"{key}.local_addresses[{j}]"
            ip = config.parse_address(c, a, akey)
            if ip in seen_addrs:
                raise c.fail(akey, f"address {ip} is already on port {seen_addrs[ip]}")
            seen_addrs[ip] = pname
            pool_ips.append(str(ip))
        ports.append(PortProfile(
            name=pname, vdev=vdev, pci=pci, addresses=tuple(addrs),
            rx_desc=c.integer(rp.get("rx_desc", 1024), f"{key}.rx_desc", 64, 32768),
            tx_desc=c.integer(rp.get("tx_desc", 1024), f"{key}.tx_desc", 64, 32768),
            link_wait_ms=c.integer(rp.get("link_wait_ms", 5000), f"{key}.link_wait_ms", 0, 600000),
            kernel_iface=c.string(rp["kernel_iface"], f"{key}.kernel_iface",
                                  "a kernel interface name of at most 15 letters, digits, '.', '-' or '_'",
                                  IFNAME_RE) if "kernel_iface" in rp else "",
            local_addresses=tuple(pool_ips), parent=parent, vlan=vlan,
            mtu=c.integer(rp.get("mtu", 0), f"{key}.mtu", 68, 65535) if "mtu" in rp else 0,
            rp_filter=config._choice(c, rp, "rp_filter", key, model.RP_FILTERS),
        ))

    # Jumbo frames take large mbufs: a frame is never chained.
    for i, p in enumerate(ports):
        if p.mtu and p.mtu + FRAME_OVERHEAD + MBUF_HEADROOM > mbuf_size:
            raise c.fail(f"ports[{i}].mtu", f"an MTU of {p.mtu} needs mbuf_size of at least "
                                            f"{p.mtu + FRAME_OVERHEAD + MBUF_HEADROOM} (it is "
                                            f"{mbuf_size}): a frame is one mbuf")

    conns = c.mapping(top.get("connections", {}), "connections", CONN_KEYS)
    conn_capacity = c.integer(conns.get("capacity", model.CONN_DEFAULT), "connections.capacity",
                              model.CONN_MIN, model.CONN_MAX)
    # The same names and limits as configuration files and SetTimeouts.
    timeouts = dict(config.parse_timeouts(c, conns.get("timeouts", {}), "connections.timeouts"))
    # 0: the dataplane's default (an eighth of the capacity), decided there once.
    half_open_budget = c.integer(conns.get("half_open_budget", 0),
                                 "connections.half_open_budget", 0, conn_capacity)
    src = c.mapping(conns.get("per_source", {}), "connections.per_source", set(model.PER_SOURCE))
    per_source = tuple((k, c.integer(src[k], f"connections.per_source.{k}", lo, hi))
                       for k, (lo, hi) in model.PER_SOURCE.items() if k in src)
    tcp_reset, mid_flow = (conns.get(k, d) for k, d in (("tcp_reset", False), ("mid_flow", True)))
    for k, v in (("tcp_reset", tcp_reset), ("mid_flow", mid_flow)):
        if not isinstance(v, bool):
            raise c.fail(f"connections.{k}", "expected true or false")

    fleet = c.mapping(top.get("fleet", {}), "fleet", FLEET_KEYS)
    secret = None
    if "secret_file" in fleet:
        secret = read_secret(c, c.string(fleet["secret_file"], "fleet.secret_file",
                                         "an absolute path to a file holding the fleet's secret",
                                         re.compile(r"^/")))

    return Profile(path=path, name=name, main_lcore=main, workers=tuple(workers), cpu_map=cpu_map,
                   hugepages=hugepages, size_mb=size_mb, huge_dir=huge_dir, mbufs=mbufs,
                   mbuf_cache=mbuf_cache, mbuf_size=mbuf_size, ports=tuple(ports), log_level=log_level,
                   eal_args=tuple(eal_args),
                   max_routes=c.integer(top.get("max_routes", 65536), "max_routes", 1024, 16777216),
                   conn_capacity=conn_capacity, timeouts=tuple(sorted(timeouts.items())),
                   tcp_reset=tcp_reset, mid_flow=mid_flow, half_open_budget=half_open_budget,
                   snapshot_interval_ms=c.integer(conns.get("snapshot_interval_ms", 1000),
                                                  "connections.snapshot_interval_ms", 0, 3600000),
                   per_source=per_source, fleet_secret=secret,
                   bgp=parse_bgp(c, top["bgp"], ports) if "bgp" in top else None,
                   sync=parse_sync(c, fleet["sync"], ports, secret) if "sync" in fleet else None,
                   gateways=parse_gateways(c, fleet, ports))


def parse_gateways(c: yamlsrc.Checker, fleet: dict, ports) -> tuple[tuple[str, str], ...]:
    """The fleet's gateways: an address on a port's network that NAT
    backends route their replies through, held by the live appliance with
    the lowest sync address (so it needs sync)."""
    raw = fleet.get("gateways", [])
    if not isinstance(raw, list):
        raise c.fail("fleet.gateways", "expected a list like [{port: p1, address: 10.0.1.254}]")
    if raw and "sync" not in fleet:
        raise c.fail("fleet.gateways", "the appliance holding them is elected from connection "
                                       "sync's heartbeats: give fleet.sync too")
    names = {p.name: p for p in ports}
    out = []
    for i, g in enumerate(raw):
        key = f"fleet.gateways[{i}]"
        g = c.mapping(g, key, GATEWAY_KEYS)
        for k in ("port", "address"):
            if k not in g:
                raise c.fail(f"{key}.{k}", "missing; a gateway needs port and address")
        port = g["port"]
        if port not in names:
            raise c.fail(f"{key}.port", f"expected one of the ports ({', '.join(names)})")
        ip = config.parse_address(c, g["address"], f"{key}.address")
        ifaces = [ipaddress.ip_interface(a) for a in names[port].addresses]
        if any(ip == ipaddress.ip_interface(a).ip for p in ports for a in p.addresses) or \
                str(ip) in (a for p in ports for a in p.local_addresses):
            raise c.fail(f"{key}.address", f"{ip} is an address of this appliance's own; a "
                                           "gateway is the fleet's, on no appliance's port")
        if not any(ip in i.network for i in ifaces):
            raise c.fail(f"{key}.address", f"{ip} is not on a network of port {port} (the "
                                           "backends reach their gateway on their link)")
        if (port, str(ip)) in out:
            raise c.fail(f"{key}.address", f"{ip} is listed twice")
        out.append((port, str(ip)))
    return tuple(out)


def parse_sync(c: yamlsrc.Checker, raw, ports, secret) -> model.SyncSettings:
    """Connection sync: with peers on a port's IPv4 network, through its
    kernel interface; authenticated with the fleet's secret."""
    s = c.mapping(raw, "fleet.sync", SYNC_KEYS)
    if secret is None:
        raise c.fail("fleet.sync", "sync is authenticated with the fleet's secret: give "
                                   "fleet.secret_file too")
    names = {p.name: p for p in ports}
    port = c.string(s.get("port"), "fleet.sync.port", f"one of the ports ({', '.join(names)})")
    if port not in names:
        raise c.fail("fleet.sync.port", f"expected one of the ports ({', '.join(names)})")
    if not names[port].kernel_iface:
        raise c.fail("fleet.sync.port", f"port {port} has no kernel_iface: sync leaves "
                                        "through the exception path; give the port one")
    nets = [ipaddress.ip_interface(a).network for a in names[port].addresses
            if ipaddress.ip_interface(a).version == 4]
    raw_peers = s.get("peers")
    if not isinstance(raw_peers, list) or not raw_peers:
        raise c.fail("fleet.sync.peers", "expected a list of the peers' addresses")
    peers = []
    for i, p in enumerate(raw_peers):
        addr = config.parse_address(c, p, f"fleet.sync.peers[{i}]")
        if not any(addr in n for n in nets):
            raise c.fail(f"fleet.sync.peers[{i}]", f"{addr} is not on an IPv4 network of "
                                                   f"port {port}")
        peers.append(str(addr))
    return model.SyncSettings(port, tuple(peers),
                              c.integer(s.get("udp_port", 8848), "fleet.sync.udp_port", 1, 65535),
                              c.integer(s.get("interval_ms", 20), "fleet.sync.interval_ms", 1,
                                        10000))


def parse_bgp(c: yamlsrc.Checker, raw, ports) -> model.BgpSettings:
    """The appliance's BGP sessions: with routers on its ports' networks,
    through their kernel interfaces (the exception path)."""
    b = c.mapping(raw, "bgp", BGP_KEYS)
    if "local_as" not in b:
        raise c.fail("bgp.local_as", "missing; the appliance's AS number")
    asn = (1, 4294967294)
    names = {p.name: p for p in ports}
    raw_peers = b.get("peers")
    if not isinstance(raw_peers, list) or not raw_peers:
        raise c.fail("bgp.peers", "expected a list of peers like {address: 10.0.0.254, as: 65000, "
                                  "port: p0}")
    peers = []
    for i, rp in enumerate(raw_peers):
        key = f"bgp.peers[{i}]"
        p = c.mapping(rp, key, BGP_PEER_KEYS)
        for k in ("address", "as", "port"):
            if k not in p:
                raise c.fail(f"{key}.{k}", "missing; a peer needs address, as and port")
        addr = config.parse_address(c, p["address"], f"{key}.address")
        port = c.string(p["port"], f"{key}.port", f"one of the ports ({', '.join(names)})")
        if port not in names:
            raise c.fail(f"{key}.port", f"expected one of the ports ({', '.join(names)})")
        if not names[port].kernel_iface:
            raise c.fail(f"{key}.port", f"port {port} has no kernel_iface: BGP leaves through "
                                        "the exception path; give the port one")
        if not any(addr in ipaddress.ip_interface(a).network for a in names[port].addresses):
            raise c.fail(f"{key}.address", f"{addr} is not on a network of port {port}")
        bfd = p.get("bfd", True)
        if not isinstance(bfd, bool):
            raise c.fail(f"{key}.bfd", "expected true or false")
        peers.append(model.BgpPeerSpec(str(addr), c.integer(p["as"], f"{key}.as", *asn), port, bfd,
                                       c.integer(p.get("hold_time", 3), f"{key}.hold_time", 3,
                                                 65535)))
    router_id = b.get("router_id", "")
    if router_id:
        router_id = str(config.parse_address(c, router_id, "bgp.router_id"))
        if ":" in router_id:
            raise c.fail("bgp.router_id", "expected an IPv4 address (BGP's router id)")
    return model.BgpSettings(
        c.integer(b["local_as"], "bgp.local_as", *asn), tuple(peers), router_id,
        c.integer(b.get("bfd_interval_ms", 100), "bgp.bfd_interval_ms", 10, 10000),
        c.integer(b.get("bfd_multiplier", 3), "bgp.bfd_multiplier", 1, 255),
        c.integer(b.get("withdraw_wait_ms", 2000), "bgp.withdraw_wait_ms", 0, 600000))


def read_secret(c: yamlsrc.Checker, path: str) -> bytes:
    """The secret in file `path`: at least SECRET_MIN bytes (surrounding
    whitespace removed), readable by its owner only (like ssh's keys)."""
    key = "fleet.secret_file"
    try:
        st = os.stat(path)
        secret = files.read(path, 1 << 16).strip()
    except OSError as e:
        raise c.fail(key, f"cannot read {path}: {e.strerror}") from None
    if st.st_mode & 0o077:
        raise c.fail(key, f"{path} can be read by others (mode {st.st_mode & 0o777:o}); "
                          f"chmod 600 it")
    if len(secret) < SECRET_MIN:
        raise c.fail(key, f"{path} holds {len(secret)} bytes; a secret needs at least "
                          f"{SECRET_MIN} (e.g. head -c 32 /dev/urandom | base64 > {path})")
    bits = entropy_bits(secret)
    if bits < SECRET_BITS:
        raise c.fail(key, f"{path} is a weak secret (about {bits:.0f} bits: repeated or few "
                          f"distinct bytes); pylb wants at least {SECRET_BITS}, e.g. 32 random "
                          f"bytes: head -c 32 /dev/urandom | base64 > {path}")
    return secret


def entropy_bits(data: bytes) -> float:
    """An estimate of the entropy of `data` in bits: its length times the
    Shannon entropy of its byte frequencies (a lower bound for short
    random strings; zero for one byte repeated)."""
    n = len(data)
    return -sum(k * math.log2(k / n) for k in collections.Counter(data).values())
