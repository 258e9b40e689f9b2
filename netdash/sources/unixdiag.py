"""UNIX sockets in sock_diag: the request and the parser of one ``unix_diag_msg``.

Layouts from linux/unix_diag.h. The dump itself and the reuse of unchanged records live in
:class:`netdash.sources.sockdiag.SockDiag`, shared with TCP and UDP.
"""

from __future__ import annotations

import socket
import struct

from netdash.model import DATAGRAM_STATES, TCP_STATES, Socket
from netdash.sources.netlink import NLM_F_DUMP, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY
from netdash.sources.tcpinfo import NLATTR, fast_constructor
from netdash.textsafe import decode

UDIAG_SHOW_NAME, UDIAG_SHOW_PEER, UDIAG_SHOW_RQLEN, UDIAG_SHOW_UID = 0x01, 0x04, 0x10, 0x40
UNIX_DIAG_NAME, UNIX_DIAG_PEER, UNIX_DIAG_RQLEN, UNIX_DIAG_UID = 0, 2, 4, 7
UNIX_TYPES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram", 5: "seqpacket"}
ALL_STATES = 0xFFFFFFFF

# nlmsghdr + struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
_UNIX_REQUEST = struct.Struct("=IHHII BBxx IIIII")
# nlmsghdr + struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
_UNIX_MSG = struct.Struct("=IHHII BBBx I II")
UNIX_MSG_END = _UNIX_MSG.size  # 32: attributes start here
# What the reuse loop reads first: nlmsghdr without nlmsg_pid, then udiag_cookie as one key.
UNIX_HEAD = struct.Struct("=IHHI4x8xQ")
_U32 = struct.Struct("=I")
_U32X2 = struct.Struct("=II")
_STATE_NAMES = tuple(
    DATAGRAM_STATES.get(n) or TCP_STATES.get(n, f"UNKNOWN({n})") for n in range(256)
)
_make_socket = fast_constructor(Socket)


def unix_request(seq: int) -> bytes:
    """A dump of every UNIX socket with name, peer, queues and owner uid."""
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID
    return _UNIX_REQUEST.pack(
        _UNIX_REQUEST.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
        socket.AF_UNIX, 0, ALL_STATES, 0, show, 0, 0,
    )  # fmt: skip


def parse_unix_message(view: memoryview, off: int, length: int) -> Socket:
    """The Socket of the ``unix_diag_msg`` at ``view[off:off + length]`` (nlmsghdr included)."""
    _, _, _, _, _, _, kind, state, inode, cookie_lo, cookie_hi = _UNIX_MSG.unpack_from(view, off)
    name = peer = uid = None
    rqueue = wqueue = 0
    start, end = off + UNIX_MSG_END, off + length
    while start + 4 <= end:
        alen, atype = NLATTR.unpack_from(view, start)
        if alen < 4:
            break
        if atype == UNIX_DIAG_NAME:
            name = unix_name(bytes(view[start + 4 : start + alen]))
        elif atype == UNIX_DIAG_PEER:
            peer = _U32.unpack_from(view, start + 4)[0]
        elif atype == UNIX_DIAG_RQLEN:
            rqueue, wqueue = _U32X2.unpack_from(view, start + 4)
        elif atype == UNIX_DIAG_UID:
            uid = _U32.unpack_from(view, start + 4)[0]
        start += (alen + 3) & ~3
    return _make_socket(
        "unix", "unix", _STATE_NAMES[state], name, None, None, None, rqueue, wqueue,
        inode, uid, None, UNIX_TYPES.get(kind, str(kind)), peer,
        cookie_lo | (cookie_hi << 32), None, None, None,
    )  # fmt: skip


def unix_name(raw: bytes) -> str | None:
    """``sun_path`` as ss shows it: abstract names (leading NUL) as ``@name`` with every NUL
    shown as ``@``; filesystem paths up to their terminating NUL; unnamed sockets None."""
    if not raw:
        return None
    if raw[0] == 0:
        return decode(b"@" + raw[1:].replace(b"\0", b"@"))
    return decode(raw.split(b"\0", 1)[0])
