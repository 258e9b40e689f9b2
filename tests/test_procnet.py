"""The /proc/net parsers on tables recorded from this kind of machine.

tests/fixtures/procnet/ holds /proc/thread-self/net/{tcp,tcp6,udp,udp6,unix} read inside a lab
namespace, and ``ss.txt``: ``ss -tanuxeo`` of the same namespace at the same moment, the oracle.
The lab: TCP listeners on 127.0.0.1:8080, :8081 (backlog 5, two connections waiting), [::1]:8443
and dual-stack *:9090; an established pair with 1000 unread bytes and keepalive; a TIME_WAIT;
an IPv4 client of the dual-stack listener (an IPv4-mapped peer); UDP bound, connected (one unread
datagram) and on ::1; UNIX: a path listener with a connected pair, a path with spaces (dgram),
an abstract name, an unnamed socketpair.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from netdash.model import Socket, Timer
from netdash.sources.errors import SourceUnavailable
from netdash.sources.procnet import (
    decode_address,
    parse_inet,
    parse_unix,
    read_proc_net,
)

FIXTURES = Path(__file__).parent / "fixtures" / "procnet"
SS_STATES = {"ESTAB": "ESTABLISHED", "TIME-WAIT": "TIME_WAIT"}


def fixture_sockets(proto: str) -> list[Socket]:
    return read_proc_net(proto, FIXTURES)


def ss_rows() -> list[list[str]]:
    return [line.split() for line in (FIXTURES / "ss.txt").read_text().splitlines()[1:]]


def split_ss(endpoint: str) -> tuple[str, int | None]:
    addr, _, port = endpoint.rpartition(":")
    addr = addr.strip("[]")
    return ("::" if addr == "*" else addr), (None if port == "*" else int(port))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0100007F", "127.0.0.1"),
        ("00000000", "0.0.0.0"),
        ("0101A8C0", "192.168.1.1"),
        ("00000000000000000000000001000000", "::1"),
        ("00000000000000000000000000000000", "::"),
        ("0000000000000000FFFF00000100007F", "::ffff:127.0.0.1"),
        ("B80D0120000000000000000001000000", "2001:db8::1"),
    ],
)
def test_decode_address_undoes_the_native_word_order(text: str, expected: str) -> None:
    assert decode_address(text) == expected


def test_inet_tables_agree_with_ss_recorded_at_the_same_moment() -> None:
    ours = {
        (s.proto, s.local_addr, s.local_port, s.remote_addr, s.remote_port): s
        for s in fixture_sockets("tcp") + fixture_sockets("udp")
    }
    compared = 0
    for netid, state, recv_q, send_q, local, peer, *rest in ss_rows():
        if netid not in ("tcp", "udp"):
            continue
        laddr, lport = split_ss(local)
        raddr, rport = split_ss(peer)
        sock = ours[(netid, laddr, lport, None if rport is None else raddr, rport)]
        assert sock.state == SS_STATES.get(state, state)
        assert sock.recv_q == int(recv_q)
        # /proc has no backlog: a LISTEN socket's tx_queue is 0 where netlink says 5 or 128.
        assert sock.send_q == (0 if state == "LISTEN" else int(send_q))
        inode = next(int(x[4:]) for x in rest if x.startswith("ino:"))
        assert sock.inode == inode and sock.uid == 0
        compared += 1
    assert compared == len(ours) == 18


def test_inet_details_from_the_tables() -> None:
    tcp = {(s.local_port, s.remote_port): s for s in fixture_sockets("tcp")}
    keepalive = tcp[(47028, 8080)].timer
    assert keepalive is not None and keepalive.name == "keepalive"
    assert 7_100_000 < keepalive.expires_ms <= 7_200_000  # 0xAFC59 ticks at USER_HZ
    time_wait = tcp[(47032, 8080)]
    assert (time_wait.state, time_wait.inode) == ("TIME_WAIT", 0)
    assert time_wait.timer == Timer("timewait", 0x174E * 10, 0)
    assert tcp[(8080, None)].family == "inet" and tcp[(8080, None)].remote_addr is None
    assert tcp[(8443, None)].local_addr == "::1" and tcp[(8443, None)].family == "inet6"
    assert tcp[(9090, None)].local_addr == "::"
    assert tcp[(9090, 43728)].local_addr == "::ffff:127.0.0.1"
    udp = {s.local_port: s for s in fixture_sockets("udp")}
    assert (udp[5353].state, udp[5353].recv_q, udp[5353].remote_port) == ("UNCONN", 832, None)
    assert (udp[36473].state, udp[36473].remote_addr) == ("ESTABLISHED", "127.0.0.1")
    assert udp[5354].local_addr == "::1"


def test_unix_table_agrees_with_ss() -> None:
    ours = {s.inode: s for s in fixture_sockets("unix")}
    rows = [r for r in ss_rows() if r[0].startswith("u_")]
    assert len(rows) == len(ours) == 7
    for row in rows:
        netid, state = row[0], row[1]
        # A path may contain spaces: count back from "<->" (peer inode, peer name, inode).
        end = row.index("<->")
        local, inode = " ".join(row[4 : end - 3]), int(row[end - 3])
        sock = ours[inode]
        assert sock.state == SS_STATES.get(state, state)
        assert (sock.local_addr or "*") == local
        assert sock.sock_type == {"u_str": "stream", "u_dgr": "dgram"}[netid]
    assert ours[668010].local_addr == "@netdash-abstract"
    assert ours[668011].local_addr == "/tmp/netdash fixture dgram.sock"
    assert ours[668008].local_addr is None


def test_unix_states_names_and_undecodable_paths() -> None:
    header = b"Num       RefCount Protocol Flags    Type St Inode Path\n"
    lines = [
        b"0000000000000000: 00000002 00000000 00010000 0005 01 11 @a@b",  # seqpacket listener
        b"0000000000000000: 00000002 00000000 00000000 0001 02 12 /run/x",  # not yet accepted
        b"0000000000000000: 00000002 00000000 00000000 0001 04 13",  # orphan, closing
        b"0000000000000000: 00000002 00000000 00000000 0002 01 14 /tmp/\xff\x1b[31m",
    ]
    socks = {s.inode: s for s in parse_unix(header + b"\n".join(lines) + b"\n")}
    assert (socks[11].state, socks[11].sock_type, socks[11].local_addr) == (
        "LISTEN", "seqpacket", "@a@b"
    )  # fmt: skip
    assert socks[12].state == "ESTABLISHED"
    assert socks[13].state == "UNCONN" and socks[13].local_addr is None
    assert socks[14].local_addr == "/tmp/\\xff\x1b[31m"  # decoded; the UI escapes controls


def test_short_and_blank_lines_are_skipped() -> None:
    text = (FIXTURES / "udp").read_text() + "\n   \n  99: garbage\n"
    assert len(parse_inet(text, "udp", "inet")) == 2


def test_missing_tables(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text((FIXTURES / "tcp").read_text())
    assert len(read_proc_net("tcp", tmp_path)) == 10  # no tcp6: IPv6 disabled is not an error
    with pytest.raises(SourceUnavailable, match="does not exist"):
        read_proc_net("udp", tmp_path)


def test_the_live_tables_of_this_thread_parse() -> None:
    """The parser on this machine's own tables: a socket we open is found with its port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        found = [s for s in read_proc_net("tcp") if s.local_port == port]
    assert [(s.state, s.local_addr) for s in found] == [("LISTEN", "127.0.0.1")]
