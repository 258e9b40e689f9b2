"""Every process, read incrementally from /proc: what ``ps -eo pid,ppid,user,stat,rss,pcpu,nlwp,
cmd`` shows, plus open fds, fd limits, network namespace and cgroups.

Why a focused /proc reader and not psutil: the issue measured, at 2,000 processes, ``ps`` 54 ms,
``psutil.process_iter`` 147 ms and a reader like this one 64 ms. psutil builds a Process object per
pid and reads its files through layers made for one process at a time. Here one read of
``/proc/PID/stat`` gives ppid, state, threads, CPU ticks and start time; the other files read
are ``status`` (the effective uid: the owner of ``/proc/PID`` is root for a non-dumpable process
such as an nginx worker, so ``st_uid`` of the directory would lie; and the exact RSS, see
:func:`parse_status`) and ``cmdline``. psutil is not used at all, which also keeps zombies: its
``cmdline()`` raises ``ZombieProcess``, a subclass of ``NoSuchProcess``, so code that skips what
vanished loses them.

Incremental: the raw bytes of every ``/proc/PID/stat`` are kept, and a process whose bytes did not
change since the last sample keeps its previous :class:`~netdash.model.Proc` record, the same
object. Those bytes hold its CPU time, state, page faults and memory sizes, so running, exec()
or touching memory moves them; a sleeper's stay still. Only new processes and those whose stat
moved have ``status`` and ``cmdline`` re-read: the steady-state tick costs one listing of /proc
and one small read per process. (A change that needs none of that, such as a setuid() in under
a clock tick of CPU, shows when the stat next moves.)

Details (``sample(details=True)``): open fds (``st_size`` of ``/proc/PID/fd`` counts them on
Linux >= 6.2, ``proc_fd_getattr`` in fs/proc/fd.c, even for another user's process; older
kernels list the directory), the "Max open files" line of ``/proc/PID/limits``, the inode of
``/proc/PID/ns/net`` and ``/proc/PID/cgroup``. They are read for a new process or one whose stat
changed, and otherwise every ``details_interval`` seconds, spread over that interval rather than
all at once (a process can open files, or be moved to another cgroup, while asleep). With
``details=False`` they are not read, and a record keeps the values last read, if any.

Keyed by (pid, start ticks): a pid reused by a process started in a later clock tick is a new
process (CPU % None, everything read); one reused within the same 10 ms tick cannot be told
apart, as in ps and psutil. A process that vanishes while it is read is skipped silently; a
field that permissions hide is None and named (by its ``Proc`` attribute) in ``Proc.denied``.
Not thread-safe: call :meth:`ProcessReader.sample` from one worker thread.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import pwd
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netdash.model import TCP_STATES, Proc, ProcessSample, SocketSample
from netdash.sources.errors import SourceUnavailable
from netdash.sources.owners import _list_pids, parse_status_uids
from netdash.textsafe import decode

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # units of stat's utime, stime and starttime
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")  # unit of stat's rss
_GONE = frozenset({errno.ENOENT, errno.ESRCH})  # exited (and reaped) while we read it
_DENIED = frozenset({errno.EACCES, errno.EPERM})
_NEVER = float("-inf")


def _read(path: str, size: int = 4096) -> bytes:
    """A whole small /proc file in one read() where it fits (owners' ``_read`` reads until an
    empty read: one more syscall per file, 2,000 per tick here). A short read is the end: these
    files are seq_files (``seq_read_iter`` fills the caller's buffer from a record it rendered
    whole) or ``cmdline`` (``get_mm_cmdline`` copies until the count or the end of argv)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size)
        if len(data) < size:
            return data
        chunks = [data]
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """The user's name, cached (a passwd lookup may go to NSS: LDAP, sssd); a uid without a
    passwd entry shows as its number, as ps shows it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class _Vanished(Exception):
    """The process exited between two reads of its files: skip it."""


@dataclass(frozen=True, slots=True)
class StatFields:
    """The fields of ``/proc/PID/stat`` we use (proc(5) numbers them from 1)."""

    comm: bytes  # 2, the same bytes as /proc/PID/comm
    state: str  # 3
    ppid: int  # 4
    cpu_ticks: int  # 14 utime + 15 stime, in clock ticks
    threads: int  # 20
    start_ticks: int  # 22, clock ticks after boot
    rss_pages: int  # 24, approximate (see parse_status)


def parse_stat(raw: bytes) -> StatFields:
    """Parse ``/proc/PID/stat``. comm is between the first "(" and the *last* ")": a name may
    itself hold ") (" (``prctl(PR_SET_NAME)`` accepts anything but NUL)."""
    close = raw.rindex(b")")
    fields = raw[close + 2 :].split()  # fields[0] is field 3, state
    return StatFields(
        comm=raw[raw.index(b"(") + 1 : close],
        state=fields[0].decode("ascii"),
        ppid=int(fields[1]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        threads=int(fields[17]),
        start_ticks=int(fields[19]),
        rss_pages=int(fields[21]),
    )


def parse_status(raw: bytes) -> tuple[int | None, int | None]:
    """(effective uid, RSS in bytes) from ``/proc/PID/status``.

    RSS comes from "VmRSS:" rather than stat's field 24 because they differ: the RSS counters
    are per-CPU (a percpu_counter since Linux 6.2) and stat reads them without folding in the
    per-CPU parts (``get_mm_rss``), while status sums them on this kernel. A sleeper measured
    here: 1,640 kB in stat, 1,812 kB in status, statm and ``ps``. No "VmRSS" line (kernel
    threads, zombies): None.
    """
    uids = parse_status_uids(raw)
    start = raw.find(b"\nVmRSS:")
    rss = None
    if start >= 0:
        words = raw[start + 7 : raw.find(b"\n", start + 1)].split()
        rss = int(words[0]) * 1024 if words and words[0].isdigit() else None
    return (uids[1] if len(uids) > 1 else None), rss


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    """argv from ``/proc/PID/cmdline`` (NUL-separated); () for zombies and kernel threads."""
    if not raw:
        return ()
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return tuple(decode(arg) for arg in raw.split(b"\0"))


def parse_fd_limits(raw: bytes) -> tuple[int | None, int | None]:
    """(soft, hard) from the "Max open files" line of ``/proc/PID/limits``; None for
    "unlimited" (which RLIMIT_NOFILE cannot be: fs.nr_open caps it) or a missing line."""
    start = raw.find(b"Max open files")
    if start < 0:
        return None, None
    words = raw[start + 14 : raw.find(b"\n", start)].split()
    if len(words) < 2:
        return None, None
    soft, hard = (int(word) if word.isdigit() else None for word in words[:2])
    return soft, hard


def parse_cgroups(text: str) -> tuple[str | None, dict[str, str]]:
    """(the unified ``0::`` path, {v1 hierarchy: path}) from ``/proc/PID/cgroup``.

    Lines are ``hierarchy-ID:controller-list:path`` (cgroups(7)). A v1 hierarchy is keyed by its
    controller list as the kernel writes it ("memory", "cpu,cpuacct", "name=systemd"), which is
    also its directory under /sys/fs/cgroup and ``CgroupInfo.hierarchy``. A pure v1 host has no
    ``0::`` line (None); a pure v2 host has no v1 ones ({}).
    """
    unified: str | None = None
    legacy: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and not parts[1]:
            unified = parts[2]
        elif parts[1]:
            legacy[parts[1]] = parts[2]
    return unified, legacy


def read_boot_time(proc_root: Path = Path("/proc")) -> float:
    """Seconds since the epoch at boot: the ``btime`` line of /proc/stat, what ps and psutil
    add to a process's start ticks."""
    try:
        text = (proc_root / "stat").read_bytes()
    except OSError as err:
        raise SourceUnavailable(f"cannot read {proc_root}/stat: {err.strerror}") from err
    for line in text.splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise SourceUnavailable(f"{proc_root}/stat has no btime line")


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """What the last :meth:`ProcessReader.sample` did, for the status line and the benchmark."""

    pids: int = 0  # listed in /proc
    kept: int = 0  # stat unchanged: the previous record kept as is
    reread: int = 0  # new, or stat changed: status and cmdline read
    details_read: int = 0  # fds, limits, netns and cgroup read
    vanished: int = 0  # listed, then gone before we finished reading it
    seconds: float = 0.0


class _Entry:
    """What the reader remembers of one process between samples."""

    __slots__ = ("details_due", "proc", "raw", "ticks")

    def __init__(self, raw: bytes, proc: Proc, ticks: int, details_due: float) -> None:
        self.raw = raw  # the /proc/PID/stat bytes the record was built from
        self.proc = proc
        self.ticks = ticks  # utime + stime in those bytes
        self.details_due = details_due  # _NEVER: details never read


#: (num_fds, fd_soft_limit, fd_hard_limit, netns, cgroup, cgroups_v1), and what was denied.
_Details = tuple[int | None, int | None, int | None, int | None, str | None, Mapping[str, str]]
_NO_DETAILS: _Details = (None, None, None, None, None, {})
_DETAIL_FIELDS = ("num_fds", "fd_soft_limit", "fd_hard_limit", "netns", "cgroup", "cgroups_v1")


class ProcessReader:
    """Samples every process; see the module docstring for what is read when."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
        details_interval: float = 10.0,
    ) -> None:
        self._root = str(proc_root)
        self._clock = clock
        self._interval = details_interval
        self._boot = read_boot_time(proc_root)
        self._entries: dict[int, _Entry] = {}
        self._last: float | None = None  # clock of the previous sample
        self._cgroups: dict[bytes, tuple[str | None, Mapping[str, str]]] = {}
        self._fd_size_counts = _fd_size_counts(self._root)
        self._stats = ProcessStats()
        self._staggered = False  # details were read once and their refreshes spread out

    @property
    def stats(self) -> ProcessStats:
        return self._stats

    def sample(self, details: bool = True) -> ProcessSample:
        """Every process now, in pid order. CPU % is of one core since the previous sample
        (None for a process seen for the first time)."""
        started = time.perf_counter()
        now = self._clock()
        elapsed = now - self._last if self._last is not None else None
        old, entries = self._entries, {}
        counts = {"kept": 0, "reread": 0, "details_read": 0, "vanished": 0}
        procs = []
        pids = sorted(_list_pids(self._root))
        for pid in pids:
            try:
                entry = self._sample_pid(pid, old.get(pid), now, elapsed, details, counts)
            except _Vanished:
                counts["vanished"] += 1
                continue
            entries[pid] = entry
            procs.append(entry.proc)
        if details and not self._staggered and entries:
            self._stagger(entries, now)
            self._staggered = True
        self._entries, self._last = entries, now
        self._stats = ProcessStats(len(pids), seconds=time.perf_counter() - started, **counts)
        return ProcessSample(tuple(procs), taken_at=now, wall_time=time.time())

    def _stagger(self, entries: dict[int, _Entry], now: float) -> None:
        """After the first sample with details, spread their refreshes over the interval."""
        count = len(entries)
        for index, entry in enumerate(entries.values()):
            entry.details_due = now + self._interval * (index + 1) / count

    # -- one process ------------------------------------------------------------------------

    def _sample_pid(
        self,
        pid: int,
        entry: _Entry | None,
        now: float,
        elapsed: float | None,
        details: bool,
        counts: dict[str, int],
    ) -> _Entry:
        base = f"{self._root}/{pid}"
        try:
            raw = _read(f"{base}/stat")
        except OSError:
            raise _Vanished from None  # gone (or hidden by hidepid): nothing to show
        if entry is not None and entry.raw == raw:
            counts["kept"] += 1
            if entry.proc.cpu_percent != 0.0 and elapsed:
                entry.proc = dataclasses.replace(entry.proc, cpu_percent=0.0)
        else:
            counts["reread"] += 1
            entry = self._reread(base, pid, raw, entry, elapsed)
        if details and entry.details_due <= now:
            counts["details_read"] += 1
            self._refresh_details(base, entry, now)
        return entry

    def _reread(
        self, base: str, pid: int, raw: bytes, entry: _Entry | None, elapsed: float | None
    ) -> _Entry:
        """A new process, or one whose stat moved: parse it, read its uid and argv."""
        try:
            stat = parse_stat(raw)
        except (ValueError, IndexError):
            raise _Vanished from None  # not a stat we understand: skip rather than guess
        same = entry is not None and entry.proc.start_ticks == stat.start_ticks
        cpu: float | None = None
        previous = entry.proc if same and entry is not None else None
        if previous is not None and entry is not None and elapsed:
            cpu = max(0.0, (stat.cpu_ticks - entry.ticks) / CLOCK_TICKS / elapsed * 100.0)
        denied: list[str] = []
        uid, rss = _read_or(base, "status", parse_status, denied, field="uid") or (None, None)
        if rss is None:
            rss = stat.rss_pages * PAGE_SIZE  # 0 for a zombie; close enough where status is hidden
        cmdline = _read_or(base, "cmdline", parse_cmdline, denied)
        # Details stay as last read until they are read again (now, when details are wanted).
        kept = _details_of(previous) if previous is not None else _NO_DETAILS
        if previous is not None:
            denied += [name for name in previous.denied if name in _DETAIL_FIELDS]
        proc = Proc(
            pid=pid,
            start_ticks=stat.start_ticks,
            ppid=stat.ppid,
            name=decode(stat.comm),
            state=stat.state,
            uid=uid,
            user=user_name(uid) if uid is not None else None,
            cmdline=cmdline,
            threads=stat.threads,
            rss=rss,
            cpu_percent=cpu,
            start_time=self._boot + stat.start_ticks / CLOCK_TICKS,
            num_fds=kept[0],
            fd_soft_limit=kept[1],
            fd_hard_limit=kept[2],
            netns=kept[3],
            cgroup=kept[4],
            cgroups_v1=kept[5],
            denied=tuple(denied),
        )
        return _Entry(raw, proc, stat.cpu_ticks, _NEVER)

    # -- details ------------------------------------------------------------------------------

    def _refresh_details(self, base: str, entry: _Entry, now: float) -> None:
        """Read fds, limits, netns and cgroups; keep the record (same object) if none moved."""
        denied: list[str] = []
        found = self._read_details(base, denied)
        entry.details_due = now + self._interval
        proc = entry.proc
        core_denied = tuple(name for name in proc.denied if name not in _DETAIL_FIELDS)
        new_denied = core_denied + tuple(denied)
        if found == _details_of(proc) and new_denied == proc.denied:
            return
        entry.proc = dataclasses.replace(
            proc, **dict(zip(_DETAIL_FIELDS, found, strict=True)), denied=new_denied
        )

    def _read_details(self, base: str, denied: list[str]) -> _Details:
        num_fds = self._num_fds(base, denied)
        limits = _read_or(base, "limits", parse_fd_limits, denied, field="fd_soft_limit")
        if limits is None:
            limits = (None, None)
            if "fd_soft_limit" in denied:
                denied.append("fd_hard_limit")
        soft, hard = limits
        unified, legacy = self._cgroup(base, denied)
        return (num_fds, soft, hard, _netns(base, denied), unified, legacy)

    def _num_fds(self, base: str, denied: list[str]) -> int | None:
        try:
            if self._fd_size_counts:
                return os.stat(f"{base}/fd").st_size
            return len(os.listdir(f"{base}/fd"))
        except OSError as err:
            return _failed(err, "num_fds", denied)

    def _cgroup(self, base: str, denied: list[str]) -> tuple[str | None, Mapping[str, str]]:
        """Parsed once per distinct file content: most processes share a handful of them, and
        sharing the parsed dict keeps unchanged records equal (and memory small)."""
        try:
            raw = _read(f"{base}/cgroup")
        except OSError as err:
            _failed(err, "cgroup", denied)
            return None, {}
        parsed = self._cgroups.get(raw)
        if parsed is None:
            if len(self._cgroups) > 4096:
                self._cgroups.clear()
            parsed = self._cgroups[raw] = parse_cgroups(decode(raw))
        return parsed


def _details_of(proc: Proc) -> _Details:
    return (
        proc.num_fds,
        proc.fd_soft_limit,
        proc.fd_hard_limit,
        proc.netns,
        proc.cgroup,
        proc.cgroups_v1,
    )


def _failed(err: OSError, field: str, denied: list[str]) -> None:
    """A read failed: the process is gone (skip it), or the field is hidden (say so)."""
    if err.errno in _GONE:
        raise _Vanished from None
    if err.errno in _DENIED:
        denied.append(field)
    return None


def _read_or(
    base: str, name: str, parse: Callable[[bytes], Any], denied: list[str], field: str = ""
) -> Any:
    """``parse`` of ``base/name``, or None (with ``field`` named in ``denied`` if hidden)."""
    try:
        raw = _read(f"{base}/{name}")
    except OSError as err:
        return _failed(err, field or name, denied)
    return parse(raw)


def _netns(base: str, denied: list[str]) -> int | None:
    """Inode of the process's network namespace. A zombie has none (ENOENT: its nsproxy is
    gone) while its other files stay, so here ENOENT means "none", not "vanished"."""
    try:
        return os.stat(f"{base}/ns/net").st_ino
    except OSError as err:
        if err.errno in _DENIED:
            denied.append("netns")
        return None


def _fd_size_counts(root: str) -> bool:
    """Whether ``st_size`` of /proc/PID/fd is the open-fd count (Linux >= 6.2): we hold some
    fds ourselves, so our own count is never 0 where it counts."""
    try:
        return os.stat(f"{root}/self/fd").st_size > 0
    except OSError:
        return False


# -- for `netdash dump processes --json` -----------------------------------------------------

_TCP_ORDER = {name: index for index, name in enumerate(TCP_STATES.values())}


def socket_counts(sample: SocketSample) -> dict[int, dict[str, int]]:
    """pid -> its sockets counted as the dump shows them: TCP by state name (only the states it
    has), then "udp" and "unix" totals (always present). A socket held by several fds of one
    process counts once for it; a socket shared by two processes counts for both."""
    counts: dict[int, dict[str, int]] = {}
    for sock in sample.sockets:
        owners = sample.owners_of(sock)
        if not owners:
            continue
        bucket = sock.state if sock.proto == "tcp" else sock.proto
        for pid in {owner.pid for owner in owners}:
            mine = counts.setdefault(pid, {})
            mine[bucket] = mine.get(bucket, 0) + 1
    return {pid: _ordered(mine) for pid, mine in counts.items()}


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """TCP states in the kernel's order (tcp_states.h), then udp and unix, zero when absent.
    Other keys (the Processes pane's "total") are left out."""
    tcp = sorted((key for key in counts if key in _TCP_ORDER), key=_TCP_ORDER.__getitem__)
    result = {state: counts[state] for state in tcp if counts[state]}
    result["udp"] = counts.get("udp", 0)
    result["unix"] = counts.get("unix", 0)
    return result


def tag_path(proc: Proc) -> str | None:
    """The cgroup path that names the process's unit or container: the unified path, or on a
    hybrid host where that is "/" (this lab: only v1 groups are used) the first v1 path that is
    not "/", the systemd one first; as ``controllers:/path`` like ``parse_cgroup`` gives it."""
    if proc.cgroup not in (None, "/"):
        return proc.cgroup
    v1 = proc.cgroups_v1
    for hierarchy in sorted(v1, key=lambda h: h != "name=systemd"):
        if v1[hierarchy] != "/":
            return f"{hierarchy}:{v1[hierarchy]}"
    return proc.cgroup


@functools.lru_cache(maxsize=4096)
def _describe(path: str) -> tuple[str | None, str | None]:
    """(unit, container) of a path, as ``talkers.describe_cgroup`` says it (which wraps this).
    Imported here, not at the top: the cgroups source imports psutil, which the reader itself
    does not need (it runs where psutil is missing, e.g. a system Python as another user)."""
    from netdash.sources.cgroups import cgroup_names

    unit, container = cgroup_names(path)
    return unit, container


def proc_to_json(proc: Proc, sockets_by_state: Mapping[str, int]) -> dict[str, Any]:
    """One process as ``netdash dump processes --json`` prints it (issue 5): ``sockets_by_state``
    is this pid's entry of :func:`socket_counts` ({} when it holds none)."""
    path = tag_path(proc)
    unit, container = _describe(path) if path else (None, None)
    return {
        "pid": proc.pid,
        "ppid": proc.ppid,
        "name": proc.name,
        "cmdline": list(proc.cmdline) if proc.cmdline is not None else None,
        "user": proc.user,
        "state": proc.state,
        "threads": proc.threads,
        "cpu_percent": round(proc.cpu_percent, 2) if proc.cpu_percent is not None else None,
        "rss": proc.rss,
        "num_fds": proc.num_fds,
        "fd_limit": proc.fd_soft_limit,
        "start_time": proc.start_time,
        "cgroup": proc.cgroup,
        "cgroups_v1": dict(proc.cgroups_v1),
        "unit": unit,
        "container": container,
        "sockets": _ordered(sockets_by_state),
    }
