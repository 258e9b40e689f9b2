"""Streaming reads (what `netdash dump` uses): batches as the kernel sends them, the same sockets as
a whole read, a dump left half-read drained, a failure part way reported, not papered over."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from netdash.netns import NetnsTarget, entered, resolve_netns
from netdash.sources import sockets as sockets_module
from netdash.sources.errors import SourceUnavailable
from netdash.sources.sockdiag import SockDiag, SockDiagFailed
from netdash.sources.sockets import SocketReader
from tests.conftest import skip_unless_root, temporary_netns

LISTENERS = 200  # ~450 bytes each with tcp_info: several 32 KiB reply buffers


@pytest.fixture(scope="module")
def crowded() -> Iterator[NetnsTarget]:
    """A namespace with LISTENERS TCP listeners."""
    skip_unless_root()
    with temporary_netns("stream") as name:
        target = resolve_netns(name, None)
        with entered(target):
            held = [socket.create_server(("127.0.0.1", 0)) for _ in range(LISTENERS)]
        try:
            yield target
        finally:
            for sock in held:
                sock.close()


def _keys(batches: Iterator[list] | list) -> list[tuple[object, ...]]:
    return sorted(
        (s.proto, s.local_addr, s.local_port, s.inode) for batch in batches for s in batch
    )


def test_iter_read_yields_the_sockets_of_read_in_several_batches(crowded) -> None:
    with SocketReader(crowded, reuse_unchanged=False) as reader:
        whole = reader.read(tcp_info=True, unix=False).sockets
        batches = list(reader.iter_read(tcp_info=True, unix=False))
    assert len(batches) >= 3 and all(batches)
    assert _keys(batches) == _keys([list(whole)])
    assert sum(1 for s in whole if s.state == "LISTEN") == LISTENERS
    assert all(s.tcp is not None for batch in batches for s in batch)


def test_an_abandoned_dump_is_drained_and_the_next_one_is_whole(crowded) -> None:
    with entered(crowded):
        diag = SockDiag()
    try:
        batches = diag.iter_inet(socket.IPPROTO_TCP, socket.AF_INET, details=True)
        first = next(batches)
        assert 0 < len(first) < LISTENERS
        batches.close()  # the kernel still holds the rest of this dump
        again = diag.dump_inet(socket.IPPROTO_TCP, socket.AF_INET, details=True)
        assert len(again) == LISTENERS
    finally:
        diag.close()


def test_a_dump_broken_off_part_way_raises_instead_of_falling_back(crowded, monkeypatch) -> None:
    def broken(diag: SockDiag, proto: str, tcp_info: bool) -> Iterator[list]:
        yield diag.dump_inet(socket.IPPROTO_TCP, socket.AF_INET, details=tcp_info)[:5]
        raise SockDiagFailed("sock_diag dump failed: No buffer space available", 105)

    monkeypatch.setattr(sockets_module, "_diag_batches", broken)
    with SocketReader(crowded, reuse_unchanged=False) as reader:
        stream = reader.iter_read(tcp_info=True, unix=False)
        assert len(next(stream)) == 5
        with pytest.raises(SourceUnavailable, match="tcp sockets, part way"):
            next(stream)
