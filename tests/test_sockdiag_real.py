"""The sockets source against the real kernel, with `ss` as the oracle.

A module-scoped lab namespace holds sockets in known states, created inside it with
``netns.entered()`` and then used from the main thread (a socket stays in the namespace it was
created in). ``SocketReader(netns=...).read()`` must agree with ``ip netns exec NS ss`` socket
for socket, and with what the test itself knows (inodes from fstat, ports from getsockname).
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import errno
import gc
import os
import pickle
import re
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netdash.model import Socket, TcpInfo
from netdash.netns import NetnsTarget, entered, resolve_netns
from netdash.sources import sockdiag
from netdash.sources.sockdiag import SockDiag, SockDiagFailed
from netdash.sources.sockets import (
    GAP_BACKLOG,
    GAP_INET,
    GAP_TCP_INFO,
    GAP_UNIX,
    SocketReader,
    gc_paused,
)
from netdash.sources.tcpinfo import (
    FOLD_END,
    FOLD_START,
    PACKED_MIN,
    AttrLayout,
    PackedTcpInfo,
    fast_constructor,
    packed_tcp_info,
    parse_meminfo,
    parse_tcp_info,
)

NOBODY = 65534
TCP_INFO = 11  # netinet/tcp.h


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def port(sock: socket.socket) -> int:
    return sock.getsockname()[1]


@dataclass
class Lab:
    """The namespace, its sockets by role, and facts about them the test knows first-hand."""

    name: str
    target: NetnsTarget
    socks: dict[str, socket.socket] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)

    def inode(self, role: str) -> int:
        return inode(self.socks[role])


def _tcp_pair(listener: socket.socket, family: int = socket.AF_INET) -> tuple[socket.socket, ...]:
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(listener.getsockname()[:2])
    server, _ = listener.accept()
    return client, server


def _as_nobody(family: int, kind: int) -> socket.socket:
    """A socket owned by uid 65534: the kernel takes a socket's uid from the creating thread's
    fsuid, and setfsuid() changes only the calling thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setfsuid(NOBODY)
    try:
        return socket.socket(family, kind)
    finally:
        libc.setfsuid(0)


def _build_lab(lab: Lab, tmp: Path) -> None:
    s, f = lab.socks, lab.facts
    s["listen"] = socket.create_server(("127.0.0.1", 0), backlog=16)
    s["est_client"], s["est_server"] = _tcp_pair(s["listen"])
    s["est_client"].setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s["est_client"].sendall(b"x" * 1000)  # never read: Recv-Q 1000 on the server side
    s["cw_client"], s["cw_server"] = _tcp_pair(s["listen"])
    s["tw_client"], s["tw_server"] = _tcp_pair(s["listen"])
    s["queue"] = socket.create_server(("127.0.0.1", 0), backlog=5)
    s["waiting1"] = socket.create_connection(s["queue"].getsockname())
    s["waiting2"] = socket.create_connection(s["queue"].getsockname())
    s["udp"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s["udp"].bind(("127.0.0.1", 0))
    s["udp_conn"] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s["udp_conn"].connect(s["udp"].getsockname())
    s["udp_conn"].send(b"datagram")  # never read: Recv-Q > 0 on "udp"
    s["listen6"] = socket.create_server(("::1", 0), family=socket.AF_INET6)
    s["est6_client"], s["est6_server"] = _tcp_pair(s["listen6"], socket.AF_INET6)
    s["udp6"] = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s["udp6"].bind(("::1", 0))
    s["dual"] = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    s["mapped_client"] = socket.create_connection(("127.0.0.1", port(s["dual"])))
    s["mapped_server"], _ = s["dual"].accept()
    s["on_lo"] = socket.socket()
    s["on_lo"].setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
    s["on_lo"].bind(("127.0.0.1", 0))
    s["on_lo"].listen()
    s["bound_only"] = socket.socket()  # bound, never listened on: ss -a does not list it
    s["bound_only"].bind(("127.0.0.1", 0))
    s["nobody"] = _as_nobody(socket.AF_INET, socket.SOCK_DGRAM)
    s["nobody"].bind(("127.0.0.1", 0))
    # UNIX: a stream listener with a connected pair, a datagram socket, an abstract name.
    f["ux_path"] = str(tmp / "stream.sock")
    s["ux_listen"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s["ux_listen"].bind(f["ux_path"])
    s["ux_listen"].listen(7)
    s["ux_client"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s["ux_client"].connect(f["ux_path"])
    s["ux_server"], _ = s["ux_listen"].accept()
    s["ux_client"].sendall(b"hello")  # never read: Recv-Q 5 on ux_server
    f["ux_dgram_path"] = str(tmp / "dgram.sock")
    s["ux_dgram"] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s["ux_dgram"].bind(f["ux_dgram_path"])
    f["abstract"] = f"netdash-test-{os.getpid()}"
    s["ux_abstract"] = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s["ux_abstract"].bind("\0" + str(f["abstract"]))
    s["ux_abstract"].listen()


def _settle(lab: Lab) -> None:
    """Drive the closing pairs into CLOSE_WAIT and TIME_WAIT, after the facts are recorded."""
    s, f = lab.socks, lab.facts
    f["cw_client_port"] = port(s["cw_client"])
    f["tw_client_port"] = port(s["tw_client"])
    s.pop("cw_client").close()  # the peer closed, cw_server did not: CLOSE_WAIT
    s.pop("tw_client").close()  # active close ...
    time.sleep(0.05)
    s.pop("tw_server").close()  # ... and the peer's FIN: tw_client's port goes to TIME_WAIT
    time.sleep(0.3)  # delayed ACKs and the last FIN are long done


@pytest.fixture(scope="module")
def lab(netns_module: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(netns_module, resolve_netns(netns_module))
    with entered(lab.target):
        _build_lab(lab, tmp_path_factory.mktemp("unix"))
    _settle(lab)
    yield lab
    for sock in lab.socks.values():
        sock.close()


# ------------------------------------------------------------------------ ss as the oracle


SS_STATES = {"ESTAB": "ESTABLISHED", "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2"}
_TIMER = re.compile(r"timer:\((\w+),([^,]*),(\d+)\)")


def ss_lines(ns: str, *args: str) -> list[str]:
    cmd = ["ip", "netns", "exec", ns, "ss", "-H", "-O", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=10
    ).stdout.splitlines()


def ss_endpoint(text: str) -> tuple[str | None, int | None, str | None]:
    """'127.0.0.1%lo:80' -> ('127.0.0.1', 80, 'lo'); '[::1]:80'; '*:80' (dual-stack ::)."""
    addr, _, port_text = text.rpartition(":")
    addr, _, device = addr.partition("%")
    addr = addr.strip("[]")
    if addr == "*":
        addr = "::"
    port_number = None if port_text == "*" else int(port_text)
    return addr, port_number, device or None


def ss_ms(text: str) -> int:
    """ss's print_ms_timer: '120min', '59sec', '1.500ms' (1 s 500 ms), '200ms'."""
    match = re.fullmatch(r"(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?", text)
    assert match, text
    minutes, secs, msecs = (int(g) if g else 0 for g in match.groups())
    return (minutes * 60 + secs) * 1000 + msecs


def ss_inet(ns: str) -> dict[tuple[object, ...], dict[str, object]]:
    table = {}
    for line in ss_lines(ns, "-tanu", "-e", "-i", "-o"):
        netid, state, recv_q, send_q, local, peer, *rest = line.split()
        extra = " ".join(rest)
        laddr, lport, device = ss_endpoint(local)
        raddr, rport, _ = ss_endpoint(peer)
        remote = None if rport is None else raddr
        row: dict[str, object] = {
            "state": SS_STATES.get(state, state.replace("-", "_")),
            "recv_q": int(recv_q),
            "send_q": int(send_q),
            "interface": device,
            "inode": int(_find(r"\bino:(\d+)", extra) or 0),
            "uid": int(_find(r"\buid:(\d+)", extra) or 0),
            "cookie": int(_find(r"\bsk:([0-9a-f]+)", extra) or "0", 16),
            "extra": extra,
        }
        timer = _TIMER.search(extra)
        if timer:
            row["timer"] = (timer.group(1), ss_ms(timer.group(2)), int(timer.group(3)))
        table[(netid, laddr, lport, remote, rport)] = row
    return table


def _find(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def ours_inet(read_sockets: tuple[Socket, ...]) -> dict[tuple[object, ...], Socket]:
    return {
        (s.proto, s.local_addr, s.local_port, s.remote_addr, s.remote_port): s
        for s in read_sockets
        if s.proto != "unix"
    }


@pytest.fixture(scope="module")
def read_now(lab: Lab) -> Iterator[tuple[tuple[Socket, ...], dict[tuple[object, ...], dict]]]:
    with SocketReader(lab.target) as reader:
        result = reader.read()
    yield result.sockets, ss_inet(lab.name)


def test_tcp_and_udp_match_ss_socket_for_socket(read_now, lab: Lab) -> None:
    sockets, ss = read_now
    ours = ours_inet(sockets)
    assert set(ours) == set(ss)
    assert len(ours) >= 20
    timers = tcp_infos = 0
    for key, row in ss.items():
        sock = ours[key]
        assert sock.state == row["state"], key
        assert (sock.recv_q, sock.send_q) == (row["recv_q"], row["send_q"]), key
        assert (sock.inode, sock.uid, sock.cookie) == (row["inode"], row["uid"], row["cookie"]), key
        assert sock.interface == row["interface"], key
        if "timer" in row:
            name, expires_ms, retrans = row["timer"]
            assert sock.timer is not None, key
            assert (sock.timer.name, sock.timer.retrans) == (name, retrans)
            assert abs(sock.timer.expires_ms - expires_ms) <= 2000 + sock.timer.expires_ms // 100
            timers += 1
        else:
            assert sock.timer is None, key
        if sock.proto == "tcp" and sock.tcp is not None and sock.state != "LISTEN":
            _compare_tcp_info(sock.tcp, str(row["extra"]), key)
            tcp_infos += 1
    assert timers >= 3 and tcp_infos >= 10  # keepalive, TIME_WAIT, FIN_WAIT2; the pairs


def _compare_tcp_info(info: TcpInfo, extra: str, key: object) -> None:
    rtt, rttvar = (float(v) for v in re.search(r"\brtt:([\d.]+)/([\d.]+)", extra).groups())  # type: ignore[union-attr]
    # Idle loopback sockets: nothing should move between the two reads; allow a little.
    assert abs(info.rtt_ms - rtt) <= 0.01 + rtt * 0.1, key
    assert abs(info.rttvar_ms - rttvar) <= 0.01 + rttvar * 0.1, key
    assert info.snd_cwnd == int(_find(r"\bcwnd:(\d+)", extra) or -1), key
    assert info.snd_mss == int(_find(r"(?<![a-z])mss:(\d+)", extra) or -1), key
    assert info.rto_us // 1000 == int(float(_find(r"\brto:([\d.]+)", extra) or -1)), key
    wscale = _find(r"\bwscale:(\d+,\d+)", extra)
    assert f"{info.snd_wscale},{info.rcv_wscale}" == wscale, key
    retrans = _find(r"\bretrans:(\d+)/(\d+)", extra)
    assert (retrans is None) == (info.retransmits == 0 and info.total_retrans == 0), key


def test_known_facts_of_the_lab(read_now, lab: Lab) -> None:
    """What the test itself set up, independent of ss."""
    sockets, _ = read_now
    by_inode = {s.inode: s for s in sockets if s.inode}
    s, f = lab.socks, lab.facts

    listen = by_inode[lab.inode("listen")]
    assert (listen.state, listen.local_addr, listen.remote_addr, listen.send_q) == (
        "LISTEN", "127.0.0.1", None, 16
    )  # fmt: skip
    server = by_inode[lab.inode("est_server")]
    assert (server.state, server.recv_q, server.remote_port) == (
        "ESTABLISHED", 1000, port(s["est_client"])
    )  # fmt: skip
    assert server.tcp is not None and server.tcp.bytes_received == 1000
    assert server.mem is not None and server.mem.rmem_alloc > 0
    client = by_inode[lab.inode("est_client")]
    assert client.timer is not None and client.timer.name == "keepalive"
    assert client.tcp is not None and client.tcp.bytes_acked == 1001  # 1000 + the SYN
    assert by_inode[lab.inode("cw_server")].state == "CLOSE_WAIT"
    queue = by_inode[lab.inode("queue")]
    assert (queue.state, queue.recv_q, queue.send_q) == ("LISTEN", 2, 5)

    by_port = {(x.proto, x.local_port): x for x in sockets if x.proto == "tcp" and not x.inode}
    time_wait = by_port[("tcp", f["tw_client_port"])]
    assert time_wait.state == "TIME_WAIT" and time_wait.timer is not None
    assert time_wait.timer.name == "timewait" and 0 < time_wait.timer.expires_ms <= 60_000
    assert time_wait.tcp is None  # the kernel keeps no tcp_info for a TIME_WAIT socket
    assert by_port[("tcp", f["cw_client_port"])].state == "FIN_WAIT2"

    udp = by_inode[lab.inode("udp")]
    assert (udp.proto, udp.state, udp.remote_addr, udp.remote_port) == ("udp", "UNCONN", None, None)
    assert udp.recv_q > 0 and udp.tcp is None and udp.mem is not None
    conn = by_inode[lab.inode("udp_conn")]
    assert (conn.state, conn.remote_addr, conn.remote_port) == (
        "ESTABLISHED", "127.0.0.1", port(s["udp"])
    )  # fmt: skip
    est6 = by_inode[lab.inode("est6_server")]
    assert (est6.family, est6.local_addr, est6.remote_addr) == ("inet6", "::1", "::1")
    assert by_inode[lab.inode("udp6")].local_addr == "::1"
    assert by_inode[lab.inode("dual")].local_addr == "::"
    mapped = by_inode[lab.inode("mapped_server")]
    assert (mapped.family, mapped.local_addr) == ("inet6", "::ffff:127.0.0.1")
    assert by_inode[lab.inode("on_lo")].interface == "lo"
    assert by_inode[lab.inode("nobody")].uid == NOBODY
    assert by_inode[lab.inode("listen")].uid == 0


def test_unix_sockets_match_ss_and_the_lab(lab: Lab) -> None:
    with SocketReader(lab.target) as reader:
        ours = {s.inode: s for s in reader.read(tcp_info=False).sockets if s.proto == "unix"}
    ss = {}
    for line in ss_lines(lab.name, "-xa"):
        netid, state, recv_q, send_q, local, ino, _peer, peer_ino, *_ = line.split()
        ss[int(ino)] = (netid, state, int(recv_q), int(send_q), local, int(peer_ino))
    s, f = lab.socks, lab.facts
    mine = [
        lab.inode(r) for r in ("ux_listen", "ux_client", "ux_server", "ux_dgram", "ux_abstract")
    ]
    for ino in mine:
        netid, state, recv_q, send_q, local, peer_ino = ss[ino]
        sock = ours[ino]
        assert sock.state == SS_STATES.get(state, state)
        assert (sock.recv_q, sock.send_q) == (recv_q, send_q)
        assert (sock.local_addr or "*") == local
        assert (sock.peer_inode or 0) == peer_ino
        assert sock.sock_type == {"u_str": "stream", "u_dgr": "dgram"}[netid]
        assert sock.uid == 0
    assert ours[lab.inode("ux_listen")].local_addr == f["ux_path"]
    assert ours[lab.inode("ux_listen")].send_q == 7  # the backlog, as ss -x shows it
    assert ours[lab.inode("ux_server")].recv_q == 5
    assert ours[lab.inode("ux_server")].peer_inode == lab.inode("ux_client")
    assert ours[lab.inode("ux_client")].local_addr is None
    assert ours[lab.inode("ux_abstract")].local_addr == "@" + str(f["abstract"])
    assert (ours[lab.inode("ux_dgram")].state, ours[lab.inode("ux_dgram")].sock_type) == (
        "UNCONN", "dgram"
    )  # fmt: skip
    assert s["ux_dgram"].getsockname() == f["ux_dgram_path"]


# ---------------------------------------------------------------------- the /proc fallback


def test_proc_fallback_lists_the_same_sockets_and_says_what_is_missing(lab: Lab) -> None:
    with SocketReader(lab.target) as reader:
        diag = reader.read()
    with SocketReader(lab.target, force_proc=("tcp", "udp", "unix")) as reader:
        proc = reader.read()
    assert proc.sources == {"tcp": "/proc/net", "udp": "/proc/net", "unix": "/proc/net"}
    assert diag.sources == {"tcp": "sock_diag", "udp": "sock_diag", "unix": "sock_diag"}
    assert diag.gaps == ()
    for gap in (GAP_TCP_INFO, GAP_INET, GAP_BACKLOG, GAP_UNIX):
        assert gap in proc.gaps
    netlink, text = ours_inet(diag.sockets), ours_inet(proc.sockets)
    assert set(netlink) == set(text)
    for key, sock in netlink.items():
        other = text[key]
        assert (other.state, other.inode, other.uid, other.recv_q) == (
            sock.state, sock.inode, sock.uid, sock.recv_q
        ), key  # fmt: skip
        assert other.send_q == (0 if sock.state == "LISTEN" else sock.send_q), key
        assert (other.timer is None) == (sock.timer is None), key
        if sock.timer and other.timer:
            assert other.timer.name == sock.timer.name
            assert abs(other.timer.expires_ms - sock.timer.expires_ms) <= 1000
        assert other.tcp is None and other.mem is None and other.interface is None
    unix_diag = {s.inode: s for s in diag.sockets if s.proto == "unix"}
    unix_proc = {s.inode: s for s in proc.sockets if s.proto == "unix"}
    assert set(unix_proc) == set(unix_diag)
    for ino, sock in unix_diag.items():
        other = unix_proc[ino]
        assert (other.state, other.local_addr, other.sock_type) == (
            sock.state, sock.local_addr, sock.sock_type
        ), ino  # fmt: skip
        assert other.peer_inode is None and other.uid is None


def test_fallback_when_sock_diag_fails_for_one_protocol(lab: Lab, monkeypatch) -> None:
    """A kernel without udp_diag answers ENOENT: UDP comes from /proc/net from then on."""
    calls = []
    real_dump = SockDiag.iter_inet

    def no_udp_diag(
        self: SockDiag, proto: int, family: int, *, details: bool, memory: bool = True
    ) -> Iterator[list[Socket]]:
        calls.append(proto)
        if proto == socket.IPPROTO_UDP:
            raise SockDiagFailed("sock_diag: no udp_diag here", errno.ENOENT)
        return real_dump(self, proto, family, details=details, memory=memory)

    monkeypatch.setattr(SockDiag, "iter_inet", no_udp_diag)
    with SocketReader(lab.target) as reader:
        first = reader.read(tcp_info=False)
        second = reader.read(tcp_info=False)
    assert first.sources == {"tcp": "sock_diag", "udp": "/proc/net", "unix": "sock_diag"}
    assert "udp from /proc/net: sock_diag: no udp_diag here" in first.gaps
    assert second.gaps == first.gaps
    assert calls.count(socket.IPPROTO_UDP) == 1  # not asked again
    udp = {s.inode for s in second.sockets if s.proto == "udp"}
    assert lab.inode("udp") in udp and lab.inode("udp6") in udp


# ------------------------------------------------------------------- netlink behaviour


def test_unchanged_sockets_are_reused_and_changed_ones_reparsed(lab: Lab) -> None:
    with SocketReader(lab.target) as reader:
        first = {s.inode: s for s in reader.read().sockets if s.inode}
        lab.socks["est6_client"].sendall(b"y" * 10)
        time.sleep(0.05)
        second = {s.inode: s for s in reader.read().sockets if s.inode}
    assert second[lab.inode("listen")] is first[lab.inode("listen")]
    assert second[lab.inode("ux_server")] is first[lab.inode("ux_server")]
    changed = second[lab.inode("est6_server")]
    assert changed is not first[lab.inode("est6_server")]
    assert changed.recv_q == first[lab.inode("est6_server")].recv_q + 10
    with SocketReader(lab.target, reuse_unchanged=False) as reader:
        a = {s.inode: s for s in reader.read().sockets if s.inode}
        b = {s.inode: s for s in reader.read().sockets if s.inode}
    assert b[lab.inode("listen")] == a[lab.inode("listen")]
    assert b[lab.inode("listen")] is not a[lab.inode("listen")]


def test_a_running_timer_keeps_its_record_until_its_deadline_moves(lab: Lab) -> None:
    """The keepalive countdown changes on every read, its deadline does not: same record, and
    ``fires_at`` says when it fires. Re-armed elsewhen: a new Socket and Timer, same tcp_info."""
    client, inode = lab.socks["est_client"], lab.inode("est_client")
    with SocketReader(lab.target) as reader:
        first = _by_inode(reader)[inode]
        time.sleep(0.05)
        second = _by_inode(reader)[inode]
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 3600)  # re-arms the timer
        third = _by_inode(reader)[inode]
    with SocketReader(lab.target, reuse_unchanged=False) as fresh:
        exact = _by_inode(fresh)[inode]
    assert first.timer is not None and first.timer.name == "keepalive"
    assert second is first
    assert third is not first and third.tcp is first.tcp and third.mem is first.mem
    assert third.timer is not None and exact.timer is not None and exact.timer.fires_at
    assert abs(third.timer.fires_at - exact.timer.fires_at) < 0.1  # type: ignore[operator]
    assert abs(first.timer.fires_at - third.timer.fires_at) > 1000  # type: ignore[operator]
    read_at = exact.timer.fires_at - exact.timer.expires_ms / 1000
    assert abs(third.timer.remaining_ms(read_at) - exact.timer.expires_ms) <= 100
    assert 3_500_000 < exact.timer.expires_ms <= 3_600_000


def _by_inode(reader: SocketReader) -> dict[int, Socket]:
    return {s.inode: s for s in reader.read().sockets if s.inode}


def test_turning_tcp_info_on_gives_records_with_it(lab: Lab) -> None:
    """A record kept from a read without tcp_info must not stand for a socket read with it."""
    with SocketReader(lab.target) as reader:
        bare = {s.inode: s for s in reader.read(tcp_info=False).sockets if s.inode}
        full = {s.inode: s for s in reader.read(tcp_info=True).sockets if s.inode}
        again = {s.inode: s for s in reader.read(tcp_info=False).sockets if s.inode}
    listen = lab.inode("listen")
    assert bare[listen].tcp is None and bare[listen].mem is None
    assert full[listen].tcp is not None and full[listen].mem is not None
    assert again[listen].tcp is None


def test_socket_memory_is_asked_for_only_when_wanted(lab: Lab) -> None:
    """The live table reads tcp_info without socket memory (only the detail view shows it);
    turning memory on gives records with it, not the kept ones without."""
    listen, client = lab.inode("listen"), lab.inode("est_client")
    with SocketReader(lab.target) as reader:
        lean = {s.inode: s for s in reader.read(memory=False).sockets if s.inode}
        lean_again = {s.inode: s for s in reader.read(memory=False).sockets if s.inode}
        full = {s.inode: s for s in reader.read(memory=True).sockets if s.inode}
    assert lean[client].tcp is not None and lean[client].mem is None
    assert lean[listen].mem is None and lean_again[client] is lean[client]
    assert full[client].tcp is not None and full[client].mem is not None
    assert full[client].tcp.rtt_us == lean[client].tcp.rtt_us


def test_one_socket_read_again_with_its_memory(lab: Lab) -> None:
    """``ss -m`` for one socket (the detail view's): an exact request finds TCP and UDP, IPv4
    and IPv6, listening, connected and device-bound sockets by address and cookie."""
    roles = ("listen", "est_client", "est_server", "udp", "udp_conn", "est6_client",
             "listen6", "on_lo", "mapped_server")  # fmt: skip
    with SocketReader(lab.target) as reader:
        dumped = {s.inode: s for s in reader.read(memory=False).sockets if s.inode}
        for role in roles:
            sock = dumped[lab.inode(role)]
            again = reader._diag.read_one(sock)  # type: ignore[union-attr]
            assert again is not None, role
            assert again.key == sock.key and again.inode == sock.inode, role
            assert again.mem is not None and sock.mem is None, role
            assert (again.tcp is not None) == (sock.proto == "tcp"), role
            assert reader.with_memory(sock).mem is not None, role
        gone = dataclasses.replace(dumped[lab.inode("est_client")], cookie=1)
        assert reader._diag.read_one(gone) is None  # type: ignore[union-attr]
        assert reader.with_memory(gone) is gone
        unix = dumped[lab.inode("ux_server")]
        assert reader.with_memory(unix) is unix  # UNIX sockets have no memory reading here
        assert reader.read(memory=False).sockets  # and the dumps still work after it


def test_equal_socket_memory_readings_share_one_record(lab: Lab) -> None:
    with SocketReader(lab.target) as reader:
        sockets = [s for s in reader.read().sockets if s.mem is not None]
    by_value: dict[object, set[int]] = {}
    for sock in sockets:
        by_value.setdefault(sock.mem, set()).add(id(sock.mem))
    assert all(len(ids) == 1 for ids in by_value.values())
    assert len(by_value) < len(sockets)


def test_tcp_of_both_families_in_one_dump_or_two_when_the_kernel_refuses(
    lab: Lab, monkeypatch
) -> None:
    def tcp_keys(diag: SockDiag) -> set[tuple[object, ...]]:
        batches = diag.iter_both_families(socket.IPPROTO_TCP, details=True)
        return {(s.family, s.local_addr, s.local_port, s.inode) for b in batches for s in b}

    with entered(lab.target):
        legacy, refused = SockDiag(), SockDiag()
    try:
        one_dump = tcp_keys(legacy)
        assert legacy._tcp_compat  # Linux 6.x still takes TCPDIAG_GETSOCK (AF_UNSPEC)
        assert {key[0] for key in one_dump} == {"inet", "inet6"}
        monkeypatch.setattr(sockdiag, "TCPDIAG_GETSOCK", 21)  # a type sock_diag refuses
        two_dumps = tcp_keys(refused)
        assert not refused._tcp_compat
        assert two_dumps == one_dump
        assert tcp_keys(refused) == one_dump  # not asked again
    finally:
        legacy.close()
        refused.close()


def test_a_refused_dump_raises_a_typed_error_and_the_socket_keeps_working(lab: Lab) -> None:
    with entered(lab.target):
        diag = SockDiag()
    try:
        with pytest.raises(SockDiagFailed) as caught:
            diag.dump_inet(253, socket.AF_INET, details=False)  # no diag handler for protocol 253
        assert caught.value.errno in (errno.ENOENT, errno.EINVAL)
        assert "sock_diag" in str(caught.value)
        assert any(s.inode == lab.inode("listen") for s in diag.dump_inet(6, 2, details=False))
    finally:
        diag.close()


def test_the_reader_sees_its_namespace_not_the_callers(lab: Lab) -> None:
    with SocketReader() as host:
        host_inodes = {s.inode for s in host.read(tcp_info=False, unix=False).sockets}
    assert lab.inode("listen") not in host_inodes


# ----------------------------------------------------------------- structs, no kernel dump


def test_tcp_info_tolerates_shorter_and_longer_structs() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname()) as client:
        raw = client.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 512)
    full = parse_tcp_info(raw)
    assert full is not None and full.snd_mss > 0 and full.bytes_retrans == 0
    assert parse_tcp_info(raw + bytes(64)) == full
    old = parse_tcp_info(raw[:104])  # Linux 2.6: no pacing rate nor byte counters
    assert old is not None and (old.rtt_us, old.snd_cwnd) == (full.rtt_us, full.snd_cwnd)
    assert old.pacing_rate is None and old.bytes_acked is None and old.bytes_retrans is None
    mid = parse_tcp_info(raw[:160])  # Linux 4.6
    assert mid is not None and mid.data_segs_out == full.data_segs_out
    assert mid.delivery_rate is None and mid.bytes_sent is None
    assert parse_tcp_info(raw[:100]) is None
    assert parse_meminfo(bytes(32)).drops is None  # type: ignore[union-attr]
    assert parse_meminfo(bytes(16)) is None


def test_packed_tcp_info_reads_what_the_parser_reads_and_acts_as_a_tcp_info() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname()) as client:
        peer, _ = server.accept()
        with peer:
            client.sendall(b"z" * 3000)
            peer.recv(3000)
            raw = client.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 512)
    eager = parse_tcp_info(raw)
    assert eager is not None and eager.bytes_acked and eager.bytes_acked > 3000
    folded = bytearray(raw[:PACKED_MIN])
    folded[FOLD_START:FOLD_END] = b"message fields!!"  # what the reader folds in is not read
    packed = packed_tcp_info(bytes(folded), 100)
    assert isinstance(packed, TcpInfo) and isinstance(packed, PackedTcpInfo)
    assert dataclasses.asdict(packed) == dataclasses.asdict(eager)  # every field, by name
    assert packed == eager and eager == packed and hash(packed) == hash(eager)
    assert repr(packed) == repr(eager) and packed.rtt_ms == eager.rtt_ms
    for plain in (copy.copy(packed), pickle.loads(pickle.dumps(packed))):
        assert not isinstance(plain, PackedTcpInfo) and plain == eager
    changed = dataclasses.replace(packed, rtt_us=1)
    assert isinstance(changed, TcpInfo) and not isinstance(changed, PackedTcpInfo)
    assert changed.rtt_us == 1 and changed != packed and repr(changed).startswith("TcpInfo(")
    assert not hasattr(packed, "__dict__")  # no storage beyond its bytes (see TcpInfo)
    moved = bytearray(raw)
    moved[120] ^= 1  # tcpi_bytes_acked
    other = packed_tcp_info(bytes(moved[:PACKED_MIN]), 100)
    assert other != packed and other.bytes_acked != packed.bytes_acked
    same = packed_tcp_info(raw[:PACKED_MIN], 100)  # other folded bytes, the same tcp_info
    assert same == packed and same is not packed and hash(same) == hash(packed)
    with pytest.raises(AttributeError):
        packed.rtt_us = 5  # type: ignore[misc]


def test_fast_constructor_builds_the_same_record() -> None:
    make = fast_constructor(Socket)
    args = ("tcp", "inet", "LISTEN", "0.0.0.0", 22, None, None, 0, 128, 42)
    fast, slow = make(*args), Socket(*args)
    assert fast == slow and fast.key == slow.key and repr(fast) == repr(slow)


def _message(state: int, attrs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(
        struct.pack("=HH", 4 + len(data), kind) + data + bytes(-len(data) % 4)
        for kind, data in attrs
    )
    head = struct.pack("=IHHII", 88 + len(body), 20, 2, 1, 0) + bytes([2, state]) + bytes(70)
    return head + body


def test_attribute_layout_guess_is_checked_and_relearned() -> None:
    """The INFO/SKMEMINFO offsets of one message are a guess for the next, never trusted."""
    info = bytes([1]) + bytes(range(1, 216))  # tcpi_state 1 (ESTABLISHED), then anything
    mem = bytes(36)
    shutdown, mark = (8, b"\0"), (15, bytes(4))  # INET_DIAG_SHUTDOWN, INET_DIAG_MARK
    plain = _message(1, [shutdown, (7, mem), (2, info)])
    with_mark = _message(1, [shutdown, mark, (7, mem), (2, info)])
    buffer = memoryview(plain + with_mark + plain)
    layout = AttrLayout()
    spans = []
    for off in (0, len(plain), len(plain) + len(with_mark)):
        length = struct.unpack_from("=I", buffer, off)[0]
        spans.append(layout.find(buffer, off, length, want_info=True))
    for off, (info_start, info_end, mem_start, mem_end) in zip(
        (0, len(plain), len(plain) + len(with_mark)), spans, strict=True
    ):
        assert bytes(buffer[info_start:info_end]) == info
        assert mem_end - mem_start == 36 and mem_start > off
    assert spans[1][0] - len(plain) == spans[0][0] + 8  # moved by the MARK attribute


def test_gc_is_held_during_a_read_and_given_back_as_it_was() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # the application's own choice is kept
    finally:
        gc.enable()
