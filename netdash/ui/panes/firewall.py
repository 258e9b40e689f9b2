"""The Firewall tab: nftables and iptables rules with their counters and live hit rates.

Chains with their policies (a DROP policy in red) and their rules as the kernel orders them;
``h`` the hottest rules first (by packets/s). Rules whose counters moved in the last sample are
highlighted, drop and reject verdicts marked. ``/`` filters (``port:443`` finds the rules that
match the port, through sets too). What could not be read — no root, no nft, no rules at all —
is said in the summary line, never shown as an empty table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.table import Table
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from netdash.engine_conntrack import ConntrackFrame
from netdash.model import FirewallSample
from netdash.query import QueryError
from netdash.textsafe import visible
from netdash.ui.format import human_count
from netdash.ui.names import Names
from netdash.ui.panes.firewall_rows import (
    COLUMNS,
    INDEX,
    Rate,
    compile_firewall_filter,
    denies,
    hot_rows,
    tree_rows,
)
from netdash.ui.tableview import TableView
from netdash.ui.widgets.virtual_table import VirtualTable


def summary_text(
    sample: FirewallSample | None,
    rates: Mapping[object, Rate | None],
    conntrack: Text | None,
    error: str | None,
) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    if sample is None:
        text.append(error or "waiting for the first read of the rules", style="yellow")
        return text
    backends: dict[str, int] = {}
    for rule in sample.rules:
        backends[rule.backend] = backends.get(rule.backend, 0) + 1
    text.append(f"{len(sample.rules)} rules", style="bold")
    if backends:
        text.append(" (" + ", ".join(f"{name} {n}" for name, n in sorted(backends.items())) + ")")
    dropping = sum(
        rate[0] for rule in sample.rules if denies(rule.verdict) and (rate := rates.get(rule.key))
    )
    if dropping:
        text.append(f" · dropping {human_count(dropping)} pkt/s", style="bold red")
    for message in (*sample.errors, *((error,) if error else ())):
        text.append(f" · {visible(message)}", style="bold yellow")
    if conntrack is not None:
        text.append(" · ")
        text.append_text(conntrack)
    return text


def conntrack_summary(frame: ConntrackFrame) -> Text:
    """One clause for the summary line: fill against the limit, the busiest states, drops."""
    sample = frame.sample
    text = Text()
    if sample.max:
        fill = f" ({frame.fill * 100:.1f} %)" if frame.fill is not None else ""
        style = "bold red" if frame.near_limit else ""
        text.append(f"conntrack {sample.count:,}/{sample.max:,}{fill}", style=style)
    else:
        text.append(f"conntrack {sample.count:,}")
    top = sorted(sample.by_state.items(), key=lambda item: -item[1])[:3]
    if top:
        text.append(" · " + " ".join(f"{name.lower()} {n:,}" for name, n in top), style="dim")
    for name in ("drop", "early_drop", "insert_failed"):
        rate = frame.rate(name)
        if rate:
            text.append(f" · {name} {human_count(rate)}/s", style="bold red")
    if sample.errors:
        text.append(f" · {visible(sample.errors[0])}", style="yellow")
    return text


def conntrack_table(frame: ConntrackFrame, host: Callable[[str], str] = str) -> Table:
    """The conntrack view: counts by state and protocol, top addresses (through ``host``: their
    names when names are on), the stats as rates."""
    sample = frame.sample
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column()
    grid.add_row(*(Text(title, style="bold") for title in
                   ("by state", "by protocol", "top sources", "top destinations")))  # fmt: skip
    columns = [
        sorted(sample.by_state.items(), key=lambda item: -item[1]),
        sorted(sample.by_proto.items(), key=lambda item: -item[1]),
        [(host(addr), count) for addr, count in sample.top_sources],
        [(host(addr), count) for addr, count in sample.top_destinations],
    ]
    for line in range(max((len(column) for column in columns), default=0)):
        cells = []
        for column in columns:
            if line < len(column):
                name, count = column[line]
                cells.append(Text(f"{count:>7,}  {visible(str(name))}"))
            else:
                cells.append(Text(""))
        grid.add_row(*cells)
    stats = Table.grid(padding=(0, 2))
    stats.add_column(style="bold cyan")
    stats.add_column(justify="right")
    stats.add_column(justify="right")
    stats.add_row("stat (all CPUs)", "total", "per second")
    for name, value in sorted(sample.stats.items()):
        rate = frame.rate(name)
        bad = name in ("drop", "early_drop", "insert_failed", "invalid") and bool(rate)
        stats.add_row(
            name,
            f"{value:,}",
            Text("" if rate is None else f"{rate:,.1f}", "bold red" if bad else ""),
        )
    outer = Table.grid(padding=(1, 0))
    outer.add_column()
    outer.add_row(conntrack_summary(frame))
    outer.add_row(grid)
    outer.add_row(stats)
    return outer


class FirewallPane(Vertical):
    """Summary (rules, errors, conntrack), filter box, the rules table."""

    BINDINGS = [
        Binding("h", "toggle_hot", "Hot/tree"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("s", "next_sort", "Sort"),
        Binding("c", "toggle_conntrack", "Conntrack"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = TableView()
        self.sample: FirewallSample | None = None
        self.rates: Mapping[object, Rate | None] = {}
        self.moved: frozenset[object] = frozenset()
        self.hot = False
        self.error: str | None = None
        self.conntrack: Text | None = None
        self.conntrack_frame: ConntrackFrame | None = None
        self.names: Names | None = None  # set by the app: conntrack's top addresses by name

    def compose(self) -> ComposeResult:
        yield Static("", id="firewall-summary")
        yield Input(placeholder="filter: port:443  verdict:drop  table:filter  chain:input  text",
                    id="firewall-filter")  # fmt: skip
        yield VirtualTable(COLUMNS, id="rules", activatable=False)
        with VerticalScroll(id="conntrack-view"):
            yield Static(Text("conntrack: not read yet", style="dim"), id="conntrack-text")

    def on_mount(self) -> None:
        self.table.set_view(self.view)
        self.query_one("#firewall-filter", Input).display = False
        self.query_one("#conntrack-view").display = False
        self._show_summary()

    def action_toggle_conntrack(self) -> None:
        """The conntrack view instead of the rules, and back."""
        view = self.query_one("#conntrack-view")
        view.display = not view.display
        self.table.display = not view.display
        (view if view.display else self.table).focus()
        self._show_conntrack_table()  # names are asked only for what is on screen

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#rules", VirtualTable)

    def apply(
        self,
        sample: FirewallSample,
        rates: Mapping[object, Rate | None],
        moved: frozenset[object],
    ) -> None:
        self.sample, self.rates, self.moved, self.error = sample, rates, moved, None
        self._rebuild()

    def show_conntrack(self, frame: ConntrackFrame | None, error: str | None = None) -> None:
        if frame is None:
            self.conntrack = Text(f"conntrack: {visible(error or 'not read')}", style="yellow")
        else:
            self.conntrack = conntrack_summary(frame)
            self.conntrack_frame = frame
            self._show_conntrack_table()
        self._show_summary()

    def _show_conntrack_table(self) -> None:
        frame = self.conntrack_frame
        if frame is None:
            return
        names = self.names
        shown = self.query_one("#conntrack-view").display
        host = names.host if names is not None and names.active and shown else str
        self.query_one("#conntrack-text", Static).update(conntrack_table(frame, host))

    def names_changed(self) -> None:
        """Names came, went or changed: the conntrack view again, if it is shown."""
        if self.query_one("#conntrack-view").display:
            self._show_conntrack_table()

    def show_error(self, error: str) -> None:
        self.error = error
        self._show_summary()

    def _rebuild(self) -> None:
        if self.sample is not None:
            if self.hot:
                rows = hot_rows(self.sample.rules, self.rates)
            else:
                rows = tree_rows(self.sample, self.rates, self.moved)
            self.view.replace_all(rows)
            self.table.refresh_rows()
        self._show_summary()

    def _show_summary(self) -> None:
        text = summary_text(self.sample, self.rates, self.conntrack, self.error)
        self.query_one("#firewall-summary", Static).update(text, layout=False)

    def action_toggle_hot(self) -> None:
        """Hot: every rule, highest packets/s first; tree: chains and rules in kernel order."""
        self.hot = not self.hot
        if self.hot:
            self.view.set_sort(INDEX["pps"], reverse=True)
        else:
            self.view.set_sort(None)
        self._rebuild()

    def action_next_sort(self) -> None:
        if not self.hot:
            self.action_toggle_hot()
        self.table.cycle_sort()

    def action_filter(self) -> None:
        box = self.query_one("#firewall-filter", Input)
        box.display = True
        box.focus()

    def set_filter_text(self, text: str) -> None:
        box = self.query_one("#firewall-filter", Input)
        box.value = text
        box.display = bool(text)
        self._use(text)
        self.table.focus()

    @on(Input.Changed, "#firewall-filter")
    def _changed(self, event: Input.Changed) -> None:
        self._use(event.value)

    def _use(self, text: str) -> None:
        try:
            wanted = compile_firewall_filter(text)
        except QueryError as err:
            self.notify(str(err), severity="warning", timeout=4, markup=False)
            return
        self.view.set_filter(wanted.check)
        self.table.refresh_rows()

    @on(Input.Submitted, "#firewall-filter")
    def _submitted(self) -> None:
        box = self.query_one("#firewall-filter", Input)
        box.display = bool(box.value)
        self.table.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#firewall-filter", Input)
        if not box.display and not box.value:
            raise SkipAction()
        box.value = ""
        box.display = False
        self._use("")
        self.table.focus()
