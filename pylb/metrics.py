"""Prometheus metrics of a running appliance (prometheus-client), read from the
dataplane at each scrape through the management domain. Names follow the
IPVS exporter (node_exporter's ipvs collector) where there is one:

    pylb_ipvs_backend_connections_active / _inactive / _weight   {local_address,
        local_port, proto, remote_address, remote_port}
    pylb_ipvs_backend_up (1: up; 0: drain or down), pylb_ipvs_backend_state {.., state}
    pylb_ipvs_connections_total, pylb_ipvs_incoming_packets_total,
    pylb_ipvs_incoming_bytes_total, pylb_ipvs_outgoing_packets_total,
    pylb_ipvs_outgoing_bytes_total
    pylb_conntrack_entries, pylb_conntrack_created_total, pylb_conntrack_table_full_total,
    pylb_conntrack_lookups_total
    pylb_drops_total {reason}; pylb_<counter>_total for every other dataplane counter
    pylb_port_<nic counter>_total {port}; pylb_lcore_busy_cycles_total {lcore}
    pylb_mempool_mbufs {pool, socket, state: available or in_use}
    pylb_pool_flows {pool}; pylb_pool_appliance_up {pool, appliance} (1: up in force;
        0: drain or down, by the operator or its health check)
    pylb_inspect_*_total: inspection's counters (pylb_drops_total: its drops)
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from pylb import model
from pylb.errors import InvalidArgument
from pylb.manager import Manager

BACKEND_LABELS = ["local_address", "local_port", "proto", "remote_address", "remote_port"]
TRAFFIC = (("conns", "connections_total"), ("in_packets", "incoming_packets_total"),
           ("in_bytes", "incoming_bytes_total"), ("out_packets", "outgoing_packets_total"),
           ("out_bytes", "outgoing_bytes_total"))
IPVS_TOTALS = {"conn_created": "ipvs_connections_total", "rx_packets": "ipvs_incoming_packets_total",
               "rx_bytes": "ipvs_incoming_bytes_total", "tx_packets": "ipvs_outgoing_packets_total",
               "tx_bytes": "ipvs_outgoing_bytes_total"}


class Collector:
    def __init__(self, manager: Manager):
        self.m = manager

    def collect(self):
        stats, services, ports = self.m.stats(), self.m.services(), self.m.ports()
        gauges = {n: GaugeMetricFamily(f"pylb_ipvs_backend_{n}", f"backend {n.replace('_', ' ')}",
                                       labels=BACKEND_LABELS)
                  for n in ("connections_active", "connections_inactive", "weight", model.UP)}
        state = GaugeMetricFamily("pylb_ipvs_backend_state", "1 for the backend's state",
                                  labels=BACKEND_LABELS + ["state"])
        for v in services:
            s = v.spec
            for b in v.backends:
                labels = [s.vip, str(s.port), s.proto, b.spec.ip, str(b.spec.port or s.port)]
                gauges["connections_active"].add_metric(labels, b.active)
                gauges["connections_inactive"].add_metric(labels, b.inactive)
                gauges["weight"].add_metric(labels, b.spec.weight)
                gauges[model.UP].add_metric(labels, 1 if b.spec.state == model.UP else 0)
                state.add_metric(labels + [b.spec.state], 1)
        yield from gauges.values()
        yield state
        per_service = {k: CounterMetricFamily(f"pylb_ipvs_service_{name}", f"service {k}",
                                              labels=["local_address", "local_port", "proto"])
                       for k, name in TRAFFIC}
        per_backend = {k: CounterMetricFamily(f"pylb_ipvs_backend_{name}", f"backend {k}",
                                              labels=BACKEND_LABELS)
                       for k, name in TRAFFIC}
        for v in services:
            for k, fam in per_service.items():
                fam.add_metric([v.spec.vip, str(v.spec.port), v.spec.proto], v.stats[k])
            for b in v.backends:
                for k, fam in per_backend.items():
                    fam.add_metric([v.spec.vip, str(v.spec.port), v.spec.proto, b.spec.ip,
                                    str(b.spec.port or v.spec.port)], b.stats[k])
        yield from per_service.values()
        yield from per_backend.values()
        counters = stats["counters"]
        for name, metric in IPVS_TOTALS.items():
            yield CounterMetricFamily(f"pylb_{metric}", f"dataplane {name}", value=counters[name])
        key = GaugeMetricFamily("pylb_flow_hash_key_info",
                                "1, labelled with the flow-hash key's fingerprint",
                                labels=["fingerprint"])
        key.add_metric([stats["hash_fingerprint"]], 1)
        yield key
        tables = GaugeMetricFamily("pylb_service_table_info",
                                   "1, labelled with the service's lookup-table fingerprint "
                                   "(equal across a fleet that chooses alike)",
                                   labels=["local_address", "local_port", "proto", "fingerprint"])
        for v in services:
            tables.add_metric([v.spec.vip, str(v.spec.port), v.spec.proto, v.fingerprint], 1)
        yield tables
        vips = GaugeMetricFamily("pylb_vip_table_info",
                                 "1, labelled with the L3 VIP's lookup-table fingerprint",
                                 labels=["prefix", "fingerprint"])
        for v in self.m.vips():
            vips.add_metric([v.spec.prefix, v.fingerprint], 1)
        yield vips
        announced = GaugeMetricFamily("pylb_vip_announced",
                                      "1 while the VIP is announced by BGP (0: withdrawn)",
                                      labels=["prefix"])
        for a in self.m.announcements():
            announced.add_metric([a.prefix], 1 if a.announced else 0)
        yield announced
        sessions = GaugeMetricFamily("pylb_bgp_session_established",
                                     "1 while the BGP session with the peer is established",
                                     labels=["peer", "remote_as"])
        for p in self.m.bgp_peers():
            sessions.add_metric([p.address, str(p.remote_as)], 1 if p.state == "Established" else 0)
        yield sessions
        flows = GaugeMetricFamily("pylb_pool_flows", "flows the workers remember, by "
                                  "inspection pool", labels=["pool"])
        up = GaugeMetricFamily("pylb_pool_appliance_up", "1 while the appliance takes new flows "
                               "(0: drain or down)", labels=["pool", "appliance"])
        for p in self.m.pools():
            flows.add_metric([p.spec.name], p.flows)
            for a in p.appliances:
                up.add_metric([p.spec.name, a.spec.ip], 1 if a.spec.state == model.UP and
                              a.spec.weight else 0)
        yield flows
        yield up
        yield GaugeMetricFamily("pylb_conntrack_entries", "tracked connections",
                                value=stats["connections"])
        yield GaugeMetricFamily("pylb_conntrack_capacity", "entries the tables hold at most",
                                value=stats["capacity"])
        yield GaugeMetricFamily("pylb_conntrack_half_open_entries",
                                "tracked connections half-open (TCP handshake, unanswered UDP)",
                                value=stats["half_open"])
        yield CounterMetricFamily("pylb_conntrack_created_total", "connections created",
                                  value=counters["conn_created"])
        yield CounterMetricFamily("pylb_conntrack_table_full_total",
                                  "new connections sent statelessly: the table was full",
                                  value=counters["conn_table_full"])
        yield CounterMetricFamily("pylb_conntrack_lookups_total", "packets looked up in the table",
                                  value=counters["l4_packets"])
        drops = CounterMetricFamily("pylb_drops_total", "dropped packets by reason",
                                    labels=["reason"])
        for reason, v in stats["drops"].items():
            drops.add_metric([reason], v)
        yield drops
        for name, v in counters.items():
            if name not in ("busy_cycles", "busy_polls", "polls"):
                yield CounterMetricFamily(f"pylb_{name}_total", f"dataplane counter {name}",
                                          value=v)
        busy = CounterMetricFamily("pylb_lcore_busy_cycles_total",
                                   "TSC cycles of poll loops that received packets",
                                   labels=["lcore"])
        polls = CounterMetricFamily("pylb_lcore_polls_total",
                                    "poll loops run by each worker (stalled: not rising)",
                                    labels=["lcore"])
        for i, row in enumerate(stats["lcores"]):
            busy.add_metric([str(i)], row["busy_cycles"])
        for i, row in enumerate(stats["lcores"][:-1]):      # (the last: the control slot)
            polls.add_metric([str(i)], row["polls"])
        yield busy
        yield polls
        mbufs = GaugeMetricFamily("pylb_mempool_mbufs", "packet buffers per pool, by state",
                                  labels=["pool", "socket", "state"])
        for p in stats["mempools"]:
            for state in ("available", "in_use"):
                mbufs.add_metric([p["name"], str(p["socket"]), state], p[state])
        yield mbufs
        nic = {}
        for p in ports:
            for k, v in p.nic.items():
                nic.setdefault(k, CounterMetricFamily(f"pylb_port_{k}_total",
                                                      f"NIC counter {k}", labels=["port"]))
                nic[k].add_metric([p.name], v)
        yield from nic.values()


def registry(manager: Manager) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(manager))
    return reg


def parse_address(text: str) -> tuple[str, int]:
    """'[HOST:]PORT' -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"metrics address {text!r}: expected [HOST:]PORT, e.g. 127.0.0.1:9779")
    return host.strip("[]") or "127.0.0.1", int(port)
