"""Per-interface 64-bit counters, read each tick by one rtnetlink dump.

Measured at 1,000 links: pyroute2 ``get_links()`` takes ~450 ms, ``ip -s -j link`` 4.5 ms and an
``RTM_GETSTATS`` dump 0.6 ms. So this module asks the kernel for the counters only (``struct
if_stats_msg`` with ``IFLA_STATS_LINK_64``, linux/if_link.h) over a raw ``NETLINK_ROUTE``
socket and reads ``struct rtnl_link_stats64`` with ``struct.unpack_from`` straight out of the
receive buffer. Kernels without ``RTM_GETSTATS`` (before 4.7) answer with an error; then the
reader falls back to an ``RTM_GETLINK`` dump and its ``IFLA_STATS64`` attribute, which costs more
(every attribute of every link) but carries the same struct.

The transport is a small copy of :mod:`netdash.sources.netlink` (that one is bound to
``NETLINK_SOCK_DIAG`` and words its errors for sock_diag). :class:`LinkEvents` listens to the
kernel's link and address announcements so the caller rereads link details only on change.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Callable, Iterator

from netdash.model import LINK_COUNTER_NAMES, LinkCounters
from netdash.sources.errors import PermissionNeeded, SourceUnavailable

# linux/netlink.h, linux/rtnetlink.h, linux/if_link.h
NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_HEADER = 16  # struct nlmsghdr
NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWSTATS, RTM_GETSTATS = 92, 94
IFINFOMSG = 16  # struct ifinfomsg: family, pad, type, index, flags, change
IF_STATS_MSG = 12  # struct if_stats_msg: family, pad1, pad2, ifindex, filter_mask
IFLA_STATS64 = 23
IFLA_STATS_LINK_64 = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100

RECV_BUFFER = 1 << 16  # a dump's reply is at most 32 KiB per recv
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_ATTR = struct.Struct("=HH")  # nlattr: len, type
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
_FIELDS = len(LINK_COUNTER_NAMES)
_ZEROES = (0,) * _FIELDS

#: Errors by which a kernel says it does not know RTM_GETSTATS (or IFLA_STATS_LINK_64).
_NO_GETSTATS = {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOENT, errno.EPROTONOSUPPORT}


class LinkStatsFailed(SourceUnavailable):
    """The kernel refused or broke off a dump; ``errno`` says why."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.errno = code


def _open_route_socket(groups: int = 0) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        sock.bind((0, groups))
    except OSError as err:
        raise LinkStatsFailed(
            f"rtnetlink is not available here: {err.strerror}", err.errno or 0
        ) from err
    return sock


class LinkStatsReader:
    """One ``NETLINK_ROUTE`` socket that dumps every interface's counters.

    Create it inside the network namespace to watch (the socket stays bound to it); use it from
    any thread, one read at a time. ``use_getstats=False`` forces the ``RTM_GETLINK`` fallback.
    """

    def __init__(self, *, use_getstats: bool = True) -> None:
        self._sock = _open_route_socket()
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._seq = 0
        self._known: dict[int, tuple[bytes, LinkCounters]] = {}
        self.use_getstats = use_getstats

    def close(self) -> None:
        self._view.release()
        self._sock.close()

    def read(self) -> dict[int, LinkCounters]:
        """Counters by ifindex, every interface of the namespace, now."""
        if self.use_getstats:
            try:
                return self._dump(_getstats_request, RTM_NEWSTATS, IF_STATS_MSG, IFLA_STATS_LINK_64)
            except LinkStatsFailed as err:
                if err.errno not in _NO_GETSTATS:
                    raise
                self.use_getstats = False  # an old kernel: ask every later time by RTM_GETLINK
        return self._dump(_getlink_request, RTM_NEWLINK, IFINFOMSG, IFLA_STATS64)

    def _dump(
        self, request: Callable[[int], bytes], mtype: int, body: int, attr: int
    ) -> dict[int, LinkCounters]:
        """Run one dump. An interface whose struct is byte for byte the one of the last read
        keeps its :class:`LinkCounters` object: building one costs ~5 us, and most links of a
        big host are idle (1,000 links: 5.8 ms to build them all, 0.7 ms for the dump)."""
        seq = self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        found: dict[int, LinkCounters] = {}
        known, kept = self._known, {}
        view = self._view
        for size in self._replies(request(seq)):
            for off, length, kind, mseq in _messages(view, size):
                if mseq != seq:
                    continue  # left over from an abandoned dump
                if kind == mtype:
                    place = locate_counters(view, off, length, body, attr)
                    if place is None:
                        continue
                    ifindex, start, end = place
                    raw = view[start:end].tobytes()
                    last = known.get(ifindex)
                    if last is None or last[0] != raw:
                        last = (raw, counters_from(view, start, end - start))
                    kept[ifindex] = last
                    found[ifindex] = last[1]
                elif _ends(view, off, length, kind):
                    self._known = kept
                    return found
        return found  # pragma: no cover - _replies only stops by an exception

    def _replies(self, request: bytes) -> Iterator[int]:
        """Send one request and yield each reply's size in the buffer; whatever ends the
        dump, drain what the kernel still holds so the next request does not fail (EBUSY)."""
        try:
            try:
                self._sock.sendto(request, (0, 0))
                while True:
                    yield self._sock.recv_into(self._buf)
            except OSError as err:
                raise LinkStatsFailed(
                    f"rtnetlink dump failed: {err.strerror}", err.errno or 0
                ) from err
        finally:
            _drain(self._sock, self._buf)


def _getstats_request(seq: int) -> bytes:
    # struct if_stats_msg: AF_UNSPEC, ifindex 0 (all), filter_mask bit of IFLA_STATS_LINK_64.
    body = struct.pack("=BBHII", 0, 0, 0, 0, 1 << (IFLA_STATS_LINK_64 - 1))
    return (
        _HEADER.pack(NLMSG_HEADER + len(body), RTM_GETSTATS, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def _getlink_request(seq: int) -> bytes:
    body = bytes(IFINFOMSG)  # struct ifinfomsg, AF_UNSPEC: every link
    return (
        _HEADER.pack(NLMSG_HEADER + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
        + body
    )


def _messages(view: memoryview, size: int) -> Iterator[tuple[int, int, int, int]]:
    """(offset, length, type, seq) of each netlink message in ``view[:size]``."""
    off = 0
    while off + NLMSG_HEADER <= size:
        length, kind, _flags, seq, _pid = _HEADER.unpack_from(view, off)
        if length < NLMSG_HEADER or off + length > size:
            raise LinkStatsFailed("rtnetlink: malformed netlink message", errno.EBADMSG)
        yield off, length, kind, seq
        off += (length + 3) & ~3


def _ends(view: memoryview, off: int, length: int, kind: int) -> bool:
    """True at the end of the dump; raise on an error the kernel sent in its place."""
    if kind == NLMSG_OVERRUN:
        raise LinkStatsFailed("rtnetlink: data lost (NLMSG_OVERRUN)", errno.ENOBUFS)
    if kind not in (NLMSG_DONE, NLMSG_ERROR):
        return False
    if length >= NLMSG_HEADER + 4:
        code = -_S32.unpack_from(view, off + NLMSG_HEADER)[0]
        if code > 0:
            text = f"rtnetlink: the kernel refused the dump: {os.strerror(code)}"
            if code in (errno.EPERM, errno.EACCES):
                raise PermissionNeeded(text)
            raise LinkStatsFailed(text, code)
    return True


def _drain(sock: socket.socket, buf: bytearray) -> None:
    try:
        while sock.recv_into(buf, 0, socket.MSG_DONTWAIT):
            pass
    except OSError:
        pass


def counters_from(view: memoryview, off: int, size: int) -> LinkCounters:
    """``struct rtnl_link_stats64`` (``size`` bytes at ``off``) as :class:`LinkCounters`.

    The struct only grows at its end: a newer kernel's extra fields (``rx_otherhost_dropped``
    since 5.19) are ignored, fields an older kernel lacks read as 0.
    """
    count = size // 8
    if count >= _FIELDS:
        return LinkCounters(*_struct_of(_FIELDS).unpack_from(view, off))
    return LinkCounters(*_struct_of(count).unpack_from(view, off), *_ZEROES[count:])


_STRUCTS: dict[int, struct.Struct] = {}


def _struct_of(count: int) -> struct.Struct:
    found = _STRUCTS.get(count)
    if found is None:
        found = _STRUCTS[count] = struct.Struct(f"={count}Q")
    return found


def _find_attr(view: memoryview, off: int, end: int, wanted: int) -> tuple[int, int] | None:
    """(payload offset, payload size) of the first attribute ``wanted`` in ``view[off:end]``."""
    while off + 4 <= end:
        length, kind = _ATTR.unpack_from(view, off)
        if length < 4:
            return None
        if kind & NLA_TYPE_MASK == wanted:
            return off + 4, min(length, end - off) - 4
        off += (length + 3) & ~3
    return None


def locate_counters(
    view: memoryview, off: int, length: int, body: int, attr: int
) -> tuple[int, int, int] | None:
    """(ifindex, start, end) of the counters in one message: after the netlink header comes a
    ``body``-byte struct with the ifindex at offset 4 (``if_stats_msg`` and ``ifinfomsg``
    alike), then attributes, of which ``attr`` holds ``struct rtnl_link_stats64``."""
    if length < NLMSG_HEADER + body:
        return None
    ifindex = _U32.unpack_from(view, off + NLMSG_HEADER + 4)[0]
    found = _find_attr(view, off + NLMSG_HEADER + body, off + length, attr)
    if found is None:
        return None
    return ifindex, found[0], found[0] + found[1]


class LinkEvents:
    """The kernel's announcements of links and addresses coming, going or changing.

    A socket subscribed to ``RTMGRP_LINK`` and the address groups; :meth:`changed` says whether
    anything arrived since the last call without blocking, so a reader can keep its link
    details until they change. Counter updates are not announced; state, MTU, name, address
    and master changes are. A lost announcement (ENOBUFS) counts as a change.
    """

    def __init__(self) -> None:
        self._sock = _open_route_socket(RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        self._sock.setblocking(False)
        self._buf = bytearray(RECV_BUFFER)

    def changed(self) -> bool:
        seen = False
        while True:
            try:
                if not self._sock.recv_into(self._buf):
                    return seen
            except BlockingIOError:
                return seen
            except OSError:  # ENOBUFS: the queue overflowed, so something surely changed
                seen = True
                continue
            seen = True

    def close(self) -> None:
        self._sock.close()


__all__ = [
    "LinkEvents",
    "LinkStatsFailed",
    "LinkStatsReader",
    "counters_from",
    "locate_counters",
]
