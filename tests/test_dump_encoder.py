"""The dump's streaming encoder writes exactly what ``json.dump`` of ``sample_to_json`` wrote."""

from __future__ import annotations

import io
import json

import pytest

from netdash import dump
from netdash.model import MemInfo, Owner, Socket, SocketSample, TcpInfo, Timer

HOSTILE = '[red]x[/]\x1b[31m"quoted"\\ ünïcode \u2028 \udcff'


def _tcp_info(rtt_us: int, acked: int | None) -> TcpInfo:
    values = list(range(1, 27))
    values[17] = rtt_us  # rtt_us
    return TcpInfo(*values, bytes_acked=acked, bytes_received=None if acked is None else 7)


def _sockets() -> list[Socket]:
    return [
        Socket("tcp", "inet", "LISTEN", "0.0.0.0", 80, None, None, 0, 128, 11, uid=0),
        Socket(
            "tcp",
            "inet6",
            "ESTABLISHED",
            "::1",
            80,
            "::1",
            40000,
            3,
            0,
            12,
            uid=1000,
            interface=HOSTILE,
            cookie=99,
            timer=Timer("keepalive", 7200, 0),
            tcp=_tcp_info(1234, 1 << 40),
            mem=MemInfo(1, 2, 3, 4, 5, 6, 7, 8),
        ),
        Socket(
            "tcp",
            "inet",
            "ESTABLISHED",
            "10.0.0.1",
            5,
            "10.0.0.2",
            6,
            0,
            0,
            13,
            tcp=_tcp_info(1, None),
        ),
        Socket("tcp", "inet", "TIME_WAIT", "10.0.0.1", 5, "10.0.0.2", 7, 0, 0, 0),
        Socket("udp", "inet", "UNCONN", "0.0.0.0", 53, None, None, 0, 0, 14, interface="lo"),
        Socket(
            "unix",
            "unix",
            "LISTEN",
            "@" + HOSTILE,
            None,
            None,
            None,
            0,
            5,
            15,
            uid=0,
            sock_type="stream",
            peer_inode=0,
        ),
        Socket(
            "unix",
            "unix",
            "ESTABLISHED",
            None,
            None,
            None,
            None,
            0,
            0,
            16,
            sock_type="dgram",
            peer_inode=15,
        ),
        Socket("tcp", "inet", "ESTABLISHED", "10.0.0.1", 5, "10.0.0.3", 8, 0, 0, 17),
    ]


def _sample(complete: bool) -> SocketSample:
    nginx = Owner(30, "nginx", 0, "root")
    owners = {
        11: (Owner(7, HOSTILE, 0, "root"), nginx),
        12: (Owner(8, "ünï", 1000, None),),
        15: (Owner(9, "sshd"),),
        17: (nginx,),  # which fd is unknown (a recording without fd tables): "fd" is null
    }
    # nginx holds 11 twice (dup'd): one entry per descriptor, as ss -p lists them
    fd_tables = {30: {4: 11, 6: 11, 8: 99}, 7: {9: 11}, 8: {3: 12}, 9: {5: 15}}
    return SocketSample(tuple(_sockets()), owners, owners_complete=complete, fd_tables=fd_tables)


def _expected(sample: SocketSample, unix: bool) -> bytes:
    text = json.dumps(dump.sample_to_json(sample, unix=unix), separators=(",", ":"))
    return (text + "\n").encode("ascii")


@pytest.mark.parametrize("complete", [True, False])
@pytest.mark.parametrize("unix", [True, False])
@pytest.mark.parametrize("chunk", [1, 3, 2000])
def test_write_json_is_byte_for_byte_json_dump(monkeypatch, complete, unix, chunk) -> None:
    monkeypatch.setattr(dump, "CHUNK_SOCKETS", chunk)
    sample = _sample(complete)
    out = io.BytesIO()
    dump.write_json(sample, out, unix=unix)
    assert out.getvalue() == _expected(sample, unix)
    parsed = json.loads(out.getvalue())
    assert len(parsed) == (8 if unix else 6)
    assert parsed[0]["owners"] == [  # sorted by pid, then fd
        {"pid": 7, "process": HOSTILE, "fd": 9},
        {"pid": 30, "process": "nginx", "fd": 4},
        {"pid": 30, "process": "nginx", "fd": 6},
    ]
    last = parsed[-1]
    assert last["inode"] == 17 and last["owners"] == [{"pid": 30, "process": "nginx", "fd": None}]


def test_write_json_of_nothing_is_an_empty_array() -> None:
    out = io.BytesIO()
    dump.write_json(SocketSample(()), out)
    assert out.getvalue() == b"[]\n"


@pytest.mark.parametrize("chunk", [1, 2, 2000])
def test_write_batches_matches_write_json_whatever_the_batches(monkeypatch, chunk) -> None:
    monkeypatch.setattr(dump, "CHUNK_SOCKETS", chunk)
    sample = _sample(True)
    socks = list(sample.sockets)
    out = io.BytesIO()
    batches = [socks[:3], [], socks[3:4], socks[4:]]
    dump.write_batches(batches, sample.owners, True, out, sample.fd_tables)
    assert out.getvalue() == _expected(sample, True)


def test_a_source_failing_before_its_first_batch_leaves_the_output_empty() -> None:
    def failing():
        raise RuntimeError("no sockets for you")
        yield []  # pragma: no cover

    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        dump.write_batches(failing(), {}, True, out, {})
    assert out.getvalue() == b""
