"""Robustness of the packet path: random and mutated frames never crash the
dataplane, never leak an mbuf, and every frame is accounted for exactly once."""

from __future__ import annotations

import random

from scapy.packet import raw

from test_host_fixtures import arp_request, echo_request


def test_random_and_mutated_frames_are_all_accounted_for(dp):
    rng = random.Random(20261127)
    seeds = [raw(arp_request()), raw(echo_request()), raw(echo_request(payload=b"z" * 300))]
    frames = []
    for i in range(3000):
        if i % 3 == 0:
            frames.append(rng.randbytes(rng.randrange(0, 200)))
        else:
            f = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                f[rng.randrange(len(f))] = rng.randrange(256)
            frames.append(bytes(f[:rng.randrange(1, len(f) + 1)] if i % 5 == 0 else f))
    out = dp.inject(0, frames)
    t, drops = dp.totals(), dp.drops()
    assert t["rx_packets"] == len(frames)
    assert t["rx_packets"] == sum(drops.values()) + len(out) + t["arp_replies_received"]
    assert len(out) == t["arp_replies_sent"] + t["icmp_echo_replies"]
    # still answering afterwards
    assert len(dp.inject(0, [raw(echo_request())])) == 1
