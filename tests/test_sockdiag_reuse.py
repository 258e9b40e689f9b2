"""Records kept from one read to the next must never stand for a socket that changed.

The reader keeps the previous read's records in the kernel's dump order and, for most TCP
sockets, compares only their packed tcp_info with the message's queues, uid and inode folded in
(netdash.sources.sockdiag, inetrecords). Each test changes a socket in a way tcp_info may not
show, or removes sockets from the middle of the order, and checks the next read against a fresh
reader's (``reuse_unchanged=False``) and against what the test knows first-hand.

Every test runs twice: socket by socket, and with runs of unchanged sockets matched whole
(netdash.sources.msgruns) from the second read on, from a run of one socket and however many
sockets changed, so that each change is also one a run must notice.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from netdash.model import Socket
from netdash.netns import NetnsTarget, entered, resolve_netns
from netdash.sources import msgruns, sockdiag
from netdash.sources.sockets import SocketReader


@pytest.fixture(autouse=True, params=["socket by socket", "in runs"])
def compared(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "socket by socket":
        monkeypatch.setattr(msgruns, "MAX_BYTES", 0)
    else:
        monkeypatch.setattr(msgruns, "MIN_RUN", 1)
        monkeypatch.setattr(sockdiag, "_RUN_GAP", 0)  # however many sockets changed
        start = msgruns.MessageRuns.__init__

        def record_from_the_first_read(self: msgruns.MessageRuns) -> None:
            start(self)
            self._last_read_bytes = 0

        monkeypatch.setattr(msgruns.MessageRuns, "__init__", record_from_the_first_read)
    return str(request.param)


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def comparable(sock: Socket) -> tuple[object, ...]:
    """Everything a read must get right; of a timer its name (the countdown moves)."""
    plain = dataclasses.replace(sock, timer=None)
    return (plain, sock.timer.name if sock.timer else None)


def by_inode(reader: SocketReader) -> dict[int, Socket]:
    """A read as the live table reads: tcp_info, no socket memory (so most TCP records are
    kept alone, see inetrecords.Kept)."""
    return {s.inode: s for s in reader.read(memory=False).sockets if s.inode}


def test_the_live_reads_keep_most_tcp_records_alone(
    target: NetnsTarget, listener: socket.socket
) -> None:
    """The point of the tests below: without socket memory, a settled TCP socket's record is
    all the reader keeps of it; with memory, the message head too."""
    client, server = pair(target, listener)
    with client, server, SocketReader(target) as reader:
        reader.read(memory=False)
        assert any(type(kept) is Socket for kept in reader._diag._kept)
        reader.read(memory=True)
        assert all(type(kept) is tuple for kept in reader._diag._kept)


def fresh_read(target: NetnsTarget) -> dict[int, Socket]:
    with SocketReader(target, reuse_unchanged=False) as reader:
        return by_inode(reader)


def assert_same_as_fresh(target: NetnsTarget, seen: dict[int, Socket], inodes: list[int]) -> None:
    exact = fresh_read(target)
    for number in inodes:
        assert comparable(seen[number]) == comparable(exact[number])


@pytest.fixture
def target(netns: str) -> NetnsTarget:
    return resolve_netns(netns)


@pytest.fixture
def listener(target: NetnsTarget) -> Iterator[socket.socket]:
    with entered(target):
        server = socket.create_server(("127.0.0.1", 0), backlog=64)
    with server:
        yield server


def connect(target: NetnsTarget, server: socket.socket) -> socket.socket:
    with entered(target):
        return socket.create_connection(server.getsockname())


def pair(target: NetnsTarget, server: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = connect(target, server)
    accepted, _ = server.accept()
    return client, accepted


def test_accepting_a_queued_connection_gives_its_record_the_inode(
    target: NetnsTarget, listener: socket.socket
) -> None:
    """A connection in the accept queue has inode 0; accept() gives it one and nothing of its
    tcp_info changes."""
    client = connect(target, listener)
    with client, SocketReader(target) as reader:
        time.sleep(0.05)
        peer_port = client.getsockname()[1]

        def queued() -> Socket:
            (sock,) = (
                s for s in reader.read(memory=False).sockets
                if s.proto == "tcp" and s.remote_port == peer_port
            )  # fmt: skip
            return sock

        before = queued()
        assert before.inode == 0 and before.state == "ESTABLISHED"
        assert queued() is before  # kept while nothing changed
        accepted, _ = listener.accept()
        with accepted:
            after = queued()
            assert after.inode == inode(accepted)


def test_reading_queued_bytes_empties_recv_q(target: NetnsTarget, listener: socket.socket) -> None:
    client, server = pair(target, listener)
    with client, server, SocketReader(target) as reader:
        client.sendall(b"q" * 300)
        time.sleep(0.05)
        assert by_inode(reader)[inode(server)].recv_q == 300
        assert server.recv(300, socket.MSG_WAITALL) == b"q" * 300
        seen = by_inode(reader)
        assert seen[inode(server)].recv_q == 0
        assert_same_as_fresh(target, seen, [inode(server), inode(client)])


def test_a_stopped_timer_leaves_the_record(target: NetnsTarget, listener: socket.socket) -> None:
    client, server = pair(target, listener)
    with client, server, SocketReader(target) as reader:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        first = by_inode(reader)[inode(client)]
        assert first.timer is not None and first.timer.name == "keepalive"
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
        seen = by_inode(reader)
        assert seen[inode(client)].timer is None
        assert_same_as_fresh(target, seen, [inode(client)])


def test_binding_a_connected_socket_to_a_device(
    target: NetnsTarget, listener: socket.socket
) -> None:
    """SO_BINDTODEVICE works on a connected socket too and shows in its Local column."""
    client, server = pair(target, listener)
    with client, server, SocketReader(target) as reader:
        assert by_inode(reader)[inode(client)].interface is None
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
        bound = by_inode(reader)[inode(client)]
        assert bound.interface == "lo"
        assert by_inode(reader)[inode(client)] is bound  # kept while nothing changed
        client.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"")
        assert by_inode(reader)[inode(client)].interface is None


def reset(sock: socket.socket) -> None:
    """Close with a RST: gone from the kernel's tables at once, no FIN_WAIT or TIME_WAIT."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_records_are_found_again_past_sockets_that_went_away(
    target: NetnsTarget, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing a run of sockets from the middle of the kernel's order: the look-ahead finds
    the ones after it. A run longer than the look-ahead costs new records for the rest of that
    read (equal to a fresh reader's), and the next read is back in step."""
    socks: dict[int, socket.socket] = {}
    peer: dict[int, int] = {}
    for client, server in (pair(target, listener) for _ in range(60)):
        socks[inode(client)], socks[inode(server)] = client, server
        peer[inode(client)], peer[inode(server)] = inode(server), inode(client)

    def remove_run(run: list[int]) -> None:
        for number in run:
            for each in (number, peer[number]):
                if each in socks:
                    reset(socks.pop(each))
        time.sleep(0.05)

    try:
        with SocketReader(target) as reader:
            first = {s.inode: s for s in reader.read(memory=False).sockets if s.inode in socks}
            order = list(first)  # the kernel's order
            remove_run(order[10:20])
            second = by_inode(reader)
            survivors = [n for n in order[20:] if n in socks]
            assert len(survivors) > 20 and all(n in second for n in survivors)
            assert all(second[n] is first[n] for n in survivors)

            monkeypatch.setattr(sockdiag, "_LOOK_AHEAD", 4)
            remove_run([n for n in order[20:] if n in socks][:10])
            third = by_inode(reader)
            later = [n for n in order if n in socks]
            assert any(third[n] is not second[n] for n in later)  # lost step: built anew ...
            assert_same_as_fresh(target, third, later)  # ... and right
            fourth = by_inode(reader)
            assert all(fourth[n] is third[n] for n in later)  # back in step
    finally:
        for sock in socks.values():
            sock.close()


def test_the_detail_views_socket_alone_is_read_with_memory(
    target: NetnsTarget, listener: socket.socket
) -> None:
    """``memory_of`` (the app sets it while a detail view is open) gives that one socket its
    memory and leaves every other record as it was kept: opening a detail view at 100k
    sockets must not rebuild 100k records."""
    from netdash.engine import ConnectionsSampler
    from netdash.sources.owners import OwnerMap

    client, server = pair(target, listener)
    sampler = ConnectionsSampler(SocketReader(target), OwnerMap())
    with client, server:
        try:
            before = {s.inode: s for s in sampler.sample().sockets}
            sampler.memory_of = before[inode(client)].cookie
            during = {s.inode: s for s in sampler.sample().sockets}
            assert during[inode(client)].mem is not None
            assert during[inode(server)] is before[inode(server)]
            assert during[inode(server)].mem is None
            assert during[inode(listener)] is before[inode(listener)]
            sampler.memory_of = None
            after = {s.inode: s for s in sampler.sample().sockets}
            assert after[inode(client)].mem is None
            assert after[inode(server)] is before[inode(server)]
        finally:
            sampler.close()
