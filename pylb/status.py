"""The status page (like HAProxy's stats page), read only, on the metrics
listener: `/status` is HTML written from the domain at each request
(services, backends with state, health, weight and connections, rates
since the last look, drops by reason), refreshed by the browser every few
seconds (no JavaScript); `/metrics` stays Prometheus'. One WSGI app serves
both."""

from __future__ import annotations

import html
import socket
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from pylb import model
from pylb.manager import Manager
from pylb.metrics import registry
from pylb.top import Rates

REFRESH_S = 2
STYLE = """body{font:14px system-ui,sans-serif;margin:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 8px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}tr.svc td{background:#dde8f5;font-weight:bold}
.up{color:#070}.down{color:#b00;font-weight:bold}.drain{color:#b60}.unknown{color:#777}"""


def page(m: Manager, rate: Rates) -> str:
    now = time.monotonic()
    stats = m.stats()
    e = html.escape
    rows = []
    for v in m.services():
        s = v.spec
        name = s.name()
        rows.append(
            f'<tr class="svc"><td class="l">{e(name)}</td><td class="l">{e(s.method)} '
            f'{e(s.scheduler)}</td><td></td><td></td><td>{v.stats.get("active", 0)}</td>'
            f'<td>{v.stats.get("inactive", 0)}</td>'
            f'<td>{rate(name + ".conns", v.stats.get("conns", 0), now):.1f}</td>'
            f'<td>{rate(name + ".in", v.stats.get("in_packets", 0), now):.1f}</td></tr>')
        for b in v.backends:
            state = b.spec.state
            health = b.health or "-"
            key = f"{name}>{b.spec.ip}:{b.spec.port}"
            addr = f"[{b.spec.ip}]" if ":" in b.spec.ip else b.spec.ip
            rows.append(
                f'<tr><td class="l">&rarr; {e(addr)}:{b.spec.port or s.port}</td>'
                f'<td class="l {e(state)}">{e(state)}</td>'
                f'<td class="l {e(health if health in model.HEALTH_STATES else "")}">'
                f'{e(health)}</td><td>{b.spec.weight}</td><td>{b.active}</td>'
                f'<td>{b.inactive}</td>'
                f'<td>{rate(key + ".conns", b.stats.get("conns", 0), now):.1f}</td>'
                f'<td>{rate(key + ".in", b.stats.get("in_packets", 0), now):.1f}</td></tr>')
    drops = sorted(((v, k) for k, v in stats["drops"].items() if v), reverse=True)
    drop_rows = "".join(f'<tr><td class="l">{e(k)}</td><td>{v}</td>'
                        f'<td>{rate("drop." + k, v, now):.1f}</td></tr>' for v, k in drops)
    c = stats["counters"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="{REFRESH_S}">
<title>pylb status</title><style>{STYLE}</style></head><body>
<h1>pylb status</h1>
<p id="summary">{stats["connections"]} connections ({stats["half_open"]} half-open) of
{stats["capacity"]}; in {rate("rx", c.get("rx_packets", 0), now):.1f} pkt/s, out
{rate("tx", c.get("tx_packets", 0), now):.1f} pkt/s; {sum(stats["drops"].values())} dropped.
Refreshed every {REFRESH_S} s, {time.strftime("%Y-%m-%d %H:%M:%S")}.</p>
<h2>Services</h2>
<table id="services"><tr><th class="l">service / backend</th><th class="l">method, scheduler /
state</th><th class="l">health</th><th>weight</th><th>active</th><th>inactive</th>
<th>new conn/s</th><th>in pkt/s</th></tr>
{"".join(rows)}</table>
<h2>Drops by reason</h2>
<table id="drops"><tr><th class="l">reason</th><th>packets</th><th>per second</th></tr>
{drop_rows or '<tr><td class="l">none</td><td></td><td></td></tr>'}</table>
</body></html>
"""


def app(m: Manager):
    """/status: the page; anything else: Prometheus' exposition."""
    metrics = make_wsgi_app(registry(m))
    rate = Rates()

    def serve(environ, start_response):
        if environ.get("PATH_INFO") in ("/status", "/status/"):
            body = page(m, rate).encode()
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                      ("Content-Length", str(len(body))),
                                      ("Cache-Control", "no-store")])
            return [body]
        return metrics(environ, start_response)
    return serve


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


def start(m: Manager, host: str, port: int) -> WSGIServer:
    """Serve /metrics and /status on host:port from a thread; the server's
    shutdown() and server_close() stop it."""
    server = make_server(host, port, app(m), _Server6 if ":" in host else _Server,
                         handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True, name="pylb-metrics").start()
    return server
