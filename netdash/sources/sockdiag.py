"""TCP, UDP and UNIX sockets from the kernel's sock_diag netlink interface, as `ss` reads them.

A focused parser over a raw ``NETLINK_SOCK_DIAG`` socket, not pyroute2: its generic attribute
objects make ``DiagSocket`` ~57x slower than ``ss`` at 100k sockets (DESIGN.md). Here each dump
is read with ``recv_into`` into one preallocated buffer and parsed with precompiled
``struct.Struct.unpack_from`` over a ``memoryview`` of it. Struct layouts are cited from the
kernel's uapi headers: linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h, linux/unix_diag.h
and linux/tcp.h.

Most sockets of a busy server are idle from one tick to the next. Their messages are byte for
byte the same except for fields the model does not carry (``tcpi_last_*``, "ms since") and the
countdown of a running timer, so each socket's previous record is found by its cookie and kept
when the bytes it was built from compare equal (``bytearray.startswith``, no allocation): fewer
allocations, and the engine's diff stops at an identity test. Those bytes are also all a record
holds of tcp_info (:class:`~netdash.sources.tcpinfo.PackedTcpInfo`).

The kernel lists sockets in the order of its hash tables, which does not change while they
live, so the previous records are kept as lists in that order and found by walking them along
the dump (a short look-ahead skips the ones that went away): 16 bytes a socket instead of a
dict's ~50, twice over while a sample replaces the last.

While few sockets change, whole runs of them are matched at once against the previous sample's
messages kept back to back (:mod:`netdash.sources.msgruns`, one memcmp a run): the loop below
then reads only the sockets that changed, one by one.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable, Iterator

from netdash.model import Socket
from netdash.sources.inetrecords import (
    FOLD_FROM,
    FOLD_TO,
    TIMER_AT,
    InetRecords,
    Kept,
    deadline_ms,
    retimed,
)
from netdash.sources.msgruns import ZERO_FOLD, MessageRuns
from netdash.sources.netlink import (  # SockDiagFailed: this module's error, re-exported
    NLM_F_DUMP,
    NLM_F_REQUEST,
    SOCK_DIAG_BY_FAMILY,
    NetlinkDump,
    SockDiagFailed,
    check_control,
)
from netdash.sources.tcpinfo import (
    FOLD_END,
    FOLD_START,
    INET_DIAG_INFO,
    INET_DIAG_SKMEMINFO,
    INET_MSG_END,
    NLMSG_HEADER,
    PACKED_MIN,
)
from netdash.sources.unixdiag import UNIX_HEAD, UNIX_MSG_END, parse_unix_message, unix_request

__all__ = ["SockDiag", "SockDiagFailed"]

# Every TCP state but TCP_BOUND_INACTIVE (13, kernel 6.5+): sockets bound and never listened
# on or connected, which `ss -a` does not list either. Finding them walks every socket of the
# bind hash (accepted ones too) on top of the established hash: 2.7 ms of the kernel's 22.8 ms
# per dump at 20,000 sockets, for sockets that are rare and short-lived.
TCP_BOUND_INACTIVE = 13
ALL_STATES = 0xFFFFFFFF & ~(1 << TCP_BOUND_INACTIVE)

# struct nlmsghdr (linux/netlink.h) followed by struct inet_diag_req_v2 (linux/inet_diag.h):
# family, protocol, ext, pad, states, then a zeroed inet_diag_sockid (48 bytes: any socket).
_INET_REQUEST = struct.Struct("=IHHII BBBx I 48x")
# The same request naming one socket (no NLM_F_DUMP): inet_diag_sockid's ports (big-endian),
# source and destination addresses, bound device and cookie (two u32, low half first).
_INET_EXACT = struct.Struct("=IHHII BBBx I HH16s16sIII")
# What the kernel answers an exact request for a socket it no longer has (or a cookie that
# names another socket now: net/core/sock_diag.c, sock_diag_check_cookie).
_GONE = {errno.ENOENT, errno.ESTALE}
# The legacy request (linux/inet_diag.h): nlmsghdr of type TCPDIAG_GETSOCK + struct
# inet_diag_req: family, src_len, dst_len, ext, a zeroed inet_diag_sockid, states, dbs.
TCPDIAG_GETSOCK = 18
_TCP_COMPAT_REQUEST = struct.Struct("=IHHII BBBB 48x II")
# What a kernel without the legacy request answers (net/core/sock_diag.c, inet_diag.c).
_COMPAT_REFUSED = {errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT}

# The start of each message as the hot loops read it: nlmsghdr without nlmsg_pid, then the
# bound device (idiag_if), the socket cookie (idiag_cookie, read as one 64-bit key: byte order
# does not matter for a key) and idiag_expires.
_INET_HEAD = struct.Struct("=IHHI4x40xIQI")
_EXPIRES_AT = NLMSG_HEADER + 52  # inet_diag_msg.idiag_expires
_ZERO4 = bytes(4)
# How far a running timer's deadline (read time + idiag_expires) may wander between reads and
# still be the same deadline: jiffies (up to 10 ms) and when exactly the kernel filled a reply.
_SLACK_MS = 50
# Unchanged sockets in a row after which the loop tries a run again (msgruns), and how long a
# run it tries per socket of the streak: a busy table, where most sockets change, seldom gets
# there and then tries short runs, so misses cost it little.
_RUN_AFTER = 2
_RUN_PER_STREAK = 4
# Runs are tried only while at most one socket in this many changed in the previous sample:
# spread over the kernel's order, denser changes make most tries miss, and a miss costs about
# what it would save (replayed at 20,000 sockets: one in 16 changing, 22 ms a sample socket by
# socket against 31 ms trying runs; one in 40, 19 against 16 ms; one in 100, 17 against 10).
_RUN_GAP = 32
# While they are not tried, the messages are gathered only every this many samples (gathering
# costs ~0.2 µs a socket that changed): enough to notice when the table quiets down.
_PROBE_EVERY = 8
# The sequence number of every inet dump, which each of its messages carries: the same for each
# so that an unchanged socket's message is the same bytes from one sample to the next (msgruns).
# A dump is drained before the next request (NetlinkDump._replies), so none can be taken for
# another; 0 is never one of _next_seq's, which the other requests use.
_DUMP_SEQ = 0
# How far ahead in the previous sample's order a socket is looked for: past the sockets that
# went away since (a miss builds a new record, as for a new socket).
_LOOK_AHEAD = 128


class SockDiag(NetlinkDump):
    """One ``NETLINK_SOCK_DIAG`` socket; it lists the sockets of the namespace it was opened in."""

    def __init__(self, *, reuse_unchanged: bool = True) -> None:
        super().__init__()
        self._reuse = reuse_unchanged
        # The previous sample's cookies and what was kept of each socket (the record, or an
        # inetrecords.Entry), in dump order; the next sample's as it is read.
        self._cookies: list[int] = []
        self._kept: list[Kept] = []
        self._pos = 0  # where the dump being read is in the previous sample's order
        self._next_cookies: list[int] = []
        self._next_kept: list[Kept] = []
        self._extension_bits: int | None = None  # idiag_ext of the last inet dump
        self._tcp_compat = True  # until the kernel refuses TCPDIAG_GETSOCK
        self._records = InetRecords(self._sock.fileno())
        self._sampling = False
        self._read_at = 0.0  # time.monotonic() of the reply being parsed
        self._runs = MessageRuns()  # the previous sample's messages, compared a run at a time
        self._streak = 0  # sockets in a row found unchanged: when to try a run again
        self._built = 0  # inet records built (new or changed sockets) in the sample being read
        self._try_runs = False  # whether the sample being read tries runs (_RUN_GAP)
        self._samples = 0

    def begin(self) -> None:
        """Start a sample of several dumps: records of the previous sample can be reused until
        :meth:`end`. (A dump outside begin/end is a sample of its own.)"""
        self._next_cookies, self._next_kept, self._pos = [], [], 0
        self._sampling = True
        self._streak = _RUN_AFTER
        self._samples += 1
        self._try_runs = self._samples <= 2 or self._built * _RUN_GAP <= len(self._cookies)
        self._built = 0
        if self._records.new_sample():
            self._forget()
        self._runs.begin(self._reuse and (self._try_runs or self._samples % _PROBE_EVERY == 0))

    def end(self) -> None:
        """Finish a sample: only the records it used are kept for the next one."""
        self._cookies, self._kept = self._next_cookies, self._next_kept
        self._next_cookies, self._next_kept = [], []
        self._sampling = False
        self._runs.end()

    def _forget(self) -> None:
        """Keep no record of the previous sample: none may stand for a socket read now."""
        self._cookies, self._kept, self._pos = [], [], 0
        self._runs.forget()

    def _seek(self, cookie: int, pos: int) -> int:
        """Where ``cookie`` is in the previous sample's order from ``pos``, a little ahead;
        -1 if not there (a new socket)."""
        try:
            return self._cookies.index(cookie, pos, pos + _LOOK_AHEAD)
        except ValueError:
            return -1

    def _batches(
        self, request: bytes, parse: Callable[[int, list[Socket]], bool]
    ) -> Iterator[list[Socket]]:
        """Run one dump; yield the sockets of each reply buffer as it arrives. A dump outside
        begin/end is a sample of its own."""
        own = not self._sampling
        if own:
            self.begin()
        try:
            for end in self._replies(request):
                self._read_at = time.monotonic()  # a countdown read now ends at read_at + it
                out: list[Socket] = []
                done = parse(end, out)
                if out:
                    yield out
                if done:
                    return
        finally:
            if own:
                self.end()

    # ------------------------------------------------------------------------------ inet

    def dump_inet(
        self, proto: int, family: int, *, details: bool, memory: bool = True
    ) -> list[Socket]:
        """All sockets of one protocol (IPPROTO_TCP/UDP) and family, in every state.

        ``details`` asks for tcp_info (it about doubles the time) and, with ``memory``, socket
        memory (another ~10% of the kernel's time).
        """
        out: list[Socket] = []
        for batch in self.iter_inet(proto, family, details=details, memory=memory):
            out += batch
        return out

    def iter_inet(
        self, proto: int, family: int, *, details: bool, memory: bool = True
    ) -> Iterator[list[Socket]]:
        """:meth:`dump_inet` one reply buffer at a time (~70 sockets with tcp_info): a caller
        that writes each batch out and drops it never holds the whole table."""
        ext = self._extensions(details, memory)
        seq = _DUMP_SEQ
        request = _INET_REQUEST.pack(
            _INET_REQUEST.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
            family, proto, ext, ALL_STATES,
        )  # fmt: skip
        name = "tcp" if proto == socket.IPPROTO_TCP else "udp"
        return self._batches(
            request,
            lambda end, out: self._parse_inet(end, seq, SOCK_DIAG_BY_FAMILY, name, details, out),
        )

    def iter_both_families(
        self, proto: int, *, details: bool, memory: bool = True
    ) -> Iterator[list[Socket]]:
        """IPv4 then IPv6 sockets of one protocol; TCP in one dump where the kernel allows.

        Each sock_diag dump walks the kernel's whole socket hash, and the IPv6 one still
        visits every IPv4 socket to skip it (~5.7 ms at 20,000 sockets, a seventh of a read).
        The legacy ``TCPDIAG_GETSOCK`` request asks with family AF_UNSPEC and gets both in one
        walk (``inet_diag_dump_compat``); a kernel that refuses it gets two dumps from then on.
        """
        if proto == socket.IPPROTO_TCP and self._tcp_compat:
            started = False
            try:
                for batch in self._iter_tcp_compat(details, memory):
                    started = True
                    yield batch
                return
            except SockDiagFailed as err:
                if started or err.errno not in _COMPAT_REFUSED:
                    raise
                self._tcp_compat = False
        yield from self.iter_inet(proto, socket.AF_INET, details=details, memory=memory)
        try:
            yield from self.iter_inet(proto, socket.AF_INET6, details=details, memory=memory)
        except SockDiagFailed as err:
            if err.errno not in (errno.EAFNOSUPPORT, errno.ENOENT):
                raise  # a kernel without IPv6 has no IPv6 sockets: nothing is missing

    def _iter_tcp_compat(self, details: bool, memory: bool) -> Iterator[list[Socket]]:
        ext = self._extensions(details, memory)
        seq = _DUMP_SEQ
        request = _TCP_COMPAT_REQUEST.pack(
            _TCP_COMPAT_REQUEST.size, TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
            socket.AF_UNSPEC, 0, 0, ext, ALL_STATES, 0,
        )  # fmt: skip
        return self._batches(
            request,
            lambda end, out: self._parse_inet(end, seq, TCPDIAG_GETSOCK, "tcp", details, out),
        )

    def read_one(self, sock: Socket) -> Socket | None:
        """``sock`` read again on its own, with tcp_info and socket memory: ``ss -m`` for the
        one socket a detail view shows. Asking every socket's memory in the dumps would cost
        the kernel ~10% more per dump and this reader every record it keeps (a dump with other
        attributes compares with none of them). None if the kernel no longer has the socket.
        """
        proto = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}.get(sock.proto)
        family = {"inet": socket.AF_INET, "inet6": socket.AF_INET6}.get(sock.family)
        if proto is None or family is None or sock.local_addr is None:
            raise ValueError(f"read_one: not an inet socket: {sock.proto}/{sock.family}")
        seq = self._next_seq()
        local = (socket.htons(sock.local_port or 0), _packed_address(family, sock.local_addr))
        remote = (socket.htons(sock.remote_port or 0), _packed_address(family, sock.remote_addr))
        if proto == socket.IPPROTO_UDP:  # udp_diag looks up (src, dst) as a packet's: swapped
            local, remote = remote, local
        ifindex = self._records.interface_index(sock.interface) if sock.interface else 0
        request = _INET_EXACT.pack(
            _INET_EXACT.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0,
            family, proto, (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1)),
            ALL_STATES, local[0], remote[0], local[1], remote[1], ifindex,
            sock.cookie & 0xFFFFFFFF, sock.cookie >> 32,
        )  # fmt: skip
        replies = self._replies(request)
        try:
            end = next(replies)
            self._read_at = time.monotonic()
            return self._exact_reply(end, seq, sock.proto)
        except SockDiagFailed as err:
            if err.errno in _GONE:
                return None
            raise
        finally:
            replies.close()

    def _exact_reply(self, end: int, seq: int, proto: str) -> Socket | None:
        view, off = self._view, 0
        while off < end:
            length, mtype, _, mseq, _, cookie, expires = _INET_HEAD.unpack_from(view, off)
            if mtype == SOCK_DIAG_BY_FAMILY and mseq == seq and length >= INET_MSG_END:
                kept = self._records.build(
                    view, off, proto, length > INET_MSG_END, proto == "tcp", expires,
                    self._read_at, cookie,
                )  # fmt: skip
                return kept if type(kept) is not tuple else kept[4]  # type: ignore[index,return-value]
            if check_control(view, off, length, mtype, mseq, seq):
                return None
            off += (length + 3) & ~3
        return None

    def _extensions(self, details: bool, memory: bool) -> int:
        """idiag_ext for a dump. A change of extensions forgets the kept records: a record
        compares only the bytes it was built from, and one built without tcp_info would
        otherwise match a message that has it.

        Socket memory is its own switch because only a socket's detail view shows it, and
        filling it costs the kernel ~10% of a tcp_info dump (``ss -tni`` against ``ss -tnim``:
        31 against 34 ms of system time at 20,000 sockets) and every record ~40 bytes.
        """
        bits = 0
        if details:
            bits = 1 << (INET_DIAG_INFO - 1)
            if memory:
                bits |= 1 << (INET_DIAG_SKMEMINFO - 1)
        if bits != self._extension_bits:
            self._extension_bits = bits
            self._forget()
        return bits

    def _parse_inet(
        self, end: int, seq: int, kind: int, proto: str, details: bool, out: list[Socket]
    ) -> bool:
        """Parse one reply buffer into ``out``; True once the dump is complete.

        The hot loop of the whole source: at 100k sockets every attribute lookup counts. Runs of
        sockets unchanged since the previous sample are matched whole (:mod:`msgruns`); the
        others cost one unpack, a list lookup, a 16-byte copy and one ``startswith`` (memcmp)
        each when unchanged, a new record when not.
        """
        view, buf, keep, runs = self._view, self._buf, self._reuse, self._runs
        cookies, kept_list, pos = self._cookies, self._kept, self._pos
        known = len(cookies) if keep else 0
        add_cookie, add_kept = self._next_cookies.append, self._next_kept.append
        gather = keep and runs.batch(end, len(self._next_cookies) == runs.gathered)
        add_length, add_fold = runs.adders()
        run_known, streak = (runs.known if keep and self._try_runs else 0), self._streak
        built = gathered_from = 0
        done = False
        same, seek = buf.startswith, self._seek
        header, build, append = _INET_HEAD.unpack_from, self._records.build, out.append
        into, into_end, fold_from, fold_to = FOLD_START, FOLD_END, FOLD_FROM, FOLD_TO
        want_info = details and proto == "tcp"
        read_at = self._read_at
        now_ms = int(read_at * 1000)
        off = 0
        while off < end:
            if streak >= _RUN_AFTER and pos < run_known:
                took, span, differs = runs.match(view, off, end, pos, streak * _RUN_PER_STREAK)
                if took:
                    matched = runs.take(pos, pos + took, gather)
                    self._next_cookies += cookies[pos : pos + took]
                    self._next_kept += kept_list[pos : pos + took]
                    out += matched
                    pos += took
                    off += span
                    streak += took
                if differs:
                    streak = 0
                elif took:
                    continue
            length, mtype, _, mseq, ifindex, cookie, expires = header(view, off)
            if mtype != kind or mseq != seq or length < INET_MSG_END:
                if gather:
                    runs.write(view, gathered_from, off)
                    gathered_from = off + ((length + 3) & ~3)
                done = check_control(view, off, length, mtype, mseq, seq)
                if done:
                    break
                off += (length + 3) & ~3
                continue
            if expires:  # a running timer counts down on every read: compared apart
                buf[off + _EXPIRES_AT : off + _EXPIRES_AT + 4] = _ZERO4
            found = (pos if cookies[pos] == cookie else seek(cookie, pos)) if pos < known else -1
            fresh = False
            if found >= 0:
                pos = found + 1
                cookie, kept = cookies[found], kept_list[found]  # the record's own cookie int
                if type(kept) is tuple:
                    head, tail, tail_at, deadline, sock = kept
                    fresh = same(head, off + NLMSG_HEADER)
                else:  # a record kept alone (see inetrecords.Kept)
                    sock, info = kept, kept.tcp  # type: ignore[union-attr]
                    tail, tail_at, fresh = info._raw, info._at, not ifindex
                    timer = sock.timer
                    deadline = round(timer.fires_at * 1000) if timer and timer.expires_ms else 0
                if fresh and tail_at:  # fold, then compare the packed tcp_info (FOLD_START)
                    # tcp_info sits where it sat: the attributes before it are the same set for
                    # a socket's whole life (its family, the reader's request and privileges;
                    # a change of request forgets every record). A socket that left for
                    # TIME_WAIT has no tcp_info: its message is too short to be written to.
                    at = off + tail_at
                    fresh = tail_at + PACKED_MIN <= length
                    if fresh:  # inetrecords.fold_fields, inlined
                        view[at + into : at + into_end] = view[off + fold_from : off + fold_to]
                        fresh = same(tail, at)
                if fresh:
                    if expires:
                        moved = not -_SLACK_MS <= now_ms + expires - deadline <= _SLACK_MS
                    else:
                        moved = deadline != 0
                    if moved:
                        sock = retimed(sock, view[off + TIMER_AT], view[off + TIMER_AT + 1],
                                       expires, read_at)  # fmt: skip
                        if type(kept) is tuple:
                            kept = (head, tail, tail_at, deadline_ms(expires, read_at), sock)
                        else:
                            kept = sock
                    streak += 1
            if not fresh:
                streak = 0
                built += 1
                kept = build(view, off, proto, details and length > INET_MSG_END, want_info,
                             expires, read_at, cookie)  # fmt: skip
                if type(kept) is tuple:
                    sock, tail_at = kept[4], kept[2]  # type: ignore[index,misc]
                else:
                    sock, tail_at = kept, kept.tcp._at  # type: ignore[union-attr]
            if keep:
                add_cookie(cookie)
                add_kept(kept)
            if gather:  # gathered with the folded fields zeroed, as msgruns compares them
                if tail_at:  # a packed tcp_info (build's, or one that compared)
                    at = off + tail_at
                    view[at + into : at + into_end] = ZERO_FOLD
                    add_fold(tail_at + into)
                else:
                    add_fold(0)
                add_length((length + 3) & ~3)
            append(sock)
            off += (length + 3) & ~3
        if gather:
            if not done:
                runs.write(view, gathered_from, min(off, end))
            runs.gather_records(out)
        self._pos, self._streak = pos, streak
        self._built += built
        return done

    # ------------------------------------------------------------------------------ unix

    def dump_unix(self) -> list[Socket]:
        """All UNIX sockets of the namespace with name, peer, queues and owner uid."""
        out: list[Socket] = []
        for batch in self.iter_unix():
            out += batch
        return out

    def iter_unix(self) -> Iterator[list[Socket]]:
        """:meth:`dump_unix` one reply buffer at a time."""
        seq = self._next_seq()
        return self._batches(unix_request(seq), lambda end, out: self._parse_unix(end, seq, out))

    def _parse_unix(self, end: int, seq: int, out: list[Socket]) -> bool:
        """Parse one reply buffer into ``out``; True once the dump is complete. A record is
        kept while its whole message is unchanged."""
        view, keep, same = self._view, self._reuse, self._buf.startswith
        cookies, kept_list, pos, seek = self._cookies, self._kept, self._pos, self._seek
        known = len(cookies) if keep else 0
        add_cookie, add_kept = self._next_cookies.append, self._next_kept.append
        header, append = UNIX_HEAD.unpack_from, out.append
        off = 0
        while off < end:
            length, mtype, _, mseq, cookie = header(view, off)
            if mtype != SOCK_DIAG_BY_FAMILY or mseq != seq or length < UNIX_MSG_END:
                if check_control(view, off, length, mtype, mseq, seq):
                    self._pos = pos
                    return True
            else:
                found = -1
                if pos < known:
                    found = pos if cookies[pos] == cookie else seek(cookie, pos)
                entry = None
                if found >= 0:
                    pos = found + 1
                    cookie, entry = cookies[found], kept_list[found]
                if (
                    type(entry) is not tuple
                    or entry[3] != length
                    or not same(entry[0], off + NLMSG_HEADER)
                ):
                    head = bytes(view[off + NLMSG_HEADER : off + length]) if keep else b""
                    entry = (head, b"", 0, length, parse_unix_message(view, off, length))
                if keep:
                    add_cookie(cookie)
                    add_kept(entry)
                append(entry[4])
            off += (length + 3) & ~3
        self._pos = pos
        return False


def _packed_address(family: int, text: str | None) -> bytes:
    """An inet_diag_sockid address: 16 bytes, IPv4 in the first 4; zeros for none."""
    if text is None:
        return bytes(16)
    return socket.inet_pton(family, text).ljust(16, b"\0")
