"""The scale benchmark: netdash against `ss` on N established pairs, all measured in one run.

For each N it builds a :class:`~benchmarks.lab.SocketLab` (2N ESTABLISHED sockets over ~20 owner
processes in a namespace of its own) and measures, interleaved and repeated (see
:mod:`benchmarks.harness`):

(a) ``sample``  netdash's steady-state sample (sockets + tcp_info + owners, in-process, after two
                warm-up samples) against ``ss -tanpi`` as a process;
(b) ``dump``    ``netdash dump connections --json`` as a whole process against ``ss -tanupi`` +
                ``ss -xap`` (the dump includes UNIX sockets), ``--no-unix`` against
                ``ss -tanupi``, and the dump against ``ss -tanpi``;
(e) ``rss``     the live app's peak RSS in tmux on the largest lab (``--rss-at all``: every lab),
                and the dump process's, from (b).

Then, once: (c) ``ui`` and (d) ``keys`` on the real app, headless, at ``--ui-rows`` rows of
synthetic sockets whose counters all move (:mod:`benchmarks.ui_bench`); and ``cpu``: the live app
in tmux, 1 s interval, on 20,000 established sockets and on the idle host.

Every part runs alone (``--part sample,dump``); a part whose netdash modules are missing is
reported as "not available yet" with the reason. Run as root: ``python
benchmarks/bench_connections.py [--pairs 1000,10000,50000] [--repeat 5] [--json out.json]``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from benchmarks.availability import PARTS, unavailable_parts
from benchmarks.harness import (
    CommandError,
    CommandRunner,
    Comparison,
    Side,
    call_side,
    command_side,
    compare,
)
from benchmarks.lab import LabError, SocketLab, run_in_netns
from benchmarks.live import LiveError, netdash_command, run_live
from benchmarks.report import Report, machine_info

SS_TCP = ["ss", "-tanpi"]
SS_ALL_INET = ["ss", "-tanupi"]
SS_UNIX = ["ss", "-xap"]


def progress(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- (a) and (b)


def open_sampler(netns: str) -> Any:
    """The app's own sampler (SocketReader + OwnerMap), opened inside the lab; TCP only, as
    `ss -tanpi` lists TCP only (the lab has no UDP sockets, so UDP costs one empty dump)."""
    from netdash.engine import ConnectionsSampler
    from netdash.netns import resolve_netns
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    sampler = ConnectionsSampler(SocketReader(netns=resolve_netns(netns)), OwnerMap())
    sampler.tcp_info, sampler.unix = True, False
    return sampler


def tick_function(sampler: Any) -> Callable[[], object] | None:
    """The live app's whole sampling-thread tick (sample, tracker, rows feed), if the UI exists."""
    try:
        from netdash.engine import ConnectionsTracker
        from netdash.ui.panes.connection_rows import ConnectionsFeed
    except ImportError:
        return None
    tracker, feed = ConnectionsTracker(1.0), ConnectionsFeed()
    return lambda: feed.consume(tracker.update(sampler.sample()))


def breakdown_sides(sampler: Any) -> list[Side]:
    """The two halves of (a), timed alone: where the sample's time goes, for whoever tunes it."""
    read = sampler.reader.read(tcp_info=True, unix=False)
    wanted = {sock.inode: sock.uid for sock in read.sockets if sock.inode}
    return [
        call_side(
            "  of which read",
            lambda: sampler.reader.read(tcp_info=True, unix=False),
            "SocketReader.read: sock_diag + parse",
        ),
        call_side(
            "  of which owners",
            lambda: sampler.owners.refresh(wanted),
            "OwnerMap.refresh, steady state",
        ),
    ]


def count_sample(sample: Any) -> tuple[int, int]:
    """(ESTABLISHED sockets, of which with an owner) in an in-process sample."""
    est = [s for s in sample.sockets if s.proto == "tcp" and s.state == "ESTABLISHED"]
    return len(est), sum(1 for s in est if sample.owners_of(s))


def count_ss(text: str) -> tuple[int, int]:
    est = [line for line in text.splitlines() if line.startswith("ESTAB")]
    return len(est), sum(1 for line in est if "users:((" in line)


def count_dump(text: str) -> tuple[int, int]:
    est = [s for s in json.loads(text) if s["proto"] == "tcp" and s["state"] == "ESTABLISHED"]
    return len(est), sum(1 for s in est if s["pid"] is not None)


def sanity_checks(lab: SocketLab, parts: set[str], sampler: Any) -> dict[str, Any]:
    """What each contender lists, once, untimed: a benchmark of wrong answers is worthless."""
    checks: dict[str, Any] = {"expected_established": lab.expected_established}
    checks["ss -tanpi"] = count_ss(run_in_netns(SS_TCP, lab.name, timeout=600))
    if sampler is not None:
        checks["netdash sample"] = count_sample(sampler.sample())
    if "dump" in parts:
        dump = [*netdash_command(), "dump", "connections", "--json"]
        checks["netdash dump"] = count_dump(run_in_netns(dump, lab.name, timeout=600))
    bad = [
        name
        for name, value in checks.items()
        if isinstance(value, tuple) and value != (lab.expected_established,) * 2
    ]
    checks["ok"] = not bad
    if bad:
        progress(f"WARNING: (established, with owner) differ from the lab for: {bad}: {checks}")
    return checks


def process_sides(lab: SocketLab, runner: CommandRunner, parts: set[str], sampler: Any) -> list:
    sides: list[Side] = []
    if sampler is not None:
        sides.append(call_side("netdash sample", sampler.sample, "in-process, TCP + tcp_info"))
        sides += breakdown_sides(sampler)
        tick = tick_function(sampler)
        if tick is not None:
            tick()  # the tracker's first frame builds every row: not the steady state
            sides.append(call_side("netdash tick", tick, "sample + engine + rows feed"))
    sides.append(command_side("ss -tanpi", runner, SS_TCP))
    if "dump" in parts:
        dump = [*netdash_command(), "dump", "connections", "--json"]
        sides += [
            command_side("netdash dump", runner, dump, label="netdash dump connections --json"),
            command_side(
                "netdash dump --no-unix",
                runner,
                [*dump, "--no-unix"],
                label="netdash dump connections --json --no-unix",
            ),
            command_side("ss -tanupi", runner, SS_ALL_INET),
            command_side("ss -xap", runner, SS_UNIX),
        ]
    return sides


def ratios(comparison: Comparison, parts: set[str]) -> dict[str, float]:
    have = comparison.sides
    out: dict[str, float] = {}
    if "netdash sample" in have:
        out["(a) sample / ss -tanpi"] = comparison.ratio("netdash sample", "ss -tanpi")
    if "netdash tick" in have:
        out["tick / ss -tanpi"] = comparison.ratio("netdash tick", "ss -tanpi")
    if "netdash dump" in have:
        out["(b) dump / (ss -tanupi + ss -xap)"] = comparison.ratio(
            "netdash dump", "ss -tanupi", "ss -xap"
        )
        out["(b) dump --no-unix / ss -tanupi"] = comparison.ratio(
            "netdash dump --no-unix", "ss -tanupi"
        )
        out["(b) dump / ss -tanpi"] = comparison.ratio("netdash dump", "ss -tanpi")
    return out


def measure_lab(
    args: argparse.Namespace, n: int, parts: set[str], first: bool, largest: bool
) -> dict:
    progress(f"lab: {n:,} pairs over {args.procs} processes")
    with SocketLab(n, args.procs) as lab, CommandRunner(lab.name) as runner:
        entry: dict[str, Any] = {
            "pairs": n,
            "sockets": lab.expected_established + len(lab.pids),
            "processes": len(lab.pids),
            "setup_s": lab.setup_seconds,
        }
        progress(f"lab {lab.name} ready in {lab.setup_seconds:.1f} s")
        if parts & {"sample", "dump"}:
            with failures_recorded(entry.setdefault("errors", {}), "sample/dump"):
                entry.update(time_processes(args, lab, runner, parts, first))
        if "rss" in parts and (largest or args.rss_at == "all"):
            progress(f"live app in tmux for {args.rss_seconds:.0f} s (peak RSS)")
            with failures_recorded(entry.setdefault("errors", {}), "rss"):
                entry["live"] = run_live(lab.name, args.rss_seconds, settle=3.0).to_json()
    return entry


def time_processes(
    args: argparse.Namespace, lab: SocketLab, runner: CommandRunner, parts: set[str], first: bool
) -> dict[str, Any]:
    sampler = open_sampler(lab.name) if "sample" in parts else None
    try:
        if sampler is not None:
            sampler.sample(), sampler.sample()  # steady state: the owner map is built
        checks = sanity_checks(lab, parts, sampler)
        sides = process_sides(lab, runner, parts, sampler)
        progress(f"timing {len(sides)} sides x {args.repeat} rounds, interleaved")
        comparison = compare(sides, repeat=args.repeat, warmup=1 if first else 0)
    finally:
        if sampler is not None:
            sampler.close()
    return {
        "checks": checks,
        "sides": {name: side.to_json() for name, side in comparison.sides.items()},
        "ratios": ratios(comparison, parts),
    }


@contextlib.contextmanager
def failures_recorded(errors: dict[str, str], part: str) -> Iterator[None]:
    """A part that fails (netdash crashed, a command failed) is reported, the run goes on."""
    try:
        yield
    except (LiveError, CommandError, LabError, OSError, RuntimeError) as err:
        lines = str(err).strip().splitlines()
        message = " / ".join(lines[:1] + lines[-12:]) if len(lines) > 13 else " / ".join(lines)
        errors[part] = f"{type(err).__name__}: {message}"
        progress(f"FAILED {part}: {type(err).__name__}: {message}")


# ------------------------------------------------------------------------------- ui, keys, cpu


def measure_ui_parts(args: argparse.Namespace, parts: set[str]) -> dict:
    from benchmarks.ui_bench import measure_ui

    progress(f"ui: real app headless, {args.ui_rows:,} synthetic rows")
    return measure_ui(args.ui_rows, args.repeat, sorted(parts & {"ui", "keys"})).to_json()


def measure_cpu(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {}
    progress(f"cpu: live app on {2 * args.cpu_pairs:,} established sockets, {args.cpu_seconds} s")
    with SocketLab(args.cpu_pairs, args.procs) as lab:
        out["lab"] = run_live(lab.name, args.cpu_seconds).to_json()
        out["lab"]["sockets"] = lab.expected_established
    progress(f"cpu: live app on the host (idle), {args.cpu_seconds} s")
    out["idle"] = run_live(None, args.cpu_seconds, wait_text="Quit").to_json()
    return out


# ------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="1000,10000,50000", help="lab sizes, in pairs")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per measurement (>= 1)")
    parser.add_argument("--procs", type=int, default=20, help="owner processes per lab")
    parser.add_argument("--part", default=",".join(PARTS), help=f"any of {','.join(PARTS)}")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    parser.add_argument("--ui-rows", type=int, default=100_000, help="rows for ui and keys")
    parser.add_argument("--cpu-pairs", type=int, default=10_000, help="lab for the cpu part")
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--rss-seconds", type=float, default=8.0)
    parser.add_argument(
        "--rss-at",
        choices=("largest", "all"),
        default="largest",
        help="run the live app for (e) on the largest lab only (default) or on every lab",
    )
    args = parser.parse_args(argv)
    args.pairs_list = [int(p) for p in args.pairs.split(",") if p.strip()]
    args.parts = [p.strip() for p in args.part.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown or args.repeat < 1:
        parser.error(f"unknown parts {sorted(unknown)}" if unknown else "--repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_connections: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    started = time.monotonic()
    missing = unavailable_parts(args.parts)
    parts = set(args.parts) - set(missing)
    report = Report(machine_info(), vars(args), missing)
    for reason in sorted(set(missing.values())):
        progress(f"not available yet: {reason}")
    if parts & {"sample", "dump", "rss"}:
        largest = max(args.pairs_list)
        for index, n in enumerate(args.pairs_list):
            report.add_lab(measure_lab(args, n, parts, first=index == 0, largest=n == largest))
    if parts & {"ui", "keys"}:
        with failures_recorded(report.errors, "ui"):
            report.ui = measure_ui_parts(args, parts)
            report.print_ui()
    if "cpu" in parts:
        with failures_recorded(report.errors, "cpu"):
            report.cpu = measure_cpu(args)
            report.print_cpu()
    report.finish(time.monotonic() - started)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.to_json(), out, indent=1)
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
