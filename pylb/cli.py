"""The `pylb` command: run the appliance, check the host, its profile and
configuration, and list what a running appliance has (the same listings as
pylbctl, over the instance's gRPC socket)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from pylb import __version__, files
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
                return files.read(path)
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
          f"{len(c.vips)} L3 VIP(s), {len(c.neighbours)} neighbour(s)"
          + (f", {len(c.acls)} ACL(s) of {sum(len(a.prefixes) for a in c.acls)} prefix(es)"
             if c.acls else ""))
    return 0


def cmd_hugepages(args) -> int:
    """What the profile needs, reserved and mounted (the service unit's
    ExecStartPre)."""
    from pylb import hostinfo
    from pylb.profile import load_profile

    p = load_profile(args.profile)
    if not p.hugepages:
        print(f"{args.profile}: memory.hugepages is false: none needed")
        return 0
    try:
        print(hostinfo.reserve_hugepages(p.size_mb, p.huge_dir))
    except OSError as e:
        raise PylbError(f"hugepages for {args.profile} ({p.size_mb} MiB): {e}") from None
    return 0


def cmd_config_import(args) -> int:
    """An IPVS configuration as pylb's: the file on stdout (or --output),
    what does not map on stderr, one line each."""
    from pylb import importers
    from pylb.config import dump

    try:
        text = files.read_text(args.path)
    except OSError as e:
        raise InvalidArgument(f"cannot read {args.path}: {e.strerror}") from None
    imported = importers.FORMATS[args.format](text, args.path)
    out = f"# Imported from {args.path} ({args.format}) by pylb config import\n" + \
        dump(imported.config)
    if args.output:
        with open(args.output, "w") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
    for line in imported.report:
        print(f"pylb: not mapped: {line}", file=sys.stderr)
    print(f"pylb: {len(imported.config.services)} service(s) imported, "
          f"{len(imported.report)} note(s)", file=sys.stderr)
    return 0


def _address(args) -> str:
    """The gRPC address of the running appliance named by --instance or --profile."""
    from pylb.appliance import grpc_default
    from pylb.profile import load_profile
    if args.profile:
        return grpc_default(load_profile(args.profile), args.instance)
    if args.instance:
        return f"unix:/run/pylb/{args.instance}.sock"
    raise InvalidArgument("name the appliance with --instance NAME or --profile PATH")


# `pylb LISTING` is `pylbctl LISTING`: the same data, from the domain, over
# gRPC (one read path); DPDK telemetry only serves DPDK's own tools.
LISTINGS = {"stats": ["stats"], "ports": ["port", "list"], "neigh": ["neigh", "list"],
            "routes": ["route", "list"], "vips": ["vip", "list"],
            "services": ["service", "list"], "conns": ["flows"], "bgp": ["bgp"]}


def cmd_listing(args) -> int:
    import os
    from pylb import ctl
    address = _address(args)
    path = address[len("unix:"):] if address.startswith("unix:") else None
    if path is not None and not os.path.exists(path):
        raise PylbError(f"no running pylb instance answers at {address} (is it running, "
                        "with its gRPC API on the default socket?)")
    argv = ["--address", address, "-o", "json" if args.json else "text",
            *LISTINGS[args.command]]
    if args.command == "routes":
        argv += ["--family", str(args.family)]
    if args.command == "stats" and args.all:
        argv.append("--all")
    return ctl.main(argv)


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
    doc.add_argument("--json", action="store_true", help="the report as JSON")
    doc.set_defaults(func=cmd_doctor)

    prof = sub.add_parser("profile", help="hardware profiles")
    prof_sub = prof.add_subparsers(dest="profile_command", required=True)
    check = prof_sub.add_parser("check", help="validate a profile without running it")
    check.add_argument("path", help="the profile (YAML)")
    check.set_defaults(func=cmd_profile_check)

    huge = sub.add_parser("hugepages", help="reserve and mount the hugepages a profile needs "
                                            "(never fewer than are reserved)")
    huge.add_argument("--profile", required=True, help="hardware profile (memory.size_mb)")
    huge.set_defaults(func=cmd_hugepages)

    conf = sub.add_parser("config", help="configuration files (services, routes)")
    conf_sub = conf.add_subparsers(dest="config_command", required=True)
    check = conf_sub.add_parser("check", help="validate a configuration without applying it")
    check.add_argument("path", help="the configuration (YAML)")
    check.set_defaults(func=cmd_config_check)
    imp = conf_sub.add_parser("import", help="a pylb configuration from ipvsadm-save -n or "
                                             "keepalived.conf, with what does not map")
    imp.add_argument("format", choices=("ipvsadm", "keepalived"), help="the file's format")
    imp.add_argument("path", help="the file (ipvsadm-save -n's output, or keepalived.conf)")
    imp.add_argument("-o", "--output", help="write the configuration here (default: stdout)")
    imp.set_defaults(func=cmd_config_import)

    for name, help_ in (("stats", "counters of a running appliance"),
                        ("ports", "ports of a running appliance"),
                        ("neigh", "neighbours of a running appliance"),
                        ("routes", "routes of a running appliance"),
                        ("vips", "L3 VIPs of a running appliance"),
                        ("services", "L4 services and their backends' connections "
                                     "(like ipvsadm -L -n)"),
                        ("conns", "tracked connections (like ipvsadm -L -c)"),
                        ("bgp", "VIP announcements and why, BGP sessions")):
        p = sub.add_parser(name, help=help_ + " (as pylbctl shows it)")
        p.add_argument("--instance", help="the appliance's name")
        p.add_argument("--profile", help="or its profile (its name, unless --instance)")
        p.add_argument("--json", action="store_true", help="JSON for scripts")
        if name == "routes":
            p.add_argument("--family", type=int, choices=(0, 4, 6), default=0,
                           help="4, 6 or 0: both")
        if name == "stats":
            p.add_argument("--all", action="store_true", help="zeros too")
        p.set_defaults(func=cmd_listing)
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
