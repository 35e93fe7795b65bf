"""Connection snapshot files (pylb.snapshot) and every file pylb reads
(pylb.files), as hostile places would leave them (issue 27.3b, c, f): too
large, not regular files, torn or damaged. Unit tier: no EAL."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time

import pytest

from pylb import files, snapshot
from test_cli import ROOT, error_line, pylb

SIZE = 88


def records(n: int) -> bytes:
    return b"".join(struct.pack("<I", i) * (SIZE // 4) for i in range(n))


def restore(path, max_records=1000):
    chunks = []

    def install(chunk):
        chunks.append(chunk)
        return len(chunk) // SIZE
    return snapshot.restore(str(path), SIZE, max_records, install), b"".join(chunks)


def test_a_snapshot_comes_back_whole_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "CHUNK", 7)
    path = tmp_path / "x.conns"
    snapshot.write(str(path), records(100), SIZE)
    got, data = restore(path)
    assert got == (100, 100) and data == records(100)
    assert restore(tmp_path / "none.conns") == (None, b"")


def test_a_crash_mid_write_leaves_nothing_behind_the_next_write(tmp_path):
    """A run killed while writing leaves its temporary file; the next run's
    first snapshot takes its place (before, each run's had its own name,
    and every crash left one in /run/pylb for good)."""
    path = tmp_path / "x.conns"
    snapshot.write(str(path), records(3), SIZE)
    (tmp_path / "x.conns.tmp").write_bytes(b"half a snapshot")     # the crash's
    snapshot.write(str(path), records(5), SIZE)
    assert sorted(os.listdir(tmp_path)) == ["x.conns"]
    assert restore(path) == ((5, 5), records(5))


def test_an_oversized_snapshot_is_refused_without_reading_it(tmp_path, caplog):
    """`truncate -s 8G` over a snapshot: refused at once by its size."""
    path = tmp_path / "x.conns"
    snapshot.write(str(path), records(10), SIZE)
    os.truncate(path, 8 << 30)
    t0 = time.monotonic()
    assert restore(path) == (None, b"")
    assert time.monotonic() - t0 < 1 and "nothing restored" in caplog.text
    # A header that claims more records than the tables hold.
    snapshot.write(str(path), records(10), SIZE)
    assert restore(path, max_records=9) == (None, b"")
    assert "more than the tables' 9" in caplog.text


@pytest.mark.parametrize("damage", ["torn", "flipped", "header", "tail"])
def test_a_torn_or_damaged_snapshot_is_refused_whole(tmp_path, caplog, damage):
    path = tmp_path / "x.conns"
    snapshot.write(str(path), records(50), SIZE)
    data = bytearray(path.read_bytes())
    if damage == "torn":
        data = data[:-SIZE // 2]
    elif damage == "flipped":
        data[snapshot.HEADER.size + 30 * SIZE + 5] ^= 0x40
    elif damage == "header":
        data[8] = 9                                  # another version
    else:
        data += b"\0" * SIZE
    path.write_bytes(bytes(data))
    assert restore(path) == (None, b"")              # nothing installed, not half
    assert "nothing restored" in caplog.text


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_snapshot_that_is_no_regular_file_is_refused_at_once(tmp_path, caplog, kind):
    path = tmp_path / "x.conns"
    os.mkfifo(path) if kind == "fifo" else os.mkdir(path)
    done = []
    t = threading.Thread(target=lambda: done.append(restore(path)), daemon=True)
    t.start()
    t.join(5)
    assert done == [(None, b"")]
    assert ("a FIFO" if kind == "fifo" else "a directory") in caplog.text


def test_files_refuses_special_files_and_bounds_sizes(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, what in ((fifo, "a FIFO"), (tmp_path, "a directory"), ("/dev/zero", "a character device")):
        with pytest.raises(OSError, match=what):
            files.read(str(path))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(OSError, match="larger than the limit of 100 bytes"):
        files.read(str(big), 100)
    assert files.read(str(big), 101) == b"x" * 101


def test_a_fifo_as_secret_or_config_is_refused_in_one_line(tmp_path):
    """`pylb profile check` / `config check` with a FIFO where a file is
    expected: one line, at once (it hung before)."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o600)
    prof = tmp_path / "p.yaml"
    prof.write_text((ROOT / "hwconfig" / "tap.yaml").read_text()
                    + f"fleet:\n  secret_file: {fifo}\n")
    r = pylb("profile", "check", str(prof), timeout=30)
    assert r.returncode == 2 and "a FIFO, not a regular file" in error_line(r)
    r = pylb("config", "check", str(fifo), timeout=30)
    assert r.returncode == 2 and "a FIFO, not a regular file" in error_line(r)
    r = pylb("config", "check", str(tmp_path), timeout=30)
    assert r.returncode == 2 and "a directory, not a regular file" in error_line(r)
