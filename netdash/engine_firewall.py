"""Per-rule packet and byte rates from firewall counter deltas (no Textual; used by the pane
and ``netdash dump firewall``).

A rule is followed by :attr:`FirewallRule.key`: nft rules by handle, iptables rules by position
and text, so an edited or moved iptables rule is a new rule and its counters never make a rate
with the old one's. A counter that went backwards is a reset (``nft reset counters``,
``iptables -Z``, a flush and reload reusing a key): no rate that tick, and the frame says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netdash.model import FirewallRule, FirewallSample


@dataclass(frozen=True, slots=True)
class RuleRate:
    packets_per_s: float
    bytes_per_s: float


@dataclass(frozen=True)
class FirewallFrame:
    """One sample and what changed since the one before."""

    sample: FirewallSample
    #: rule key → its rates; absent for a new rule, a rule without counter, or a reset
    rates: dict[tuple[object, ...], RuleRate] = field(default_factory=dict)
    #: keys whose counters moved since the last sample
    moved: frozenset[tuple[object, ...]] = frozenset()
    #: keys whose counters went backwards (reset or flushed and recreated)
    reset: frozenset[tuple[object, ...]] = frozenset()
    #: keys of the last sample no longer present (deleted, edited, flushed)
    gone: frozenset[tuple[object, ...]] = frozenset()
    seconds: float | None = None  # time between the two samples the rates cover

    def rate(self, rule: FirewallRule) -> RuleRate | None:
        return self.rates.get(rule.key)


class FirewallTracker:
    """Turns consecutive :class:`FirewallSample` s into :class:`FirewallFrame` s."""

    def __init__(self) -> None:
        self._last: dict[tuple[object, ...], tuple[int, int]] = {}
        self._last_at: float | None = None

    def update(self, sample: FirewallSample) -> FirewallFrame:
        seconds = None if self._last_at is None else sample.taken_at - self._last_at
        now: dict[tuple[object, ...], tuple[int, int]] = {}
        rates: dict[tuple[object, ...], RuleRate] = {}
        moved, reset = set(), set()
        for rule in sample.rules:
            if rule.packets is None or rule.bytes is None:
                continue
            key = rule.key
            now[key] = (rule.packets, rule.bytes)
            before = self._last.get(key)
            if before is None:
                continue
            dp, db = rule.packets - before[0], rule.bytes - before[1]
            if dp < 0 or db < 0:
                reset.add(key)
                continue
            if dp or db:
                moved.add(key)
            if seconds is not None and seconds > 0:
                rates[key] = RuleRate(dp / seconds, db / seconds)
        gone = frozenset(self._last.keys() - now.keys())
        self._last, self._last_at = now, sample.taken_at
        return FirewallFrame(sample, rates, frozenset(moved), frozenset(reset), gone, seconds)


def hot_order(frame: FirewallFrame) -> list[FirewallRule]:
    """Rules by packets per second, busiest first (rules without a rate last, in order)."""
    rules = list(frame.sample.rules)
    return sorted(
        rules, key=lambda r: -(frame.rates[r.key].packets_per_s) if r.key in frame.rates else 1.0
    )
