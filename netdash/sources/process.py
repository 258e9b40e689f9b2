"""One process in detail, for the Process screen (psutil plus /proc).

The Processes pane (a later issue) reads every process incrementally; this reader answers the
drill-down question "who is this pid?" for one process, cheaply enough to refresh each second.
Fields hidden by permissions are listed in ``ProcessInfo.denied`` rather than shown as empty.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

from netdash.model import ProcessInfo
from netdash.sources.errors import SourceError
from netdash.textsafe import decode

T = TypeVar("T")


class ProcessGone(SourceError):
    """The process exited (or its pid was reused) since it was chosen."""


class ProcessWatcher:
    """Reads one process repeatedly; CPU % comes from the delta between two reads.

    Keyed by (pid, start time): if the pid is reused by a new process, :meth:`read` raises
    :class:`ProcessGone` instead of quietly describing a stranger.
    """

    def __init__(self, pid: int, proc_root: Path = Path("/proc")) -> None:
        self.pid = pid
        self.proc_root = proc_root
        try:
            self._process = psutil.Process(pid)
            self._created = self._process.create_time()
        except psutil.NoSuchProcess:
            raise ProcessGone(f"process {pid} has exited") from None
        self._primed = False

    def read(self) -> ProcessInfo:
        proc = self._process
        denied: list[str] = []
        try:
            with proc.oneshot():
                if proc.create_time() != self._created:
                    raise ProcessGone(f"process {self.pid} has exited (its pid was reused)")
                return self._read_fields(proc, denied)
        except psutil.ZombieProcess:
            # A zombie is still a process to show (the seeds' `ps aux | awk '$8 ~ /Z/'`).
            return self._zombie_info(proc)
        except psutil.NoSuchProcess:
            raise ProcessGone(f"process {self.pid} has exited") from None

    def _read_fields(self, proc: psutil.Process, denied: list[str]) -> ProcessInfo:
        def get(name: str, fetch: Callable[[], T]) -> T | None:
            try:
                return fetch()
            except psutil.AccessDenied:
                denied.append(name)
                return None

        limits = get("fd limit", lambda: proc.rlimit(psutil.RLIMIT_NOFILE))
        cpu = proc.cpu_percent(interval=None)
        cpu_percent = cpu if self._primed else None  # the first call has no interval to measure
        self._primed = True
        uids = proc.uids()
        memory = get("rss", proc.memory_info)
        return ProcessInfo(
            pid=self.pid,
            ppid=proc.ppid(),
            comm=self._comm(),
            user=get("user", proc.username),
            uid=uids.real,
            state=proc.status(),
            start_time=self._created,
            cmdline=get("cmdline", lambda: tuple(proc.cmdline())),
            exe=get("exe", proc.exe) or None,
            cwd=get("cwd", proc.cwd),
            threads=get("threads", proc.num_threads),
            fds=get("fds", proc.num_fds),
            fd_soft_limit=limits[0] if limits else None,
            fd_hard_limit=limits[1] if limits else None,
            cpu_percent=cpu_percent,
            rss=memory.rss if memory else None,
            cgroup=read_cgroup(self.pid, self.proc_root),
            denied=tuple(denied),
        )

    def _comm(self) -> str:
        """The kernel's comm, decoded losslessly (psutil would replace non-UTF-8 bytes)."""
        try:
            raw = (self.proc_root / str(self.pid) / "comm").read_bytes()
        except OSError:
            raise ProcessGone(f"process {self.pid} has exited") from None
        return decode(raw.rstrip(b"\n"))

    def _zombie_info(self, proc: psutil.Process) -> ProcessInfo:
        try:
            ppid: int | None = proc.ppid()
        except psutil.Error:
            ppid = None
        return ProcessInfo(
            pid=self.pid,
            ppid=ppid,
            comm=self._comm(),
            user=None,
            uid=None,
            state="zombie",
            start_time=self._created,
            cmdline=(),
            exe=None,
            cwd=None,
            threads=None,
            fds=None,
            fd_soft_limit=None,
            fd_hard_limit=None,
            cpu_percent=None,
            rss=None,
            cgroup=read_cgroup(self.pid, self.proc_root),
        )


def read_cgroup(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    """The process's cgroup as one path: the v2 path, or on hybrid hosts the first named v1 one.

    ``/proc/PID/cgroup`` lines are ``hierarchy-ID:controllers:path``; ``0::/path`` is v2.
    """
    try:
        text = (proc_root / str(pid) / "cgroup").read_bytes().decode("utf-8", "backslashreplace")
    except OSError:
        return None
    return parse_cgroup(text)


def parse_cgroup(text: str) -> str | None:
    unified: str | None = None
    legacy: str | None = None
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if not path:
            continue
        if controllers == "":
            unified = path
        elif legacy is None and path != "/":
            legacy = f"{controllers}:{path}"
    if unified and unified != "/":
        return unified
    return legacy or unified
