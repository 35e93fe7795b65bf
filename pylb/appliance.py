"""Runs an appliance in the foreground: EAL, dataplane, ports, workers, housekeeping.

The main lcore runs this Python; workers run the C poll loop. Stopping (the
`stop` event, set by SIGINT/SIGTERM in the CLI) stops the workers, stops and
closes the ports, cleans up EAL and removes the instance's hugepage files.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time

from pylb import health, hostinfo, model, snapshot, telemetry
from pylb.errors import DataplaneError, NotFound
from pylb.model import Config
from pylb.profile import Profile

log = logging.getLogger("pylb")

HOUSEKEEP_INTERVAL_S = 0.005   # neighbour resolution waits on this


def load_native():
    """Import the Cython boundary; a missing DPDK runtime becomes one clear error."""
    try:
        from pylb import _native
    except ImportError as e:
        if "librte" in str(e) or "libdpdk" in str(e):
            raise DataplaneError(f"DPDK runtime libraries are missing ({e}); "
                                 "install them with: apt-get install dpdk") from None
        raise
    return _native


def check_host(profile: Profile, instance: str | None) -> None:
    """Refuse early, with the fix, what would otherwise fail deep inside EAL."""
    prefix = profile.file_prefix(instance)
    try:
        telemetry.query(prefix, "/", timeout=1.0)
        running = True
    except (NotFound, OSError):
        running = hostinfo.instance_alive(prefix)
    if running:
        raise DataplaneError(f"an appliance with file prefix '{prefix}' is already running; "
                             "stop it or pass --instance NAME")
    for port in profile.ports:
        for iface in port.kernel_interfaces:
            if os.path.exists(f"/sys/class/net/{iface}"):
                raise DataplaneError(f"port {port.name}: the interface {iface} already exists "
                                     "(another appliance or process has it); stop it, or give "
                                     "this profile other interface names")
    # Nothing runs with this prefix: what a killed run left is ours to remove.
    stale = hostinfo.remove_instance_files(prefix)
    if stale:
        log.warning("removed %d file(s) a previous run of '%s' left behind", len(stale), prefix)
    if profile.hugepages:
        problem = hostinfo.hugepage_problem(profile.size_mb, profile.huge_dir)
        if problem:
            raise DataplaneError(problem)


def grpc_default(profile: Profile, instance: str | None = None) -> str:
    """Where `pylb run` listens for gRPC unless told otherwise."""
    return f"unix:/run/pylb/{instance or profile.name}.sock"


def _reload(manager, path: str) -> None:
    """SIGHUP: the configuration file again, applied as a diff (on the main
    loop, through the domain, like an ApplyConfig call)."""
    from pylb.config import load_config
    from pylb.errors import PylbError
    try:
        changes = manager.apply_config(load_config(path))
        log.info("reloaded %s: %s", path, "; ".join(changes) or "no changes")
    except PylbError as e:
        log.error("reload of %s refused: %s", path, e)


def _start_sync(profile: Profile, dp, tasks: queue.SimpleQueue):
    """Connection sync from the sync port's address on its peers' network;
    the peers' records are applied on the main loop, like every change."""
    import ipaddress
    from pylb.sync import Sync
    s = profile.sync
    port = next(p for p in profile.ports if p.name == s.port)
    peer = ipaddress.ip_address(s.peers[0])
    address = next(str(ipaddress.ip_interface(a).ip) for a in port.addresses
                   if peer in ipaddress.ip_interface(a).network)
    log.info("sync: from %s:%d to %s", address, s.udp_port, ", ".join(s.peers))
    native = load_native()
    return Sync(s, profile.fleet_secret, address, port.kernel_iface, native.RECORD_SIZE,
                lambda records: tasks.put(lambda d: d.sync_apply(records)),
                native.fullnat_locals)


class _Moving:
    """Host addresses that move between the fleet's appliances, as sync
    says: the fleet's gateways, held while this appliance is elected
    (announced to their link when taken); the peers' FullNAT pool
    addresses its synced connections name, held (replies to them are
    translated here) and announced by BGP as backups. Neither reaches the
    kernel: they are the dataplane's."""

    ANNOUNCE_AGAIN_S = (1.0, 2.0)       # after taking the gateways, as keepalived repeats

    def __init__(self, profile: Profile, dp, manager):
        self.dp, self.manager = dp, manager
        self.gateways = profile.gateways
        self.own = set(profile.pool)
        self.port = profile.sync.port
        self.holding = False
        self.backups: set[str] = set()
        self.again: list[float] = []        # when to tell the link again

    def follow(self, sync, now: float) -> None:
        elected = sync.elected(now)
        if elected != self.holding:
            self._hold(elected, sync.live(now))
            self.again = [now + s for s in self.ANNOUNCE_AGAIN_S] if elected else []
        if self.again and now >= self.again[0]:
            self.again.pop(0)
            for port, address in self.gateways:
                self.dp.announce_address(port, address)
        backups = set(sync.pools(now)) - self.own
        if backups != self.backups:
            for a in sorted(backups - self.backups):
                self.dp.add_address(self.port, model.host_prefix(a), mirror=False)
            for a in sorted(self.backups - backups):
                self.dp.del_address(self.port, a)
            log.info("fleet: holding peers' FullNAT addresses %s", ", ".join(sorted(backups))
                     or "none")
            self.backups = backups
            self.manager.set_backups(sorted(backups))

    def _hold(self, hold: bool, live) -> None:
        self.holding = hold
        for port, address in self.gateways:
            if hold:
                self.dp.add_address(port, model.host_prefix(address), mirror=False)
                self.dp.announce_address(port, address)
            else:
                self.dp.del_address(port, address)
        if self.gateways:
            log.info("fleet: gateway(s) %s %s (live peers: %s)",
                     ", ".join(a for _, a in self.gateways), "taken" if hold else "given up",
                     ", ".join(live) or "none")

    def release(self) -> None:
        if self.holding:
            self._hold(False, [])


def _run_tasks(tasks: queue.SimpleQueue, dp) -> None:
    while not tasks.empty():
        tasks.get()(dp)


def run(profile: Profile, stop: threading.Event, instance: str | None = None,
        tasks: queue.SimpleQueue | None = None, config: Config | None = None,
        grpc_address: str | None = None, metrics_address: str | None = None,
        reload: threading.Event | None = None, config_path: str | None = None,
        grpc_tls=None) -> None:
    """Run until `stop` is set. Raises PylbError subclasses with operator-facing messages.

    `tasks` carries callables f(dataplane) from other threads (the management
    plane): they run here, between housekeeping passes, so every control-side
    change happens on this one thread. `config` is applied once the ports are up.
    `grpc_address` (unix:PATH, or tcp:HOST:PORT with `grpc_tls`): where the
    management API listens; None: nowhere.
    `metrics_address` ([HOST:]PORT): where Prometheus scrapes; None: nowhere.
    `reload` (set by SIGHUP): apply `config_path` again, as a diff."""
    check_host(profile, instance)
    native = load_native()
    prefix = profile.file_prefix(instance)
    argv = profile.eal_argv(instance)
    log.info("EAL %s", " ".join(argv[1:]))
    native.eal_init(argv)
    dp = server = metrics = manager = speaker = sync = moving = None
    if tasks is None:
        tasks = queue.SimpleQueue()
    try:
        dp = native.Dataplane(workers=profile.workers, mbufs=profile.mbufs,
                              mbuf_cache=profile.mbuf_cache, mbuf_size=profile.mbuf_size,
                              max_routes=profile.max_routes,
                              conn_capacity=profile.conn_capacity,
                              timeouts=dict(profile.timeouts), tcp_reset=profile.tcp_reset,
                              mid_flow=profile.mid_flow, sync=profile.sync is not None,
                              half_open_budget=profile.half_open_budget,
                              per_source=dict(profile.per_source),
                              hash_seed=profile.fleet_secret)
        for port in profile.ports:
            idx = dp.add_port(port.name, port.device, rx_desc=port.rx_desc,
                              tx_desc=port.tx_desc, link_wait_ms=port.link_wait_ms,
                              kernel_iface=port.kernel_iface, mtu=port.mtu,
                              parent=port.parent or None, vlan=port.vlan,
                              rp_filter=port.rp_filter)
            for addr in port.addresses:
                dp.add_address(idx, addr)
            for addr in port.local_addresses:
                dp.add_address(idx, model.host_prefix(addr), mirror=False)
        # The domain: from here on every change, the start-up configuration
        # included, goes through it (on this thread: at once; from others:
        # queued to this loop).
        from pylb.manager import Manager, queue_submitter
        if profile.bgp is not None:
            # BGP from the ports' kernel interfaces: announcing what the
            # domain decides, from the configuration below on.
            from pylb.bgp import Bird
            speaker = Bird(profile.bgp, {p.name: (p.kernel_iface, list(p.addresses))
                                         for p in profile.ports},
                           f"/run/pylb/{instance or profile.name}.bgp")
            speaker.start()
            log.info("bgp: BIRD speaking as AS %d to %s", profile.bgp.local_as,
                     ", ".join(f"{p.address} (AS {p.remote_as})" for p in profile.bgp.peers))
        submit = queue_submitter(tasks, dp=dp)
        manager = Manager(submit, health=health.checker(submit), speaker=speaker,
                          counters=lambda: {**sync.counters, "sync_notes_lost": dp.sync_lost()}
                          if sync is not None else {}, pool=profile.pool)
        if config is not None:
            manager.apply_config(config)
            log.info("applied %s: %d service(s), %d route(s)", config.path,
                     len(config.services), len(config.routes))
        # The previous run's connections, into the tables before the
        # workers own them (their services must be configured by now).
        snapshots = snapshot.Writer(snapshot.path_for(instance or profile.name),
                                    profile.snapshot_interval_ms, native.RECORD_SIZE)
        restored = snapshot.restore(snapshots.path, native.RECORD_SIZE,
                                    profile.conn_capacity * max(len(profile.workers), 1),
                                    dp.install_connections)
        if restored is not None:
            log.info("restored %d of %d connection(s) from %s (the others' services or "
                     "backends are not configured, or the records are not valid)", *restored,
                     snapshots.path)
        dp.start()
        # Whoever had this port's addresses before (a NIC swapped, a TAP's
        # new MAC) is forgotten by the link at once.
        for port in profile.ports:
            for addr in (*port.addresses, *port.local_addresses):
                dp.announce_address(port.name, addr.split("/")[0])
        if profile.sync is not None:
            sync = _start_sync(profile, dp, tasks)
            moving = _Moving(profile, dp, manager)
        for p in dp.ports():
            log.info("port %s (%s): ethdev %d mac %s link %s addresses %s kernel interface %s",
                     p.name, p.device, p.ethdev, p.mac, "up" if p.link_up else "down",
                     ", ".join(p.addresses) or "-", p.kernel_iface or "-")
        if grpc_address:
            from pylb.server import Server
            server = Server(manager, grpc_address, tls=grpc_tls).start()
            server.serving(True)
            log.info("gRPC: %s", grpc_address)
        if metrics_address:
            import prometheus_client
            from pylb import metrics as pm
            host, port = pm.parse_address(metrics_address)
            try:
                metrics, _ = prometheus_client.start_http_server(port, host,
                                                                 registry=pm.registry(manager))
            except OSError as e:
                raise DataplaneError(f"metrics: cannot listen on {host}:{port}: {e.strerror}") from None
            log.info("metrics: http://%s:%d/metrics", host, port)
        log.info("running: %d worker(s) on lcore(s) %s, file prefix %s", len(profile.workers),
                 ",".join(map(str, profile.workers)), prefix)
        while not stop.wait(HOUSEKEEP_INTERVAL_S):
            _run_tasks(tasks, dp)
            dp.housekeep()
            if snapshots.due(time.monotonic()):
                snapshots.take(dp.export_connections(), time.monotonic())
            if sync is not None and sync.due(time.monotonic()):
                sync.send(dp.sync_collect())
                for peer in sync.rejoined():
                    log.info("sync: %s is in a new run: sending it the table", peer)
                    sync.send_table(dp.export_connections(), peer)
                moving.follow(sync, time.monotonic())
            if reload is not None and reload.is_set() and config_path:
                reload.clear()
                threading.Thread(target=_reload, args=(manager, config_path), daemon=True).start()
        log.info("stopping")
        if speaker is not None:
            # Withdrawn first; the dataplane serves on while the routers
            # move the traffic to the rest of the fleet.
            manager.stop_announcing()
            log.info("bgp: every VIP withdrawn; %d ms for the routers to move traffic",
                     profile.bgp.withdraw_wait_ms)
            until = time.monotonic() + profile.bgp.withdraw_wait_ms / 1000
            while time.monotonic() < until:
                _run_tasks(tasks, dp)
                time.sleep(HOUSEKEEP_INTERVAL_S)
        if sync is not None:
            # Its peers elect without it at once: a gateway it held moves.
            sync.leave()
            moving.release()
        # The table as it stops: what the next start restores.
        snapshots.take(dp.export_connections(), time.monotonic(), wait=True)
        log.info("connections saved to %s", snapshots.path)
    finally:
        # Health says NOT_SERVING at once; calls and scrapes in flight finish
        # (the loop keeps running their tasks) before the dataplane goes.
        pending = []
        if manager is not None:
            manager.close()             # no new health verdicts; one in flight is drained below
        if metrics is not None:
            t = threading.Thread(target=metrics.shutdown)
            t.start()
            pending.append(t.is_alive)
        if server is not None:
            server.serving(False)
            done = server.grpc.stop(1.0)
            pending.append(lambda: not done.is_set())
        while True:
            _run_tasks(tasks, dp)
            if not any(alive() for alive in pending):
                break
            time.sleep(HOUSEKEEP_INTERVAL_S)
        if metrics is not None:
            metrics.server_close()
        if server is not None:
            server.stop(0)
        if speaker is not None:
            speaker.stop()
        if sync is not None:
            sync.close()
        if dp is not None:
            dp.close()
        native.eal_cleanup()
        removed = hostinfo.remove_instance_files(prefix)
        log.info("stopped; removed %d runtime file(s)", len(removed))
