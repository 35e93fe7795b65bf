"""The `pylb` command: run the appliance, check the host, read a running appliance."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from pylb import __version__
from pylb.errors import InvalidArgument, PylbError

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def _fail(msg: str, code: int) -> int:
    print(f"pylb: error: {msg}", file=sys.stderr)
    return code


def cmd_run(args) -> int:
    from pylb import appliance
    from pylb.profile import load_profile

    profile = load_profile(args.profile)
    config = None
    if args.config:
        from pylb.config import load_config
        config = load_config(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    grpc_address = None if args.grpc == "none" else \
        args.grpc or appliance.grpc_default(profile, args.instance)
    tls = None
    if args.tls_cert or args.tls_key:
        from pylb.server import Tls

        def read(path):
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
        if not (args.tls_cert and args.tls_key):
            raise InvalidArgument("TLS needs both --tls-cert and --tls-key")
        tls = Tls(read(args.tls_cert), read(args.tls_key),
                  read(args.tls_client_ca) if args.tls_client_ca else None,
                  frozenset(args.grpc_admin or ()))
    appliance.run(profile, stop, instance=args.instance, config=config, grpc_address=grpc_address,
                  metrics_address=args.metrics, reload=reload, config_path=args.config,
                  grpc_tls=tls)
    return 0


def cmd_doctor(args) -> int:
    from pylb import doctor

    report = doctor.diagnose()
    print(json.dumps(report.as_dict(), indent=2) if args.json else doctor.render(report))
    return 0 if report.ready else EXIT_FAILURE


def cmd_profile_check(args) -> int:
    from pylb.profile import load_profile

    p = load_profile(args.path)
    print(f"{args.path}: ok: instance {p.name}, main lcore {p.main_lcore}, workers "
          f"{','.join(map(str, p.workers))}, {len(p.ports)} port(s), "
          f"{'hugepages' if p.hugepages else 'no hugepages'} {p.size_mb} MiB")
    print("EAL: " + " ".join(p.eal_argv()[1:]))
    return 0


def cmd_config_check(args) -> int:
    from pylb.config import load_config

    c = load_config(args.path)
    print(f"{args.path}: ok: {len(c.services)} service(s) with "
          f"{sum(len(s.backends) for s in c.services)} backend(s), {len(c.routes)} route(s), "
          f"{len(c.vips)} L3 VIP(s), {len(c.neighbours)} neighbour(s)")
    return 0


def _prefix(args) -> str:
    from pylb.profile import file_prefix, load_profile
    if args.instance:
        return file_prefix(args.instance)
    if args.profile:
        return load_profile(args.profile).file_prefix()
    raise InvalidArgument("name the appliance with --instance NAME or --profile PATH")


def _show(args, command: str, render, as_json=lambda reply: reply) -> int:
    """The read-only commands: one telemetry query, printed as JSON or by `render`."""
    from pylb import telemetry

    reply = telemetry.query(_prefix(args), command)
    if args.json:
        print(json.dumps(as_json(reply), indent=2))
    else:
        render(reply)
    return 0


def _more(reply, key: str, what: str) -> None:
    """The line saying how many a bounded listing left out."""
    shown = len(reply[key])
    if reply["count"] > shown:
        print(f"... {reply['count'] - shown} more ({reply['count']} {what})")


def cmd_stats(args) -> int:
    def render(stats):
        print(f"{_prefix(args)}:")
        for name, v in stats["counters"].items():
            print(f"  {name:24} {v:>16}")
        drops = stats["drops"]
        print(f"  drops {sum(drops.values())}:")
        for name, v in drops.items():
            if v:
                print(f"    {name:22} {v:>16}")
        mbufs = stats.get("mbufs", {})
        for name in (k for k in mbufs if not k.endswith("_size")):
            print(f"  mbufs {name}: {mbufs[name]} in use of {mbufs[name + '_size']}")
    return _show(args, "/pylb/stats", render)


def cmd_ports(args) -> int:
    def render(ports):
        for name, p in ports.items():
            print(f"{name}: {p['device']} ethdev {p['ethdev']} mac {p['mac']} "
                  f"link {'up' if p['link_up'] else 'down'} "
                  f"addresses {', '.join(p['addresses']) or '-'} kernel {p.get('kernel_iface') or '-'}")
    return _show(args, "/pylb/ports", render)


def cmd_neigh(args) -> int:
    def render(reply):
        for e in reply.values():
            held = f" ({e['held']} held)" if e.get("held") else ""
            print(f"{e['port']:8} {e['ip']:26} {e['mac'].lower()}  {e.get('state', ''):10} "
                  f"seen {e['age_ms'] / 1000:.1f} s ago{held}")
    return _show(args, "/pylb/neigh", render, as_json=lambda reply: list(reply.values()))


def cmd_routes(args) -> int:
    def render(reply):
        for line in reply["routes"].values():
            prefix, how = line.split(" ", 1)
            print(f"{prefix:44} {how}")
        _more(reply, "routes", f"IPv{args.family} routes")
    return _show(args, f"/pylb/routes,{args.family}", render)


def cmd_vips(args) -> int:
    def render(vips):
        for v in vips.values():
            print(f"{v['prefix']:44} {v['method']:5} table {v['table_size']} "
                  f"backends {v['backends'] or '-'}")
    return _show(args, "/pylb/vips", render)


def cmd_services(args) -> int:
    def render(services):
        print(f"{'Prot LocalAddress:Port':32} {'Method':7} -> RemoteAddress:Port weight / active / inactive")
        for svc in services.values():
            print(f"{svc['service']:32} {svc['method']:7}")
            for key in sorted((k for k in svc if k.startswith("b")), key=lambda k: int(k[1:])):
                print(f"  -> {svc[key]}")
    return _show(args, "/pylb/services", render)


def cmd_conns(args) -> int:
    def render(reply):
        print("Pro State       Expire Client -> VIP -> Backend")
        for line in reply["connections"].values():
            proto, state, expire, flow = line.split(" ", 3)
            print(f"{proto:3} {state:11} {expire:>6} {flow}")
        _more(reply, "connections", "connections")
    return _show(args, "/pylb/conns", render)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pylb", description="pylb L3/L4 load-balancer appliance")
    ap.add_argument("--version", action="version", version=f"pylb {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the appliance in the foreground")
    run.add_argument("--profile", required=True, help="hardware profile (hwconfig/*.yaml)")
    run.add_argument("--instance", help="instance name (default: the profile's name); "
                                        "EAL file prefix is pylb-NAME")
    run.add_argument("--config", help="desired state to apply at start (services, routes)")
    run.add_argument("--grpc", help="management API address: unix:PATH (default "
                                    "unix:/run/pylb/NAME.sock, mode 0600), tcp:HOST:PORT "
                                    "(with TLS) or 'none'")
    run.add_argument("--tls-cert", help="PEM server certificate (needed for tcp:HOST:PORT)")
    run.add_argument("--tls-key", help="PEM private key of --tls-cert")
    run.add_argument("--tls-client-ca", help="PEM CA of client certificates (mutual TLS)")
    run.add_argument("--grpc-admin", action="append", metavar="CN",
                     help="client certificate common name allowed to change things (repeat); "
                          "other clients read only")
    run.add_argument("--metrics", metavar="[HOST:]PORT",
                     help="serve Prometheus metrics at http://HOST:PORT/metrics (HOST: 127.0.0.1)")
    run.set_defaults(func=cmd_run)

    doc = sub.add_parser("doctor", help="report host readiness for DPDK")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(func=cmd_doctor)

    prof = sub.add_parser("profile", help="hardware profiles")
    prof_sub = prof.add_subparsers(dest="profile_command", required=True)
    check = prof_sub.add_parser("check", help="validate a profile without running it")
    check.add_argument("path")
    check.set_defaults(func=cmd_profile_check)

    conf = sub.add_parser("config", help="configuration files (services, routes)")
    conf_sub = conf.add_subparsers(dest="config_command", required=True)
    check = conf_sub.add_parser("check", help="validate a configuration without applying it")
    check.add_argument("path")
    check.set_defaults(func=cmd_config_check)

    for name, func, help_ in (("stats", cmd_stats, "counters of a running appliance"),
                              ("ports", cmd_ports, "ports of a running appliance"),
                              ("neigh", cmd_neigh, "neighbours of a running appliance"),
                              ("routes", cmd_routes, "routes of a running appliance (count, first ones)"),
                              ("vips", cmd_vips, "L3 VIPs of a running appliance"),
                              ("services", cmd_services,
                               "L4 services and their backends' connections (like ipvsadm -L -n)"),
                              ("conns", cmd_conns,
                               "tracked connections, the first hundred or so (like ipvsadm -L -c)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--instance")
        p.add_argument("--profile")
        p.add_argument("--json", action="store_true")
        if name == "routes":
            p.add_argument("--family", type=int, choices=(4, 6), default=4)
        p.set_defaults(func=func)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="pylb: %(levelname)s %(message)s")
    try:
        return args.func(args)
    except InvalidArgument as e:
        return _fail(str(e), EXIT_BAD_INPUT)
    except PylbError as e:
        return _fail(str(e), EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
