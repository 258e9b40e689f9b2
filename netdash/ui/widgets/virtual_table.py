"""A table that paints only the lines on screen, for views of up to ~100k rows.

Why not ``DataTable``: at 100k rows it takes ~10 s to load and each ``remove_row`` is O(n), so a
refresh blocks the event loop for minutes. Here the data is a plain
:class:`~netdash.ui.tableview.TableView` (filtered and sorted outside Textual) and this widget is
a ``ScrollView`` whose ``render_line`` draws one row: one text ``Segment`` per line where no cell
carries a style (half the bytes over SSH of one segment per cell), from an LRU cache of ``Strip``s.

How an owner (a pane) drives it::

    table = VirtualTable(COLUMNS)
    table.set_view(view)                 # once, or whenever it builds a new TableView
    view.apply(changed_rows, removed)    # on each refresh, on the UI thread
    table.refresh_rows()                 # repaints the lines whose row changed or moved
    table.replace_view(next_view)        # or: a refreshed copy built elsewhere (a worker)

The cursor follows its row *key* through refreshes, filters and sorts; when the row vanishes the
cursor stays at the same position (clamped). Messages: :class:`VirtualTable.CursorMoved`,
:class:`VirtualTable.RowActivated` (Enter or a double click; the footer shows "Drill down" unless
the table is built with another ``activate_label``, None to leave the footer to the owner), and
:class:`VirtualTable.SortChanged` (a header click, ``cycle_sort``, ``reverse_sort``).

Cells are never parsed as markup: ``[red]x[/]`` shows as typed. Control characters are made
visible here too (``netdash.textsafe.visible``), in case a producer forgot.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from typing import ClassVar

from rich.errors import StyleSyntaxError
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from netdash.ui.tableview import (
    SEPARATOR,
    Column,
    Row,
    TableView,
    fit_cell,
    header_cell,
    layout_columns,
)

#: What each painted line showed last: (row object, under the cursor?, highlighted as new?).
Painted = tuple[Row | None, bool, bool]


def _looks_same(old: Row | None, new: Row | None) -> bool:
    """Whether two versions of a line's row paint the same (a new object is often no change)."""
    if old is new:
        return True
    if old is None or new is None:
        return False
    return old.key == new.key and old.cells == new.cells and old.styles == new.styles


@lru_cache(maxsize=256)
def cell_style(name: str) -> Style:
    """The Rich style a producer named for a cell; a name Rich cannot parse shows plain."""
    try:
        return Style.parse(name)
    except StyleSyntaxError:
        return Style()


#: Matches of a filter inside a cell (a row's ``highlight``): the journal's text filter.
HIGHLIGHT = Style(color="black", bgcolor="yellow", bold=True)


def highlighted(text: str, pattern: re.Pattern[str], style: Style, marked: Style) -> list[Segment]:
    """``text`` (already fitted to its cell) as segments, the pattern's matches in ``marked``."""
    segments: list[Segment] = []
    at = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        if end == start:
            continue
        if start > at:
            segments.append(Segment(text[at:start], style))
        segments.append(Segment(text[start:end], marked))
        at = end
    if at < len(text):
        segments.append(Segment(text[at:], style))
    return segments


class VirtualTable(ScrollView, can_focus=True):
    """A sticky header line over the rows of a :class:`TableView`; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "cursor_first", "First row", show=False),
        Binding("end", "cursor_last", "Last row", show=False),
        Binding("enter", "activate", "Drill down"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--new",
    }
    """
    | Class | Description |
    | :- | :- |
    | `virtual-table--header` | The sticky line of column titles. |
    | `virtual-table--cursor` | The row under the cursor. |
    | `virtual-table--new` | Rows that appeared less than `new_row_seconds` ago. |
    """

    DEFAULT_CSS = """
    VirtualTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        background: $surface;
        color: $foreground;
        & > .virtual-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .virtual-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .virtual-table--new {
            background: $success 25%;
        }
        &:focus > .virtual-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """

    class CursorMoved(Message):
        """The cursor is on another row (``key`` None: the table became empty)."""

        def __init__(self, virtual_table: VirtualTable, key: Hashable | None) -> None:
            super().__init__()
            self.virtual_table = virtual_table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.virtual_table

    class RowActivated(Message):
        """Enter (or a double click) on the row with ``key``: the owner drills down."""

        def __init__(self, virtual_table: VirtualTable, key: Hashable) -> None:
            super().__init__()
            self.virtual_table = virtual_table
            self.key = key

        @property
        def control(self) -> VirtualTable:
            return self.virtual_table

    class SortChanged(Message):
        """The user clicked a header: the view is now sorted by ``column_key``."""

        def __init__(self, virtual_table: VirtualTable, column_key: str, reverse: bool) -> None:
            super().__init__()
            self.virtual_table = virtual_table
            self.column_key = column_key
            self.reverse = reverse

        @property
        def control(self) -> VirtualTable:
            return self.virtual_table

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        view: TableView | None = None,
        new_row_seconds: float = 3.0,
        activatable: bool = True,
        activate_label: str | None = "Drill down",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``columns`` in display order; ``view`` the rows (an empty view until ``set_view``).

        Enter posts :class:`RowActivated` and shows in the footer as ``activate_label``; pass
        ``activate_label=None`` to keep Enter but leave the footer to the owner (at 80 columns
        every label counts), or ``activatable=False`` for a table whose rows lead nowhere.
        """
        super().__init__(name=name, id=id, classes=classes)
        if activate_label != "Drill down":
            # Per-instance footer label: each widget owns a copy of the class's bindings map.
            self._bindings.key_to_bindings["enter"] = [
                Binding("enter", "activate", activate_label or "", show=activate_label is not None)
            ]
        self._columns = tuple(columns)
        self._view = view if view is not None else TableView()
        self.new_row_seconds = new_row_seconds
        self._activatable = activatable
        self._layout: list[tuple[int, int]] = []
        self._hidden: tuple[str, ...] = ()
        self._layout_for: tuple[int, tuple[str, ...]] = (-1, ())
        self._cursor_key: Hashable | None = None
        self._cursor_position = -1
        self._strips: LRUCache[tuple[object, ...], tuple[Row, Strip]] = LRUCache(2048)
        self._painted: dict[int, Painted] = {}  # by screen line, below the header
        self._painted_header: tuple[object, ...] = ()
        self._styles: tuple[Style, ...] = ()
        self._epoch = 0
        self._now = time.monotonic()
        self._expiry: Timer | None = None
        self._expiry_at = 0.0
        self._next_expiry = 0.0

    # -- public API --------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    @property
    def view(self) -> TableView:
        return self._view

    @property
    def cursor_key(self) -> Hashable | None:
        """Key of the row under the cursor; None when the view is empty."""
        return self._cursor_key

    @property
    def cursor_position(self) -> int:
        """Display position of the cursor; -1 when the view is empty."""
        return self._cursor_position

    @property
    def cursor_row(self) -> Row | None:
        """The row under the cursor (its current version), or None."""
        if self._cursor_key is None:
            return None
        return self._view.get(self._cursor_key)

    @property
    def visible_columns(self) -> list[Column]:
        """The columns that fit the current width, left to right."""
        return [self._columns[i] for i, _ in self._current_layout()]

    @property
    def hidden_columns(self) -> tuple[str, ...]:
        """Keys of columns never shown whatever the width (Accept-Q outside the listening view)."""
        return self._hidden

    @hidden_columns.setter
    def hidden_columns(self, keys: Iterable[str]) -> None:
        hidden = tuple(keys)
        if hidden != self._hidden:
            self._hidden = hidden
            self._epoch += 1  # cached strips were cut for the old columns
            self.refresh()

    def set_view(self, view: TableView) -> None:
        """Show ``view`` instead of the current one; the cursor keeps its key if ``view`` has it."""
        self._view = view
        self._strips.clear()
        self._painted.clear()
        self.refresh_rows()
        self.refresh()

    def replace_view(self, view: TableView) -> None:
        """Show ``view``, the next version of the same table (a producer's refreshed copy).

        Unlike :meth:`set_view` it keeps what was painted and the strip cache, so only the lines
        that differ are repainted; the cursor keeps its key.
        """
        self._view = view
        self.refresh_rows()

    def refresh_rows(self, changed_keys: Iterable[Hashable] | None = None) -> None:
        """Take in what the owner did to the view; call after ``apply``/``set_filter``/``set_sort``.

        Repaints only the on-screen lines whose text, cell styles, cursor or new-row state differ
        from what they showed: a producer that re-sends an unchanged row costs no output.
        ``changed_keys`` is accepted for owners that have the set at hand but is not needed (and
        not worth building at 100k rows): the widget compares the ~40 lines on screen itself.
        """
        del changed_keys  # see the docstring: comparing what is on screen is cheaper and exact
        self._update_virtual_size()
        moved_key = self._follow_cursor_key()
        self._repaint_changed_lines()
        if moved_key:
            self.post_message(self.CursorMoved(self, self._cursor_key))

    def tick(self) -> None:
        """Repaint lines whose new-row highlight expired (the widget also does it on a timer)."""
        self._repaint_changed_lines()

    def move_cursor_to_key(self, key: Hashable) -> bool:
        """Put the cursor on ``key`` and scroll to it; False when the view does not show it."""
        position = self._view.position_of(key)
        if position is None:
            return False
        self._move_cursor(position)
        return True

    def move_cursor_to(self, position: int) -> None:
        """Put the cursor at display ``position`` (clamped) and scroll to it."""
        self._move_cursor(position)

    def sort_by(self, column: str | int | None, reverse: bool = False) -> None:
        """Sort the view by a column (key or index; None: arrival order), cursor kept on its row."""
        index = self._column_index(column) if column is not None else None
        self._view.set_sort(index, reverse)
        self.refresh_rows()

    def cycle_sort(self) -> None:
        """Sort by the next shown column (ascending), as the ``s`` key does; posts SortChanged."""
        shown = [index for index, _ in self._current_layout()]
        if not shown:
            return
        current = self._view.sort_column
        after = shown.index(current) + 1 if current in shown else 0
        self._user_sort(shown[after % len(shown)], False)

    def reverse_sort(self) -> None:
        """Flip the direction of the current sort; posts SortChanged."""
        column = self._view.sort_column
        if column is not None:
            self._user_sort(column, not self._view.reverse)

    # -- actions -----------------------------------------------------------------------------

    def action_cursor_up(self) -> None:
        self._move_cursor(self._cursor_position - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self._cursor_position + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self._cursor_position - self._rows_on_screen())

    def action_page_down(self) -> None:
        self._move_cursor(self._cursor_position + self._rows_on_screen())

    def action_cursor_first(self) -> None:
        self._move_cursor(0)

    def action_cursor_last(self) -> None:
        self._move_cursor(len(self._view) - 1)

    def action_activate(self) -> None:
        if self._cursor_key is not None:
            self.post_message(self.RowActivated(self, self._cursor_key))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide "Drill down" from the footer of a table whose rows lead nowhere."""
        return self._activatable or action != "activate"

    # -- events ------------------------------------------------------------------------------

    def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            self._click_header(offset.x)
            return
        position = self.scroll_offset.y + offset.y - 1
        if position >= len(self._view):
            return
        self._move_cursor(position)
        if event.chain == 2:
            self.action_activate()

    def _on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()

    def _on_mount(self, event: events.Mount) -> None:
        self.refresh_rows()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # -- painting ----------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        self._now = time.monotonic()
        self._next_expiry = 0.0
        self._take_styles()
        strips = super().render_lines(crop)
        if self._next_expiry:
            self._schedule_expiry(self._next_expiry)
        return strips

    def _take_styles(self) -> None:
        """Read the component styles once per frame; new ones make every cached strip stale."""
        styles = (
            self.rich_style,
            self.get_component_rich_style("virtual-table--header"),
            self.get_component_rich_style("virtual-table--cursor"),
            self.get_component_rich_style("virtual-table--new"),
        )
        if styles != self._styles:
            self._styles = styles
            self._epoch += 1  # theme or focus changed

    def render_line(self, y: int) -> Strip:
        if not self._styles:
            self._take_styles()
        width = self._width
        if y == 0:
            return self._render_header(width)
        position = self.scroll_offset.y + y - 1
        if position >= len(self._view):
            self._painted[y] = (None, False, False)
            return Strip.blank(width, self._styles[0])
        row = self._view.row_at(position)
        is_cursor = position == self._cursor_position
        is_new = self._is_new(row)
        if is_new:
            expires = row.born + self.new_row_seconds
            if not self._next_expiry or expires < self._next_expiry:
                self._next_expiry = expires
        self._painted[y] = (row, is_cursor, is_new)
        cache_key = (row.key, width, is_cursor, is_new, self._epoch)
        cached = self._strips.get(cache_key)
        if cached is not None and _looks_same(cached[0], row):
            return cached[1]
        strip = self._render_row(row, width, is_cursor, is_new)
        self._strips.discard(cache_key)  # LRUCache.set never overwrites a present key
        self._strips[cache_key] = (row, strip)
        return strip

    def _render_row(self, row: Row, width: int, is_cursor: bool, is_new: bool) -> Strip:
        """One row as one Segment, split only around cells that carry their own style.

        Under the cursor the cursor style wins over a cell's own colours: the row reads as one
        bar, as in htop and DataTable.
        """
        base, _, cursor, new = self._styles
        line_style = base + new if is_new else base
        if is_cursor:
            line_style = line_style + cursor
        cells = row.cells
        styles = row.styles
        highlight = getattr(row, "highlight", None)  # (cell index, compiled pattern) or None
        segments: list[Segment] = []
        plain: list[str] = []
        for n, (index, cell_width) in enumerate(self._current_layout()):
            if n:
                plain.append(" " * SEPARATOR)
            text = fit_cell(
                cells[index] if index < len(cells) else "", cell_width, self._align(index)
            )
            name = styles[index] if styles is not None and index < len(styles) else None
            marked = highlight is not None and highlight[0] == index
            if name is None and not marked:
                plain.append(text)
                continue
            if plain:
                segments.append(Segment("".join(plain), line_style))
                plain = []
            own = cell_style(name) if name is not None else Style()
            style = (base + own + cursor) if is_cursor else (line_style + own)
            if marked:
                segments.extend(highlighted(text, highlight[1], style, style + HIGHLIGHT))
            else:
                segments.append(Segment(text, style))
        if plain:
            segments.append(Segment("".join(plain), line_style))
        return Strip(segments).adjust_cell_length(width, line_style)

    def _header_state(self) -> tuple[object, ...]:
        return (self._view.sort_column, self._view.reverse, self._width, self._epoch)

    def _render_header(self, width: int) -> Strip:
        header_style = self._styles[0] + self._styles[1]
        self._painted_header = self._header_state()
        view = self._view
        parts = []
        for index, cell_width in self._current_layout():
            arrow = ""
            if view.sort_column == index:
                arrow = "▼" if view.reverse else "▲"
            column = self._columns[index]
            parts.append(header_cell(column.title, arrow, cell_width, column.align))
        text = (" " * SEPARATOR).join(parts)
        return Strip([Segment(text, header_style)]).adjust_cell_length(width, header_style)

    def _repaint_changed_lines(self) -> None:
        """Refresh each on-screen line whose row, cursor or new-row state differs from its paint."""
        self._now = time.monotonic()
        width = self._width
        if self._header_state() != self._painted_header:  # the sort arrow moved
            self.refresh(Region(0, 0, width, 1))
        top = self.scroll_offset.y
        count = len(self._view)
        for y in range(1, self.scrollable_content_region.height):
            position = top + y - 1
            if position < count:
                row = self._view.row_at(position)
                now: Painted = (row, position == self._cursor_position, self._is_new(row))
            else:
                now = (None, False, False)
            then = self._painted.get(y)
            if then is None or then[1:] != now[1:] or not _looks_same(then[0], now[0]):
                self.refresh(Region(0, y, width, 1))

    def _is_new(self, row: Row) -> bool:
        return bool(row.born) and self._now - row.born < self.new_row_seconds

    def _schedule_expiry(self, when: float) -> None:
        """One timer, only while a highlighted row is on screen: idle tables stay idle."""
        if self._expiry is not None and self._expiry_at <= when:
            return
        if self._expiry is not None:
            self._expiry.stop()
        self._expiry_at = when
        delay = max(when - time.monotonic(), 0.0) + 0.02
        self._expiry = self.set_timer(delay, self._on_expiry)

    def _on_expiry(self) -> None:
        self._expiry = None
        self.tick()

    # -- cursor and geometry -----------------------------------------------------------------

    def _move_cursor(self, position: int) -> None:
        count = len(self._view)
        if count == 0:
            return
        position = min(max(position, 0), count - 1)
        self._cursor_position = position
        key = self._view.key_at(position)
        moved = key != self._cursor_key
        self._cursor_key = key
        if not self._scroll_to_cursor():
            self._repaint_changed_lines()  # the old and new cursor lines
        if moved:
            self.post_message(self.CursorMoved(self, key))

    def _follow_cursor_key(self) -> bool:
        """Find the cursor's row after the view changed; True when it is now on another key."""
        view = self._view
        count = len(view)
        if count == 0:
            moved = self._cursor_key is not None
            self._cursor_key, self._cursor_position = None, -1
            return moved
        position = view.position_of(self._cursor_key) if self._cursor_key is not None else None
        if position is None:
            position = min(max(self._cursor_position, 0), count - 1)
        on_screen_at = self._cursor_position - self.scroll_offset.y
        key = view.key_at(position)
        moved = key != self._cursor_key
        self._cursor_key, self._cursor_position = key, position
        if 0 <= on_screen_at < self._rows_on_screen():
            # Keep the cursor's row on the same screen line when rows come and go above it.
            self.scroll_to(y=position - on_screen_at, animate=False)
        return moved

    def _scroll_to_cursor(self) -> bool:
        """Scroll just enough to show the cursor row; True if the view scrolled."""
        top = self.scroll_offset.y
        rows = self._rows_on_screen()
        position = self._cursor_position
        if position < top:
            target = position
        elif position >= top + rows:
            target = position - rows + 1
        else:
            return False
        self.scroll_to(y=target, animate=False)
        return True

    @property
    def _width(self) -> int:
        """Cells available to the columns: the vertical scrollbar takes its share."""
        return self.scrollable_content_region.width

    def _rows_on_screen(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _update_virtual_size(self) -> None:
        """Tell the scrollbar how many lines there are, without a layout when none is needed.

        Assigning ``virtual_size`` (a layout reactive) repaints every line: one new row far
        below the screen would resend the whole table over SSH on every tick. Unless the table's
        height depends on its content (``height: auto``), only the scrollbar needs to know, which
        is what Textual itself does in ``Widget._size_updated(layout=False)``.
        """
        natural = sum(c.width for c in self._columns) + SEPARATOR * max(len(self._columns) - 1, 0)
        size = Size(natural, len(self._view) + 1)
        if size == self.virtual_size:
            return
        height = self.styles.height
        if not self.is_mounted or height is None or height.is_auto:
            self.virtual_size = size
            return
        self.set_reactive(VirtualTable.virtual_size, size)
        self._scroll_update(size)

    def _current_layout(self) -> list[tuple[int, int]]:
        width = self._width
        if (width, self._hidden) != self._layout_for:
            self._layout = layout_columns(self._columns, width, self._hidden)
            self._layout_for = (width, self._hidden)
        return self._layout

    def _align(self, index: int) -> str:
        return self._columns[index].align

    def _column_index(self, column: str | int) -> int:
        if isinstance(column, int):
            return column
        for index, candidate in enumerate(self._columns):
            if candidate.key == column:
                return index
        raise KeyError(f"no column {column!r}")

    def _click_header(self, x: int) -> None:
        left = 0
        for index, cell_width in self._current_layout():
            if left <= x < left + cell_width + SEPARATOR:
                view = self._view
                reverse = not view.reverse if view.sort_column == index else False
                self._user_sort(index, reverse)
                return
            left += cell_width + SEPARATOR

    def _user_sort(self, index: int, reverse: bool) -> None:
        self.sort_by(index, reverse)
        self.post_message(self.SortChanged(self, self._columns[index].key, reverse))
