"""Connection sync between the appliances of a fleet (like IPVS's sync
daemon, but every appliance both sends and receives, and nothing is taken
on trust).

The workers note each connection that opens or moves to another state; the
main loop collects them as records (struct pylb_conn_record, the format a
restart's snapshot uses) every `interval_ms` and sends them to every peer:
UDP datagrams from the sync port's address, through its kernel interface
(the exception path), of up to PER_DATAGRAM records. Each datagram carries
its sender's run (an epoch: the time it started) and a sequence number, and
ends with an HMAC-SHA256 tag (16 bytes) keyed by a key derived from the
fleet's secret. A receiver accepts a datagram only from a configured peer,
well formed, with a valid tag, and not seen before (a window of the last 64
sequence numbers of the peer's current run; an earlier run's are refused),
and hands the records to the dataplane, whose owning workers install them
(or update what a peer's earlier records installed; never a connection of
their own). Every refusal is counted by reason.

An appliance with nothing to send still sends an empty datagram every
HEARTBEAT_S, so its peers hear a new run of it at once; a peer heard in a
new run (it started, or restarted) is sent the whole table, its own
connections included: what it had before a crash comes back from its peers.

The heartbeats also say who is alive (heard within DEAD_S; one leaving
says so), and that elects the holder of the fleet's gateways (the address
NAT backends send their replies to): the live appliance with the lowest
sync address, counting only those up for DEAD_S (a starting one first
hears who is there; the holder keeps it until its successor is settled).
And the records say which peers' FullNAT pool addresses this appliance
holds connections of (`pools`), to be announced as backups.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass

from pylb.errors import PortError

log = logging.getLogger("pylb")

MAGIC = b"PYLS"
VERSION = 1
HEADER = struct.Struct("<4sBBHQQ")      # magic, version, flags, count, epoch, sequence
LEAVING = 1                             # flags: the sender stops (its last datagram)
TAG = 16                                # bytes of HMAC-SHA256 kept
PER_DATAGRAM = 15                       # records: 24 + 15 x 88 + 16 = 1,360 bytes
WINDOW = 64                             # sequence numbers remembered per peer
HEARTBEAT_S = 0.2                       # an empty datagram at least this often
DEAD_S = 1.0                            # a peer not heard this long is gone
TABLE_BURST = 32                        # datagrams of a whole table sent at once,
TABLE_GAP_S = 0.001                     # then a pause: about 480,000 records/s

COUNTERS = ("sync_datagrams_sent", "sync_records_sent", "sync_datagrams_received",
            "sync_records_received", "sync_refused_unknown_peer", "sync_refused_malformed",
            "sync_refused_forged", "sync_refused_replayed")


def key_for(secret: bytes) -> bytes:
    """Sync's own key: never the flow hash's (a different use of the secret)."""
    return hashlib.sha256(b"pylb connection sync v1\0" + secret).digest()


@dataclass
class _Seen:
    epoch: int = -1
    top: int = -1
    window: int = 0                     # bit i: top - i was accepted


class Codec:
    """Datagrams: built for sending and checked on receipt (no sockets: the
    same code the tests drive directly)."""

    def __init__(self, key: bytes, record_size: int, peers):
        self.key, self.size = key, record_size
        self.epoch = time.time_ns()
        self.seq = 0
        self.seen = {p: _Seen() for p in peers}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.new_runs: set[str] = set()   # peers heard in a run not heard before
        # peer -> (heard since, last heard): monotonic seconds, this streak
        self.heard: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()        # noted on receipt, read by the main loop

    def datagrams(self, records: bytes, flags: int = 0) -> list[bytes]:
        """`records` in datagrams; one empty datagram for none (a heartbeat)."""
        step = PER_DATAGRAM * self.size
        out = []
        for i in range(0, max(len(records), 1), step):
            body = records[i:i + step]
            head = HEADER.pack(MAGIC, VERSION, flags, len(body) // self.size, self.epoch,
                               self.seq)
            self.seq += 1
            out.append(head + body + hmac.new(self.key, head + body, "sha256").digest()[:TAG])
        return out

    def accept(self, data: bytes, peer: str) -> bytes | None:
        """The records of a datagram from `peer`, or None (counted why)."""
        c = self.counters
        c["sync_datagrams_received"] += 1
        seen = self.seen.get(peer)
        if seen is None:
            c["sync_refused_unknown_peer"] += 1
            return None
        if len(data) < HEADER.size + TAG:
            c["sync_refused_malformed"] += 1
            return None
        head, body, tag = data[:HEADER.size], data[HEADER.size:-TAG], data[-TAG:]
        magic, version, flags, count, epoch, seq = HEADER.unpack(head)
        if magic != MAGIC or version != VERSION or len(body) != count * self.size:
            c["sync_refused_malformed"] += 1
            return None
        if not hmac.compare_digest(tag, hmac.new(self.key, head + body, "sha256").digest()[:TAG]):
            c["sync_refused_forged"] += 1
            return None
        new_run = epoch > seen.epoch
        if not _fresh(seen, epoch, seq):
            c["sync_refused_replayed"] += 1
            return None
        now = time.monotonic()
        with self.lock:
            if new_run:
                self.new_runs.add(peer)
            since, last = self.heard.get(peer, (now, 0.0))
            if flags & LEAVING:
                self.heard.pop(peer, None)
            else:
                self.heard[peer] = (now if new_run or now - last >= DEAD_S else since, now)
        c["sync_records_received"] += count
        return body

    def live(self, now: float) -> dict[str, float]:
        """Peers heard within DEAD_S: since when (without a gap)."""
        with self.lock:
            return {p: since for p, (since, last) in self.heard.items() if now - last < DEAD_S}


def _fresh(s: _Seen, epoch: int, seq: int) -> bool:
    """Is (epoch, seq) new from this peer? Noted if so."""
    if epoch < s.epoch:
        return False                    # an earlier run of the peer
    if epoch > s.epoch:
        s.epoch, s.top, s.window = epoch, seq, 1
        return True
    if seq > s.top:
        s.window = (s.window << min(seq - s.top, WINDOW) | 1) & ((1 << WINDOW) - 1)
        s.top = seq
        return True
    age = s.top - seq
    if age >= WINDOW or s.window >> age & 1:
        return False
    s.window |= 1 << age
    return True


class Sync:
    """The appliance's side: `send` (main loop: collected records to every
    peer), and a thread receiving the peers' datagrams and handing their
    records to `apply` (which queues them to the main loop)."""

    def __init__(self, settings, secret: bytes, address: str, iface: str, record_size: int,
                 apply, locals_of=None):
        """`locals_of(records)`: the FullNAT local addresses records name,
        {address: ms left} (pylb._native.fullnat_locals)."""
        self.s = settings
        self.codec = Codec(key_for(secret), record_size, settings.peers)
        self.apply = apply
        self.address = address
        self.started = time.monotonic()
        self.locals_of = locals_of
        self._pools: dict[str, float] = {}      # address -> held until (monotonic)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((address, settings.udp_port))
        except OSError as e:
            self.sock.close()
            raise PortError(f"sync: cannot listen on {address}:{settings.udp_port} through "
                            f"{iface}: {e.strerror}") from None
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._sending = threading.Lock()
        self.next = 0.0
        self.last_sent = 0.0
        self.thread = threading.Thread(target=self._receive, name="pylb-sync", daemon=True)
        self.thread.start()

    @property
    def counters(self) -> dict:
        return self.codec.counters

    def due(self, now: float) -> bool:
        if now < self.next:
            return False
        self.next = now + self.s.interval_ms / 1000
        return True

    def elected(self, now: float) -> bool:
        """Whether this appliance holds the fleet's gateways: it has been up
        DEAD_S, and no live peer has a lower address. A peer counts once
        settled (heard for DEAD_S: it too first hears who is there), or if
        it was there when this one started."""
        if now - self.started < DEAD_S:
            return False
        me = ipaddress.ip_address(self.address)
        return all(me < ipaddress.ip_address(p) for p, since in self.codec.live(now).items()
                   if now - since >= DEAD_S or since - self.started < DEAD_S)

    def live(self, now: float) -> list[str]:
        """The peers heard within DEAD_S."""
        return sorted(self.codec.live(now))

    def pools(self, now: float) -> list[str]:
        """The FullNAT local addresses of the connections peers synced here
        and that may still be open."""
        with self.codec.lock:
            self._pools = {a: t for a, t in self._pools.items() if t > now}
            return sorted(self._pools)

    def leave(self) -> None:
        """Tell the peers this appliance stops (they elect without it at once)."""
        for d in self.codec.datagrams(b"", LEAVING):
            for peer in self.s.peers:
                try:
                    self.sock.sendto(d, (peer, self.s.udp_port))
                except OSError:
                    pass

    def rejoined(self) -> list[str]:
        """Peers heard in a new run since the last call: to be sent the table."""
        with self.codec.lock:
            out, self.codec.new_runs = sorted(self.codec.new_runs), set()
        return out

    def send(self, records: bytes, peers=None) -> None:
        """Records to the peers (all, or `peers`); nothing, unless a
        heartbeat is due."""
        if not records and time.monotonic() - self.last_sent < HEARTBEAT_S:
            return
        self.last_sent = time.monotonic()
        c = self.codec.counters
        # One sequence of numbers and one set of counts: the table's thread
        # sends too.
        with self._sending:
            for d in self.codec.datagrams(records):
                for peer in peers or self.s.peers:
                    try:
                        self.sock.sendto(d, (peer, self.s.udp_port))
                        c["sync_datagrams_sent"] += 1
                    except OSError as e:        # a peer's route or neighbour gone
                        log.debug("sync to %s: %s", peer, e)
            c["sync_records_sent"] += len(records) // self.codec.size

    def send_table(self, records: bytes, peer: str) -> None:
        """The whole table to a peer in a new run, from a thread of its own,
        TABLE_BURST datagrams at a time (a million connections are some
        66,000 datagrams: the main loop's housekeeping stays on time, and
        the peer's socket buffer is not flooded)."""
        def paced():
            step = TABLE_BURST * PER_DATAGRAM * self.codec.size
            for i in range(0, len(records), step):
                if self._stop.is_set():
                    return
                self.send(records[i:i + step], [peer])
                time.sleep(TABLE_GAP_S)
        threading.Thread(target=paced, name="pylb-sync-table", daemon=True).start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, (peer, _) = self.sock.recvfrom(65535)
            except (socket.timeout, OSError):
                continue
            records = self.codec.accept(data, peer)
            if records:
                self.apply(records)
                if self.locals_of is not None:
                    now = time.monotonic()
                    with self.codec.lock:
                        for a, ms in self.locals_of(records).items():
                            self._pools[a] = max(self._pools.get(a, 0.0), now + ms / 1000)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()
