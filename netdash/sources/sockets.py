"""The socket table, as the engine reads it: sock_diag first, /proc/net where that fails.

:class:`SocketReader` is opened once, in the network namespace to watch, and read every tick.
Each protocol falls back to /proc/net on its own (a kernel without ``udp_diag`` still lists TCP
through netlink), and every read says where each protocol came from and, in words, what the
fallback could not tell. Owners are joined elsewhere (:mod:`netdash.sources.owners`).
"""

from __future__ import annotations

import errno
import gc
import os
import socket
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType

from netdash.model import Socket
from netdash.netns import HOST, NetnsTarget, entered_fd, open_netns
from netdash.sources.errors import PermissionNeeded, SourceError, SourceUnavailable
from netdash.sources.procnet import DEFAULT_NET_ROOT, read_proc_net
from netdash.sources.sockdiag import SockDiag, SockDiagFailed

PROTOCOLS = ("tcp", "udp", "unix")
SOCK_DIAG = "sock_diag"
PROC_NET = "/proc/net"

# Errors that mean "this kernel has no sock_diag for that protocol": stop asking for it.
_PERMANENT = {errno.ENOENT, errno.EPROTONOSUPPORT, errno.EOPNOTSUPP, errno.EAFNOSUPPORT}

GAP_TCP_INFO = "/proc/net fallback: no tcp_info (RTT, retransmits, byte rates)"
GAP_INET = "/proc/net fallback: no bound device, socket memory or cookie"
GAP_BACKLOG = "/proc/net fallback: LISTEN Send-Q is 0, not the backlog"
GAP_UNIX = "/proc/net fallback: no UNIX peers, queues or uid"


@dataclass(frozen=True)
class SocketRead:
    """One read of the socket table (before owners are joined into a SocketSample)."""

    sockets: tuple[Socket, ...]
    sources: dict[str, str] = field(default_factory=dict)  # "tcp" -> "sock_diag" | "/proc/net"
    gaps: tuple[str, ...] = ()


class SocketReader:
    """Reads every TCP, UDP and UNIX socket of one network namespace.

    The netlink socket is created inside ``netns`` (and keeps listing that namespace from any
    thread); the /proc fallback is read from ``/proc/thread-self/net`` while the calling thread
    briefly enters it. ``force_proc`` makes chosen protocols use /proc/net, for tests and for
    comparing both sources. ``reuse_unchanged`` returns the previous record of a socket whose
    kernel message did not change.
    """

    def __init__(
        self,
        netns: NetnsTarget = HOST,
        *,
        force_proc: Collection[str] = (),
        reuse_unchanged: bool = True,
    ) -> None:
        unknown = set(force_proc) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown protocols {sorted(unknown)}: choose from {PROTOCOLS}")
        self.netns = netns
        self._proc_only: dict[str, str | None] = dict.fromkeys(force_proc)
        self._ns_fd = open_netns(netns) if netns.path is not None else None
        self._diag: SockDiag | None = None
        try:
            if len(self._proc_only) < len(PROTOCOLS):
                self._diag = self._open_diag(reuse_unchanged)
        except BaseException:
            self.close()
            raise

    def _open_diag(self, reuse_unchanged: bool) -> SockDiag | None:
        try:
            with self._inside():
                return SockDiag(reuse_unchanged=reuse_unchanged)
        except SockDiagFailed as err:
            for proto in PROTOCOLS:
                self._proc_only.setdefault(proto, str(err))
            return None

    def close(self) -> None:
        if self._diag is not None:
            self._diag.close()
            self._diag = None
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None

    def __enter__(self) -> SocketReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read(self, *, tcp_info: bool = True, unix: bool = True, memory: bool = True) -> SocketRead:
        """Every socket now. ``tcp_info`` adds RTT, windows and byte counters (it about doubles
        the time of a read) and, with ``memory``, socket memory; ``unix=False`` skips UNIX
        sockets."""
        sockets: list[Socket] = []
        sources: dict[str, str] = {}
        gaps: list[str] = []
        if self._diag is not None:
            self._diag.begin()
        try:
            with gc_paused():
                for proto in PROTOCOLS if unix else PROTOCOLS[:2]:
                    found, sources[proto] = self._read_proto(proto, tcp_info, memory, gaps)
                    sockets.extend(found)
        finally:
            if self._diag is not None:
                self._diag.end()
        return SocketRead(tuple(sockets), sources, tuple(dict.fromkeys(gaps)))

    def with_memory(self, sock: Socket) -> Socket:
        """``sock`` read again with its socket memory (``ss -m``), for the one socket a detail
        view shows; ``sock`` itself where that cannot be had: UNIX sockets and /proc/net
        records have none, and a socket gone since the read is dropped by the next one."""
        if self._diag is None or sock.proto not in PROTOCOLS[:2] or sock.proto in self._proc_only:
            return sock
        try:
            return self._diag.read_one(sock) or sock
        except (SourceError, ValueError, OSError):
            return sock

    def _read_proto(
        self, proto: str, tcp_info: bool, memory: bool, gaps: list[str]
    ) -> tuple[list[Socket], str]:
        reason = self._proc_only.get(proto)
        if proto not in self._proc_only and self._diag is not None:
            try:
                return self._read_diag(self._diag, proto, tcp_info, memory), SOCK_DIAG
            except SourceError as err:
                reason = str(err)
                if getattr(err, "errno", None) in _PERMANENT:
                    self._proc_only[proto] = reason
        if reason:
            gaps.append(f"{proto} from /proc/net: {reason}")
        gaps.extend(_fallback_gaps(proto, tcp_info))
        return self._read_proc(proto), PROC_NET

    def iter_read(self, *, tcp_info: bool = True, unix: bool = True) -> Iterator[list[Socket]]:
        """:meth:`read` in batches as the kernel sends them, for a caller that writes each out
        and drops it (``netdash dump``: the table is never whole in memory). The same sources
        and fallbacks, except that a dump the kernel breaks off after its first batch raises
        :class:`SourceUnavailable`: the batches already handed out cannot be taken back."""
        for proto in PROTOCOLS if unix else PROTOCOLS[:2]:
            if proto not in self._proc_only and self._diag is not None:
                started = False
                try:
                    for batch in _diag_batches(self._diag, proto, tcp_info):
                        started = True
                        yield batch
                    continue
                except SourceError as err:
                    if started:
                        raise SourceUnavailable(f"{proto} sockets, part way: {err}") from err
                    if getattr(err, "errno", None) in _PERMANENT:
                        self._proc_only[proto] = str(err)
            yield self._read_proc(proto)

    @staticmethod
    def _read_diag(diag: SockDiag, proto: str, tcp_info: bool, memory: bool) -> list[Socket]:
        found: list[Socket] = []
        for batch in _diag_batches(diag, proto, tcp_info, memory):
            found += batch
        return found

    def _read_proc(self, proto: str) -> list[Socket]:
        try:
            with self._inside():
                return read_proc_net(proto, DEFAULT_NET_ROOT)
        except PermissionNeeded as err:
            raise PermissionNeeded(f"{proto} sockets from /proc/net: {err}") from err
        except SourceError as err:
            raise SourceUnavailable(f"{proto} sockets from /proc/net: {err}") from err

    def _inside(self) -> AbstractContextManager[None]:
        """Enter the reader's namespace for the body, when it has one."""
        if self._ns_fd is None:
            return nullcontext()
        return entered_fd(self._ns_fd, self.netns.label)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a read allocates its records.

    A read of 100,000 sockets creates some 300,000 tracked objects and so triggers hundreds of
    collections, some of them full passes over every object of the process (the previous
    sample's records, the UI's widgets). Holding it saved 15-18% of the CPU of reads that build
    every record (20,000 sockets, GC afterwards included). The records hold no cycles; one
    young-generation pass after the read sees them once.
    Only re-enabled if it was enabled before (the application may have its own policy).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _diag_batches(
    diag: SockDiag, proto: str, tcp_info: bool, memory: bool = True
) -> Iterator[list[Socket]]:
    """One protocol's sockets from sock_diag, batch by batch."""
    if proto == "unix":
        return diag.iter_unix()
    number = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    return diag.iter_both_families(number, details=tcp_info, memory=memory)


def _fallback_gaps(proto: str, tcp_info: bool) -> list[str]:
    if proto == "unix":
        return [GAP_UNIX]
    gaps = [GAP_INET]
    if proto == "tcp":
        gaps.append(GAP_BACKLOG)
        if tcp_info:
            gaps.insert(0, GAP_TCP_INFO)
    return gaps
