"""The netlink transport of sock_diag: one socket, one receive buffer, dump and error handling.

Kept apart from :mod:`netdash.sources.sockdiag`, which parses what arrives, so each reads on its
own. Constants and layouts from linux/netlink.h and linux/sock_diag.h.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

from netdash.sources.errors import PermissionNeeded, SourceUnavailable

NETLINK_SOCK_DIAG = 4  # linux/netlink.h
SOCK_DIAG_BY_FAMILY = 20  # linux/sock_diag.h
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_HEADER = 16  # sizeof(struct nlmsghdr)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
RECV_BUFFER = 1 << 20  # the kernel fills at most ~32 KiB per recv; the slack keeps unpack safe
_S32 = struct.Struct("=i")


class SockDiagFailed(SourceUnavailable):
    """The kernel refused or broke off a dump; ``errno`` says why (ENOENT: no such module)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.errno = code


class NetlinkDump:
    """A ``NETLINK_SOCK_DIAG`` socket that runs dumps into one preallocated buffer."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
        except OSError as err:
            raise SockDiagFailed(
                f"sock_diag netlink is not available here: {err.strerror}", err.errno or 0
            ) from err
        self._sock.bind((0, 0))
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._seq = 0

    def close(self) -> None:
        self._view.release()
        self._sock.close()

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _replies(self, request: bytes) -> Iterator[int]:
        """Send one dump request and yield the size of each reply as it lands in the buffer:
        the caller parses ``self._view[:n]`` before asking for the next, and stops at
        NLMSG_DONE. However it stops (done, failed, abandoned), what the kernel still holds for
        us is drained: a dump left half-read would make the next request fail with EBUSY."""
        try:
            try:
                self._sock.sendto(request, (0, 0))
                while True:
                    yield self._sock.recv_into(self._buf)
            except OSError as err:
                raise SockDiagFailed(
                    f"sock_diag dump failed: {err.strerror}", err.errno or 0
                ) from err
        finally:
            self._drain()

    def _drain(self) -> None:
        try:
            while self._sock.recv_into(self._buf, 0, socket.MSG_DONTWAIT):
                pass
        except OSError:
            pass


def check_control(view: memoryview, off: int, length: int, mtype: int, mseq: int, seq: int) -> bool:
    """Handle a message that is not a socket: True at the end of our dump, raise on an error
    for our request, ignore anything left over from an earlier, abandoned dump."""
    if length < NLMSG_HEADER:
        raise SockDiagFailed("sock_diag: malformed netlink message", errno.EBADMSG)
    if mseq != seq:
        return False
    if mtype == NLMSG_DONE:
        raise_if_error(view, off, length, "the dump ended with an error")
        return True
    if mtype == NLMSG_ERROR:
        raise_if_error(view, off, length, "the kernel refused the request")
        return True  # an ACK (error 0) ends the exchange as well
    if mtype == NLMSG_OVERRUN:
        raise SockDiagFailed("sock_diag: data lost (NLMSG_OVERRUN)", errno.ENOBUFS)
    return False


def raise_if_error(view: memoryview, off: int, length: int, what: str) -> None:
    if length < NLMSG_HEADER + 4:
        return
    code = -_S32.unpack_from(view, off + NLMSG_HEADER)[0]
    if code <= 0:
        return
    text = f"sock_diag: {what}: {os.strerror(code)} ({errno.errorcode.get(code, code)})"
    if code in (errno.EPERM, errno.EACCES):
        raise PermissionNeeded(text)
    raise SockDiagFailed(text, code)
