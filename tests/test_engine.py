"""Engine: diffs, rates, history and scheduling on synthetic samples with a fake clock."""

from __future__ import annotations

import dataclasses
import random
import threading
import time

import pytest

from netdash.engine import (
    ZERO_RATE,
    ConnectionsTracker,
    History,
    Poller,
    count_states,
    counter_rate,
    diff_by_key,
    history_points,
    index_sockets,
    socket_rates,
)
from netdash.model import Socket, SocketSample, TcpInfo


def tcp_info(acked: int, received: int) -> TcpInfo:
    return TcpInfo(
        0,
        0,
        0,
        0,
        0,
        7,
        7,
        204000,
        40000,
        65483,
        536,
        0,
        0,
        0,
        0,
        65535,
        65483,
        50,
        25,
        2147483647,
        10,
        65483,
        3,
        0,
        65483,
        0,
        bytes_acked=acked,
        bytes_received=received,
    )


def estab(port: int, acked: int = 0, received: int = 0, state: str = "ESTABLISHED") -> Socket:
    return Socket(
        "tcp",
        "inet",
        state,
        "127.0.0.1",
        port,
        "127.0.0.1",
        80,
        0,
        0,
        1000 + port,
        tcp=tcp_info(acked, received),
    )


def sample(at: float, *socks: Socket) -> SocketSample:
    return SocketSample(sockets=socks, taken_at=at)


def test_rates_from_two_samples_with_a_fake_clock():
    tracker = ConnectionsTracker(interval=1.0)
    first = tracker.update(sample(100.0, estab(1, acked=1000, received=500)))
    assert first.rates == {}  # one sample has no rate yet
    second = tracker.update(sample(102.0, estab(1, acked=5000, received=2500)))
    (rate,) = second.rates.values()
    assert rate.tx == pytest.approx(2000.0)
    assert rate.rx == pytest.approx(1000.0)


def test_a_counter_that_goes_backwards_gives_no_negative_rate():
    tracker = ConnectionsTracker()
    tracker.update(sample(1.0, estab(1, acked=10_000, received=10_000)))
    frame = tracker.update(sample(2.0, estab(1, acked=50, received=20)))  # a new connection
    assert frame.rates == {}
    assert counter_rate(10, 5, 1.0) is None
    assert counter_rate(5, 10, 0.0) is None
    assert counter_rate(None, 10, 1.0) is None
    assert counter_rate(5, 10, 2.0) == 2.5


def test_diff_reports_added_removed_and_changed_by_key():
    tracker = ConnectionsTracker()
    tracker.update(sample(1.0, estab(1), estab(2), estab(3)))
    frame = tracker.update(sample(2.0, estab(1), estab(2, state="CLOSE_WAIT"), estab(4)))
    by_port = {key[3]: key for key in frame.by_key}
    assert frame.diff.added == (by_port[4],)
    assert frame.diff.removed == (estab(3).key,)
    assert frame.diff.changed == (by_port[2],)


def test_identical_objects_are_not_compared_field_by_field():
    class Loud:
        def __eq__(self, other: object) -> bool:  # pragma: no cover - must not be called
            raise AssertionError("compared although identical")

    value = Loud()
    assert diff_by_key({"a": value}, {"a": value}).empty


def test_inode_change_is_a_change_not_a_new_row():
    before = Socket("tcp", "inet", "ESTABLISHED", "10.0.0.1", 80, "10.0.0.2", 5555, 0, 0, 0)
    after = Socket("tcp", "inet", "ESTABLISHED", "10.0.0.1", 80, "10.0.0.2", 5555, 0, 0, 4242)
    assert before.key == after.key


def test_reuseport_listeners_are_distinct_rows():
    a = Socket("tcp", "inet", "LISTEN", "0.0.0.0", 80, None, None, 0, 128, 11)
    b = Socket("tcp", "inet", "LISTEN", "0.0.0.0", 80, None, None, 0, 128, 12)
    assert len(index_sockets([a, b])) == 2


def test_history_is_bounded_and_backfills_new_states():
    history = History(points=5)
    for i in range(20):
        history.append(float(i), {"ESTABLISHED": i})
    history.append(20.0, {"ESTABLISHED": 20, "TIME_WAIT": 3})
    snap = history.snapshot()
    assert len(snap.times) == 5
    assert snap.series["ESTABLISHED"] == (16, 17, 18, 19, 20)
    assert snap.series["TIME_WAIT"] == (0, 0, 0, 0, 3)
    assert snap.value_ago("ESTABLISHED", 2.0) == 18


def test_history_covers_ten_minutes_at_the_interval():
    assert history_points(1.0) >= 600
    assert history_points(0.5) >= 1200
    assert history_points(0.001) <= 36_000


def test_state_counts_fold_new_syn_recv_and_count_udp():
    socks = [
        estab(1),
        estab(2, state="TIME_WAIT"),
        estab(3, state="NEW_SYN_RECV"),
        Socket("udp", "inet", "UNCONN", "0.0.0.0", 53, None, None, 0, 0, 5),
    ]
    counts = count_states(socks)
    assert counts["ESTABLISHED"] == 1
    assert counts["TIME_WAIT"] == 1
    assert counts["SYN_RECV"] == 1
    assert counts["UDP"] == 1
    assert counts["CLOSE_WAIT"] == 0


def test_poller_rejects_bad_intervals():
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            Poller("x", lambda: 1, lambda r: None, interval=bad)


def test_poller_ticks_never_overlap_and_survive_errors():
    running = threading.Lock()
    overlaps, results, errors = [], [], []
    calls = iter(range(1000))

    def slow_sample() -> int:
        if not running.acquire(blocking=False):
            overlaps.append(True)
            return -1
        try:
            n = next(calls)
            time.sleep(0.03)  # longer than the interval: the next tick must wait for this one
            if n == 1:
                raise OSError("source hiccup")
            return n
        finally:
            running.release()

    poller = Poller("t", slow_sample, results.append, interval=0.01, on_error=errors.append)
    poller.start()
    deadline = time.monotonic() + 5
    while len(results) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop()
    assert not overlaps
    assert results[:3] == [0, 2, 3]
    assert [str(e) for e in errors] == ["source hiccup"]
    assert poller.status.runs >= 4


def test_a_failing_consumer_does_not_end_the_loop():
    seen = []

    def consumer(value: int) -> None:
        seen.append(value)
        if len(seen) == 1:
            raise RuntimeError("ui bug")

    errors: list[BaseException] = []
    counter = iter(range(100))
    poller = Poller("c", lambda: next(counter), consumer, interval=0.005, on_error=errors.append)
    poller.start()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop()
    assert len(seen) >= 3
    assert isinstance(errors[0], RuntimeError)


# -- the tracker's one pass against the separate functions it replaced -------------------------


def _churn(rng: random.Random, live: dict[int, Socket]) -> None:
    """One step of a busy machine: sockets come and go, counters move, records are replaced."""
    for port in rng.sample(range(1, 400), 12):  # new sockets (some keys come back)
        live.setdefault(port, estab(port, acked=rng.randrange(10_000)))
    for port in rng.sample(sorted(live), min(6, len(live))):
        del live[port]
    for port in rng.sample(sorted(live), min(40, len(live))):
        sock = live[port]
        roll = rng.random()
        if roll < 0.4 and sock.tcp is not None:  # counters move
            info = dataclasses.replace(sock.tcp, bytes_acked=(sock.tcp.bytes_acked or 0) + 500)
            live[port] = dataclasses.replace(sock, tcp=info)
        elif roll < 0.5:  # a counter reset: a new connection under the same key
            live[port] = dataclasses.replace(sock, tcp=tcp_info(1, 1))
        elif roll < 0.6:  # the state moves (the counts must follow)
            live[port] = dataclasses.replace(sock, state=rng.choice(["CLOSE_WAIT", "LAST_ACK"]))
        elif roll < 0.7:  # an equal record in a new object (a source that does not reuse)
            live[port] = dataclasses.replace(sock)
        elif roll < 0.8:  # tcp_info turned off or on
            live[port] = dataclasses.replace(sock, tcp=None if sock.tcp else tcp_info(5, 5))
        elif roll < 0.85:  # only the RTT moves: a change without a rate
            info = dataclasses.replace(sock.tcp, rtt_us=sock.tcp.rtt_us + 1) if sock.tcp else None
            live[port] = dataclasses.replace(sock, tcp=info)


def test_tracker_matches_the_separate_passes():
    """Index, diff, rates and counts in one pass give what the separate functions give."""
    rng = random.Random(7)
    live: dict[int, Socket] = {}
    listener = Socket("tcp", "inet", "LISTEN", "0.0.0.0", 80, None, None, 0, 128, 11, cookie=1)
    twin = dataclasses.replace(listener, inode=12, cookie=2)  # SO_REUSEPORT: one key, twice
    tracker = ConnectionsTracker()
    previous: dict = {}
    at = 0.0
    for step in range(60):
        _churn(rng, live)
        seconds = rng.choice([0.5, 1.0, 2.0])
        at += seconds
        socks = (listener, twin, *live.values())
        frame = tracker.update(sample(at, *socks))
        by_key = index_sockets(socks)
        assert dict(frame.by_key) == by_key
        expected = diff_by_key(previous, by_key)
        assert sorted(map(repr, frame.diff.added)) == sorted(map(repr, expected.added))
        assert sorted(map(repr, frame.diff.removed)) == sorted(map(repr, expected.removed))
        assert sorted(map(repr, frame.diff.changed)) == sorted(map(repr, expected.changed))
        if step:
            assert dict(frame.rates) == socket_rates(previous, by_key, seconds)
        assert frame.counts == count_states(socks)
        previous = by_key


def test_an_idle_sample_costs_an_identity_walk():
    """The same records again (an idle machine): no diff, every TCP socket's rate is zero."""
    socks = (estab(1, acked=10), estab(2, acked=20))
    tracker = ConnectionsTracker()
    first = tracker.update(sample(1.0, *socks))
    again = tracker.update(sample(2.0, *socks))
    assert again.diff.empty
    assert again.by_key is first.by_key  # not even re-indexed
    assert dict(again.rates) == dict.fromkeys(first.by_key, ZERO_RATE)
    assert all(rate is ZERO_RATE for rate in again.rates.values())
    assert again.counts["ESTABLISHED"] == 2


def test_socket_rates_get_many_is_get():
    tracker = ConnectionsTracker()
    tracker.update(sample(1.0, estab(1, acked=0), estab(2, acked=0)))
    frame = tracker.update(sample(2.0, estab(1, acked=100), estab(2, acked=0), estab(3)))
    keys = [*frame.by_key, ("not", "there")]
    assert frame.rates.get_many(keys) == [frame.rates.get(key) for key in keys]  # type: ignore[attr-defined]
    assert frame.rates.get(keys[0]).tx == 100.0 and frame.rates.get(keys[1]) is ZERO_RATE
    assert frame.rates.get(keys[2]) is None  # new: no rate before a second sample
