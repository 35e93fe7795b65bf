"""Connection sync's datagrams (pylb.sync.Codec): what a receiver accepts
and what it refuses, by reason. No dataplane: the records are opaque here
(tests/test_fleet_fixtures.py applies real ones; tests/test_e2e_fleet.py
runs sync between two appliances)."""

from __future__ import annotations

import pytest

from pylb.sync import HEADER, PER_DATAGRAM, TAG, WINDOW, Codec, key_for

SIZE = 88
KEY = key_for(b"the fleet's shared secret, 32 by")
PEER, OTHER = "10.77.0.2", "10.77.0.9"


def records(n: int) -> bytes:
    return b"".join(bytes([i % 256]) * SIZE for i in range(n))


def pair():
    return Codec(KEY, SIZE, [PEER]), Codec(KEY, SIZE, ["10.77.0.1"])


def refused(codec) -> dict:
    return {k: v for k, v in codec.counters.items() if k.startswith("sync_refused") and v}


def test_records_arrive_in_datagrams_of_at_most_fifteen():
    rx, tx = pair()
    sent = records(2 * PER_DATAGRAM + 1)
    grams = tx.datagrams(sent)
    assert len(grams) == 3 and max(map(len, grams)) == HEADER.size + PER_DATAGRAM * SIZE + TAG
    assert b"".join(rx.accept(g, PEER) for g in grams) == sent
    assert rx.counters["sync_records_received"] == 2 * PER_DATAGRAM + 1 and refused(rx) == {}


def test_forged_malformed_and_strangers_are_refused():
    rx, tx = pair()
    (g,) = tx.datagrams(records(3))
    flipped = bytearray(g)
    flipped[HEADER.size + 5] ^= 1                              # a record changed
    other_key = Codec(key_for(b"another fleet's secret, 32 bytes"), SIZE, [PEER])
    assert rx.accept(bytes(flipped), PEER) is None
    assert rx.accept(other_key.datagrams(records(1))[0], PEER) is None
    assert rx.accept(g[:-1], PEER) is None                     # cut short
    assert rx.accept(g[:10], PEER) is None
    assert rx.accept(b"XXXX" + g[4:], PEER) is None            # not ours
    assert rx.accept(g, OTHER) is None                          # not a peer
    assert refused(rx) == {"sync_refused_forged": 2, "sync_refused_malformed": 3,
                           "sync_refused_unknown_peer": 1}
    assert rx.accept(g, PEER) == records(3)                    # the real one still is


def test_replays_are_refused_and_reordering_within_the_window_is_not():
    rx, tx = pair()
    grams = tx.datagrams(records(PER_DATAGRAM * (WINDOW + 4)))
    assert rx.accept(grams[5], PEER) is not None
    assert rx.accept(grams[5], PEER) is None                   # again
    assert rx.accept(grams[3], PEER) is not None               # late, within the window
    assert rx.accept(grams[3], PEER) is None
    assert rx.accept(grams[WINDOW + 3], PEER) is not None
    assert rx.accept(grams[2], PEER) is None                   # older than the window
    assert refused(rx) == {"sync_refused_replayed": 3}


def test_a_peer_that_restarted_is_heard_and_its_earlier_run_is_not():
    rx, tx = pair()
    old = tx.datagrams(records(1))[0]
    assert rx.accept(old, PEER) is not None
    restarted = Codec(KEY, SIZE, ["10.77.0.1"])
    restarted.epoch = tx.epoch + 1
    assert rx.accept(restarted.datagrams(records(1))[0], PEER) is not None   # seq 0 again
    assert rx.accept(tx.datagrams(records(1))[0], PEER) is None             # the old run
    assert refused(rx) == {"sync_refused_replayed": 1}


def test_a_heartbeat_is_an_empty_datagram_and_a_new_run_is_noticed():
    rx, tx = pair()
    (beat,) = tx.datagrams(b"")
    assert rx.accept(beat, PEER) == b"" and rx.new_runs == {PEER}      # first heard
    rx.new_runs.clear()
    assert rx.accept(tx.datagrams(records(2))[0], PEER) == records(2) and rx.new_runs == set()
    restarted = Codec(KEY, SIZE, ["10.77.0.1"])
    restarted.epoch = tx.epoch + 1
    assert rx.accept(restarted.datagrams(b"")[0], PEER) == b"" and rx.new_runs == {PEER}


def test_an_address_it_cannot_listen_on_is_one_clear_error():
    from pylb.errors import PortError
    from pylb.model import SyncSettings
    from pylb.sync import Sync
    with pytest.raises(PortError, match=r"sync: cannot listen on 192.0.2.77:8848 through lo: "):
        Sync(SyncSettings("p1", (PEER,)), b"the fleet's shared secret, 32 by", "192.0.2.77",
             "lo", SIZE, lambda records: None)


def test_heartbeats_elect_one_gateway_holder_and_hand_it_over():
    """Two real Sync endpoints on loopback, beating as the main loop does:
    the lower address holds the gateways once up DEAD_S; the other takes
    over at once when it leaves, and gives them back only once the
    restarted one has settled (never nobody for long, never both)."""
    import threading
    import time

    from pylb.model import SyncSettings
    from pylb.sync import DEAD_S, Sync
    secret = b"the fleet's shared secret, 32 by"
    low, high = "127.0.0.1", "127.0.0.2"

    def endpoint(me, peer):
        return Sync(SyncSettings("lo", (peer,), udp_port=18848), secret, me, "lo", SIZE,
                    lambda records: None)

    def beat(s, stop):
        while not stop.is_set():
            s.send(b"")
            time.sleep(0.05)

    def run(s):
        stop = threading.Event()
        threading.Thread(target=beat, args=(s, stop), daemon=True).start()
        return stop

    a, b = endpoint(low, high), endpoint(high, low)
    stops = [run(a), run(b)]
    try:
        assert not a.elected(time.monotonic())             # starting: hears who is there
        time.sleep(DEAD_S + 0.3)
        assert a.live(time.monotonic()) == [high]
        assert a.elected(time.monotonic()) and not b.elected(time.monotonic())
        stops[0].set()
        a.leave()
        a.close()
        time.sleep(0.2)
        assert b.live(time.monotonic()) == [] and b.elected(time.monotonic())
        a = endpoint(low, high)                              # restarted: a new run
        stops[0] = run(a)
        time.sleep(DEAD_S / 2)
        assert b.elected(time.monotonic()) and not a.elected(time.monotonic())
        time.sleep(DEAD_S / 2 + 0.3)
        assert a.elected(time.monotonic()) and not b.elected(time.monotonic())
        # Killed (no word): gone after DEAD_S.
        stops[0].set()
        time.sleep(DEAD_S + 0.2)
        assert b.elected(time.monotonic())
    finally:
        for s in stops:
            s.set()
        a.close()
        b.close()


def test_a_whole_table_is_sent_paced_from_a_thread():
    """A peer in a new run gets the table in bursts from a thread of its
    own (the main loop goes on), every record once, in order."""
    import time

    from pylb.model import SyncSettings
    from pylb.sync import Sync
    secret = b"the fleet's shared secret, 32 by"
    got = []
    a = Sync(SyncSettings("lo", ("127.0.0.2",), udp_port=18849), secret, "127.0.0.1", "lo", SIZE,
             lambda r: None)
    b = Sync(SyncSettings("lo", ("127.0.0.1",), udp_port=18849), secret, "127.0.0.2", "lo", SIZE,
             got.append)
    try:
        table = records(5000)
        a.send_table(table, "127.0.0.2")
        deadline = time.monotonic() + 10
        while sum(map(len, got)) < len(table):
            assert time.monotonic() < deadline, sum(map(len, got))
            time.sleep(0.01)
        assert b"".join(got) == table
        assert a.counters["sync_records_sent"] == 5000 and refused(b) == {}
    finally:
        a.close()
        b.close()
