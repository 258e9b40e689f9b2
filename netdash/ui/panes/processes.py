"""The Processes tab: who is behind the traffic, and are they healthy?

Processes that own sockets (all of them with ``a``), with their sockets by state, TCP bytes/s,
CPU, memory and fds against the limit; a tree view (``t``); and the cgroups ranked like
systemd-cgtop plus the network (``c``). Enter opens a process's Process screen, the hub of the
drill-down. The pane renders :class:`~netdash.engine_procs.ProcessesFrame`\\ s handed to it by the
app; it reads nothing itself.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import ContentSwitcher, Input, Static

from netdash.engine_procs import CgroupRow, ProcessesFrame
from netdash.model import Proc
from netdash.query import QueryError
from netdash.textsafe import visible
from netdash.ui.panes.process_rows import (
    CGROUP_COLUMNS,
    PROCESS_COLUMNS,
    PROCESS_INDEX,
    cgroup_row,
    compile_process_filter,
    fd_share,
    frame_rows,
)
from netdash.ui.tableview import Row, RowFilter, TableView
from netdash.ui.widgets.virtual_table import VirtualTable


def summary_text(
    frame: ProcessesFrame | None, *, everyone: bool, tree: bool, error: str | None
) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if frame is None:
        text.append("waiting for the first sample of the processes", style="yellow")
        return text
    procs = frame.sample.procs
    zombies = sum(1 for proc in procs if proc.zombie)
    crowded = sum(1 for proc in procs if (fd_share(proc) or 0.0) >= 0.8)
    owning = sum(1 for proc in procs if frame.socket_total(proc.pid))
    text.append(f"{len(procs)} processes", style="bold")
    text.append(f" · {owning} with sockets")
    plural = "s" if zombies != 1 else ""
    text.append(f" · {zombies} zombie{plural}", style="bold red" if zombies else "dim")
    if crowded:
        text.append(f" · {crowded} near their fd limit", style="bold yellow")
    text.append(" · showing " + ("all" if everyone else "socket owners"), style="dim")
    if tree:
        text.append(" · tree", style="dim")
    if error:
        text.append(f" · {visible(error)}", style="bold red")
    return text


def cgroup_text_filter(text: str) -> RowFilter | None:
    """The cgroups table keeps the filter's bare words (its field terms are about processes)."""
    words = [w.lower() for w in text.split() if ":" not in w and not w.startswith("!")]
    return (lambda row: all(w in row.search_text for w in words)) if words else None


class ProcessesPane(Vertical):
    """Summary line, filter box, and the processes or cgroups table."""

    BINDINGS = [
        Binding("s", "next_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("a", "toggle_all", "All/owners"),
        Binding("t", "toggle_tree", "Tree"),
        Binding("c", "toggle_cgroups", "Cgroups"),
    ]

    class OpenProcess(Message):
        """Enter on a process: the app opens its Process screen."""

        def __init__(self, proc: Proc) -> None:
            super().__init__()
            self.proc = proc

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = TableView(sort_column=PROCESS_INDEX["cpu"], reverse=True)
        self.cgroup_view = TableView(sort_column=3, reverse=True)  # by CPU, like systemd-cgtop
        self.frame: ProcessesFrame | None = None
        self.cgroups: list[CgroupRow] = []
        self.everyone = False
        self.tree_mode = False
        self.error: str | None = None
        self._sorted_before_tree: tuple[int | None, bool] = (PROCESS_INDEX["cpu"], True)

    def compose(self) -> ComposeResult:
        yield Static("", id="procs-summary")
        yield Input(placeholder="filter: nginx  pid:1234  user:www-data  state:Z  unit:nginx",
                    id="procs-filter")  # fmt: skip
        with ContentSwitcher(initial="procs", id="procs-views"):
            yield VirtualTable(PROCESS_COLUMNS, id="procs")
            yield VirtualTable(CGROUP_COLUMNS, id="cgroups", activatable=False)

    def on_mount(self) -> None:
        self.table.set_view(self.view)
        self.query_one("#cgroups", VirtualTable).set_view(self.cgroup_view)
        self.query_one("#procs-filter", Input).display = False
        self._show_summary()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#procs", VirtualTable)

    @property
    def active_table(self) -> VirtualTable:
        current = self.query_one(ContentSwitcher).current or "procs"
        return self.query_one(f"#{current}", VirtualTable)

    # -- data ----------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[bool, bool]:
        """What the rows depend on besides the frame: (all processes, tree). The sampling
        thread reads it to build the rows there, off the UI thread (2,000 rows: ~40 ms)."""
        return (self.everyone, self.tree_mode)

    def apply_frame(
        self,
        frame: ProcessesFrame,
        cgroups: list[CgroupRow] | None = None,
        rows: list[Row] | None = None,
        shape: tuple[bool, bool] | None = None,
    ) -> None:
        """Show a frame; ``rows`` built elsewhere for ``shape`` are used if the shape still
        holds (a toggle pressed meanwhile rebuilds them here)."""
        self.frame, self.error = frame, None
        if rows is None or shape != self.shape:
            rows = frame_rows(frame, everyone=self.everyone, tree=self.tree_mode)
        self.view.replace_all(rows)
        self.table.refresh_rows()
        if cgroups is not None:
            self.cgroups = cgroups
            self.cgroup_view.replace_all(cgroup_row(row) for row in cgroups)
            self.query_one("#cgroups", VirtualTable).refresh_rows()
        self._show_summary()

    def show_error(self, error: str) -> None:
        self.error = error
        self._show_summary()

    def _show_summary(self) -> None:
        text = summary_text(
            self.frame, everyone=self.everyone, tree=self.tree_mode, error=self.error
        )
        self.query_one("#procs-summary", Static).update(text, layout=False)

    def _rebuild(self) -> None:
        if self.frame is not None:
            self.apply_frame(self.frame)
        else:
            self._show_summary()

    # -- keys ----------------------------------------------------------------------------------

    def action_toggle_all(self) -> None:
        self.everyone = not self.everyone
        self._rebuild()

    def action_toggle_tree(self) -> None:
        """The tree shows parents before children in pid order: sorting is suspended meanwhile."""
        self.tree_mode = not self.tree_mode
        if self.tree_mode:
            self._sorted_before_tree = (self.view.sort_column, self.view.reverse)
            self.view.set_sort(None)
        self._rebuild()
        if not self.tree_mode:
            column, reverse = self._sorted_before_tree
            self.view.set_sort(column, reverse)
            self.table.refresh_rows()

    def action_toggle_cgroups(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "cgroups" if switcher.current == "procs" else "procs"
        self.active_table.focus()
        self.refresh_bindings()

    def action_next_sort(self) -> None:
        self.active_table.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.active_table.reverse_sort()

    def action_filter(self) -> None:
        box = self.query_one("#procs-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#procs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        try:
            check = compile_process_filter(event.value)
        except QueryError as err:
            self.notify(str(err), severity="warning", timeout=3)
            return
        self.view.set_filter(check)
        self.cgroup_view.set_filter(None if check is None else cgroup_text_filter(event.value))
        self.table.refresh_rows()
        self.query_one("#cgroups", VirtualTable).refresh_rows()

    @on(Input.Submitted, "#procs-filter")
    def _filter_submitted(self) -> None:
        box = self.query_one("#procs-filter", Input)
        box.display = bool(box.value)
        self.active_table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#procs-filter", Input)
        if not box.display and not box.value:
            raise SkipAction()
        box.value = ""
        box.display = False
        self.active_table.focus()

    @on(VirtualTable.RowActivated, "#procs")
    def _enter(self, event: VirtualTable.RowActivated) -> None:
        event.stop()
        row = self.view.get(event.key)
        if row is not None:
            self.post_message(self.OpenProcess(row.data))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("toggle_all", "toggle_tree"):
            return self.query_one(ContentSwitcher).current == "procs"
        return True
