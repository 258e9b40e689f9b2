"""The Process screen: who owns the socket, and every socket it owns, live.

Opened with Enter on a socket. Process facts come from a :class:`ProcessWatcher` polled in its own
thread; the socket table reuses the Connections pane's rows (already built by the sampler) through
a second :class:`TableView` filtered to this pid, so nothing is formatted twice. Esc pops the
screen, and the Connections pane underneath is exactly as the user left it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from netdash.engine import Poller
from netdash.model import ProcessInfo
from netdash.sources.process import ProcessWatcher
from netdash.textsafe import visible
from netdash.ui.format import clock_time, duration, human_bytes
from netdash.ui.messages import ProcessSampled
from netdash.ui.panes.connection_rows import (
    COLUMN_INDEX,
    COLUMNS,
    SORT_KEYS,
    ConnectionsUpdate,
    ConnRow,
)
from netdash.ui.screens.cgroup import CgroupScreen
from netdash.ui.screens.stack import offer_stack_dump
from netdash.ui.tableview import TableView
from netdash.ui.widgets.breadcrumb import Breadcrumb, process_step
from netdash.ui.widgets.virtual_table import VirtualTable

PROCESS_INTERVAL = 1.0


def owned_by(pid: int) -> Callable[[ConnRow], bool]:
    def keep(row: ConnRow) -> bool:
        return any(owner.pid == pid for owner in row.owners)

    return keep


def owned_rows(rows: Iterable[ConnRow], pid: int) -> list[ConnRow]:
    """The rows ``pid`` holds a descriptor on (one owner is the common case: tested first)."""
    return [
        row
        for row in rows
        if (owners := row.owners)
        and (owners[0].pid == pid or any(owner.pid == pid for owner in owners[1:]))
    ]


def process_rows(info: ProcessInfo) -> list[tuple[str, Text]]:
    """The facts an SRE checks first, in that order; permission gaps said as such."""

    def value(text: str | None, field: str) -> Text:
        if text is not None:
            return Text(visible(text))
        if field in info.denied:
            return Text("needs root", style="italic yellow")
        return Text("-", style="dim")

    fds = "-"
    fd_style = ""
    if info.fds is not None:
        fds = str(info.fds)
        if info.fd_soft_limit:
            used = info.fds / info.fd_soft_limit
            fds += f" of {info.fd_soft_limit} (soft), {info.fd_hard_limit} (hard) — {used:.0%}"
            fd_style = "bold red" if used > 0.9 else ("bold yellow" if used > 0.7 else "")
    age = f" ({duration(time.time() - info.start_time)} ago)" if info.start_time else ""
    state_style = "bold red" if info.state == "zombie" else ""
    cmdline = " ".join(info.cmdline) if info.cmdline is not None else None
    cpu = f"{info.cpu_percent:.1f}%" if info.cpu_percent is not None else "measuring…"
    return [
        ("pid", Text(f"{info.pid}   parent {info.ppid if info.ppid is not None else '-'}")),
        ("command", Text(visible(info.comm), style="bold")),
        ("user", value(info.user if info.user else None, "user")),
        ("state", Text(info.state or "-", style=state_style)),
        ("started", Text(clock_time(info.start_time) + age)),
        ("command line", value(cmdline, "cmdline")),
        ("executable", value(info.exe, "exe")),
        ("cwd", value(info.cwd, "cwd")),
        ("threads", Text(str(info.threads) if info.threads is not None else "-")),
        ("open fds", Text(fds, style=fd_style) if info.fds is not None else value(None, "fds")),
        ("cpu", Text(cpu)),
        ("rss", Text(human_bytes(info.rss) if info.rss is not None else "-")),
        ("cgroup", value(info.cgroup, "cgroup")),
    ]


class ProcessScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "next_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("u", "cgroups", "Unit/cgroups"),
        Binding("j", "journal", "Journal"),
        Binding("f", "firewall", "Firewall"),
        Binding("k", "stack", "Stack (py-spy)"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(
        self,
        pid: int,
        connections: TableView,
        *,
        live: bool = True,
        trail: tuple[str, ...] = (),
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.pid = pid
        self.live = live
        self.process_name = name
        self.trail = (*trail, process_step(name, pid))
        self.view = TableView(
            owned_rows(connections.all_rows(), pid),
            sort_column=COLUMN_INDEX["state"],
            sort_keys=SORT_KEYS,
        )
        self.info: ProcessInfo | None = None
        self.poller: Poller[ProcessInfo] | None = None

    def compose(self) -> ComposeResult:
        yield Breadcrumb(self.trail, id="process-title")
        yield Static(Text("reading…", style="dim"), id="process-facts")
        yield Static(id="process-sockets-title")
        yield VirtualTable(COLUMNS, id="process-sockets")
        yield Footer(show_command_palette=False)  # Ctrl+P still works (help)

    def on_mount(self) -> None:
        table = self.query_one(VirtualTable)
        table.hidden_columns = ("accept",)
        table.set_view(self.view)
        table.focus()
        self._show_socket_count()
        self._start_watching()

    def on_unmount(self) -> None:
        if self.poller is not None:
            self.poller.stop(timeout=0.5)

    def _start_watching(self) -> None:
        if not self.live:
            # A recorded pid may belong to an unrelated process on this machine.
            message = "a recording: live process facts are not available (only its sockets)"
            self.post_message(ProcessSampled(None, message))
            return
        try:
            watcher = ProcessWatcher(self.pid)
        except Exception as err:  # it exited between the click and now
            self.post_message(ProcessSampled(None, str(err)))
            return
        self.poller = Poller(
            f"process-{self.pid}",
            watcher.read,
            lambda info: self.post_message(ProcessSampled(info)),
            PROCESS_INTERVAL,
            on_error=lambda err: self.post_message(ProcessSampled(None, str(err))),
        )
        self.poller.start()

    @on(ProcessSampled)
    def _sampled(self, message: ProcessSampled) -> None:
        facts = self.query_one("#process-facts", Static)
        if message.info is None:
            text = Text(message.error or "process not readable", style="bold red")
            if self.info is not None:
                text.append("  (last known facts below)")
                facts.update(Text.assemble(text, "\n", self._facts(self.info)))
            else:
                facts.update(text)
            return
        self.info = message.info
        facts.update(self._facts(message.info))
        if self.process_name != message.info.comm:  # now known (or renamed): the trail says so
            self.process_name = message.info.comm
            self.trail = (*self.trail[:-1], process_step(self.process_name, self.pid))
            self.query_one(Breadcrumb).show(self.trail)

    def _facts(self, info: ProcessInfo) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for label, value in process_rows(info):
            table.add_row(label, value)
        return table

    def apply_update(self, update: ConnectionsUpdate) -> None:
        """Called by the app for each refresh while this screen is on top.

        The process's rows are picked again from the feed's finished view (~15 ms at 100k
        rows) rather than from the refresh's diff: when every counter moves the diff holds every
        row, and this view is small, so a rebuild costs less than a diff.
        """
        table = self.query_one(VirtualTable)
        if update.view is not None:
            old = self.view
            self.view = TableView(
                owned_rows(update.view.all_rows(), self.pid),
                sort_column=old.sort_column,
                reverse=old.reverse,
                sort_keys=SORT_KEYS,
            )
            table.replace_view(self.view)
        table.tick()
        self._show_socket_count()

    def _show_socket_count(self) -> None:
        title = self.query_one("#process-sockets-title", Static)
        title.update(Text(f"sockets owned by {self.pid}: {len(self.view):,}", style="bold"))

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- the drill-down hub --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A recording's pid is another machine's: nothing live can be asked about it.
        if action in ("cgroups", "stack"):
            return self.live
        return True

    def action_cgroups(self) -> None:
        self.app.push_screen(CgroupScreen(self.pid, self.trail))

    def action_stack(self) -> None:
        offer_stack_dump(self.app, self.pid, self.process_name or "", self.trail)

    def action_journal(self) -> None:
        """The Journal tab filtered to its unit, or to its pid when it runs in no unit."""
        unit = self._unit()
        show = getattr(self.app, "show_journal_for", None)
        if show is None:
            return
        show(f"unit:{unit}" if unit else f"pid:{self.pid}")

    def action_firewall(self) -> None:
        """The Firewall tab filtered to the ports of its sockets (listening and connected)."""
        ports = [row.sock.local_port for row in self.view if row.sock.local_port]
        show = getattr(self.app, "show_firewall_for", None)
        if show is not None:
            show(ports)

    def _unit(self) -> str | None:
        cgroup = self.info.cgroup if self.info is not None else None
        if not cgroup:
            return None
        from netdash.sources.cgroups import cgroup_names

        names = cgroup_names(cgroup.split(":", 2)[-1])
        return names.unit

    def action_next_sort(self) -> None:
        self.query_one(VirtualTable).cycle_sort()

    def action_reverse_sort(self) -> None:
        self.query_one(VirtualTable).reverse_sort()
