"""Processes joined with their sockets and traffic, and cgroups ranked like systemd-cgtop.

No Textual here. The Processes tab asks "who is behind the traffic, and are they healthy?": a
process's CPU, memory and fds come from the processes source, its sockets by state from the
latest socket sample's owner map, its TCP bytes/s from the talkers ranking; a cgroup sums its
processes and adds what its own files say (memory against limit, CPU from usage deltas).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netdash.engine import ZERO_RATE, ByteRate
from netdash.model import CgroupInfo, Proc, ProcessSample
from netdash.talkers import TalkersFrame

#: The socket states the pane counts in columns of their own (the rest go in the total).
COUNTED_STATES: tuple[str, ...] = ("ESTABLISHED", "LISTEN", "CLOSE_WAIT")


def process_rates(talkers: TalkersFrame | None) -> dict[int, ByteRate]:
    """pid → TCP payload bytes/s of the last tick (the talkers' per-process ranking)."""
    if talkers is None:
        return {}
    return {
        talker.process.pid: talker.rate
        for talker in talkers.processes
        if talker.process is not None
    }


@dataclass(frozen=True)
class ProcessesFrame:
    """One moment of the Processes tab: processes, their sockets (pid → {TCP state: n, "udp":
    n, "unix": n}, from :func:`netdash.sources.processes.socket_counts`) and TCP traffic."""

    sample: ProcessSample
    sockets: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    rates: Mapping[int, ByteRate] = field(default_factory=dict)

    def socket_total(self, pid: int) -> int:
        return sum(self.sockets.get(pid, {}).values())

    def rate(self, pid: int) -> ByteRate:
        return self.rates.get(pid, ZERO_RATE)


def tree_order(procs: Sequence[Proc]) -> list[tuple[Proc, int, bool]]:
    """Processes parent before children, each with its depth and whether it is the last child
    of its parent (for ``├─``/``└─``); children by pid. A process whose parent is not in the
    list (pid 1's parent 0, a filtered-out parent) is a root."""
    by_pid = {proc.pid: proc for proc in procs}
    children: dict[int, list[Proc]] = {}
    roots: list[Proc] = []
    for proc in sorted(procs, key=lambda p: p.pid):
        if proc.ppid in by_pid and proc.ppid != proc.pid:
            children.setdefault(proc.ppid, []).append(proc)
        else:
            roots.append(proc)
    ordered: list[tuple[Proc, int, bool]] = []
    stack: list[tuple[Proc, int, bool]] = [
        (root, 0, index == len(roots) - 1) for index, root in reversed(list(enumerate(roots)))
    ]
    seen: set[int] = set()
    while stack:
        proc, depth, last = stack.pop()
        if proc.pid in seen:  # a cycle cannot happen in the kernel's tree, but a torn read can
            continue
        seen.add(proc.pid)
        ordered.append((proc, depth, last))
        kids = children.get(proc.pid, [])
        stack.extend(
            (kid, depth + 1, i == len(kids) - 1) for i, kid in reversed(list(enumerate(kids)))
        )
    return ordered


# ------------------------------------------------------------------------------------ cgroups


@dataclass(frozen=True, slots=True)
class CgroupRow:
    """A cgroup with its CPU use (from usage deltas), its processes and their sockets/traffic."""

    info: CgroupInfo
    cpu_percent: float | None  # of one core, since the previous sample; None at first
    procs: int
    sockets: int
    rate: ByteRate


class CgroupTracker:
    """CPU % of each cgroup from ``cpu_usage_usec`` deltas between samples."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[int, float]] = {}

    def update(
        self,
        groups: Iterable[CgroupInfo],
        at: float,
        frame: ProcessesFrame | None,
    ) -> list[CgroupRow]:
        members = _members(frame)
        rows: list[CgroupRow] = []
        seen: dict[tuple[str, str], tuple[int, float]] = {}
        for info in groups:
            key = (info.hierarchy, info.path)
            cpu = None
            if info.cpu_usage_usec is not None:
                before = self._last.get(key)
                if before is not None and at > before[1] and info.cpu_usage_usec >= before[0]:
                    cpu = (info.cpu_usage_usec - before[0]) / 1e6 / (at - before[1]) * 100.0
                seen[key] = (info.cpu_usage_usec, at)
            pids = members.get(key, ())
            rx = sum(frame.rate(pid).rx for pid in pids) if frame is not None else 0.0
            tx = sum(frame.rate(pid).tx for pid in pids) if frame is not None else 0.0
            sockets = sum(frame.socket_total(pid) for pid in pids) if frame is not None else 0
            rows.append(CgroupRow(info, cpu, info.procs, sockets, ByteRate(rx, tx)))
        self._last = seen
        return rows


def _members(frame: ProcessesFrame | None) -> dict[tuple[str, str], list[int]]:
    """(hierarchy, path) → pids, from each process's unified path and v1 paths."""
    members: dict[tuple[str, str], list[int]] = {}
    if frame is None:
        return members
    for proc in frame.sample.procs:
        if proc.cgroup is not None:
            members.setdefault(("v2", proc.cgroup), []).append(proc.pid)
        for controllers, path in proc.cgroups_v1.items():
            members.setdefault((controllers, path), []).append(proc.pid)
    return members
