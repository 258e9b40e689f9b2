"""The rows feed on scripted samples: what it rebuilds, what it hands over, pause, specs.

The samples behave like the real sources: a socket that did not change is the very same record
in the next sample, and the owner map is the same object until an owner changes (then a copy
that keeps the other inodes' tuples). The feed relies on both for its cheap idle ticks.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Hashable

from netdash.engine import ZERO_RATE, ConnectionsTracker
from netdash.model import Owner, Socket, SocketSample, TcpInfo
from netdash.ui.panes.connection_cells import COLUMN_INDEX, ConnRow
from netdash.ui.panes.connection_rows import ConnectionsFeed, ConnectionsUpdate, ViewSpec

STATE, LOCAL = COLUMN_INDEX["state"], COLUMN_INDEX["local"]


def info(acked: int = 0, received: int = 0) -> TcpInfo:
    fields = dict.fromkeys(f.name for f in dataclasses.fields(TcpInfo))
    fields.update({name: 0 for name, value in fields.items() if value is None})
    fields.update(rtt_us=250, bytes_acked=acked, bytes_received=received)
    return TcpInfo(**fields)  # type: ignore[arg-type]


class Machine:
    """Sockets and owners that change only when a test says so (records reused otherwise)."""

    def __init__(self) -> None:
        self.socks: dict[int, Socket] = {}
        self.owners: dict[int, tuple[Owner, ...]] = {}
        self.at = 100.0

    def connect(self, port: int, state: str = "ESTABLISHED", comm: str = "app") -> None:
        inode = 5000 + port
        self.socks[port] = Socket(
            "tcp", "inet", state, "10.0.0.1", port, "10.0.0.9", 443, 0, 0, inode, tcp=info()
        )
        self.owners = {**self.owners, inode: (Owner(pid=100 + port % 3, comm=comm),)}

    def send(self, port: int, acked: int) -> None:
        sock = self.socks[port]
        self.socks[port] = dataclasses.replace(sock, tcp=info(acked=acked))

    def sample(self) -> SocketSample:
        self.at += 1.0
        return SocketSample(
            sockets=tuple(self.socks.values()), owners=self.owners, taken_at=self.at
        )


class Rig:
    """A machine, the engine's tracker and the feed, ticking with a fake clock."""

    def __init__(self, ports: range = range(1000, 1010)) -> None:
        self.machine = Machine()
        for port in ports:
            self.machine.connect(port)
        self.tracker = ConnectionsTracker()
        self.feed = ConnectionsFeed(clock=lambda: self.machine.at)

    def tick(self) -> ConnectionsUpdate | None:
        self.feed.release()
        return self.feed.consume(self.tracker.update(self.machine.sample()))

    def settled(self) -> ConnectionsUpdate:
        """Two ticks: the first builds every row, the second gives every row its first rate."""
        first = self.tick()
        second = self.tick()
        assert first is not None and first.full and second is not None
        connected = [s for s in self.machine.socks.values() if s.state == "ESTABLISHED"]
        assert len(second.changed) == len(connected)  # no rate yet -> a rate of 0
        assert all(row.rate is ZERO_RATE for row in second.changed)  # (listeners have none)
        return second

    def key(self, port: int) -> Hashable:
        return self.machine.socks[port].key


def test_first_frame_builds_every_row_and_hands_over_a_sorted_copy() -> None:
    rig = Rig()
    rig.machine.connect(80, state="LISTEN")
    update = rig.tick()
    assert update is not None and update.full and update.view is not None
    assert update.view is not rig.feed.view  # the UI gets its own copy
    assert len(update.view) == 11 and update.view.sort_column == STATE
    assert update.view.row_at(0).sock.state == "LISTEN"  # sorted by state: listeners first
    assert all(row.born == 0.0 for row in update.view)  # present from the start: not "new"


def test_an_idle_tick_rebuilds_nothing_and_hands_over_no_view() -> None:
    rig = Rig()
    rig.settled()
    idle = rig.tick()
    assert idle is not None
    assert idle.changed == () and idle.removed == () and idle.view is None


def test_a_moving_socket_rebuilds_its_row_only_and_keeps_what_identifies_it() -> None:
    rig = Rig()
    before = rig.settled().view
    assert before is not None
    old = before.get(rig.key(1003))
    rig.machine.send(1003, acked=4096)
    update = rig.tick()
    assert update is not None and [row.key for row in update.changed] == [rig.key(1003)]
    (row,) = update.changed
    assert row.rate is not None and row.rate.tx == 4096.0
    assert row.text is old.text  # handed on, not rebuilt
    idle = rig.tick()  # the socket goes quiet: same record, but its rate drops to zero
    assert idle is not None and [r.rate for r in idle.changed] == [ZERO_RATE]
    assert rig.tick().changed == ()  # and then it is settled


def test_an_owner_change_rebuilds_that_row_only() -> None:
    rig = Rig()
    rig.settled()
    inode = rig.machine.socks[1005].inode
    rig.machine.owners = {**rig.machine.owners, inode: (Owner(pid=7, comm="nginx"),)}
    update = rig.tick()
    assert update is not None and [row.key for row in update.changed] == [rig.key(1005)]
    assert "nginx" in update.changed[0].text and update.changed[0].cells[-1] == "nginx"


def test_sockets_that_vanish_leave_the_view_and_new_ones_are_highlighted() -> None:
    rig = Rig()
    rig.settled()
    gone = rig.key(1002)
    del rig.machine.socks[1002]
    rig.machine.connect(2000)
    update = rig.tick()
    assert update is not None and update.view is not None
    assert update.removed == (gone,) and gone not in update.view
    new = update.view.get(rig.key(2000))
    assert new is not None and new.born == rig.machine.at  # appeared now: highlighted


def test_the_feed_builds_its_view_with_the_panes_filter_and_sort() -> None:
    rig = Rig()
    rig.machine.connect(80, state="LISTEN")
    rig.settled()
    spec = ViewSpec(lambda row: row.sock.state == "ESTABLISHED", LOCAL, reverse=True)
    rig.feed.spec = spec
    update = rig.tick()
    assert update is not None and update.view is not None  # a new spec: a new view
    view = update.view
    assert spec.matches(view) and len(view) == 10
    ports = [row.sock.local_port for row in view]
    assert ports == sorted(ports, reverse=True)


def test_pause_holds_every_change_back_and_resume_delivers_them_at_once() -> None:
    rig = Rig()
    rig.settled()
    rig.feed.paused = True
    rig.machine.send(1001, acked=100)
    assert rig.tick() is None
    gone = rig.key(1004)
    del rig.machine.socks[1004]
    rig.machine.send(1001, acked=300)
    rig.machine.connect(3000)
    assert rig.tick() is None
    rig.feed.paused = False
    update = rig.tick()
    assert update is not None and update.view is not None
    changed = {row.key: row for row in update.changed}
    assert changed[rig.key(1001)].sock is rig.machine.socks[1001]  # its latest version
    assert rig.key(3000) in changed and update.removed == (gone,)
    assert len(update.view) == 10 and rig.key(3000) in update.view and gone not in update.view


def test_retired_views_are_freed_by_the_sampling_thread() -> None:
    rig = Rig()
    update = rig.tick()
    assert update is not None and update.view is not None
    retired = weakref.ref(update.view)
    rig.feed.retire(update.view, update)
    del update
    gc.collect()
    assert retired() is not None  # the feed holds it until its next tick
    rig.feed.release()
    gc.collect()
    assert retired() is None


def test_a_unix_socket_bound_after_it_was_seen_moves_in_the_local_order() -> None:
    rig = Rig(range(0))
    for inode, path in ((11, "/run/b"), (12, None), (13, "/run/d")):
        rig.machine.socks[inode] = Socket(
            "unix", "unix", "LISTEN", path, None, None, None, 0, 0, inode
        )
    rig.feed.spec = ViewSpec(None, STATE)
    rig.tick()
    rig.machine.socks[12] = dataclasses.replace(rig.machine.socks[12], local_addr="/run/a")
    update = rig.tick()
    assert update is not None and update.view is not None
    view = update.view
    view.set_sort(LOCAL)  # from the feed's presorted order
    assert [row.sock.local_addr for row in view] == ["/run/a", "/run/b", "/run/d"]
    assert isinstance(view.row_at(0), ConnRow)


def test_the_panes_filter_agrees_row_by_row_and_in_bulk_and_narrows_by_what_it_adds() -> None:
    from netdash.query import compile_query
    from netdash.ui.panes.connection_filter import ConnFilter, split_query

    rig = Rig()
    rig.machine.connect(80, state="LISTEN", comm="nginx")
    rig.machine.connect(81, comm="Web Worker")
    unix = Socket("unix", "unix", "ESTABLISHED", "/run/x", None, None, None, 0, 0, 77)
    rig.machine.socks[77] = unix
    rig.tick()
    rows = list(rig.feed.view.all_rows())
    estab = frozenset({"ESTABLISHED"})
    for text in ("100", "10 !state:listen", "NGINX", "'web worker'", "10.0.0.1:80", "::1", "x y"):
        query = compile_query(text)
        needles, checks = split_query(query)
        for unix_on in (False, True):
            for states in (None, estab):
                keep = ConnFilter(
                    show_unix=unix_on, states=states, group=None, checks=checks, needles=needles
                )
                expected = [
                    (unix_on or r.sock.proto != "unix")
                    and (states is None or r.sock.state in states)
                    and query(r)
                    for r in rows
                ]
                assert [keep(row) for row in rows] == expected, text
                assert keep.many(rows) == expected, text
    assert split_query(compile_query("Nginx !state:listen")) == (("nginx",), ANY_ONE)
    view_only = ConnFilter(show_unix=False, states=None, group=None)
    narrower = ConnFilter(show_unix=False, states=estab, group=None)
    added = narrower.added_to(view_only)
    assert added.states == estab and added.show_unix  # the UNIX test is not repeated
    typed = ConnFilter(show_unix=False, states=estab, group=None, needles=("5",))
    grown = ConnFilter(show_unix=False, states=estab, group=None, needles=("5", "x"))
    assert grown.added_to(typed).needles == ("x",) and grown.added_to(typed).states is None
    assert typed.added_to(None) is typed


class _AnyOne:
    """Equal to any 1-tuple (a compiled check is a fresh function)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, tuple) and len(other) == 1


ANY_ONE = _AnyOne()


def test_groups_counted_in_bulk_match_a_row_by_row_count() -> None:
    from collections import Counter

    from netdash.ui.panes.connection_filter import ConnFilter
    from netdash.ui.panes.connection_groups import GROUP_FIELDS, GroupEntry, group_rows, group_value

    rig = Rig()
    rig.machine.connect(80, state="LISTEN", comm="nginx")
    rig.machine.connect(81, state="NEW_SYN_RECV")  # counted with SYN_RECV
    rig.machine.socks[77] = Socket(
        "unix", "unix", "ESTABLISHED", "/run/x", None, None, None, 0, 0, 77
    )
    rig.settled()
    rig.machine.send(1003, acked=2048)
    rig.machine.send(1004, acked=1024)
    rig.tick()
    rows = list(rig.feed.view.all_rows())
    keep = ConnFilter(show_unix=True, states=None, group=None, checks=())
    for field in GROUP_FIELDS:
        groups = {row.key[1]: row for row in group_rows(field, rows, keep)}
        expected: dict[object, list] = {}
        for row in rows:  # the obvious way: one label per row
            identity, label, _ = group_value(field, row)
            group = expected.setdefault(identity, [label, 0, 0.0, Counter()])
            group[1] += 1
            group[2] += row.rate.tx if row.rate else 0.0
            group[3][row.sock.state] += 1
        assert groups.keys() == expected.keys()
        for identity, (label, count, tx, states) in expected.items():
            cells = groups[identity].cells
            assert (cells[0], int(cells[1])) == (label, count)
            assert groups[identity].sort_values[3] == tx
            entry = GroupEntry(field, identity, label)
            assert entry.many(rows) == [entry.matches(row) for row in rows]
            assert sum(entry.many(rows)) == count
            assert all(f"{n}" in cells[4] for n in states.values())
