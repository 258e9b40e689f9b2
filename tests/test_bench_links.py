"""The interfaces benchmark works at small scale (its lab, its sides, its checks, its UI part), so
it cannot silently rot; the numbers are the full-size run's business, not this test's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.bench_links import (
    LinkLab,
    SyntheticLinks,
    main,
    measure,
    measure_ui,
    pair_addresses,
)
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


def test_synthetic_links_move_every_counter_of_every_link_each_tick() -> None:
    links = SyntheticLinks(20)
    first, second = links.sample(), links.sample()
    assert len(first.links) == 20 and len({link.name for link in first.links}) == 20
    assert second.taken_at - first.taken_at == 1.0
    for link in first.links:
        before, after = first.counters[link.ifindex], second.counters[link.ifindex]
        assert after.rx_bytes > before.rx_bytes and after.tx_packets > before.tx_packets


def test_the_ui_part_times_refreshes_of_the_real_pane_at_a_small_size() -> None:
    result = measure_ui(20, repeat=2, history=30)
    assert result["checks"] == {
        "rows": 20,
        "rows with a rate": 20,
        "graph of": "br-5f2c81e0a9d4",  # the first row by name, under the cursor
        "graph points": 34,  # 30 untimed ticks and 4 frames (2 warm-ups, 2 timed)
        "ok": True,
    }
    assert len(result["busy_s"]) == len(result["latency_s"]) == 2
    pairs = zip(result["busy_s"], result["latency_s"], strict=True)
    assert all(0 < busy <= latency for busy, latency in pairs)
    assert set(result["parts_s"]) == {
        "InterfacesPane.apply_frame",
        "VirtualTable.refresh_rows",
        "RateGraph.render",
    }
    assert all(len(times) == 2 and min(times) > 0 for times in result["parts_s"].values())


def test_the_ui_part_alone_needs_no_root_and_prints_its_verdict(capsys) -> None:
    argv = ["--part", "ui", "--ui-interfaces", "20", "--ui-repeat", "1", "--ui-history", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Interfaces pane, UI thread, 20 interfaces" in out
    assert "UI refresh < 20 ms: PASS" in out or "UI refresh < 20 ms: FAIL" in out
    assert "'ok': True" in out
