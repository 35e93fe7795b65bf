"""Migration from IPVS: `ipvsadm-save -n` output and keepalived.conf's
virtual_server blocks become pylb's desired state (a model.Config, written
by `pylb config import ...` as a configuration file), with a report of
what does not map and why, one line per thing, naming the line it came
from. What maps:

  IPVS / keepalived          pylb
  -t / -u, protocol          proto tcp / udp
  -s, lb_algo: mh, sh        scheduler maglev, source (the same hashing)
               wrr, wlc      wrr, wlc
               rr, lc        wrr, wlc with equal weights (they ignore weights)
               sed, nq, lblc, lblcr, dh, fo, ovf:   reported; wlc or maglev
  -m / -g / -i, lb_kind      method nat / dr / tunnel (one per service)
  -p, persistence_timeout    persistence (seconds)
  -M, persistence_granularity  persistence_prefix
  -w, weight                 weight
  -x, uthreshold             max_connections
  TCP_CHECK, HTTP_GET        health_check tcp, http (path, status_code,
                             connect_port, connect_timeout, retry,
                             delay_loop)
  inhibit_on_failure         (pylb's way: a failed backend takes no new
                             connections and stays listed)

Fwmark and SCTP services, sorry servers, quorum, MISC_CHECK, SSL_GET's TLS,
digests, lower thresholds and VRRP instances are reported, not mapped.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pylb import model
from pylb.errors import InvalidArgument
from pylb.hostport import split_hostport
from pylb.model import BackendSpec, Config, HealthCheckSpec, ServiceSpec, SpecError

# IPVS's schedulers: pylb's, and whether weights count.
SCHEDULERS = {"mh": (model.MAGLEV, True), "sh": (model.SOURCE, True),
              model.WRR: (model.WRR, True), model.WLC: (model.WLC, True),
              "rr": (model.WRR, False), "lc": (model.WLC, False)}
NEAREST = {"sed": model.WLC, "nq": model.WLC, "lblc": model.WLC, "lblcr": model.WLC,
           "dh": model.MAGLEV, "fo": model.WRR, "ovf": model.WRR}
# ipvsadm's -m/-g/-i and keepalived's lb_kind (lowercased).
KINDS = {"m": model.NAT, model.NAT: model.NAT, "g": model.DR, model.DR: model.DR,
         "i": model.TUNNEL, "tun": model.TUNNEL}


@dataclass
class _Service:
    """A service as read, before it becomes a ServiceSpec."""
    where: str
    vip: str
    port: int
    proto: str
    scheduler: str = model.WLC          # IPVS's default
    weights: bool = True
    persistence: int = 0
    prefix: int = 0
    reals: list[tuple[str, str, int, int, str, int]] = field(default_factory=list)
    # (where, ip, port, weight, method, max_connections)
    check: HealthCheckSpec | None = None


@dataclass
class Imported:
    config: Config
    report: list[str]               # "WHERE: what: why"


def _mask_bits(where: str, mask: str, v6: bool, report: list[str]) -> int:
    try:
        if v6 or "." not in mask:
            return int(mask)
        return ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen
    except ValueError:
        report.append(f"{where}: persistence mask {mask!r}: not a netmask; the host is used")
        return 0


def _scheduler(where: str, name: str, svc: _Service, report: list[str]) -> None:
    if name in SCHEDULERS:
        svc.scheduler, svc.weights = SCHEDULERS[name]
        if not svc.weights:
            report.append(f"{where}: scheduler {name}: pylb has no weightless {name}; "
                          f"{svc.scheduler} with every weight 1 (0 stays 0)")
    elif name in NEAREST:
        svc.scheduler = NEAREST[name]
        report.append(f"{where}: scheduler {name}: not in pylb; {svc.scheduler} is the nearest")
    else:
        report.append(f"{where}: scheduler {name!r}: unknown; {svc.scheduler} kept")


def _specs(services: list[_Service], report: list[str]) -> Config:
    out = []
    for s in services:
        methods = sorted({r[4] for r in s.reals})
        method = methods[0] if methods else model.NAT
        if len(methods) > 1:
            method = max(methods, key=lambda m: sum(r[4] == m for r in s.reals))
            report.append(f"{s.where}: real servers forward by {', '.join(methods)}: pylb has "
                          f"one method per service; {method} for all")
        backends, seen = [], set()
        for where, ip, port, weight, _, max_conns in s.reals:
            if (ip, port) in seen:
                report.append(f"{where}: real server {ip}:{port} listed twice; the first kept")
                continue
            seen.add((ip, port))
            if not s.weights:
                weight = min(weight, 1)
            if method in (model.DR, model.TUNNEL) and port not in (0, s.port):
                report.append(f"{where}: real server {ip}:{port}: {method} cannot change the "
                              f"port; {s.port} (the service's)")
            port = 0 if method in (model.DR, model.TUNNEL) else port
            backends.append(BackendSpec(ip, port, min(weight, model.WEIGHT_MAX), model.UP,
                                        max_conns))
        try:
            out.append(ServiceSpec(s.vip, s.port, s.proto, method=method, scheduler=s.scheduler,
                                   persistence=s.persistence, persistence_prefix=s.prefix,
                                   backends=tuple(backends), health_check=s.check))
        except SpecError as e:
            report.append(f"{s.where}: service {s.vip}:{s.port}: {e}; left out")
    keys = set()
    unique = []
    for s in out:
        if s.key in keys:
            report.append(f"service {s.name()} defined twice; the first kept")
            continue
        keys.add(s.key)
        unique.append(s)
    return Config(path="(imported)", services=tuple(unique))


def _hostport(text: str) -> tuple[str, int]:
    host, port = split_hostport(text)
    return str(ipaddress.ip_address(host)), port


LONG = {"--tcp-service": "t", "--udp-service": "u", "--fwmark-service": "f", "--scheduler": "s",
        "--persistent": "p", "--netmask": "M", "--real-server": "r", "--weight": "w",
        "--u-threshold": "x", "--l-threshold": "y", "--gatewaying": "g", "--ipip": "i",
        "--masquerading": "m", "--sched-flags": "b", "--ops": "o"}
WITH_VALUE = set("tufsMrwxyb") | {"--sctp-service", "--pe", "--tun-type", "--tun-port"}


def _options(words: list[str]) -> dict[str, str]:
    """ipvsadm's options, long ones as their short letter: {letter: value}
    ('' for a flag; -p's value is optional)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        o = LONG.get(words[i], words[i][1:] if not words[i].startswith("--") else words[i])
        takes = o in WITH_VALUE or (o == "p" and i + 1 < len(words) and words[i + 1].isdigit())
        out[o] = words[i + 1] if takes and i + 1 < len(words) else ""
        i += 2 if takes else 1
    return out


def ipvsadm(text: str, name: str = "ipvsadm") -> Imported:
    """`ipvsadm-save -n` (or `ipvsadm -S -n`): -A lines add services, -a
    lines their real servers."""
    report: list[str] = []
    services: dict[tuple[str, int, str], _Service] = {}
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{n}"
        words = shlex.split(line, comments=True)
        if not words:
            continue
        cmd, opts = words[0], words[1:]
        if cmd not in ("-A", "--add-service", "-a", "--add-server"):
            report.append(f"{where}: {cmd}: not a service or real server; skipped")
            continue
        args = _options(opts)
        if "f" in args or "--sctp-service" in args:
            report.append(f"{where}: fwmark and SCTP services have no pylb equivalent; skipped")
            continue
        proto = model.UDP if "u" in args else model.TCP
        addr = args.get("t") or args.get("u")
        if not addr:
            report.append(f"{where}: no -t or -u address; skipped")
            continue
        try:
            vip, port = _hostport(addr)
        except ValueError as e:
            report.append(f"{where}: {addr}: {e}; skipped")
            continue
        key = (vip, port, proto)
        if cmd in ("-A", "--add-service"):
            s = services.setdefault(key, _Service(where, vip, port, proto))
            if "s" in args:
                _scheduler(where, args["s"], s, report)
            if "p" in args:
                s.persistence = int(args["p"] or 300)       # ipvsadm's default
            mask = args.get("M")
            if mask:
                s.prefix = _mask_bits(where, mask, ":" in vip, report)
            for k, what in (("o", "one-packet scheduling"), ("b", "scheduler flags"),
                            ("--pe", "persistence engines")):
                if k in args:
                    report.append(f"{where}: {what} ({args[k] or 'on'}): not in pylb; ignored")
            continue
        s = services.get(key)
        if s is None:
            report.append(f"{where}: real server of {vip}:{port}/{proto}, a service not added "
                          "before; skipped")
            continue
        real = args.get("r")
        try:
            ip, rport = _hostport(real or "")
        except ValueError as e:
            report.append(f"{where}: real server {real!r}: {e}; skipped")
            continue
        kind = next((KINDS[k] for k in args if k in KINDS), model.DR)     # -g: the default
        weight = int(args.get("w") or 1)
        upper = int(args.get("x") or 0)
        if args.get("y"):
            report.append(f"{where}: lower threshold (-y): pylb takes new connections again "
                          "as soon as the backend is below max_connections")
        # --tun-type gue (ipvsadm's name is pylb's): the gue method, to port 6080.
        if kind == model.TUNNEL and args.get("--tun-type") == model.GUE:
            kind = model.GUE
            if args.get("--tun-port") not in (None, "6080"):
                report.append(f"{where}: --tun-port {args['--tun-port']}: pylb's GUE goes to "
                              "port 6080; set the backend to receive it there")
        for k in ("--tun-type", "--tun-port", "--tun-nocsum", "--tun-csum", "--tun-remcsum"):
            if k in args and not (kind == model.GUE and k in ("--tun-type", "--tun-port")):
                report.append(f"{where}: {k}: pylb's tunnel is IPIP (or GUE); ignored")
        s.reals.append((where, ip, rport or port, weight, kind, upper))
    return Imported(_specs(list(services.values()), report), report)


# keepalived.conf

@dataclass
class _Block:
    key: str
    args: list[str]
    line: int
    body: list["_Block"] | None = None

    def get(self, key: str) -> "_Block | None":
        return next((b for b in self.body or () if b.key == key), None)

    def value(self, key: str, default: Any = None) -> Any:
        b = self.get(key)
        return b.args[0] if b is not None and b.args else default


def _tokens(text: str):
    """(word, line): braces are words; comments start at # or !."""
    for n, line in enumerate(text.splitlines(), 1):
        line = re.split(r"[#!]", line, maxsplit=1)[0]
        for w in re.findall(r'"[^"]*"|[{}]|[^\s{}"]+', line):
            yield w.strip('"'), n


def _parse(text: str) -> list[_Block]:
    stack: list[list[_Block]] = [[]]
    current: _Block | None = None
    last_line = 0
    for w, n in _tokens(text):
        if n != last_line:
            current = None
        last_line = n
        if w == "{":
            if current is None or not stack[-1]:
                raise InvalidArgument(f"line {n}: '{{' opens nothing")
            current.body = []
            stack.append(current.body)
            current = None
        elif w == "}":
            if len(stack) == 1:
                raise InvalidArgument(f"line {n}: '}}' closes nothing")
            stack.pop()
            current = None
        elif current is None:
            current = _Block(w, [], n)
            stack[-1].append(current)
        else:
            current.args.append(w)
    if len(stack) != 1:
        raise InvalidArgument("a '{' is never closed")
    return stack[0]


def _seconds(b: _Block, key: str, default: float) -> float:
    try:
        return float(b.value(key, default))
    except (TypeError, ValueError):
        return default


def _check(name: str, rs: _Block, vs: _Block, report: list[str]) -> HealthCheckSpec | None:
    """A real server's check (name: the file's, for the report)."""
    interval = int(_seconds(vs, "delay_loop", 60) * 1000)
    for b in rs.body or ():
        if b.key in ("TCP_CHECK", "HTTP_GET", "SSL_GET"):
            timeout = int(_seconds(b, "connect_timeout", 5) * 1000)
            retry = int(_seconds(b, "retry", _seconds(b, "nb_get_retry", 1)))
            kw = dict(interval_ms=max(interval, 100), timeout_ms=max(min(timeout, interval), 100),
                      rise=1, fall=min(retry + 1, 100),
                      port=int(b.value("connect_port", 0) or 0))
            if b.get("delay_before_retry") is not None:
                report.append(f"{name}:{b.line}: delay_before_retry: pylb checks every "
                              "delay_loop, failed or not")
            if b.key == "TCP_CHECK":
                return HealthCheckSpec(type=model.CHECK_TCP, **kw)
            if b.key == "SSL_GET":
                report.append(f"{name}:{b.line}: SSL_GET: pylb's HTTP check has no TLS; "
                              "a TCP check of the port instead")
                return HealthCheckSpec(type=model.CHECK_TCP, **kw)
            urls = [u for u in b.body or () if u.key == "url"]
            if len(urls) > 1:
                report.append(f"{name}:{b.line}: {len(urls)} urls: pylb checks the first")
            url = urls[0] if urls else None
            if url is not None and url.get("digest") is not None:
                report.append(f"{name}:{url.line}: digest: pylb checks the status only")
            return HealthCheckSpec(type=model.CHECK_HTTP,
                                   path=url.value("path", "/") if url else "/",
                                   expect_status=int(url.value("status_code", 200)) if url else 200,
                                   **kw)
        if b.key in ("MISC_CHECK", "SMTP_CHECK", "DNS_CHECK", "BFD_CHECK", "PING_CHECK",
                     "UDP_CHECK", "FILE_CHECK"):
            report.append(f"{name}:{b.line}: {b.key}: no pylb equivalent; not checked")
    return None


def keepalived(text: str, name: str = "keepalived.conf") -> Imported:
    """keepalived.conf's virtual_server blocks (the rest is reported)."""
    report: list[str] = []
    try:
        blocks = _parse(text)
    except InvalidArgument as e:
        raise InvalidArgument(f"{name}: {e}") from None
    services: list[_Service] = []
    for b in blocks:
        where = f"{name}:{b.line}"
        if b.key in ("global_defs",):
            continue
        if b.key != "virtual_server":
            report.append(f"{where}: {b.key}: not a virtual server (pylb's fleet uses BGP and "
                          "connection sync; see docs/fleet.md); skipped")
            continue
        if len(b.args) != 2 or b.args[0] in ("fwmark", "group"):
            report.append(f"{where}: virtual_server {' '.join(b.args)}: fwmark and group "
                          "services have no pylb equivalent; skipped")
            continue
        try:
            vip = str(ipaddress.ip_address(b.args[0]))
            port = int(b.args[1])
        except ValueError:
            report.append(f"{where}: virtual_server {' '.join(b.args)}: not ADDRESS PORT; "
                          "skipped")
            continue
        proto = (b.value("protocol", "TCP") or "TCP").lower()
        if proto not in model.PROTOS:
            report.append(f"{where}: protocol {proto}: not in pylb; skipped")
            continue
        s = _Service(where, vip, port, proto)
        algo = b.get("lb_algo") or b.get("lvs_sched")
        if algo is not None and algo.args:
            _scheduler(f"{name}:{algo.line}", algo.args[0], s, report)
        kind = (b.value("lb_kind") or b.value("lvs_method") or "NAT").lower()
        method = KINDS.get(kind)
        if method is None:
            report.append(f"{where}: lb_kind {kind}: unknown; nat")
            method = model.NAT
        if b.get("persistence_timeout"):
            s.persistence = int(_seconds(b, "persistence_timeout", 360))
        if b.get("persistence_granularity"):
            s.prefix = _mask_bits(where, b.value("persistence_granularity"), ":" in vip, report)
        for key in ("sorry_server", "quorum", "hysteresis", "quorum_up", "quorum_down",
                    "virtualhost", "ops", "alpha", "omega"):
            if b.get(key) is not None:
                report.append(f"{name}:{b.get(key).line}: {key}: no pylb equivalent; ignored")
        checks = []
        for rs in (x for x in b.body or () if x.key == "real_server"):
            rwhere = f"{name}:{rs.line}"
            try:
                ip = str(ipaddress.ip_address(rs.args[0]))
                rport = int(rs.args[1]) if len(rs.args) > 1 else port
            except (ValueError, IndexError):
                report.append(f"{rwhere}: real_server {' '.join(rs.args)}: not ADDRESS PORT; "
                              "skipped")
                continue
            if rs.get("lthreshold") is not None:
                report.append(f"{rwhere}: lthreshold: pylb takes new connections again as "
                              "soon as the backend is below max_connections")
            s.reals.append((rwhere, ip, rport, int(rs.value("weight", 1)), method,
                            int(rs.value("uthreshold", 0))))
            checks.append((rwhere, _check(name, rs, b, report)))
        s.check = checks[0][1] if checks else None
        if len({c for _, c in checks}) > 1:
            report.append(f"{where}: real servers are checked differently: pylb has one check "
                          f"per service; that of {checks[0][0]}")
        services.append(s)
    return Imported(_specs(services, report), report)


FORMATS = {"ipvsadm": ipvsadm, "keepalived": keepalived}
