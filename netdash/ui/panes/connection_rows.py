"""Sockets → table rows → a finished view, in the sampling thread (no Textual here).

At 100,000 rows even applying a refresh to the table's view (hashing each changed key, placing
each row) takes longer than the UI thread's 50 ms budget, so the :class:`ConnectionsFeed` does all
of it off the event loop: it turns each engine frame into rows (only for sockets whose record,
rate or owners changed), applies them to a :class:`TableView` of its own with the pane's filter
and sort, and hands the UI a copy ready to show. The UI thread swaps views and repaints.

The pane tells the feed its filter and sort through :attr:`ConnectionsFeed.spec` (set on the UI
thread, read once per tick). A view built under an older spec (the user sorted meanwhile) is
re-sorted by the pane on arrival: rare, and never wrong.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from itertools import compress, pairwise, repeat

from netdash.engine import ZERO_RATE, ConnectionsFrame, SocketRates
from netdash.model import Owner, Socket, SocketSample
from netdash.ui.panes.connection_cells import (
    COLUMN_INDEX,
    COLUMNS,
    QUIET_STATES,
    SORT_KEYS,
    ConnEntry,
    ConnRow,
    accept_fill,
    local_label,
    owner_cells,
    proto_label,
    remote_label,
)
from netdash.ui.tableview import Row, RowFilter, TableView

_SOCK_INODE = operator.attrgetter("sock.inode")
_ROW_OWNERS = operator.attrgetter("owners")

__all__ = [
    "COLUMNS",
    "COLUMN_INDEX",
    "SORT_KEYS",
    "ConnEntry",
    "ConnRow",
    "ConnectionsFeed",
    "ConnectionsUpdate",
    "ViewSpec",
    "accept_fill",
    "build_row",
    "local_label",
    "owner_cells",
    "proto_label",
    "remote_label",
]


def sorted_owners(owners: tuple[Owner, ...]) -> tuple[Owner, ...]:
    """Owners by pid; the same tuple when already sorted (the owner map sorts them), so an
    unchanged owner list is recognised by identity on the next tick."""
    if len(owners) < 2:
        return owners
    if all(a.pid <= b.pid for a, b in pairwise(owners)):
        return owners
    return tuple(sorted(owners, key=lambda o: o.pid))


def build_row(
    key: Hashable, sock: Socket, sample: SocketSample, rate: object, born: float = 0.0
) -> ConnRow:
    """The row of ``sock`` in ``sample`` (its owners and why there are none)."""
    owners = sorted_owners(sample.owners_of(sock))
    reason = None if owners else sample.no_owner_reason(sock)
    quiet = sock.state in QUIET_STATES
    return ConnRow(key, sock, owners, reason, None if quiet else rate, born)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ViewSpec:
    """What the pane shows: the feed applies the same filter and sort to the view it builds."""

    row_filter: RowFilter | None
    sort_column: int | None
    reverse: bool = False

    @classmethod
    def of(cls, view: TableView) -> ViewSpec:
        return cls(view.row_filter, view.sort_column, view.reverse)

    def matches(self, view: TableView) -> bool:
        return (
            view.row_filter is self.row_filter
            and view.sort_column == self.sort_column
            and view.reverse == self.reverse
        )


@dataclass(frozen=True)
class ConnectionsUpdate:
    """What the pane applies on the UI thread.

    ``view`` is the finished table (all rows, filtered and sorted as the feed's spec said), or
    None when nothing in it changed. ``changed`` (rows changed or added) and ``removed`` (keys)
    are the same refresh as a diff, for consumers that keep state of their own.
    """

    frame: ConnectionsFrame
    changed: tuple[ConnRow, ...]
    removed: tuple[Hashable, ...]
    full: bool = False  # the first frame: every row is new
    groups: tuple[Row, ...] | None = None
    built_in: float = 0.0  # seconds the worker spent building rows and the view
    view: TableView | None = None


@dataclass
class _Pending:
    changed: dict[Hashable, ConnRow] = field(default_factory=dict)
    removed: set[Hashable] = field(default_factory=set)
    last_frame: ConnectionsFrame | None = None


GroupBuilder = Callable[[Iterable[ConnRow]], tuple[Row, ...]]


class ConnectionsFeed:
    """Turns engine frames into rows and a finished view; holds them back while paused.

    Runs in the sampling thread. ``paused``, ``spec`` and ``group_builder`` are set by the UI
    thread (plain attribute writes, read once per frame).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.paused = False
        self.spec: ViewSpec | None = None
        self.group_builder: GroupBuilder | None = None
        self._clock = clock
        # presort: every row is also kept in endpoint order (the fixed columns), so that the
        # UI's copy switches its sort to Local or Remote without sorting 100k rows.
        self._view = TableView(sort_keys=SORT_KEYS, sort_column=COLUMN_INDEX["state"], presort=True)
        self._pending = _Pending()
        self._first = True
        self._owners_seen: tuple[object, bool, bool] | None = None
        self._unsettled: set[Hashable] = set()  # see the end of _rows_for
        self._rebound: list[Hashable] = []
        # Views the UI thread replaced: dropped here, so that freeing 100k replaced rows (and
        # the socket records only they still hold) costs this thread, not the event loop.
        self._retired: list[object] = []

    @property
    def view(self) -> TableView:
        """The feed's own view (sampling thread only; the UI gets copies)."""
        return self._view

    def retire(self, *done: object) -> None:
        """Called by the UI thread with what it stopped holding: the view it showed, the update
        it applied. Freed on :meth:`release`: at 100k rows even the containers alone (a frame's
        dicts and tuples of 100k entries) took 30-40 ms to free on the event loop."""
        self._retired.extend(done)

    def release(self) -> None:
        """Free what the UI retired (sampling thread, before it reads the next sample: the old
        rows' socket records are freed before the new ones are built)."""
        self._retired.clear()

    def consume(self, frame: ConnectionsFrame) -> ConnectionsUpdate | None:
        started = self._clock()
        view = self._view
        respecced = self._follow_spec()
        changed, removed = self._rebuild(frame)
        full, self._first = self._first, False
        if full:
            view.replace_all(changed)
        elif changed or removed:
            if self._rebound:  # their fixed sort values changed: out, then in again as new rows
                view.apply((), self._rebound)
            view.apply(changed, removed)
        if self.paused:
            self._hold(frame, changed, removed)
            return None
        if self._pending.last_frame is not None:
            changed, removed = self._release(changed, removed)
            respecced = True
        handed = self._hand_over() if full or changed or removed or respecced else None
        groups = self.group_builder(view.all_rows()) if self.group_builder else None
        return ConnectionsUpdate(
            frame,
            tuple(changed),
            tuple(removed),
            full,
            groups,
            built_in=self._clock() - started,
            view=handed,
        )

    def flush(self) -> ConnectionsUpdate | None:
        """Everything held back while paused, as one update (called on resume)."""
        frame = self._pending.last_frame
        if frame is None:
            return None
        self._follow_spec()
        changed, removed = self._release([], [])
        groups = self.group_builder(self._view.all_rows()) if self.group_builder else None
        return ConnectionsUpdate(
            frame, tuple(changed), tuple(removed), groups=groups, view=self._hand_over()
        )

    # -- the view ------------------------------------------------------------------------------

    def _follow_spec(self) -> bool:
        """Give the feed's view the pane's filter and sort; True when they changed."""
        spec, view = self.spec, self._view
        if spec is None or spec.matches(view):
            return False
        if view.row_filter is not spec.row_filter:
            view.set_filter(spec.row_filter)
        view.set_sort(spec.sort_column, spec.reverse)
        return True

    def _hand_over(self) -> TableView:
        return self._view.copy()

    # -- rows ----------------------------------------------------------------------------------

    def _rebuild(self, frame: ConnectionsFrame) -> tuple[list[ConnRow], list[Hashable]]:
        """New rows for the sockets whose record, rate or owners changed; keys that vanished."""
        view, by_key, diff, sample = self._view, frame.by_key, frame.diff, frame.sample
        owners_seen = (sample.owners, sample.owners_complete, sample.is_root)
        previous, self._owners_seen = self._owners_seen, owners_seen
        in_step = (
            previous is not None
            and view.total + len(diff.added) - len(diff.removed) == len(by_key)
            and all(key in view for key in diff.removed)
        )
        if in_step:
            removed = list(diff.removed)
        else:  # the first frame, or a frame we did not follow: compare everything
            removed = [row.key for row in view.all_rows() if row.key not in by_key]
        if not in_step or previous[1:] != owners_seen[1:]:
            keys: list[Hashable] = list(by_key)  # every "no owner" reason may have changed
        else:
            # Rows whose rate may move although their socket did not (see _unsettled), plus the
            # owners' changes: sets, so that no key is looked at twice.
            extra = self._unsettled
            if previous[0] is not owners_seen[0]:
                extra = extra.union(self._owner_changes(sample))
            # Not the keys removed this tick (walking the set: set.intersection(dict) walks the
            # dict, 20,000 lookups per idle tick at 20k sockets).
            extra = {key for key in extra if key in by_key}
            extra.difference_update(diff.changed)
            keys = [*diff.added, *diff.changed, *extra]
        return self._rows_for(keys, frame), removed

    def _owner_changes(self, sample: SocketSample) -> list[Hashable]:
        """Keys of the rows whose owners may differ in ``sample`` (the owner map changed).

        The owner map reuses the tuple of an inode whose owners did not change, so an identity
        test sorts out nearly every row (~30 ms at 100k rows instead of a rebuild pass); the
        few others are compared properly by :meth:`_rows_for`.
        """
        rows = list(self._view.all_rows())
        # C-level maps, no Python frame per row: a busy machine changes the map on most ticks
        # (any process opening a socket anywhere), so this runs at the sample rate. Inode 0 is
        # never in the map: its rows get (), the one empty tuple, and compare equal by identity.
        now = map(sample.owners.get, map(_SOCK_INODE, rows), repeat((), len(rows)))
        moved = map(operator.is_not, now, map(_ROW_OWNERS, rows))
        return [row.key for row in compress(rows, moved)]

    def _rows_for(self, keys: list[Hashable], frame: ConnectionsFrame) -> list[ConnRow]:
        """The rows of ``keys`` (distinct) that differ from the feed's view, built anew."""
        sample = frame.sample
        socks = list(map(frame.by_key.__getitem__, keys))
        rates = frame.rates
        if isinstance(rates, SocketRates):
            found: Iterable[object] = rates.get_many(keys, socks)
        else:
            found = map(rates.get, keys)
        owners_of, no_owner_reason = sample.owners.get, sample.no_owner_reason
        born_now = 0.0 if self._first else self._clock()
        built: list[ConnRow] = []
        rebound = self._rebound = []  # keys whose endpoint sort value changed (see consume)
        olds = self._view.rows_for(keys)
        for key, sock, old, rate in zip(keys, socks, olds, found, strict=True):
            if sock.state in QUIET_STATES:
                rate = None
            owners = owners_of(sock.inode, ()) if sock.inode else ()
            if len(owners) > 1:
                owners = sorted_owners(owners)
            if old is None:
                born = born_now
                reason = None if owners else no_owner_reason(sock)
            else:
                if old.sock is sock and (old.owners is owners or old.owners == owners):
                    reason = old.reason if owners or old.reason is None else no_owner_reason(sock)
                    if (old.rate is rate or old.rate == rate) and reason == old.reason:
                        continue
                else:
                    reason = None if owners else no_owner_reason(sock)
                born = old.born
            # The old version hands on what depends only on the socket's identity.
            row = ConnRow(key, sock, owners, reason, rate, born, old)
            built.append(row)
            if (
                old is not None
                and sock.proto == "unix"
                and (sock.local_addr, sock.local_port) != (old.sock.local_addr, old.sock.local_port)
            ):
                rebound.append(key)  # a UNIX socket bound after it was first seen
        # The rows whose rate may change on the next tick although their socket does not: a
        # moving connection that goes idle keeps its record (the source reuses it) but its rate
        # drops to zero, and a new one gets its first rate.
        self._unsettled = {
            row.key
            for row in built
            if row.rate is not ZERO_RATE
            and row.sock.tcp is not None
            and row.sock.state not in QUIET_STATES
        }
        return built

    # -- pause ---------------------------------------------------------------------------------

    def _hold(
        self, frame: ConnectionsFrame, changed: list[ConnRow], removed: list[Hashable]
    ) -> None:
        pending = self._pending
        for key in removed:
            pending.changed.pop(key, None)
            pending.removed.add(key)
        for row in changed:
            pending.removed.discard(row.key)
            pending.changed[row.key] = row
        pending.last_frame = frame

    def _release(
        self, changed: list[ConnRow], removed: Iterable[Hashable]
    ) -> tuple[list[ConnRow], list[Hashable]]:
        pending = self._pending
        self._pending = _Pending()
        removed = set(removed)
        merged = {k: r for k, r in pending.changed.items() if k not in removed}
        merged.update((row.key, row) for row in changed)
        return list(merged.values()), [*((pending.removed - merged.keys()) | removed)]
