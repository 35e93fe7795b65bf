"""The files pylb is given (profiles, configurations, prefix lists, secrets,
certificates, connection snapshots): regular files only, opened without
blocking, read up to a bound. A FIFO, a device, a socket or a directory in
their place is refused in one line (an OSError whose strerror says what
it is), never waited on."""

from __future__ import annotations

import errno
import os
import stat

# What may stand where a file is expected, by what it is instead.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))

TEXT_MAX = 64 << 20         # prefix lists, certificates: 64 MiB


def open_regular(path: str) -> int:
    """A descriptor of `path`, which must be a regular file (opened with
    O_NONBLOCK, so a FIFO never blocks the open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise OSError(errno.EINVAL, f"{what}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read(path: str, limit: int = TEXT_MAX) -> bytes:
    """The bytes of regular file `path`; larger than `limit`: refused."""
    with os.fdopen(open_regular(path), "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than the limit of {limit:,} bytes")
    return data


def read_text(path: str, limit: int = TEXT_MAX) -> str:
    return read(path, limit).decode("utf-8", errors="replace")
