"""The rtnetlink (``NETLINK_ROUTE``) side shared by the links and routes sources.

- :class:`RtnlSocket`: a ``NETLINK_ROUTE`` socket on :mod:`netdash.sources.netlink`'s
  transport, with the two exchanges the routes and links sources need: a dump whose messages
  are kept as raw bytes, and a single request with its one answer.
- Sockets are created inside the reader's namespace (:class:`netdash.netns.NamespaceHandle`):
  a socket stays in the namespace it was created in for its whole life, whichever thread uses
  it; pyroute2 0.9's ``IPRoute`` keeps its socket *per thread* and opens it lazily, so one made
  inside a namespace lists the host once a poller thread calls it.
- Attribute helpers (``struct nlattr``, linux/netlink.h) over bytes or a ``memoryview``.
- :class:`RouteNames`: the names ``ip`` prints for tables, protocols and scopes.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from netdash.sources.errors import PermissionNeeded, SourceError
from netdash.sources.netlink import (
    NETLINK_ROUTE,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_OVERRUN,
    RECV_BUFFER,
    NetlinkDump,
    NetlinkFailed,
    Protocol,
    error_code,
    iter_messages,
    request_message,
)

NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_NLA = struct.Struct("=HH")  # struct nlattr: len, type
_U32 = struct.Struct("=I")


class RtnlFailed(NetlinkFailed):
    """An rtnetlink exchange failed or the kernel refused it; ``errno`` says why."""


class NetlinkRefused(RtnlFailed):
    """The kernel answered a request with an error (NLMSG_ERROR), as opposed to the socket
    failing: a route lookup that hits a "prohibit" route is answered this way (EACCES)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"rtnetlink: {os.strerror(code)}", code)


RTNL = Protocol(NETLINK_ROUTE, "rtnetlink", RtnlFailed)

#: One raw netlink message: the buffer it sits in, its offset and its length.
RawMessage = tuple[bytes, int, int]


class RtnlSocket(NetlinkDump):
    """One ``NETLINK_ROUTE`` socket: dumps and single requests, answered as raw messages that
    outlive the receive buffer (each reply is copied once, for parsers that keep them)."""

    def __init__(self, *, buffer_size: int = RECV_BUFFER) -> None:
        try:
            super().__init__(RTNL, buffer_size=buffer_size)
        except RtnlFailed as err:
            if err.errno in (errno.EPERM, errno.EACCES):
                raise PermissionNeeded(f"opening an rtnetlink socket was refused: {err}") from err
            raise

    def dump(self, msg_type: int, body: bytes) -> list[RawMessage]:
        """Every message of one ``msg_type | NLM_F_DUMP`` request (``body`` after the header
        selects what, e.g. an ``rtmsg`` with the family)."""
        seq = self._next_seq()
        request = request_message(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, body)
        try:
            return list(self._answers(request, seq))
        except NetlinkRefused as err:
            if err.errno in (errno.EPERM, errno.EACCES):
                raise PermissionNeeded(f"{err} (reading this needs root?)") from err
            raise

    def request(self, msg_type: int, body: bytes) -> RawMessage:
        """The one answer to a plain request; a refusal raises :class:`NetlinkRefused`, even
        EACCES: that is how the kernel answers a lookup that hits a "prohibit" route."""
        seq = self._next_seq()
        for msg in self._answers(request_message(msg_type, NLM_F_REQUEST, seq, body), seq):
            return msg
        raise SourceError("rtnetlink: the kernel sent no answer")

    def _answers(self, request: bytes, seq: int) -> Iterator[RawMessage]:
        """Messages answering ``seq`` until NLMSG_DONE or an error/ACK (linux/netlink.h);
        leftovers of an earlier, abandoned exchange are skipped."""
        for size in self._replies(request):
            data = bytes(self._view[:size])
            for off, length, kind, mseq in iter_messages(data, size, RTNL):
                if mseq != seq:
                    continue
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    code = error_code(data, off, length)
                    if code:
                        raise NetlinkRefused(code)
                    return  # the end of a dump, or an ACK
                if kind == NLMSG_OVERRUN:
                    raise RtnlFailed("rtnetlink: data lost (NLMSG_OVERRUN)", errno.ENOBUFS)
                yield data, off, length


# ------------------------------------------------------------------------------ attributes


def nla(kind: int, payload: bytes) -> bytes:
    """One ``struct nlattr`` with its payload, padded to 4 bytes, for a request."""
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length % 4)


def attributes(data: bytes | memoryview, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Attribute type → (start, end) of its payload, for the nlattrs in ``data[start:end]``
    (a truncated attribute ends the walk)."""
    found = {}
    while start + _NLA.size <= end:
        size, kind = _NLA.unpack_from(data, start)
        if size < _NLA.size or start + size > end:
            break
        found[kind & NLA_TYPE_MASK] = (start + _NLA.size, start + size)
        start += (size + 3) & ~3
    return found


def find_attr(data: bytes | memoryview, off: int, end: int, wanted: int) -> tuple[int, int] | None:
    """(payload offset, payload size) of the first attribute ``wanted`` in ``data[off:end]``:
    stops there, where :func:`attributes` walks them all (the per-tick counter read wants one)."""
    while off + _NLA.size <= end:
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size:
            return None
        if kind & NLA_TYPE_MASK == wanted:
            return off + _NLA.size, min(length, end - off) - _NLA.size
        off += (length + 3) & ~3
    return None


def attr_u32(data: bytes, attrs: Mapping[int, tuple[int, int]], kind: int) -> int | None:
    span = attrs.get(kind)
    return _U32.unpack_from(data, span[0])[0] if span and span[1] - span[0] >= 4 else None


def attr_address(
    data: bytes, attrs: Mapping[int, tuple[int, int]], kind: int, family: int
) -> str | None:
    span = attrs.get(kind)
    return socket.inet_ntop(family, data[span[0] : span[1]]) if span else None


def attr_u8(data: bytes, attrs: Mapping[int, tuple[int, int]], kind: int) -> int | None:
    span = attrs.get(kind)
    return data[span[0]] if span and span[1] > span[0] else None


def attr_bytes(data: bytes, attrs: Mapping[int, tuple[int, int]], kind: int) -> bytes | None:
    """The payload of attribute ``kind`` as bytes (None when absent)."""
    span = attrs.get(kind)
    return data[span[0] : span[1]] if span else None


def attr_string(data: bytes, attrs: Mapping[int, tuple[int, int]], kind: int) -> bytes | None:
    """A string attribute (``NLA_NUL_STRING``/``NLA_STRING``) as its bytes, without the NULs
    around it: names are the kernel's bytes, not always UTF-8, so decoding is the caller's."""
    raw = attr_bytes(data, attrs, kind)
    return None if raw is None else raw.strip(b"\0")


# ----------------------------------------------------------------------------------- names

#: iproute2's built-in names (lib/rt_names.c), used where /etc/iproute2 has no file.
TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}
PROTOCOLS = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
    10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
    18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf",
    189: "rip", 192: "eigrp",
}  # fmt: skip
SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}


class RouteNames:
    """Numbers to the names ``ip`` prints: tables, protocols and scopes.

    Read from iproute2's files (``rt_tables``, ``rt_protos``, ``rt_scopes`` and their ``.d``
    directories) under ``roots``, later roots overriding earlier ones as iproute2 does with
    /usr/share and /etc; a missing file leaves the built-in names.
    """

    def __init__(
        self, roots: Iterable[Path] = (Path("/usr/share/iproute2"), Path("/etc/iproute2"))
    ) -> None:
        roots = tuple(roots)
        self.tables = _name_table(roots, "rt_tables", TABLES)
        self.protocols = _name_table(roots, "rt_protos", PROTOCOLS)
        self.scopes = _name_table(roots, "rt_scopes", SCOPES)

    def table(self, number: int) -> str:
        return self.tables.get(number, str(number))

    def protocol(self, number: int) -> str:
        return self.protocols.get(number, str(number))

    def scope(self, number: int) -> str:
        return self.scopes.get(number, str(number))


def _name_table(roots: tuple[Path, ...], name: str, builtin: Mapping[int, str]) -> dict[int, str]:
    names = dict(builtin)
    for root in roots:
        names.update(parse_name_file(_read_text(root / name)))
        conf_dir = root / f"{name}.d"
        if conf_dir.is_dir():
            for conf in sorted(conf_dir.glob("*.conf")):
                names.update(parse_name_file(_read_text(conf)))
    return names


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def parse_name_file(text: str) -> dict[int, str]:
    """``NUMBER NAME`` lines of an iproute2 names file (decimal or 0x hex; # comments)."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            try:
                names[int(fields[0], 0)] = fields[1]
            except ValueError:
                continue
    return names


__all__ = [
    "RTNL",
    "NetlinkRefused",
    "RawMessage",
    "RouteNames",
    "RtnlFailed",
    "RtnlSocket",
    "attr_address",
    "attr_bytes",
    "attr_string",
    "attr_u8",
    "attr_u32",
    "attributes",
    "find_attr",
    "nla",
    "parse_name_file",
]
