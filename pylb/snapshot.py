"""Connection snapshots: the dataplane's tracked connections written to a
file while it runs (every `connections.snapshot_interval_ms`, and once more
as it stops) and installed again by the next `pylb run` of the same
instance before its workers start, so a restart (an upgrade, or a crash and
its supervisor) keeps every connection the mid-flow pick-up could not: WRR
and WLC choices, persistence, FullNAT, the SYN proxy's sequence offsets.

The file: a header (magic, version, record size, count, CRC-32 of the
records) and the records as the dataplane exports them (struct
pylb_conn_record). It is written to a temporary name (`NAME.conns.tmp`)
and renamed, so a crash mid-write leaves the previous one. Read back, it is
refused whole (a warning, nothing restored) unless it is a regular file of
exactly the size its header gives, no more records than the tables hold,
with the checksum right; the records are streamed, never read whole, and
the dataplane checks each one (its time left is capped by its state's
timeout).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from typing import Callable

from pylb import files

log = logging.getLogger("pylb")

MAGIC = b"PYLBCONN"
VERSION = 2
HEADER = struct.Struct("<8sIIQI4x")     # magic, version, record size, count, CRC-32
CHUNK = 4096                            # records read (and installed) at a time


def path_for(instance: str) -> str:
    return f"/run/pylb/{instance}.conns"


def write(path: str, records: bytes, record_size: int) -> None:
    # One name for the temporary file (one run of an instance at a time):
    # what a crash mid-write left is written over, never piled up in /run.
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, record_size, len(records) // record_size,
                            zlib.crc32(records)))
        f.write(records)
    os.replace(tmp, path)


def restore(path: str, record_size: int, max_records: int,
            install: Callable[[bytes], int]) -> tuple[int, int] | None:
    """Install the records of the snapshot at `path` (`install` takes a
    chunk of records, returns how many it installed): (installed, records
    in the file), or None if there is none or it is refused (said in the
    log, nothing installed)."""
    def refuse(why: str) -> None:
        log.warning("connection snapshot %s %s: nothing restored", path, why)

    try:
        f = os.fdopen(files.open_regular(path), "rb")
    except FileNotFoundError:
        return None
    except OSError as e:
        return refuse(f"cannot be read ({e.strerror})")
    with f:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            return refuse("is cut short")
        magic, version, size, count, crc = HEADER.unpack(head)
        if (magic, version, size) != (MAGIC, VERSION, record_size):
            return refuse("is not one this pylb wrote")
        if count > max_records:
            return refuse(f"holds {count:,} records, more than the tables' {max_records:,}")
        if os.fstat(f.fileno()).st_size != HEADER.size + count * size:
            return refuse("is cut short or has bytes past its records")
        # Checked whole before anything is installed: a torn or damaged
        # file is refused, never half applied.
        got = 0
        for chunk in _chunks(f, count, size):
            got = zlib.crc32(chunk, got)
        if got != crc:
            return refuse("fails its checksum (damaged)")
        f.seek(HEADER.size)
        return sum(install(chunk) for chunk in _chunks(f, count, size)), count


def _chunks(f, count: int, size: int):
    left = count
    while left > 0:
        n = min(left, CHUNK)
        chunk = f.read(n * size)
        if len(chunk) != n * size:
            raise OSError("the snapshot changed while it was read")
        left -= n
        yield chunk


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
