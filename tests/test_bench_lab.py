"""The benchmark's lab and harness work at small scale, so the benchmark cannot silently rot.

The lab is checked against `ss` and /proc: the pairs are ESTABLISHED inside the lab's namespace
and invisible outside it, both ends are held by the workers, and everything is gone afterwards.
The harness is checked for the two things that would make its numbers wrong without failing:
interleaving, and a child's peak RSS polluted by the parent's size.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks.harness import (
    CommandRunner,
    Measurement,
    Side,
    call_side,
    compare,
    find_gnu_time,
)
from benchmarks.lab import (
    SocketLab,
    established_count,
    netns_path,
    run_in_netns,
    split_pairs,
    thread_in_netns,
)

needs_root = pytest.mark.root


def socket_fds(pid: int) -> int:
    fd_dir = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fd_dir.iterdir() if os.readlink(fd).startswith("socket:"))


def test_split_pairs_is_even_and_never_empty() -> None:
    assert split_pairs(200, 20) == [10] * 20
    assert split_pairs(7, 3) == [3, 2, 2]
    assert split_pairs(3, 20) == [1, 1, 1]
    assert split_pairs(0, 20) == []


@needs_root
def test_lab_of_200_pairs_is_established_owned_and_cleaned_up() -> None:
    with SocketLab(200, n_procs=4) as lab:
        name, pids = lab.name, lab.pids
        assert len(pids) == 4
        assert established_count(name) == 400
        lines = run_in_netns(["ss", "-Htan", "state", "established"], name).splitlines()
        sources = {line.split()[2].rsplit(":", 1)[0] for line in lines}
        assert {"127.1.0.1", "127.1.0.4"} <= sources  # one source address per worker
        listeners = run_in_netns(["ss", "-Htln"], name).count("\n")
        assert listeners == 4
        # Both ends of every pair, plus the listener, in the worker's own fd table.
        assert [socket_fds(pid) for pid in pids] == [101, 101, 101, 101]
        host = run_in_netns(["ss", "-Htan", "src", "127.1.0.1"], None)
        assert host == ""  # the lab lives in its namespace only
    assert not netns_path(name).exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


@needs_root
def test_thread_in_netns_moves_only_the_block_and_comes_back() -> None:
    home = os.stat("/proc/thread-self/ns/net").st_ino
    with SocketLab(0) as lab:
        with thread_in_netns(lab.name):
            inside = os.stat("/proc/thread-self/ns/net").st_ino
        assert os.stat("/proc/thread-self/ns/net").st_ino == home
        assert inside == os.stat(netns_path(lab.name)).st_ino
        assert lab.pids == []


@needs_root
def test_command_runner_times_the_child_inside_the_namespace() -> None:
    with SocketLab(50, n_procs=2) as lab, CommandRunner(lab.name) as runner:
        run = runner.run(["ss", "-tanpi"])
        assert run.wall_s > 0 and run.cpu_s is not None and run.cpu_s > 0
        with pytest.raises(RuntimeError, match="exited with"):
            runner.run(["ss", "--no-such-option"])


@pytest.mark.skipif(find_gnu_time() is None, reason="needs GNU time (Debian package `time`)")
def test_peak_rss_is_the_childs_own_not_the_parents() -> None:
    ballast = bytearray(256 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: it is resident now
    with CommandRunner() as runner:
        run = runner.run(["true"])
    del ballast
    assert run.maxrss_kib is not None and run.maxrss_kib < 32 * 1024


def test_compare_interleaves_sides_and_takes_ratios_per_round() -> None:
    order: list[str] = []
    walls = {"a": iter([1.0, 2.0, 4.0, 8.0, 16.0]), "b": iter([2.0, 2.0, 2.0, 2.0, 2.0])}

    def side(name: str) -> Side:
        def measure() -> Measurement:
            order.append(name)
            return Measurement(next(walls[name]))

        return Side(name, measure)

    result = compare([side("a"), side("b")], repeat=4, warmup=1)
    assert order == ["a", "b"] * 5
    assert result.sides["a"].wall_median == 6.0  # rounds 2..5, the warm-up round dropped
    assert result.ratio("a", "b") == 3.0  # median of 1, 2, 4, 8
    assert result.ratio("a", "b", "b") == 1.5  # against the sum of two sides of the same round


def test_call_side_measures_wall_and_cpu_of_the_call() -> None:
    run = call_side("spin", lambda: sum(range(200_000))).measure()
    assert run.wall_s > 0 and run.cpu_s is not None and run.cpu_s > 0


def test_synthetic_refresh_changes_every_counter_and_churns_one_percent() -> None:
    from benchmarks.synthetic import OWNER_PROCESSES, SyntheticSockets

    source = SyntheticSockets(1000)
    first, second = source.next_sample(), source.next_sample()
    assert len(first.sockets) == len(second.sockets) == 1000 + OWNER_PROCESSES
    before = {s.key: s for s in first.sockets}
    after = {s.key: s for s in second.sockets}
    assert len(after.keys() - before.keys()) == 10  # 1% added
    assert len(before.keys() - after.keys()) == 10  # 1% removed
    kept = [key for key in after if key in before and after[key].tcp is not None]
    assert kept and all(after[k].tcp.bytes_acked != before[k].tcp.bytes_acked for k in kept)
    owned = [s for s in second.sockets if s.inode]
    assert all(second.owners_of(s) for s in owned)
