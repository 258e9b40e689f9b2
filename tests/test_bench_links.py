"""The interfaces benchmark works at small scale (its lab, its sides, its checks), so it cannot
silently rot; the numbers are the full-size run's business, not this test's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.bench_links import LinkLab, measure, pair_addresses
from benchmarks.lab import netns_path, run_in_netns
from tests.conftest import needs_root


def test_pair_addresses_are_distinct_thirty_twos_of_four() -> None:
    addrs = [pair_addresses(i) for i in range(500)]
    assert len({a for a, _ in addrs}) == 500
    assert pair_addresses(0) == ("10.100.0.1/30", "10.100.0.2")
    assert pair_addresses(65) == ("10.101.4.1/30", "10.101.4.2")


@needs_root
def test_a_small_lab_measures_one_round_and_is_gone_after() -> None:
    with LinkLab(10) as lab:
        name = lab.name
        links = json.loads(run_in_netns(["ip", "-n", name, "-j", "-s", "link"], None))
        assert len(links) == 21 and all(
            e["operstate"] == "UP" for e in links if e["ifname"] != "lo"
        )
        result = measure(lab, repeat=1, warmup=0)
    assert not netns_path(name).exists()
    assert result["checks"]["ok"], result["checks"]
    assert result["checks"]["links with a moving rate after a stir"] == 20
    assert set(result["sides"]) == {
        "netdash tick (idle)",
        "netdash tick (moving)",
        "ip -s -j link",
        "  read_counters",
        "  read_links",
    }
    assert all(
        len(side["wall_s"]) == 1 and side["wall_median_s"] > 0 for side in result["sides"].values()
    )
    assert set(result["ratios"]) == {
        "netdash tick (idle) / ip -s -j link",
        "netdash tick (moving) / ip -s -j link",
        "  read_links / ip -s -j link",
    }
