"""Connection snapshots: the dataplane's tracked connections written to a
file while it runs (every `connections.snapshot_interval_ms`, and once more
as it stops) and installed again by the next `pylb run` of the same
instance before its workers start, so a restart (an upgrade, or a crash and
its supervisor) keeps every connection the mid-flow pick-up could not: WRR
and WLC choices, persistence, FullNAT, the SYN proxy's sequence offsets.

The file: a header (magic, version, record size, count) and the records as
the dataplane exports them (struct pylb_conn_record). It is written to a
temporary name and renamed, so a crash mid-write leaves the previous one.
"""

from __future__ import annotations

import logging
import os
import struct
import threading

log = logging.getLogger("pylb")

MAGIC = b"PYLBCONN"
VERSION = 1
HEADER = struct.Struct("<8sIIQ")        # magic, version, record size, count


def path_for(instance: str) -> str:
    return f"/run/pylb/{instance}.conns"


def write(path: str, records: bytes, record_size: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, record_size, len(records) // record_size))
        f.write(records)
    os.replace(tmp, path)


def read(path: str, record_size: int) -> bytes | None:
    """The records of a snapshot; None if there is none, or it is not one
    this build wrote (said in the log: nothing restored)."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            data = f.read()
    except FileNotFoundError:
        return None
    if len(head) < HEADER.size:
        log.warning("connection snapshot %s is cut short: nothing restored", path)
        return None
    magic, version, size, count = HEADER.unpack(head)
    if (magic, version, size) != (MAGIC, VERSION, record_size) or len(data) != count * size:
        log.warning("connection snapshot %s is not one this pylb wrote (or is cut short): "
                    "nothing restored", path)
        return None
    return data


class Writer:
    """Snapshots taken on the main loop (`due`, `take`), written to the file
    by a thread of their own so the loop never waits for the disk."""

    def __init__(self, path: str, interval_ms: int, record_size: int):
        self.path, self.interval, self.size = path, interval_ms / 1000, record_size
        self.next = 0.0
        self._busy = threading.Lock()

    def due(self, now: float) -> bool:
        return self.interval > 0 and now >= self.next and not self._busy.locked()

    def take(self, records: bytes, now: float, wait: bool = False) -> None:
        self.next = now + self.interval

        def run():
            try:
                write(self.path, records, self.size)
            except OSError as e:
                log.error("connection snapshot %s: %s", self.path, e.strerror)
            finally:
                self._busy.release()
        self._busy.acquire()
        if wait:
            run()
        else:
            threading.Thread(target=run, daemon=True).start()
