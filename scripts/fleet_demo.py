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

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from test_e2e_fleet import MANY, Fleet, flows_on  # noqa: E402

from pylb.v1 import pylb_pb2 as pb  # noqa: E402


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    say("building: router R (BIRD, BFD, ECMP), client C, two appliances A0 and A1 (pylb + BIRD), "
        "a LAN with backends b1 and b2")
    fleet = Fleet()
    prefix = f"{fleet.vip}/32"
    client = None
    try:
        hops = sorted(f"{a.net}.0.1" for a in fleet.apps)
        took = fleet.router.wait(prefix, lambda h: sorted(h) == hops, timeout=60)
        say(f"the router learned {prefix} with one next hop per appliance ({took:.1f} s)")
        print(subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", prefix],
                             capture_output=True, text=True).stdout.rstrip())
        for i, a in enumerate(fleet.apps):
            s = a.api().ListServices(pb.ListServicesRequest()).services[0]
            peers = a.api().GetBgp(pb.GetBgpRequest()).peers
            print(f"A{i}: table fingerprint {s.table_fingerprint}; BGP "
                  + ", ".join(f"{p.address} {p.state} (BFD {p.bfd or '-'})" for p in peers))
        client = subprocess.Popen(["ip", "netns", "exec", fleet.ns["C"], sys.executable, "-c",
                                   MANY, fleet.vip, "9000", "20", "60"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)

        def talk() -> list[str]:
            client.stdin.write("go\n")
            client.stdin.flush()
            return json.loads(client.stdout.readline())
        ports = set(json.loads(client.stdout.readline()))
        first = talk()
        on = [len(flows_on(a, fleet.vip) & ports) for a in fleet.apps]
        say(f"20 long-lived DR connections: {on[0]} through A0, {on[1]} through A1; backends "
            f"b1 {first.count('b1')}, b2 {first.count('b2')}")

        say("A0 killed with SIGKILL mid-traffic")
        t0 = time.monotonic()
        fleet.apps[0].proc.kill()
        fleet.apps[0].proc.wait()
        fleet.apps[0].proc = None
        fleet.router.wait(prefix, lambda h: h == [f"{fleet.apps[1].net}.0.1"], timeout=10)
        print(f"route withdrawn after {time.monotonic() - t0:.2f} s: "
              + subprocess.run(["ip", "-n", fleet.ns["R"], "route", "show", prefix],
                               capture_output=True, text=True).stdout.strip())
        after = talk()
        broken = sum(a != b for a, b in zip(first, after))
        counters = fleet.apps[1].stats()["counters"]
        say(f"DR: {broken} of 20 connections broken (A1 held {counters['conn_synced']} synced "
            f"records, picked up {counters['conn_picked_up']} mid-flow)")

        say("A0 restarted")
        fleet.start(0)
        took = fleet.router.wait(prefix, lambda h: sorted(h) == hops, timeout=60)
        print(f"announced again after {took:.1f} s")
        again = talk()
        broken = sum(a != b for a, b in zip(first, again))
        say(f"DR: {broken} of 20 connections broken after the restart "
            f"({len(flows_on(fleet.apps[0], fleet.vip) & ports)} back through A0)")
        print("\nNAT and FullNAT through a fleet need connection sync (not built yet): "
              "see docs/fleet.md.")
        return 0
    finally:
        if client is not None:
            client.kill()
            client.wait()
        fleet.close()


if __name__ == "__main__":
    sys.exit(main())
