"""The Interfaces pane: every link with its rates, errors and drops, and the selected one's graph.

What ``ip -s link`` and bmon answer, live: is a link down, is it dropping, how busy is it. The
pane renders :class:`~netdash.engine_links.LinkFrame`\\ s handed to it by the app; it samples
nothing itself.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Input, Static

from netdash.engine_links import LinkFrame
from netdash.talkers import TalkersFrame
from netdash.textsafe import visible
from netdash.ui.format import human_bits
from netdash.ui.panes.interface_rows import (
    COLUMN_INDEX,
    COLUMNS,
    SORT_KEYS,
    drops_rising,
    errors_rising,
    frame_rows,
    is_down,
)
from netdash.ui.panes.routes import RoutesSource, RoutesView
from netdash.ui.panes.talkers import NETWORK_GROUPINGS, TalkersView
from netdash.ui.tableview import TableView, search_filter
from netdash.ui.widgets.rate_graph import RateGraph, window_label
from netdash.ui.widgets.virtual_table import VirtualTable


def summary_text(frame: LinkFrame | None, error: str | None = None) -> Text:
    """One line: how many links, how many down, total traffic, who is dropping right now."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if error:
        text.append(f"interfaces: {visible(error)}", style="bold red")
        return text
    if frame is None:
        text.append("waiting for the first sample of the interfaces", style="yellow")
        return text
    links = frame.links
    down = [link for link in links if is_down(link)]
    rates = [rate for rate in frame.rates.values() if rate is not None]
    text.append(f"{len(links)} interfaces", style="bold")
    text.append(" · ")
    text.append(f"{len(down)} down", style="bold red" if down else "dim")
    text.append(f" · RX {human_bits(sum(r.rx_bps for r in rates))}/s")
    text.append(f" TX {human_bits(sum(r.tx_bps for r in rates))}/s")
    dropping = [link.name for link in links if drops_rising(frame.rates.get(link.ifindex))]
    failing = [link.name for link in links if errors_rising(frame.rates.get(link.ifindex))]
    if dropping:
        text.append(" · dropping: " + ", ".join(map(visible, dropping)), style="bold red")
    if failing:
        text.append(" · errors: " + ", ".join(map(visible, failing)), style="bold red")
    return text


#: The pane's views: key, switcher id, footer label.
VIEWS: tuple[tuple[str, str, str], ...] = (
    ("i", "links-view", "Links"),
    ("t", "talkers-view", "Talkers"),
    ("w", "processes-view", "Procs"),
    ("r", "routes-view", "Routes"),
)


class InterfacesPane(Vertical):
    """The links (summary, table, graph of the link under the cursor) and the other views of
    the traffic: routes and neighbours."""

    BINDINGS = [
        Binding("s", "next_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("z", "zoom", "Window"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("h", "cycle_grouping", "Hosts/ports"),
        *(Binding(key, f"show_view('{view}')", label) for key, view, label in VIEWS),
    ]

    def __init__(self, routes: RoutesSource | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = TableView(sort_column=COLUMN_INDEX["name"], sort_keys=SORT_KEYS)
        self.frame: LinkFrame | None = None
        self.talkers: TalkersFrame | None = None
        self.error: str | None = None
        self._stale: set[str] = set()  # views whose latest data arrived while hidden
        self.routes_source = routes

    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="links-view", id="interfaces-views"):
            with Vertical(id="links-view"):
                yield Static(summary_text(None), id="links-summary")
                yield Input(placeholder="filter: name, kind, state or address", id="links-filter")
                yield VirtualTable(COLUMNS, id="links", activatable=False)
                yield RateGraph(id="link-graph")
            yield TalkersView(NETWORK_GROUPINGS, id="talkers-view")
            yield TalkersView(("processes",), id="processes-view")
            yield RoutesView(self.routes_source, id="routes-view")

    def on_mount(self) -> None:
        self.table.set_view(self.view)
        self.query_one("#links-filter", Input).display = False

    # -- the filter: a substring of name, kind, state or addresses, as you type ---------------

    def action_filter(self) -> None:
        box = self.query_one("#links-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#links-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.view.set_filter(search_filter(event.value), filter_text=event.value.strip().lower())
        self.table.refresh_rows()

    @on(Input.Submitted, "#links-filter")
    def _filter_submitted(self) -> None:
        box = self.query_one("#links-filter", Input)
        box.display = bool(box.value)
        self.table.focus()

    def action_clear_filter(self) -> None:
        """Esc: the filter goes (box and all); without one, Esc goes on to the app."""
        box = self.query_one("#links-filter", Input)
        if not box.display and not box.value:
            raise SkipAction()
        box.value = ""
        box.display = False
        self.table.focus()

    @property
    def current_view(self) -> str:
        return self.query_one(ContentSwitcher).current or "links-view"

    def action_show_view(self, view: str) -> None:
        """Switch views; the view's main table takes the focus, so its keys apply."""
        self.query_one(ContentSwitcher).current = view
        self.shown()
        if view == "routes-view":
            routes = self.query_one(RoutesView)
            routes.reload()
            routes.query_one("#routes", VirtualTable).focus()
        elif view in ("talkers-view", "processes-view"):
            self.query_one(f"#{view}", TalkersView).table.focus()
        else:
            self.table.focus()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show only the keys of the current view in the footer."""
        if action in ("next_sort", "reverse_sort", "zoom", "filter", "clear_filter"):
            return self.current_view == "links-view"
        if action == "cycle_grouping":
            return self.current_view == "talkers-view"
        return True

    def action_cycle_grouping(self) -> None:
        self.query_one("#talkers-view", TalkersView).cycle_grouping()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#links", VirtualTable)

    @property
    def graph(self) -> RateGraph:
        return self.query_one("#link-graph", RateGraph)

    def apply_frame(self, frame: LinkFrame) -> None:
        """Show one sample of the interfaces (UI thread). Rows format their cells when painted
        and the summary line keeps its size (no layout pass): benchmarks/bench_links.py.

        While the tab or the view is hidden the frame is only kept, and shown when it comes
        back (:meth:`shown`): a hidden pane costs no rows, graph or repaint each second."""
        self.frame, self.error = frame, None
        if not self._showing("links-view"):
            self._stale.add("links-view")
            return
        self._stale.discard("links-view")
        self.view.replace_all(frame_rows(frame))
        self.table.refresh_rows()
        self._show_summary(summary_text(frame))
        self._show_graph()

    def apply_talkers(self, frame: TalkersFrame) -> None:
        self.talkers = frame
        for view in self.query(TalkersView):
            if view.id is not None and self._showing(view.id):
                self._stale.discard(view.id)
                view.show_frame(frame)
            else:
                self._stale.add(view.id or "")

    def shown(self) -> None:
        """The tab or a view came into sight: show what arrived while it was hidden."""
        current = self.current_view
        if current not in self._stale:
            return
        if current == "links-view" and self.frame is not None:
            self.apply_frame(self.frame)
        elif current in ("talkers-view", "processes-view") and self.talkers is not None:
            self.apply_talkers(self.talkers)

    def _showing(self, view: str) -> bool:
        tab = self.parent
        return self.current_view == view and (tab is None or tab.display) and self.display

    def show_error(self, error: str) -> None:
        """The links source failed: say so and keep the last rows (they are marked stale)."""
        self.error = error
        self._show_summary(summary_text(self.frame, error))

    def _show_summary(self, text: Text) -> None:
        # One line high (netdash.tcss): a new text never changes the layout.
        self.query_one("#links-summary", Static).update(text, layout=False)

    @on(VirtualTable.CursorMoved, "#links")
    def _cursor_moved(self) -> None:
        self._show_graph()

    def _show_graph(self) -> None:
        frame, row = self.frame, self.table.cursor_row
        if frame is None or row is None:
            return
        ifindex = row.key
        link = row.data[0]
        history = frame.history.get(ifindex) if ifindex in frame.history else None
        if history is not None:
            self.graph.show(link.name, history, frame.sample.taken_at)

    def action_next_sort(self) -> None:
        self.table.cycle_sort()

    def action_reverse_sort(self) -> None:
        self.table.reverse_sort()

    def action_zoom(self) -> None:
        window = self.graph.cycle_window()
        self.notify(f"graph window: last {window_label(window)}", timeout=2)
