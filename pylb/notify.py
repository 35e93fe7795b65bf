"""systemd's service notifications (sd_notify(3)), without libsystemd: one
datagram to $NOTIFY_SOCKET per state change. READY=1 once the dataplane
forwards, RELOADING=1 / READY=1 around a SIGHUP's reload, STOPPING=1 when
it stops, WATCHDOG=1 from the main loop while it runs (WatchdogSec=). With
no $NOTIFY_SOCKET (not under systemd) every call does nothing."""

from __future__ import annotations

import os
import socket
import time


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or path[0] not in "/@":
        return None
    return "\0" + path[1:] if path[0] == "@" else path      # '@': the abstract namespace


def notify(*fields: str) -> bool:
    """Send `fields` (e.g. "READY=1", "STATUS=...") as one message; False
    if there is nowhere to send it or it could not be sent (never raises:
    a service manager that went away must not stop the appliance)."""
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto("\n".join(fields).encode(), address)
        return True
    except OSError:
        return False


def reloading() -> bool:
    """RELOADING=1 with the monotonic time systemd (253+) asks of a reload."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


class Watchdog:
    """WATCHDOG=1 every half of $WATCHDOG_USEC (for this process: $WATCHDOG_PID),
    from whoever calls `tick` often enough (the main loop)."""

    def __init__(self):
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.every = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self.next = 0.0

    def tick(self, now: float) -> None:
        if self.every is not None and now >= self.next:
            notify("WATCHDOG=1")
            self.next = now + self.every
