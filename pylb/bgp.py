"""Announcing VIPs by BGP: the speaker (`Bird`: BIRD 2, from the
distribution, driven through its configuration file and its control
socket). Which VIPs to announce is the domain's decision
(model.announcements, through the manager).

Why BIRD 2: a maintained, packaged daemon with BFD built in (a dead
appliance leaves its routers' ECMP sets in a few hundred milliseconds, not
a hold time), equal-cost multipath on the router side (`merge paths`), and
a configuration that is reloaded in place: announcing or withdrawing one VIP
leaves the sessions up. pylb writes that configuration, starts BIRD as its
own child (it dies with pylb: a killed appliance stops answering BFD), and
reads the sessions' state from `birdc`. BIRD talks to the routers from the
appliance's exception path: its sessions bind to a port's address, which the
port's kernel interface carries.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from pylb import model
from pylb.errors import ConfigError, FailedPrecondition

log = logging.getLogger("pylb")

# A backup route's AS path is this much longer: routers prefer the owner's
# while it is announced (BGP's shorter path), and never merge the two.
BACKUP_PREPEND = 3

@dataclass(frozen=True)
class Peer:
    name: str               # BIRD's protocol name: peer0, peer1, ...
    address: str
    remote_as: int
    state: str              # BIRD's: Idle, Connect, Active, OpenSent, OpenConfirm, Established
    info: str               # BIRD's last error or status line
    bfd: str                # the BFD session's state (Up, Down, Init, AdminDown), "" if none


def _pdeathsig() -> None:
    """In the child: killed with SIGKILL when pylb dies (a killed appliance
    must stop answering its routers at once)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)           # PR_SET_PDEATHSIG
    os.setsid()                             # not in pylb's process group (Ctrl-C)


class Bird:
    """BIRD 2 as the appliance's BGP speaker, for the profile's `bgp`
    settings (model.BgpSettings) with the ports' kernel interfaces and
    addresses (`ports`: name -> (kernel interface, [addresses]))."""

    def __init__(self, settings: model.BgpSettings, ports: dict, run_dir: str):
        self.s = settings
        self.ports = ports
        self.dir = run_dir
        self.conf = os.path.join(run_dir, "bird.conf")
        self.sock = os.path.join(run_dir, "bird.ctl")
        self.proc: subprocess.Popen | None = None
        self.prefixes: tuple[str, ...] = ()
        self.backups: tuple[str, ...] = ()
        for p in settings.peers:
            if p.port not in ports or not ports[p.port][0]:
                raise ConfigError(f"bgp peer {p.address}: port {p.port} has no kernel_iface "
                                  "(BGP leaves through the exception path)")
            if self._local(p) is None:
                raise ConfigError(f"bgp peer {p.address}: port {p.port} has no address on the "
                                  "peer's network")

    def _local(self, p: model.BgpPeerSpec) -> str | None:
        """The port's address on the peer's network (the session's source)."""
        peer = ipaddress.ip_address(p.address)
        for cidr in self.ports[p.port][1]:
            iface = ipaddress.ip_interface(cidr)
            if peer in iface.network:
                return str(iface.ip)
        return None

    def render(self) -> str:
        s = self.s
        router_id = s.router_id or next(
            (str(ipaddress.ip_interface(a).ip) for _, addrs in self.ports.values() for a in addrs
             if ipaddress.ip_interface(a).version == 4), "")
        def family(prefixes, v):
            return [p for p in prefixes or () if ipaddress.ip_network(p).version == v]
        lines = [f'log "{os.path.join(self.dir, "bird.log")}" {{ info, remote, warning, error, '
                 'auth, fatal, bug };',
                 f"router id {router_id};",
                 "protocol device { scan time 2; }"]
        ifaces = sorted({self.ports[p.port][0] for p in s.peers if p.bfd})
        if ifaces:
            lines.append("protocol bfd {")
            for i in ifaces:
                lines.append(f'  interface "{i}" {{ min rx interval {s.bfd_interval_ms} ms; '
                             f"min tx interval {s.bfd_interval_ms} ms; "
                             f"multiplier {s.bfd_multiplier}; }};")
            lines.append("}")
        for v in (4, 6):
            for proto, routes in (("vips", self.prefixes), ("backups", self.backups)):
                lines.append(f"protocol static {proto}_ipv{v} {{ ipv{v};")
                lines += [f"  route {r} blackhole;" for r in family(routes, v)]
                lines.append("}")
        prepend = " ".join([f"bgp_path.prepend({s.local_as});"] * BACKUP_PREPEND)
        for i, p in enumerate(s.peers):
            fam = f"ipv{ipaddress.ip_address(p.address).version}"
            lines += [f"protocol bgp peer{i} {{",
                      f"  local {self._local(p)} as {s.local_as};",
                      f"  neighbor {p.address} as {p.remote_as};",
                      "  strict bind on;",
                      f"  hold time {p.hold_time}; keepalive time {max(1, p.hold_time // 3)};",
                      "  connect retry time 1; error wait time 1, 4;",
                      f"  bfd {'on' if p.bfd else 'off'};",
                      f"  {fam} {{ import none; next hop self; export filter {{",
                      f"    if proto = \"vips_{fam}\" then accept;",
                      f"    if proto = \"backups_{fam}\" then {{ {prepend} accept; }}",
                      "    reject; };",
                      "  };",
                      "}"]
        return "\n".join(lines) + "\n"

    def _write(self) -> None:
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(self.render())
        os.replace(tmp, self.conf)

    def birdc(self, *cmd: str) -> str:
        r = subprocess.run(["birdc", "-s", self.sock, *cmd], capture_output=True, text=True,
                           timeout=10)
        if r.returncode != 0:
            raise FailedPrecondition(f"birdc {' '.join(cmd)}: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    def start(self) -> None:
        if shutil.which("bird") is None or shutil.which("birdc") is None:
            raise ConfigError("bgp: BIRD 2 is needed (the Debian package bird2: "
                              "apt-get install bird2)")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self._write()
        check = subprocess.run(["bird", "-p", "-c", self.conf], capture_output=True, text=True)
        if check.returncode != 0:
            raise ConfigError(f"bgp: BIRD refuses its configuration: {check.stderr.strip()}")
        self.proc = subprocess.Popen(["bird", "-f", "-c", self.conf, "-s", self.sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=_pdeathsig)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read() if self.proc.poll() is not None else "no socket"
                raise ConfigError(f"bgp: BIRD did not start: {err.strip()}")
            time.sleep(0.05)

    def announce(self, prefixes, backups=()) -> None:
        """Announce exactly `prefixes`, and `backups` with the AS path
        prepended BACKUP_PREPEND times (a reload: the sessions stay up). A
        BIRD that cannot reload is logged, not raised: the change that
        moved the announcements is made; the next one tries again."""
        want = (tuple(sorted(prefixes)), tuple(sorted(backups)))
        if want == (self.prefixes, self.backups):
            return
        self.prefixes, self.backups = want
        if self.proc is None:
            return
        try:
            self._write()
            self.birdc("configure")
        except (OSError, subprocess.TimeoutExpired, FailedPrecondition) as e:
            log.error("bgp: announcing %s failed: %s", ", ".join(sum(want, ())) or "nothing", e)
            self.prefixes = self.backups = None

    def peers(self) -> list[Peer]:
        if self.proc is None or self.proc.poll() is not None:
            return [Peer(f"peer{i}", p.address, p.remote_as, "Down", "BIRD is not running", "")
                    for i, p in enumerate(self.s.peers)]
        protocols = {}
        for line in self.birdc("show", "protocols").splitlines():
            m = PROTOCOL_LINE.match(line)
            if m:
                protocols[m["name"]] = (m["state"], m["info"].strip())
        bfd = {}
        for line in self.birdc("show", "bfd", "sessions").splitlines():
            f = line.split()
            if len(f) >= 3 and _is_ip(f[0]):
                bfd[f[0]] = f[2]
        out = []
        for i, p in enumerate(self.s.peers):
            state, info = protocols.get(f"peer{i}", ("?", ""))
            session = info.split()[0] if info else state
            out.append(Peer(f"peer{i}", p.address, p.remote_as, session, info,
                            bfd.get(p.address, "") if p.bfd else ""))
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# birdc's `show protocols`: name, protocol, table, state, since (a time, or
# a date and a time), info (Established, Active, ... and the last error).
PROTOCOL_LINE = re.compile(r"^(?P<name>\S+)\s+BGP\s+\S+\s+(?P<state>\S+)\s+"
                           r"(?:\d{4}-\d\d-\d\d\s+)?\S+\s*(?P<info>.*)$")


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False
