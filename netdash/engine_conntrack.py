"""Conntrack pressure from successive :class:`~netdash.model.ConntrackSample`\\ s (no Textual).

The per-CPU counters of ``/proc/net/stat/nf_conntrack`` only grow, so what matters in an
incident is how fast: ``insert_failed``, ``drop`` and ``early_drop`` per second say the table
is full or its hash chains too long *now*. A counter that goes backwards (the namespace was
recreated, a CPU went offline and its row left the sum) is a reset: that counter's rate is
unknown (None) for that tick, never negative. The fill of the table, ``count / max``, is a
gauge; :data:`NEAR_LIMIT` of it is where the pane turns the warning colour on (new flows are
dropped at 100 %, with "nf_conntrack: table full, dropping packet" in the kernel log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from netdash.model import ConntrackSample

#: The fill (count / max) from which the table is "near the limit".
NEAR_LIMIT = 0.8

#: The counters an on-call engineer looks at first (a full table, or one under attack).
PRESSURE_STATS = ("insert_failed", "drop", "early_drop")


def fill_of(sample: ConntrackSample) -> float | None:
    """``count / max``; None when the limit is unknown (not readable, or not loaded)."""
    if not sample.max:
        return None
    return sample.count / sample.max


def stat_rates(
    old: Mapping[str, int], new: Mapping[str, int], seconds: float
) -> dict[str, float | None]:
    """Per-second rates of every counter in ``new``; None for one that is new, went backwards
    (a reset) or when no time passed."""
    rates: dict[str, float | None] = {}
    for name, value in new.items():
        before = old.get(name)
        if before is None or value < before or seconds <= 0:
            rates[name] = None
        else:
            rates[name] = (value - before) / seconds
    return rates


@dataclass(frozen=True)
class ConntrackFrame:
    """One sample with what the engine derived from it and the one before."""

    sample: ConntrackSample
    rates: Mapping[str, float | None] = field(default_factory=dict)  # stat name -> per second
    seconds: float | None = None  # the interval the rates cover; None on the first sample
    fill: float | None = None  # count / max
    near_limit: bool = False  # fill >= the tracker's threshold
    resets: tuple[str, ...] = ()  # counters that went backwards since the last sample

    def rate(self, name: str) -> float | None:
        return self.rates.get(name)


class ConntrackTracker:
    """Turns samples into frames: rates from the previous sample, fill against the limit."""

    def __init__(self, near_limit: float = NEAR_LIMIT) -> None:
        self.near_limit = near_limit
        self._last: ConntrackSample | None = None

    def update(self, sample: ConntrackSample) -> ConntrackFrame:
        last, self._last = self._last, sample
        fill = fill_of(sample)
        near = fill is not None and fill >= self.near_limit
        if last is None:
            rates: dict[str, float | None] = dict.fromkeys(sample.stats)
            return ConntrackFrame(sample, rates, None, fill, near)
        seconds = sample.taken_at - last.taken_at
        rates = stat_rates(last.stats, sample.stats, seconds)
        resets = tuple(
            name for name, value in sample.stats.items() if value < last.stats.get(name, value)
        )
        return ConntrackFrame(sample, rates, seconds, fill, near, resets)


__all__ = [
    "NEAR_LIMIT",
    "PRESSURE_STATS",
    "ConntrackFrame",
    "ConntrackTracker",
    "fill_of",
    "stat_rates",
]
