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
is not zero — an idle socket is never looked at), plus the entries that moved within the longest
window. 100,000 idle sockets cost nothing.

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

import re
from collections import deque
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from netdash.engine import ZERO_RATE, ByteRate, ConnectionsFrame
from netdash.model import NO_OWNER_UNKNOWN, Owner, Socket, SocketSample
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

#: A container id in a cgroup path component: ``<id>``, ``docker-<id>.scope``,
#: ``cri-containerd-<id>.scope``, ``crio-<id>``, ``libpod-<id>.scope``.
_CONTAINER_ID = re.compile(r"(?:^|[-:])([0-9a-f]{64})(?:\.scope)?$")
#: The user manager's unit: the units it starts sit below it.
_USER_MANAGER = re.compile(r"^user@\d+\.service$")


def describe_cgroup(path: str) -> CgroupTag:
    """What a cgroup path names: the systemd unit and the container id, where it shows them.

    Units are the first ``.service`` or ``.scope`` component below the slices (a delegated
    service may nest its own groups below it, which are not units), except below the user
    manager ``user@UID.service``, whose units are its children. The container id is the deepest
    64-hex component, as Docker, containerd, CRI-O, Podman and the kubelet name them.
    ``parse_cgroup`` gives v1 paths as ``controllers:/path``; the controllers are skipped.
    """
    bare = path.split(":", 1)[1] if ":" in path and not path.startswith("/") else path
    unit: str | None = None
    container: str | None = None
    for part in bare.split("/"):
        if part.endswith((".service", ".scope")) and (unit is None or _USER_MANAGER.match(unit)):
            unit = part
        found = _CONTAINER_ID.search(part)
        if found:
            container = found.group(1)
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

    def advance(self, seq: int, now: float, dt: float) -> int:
        """Add the tick that ended at ``now``; return the oldest seq still inside."""
        ticks = self.ticks
        ticks.append((seq, now - dt / 2, dt))
        cutoff = now - self.seconds
        while len(ticks) > 1 and ticks[0][1] <= cutoff:
            ticks.popleft()
        self.duration = sum(tick[2] for tick in ticks)  # a few dozen floats: no drift to fix
        return ticks[0][0]


class _Series:
    """One entry's state between ticks: its label, last rate and the bytes of each window."""

    __slots__ = ("key", "label", "moved_seq", "points", "process", "rate", "sockets", "sums")

    def __init__(self, key: Hashable, label: str, process: ProcessTag | None, n: int) -> None:
        self.key = key
        self.label = label
        self.process = process
        self.rate = ZERO_RATE
        self.sockets = 0
        self.moved_seq = -1
        self.points: list[deque[tuple[int, int, int]]] = [deque() for _ in range(n)]
        self.sums = [[0, 0] for _ in range(n)]  # integer bytes: no float drift on expiry

    def add(self, seq: int, rx: float, tx: float, rx_bytes: int, tx_bytes: int, n: int) -> None:
        if self.moved_seq != seq:
            self.moved_seq, self.rate, self.sockets = seq, ZERO_RATE, 0
            for points in self.points:
                points.append((seq, 0, 0))
        self.rate = ByteRate(self.rate.rx + rx, self.rate.tx + tx)
        self.sockets += n
        for points, sums in zip(self.points, self.sums, strict=True):
            _, prx, ptx = points[-1]
            points[-1] = (seq, prx + rx_bytes, ptx + tx_bytes)
            sums[0] += rx_bytes
            sums[1] += tx_bytes

    def expire(self, seq: int, oldest: Sequence[int]) -> bool:
        """Forget points older than each window; True while any window still holds bytes."""
        if self.moved_seq != seq:
            self.rate, self.sockets = ZERO_RATE, 0
        alive = False
        for points, sums, first in zip(self.points, self.sums, oldest, strict=True):
            while points and points[0][0] < first:
                _, rx, tx = points.popleft()
                sums[0] -= rx
                sums[1] -= tx
            alive = alive or bool(points)
        return alive

    def talker(self, windows: Sequence[_Window]) -> Talker:
        averages = tuple(
            ByteRate(sums[0] / window.duration, sums[1] / window.duration)
            if sums[0] or sums[1]
            else ZERO_RATE
            for sums, window in zip(self.sums, windows, strict=True)
        )
        return Talker(self.key, self.label, self.rate, averages, self.sockets, self.process)


class TalkersTracker:
    """Turns Connections frames into the four rankings with iftop's averages. TCP only.

    Feed it every :class:`~netdash.engine.ConnectionsFrame`, in order, from the thread that
    runs the :class:`~netdash.engine.ConnectionsTracker` (it reads ``/proc`` for cgroups, so
    keep it off the UI thread). The first frame has no rates yet (they need two samples). If
    frames were skipped (a gap in ``seq``), the rates of the next one span an unknown time and
    it is weighed as one ``frame.interval``.

    ``rank_window`` (one of ``windows``, or None for the last tick) may be changed between
    ticks; ``limit`` keeps only the top entries of each ranking (None: all of them), which also
    bounds the cgroup reads to the processes shown.
    """

    def __init__(
        self,
        windows: Sequence[float] = WINDOWS,
        rank_window: float | None = 2.0,
        limit: int | None = None,
        cgroups: CgroupLookup | None = None,
    ) -> None:
        self.windows = tuple(windows)
        _window_index(self.windows, rank_window)  # fail early on a window we do not average
        self.rank_window = rank_window
        self.limit = limit
        self.cgroups = CgroupLookup() if cgroups is None else cgroups
        self._windows = [_Window(seconds) for seconds in self.windows]
        self._series: dict[str, dict[Hashable, _Series]] = {
            name: {} for name in ("total", *GROUPINGS)
        }
        self._looked_up: set[int] = set()  # pids whose cgroup the current series carry
        self._last: tuple[int, float] | None = None  # (seq, taken_at) of the previous frame

    def update(self, frame: ConnectionsFrame) -> TalkersFrame:
        now = frame.sample.taken_at
        dt = self._tick_seconds(frame.seq, now, frame.interval)
        self._last = (frame.seq, now)
        if dt is not None:
            oldest = [window.advance(frame.seq, now, dt) for window in self._windows]
            self._add_moving(frame, dt)
            self._expire(frame.seq, oldest)
        return self._publish(frame.seq, now)

    def _tick_seconds(self, seq: int, now: float, interval: float) -> float | None:
        """How long the rates of this frame were measured over (None: the first frame)."""
        if self._last is None:
            return None
        last_seq, last_at = self._last
        seconds = now - last_at if seq == last_seq + 1 else interval
        return seconds if seconds > 0 else None

    def _add_moving(self, frame: ConnectionsFrame, dt: float) -> None:
        """Add each moving socket's rate and bytes to its entry in every grouping."""
        seq, sample, count = frame.seq, frame.sample, len(self.windows)
        total, hosts, host_ports, local_ports, processes = self._series.values()
        for sock, rate in moving_sockets(frame):
            moved = (seq, rate.rx, rate.tx, round(rate.rx * dt), round(rate.tx * dt), 1)
            _entry(total, "total", "TCP total", None, count).add(*moved)
            host = host_of(sock.remote_addr or "")
            _entry(hosts, host, host, None, count).add(*moved)
            label = host_port_label(host, sock.remote_port)
            _entry(host_ports, (host, sock.remote_port), label, None, count).add(*moved)
            port = sock.local_port
            _entry(local_ports, port, str(port), None, count).add(*moved)
            for key, label, tag in _process_entries(sample, sock):
                _entry(processes, key, label, tag, count).add(*moved)

    def _expire(self, seq: int, oldest: Sequence[int]) -> None:
        for series in self._series.values():
            gone = [key for key, entry in series.items() if not entry.expire(seq, oldest)]
            for key in gone:
                del series[key]
        self._looked_up &= {k for k in self._series["processes"] if isinstance(k, int)}

    def _publish(self, seq: int, now: float) -> TalkersFrame:
        index = _window_index(self.windows, self.rank_window)
        rankings = {name: self._ranking(name, index) for name in GROUPINGS}
        total = self._series["total"].get("total")
        return TalkersFrame(
            seq=seq,
            taken_at=now,
            windows=self.windows,
            rank_window=self.rank_window,
            total=total.talker(self._windows) if total else _idle_total(len(self.windows)),
            **rankings,
        )

    def _ranking(self, name: str, index: int | None) -> tuple[Talker, ...]:
        entries = self._series[name].values()
        talkers = rank((entry.talker(self._windows) for entry in entries), index)
        if self.limit is not None:
            talkers = talkers[: self.limit]
        if name == "processes":
            talkers = tuple(self._with_cgroup(talker) for talker in talkers)
        return talkers

    def _with_cgroup(self, talker: Talker) -> Talker:
        """``talker`` with its process's cgroup, read the first time the process is ranked."""
        tag = talker.process
        if tag is None or tag.pid in self._looked_up:
            return talker
        tag = replace(tag, cgroup=self.cgroups.lookup(tag.pid))
        self._series["processes"][talker.key].process = tag
        self._looked_up.add(tag.pid)
        return replace(talker, process=tag)


def _entry(
    series: dict[Hashable, _Series],
    key: Hashable,
    label: str,
    process: ProcessTag | None,
    windows: int,
) -> _Series:
    entry = series.get(key)
    if entry is None:
        entry = series[key] = _Series(key, label, process, windows)
    return entry


def _process_entries(
    sample: SocketSample, sock: Socket
) -> Iterator[tuple[Hashable, str, ProcessTag | None]]:
    """(key, label, tag) of each process holding ``sock`` (once per pid however many fds), or
    of the no-owner bucket that says why none does."""
    owners = sample.owners_of(sock)
    if not owners:
        reason = sample.no_owner_reason(sock) or NO_OWNER_UNKNOWN
        yield reason, reason, None
        return
    seen: set[int] = set()
    for owner in owners:
        if owner.pid not in seen:
            seen.add(owner.pid)
            yield owner.pid, f"{owner.comm} ({owner.pid})", _process_tag(owner)


def _process_tag(owner: Owner) -> ProcessTag:
    return ProcessTag(pid=owner.pid, comm=owner.comm, uid=owner.uid, user=owner.user)


def _idle_total(windows: int) -> Talker:
    return Talker("total", "TCP total", ZERO_RATE, (ZERO_RATE,) * windows, 0)
