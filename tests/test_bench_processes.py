"""The processes benchmark works at a tiny size (its sleepers, its sides, its checks, its exit
status), so it cannot silently rot; the numbers are the full-size run's business."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.bench_processes import Sleepers, main, measure


def test_sleepers_sleep_and_are_reaped_after() -> None:
    with Sleepers(5, seconds=120) as sleepers:
        pids = list(sleepers.pids)
        assert len(set(pids)) == 5
        assert all(Path(f"/proc/{pid}/comm").read_text() == "sleep\n" for pid in pids)
        assert {os.getpgid(pid) for pid in pids} == {pids[0]}  # one group: one killpg ends all
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_one_round_at_ten_sleepers_measures_every_side_and_checks_pass() -> None:
    with Sleepers(10, seconds=120) as sleepers:
        result = measure(sleepers, repeat=1, warmup=0)
    checks = result["checks"]
    assert checks["ok"], checks
    assert checks["sleepers kept by the steady tick"] == 10
    assert set(result["sides"]) == {
        "ps",
        "netdash full",
        "netdash steady",
        "  netdash full+details",
        "  netdash steady+details",
        "  psutil",
    }
    assert all(
        len(side["wall_s"]) == 1 and side["wall_median_s"] > 0 for side in result["sides"].values()
    )
    assert set(result["ratios"]) == {
        "netdash full / ps",
        "netdash steady / netdash full",
        "  netdash full+details / ps",
        "  netdash steady+details / netdash full",
        "  psutil / ps",
    }


def test_main_prints_the_verdicts(capsys) -> None:
    assert main(["--procs", "3", "--repeat", "1", "--warmup", "0", "--no-psutil"]) == 0
    out = capsys.readouterr().out
    assert "netdash full / ps" in out and "target <= 1.5x: " in out
    assert "netdash steady / netdash full" in out and "target < 0.5x: " in out
    assert "'ok': True" in out and "psutil" not in out
