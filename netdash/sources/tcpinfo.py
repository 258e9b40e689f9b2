"""The attributes of inet_diag messages: ``struct tcp_info``, socket memory, where to find them;
and fast construction of the model's frozen records.

Kept apart from :mod:`netdash.sources.sockdiag` so the netlink transport and the struct layouts
each stay readable on their own.
"""

from __future__ import annotations

import dataclasses
import operator
import struct
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from netdash.model import MemInfo, TcpInfo
from netdash.sources.netlink import NLMSG_HEADER

T = TypeVar("T")

INET_MSG_END = NLMSG_HEADER + 72  # + sizeof(struct inet_diag_msg): attributes start here
_IDIAG_STATE = NLMSG_HEADER + 1  # inet_diag_msg.idiag_state; tcp_info starts with tcpi_state
NLATTR = struct.Struct("=HH")  # struct nlattr: nla_len, nla_type
# linux/inet_diag.h: the attributes we ask for (as bits of idiag_ext: 1 << (attr - 1)).
INET_DIAG_INFO = 2
INET_DIAG_SKMEMINFO = 7

# struct tcp_info, linux/tcp.h, as far as netdash reads it (216 bytes; Linux 6.x sends ~248).
_TCP_INFO = struct.Struct(
    "="
    "x"  # tcpi_state (the message already has it)
    "BBBBB"  # ca_state, retransmits, probes, backoff, options
    "B"  # snd_wscale:4, rcv_wscale:4 (a bitfield: split below)
    "x"  # delivery_rate_app_limited:1, fastopen_client_fail:2
    "IIII"  # rto, ato, snd_mss, rcv_mss
    "IIII4x"  # unacked, sacked, lost, retrans; fackets (unused since 4.15)
    "16x"  # last_data_sent, last_ack_sent, last_data_recv, last_ack_recv (ms since: volatile)
    "IIIIIIII"  # pmtu, rcv_ssthresh, rtt, rttvar, snd_ssthresh, snd_cwnd, advmss, reordering
    "II"  # rcv_rtt, rcv_space
    "I"  # total_retrans                                   (104: the Linux 2.6 struct ends here)
    "Q8x"  # pacing_rate; max_pacing_rate                  (3.15)
    "QQ"  # bytes_acked, bytes_received                    (4.1)
    "II"  # segs_out, segs_in                              (4.2)
    "IIII"  # notsent_bytes, min_rtt, data_segs_in, data_segs_out (4.6)
    "Q"  # delivery_rate                                   (4.9)
    "Q16x"  # busy_time; rwnd_limited, sndbuf_limited     (4.10)
    "8x"  # delivered, delivered_ce                        (4.18)
    "QQ"  # bytes_sent, bytes_retrans                      (4.19)
)
TCP_INFO_MIN = 104
# Where each optional TcpInfo field ends in the struct: shorter structs (older kernels) lack it.
_OPTIONAL_ENDS = (
    ("pacing_rate", 112),
    ("bytes_acked", 128),
    ("bytes_received", 136),
    ("segs_out", 140),
    ("segs_in", 144),
    ("notsent_bytes", 148),
    ("min_rtt_us", 152),
    ("data_segs_in", 156),
    ("data_segs_out", 160),
    ("delivery_rate", 168),
    ("busy_time_us", 176),
    ("bytes_sent", 208),
    ("bytes_retrans", 216),
)
# GCC packs bitfields from the low bits on little-endian machines and from the high bits on
# big-endian ones: tcpi_snd_wscale is the first field declared.
_LITTLE = sys.byteorder == "little"
_SKMEMINFO_MIN = 8 * 4  # SK_MEMINFO_RMEM_ALLOC .. SK_MEMINFO_BACKLOG, linux/sock_diag.h
_U32X8 = struct.Struct("=8I")
_U32X9 = struct.Struct("=9I")


def fast_constructor(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen, slotted dataclass that sets the slots directly.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once per field, which
    dominates parsing at 100,000 sockets (5.4 µs for a TcpInfo here, 2.6 µs this way). The
    result is the same object: every init field set, then ``__post_init__`` if the class has
    one. Defaults are honoured; a field with a ``default_factory`` is refused so that a model
    change is noticed at import time instead of producing wrong records.
    """
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, body = [], ["    self = _new(_cls)"]
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not item.init:
            continue
        if item.default_factory is not dataclasses.MISSING:
            raise TypeError(f"fast_constructor: {cls.__name__}.{item.name} has a default_factory")
        namespace[f"_set_{item.name}"] = getattr(cls, item.name).__set__
        if item.default is dataclasses.MISSING:
            params.append(item.name)
        else:
            namespace[f"_default_{item.name}"] = item.default
            params.append(f"{item.name}=_default_{item.name}")
        body.append(f"    _set_{item.name}(self, {item.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def make({', '.join(params)}):\n" + "\n".join(body) + "\n    return self\n"
    exec(source, namespace)
    make: Callable[..., T] = namespace["make"]
    make.__doc__ = f"Build a {cls.__name__} like its constructor, positionally and faster."
    return make


_make_tcp_info = TcpInfo  # not slotted (see its docstring), and built only for old kernels
_make_meminfo = fast_constructor(MemInfo)


def parse_tcp_info(data: memoryview | bytes) -> TcpInfo | None:
    """``INET_DIAG_INFO`` payload -> TcpInfo; fields the kernel's struct lacks are None.

    Longer structs (newer kernels) are read as far as we know them. None when shorter than
    the Linux 2.6 struct, which has everything a row needs.
    """
    size = len(data)
    if size >= _TCP_INFO.size:
        return _tcp_info(_TCP_INFO.unpack_from(data))
    if size < TCP_INFO_MIN:
        return None
    padded = bytes(data) + bytes(_TCP_INFO.size - size)
    info = _tcp_info(_TCP_INFO.unpack_from(padded))
    missing = {name: None for name, end in _OPTIONAL_ENDS if end > size}
    return dataclasses.replace(info, **missing)


def _tcp_info(v: tuple[int, ...]) -> TcpInfo:
    wscale = v[5]
    snd, rcv = (wscale & 0xF, wscale >> 4) if _LITTLE else (wscale >> 4, wscale & 0xF)
    return _make_tcp_info(v[0], v[1], v[2], v[3], v[4], snd, rcv, *v[6:])


def parse_meminfo(data: memoryview | bytes) -> MemInfo | None:
    """``INET_DIAG_SKMEMINFO`` / ``UNIX_DIAG_MEMINFO``: an array of u32 (linux/sock_diag.h);
    ``drops`` arrived in Linux 4.x and is None before."""
    size = len(data)
    if size >= _U32X9.size:
        return _make_meminfo(*_U32X9.unpack_from(data))
    if size >= _SKMEMINFO_MIN:
        return _make_meminfo(*_U32X8.unpack_from(data), None)
    return None


# ------------------------------------------------------------------------ packed tcp_info

# Where each TcpInfo field sits in struct tcp_info (linux/tcp.h): (name, struct code, offset).
# The same layout as _TCP_INFO above, by offset; a test checks both read the same values.
_FIELD_OFFSETS: tuple[tuple[str, str, int], ...] = (
    ("ca_state", "B", 1), ("retransmits", "B", 2), ("probes", "B", 3), ("backoff", "B", 4),
    ("options", "B", 5), ("rto_us", "I", 8), ("ato_us", "I", 12), ("snd_mss", "I", 16),
    ("rcv_mss", "I", 20), ("unacked", "I", 24), ("sacked", "I", 28), ("lost", "I", 32),
    ("retrans", "I", 36), ("pmtu", "I", 60), ("rcv_ssthresh", "I", 64), ("rtt_us", "I", 68),
    ("rttvar_us", "I", 72), ("snd_ssthresh", "I", 76), ("snd_cwnd", "I", 80),
    ("advmss", "I", 84), ("reordering", "I", 88), ("rcv_rtt_us", "I", 92),
    ("rcv_space", "I", 96), ("total_retrans", "I", 100), ("pacing_rate", "Q", 104),
    ("bytes_acked", "Q", 120), ("bytes_received", "Q", 128), ("segs_out", "I", 136),
    ("segs_in", "I", 140), ("notsent_bytes", "I", 144), ("min_rtt_us", "I", 148),
    ("data_segs_in", "I", 152), ("data_segs_out", "I", 156), ("delivery_rate", "Q", 160),
    ("busy_time_us", "Q", 168), ("bytes_sent", "Q", 200), ("bytes_retrans", "Q", 208),
)  # fmt: skip
_WSCALE_OFFSET = 6
#: A packed record keeps tcp_info bytes [0, PACKED_MIN): the struct up to bytes_retrans (Linux
#: 4.19); shorter ones are parsed.
PACKED_MIN = _TCP_INFO.size
#: Bytes [FOLD_START, FOLD_END) of tcp_info are the four tcpi_last_* "ms since" fields: the model
#: does not read them, and they change on every read of an idle socket. Before a record's bytes
#: are kept or compared, the reader overwrites them with the inet_diag_msg fields the record
#: carries and tcp_info does not (queues, uid, inode: FOLDED_MSG_FIELDS), so that comparing one
#: bytes object tells whether a socket changed.
FOLD_START, FOLD_END = 44, 60
#: Where those fields sit in struct inet_diag_msg (linux/inet_diag.h): idiag_rqueue, idiag_wqueue,
#: idiag_uid, idiag_inode, 16 bytes from offset 56.
FOLDED_MSG_FIELDS = (56, 72)
#: Fields most likely to differ between two readings of a socket, compared first.
_VOLATILE_FIRST = ("bytes_acked", "bytes_received", "segs_out", "segs_in", "data_segs_out",
                   "data_segs_in", "bytes_sent", "busy_time_us", "rtt_us", "rttvar_us")  # fmt: skip
assert FOLDED_MSG_FIELDS[1] - FOLDED_MSG_FIELDS[0] == FOLD_END - FOLD_START
assert all(
    offset + struct.calcsize(code) <= FOLD_START or offset >= FOLD_END
    for _, code, offset in _FIELD_OFFSETS
)


class PackedTcpInfo(TcpInfo):
    """A :class:`TcpInfo` that keeps the kernel's bytes and reads each field when asked.

    An eager TcpInfo is ~850 bytes or more (39 fields, most holding an int object of its own)
    and costs ~3.5 µs to build; this one holds the bytes the reader keeps anyway to tell
    whether a socket changed (``raw``: tcp_info bytes ``[0, PACKED_MIN)`` with the message's
    fields folded in, see FOLD_START; ``at``: where tcp_info starts in the message), costs
    ~0.3 µs to build, and each field read is one ``unpack_from`` (~0.15 µs). Most records are
    never read past the few fields a row or a rate needs.

    It is a TcpInfo in every way callers use: ``isinstance``, ``dataclasses.fields`` and
    ``asdict``, ``==`` and ``hash`` with eager TcpInfo records, ``repr``; copies, pickles and
    ``dataclasses.replace`` give an eager TcpInfo.
    """

    __slots__ = ("_at", "_raw")

    def __new__(cls, *args: object, **kwargs: object) -> TcpInfo:  # type: ignore[misc]
        # Only copies and dataclasses.replace() call the class: they get a plain record.
        return TcpInfo(*args, **kwargs)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TcpInfo):
            return NotImplemented
        if isinstance(other, PackedTcpInfo) and self._raw == other._raw:
            return True
        for get in _VOLATILE_GETTERS:
            if get(self) != get(other):
                return False
        return _all_values(self) == _all_values(other)

    def __hash__(self) -> int:
        return hash(_all_values(self))

    def __repr__(self) -> str:
        values = ", ".join(f"{f}={v!r}" for f, v in zip(_NAMES, _all_values(self), strict=True))
        return f"TcpInfo({values})"


def _install_fields() -> None:
    """One read-only property per field, read from ``raw`` at the field's offset."""
    for name, code, offset in _FIELD_OFFSETS:
        unpack = struct.Struct("=" + code).unpack_from

        def get(self: PackedTcpInfo, _u=unpack, _o=offset) -> int:  # type: ignore[no-untyped-def]
            return _u(self._raw, _o)[0]

        setattr(PackedTcpInfo, name, property(get, doc=f"tcpi_{name}, read from the bytes"))

    def wscale(self: PackedTcpInfo, high: bool) -> int:
        byte = self._raw[_WSCALE_OFFSET]
        return byte >> 4 if high else byte & 0xF

    # snd_wscale is the bitfield declared first: the low nibble on little-endian machines.
    PackedTcpInfo.snd_wscale = property(lambda self: wscale(self, not _LITTLE))  # type: ignore[assignment]
    PackedTcpInfo.rcv_wscale = property(lambda self: wscale(self, _LITTLE))  # type: ignore[assignment]


_install_fields()
_NAMES = tuple(f.name for f in dataclasses.fields(TcpInfo))
_all_values = operator.attrgetter(*_NAMES)
_VOLATILE_GETTERS = tuple(operator.attrgetter(name) for name in _VOLATILE_FIRST)
_new_packed = object.__new__
_set_at, _set_raw = (
    PackedTcpInfo._at.__set__,  # type: ignore[attr-defined]
    PackedTcpInfo._raw.__set__,  # type: ignore[attr-defined]
)


def packed_tcp_info(raw: bytes, at: int) -> PackedTcpInfo:
    """A TcpInfo over ``raw`` (tcp_info bytes 0..PACKED_MIN, FOLD_START..FOLD_END unread),
    found ``at`` bytes into its message."""
    info = _new_packed(PackedTcpInfo)
    _set_raw(info, raw)
    _set_at(info, at)
    return info


class AttrLayout:
    """Finds the INET_DIAG_INFO and INET_DIAG_SKMEMINFO payloads of an inet_diag message.

    The kernel writes attributes in a fixed order, so in one dump they nearly always sit where
    they sat in the previous message. Checking that guess (type, the length this kernel uses,
    and for tcp_info its first byte, ``tcpi_state``, against the message's state) costs one
    unpack instead of a walk over every attribute; any mismatch walks and learns again.
    """

    __slots__ = ("info_len", "info_rel", "mem_len", "mem_rel")

    def __init__(self) -> None:
        self.info_rel = self.info_len = self.mem_rel = self.mem_len = 0

    def find(
        self, view: memoryview, off: int, length: int, want_info: bool
    ) -> tuple[int, int, int, int]:
        """(info start, info end, mem start, mem end) as offsets in ``view``; 0, 0 if absent."""
        unpack = NLATTR.unpack_from
        rel = self.mem_rel
        if rel and rel + self.mem_len <= length and unpack(view, off + rel) == (
            self.mem_len, INET_DIAG_SKMEMINFO
        ):  # fmt: skip
            if not want_info:
                return 0, 0, off + rel + 4, off + rel + self.mem_len
            info = self.info_rel
            if (
                info
                and info + self.info_len <= length
                and unpack(view, off + info) == (self.info_len, INET_DIAG_INFO)
                and view[off + info + 4]
                == view[off + NLMSG_HEADER + 1]  # tcpi_state == idiag_state
            ):
                return (
                    off + info + 4,
                    off + info + self.info_len,
                    off + rel + 4,
                    off + rel + self.mem_len,
                )
        return self._walk(view, off, length)

    def _walk(self, view: memoryview, off: int, length: int) -> tuple[int, int, int, int]:
        spans = [0, 0, 0, 0]
        rel = INET_MSG_END
        while rel + 4 <= length:
            alen, atype = NLATTR.unpack_from(view, off + rel)
            if alen < 4 or rel + alen > length:
                break
            if atype == INET_DIAG_INFO:
                self.info_rel, self.info_len = rel, alen
                spans[0:2] = off + rel + 4, off + rel + alen
            elif atype == INET_DIAG_SKMEMINFO:
                self.mem_rel, self.mem_len = rel, alen
                spans[2:4] = off + rel + 4, off + rel + alen
            rel += (alen + 3) & ~3
        return spans[0], spans[1], spans[2], spans[3]
