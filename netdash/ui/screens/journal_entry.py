"""One journal entry whole: every field and the full message, literally; Enter opens the
Process screen of its pid when that process is still alive."""

from __future__ import annotations

import time

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from netdash.model import JournalEntry
from netdash.textsafe import visible
from netdash.ui.widgets.breadcrumb import Breadcrumb


def entry_table(entry: JournalEntry) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time))
    table.add_row("time", f"{stamp}.{entry.realtime_usec % 1_000_000:06d}")
    fields = (
        ("priority", None if entry.priority is None else f"{entry.priority} {entry.priority_name}"),
        ("unit", entry.unit),
        ("identifier", entry.identifier),
        ("pid", None if entry.pid is None else str(entry.pid)),
        ("comm", entry.comm),
        ("hostname", entry.hostname),
        ("boot", entry.boot_id),
    )
    for label, value in fields:
        if value is not None:
            table.add_row(label, Text(visible(value)))
    return table


def process_alive(pid: int, since: float) -> bool:
    """Whether ``pid`` runs and started before the entry was written (else the pid was reused
    by another process since). Reads /proc: call it off the UI thread."""
    from netdash.sources.processes import CLOCK_TICKS, read_boot_time
    from netdash.talkers import read_start_time

    ticks = read_start_time(pid)
    if ticks is None:
        return False
    return read_boot_time() + ticks / CLOCK_TICKS <= since + 1.0


class JournalEntryScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "open_process", "Process"),
    ]
    DEFAULT_CSS = """
    JournalEntryScreen { align: center middle; }
    #entry-body {
        width: 90%; max-width: 120; height: 85%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, entry: JournalEntry) -> None:
        super().__init__()
        self.entry = entry
        self.alive: bool | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="entry-body"):
            yield Breadcrumb(("Journal", "entry"))
            yield Static(entry_table(self.entry))
            lines = (visible(line) for line in self.entry.message.split("\n"))
            yield Static(Text("\n" + "\n".join(lines)))
            yield Static("", id="entry-process")

    def on_mount(self) -> None:
        if self.entry.pid is not None:
            self._check_alive(self.entry.pid)

    @work(thread=True)
    def _check_alive(self, pid: int) -> None:
        alive = process_alive(pid, self.entry.time)
        self.app.call_from_thread(self._show_alive, alive)

    def _show_alive(self, alive: bool) -> None:
        self.alive = alive
        note = (
            Text(f"\nEnter: the Process screen of pid {self.entry.pid}", style="bold")
            if alive
            else Text(f"\npid {self.entry.pid} is no longer running", style="dim")
        )
        self.query_one("#entry-process", Static).update(note)

    def action_open_process(self) -> None:
        if not self.alive or self.entry.pid is None:
            self.notify("its process is not running (or the entry has no pid)", severity="warning")
            return
        from netdash.ui.panes.connections import ConnectionsPane

        pid, name = self.entry.pid, self.entry.comm
        self.dismiss(None)
        self.app.post_message(ConnectionsPane.OpenProcess(pid, ("Journal",), name))
