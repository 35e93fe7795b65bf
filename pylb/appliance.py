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

from pylb import health, hostinfo, model, notify, snapshot, telemetry
from pylb.errors import DataplaneError, NotFound
from pylb.manager import Manager, queue_submitter, run_tasks
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
    loop, through the domain, like an ApplyConfig call); systemd is told
    RELOADING=1, then READY=1 with what came of it."""
    from pylb.config import load_config
    from pylb.errors import PylbError
    notify.reloading()
    try:
        changes = manager.apply_config(load_config(path))
        status = f"reloaded {path}: {len(changes)} change(s)"
        log.info("reloaded %s: %s", path, "; ".join(changes) or "no changes")
    except PylbError as e:
        status = f"reload of {path} refused: {e}"
        log.error("reload of %s refused: %s", path, e)
    notify.notify("READY=1", f"STATUS={status}")


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


class Appliance:
    """One run, in the order it starts: the dataplane and its ports
    (`_dataplane`), the domain with its BGP speaker (`_domain`), the last
    run's connections (`_restore`), the workers (`_start`), the fleet
    (`_fleet`), the API and the metrics (`_listen`); `_loop` until stopped, `_leave` the
    fleet's routing and peers gracefully, then `_close` takes down what was
    started, in its own order (the API drained before the dataplane goes).
    Every part is optional but the dataplane; each method has one job."""

    def __init__(self, profile: Profile, instance: str | None, tasks: queue.SimpleQueue):
        self.profile, self.instance, self.tasks = profile, instance, tasks
        self.name = instance or profile.name
        self.native = load_native()
        self.dp = self.manager = self.speaker = self.snapshots = None
        self.sync = self.moving = self.server = self.metrics = None
        self.eal = False

    def serve(self, stop: threading.Event, config: Config | None, grpc_address: str | None,
              grpc_tls, metrics_address: str | None, reload: threading.Event | None,
              config_path: str | None) -> None:
        try:
            self._dataplane()
            self._domain(config)
            self._restore()
            self._start()
            self._fleet()
            self._listen(grpc_address, grpc_tls, metrics_address)
            log.info("running: %d worker(s) on lcore(s) %s, file prefix %s",
                     len(self.profile.workers), ",".join(map(str, self.profile.workers)),
                     self.profile.file_prefix(self.instance))
            notify.notify("READY=1", f"MAINPID={os.getpid()}",
                          f"STATUS=forwarding: {len(self.profile.ports)} port(s), "
                          f"{len(self.profile.workers)} worker(s)")
            self._loop(stop, reload, config_path)
            log.info("stopping")
            notify.notify("STOPPING=1", "STATUS=stopping: withdrawing VIPs, saving the connections")
            self._leave()
        finally:
            self._close()

    def _dataplane(self) -> None:
        p, native = self.profile, self.native
        argv = p.eal_argv(self.instance)
        log.info("EAL %s", " ".join(argv[1:]))
        native.eal_init(argv)
        self.eal = True
        self.dp = native.Dataplane(workers=p.workers, mbufs=p.mbufs, mbuf_cache=p.mbuf_cache,
                                   mbuf_size=p.mbuf_size, max_routes=p.max_routes,
                                   conn_capacity=p.conn_capacity, timeouts=dict(p.timeouts),
                                   tcp_reset=p.tcp_reset, mid_flow=p.mid_flow,
                                   sync=p.sync is not None, half_open_budget=p.half_open_budget,
                                   per_source=dict(p.per_source), hash_seed=p.fleet_secret)
        for port in p.ports:
            idx = self.dp.add_port(port.name, port.device, rx_desc=port.rx_desc,
                                   tx_desc=port.tx_desc, link_wait_ms=port.link_wait_ms,
                                   kernel_iface=port.kernel_iface, mtu=port.mtu,
                                   parent=port.parent or None, vlan=port.vlan,
                                   rp_filter=port.rp_filter)
            for addr in port.addresses:
                self.dp.add_address(idx, addr)
            for addr in port.local_addresses:
                self.dp.add_address(idx, model.host_prefix(addr), mirror=False)

    def _domain(self, config: Config | None) -> None:
        """From here on every change, the start-up configuration included,
        goes through the domain (on this thread: at once; from others:
        queued to this loop). BGP speaks from the ports' kernel interfaces
        what the domain decides, from the configuration on."""
        p, dp = self.profile, self.dp
        if p.bgp is not None:
            from pylb.bgp import Bird
            self.speaker = Bird(p.bgp, {q.name: (q.kernel_iface, list(q.addresses))
                                        for q in p.ports}, f"/run/pylb/{self.name}.bgp")
            self.speaker.start()
            log.info("bgp: BIRD speaking as AS %d to %s", p.bgp.local_as,
                     ", ".join(f"{q.address} (AS {q.remote_as})" for q in p.bgp.peers))
        submit = queue_submitter(self.tasks, dp=dp)
        self.manager = Manager(submit, health=health.checker(submit), speaker=self.speaker,
                               counters=self._fleet_counters, pool=p.pool)
        if config is not None:
            self.manager.apply_config(config)
            log.info("applied %s: %d service(s), %d route(s)", config.path,
                     len(config.services), len(config.routes))

    def _fleet_counters(self) -> dict:
        if self.sync is None:
            return {}
        return {**self.sync.counters, "sync_notes_lost": self.dp.sync_lost()}

    def _restore(self) -> None:
        """The previous run's connections, into the tables before the
        workers own them (their services are configured by now)."""
        p, native = self.profile, self.native
        self.snapshots = snapshot.Writer(snapshot.path_for(self.name), p.snapshot_interval_ms,
                                         native.RECORD_SIZE)
        restored = snapshot.restore(self.snapshots.path, native.RECORD_SIZE,
                                    p.conn_capacity * max(len(p.workers), 1),
                                    self.dp.install_connections)
        if restored is not None:
            log.info("restored %d of %d connection(s) from %s (the others' services or "
                     "backends are not configured, or the records are not valid)", *restored,
                     self.snapshots.path)

    def _start(self) -> None:
        """The workers; whoever had the ports' addresses before (a NIC
        swapped, a TAP's new MAC) is forgotten by the link at once."""
        self.dp.start()
        for port in self.profile.ports:
            for addr in (*port.addresses, *port.local_addresses):
                self.dp.announce_address(port.name, addr.split("/")[0])
        for q in self.dp.ports():
            log.info("port %s (%s): ethdev %d mac %s link %s addresses %s kernel interface %s",
                     q.name, q.device, q.ethdev, q.mac, "up" if q.link_up else "down",
                     ", ".join(q.addresses) or "-", q.kernel_iface or "-")

    def _fleet(self) -> None:
        if self.profile.sync is not None:
            self.sync = _start_sync(self.profile, self.dp, self.tasks)
            self.moving = _Moving(self.profile, self.dp, self.manager)

    def _listen(self, grpc_address: str | None, grpc_tls, metrics_address: str | None) -> None:
        if grpc_address:
            from pylb.server import Server
            self.server = Server(self.manager, grpc_address, tls=grpc_tls).start()
            self.server.serving(True)
            log.info("gRPC: %s", grpc_address)
        if metrics_address:
            from pylb import metrics as pm, status
            host, port = pm.parse_address(metrics_address)
            try:
                self.metrics = status.start(self.manager, host, port)
            except OSError as e:
                raise DataplaneError(f"metrics: cannot listen on {host}:{port}: "
                                     f"{e.strerror}") from None
            log.info("metrics: http://%s:%d/metrics, status page: /status", host, port)

    def _loop(self, stop: threading.Event, reload: threading.Event | None,
             config_path: str | None) -> None:
        """Every HOUSEKEEP_INTERVAL_S: the queued changes, neighbours, the
        snapshot and sync when due, a SIGHUP's reload, systemd's watchdog."""
        dp, sync = self.dp, self.sync
        watchdog = notify.Watchdog()
        while not stop.wait(HOUSEKEEP_INTERVAL_S):
            run_tasks(self.tasks, dp)
            dp.housekeep()
            now = time.monotonic()
            watchdog.tick(now)
            if self.snapshots.due(now):
                self.snapshots.take(dp.export_connections(), now)
            if sync is not None and sync.due(now):
                sync.send(dp.sync_collect())
                for peer in sync.rejoined():
                    log.info("sync: %s is in a new run: sending it the table", peer)
                    sync.send_table(dp.export_connections(), peer)
                self.moving.follow(sync, now)
            if reload is not None and reload.is_set() and config_path:
                reload.clear()
                threading.Thread(target=_reload, args=(self.manager, config_path),
                                 daemon=True).start()

    def _leave(self) -> None:
        """A graceful stop: VIPs withdrawn first (the dataplane serves on
        while the routers move the traffic to the rest of the fleet), the
        peers elect without this one at once (a gateway it held moves), and
        the table as it stops is saved for the next start."""
        if self.speaker is not None:
            self.manager.stop_announcing()
            wait_ms = self.profile.bgp.withdraw_wait_ms
            log.info("bgp: every VIP withdrawn; %d ms for the routers to move traffic", wait_ms)
            until = time.monotonic() + wait_ms / 1000
            while time.monotonic() < until:
                run_tasks(self.tasks, self.dp)
                time.sleep(HOUSEKEEP_INTERVAL_S)
        if self.sync is not None:
            self.sync.leave()
            self.moving.release()
        self.snapshots.take(self.dp.export_connections(), time.monotonic(), wait=True)
        log.info("connections saved to %s", self.snapshots.path)

    def _drain(self) -> None:
        """Health says NOT_SERVING at once; calls and scrapes in flight
        finish (the loop keeps running their tasks) before the dataplane
        goes."""
        pending = []
        if self.manager is not None:
            self.manager.close()        # no new health verdicts; one in flight is drained below
        if self.metrics is not None:
            t = threading.Thread(target=self.metrics.shutdown)
            t.start()
            pending.append(t.is_alive)
        if self.server is not None:
            self.server.serving(False)
            done = self.server.grpc.stop(1.0)
            pending.append(lambda: not done.is_set())
        while True:
            run_tasks(self.tasks, self.dp)
            if not any(alive() for alive in pending):
                break
            time.sleep(HOUSEKEEP_INTERVAL_S)

    def _close(self) -> None:
        self._drain()
        if self.metrics is not None:
            self.metrics.server_close()
        if self.server is not None:
            self.server.stop(0)
        if self.speaker is not None:
            self.speaker.stop()
        if self.sync is not None:
            self.sync.close()
        if self.dp is not None:
            self.dp.close()
        if self.eal:
            self.native.eal_cleanup()
        removed = hostinfo.remove_instance_files(self.profile.file_prefix(self.instance))
        log.info("stopped; removed %d runtime file(s)", len(removed))


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
    Appliance(profile, instance, tasks if tasks is not None else queue.SimpleQueue()).serve(
        stop, config, grpc_address, grpc_tls, metrics_address, reload, config_path)
