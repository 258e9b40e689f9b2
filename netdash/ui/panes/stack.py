"""The Diagnose tab's stack health: TCP/IP counters as rates and totals, the ones moving now
highlighted, and the sysctls that matter with a plain-language note (`nstat`, `sysctl`).

The key counters (retransmits, resets, listen overflows, SYN cookies, timeouts, UDP buffer
errors) are listed first with what they mean; ``a`` shows every counter the kernel keeps.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from netdash.sources.stack import KEY_COUNTERS, StackFrame
from netdash.textsafe import visible
from netdash.ui.format import human_count
from netdash.ui.tableview import Column, Row, TableView
from netdash.ui.widgets.virtual_table import VirtualTable

COLUMNS: tuple[Column, ...] = (
    Column("name", "Counter", width=28, min_width=18, priority=0),
    Column("rate", "Per s", width=8, align="right", priority=0),
    Column("total", "Total", width=12, align="right", priority=1),
    Column("note", "What it means", width=40, min_width=16, priority=2, flex=True),
)


def counter_rows(frame: StackFrame, everything: bool) -> list[Row]:
    """Key counters first (in their order), then, with ``everything``, all the others."""
    counters = frame.sample.counters
    names = [name for name in KEY_COUNTERS if name in counters]
    if everything:
        names += sorted(name for name in counters if name not in KEY_COUNTERS)
    rows = []
    for order, name in enumerate(names):
        rate = frame.rates.get(name)
        moving = name in frame.moving
        style = "bold yellow" if moving else None
        rows.append(
            Row(
                key=name,
                cells=(
                    name,
                    "" if rate is None else human_count(rate),
                    f"{counters[name]:,}",
                    KEY_COUNTERS.get(name, ""),
                ),
                sort_values=(order, rate, counters[name], name),
                search_text=name.lower(),
                styles=(style, style, None, "dim"),
                data=name,
            )
        )
    return rows


def sysctl_table(frame: StackFrame) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_column(style="dim")
    for sysctl in frame.sample.sysctls:
        table.add_row(sysctl.name, Text(visible(sysctl.value)), Text(visible(sysctl.note)))
    return table


class StackPane(Vertical):
    """Counters (a virtual table) above the sysctls."""

    BINDINGS = [Binding("a", "toggle_all", "All counters")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = TableView(sort_column=0)
        self.frame: StackFrame | None = None
        self.everything = False

    def compose(self) -> ComposeResult:
        yield Static(Text("reading the stack counters…", style="dim"), id="stack-summary")
        yield VirtualTable(COLUMNS, id="stack-counters", activatable=False)
        with VerticalScroll(id="stack-sysctls-scroll"):  # the notes wrap: never cut off
            yield Static("", id="stack-sysctls")

    def on_mount(self) -> None:
        self.query_one(VirtualTable).set_view(self.view)

    def apply(self, frame: StackFrame) -> None:
        self.frame = frame
        self.view.replace_all(counter_rows(frame, self.everything))
        self.query_one(VirtualTable).refresh_rows()
        moving = sorted(name for name in frame.moving if name in KEY_COUNTERS)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("TCP/IP stack", style="bold")
        if moving:
            text.append(" · moving now: " + ", ".join(moving), style="bold yellow")
        else:
            text.append(" · no key counter moved in the last second", style="dim")
        for error in frame.sample.errors:
            text.append(f" · {visible(error)}", style="bold red")
        self.query_one("#stack-summary", Static).update(text, layout=False)
        self.query_one("#stack-sysctls", Static).update(sysctl_table(frame))

    def show_error(self, error: str) -> None:
        text = Text(f"stack counters: {visible(error)}", style="bold red")
        self.query_one("#stack-summary", Static).update(text, layout=False)

    def action_toggle_all(self) -> None:
        self.everything = not self.everything
        if self.frame is not None:
            self.apply(self.frame)
