"""One socket's row in the Connections table: a small object, formatted only when looked at.

At 100,000 sockets a row that carried its 13 cell strings, 13 sort values and a search string
cost ~1.5 KB and ~20 µs to build (150 MB, and seconds per refresh when every counter moved). Only
~40 rows are ever on screen, so a :class:`ConnRow` holds what it is made of (the socket, its
owners, its byte rate) plus its search text, and builds its cells when first painted and a
column's sort value when the view sorts by it (:data:`SORT_KEYS`). Rows never change once built
(a new socket record makes a new row), so what they cache stays true. No Textual here: rows are
built in the sampling thread.

The search text is what identifies a socket (protocol, state, endpoints, pid, process, user), not
its counters: a row must not blink in and out of a free-text filter as its RTT moves from 0.52
to 0.48 ms, and text that does not depend on counters is built once per socket, not per change
(the feed hands it from one version of a row to the next).

The search text (~120 bytes a row) is built eagerly on purpose: built when first asked, the
first key typed into a filter at 100,000 rows took 300 ms (the benchmark's key-press target is
50 ms). The endpoints' sort values are not kept on the row (they were ~130 bytes a row, 13 MB
at 100k): the view keeps every row presorted by them (see ``SortKey.fixed``), so they are only
computed for a row being placed, and for every row only while the table is sorted by one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Hashable
from itertools import repeat
from operator import add, attrgetter, eq
from typing import Any

from netdash.engine import ByteRate
from netdash.model import (
    NO_OWNER_DENIED,
    NO_OWNER_NEEDS_ROOT,
    NO_OWNER_NOT_ACCEPTED,
    NO_OWNER_ORPHAN,
    NO_OWNER_REQUEST,
    NO_OWNER_TIME_WAIT,
    Owner,
    Socket,
)
from netdash.textsafe import visible
from netdash.ui.format import STATE_ORDER, endpoint, human_rate, milliseconds, short_state
from netdash.ui.tableview import Column, SortKey

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

#: States in which a socket moves no bytes and has no round trip: blank beats a misleading 0.
QUIET_STATES = frozenset({"LISTEN", "TIME_WAIT", "UNCONN"})


class ConnRow:
    """One socket as a table row, and the drill-down's entry (``row.data`` is the row itself).

    ``owners`` are sorted by (pid, fd); ``reason`` says why there is none; ``rate`` is None for
    sockets that move no bytes (listeners, TIME_WAIT) and until a second sample. ``born`` is the
    ``time.monotonic()`` the row first appeared (0.0: present from the start).

    ``like`` is the previous version of the row, if any: what depends only on the socket's
    identity (the search text, the endpoints' sort values) is taken from it instead of rebuilt.
    """

    __slots__ = ("_cells", "born", "key", "owners", "rate", "reason", "sock", "text")

    def __init__(
        self,
        key: Hashable,
        sock: Socket,
        owners: tuple[Owner, ...],
        reason: str | None,
        rate: ByteRate | None,
        born: float = 0.0,
        like: ConnRow | None = None,
    ) -> None:
        self.key = key
        self.sock = sock
        self.owners = owners
        self.reason = reason
        self.rate = rate
        self.born = born
        self._cells: tuple[str, ...] | None = None
        if like is not None and sock.proto != "unix":
            # The key holds protocol, addresses and ports: the endpoints cannot have changed.
            # The first test is the common case, inlined (states are the source's constants).
            same = like.owners is owners and like.sock.state is sock.state
            if (same and like.reason == reason) or like.same_identity(sock, owners, reason):
                self.text: str = like.text
                return
        #: Lower-case search text (the free-text filter's target); see the module docstring.
        self.text = identity_text(sock, owners, reason)

    def __repr__(self) -> str:
        return f"ConnRow({self.key!r}, {self.sock.state})"

    @property
    def data(self) -> ConnRow:
        return self

    @property
    def cells(self) -> tuple[str, ...]:
        """The 13 display strings of :data:`COLUMNS`, built on first use (painting) and kept."""
        cells = self._cells
        if cells is None:
            cells = self._cells = format_cells(self)
        return cells

    @property
    def styles(self) -> tuple[str | None, ...] | None:
        return row_styles(self)

    @property
    def search_text(self) -> str:
        return self.text

    def same_identity(self, sock: Socket, owners: tuple[Owner, ...], reason: str | None) -> bool:
        """Whether a new version of this row, for ``sock`` with ``owners``, has the same search
        text (the key already fixes protocol and endpoints)."""
        old = self.sock
        return (
            old.state == sock.state
            and (self.owners is owners or self.owners == owners)
            and self.reason == reason
            and (
                sock.proto != "unix"
                or (old.local_addr, old.peer_inode, old.sock_type)
                == (sock.local_addr, sock.peer_inode, sock.sock_type)
            )
        )

    @property
    def sort_values(self) -> tuple[Any, ...]:
        """Every column's sort value (for tests and exports; the view asks one column at a time)."""
        return tuple(key.one(self) for key in SORT_KEYS)


#: The name screens and filters use for what a row tells about its socket (the row itself).
ConnEntry = ConnRow


# ---------------------------------------------------------------------------------- the cells


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


def owner_cells(owners: tuple[Owner, ...], reason: str | None) -> tuple[str, str]:
    if not owners:
        return "", _SHORT_REASONS.get(reason or "", "(none)")
    first = owners[0]
    name = visible(first.comm)
    others = len({o.pid for o in owners}) - 1
    return str(first.pid), f"{name} +{others}" if others else name


def identity_text(sock: Socket, owners: tuple[Owner, ...], reason: str | None) -> str:
    """The lower-case search text: the row's cells that do not move, the kernel's state name,
    the owners' user names."""
    pid_cell, process_cell = owner_cells(owners, reason)
    users = " ".join(o.user or "" for o in owners)
    return (
        f"{proto_label(sock)} {short_state(sock.state)} {local_label(sock)} {remote_label(sock)} "
        f"{pid_cell} {process_cell} {sock.state} {users}"
    ).lower()


def format_cells(row: ConnRow) -> tuple[str, ...]:
    sock = row.sock
    info = sock.tcp if sock.state not in QUIET_STATES else None
    rate = row.rate
    pid_cell, process_cell = owner_cells(row.owners, row.reason)
    return (
        proto_label(sock),
        short_state(sock.state),
        local_label(sock),
        remote_label(sock),
        str(sock.recv_q),
        str(sock.send_q),
        milliseconds(info.rtt_us) if info is not None else "",
        str(info.total_retrans) if info is not None else "",
        human_rate(rate.rx) if rate else "",
        human_rate(rate.tx) if rate else "",
        accept_fill(sock),
        pid_cell,
        process_cell,
    )


def row_styles(row: ConnRow) -> tuple[str | None, ...] | None:
    sock = row.sock
    state_style = STATE_STYLES.get(sock.state)
    retrans_style = "bold red" if sock.tcp is not None and sock.tcp.total_retrans else None
    queue_style = "bold yellow" if sock.recv_q and sock.state != "LISTEN" else None
    owner_style = "dim italic" if not row.owners else None
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


# ------------------------------------------------------------------------------- sort values
#
# One function per column, called for every row when the user sorts by that column (on the UI
# thread) and for each changed row after that (in the sampling thread). They return values that
# Python's sort compares fast: small ints, floats, and 1-byte strings (its memcmp fast path) for
# addresses, rather than tuples (3x slower to sort at 100k rows).

_PROTO_RANK = {"tcp": 0, "udp": 2, "unix": 4}


class _AddressPrefixes(dict[str | None, str]):
    """Address -> its sort prefix: family rank + packed bytes, as a 1-byte string.

    IPv4 before IPv6 (numerically: 10.0.0.9 before 10.0.0.10), UNIX paths, then ``*``; the same
    order as ``netdash.ui.format.address_sort_key``. Addresses repeat (a few local IPs, popular
    peers), so each is packed once; the cache is dropped past 256k addresses.
    """

    def __missing__(self, addr: str | None) -> str:
        if len(self) > 1 << 18:
            self.clear()
        prefix = self[addr] = _address_prefix(addr)
        return prefix


def _address_prefix(addr: str | None) -> str:
    if addr is None:
        return "\x09"
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    except OSError:  # a UNIX path: sorted by its bytes
        return "\x08" + addr.encode("utf-8", "surrogateescape").decode("latin-1")
    return ("\x04" if len(packed) == 4 else "\x06") + packed.decode("latin-1")


_PREFIXES = _AddressPrefixes()
#: None (no port) sorts as port 0; any int is its own value (``dict.get(port, port)``).
_PORT_OR_ZERO = {None: 0}.get


def address_key(addr: str | None, port: int | None) -> str:
    """The sort value of an endpoint: the address prefix, then the port as one character whose
    code point is the port (no cache: a 2-character string per port was 3.7 MB at 100k)."""
    return _PREFIXES[addr] + chr(port or 0)


def _attribute(path: str) -> Callable[[list[ConnRow]], list[Any]]:
    """``many`` of a column that is just an attribute (C speed)."""
    get = attrgetter(path)
    return lambda rows: list(map(get, rows))


_LOCAL_ADDR, _LOCAL_PORT = attrgetter("sock.local_addr"), attrgetter("sock.local_port")
_REMOTE_ADDR, _REMOTE_PORT = attrgetter("sock.remote_addr"), attrgetter("sock.remote_port")


def _local_key(row: ConnRow) -> str:
    sock = row.sock
    return address_key(sock.local_addr, sock.local_port)


def _remote_key(row: ConnRow) -> str:
    sock = row.sock
    return address_key(sock.remote_addr, sock.remote_port)


def _endpoint_keys(
    addr: Callable[[ConnRow], str | None], port: Callable[[ConnRow], int | None]
) -> Callable[[list[ConnRow]], list[str]]:
    """``many`` of an endpoint column: C-level maps, ~15 ms at 100k rows (sorting by Local)."""
    prefix = _PREFIXES.__getitem__

    def keys(rows: list[ConnRow]) -> list[str]:
        ports = list(map(port, rows))
        return list(
            map(add, map(prefix, map(addr, rows)), map(chr, map(_PORT_OR_ZERO, ports, ports)))
        )

    return keys


_PROTO, _FAMILY, _STATE = (
    attrgetter("sock.proto"),
    attrgetter("sock.family"),
    attrgetter("sock.state"),
)


def _proto_key(row: ConnRow) -> int:
    sock = row.sock
    return _PROTO_RANK.get(sock.proto, 6) + (sock.family == "inet6")


def _proto_keys(rows: list[ConnRow]) -> list[int]:
    ranks = map(_PROTO_RANK.get, map(_PROTO, rows), repeat(6))
    return list(map(add, ranks, map(eq, map(_FAMILY, rows), repeat("inet6"))))


def _state_key(row: ConnRow) -> int:
    return STATE_ORDER.get(row.sock.state, 99)


def _state_keys(rows: list[ConnRow]) -> list[int]:
    return list(map(STATE_ORDER.get, map(_STATE, rows), repeat(99)))


def _recv_q_key(row: ConnRow) -> int:
    return row.sock.recv_q


def _send_q_key(row: ConnRow) -> int:
    return row.sock.send_q


def _rtt_key(row: ConnRow) -> int | None:
    sock = row.sock
    info = sock.tcp
    return info.rtt_us if info is not None and sock.state not in QUIET_STATES else None


def _retrans_key(row: ConnRow) -> int | None:
    sock = row.sock
    info = sock.tcp
    return info.total_retrans if info is not None and sock.state not in QUIET_STATES else None


def _rx_key(row: ConnRow) -> float | None:
    rate = row.rate
    return rate.rx if rate is not None else None


def _tx_key(row: ConnRow) -> float | None:
    rate = row.rate
    return rate.tx if rate is not None else None


def _accept_key(row: ConnRow) -> float | None:
    sock = row.sock
    return sock.recv_q / sock.send_q if sock.state == "LISTEN" and sock.send_q else None


def _pid_key(row: ConnRow) -> int | None:
    return row.owners[0].pid if row.owners else None


def _process_key(row: ConnRow) -> str | None:
    return row.owners[0].comm.lower() if row.owners else None


SORT_KEYS: tuple[SortKey, ...] = (
    SortKey(_proto_key, _proto_keys),
    SortKey(_state_key, _state_keys),
    # Endpoints: fixed for a key, so the view keeps every row presorted by them and switching
    # the sort to them needs no sort at all (a UNIX socket bound later is a new row: the feed).
    SortKey(_local_key, _endpoint_keys(_LOCAL_ADDR, _LOCAL_PORT), fixed=True),
    SortKey(_remote_key, _endpoint_keys(_REMOTE_ADDR, _REMOTE_PORT), fixed=True),
    SortKey(_recv_q_key, _attribute("sock.recv_q")),
    SortKey(_send_q_key, _attribute("sock.send_q")),
    SortKey(_rtt_key),
    SortKey(_retrans_key),
    SortKey(_rx_key),
    SortKey(_tx_key),
    SortKey(_accept_key),
    SortKey(_pid_key),
    SortKey(_process_key),
)
