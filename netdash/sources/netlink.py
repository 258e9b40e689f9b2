"""A small raw-netlink transport: one socket, one receive buffer, dump and error handling.

Shared by sock_diag (:mod:`netdash.sources.sockdiag`) and rtnetlink
(:mod:`netdash.sources.rtnl`); a :class:`Protocol` says which netlink family a socket speaks,
how its errors are worded and which exception they raise, so each reader keeps its own error
type (``SockDiagFailed`` makes the sockets source fall back to /proc, which an rtnetlink error
must not). Parsing what arrives stays with each reader. Constants and layouts from
linux/netlink.h and linux/sock_diag.h.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from netdash.sources.errors import PermissionNeeded, SourceUnavailable

NETLINK_ROUTE, NETLINK_SOCK_DIAG = 0, 4  # linux/netlink.h
SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_HEADER = 16  # sizeof(struct nlmsghdr)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
RECV_BUFFER = 1 << 20  # the kernel fills at most ~32 KiB per recv; the slack keeps unpack safe
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_S32 = struct.Struct("=i")


class NetlinkFailed(SourceUnavailable):
    """The kernel refused or broke off a netlink exchange; ``errno`` says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.errno = code


class SockDiagFailed(NetlinkFailed):
    """A sock_diag dump failed (ENOENT: no such module); the sockets source falls back to /proc."""


@dataclass(frozen=True)
class Protocol:
    """A netlink family as a transport needs to know it: its number, the word its error
    messages start with, and the exception they raise."""

    number: int
    label: str
    error: type[NetlinkFailed]


SOCK_DIAG = Protocol(NETLINK_SOCK_DIAG, "sock_diag", SockDiagFailed)


def open_netlink(protocol: Protocol = SOCK_DIAG, groups: int = 0) -> socket.socket:
    """A bound netlink socket of ``protocol`` (in the caller's network namespace, for life),
    subscribed to the multicast ``groups`` bitmask."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol.number)
    except OSError as err:
        raise protocol.error(
            f"{protocol.label} netlink is not available here: {err.strerror}", err.errno or 0
        ) from err
    try:
        sock.bind((0, groups))
    except OSError as err:
        sock.close()
        raise protocol.error(
            f"{protocol.label}: binding a netlink socket failed: {err.strerror}", err.errno or 0
        ) from err
    return sock


def request_message(msg_type: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink request: ``struct nlmsghdr`` (port id 0: the kernel fills it) + ``body``."""
    return _NLMSGHDR.pack(NLMSG_HEADER + len(body), msg_type, flags, seq, 0) + body


class NetlinkDump:
    """A netlink socket of ``protocol`` that runs dumps into one preallocated buffer."""

    def __init__(self, protocol: Protocol = SOCK_DIAG, *, buffer_size: int = RECV_BUFFER) -> None:
        self.protocol = protocol
        self._sock = open_netlink(protocol)
        self._buf = bytearray(buffer_size)
        self._view = memoryview(self._buf)
        self._seq = 0

    def close(self) -> None:
        self._view.release()
        self._sock.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _replies(self, request: bytes) -> Iterator[int]:
        """Send one request and yield the size of each reply as it lands in the buffer:
        the caller parses ``self._view[:n]`` before asking for the next, and stops at
        NLMSG_DONE. However it stops (done, failed, abandoned), what the kernel still holds for
        us is drained: a dump left half-read would make the next request fail with EBUSY."""
        try:
            try:
                self._sock.sendto(request, (0, 0))
                while True:
                    yield self._sock.recv_into(self._buf)
            except OSError as err:
                raise self.protocol.error(
                    f"{self.protocol.label} dump failed: {err.strerror}", err.errno or 0
                ) from err
        finally:
            self._drain()

    def _drain(self) -> None:
        try:
            while self._sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT):
                pass
        except OSError:
            pass


def iter_messages(
    view: memoryview | bytes, size: int, protocol: Protocol = SOCK_DIAG
) -> Iterator[tuple[int, int, int, int]]:
    """(offset, length, type, seq) of each netlink message in ``view[:size]``; a message that
    claims fewer bytes than its header or more than arrived raises (EBADMSG)."""
    off = 0
    while off + NLMSG_HEADER <= size:
        length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(view, off)
        if length < NLMSG_HEADER or off + length > size:
            raise protocol.error(f"{protocol.label}: malformed netlink message", errno.EBADMSG)
        yield off, length, kind, seq
        off += (length + 3) & ~3


def check_control(
    view: memoryview,
    off: int,
    length: int,
    mtype: int,
    mseq: int,
    seq: int,
    protocol: Protocol = SOCK_DIAG,
) -> bool:
    """Handle a message that is not data: True at the end of our dump, raise on an error
    for our request, ignore anything left over from an earlier, abandoned dump."""
    if length < NLMSG_HEADER:
        raise protocol.error(f"{protocol.label}: malformed netlink message", errno.EBADMSG)
    if mseq != seq:
        return False
    if mtype == NLMSG_DONE:
        raise_if_error(view, off, length, "the dump ended with an error", protocol)
        return True
    if mtype == NLMSG_ERROR:
        raise_if_error(view, off, length, "the kernel refused the request", protocol)
        return True  # an ACK (error 0) ends the exchange as well
    if mtype == NLMSG_OVERRUN:
        raise protocol.error(f"{protocol.label}: data lost (NLMSG_OVERRUN)", errno.ENOBUFS)
    return False


def error_code(view: memoryview | bytes, off: int, length: int) -> int:
    """The positive errno an NLMSG_ERROR or NLMSG_DONE message carries; 0 for success (an
    ACK, a clean end of dump) or a message too short to say."""
    if length < NLMSG_HEADER + 4:
        return 0
    return max(0, -_S32.unpack_from(view, off + NLMSG_HEADER)[0])


def raise_if_error(
    view: memoryview, off: int, length: int, what: str, protocol: Protocol = SOCK_DIAG
) -> None:
    code = error_code(view, off, length)
    if not code:
        return
    label = protocol.label
    text = f"{label}: {what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})"
    if code in (errno.EPERM, errno.EACCES):
        raise PermissionNeeded(text)
    raise protocol.error(text, code)
