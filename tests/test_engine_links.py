"""LinkTracker on synthetic samples: rates, resets, vanished and reappearing links, history."""

from __future__ import annotations

import threading

import pytest

from netdash.engine_links import LinkRate, LinkTracker, link_rate
from netdash.model import LINK_COUNTER_NAMES, Link, LinkCounters, LinkSample


def counters(**values: int) -> LinkCounters:
    base = dict.fromkeys(LINK_COUNTER_NAMES, 0)
    base.update(values)
    return LinkCounters(**base)


def link(ifindex: int, name: str = "eth0", mac: str = "02:00:00:00:00:01") -> Link:
    return Link(ifindex, name, "veth", "UP", True, 1500, mac)


def sample(at: float, *entries: tuple[Link, LinkCounters]) -> LinkSample:
    return LinkSample(
        tuple(lk for lk, _ in entries), {lk.ifindex: c for lk, c in entries}, taken_at=at
    )


def test_rates_are_deltas_over_monotonic_time() -> None:
    tracker = LinkTracker(interval=1.0)
    eth = link(2)
    first = tracker.update(sample(10.0, (eth, counters(rx_bytes=1000, tx_bytes=50))))
    assert first.rates == {2: None}  # nothing to compare with yet
    frame = tracker.update(
        sample(
            12.0,
            (
                eth,
                counters(
                    rx_bytes=5000, tx_bytes=250, rx_packets=8, tx_packets=4,
                    rx_errors=2, tx_errors=0, rx_dropped=6, tx_dropped=1,
                ),
            ),
        )
    )  # fmt: skip
    assert frame.rates[2] == LinkRate(16000.0, 800.0, 4.0, 2.0, 1.0, 0.0, 3.0, 0.5, 2.0)
    assert frame.seq == 2 and frame.links == (eth,)


def test_a_counter_going_backwards_gives_no_rate_then_resumes() -> None:
    tracker = LinkTracker()
    eth = link(2)
    tracker.update(sample(1.0, (eth, counters(rx_bytes=10_000, rx_packets=10))))
    reset = tracker.update(sample(2.0, (eth, counters(rx_bytes=300, rx_packets=3))))
    assert reset.rates[2] is None
    after = tracker.update(sample(3.0, (eth, counters(rx_bytes=1300, rx_packets=5))))
    assert after.rates[2] is not None and after.rates[2].rx_bps == 8000.0


def test_any_rate_counter_going_backwards_is_a_reset() -> None:
    old = counters(rx_bytes=100, tx_dropped=5)
    assert link_rate(old, counters(rx_bytes=200, tx_dropped=4), 1.0) is None
    assert link_rate(old, counters(rx_bytes=200, tx_dropped=5), 0.0) is None
    rate = link_rate(old, counters(rx_bytes=200, tx_dropped=5), 1.0)
    assert rate is not None and rate.rx_bps == 800.0


def test_same_ifindex_with_another_mac_is_a_new_device() -> None:
    tracker = LinkTracker()
    tracker.update(sample(1.0, (link(2), counters(rx_bytes=100))))
    recreated = link(2, mac="02:00:00:00:00:99")
    frame = tracker.update(sample(2.0, (recreated, counters(rx_bytes=900))))
    assert frame.rates[2] is None  # counters grew, but they are another device's


def test_a_rename_keeps_the_rate() -> None:
    tracker = LinkTracker()
    tracker.update(sample(1.0, (link(2, "eth0"), counters(rx_bytes=100))))
    frame = tracker.update(sample(2.0, (link(2, "wan0"), counters(rx_bytes=225))))
    assert frame.rates[2] is not None and frame.rates[2].rx_bps == 1000.0


def test_same_name_new_ifindex_starts_unknown_and_the_old_one_is_dropped() -> None:
    tracker = LinkTracker()
    tracker.update(sample(1.0, (link(2), counters(rx_bytes=5000))))
    tracker.update(sample(2.0, (link(2), counters(rx_bytes=6000))))
    frame = tracker.update(sample(3.0, (link(7), counters(rx_bytes=10))))
    assert frame.rates == {7: None}
    assert list(frame.history) == [7]
    with pytest.raises(KeyError):
        frame.history[2]
    later = tracker.update(sample(4.0, (link(7), counters(rx_bytes=20))))
    assert later.rates[7] is not None and later.rates[7].rx_bps == 80.0


def test_a_vanished_link_is_dropped_and_a_return_starts_over() -> None:
    tracker = LinkTracker()
    lo, eth = link(1, "lo", "00:00:00:00:00:00"), link(2)
    tracker.update(sample(1.0, (lo, counters()), (eth, counters(rx_bytes=100))))
    gone = tracker.update(sample(2.0, (lo, counters())))
    assert set(gone.rates) == {1} and gone.links == (lo,)
    back = tracker.update(sample(3.0, (lo, counters()), (eth, counters(rx_bytes=50))))
    assert back.rates[2] is None  # no memory of the old device, no bogus delta
    assert back.history[2].times == (3.0,)


def test_a_link_without_counters_is_left_out() -> None:
    tracker = LinkTracker()
    frame = tracker.update(LinkSample((link(2),), {}, taken_at=1.0))
    assert frame.links == () and frame.rates == {}


def test_history_is_bounded_and_keeps_unknowns() -> None:
    tracker = LinkTracker(interval=1.0, history_seconds=5.0)
    assert tracker.points == 6
    eth = link(2)
    frames = [
        tracker.update(sample(float(t), (eth, counters(rx_bytes=100 * t)))) for t in range(10)
    ]
    hist = frames[-1].history[2]
    assert hist.times == (4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    assert hist.series("rx_bps") == (800.0,) * 6
    assert frames[0].history[2].series("rx_bps") == ()  # its one point has been pushed out
    assert frames[-2].history[2].times[-1] == 8.0  # an older frame stops at its own time


def test_ten_minutes_of_history_at_the_default() -> None:
    tracker = LinkTracker(interval=1.0)
    eth = link(2)
    frame = None
    for t in range(700):
        frame = tracker.update(sample(float(t), (eth, counters(tx_bytes=t))))
    assert frame is not None
    times = frame.history[2].times
    assert times[-1] - times[0] >= 600.0
    assert frame.history[2].series("tx_bps")[-1] == 8.0


def test_history_reads_are_safe_while_the_tracker_updates() -> None:
    tracker = LinkTracker(interval=1.0, history_seconds=50.0)
    eth = link(2)
    frame = tracker.update(sample(0.0, (eth, counters())))
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                snap = frame.history[2]
                assert len(snap.times) == len(snap.rates)
        except BaseException as err:  # reported to the test thread below
            errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    for t in range(1, 3000):
        tracker.update(sample(float(t), (eth, counters(rx_bytes=t))))
    stop.set()
    reader.join()
    assert errors == []
    assert frame.history[2].times == ()  # its moment has left the window


def test_an_unchanged_counters_record_gives_a_zero_rate() -> None:
    tracker = LinkTracker()
    eth, same = link(2), counters(rx_bytes=10, tx_packets=3)
    tracker.update(sample(1.0, (eth, same)))
    frame = tracker.update(sample(1.5, (eth, same)))
    assert frame.rates[2] == LinkRate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5)
