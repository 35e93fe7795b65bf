"""Health checks of backends, from the control plane (asyncio on its own
thread): never from the worker cores. The probes are the host's own sockets
bound (SO_BINDTODEVICE) to the kernel interface of the port the dataplane
routes the backend through: the appliance's exception path, never the
host's management routes. Where that path is unavailable (no kernel
interface, down, or not carrying the port's MAC), the backend's health
reads `unavailable` and its state is left as it is.

A DR or tunnel backend is also probed through the data path (pylb.health
asks the dataplane, see native/src/ctl/probe.c): a SYN (UDP: a datagram) to the
service's VIP and port, sent by the backend's method from the appliance's
address. The check of the backend's own address says its server runs; only
this one says it takes the VIP's traffic (DR: the VIP on its loopback;
tunnel: its decapsulation), so a backend that would blackhole connections
fails its check.

Each checked backend has a task: probe every interval; after `fall` failures
in a row its verdict is down, after `rise` successes up again. Verdicts go to
the domain (pylb.manager), which puts in force down a backend the operator set
up, never touches one drained or downed by an operator, and never changes the
model: the dataplane applies the service's down policy (finish or reset).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
from typing import Callable

from pylb import kernel, model
from pylb.errors import NotFound
from pylb.model import HealthCheckSpec

TCP, HTTP, UDP, NONE = model.CHECK_TYPES
UNKNOWN, UNAVAILABLE = model.UNKNOWN, model.UNAVAILABLE
log = logging.getLogger("pylb")

Key = tuple[str, int, str]                   # (vip, port, proto)
Target = tuple[str, int]                     # (backend ip, backend port)
SetState = Callable[[Key, Target, str], None]
# The kernel interface to probe a backend through, or (None, why not).
ProbePath = Callable[[str], "tuple[str | None, str]"]
# Runs f(dp) on the dataplane's thread (pylb.manager's submit).
Submit = Callable[[Callable], object]
VIA_VIP = model.VIA_VIP                      # dr, tunnel: probed through the data path too
POLL_S = 0.02


async def probe_vip(submit: Submit, key: Key, method: str, backend: str, port: int,
                    timeout_ms: int) -> bool:
    """One data-path probe of `backend` (DR or tunnel) for the service
    `key`: True if it answered (SYN-ACK, datagram) within the timeout."""
    loop = asyncio.get_running_loop()
    vip, _, proto = key
    pid = await loop.run_in_executor(
        None, submit, lambda dp: dp.probe_start(vip, port, proto, backend, method))
    try:
        deadline = loop.time() + timeout_ms / 1000
        while loop.time() < deadline:
            await asyncio.sleep(POLL_S)
            state = await loop.run_in_executor(None, submit, lambda dp: dp.probe_state(pid))
            if state != "pending":
                return state == "answered"
        return False
    finally:
        await loop.run_in_executor(None, submit, lambda dp: dp.probe_end(pid))


def _socket(ip: str, kind: int, iface: str | None) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, kind)
    try:
        if iface:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


async def _connect(ip: str, port: int, iface: str | None):
    s = _socket(ip, socket.SOCK_STREAM, iface)
    try:
        await asyncio.get_running_loop().sock_connect(s, (ip, port))
    except BaseException:
        s.close()
        raise
    return await asyncio.open_connection(sock=s)


async def probe(spec: HealthCheckSpec, ip: str, port: int, iface: str | None = None) -> bool:
    """One check of ip:port (through `iface` if given); True if healthy."""
    timeout = spec.timeout_ms / 1000
    try:
        if spec.type == NONE:
            return True
        if spec.type == UDP:
            return await asyncio.wait_for(_udp(ip, port, iface), timeout)
        reader, writer = await asyncio.wait_for(_connect(ip, port, iface), timeout)
        try:
            if spec.type == TCP:
                return True
            host = f"[{ip}]" if ":" in ip else ip
            writer.write(f"GET {spec.path} HTTP/1.0\r\nHost: {host}\r\n"
                         "User-Agent: pylb-health\r\n\r\n".encode())
            line = await asyncio.wait_for(reader.readline(), timeout)
            parts = line.split()
            return len(parts) >= 2 and parts[1] == str(spec.expect_status).encode()
        finally:
            writer.close()
    except (OSError, asyncio.TimeoutError, ValueError):
        return False


async def _udp(ip: str, port: int, iface: str | None) -> bool:
    """A datagram out, any datagram back (a port unreachable is a failure)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future = loop.create_future()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            if not answered.done():
                answered.set_result(True)

        def error_received(self, exc):
            if not answered.done():
                answered.set_result(False)
    s = _socket(ip, socket.SOCK_DGRAM, iface)
    try:
        s.connect((ip, port))
    except OSError:
        s.close()
        raise
    transport, _ = await loop.create_datagram_endpoint(Proto, sock=s)
    try:
        transport.sendto(b"pylb-health\n")
        return await answered
    finally:
        transport.close()


def probe_path(submit: Submit, ip: str) -> tuple[str | None, str]:
    """The kernel interface health probes of `ip` leave through: that of
    the port the dataplane routes ip out of, if it is up and carries
    the port's MAC (another process may have changed it); else (None,
    why not)."""
    def find(dp):
        try:
            r = dp.lookup(ip)
        except NotFound:
            return None, f"no route to {ip}"
        port = next((p for p in dp.ports() if r.nexthops and p.index == r.nexthops[0].port),
                    None)
        if port is None:
            return None, f"{ip} is not behind a port ({r.kind} route {r.prefix})"
        return port, ""
    port, why = submit(find)
    if port is None:
        return None, why
    iface = port.kernel_iface
    if not iface:
        return None, (f"port {port.name} has no kernel interface (kernel_iface): probes "
                      "leave only through the appliance's exception path")
    return (iface, "") if kernel.usable(iface, port.mac) else \
        (None, f"kernel interface {iface} of port {port.name} is missing, down, or not "
               f"carrying the port's MAC {port.mac}")


class HealthChecker:
    """`path(ip)`: the kernel interface to probe ip through, or (None, why
    not); None: probe through whatever the host routes (tests only).
    `submit`: runs f(dp) on the dataplane's thread, for data-path probes
    (None: none)."""

    def __init__(self, set_state: SetState, path: ProbePath | None = None,
                 submit: Submit | None = None):
        self._set_state = set_state
        self._path = path
        self._submit = submit
        self._loop = asyncio.new_event_loop()
        # (the check, the service's method) and the task of each backend
        self._tasks: dict[tuple[Key, Target], tuple[tuple[HealthCheckSpec, str], asyncio.Task]] = {}
        # up, down or unknown: a verdict shows once the dataplane has it;
        # unavailable: no exception path to probe through
        self.status: dict[tuple[Key, Target], str] = {}
        self._verdicts: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pylb-health",
                                        daemon=True)
        self._thread.start()
        self._applier = threading.Thread(target=self._apply_verdicts, name="pylb-health-set",
                                         daemon=True)
        self._applier.start()

    def watch(self, key: Key, spec: HealthCheckSpec | None, targets: list[Target],
              method: str = model.NAT) -> None:
        """Check these backends of a service (forwarding by `method`) with
        spec (None: stop checking the service). Backends whose check is
        unchanged keep their counts."""
        def apply():
            want = {(key, t): (spec, method) for t in targets} if spec else {}
            for k in [k for k in self._tasks if k[0] == key and want.get(k) != self._tasks[k][0]]:
                self._tasks.pop(k)[1].cancel()
                self.status.pop(k, None)
            for k, s in want.items():
                if k not in self._tasks:
                    self.status[k] = UNKNOWN
                    self._tasks[k] = (s, self._loop.create_task(self._run(k, s)))
        self._loop.call_soon_threadsafe(apply)

    async def _run(self, k: tuple[Key, Target], check: tuple[HealthCheckSpec, str]) -> None:
        (key, (ip, port)) = k
        spec, method = check
        # The data path's probe: to the port clients use.
        vip_port = key[1] or spec.port or port
        # (Not a tunnel's backend of the other family: the probe's packet
        # is the VIP's family, which such a backend cannot answer from.)
        via_vip = self._submit is not None and method in VIA_VIP and vip_port != 0 and \
            spec.type != NONE and (":" in ip) == (":" in key[0])
        good = bad = 0
        last = None
        me = asyncio.current_task()
        # While registered: on 3.11, wait_for can swallow a cancellation that
        # races its timeout, so the registration, not only cancel(), ends it.
        while self._tasks.get(k, (None, None))[1] is me:
            try:
                healthy = await self._probe_once(k, spec, method, via_vip, vip_port)
            except Exception as e:
                # Whatever went wrong around the probe (e.g. the dataplane's
                # thread slow to answer, as at a start under load) is a failed
                # probe: the checks go on, never frozen at their last verdict.
                log.warning("health: probe of %s:%d of %s:%d/%s failed: %r", ip, port, *key, e)
                healthy = False
            if healthy is None:                 # cannot be probed: counts start again
                good = bad = 0
                last = None
                await asyncio.sleep(spec.interval_ms / 1000)
                continue
            if healthy:
                good, bad = good + 1, 0
                verdict = model.UP if good >= spec.rise else None
            else:
                good, bad = 0, bad + 1
                verdict = model.DOWN if bad >= spec.fall else None
            # Sent when it changes, and again while it is not in force (the
            # dataplane refused it: _apply_verdicts logged why).
            if verdict and (last != verdict or self.status.get(k) != verdict):
                if last != verdict:
                    log.info("health: %s:%d of %s:%d/%s is %s", ip, port, *key, verdict)
                last = verdict
                self._verdicts.put((key, (ip, port), verdict))
            await asyncio.sleep(spec.interval_ms / 1000)

    async def _probe_once(self, k: tuple[Key, Target], spec: HealthCheckSpec, method: str,
                          via_vip: bool, vip_port: int) -> bool | None:
        """One probe of backend k: healthy or not; None if it cannot be
        probed (no path to it: said once, its status `unavailable`)."""
        (key, (ip, port)) = k
        iface = None
        if self._path is not None:
            iface, why = await asyncio.get_running_loop().run_in_executor(None, self._path, ip)
            if iface is None:
                if self.status.get(k) != UNAVAILABLE:
                    log.warning("health: %s:%d of %s:%d/%s cannot be probed: %s", ip, port,
                                *key, why)
                    self.status[k] = UNAVAILABLE
                return None
            if self.status.get(k) == UNAVAILABLE:
                self.status[k] = UNKNOWN
        return await probe(spec, ip, spec.port or port or key[1], iface) and \
            (not via_vip or await self._probe_vip(key, method, ip, vip_port, spec))

    async def _probe_vip(self, key: Key, method: str, ip: str, port: int,
                         spec: HealthCheckSpec) -> bool:
        try:
            return await probe_vip(self._submit, key, method, ip, port, spec.timeout_ms)
        except Exception as e:                  # e.g. no route to the backend (yet)
            log.debug("health: data-path probe of %s:%d for %s:%d/%s: %s", ip, port, *key, e)
            return False

    def _apply_verdicts(self) -> None:
        """Verdicts reach the dataplane from this thread, in order, so probes
        never wait for the main loop."""
        while (v := self._verdicts.get()) is not None:
            key, target, verdict = v
            try:
                self._set_state(key, target, verdict)
            except Exception as e:              # e.g. the service went away meanwhile
                log.warning("health: cannot set %s:%d %s: %s", *target, verdict, e)
                continue
            if (key, target) in self.status:    # still watched: the state is in place
                self.status[key, target] = verdict

    async def _cancel_all(self) -> None:
        tasks = [t for _, t in self._tasks.values()]
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
        self._verdicts.put(None)
        self._applier.join(5)


def checker(submit: Submit, anywhere: bool = False) -> Callable[[SetState], HealthChecker]:
    """What the domain (pylb.manager.Manager) makes its health checker with:
    probes leave through the exception path (probe_path), or, `anywhere`,
    through whatever the host routes (tests with loopback backends)."""
    return lambda set_state: HealthChecker(
        set_state, None if anywhere else lambda ip: probe_path(submit, ip), submit)
