"""`pylbctl top`: a live view of a running appliance, refreshed from the
WatchStats stream (and ListServices at each update): each worker's load
and packet rate, traffic, connections, drops by reason, and each service
with its rates and its backends' state, health and connections. Plain
text redrawn in place (ANSI: home, clear), so it works in any terminal,
over ssh and TLS like every other command."""

from __future__ import annotations

import shutil
import threading
import time

from pylb import protonames
from pylb.v1 import pylb_pb2 as pb

CLEAR = "\x1b[H\x1b[2J"


def human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}{unit}"
    return f"{n:.0f}{unit}" if n == int(n) or n >= 10 else f"{n:.1f}{unit}"


class Rates:
    """Per-second rates of monotonic counters since the last look (top's
    screens, the status page's requests: any thread)."""

    def __init__(self):
        self.last: dict[str, tuple[float, int]] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str, value: int, now: float) -> float:
        with self.lock:
            then = self.last.get(key)
            self.last[key] = (now, value)
        if then is None or now <= then[0] or value < then[1]:
            return 0.0
        return (value - then[1]) / (now - then[0])


def render(stats: pb.Stats, services: list[pb.Service], rate: Rates, address: str,
           width: int = 100) -> str:
    now = stats.timestamp_ms / 1000 if stats.timestamp_ms else time.time()
    c = stats.counters
    out = [f"pylb top  {address}  {time.strftime('%H:%M:%S', time.localtime(now))}  "
           f"(Ctrl-C quits)", ""]
    out.append("lcore  load    rx pkt/s   busy polls/s")
    for lc in stats.lcores[:-1] or stats.lcores:        # the workers (the last: control)
        polls = rate(f"lc{lc.slot}.polls", lc.counters.get("polls", 0), now)
        busy = rate(f"lc{lc.slot}.busy", lc.counters.get("busy_polls", 0), now)
        rx = rate(f"lc{lc.slot}.rx", lc.counters.get("rx_packets", 0), now)
        load = busy / polls if polls else 0.0
        out.append(f"{lc.slot:<6} {load:6.1%}  {human(rx):>9}   {human(busy):>12}")
    rx, tx = rate("rx", c.get("rx_packets", 0), now), rate("tx", c.get("tx_packets", 0), now)
    rxb, txb = rate("rxb", c.get("rx_bytes", 0), now), rate("txb", c.get("tx_bytes", 0), now)
    # New: tracked or, with the table full, untracked.
    new = rate("new", c.get("conn_created", 0) + c.get("conn_untracked", 0), now)
    out += ["", f"traffic      in {human(rx, ' pkt/s')}  {human(8 * rxb, 'bit/s')}    "
                f"out {human(tx, ' pkt/s')}  {human(8 * txb, 'bit/s')}",
            f"connections  {stats.connections} open ({stats.half_open} half-open)  "
            f"new {human(new, '/s')}"]
    drops = sorted(((rate(f"drop.{k}", v, now), k) for k, v in stats.drops.items()),
                   reverse=True)
    total = sum(r for r, _ in drops)
    shown = ", ".join(f"{k} {human(r, '/s')}" for r, k in drops[:6] if r > 0)
    out.append(f"drops        {human(total, '/s')}" + (f": {shown}" if shown else ""))
    out += ["", "service                         method  sched   conns    new/s    in pkt/s"]
    for s in services:
        key = f"{s.key.vip}:{s.key.port}/{protonames.PROTOS[s.key.protocol]}"
        new_s = rate(f"svc.{key}.conns", s.stats.connections, now)
        pkts = rate(f"svc.{key}.in", s.stats.in_packets, now)
        open_ = sum(b.active_connections + b.inactive_connections for b in s.backends)
        out.append(f"{key:<31} {protonames.METHODS[s.method]:<7} "
                   f"{protonames.SCHEDULERS[s.scheduler]:<7} {open_:>5} {human(new_s):>8} "
                   f"{human(pkts):>11}")
        for b in s.backends:
            port = b.port or s.key.port
            bkey = f"{key}>{b.address}:{port}"
            bp = rate(f"be.{bkey}.in", b.stats.in_packets, now)
            out.append(f"  -> {b.address}:{port:<6} {protonames.STATES[b.state]:<6} "
                       f"{b.health or '-':<8} w{b.weight:<5} active {b.active_connections:<6} "
                       f"inactive {b.inactive_connections:<6} in {human(bp, ' pkt/s')}")
    return "\n".join(line[:width] for line in out)


def run(stub, address: str, interval_ms: int = 1000, iterations: int = 0) -> None:
    """Redraw at every update of the stream (`iterations` of them, 0: until
    interrupted)."""
    rate = Rates()
    stream = stub.WatchStats(pb.WatchStatsRequest(interval_ms=interval_ms))
    try:
        for i, stats in enumerate(stream, 1):
            services = list(stub.ListServices(pb.ListServicesRequest()).services)
            width = shutil.get_terminal_size((100, 40)).columns
            print(CLEAR + render(stats, services, rate, address, width), flush=True)
            if iterations and i >= iterations:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stream.cancel()
