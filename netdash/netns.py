"""Which network namespace netdash looks at, and how to step into it for a moment.

Pitfalls, tested on Linux 6.x (see the project's LAB notes):

- ``setns(2)`` changes the namespace of the *calling thread* only. Other threads, including the
  one that started netdash, stay where they were; so enter, open, and leave on one thread, with
  the way back in a ``finally``.
- A socket (netlink included) belongs to the namespace it was created in for its whole life:
  create it inside, then use it from any thread.
- ``/proc/net`` and ``/proc/self/net`` show the namespace of the process's *main thread*, not of
  the calling thread; only ``/proc/thread-self/net`` follows ``setns``. ``/sys/class/net`` does
  not follow either (sysfs is a mount; only ``ip netns exec`` remounts it). Ask the kernel
  through sockets created inside, or read ``/proc/thread-self/net`` while inside.
- Python 3.12 added ``os.setns``; 3.10 and 3.11 reach the libc function through ctypes.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from netdash.sources.errors import PermissionNeeded, SourceError, SourceUnavailable

CLONE_NEWNET = 0x40000000  # linux/sched.h
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h: which kind of namespace an fd refers to
NETNS_RUN_DIR = Path("/run/netns")  # where `ip netns add NAME` bind-mounts its namespaces


@dataclass(frozen=True, slots=True)
class NetnsTarget:
    """A network namespace to look at: ``path`` is None for the one netdash runs in."""

    label: str  # "host", the `ip netns` name, or "pid 1234"
    path: str | None  # /run/netns/NAME or /proc/PID/ns/net

    @property
    def is_current(self) -> bool:
        return self.path is None


HOST = NetnsTarget("host", None)


def resolve_netns(name: str | None = None, pid: int | None = None) -> NetnsTarget:
    """Turn a ``--netns NAME`` or ``--netns-pid PID`` choice into a checked target.

    Raises a :class:`SourceError` with a message for humans when the namespace does not exist,
    the process is gone, or reading its namespace needs privileges we lack.
    """
    if name is not None and pid is not None:
        raise SourceError("choose a network namespace by name or by pid, not both")
    if name is not None:
        return _resolve_name(name)
    if pid is not None:
        return _resolve_pid(pid)
    return HOST


def _resolve_name(name: str) -> NetnsTarget:
    if not name or "/" in name or name in (".", ".."):
        raise SourceError(f"{name!r} is not a network namespace name (see `ip netns list`)")
    path = NETNS_RUN_DIR / name
    if not path.exists():
        raise SourceUnavailable(f"no network namespace {name!r} (see `ip netns list`)")
    target = NetnsTarget(name, str(path))
    _check_is_netns(target)
    return target


def _resolve_pid(pid: int) -> NetnsTarget:
    if pid <= 0:
        raise SourceError(f"{pid} is not a process id")
    if not Path(f"/proc/{pid}").exists():
        raise SourceUnavailable(f"no process with pid {pid}")
    target = NetnsTarget(f"pid {pid}", f"/proc/{pid}/ns/net")
    _check_is_netns(target)
    return target


def _check_is_netns(target: NetnsTarget) -> None:
    """Open the namespace file once, so a bad choice fails now with a clear message."""
    fd = open_netns(target)
    try:
        try:
            kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        except OSError as err:
            raise SourceError(f"{target.path} is not a namespace file ({err.strerror})") from err
        if kind != CLONE_NEWNET:
            raise SourceError(f"{target.path} is not a network namespace")
    finally:
        os.close(fd)


def open_netns(target: NetnsTarget) -> int:
    """An fd on the target namespace (keeps it alive even if its name is deleted meanwhile)."""
    assert target.path is not None
    try:
        return os.open(target.path, os.O_RDONLY | os.O_CLOEXEC)
    except PermissionError as err:
        raise PermissionNeeded(
            f"reading the network namespace of {target.label} needs root "
            "(or ptrace access to its process)"
        ) from err
    except FileNotFoundError as err:
        if target.label.startswith("pid "):
            raise SourceUnavailable(f"no process with {target.label}") from err
        raise SourceUnavailable(
            f"no network namespace {target.label!r} (see `ip netns list`)"
        ) from err


@contextmanager
def entered(target: NetnsTarget) -> Iterator[None]:
    """Run the body with the *calling thread* inside ``target``; always come back.

    Only what the body creates (sockets) or reads through ``/proc/thread-self`` sees the
    namespace; see the module docstring. A no-op for the current namespace.
    """
    if target.path is None:
        yield
        return
    fd = open_netns(target)
    try:
        with entered_fd(fd, target.label):
            yield
    finally:
        os.close(fd)


@contextmanager
def entered_fd(fd: int, label: str) -> Iterator[None]:
    """:func:`entered` for an fd from :func:`open_netns`, for readers that keep one open."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, label)
        try:
            yield
        finally:
            # If this fails the thread is stranded in the wrong namespace: never hide that.
            _setns(home, "the original namespace")
    finally:
        os.close(home)


def _setns(fd: int, label: str) -> None:
    try:
        _raw_setns(fd)
    except PermissionError as err:
        raise PermissionNeeded(
            f"entering the network namespace of {label} needs root (CAP_SYS_ADMIN)"
        ) from err
    except OSError as err:
        raise SourceError(f"cannot enter the network namespace of {label}: {err.strerror}") from err


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _libc_setns(fd: int) -> None:
    """setns(2) through libc for Python < 3.12 (ctypes keeps errno with use_errno=True)."""
    if _libc().setns(ctypes.c_int(fd), ctypes.c_int(CLONE_NEWNET)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _raw_setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
    else:
        _libc_setns(fd)


__all__ = [
    "HOST",
    "NetnsTarget",
    "entered",
    "entered_fd",
    "open_netns",
    "resolve_netns",
]


class NamespaceHandle:
    """The network namespace a reader creates its sockets in, held open by fd so it stays the
    same namespace even if its name is deleted and reused; :meth:`inside` enters it in the
    current thread for as long as a socket takes to create (nothing to do for the caller's own
    namespace)."""

    def __init__(self, netns: NetnsTarget = HOST) -> None:
        self.netns = netns
        self._fd = open_netns(netns) if netns.path is not None else None

    def inside(self) -> AbstractContextManager[None]:
        if self._fd is None:
            return nullcontext()
        return entered_fd(self._fd, self.netns.label)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


Reader = TypeVar("Reader", bound="NamespaceReader")


class NamespaceReader:
    """The base of the readers of one namespace (links, routes, firewall, conntrack, stack):
    the namespace held by :class:`NamespaceHandle`, entered by :meth:`_inside`, let go by
    :meth:`close` (a subclass closes its own sockets first, then calls this), and a context
    manager that closes."""

    def __init__(self, netns: NetnsTarget = HOST) -> None:
        self.netns = netns
        self._ns = NamespaceHandle(netns)

    def _inside(self) -> AbstractContextManager[None]:
        return self._ns.inside()

    def close(self) -> None:
        self._ns.close()

    def __enter__(self: Reader) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
