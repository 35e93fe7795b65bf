"""Client for DPDK's telemetry socket of a running appliance (what
dpdk-telemetry.py speaks): whether an instance is alive, and /pylb/stats.
Operators' listings go through gRPC (pylbctl), not here."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from pylb.errors import NotFound
from pylb.hostinfo import DPDK_RUNTIME


def socket_path(prefix: str) -> str:
    return os.path.join(DPDK_RUNTIME, prefix, "dpdk_telemetry.v2")


def query(prefix: str, command: str, timeout: float = 5.0) -> Any:
    """Send one telemetry command (e.g. '/pylb/stats', '/pylb/routes,6') and return its
    JSON value."""
    path = socket_path(prefix)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotFound(f"no running pylb instance with file prefix '{prefix}' "
                           f"(no telemetry socket at {path})") from None
        info = json.loads(s.recv(4096))
        s.send(command.encode())
        reply = json.loads(s.recv(int(info.get("max_output_len", 16384))))
    finally:
        s.close()
    return reply.get(command.split(",", 1)[0])
