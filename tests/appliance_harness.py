"""Run the real `pylb run` in a subprocess and kernel hosts in network namespaces."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from pylb import errors, telemetry
from pylb.errors import PylbError
from pylb.profile import file_prefix

_seq = itertools.count()
_ERRORS = {name: getattr(errors, name) for name in dir(errors)
           if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), PylbError)}


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


class Netns:
    """A network namespace holding one interface moved in from the host."""

    def __init__(self, name: str, iface: str, address: str):
        self.name, self.iface = name, iface
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        try:
            sh("ip", "link", "set", iface, "netns", name)
            self.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            sh("ip", "-n", name, "addr", "add", address, "dev", iface)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            sh("ip", "-n", name, "link", "set", iface, "up")
        except BaseException:
            self.close()
            raise

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.name, *cmd, check=check, timeout=timeout)

    def ping(self, dst: str, count: int, interval: float = 0.05) -> int:
        """Echo replies received out of `count`."""
        out = self.run("ping", "-c", str(count), "-i", str(interval), "-W", "1", dst,
                       check=False).stdout
        for line in out.splitlines():
            if "received" in line:
                return int(line.split(",")[1].split()[0])
        return 0

    def neighbour_mac(self, ip: str) -> str | None:
        out = sh("ip", "-n", self.name, "neigh", "show", ip, "dev", self.iface).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def close(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Appliance:
    """`pylb run` on a generated TAP profile with unique instance and interface names."""

    def __init__(self, ports: int = 2, workers: str = "1", cpu_map: str | None = None,
                 kernel: bool = False, driver: bool = False, netns: str | None = None,
                 config: str | None = None, args: tuple = (), **extra):
        """`kernel`: give each port an exception path (kernel interface ki<..>).
        `driver`: run through tests/appliance_driver.py, so that `call` can use
        the Dataplane API of the running appliance. `netns`: run it in that
        (existing) network namespace, as if on a host of its own: its TAPs
        and kernel interfaces appear there."""
        self.netns = netns
        self.config = config            # a configuration file given to pylb run
        self.args = tuple(args)         # more arguments of pylb run
        n = next(_seq)
        self.instance = f"t{os.getpid() % 10000}x{n}"
        self.prefix = file_prefix(self.instance)
        self.ifaces = [f"pt{os.getpid() % 10000}x{n}p{i}" for i in range(ports)]
        lcores = {"main": 0, "workers": workers}
        if cpu_map:
            lcores["cpu_map"] = cpu_map
        self.kernel_ifaces = [f"k{os.getpid() % 10000}x{n}p{i}" for i in range(ports)] if kernel else []
        prof = {"name": self.instance, "lcores": lcores,
                "memory": {"hugepages": True, "size_mb": 192}, "mbufs": 4095,
                "ports": [{"name": f"p{i}", "vdev": f"net_tap{i},iface={ifc}",
                           "addresses": [f"10.{100 + n % 100}.{i}.1/24"],
                           **({"kernel_iface": self.kernel_ifaces[i]} if kernel else {})}
                          for i, ifc in enumerate(self.ifaces)], **extra}
        self.net = f"10.{100 + n % 100}"
        self.driver = driver
        fd, self.profile = tempfile.mkstemp(prefix="pylb-profile-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(prof, f)
        self.addresses = [f"10.{100 + n % 100}.{i}.1" for i in range(ports)]
        self.grpc = f"unix:/run/pylb/{self.instance}.sock"     # pylb run's default
        self.proc: subprocess.Popen | None = None
        self.stderr: list[str] = []

    def client_address(self, port: int) -> str:
        return self.addresses[port].rsplit(".", 1)[0] + ".2/24"

    def start(self, timeout: float = 60) -> "Appliance":
        cmd = ([sys.executable, os.path.join(os.path.dirname(__file__), "appliance_driver.py"),
                self.profile] if self.driver else
               [sys.executable, "-m", "pylb", "run", "--profile", self.profile])
        if self.config:
            cmd += ["--config", self.config]
        cmd += self.args
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE if self.driver else subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.driver else subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.stderr.append(line)
                if "running:" in line:
                    ready.set()
        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("pylb did not start:\n" + "".join(self.stderr))
        return self

    def call(self, method: str, /, *args, **kwargs):
        """Call Dataplane.`method` in the running appliance (driver mode)."""
        return self.batch([(method, args, kwargs)])[0]

    def batch(self, calls):
        """Several calls applied in one pass of the appliance's main loop."""
        reqs = [{"call": m, "args": list(a), "kwargs": k} for m, a, k in calls]
        self.proc.stdin.write(json.dumps({"batch": reqs}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if "error" in out:
            raise _ERRORS.get(out["error"], PylbError)(out["message"])
        return out["ok"]

    def stats(self) -> dict[str, dict[str, int]]:
        return telemetry.query(self.prefix, "/pylb/stats")

    def seen(self, kind: str = "drops") -> dict[str, int]:
        """stats()[kind] without the zeros: what a failed test reports."""
        return {k: v for k, v in self.stats()[kind].items() if v}

    def api(self):
        """A gRPC stub of the appliance's API (the domain): objects an
        operator lists (services, VIPs) are made through it."""
        import grpc
        from pylb.v1 import pylb_pb2_grpc as pb_grpc
        channel = grpc.insecure_channel(self.grpc)
        return pb_grpc.LoadBalancerStub(channel)

    def ports(self) -> dict:
        from pylb.v1 import pylb_pb2 as pb
        return {p.name: {"device": p.device, "mac": p.mac, "link_up": p.link_up,
                         "addresses": list(p.addresses), "kernel_iface": p.kernel_iface}
                for p in self.api().ListPorts(pb.ListPortsRequest()).ports}

    def neighbours(self) -> list[dict]:
        from pylb.v1 import pylb_pb2 as pb
        return [{"ip": n.address, "port": n.port, "mac": n.mac, "state": n.state}
                for n in self.api().ListNeighbours(pb.ListNeighboursRequest()).neighbours]

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Say where it was stuck before killing it: each thread's kernel
            # wait channel and the appliance's log.
            where = []
            for task in sorted(os.listdir(f"/proc/{self.proc.pid}/task")):
                try:
                    with open(f"/proc/{self.proc.pid}/task/{task}/comm") as c, \
                            open(f"/proc/{self.proc.pid}/task/{task}/wchan") as w:
                        where.append(f"{c.read().strip()}: {w.read().strip()}")
                except OSError:
                    pass
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"pylb did not stop within {timeout} s; threads: "
                                 + "; ".join(where) + "\nlog:\n" + "".join(self.stderr[-40:]))
        self.proc = None
        # Its connection snapshot (what a restart of this instance restores).
        try:
            os.unlink(f"/run/pylb/{self.instance}.conns")
        except FileNotFoundError:
            pass
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        os.unlink(self.profile)


class Router:
    """A router in namespace `ns.name`: BIRD 2 peering by eBGP (AS 65000)
    with appliances, BFD on, and what it learns installed in the
    namespace's kernel table with equal-cost multipath (`merge paths`)."""

    def __init__(self, ns: Netns, router_id: str, peers: list[tuple[str, str, int]]):
        """`peers`: (local address, the appliance's address, its AS)."""
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="pylb-router-")
        self.sock = os.path.join(self.dir, "bird.ctl")
        lines = [f'log "{self.dir}/bird.log" all;', f"router id {router_id};",
                 "protocol device { scan time 1; }",
                 'protocol bfd { interface "*" { min rx interval 100 ms; '
                 "min tx interval 100 ms; multiplier 3; }; }",
                 "protocol kernel { merge paths on; ipv4 { import none; export all; }; }",
                 "protocol kernel { merge paths on; ipv6 { import none; export all; }; }"]
        for i, (local, peer, asn) in enumerate(peers):
            fam = "ipv6" if ":" in peer else "ipv4"
            lines += [f"protocol bgp a{i} {{ local {local} as 65000; neighbor {peer} as {asn};",
                      "  hold time 3; keepalive time 1; connect retry time 1; bfd on;",
                      "  error wait time 1, 5;",
                      f"  {fam} {{ import all; export none; }}; }}"]
        with open(os.path.join(self.dir, "bird.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, "bird", "-f", "-c",
                                      os.path.join(self.dir, "bird.conf"), "-s", self.sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # What the peers say they announce, and why not (a str), added to
        # a wait's failure when set.
        self.why = None

    def next_hops(self, prefix: str) -> list[str]:
        """The gateways of the namespace's kernel route to `prefix` (several: ECMP)."""
        out = sh("ip", "-n", self.ns.name, *(("-6",) if ":" in prefix else ()), "route", "show",
                 prefix, check=False).stdout.split()
        return [out[i + 1] for i, w in enumerate(out) if w == "via"]

    def wait(self, prefix: str, cond, timeout: float = 30) -> float:
        """Seconds until cond(next hops) holds; AssertionError after `timeout`."""
        t0 = time.monotonic()
        while not cond(self.next_hops(prefix)):
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"router: {prefix} via {self.next_hops(prefix)}\n"
                                     + self.birdc("show", "protocols", "all")
                                     + (self.why() if self.why is not None else ""))
            time.sleep(0.05)
        return time.monotonic() - t0

    def birdc(self, *cmd: str) -> str:
        return sh("birdc", "-s", self.sock, *cmd, check=False).stdout

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


# Keeps N TCP connections open; on each line from stdin, talks on all of
# them and prints who answered each (or "broken").
MANY = """
import json, socket, sys
wait = float(sys.argv[4]) if len(sys.argv) > 4 else 10
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2])), wait) for _ in range(int(sys.argv[3]))]
print(json.dumps([s.getsockname()[1] for s in conns]), flush=True)
for line in sys.stdin:
    out = []
    for s in conns:
        try:
            s.sendall(b"x")
            out.append(s.recv(100).decode().split()[0])
        except OSError:
            out.append("broken")
    print(json.dumps(out), flush=True)
"""


class Many:
    """`n` long-lived TCP connections (MANY) from namespace `ns` to
    vip:port: `ports`, their client ports; `talk()`, who answered each."""

    def __init__(self, ns: str, vip: str, port: int = 9000, n: int = 20, wait: float = 60,
                 why=None):
        """`why`: what to add (a str) if they cannot all connect."""
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", MANY, vip,
                                      str(port), str(n), str(wait)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise AssertionError(f"{n} clients could not all connect to {vip}:{port}: "
                                 f"{self.proc.stderr.read().strip().splitlines()[-1:]}"
                                 + (why() if why is not None else ""))
        self.ports = set(json.loads(line))

    def talk(self) -> list[str]:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def teardown(app: Appliance, procs, namespaces) -> None:
    """Kill a lab's processes, stop its appliance, delete its namespaces."""
    for p in procs:
        p.kill()
        p.wait()
    app.stop()
    for ns in namespaces:
        sh("ip", "netns", "del", ns, check=False)


def dual_stack(app: Appliance) -> str:
    """Give the (not yet started) appliance's ports IPv6 addresses beside
    their IPv4 ones: port i has net.i.1/24 and fd00:K:i::1/64; K (net's
    second number)."""
    k = app.net.split(".")[1]
    with open(app.profile) as f:
        prof = yaml.safe_load(f)
    for i, port in enumerate(prof["ports"]):
        port["addresses"] = [f"{app.net}.{i}.1/24", f"fd00:{k}:{i}::1/64"]
    with open(app.profile, "w") as f:
        yaml.safe_dump(prof, f)
    return k


class Ends:
    """A two-port appliance with dual-stack ports (net.i.1/24, fd00:K:i::1/64)
    and a namespace at each end: the client C on p0 (net.0.2, fd00:K:0::2) and
    the backend B on p1 (net.1.2, fd00:K:1::2), each with its TAP and lo;
    `routed`: the ends whose default routes go through the appliance.
    Subclasses set up the rest in `setup()`; `serve()` starts a process in a
    namespace that prints "ready"; `close()` undoes everything."""

    def __init__(self, routed=("C", "B"), **appliance):
        self.app = Appliance(**appliance)
        self.net = net = self.app.net
        self.k = k = dual_stack(self.app)
        self.addr = {(end, 4): f"{net}.{i}.2" for i, end in enumerate("CB")} | \
            {(end, 6): f"fd00:{k}:{i}::2" for i, end in enumerate("CB")}
        self.port_addr = {(end, 4): f"{net}.{i}.1" for i, end in enumerate("CB")} | \
            {(end, 6): f"fd00:{k}:{i}::1" for i, end in enumerate("CB")}
        tag = self.app.instance
        self.ns = {"C": f"C{tag}", "B": f"B{tag}"}
        self.procs: list[subprocess.Popen] = []
        try:
            self.app.start()
            for i, end in enumerate("CB"):
                ns, dev = self.ns[end], self.app.ifaces[i]
                sh("ip", "netns", "del", ns, check=False)
                sh("ip", "netns", "add", ns)
                sh("ip", "link", "set", dev, "netns", ns)
                sh("ip", "-n", ns, "addr", "add", f"{self.addr[end, 4]}/24", "dev", dev)
                sh("ip", "-n", ns, "addr", "add", f"{self.addr[end, 6]}/64", "dev", dev, "nodad")
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                if end in routed:
                    sh("ip", "-n", ns, "route", "add", "default", "via", self.port_addr[end, 4])
                    sh("ip", "-n", ns, "-6", "route", "add", "default", "via",
                       self.port_addr[end, 6])
            self.setup()
        except BaseException:
            self.close()
            raise

    def setup(self) -> None:
        pass

    def serve(self, end: str, code: str) -> None:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[end], sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready"

    def run(self, end: str, code: str, *args: str, timeout: float = 120) -> str:
        return sh("ip", "netns", "exec", self.ns[end], sys.executable, "-c", code, *args,
                  timeout=timeout).stdout

    def close(self) -> None:
        teardown(self.app, self.procs, self.ns.values())
