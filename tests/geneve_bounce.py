"""A GENEVE appliance in user space (this kernel has no geneve module), as a
firewall behind a Gateway Load Balancer works: it receives GENEVE on UDP
6081, looks at the inner packet, and sends the datagram back unchanged
(options included) to the sender's port 6081, or drops it. It logs each
inner packet's flow (one JSON line: proto, src, sport, dst, dport) and
answers TCP health checks on --health-port. Run inside the appliance's
namespace.

    geneve_bounce.py --log FILE [--drop-port PORT] [--health-port 8081]
"""
import argparse
import json
import socket
import struct
import threading


def inner_flow(data: bytes):
    """(proto, src, sport, dst, dport) of the IPv4 packet in a GENEVE datagram."""
    opt_len = (data[0] & 0x3F) * 4
    ip = data[8 + opt_len:]
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    hl = (ip[0] & 0x0F) * 4
    proto = ip[9]
    sport = dport = 0
    if proto in (6, 17) and len(ip) >= hl + 4:
        sport, dport = struct.unpack("!HH", ip[hl:hl + 4])
    return proto, socket.inet_ntoa(ip[12:16]), sport, socket.inet_ntoa(ip[16:20]), dport


def health(port: int) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--drop-port", type=int, default=0, help="drop TCP/UDP to this port")
    ap.add_argument("--health-port", type=int, default=8081)
    args = ap.parse_args()
    threading.Thread(target=health, args=(args.health_port,), daemon=True).start()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 6081))
    log = open(args.log, "a", buffering=1)
    print("ready", flush=True)
    while True:
        data, (peer, _) = s.recvfrom(65535)
        flow = inner_flow(data)
        if flow is None:
            continue
        log.write(json.dumps(flow) + "\n")
        if args.drop_port and flow[4] == args.drop_port:
            continue
        s.sendto(data, (peer, 6081))


if __name__ == "__main__":
    main()
