"""The L3 VIP lookup table as a pure function: balance, minimal disruption,
determinism (tier 1: no dataplane, no EAL)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pylb._native import maglev_table
from pylb.errors import InvalidArgument

M = 65537


def backends(n, seed=0):
    rnd = random.Random(seed)
    return [f"10.{rnd.randrange(256)}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def as_ips(table, ips):
    return np.array(ips, dtype=object)[table]


@pytest.mark.parametrize("n", [2, 3, 10, 57, 100])
def test_each_backend_share_is_within_one_percentage_point_of_its_weight_share(n):
    rnd = random.Random(n)
    for weights in ([1] * n, [rnd.randint(1, 10) for _ in range(n)]):
        table = maglev_table(list(zip(backends(n), weights)), M)
        counts = np.bincount(table, minlength=n)
        shares = counts / M
        expected = np.array(weights) / sum(weights)
        assert np.abs(shares - expected).max() < 0.01, (shares - expected)


@pytest.mark.parametrize("n", [5, 50, 100])
def test_removing_a_backend_remaps_only_its_entries(n):
    ips = backends(n)
    before = as_ips(maglev_table(ips, M), ips)
    gone = ips[n // 2]
    rest = [ip for ip in ips if ip != gone]
    after = as_ips(maglev_table(rest, M), rest)
    changed = before != after
    assert changed.any()
    assert (before[changed] == gone).all()
    assert changed.sum() == (before == gone).sum()


@pytest.mark.parametrize("n", [5, 50, 99])
def test_adding_a_backend_remaps_about_one_in_n_plus_one(n):
    ips = backends(n + 1)
    before = as_ips(maglev_table(ips[:n], M), ips[:n])
    after = as_ips(maglev_table(ips, M), ips)
    changed = before != after
    assert (after[changed] == ips[n]).all()          # moved only to the newcomer
    assert changed.sum() / M <= 1.2 / (n + 1), changed.sum() / M


def test_table_depends_on_the_backend_set_not_its_order():
    ips = backends(20)
    shuffled = ips[:]
    random.Random(7).shuffle(shuffled)
    assert (as_ips(maglev_table(ips, M), ips) == as_ips(maglev_table(shuffled, M), shuffled)).all()


def test_weight_zero_takes_no_entries():
    ips = backends(3)
    table = maglev_table([(ips[0], 1), (ips[1], 0), (ips[2], 1)], M)
    assert 1 not in set(table.tolist())


def test_size_must_be_prime():
    with pytest.raises(InvalidArgument, match="prime"):
        maglev_table(backends(3), 65536)


def test_a_light_backend_gets_its_share_among_heavy_ones():
    ips = backends(50, seed=3)
    weights = [1 if i % 10 == 0 else 10 for i in range(50)]          # 5 light, 45 heavy
    counts = np.bincount(maglev_table(list(zip(ips, weights)), M), minlength=50)
    light = counts[[i for i in range(50) if weights[i] == 1]].sum()
    expected = M * 5 / sum(weights)
    assert abs(light - expected) / expected < 0.2, (light, expected)
