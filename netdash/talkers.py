"""Top talkers and per-process bandwidth (iftop and nethogs without pcap) — TCP only.

Everything here is built from the per-socket byte rates the Connections engine already computes
each tick (:attr:`ConnectionsFrame.rates`: ``tcpi_bytes_received`` / ``tcpi_bytes_acked``
deltas, linux/tcp.h). UDP, ICMP and other protocols have no such counters, so they are not
counted: every number in this module is **TCP payload bytes per second** (no headers, no
retransmissions), and a UI showing them must say "TCP only".

Four rankings come out of each tick: remote hosts, remote host:port pairs, local ports and
processes (with their cgroup, systemd unit or container where /proc tells). Each entry has the
rate of the last tick and iftop's 2 s / 10 s / 40 s averages; an entry that stops moving decays
to 0 and drops out once all its averages are 0.

Cost: one tick visits only the sockets that moved (the keys in ``frame.diff.changed`` whose rate
is not zero — an idle socket is never looked at) and the entries whose bytes leave a window (those
that moved 2, 10 and 40 s ago); a decaying entry costs nothing in between. 100,000 idle sockets
cost nothing; 10,000 sockets all moving, each to its own host, cost ~3-5x the ConnectionsTracker's
own tick (measured on a shared 2-core machine: ~100 ms vs ~25 ms).

Choices worth knowing:

- **Loopback counts both ends.** A connection between two local sockets appears twice in the
  socket table (as in ``ss``), and both sockets move: 1 MB/s sent over ``lo`` shows as 1 MB/s tx
  *and* 1 MB/s rx for host ``127.0.0.1``, and each end counts for its own process. Hiding one end
  would need a guess at which end is "ours"; counting both matches what ``ss`` lists.
- **A socket shared by several processes counts fully for each** (a pre-fork server's workers, a
  parent and child holding one fd), like ``ss -p`` lists every holder; so the process ranking can
  add up to more than the total. Several fds of one process count once.
- **IPv4-mapped addresses** (``::ffff:10.0.0.1`` on a dual-stack socket) are grouped with the
  IPv4 host ``10.0.0.1``: they are the same peer.
- **Averages are time-weighted over whole ticks**: a tick is in a window when its midpoint is
  (the newest tick always is); the average is the bytes moved in those ticks over their summed
  duration. Shortly after start a window holds less than its length; the average is then over
  what there is, as in iftop.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from netdash.engine import ZERO_RATE, ByteRate, ConnectionsFrame
from netdash.model import NO_OWNER_UNKNOWN, Owner, Socket, SocketSample
from netdash.sources.cgroups import cgroup_names
from netdash.sources.process import read_cgroup

#: iftop's averaging windows, in seconds.
WINDOWS: tuple[float, ...] = (2.0, 10.0, 40.0)

#: The four rankings of a :class:`TalkersFrame`, by attribute name.
Grouping = Literal["hosts", "host_ports", "local_ports", "processes"]
GROUPINGS: tuple[Grouping, ...] = ("hosts", "host_ports", "local_ports", "processes")


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class CgroupTag:
    """Where a process lives: its cgroup path and what that path names (None where it names
    nothing recognisable)."""

    path: str  # as :func:`netdash.sources.process.parse_cgroup` gives it
    unit: str | None  # the systemd unit: "nginx.service", "session-3.scope"
    container: str | None  # a container id (64 hex digits; `docker ps` shows the first 12)


@dataclass(frozen=True, slots=True)
class ProcessTag:
    """The process behind an entry of the process ranking."""

    pid: int
    comm: str
    uid: int | None
    user: str | None
    cgroup: CgroupTag | None = None  # looked up once the process is in the ranking


@dataclass(frozen=True, slots=True)
class Talker:
    """One ranked entry: a host, host:port, local port or process. TCP payload bytes/s only.

    ``key`` is stable across ticks: the host text (``str``) for hosts, ``(host, port)`` for
    host:port, the port number (``int``) for local ports, and for processes the pid (``int``)
    or, for sockets without an owner, the reason (``str``: one of the ``NO_OWNER_*`` texts of
    :mod:`netdash.model`, which is also the label). ``label`` is plain text from the system:
    the UI escapes it. ``averages`` line up with :attr:`TalkersFrame.windows`.
    """

    key: Hashable
    label: str
    rate: ByteRate  # over the last tick
    averages: tuple[ByteRate, ...]
    sockets: int  # sockets of this entry that moved in the last tick
    process: ProcessTag | None = None  # processes ranking only; None for the no-owner buckets


@dataclass(frozen=True)
class TalkersFrame:
    """One tick of the four rankings, highest (rx + tx) of :attr:`rank_window` first. TCP only.

    ``rank_window`` is one of :attr:`windows`, or None to rank by the last tick's rate.
    """

    seq: int  # the ConnectionsFrame's seq
    taken_at: float  # time.monotonic() of the sample
    windows: tuple[float, ...]
    rank_window: float | None
    total: Talker  # all TCP sockets together (key "total")
    hosts: tuple[Talker, ...]
    host_ports: tuple[Talker, ...]
    local_ports: tuple[Talker, ...]
    processes: tuple[Talker, ...]

    def ranking(self, grouping: Grouping) -> tuple[Talker, ...]:
        rankings: tuple[Talker, ...] = getattr(self, grouping)
        return rankings

    def average(self, talker: Talker, window: float) -> ByteRate:
        """``talker``'s average over ``window`` seconds (one of :attr:`windows`)."""
        return talker.averages[self.windows.index(window)]

    def ranked_by(self, window: float | None) -> TalkersFrame:
        """The same entries ranked by another window (None: the last tick) at once, so a UI
        toggle need not wait for a tick. With a tracker ``limit``, only the entries this frame
        holds are re-sorted; the tracker's ``rank_window`` decides what the next tick keeps."""
        if window == self.rank_window:
            return self
        index = _window_index(self.windows, window)
        ranked = {name: rank(self.ranking(name), index) for name in GROUPINGS}
        return replace(self, rank_window=window, **ranked)


def _window_index(windows: Sequence[float], window: float | None) -> int | None:
    if window is None:
        return None
    if window not in windows:
        raise ValueError(f"window {window!r} is not one of {tuple(windows)!r}")
    return list(windows).index(window)


def _weight(rate: ByteRate, averages: Sequence[ByteRate], index: int | None) -> float:
    chosen = rate if index is None else averages[index]
    return chosen.rx + chosen.tx


def rank(talkers: Iterable[Talker], window_index: int | None) -> tuple[Talker, ...]:
    """Highest (rx + tx) of ``averages[window_index]`` first (None: of the last tick); ties by
    the last tick, then by label, so equal entries keep their order from tick to tick."""
    return tuple(
        sorted(
            talkers,
            key=lambda t: (
                -_weight(t.rate, t.averages, window_index),
                -(t.rate.rx + t.rate.tx),
                t.label,
            ),
        )
    )


# ------------------------------------------------------------------------------ cgroups, units


def describe_cgroup(path: str) -> CgroupTag:
    """What a cgroup path names: the systemd unit (or slice) and the container id, where it
    shows them (:func:`netdash.sources.cgroups.cgroup_names` says how)."""
    unit, container = cgroup_names(path)
    return CgroupTag(path=path, unit=unit, container=container)


def read_start_time(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22, proc(5)),
    or None if it is gone. With the pid it names one process even across pid reuse."""
    try:
        stat = (proc_root / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()  # comm may hold spaces and ')': skip past it
    try:
        return int(fields[19])  # fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None


class CgroupLookup:
    """Cgroups of processes, read once per (pid, start time): a process's cgroup rarely moves,
    and the ranking asks about the same few processes every tick.

    Reads ``/proc/PID/stat`` (to tell a reused pid) and, the first time, ``/proc/PID/cgroup``;
    both are global, so this works for sockets sampled inside another network namespace.
    """

    def __init__(self, proc_root: Path = Path("/proc"), max_entries: int = 4096) -> None:
        self.proc_root = proc_root
        self.max_entries = max_entries
        self._cache: dict[tuple[int, int], CgroupTag | None] = {}

    def lookup(self, pid: int) -> CgroupTag | None:
        """The cgroup of ``pid``, or None when it is gone or has none we can read."""
        start = read_start_time(pid, self.proc_root)
        if start is None:
            return None
        key = (pid, start)
        if key not in self._cache:
            if len(self._cache) >= self.max_entries:
                del self._cache[next(iter(self._cache))]  # the oldest lookup
            path = read_cgroup(pid, self.proc_root)
            self._cache[key] = describe_cgroup(path) if path else None
        return self._cache[key]


# ------------------------------------------------------------------------------------ tracking


def moving_sockets(frame: ConnectionsFrame) -> Iterator[tuple[Socket, ByteRate]]:
    """The TCP sockets whose byte counters moved in ``frame``, with their rates.

    Only the keys in ``frame.diff.changed`` are looked at: a socket whose counters moved is
    always a changed one (the tracker puts it there), and an idle one never is, so the cost
    follows the traffic, not the size of the socket table.
    """
    rate_of, sock_of = frame.rates.get, frame.by_key.get
    for key in frame.diff.changed:
        rate = rate_of(key)
        if rate is None or rate is ZERO_RATE or not (rate.rx or rate.tx):
            continue
        sock = sock_of(key)
        if sock is not None:
            yield sock, rate


def host_of(addr: str) -> str:
    """``addr`` with an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) as its IPv4 host."""
    if addr.startswith("::ffff:") and "." in addr:
        return addr[7:]
    return addr


def host_port_label(host: str, port: int | None) -> str:
    """``10.0.0.2:443``, ``[fd00::2]:443`` (RFC 3986 brackets), as iftop and ss write them."""
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port if port is not None else '*'}"


class _Window:
    """The ticks inside one averaging window and their summed duration."""

    __slots__ = ("duration", "seconds", "ticks")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ticks: deque[tuple[int, float, float]] = deque()  # (seq, midpoint, duration)
        self.duration = 0.0

    def advance(self, seq: int, now: float, dt: float) -> list[int]:
        """Add the tick that ended at ``now``; return the seqs of the ticks that left."""
        ticks, left = self.ticks, []
        ticks.append((seq, now - dt / 2, dt))
        cutoff = now - self.seconds
        while len(ticks) > 1 and ticks[0][1] <= cutoff:
            left.append(ticks.popleft()[0])
        self.duration = sum(tick[2] for tick in ticks)  # a few dozen floats: no drift to fix
        return left


class _Series:
    """One entry between ticks: the rate and bytes of the tick it last moved in, the bytes each
    window holds (integers: subtracting what leaves a window never drifts), and its rank order
    (recomputed only when one of those changed, so ranking is a C-speed walk)."""

    __slots__ = (
        "examined",
        "group",
        "key",
        "label",
        "order",
        "process",
        "rx",
        "rx_bytes",
        "sockets",
        "sums",
        "tick",
        "tx",
        "tx_bytes",
    )

    def __init__(
        self,
        group: _Group,
        key: Hashable,
        label: str,
        process: ProcessTag | None,
        n: int,
    ) -> None:
        self.group, self.key, self.label, self.process = group, key, label, process
        self.tick = -1  # the seq of the last tick this entry moved in
        self.rx = self.tx = 0.0  # bytes/s in that tick
        self.rx_bytes = self.tx_bytes = self.sockets = 0
        self.sums = [[0, 0] for _ in range(n)]  # rx and tx bytes inside each window
        self.order: tuple[float, float, str] = (0.0, 0.0, label)
        self.examined = False  # whether the process's cgroup was looked up

    def move(self, seq: int, rate: ByteRate, rx_bytes: int, tx_bytes: int) -> bool:
        """Count one moving socket of tick ``seq``; True for the entry's first in that tick."""
        first = self.tick != seq
        if first:
            self.tick, self.rx, self.tx = seq, 0.0, 0.0
            self.rx_bytes = self.tx_bytes = self.sockets = 0
        self.rx += rate.rx
        self.tx += rate.tx
        self.rx_bytes += rx_bytes
        self.tx_bytes += tx_bytes
        self.sockets += 1
        return first

    def reorder(self, seq: int, window: int | None) -> None:
        """Rank by bytes in ``window`` (every entry shares the window's duration, so bytes rank
        as the averages do) or by this tick's rate (None); ties by this tick, then label."""
        now = self.rx + self.tx if self.tick == seq else 0.0
        if window is None:
            self.order = (-now, -now, self.label)
        else:
            held = self.sums[window]
            self.order = (-(held[0] + held[1]), -now, self.label)
        self.group.dirty = True

    def talker(self, seq: int, windows: Sequence[_Window]) -> Talker:
        moved = self.tick == seq
        averages = tuple(
            ByteRate(held[0] / window.duration, held[1] / window.duration)
            if held[0] or held[1]
            else ZERO_RATE
            for held, window in zip(self.sums, windows, strict=True)
        )
        return Talker(
            key=self.key,
            label=self.label,
            rate=ByteRate(self.rx, self.tx) if moved else ZERO_RATE,
            averages=averages,
            sockets=self.sockets if moved else 0,
            process=self.process,
        )


class _Group(dict[Hashable, _Series]):
    """The entries of one grouping by key, and their top entries as last ranked (``dirty``
    once an entry's order changed, one came or one went)."""

    __slots__ = ("dirty", "top")

    def __init__(self) -> None:
        super().__init__()
        self.dirty = False
        self.top: list[_Series] = []


#: What an entry moved in one tick: (entry, rx bytes, tx bytes).
_Moved = list[tuple[_Series, int, int]]


class TalkersTracker:
    """Turns Connections frames into the four rankings with iftop's averages. TCP only.

    Feed it every :class:`~netdash.engine.ConnectionsFrame`, in order, from the thread that
    runs the :class:`~netdash.engine.ConnectionsTracker` (it reads ``/proc`` for cgroups, so
    keep it off the UI thread). The first frame has no rates yet (they need two samples). If
    frames were skipped (a gap in ``seq``), the rates of the next one span an unknown time and
    it is weighed as one ``frame.interval``.

    A tick costs work for the sockets that moved in it and for the entries whose bytes leave
    a window (those that moved one window length ago); an entry that is merely decaying costs
    nothing until then, and ranking walks the entries at C speed. ``rank_window`` (one of
    ``windows``, or None for the last tick) may be changed between ticks. ``limit`` keeps the
    top entries of each ranking (None: all); only those become :class:`Talker` records and only
    their processes' cgroups are read.
    """

    def __init__(
        self,
        windows: Sequence[float] = WINDOWS,
        rank_window: float | None = 2.0,
        limit: int | None = 200,
        cgroups: CgroupLookup | None = None,
    ) -> None:
        self.windows = tuple(windows)
        _window_index(self.windows, rank_window)  # fail early on a window we do not average
        self.rank_window = rank_window
        self.limit = limit
        self.cgroups = CgroupLookup() if cgroups is None else cgroups
        self._windows = [_Window(seconds) for seconds in self.windows]
        self._longest = self.windows.index(max(self.windows))  # it lets go of a tick last
        self._groups = {name: _Group() for name in ("total", *GROUPINGS)}
        self._moved_in: dict[int, _Moved] = {}  # by tick seq, while any window holds the tick
        self._last_moved: _Moved = []
        self._last: tuple[int, float] | None = None  # (seq, taken_at) of the previous frame
        self._seq = -1  # the last tick with rates
        self._order_index: int | None = -1  # the window the orders were computed for

    def update(self, frame: ConnectionsFrame) -> TalkersFrame:
        now = frame.sample.taken_at
        dt = self._tick_seconds(frame.seq, now, frame.interval)
        self._last = (frame.seq, now)
        if dt is not None:
            self._seq = seq = frame.seq
            left = [window.advance(seq, now, dt) for window in self._windows]
            moved = self._add_moving(frame, dt)
            index = _window_index(self.windows, self.rank_window)
            changed = self._expire(left, index)
            for entry, _, _ in moved:
                entry.reorder(seq, index)
            for entry, _, _ in self._last_moved:
                if entry.tick != seq:  # its rate of this tick is 0 now
                    entry.reorder(seq, index)
            for entry in changed:
                entry.reorder(seq, index)
            self._last_moved = moved
        return self._publish(frame.seq, now)

    def _tick_seconds(self, seq: int, now: float, interval: float) -> float | None:
        """How long the rates of this frame were measured over (None: the first frame)."""
        if self._last is None:
            return None
        last_seq, last_at = self._last
        seconds = now - last_at if seq == last_seq + 1 else interval
        return seconds if seconds > 0 else None

    def _add_moving(self, frame: ConnectionsFrame, dt: float) -> _Moved:
        """Count each moving socket in its entry of every grouping (labels made once, when an
        entry is new), then add each entry's bytes of this tick to every window."""
        seq, sample, n = frame.seq, frame.sample, len(self.windows)
        total, hosts, host_ports, ports, processes = self._groups.values()
        touched: list[_Series] = []
        touch = touched.append
        for sock, rate in moving_sockets(frame):
            moved = (seq, rate, round(rate.rx * dt), round(rate.tx * dt))
            host = host_of(sock.remote_addr or "")
            key = (host, sock.remote_port)
            port = sock.local_port
            for entry in (
                total.get("total") or _new(total, "total", "TCP total", None, n),
                hosts.get(host) or _new(hosts, host, host, None, n),
                host_ports.get(key) or _new(host_ports, key, host_port_label(*key), None, n),
                ports.get(port) or _new(ports, port, str(port), None, n),
                *_process_entries(processes, sample, sock, n),
            ):
                if entry.move(*moved):
                    touch(entry)
        record = [(entry, entry.rx_bytes, entry.tx_bytes) for entry in touched]
        for entry, rx, tx in record:
            for held in entry.sums:
                held[0] += rx
                held[1] += tx
        self._moved_in[seq] = record
        return record

    def _expire(self, left: Sequence[Sequence[int]], rank_index: int | None) -> list[_Series]:
        """Take the bytes of the ticks that left each window out of it; forget an entry once the
        longest window let go of its last tick. Returns the entries whose rank order moved."""
        changed: list[_Series] = []
        for window, seqs in enumerate(left):
            for seq in seqs:
                moved = self._moved_in.get(seq, ())
                for entry, rx, tx in moved:
                    held = entry.sums[window]
                    held[0] -= rx
                    held[1] -= tx
                if window == rank_index:
                    changed.extend(entry for entry, _, _ in moved)
        for seq in left[self._longest]:
            for entry, _, _ in self._moved_in.pop(seq, ()):
                if entry.tick == seq:  # nothing since: every window is empty
                    del entry.group[entry.key]
                    entry.group.dirty = True
        return changed

    def _publish(self, seq: int, now: float) -> TalkersFrame:
        index = _window_index(self.windows, self.rank_window)
        if index != self._order_index:  # the UI changed the window: reorder everything once
            for group in self._groups.values():
                for entry in group.values():
                    entry.reorder(self._seq, index)
            self._order_index = index
        rankings = {name: self._ranking(name) for name in GROUPINGS}
        total = self._groups["total"].get("total")
        return TalkersFrame(
            seq=seq,
            taken_at=now,
            windows=self.windows,
            rank_window=self.rank_window,
            total=total.talker(self._seq, self._windows) if total else _idle_total(self.windows),
            **rankings,
        )

    def _ranking(self, name: Grouping) -> tuple[Talker, ...]:
        group = self._groups[name]
        if group.dirty:  # an idle or merely decaying tick keeps the last order
            group.top = sorted(group.values(), key=operator.attrgetter("order"))[: self.limit]
            group.dirty = False
        top = group.top
        if name == "processes":
            for entry in top:
                self._look_up_cgroup(entry)
        return tuple(entry.talker(self._seq, self._windows) for entry in top)

    def _look_up_cgroup(self, entry: _Series) -> None:
        """Give a ranked process its cgroup, read the first time it is ranked."""
        tag = entry.process
        if tag is not None and not entry.examined:
            entry.process = replace(tag, cgroup=self.cgroups.lookup(tag.pid))
            entry.examined = True


def _idle_total(windows: Sequence[float]) -> Talker:
    return Talker("total", "TCP total", ZERO_RATE, (ZERO_RATE,) * len(windows), 0)


def _new(
    group: _Group,
    key: Hashable,
    label: str,
    process: ProcessTag | None,
    windows: int,
) -> _Series:
    entry = group[key] = _Series(group, key, label, process, windows)
    return entry


def _process_entries(
    group: _Group, sample: SocketSample, sock: Socket, windows: int
) -> Iterator[_Series]:
    """The entry of each process holding ``sock`` (once per pid however many fds it has), or
    of the no-owner bucket that says why none does."""
    owners = sample.owners_of(sock)
    if not owners:
        reason = sample.no_owner_reason(sock) or NO_OWNER_UNKNOWN
        yield group.get(reason) or _new(group, reason, reason, None, windows)
        return
    seen: set[int] = set()
    for owner in owners:
        pid = owner.pid
        if pid not in seen:
            seen.add(pid)
            yield group.get(pid) or _new(group, pid, *_process_label(owner), windows)


def _process_label(owner: Owner) -> tuple[str, ProcessTag]:
    tag = ProcessTag(pid=owner.pid, comm=owner.comm, uid=owner.uid, user=owner.user)
    return f"{owner.comm} ({owner.pid})", tag
