"""The interfaces benchmark: netdash's per-tick cost at 1,000 interfaces against `ip -s -j link`.

The issue's target: sampling 1,000 interfaces and computing their rates costs less than one run
of ``ip -s -j link`` in the same namespace, measured in the same run. The lab
(:class:`LinkLab`) is N veth pairs in a namespace of its own (this kernel has no dummy or netem
modules), all up, IPv6 off so nothing talks on its own, each pair with a /30 and a permanent
neighbour so one datagram moves the counters of both ends.

Sides, interleaved and repeated (:mod:`benchmarks.harness`: medians, per-round ratios):

- ``netdash tick (idle)``: what the live engine does each tick, in-process and in steady state:
  ``LinkTracker.update(LinkReader.sample())``: one ``RTM_GETSTATS`` dump, the event socket
  drained, rates. No counter moved since the last tick, so the reader keeps every record.
- ``netdash tick (moving)``: the same after one datagram crossed every pair (untimed), so every
  veth's counters changed: the honest worst case, every record rebuilt and every rate computed.
- ``ip -s -j link``: as a process, spawned inside the lab like the tools of bench_connections.
- for information: ``read_counters`` alone, and ``read_links`` (pyroute2 links and addresses
  plus one ethtool ioctl per link), the rare full read done at start and when links change.

Run as root: ``python benchmarks/bench_links.py [--pairs 500] [--repeat 5] [--json out.json]``.
The pane's UI-thread refresh is not measured here.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from benchmarks.harness import CommandRunner, Comparison, Side, call_side, command_side, compare
from benchmarks.lab import LabError, netns_path, run_in_netns, thread_in_netns
from benchmarks.report import machine_info

IP_LINK = ["ip", "-s", "-j", "link"]
TARGET = "tick < ip -s -j link"
_names = itertools.count()


def progress(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- lab


def pair_addresses(index: int) -> tuple[str, str]:
    """(address/30 of pair ``index``'s a-end, the neighbour it sends to): 64 pairs per /24."""
    base = f"10.{100 + index // 64}.{(index % 64) * 4}"
    return f"{base}.1/30", f"{base}.2"


def lab_batch(pairs: int) -> str:
    """`ip -batch` commands for the lab: every pair up, the a-end with an address and a
    permanent neighbour (a made-up MAC: the b-end counts the frame, then drops it)."""
    lines = []
    for i in range(pairs):
        address, neighbour = pair_addresses(i)
        lines += [
            f"link add lk{i}a type veth peer name lk{i}b",
            f"link set lk{i}a up",
            f"link set lk{i}b up",
            f"addr add {address} dev lk{i}a",
            f"neigh add {neighbour} lladdr 02:00:00:00:00:01 dev lk{i}a nud permanent",
        ]
    return "\n".join(lines) + "\n"


class LinkLab:
    """``pairs`` veth pairs (2 x pairs interfaces + lo) in a new namespace; deleted on exit,
    whatever happened."""

    def __init__(self, pairs: int, netns_name: str | None = None) -> None:
        if pairs < 0:
            raise ValueError("pairs must be >= 0")
        self.pairs = pairs
        self.name = netns_name or f"nd-bench-links-{os.getpid()}-{next(_names)}"
        self.setup_seconds: float | None = None
        self._created = False
        self._sender: socket.socket | None = None

    @property
    def interfaces(self) -> int:
        return 2 * self.pairs + 1

    def __enter__(self) -> LinkLab:
        started = time.monotonic()
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _build(self) -> None:
        if netns_path(self.name).exists():
            raise LabError(f"namespace {self.name} already exists; refusing to reuse it")
        run_in_netns(["ip", "netns", "add", self.name], None)
        self._created = True
        off = ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        run_in_netns(["ip", "netns", "exec", self.name, "sysctl", "-qw", *off], None)
        with tempfile.NamedTemporaryFile("w", prefix="nd-bench-links-", suffix=".ip") as batch:
            batch.write("link set lo up\n" + lab_batch(self.pairs))
            batch.flush()
            run_in_netns(["ip", "-n", self.name, "-batch", batch.name], None, timeout=300)
        listed = len(json.loads(run_in_netns(["ip", "-n", self.name, "-j", "link"], None)))
        if listed != self.interfaces:
            raise LabError(
                f"expected {self.interfaces} interfaces in {self.name}, ip lists {listed}"
            )
        with thread_in_netns(self.name):
            self._sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def stir(self) -> None:
        """One datagram across every pair: the a-end's tx and the b-end's rx counters move."""
        assert self._sender is not None
        for i in range(self.pairs):
            self._sender.sendto(b"x", (pair_addresses(i)[1], 9))
        time.sleep(0.005)  # let the b-ends' receive path count them before anyone reads

    def close(self) -> None:
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
            self._created = False


# -------------------------------------------------------------------------------------- sides


class NetdashLinks:
    """The live engine's interfaces source, opened inside the lab: a reader and a tracker."""

    def __init__(self, netns: str) -> None:
        from netdash.engine_links import LinkTracker
        from netdash.netns import resolve_netns
        from netdash.sources.links import LinkReader

        self.reader = LinkReader(resolve_netns(netns))
        self.tracker = LinkTracker(interval=1.0)
        self.last: Any = None

    def tick(self) -> None:
        self.last = self.tracker.update(self.reader.sample())

    def close(self) -> None:
        self.reader.close()


def stirred_side(name: str, stir: Callable[[], None], fn: Callable[[], object], label: str) -> Side:
    """An in-process call timed after an untimed preparation step."""
    timed = call_side(name, fn, label)

    def measure() -> Any:
        stir()
        return timed.measure()

    return Side(name, measure, label)


def sides(lab: LinkLab, netdash: NetdashLinks, runner: CommandRunner) -> list[Side]:
    """In this order each round: the idle tick follows a round with no traffic since the
    previous read, and the moving tick's stir is the only traffic of the round."""
    return [
        call_side("netdash tick (idle)", netdash.tick, "LinkTracker.update(LinkReader.sample())"),
        stirred_side(
            "netdash tick (moving)", lab.stir, netdash.tick, "the same, every veth's counters moved"
        ),
        command_side("ip -s -j link", runner, IP_LINK),
        call_side("  read_counters", netdash.reader.read_counters, "one RTM_GETSTATS dump"),
        call_side("  read_links", netdash.reader.read_links, "pyroute2 links+addrs, ethtool"),
    ]


def ratios(comparison: Comparison) -> dict[str, float]:
    return {
        f"{name} / ip -s -j link": comparison.ratio(name, "ip -s -j link")
        for name in ("netdash tick (idle)", "netdash tick (moving)", "  read_links")
    }


# ------------------------------------------------------------------------------------- checks


def ip_counters(netns: str) -> dict[int, tuple[int, int, int, int]]:
    """(rx bytes, tx bytes, rx packets, tx packets) by ifindex, as `ip -s -j link` says."""
    entries = json.loads(run_in_netns([*IP_LINK], netns))
    return {
        e["ifindex"]: (
            e["stats64"]["rx"]["bytes"],
            e["stats64"]["tx"]["bytes"],
            e["stats64"]["rx"]["packets"],
            e["stats64"]["tx"]["packets"],
        )
        for e in entries
    }


def sanity_checks(lab: LinkLab, netdash: NetdashLinks) -> dict[str, Any]:
    """Untimed, once: netdash sees every interface with `ip`'s counters, and a stir moves
    every veth's rate (a benchmark of wrong answers is worthless)."""
    netdash.tick()
    ours = {
        index: (c.rx_bytes, c.tx_bytes, c.rx_packets, c.tx_packets)
        for index, c in netdash.reader.read_counters().items()
    }
    theirs = ip_counters(lab.name)
    lab.stir()
    netdash.tick()
    moving = sum(
        1 for rate in netdash.last.rates.values() if rate and rate.rx_pps + rate.tx_pps > 0
    )
    checks = {
        "interfaces": lab.interfaces,
        "netdash links": len(netdash.last.links),
        "counters equal ip's": ours == theirs,
        "links with a moving rate after a stir": moving,
    }
    checks["ok"] = (
        checks["counters equal ip's"]
        and checks["netdash links"] == lab.interfaces
        and moving == 2 * lab.pairs
    )
    if not checks["ok"]:
        progress(f"WARNING: netdash and the lab disagree: {checks}")
    return checks


# ---------------------------------------------------------------------------------------- run


def measure(lab: LinkLab, repeat: int, warmup: int = 1) -> dict[str, Any]:
    """Every side of one lab, interleaved; the results as JSON-ready data."""
    netdash = NetdashLinks(lab.name)
    try:
        with CommandRunner(lab.name) as runner:
            netdash.tick()  # the first sample reads the link details: not the steady state
            checks = sanity_checks(lab, netdash)
            progress(f"timing 5 sides x {repeat} rounds, interleaved")
            comparison = compare(sides(lab, netdash, runner), repeat=repeat, warmup=warmup)
    finally:
        netdash.close()
    return {
        "pairs": lab.pairs,
        "interfaces": lab.interfaces,
        "setup_s": lab.setup_seconds,
        "checks": checks,
        "sides": {name: side.to_json() for name, side in comparison.sides.items()},
        "ratios": ratios(comparison),
    }


def print_result(result: dict[str, Any]) -> None:
    print(f"\n{result['interfaces']:,} interfaces ({result['pairs']:,} veth pairs)")
    print(f"{'side':<26}{'wall median':>14}{'cpu median':>14}  what")
    for name, side in result["sides"].items():
        cpu = side["cpu_median_s"]
        cpu_text = "-" if cpu is None else f"{cpu * 1000:9.2f} ms"
        wall = f"{side['wall_median_s'] * 1000:9.2f} ms"
        print(f"{name:<26}{wall:>14}{cpu_text:>14}  {side['label']}")
    print("ratios (median of per-round ratios):")
    for name, value in result["ratios"].items():
        verdict = ""
        if "tick" in name:
            verdict = f"  {TARGET}: {'PASS' if value < 1 else 'FAIL'}"
        print(f"  {name:<36}{value:8.3f}x{verdict}")
    print(f"checks: {result['checks']}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500, help="veth pairs (2 interfaces each)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (>= 1)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.pairs < 1:
        parser.error("--repeat and --pairs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_links: needs root (it builds a network namespace)", file=sys.stderr)
        return 2
    machine = machine_info()
    started = time.monotonic()
    progress(f"lab: {args.pairs:,} veth pairs")
    with LinkLab(args.pairs) as lab:
        progress(f"lab {lab.name} ready in {lab.setup_seconds:.1f} s")
        result = measure(lab, args.repeat)
    print_result(result)
    machine["loadavg_end"] = os.getloadavg()
    elapsed = time.monotonic() - started
    progress(f"done in {elapsed:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"machine": machine, "config": vars(args), "result": result}, out, indent=1)
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
