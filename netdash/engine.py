"""The only place that knows about time: scheduling, diffs, rates and history.

Sources return what the kernel says *now*; the engine remembers what it said before. It runs each
source on its own interval in its own thread (a slow source delays only itself), turns counters
into rates from monotonic timestamps (a counter that goes backwards is a reset, never a negative
rate), keeps bounded history, and hands each result to a callback. No Textual here: `netdash dump`
and the tests use the engine exactly as the TUI does.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Generic, Protocol, TypeVar

from netdash.model import SUMMARY_STATES, Owner, Socket, SocketSample

log = logging.getLogger(__name__)

T = TypeVar("T")

#: History is kept for at least this long whatever the interval (the summary's sparklines).
HISTORY_SECONDS = 600.0
#: Ring buffers never grow past this many points, even at a tiny interval.
HISTORY_MAX_POINTS = 36_000
_COOKIE = operator.attrgetter("cookie")


def history_points(interval: float, seconds: float = HISTORY_SECONDS) -> int:
    """How many samples cover ``seconds`` at ``interval`` (bounded both ways)."""
    return max(2, min(HISTORY_MAX_POINTS, math.ceil(seconds / interval) + 1))


# --------------------------------------------------------------------------------------- diffs


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed between two samples, by stable key."""

    added: tuple[Hashable, ...] = ()
    removed: tuple[Hashable, ...] = ()
    changed: tuple[Hashable, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_by_key(old: Mapping[Hashable, object], new: Mapping[Hashable, object]) -> Diff:
    """Added, removed and changed keys. Identical objects are skipped before comparing values.

    Sources reuse the record of a socket whose bytes did not change, so at 100,000 sockets most
    comparisons end at the cheap identity test.
    """
    added = tuple(key for key in new if key not in old)
    removed = tuple(key for key in old if key not in new)
    changed = []
    for key, value in new.items():
        previous = old.get(key, value)
        if previous is not value and previous != value:
            changed.append(key)
    return Diff(added, removed, tuple(changed))


# --------------------------------------------------------------------------------------- rates


@dataclass(frozen=True, slots=True)
class ByteRate:
    """TCP payload bytes per second: ``rx`` from ``tcpi_bytes_received``, ``tx`` from
    ``tcpi_bytes_acked`` (what the peer confirmed, so retransmissions are not counted twice)."""

    rx: float
    tx: float


def counter_rate(previous: int | None, current: int | None, seconds: float) -> float | None:
    """Per-second rate of a monotonically increasing counter, or None when it cannot be known.

    None when either reading is missing, no time passed, or the counter went backwards (a reset:
    a new connection under the same key, a counter cleared). Never negative.
    """
    if previous is None or current is None or seconds <= 0 or current < previous:
        return None
    return (current - previous) / seconds


def socket_rates(
    old: Mapping[Hashable, Socket], new: Mapping[Hashable, Socket], seconds: float
) -> dict[Hashable, ByteRate]:
    """Byte rates of the TCP sockets present in both samples (others have no rate yet)."""
    rates: dict[Hashable, ByteRate] = {}
    for key, sock in new.items():
        info = sock.tcp
        if info is None:
            continue
        before = old.get(key)
        if before is None or before.tcp is None:
            continue
        if before is sock:
            rates[key] = ZERO_RATE
            continue
        rx = counter_rate(before.tcp.bytes_received, info.bytes_received, seconds)
        tx = counter_rate(before.tcp.bytes_acked, info.bytes_acked, seconds)
        if rx is not None and tx is not None:
            rates[key] = ByteRate(rx, tx)
    return rates


# ------------------------------------------------------------------------------------- history


class History:
    """Bounded ring buffers of per-state socket counts, one point per sample."""

    def __init__(self, points: int) -> None:
        self.points = points
        self._series: dict[str, deque[int]] = {}
        self._times: deque[float] = deque(maxlen=points)

    def append(self, at: float, counts: Mapping[str, int]) -> None:
        length = len(self._times)
        for name in counts.keys() - self._series.keys():
            # A state seen for the first time had zero sockets at every earlier point.
            self._series[name] = deque([0] * length, maxlen=self.points)
        for name, series in self._series.items():
            series.append(counts.get(name, 0))
        self._times.append(at)

    def snapshot(self) -> HistorySnapshot:
        return HistorySnapshot(
            times=tuple(self._times),
            series={name: tuple(values) for name, values in self._series.items()},
        )

    def __len__(self) -> int:
        return len(self._times)


@dataclass(frozen=True)
class HistorySnapshot:
    times: tuple[float, ...] = ()
    series: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def value_ago(self, name: str, seconds: float) -> int | None:
        """The count ``seconds`` before the newest point (or the oldest, if history is shorter)."""
        values = self.series.get(name)
        if not values or not self.times:
            return None
        cutoff = self.times[-1] - seconds
        for at, value in zip(self.times, values, strict=True):
            if at >= cutoff:
                return value
        return values[-1]


def count_states(sockets: Iterable[Socket]) -> dict[str, int]:
    """Sockets per TCP state, plus "UDP" and "UNIX" totals (the summary line's numbers)."""
    counts = dict.fromkeys(SUMMARY_STATES, 0)
    counts["UDP"] = 0
    counts["UNIX"] = 0
    for sock in sockets:
        _count(counts, sock, 1)
    return counts


# ------------------------------------------------------------------------------ the connections


@dataclass(frozen=True)
class ConnectionsFrame:
    """One published moment of the Connections pane's data."""

    seq: int
    sample: SocketSample
    by_key: Mapping[Hashable, Socket]
    diff: Diff
    rates: Mapping[Hashable, ByteRate]
    counts: Mapping[str, int]
    history: HistorySnapshot
    interval: float


#: The rate of a TCP socket whose counters did not move (shared: compared by identity).
ZERO_RATE = ByteRate(0.0, 0.0)


class SocketRates(Mapping[Hashable, ByteRate]):
    """Byte rates by key, without an entry per idle socket.

    A socket whose record the source reused (nothing moved) has a rate of :data:`ZERO_RATE`; only
    sockets with a new record get a computed rate. At 20,000 idle sockets that saves a dict of
    20,000 entries per tick that nobody reads (the rows feed asks for the keys that changed).
    """

    __slots__ = ("_by_key", "_moved", "_unknown")

    def __init__(
        self,
        by_key: Mapping[Hashable, Socket],
        moved: Mapping[Hashable, ByteRate],
        unknown: Collection[Hashable],
    ) -> None:
        self._by_key = by_key
        self._moved = moved  # computed rates of new records
        self._unknown = unknown  # keys without a rate: new sockets, counters that went backwards

    def get(self, key: Hashable, default: ByteRate | None = None) -> ByteRate | None:  # type: ignore[override]
        rate = self._moved.get(key)
        if rate is not None:
            return rate
        sock = self._by_key.get(key)
        if sock is None or sock.tcp is None or key in self._unknown:
            return default
        return ZERO_RATE

    def get_many(
        self, keys: Sequence[Hashable], socks: Sequence[Socket | None] | None = None
    ) -> list[ByteRate | None]:
        """``[self.get(key) for key in keys]``, at C speed for the sockets that moved.

        ``socks`` (``by_key[key]`` for each key, if the caller has them) saves a lookup for the
        idle ones: on the second sample of a fresh 100k-socket machine every key is one.
        """
        found: list[ByteRate | None] = list(map(self._moved.get, keys))
        if None in found:
            if socks is None:
                socks = list(map(self._by_key.get, keys))
            unknown = self._unknown
            for index in compress(range(len(found)), map(operator.is_, found, repeat(None))):
                sock = socks[index]
                if sock is not None and sock.tcp is not None and keys[index] not in unknown:
                    found[index] = ZERO_RATE
        return found

    def __getitem__(self, key: Hashable) -> ByteRate:
        rate = self.get(key)
        if rate is None:
            raise KeyError(key)
        return rate

    def __iter__(self) -> Iterator[Hashable]:
        return (key for key in self._by_key if self.get(key) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"SocketRates({dict(self)!r})"


_NO_RATES: Mapping[Hashable, ByteRate] = {}


class ConnectionsTracker:
    """Turns successive socket samples into frames: diff, byte rates, state counts, history.

    One pass over the sample indexes it, diffs it against the previous one, computes the rates of
    the records that changed and keeps the state counts up to date (only added, removed and
    changed sockets move them). Sources reuse the record of a socket that did not change, so an
    idle socket costs two dict operations; a sample whose records are all the very objects of the
    previous one (an idle machine) costs one C-speed identity walk.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.history = History(history_points(interval))
        self._by_key: dict[Hashable, Socket] = {}
        self._sockets: tuple[Socket, ...] = ()
        self._counts: dict[str, int] = count_states(())
        self._taken_at: float | None = None
        self._seq = 0

    def update(self, sample: SocketSample) -> ConnectionsFrame:
        seconds = sample.taken_at - self._taken_at if self._taken_at is not None else 0.0
        if self._unchanged(sample.sockets):
            by_key, diff = self._by_key, Diff()
            rates = SocketRates(by_key, _NO_RATES, ()) if seconds > 0 else _NO_RATES
        else:
            by_key, diff, rates = self._track(sample.sockets, seconds)
        self.history.append(sample.taken_at, self._counts)
        self._by_key, self._sockets, self._taken_at = by_key, sample.sockets, sample.taken_at
        self._seq += 1
        return ConnectionsFrame(
            seq=self._seq,
            sample=sample,
            by_key=by_key,
            diff=diff,
            rates=rates,
            counts=self._counts,
            history=self.history.snapshot(),
            interval=self.interval,
        )

    def _unchanged(self, sockets: tuple[Socket, ...]) -> bool:
        """Whether ``sockets`` are the previous sample's records, one for one, in order."""
        previous = self._sockets
        return (
            bool(previous)
            and len(sockets) == len(previous)
            and all(map(operator.is_, sockets, previous))
        )

    def _track(
        self, sockets: Iterable[Socket], seconds: float
    ) -> tuple[dict[Hashable, Socket], Diff, Mapping[Hashable, ByteRate]]:
        """The one pass: index, diff, rates and counts (inlined: ~2 µs per changed socket)."""
        old, new = self._by_key, {}
        old_get, claim = old.get, new.setdefault
        added: list[Hashable] = []
        changed: list[Hashable] = []
        moved: dict[Hashable, ByteRate] = {}  # non-zero rates; idle TCP sockets are implied
        unknown: list[Hashable] = []  # TCP sockets without a rate: new, or a counter reset
        counts = self._counts = dict(self._counts)  # a frame keeps the counts it was given
        for sock in sockets:
            key = sock.key
            if claim(key, sock) is not sock:  # a true duplicate (SO_REUSEPORT): by cookie
                key = (*key, "cookie", sock.cookie or sock.inode)
                new[key] = sock
            before = old_get(key)
            if before is sock:
                continue
            if before is None:
                added.append(key)
                unknown.append(key)
                _count(counts, sock, 1)
                continue
            info, was = sock.tcp, before.tcp
            counters_moved = False
            if info is not was and info is not None and was is None:
                unknown.append(key)  # tcp_info turned on: a rate from the next sample
            elif info is not was and info is not None and was is not None:
                rx0, rx1 = was.bytes_received, info.bytes_received
                tx0, tx1 = was.bytes_acked, info.bytes_acked
                if rx0 is None or rx1 is None or tx0 is None or tx1 is None:
                    unknown.append(key)  # a kernel without the counters
                elif rx1 < rx0 or tx1 < tx0:
                    unknown.append(key)  # a reset: a new connection under the same key
                    counters_moved = True
                elif rx1 != rx0 or tx1 != tx0:
                    counters_moved = True
                    if seconds > 0:
                        moved[key] = ByteRate((rx1 - rx0) / seconds, (tx1 - tx0) / seconds)
            if counters_moved or not same_record(before, sock):
                changed.append(key)
                if before.state != sock.state or before.proto != sock.proto:
                    _count(counts, before, -1)
                    _count(counts, sock, 1)
        removed: list[Hashable] = []
        if len(old) + len(added) != len(new):
            removed = [key for key in old if key not in new]
            for key in removed:
                _count(counts, old[key], -1)
        rates = SocketRates(new, moved, set(unknown)) if seconds > 0 else _NO_RATES
        return new, Diff(tuple(added), tuple(removed), tuple(changed)), rates


def same_record(a: Socket, b: Socket) -> bool:
    """``a == b``, decided early on the fields that move (byte counters, queues, state).

    A full comparison builds two 18-field tuples and two 39-field tcp_info tuples: ~1.5 µs, paid
    for every changed socket when every counter moves.
    """
    ta, tb = a.tcp, b.tcp
    if ta is not tb:
        if ta is None or tb is None:
            return False
        if (
            ta.bytes_acked != tb.bytes_acked
            or ta.bytes_received != tb.bytes_received
            or ta.segs_out != tb.segs_out
            or ta.segs_in != tb.segs_in
            or ta.rtt_us != tb.rtt_us
        ):
            return False
    if a.recv_q != b.recv_q or a.send_q != b.send_q or a.state != b.state or a.inode != b.inode:
        return False
    return a == b


def _bucket(sock: Socket) -> str:
    """The summary line's name for ``sock``: its TCP state, or "UDP" / "UNIX"."""
    if sock.proto == "tcp":
        return "SYN_RECV" if sock.state == "NEW_SYN_RECV" else sock.state
    return "UDP" if sock.proto == "udp" else "UNIX"


def _count(counts: dict[str, int], sock: Socket, step: int) -> None:
    name = _bucket(sock)
    counts[name] = counts.get(name, 0) + step


def index_sockets(sockets: Iterable[Socket]) -> dict[Hashable, Socket]:
    """Sockets by stable key; true duplicates (the same key twice) are told apart by cookie."""
    by_key: dict[Hashable, Socket] = {}
    for sock in sockets:
        key = sock.key
        if key in by_key:
            key = (*key, "cookie", sock.cookie or sock.inode)
        by_key[key] = sock
    return by_key


# ----------------------------------------------------------------------------------- scheduling


@dataclass
class PollerStatus:
    """How a source is doing, for the header line: never a silent stall."""

    last_ok: float | None = None
    last_error: str | None = None
    last_duration: float | None = None
    runs: int = 0


class Poller(Generic[T]):
    """Runs ``sample`` every ``interval`` seconds in its own thread and hands results on.

    Ticks never overlap: the next run is scheduled from the start of the last one, and if a run
    took longer than the interval the next starts right after it (no burst of catch-up runs).
    Errors are reported through ``on_error`` and the loop goes on: a failing source degrades its
    own pane, never the app.
    """

    def __init__(
        self,
        name: str,
        sample: Callable[[], T],
        on_result: Callable[[T], None],
        interval: float,
        on_error: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        setup: Callable[[], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, not {interval!r}")
        self.name = name
        self.interval = interval
        self.status = PollerStatus()
        self._sample = sample
        self._on_result = on_result
        self._on_error = on_error
        self._clock = clock
        self._setup = setup
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"netdash-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def poke(self) -> None:
        """Run the next tick now (e.g. the user pressed refresh or changed what to sample)."""
        self._wake.set()

    def run_once(self) -> None:
        """One tick, in the calling thread: what the loop does each interval."""
        started = self._clock()
        try:
            result = self._sample()
        except Exception as err:  # a source's failure is data for its pane, not a crash
            self.status.last_error = str(err) or type(err).__name__
            log.debug("poller %s failed", self.name, exc_info=True)
            if self._on_error is not None:
                self._on_error(err)
            return
        finally:
            self.status.last_duration = self._clock() - started
            self.status.runs += 1
        self.status.last_ok = self._clock()
        self.status.last_error = None
        try:
            self._on_result(result)
        except Exception as err:  # a consumer's bug must not end the refresh loop either
            log.exception("consumer of poller %s failed", self.name)
            if self._on_error is not None:
                self._on_error(err)

    def _run(self) -> None:
        if self._setup is not None:
            try:
                self._setup()
            except Exception as err:
                self.status.last_error = str(err)
                if self._on_error is not None:
                    self._on_error(err)
                return
        while not self._stop.is_set():
            started = self._clock()
            self.run_once()
            delay = self.interval - (self._clock() - started)
            if delay > 0:
                self._wake.wait(delay)
            self._wake.clear()


# ------------------------------------------------------------------------------------- sampling


class ConnectionsSampler:
    """Joins the sockets source and the owner map into one :class:`SocketSample`.

    Both sources keep state between calls (an open netlink socket, the inode → pid map), so one
    sampler lives as long as the view that uses it.
    """

    def __init__(
        self,
        reader: SocketReaderLike,
        owners: OwnerMapLike,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = reader
        self.owners = owners
        self.tcp_info = True
        #: The cookie of the one socket whose memory (``ss -m``) is read, by an exact request
        #: after each read: only a socket's detail view shows memory, and asking it of every
        #: socket would rebuild every record (see SockDiag.read_one). None: no socket's.
        self.memory_of: int | None = None
        self.unix = True
        self.is_root = os.geteuid() == 0
        self._clock = clock
        self._wall_clock = wall_clock
        self._last_sockets: tuple[Socket, ...] = ()

    def sample(self) -> SocketSample:
        read = self.reader.read(tcp_info=self.tcp_info, unix=self.unix, memory=False)
        self.owners.refresh(self._wanted(read.sockets))
        return SocketSample(
            sockets=self._with_memory(read.sockets),
            owners=self.owners.owners(),
            fd_tables=self.owners.fd_tables(),
            sources=read.sources,
            gaps=read.gaps,
            owners_complete=self.owners.complete,
            is_root=self.is_root,
            taken_at=self._clock(),
            wall_time=self._wall_clock(),
        )

    def _wanted(self, sockets: tuple[Socket, ...]) -> Mapping[int, int | None] | None:
        """{inode: uid} of the sockets, for the owner map's search for inodes it does not know;
        None when the records are the very objects of the last read (an idle machine: nothing
        new to search for). Built afresh and dropped after the refresh: kept between ticks it
        was a 100,000-entry dict (~5 MB at 100k sockets) held for nothing."""
        last, self._last_sockets = self._last_sockets, sockets
        if last and len(sockets) == len(last) and all(map(operator.is_, sockets, last)):
            return None
        return {sock.inode: sock.uid for sock in sockets if sock.inode}

    def _with_memory(self, sockets: tuple[Socket, ...]) -> tuple[Socket, ...]:
        """``sockets`` with the record of :attr:`memory_of` read again with its memory."""
        cookie = self.memory_of
        if not cookie:
            return sockets
        try:
            index = list(map(_COOKIE, sockets)).index(cookie)
        except ValueError:
            return sockets
        fuller = self.reader.with_memory(sockets[index])
        if fuller is sockets[index]:
            return sockets
        return (*sockets[:index], fuller, *sockets[index + 1 :])

    def close(self) -> None:
        self.reader.close()


class SocketReadLike(Protocol):
    sockets: tuple[Socket, ...]
    sources: Mapping[str, str]
    gaps: tuple[str, ...]


class SocketReaderLike(Protocol):
    def read(
        self, *, tcp_info: bool = True, unix: bool = True, memory: bool = True
    ) -> SocketReadLike: ...

    def with_memory(self, sock: Socket) -> Socket: ...

    def close(self) -> None: ...


class OwnerMapLike(Protocol):
    @property
    def complete(self) -> bool: ...

    def refresh(self, wanted: Mapping[int, int | None] | None = None) -> None: ...

    def owners(self) -> Mapping[int, tuple[Owner, ...]]: ...

    def fd_tables(self) -> Mapping[int, Mapping[int, int]]: ...
