"""Runs of unchanged sockets matched whole (netdash.sources.msgruns), against the real kernel.

The reader keeps the previous sample's messages back to back and matches a run of sockets with
one compare. These tests check that the runs are really taken on an idle table (so the tests of
test_sockdiag_reuse.py, which also run with runs on, test something), that a socket changed in
the middle of a run, sockets added and removed, and a timer are still read right, and that the
memory cap turns the runs off.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from netdash.model import Socket
from netdash.netns import NetnsTarget, entered, resolve_netns
from netdash.sources import msgruns
from netdash.sources.sockets import SocketReader

PAIRS = 40


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


@pytest.fixture
def target(netns: str) -> NetnsTarget:
    return resolve_netns(netns)


@pytest.fixture
def pairs(target: NetnsTarget) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """PAIRS idle loopback connections (and their listener) in the test's namespace."""
    with entered(target):
        listener = socket.create_server(("127.0.0.1", 0), backlog=PAIRS)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(PAIRS)]
    made = [(client, listener.accept()[0]) for client in clients]
    yield made
    for client, server in made:
        client.close()
        server.close()
    listener.close()


def read(reader: SocketReader) -> dict[int, Socket]:
    return {s.inode: s for s in reader.read(memory=False).sockets if s.inode}


def matched(reader: SocketReader) -> int:
    assert reader._diag is not None
    return reader._diag._runs.matched


def fresh(target: NetnsTarget) -> dict[int, Socket]:
    with SocketReader(target, reuse_unchanged=False) as reader:
        return read(reader)


def same_as_fresh(target: NetnsTarget, seen: dict[int, Socket]) -> None:
    exact = fresh(target)
    assert set(exact) == set(seen)
    for number, sock in exact.items():
        assert sock.state == seen[number].state, number
        assert (sock.recv_q, sock.send_q) == (seen[number].recv_q, seen[number].send_q), number
        assert sock.tcp == seen[number].tcp, number
        assert (sock.timer is None) == (seen[number].timer is None), number


def test_an_idle_table_is_matched_in_runs_from_the_third_read(target: NetnsTarget, pairs) -> None:
    with SocketReader(target) as reader:
        first = read(reader)
        assert matched(reader) == 0  # nothing to compare with yet
        read(reader)
        assert matched(reader) == 0  # the first read's size was not known: not gathered
        third = read(reader)
        assert matched(reader) >= 2 * PAIRS - 2 * msgruns.MIN_RUN
        assert all(third[n] is first[n] for n in third)


def test_a_changed_socket_in_a_run_is_read_anew_and_the_rest_kept(
    target: NetnsTarget, pairs
) -> None:
    with SocketReader(target) as reader:
        for _ in range(3):
            before = read(reader)
        client, server = pairs[PAIRS // 2]
        client.sendall(b"x" * 500)  # the server's Recv-Q and both tcp_infos change
        time.sleep(0.05)
        after = read(reader)
        changed = {inode(client), inode(server)}
        assert after[inode(server)].recv_q == 500
        assert after[inode(client)].tcp.bytes_acked > before[inode(client)].tcp.bytes_acked
        assert all(after[n] is before[n] for n in after if n not in changed)
        assert matched(reader) >= 2 * PAIRS - 2 - 3 * msgruns.MIN_RUN
        same_as_fresh(target, after)
        assert server.recv(500, socket.MSG_WAITALL) == b"x" * 500
        emptied = read(reader)
        assert emptied[inode(server)].recv_q == 0
        same_as_fresh(target, emptied)


def test_sockets_added_and_removed_between_runs(target: NetnsTarget, pairs) -> None:
    with SocketReader(target) as reader:
        for _ in range(3):
            before = read(reader)
        for client, server in pairs[5:25:4]:  # from the middle of the order
            client.close()
            server.close()
        del pairs[5:25:4]
        with entered(target):
            extra = socket.create_server(("127.0.0.1", 0))
            new_client = socket.create_connection(extra.getsockname())
        new_server, _ = extra.accept()
        with extra, new_client, new_server:
            time.sleep(0.05)
            after = read(reader)
            same_as_fresh(target, after)
            assert inode(new_client) in after and inode(new_server) in after
            kept = [n for n in after if n in before and after[n] is before[n]]
            assert len(kept) >= 2 * PAIRS - 30  # the rest still found, most of it in runs
            assert matched(reader) > PAIRS


def test_a_keepalive_timer_is_never_matched_in_a_run(target: NetnsTarget, pairs) -> None:
    """A running timer's countdown moves between reads: its socket leaves the run and is
    compared apart, so its deadline is kept while it holds and renewed when it moves."""
    client, _ = pairs[PAIRS // 2]
    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
    with SocketReader(target) as reader:
        for _ in range(3):
            seen = read(reader)
        timer = seen[inode(client)].timer
        assert timer is not None and timer.name == "keepalive"
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)  # re-armed: moved
        after = read(reader)
        moved = after[inode(client)].timer
        assert moved is not None and moved.fires_at < timer.fires_at - 500
        assert matched(reader) >= 2 * PAIRS - 1 - 3 * msgruns.MIN_RUN


def test_a_table_bigger_than_the_cap_is_compared_socket_by_socket(
    target: NetnsTarget, pairs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(msgruns, "MAX_BYTES", 4096)  # ~10 messages with tcp_info
    with SocketReader(target) as reader:
        for _ in range(3):
            before = read(reader)
        assert matched(reader) == 0
        assert reader._diag is not None and reader._diag._runs.known == 0
        after = read(reader)
        assert all(after[n] is before[n] for n in after)  # still kept, one by one


def test_runs_of_mixed_families_and_states_are_matched_too(target: NetnsTarget, pairs) -> None:
    """IPv6 messages are longer than IPv4 ones and a listener's differ again: a run that mixes
    them is masked message by message rather than in strides, and still matches."""
    with entered(target):
        listener6 = socket.create_server(("::1", 0), family=socket.AF_INET6, backlog=PAIRS)
        clients6 = [
            socket.create_connection(listener6.getsockname()[:2]) for _ in range(PAIRS // 2)
        ]
    servers6 = [listener6.accept()[0] for _ in clients6]
    try:
        with SocketReader(target) as reader:
            first = read(reader)
            read(reader)
            third = read(reader)
            assert len(third) >= 3 * PAIRS
            assert matched(reader) >= 3 * PAIRS - 4 * msgruns.MIN_RUN
            assert all(third[n] is first[n] for n in third)
            clients6[3].sendall(b"y" * 100)
            time.sleep(0.05)
            same_as_fresh(target, read(reader))
    finally:
        for sock in (listener6, *clients6, *servers6):
            sock.close()


def test_a_busy_table_stops_trying_runs_and_takes_them_up_when_it_quiets(
    target: NetnsTarget, pairs
) -> None:
    """When most sockets change from one read to the next, a run would seldom match: the reader
    neither tries nor gathers them, but looks again every few reads."""
    from netdash.sources import sockdiag

    with SocketReader(target) as reader:
        for _ in range(3):
            read(reader)
        for _ in range(3):  # every socket changes on every read
            for client, _server in pairs:
                client.sendall(b"z")
            time.sleep(0.05)
            busy = read(reader)
        assert matched(reader) == 0
        assert reader._diag is not None and reader._diag._runs.known == 0  # not gathered
        same_as_fresh(target, busy)
        for _client, server in pairs:
            server.recv(16)
        reads = 0
        while matched(reader) < 2 * PAIRS - 2 * msgruns.MIN_RUN:
            read(reader)
            reads += 1
            assert reads <= sockdiag._PROBE_EVERY + 2
