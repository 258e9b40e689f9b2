"""A process's cgroups in every hierarchy: unit, container, memory against limit, CPU, pids.

Reached with ``u`` from the Process screen. The groups are read in a thread (the cgroup files
are small, but a hung filesystem must not freeze the screen); what a hierarchy does not offer is
said in words, as the source reports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from netdash.model import CgroupInfo
from netdash.textsafe import visible
from netdash.ui.format import human_bytes
from netdash.ui.widgets.breadcrumb import Breadcrumb


def cgroup_table(groups: Sequence[CgroupInfo]) -> Table:
    """One block per hierarchy: path, unit/container, and each counter it has."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for info in groups:
        table.add_row(Text(info.hierarchy, style="bold"), Text(visible(info.path), style="bold"))
        if info.unit:
            table.add_row("unit", Text(visible(info.unit)))
        if info.container:
            table.add_row("container", Text(visible(info.container)))
        table.add_row("processes", str(info.procs))
        if info.memory_current is not None:
            limit = human_bytes(info.memory_limit) if info.memory_limit is not None else "no limit"
            table.add_row("memory", f"{human_bytes(info.memory_current)} of {limit}")
        if info.cpu_usage_usec is not None:
            table.add_row("cpu used", f"{info.cpu_usage_usec / 1e6:,.1f} s")
        if info.cpu_throttled_usec is not None:
            table.add_row("cpu throttled", f"{info.cpu_throttled_usec / 1e6:,.3f} s")
        if info.pids_current is not None:
            limit = str(info.pids_limit) if info.pids_limit is not None else "no limit"
            table.add_row("pids", f"{info.pids_current} of {limit}")
        for reason in info.missing:
            table.add_row("", Text(visible(reason), style="dim"))
        table.add_row("", "")
    return table


class CgroupScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("u", "dismiss", show=False)]
    DEFAULT_CSS = """
    CgroupScreen { align: center middle; }
    #cgroup-body {
        width: 90%; max-width: 110; height: 80%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, pid: int, trail: Sequence[str]) -> None:
        super().__init__()
        self.pid = pid
        self.trail = (*trail, "cgroups")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="cgroup-body"):
            yield Breadcrumb(self.trail)
            yield Static(Text("reading the cgroups…", style="dim"), id="cgroup-text")

    def on_mount(self) -> None:
        self._read()

    @work(thread=True, exclusive=True)
    def _read(self) -> None:
        from netdash.sources.cgroups import CgroupReader

        try:
            groups = CgroupReader().read_process(self.pid)
        except Exception as err:  # gone, or no cgroup filesystem here: said, not raised
            message = Text(f"cgroups of {self.pid}: {err}", style="bold red")
            self.app.call_from_thread(self._show, message)
            return
        body = cgroup_table(groups) if groups else Text("no cgroup found", style="yellow")
        self.app.call_from_thread(self._show, body)

    def _show(self, body: Table | Text) -> None:
        self.query_one("#cgroup-text", Static).update(body)
