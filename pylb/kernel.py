"""The exception path's kernel side: each port's kernel interface (a TAP the
dataplane owns) carries the port's MAC and addresses, without ARP, so the
kernel's own sockets (SSH, BGP, health checks) work on the port's addresses
and everything it sends is routed by the dataplane.

Configured with iproute2, which every Linux host has.
"""
import subprocess

from pylb.errors import PortError


def _ip(*args: str) -> None:
    try:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise PortError("the 'ip' command (iproute2) is needed for kernel interfaces; "
                        "install iproute2") from None
    except subprocess.CalledProcessError as e:
        raise PortError(f"ip {' '.join(args)}: {e.stderr.strip()}") from None


def configure(iface: str, mac: str) -> None:
    """Give `iface` the port's MAC, turn ARP off (the dataplane resolves
    neighbours) and bring it up."""
    _ip("link", "set", "dev", iface, "address", mac, "arp", "off", "up")


def add_address(iface: str, cidr: str, family: int) -> None:
    # nodad: the address is the port's, already checked by the dataplane.
    extra = ("nodad",) if family == 6 else ()
    _ip("addr", "add", cidr, "dev", iface, *extra)


def usable(iface: str, mac: str) -> bool:
    """Is `iface` there, administratively up, and carrying `mac`?"""
    base = f"/sys/class/net/{iface}"
    try:
        with open(f"{base}/flags") as f:
            up = int(f.read(), 16) & 0x1        # IFF_UP
        with open(f"{base}/address") as f:
            return bool(up) and f.read().strip().lower() == mac.lower()
    except (OSError, ValueError):
        return False
