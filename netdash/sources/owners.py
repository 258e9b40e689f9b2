"""Who holds each socket: an inode -> owners map kept between samples.

The kernel's socket dump says *which* sockets exist but not who holds them; only the symlinks in
``/proc/PID/fd`` (``socket:[INODE]``) do. Reading them all costs ~2 µs per fd, mostly in the
kernel, and ``ss -p`` pays that on every call. DESIGN.md measured +200 ms at 100k sockets for a
full scan against +~30 ms when the map is kept and only changed processes are rescanned, so
:class:`OwnerMap` keeps the map between samples and rescans a pid only when something says it
changed:

- a new pid (or a reused one: its start time differs);
- its open-fd count changed: ``stat('/proc/PID/fd').st_size`` is that count on Linux >= 6.2
  (``proc_fd_getattr`` in fs/proc/fd.c); older kernels say 0 and we fall back to the others;
- the socket dump holds an inode the map does not know (searched once, in processes of the
  socket's uid, then remembered until the next full pass so ownerless kernel sockets don't cost
  a rescan every tick);
- at least every ``full_pass_interval`` seconds, whatever else happened (a socket swapped for a
  file with dup2() keeps the fd count equal and is only noticed then). These periodic rescans
  are spread over the interval, a few pids per refresh, rather than done all at once: at
  100,000 sockets a full pass costs ~0.6 s (readlink of every fd), which made every 30th tick
  of the live app stall for that long. With many sockets the interval grows with them
  (:data:`FULL_PASS_SECONDS_PER_SOCKET`): the live app at 20,000 sockets spent ~0.5% of a core
  on the spread-out passes alone (~10 µs per fd, readlink and parsing), a tenth of its budget.

Owners are per process: one :class:`~netdash.model.Owner` (and one 1-tuple of it) per pid,
shared by every socket it alone holds, so the map costs a dict entry per socket and nothing more;
which descriptors hold a socket is in :meth:`OwnerMap.fd_tables` (pid -> {fd: inode}).

Not thread-safe: call :meth:`OwnerMap.refresh` from one worker thread. The mappings returned by
:meth:`OwnerMap.owners` and :meth:`OwnerMap.fd_tables` are immutable and may be handed to any
thread.
"""

from __future__ import annotations

import errno
import os
import pwd
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from netdash.model import Owner
from netdash.sources.errors import SourceUnavailable
from netdash.textsafe import decode

#: The periodic full pass comes at least every ``full_pass_interval`` seconds, or every this
#: many seconds per socket the map knows if that is longer: 30 s up to 6,000 sockets, 100 s at
#: 20,000, ~8 min at 100,000. Averaged, the pass then costs ~0.1% of a core at any scale.
FULL_PASS_SECONDS_PER_SOCKET = 0.005

_DENIED = frozenset({errno.EACCES, errno.EPERM})  # another user's process (we are not root)
_SOCKET_PREFIX = "socket:["


@dataclass(frozen=True, slots=True)
class OwnerStats:
    """What the last :meth:`OwnerMap.refresh` cost, for the status line and the benchmark."""

    full_pass: bool  # every pid was rescanned (the first refresh, or all were due at once)
    pids: int = 0  # processes listed in /proc
    pids_scanned: int = 0  # fd directories read
    fds_read: int = 0  # readlink() calls
    unknown_inodes: int = 0  # inodes of the dump searched for this refresh
    denied: int = 0  # processes whose fds we may not read
    seconds: float = 0.0  # wall time of the refresh


class _Proc:
    """What one scan of /proc/PID learned; kept until the pid is rescanned or vanishes."""

    __slots__ = (
        "comm", "denied", "due", "fd_count", "fd_ino", "owner", "sockets", "solo", "start", "uid",
        "uids", "user",
    )  # fmt: skip

    def __init__(self, start: int, fd_ino: int, fd_count: int, comm: str, uids: tuple[int, ...]):
        self.start = start  # /proc/PID/stat field 22, clock ticks since boot
        self.fd_ino = fd_ino  # a new inode for /proc/PID/fd hints at a reused pid
        self.fd_count = fd_count
        self.comm = comm
        self.uids = uids  # real, effective, saved, filesystem (/proc/PID/status "Uid:")
        self.uid: int | None = uids[1] if len(uids) > 1 else None
        self.user: str | None = None
        self.sockets = FdTable.EMPTY  # fd -> socket inode
        self.denied = False
        self.due = 0.0  # when the periodic rescan is due (OwnerMap's clock)
        # The process as an owner, and (owner,): the index entry of every socket it alone holds.
        self.owner = Owner(0, "")
        self.solo: tuple[Owner, ...] = ()

    def same_owner(self, other: _Proc) -> bool:
        return (self.comm, self.uid, self.user) == (other.comm, other.uid, other.user)


class OwnerMap:
    """The inode -> owners map, brought up to date cheaply by :meth:`refresh`."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        full_pass_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = str(proc_root)
        self._interval = full_pass_interval
        self._clock = clock
        self._procs: dict[int, _Proc] = {}
        self._index: dict[int, tuple[Owner, ...]] = {}
        self._view: Mapping[int, tuple[Owner, ...]] | None = None
        self._fds: dict[int, FdTable] = {}  # pid -> its socket fds (_Proc.sockets)
        self._fds_view: Mapping[int, Mapping[int, int]] | None = None
        self._denied: set[int] = set()
        self._searched: set[int] = set()  # unknown inodes already looked for since the full pass
        self._last_full: float | None = None
        self._counts_work: bool | None = None  # does st_size of /proc/PID/fd count fds?
        self._names: dict[int, str] = {}
        self._stats = OwnerStats(full_pass=False)

    # -- public API ---------------------------------------------------------------------------

    def refresh(self, wanted: Mapping[int, int | None] | None = None) -> None:
        """Bring the map up to date; ``wanted`` is {inode: socket uid or None} of the dump."""
        started = time.perf_counter()
        now = self._clock()
        first = self._last_full is None
        interval = self.full_pass_interval
        if first or now - self._last_full >= interval:  # type: ignore[operator]
            self._last_full = now
            self._searched.clear()
        tick = _Tick(now, interval)
        pids = _list_pids(self._root)
        for pid in self._procs.keys() - pids:
            self._drop(pid)
        procs = self._procs
        for pid in pids:
            proc = procs.get(pid)
            if proc is None or proc.due <= now or self._changed(pid):
                self._rescan(pid, tick)
        if first:
            self._stagger(now)
        if self._counts_work is None:
            self._counts_work = any(proc.fd_count for proc in self._procs.values())
        full = first or pids <= tick.scanned  # before the search, which may rescan many
        if wanted:
            self._search_unknown(wanted, tick)
        self._stats = tick.finish(full, len(pids), len(self._denied), time.perf_counter() - started)

    def _stagger(self, now: float) -> None:
        """After the first pass, spread the periodic rescans evenly over the interval."""
        count = len(self._procs)
        for index, proc in enumerate(self._procs.values()):
            proc.due = now + self.full_pass_interval * (index + 1) / count

    @property
    def full_pass_interval(self) -> float:
        """Seconds between two periodic rescans of a pid: see FULL_PASS_SECONDS_PER_SOCKET."""
        return max(self._interval, len(self._index) * FULL_PASS_SECONDS_PER_SOCKET)

    def owners(self) -> Mapping[int, tuple[Owner, ...]]:
        """inode -> owners sorted by pid, as a read-only mapping that never changes.

        Copy-on-write: the same object is returned again until a refresh changes something, so
        ``a is b`` is a free "nothing changed" test, and a refresh that changes something copies
        the dict (2-4 ms at 100k) rather than mutating what a caller holds.
        """
        if self._view is None:
            self._view = MappingProxyType(self._index)
        return self._view

    def fd_tables(self) -> Mapping[int, Mapping[int, int]]:
        """pid -> {fd: socket inode} of every process holding sockets; read-only, and the same
        object until a refresh changes a table (copy-on-write, like :meth:`owners`)."""
        if self._fds_view is None:
            self._fds_view = MappingProxyType(self._fds)
        return self._fds_view

    @property
    def complete(self) -> bool:
        """False when some process's fds were hidden from us: their sockets show no owner."""
        return not self._denied

    @property
    def denied_pids(self) -> frozenset[int]:
        return frozenset(self._denied)

    @property
    def stats(self) -> OwnerStats:
        return self._stats

    def full_rescan(self) -> tuple[dict[int, tuple[Owner, ...]], dict[int, FdTable]]:
        """Build the map and the fd tables from scratch, leaving the kept state alone: the
        oracle for tests."""
        found: dict[int, list[Owner]] = {}
        tables: dict[int, FdTable] = {}
        for pid in _list_pids(self._root):
            proc, _ = _scan_pid(self._root, pid)
            if proc is None or not proc.sockets:
                continue
            self._name_user(proc)
            owner = Owner(pid, proc.comm, proc.uid, proc.user)
            tables[pid] = proc.sockets
            for inode in set(proc.sockets.values()):
                found.setdefault(inode, []).append(owner)
        return {
            inode: tuple(sorted(owners, key=_by_pid)) for inode, owners in found.items()
        }, tables

    # -- deciding what to rescan --------------------------------------------------------------

    def _changed(self, pid: int) -> bool:
        """Whether a known pid needs a rescan: reused, or its fd count moved."""
        proc = self._procs[pid]
        try:
            st = os.stat(f"{self._root}/{pid}/fd")
        except OSError:
            return True  # gone or odd: the rescan finds out and drops it
        if st.st_ino != proc.fd_ino:
            # A new proc inode: the pid was reused, or only its dentry was evicted and rebuilt.
            if _start_time(self._root, pid) != proc.start:
                return True
            proc.fd_ino = st.st_ino
        if proc.denied:
            return False  # retried on the full pass; its fd count says nothing we could read
        return bool(self._counts_work) and st.st_size != proc.fd_count

    def _search_unknown(self, wanted: Mapping[int, int | None], tick: _Tick) -> None:
        """Rescan the processes that could hold the dump's inodes we have never seen.

        Narrowed by uid: a socket's uid is its creator's fsuid, which is nearly always one of
        the holder's uids. A holder that changed all its uids since (bind as root, then
        setuid) is found on the next full pass.
        """
        unknown = wanted.keys() - self._index.keys()
        unknown.discard(0)  # TIME_WAIT, requests, not yet accepted: nobody holds them
        unknown -= self._searched
        if self._searched:
            self._searched = {inode for inode in self._searched if inode in wanted}
        if not unknown:
            return
        uids = {wanted[inode] for inode in unknown}
        for pid, proc in list(self._procs.items()):
            if pid in tick.scanned or proc.denied:
                continue
            if None in uids or not uids.isdisjoint(proc.uids):
                self._rescan(pid, tick)
        self._searched |= unknown
        tick.unknown = len(unknown)

    # -- keeping the index ----------------------------------------------------------------------

    def _rescan(self, pid: int, tick: _Tick) -> None:
        proc, fds_read = _scan_pid(self._root, pid)
        tick.scanned.add(pid)
        tick.fds_read += fds_read
        if proc is None:
            self._drop(pid)
            return
        proc.due = tick.next_due
        self._name_user(proc)
        old = self._procs.get(pid)
        if old is not None and old.same_owner(proc):
            proc.owner, proc.solo = old.owner, old.solo  # rows see unchanged owners by identity
        else:
            proc.owner = Owner(pid, proc.comm, proc.uid, proc.user)
            proc.solo = (proc.owner,)
        self._procs[pid] = proc
        if proc.denied:
            self._denied.add(pid)
        else:
            self._denied.discard(pid)
        self._reindex(pid, old, proc)

    def _drop(self, pid: int) -> None:
        old = self._procs.pop(pid, None)
        self._denied.discard(pid)
        if old is not None and old.sockets:
            index = self._writable()
            for inode in set(old.sockets.values()):
                self._remove_owner(index, inode, pid)
            self._set_fds(pid, None)

    def _reindex(self, pid: int, old: _Proc | None, new: _Proc) -> None:
        """Apply the difference between a pid's old and new sockets to the index."""
        if old is None:
            if new.sockets:
                self._index_new(new)
                self._set_fds(pid, new.sockets)
            return
        if old.sockets == new.sockets and old.owner is new.owner:
            return  # only non-socket fds changed: keep the index (and the caller's view)
        self._set_fds(pid, new.sockets or None)
        before, after = set(old.sockets.values()), set(new.sockets.values())
        if old.owner is new.owner:
            removed, added = before - after, after - before
        else:  # renamed (exec) or another user: every entry gets the new owner
            removed, added = before, after
        if not removed and not added:
            return
        index = self._writable()
        for inode in removed:
            self._remove_owner(index, inode, pid)
        for inode in added:
            current = index.get(inode)
            index[inode] = new.solo if current is None else _with_owner(current, new.owner)

    def _index_new(self, proc: _Proc) -> None:
        """Index every socket of a pid seen for the first time: the whole first pass at 100k
        sockets, so one tight loop."""
        index = self._writable()
        get, solo, owner = index.get, proc.solo, proc.owner
        for inode in proc.sockets.values():
            current = get(inode)
            if current is None:
                index[inode] = solo
            elif owner not in current:  # a socket held by other processes too (or dup'd)
                index[inode] = _with_owner(current, owner)

    def _remove_owner(self, index: dict[int, tuple[Owner, ...]], inode: int, pid: int) -> None:
        current = index.get(inode)
        if current is None:
            return
        kept = tuple(o for o in current if o.pid != pid)
        if not kept:
            del index[inode]
        elif len(kept) == 1:
            holder = self._procs.get(kept[0].pid)
            index[inode] = holder.solo if holder is not None and holder.owner is kept[0] else kept
        else:
            index[inode] = kept

    def _set_fds(self, pid: int, table: FdTable | None) -> None:
        """Replace (or drop) a pid's fd table, copying the dict first if a caller holds it."""
        if self._fds_view is not None:
            self._fds = dict(self._fds)
            self._fds_view = None
        if table:
            self._fds[pid] = table
        else:
            self._fds.pop(pid, None)

    def _writable(self) -> dict[int, tuple[Owner, ...]]:
        """The index, copied first if a caller holds a view of it (copy-on-write)."""
        if self._view is not None:
            self._index = dict(self._index)
            self._view = None
        return self._index

    def _name_user(self, proc: _Proc) -> None:
        """Fill in the user name; a uid without a passwd entry shows as its number."""
        uid = proc.uid
        if uid is None:
            return
        name = self._names.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._names[uid] = name
        proc.user = name


class _Tick:
    """Counters of one refresh."""

    __slots__ = ("fds_read", "next_due", "scanned", "unknown")

    def __init__(self, now: float, interval: float) -> None:
        self.next_due = now + interval  # of a pid rescanned now
        self.scanned: set[int] = set()
        self.fds_read = 0
        self.unknown = 0

    def finish(self, full: bool, pids: int, denied: int, seconds: float) -> OwnerStats:
        return OwnerStats(
            full_pass=full,
            pids=pids,
            pids_scanned=len(self.scanned),
            fds_read=self.fds_read,
            unknown_inodes=self.unknown,
            denied=denied,
            seconds=seconds,
        )


def _by_pid(owner: Owner) -> int:
    return owner.pid


def _with_owner(current: tuple[Owner, ...], owner: Owner) -> tuple[Owner, ...]:
    """``current`` plus ``owner``, by pid; it replaces an older record of its pid."""
    others = [o for o in current if o.pid != owner.pid]
    return tuple(sorted((*others, owner), key=_by_pid))


# -- reading /proc ------------------------------------------------------------------------------


def _list_pids(root: str) -> set[int]:
    try:
        names = os.listdir(root)
    except OSError as err:
        raise SourceUnavailable(f"cannot list processes in {root}: {err.strerror}") from err
    return {int(name) for name in names if name.isdigit()}


def _read(path: str) -> bytes:
    """Read a whole /proc file with raw syscalls (a third cheaper than open() here)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 8192):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_stat(raw: bytes) -> tuple[bytes, int]:
    """(comm, start time) from /proc/PID/stat (proc(5)).

    comm is field 2 between the first "(" and the *last* ")": a name may hold ") (" itself.
    It is the same raw bytes as /proc/PID/comm (both print the name unescaped through
    ``proc_task_name``), so one read gives both. Start time is field 22, in clock ticks.
    """
    open_paren = raw.index(b"(")
    close_paren = raw.rindex(b")")
    fields = raw[close_paren + 2 :].split()  # fields[0] is field 3, "state"
    return raw[open_paren + 1 : close_paren], int(fields[19])


def parse_status_uids(raw: bytes) -> tuple[int, ...]:
    """The "Uid:" line of /proc/PID/status: real, effective, saved set, filesystem uid."""
    start = raw.find(b"\nUid:")
    if start < 0:
        return ()
    end = raw.find(b"\n", start + 1)
    return tuple(int(part) for part in raw[start + 5 : end if end > 0 else None].split())


def _start_time(root: str, pid: int) -> int | None:
    try:
        return parse_stat(_read(f"{root}/{pid}/stat"))[1]
    except (OSError, ValueError, IndexError):
        return None


def _scan_pid(root: str, pid: int) -> tuple[_Proc | None, int]:
    """Read one process's socket fds; (None, n) when it vanished meanwhile."""
    base = f"{root}/{pid}"
    try:
        # stat the fd dir *before* listing it: an fd opened in between then shows up as a
        # changed count on the next refresh instead of being missed until the full pass.
        st = os.stat(f"{base}/fd")
        comm, start = parse_stat(_read(f"{base}/stat"))
        uids = parse_status_uids(_read(f"{base}/status"))
    except (OSError, ValueError, IndexError):
        return None, 0  # gone, or a /proc we cannot parse (hidepid): skip, retry as a new pid
    proc = _Proc(start, st.st_ino, st.st_size, decode(comm), uids)
    try:
        proc.sockets, fds_read = _read_socket_fds(f"{base}/fd")
    except OSError as err:
        if err.errno in _DENIED:
            proc.denied = True
            return proc, 0
        return None, 0  # ENOENT / ESRCH: it exited while we listed its fds (or odd: retry)
    return proc, fds_read


def _read_socket_fds(fd_dir: str) -> tuple[FdTable, int]:
    """fd -> inode of each ``socket:[INODE]`` link, and the number of readlinks done."""
    found: list[tuple[int, int]] = []
    dir_fd = os.open(fd_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = os.listdir(dir_fd)
        for name in names:
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue  # closed since the listing
            if target.startswith(_SOCKET_PREFIX):
                found.append((int(name), int(target[len(_SOCKET_PREFIX) : -1])))
        return FdTable(found), len(names)
    finally:
        os.close(dir_fd)


class FdTable(Mapping[int, int]):
    """One process's socket descriptors, fd -> inode, in two arrays sorted by fd.

    12 bytes a descriptor; a dict of them cost ~75 (an entry, and an int object for each fd
    past 256): 6 MB at 100,000 sockets. Lookups by fd scan (only a detail view asks); what the
    owner map does with a table (compare two, walk the inodes) runs over the arrays.
    """

    __slots__ = ("_fds", "_inodes")
    EMPTY: FdTable

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        ordered = sorted(pairs)
        self._fds = array("i", [fd for fd, _ in ordered])
        self._inodes = array("Q", [inode for _, inode in ordered])

    def __getitem__(self, fd: int) -> int:
        try:
            return self._inodes[self._fds.index(fd)]
        except ValueError:
            raise KeyError(fd) from None

    def __iter__(self) -> Iterator[int]:
        return iter(self._fds)

    def __len__(self) -> int:
        return len(self._fds)

    def values(self) -> array[int]:  # type: ignore[override]
        return self._inodes

    def items(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        return zip(self._fds, self._inodes, strict=True)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FdTable):
            return self._fds == other._fds and self._inodes == other._inodes
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FdTable({dict(self.items())!r})"


FdTable.EMPTY = FdTable()


def read_cmdline(pid: int, proc_root: Path = Path("/proc")) -> tuple[str, ...] | None:
    """argv, decoded safely; () for zombies and kernel threads, None if gone or denied."""
    try:
        raw = _read(f"{proc_root}/{pid}/cmdline")
    except OSError:
        return None
    if not raw:
        return ()
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return tuple(decode(arg) for arg in raw.split(b"\0"))
