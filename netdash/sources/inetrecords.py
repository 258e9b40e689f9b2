"""Turning one ``inet_diag_msg`` into a :class:`~netdash.model.Socket`, and what to keep of it.

:class:`InetRecords` builds a record from a message (the slow path: a socket new or changed since
the last read) together with the bytes that tell, next time, whether it is still right; it also
owns what records share: address texts, port ints, socket-memory readings and interface names.
The dump and the reuse loop live in :mod:`netdash.sources.sockdiag`. Layouts from
linux/inet_diag.h and linux/tcp.h.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys

from netdash.model import DATAGRAM_STATES, TCP_STATES, TIMER_NAMES, MemInfo, Socket, TcpInfo, Timer
from netdash.sources.tcpinfo import (
    FOLD_END,
    FOLD_START,
    FOLDED_MSG_FIELDS,
    INET_MSG_END,
    NLMSG_HEADER,
    PACKED_MIN,
    AttrLayout,
    fast_constructor,
    packed_tcp_info,
    parse_meminfo,
    parse_tcp_info,
)
from netdash.textsafe import decode

SIOCGIFNAME = 0x8910  # linux/sockios.h: ifindex -> name, in the namespace of the fd's socket
SIOCGIFINDEX = 0x8933  # and name -> ifindex
# struct inet_diag_msg, after the nlmsghdr: family, state, timer, retrans, then inet_diag_sockid
# (sport and dport are big-endian, src and dst 16 bytes, if, cookie[2]), then expires (ms),
# rqueue, wqueue, uid, inode.
_INET_MSG = struct.Struct("=BBBB HH 16s16s I II IIIII")
assert NLMSG_HEADER + _INET_MSG.size == INET_MSG_END
_U32 = struct.Struct("=I")
_ZERO16 = bytes(16)
# fackets and the tcpi_last_* "ms since" fields of tcp_info: zeroed in a short struct, parsed now.
_VOLATILE_START, _VOLATILE_END = 40, 60
_ZERO_VOLATILE = bytes(_VOLATILE_END - _VOLATILE_START)
#: Where, from the start of a message, the reader copies the fields folded into tcp_info from.
FOLD_FROM, FOLD_TO = (NLMSG_HEADER + at for at in FOLDED_MSG_FIELDS)
TIMER_AT = NLMSG_HEADER + 2  # inet_diag_msg.idiag_timer, then idiag_retrans
# The states in which a TCP socket's addresses and ports can no longer change: with tcp_info
# holding the state, a record of one of them compares tcp_info alone (see Kept). A socket in
# CLOSE or SYN_SENT can still be (re)connected elsewhere.
_SETTLED_STATES = frozenset(
    n for n, name in TCP_STATES.items() if name not in {"CLOSE", "SYN_SENT"}
)
_NO_SPANS = (0, 0, 0, 0)
_MEMINFO_KEPT = 65_536  # distinct socket-memory readings shared between records
_ADDRESSES_KEPT = 100_000  # per family, checked once per sample
_ntohs = socket.ntohs
_make_socket = fast_constructor(Socket)
_make_timer = fast_constructor(Timer)
_TCP_STATE_NAMES = tuple(TCP_STATES.get(n, f"UNKNOWN({n})") for n in range(256))
_UDP_STATE_NAMES = tuple(DATAGRAM_STATES.get(n, _TCP_STATE_NAMES[n]) for n in range(256))
_FAMILY_NAMES = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}
# The dump loop reads cookie[2] as one native u64 (the records' key). On little-endian machines
# that is the cookie's value (cookie[0] holds the low half), and sharing that int object with
# the record saves 3 MB at 100,000 sockets.
_HEADER_COOKIE_IS_VALUE = sys.byteorder == "little"

#: What a socket's previous reading left for the next one: (head, tail, tail offset in the
#: message, check, record). ``head`` is the message from its inet_diag_msg up to tcp_info, or to
#: its end without a packed tcp_info (then ``tail`` is empty and its offset 0); ``tail`` is a
#: packed tcp_info's bytes (:class:`PackedTcpInfo`, its fields folded in). ``check`` is the
#: deadline of the record's running timer in monotonic ms, 0 for none (inet: a countdown is
#: compared apart, see :func:`retimed`), or the message length (UNIX, whose head is the whole
#: message). See :meth:`InetRecords.build`.
Entry = tuple[bytes, bytes, int, int, Socket]
#: What the reader keeps of a socket: an :data:`Entry`, or for most sockets of a busy server
#: (settled TCP states, a packed tcp_info, no bound device, no socket memory) the record alone.
#: Its PackedTcpInfo's bytes hold everything of the message that the record carries, except
#: the addresses (settled), the device (checked apart) and the timer (its deadline is the
#: record's, compared apart). ~300 bytes less per socket than a head and a tail.
Kept = Entry | Socket


class InetRecords:
    """Builds inet records for one sock_diag socket (``fd``: interface names are looked up in
    its namespace) and keeps what they share."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._addr_text: dict[int, dict[bytes, str]] = {socket.AF_INET: {}, socket.AF_INET6: {}}
        self._mems: dict[bytes, MemInfo | None] = {}
        self._ports: dict[int, int] = {}
        self._ifnames: dict[int, str] = {}
        self._layout = AttrLayout()

    def new_sample(self) -> bool:
        """Once per sample: ask again for interface names (they can be renamed or removed) and
        cap the address texts. True if a name changed: records built before must go (their
        message bytes carry only the index)."""
        for texts in self._addr_text.values():
            if len(texts) > _ADDRESSES_KEPT:
                texts.clear()
        known, self._ifnames = self._ifnames, {}
        return any(self.interface_name(index) != name for index, name in known.items())

    def build(
        self, view: memoryview, off: int, proto: str, attrs: bool, want_info: bool,
        expires: int, read_at: float, cookie: int,
    ) -> Kept:  # fmt: skip
        """A new record, and the bytes that say next time whether it is still right.

        With a full tcp_info the record's PackedTcpInfo holds those bytes (FOLD_START says how)
        and, unless the socket can still change in ways they do not show, the record is all
        that is kept. Otherwise an Entry keeps the message from its inet_diag_msg to tcp_info
        (or to the end of the last attribute read) as well.
        """
        base = off + NLMSG_HEADER
        length = _U32.unpack_from(view, off)[0]
        info_start, info_end, mem_start, mem_end = (
            self._layout.find(view, off, length, want_info) if attrs else _NO_SPANS
        )
        mem = self._meminfo(view[mem_start:mem_end]) if mem_start else None
        if info_start and info_end - info_start >= PACKED_MIN and mem_end < info_start:
            fold_fields(view, off, info_start)
            raw = bytes(view[info_start : info_start + PACKED_MIN])
            tcp: TcpInfo | None = packed_tcp_info(raw, info_start - off)
            sock = self._inet_socket(view, off, proto, tcp, mem, expires, read_at, cookie)
            if not mem_start and sock.interface is None and view[base + 1] in _SETTLED_STATES:
                return sock
            head = bytes(view[base:info_start])
            return (head, raw, info_start - off, deadline_ms(expires, read_at), sock)
        tcp = None
        if info_start:  # an older kernel's shorter struct: parsed now, "ms since" zeroed
            if info_end - info_start >= _VOLATILE_END:
                view[info_start + _VOLATILE_START : info_start + _VOLATILE_END] = _ZERO_VOLATILE
            tcp = parse_tcp_info(view[info_start:info_end])
        head = bytes(view[base : max(info_end, mem_end, off + INET_MSG_END)])
        sock = self._inet_socket(view, off, proto, tcp, mem, expires, read_at, cookie)
        return (head, b"", 0, deadline_ms(expires, read_at), sock)

    def _inet_socket(
        self, view: memoryview, off: int, proto: str, tcp: TcpInfo | None, mem: MemInfo | None,
        expires: int, read_at: float, cookie: int,
    ) -> Socket:  # fmt: skip
        fields = _INET_MSG.unpack_from(view, off + NLMSG_HEADER)
        (family, state, timer, retrans, sport, dport, src, dst, ifindex, cookie_lo, cookie_hi,
         _, rqueue, wqueue, uid, inode) = fields  # fmt: skip
        texts = self._addr_text.get(family) or {}
        ports = self._ports
        local_addr = texts.get(src) or self._address(family, src)
        if dport or dst != _ZERO16:
            remote_addr: str | None = texts.get(dst) or self._address(family, dst)
            remote_port: int | None = ports.get(dport) or self._port(dport)
        else:
            remote_addr = remote_port = None
        return _make_socket(
            proto,
            _FAMILY_NAMES.get(family) or str(family),
            (_TCP_STATE_NAMES if proto == "tcp" else _UDP_STATE_NAMES)[state],
            local_addr,
            ports.get(sport) or self._port(sport),
            remote_addr,
            remote_port,
            rqueue,
            wqueue,
            inode,
            uid,
            self.interface_name(ifindex) if ifindex else None,
            None,
            None,
            cookie if _HEADER_COOKIE_IS_VALUE else cookie_lo | (cookie_hi << 32),
            _make_timer(
                TIMER_NAMES.get(timer, "unknown"), expires, retrans, read_at + expires / 1000
            )
            if timer
            else None,
            tcp,
            mem,
        )

    def _meminfo(self, raw: memoryview) -> MemInfo | None:
        """Socket memory, one record per distinct reading: idle sockets share a handful."""
        key = bytes(raw)
        mem = self._mems.get(key)
        if mem is None:
            if len(self._mems) >= _MEMINFO_KEPT:
                self._mems.clear()
            mem = self._mems[key] = parse_meminfo(key)
        return mem

    def _port(self, raw: int) -> int:
        """A port in host order, one int object per port (100k sockets hold 200k ports)."""
        port = self._ports[raw] = _ntohs(raw)
        return port

    def _address(self, family: int, raw: bytes) -> str:
        """RFC 5952 text as ss prints it (libc inet_ntop: ``::ffff:127.0.0.1`` stays IPv6),
        remembered per family by the raw 16 bytes (IPv4 uses the first 4)."""
        if family == socket.AF_INET:
            text = socket.inet_ntop(family, raw[:4])
        else:
            text = socket.inet_ntop(socket.AF_INET6, raw)
        self._addr_text.setdefault(family, {})[raw] = text
        return text

    def interface_name(self, ifindex: int) -> str:
        """The name of an interface *in this socket's namespace* (if_indextoname would use the
        calling thread's), ``if<N>`` as ss shows it when the interface is gone."""
        name = self._ifnames.get(ifindex)
        if name is None:
            request = struct.pack("16si20x", b"", ifindex)  # struct ifreq (linux/if.h), 40 bytes
            try:
                reply = fcntl.ioctl(self._fd, SIOCGIFNAME, request)
                name = decode(reply[:16].split(b"\0", 1)[0])
            except OSError:
                name = f"if{ifindex}"
            self._ifnames[ifindex] = name
        return name

    def interface_index(self, name: str) -> int:
        """:meth:`interface_name` the other way: ``if<N>`` (a vanished interface) is N; 0 if
        unknown."""
        if name.startswith("if") and name[2:].isdigit():
            return int(name[2:])
        request = struct.pack("16si20x", name.encode("utf-8", "surrogateescape")[:15], 0)
        try:
            return struct.unpack_from("i", fcntl.ioctl(self._fd, SIOCGIFINDEX, request), 16)[0]
        except OSError:
            return 0


def retimed(old: Socket, kind: int, retrans: int, expires: int, read_at: float) -> Socket:
    """The same record with its timer as now read (``kind``, ``retrans`` and ``expires`` from the
    message): None when it stopped, else the new deadline.

    A running timer's countdown changes on every read; its deadline does not, until the timer
    is re-armed (keepalive after a probe or traffic, retransmit) or fires. So a record is kept
    while the deadline holds (see ``Timer``: ``expires_ms`` is then as of the first reading,
    ``fires_at`` stays right), and only a moved deadline gets here: everything else compared
    equal, so the strings, tcp_info and memory are shared and only the Socket and its Timer
    are new (~2 µs instead of ~10 µs for a new record).
    """
    timer = (
        _make_timer(TIMER_NAMES.get(kind, "unknown"), expires, retrans, read_at + expires / 1000)
        if kind
        else None
    )
    return _make_socket(
        old.proto, old.family, old.state, old.local_addr, old.local_port, old.remote_addr,
        old.remote_port, old.recv_q, old.send_q, old.inode, old.uid, old.interface,
        old.sock_type, old.peer_inode, old.cookie, timer, old.tcp, old.mem,
    )  # fmt: skip


def fold_fields(view: memoryview, off: int, info_start: int) -> None:
    """Copy the fields a record carries from the inet_diag_msg at ``off`` into the unread bytes
    of its tcp_info at ``info_start`` (see FOLD_START in :mod:`netdash.sources.tcpinfo`)."""
    view[info_start + FOLD_START : info_start + FOLD_END] = view[off + FOLD_FROM : off + FOLD_TO]


def deadline_ms(expires: int, read_at: float) -> int:
    """A running timer's deadline in whole monotonic ms, 0 for none (the check of an Entry)."""
    return int(read_at * 1000) + expires if expires else 0
