"""A filtered, sorted view over up to ~100k table rows, with no Textual in sight.

The Connections pane shows up to 100,000 sockets. Textual's ``DataTable`` spends ~185 ms per
``remove_row`` at that size, so netdash keeps the table as plain data here and lets
:class:`netdash.ui.widgets.virtual_table.VirtualTable` paint only the lines on screen.

Why rows live in *slots* (a list indexed by small ints) rather than in a ``dict`` keyed by the
row key: socket keys are tuples, and hashing a 6-tuple costs ~110 ns, with a cache miss or three
when the keys are walked in sorted (that is, random memory) order. Through a slot list the sort
key is ``values.__getitem__`` (C, no hashing). Each slot keeps its row's current sort value and
filter verdict, so :meth:`TableView.apply` hashes the key of each changed row once and never
touches the old version of a row.

Every row is kept in sorted order, hidden or not, and the filter only masks it: a filter that
narrows or widens tests only the rows whose verdict can change, and the visible order is one
C-speed ``compress`` away, never a sort. Columns whose value derives from the row's key
(``SortKey.fixed``: a socket's endpoints) can be kept presorted, so sorting by them costs no
sort at all. Filters and sort keys may work on whole lists (``many``): at 100k rows, Python's
per-row call overhead is most of the cost.

Producers: a view may be built and updated in a worker thread and handed to the UI as a
:meth:`~TableView.copy` (copy-on-write, O(1)); the UI thread then only swaps views. A view handed
to a widget must only be mutated on the UI thread (the widget reads it while painting). Freeing
100k replaced rows costs ~50 ms: a producer should drop the last references in its own thread.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from typing import Any, Protocol

from netdash.ui.columns import SEPARATOR, Column, fit_cell, header_cell, layout_columns

__all__ = [  # Column and the cell helpers live in netdash.ui.columns; re-exported here
    "SEPARATOR",
    "Column",
    "Row",
    "RowFilter",
    "SortKey",
    "TableRow",
    "TableView",
    "fit_cell",
    "header_cell",
    "layout_columns",
    "search_filter",
]


@dataclass(frozen=True, slots=True)
class Row:
    """One table row, built by the producer (engine or pane), immutable so identity means content.

    ``cells`` are display strings, one per column, already passed through
    ``netdash.textsafe.visible``. ``sort_values`` are one comparable value per column (None sorts
    last in both directions); use numbers for numbers and packed bytes for addresses, not display
    strings. ``search_text`` is the lower-case text a filter query is matched against, built once
    by the producer. ``styles`` are optional per-cell Rich style names ("bold red"); ``born`` is the
    ``time.monotonic()`` at which the row first appeared (0.0: not new), for the new-row highlight.
    ``data`` is the producer's own record behind the row (what Enter drills into); the table never
    looks at it.

    A producer with many rows may use its own class instead (see :class:`TableRow`): the
    Connections pane's rows format their cells only when painted.
    """

    key: Hashable
    cells: tuple[str, ...]
    sort_values: tuple[Any, ...]
    search_text: str = ""
    styles: tuple[str | None, ...] | None = None
    born: float = 0.0
    data: Any = field(default=None, compare=False, repr=False)


class TableRow(Protocol):
    """What the view and the widget read from a row; :class:`Row` is the plain implementation.

    Rows must not change once handed over (a new version is a new object), so a view may keep a
    row's sort value and filter verdict, and the widget may keep what it painted.
    """

    @property
    def key(self) -> Hashable: ...

    @property
    def cells(self) -> tuple[str, ...]: ...

    @property
    def styles(self) -> tuple[str | None, ...] | None: ...

    @property
    def born(self) -> float: ...


RowFilter = Callable[[Any], bool]
"""A pure function of the row, evaluated once per added or changed row (never on old versions).

It may run in a worker thread (a producer that keeps a view of its own) as well as the UI thread.
A filter object may also have ``many(rows) -> Iterable[bool]``, the verdicts of a whole list at
once: the view uses it when it tests many rows (a filter typed over 100k rows).
"""


@dataclass(frozen=True, slots=True)
class SortKey:
    """How a column's sort value is computed (None sorts last): ``one(row)``, and optionally
    ``many(rows)`` for a whole column at once.

    ``many`` exists for speed: sorting 100k rows by a new column calls ``one`` 100k times (~40 ms
    of Python calls), where a chain of C-level ``map``/``attrgetter`` calls does it in ~10 ms. It
    must return exactly ``[one(row) for row in rows]``.
    """

    one: Callable[[Any], Any]
    many: Callable[[list[Any]], list[Any]] | None = None
    #: The value never changes for a key (it derives from the key: a socket's endpoints), so a
    #: view built with ``presort=True`` keeps every row in this column's order too, and sorting
    #: by it costs no sort. A promise: a producer whose row's value does change must remove the
    #: key and add the row again. Descending order by such a column is the exact mirror of
    #: ascending (tied rows too).
    fixed: bool = False


def search_filter(query: str) -> RowFilter | None:
    """The predicate of a ``/`` query: a case-insensitive substring of ``Row.search_text``.

    Returns None for an empty query (no filter). Pass the same ``query`` as ``filter_text`` to
    :meth:`TableView.set_filter` so a query that only grew narrows the current view.
    """
    needle = query.strip().lower()
    if not needle:
        return None
    return lambda row: needle in row.search_text


#: Re-insert moved/added rows by binary search up to this many, else re-sort the whole view.
#: Measured at 100k rows sorted by a float (CPU ms, median of 5, busy 2-core VM): 100 moved rows
#: 14 incremental vs 42 full, 1,000: 28 vs 27, 2,000: 44 vs 48, 4,000: 61 vs 46.
INCREMENTAL_LIMIT = 1_500


class TableView:
    """Rows by key plus the filtered, sorted list of what the table shows.

    Positions (``row_at(i)``, ``position_of(key)``, ``len(view)``) count only visible rows, in
    display order. Mutate it with :meth:`replace_all`, :meth:`apply` (a refresh diff),
    :meth:`set_filter` and :meth:`set_sort`; then tell the widget (``VirtualTable.refresh_rows``).

    Rows whose sort values tie keep their previous relative order (every sort is stable and starts
    from the current order), so equal rows do not shuffle between refreshes. Without a sort column
    rows are shown in order of arrival.

    Every row is kept in sorted order, hidden or not, and the filter only masks it: a filter that
    changes (a view key, a letter typed, Esc) tests the rows whose verdict can change and then
    selects the visible ones with one C-speed ``compress`` (~3 ms at 100k), never a sort.

    ``sort_keys`` gives one :class:`SortKey` (or function) per column computing a row's sort value
    (None sorts last); without it a row's value is ``row.sort_values[column]``. Only the sort
    column's values are kept, one per row: a producer need not build every column's value.

    A producer may keep a view in its own thread, apply each refresh there, and hand the UI a
    :meth:`copy`: the UI thread then only swaps views.
    """

    def __init__(
        self,
        rows: Iterable[Any] = (),
        *,
        sort_column: int | None = None,
        reverse: bool = False,
        row_filter: RowFilter | None = None,
        sort_keys: Sequence[SortKey | Callable[[Any], Any]] | None = None,
        presort: bool = False,
    ) -> None:
        self._filter = row_filter
        self._filter_text: str | None = None
        self._sort_column = sort_column
        self._reverse = reverse
        self._sort_keys = (
            None
            if sort_keys is None
            else tuple(key if isinstance(key, SortKey) else SortKey(key) for key in sort_keys)
        )
        self._fixed = (
            [i for i, key in enumerate(self._sort_keys) if key.fixed]
            if presort and self._sort_keys is not None
            else []
        )
        self.replace_all(rows)

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of visible rows (after the filter)."""
        return len(self._order)

    @property
    def total(self) -> int:
        """Number of rows held, visible or not."""
        return len(self._slot_of)

    @property
    def sort_column(self) -> int | None:
        return self._sort_column

    @property
    def reverse(self) -> bool:
        return self._reverse

    @property
    def row_filter(self) -> RowFilter | None:
        return self._filter

    @property
    def filter_text(self) -> str | None:
        return self._filter_text

    def row_at(self, position: int) -> Any:
        """The visible row at ``position`` (0-based, display order); IndexError past the end."""
        return self._rows[self._order[position]]

    def key_at(self, position: int) -> Hashable:
        return self.row_at(position).key

    def get(self, key: Hashable) -> Any | None:
        """The row with ``key``, visible or filtered out; None if the view does not hold it."""
        slot = self._slot_of.get(key)
        return None if slot is None else self._rows[slot]

    def __contains__(self, key: object) -> bool:
        return key in self._slot_of

    def rows_for(self, keys: Iterable[Hashable]) -> list[Any | None]:
        """``[self.get(key) for key in keys]``, with the lookups at C speed."""
        rows = self._rows
        return [None if slot is None else rows[slot] for slot in map(self._slot_of.get, keys)]

    def position_of(self, key: Hashable) -> int | None:
        """Display position of ``key``, None when absent or filtered out.

        A C-speed scan of the order (~0.5 ms at 100k): the widget asks once per change (where is
        the cursor now?). Asked again and again without a change, the view builds an index.
        """
        slot = self._slot_of.get(key)
        if slot is None or not self._shown[slot]:
            return None
        if self._positions is not None:
            return self._positions[slot]
        self._scans += 1
        if self._scans <= _SCANS_BEFORE_INDEX:
            return self._order.index(slot)
        positions = array("q", bytes(8 * len(self._rows)))
        for position, visible_slot in enumerate(self._order):
            positions[visible_slot] = position
        self._positions = positions
        return positions[slot]

    def keys(self) -> list[Hashable]:
        """Visible keys in display order (O(n): for tests and exports, not per frame)."""
        return [row.key for row in self]

    def __iter__(self) -> Iterator[Any]:
        """Visible rows in display order."""
        rows = self._rows
        return (rows[slot] for slot in self._order)

    def all_rows(self) -> Iterator[Any]:
        """Every row held, visible or not, in no particular order."""
        return (row for row in self._rows if row is not None)

    def copy(self) -> TableView:
        """An independent view of the same rows, filter and order, at no cost.

        Copy-on-write: both views share their lists until one changes them, and then only the
        lists it changes are copied: a refresh that only changes cells copies the rows (~1 ms at
        100k rows), one that adds or removes rows the key index too (~5 ms; twice the memory of
        it for a moment). A producer that hands a copy to the UI on each refresh and then does
        not change (an idle machine) keeps one set of lists, not two. Rows are shared, never
        copied: they never change once handed over.
        """
        other = TableView.__new__(TableView)
        other.__dict__.update(self.__dict__)
        other._positions = None
        other._scans = 0
        self._shared, other._shared = set(_PARTS), set(_PARTS)
        return other

    def _own(self, *parts: str) -> None:
        """Copy those of ``parts`` this view still shares with a copy, before changing them in
        place."""
        shared = self._shared
        for part in parts:
            if part in shared:
                shared.discard(part)
                value = getattr(self, part)
                if part == "_presorted":
                    value = {column: order.copy() for column, order in value.items()}
                elif value is not None:
                    value = value.copy() if isinstance(value, list | dict) else value[:]
                setattr(self, part, value)

    # -- mutating ----------------------------------------------------------------------------

    def replace_all(self, rows: Iterable[Any]) -> None:
        """Drop every row and hold ``rows`` instead (first load, or a source that restarted).

        Built column by column rather than row by row: ~3x faster than ``apply`` on an empty view.
        A key given twice keeps its last row.
        """
        unique = list(rows)
        numbers = list(range(len(unique)))  # shared int objects: slots, orders and arrival
        slot_of = dict(zip([row.key for row in unique], numbers, strict=True))
        if len(slot_of) != len(unique):  # rare: hash the keys a second time only then
            unique = list({row.key: row for row in unique}.values())
            numbers = list(range(len(unique)))
            slot_of = {row.key: slot for slot, row in zip(numbers, unique, strict=True)}
        count = len(unique)
        keep = self._filter
        self._rows: list[Any] = unique  # by slot; None marks a free slot
        self._slot_of: dict[Hashable, int] = slot_of
        self._arrival = array("q", numbers)  # by slot: the sort key when unsorted
        self._next_arrival = count
        # by slot: the sort column's value (0 in free slots); None until needed, after sorting by
        # a presorted column (set_sort)
        self._values: list[Any] | None = (
            numbers.copy() if self._sort_column is None else self._values_of(unique)
        )
        self._shown = (  # by slot: passes the filter (0 in free slots)
            bytearray(b"\x01") * count
            if keep is None
            else bytearray(map(bool, _verdicts(keep, unique)))
        )
        self._free: list[int] = []
        self._shared: set[str] = set()  # the _PARTS still shared with a copy (see copy)
        self._all: list[int] = self._sorted(numbers.copy())  # every row's slot, in sorted order
        self._presorted: dict[int, list[int]] = {  # fixed columns: every slot in their order
            column: self._sorted(numbers.copy(), self._fixed_values(column), reverse=False)
            for column in self._fixed
        }
        self._select()

    def apply(self, changed: Iterable[Any], removed: Iterable[Hashable] = ()) -> bool:
        """Apply a refresh diff: rows added or changed (by key), keys removed (removal wins).

        A changed row that kept its sort value keeps its place; the others are taken out and put
        back in order — one by one (binary search, merged by slicing) when few, by a stable
        re-sort when many. The old version of a row is never looked at (its sort value and filter
        verdict are kept per slot), which matters: at 100k rows each cold object costs ~100 ns.
        Unknown removed keys are ignored. Returns True when the display order changed (rows
        appeared, vanished or moved), False when only cells did.
        """
        self._own("_rows", "_values", "_shown")
        if self._values is None:  # sorted by a presorted column since: see set_sort
            self._values = self._column_values()
        removed = removed if isinstance(removed, list | tuple | set) else list(removed)
        if removed:
            self._own(*_INDEX_PARTS)
        rows, values, shown = self._rows, self._values, self._shown
        slot_of = self._slot_of
        getter = self._getter()
        keep = self._filter
        moved: list[int] = []  # slots to (re)insert into the sorted order
        taken: set[int] = set()  # slots to take out of it
        shown_moved = False  # a visible row appeared, vanished or moved
        if keep is None and getter is not None:
            changed, shown_moved = self._apply_unfiltered(changed, moved, taken)
        added: list[int] = []
        # Sort values and verdicts in bulk (SortKey.many, a filter's many): at 100k changed rows
        # two Python calls per row were a third of the time.
        changed = changed if isinstance(changed, list) else list(changed)
        new_values = self._values_of(changed) if getter is not None else repeat(None)
        verdicts = _verdicts(keep, changed) if keep is not None else repeat(True)
        for row, value, keeps in zip(changed, new_values, verdicts, strict=False):
            slot = slot_of.get(row.key)
            if slot is None:
                self._own(*_INDEX_PARTS)
                slot_of = self._slot_of
                slot = self._add(row, value, keeps)
                moved.append(slot)
                added.append(slot)
                shown_moved = shown_moved or bool(shown[slot])
                continue
            rows[slot] = row
            if keep is not None:
                now = 1 if keeps else 0
                if now != shown[slot]:
                    shown[slot] = now
                    shown_moved = True
            if getter is not None and value != values[slot]:
                values[slot] = value
                taken.add(slot)
                moved.append(slot)
                shown_moved = shown_moved or bool(shown[slot])
        freed: set[int] = set()
        for key in removed:
            slot = slot_of.pop(key, None)
            if slot is not None:
                shown_moved = shown_moved or bool(shown[slot])
                freed.add(slot)
                self._free_slot(slot)
        taken |= freed
        if moved or taken:
            kept = list(filterfalse(taken.__contains__, self._all)) if taken else self._all
            self._all = self._insert(kept, moved)
        if added or freed:
            self._presort(added, freed)
        if not shown_moved:
            return False
        self._select()
        return True

    def _apply_unfiltered(
        self, changed: Iterable[Any], moved: list[int], taken: set[int]
    ) -> tuple[list[Any], bool]:
        """The common case of :meth:`apply` (sorted, no filter) as a lean loop: ~30% faster.

        Returns the rows it did not handle (new keys) for the general loop, and whether a row
        moved.
        """
        rows, values = self._rows, self._values
        lookup = self._slot_of.get
        new: list[Any] = []
        changed = changed if isinstance(changed, list) else list(changed)
        for row, value in zip(changed, self._values_of(changed), strict=True):
            slot = lookup(row.key)
            if slot is None:
                new.append(row)
                continue
            rows[slot] = row
            if value != values[slot]:
                values[slot] = value
                taken.add(slot)
                moved.append(slot)
        return new, bool(moved)

    def set_filter(
        self,
        row_filter: RowFilter | None,
        *,
        narrowing: bool = False,
        widening: bool = False,
        filter_text: str | None = None,
        narrowed_by: RowFilter | None = None,
    ) -> None:
        """Show only rows for which ``row_filter`` is true (None: all rows).

        When the new filter can only hide rows — the caller says so with ``narrowing=True``, or
        both the old and new ``filter_text`` are given and the old one is a substring of the new
        one (a ``/`` query that only grew) — only the visible rows are tested, and only with
        ``narrowed_by`` if given (what the new filter adds: the visible rows pass the rest).
        When it can only show more (``widening=True``: a term removed, a view that shows more),
        only the hidden rows are tested. Either way nothing is re-sorted.
        """
        grew = (
            filter_text is not None
            and self._filter_text is not None
            and self._filter is not None
            and self._filter_text in filter_text
        )
        self._filter = row_filter
        self._filter_text = filter_text
        self._own("_shown")  # changed in place below; the other lists are not
        rows, shown = self._rows, self._shown
        if row_filter is None:
            self._shown = bytearray(map(_is_row, rows))
        elif narrowing or grew:
            # In slot order, not display order: after a sort the display order is random in
            # memory, and at 55k rows that walk took 40 ms instead of 10.
            test = narrowed_by if narrowed_by is not None else row_filter
            if not self._free and shown.count(0) == 0:  # all shown (no filter yet): in bulk
                self._shown = bytearray(map(bool, _verdicts(test, rows)))
            else:
                slots = list(compress(range(len(rows)), shown))
                verdicts = _verdicts(test, list(map(rows.__getitem__, slots)))
                for slot in compress(slots, map(operator.not_, verdicts)):
                    shown[slot] = 0
        elif widening:
            hidden = compress(range(len(rows)), map(operator.not_, shown))
            slots = [slot for slot in hidden if rows[slot] is not None]
            verdicts = _verdicts(row_filter, list(map(rows.__getitem__, slots)))
            for slot in compress(slots, verdicts):
                shown[slot] = 1
        elif self._free:
            self._shown = bytearray(row is not None and bool(row_filter(row)) for row in rows)
        else:
            self._shown = bytearray(map(bool, _verdicts(row_filter, rows)))
        self._select()

    def set_sort(self, column: int | None, reverse: bool = False) -> None:
        """Sort by ``column`` (an index into ``sort_keys``), or by arrival when None.

        A stable re-sort even when only the direction changes (not ``list.reverse``): tied rows
        keep their places instead of swapping on every click, and the None block stays last.
        """
        if column == self._sort_column and reverse == self._reverse:
            return
        presorted = self._presorted.get(column) if column is not None else None
        if column != self._sort_column:
            self._sort_column = column
            # A presorted column's values are only needed by the next apply (placing changed
            # rows), which computes them then, in the producer's thread: a key press that sorts
            # by Local does not compute 100k endpoint keys on the UI thread (~20 ms).
            self._values = self._column_values() if presorted is None else None
        self._reverse = reverse
        if presorted is not None:
            # No sort of 100k values (60-100 ms here when the current order is unrelated to
            # the column): the rows are kept in this column's order, ties in their order of
            # arrival; descending is its mirror (ties too), the None block still last.
            self._all = self._mirrored(presorted) if reverse else presorted.copy()
        else:
            # Shown rows first (in display order), then the hidden ones: ties keep what the
            # user saw.
            shown = self._shown
            ordered = self._order + [slot for slot in self._all if not shown[slot]]
            self._all = self._sorted(ordered)
        self._select()

    # -- internals ---------------------------------------------------------------------------

    def _select(self) -> None:
        """The visible rows of the sorted order (C speed; a copy when nothing is hidden)."""
        everything = self._all
        if self._shown.count(0) == len(self._free):
            self._order = everything.copy()
        else:
            self._order = list(compress(everything, map(self._shown.__getitem__, everything)))
        self._positions: array[int] | None = None  # by slot, built by position_of if asked
        self._scans = 0

    def _getter(self) -> Callable[[Any], Any] | None:
        """The sort column's value of a row; None when sorted by arrival."""
        column = self._sort_column
        if column is None:
            return None
        if self._sort_keys is not None:
            return self._sort_keys[column].one
        return lambda row: row.sort_values[column]

    def _values_of(self, rows: list[Any]) -> list[Any]:
        """The sort column's value of each of ``rows`` (no free slots), a whole column at once."""
        column = self._sort_column
        assert column is not None
        key = self._sort_keys[column] if self._sort_keys is not None else None
        if key is not None and key.many is not None:
            return key.many(rows)
        getter = self._getter()
        return list(map(getter, rows))

    def _add(self, row: Any, value: Any, keeps: object) -> int:
        """A new row in a free slot, with its sort value and filter verdict."""
        arrival = self._next_arrival
        self._next_arrival += 1
        if self._sort_column is None:
            value = arrival
        shown = 1 if keeps else 0
        if self._free:
            slot = self._free.pop()
            self._rows[slot] = row
            self._arrival[slot] = arrival
            self._values[slot] = value
            self._shown[slot] = shown
        else:
            slot = len(self._rows)
            self._rows.append(row)
            self._arrival.append(arrival)
            self._values.append(value)
            self._shown.append(shown)
        self._slot_of[row.key] = slot
        return slot

    def _free_slot(self, slot: int) -> None:
        self._rows[slot] = None
        self._values[slot] = 0  # never compared (in no order list), and not a None to partition
        self._shown[slot] = 0
        self._free.append(slot)

    def _column_values(self) -> list[Any]:
        """The sort key of every slot, walked in slot order (sequential in memory)."""
        if self._sort_column is None:
            return list(self._arrival)
        rows = self._rows
        if not self._free:
            return self._values_of(rows)
        values = iter(self._values_of([row for row in rows if row is not None]))
        return [0 if row is None else next(values) for row in rows]

    def _presort(self, added: list[int], freed: set[int]) -> None:
        """Keep the fixed columns' orders: rows gone out, new rows merged in."""
        for column in self._fixed:
            order = self._presorted[column]
            if freed:
                order = list(filterfalse(freed.__contains__, order))
            if added:
                one = self._sort_keys[column].one  # type: ignore[index]
                if len(added) <= INCREMENTAL_LIMIT:
                    order = self._merge(order, added, _ValuesOf(self._rows, one), False)
                else:
                    values = self._fixed_values(column)
                    order.extend(self._sorted(added, values, reverse=False))
                    order = self._sorted(order, values, reverse=False)
            self._presorted[column] = order

    def _fixed_values(self, column: int) -> list[Any]:
        """A fixed column's value of every slot (0 in free slots)."""
        key = self._sort_keys[column]  # type: ignore[index]
        rows = self._rows
        present = [row for row in rows if row is not None] if self._free else rows
        values = key.many(present) if key.many is not None else list(map(key.one, present))
        if not self._free:
            return values
        found = iter(values)
        return [0 if row is None else next(found) for row in rows]

    def _mirrored(self, order: list[int]) -> list[int]:
        """``order`` (ascending, Nones last) descending, the None block still last."""
        values: Any = self._values
        if values is None:
            values = _ValuesOf(self._rows, self._sort_keys[self._sort_column].one)  # type: ignore[index]
        end = len(order)
        while end and values[order[end - 1]] is None:
            end -= 1
        return order[end - 1 :: -1] + order[end:] if end else order.copy()

    def _insert(self, order: list[int], slots: list[int]) -> list[int]:
        """``order`` (sorted) with ``slots`` put in their places: binary search when few, else
        one stable sort of the sorted run followed by the sorted newcomers (a merge)."""
        if len(slots) <= INCREMENTAL_LIMIT:
            return self._merge(order, slots)
        return self._sorted(order + self._sorted(slots))  # a new list: order may be shared

    def _sorted(
        self, slots: list[int], values: Any = None, reverse: bool | None = None
    ) -> list[int]:
        """``slots`` in display order: a stable sort, Nones last whatever the direction.

        By the sort column's values and direction unless ``values`` (indexable by slot) and
        ``reverse`` are given (a fixed column's order).
        """
        if values is None:
            values = self._values
            if self._sort_column is None:
                slots.sort(key=values.__getitem__)
                return slots
        if reverse is None:
            reverse = self._reverse
        if len(slots) < 4096 or None in values:
            present = [slot for slot in slots if values[slot] is not None]
            absent = [slot for slot in slots if values[slot] is None]
        else:
            present, absent = slots, []
        present.sort(key=values.__getitem__, reverse=reverse)
        if absent:
            present.extend(absent)
        return present

    def _merge(
        self,
        order: list[int],
        slots: list[int],
        values: Any = None,
        descending: bool | None = None,
    ) -> list[int]:
        """``order`` (sorted) with ``slots`` put in their places: binary search + slicing."""
        if not slots:
            return order
        if values is None:
            values = self._values
            descending = self._reverse and self._sort_column is not None
        assert descending is not None
        merged: list[int] = []
        start = 0
        for slot in self._sorted(slots, values, descending):
            cut = _insertion_point(order, values, values[slot], start, descending)
            merged.extend(order[start:cut])
            merged.append(slot)
            start = cut
        merged.extend(order[start:])
        return merged


#: What a view holds by slot and may share with a copy (see TableView.copy), and those of them
#: that only adding or removing rows changes (with the rows, values and verdicts).
#: (The sorted order, _all, is never changed in place: each change makes a new list.)
_PARTS = ("_rows", "_slot_of", "_arrival", "_values", "_shown", "_free", "_presorted")
_INDEX_PARTS = ("_slot_of", "_arrival", "_free", "_presorted")


class _ValuesOf:
    """``values[slot]`` computed from the row: a fixed column's values for a few binary searches,
    without a list of 100k values."""

    __slots__ = ("_one", "_rows")

    def __init__(self, rows: list[Any], one: Callable[[Any], Any]) -> None:
        self._rows = rows
        self._one = one

    def __getitem__(self, slot: int) -> Any:
        return self._one(self._rows[slot])


#: position_of scans the order this many times before building an index (tests ask for all).
_SCANS_BEFORE_INDEX = 8


def _verdicts(keep: RowFilter, rows: list[Any]) -> Iterable[object]:
    """``keep`` of each row: through ``keep.many(rows)`` when the filter has it (a filter that
    can test a whole list faster, see :data:`RowFilter`), else row by row."""
    many = getattr(keep, "many", None)
    return many(rows) if many is not None else map(keep, rows)


def _is_row(row: object) -> bool:
    return row is not None


def _insertion_point(
    order: Sequence[int], values: list[Any], value: Any, lo: int, descending: bool
) -> int:
    """First position in ``order[lo:]`` after every slot that sorts before or ties ``value``."""
    hi = len(order)
    while lo < hi:
        mid = (lo + hi) // 2
        other = values[order[mid]]
        if value is None:
            after = True
        elif other is None:
            after = False
        else:
            after = not (other < value) if descending else not (value < other)
        if after:
            lo = mid + 1
        else:
            hi = mid
    return lo
