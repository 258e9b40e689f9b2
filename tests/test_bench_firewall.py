"""The firewall benchmark works at small scale (its lab, its sides, its checks), so it cannot
silently rot; the numbers are the full-size run's business, not this test's."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.bench_firewall import REFERENCE, FirewallLab, measure, ruleset
from benchmarks.lab import netns_path
from tests.conftest import needs_root


def test_the_ruleset_has_the_rules_asked_for_with_named_counters_and_sets() -> None:
    text = ruleset(2000)  # 10 chains of 200
    assert text.count(" counter ") == 2000 + 1  # and the named counter's declaration
    assert text.count('counter name "hits"') == 180 and text.count("@web counter") == 20
    assert text.count("hook input") == 1


@needs_root
def test_a_small_lab_measures_one_round_and_is_gone_after() -> None:
    with FirewallLab(50) as lab:
        name = lab.name
        result = measure(lab, repeat=1, warmup=0)
    assert not netns_path(name).exists()
    assert result["checks"]["ok"], result["checks"]
    assert result["checks"]["rules by backend"] == {
        "nft": 50,
        "iptables-nft": 2,
        "iptables-legacy": 1,
    }
    assert set(result["sides"]) == {
        "netdash tick (unchanged)",
        REFERENCE,
        "  rule counters dump",
        "  nft -a list ruleset",
    }
    assert all(side["wall_median_s"] > 0 for side in result["sides"].values())
    assert list(result["ratios"]) == [f"netdash tick (unchanged) / {REFERENCE}"]
