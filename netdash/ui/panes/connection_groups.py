"""Group-by for the Connections pane: counts and summed rates per state, host, port or process.

"How many connections does each client hold?" and "which process has all the CLOSE_WAITs?" are
the questions; a group row answers them, and Enter on it shows its sockets. Built in the sampling
thread from the feed's rows (no Textual here).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from netdash.textsafe import visible
from netdash.ui.format import STATE_ORDER, address_sort_key, human_rate, short_state
from netdash.ui.panes.connection_cells import ConnEntry, ConnRow
from netdash.ui.tableview import Column, Row

#: The `g` key cycles through these, then back to no grouping.
GROUP_FIELDS: tuple[str, ...] = ("state", "remote host", "local port", "process")

GROUP_COLUMNS: tuple[Column, ...] = (
    Column("group", "Group", width=28, min_width=16, priority=0, flex=True),
    Column("count", "Sockets", width=8, min_width=7, align="right", priority=0),
    Column("rx", "In/s", width=7, min_width=6, align="right", priority=2),
    Column("tx", "Out/s", width=7, min_width=6, align="right", priority=2),
    Column("states", "States", width=30, min_width=12, priority=1, flex=True),
)


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """What Enter on a group row filters to."""

    field: str
    value: object
    label: str

    def matches(self, entry: ConnEntry) -> bool:
        return group_value(self.field, entry)[0] == self.value


def group_value(field: str, entry: ConnEntry) -> tuple[object, str, object]:
    """(identity, label, sort value) of ``entry``'s group under ``field``."""
    sock = entry.sock
    if field == "state":
        state = "SYN_RECV" if sock.state == "NEW_SYN_RECV" else sock.state
        label = short_state(state)
        if sock.proto != "tcp":
            label = f"{label} ({sock.proto})"
        order = (sock.proto != "tcp", sock.proto, STATE_ORDER.get(state, 99))
        return (sock.proto, state), label, order
    if field == "remote host":
        addr = sock.remote_addr
        if sock.proto == "unix" or addr is None:
            return None, "* (not connected)", (9, b"", 0)
        return addr, addr, address_sort_key(sock.family, addr, 0)
    if field == "local port":
        if sock.proto == "unix":
            return ("unix",), "unix sockets", (1 << 17)
        return (sock.proto, sock.local_port), f"{sock.proto} {sock.local_port}", sock.local_port
    if field == "process":
        if entry.owners:
            comm = entry.owners[0].comm
            return comm, visible(comm), comm.lower()
        reason = entry.reason or "no owner"
        return ("none", reason), reason, "\uffff" + reason
    raise ValueError(f"unknown group field {field!r}")


def group_rows(
    field: str, rows: Iterable[ConnRow], keep: Callable[[ConnRow], bool] | None = None
) -> tuple[Row, ...]:
    """One row per group: socket count, summed TCP byte rates and a state breakdown.

    ``keep`` is the pane's filter (view, UNIX toggle, query): groups count what the user sees.
    """
    groups: dict[object, list] = {}
    for entry in rows:
        if keep is not None and not keep(entry):
            continue
        identity, label, sort_value = group_value(field, entry)
        group = groups.get(identity)
        if group is None:
            group = groups[identity] = [label, sort_value, 0, 0.0, 0.0, Counter()]
        group[2] += 1
        if entry.rate is not None:
            group[3] += entry.rate.rx
            group[4] += entry.rate.tx
        group[5][entry.sock.state] += 1
    return tuple(_group_row(field, identity, *values) for identity, values in groups.items())


def _group_row(
    field: str,
    identity: object,
    label: str,
    sort_value: object,
    count: int,
    rx: float,
    tx: float,
    states: Counter[str],
) -> Row:
    breakdown = " ".join(
        f"{short_state(state)} {n}"
        for state, n in sorted(states.items(), key=lambda item: (-item[1], item[0]))
    )
    cells = (label, str(count), human_rate(rx), human_rate(tx), breakdown)
    return Row(
        key=(field, identity),
        cells=cells,
        sort_values=(sort_value, count, rx, tx, breakdown),
        search_text=" ".join(cells).lower(),
        data=GroupEntry(field, identity, label),
    )


def group_builder(
    field: str, keep: Callable[[ConnRow], bool] | None = None
) -> Callable[[Iterable[ConnRow]], tuple[Row, ...]]:
    return lambda rows: group_rows(field, rows, keep)
