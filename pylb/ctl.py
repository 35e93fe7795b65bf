"""`pylbctl`: the gRPC client of a running appliance. Noun-verb commands,
`-o json` on every listing, and an ipvsadm-compatible view (`pylbctl ipvs -L -n`).
Errors print the server's status and message and exit 1."""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf import json_format

from pylb import files, model, protonames
from pylb.model import TIMEOUT_KEYS
from pylb.hostport import split_hostport
from pylb.v1 import pylb_pb2 as pb
from pylb.v1 import pylb_pb2_grpc as pb_grpc

PROTO_NAMES = protonames.numbers(protonames.PROTOS)
METHOD_NAMES = protonames.numbers(protonames.METHODS)
SCHED_NAMES = protonames.numbers(protonames.SCHEDULERS)
STATE_NAMES = protonames.numbers(protonames.STATES)
# ipvsadm's names for the forwarding methods.
# IPVS's names of pylb's schedulers (the same hashing: mh is Maglev, sh the source's).
IPVS_SCHEDULERS = {model.MAGLEV: "mh", model.SOURCE: "sh", model.WRR: model.WRR,
                   model.WLC: model.WLC}
IPVS_FORWARD = {pb.METHOD_UNSPECIFIED: "Masq", pb.METHOD_NAT: "Masq", pb.METHOD_FULLNAT: "FullNat",
                pb.METHOD_DR: "Route", pb.METHOD_TUNNEL: "Tunnel", pb.METHOD_GUE: "Tunnel"}


class UsageError(Exception):
    pass


def read_file(path: str) -> str:
    try:
        return files.read_text(path)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None


def _name(table: dict, value: int) -> str:
    return next((k for k, v in table.items() if v == value), next(iter(table)))


def service_key(text: str) -> pb.ServiceKey:
    """'VIP:PORT[/tcp|udp]' or '[V6]:PORT[/proto]'."""
    addr, _, proto = text.partition("/")
    if proto and proto not in PROTO_NAMES:
        raise UsageError(f"service {text!r}: protocol {proto!r} is not tcp or udp")
    try:
        host, port = split_hostport(addr)
    except ValueError as e:
        raise UsageError(f"service {text!r}: {e}") from None
    return pb.ServiceKey(vip=host, port=port, protocol=PROTO_NAMES[proto or model.TCP])


def backend_of(text: str, weight: int | None = None, state: str | None = None) -> pb.Backend:
    try:
        host, port = split_hostport(text)
    except ValueError as e:
        raise UsageError(f"backend {text!r}: {e}") from None
    b = pb.Backend(address=host, port=port)
    if weight is not None:
        b.weight = weight
    if state is not None:
        b.state = STATE_NAMES[state]
    return b


TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def tcp_flags(text: str) -> int:
    """'SA' -> 0x12: TCP flags by their letters (FSRPAU)."""
    if not text or any(c not in TCP_FLAGS for c in text.upper()):
        raise argparse.ArgumentTypeError(f"{text!r}: TCP flags are letters of FSRPAU, e.g. S, A, PA")
    return sum(TCP_FLAGS[c] for c in set(text.upper()))


def split_trace(text: str) -> tuple[str, int]:
    try:
        return split_hostport(text)
    except ValueError as e:
        raise UsageError(f"{text!r}: {e}") from None


def _svc_name(k: pb.ServiceKey) -> str:
    host = f"[{k.vip}]" if ":" in k.vip else k.vip
    return f"{host}:{k.port}/{_name(PROTO_NAMES, k.protocol)}"


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _json(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def print_service(s: pb.Service) -> None:
    extra = f" persistent {s.persistence_seconds}" if s.persistence_seconds else ""
    if protonames.SYN_PROXY[s.syn_proxy] != model.SYN_PROXY_AUTO:
        extra += f" syn-proxy {protonames.SYN_PROXY[s.syn_proxy]}"
    if protonames.PROXY_PROTOCOL[s.proxy_protocol] != model.PROXY_OFF:
        extra += f" proxy-protocol {protonames.PROXY_PROTOCOL[s.proxy_protocol]}"
    if s.tunnel_source:
        extra += f" tunnel-source {s.tunnel_source}"
    if s.HasField("quic"):
        q = s.quic
        extra += f" quic {q.server_id_length}+{q.nonce_length}" + \
            (f" config {q.config_id}" if q.config_id else "") + (" encrypted" if q.key else "")
    if s.acls:
        extra += f" acls {','.join(s.acls)}"
    for k in model.LIMIT_KEYS:
        if getattr(s, k):
            extra += f" {k.replace('_', '-')} {getattr(s, k)}"
    if s.table_fingerprint:
        extra += f" table {s.table_fingerprint}"
    print(f"{_svc_name(s.key)} {_name(METHOD_NAMES, s.method)} {_name(SCHED_NAMES, s.scheduler)}"
          f"{extra}")
    for b in s.backends:
        health = f" health {b.health}" if b.health else ""
        limit = f" max {b.max_connections}" if b.max_connections else ""
        sid = f" server-id {b.server_id}" if b.server_id else ""
        print(f"  -> {_hostport(b.address, b.port):30} weight {b.weight:<5} "
              f"{_name(STATE_NAMES, b.state):5} active {b.active_connections} "
              f"inactive {b.inactive_connections}{limit}{sid}{health}")


def ipvs_view(services: list[pb.Service]) -> str:
    """The output of `ipvsadm -L -n`, column for column."""
    lines = ["IP Virtual Server version 1.2.1 (size=4096)",
             "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    for s in services:
        flags = f" persistent {s.persistence_seconds}" if s.persistence_seconds else ""
        if s.persistence_seconds and s.persistence_prefix:
            bits = 32 if "." in s.key.vip else 128
            flags += f" mask {_mask(s.persistence_prefix, bits, s.key.vip)}"
        lines.append(f"{_name(PROTO_NAMES, s.key.protocol).upper():<4} "
                     f"{_hostport(s.key.vip, s.key.port)} "
                     f"{IPVS_SCHEDULERS.get(_name(SCHED_NAMES, s.scheduler))}{flags}")
        for b in s.backends:
            port = b.port or s.key.port
            lines.append(f"  -> {_hostport(b.address, port):<28} {IPVS_FORWARD[s.method]:<7} "
                         f"{0 if b.state != pb.BACKEND_STATE_UP and b.state else b.weight:<6} "
                         f"{b.active_connections:<10} {b.inactive_connections}")
    return "\n".join(lines)


def ipvs_stats(services: list[pb.Service]) -> str:
    """`ipvsadm -L -n --stats`: per service, then per backend."""
    def figures(st: pb.ServiceStats) -> str:
        return f"{_unit(st.connections):>8} {_unit(st.in_packets):>8} " \
            f"{_unit(st.out_packets):>8} {_unit(st.in_bytes):>8} {_unit(st.out_bytes):>8}"
    lines = ["IP Virtual Server version 1.2.1 (size=4096)",
             "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
             "  -> RemoteAddress:Port"]
    for s in services:
        lines.append(f"{_name(PROTO_NAMES, s.key.protocol).upper():<4} "
                     f"{_hostport(s.key.vip, s.key.port):<28} {figures(s.stats)}")
        for b in s.backends:
            lines.append(f"  -> {_hostport(b.address, b.port or s.key.port):<28} "
                         f"{figures(b.stats)}")
    return "\n".join(lines)


def _unit(n: int) -> str:
    """ipvsadm's compact figures: 1234 -> 1234, 12345678 -> 12345K."""
    for unit in ("", "K", "M", "G", "T"):
        if n < 100000:
            return f"{n}{unit}"
        n //= 1000
    return f"{n}P"


def _mask(prefix: int, bits: int, vip: str) -> str:
    import ipaddress
    net = ipaddress.ip_network(f"{vip}/{prefix}", strict=False)
    return str(net.netmask) if bits == 32 else str(prefix)


def listing(items, out_json: bool, line) -> None:
    """`-o json`: the messages as JSON; else one `line(item)` each."""
    items = list(items)
    if out_json:
        print(json.dumps([_json(x) for x in items], indent=2))
    else:
        for x in items:
            print(line(x))


def quic_backend(text: str) -> pb.Backend:
    """ADDRESS[:PORT][=SERVER_ID]: a backend, with its QUIC server id (hex)."""
    text, _, sid = text.partition("=")
    b = backend_of(text, 1)
    b.server_id = sid
    return b


def quic_of(text: str) -> pb.QuicLb:
    """SID_LEN:NONCE_LEN[:CONFIG_ID[:KEY]] as `service add --quic` takes it."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts[:3]):
        raise UsageError(f"--quic {text!r}: write SERVER_ID_LENGTH:NONCE_LENGTH[:CONFIG_ID"
                         "[:KEY]], e.g. 2:6 or 4:12:0:<32 hex digits>")
    return pb.QuicLb(server_id_length=int(parts[0]), nonce_length=int(parts[1]),
                     config_id=int(parts[2]) if len(parts) > 2 else 0,
                     key=parts[3] if len(parts) > 3 else "")


def cmd_service(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        r = stub.ListServices(pb.ListServicesRequest())
        if out_json:
            print(json.dumps([_json(s) for s in r.services], indent=2))
        else:
            for s in r.services:
                print_service(s)
    elif verb == "get":
        s = stub.GetService(service_key(args.service))
        print(json.dumps(_json(s), indent=2)) if out_json else print_service(s)
    elif verb == "add":
        s = pb.Service(key=service_key(args.service), method=METHOD_NAMES[args.method],
                       scheduler=SCHED_NAMES[args.scheduler],
                       persistence_seconds=args.persistence,
                       persistence_prefix=args.persistence_prefix,
                       local_addresses=args.local_address or [], down_reset=args.down_reset,
                       syn_proxy=protonames.numbers(protonames.SYN_PROXY)[args.syn_proxy],
                       proxy_protocol=protonames.numbers(protonames.PROXY_PROTOCOL)[
                           args.proxy_protocol],
                       tunnel_source=args.tunnel_source or "",
                       acls=args.acl or [], max_connections=args.max_connections,
                       max_new_per_second=args.max_new_per_second,
                       max_per_client=args.max_per_client,
                       backends=[quic_backend(b) for b in args.backend or []])
        if args.quic:
            s.quic.CopyFrom(quic_of(args.quic))
        if args.check:
            kind, _, path = args.check.partition(":")
            s.health_check.CopyFrom(pb.HealthCheck(type=kind, path=path,
                                                   interval_ms=args.check_interval_ms))
        print_service(stub.AddService(s))
    elif verb == "set-limits":
        print_service(stub.SetServiceLimits(pb.ServiceLimits(
            service=service_key(args.service),
            **{k: getattr(args, k) for k in model.LIMIT_KEYS})))
    elif verb == "del":
        stub.DeleteService(service_key(args.service))


def cmd_backend(args, stub, verb: str | None, out_json: bool) -> None:
    key = service_key(args.service)
    if verb == "del":
        b = backend_of(args.backend)
        print_service(stub.DeleteBackend(pb.BackendKey(service=key, address=b.address,
                                                        port=b.port)))
        return
    current = {(b.address, b.port): b for b in stub.GetService(key).backends}
    b = backend_of(args.backend)
    old = current.get((b.address, b.port))
    weight = {"add": args.weight if verb == "add" else None,
              "set-weight": getattr(args, "weight", None)}.get(verb)
    state = verb if verb in model.BACKEND_STATES else None
    if verb == "add" and old is not None:
        raise UsageError(f"service {args.service} already has backend {args.backend}")
    if verb != "add" and old is None:
        raise UsageError(f"service {args.service} has no backend {args.backend}")
    b.weight = weight if weight is not None else (old.weight if old else 1)
    b.state = STATE_NAMES[state] if state else (old.state if old else pb.BACKEND_STATE_UP)
    b.max_connections = (args.max_connections if verb in ("add", "set-max-connections")
                         else old.max_connections)
    print_service(stub.SetBackend(pb.SetBackendRequest(service=key, backend=b)))


def cmd_route(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        listing(stub.ListRoutes(pb.ListRoutesRequest(family=args.family)).routes, out_json,
                lambda x: f"{x.prefix:44} {x.kind:10} " + ", ".join(
                    f"via {h.gateway} {h.port}" if h.gateway else h.port
                    for h in x.next_hops) + (f"  inspect {x.inspect}" if x.inspect else ""))
    elif verb == "add":
        hops = []
        for v in args.via:
            gw, _, port = v.rpartition("@")
            if not port:
                raise UsageError(f"next hop {v!r}: write GATEWAY@PORT or @PORT")
            hops.append(pb.NextHop(gateway=gw, port=port))
        stub.AddRoute(pb.Route(prefix=args.prefix, next_hops=hops, inspect=args.inspect or ""))
    elif verb == "del":
        stub.DeleteRoute(pb.RouteKey(prefix=args.prefix))


def cmd_vip(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        listing(stub.ListVips(pb.ListVipsRequest()).vips, out_json,
                lambda v: f"{v.prefix:44} {v.method:5} table {v.table_size} "
                          f"{v.table_fingerprint} backends "
                          + (" ".join(f"{b.address}*{b.weight}" for b in v.backends) or "-")
                          + (f"  inspect {v.inspect}" if v.inspect else ""))
    elif verb == "del":
        stub.DeleteVip(pb.VipKey(prefix=args.prefix))
    else:
        backends = [pb.VipBackend(address=a, weight=int(w or 1))
                    for a, _, w in (b.partition("*") for b in args.backend or [])]
        v = pb.Vip(prefix=args.prefix, backends=backends)
        if verb == "add":
            v.method, v.source, v.inspect = args.method, args.source or "", args.inspect or ""
            stub.AddVip(v)
        else:
            stub.SetVipBackends(v)


def _appliance(text: str) -> pb.Appliance:
    """ADDRESS[*WEIGHT][=STATE] as pylbctl takes an appliance."""
    rest, _, state = text.partition("=")
    addr, _, weight = rest.partition("*")
    if state and state not in model.BACKEND_STATES:
        raise UsageError(f"appliance {text!r}: state {state!r} is not one of "
                         f"{', '.join(model.BACKEND_STATES)}")
    if weight and not weight.isdigit():
        raise UsageError(f"appliance {text!r}: weight {weight!r} is not a number")
    return pb.Appliance(address=addr, weight=int(weight or 1),
                        state=STATE_NAMES[state or model.UP])


def cmd_pool(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        def line(p):
            apps = " ".join(f"{a.address}*{a.weight}:{_name(STATE_NAMES, a.in_force)}"
                            + (f"({a.health})" if a.health else "") for a in p.appliances)
            return (f"{p.name:16} {p.stickiness} failover {p.failover} idle {p.idle_timeout}s "
                    f"flows {p.flows} appliances {apps or '-'}"
                    + (f"  inspects {' '.join(p.inspects)}" if p.inspects else ""))
        listing(stub.ListPools(pb.ListPoolsRequest()).pools, out_json, line)
    elif verb == "del":
        stub.DeletePool(pb.PoolKey(name=args.name))
    else:
        p = pb.Pool(name=args.name, stickiness=args.stickiness, failover=args.failover,
                    idle_timeout=args.idle_timeout,
                    appliances=[_appliance(a) for a in args.appliance or []])
        if args.check_port:
            p.health_check.CopyFrom(pb.HealthCheck(type=args.check, port=args.check_port))
        stub.SetPool(p)


def cmd_bgp(args, stub, verb: str | None, out_json: bool) -> None:
    if verb in ("withdraw", "announce"):
        r = stub.SetAnnounce(pb.SetAnnounceRequest(prefix=args.prefix,
                                                   withdrawn=verb == "withdraw"))
    else:
        r = stub.GetBgp(pb.GetBgpRequest())
    if out_json:
        print(json.dumps(_json(r), indent=2))
    else:
        for a in r.announcements:
            print(f"{a.prefix:44} {'announced' if a.announced else 'withdrawn':9}  "
                  f"{a.why}")
        for p in r.peers:
            bfd = f" bfd {p.bfd}" if p.bfd else ""
            print(f"peer {p.address} AS {p.remote_as}: {p.state}{bfd}  {p.info}".rstrip())


def cmd_acl(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        listing(stub.ListAcls(pb.ListAclsRequest(with_prefixes=args.prefixes)).acls, out_json,
                lambda a: f"{a.name:20} {a.type:5} {a.action:11} "
                          f"{'all services' if a.all_services else 'listed':12} "
                          f"{a.prefix_count} prefixes"
                          + ("".join(f"\n  {p}" for p in a.prefixes)))
    elif verb == "del":
        stub.DeleteAcl(pb.AclKey(name=args.name))
    else:
        prefixes = list(args.prefix or [])
        if args.prefix_file:
            prefixes += [x.split("#")[0].strip()
                         for x in read_file(args.prefix_file).splitlines()
                         if x.split("#")[0].strip()]
        a = stub.SetAcl(pb.Acl(name=args.name, type=args.type, action=args.action,
                               all_services=args.all_services, prefixes=prefixes))
        print(f"{a.name}: {a.prefix_count} prefixes")


def cmd_neigh(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "list":
        listing(stub.ListNeighbours(pb.ListNeighboursRequest()).neighbours, out_json,
                lambda n: f"{n.port:8} {n.address:26} {n.mac.lower()}  {n.state}")
    elif verb == "add":
        stub.AddNeighbour(pb.Neighbour(port=args.port, address=args.ip, mac=args.mac))
    else:
        stub.DeleteNeighbour(pb.Neighbour(port=args.port, address=args.ip))


def cmd_port(args, stub, verb: str | None, out_json: bool) -> None:
    listing(stub.ListPorts(pb.ListPortsRequest()).ports, out_json,
            lambda p: f"{p.name}: {p.device} mac {p.mac} link {'up' if p.link_up else 'down'} "
                      f"addresses {', '.join(p.addresses) or '-'} "
                      f"rx {p.nic.get('rx_packets', 0)} tx {p.nic.get('tx_packets', 0)}")


def cmd_flows(args, stub, verb: str | None, out_json: bool) -> None:
    flows = stub.ListFlows(pb.ListFlowsRequest(vip=args.vip or "", backend=args.backend or "",
                                               client=args.client or "", limit=args.limit))
    if out_json:
        print(json.dumps([_json(f) for f in flows], indent=2))
    else:
        print("Pro State       Expire Client -> VIP -> Backend")
        for f in flows:
            print(f"{_name(PROTO_NAMES, f.protocol).upper():3} {f.state:11} "
                  f"{f.expires_ms // 1000:>5}s {_hostport(f.client, f.client_port)} -> "
                  f"{_hostport(f.vip, f.vip_port)} -> {_hostport(f.backend, f.backend_port)}")


def cmd_config(args, stub, verb: str | None, out_json: bool) -> None:
    if verb == "get":
        print(stub.GetConfig(pb.GetConfigRequest()).yaml, end="")
        return
    text = read_file(args.path)
    r = stub.ApplyConfig(pb.ApplyConfigRequest(yaml=text, dry_run=verb == "diff"))
    if out_json:
        print(json.dumps(list(r.changes)))
    else:
        for c in r.changes:
            print(c)
        if not r.changes:
            print("no changes")


def hex_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not hex bytes (e.g. 4101000a...)") \
            from None


def cmd_trace(args, stub, verb: str | None, out_json: bool) -> None:
    src, dst = split_trace(args.source), split_trace(args.destination)
    t = stub.Trace(pb.TraceRequest(source=src[0], source_port=src[1], destination=dst[0],
                                   destination_port=dst[1], protocol=PROTO_NAMES[args.proto],
                                   not_syn=args.established, tcp_flags=args.flags,
                                   seq=args.seq, ack=args.ack, payload=args.payload))
    if out_json:
        print(json.dumps(_json(t), indent=2))
    else:
        print(f"verdict: {t.verdict}")
        if t.route_prefix:
            print(f"route:   {t.route_prefix} ({t.route_kind})")
        if t.service.vip:
            print(f"service: {_svc_name(t.service)} {_name(METHOD_NAMES, t.method)} "
                  f"{_name(SCHED_NAMES, t.scheduler)}")
        if t.backend:
            print(f"backend: {_hostport(t.backend, t.backend_port)}"
                  + (f" ({t.connection_state})" if t.connection_state else ""))
        if t.appliance:
            print(f"appliance: {t.appliance} (pool {t.inspect_pool})")
        if t.next_hop.port:
            print(f"next hop: {('via ' + t.next_hop.gateway + ' ') if t.next_hop.gateway else ''}"
                  f"port {t.next_hop.port}")
        print(f"why:     {t.why}")


# `stats` groups the counters, in this order, each group in its entries'
# order (then by name). An entry ending in "_" is a prefix, else a name; a
# name is matched before any prefix (conn_synced is the fleet's). A test
# requires every counter to have a group. Drops, by name, are the errors'.
STAT_GROUPS = (
    ("traffic", ("rx_", "tx_", "forwarded", "vip_packets", "l4_packets", "to_kernel",
                 "from_kernel", "redirected", "fragments_", "ipv4_fragmented", "icmp_echo_",
                 "arp_", "nd_", "neigh_", "probes_sent", "probe_answers", "proxy_headers_sent",
                 "busy_", "polls")),
    ("connections", ("conn_", "nat_replies", "nat_replies_untracked", "nat_tuple_moved",
                     "tcp_resets_sent", "icmp_errors_", "quic_")),
    ("defences", ("syn_", "half_open_", "source_half_open_full")),
    ("fleet", ("sync_", "conn_synced")),
    ("inspection", ("inspect_",)),
)


def stat_place(name: str) -> tuple[int, int, str] | None:
    """Where a counter is listed: its group's index, its entry's, its name."""
    for exact in (True, False):
        for gi, (_, keys) in enumerate(STAT_GROUPS):
            for ki, k in enumerate(keys):
                if name == k if exact else (k.endswith("_") and name.startswith(k)):
                    return gi, ki, name
    return None


def stat_group(name: str) -> str | None:
    place = stat_place(name)
    return None if place is None else STAT_GROUPS[place[0]][0]


def render_stats(s: pb.Stats, everything: bool = False) -> str:
    """Counters grouped (traffic, connections, defences, fleet), then the
    drops by reason (errors) and the mbufs; zeros left out unless
    `everything`."""
    groups: dict[str, list[tuple[str, int]]] = {g: [] for g, _ in STAT_GROUPS}
    groups["other"] = []            # (a newer appliance's counters this pylbctl does not know)
    for k in sorted(s.counters, key=lambda k: stat_place(k) or (len(STAT_GROUPS), 0, k)):
        if s.counters[k] or everything:
            groups[stat_group(k) or "other"].append((k, s.counters[k]))
    heads = {"connections": f"connections ({s.connections} open, {s.half_open} half-open)",
             "errors": f"errors ({sum(s.drops.values())} dropped)"}
    groups["errors"] = [(k, v) for k, v in sorted(s.drops.items()) if v or everything]
    out = []
    for g, rows in groups.items():
        if rows or g in heads:
            out.append(heads.get(g, g))
            out += [f"  {k:28} {v:>16}" for k, v in rows]
    out += [f"mbufs {p.name}: {p.in_use} in use of {p.size}" for p in s.mempools]
    out.append(f"flow hash key {s.hash_fingerprint}")
    return "\n".join(out)


def cmd_stats(args, stub, verb: str | None, out_json: bool) -> None:
    s = stub.GetStats(pb.GetStatsRequest())
    print(json.dumps(_json(s), indent=2) if out_json else render_stats(s, args.all))


def cmd_top(args, stub, verb: str | None, out_json: bool) -> None:
    from pylb import top
    top.run(stub, args.address or f"unix:/run/pylb/{args.instance}.sock", args.interval_ms,
            args.iterations)


def cmd_timeouts(args, stub, verb: str | None, out_json: bool) -> None:
    given = {k: getattr(args, k) for k in TIMEOUT_KEYS if getattr(args, k, None) is not None}
    if verb == "set" and not given:
        raise UsageError("give at least one of " + ", ".join(f"--{k.replace('_', '-')}"
                                                           for k in TIMEOUT_KEYS))
    t = stub.SetTimeouts(pb.Timeouts(**given)) if verb == "set" else \
        stub.GetTimeouts(pb.GetTimeoutsRequest())
    listing([t], out_json, lambda t: "  ".join(f"{k} {getattr(t, k)}" for k in TIMEOUT_KEYS))


def cmd_ipvs(args, stub, verb: str | None, out_json: bool) -> None:
    if args.timeout:
        t = stub.GetTimeouts(pb.GetTimeoutsRequest())
        print(f"Timeout (tcp tcpfin udp): {t.tcp_established} {t.tcp_fin} {t.udp}")
        return
    if not (args.list and args.numeric):
        raise UsageError("only listings are supported: pylbctl ipvs -L -n [--stats], "
                         "pylbctl ipvs -L --timeout")
    services = list(stub.ListServices(pb.ListServicesRequest()).services)
    print(ipvs_stats(services) if args.stats else ipvs_view(services))


# pylbctl's nouns, each with its verbs: one function a noun.
COMMANDS = {
    "service": cmd_service,
    "backend": cmd_backend,
    "route": cmd_route,
    "vip": cmd_vip,
    "pool": cmd_pool,
    "bgp": cmd_bgp,
    "acl": cmd_acl,
    "neigh": cmd_neigh,
    "port": cmd_port,
    "flows": cmd_flows,
    "config": cmd_config,
    "trace": cmd_trace,
    "stats": cmd_stats,
    "top": cmd_top,
    "timeouts": cmd_timeouts,
    "ipvs": cmd_ipvs,
}


def run(args, stub) -> int:
    COMMANDS[args.noun](args, stub, getattr(args, "verb", None), args.output == "json")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pylbctl", description="manage a running pylb appliance")
    ap.add_argument("--address", help="the appliance's gRPC address (default "
                                      "unix:/run/pylb/INSTANCE.sock)")
    ap.add_argument("--instance", default="tap", help="instance name (default: tap)")
    ap.add_argument("--tls-ca", help="tcp: the CA of the appliance's certificate (PEM)")
    ap.add_argument("--tls-cert", help="tcp: this client's certificate (PEM), for mutual TLS")
    ap.add_argument("--tls-key", help="tcp: its private key (PEM)")
    ap.add_argument("-o", "--output", choices=("text", "json"), default="text",
                    help="text for people (the default), json for scripts")
    sub = ap.add_subparsers(dest="noun", required=True)

    svc = sub.add_parser("service", help="L4 services").add_subparsers(dest="verb", required=True)
    svc.add_parser("list", help="every service with its backends and connections")
    svc.add_parser("get", help="one service").add_argument("service", help="VIP:PORT[/tcp|udp]")
    add = svc.add_parser("add", help="a service and its backends")
    add.add_argument("service", help="VIP:PORT[/tcp|udp]")
    add.add_argument("--method", choices=METHOD_NAMES, default=model.NAT,
                     help="forwarding method (default nat)")
    add.add_argument("--scheduler", choices=SCHED_NAMES, default=model.MAGLEV,
                     help="backend choice (default maglev)")
    add.add_argument("--persistence", type=int, default=0, metavar="SECONDS",
                     help="a client network sticks to its backend this long (0: off)")
    add.add_argument("--persistence-prefix", type=int, default=0, metavar="BITS",
                     help="the client network's prefix length (0: the host)")
    add.add_argument("--local-address", action="append", help="FullNAT source (repeat)")
    add.add_argument("--down-reset", action="store_true",
                     help="reset the connections of a backend set down")
    add.add_argument("--acl", action="append", help="an ACL's name (repeat)")
    for k in model.LIMIT_KEYS:
        add.add_argument("--" + k.replace("_", "-"), type=int, default=0, help="a limit (0: none)")
    add.add_argument("--syn-proxy", choices=model.SYN_PROXY_MODES, default=model.SYN_PROXY_AUTO,
                     help="SYN cookies (NAT, FullNAT): auto (under pressure), always or off")
    add.add_argument("--proxy-protocol", choices=model.PROXY_PROTOCOLS,
                     default=model.PROXY_OFF,
                     help="FullNAT: a PROXY protocol header naming the client (v1: TCP only)")
    add.add_argument("--tunnel-source", metavar="ADDRESS|PREFIX",
                     help="tunnel: outer source; a prefix varies it per flow")
    add.add_argument("--backend", action="append",
                     help="ADDRESS[:PORT][=SERVER_ID] (repeat; SERVER_ID: QUIC's, in hex)")
    add.add_argument("--quic", metavar="SID_LEN:NONCE_LEN[:CONFIG_ID[:KEY]]",
                     help="UDP: route by QUIC connection ID (KEY: AES-128, 32 hex digits)")
    add.add_argument("--check", metavar="TYPE[:PATH]",
                     help="health check: tcp, http[:/path], udp or none")
    add.add_argument("--check-interval-ms", type=int, default=0,
                     help="health check interval (0: 2000)")
    svc.add_parser("del", help="remove a service").add_argument("service", help="VIP:PORT[/tcp|udp]")
    lim = svc.add_parser("set-limits", help="change a service's limits in place (unset: 0, none)")
    lim.add_argument("service", help="VIP:PORT[/tcp|udp]")
    for k in model.LIMIT_KEYS:
        lim.add_argument("--" + k.replace("_", "-"), type=int, default=0, help="a limit (0: none)")

    be = sub.add_parser("backend", help="backends of a service").add_subparsers(dest="verb",
                                                                                required=True)
    for verb, help_ in (("add", "add a backend, or change one"),
                        ("set-weight", "a backend's weight (0: no new connections)"),
                        ("set-max-connections", "a backend's connections at most"),
                        (model.DRAIN, "no new connections; open ones finish"),
                        (model.DOWN, "no new connections; open ones reset if the service says"),
                        (model.UP, "take new connections again"),
                        ("del", "remove a backend")):
        p = be.add_parser(verb, help=help_)
        p.add_argument("service", help="VIP:PORT[/tcp|udp]")
        p.add_argument("backend", help="ADDRESS[:PORT]")
        if verb == "add":
            p.add_argument("--weight", type=int, default=1, help="its share (default 1)")
            p.add_argument("--max-connections", type=int, default=0,
                           help="connections open at once, then no new ones (0: no limit)")
        if verb == "set-weight":
            p.add_argument("weight", type=int, help="0 to 65535")
        if verb == "set-max-connections":
            p.add_argument("max_connections", type=int, help="0: no limit")

    rt = sub.add_parser("route", help="routes").add_subparsers(dest="verb", required=True)
    rt.add_parser("list", help="the forwarding table").add_argument(
        "--family", type=int, choices=(0, 4, 6), default=0, help="4, 6 or 0: both")
    p = rt.add_parser("add", help="a static route")
    p.add_argument("prefix", help="PREFIX/LEN")
    p.add_argument("--via", action="append", required=True, help="GATEWAY@PORT or @PORT (repeat: ECMP)")
    p.add_argument("--inspect", metavar="POOL", help="through an appliance of this pool first")
    rt.add_parser("del", help="remove a static route").add_argument("prefix", help="PREFIX/LEN")

    vp = sub.add_parser("vip", help="L3 VIPs").add_subparsers(dest="verb", required=True)
    vp.add_parser("list", help="every L3 VIP")
    for verb, help_ in (("add", "an L3 VIP"), ("set-backends", "an L3 VIP's backends, all at once")):
        p = vp.add_parser(verb, help=help_)
        p.add_argument("prefix", help="PREFIX/LEN")
        p.add_argument("--backend", action="append", help="ADDRESS[*WEIGHT] (repeat)")
        if verb == "add":
            p.add_argument("--method", choices=model.VIP_METHODS, default=model.IPIP,
                           help="encapsulation or DR (default ipip)")
            p.add_argument("--source", metavar="ADDRESS|PREFIX",
                           help="outer source; a prefix varies it per flow")
            p.add_argument("--inspect", metavar="POOL",
                           help="through an appliance of this pool first")
    vp.add_parser("del", help="remove an L3 VIP").add_argument("prefix", help="PREFIX/LEN")

    pl = sub.add_parser("pool", help="inspection pools (GENEVE appliances)").add_subparsers(
        dest="verb", required=True)
    pl.add_parser("list", help="every pool: its appliances, flows and what it inspects")
    p = pl.add_parser("set", help="add a pool or replace the one of its name (flows stay)")
    p.add_argument("name", help="the pool's name")
    p.add_argument("--appliance", action="append",
                   help="ADDRESS[*WEIGHT][=up|drain|down] (repeat)")
    p.add_argument("--stickiness", choices=model.STICKINESS, default=model.STICK_5,
                   help="what keeps a flow on one appliance (default 5-tuple)")
    p.add_argument("--failover", choices=model.FAILOVERS, default=model.REBALANCE,
                   help="a down or removed appliance's flows: rebalance (default) or stay")
    p.add_argument("--idle-timeout", type=int, default=model.POOL_IDLE,
                   help=f"seconds a flow is remembered idle (default {model.POOL_IDLE})")
    p.add_argument("--check", choices=model.CHECK_TYPES, default=model.CHECK_TCP,
                   help="the appliances' health check (with --check-port)")
    p.add_argument("--check-port", type=int, default=0, help="the port checked; 0: no check")
    pl.add_parser("del", help="remove a pool (none of its routes or VIPs left)").add_argument(
        "name", help="the pool's name")

    acl = sub.add_parser("acl", help="ACLs: source prefix lists").add_subparsers(dest="verb",
                                                                               required=True)
    acl.add_parser("list", help="every ACL").add_argument("--prefixes", action="store_true",
                                        help="with their prefixes")
    p = acl.add_parser("set", help="add an ACL or replace the one of its name")
    p.add_argument("name", help="the ACL's name")
    p.add_argument("--type", choices=model.ACL_TYPES, default=model.DENY,
                   help="deny those listed (default) or allow only them")
    p.add_argument("--action", choices=model.ACL_ACTIONS, default=model.ACL_DROP,
                   help="what a refused client gets (default drop)")
    p.add_argument("--all-services", action="store_true", help="apply to every service")
    p.add_argument("--prefix", action="append", help="a prefix (repeat)")
    p.add_argument("--prefix-file", help="a file of prefixes, one per line")
    acl.add_parser("del", help="remove an ACL").add_argument("name", help="the ACL's name")

    bg = sub.add_parser("bgp", help="VIP announcements and BGP sessions")
    bv = bg.add_subparsers(dest="verb")
    bv.add_parser("show", help="each VIP's announcement and why; the sessions (the default)")
    bv.add_parser("withdraw", help="withdraw a VIP whatever its health").add_argument(
        "prefix", help="the VIP (address or prefix)")
    bv.add_parser("announce", help="let a withdrawn VIP's health decide again") \
        .add_argument("prefix", help="the VIP (address or prefix)")

    ng = sub.add_parser("neigh", help="neighbours").add_subparsers(dest="verb", required=True)
    ng.add_parser("list", help="every neighbour and its state")
    p = ng.add_parser("add", help="a static neighbour")
    p.add_argument("port", help="the port's name")
    p.add_argument("ip", metavar="address", help="IPv4 or IPv6")   # (not `address`: the gRPC target)
    p.add_argument("mac", help="xx:xx:xx:xx:xx:xx")
    p = ng.add_parser("del", help="remove a static neighbour")
    p.add_argument("port", help="the port's name")
    p.add_argument("ip", metavar="address", help="IPv4 or IPv6")

    sub.add_parser("port", help="ports").add_subparsers(dest="verb", required=True).add_parser(
        "list", help="device, MAC, link and addresses of each port")

    fl = sub.add_parser("flows", help="tracked connections")
    fl.add_argument("--vip", help="only those to this VIP")
    fl.add_argument("--backend", help="only those to this backend")
    fl.add_argument("--client", help="only those of this client")
    fl.add_argument("--limit", type=int, default=0, help="at most this many (0: all)")

    cf = sub.add_parser("config", help="the desired state as a file").add_subparsers(
        dest="verb", required=True)
    cf.add_parser("apply", help="apply a file as a diff, all or nothing").add_argument(
        "path", help="the configuration (YAML)")
    cf.add_parser("diff", help="the changes applying a file would make").add_argument(
        "path", help="the configuration (YAML)")
    cf.add_parser("get", help="the running state as a file")

    tr = sub.add_parser("trace", help="what the dataplane would do with a packet")
    tr.add_argument("source", help="ADDRESS[:PORT]")
    tr.add_argument("destination", help="ADDRESS[:PORT]")
    tr.add_argument("--proto", choices=PROTO_NAMES, default=model.TCP, help="default tcp")
    tr.add_argument("--established", action="store_true",
                    help="a TCP packet of an established flow (an ACK, not a SYN)")
    tr.add_argument("--flags", type=tcp_flags, default=0,
                    help="TCP flags of the packet, e.g. S, A, PA, FA, R (overrides --established)")
    tr.add_argument("--seq", type=int, default=0, help="TCP sequence number")
    tr.add_argument("--ack", type=int, default=0,
                    help="TCP acknowledgement number (an ACK answering a SYN cookie)")
    tr.add_argument("--payload", type=hex_bytes, default=b"", metavar="HEX",
                    help="UDP payload's start, in hex (a QUIC packet: its connection ID)")

    sub.add_parser("stats", help="counters by group, drops by reason (zeros hidden)").add_argument(
        "--all", action="store_true", help="zeros too")
    tp = sub.add_parser("top", help="a live view: workers' load, traffic, drops, services and "
                                    "backends, refreshed")
    tp.add_argument("--interval-ms", type=int, default=1000, help="refresh period (default 1000)")
    tp.add_argument("--iterations", type=int, default=0, help="stop after this many (0: Ctrl-C)")
    to = sub.add_parser("timeouts", help="connection timeouts: show, or set some (seconds)")
    to.add_argument("verb", nargs="?", choices=["set"], help="set those given")
    for k in TIMEOUT_KEYS:
        to.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int, metavar="SECONDS",
                        help=f"{k.replace('_', ' ')} timeout")
    ipvs = sub.add_parser("ipvs", help="ipvsadm-compatible views")
    ipvs.add_argument("-L", "--list", action="store_true", help="list services (the default)")
    ipvs.add_argument("-n", "--numeric", action="store_true", help="addresses as numbers (always)")
    ipvs.add_argument("--stats", action="store_true", help="connections, packets and bytes")
    ipvs.add_argument("--timeout", action="store_true", help="tcp, tcpfin and udp timeouts")
    return ap


def channel(address: str, args) -> grpc.Channel:
    """unix:PATH, or tcp:HOST:PORT over TLS (with a client certificate: mutual)."""
    if not address.startswith("tcp:"):
        return grpc.insecure_channel(address)
    if not args.tls_ca:
        raise UsageError("tcp: addresses need --tls-ca (the CA of the appliance's certificate)")

    def read(path):
        if path is None:
            return None
        try:
            return files.read(path)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from None
    creds = grpc.ssl_channel_credentials(read(args.tls_ca), read(args.tls_key), read(args.tls_cert))
    return grpc.secure_channel(address[len("tcp:"):], creds)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    address = args.address or f"unix:/run/pylb/{args.instance}.sock"
    try:
        with channel(address, args) as ch:
            return run(args, pb_grpc.LoadBalancerStub(ch))
    except UsageError as e:
        print(f"pylbctl: error: {e}", file=sys.stderr)
        return 2
    except grpc.RpcError as e:
        print(f"pylbctl: error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except BrokenPipeError:         # `pylbctl ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
