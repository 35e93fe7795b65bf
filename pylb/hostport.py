"""'host:port' text as operators write it: '10.0.1.20:8080', '[2001:db8::1]:8080',
or a bare address (port 0: keep the client's)."""

from __future__ import annotations


def split_hostport(text: str) -> tuple[str, int]:
    """-> (host, port); raises ValueError naming what is wrong."""
    text = str(text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if port and (not port.isdigit() or not 0 < int(port) <= 65535):
        raise ValueError(f"port {port[:20]!r}{'...' if len(port) > 20 else ''} is not in 1..65535")
    return host, int(port or 0)
