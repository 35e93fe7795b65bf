"""`make fleet-demo`: two pylb appliances behind a router, as a fleet.

The router is a network namespace running BIRD 2 with BFD, learning the VIP
by eBGP from each appliance (each pylb drives its own BIRD) and spreading
connections over them by ECMP (a 5-tuple hash). The appliances run in
namespaces of their own, share one fleet secret and one configuration (DR
with Maglev and with WRR, NAT with Maglev, FullNAT with WRR, over two
backends, health checked), and their lcores share this machine's two cores
(throughput means nothing here). NAT backends send their replies to the
fleet's gateway (held by one appliance, taken over by the other); FullNAT
backends to each appliance's pool address, which the router learned from
its owner and, as a backup, from the peer holding its synced connections.
The demo opens 20 long-lived TCP connections per service from a client
behind the router, kills one appliance with SIGKILL, shows the routes
converge and counts the broken connections, then restarts it and counts
again. The topology is the one `tests/test_e2e_fleet.py` tests in `make
test`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from appliance_harness import Many  # noqa: E402
from test_e2e_fleet import Fleet  # noqa: E402

from pylb.v1 import pylb_pb2 as pb  # noqa: E402


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    say("building: router R (BIRD, BFD, ECMP), client C, two appliances A0 and A1 (pylb + BIRD), "
        "a LAN with backends b1 and b2")
    fleet = Fleet()
    prefix = f"{fleet.vip}/32"
    clients: dict = {}
    try:
        hops = sorted(fleet.hops)
        took = fleet.router.wait(prefix, lambda h: sorted(h) == hops, timeout=60)
        say(f"the router learned {prefix} with one next hop per appliance ({took:.1f} s)")
        print(subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", prefix],
                             capture_output=True, text=True).stdout.rstrip())
        for i, a in enumerate(fleet.apps):
            s = a.api().ListServices(pb.ListServicesRequest()).services[0]
            peers = a.api().GetBgp(pb.GetBgpRequest()).peers
            print(f"A{i}: table fingerprint {s.table_fingerprint}; BGP "
                  + ", ".join(f"{p.address} {p.state} (BFD {p.bfd or '-'})" for p in peers))
        routes = subprocess.run(["ip", "-n", fleet.ns["R"], "route"], capture_output=True,
                                text=True).stdout
        say("the FullNAT pools, each by its owner (the peer's backup has a longer AS path):")
        print("\n".join(line for line in routes.splitlines()
                        if line.split()[0] in fleet.pools))
        # 20 connections to each service: Maglev (the same choice everywhere)
        # and WRR (each appliance's own: connection sync carries it).
        services = (("DR maglev", fleet.vip), ("DR wrr", fleet.wrr_vip),
                    ("NAT maglev", fleet.nat_vip), ("FullNAT wrr", fleet.fnat_vip))
        for _, vip in services:
            fleet.router.wait(f"{vip}/32", lambda h: sorted(h) == hops, timeout=60)
        clients = {name: Many(fleet.ns["C"], vip) for name, vip in services}

        def talk() -> dict[str, list[str]]:
            return {name: c.talk() for name, c in clients.items()}
        first = talk()
        opened = [a.stats()["counters"]["conn_created"] for a in fleet.apps]
        say(f"20 long-lived connections to each service: {opened[0]} opened through A0, "
            f"{opened[1]} through A1; backends: "
            + "; ".join(f"{name}: b1 {v.count('b1')}, b2 {v.count('b2')}"
                        for name, v in first.items()))

        time.sleep(0.5)
        print(f"the fleet's gateway {fleet.gateway} is at {fleet.gateway_mac('b1')} "
              f"(A0's LAN port: {fleet.mac(0, 1)})")

        say("A0 killed with SIGKILL mid-traffic")
        t0 = time.monotonic()
        fleet.apps[0].proc.kill()
        fleet.apps[0].proc.wait()
        fleet.apps[0].proc = None
        fleet.router.wait(prefix, lambda h: h == [fleet.hops[1]], timeout=10)
        print(f"route withdrawn after {time.monotonic() - t0:.2f} s: "
              + subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", prefix],
                               capture_output=True, text=True).stdout.strip())
        fleet.router.wait(f"{fleet.pools[0]}/32", lambda h: h == [fleet.hops[1]], timeout=10)
        print(f"A0's pool {fleet.pools[0]} now via A1 (its backup): "
              + subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", fleet.pools[0]],
                               capture_output=True, text=True).stdout.strip())
        after = talk()
        print(f"the fleet's gateway is at {fleet.gateway_mac('b1')} (A1's LAN port: "
              f"{fleet.mac(1, 1)})")
        counters = fleet.apps[1].stats()["counters"]
        for name in clients:
            broken = sum(a != b for a, b in zip(first[name], after[name]))
            say(f"{name}: {broken} of 20 connections broken")
        print(f"(A1 held {counters['conn_synced']} connections synced from A0, picked up "
              f"{counters['conn_picked_up']} mid-flow)")

        say("A0 restarted")
        fleet.start(0)
        took = fleet.router.wait(prefix, lambda h: sorted(h) == hops, timeout=60)
        print(f"announced again after {took:.1f} s")
        again = talk()
        for name in clients:
            broken = sum(a != b for a, b in zip(first[name], again[name]))
            say(f"{name}: {broken} of 20 connections broken after the restart")
        return 0
    finally:
        for c in clients.values():
            c.close()
        fleet.close()


if __name__ == "__main__":
    sys.exit(main())
