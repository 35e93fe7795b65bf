"""`make fleet-demo`: two pylb appliances behind a router, as a fleet.

The router is a network namespace running BIRD 2 with BFD, learning the VIP
by eBGP from each appliance (each pylb drives its own BIRD) and spreading
connections over them by ECMP (a 5-tuple hash). The appliances run in
namespaces of their own, share one fleet secret and one configuration (a DR
service over two backends, health checked), and their lcores share this
machine's two cores (throughput means nothing here). The demo opens 20
long-lived TCP connections from a client behind the router, kills one
appliance with SIGKILL, shows the route converge and counts the broken
connections, then restarts it and counts again. The topology is the one
`tests/test_e2e_fleet.py` tests in `make test`.
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
        # 20 connections to each service: Maglev (the same choice everywhere)
        # and WRR (each appliance's own: connection sync carries it).
        clients = {name: Many(fleet.ns["C"], vip)
                   for name, vip in (("DR maglev", fleet.vip), ("DR wrr", fleet.wrr_vip))}

        def talk() -> dict[str, list[str]]:
            return {name: c.talk() for name, c in clients.items()}
        first = talk()
        opened = [a.stats()["counters"]["conn_created"] for a in fleet.apps]
        say(f"20 long-lived connections to each service: {opened[0]} opened through A0, "
            f"{opened[1]} through A1; backends: "
            + "; ".join(f"{name}: b1 {v.count('b1')}, b2 {v.count('b2')}"
                        for name, v in first.items()))

        say("A0 killed with SIGKILL mid-traffic")
        t0 = time.monotonic()
        fleet.apps[0].proc.kill()
        fleet.apps[0].proc.wait()
        fleet.apps[0].proc = None
        fleet.router.wait(prefix, lambda h: h == [fleet.hops[1]], timeout=10)
        print(f"route withdrawn after {time.monotonic() - t0:.2f} s: "
              + subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", prefix],
                               capture_output=True, text=True).stdout.strip())
        after = talk()
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
        print("\nNAT and FullNAT through a fleet also need the backends' replies to reach a "
              "surviving appliance: see docs/fleet.md.")
        return 0
    finally:
        for c in clients.values():
            c.close()
        fleet.close()


if __name__ == "__main__":
    sys.exit(main())
