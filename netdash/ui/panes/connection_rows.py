"""Sockets → table rows, in the sampling thread (no Textual here).

Formatting 100,000 rows is too much work for the UI thread's 50 ms budget, so the
:class:`ConnectionsFeed` turns each engine frame into rows off the event loop, rebuilding only
rows whose socket, rate or owners changed, and hands the UI a ready-made diff.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from netdash.engine import ByteRate, ConnectionsFrame
from netdash.model import (
    NO_OWNER_DENIED,
    NO_OWNER_NEEDS_ROOT,
    NO_OWNER_NOT_ACCEPTED,
    NO_OWNER_ORPHAN,
    NO_OWNER_REQUEST,
    NO_OWNER_TIME_WAIT,
    Owner,
    Socket,
    SocketSample,
)
from netdash.textsafe import visible
from netdash.ui.format import (
    STATE_ORDER,
    address_sort_key,
    endpoint,
    human_rate,
    milliseconds,
    short_state,
)
from netdash.ui.tableview import Column, Row

COLUMNS: tuple[Column, ...] = (
    Column("proto", "Proto", width=5, min_width=5, priority=3),
    Column("state", "State", width=10, min_width=10, priority=0),
    # 21 = "255.255.255.255:65535": an IPv4 endpoint is never cut; IPv6 gets the flex space.
    Column("local", "Local", width=21, min_width=21, priority=0, flex=True),
    Column("remote", "Remote", width=21, min_width=21, priority=0, flex=True),
    Column("recv_q", "Recv-Q", width=6, min_width=6, align="right", priority=7),
    Column("send_q", "Send-Q", width=6, min_width=6, align="right", priority=7),
    Column("rtt", "RTT ms", width=6, min_width=6, align="right", priority=5),
    Column("retrans", "Retr", width=4, min_width=4, align="right", priority=6),
    Column("rx", "In/s", width=6, min_width=6, align="right", priority=4),
    Column("tx", "Out/s", width=6, min_width=6, align="right", priority=4),
    Column("accept", "Accept-Q", width=14, min_width=9, align="right", priority=5),
    Column("pid", "PID", width=7, min_width=5, align="right", priority=2),
    Column("process", "Process", width=12, min_width=10, priority=1, flex=True),
)
COLUMN_INDEX: dict[str, int] = {column.key: index for index, column in enumerate(COLUMNS)}

#: Short reasons for the Process cell; the full sentence is in the detail view and on Enter.
_SHORT_REASONS = {
    NO_OWNER_TIME_WAIT: "(time-wait)",
    NO_OWNER_REQUEST: "(syn-recv)",
    NO_OWNER_NOT_ACCEPTED: "(not accepted)",
    NO_OWNER_ORPHAN: "(orphaned)",
    NO_OWNER_NEEDS_ROOT: "(needs root)",
    NO_OWNER_DENIED: "(hidden)",
}

STATE_STYLES: dict[str, str] = {
    "ESTABLISHED": "green",
    "LISTEN": "cyan",
    "TIME_WAIT": "dim",
    "CLOSE_WAIT": "bold yellow",
    "SYN_SENT": "yellow",
    "SYN_RECV": "yellow",
    "NEW_SYN_RECV": "yellow",
    "LAST_ACK": "yellow",
    "FIN_WAIT1": "yellow",
    "CLOSING": "yellow",
}
_UNIX_PROTO = {"stream": "u_str", "dgram": "u_dgr", "seqpacket": "u_seq"}


@dataclass(frozen=True, slots=True)
class ConnEntry:
    """Everything known about one row: the filter's subject and the drill-down's source."""

    sock: Socket
    owners: tuple[Owner, ...]
    reason: str | None  # why there is no owner, when there is none
    rate: ByteRate | None
    text: str = ""  # lower-case search text (the filter's free-text target)


def proto_label(sock: Socket) -> str:
    if sock.proto == "unix":
        return _UNIX_PROTO.get(sock.sock_type or "", "unix")
    return sock.proto + ("6" if sock.family == "inet6" else "")


def local_label(sock: Socket) -> str:
    if sock.proto == "unix":
        return visible(sock.local_addr) if sock.local_addr else "*"
    return endpoint(sock.local_addr, sock.local_port, sock.interface)


def remote_label(sock: Socket) -> str:
    if sock.proto == "unix":
        return f"peer {sock.peer_inode}" if sock.peer_inode else "*"
    return endpoint(sock.remote_addr, sock.remote_port)


def accept_fill(sock: Socket) -> str:
    """A listener's accept queue against its backlog: ``3/128 2%`` (ss: Recv-Q/Send-Q).

    A full accept queue means the kernel is dropping new connections (the seeds' SYN flood and
    slow-accept checklists): the one number to look at on a listening socket.
    """
    if sock.state != "LISTEN" or sock.proto != "tcp":
        return ""
    if not sock.send_q:
        return f"{sock.recv_q}/0"
    return f"{sock.recv_q}/{sock.send_q} {100 * sock.recv_q // sock.send_q}%"


def _accept_style(sock: Socket) -> str | None:
    if sock.state != "LISTEN" or not sock.send_q or not sock.recv_q:
        return None
    return "bold red" if sock.recv_q >= sock.send_q else "bold yellow"


def owner_cells(owners: tuple[Owner, ...], reason: str | None) -> tuple[str, str]:
    if not owners:
        return "", _SHORT_REASONS.get(reason or "", "(none)")
    first = owners[0]
    name = visible(first.comm)
    others = len({o.pid for o in owners}) - 1
    return str(first.pid), f"{name} +{others}" if others else name


def build_entry(sock: Socket, sample: SocketSample, rate: ByteRate | None) -> ConnEntry:
    owners = tuple(sorted(sample.owners_of(sock), key=lambda o: (o.pid, o.fd)))
    reason = None if owners else sample.no_owner_reason(sock)
    return ConnEntry(sock, owners, reason, rate)


def build_row(key: Hashable, entry: ConnEntry, born: float) -> Row:
    sock = entry.sock
    info = sock.tcp
    # A listener moves no bytes and has no round trip: blank beats a misleading 0.
    connected = sock.state not in ("LISTEN", "TIME_WAIT", "UNCONN")
    rate = entry.rate if connected else None
    has_rtt = info is not None and connected
    pid_cell, process_cell = owner_cells(entry.owners, entry.reason)
    cells = (
        proto_label(sock),
        short_state(sock.state),
        local_label(sock),
        remote_label(sock),
        str(sock.recv_q),
        str(sock.send_q),
        milliseconds(info.rtt_us) if has_rtt and info else "",
        str(info.total_retrans) if info is not None and connected else "",
        human_rate(rate.rx) if rate else "",
        human_rate(rate.tx) if rate else "",
        accept_fill(sock),
        pid_cell,
        process_cell,
    )
    first = entry.owners[0] if entry.owners else None
    sort_values = (
        (sock.proto, sock.family),
        STATE_ORDER.get(sock.state, 99),
        address_sort_key(sock.family, sock.local_addr, sock.local_port),
        address_sort_key(sock.family, sock.remote_addr, sock.remote_port),
        sock.recv_q,
        sock.send_q,
        info.rtt_us if has_rtt and info else None,
        info.total_retrans if info is not None and connected else None,
        rate.rx if rate else None,
        rate.tx if rate else None,
        sock.recv_q / sock.send_q if sock.state == "LISTEN" and sock.send_q else None,
        first.pid if first else None,
        first.comm.lower() if first else None,
    )
    users = " ".join(o.user or "" for o in entry.owners)
    text = " ".join((*cells, sock.state, users)).lower()
    return Row(
        key=key,
        cells=cells,
        sort_values=sort_values,
        search_text=text,
        styles=_row_styles(sock, entry),
        born=born,
        data=ConnEntry(sock, entry.owners, entry.reason, rate, text),
    )


def _row_styles(sock: Socket, entry: ConnEntry) -> tuple[str | None, ...] | None:
    state_style = STATE_STYLES.get(sock.state)
    retrans_style = "bold red" if sock.tcp is not None and sock.tcp.total_retrans else None
    queue_style = "bold yellow" if sock.recv_q and sock.state != "LISTEN" else None
    owner_style = "dim italic" if not entry.owners else None
    if not (state_style or retrans_style or queue_style or owner_style or sock.recv_q):
        return None
    return (
        None,
        state_style,
        None,
        None,
        queue_style,
        None,
        None,
        retrans_style,
        None,
        None,
        owner_style,
        owner_style,
    )


# ------------------------------------------------------------------------------------ the feed


@dataclass(frozen=True)
class ConnectionsUpdate:
    """What the pane applies on the UI thread: rows changed or added, keys removed."""

    frame: ConnectionsFrame
    changed: tuple[Row, ...]
    removed: tuple[Hashable, ...]
    full: bool = False  # replace everything (first frame)
    groups: tuple[Row, ...] | None = None
    built_in: float = 0.0  # seconds the worker spent building rows


@dataclass
class _Pending:
    changed: dict[Hashable, Row] = field(default_factory=dict)
    removed: set[Hashable] = field(default_factory=set)
    last_frame: ConnectionsFrame | None = None


GroupBuilder = Callable[[Mapping[Hashable, Row]], tuple[Row, ...]]


class ConnectionsFeed:
    """Turns engine frames into row diffs; holds them back while the view is paused.

    Runs in the sampling thread. ``paused`` and ``group_builder`` are set by the UI thread (plain
    attribute writes, read once per frame).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.rows: dict[Hashable, Row] = {}
        self.paused = False
        self.group_builder: GroupBuilder | None = None
        self._clock = clock
        self._pending = _Pending()
        self._first = True
        self._last_owners: Mapping[int, tuple[Owner, ...]] | None = None
        # Rows replaced or removed last tick, kept one tick longer: the UI thread drops its
        # references when it applies the update, and at 100k rows freeing them there doubled
        # the cost of a refresh. Released here, they are freed in the sampling thread.
        self._graveyard: list[Row] = []

    def consume(self, frame: ConnectionsFrame) -> ConnectionsUpdate | None:
        started = self._clock()
        changed, removed = self._rebuild(frame)
        full, self._first = self._first, False
        if self.paused:
            self._hold(frame, changed, removed)
            return None
        if self._pending.last_frame is not None:
            changed, removed = self._release(changed, removed)
        groups = self.group_builder(self.rows) if self.group_builder else None
        return ConnectionsUpdate(
            frame,
            tuple(changed.values()),
            tuple(removed),
            full,
            groups,
            built_in=self._clock() - started,
        )

    def flush(self) -> ConnectionsUpdate | None:
        """Everything held back while paused, as one update (called on resume)."""
        frame = self._pending.last_frame
        if frame is None:
            return None
        changed, removed = self._release({}, set())
        groups = self.group_builder(self.rows) if self.group_builder else None
        return ConnectionsUpdate(frame, tuple(changed.values()), tuple(removed), groups=groups)

    def _rebuild(self, frame: ConnectionsFrame) -> tuple[dict[Hashable, Row], set[Hashable]]:
        rows, sample, rates = self.rows, frame.sample, frame.rates
        owners_moved = sample.owners is not self._last_owners
        self._last_owners = sample.owners
        now = self._clock()
        changed: dict[Hashable, Row] = {}
        graveyard: list[Row] = []
        for key, sock in frame.by_key.items():
            row = rows.get(key)
            rate = rates.get(key)
            if row is not None:
                entry: ConnEntry = row.data
                if (
                    entry.sock is sock
                    and entry.rate == rate
                    and (not owners_moved or entry.owners == _sorted_owners(sample, sock))
                ):
                    continue
                born = row.born
                graveyard.append(row)
            else:
                born = 0.0 if self._first else now
            row = build_row(key, build_entry(sock, sample, rate), born)
            rows[key] = row
            changed[key] = row
        removed = {key for key in frame.diff.removed if key in rows}
        if len(rows) - len(removed) != len(frame.by_key):  # keys we never saw removed: resync
            removed |= {key for key in rows if key not in frame.by_key}
        for key in removed:
            graveyard.append(rows.pop(key))
        self._graveyard = graveyard
        return changed, removed

    def _hold(
        self, frame: ConnectionsFrame, changed: dict[Hashable, Row], removed: set[Hashable]
    ) -> None:
        pending = self._pending
        for key in removed:
            pending.changed.pop(key, None)
            pending.removed.add(key)
        for key, row in changed.items():
            pending.removed.discard(key)
            pending.changed[key] = row
        pending.last_frame = frame

    def _release(
        self, changed: dict[Hashable, Row], removed: set[Hashable]
    ) -> tuple[dict[Hashable, Row], set[Hashable]]:
        pending = self._pending
        self._pending = _Pending()
        merged_removed = (pending.removed - changed.keys()) | removed
        merged = {k: r for k, r in pending.changed.items() if k not in removed}
        merged.update(changed)
        return merged, merged_removed


def _sorted_owners(sample: SocketSample, sock: Socket) -> tuple[Owner, ...]:
    owners = sample.owners_of(sock)
    return owners if len(owners) < 2 else tuple(sorted(owners, key=lambda o: (o.pid, o.fd)))
