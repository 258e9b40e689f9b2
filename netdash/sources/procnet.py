"""Sockets from ``/proc/net/{tcp,tcp6,udp,udp6,unix}``: the fallback when sock_diag is missing.

The text tables carry less than netlink: no tcp_info, no socket memory, no bound device, no
cookie, a LISTEN socket's Send-Q is 0 instead of its backlog, and UNIX sockets come without
peer, queues or uid. :mod:`netdash.sources.sockets` reports those gaps to the user.

Parsers are pure functions over the file contents; :func:`read_proc_net` does the I/O. Its
default root, ``/proc/thread-self/net``, shows the network namespace of the *calling thread*;
``/proc/net`` is ``/proc/self/net`` and shows the main thread's, whatever ``setns`` did.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from netdash.model import DATAGRAM_STATES, TCP_STATES, TIMER_NAMES, Socket, Timer
from netdash.sources.errors import PermissionNeeded, SourceUnavailable
from netdash.textsafe import decode

DEFAULT_NET_ROOT = Path("/proc/thread-self/net")
INET_FILES = (("tcp", "tcp", "inet"), ("tcp6", "tcp", "inet6"), ("udp", "udp", "inet"),
              ("udp6", "udp", "inet6"))  # fmt: skip

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # tm->when is in USER_HZ ticks (clock_t)
_SO_ACCEPTCON = 1 << 16  # include/linux/net.h: set in Flags for listening UNIX sockets
_SS_CONNECTING, _SS_CONNECTED = 2, 3  # socket_state, include/uapi/linux/net.h
_UNIX_TYPES = {1: "stream", 2: "dgram", 5: "seqpacket"}


def decode_address(text: str) -> str:
    """The ``ADDR`` of an ``ADDR:PORT`` column of /proc/net/tcp* and udp* as RFC 5952 text.

    The kernel prints the address as 32-bit words with ``%08X``, each word being the *native*
    integer read from the network-order bytes. On a little-endian machine each group of four
    bytes therefore appears reversed::

        "0100007F"  -> u32 0x0100007F -> native bytes 7f 00 00 01 -> "127.0.0.1"
        "0000000000000000FFFF00000100007F"
                    -> words 0x00000000 0x00000000 0xFFFF0000 0x0100007F
                    -> bytes 00*8 00 00 ff ff 7f 00 00 01 -> "::ffff:127.0.0.1"

    Packing the word values back in native order undoes it on any endianness. The text is the
    one libc's inet_ntop gives, as ss prints it.
    """
    words = [int(text[i : i + 8], 16) for i in range(0, len(text), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return socket.inet_ntop(socket.AF_INET if len(words) == 1 else socket.AF_INET6, raw)


def parse_inet(text: str, proto: str, family: str) -> list[Socket]:
    """Parse /proc/net/tcp, tcp6, udp or udp6 (``proto`` "tcp"/"udp", ``family`` "inet"/"inet6").

    Columns (net/ipv4/tcp_ipv4.c get_tcp4_sock): sl, local ADDR:PORT, remote ADDR:PORT, st,
    tx_queue:rx_queue, tr:tm->when, retrnsmt, uid, timeout (probes), inode, ...
    """
    states = TCP_STATES if proto == "tcp" else {**TCP_STATES, **DATAGRAM_STATES}
    sockets = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        local_addr, local_port = _split_endpoint(cols[1])
        remote: str | None = None
        rport: int | None = None
        if cols[2].strip("0:"):  # not the all-zero "00000000:0000" of an unconnected socket
            remote, rport = _split_endpoint(cols[2])
        state = int(cols[3], 16)
        tx_queue, rx_queue = (int(v, 16) for v in cols[4].split(":"))
        sockets.append(
            Socket(
                proto=proto,
                family=family,
                state=states.get(state, f"UNKNOWN({state})"),
                local_addr=local_addr,
                local_port=local_port,
                remote_addr=remote,
                remote_port=rport,
                recv_q=rx_queue,
                send_q=tx_queue,
                inode=int(cols[9]),
                uid=int(cols[7]),
                timer=_timer(cols[5], retransmits=int(cols[6], 16), probes=int(cols[8])),
            )
        )
    return sockets


def _split_endpoint(column: str) -> tuple[str, int]:
    addr, _, port = column.partition(":")
    return decode_address(addr), int(port, 16)


def _timer(column: str, *, retransmits: int, probes: int) -> Timer | None:
    """``tr:tm->when`` -> Timer. As in inet_diag, the count is the retransmits for the
    retransmit timer and the probes sent for keepalive (2) and zero-window probe (4) timers."""
    kind_text, _, when = column.partition(":")
    kind = int(kind_text, 16)
    if not kind:
        return None
    expires_ms = int(when, 16) * 1000 // _CLOCK_TICKS
    count = probes if kind in (2, 4) else retransmits if kind == 1 else 0
    return Timer(TIMER_NAMES.get(kind, "unknown"), expires_ms, count)


def parse_unix(data: bytes) -> list[Socket]:
    """Parse /proc/net/unix (net/unix/af_unix.c unix_seq_show).

    Columns: Num, RefCount, Protocol, Flags, Type, St, Inode, [Path]. ``St`` is the socket
    state (SS_*), not the TCP-style one sock_diag reports: SS_CONNECTED, and SS_CONNECTING for
    a connection not yet accepted, are ESTABLISHED; ``__SO_ACCEPTCON`` in Flags is LISTEN.
    Abstract names are already shown as ``@name`` (every NUL printed as ``@``).
    """
    sockets = []
    for line in data.split(b"\n")[1:]:
        cols = line.split(maxsplit=7)
        if len(cols) < 7:
            continue
        flags, kind, st = int(cols[3], 16), int(cols[4], 16), int(cols[5], 16)
        if flags & _SO_ACCEPTCON:
            state = "LISTEN"
        elif st in (_SS_CONNECTED, _SS_CONNECTING):
            state = "ESTABLISHED"
        else:
            state = "UNCONN"
        sockets.append(
            Socket(
                proto="unix",
                family="unix",
                state=state,
                local_addr=decode(cols[7]) if len(cols) > 7 else None,
                local_port=None,
                remote_addr=None,
                remote_port=None,
                recv_q=0,
                send_q=0,
                inode=int(cols[6]),
                sock_type=_UNIX_TYPES.get(kind, str(kind)),
            )
        )
    return sockets


def read_proc_net(proto: str, net_root: Path = DEFAULT_NET_ROOT) -> list[Socket]:
    """All sockets of ``proto`` ("tcp", "udp" or "unix") from the tables under ``net_root``.

    A missing IPv6 table (IPv6 disabled) is not an error; a missing IPv4 or UNIX table is.
    """
    if proto == "unix":
        return parse_unix(_read(net_root / "unix"))
    sockets: list[Socket] = []
    for name, file_proto, family in INET_FILES:
        if file_proto != proto:
            continue
        path = net_root / name
        if family == "inet6" and not path.exists():
            continue
        sockets.extend(parse_inet(decode(_read(path)), proto, family))
    return sockets


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise SourceUnavailable(f"{path} does not exist on this system") from err
    except PermissionError as err:
        raise PermissionNeeded(f"reading {path} is not permitted") from err
