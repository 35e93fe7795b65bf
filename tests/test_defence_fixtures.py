"""Packet fixtures for the defences against attack (issue 16): the keyed
flow hash."""

from __future__ import annotations

import ipaddress
import random

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from pylb.errors import InvalidArgument
from test_l4_fixtures import BACKENDS, VIP, c2v, small_dp

SEED_A = b"fleet secret number one, 32 byte"
SEED_B = b"fleet secret number two, 32 byte"


def choices(d, clients=64):
    """The backend each of `clients` clients' first SYN goes to."""
    frames = [raw(c2v(src=f"10.0.0.{10 + i}", sport=40000 + i)) for i in range(clients)]
    return [Ether(f)[IP].dst for _, f in d.inject("p0", frames)]


def test_the_flow_hash_is_keyed_by_the_seed(native):
    """The same seed chooses alike (a fleet agrees); another seed chooses
    otherwise (nobody without it can predict where a flow goes)."""
    picks, prints = [], []
    for seed in (SEED_A, SEED_A, SEED_B, None):
        d = small_dp(native, hash_seed=seed)
        d.add_service(VIP, 80, backends=BACKENDS)
        picks.append(choices(d))
        prints.append(d.hash_fingerprint)
        if seed is not None:
            assert d.hash_fingerprint == native.key_fingerprint(native.hash_key(seed))
        d.close()
    assert picks[0] == picks[1] and prints[0] == prints[1]
    assert picks[2] != picks[0] and prints[2] != prints[0]
    assert set(picks[0]) == set(BACKENDS)
    # No seed: a random key, different every time.
    assert prints[3] not in prints[:3]
    with pytest.raises(InvalidArgument, match="at least 16 bytes"):
        native.hash_key(b"short")


def test_collisions_under_one_key_are_not_collisions_under_another(native):
    """A CRC with a secret seed is linear: inputs that collide under one seed
    collide under all, so an attacker could aim at a bucket offline. The
    keyed hash is strongly universal: pairs found colliding (in the 20 bits
    that pick among a million buckets) under key A are not under key B."""
    a, b = (small_dp(native, hash_seed=s) for s in (SEED_A, SEED_B))
    rng = random.Random(16)
    seen: dict[int, str] = {}
    pairs = []
    for _ in range(12000):
        src = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        h = a.flow_hash(src, VIP) & 0xFFFFF
        if h in seen:
            pairs.append((seen[h], src))
        seen[h] = src
    assert len(pairs) >= 20
    still = sum((b.flow_hash(x, VIP) & 0xFFFFF) == (b.flow_hash(y, VIP) & 0xFFFFF)
                for x, y in pairs)
    assert still <= 1, f"{still} of {len(pairs)} collisions under key A collide under key B"
    a.close()
    b.close()
