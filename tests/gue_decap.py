"""A GUE (variant 1) / FOU tunnel endpoint in user space, for backend
namespaces (this kernel's fou module is not there): receives UDP on port
6080, whose payload is an IP packet, and hands it to the local stack
through a TUN interface, as `ip fou add port 6080 gue` would. Logs each
datagram's outer source port (one per line) to the file given. Run inside
the backend's namespace.

    gue_decap.py TUN_NAME LOG_FILE
"""
import fcntl
import os
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def main() -> None:
    name, log_path = sys.argv[1], sys.argv[2]
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    for conf in ("all", "default", name):
        subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"], check=True)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 6080))
    log = open(log_path, "a", buffering=1)
    print("ready", flush=True)
    while True:
        data, (_, sport) = s.recvfrom(65535)
        if data and data[0] >> 4 in (4, 6):
            log.write(f"{sport}\n")
            os.write(fd, data)


if __name__ == "__main__":
    main()
