"""Parts (c) and (d): the UI thread's cost of one refresh, and key-press-to-repaint, at 100k rows.

The real :class:`netdash.ui.app.NetdashApp` runs headless (``App.run_test``, 120x40) on a
synthetic sampler (:mod:`benchmarks.synthetic`), and each refresh takes the live app's path: the
sampling thread's work (tracker, rows feed) runs in a worker thread, then the update is posted as
the poller posts it and the UI thread applies it and repaints.

What is measured, on the UI thread (the asyncio loop that runs the app):

* ``busy``: wall time the loop spent *not* waiting in its selector between the post (or the key)
  and the end of the repaint that showed the table. This is the time the UI thread was blocked,
  the number the 60 ms and 50 ms targets are about.
* ``latency``: wall time from the post (or the key) to the end of that repaint; it also includes
  the wait for Textual's next frame (up to 1/60 s) and the pilot's own bookkeeping.

A headless app skips the final step of a repaint, encoding the changed lines as terminal escape
sequences; the probe does that encoding itself (``render_segments``), so its cost is counted as
it would be in a terminal. The repaint is recognised as the first frame after the post in which
the table drew a line, so the status line's clock (repainted every second) is not mistaken for it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.synthetic import SyntheticSockets

SIZE = (120, 40)
#: Keys in an order where each one changes what the table shows, from the state every round
#: starts in (sorted by state, cursor on the first row): "e" hides the listeners at the top and
#: "a" brings them back. Several are expensive at 100k rows: sort, reverse, view filter, typing
#: a filter, Esc widening it again.
KEYS: tuple[str, ...] = (
    "down",
    "pagedown",
    "end",
    "home",
    "e",
    "a",
    "s",
    "S",
    "slash",
    "5",
    "escape",
)
PAINT_TIMEOUT = 2.0


@dataclass
class UiResult:
    rows: int
    load: dict[str, float] = field(default_factory=dict)
    worker_s: list[float] = field(default_factory=list)  # sampling thread: tracker + rows feed
    #: Where a refresh's UI time goes: pane.apply_update and, inside it, the view and the table.
    parts_s: dict[str, list[float]] = field(default_factory=dict)
    refresh_busy_s: list[float] = field(default_factory=list)
    refresh_latency_s: list[float] = field(default_factory=list)
    keys: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: Keys after which the table did not repaint within PAINT_TIMEOUT (nothing it shows changed,
    #: or it is stuck): no latency is recorded for that press.
    missed: list[str] = field(default_factory=list)

    def refresh_busy_median(self) -> float | None:
        return statistics.median(self.refresh_busy_s) if self.refresh_busy_s else None

    def key_medians(self) -> dict[str, tuple[float, float]]:
        """key -> (median latency, median busy)."""
        return {
            key: (statistics.median(m["latency_s"]), statistics.median(m["busy_s"]))
            for key, m in self.keys.items()
            if m["latency_s"]
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "load": self.load,
            "worker_s": self.worker_s,
            "parts_s": self.parts_s,
            "refresh_busy_s": self.refresh_busy_s,
            "refresh_latency_s": self.refresh_latency_s,
            "keys": self.keys,
            "missed": self.missed,
        }


class PaintProbe:
    """Marks each frame in which the table painted, with the loop's idle time at that moment."""

    def __init__(self, app: Any, table: Any) -> None:
        self.idle = 0.0
        self._table_painted = False
        self._mark: tuple[float, float] | None = None
        self._event = asyncio.Event()
        self._wrap_selector()
        self._wrap_display(app)
        self._wrap_render_line(table)

    def _wrap_selector(self) -> None:
        selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
        select = selector.select

        def timed_select(timeout: float | None = None) -> Any:
            started = time.perf_counter()
            try:
                return select(timeout)
            finally:
                self.idle += time.perf_counter() - started

        selector.select = timed_select

    def _wrap_display(self, app: Any) -> None:
        display = app._display

        def probed_display(screen: Any, renderable: Any) -> None:
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)  # what a terminal would be sent
            display(screen, renderable)
            if renderable is not None and self._table_painted:
                self._table_painted = False
                self._mark = (time.perf_counter(), self.idle)
                self._event.set()

        app._display = probed_display

    def _wrap_render_line(self, table: Any) -> None:
        render_line = table.render_line

        def probed_render_line(y: int) -> Any:
            self._table_painted = True
            return render_line(y)

        table.render_line = probed_render_line

    def arm(self) -> tuple[float, float]:
        """Forget earlier frames; returns (now, idle so far) to measure from."""
        self._event.clear()
        self._mark = None
        self._table_painted = False
        return time.perf_counter(), self.idle

    async def measured(self, start: tuple[float, float]) -> tuple[float, float] | None:
        """(latency, busy) of the first table frame since ``start``; None if none came."""
        try:
            await asyncio.wait_for(self._event.wait(), PAINT_TIMEOUT)
        except TimeoutError:
            return None
        assert self._mark is not None
        at, idle = self._mark
        latency = at - start[0]
        return latency, latency - (idle - start[1])


async def _quiet(pilot: Any, seconds: float = 0.15) -> None:
    await pilot.pause(seconds)


async def run_ui(rows: int, repeat: int, parts: Sequence[str]) -> UiResult:
    """Load ``rows`` rows, then measure key presses (``keys``) and refreshes (``ui``)."""
    from netdash.model import HostInfo
    from netdash.ui.app import NetdashApp
    from netdash.ui.panes.connections import ConnectionsPane

    synthetic = SyntheticSockets(rows)
    sampler = _Sampler(synthetic.next_sample)
    host = HostInfo(hostname="bench", kernel="synthetic", netns="synthetic", is_root=True)
    app = NetdashApp(sampler, host, 1.0, autostart=False)
    result = UiResult(rows)
    async with app.run_test(size=SIZE) as pilot:
        pane = app.query_one(ConnectionsPane)
        probe = PaintProbe(app, pane.table)
        timed = {
            "ConnectionsPane.apply_update": _time_calls(pane, "apply_update"),
            "TableView.apply": _time_calls(pane.view, "apply"),
            "VirtualTable.refresh_rows": _time_calls(pane.table, "refresh_rows"),
        }
        await _load(app, pilot, probe, result)
        if "keys" in parts:
            await _keys(app, pilot, probe, repeat, result)
            await pilot.press("home")
        if "ui" in parts:
            await _refreshes(app, pilot, probe, repeat, result, timed)
        await pilot.press("q")
    return result


class _Sampler:
    """What NetdashApp needs from a sampler, over the synthetic source."""

    def __init__(self, sample: Callable[[], Any]) -> None:
        self.sample = sample
        self.unix = False

    def close(self) -> None:
        pass


def _time_calls(obj: Any, name: str) -> list[float]:
    """Record the wall time of every call of ``obj.name`` (an instance-level wrapper)."""
    times: list[float] = []
    method = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - started)

    setattr(obj, name, timed)
    return times


async def _next_update(app: Any) -> tuple[Any, float]:
    """The sampling thread's work for one tick, in a worker thread as the live app does it."""
    started = time.perf_counter()
    update = await asyncio.to_thread(app._sample_in_thread)
    return update, time.perf_counter() - started


async def _load(app: Any, pilot: Any, probe: PaintProbe, result: UiResult) -> None:
    update, worker = await _next_update(app)
    start = probe.arm()
    app._publish(update)
    measured = await probe.measured(start)
    if measured is None:
        raise RuntimeError("the table never painted the first sample")
    result.load = {"worker_s": worker, "latency_s": measured[0], "busy_s": measured[1]}
    await _quiet(pilot, 0.3)


async def _keys(app: Any, pilot: Any, probe: PaintProbe, repeat: int, result: UiResult) -> None:
    from netdash.ui.panes.connections import ConnectionsPane

    for key in KEYS:
        result.keys[key] = {"latency_s": [], "busy_s": []}
    table = app.query_one(ConnectionsPane).table
    for _ in range(repeat):
        table.sort_by("state")  # the round's starting state (not measured)
        table.move_cursor_to(0)
        for key in KEYS:
            await _quiet(pilot)
            start = probe.arm()
            await pilot.press(key)
            measured = await probe.measured(start)
            if measured is None:
                result.missed.append(key)
                continue
            result.keys[key]["latency_s"].append(measured[0])
            result.keys[key]["busy_s"].append(measured[1])


async def _refreshes(
    app: Any,
    pilot: Any,
    probe: PaintProbe,
    repeat: int,
    result: UiResult,
    timed: dict[str, list[float]],
) -> None:
    from netdash.ui.panes.connections import ConnectionsPane

    highlight = app.query_one(ConnectionsPane).table.new_row_seconds
    result.parts_s = {name: [] for name in timed}
    last = 0.0
    for _ in range(repeat):
        update, worker = await _next_update(app)
        result.worker_s.append(worker)
        # New rows are highlighted for `highlight` seconds; let the previous highlight expire so
        # its repaint is not taken for this refresh's.
        wait = last + highlight + 0.25 - time.perf_counter()
        await _quiet(pilot, max(wait, 0.15))
        for calls in timed.values():
            calls.clear()
        start = probe.arm()
        app._publish(update)
        measured = await probe.measured(start)
        last = time.perf_counter()
        if measured is None:
            raise RuntimeError("the table never repainted after a refresh")
        result.refresh_latency_s.append(measured[0])
        result.refresh_busy_s.append(measured[1])
        for name, calls in timed.items():
            result.parts_s[name].append(sum(calls))


def measure_ui(rows: int, repeat: int, parts: Sequence[str]) -> UiResult:
    return asyncio.run(run_ui(rows, repeat, parts))
