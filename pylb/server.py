"""The gRPC server (pylb.v1.LoadBalancer): thin servicers that translate
between protobuf and the domain (pylb.manager), plus the standard health
service (grpc.health.v1: NOT_SERVING while starting or stopping) and server
reflection, so grpc_health_probe and grpcurl work unchanged.

Errors map by one table (pylb.errors.GRPC_CODES): bad input is
INVALID_ARGUMENT, missing NOT_FOUND, duplicates ALREADY_EXISTS, capacity
RESOURCE_EXHAUSTED, a forbidding state FAILED_PRECONDITION, faults INTERNAL;
the message is the domain's, which says what to fix, cut to MAX_MESSAGE
characters.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import os
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pylb import config, model, protonames
from pylb.errors import InvalidArgument, PylbError, grpc_code
from pylb.manager import Manager
from pylb.model import (BackendSpec, HealthCheckSpec, NeighbourSpec, RouteSpec, ServiceSpec,
                        SpecError, VipSpec)
from pylb.v1 import pylb_pb2 as pb
from pylb.v1 import pylb_pb2_grpc as pb_grpc

log = logging.getLogger("pylb")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LoadBalancer"].full_name



PROTOS, METHODS, SCHEDULERS, STATES = (protonames.PROTOS, protonames.METHODS,
                                       protonames.SCHEDULERS, protonames.STATES)


_back = protonames.numbers


MAX_MESSAGE = 1000      # characters of an error message (gRPC metadata is limited)


def _abort(context, e: Exception):
    code = getattr(grpc.StatusCode, grpc_code(e))
    text = str(e) if isinstance(e, PylbError) else \
        f"internal error ({type(e).__name__}); the appliance's log has the details"
    context.abort(code, text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "...")


def _rpc(fn):
    """Domain exceptions become status codes with the domain's message; any
    other exception is INTERNAL, logged, and never echoed to the client."""
    def fail(context, e):
        if not isinstance(e, PylbError):
            log.exception("gRPC %s failed", fn.__name__)
        _abort(context, e)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(self, request, context):
            try:
                yield from fn(self, request, context)
            except Exception as e:
                fail(context, e)
        return stream

    @functools.wraps(fn)
    def unary(self, request, context):
        try:
            return fn(self, request, context)
        except Exception as e:
            fail(context, e)
    return unary


def _enum(table: dict, value: int, what: str) -> str:
    if value not in table:
        raise InvalidArgument(f"{what} {value} is not one of {sorted(table)}")
    return table[value]


# A request becomes specs (pylb.model), which check themselves: the same
# rules and limits as a file's, never through the file format. (ACLs, whose
# prefixes may come from files, and timeouts still go through pylb.config's
# parsers.)

def _within(prefix: str, make):
    """make(): a spec; what it refuses is named under `prefix`."""
    try:
        return make()
    except SpecError as e:
        raise e.within(prefix) from None


def _key(k: pb.ServiceKey) -> tuple[str, int, str]:
    if not k.vip:
        raise InvalidArgument("a service key needs a vip")
    vip = str(model.unicast("vip", k.vip))
    if k.port > model.PORT_MAX:
        raise InvalidArgument(f"port {k.port} is not in 0..{model.PORT_MAX} (0: all ports)")
    return vip, k.port, _enum(PROTOS, k.protocol, "protocol")


def _prefix(text: str) -> str:
    return str(model.network("prefix", text))


def _backend_spec(b: pb.Backend) -> BackendSpec:
    return BackendSpec(b.address, b.port, b.weight if b.HasField("weight") else 1,
                       _enum(STATES, b.state, "backend state"), b.max_connections, b.server_id)


def _check(h: pb.HealthCheck) -> HealthCheckSpec:
    given = {f.name: v for f, v in h.ListFields()}
    given.setdefault("timeout_ms", min(1000, given.get("interval_ms", 2000)))
    return HealthCheckSpec(**given)


# A service's fields in the API are its spec's, under the same names but
# these; enums by their API numbers; the key and the nested messages are
# their own. A field added to ServiceSpec and to the Service message under
# one name is carried both ways with no change here.
_SERVICE_RENAMED = {"persistence": "persistence_seconds"}
_SERVICE_ENUMS = {"method": METHODS, "scheduler": SCHEDULERS, "syn_proxy": protonames.SYN_PROXY,
                  "proxy_protocol": protonames.PROXY_PROTOCOL}
_SERVICE_OWN = {"vip", "port", "proto", "backends", "health_check", "quic"}
_SERVICE_FIELDS = [f for f in dataclasses.fields(ServiceSpec) if f.name not in _SERVICE_OWN]


def _service(r: pb.Service) -> ServiceSpec:
    vip, port, proto = _key(r.key)
    given = {}
    for f in _SERVICE_FIELDS:
        value = getattr(r, _SERVICE_RENAMED.get(f.name, f.name))
        if f.name in _SERVICE_ENUMS:
            value = _enum(_SERVICE_ENUMS[f.name], value, f.name)
        elif isinstance(f.default, tuple):
            value = tuple(value)
        elif not value:
            value = f.default           # unset (proto3's zero): the spec's default
        given[f.name] = value
    backends = tuple(_within(f"backends[{i}]", lambda b=b: _backend_spec(b))
                     for i, b in enumerate(r.backends))
    check = _within("health_check", lambda: _check(r.health_check)) \
        if r.HasField("health_check") else None
    quic = _within("quic", lambda: model.QuicSpec(
        r.quic.server_id_length, r.quic.nonce_length, r.quic.config_id, r.quic.key or None)) \
        if r.HasField("quic") else None
    return ServiceSpec(vip, port, proto, **given, backends=backends, health_check=check,
                       quic=quic)


def _acl(r: pb.Acl) -> model.AclSpec:
    return model.AclSpec(r.name, r.type or model.DENY, r.action or model.ACL_DROP,
                         r.all_services, tuple(r.prefixes))


def acl_msg(a: model.AclSpec, with_prefixes: bool = True) -> pb.Acl:
    return pb.Acl(name=a.name, type=a.type, action=a.action, all_services=a.all_services,
                  prefixes=list(a.prefixes) if with_prefixes else [],
                  prefix_count=len(a.prefixes))


def _backend(r: pb.SetBackendRequest) -> tuple[tuple[str, int, str], BackendSpec]:
    return _key(r.service), _within("backend", lambda: _backend_spec(r.backend))


def _route(r: pb.Route) -> RouteSpec:
    return RouteSpec(r.prefix, tuple((h.gateway or None, h.port) for h in r.next_hops),
                     r.inspect or None)


def _neighbour(r: pb.Neighbour) -> NeighbourSpec:
    return NeighbourSpec(r.port, r.address, r.mac)


def _timeouts(r: pb.Timeouts) -> dict:
    return {f.name: v for f, v in r.ListFields()}


def _vip(r: pb.Vip) -> VipSpec:
    return VipSpec(r.prefix, r.method or model.IPIP, r.table_size or model.TABLE_SIZE,
                   r.source or None,
                   tuple((b.address, b.weight if b.HasField("weight") else 1) for b in r.backends),
                   r.inspect or None)


def _pool(r: pb.Pool) -> model.PoolSpec:
    apps = tuple(_within(f"appliances[{i}]", lambda a=a: BackendSpec(
        a.address, 0, a.weight if a.HasField("weight") else 1,
        _enum(STATES, a.state, "appliance state"))) for i, a in enumerate(r.appliances))
    check = _within("health_check", lambda: _check(r.health_check)) \
        if r.HasField("health_check") else None
    # Unset (proto3's zero): the spec's default.
    given = {k: getattr(r, k) for k in ("stickiness", "failover", "idle_timeout", "table_size")
             if getattr(r, k)}
    return model.PoolSpec(r.name, apps, **given, health_check=check)


def pool_msg(v) -> pb.Pool:
    p, h = v.spec, v.spec.health_check
    return pb.Pool(
        name=p.name, stickiness=p.stickiness, failover=p.failover, idle_timeout=p.idle_timeout,
        table_size=p.table_size, flows=v.flows, inspects=list(v.users),
        health_check=None if h is None else pb.HealthCheck(
            **{f.name: getattr(h, f.name) for f in dataclasses.fields(HealthCheckSpec)}),
        appliances=[pb.Appliance(address=a.ip, weight=a.weight, state=_back(STATES)[a.state],
                                 health=x.health, in_force=_back(STATES)[x.spec.state])
                    for a, x in zip(p.appliances, v.appliances)])


def stats_of(st: dict) -> pb.ServiceStats:
    return pb.ServiceStats(connections=st["conns"], in_packets=st["in_packets"],
                           in_bytes=st["in_bytes"], out_packets=st["out_packets"],
                           out_bytes=st["out_bytes"])


def service_msg(v) -> pb.Service:
    s = v.spec
    h, q = s.health_check, s.quic
    given = {}
    for f in _SERVICE_FIELDS:
        value = getattr(s, f.name)
        if f.name in _SERVICE_ENUMS:
            value = _back(_SERVICE_ENUMS[f.name])[value]
        elif isinstance(value, tuple):
            value = list(value)
        given[_SERVICE_RENAMED.get(f.name, f.name)] = value
    return pb.Service(
        **given, stats=stats_of(v.stats), table_fingerprint=v.fingerprint,
        health_check=None if h is None else pb.HealthCheck(
            **{f.name: getattr(h, f.name) for f in dataclasses.fields(HealthCheckSpec)}),
        quic=None if q is None else pb.QuicLb(server_id_length=q.server_id_length,
                                              nonce_length=q.nonce_length,
                                              config_id=q.config_id, key=q.key or ""),
        key=pb.ServiceKey(vip=s.vip, port=s.port, protocol=_back(PROTOS)[s.proto]),
        backends=[pb.Backend(address=b.spec.ip, port=b.spec.port, weight=b.spec.weight,
                             state=_back(STATES)[b.spec.state],
                             max_connections=b.spec.max_connections, server_id=b.spec.server_id,
                             active_connections=b.active,
                             inactive_connections=b.inactive, health=b.health,
                             stats=stats_of(b.stats))
                  for b in v.backends])


def vip_msg(view) -> pb.Vip:
    v = view.spec
    return pb.Vip(prefix=v.prefix, method=v.method, table_size=v.table_size, source=v.source or "",
                  backends=[pb.VipBackend(address=a, weight=w) for a, w in v.backends],
                  table_fingerprint=view.fingerprint, inspect=v.inspect or "")


def route_msg(r) -> pb.Route:
    return pb.Route(prefix=r.prefix, kind=r.kind, inspect=r.inspect,
                    next_hops=[pb.NextHop(gateway=g or "", port=p) for g, p in r.next_hops])


def stats_msg(s: dict) -> pb.Stats:
    return pb.Stats(counters=s["counters"], drops=s["drops"], connections=s["connections"],
                    half_open=s["half_open"],
                    timestamp_ms=s["timestamp_ms"], hash_fingerprint=s["hash_fingerprint"],
                    mempools=[pb.Mempool(**p) for p in s["mempools"]],
                    lcores=[pb.LcoreStats(slot=i, counters=row) for i, row in enumerate(s["lcores"])])


class LoadBalancer(pb_grpc.LoadBalancerServicer):
    def __init__(self, manager: Manager):
        self.m = manager

    @_rpc
    def ListServices(self, request, context):
        return pb.ListServicesResponse(services=[service_msg(v) for v in self.m.services()])

    @_rpc
    def GetService(self, request, context):
        return service_msg(self.m.service(*_key(request)))

    @_rpc
    def AddService(self, request, context):
        return service_msg(self.m.add_service(_service(request)))

    @_rpc
    def ListAcls(self, request, context):
        return pb.ListAclsResponse(acls=[acl_msg(a, request.with_prefixes) for a in self.m.acls()])

    @_rpc
    def SetAcl(self, request, context):
        return acl_msg(self.m.set_acl(_acl(request)), False)

    @_rpc
    def DeleteAcl(self, request, context):
        self.m.delete_acl(request.name)
        return pb.Empty()

    @_rpc
    def ListPools(self, request, context):
        return pb.ListPoolsResponse(pools=[pool_msg(v) for v in self.m.pools()])

    @_rpc
    def SetPool(self, request, context):
        return pool_msg(self.m.set_pool(_pool(request)))

    @_rpc
    def DeletePool(self, request, context):
        self.m.delete_pool(request.name)
        return pb.Empty()

    @_rpc
    def GetBgp(self, request, context):
        return self._bgp(self.m.announcements())

    @_rpc
    def SetAnnounce(self, request, context):
        return self._bgp(self.m.set_withdrawn(request.prefix, request.withdrawn))

    def _bgp(self, announced) -> pb.Bgp:
        return pb.Bgp(announcements=[pb.Announcement(prefix=a.prefix, announced=a.announced,
                                                     why=a.why, backup=a.backup)
                                     for a in announced],
                      peers=[pb.BgpPeer(address=p.address, remote_as=p.remote_as, state=p.state,
                                        info=p.info, bfd=p.bfd) for p in self.m.bgp_peers()])

    @_rpc
    def DeleteService(self, request, context):
        self.m.delete_service(*_key(request))
        return pb.Empty()

    @_rpc
    def SetServiceLimits(self, request, context):
        return service_msg(self.m.set_limits(*_key(request.service), **{
            k: getattr(request, k) for k in model.LIMIT_KEYS}))

    @_rpc
    def SetBackend(self, request, context):
        key, b = _backend(request)
        return service_msg(self.m.set_backend(*key, b))

    @_rpc
    def DeleteBackend(self, request, context):
        return service_msg(self.m.delete_backend(
            *_key(request.service),
            str(model.unicast("address", request.address, loopback=True)), request.port))

    @_rpc
    def ListRoutes(self, request, context):
        return pb.ListRoutesResponse(routes=[route_msg(r) for r in self.m.routes(request.family)])

    @_rpc
    def AddRoute(self, request, context):
        r = _route(request)
        return route_msg(self.m.add_route(r.prefix, list(r.via), r.inspect))

    @_rpc
    def DeleteRoute(self, request, context):
        self.m.delete_route(_prefix(request.prefix))
        return pb.Empty()

    @_rpc
    def ListVips(self, request, context):
        return pb.ListVipsResponse(vips=[vip_msg(v) for v in self.m.vips()])

    @_rpc
    def AddVip(self, request, context):
        return vip_msg(self.m.add_vip(_vip(request)))

    @_rpc
    def SetVipBackends(self, request, context):
        v = _vip(request)
        return vip_msg(self.m.set_vip_backends(v.prefix, list(v.backends)))

    @_rpc
    def DeleteVip(self, request, context):
        self.m.delete_vip(_prefix(request.prefix))
        return pb.Empty()

    @_rpc
    def ListNeighbours(self, request, context):
        return pb.ListNeighboursResponse(neighbours=[
            pb.Neighbour(port=port, address=n.ip, mac=n.mac, state=n.state)
            for port, n in self.m.neighbours()])

    @_rpc
    def AddNeighbour(self, request, context):
        n = _neighbour(request)
        self.m.add_neighbour(n.port, n.ip, n.mac)
        return pb.Neighbour(port=n.port, address=n.ip, mac=n.mac, state=model.STATIC)

    @_rpc
    def DeleteNeighbour(self, request, context):
        self.m.delete_neighbour(request.port, str(model.unicast("address", request.address)))
        return pb.Empty()

    @_rpc
    def ListPorts(self, request, context):
        return pb.ListPortsResponse(ports=[
            pb.Port(name=p.name, device=p.device, mac=p.mac, link_up=p.link_up,
                    link_speed_mbps=p.link_speed_mbps, addresses=list(p.addresses),
                    kernel_iface=p.kernel_iface, nic=p.nic) for p in self.m.ports()])

    @_rpc
    def ListFlows(self, request, context):
        for c in self.m.flows(request.vip, request.backend, request.client, request.limit):
            yield pb.Flow(protocol=_back(PROTOS)[c.proto], client=c.client, client_port=c.cport,
                          vip=c.vip, vip_port=c.vport, backend=c.backend, backend_port=c.bport,
                          local=c.local or "", local_port=c.lport, state=c.state,
                          expires_ms=c.expires_ms, packets=c.packets, lcore=c.lcore_slot)

    @_rpc
    def ApplyConfig(self, request, context):
        desired = config.load_config("(request)", text=request.yaml)
        return pb.ApplyConfigResponse(changes=self.m.apply_config(desired, request.dry_run))

    @_rpc
    def GetConfig(self, request, context):
        return pb.ConfigFile(yaml=config.dump(self.m.current_config()))

    @_rpc
    def Trace(self, request, context):
        t = self.m.trace(request.source, request.destination,
                         _enum(PROTOS, request.protocol, "protocol"), request.source_port,
                         request.destination_port,
                         request.tcp_flags or (0x10 if request.not_syn else 0x02),
                         request.seq, request.ack, request.payload)
        reply = pb.TraceReply(verdict=t["verdict"], why=t["why"], connection_state=t["state"],
                              drop_reason=t["reason"])
        if t["route"]:
            reply.route_prefix, reply.route_kind = t["route"]
        if t["service"]:
            vip, port, proto, method, sched = t["service"]
            reply.service.CopyFrom(pb.ServiceKey(vip=vip, port=port, protocol=_back(PROTOS)[proto]))
            reply.method, reply.scheduler = _back(METHODS)[method], _back(SCHEDULERS)[sched]
        if t["backend"]:
            reply.backend, reply.backend_port = t["backend"]
        if t["next_hop"]:
            reply.next_hop.CopyFrom(pb.NextHop(gateway=t["next_hop"][0] or "", port=t["next_hop"][1]))
        if t["inspect"]:
            reply.inspect_pool, reply.appliance = t["inspect"]
        return reply

    @_rpc
    def GetStats(self, request, context):
        return stats_msg(self.m.stats())

    @_rpc
    def GetTimeouts(self, request, context):
        return pb.Timeouts(**self.m.timeouts())

    @_rpc
    def SetTimeouts(self, request, context):
        return pb.Timeouts(**self.m.set_timeouts(_timeouts(request)))

    @_rpc
    def WatchStats(self, request, context):
        interval = max(request.interval_ms, 100) / 1000
        while context.is_active():
            yield stats_msg(self.m.stats())
            time.sleep(interval)


# Calls that change the appliance: admin only.
# Every call that is not a read changes the appliance (from the service's
# definition, so a new call is never left open to readers by omission).
READS = ("List", "Get", "Watch", "Trace")
MUTATIONS = {f"/{SERVICE_NAME}/{m.name}"
             for m in pb.DESCRIPTOR.services_by_name["LoadBalancer"].methods
             if not m.name.startswith(READS)}


@dataclass(frozen=True)
class Tls:
    """TCP listeners need TLS. With client_ca, clients must present a
    certificate signed by it (mutual TLS): those whose common name is in
    `admins` may change things, the others read. Without client_ca, clients
    are unauthenticated: they read, and changes are refused."""
    cert: bytes
    key: bytes
    client_ca: bytes | None = None
    admins: frozenset[str] = frozenset()


class Roles(grpc.ServerInterceptor):
    """The one place access is decided. Unix socket (mode 0600: root only):
    admin. TCP: by the client certificate (see Tls)."""

    def __init__(self, tls: Tls | None):
        self.tls = tls

    def role(self, context) -> str:
        if self.tls is None:
            return "admin"
        names = context.auth_context().get("x509_common_name") or []
        if not names:
            return "anonymous"
        return "admin" if names[0].decode() in self.tls.admins else "reader"

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        method = details.method
        if handler is None or method.startswith(("/grpc.health.", "/grpc.reflection.")) or \
                self.tls is None:
            return handler

        def guard(behavior):
            def checked(request, context):
                role = self.role(context)
                if method in MUTATIONS and role == "anonymous":
                    context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                  f"{method.rsplit('/', 1)[1]} changes the appliance: it needs a "
                                  "client certificate (mutual TLS: --tls-client-ca)")
                if method in MUTATIONS and role != "admin":
                    context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                  f"{method.rsplit('/', 1)[1]} changes the appliance: it needs an "
                                  "admin certificate (a common name in --grpc-admin)")
                return behavior(request, context)
            return checked
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                guard(handler.unary_unary), handler.request_deserializer,
                handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                guard(handler.unary_stream), handler.request_deserializer,
                handler.response_serializer)
        return handler


class Server:
    """The gRPC server of one appliance: LoadBalancer, health, reflection.
    `address`: unix:PATH (mode 0600) or tcp:HOST:PORT (needs `tls`)."""

    def __init__(self, manager: Manager, address: str, workers: int = 8, tls: Tls | None = None):
        self.address = address
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                                interceptors=[Roles(tls if not address.startswith("unix:")
                                                    else None)])
        pb_grpc.add_LoadBalancerServicer_to_server(LoadBalancer(manager), self.grpc)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), self.grpc)
        self.serving(False)
        if address.startswith("unix:"):
            path = address[len("unix:"):]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)             # a stale socket of a previous run
            old = os.umask(0o177)           # the socket is created 0600: root's
            try:
                self._bind(address)
            finally:
                os.umask(old)
        elif address.startswith("tcp:"):
            if tls is None:
                raise InvalidArgument(f"gRPC address {address}: TCP needs TLS "
                                      "(--tls-cert and --tls-key)")
            creds = grpc.ssl_server_credentials(
                [(tls.key, tls.cert)], root_certificates=tls.client_ca,
                require_client_auth=tls.client_ca is not None)
            self._bind(address[len("tcp:"):], creds)
        else:
            raise InvalidArgument(f"gRPC address {address!r}: expected unix:PATH or tcp:HOST:PORT")

    def _bind(self, address: str, creds=None) -> None:
        try:
            port = self.grpc.add_secure_port(address, creds) if creds else \
                self.grpc.add_insecure_port(address)
            if port == 0:
                raise OSError
        except (OSError, RuntimeError):
            raise InvalidArgument(f"cannot listen on {address}") from None

    def serving(self, up: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if up else \
            health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def start(self) -> "Server":
        self.grpc.start()
        return self

    def stop(self, grace: float = 1.0) -> None:
        self.serving(False)
        self.grpc.stop(grace).wait()
        if self.address.startswith("unix:"):
            try:
                os.unlink(self.address[len("unix:"):])
            except FileNotFoundError:
                pass
