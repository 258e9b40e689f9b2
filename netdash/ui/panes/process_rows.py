"""Rows of the Processes tab (processes and cgroups) and its filter language (no Textual).

The filter speaks the Connections pane's dialect where the words mean the same thing:
``pid:1234``, ``user:www-data``, ``proc:nginx``, bare words over the row's text and ``!`` to
negate; plus ``state:Z`` (the kernel's letter, or ``zombie``) and ``unit:nginx``. Socket terms
(``port:``, ``addr:`` …) are refused with a pointer to the Connections tab, which filters sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from netdash.engine import ByteRate
from netdash.engine_procs import COUNTED_STATES, CgroupRow, ProcessesFrame
from netdash.model import Proc
from netdash.query import QueryError
from netdash.talkers import describe_cgroup
from netdash.textsafe import visible
from netdash.ui.format import human_bytes, human_rate
from netdash.ui.row_query import compile_row_query
from netdash.ui.tableview import Column, Row

PROCESS_COLUMNS: tuple[Column, ...] = (
    Column("pid", "PID", width=7, align="right", priority=0),
    Column("user", "User", width=9, min_width=6, priority=3),
    Column("name", "Process", width=16, min_width=10, priority=0),
    Column("state", "S", width=1, priority=2),
    Column("cpu", "CPU%", width=5, align="right", priority=1),
    Column("rss", "RSS", width=6, align="right", priority=2),
    Column("fds", "FDs/limit", width=12, min_width=9, align="right", priority=2),
    Column("estab", "Estab", width=5, align="right", priority=1),
    Column("listen", "Lstn", width=4, align="right", priority=3),
    Column("close_wait", "ClsW", width=4, align="right", priority=2),
    Column("sockets", "Socks", width=5, align="right", priority=4),
    Column("rx", "In/s", width=6, align="right", priority=3),
    Column("tx", "Out/s", width=6, align="right", priority=3),
    Column("threads", "Thr", width=4, align="right", priority=6),
    Column("unit", "Unit / container", width=18, min_width=12, priority=5),
    Column("command", "Command", width=30, min_width=12, priority=7, flex=True),
)
PROCESS_INDEX = {column.key: index for index, column in enumerate(PROCESS_COLUMNS)}

CGROUP_COLUMNS: tuple[Column, ...] = (
    Column("path", "Cgroup", width=30, min_width=16, priority=0, flex=True),
    Column("hierarchy", "Hier.", width=8, min_width=5, priority=4),
    Column("procs", "Procs", width=5, align="right", priority=1),
    Column("cpu", "CPU%", width=6, align="right", priority=0),
    Column("memory", "Memory/limit", width=15, min_width=7, align="right", priority=0),
    Column("pids", "Pids/max", width=11, min_width=5, align="right", priority=3),
    Column("sockets", "Socks", width=5, align="right", priority=2),
    Column("rx", "In/s", width=6, align="right", priority=2),
    Column("tx", "Out/s", width=6, align="right", priority=2),
    Column("unit", "Unit / container", width=20, min_width=12, priority=3),
)
#: fds at or above this share of the soft limit are shown as a warning (the issue's 80 %).
FD_WARNING = 0.8


def unit_of(proc: Proc) -> str:
    """The systemd unit, a short container id, or nothing (from the process's cgroup path)."""
    paths = [proc.cgroup] if proc.cgroup and proc.cgroup != "/" else []
    paths += [path for path in proc.cgroups_v1.values() if path and path != "/"]
    for path in paths:
        tag = describe_cgroup(path)
        if tag.container:
            return f"container {tag.container[:12]}"
        if tag.unit:
            return tag.unit
    return ""


def fd_share(proc: Proc) -> float | None:
    if proc.num_fds is None or not proc.fd_soft_limit:
        return None
    return proc.num_fds / proc.fd_soft_limit


def fds_label(proc: Proc) -> str:
    if proc.num_fds is None:
        return "?" if "fds" in proc.denied else ""
    if proc.fd_soft_limit is None:
        return str(proc.num_fds)
    return f"{proc.num_fds}/{proc.fd_soft_limit}"


def command_label(proc: Proc) -> str:
    if proc.cmdline is None:
        return "(not readable)"
    if not proc.cmdline:
        return "<defunct>" if proc.zombie else f"[{proc.name}]"  # a kernel thread, as ps shows
    return " ".join(proc.cmdline)


def process_row(
    proc: Proc,
    sockets: Mapping[str, int],
    rate: ByteRate,
    prefix: str = "",
) -> Row:
    """One process; ``prefix`` is its tree branch (``├─ ``) in the tree view."""
    share = fd_share(proc)
    unit = unit_of(proc)
    total = sum(sockets.values())
    cells = (
        str(proc.pid),
        visible(proc.user or (str(proc.uid) if proc.uid is not None else "?")),
        prefix + visible(proc.name),
        proc.state,
        "" if proc.cpu_percent is None else f"{proc.cpu_percent:.1f}",
        human_bytes(proc.rss),
        fds_label(proc),
        *(_count(sockets.get(state, 0)) for state in COUNTED_STATES),
        _count(total),
        human_rate(rate.rx) if total else "",
        human_rate(rate.tx) if total else "",
        str(proc.threads),
        visible(unit),
        visible(command_label(proc)),
    )
    zombie = "bold red" if proc.zombie else None
    styles = [None] * len(cells)
    styles[PROCESS_INDEX["state"]] = zombie or ("yellow" if proc.state == "D" else None)
    styles[PROCESS_INDEX["name"]] = zombie
    if share is not None and share >= FD_WARNING:
        styles[PROCESS_INDEX["fds"]] = "bold red" if share >= 0.95 else "bold yellow"
    if sockets.get("CLOSE_WAIT"):
        styles[PROCESS_INDEX["close_wait"]] = "bold yellow"
    if proc.cmdline == () and not proc.zombie:
        styles[PROCESS_INDEX["command"]] = "dim"
    sort_values = (
        proc.pid,
        proc.user or "",
        proc.name.lower(),
        proc.state,
        proc.cpu_percent,
        proc.rss,
        share if share is not None else (proc.num_fds or 0) / 1e9,
        *(sockets.get(state, 0) for state in COUNTED_STATES),
        total,
        rate.rx,
        rate.tx,
        proc.threads,
        unit,
        command_label(proc),
    )
    text = " ".join((cells[0], cells[1], proc.name, proc.state, unit, command_label(proc))).lower()
    return Row(
        key=proc.key,
        cells=cells,
        sort_values=sort_values,
        search_text=text,
        styles=tuple(styles),
        data=proc,
    )


def _count(value: int) -> str:
    return str(value) if value else ""


def frame_rows(frame: ProcessesFrame, *, everyone: bool, tree: bool) -> list[Row]:
    """The rows the pane shows: processes that own sockets (or all of them), flat or as a tree.

    In the tree a shown process's ancestors are shown too, so every branch hangs somewhere.
    """
    procs = frame.sample.procs
    if not everyone:
        owning = {proc.pid for proc in procs if frame.socket_total(proc.pid)}
        if tree:
            by_pid = {proc.pid: proc for proc in procs}
            for pid in list(owning):
                parent = by_pid.get(pid)
                while parent is not None and parent.ppid in by_pid and parent.ppid not in owning:
                    owning.add(parent.ppid)
                    parent = by_pid.get(parent.ppid)
        procs = tuple(proc for proc in procs if proc.pid in owning)
    empty: Mapping[str, int] = {}
    if not tree:
        return [process_row(p, frame.sockets.get(p.pid, empty), frame.rate(p.pid)) for p in procs]
    from netdash.engine_procs import tree_order

    return [
        process_row(
            proc, frame.sockets.get(proc.pid, empty), frame.rate(proc.pid), _branch(depth, last)
        )
        for proc, depth, last in tree_order(procs)
    ]


def _branch(depth: int, last: bool) -> str:
    if depth == 0:
        return ""
    return "  " * (depth - 1) + ("└─ " if last else "├─ ")


def cgroup_row(row: CgroupRow) -> Row:
    info = row.info
    if info.memory_current is None:
        memory = ""
    elif info.memory_limit is None:
        memory = human_bytes(info.memory_current)
    else:
        memory = f"{human_bytes(info.memory_current)}/{human_bytes(info.memory_limit)}"
    pids = "" if info.pids_current is None else str(info.pids_current)
    if info.pids_limit is not None and pids:
        pids += f"/{info.pids_limit}"
    near_limit = (
        info.memory_limit is not None
        and info.memory_current is not None
        and info.memory_current >= FD_WARNING * info.memory_limit
    )
    cells = (
        visible(info.path),
        info.hierarchy,
        str(row.procs),
        "" if row.cpu_percent is None else f"{row.cpu_percent:.1f}",
        memory,
        pids,
        _count(row.sockets),
        human_rate(row.rate.rx) if row.sockets else "",
        human_rate(row.rate.tx) if row.sockets else "",
        visible(info.unit or (f"container {info.container[:12]}" if info.container else "")),
    )
    styles = [None] * len(cells)
    if near_limit:
        styles[4] = "bold red"
    return Row(
        key=(info.hierarchy, info.path),
        cells=cells,
        sort_values=(
            info.path,
            info.hierarchy,
            row.procs,
            row.cpu_percent,
            info.memory_current,
            info.pids_current,
            row.sockets,
            row.rate.rx,
            row.rate.tx,
            info.unit or "",
        ),
        search_text=" ".join(cells).lower(),
        styles=tuple(styles),
        data=row,
    )


# ------------------------------------------------------------------------------- the filter

ProcessCheck = Callable[[Row], bool]


def compile_process_filter(text: str) -> ProcessCheck | None:
    """The ``/`` filter of the Processes tab; None for an empty one. Raises QueryError."""
    return compile_row_query(text, _field)


def _field(field: str, value: str) -> ProcessCheck:
    lowered = value.lower()
    if field == "pid":
        if not value.isdigit():
            raise QueryError(f"pid:{value}: a pid is a number")
        pid = int(value)
        return lambda row: row.data.pid == pid
    if field == "user":
        return lambda row: (row.data.user or "").lower() == lowered or str(row.data.uid) == value
    if field == "proc":
        return lambda row: lowered in row.data.name.lower()
    if field == "state":
        letter = "Z" if lowered in ("zombie", "z") else value[:1].upper()
        return lambda row: row.data.state.upper() == letter
    if field == "unit":
        return lambda row: lowered in unit_of(row.data).lower()
    if field in ("port", "sport", "dport", "addr", "src", "dst"):
        raise QueryError(f"{field}: filter sockets in the Connections tab (1), then Enter")
    raise QueryError(f"{field}: unknown field (pid, user, proc, state, unit, or a bare word)")
