"""The Connections pane: every socket, live, with its owner; the default screen.

The pane holds no sampling logic: it receives :class:`ConnectionsUpdate` messages (rows already
built in the sampling thread) and applies them to a virtual table. What the user sees is a
composition of independent choices, each undone by one Esc, innermost first: the filter being
typed, the active filter, the group entered, the grouping; views (all/listening/established) and
the UNIX toggle are switched by their own keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input

from netdash.diagnose import socket_target
from netdash.model import HostInfo
from netdash.query import Query, QueryError, compile_query
from netdash.textsafe import visible
from netdash.ui.names import NamedTable, Names, names_label
from netdash.ui.panes.connection_filter import ConnFilter, split_query
from netdash.ui.panes.connection_groups import (
    GROUP_COLUMNS,
    GROUP_FIELDS,
    GroupEntry,
    group_builder,
)
from netdash.ui.panes.connection_rows import (
    COLUMN_INDEX,
    COLUMNS,
    SORT_KEYS,
    ConnectionsFeed,
    ConnectionsUpdate,
    ConnEntry,
    ConnRow,
    ViewSpec,
)
from netdash.ui.tableview import Row, TableView
from netdash.ui.widgets.state_summary import StateSummary
from netdash.ui.widgets.virtual_table import VirtualTable

VIEWS = ("all", "listening", "established")
_VIEW_STATES: dict[str, frozenset[str]] = {
    "listening": frozenset({"LISTEN", "UNCONN"}),
    "established": frozenset({"ESTABLISHED"}),
}
#: Columns that say nothing about a listening socket; the listening view hides them and shows
#: how full the accept queue is instead.
LISTEN_HIDDEN = ("remote", "rtt", "retrans", "rx", "tx")
_LOCAL, _REMOTE = COLUMN_INDEX["local"], COLUMN_INDEX["remote"]


def named_socket_cells(
    row: ConnRow, cells: tuple[str, ...], names: Names, widths: Mapping[int, int]
) -> tuple[str, ...]:
    """A drawn socket with names (``n``): the remote host's name and both ports' services
    (``example.com:https``, ``0.0.0.0:ssh``); the local address stays a number, as it says
    which interface."""
    sock = row.sock
    if sock.proto == "unix":
        return cells
    proto = sock.proto
    local = names.endpoint(sock.local_addr, sock.local_port, proto, sock.interface, resolve=False)
    remote = names.endpoint(sock.remote_addr, sock.remote_port, proto, width=widths.get(_REMOTE))
    return (*cells[:_LOCAL], local, remote, *cells[_REMOTE + 1 :])


def named_group_cells(
    row: Row, cells: tuple[str, ...], names: Names, widths: Mapping[int, int]
) -> tuple[str, ...]:
    """A drawn group with names: a remote host group's label is the host's name."""
    entry = row.data
    if (
        isinstance(entry, GroupEntry)
        and entry.field == "remote host"
        and isinstance(entry.value, str)
    ):
        return (names.host(entry.value), *cells[1:])
    return cells


class FilterStatus(Widget):
    """One line under the summary: the active filter, view and group, or a filter error."""

    DEFAULT_CSS = "FilterStatus { height: 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.parts: list[tuple[str, str]] = []

    def show(self, parts: list[tuple[str, str]]) -> None:
        self.parts = parts
        self.refresh()

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, (part, style) in enumerate(self.parts):
            if index:
                text.append("  ")
            text.append(part, style=style)
        return text


class FilterInput(Input):
    """The ``/`` box: an Input whose typing does not re-lay out the whole screen.

    Textual's Input sets ``virtual_size`` (a layout reactive) on every change of its value, as
    its text grows by a cell: each letter typed re-laid out the screen (~12 ms here, inside a
    50 ms budget at 100k rows). This box's own size never depends on its text (one line, the
    full width), so the virtual size is set without a layout; only its horizontal scrolling,
    which it updates itself, needs it. Everything else is Input's.
    """

    def _watch_value(self, value: str) -> None:
        size = Size(self.content_width, 1)
        if size != self.virtual_size:
            self.set_reactive(Input.virtual_size, size)
            self._scroll_update(size)
        super()._watch_value(value)  # sets the same size again: no refresh


def socket_trail(entry: ConnEntry) -> tuple[str, ...]:
    """The breadcrumb steps to a socket: the tab, then its local port (``:8080``), or the
    UNIX path for a UNIX socket."""
    sock = entry.sock
    if sock.proto == "unix":
        return ("Connections", sock.local_addr or f"unix inode {sock.inode}")
    return ("Connections", f":{sock.local_port}")


class ConnectionsPane(Vertical):
    """Summary, filter line and the socket table (or the group table while grouping)."""

    BINDINGS = [
        Binding("slash", "open_filter", "Filter"),
        Binding("s", "next_sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("l", "set_view('listening')", "Listen"),
        Binding("e", "set_view('established')", "Estab"),
        Binding("a", "set_view('all')", "All", show=False),
        Binding("g", "cycle_group", "Group"),
        Binding("u", "toggle_unix", "UNIX", show=False),
        Binding("i", "detail", "Info", show=False),
        Binding("d", "diagnose", "Diagnose", show=False),
        Binding("escape", "back", "Back", show=False),
    ]

    class UnixToggled(Message):
        """Ask the app to sample UNIX sockets (or stop): they cost time to read."""

        def __init__(self, enabled: bool) -> None:
            super().__init__()
            self.enabled = enabled

    class OpenProcess(Message):
        """Open the Process screen of ``pid``; ``trail`` is the way there, for the breadcrumb
        (``("Connections", ":8080")``) and ``name`` the process's name if known."""

        def __init__(self, pid: int, trail: tuple[str, ...] = (), name: str | None = None) -> None:
            super().__init__()
            self.pid = pid
            self.trail = trail
            self.name = name

    class OpenDetail(Message):
        """Show a socket's detail; ``fds`` are its owners' descriptors on it (pid -> fds)."""

        def __init__(self, entry: ConnEntry, fds: Mapping[int, tuple[int, ...]]) -> None:
            super().__init__()
            self.entry = entry
            self.fds = fds

    class Diagnose(Message):
        """Run the host:port checklist (Diagnose tab) on ``target``, a connection's far end."""

        def __init__(self, target: str) -> None:
            super().__init__()
            self.target = target

    class ChooseOwner(Message):
        def __init__(self, entry: ConnEntry, fds: Mapping[int, tuple[int, ...]]) -> None:
            super().__init__()
            self.entry = entry
            self.fds = fds

    def __init__(self, feed: ConnectionsFeed, host: HostInfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.feed = feed
        self.host = host
        self.view_mode = "all"
        self.show_unix = False
        self.query: Query | None = None
        self._query_before_edit: Query | None = None
        self.group_field: str | None = None
        self.group_entry: GroupEntry | None = None
        self.view = TableView(sort_column=COLUMN_INDEX["state"], sort_keys=SORT_KEYS)
        self.group_view = TableView(sort_column=1, reverse=True)
        self.filter_error: str | None = None
        self.last_update: ConnectionsUpdate | None = None
        self.names: Names | None = None  # set by the app: said in the status line when on

    def compose(self) -> ComposeResult:
        yield StateSummary(id="summary")
        yield FilterStatus(id="filter-status")
        yield FilterInput(
            placeholder="filter: state:estab port:443 proc:nginx addr:10.0.0.0/8 !state:listen",
            id="filter-input",
        )
        yield NamedTable(COLUMNS, namer=named_socket_cells, id="sockets")
        yield NamedTable(GROUP_COLUMNS, namer=named_group_cells, id="groups")

    def on_mount(self) -> None:
        self.filter_input.display = False
        self.group_table.display = False
        self.table.hidden_columns = ("accept",)
        self.table.set_view(self.view)
        self.group_table.set_view(self.group_view)
        self._apply_filter()
        self.table.focus()

    # -- widgets -------------------------------------------------------------------------------

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#sockets", VirtualTable)

    @property
    def group_table(self) -> VirtualTable:
        return self.query_one("#groups", VirtualTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter-input", Input)

    @property
    def grouped(self) -> bool:
        return self.group_field is not None and self.group_entry is None

    @property
    def active_table(self) -> VirtualTable:
        return self.group_table if self.grouped else self.table

    # -- updates from the sampler --------------------------------------------------------------

    def apply_update(self, update: ConnectionsUpdate) -> None:
        """Apply one refresh (UI thread): the feed's finished view, counts, groups.

        The feed built the view with the filter and sort it was last told; if the user changed
        them since, the new view is re-filtered and re-sorted here (rare: a key press that raced
        a tick) and the feed is told again.
        """
        previous, self.last_update = self.last_update, update
        with self.app.batch_update():
            view = update.view
            if view is not None:
                spec = ViewSpec.of(self.view)
                if not spec.matches(view):
                    if view.row_filter is not spec.row_filter:
                        view.set_filter(spec.row_filter)
                    view.set_sort(spec.sort_column, spec.reverse)
                    self.feed.spec = spec
                old, self.view = self.view, view
                self.table.replace_view(view)  # repaints only the lines that differ
                self.feed.retire(old)  # its rows are freed in the sampling thread
            if update.groups is not None and self.group_field is not None:
                self.group_view.replace_all(update.groups)
                self.group_table.refresh_rows()
            frame = update.frame
            summary = self.query_one(StateSummary)
            summary.show_unix = self.show_unix
            summary.update_counts(dict(frame.counts), frame.history)
            self.table.tick()
        if previous is not None:
            self.feed.retire(previous)  # its frame's 100k-entry containers, freed there too

    # -- filtering -----------------------------------------------------------------------------

    def row_filter(self, *, with_group: bool = True) -> Callable[[ConnRow], bool] | None:
        """View, UNIX toggle, entered group and query, composed into one predicate."""
        states = _VIEW_STATES.get(self.view_mode)
        show_unix = self.show_unix
        group = self.group_entry if with_group else None
        needles, checks = split_query(self.query)
        if states is None and show_unix and group is None and not checks and not needles:
            return None
        return ConnFilter(
            show_unix=show_unix, states=states, group=group, checks=checks, needles=needles
        )

    def _apply_filter(self, narrowing: bool = False, widening: bool = False) -> None:
        """Filter the view now; ``narrowing`` / ``widening`` promise the new filter only hides /
        only shows rows, so only the shown / hidden rows are tested (no full re-sort)."""
        keep = self.row_filter()
        added = keep.added_to(self.view.row_filter) if isinstance(keep, ConnFilter) else None
        self.view.set_filter(keep, narrowing=narrowing, widening=widening, narrowed_by=added)
        self.feed.spec = ViewSpec.of(self.view)
        self.table.refresh_rows()
        if self.group_field is not None:
            self._regroup()
        self._show_status()

    def _regroup(self) -> None:
        """Groups count what the filter lets through; the sampler keeps them current."""
        assert self.group_field is not None
        builder = group_builder(self.group_field, self.row_filter(with_group=False))
        self.feed.group_builder = builder
        self.group_view.replace_all(builder(self.view.all_rows()))
        self.group_table.refresh_rows()

    def _show_status(self) -> None:
        parts: list[tuple[str, str]] = [(f"view: {self.view_mode}", "bold")]
        if self.show_unix:
            parts.append(("+unix", "bold"))
        if self.group_field:
            parts.append((f"group: {self.group_field}", "bold cyan"))
        if self.group_entry:
            parts.append((f"in group: {visible(self.group_entry.label)}", "bold cyan"))
        if self.query and not self.query.empty:
            parts.append((f"filter: {visible(self.query.text)}", "bold magenta"))
        said = names_label(self.names) if self.names is not None else None
        if said is not None:
            parts.append(said)
        if self.filter_error:
            parts.append((self.filter_error, "bold red"))
        elif self.grouped:
            parts.append(("Enter: show a group's sockets · g: next grouping · Esc: ungroup", "dim"))
        self.query_one(FilterStatus).show(parts)

    def names_changed(self) -> None:
        """Names came, went or changed: redraw both tables and say which resolver."""
        self.table.names_changed()
        self.group_table.names_changed()
        self._show_status()

    def action_open_filter(self) -> None:
        self._query_before_edit = self.query
        box = self.filter_input
        box.value = self.query.text if self.query else ""
        box.display = True
        box.focus()

    @on(Input.Changed, "#filter-input")
    def _filter_typed(self, event: Input.Changed) -> None:
        self._set_query(event.value)

    @on(Input.Submitted, "#filter-input")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self._set_query(event.value)
        self._close_filter_input()
        table = self.table
        lost = table.cursor_key is None or self.view.position_of(table.cursor_key) is None
        if lost and len(self.view):
            table.move_cursor_to_key(self.view.key_at(0))

    def show_filtered(self, text: str) -> None:
        """Filter to ``text`` as if typed (a drill-down from another tab), the table focused."""
        self._close_filter_input()
        self._set_query(text)

    def _set_query(self, text: str) -> None:
        try:
            query = compile_query(text)
        except QueryError as err:
            self.filter_error = str(err)  # keep the last good filter applied meanwhile
            self._show_status()
            return
        self.filter_error = None
        self._change_query(query)

    def _change_query(self, query: Query | None) -> None:
        """Filter by ``query``, testing only the rows whose verdict can change."""
        before = self.query if self.query is not None and not self.query.empty else None
        after = query if query is not None and not query.empty else None
        self.query = query
        if (before.text if before else None) == (after.text if after else None):
            self._show_status()  # the same filter (the box opened, a space typed): nothing to do
            return
        # Adding terms to no query, or growing the last word, narrows; the reverse widens.
        narrowing = after is not None and (before is None or after.narrows(before))
        widening = before is not None and (after is None or before.narrows(after))
        self._apply_filter(narrowing=narrowing, widening=widening)

    def _close_filter_input(self) -> None:
        self.filter_input.display = False
        self.active_table.focus()

    # -- views, groups, sorting ----------------------------------------------------------------

    def action_set_view(self, mode: str) -> None:
        before, self.view_mode = self.view_mode, mode
        if mode == before:
            return
        hidden = LISTEN_HIDDEN if mode == "listening" else ("accept",)
        self.table.hidden_columns = hidden
        # "all" shows every state: leaving it only hides rows, coming back only shows them.
        self._apply_filter(narrowing=before == "all", widening=mode == "all")

    def action_toggle_unix(self) -> None:
        self.show_unix = not self.show_unix
        summary = self.query_one(StateSummary)
        summary.show_unix = self.show_unix
        summary.redraw()
        self.post_message(self.UnixToggled(self.show_unix))
        self._apply_filter(narrowing=not self.show_unix, widening=self.show_unix)

    def action_cycle_group(self) -> None:
        fields = (*GROUP_FIELDS, None)
        current = fields.index(self.group_field) if self.group_field in fields else -1
        self._set_group(fields[(current + 1) % len(fields)])

    def _set_group(self, field: str | None) -> None:
        self.group_field = field
        self.group_entry = None
        if field is None:
            self.feed.group_builder = None
        self._show_grouping()
        # Leaving a group shows more rows; changing the grouping alone changes nothing shown.
        self._apply_filter(widening=True)

    def _show_grouping(self) -> None:
        grouped = self.grouped
        self.group_table.display = grouped
        self.table.display = not grouped
        self.active_table.focus()

    def action_next_sort(self) -> None:
        self.active_table.cycle_sort()
        self.feed.spec = ViewSpec.of(self.view)

    def action_reverse_sort(self) -> None:
        self.active_table.reverse_sort()
        self.feed.spec = ViewSpec.of(self.view)

    @on(VirtualTable.SortChanged, "#sockets")
    def _sorted_by_header(self, event: VirtualTable.SortChanged) -> None:
        self.feed.spec = ViewSpec.of(self.view)

    # -- drill-down ----------------------------------------------------------------------------

    @on(VirtualTable.RowActivated, "#groups")
    def _enter_group(self, event: VirtualTable.RowActivated) -> None:
        row = self.group_view.get(event.key)
        if row is None:
            return
        self.group_entry = row.data
        self._show_grouping()
        self._apply_filter(narrowing=True)
        if len(self.view):
            self.table.move_cursor_to_key(self.view.key_at(0))

    @on(VirtualTable.RowActivated, "#sockets")
    def _enter_socket(self, event: VirtualTable.RowActivated) -> None:
        row = self.view.get(event.key)
        if row is None:
            return
        entry: ConnEntry = row.data
        pids = sorted({owner.pid for owner in entry.owners})
        if not pids:
            self.notify(
                entry.reason or "this socket has no owner process",
                title="No owner",
                severity="warning",
            )
        elif len(pids) == 1:
            name = next(owner.comm for owner in entry.owners if owner.pid == pids[0])
            self.post_message(self.OpenProcess(pids[0], socket_trail(entry), name))
        else:
            self.post_message(self.ChooseOwner(entry, self.owner_fds(entry)))

    def action_detail(self) -> None:
        row = self.table.cursor_row if not self.grouped else None
        if row is None:
            self.notify("select a socket first", severity="warning")
            return
        self.post_message(self.OpenDetail(row.data, self.owner_fds(row.data)))

    def owner_fds(self, entry: ConnEntry) -> dict[int, tuple[int, ...]]:
        """pid -> the descriptors through which each owner holds ``entry``'s socket, from the
        latest sample (owners are per process; their fds are looked up when shown)."""
        update = self.last_update
        if update is None:
            return {}
        sample = update.frame.sample
        return {o.pid: sample.fds_of(entry.sock.inode, o.pid) for o in entry.owners}

    def action_diagnose(self) -> None:
        """``d``: why can't I reach it? The remote end (a listener: its own address)."""
        row = self.table.cursor_row if not self.grouped else None
        target = socket_target(row.data.sock) if row is not None else None
        if target is None:
            self.notify("select a TCP or UDP socket with a port first", severity="warning")
            return
        self.post_message(self.Diagnose(target))

    def action_back(self) -> None:
        """Esc: undo the innermost choice; with nothing left to undo, the app's Esc runs."""
        if self.filter_input.display:
            self.filter_error = None
            self._close_filter_input()
            self._change_query(self._query_before_edit)
        elif self.query and not self.query.empty:
            self._change_query(None)
        elif self.group_entry is not None:
            self.group_entry = None
            self._show_grouping()
            self._apply_filter(widening=True)
        elif self.group_field is not None:
            self._set_group(None)
        else:
            raise SkipAction()
