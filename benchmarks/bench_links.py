"""The interfaces benchmark: netdash's per-tick cost at 1,000 interfaces against `ip -s -j link`,
and the Interfaces pane's refresh on the UI thread.

Part ``tick``, the issue's first target: sampling 1,000 interfaces and computing their rates
costs less than one run of ``ip -s -j link`` in the same namespace, measured in the same run. The
lab (:class:`LinkLab`) is N veth pairs in a namespace of its own (this kernel has no dummy or netem
modules), all up, IPv6 off so nothing talks on its own, each pair with a /30 and a permanent
neighbour so one datagram moves the counters of both ends.

Sides, interleaved and repeated (:mod:`benchmarks.harness`: medians, per-round ratios):

- ``netdash tick (idle)``: what the live engine does each tick, in-process and in steady state:
  ``LinkTracker.update(LinkReader.sample())``: one ``RTM_GETSTATS`` dump, the event socket
  drained, rates. No counter moved since the last tick, so the reader keeps every record.
- ``netdash tick (moving)``: the same after one datagram crossed every pair (untimed), so every
  veth's counters changed: the honest worst case, every record rebuilt and every rate computed.
- ``ip -s -j link``: as a process, spawned inside the lab like the tools of bench_connections.
- for information: ``read_counters`` alone, and ``read_links`` (RTM_GETLINK and RTM_GETADDR dumps
  plus one ethtool ioctl per link), the rare full read done at start and when links change.

Part ``ui``, the second target: the pane's refresh on the UI thread stays under 20 ms at 1,000
interfaces. The real :class:`~netdash.ui.app.NetdashApp` runs headless (120x40) on the
Interfaces tab over :class:`SyntheticLinks` (a container host: NICs, bridges, vethNNN, every
counter moving every tick, so every row changes), the tracker's whole history filled and the
graph on its 10-minute window. Each refresh takes the live app's path: the links thread's tick
in a worker thread, then ``LinksUpdated`` posted; what is timed is the UI thread's busy time from
the post to the end of the repaint that shows the table (``apply_frame``, the repaint and its
encoding), as :mod:`benchmarks.ui_bench` times the Connections pane. No root needed.

Run: ``python benchmarks/bench_links.py [--part tick,ui] [--pairs 500] [--repeat 5]
[--ui-interfaces 1000] [--ui-repeat 15] [--ui-history 600] [--json out.json]`` (root for tick).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.harness import CommandRunner, Comparison, Side, call_side, command_side, compare
from benchmarks.lab import Lab, LabError, add_namespace, run_in_netns, thread_in_netns
from benchmarks.report import machine_info, print_sides, write_results

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


class LinkLab(Lab):
    """``pairs`` veth pairs (2 x pairs interfaces + lo) in a new namespace; deleted on exit,
    whatever happened."""

    def __init__(self, pairs: int, netns_name: str | None = None) -> None:
        if pairs < 0:
            raise ValueError("pairs must be >= 0")
        self.pairs = pairs
        self.name = netns_name or f"nd-bench-links-{os.getpid()}-{next(_names)}"
        self._created = False
        self._sender: socket.socket | None = None

    @property
    def interfaces(self) -> int:
        return 2 * self.pairs + 1

    def _build(self) -> None:
        add_namespace(self.name)
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
        call_side("  read_links", netdash.reader.read_links, "RTM_GETLINK + RTM_GETADDR, ethtool"),
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


# ------------------------------------------------------------------------------------ ui part

UI_SIZE = (120, 40)
UI_TARGET_S = 0.020
UI_TARGET = "UI refresh < 20 ms"
#: Interfaces that are not veths in the synthetic host (a container host's usual suspects).
_FIXED_LINKS = ("lo", "eth0", "eth1", "docker0", "br-5f2c81e0a9d4")


#: Untimed ticks before the UI part: the tracker's whole history (10 minutes at 1 s).
HISTORY_TICKS = 600


class SyntheticLinks:
    """A links sampler for the UI part: a container host with ``count`` interfaces (lo, two NICs,
    two bridges, the rest vethNNN enslaved to them, addresses on some), every counter moving
    every tick by a different amount, so every row's rates change on every sample.

    Not a source (the tick part measures the real one): the UI part times what the UI thread
    does with a frame, and needs the same frame sizes on every run without a kernel lab.
    """

    def __init__(self, count: int, interval: float = 1.0, seed: int = 4) -> None:
        from netdash.model import LINK_COUNTER_NAMES

        if count < len(_FIXED_LINKS):
            raise ValueError(f"count must be >= {len(_FIXED_LINKS)}")
        self.links = tuple(self._link(i) for i in range(count))
        self.interval = interval
        self.taken_at = 1000.0
        self._random = random.Random(seed)
        self._totals = {link.ifindex: [0] * len(LINK_COUNTER_NAMES) for link in self.links}

    @staticmethod
    def _link(index: int) -> Any:
        from netdash.model import Link

        ifindex = index + 1
        if index < len(_FIXED_LINKS):
            name = _FIXED_LINKS[index]
            kind = ("loopback", "physical", "physical", "bridge", "bridge")[index]
            addresses = {
                "lo": ("127.0.0.1/8", "::1/128"),
                "eth0": ("192.0.2.10/24", "2001:db8::10/64", "fe80::5054:ff:fe12:3456/64"),
                "docker0": ("172.17.0.1/16",),
                "br-5f2c81e0a9d4": ("172.18.0.1/16",),
            }.get(name, ())
            return Link(
                ifindex,
                name,
                kind,
                "UNKNOWN" if name == "lo" else ("DOWN" if name == "eth1" else "UP"),
                name != "eth1",
                65536 if name == "lo" else 1500,
                None if name == "lo" else f"52:54:00:12:34:{index:02x}",
                ("LOOPBACK", "UP") if name == "lo" else ("BROADCAST", "MULTICAST", "UP"),
                speed_mbps=10000 if kind == "physical" else None,
                duplex="full" if kind == "physical" else None,
                addresses=addresses,
            )
        veth = index - len(_FIXED_LINKS)
        return Link(
            ifindex,
            f"veth{veth:x}{(veth * 2654435761) % 0xFFFFF:05x}",
            "veth",
            "UP",
            True,
            1500,
            f"02:42:ac:{veth >> 16 & 255:02x}:{veth >> 8 & 255:02x}:{veth & 255:02x}",
            ("BROADCAST", "MULTICAST", "UP", "LOWER_UP"),
            master="docker0" if veth % 3 else "br-5f2c81e0a9d4",
            speed_mbps=10000,
            duplex="full",
            speed_nominal=True,
            addresses=(f"fe80::42:acff:fe{veth >> 8 & 255:02x}:{veth & 255:02x}{veth % 7:x}/64",)
            if veth % 4 == 0
            else (),
        )

    def sample(self) -> Any:
        """The next tick: bytes and packets move on every link, errors and drops on a few."""
        from netdash.model import LinkCounters, LinkSample

        self.taken_at += self.interval
        draw = self._random.randrange
        counters = {}
        for ifindex, totals in self._totals.items():
            rx_packets, tx_packets = draw(1, 5000), draw(1, 5000)
            totals[0] += rx_packets
            totals[1] += tx_packets
            totals[2] += rx_packets * draw(60, 1500)
            totals[3] += tx_packets * draw(60, 1500)
            if ifindex % 97 == 0:  # a few links drop and fail now and then
                totals[6] += draw(0, 3)
                totals[4] += draw(0, 2)
            counters[ifindex] = LinkCounters(*totals)
        return LinkSample(self.links, counters, self.taken_at, self.taken_at)

    def close(self) -> None:
        pass


class _NoSockets:
    """The connections sampler the app requires; never called (autostart off)."""

    unix = False

    def sample(self) -> Any:
        raise RuntimeError("the links UI benchmark samples no sockets")

    def close(self) -> None:
        pass


async def run_ui(interfaces: int, repeat: int, history: int = HISTORY_TICKS) -> dict[str, Any]:
    """The real app headless on the Interfaces tab: the median UI-thread time of one
    LinksUpdated (``apply_frame`` and the repaint it causes), measured as ui_bench measures the
    Connections pane's refresh. The tracker first takes ``history`` untimed ticks and the graph
    shows its longest window, so the graph draws a full history as after ten minutes live."""
    from benchmarks.ui_bench import PaintProbe, _time_calls
    from netdash.model import HostInfo
    from netdash.ui.app import NetdashApp
    from netdash.ui.panes.interfaces import InterfacesPane
    from netdash.ui.widgets.rate_graph import WINDOWS

    links = SyntheticLinks(interfaces)
    host = HostInfo(hostname="bench", kernel="synthetic", netns="synthetic", is_root=True)
    app = NetdashApp(_NoSockets(), host, 1.0, autostart=False, links=links)
    for _ in range(history):
        app.link_tracker.update(links.sample())
    result: dict[str, Any] = {"interfaces": interfaces, "history": history}
    result.update(worker_s=[], busy_s=[], latency_s=[])
    async with app.run_test(size=UI_SIZE) as pilot:
        await pilot.press("2")
        pane = app.query_one(InterfacesPane)
        while pane.graph.window < max(WINDOWS):
            await pilot.press("z")
        probe = PaintProbe(app, pane.table)
        timed = {
            "InterfacesPane.apply_frame": _time_calls(pane, "apply_frame"),
            "VirtualTable.refresh_rows": _time_calls(pane.table, "refresh_rows"),
            "RateGraph.render": _time_calls(pane.graph, "render"),
        }
        result["parts_s"] = {name: [] for name in timed}
        for round_ in range(repeat + 2):  # two untimed: the table's first fill, then warm
            frame, worker = await _links_frame(app)
            await pilot.pause(0.15)
            for calls in timed.values():
                calls.clear()
            start = probe.arm()
            app._publish_links(frame)
            measured = await probe.measured(start)
            if measured is None:
                raise RuntimeError("the interfaces table never repainted after a frame")
            if round_ < 2:
                continue
            result["worker_s"].append(worker)
            result["latency_s"].append(measured[0])
            result["busy_s"].append(measured[1])
            for name, calls in timed.items():
                result["parts_s"][name].append(sum(calls))
        result["checks"] = ui_checks(app, interfaces)
        await pilot.press("q")
    result["busy_median_s"] = statistics.median(result["busy_s"])
    return result


async def _links_frame(app: Any) -> tuple[Any, float]:
    """The links thread's work for one tick, in a worker thread as the live app does it."""
    started = time.perf_counter()
    frame = await asyncio.to_thread(app._sample_links_in_thread)
    return frame, time.perf_counter() - started


def ui_checks(app: Any, interfaces: int) -> dict[str, Any]:
    """The pane shows what it was given: every interface, rates on the rows, a graph."""
    from netdash.ui.panes.interfaces import InterfacesPane

    pane = app.query_one(InterfacesPane)
    rows = list(pane.view)
    checks = {
        "rows": len(rows),
        "rows with a rate": sum(1 for row in rows if row.data[1] is not None),
        "graph of": pane.graph.name_shown,
        "graph points": len(pane.graph.history.times),
    }
    checks["ok"] = (
        checks["rows"] == interfaces
        and checks["rows with a rate"] == interfaces
        and bool(checks["graph of"])
    )
    return checks


def measure_ui(interfaces: int, repeat: int, history: int = HISTORY_TICKS) -> dict[str, Any]:
    return asyncio.run(run_ui(interfaces, repeat, history))


def print_ui_result(result: dict[str, Any]) -> None:
    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:9.2f} ms"

    print(
        f"\nInterfaces pane, UI thread, {result['interfaces']:,} interfaces, {UI_SIZE[0]}x"
        f"{UI_SIZE[1]}, {len(result['busy_s'])} refreshes, graph of {result['history']} ticks"
        " on its 10-minute window"
    )
    print(f"{'what':<34}{'median':>14}")
    print(
        f"{'UI thread busy (apply + repaint)':<34}{ms(result['busy_s']):>14}"
        f"  {UI_TARGET}: {'PASS' if result['busy_median_s'] < UI_TARGET_S else 'FAIL'}"
    )
    print(f"{'  post to repaint (latency)':<34}{ms(result['latency_s']):>14}")
    for name, values in result["parts_s"].items():
        print(f"{'  ' + name:<34}{ms(values):>14}")
    print(f"{'links thread: tracker tick':<34}{ms(result['worker_s']):>14}  (not the UI thread)")
    print(f"checks: {result['checks']}")


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
    print_sides(result["sides"])
    print("ratios (median of per-round ratios):")
    for name, value in result["ratios"].items():
        verdict = ""
        if "tick" in name:
            verdict = f"  {TARGET}: {'PASS' if value < 1 else 'FAIL'}"
        print(f"  {name:<36}{value:8.3f}x{verdict}")
    print(f"checks: {result['checks']}")


PARTS = ("tick", "ui")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500, help="veth pairs (2 interfaces each)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (>= 1)")
    parser.add_argument(
        "--part", default=",".join(PARTS), help="comma-separated: tick (root), ui (default both)"
    )
    parser.add_argument(
        "--ui-interfaces", type=int, default=1000, help="interfaces in the ui part (>= 5)"
    )
    parser.add_argument("--ui-repeat", type=int, default=15, help="refreshes timed in the ui part")
    parser.add_argument(
        "--ui-history",
        type=int,
        default=HISTORY_TICKS,
        help="untimed ticks before the ui part (the graph's history)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.pairs < 1 or args.ui_repeat < 1 or args.ui_history < 0:
        parser.error("--repeat, --ui-repeat and --pairs must be >= 1, --ui-history >= 0")
    if args.ui_interfaces < len(_FIXED_LINKS):
        parser.error(f"--ui-interfaces must be >= {len(_FIXED_LINKS)}")
    args.parts = [part.strip() for part in args.part.split(",") if part.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown or not args.parts:
        parser.error(f"--part takes {', '.join(PARTS)}; got {args.part!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if "tick" in args.parts and os.geteuid() != 0:
        print(
            "bench_links: the tick part needs root (it builds a network namespace);"
            " --part ui does not",
            file=sys.stderr,
        )
        return 2
    machine = machine_info()
    started = time.monotonic()
    results: dict[str, Any] = {}
    if "tick" in args.parts:
        progress(f"lab: {args.pairs:,} veth pairs")
        with LinkLab(args.pairs) as lab:
            progress(f"lab {lab.name} ready in {lab.setup_seconds:.1f} s")
            results["tick"] = measure(lab, args.repeat)
        print_result(results["tick"])
    if "ui" in args.parts:
        progress(
            f"ui: {args.ui_interfaces:,} interfaces, {args.ui_history} untimed ticks of history,"
            f" {args.ui_repeat} refreshes"
        )
        results["ui"] = measure_ui(args.ui_interfaces, args.ui_repeat, args.ui_history)
        print_ui_result(results["ui"])
    progress(f"done in {time.monotonic() - started:.0f} s")
    config = {key: value for key, value in vars(args).items() if key != "parts"}
    write_results(args.json, machine, config, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
