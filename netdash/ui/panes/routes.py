"""The routes view of the Interfaces tab: routes of every table, policy rules, neighbours, and a
"route to…" prompt that answers what ``ip route get`` answers.

Routes change rarely, so they are read when the view opens and every few seconds while it is
shown, always in a worker thread through the app's :class:`RoutesSource` (the real
:class:`~netdash.sources.routes.RouteReader`, or a recording's tables).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from netdash.model import Neighbour, PolicyRule, Route, RouteLookup
from netdash.textsafe import visible
from netdash.ui.panes.route_rows import (
    NEIGHBOUR_COLUMNS,
    ROUTE_COLUMNS,
    lookup_text,
    neighbour_row,
    only_default_rules,
    route_rows,
    rules_text,
)
from netdash.ui.tableview import TableView
from netdash.ui.widgets.virtual_table import VirtualTable

#: Seconds between rereads while the view is shown (a route change is rare and not urgent).
REFRESH_SECONDS = 5.0


class RoutesSource(Protocol):
    def routes(self) -> tuple[Route, ...]: ...

    def rules(self) -> tuple[PolicyRule, ...]: ...

    def neighbours(self) -> tuple[Neighbour, ...]: ...

    def route_get(self, addr: str, source: str | None = None) -> RouteLookup: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RoutingTables:
    """One read of the namespace's routing state."""

    routes: tuple[Route, ...]
    rules: tuple[PolicyRule, ...]
    neighbours: tuple[Neighbour, ...]


class RoutesView(Vertical):
    """Routes, rules and neighbours; ``g`` asks where a packet to an address would go."""

    BINDINGS = [
        Binding("g", "route_to", "Route to…"),
        Binding("escape", "close_prompt", "Close", show=False),
    ]

    def __init__(self, source: RoutesSource | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = source
        self.tables: RoutingTables | None = None
        self.error: str | None = None
        self._lock = threading.Lock()  # the reader serves one caller at a time
        self.route_view = TableView()
        self.neighbour_view = TableView(sort_column=0)

    def compose(self) -> ComposeResult:
        yield Static(Text("routes", style="bold"), id="routes-title")
        yield VirtualTable(ROUTE_COLUMNS, id="routes", activatable=False)
        yield Static("", id="rules")
        yield Static(Text("neighbours (ARP / NDP)", style="bold"), id="neighbours-title")
        yield VirtualTable(NEIGHBOUR_COLUMNS, id="neighbours", activatable=False)
        yield Input(placeholder="route to: ADDRESS [from SOURCE]", id="route-to")
        yield Static("", id="route-answer")

    def on_mount(self) -> None:
        self.query_one("#routes", VirtualTable).set_view(self.route_view)
        self.query_one("#neighbours", VirtualTable).set_view(self.neighbour_view)
        self.query_one("#route-to", Input).display = False
        if self.source is None:
            self._show_error("routes are not available here (no routing source)")
        self.set_interval(REFRESH_SECONDS, self._refresh_if_shown)

    # -- reading -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the tables again (in a thread); the view shows them when they arrive."""
        if self.source is not None:
            self._read_tables()

    def _refresh_if_shown(self) -> None:
        if self.display and self.is_on_screen:
            self.reload()

    @work(thread=True, exclusive=True, group="routes-read")
    def _read_tables(self) -> None:
        assert self.source is not None
        try:
            with self._lock:
                tables = RoutingTables(
                    self.source.routes(), self.source.rules(), self.source.neighbours()
                )
        except Exception as err:  # a source error: shown, the last tables kept
            self.app.call_from_thread(self._show_error, str(err) or type(err).__name__)
            return
        self.app.call_from_thread(self.show_tables, tables)

    def show_tables(self, tables: RoutingTables) -> None:
        self.tables, self.error = tables, None
        self.route_view.replace_all(route_rows(tables.routes))
        self.query_one("#routes", VirtualTable).refresh_rows()
        self.neighbour_view.replace_all(neighbour_row(n) for n in tables.neighbours)
        self.query_one("#neighbours", VirtualTable).refresh_rows()
        rules = self.query_one("#rules", Static)
        rules.display = not only_default_rules(tables.rules)
        rules.update(rules_text(tables.rules))
        title = Text(f"routes ({len(tables.routes)})", style="bold")
        self.query_one("#routes-title", Static).update(title)
        neighbours = Text(f"neighbours (ARP / NDP): {len(tables.neighbours)}", style="bold")
        self.query_one("#neighbours-title", Static).update(neighbours)

    def _show_error(self, error: str) -> None:
        self.error = error
        text = Text("routes: ", style="bold")
        text.append(visible(error), style="bold red")
        self.query_one("#routes-title", Static).update(text)

    # -- route to… -----------------------------------------------------------------------------

    def action_route_to(self) -> None:
        box = self.query_one("#route-to", Input)
        box.display = True
        box.focus()

    def action_close_prompt(self) -> None:
        box = self.query_one("#route-to", Input)
        if not box.display:
            raise SkipAction()  # Esc goes on to the app (back from a screen)
        box.display = False
        self.query_one("#routes", VirtualTable).focus()

    @on(Input.Submitted, "#route-to")
    def _submitted(self, event: Input.Submitted) -> None:
        words = event.value.split()
        box = self.query_one("#route-to", Input)
        box.display = False
        self.query_one("#routes", VirtualTable).focus()
        if not words:
            return
        source = words[2] if len(words) >= 3 and words[1] == "from" else None
        self.query_one("#route-answer", Static).update(Text(f"route to {words[0]}: asking…"))
        self._look_up(words[0], source)

    @work(thread=True, exclusive=True, group="routes-lookup")
    def _look_up(self, addr: str, source: str | None) -> None:
        if self.source is None:
            answer = RouteLookup(addr, None, None, None, error="no routing source here")
        else:
            try:
                with self._lock:
                    answer = self.source.route_get(addr, source)
            except Exception as err:
                answer = RouteLookup(addr, None, None, None, error=str(err) or repr(err))
        self.app.call_from_thread(self._show_answer, answer)

    def _show_answer(self, answer: RouteLookup) -> None:
        text = Text("route to ", style="dim")
        text.append_text(lookup_text(answer))
        self.query_one("#route-answer", Static).update(text)
