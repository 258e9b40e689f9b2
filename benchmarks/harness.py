"""Fair timing on a shared, noisy machine: each tool as its own process, interleaved, medians.

Rules (LAB.md §7, and what we learnt applying it):

* An external tool is timed as its own process, and its CPU comes from ``os.wait4`` on *that*
  child, not from ``RUSAGE_CHILDREN`` (which sums every child the harness ever had).
* Peak RSS is the exception: ``ru_maxrss`` is a high-water mark that survives exec(), and at
  exec() the kernel folds in the RSS of the address space being replaced (``exec_mmap`` calls
  ``setmax_mm_hiwater_rss``). A child forked or vforked from a benchmark process that holds
  300 MB therefore reports 300 MB for ``/bin/true``. The peak is taken from GNU ``time -f %M``
  instead: ``time`` is a small C program, it forks the tool itself, and reports the tool's own
  ``wait4`` rusage. Without GNU time, peak RSS is reported as unknown rather than wrong.
* Both sides run inside the lab namespace the same way: the spawning thread setns()es into it,
  spawns (vfork, cheap even from a big parent), and setns()es back (``lab.thread_in_netns``).
* Sides run interleaved (A B A B ...), after warm-up rounds that are thrown away, at least five
  times; we quote medians and the median of the per-round ratios, which survives a noisy
  neighbour far better than a ratio of two medians taken minutes apart.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.lab import thread_in_netns


class CommandError(RuntimeError):
    """A timed command failed: timing a failure would compare nothing."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run: wall seconds, CPU seconds (user+sys), peak RSS in KiB (None when unknown)."""

    wall_s: float
    cpu_s: float | None = None
    maxrss_kib: int | None = None
    gc_s: float | None = None  # in-process calls: time the cyclic GC ran inside the call


def find_gnu_time() -> str | None:
    """Path of GNU time, or None (busybox and shell builtins cannot report a child's peak)."""
    path = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if path is None:
        return None
    probe = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU" in probe.stdout + probe.stderr else None


class CommandRunner:
    """Runs commands inside a namespace and measures each as its own process."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.gnu_time = find_gnu_time()
        self._dir = tempfile.TemporaryDirectory(prefix="nd-bench-")
        self._report = Path(self._dir.name) / "time.out"
        self._stderr = Path(self._dir.name) / "stderr"

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> CommandRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, argv: Sequence[str], timeout: float = 300.0) -> Measurement:
        """Run ``argv`` with stdout to /dev/null; wall from spawn to reaping, CPU from wait4."""
        wrapped = list(argv)
        if self.gnu_time:
            wrapped = [self.gnu_time, "-f", "%M", "-o", str(self._report), "--", *argv]
        with open(self._stderr, "wb") as err:
            started = time.perf_counter()
            with thread_in_netns(self.netns):
                child = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=err)
            status, usage = _wait4(child, timeout)
            wall = time.perf_counter() - started
        if status != 0:
            tail = self._stderr.read_text(errors="replace").strip().splitlines()[-3:]
            raise CommandError(f"{' '.join(argv)} exited with {status}: {' / '.join(tail)}")
        cpu = usage.ru_utime + usage.ru_stime  # includes the tool, which `time` waited for
        return Measurement(wall, cpu, self._peak_kib())

    def _peak_kib(self) -> int | None:
        if not self.gnu_time:
            return None
        lines = self._report.read_text().split()
        return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _wait4(child: subprocess.Popen[bytes], timeout: float) -> tuple[int, os.struct_rusage]:
    """Reap ``child`` with its own rusage (blocking: no polling noise); kill it on ``timeout``."""
    watchdog = threading.Timer(timeout, child.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    finally:
        watchdog.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)  # Popen must not reap it again
    return child.returncode, usage


# ------------------------------------------------------------------------------------- sides


@dataclass(frozen=True)
class Side:
    """One contender: a name and how to measure one run of it."""

    name: str
    measure: Callable[[], Measurement]
    label: str = ""  # what exactly runs, for the report


def command_side(
    name: str, runner: CommandRunner, *commands: Sequence[str], label: str = ""
) -> Side:
    """Commands run back to back count as one run: walls and CPU add up, the peak is the max."""

    def measure() -> Measurement:
        runs = [runner.run(argv) for argv in commands]
        peaks = [r.maxrss_kib for r in runs]
        return Measurement(
            wall_s=sum(r.wall_s for r in runs),
            cpu_s=sum(r.cpu_s or 0.0 for r in runs),
            maxrss_kib=None if None in peaks else max(p for p in peaks if p is not None),
        )

    text = label or " + ".join(" ".join(argv) for argv in commands)
    return Side(name, measure, text)


class GcClock:
    """Total time spent in Python's cyclic garbage collector, from ``gc.callbacks``.

    An in-process call pays for a full collection whenever its allocations happen to trigger
    one, and a process holding a million objects (the live app's rows) makes that collection
    cost hundreds of milliseconds: reported beside the wall time so a slow run can be told apart
    from an unlucky one. It stays in the wall time: the live app pays it too.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


_gc_clock: GcClock | None = None


def call_side(name: str, fn: Callable[[], object], label: str = "") -> Side:
    """An in-process call: wall clock, this process's CPU (all threads) and GC time around it."""
    global _gc_clock
    if _gc_clock is None:
        _gc_clock = GcClock()
    clock = _gc_clock

    def measure() -> Measurement:
        gc0, cpu0, wall0 = clock.total, time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return Measurement(wall, cpu, gc_s=clock.total - gc0)

    return Side(name, measure, label or name)


# --------------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class SideStats:
    name: str
    label: str
    runs: tuple[Measurement, ...]

    @property
    def wall_median(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def cpu_median(self) -> float | None:
        cpus = [r.cpu_s for r in self.runs if r.cpu_s is not None]
        return statistics.median(cpus) if cpus else None

    @property
    def gc_median(self) -> float | None:
        spent = [r.gc_s for r in self.runs if r.gc_s is not None]
        return statistics.median(spent) if spent else None

    @property
    def peak_rss_kib(self) -> int | None:
        peaks = [r.maxrss_kib for r in self.runs if r.maxrss_kib is not None]
        return max(peaks) if peaks else None

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "wall_s": [r.wall_s for r in self.runs],
            "cpu_s": [r.cpu_s for r in self.runs],
            "maxrss_kib": [r.maxrss_kib for r in self.runs],
            "gc_s": [r.gc_s for r in self.runs],
            "wall_median_s": self.wall_median,
            "cpu_median_s": self.cpu_median,
            "peak_rss_kib": self.peak_rss_kib,
        }


@dataclass(frozen=True)
class Comparison:
    sides: dict[str, SideStats] = field(default_factory=dict)

    def ratio(self, name: str, *reference: str) -> float:
        """Median over rounds of wall(name) / wall(reference), both measured in the same round.

        Several reference names are summed per round: `ss -tanupi` + `ss -xap` is what a user
        runs to see what one `netdash dump` shows.
        """
        rounds = len(self.sides[name].runs)
        ratios = [
            self.sides[name].runs[i].wall_s
            / sum(self.sides[ref].runs[i].wall_s for ref in reference)
            for i in range(rounds)
        ]
        return statistics.median(ratios)


def compare(sides: Sequence[Side], repeat: int = 5, warmup: int = 1) -> Comparison:
    """Measure every side ``repeat`` times, interleaved (A B A B ...), after ``warmup`` rounds."""
    for _ in range(warmup):
        for side in sides:
            side.measure()
    runs: dict[str, list[Measurement]] = {side.name: [] for side in sides}
    for _ in range(repeat):
        for side in sides:
            runs[side.name].append(side.measure())
    return Comparison(
        {side.name: SideStats(side.name, side.label, tuple(runs[side.name])) for side in sides}
    )
