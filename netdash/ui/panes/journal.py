"""The Journal tab: a live journald tail with unit, priority, time, pid and text filters.

Newest at the bottom and followed (scrolling up stops following, End resumes). Entries come in
batches from the app's journal thread; the buffer is bounded (:data:`BUFFER` entries) so memory
stays flat under a burst. ``/`` filters (see :mod:`netdash.ui.panes.journal_rows`): journalctl
applies the unit, priority, time, pid and identifier terms (the app restarts the follower), the
buffer the text terms, whose matches are highlighted. Enter shows an entry whole; from there
Enter opens the Process screen of its pid when that process is alive.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from netdash.model import PRIORITY_NAMES, JournalEntry
from netdash.query import QueryError
from netdash.textsafe import visible
from netdash.ui.panes.journal_rows import (
    COLUMNS,
    PRIORITY_STYLES,
    JournalFilter,
    JournalRow,
    compile_journal_filter,
    matches,
    priority_counts,
    start_of_today,
)
from netdash.ui.tableview import TableView
from netdash.ui.widgets.virtual_table import VirtualTable

#: Entries kept; older ones are dropped as new ones arrive (a burst must not grow memory).
BUFFER = 50_000
#: The summary counts entries per priority over this many seconds.
COUNT_WINDOW = 300


class JournalPane(Vertical):
    """Summary (source, following, counts per priority), filter box, the entries."""

    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("f", "follow", "Follow"),
    ]

    class FilterChanged(Message):
        """The journalctl part of the filter changed: the app restarts the follower."""

        def __init__(self, journal_filter: JournalFilter) -> None:
            super().__init__()
            self.filter = journal_filter

    class ShowEntry(Message):
        def __init__(self, entry: JournalEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, id: str | None = None, buffer: int = BUFFER) -> None:
        super().__init__(id=id)
        self.buffer = buffer
        self.rows: deque[JournalRow] = deque()
        self.view = TableView(row_filter=None)
        self.filter = JournalFilter()
        self.following = True
        self.source = "journal: not started"
        self.error: str | None = None
        self.received = 0  # every entry handed to the pane since the last restart
        self._next_key = 0
        self._today = start_of_today()
        #: (newest entry's time, counts per priority) of each batch still in the count window:
        #: the summary sums a few batches instead of walking 50,000 entries per batch.
        self._batches: deque[tuple[int, list[int]]] = deque()

    def compose(self) -> ComposeResult:
        yield Static("", id="journal-summary")
        yield Input(
            placeholder='filter: unit:nginx prio:err since:"10 min ago" pid:1234 id:sshd text',
            id="journal-filter",
        )
        yield VirtualTable(COLUMNS, id="journal", activate_label="Full text")

    def on_mount(self) -> None:
        self.table.set_view(self.view)
        self.query_one("#journal-filter", Input).display = False
        self._show_summary()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#journal", VirtualTable)

    # -- entries -------------------------------------------------------------------------------

    def append(self, entries: Sequence[JournalEntry], source: str | None = None) -> None:
        """Add a batch (UI thread): one diff, one repaint, the oldest dropped past the buffer."""
        if source is not None:
            self.source, self.error = source, None
        if entries:
            self.received += len(entries)
            pattern = self.filter.pattern
            rows = []
            for entry in entries:
                rows.append(JournalRow(self._next_key, entry, self._today, pattern))
                self._next_key += 1
            self.rows.extend(rows)
            newest = max(entry.realtime_usec for entry in entries)
            self._batches.append((newest, priority_counts(entries, 0)))
            dropped = []
            while len(self.rows) > self.buffer:
                dropped.append(self.rows.popleft().key)
            self.view.apply(rows, dropped)
            self.table.refresh_rows()
            if self.following:
                self._to_end()
        self._show_summary()

    def restart(self, source: str) -> None:
        """The follower restarted with a new query: start from what it sends now."""
        self.rows.clear()
        self._batches.clear()
        self.view.replace_all(())
        self.received = 0
        self.source, self.error = source, None
        self.following = True
        self.table.set_view(self.view)
        self._show_summary()

    def show_error(self, error: str) -> None:
        self.error = error
        self._show_summary()

    def _to_end(self) -> None:
        if len(self.view):
            self.table.move_cursor_to(len(self.view) - 1)

    def _show_summary(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(visible(self.source), style="bold")
        if self.error:
            text.append(f" · {visible(self.error)}", style="bold red")
        text.append(" · following" if self.following else " · paused (End follows)")
        text.append(f" · {len(self.view):,} shown", style="dim")
        if self.received > len(self.rows):  # the buffer let the oldest go: say how many came
            text.append(f" of {self.received:,} received (kept: the last {self.buffer:,})")
        since = int((time.time() - COUNT_WINDOW) * 1e6)
        batches = self._batches
        while batches and batches[0][0] < since:
            batches.popleft()
        counts = [sum(column) for column in zip(*(c for _, c in batches), strict=True)] or [0] * 9
        parts = [(name, counts[i]) for i, name in enumerate(PRIORITY_NAMES) if counts[i]]
        if parts:
            text.append(f" · last {COUNT_WINDOW // 60} min:", style="dim")
            for name, count in parts:
                style = PRIORITY_STYLES[PRIORITY_NAMES.index(name)] or ""
                text.append(f" {name} {count:,}", style=style)
        self.query_one("#journal-summary", Static).update(text, layout=False)

    # -- following -----------------------------------------------------------------------------

    @on(VirtualTable.CursorMoved, "#journal")
    def _cursor_moved(self) -> None:
        at_end = self.table.cursor_position >= len(self.view) - 1
        if at_end != self.following:
            self.following = at_end
            self._show_summary()

    def action_follow(self) -> None:
        self.following = True
        self._to_end()
        self._show_summary()

    # -- filter --------------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one("#journal-filter", Input)
        box.display = True
        box.focus()

    def set_filter_text(self, text: str) -> None:
        """Filter as if typed (the Process screen's journal key)."""
        box = self.query_one("#journal-filter", Input)
        box.value = text
        box.display = bool(text)
        self._apply(text)
        self.table.focus()

    @on(Input.Submitted, "#journal-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        self._apply(event.value)
        box = self.query_one("#journal-filter", Input)
        box.display = bool(box.value)
        self.table.focus()

    @on(Input.Changed, "#journal-filter")
    def _changed(self, event: Input.Changed) -> None:
        """Text terms filter as you type; journalctl terms wait for Enter (a restart)."""
        try:
            wanted = compile_journal_filter(event.value)
        except QueryError:
            return
        if wanted.source_terms == self.filter.source_terms:
            self._use(wanted)

    def _apply(self, text: str) -> None:
        try:
            wanted = compile_journal_filter(text)
        except QueryError as err:
            self.notify(str(err), severity="warning", timeout=4, markup=False)
            return
        restart = wanted.source_terms != self.filter.source_terms
        self._use(wanted)
        if restart:
            self.post_message(self.FilterChanged(wanted))

    def _use(self, wanted: JournalFilter) -> None:
        """Show the rows ``wanted``'s text terms let through, matches highlighted."""
        if wanted.pattern is self.filter.pattern or (
            wanted.pattern is not None
            and self.filter.pattern is not None
            and wanted.pattern.pattern == self.filter.pattern.pattern
        ):
            self.filter = wanted
            return
        self.filter = wanted
        pattern = wanted.pattern
        rows = [JournalRow(row.key, row.entry, self._today, pattern) for row in self.rows]
        self.rows = deque(rows)
        self.view = TableView(rows, row_filter=lambda row: matches(row, pattern))
        self.table.set_view(self.view)
        if self.following:
            self._to_end()
        self._show_summary()

    def action_clear_filter(self) -> None:
        box = self.query_one("#journal-filter", Input)
        if not box.display and not box.value:
            raise SkipAction()
        box.value = ""
        box.display = False
        self._apply("")
        self.table.focus()

    @on(VirtualTable.RowActivated, "#journal")
    def _activated(self, event: VirtualTable.RowActivated) -> None:
        event.stop()
        row = self.view.get(event.key)
        if row is not None:
            self.post_message(self.ShowEntry(row.entry))
