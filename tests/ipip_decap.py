"""An IPIP tunnel endpoint in user space, for backend namespaces on kernels
built without ip_tunnel support: receives IP-in-IP packets on a raw socket
and hands the inner packet to the local stack through a TUN interface, as the
kernel's tunl0 would. Run inside the backend's namespace."""
import fcntl
import os
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "decap0"
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    for conf in ("all", "default", name):
        subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"], check=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
    print("ready", flush=True)
    while True:
        pkt = s.recv(65535)
        os.write(fd, pkt[(pkt[0] & 0x0F) * 4:])


if __name__ == "__main__":
    main()
