"""The known-sockets lab keeps its promises, and the committed recording of it still holds them.

Live (root): `ss` inside the lab's namespace is the oracle for the states, the accept queue, the
owners and the traffic; `netdash dump connections --json --netns` must see nginx's three owners
and the hostile comms byte for byte; nothing survives the lab. Recorded (no root): the fixture
the UI tests and screenshots use has every state, owner and counter they rely on.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lablib import BAD_BYTES_COMM, MARKUP_COMM, KnownSocketsLab, LabError, listen_queue, ss

from conftest import skip_unless_root, temporary_netns
from netdash.engine import index_sockets
from netdash.model import Socket, SocketSample
from netdash.record import read_recording

REPO = Path(__file__).resolve().parents[1]
RECORDING = Path(__file__).with_name("fixtures") / "connections.recording.json"

needs_root = pytest.mark.root


def shown(comm: bytes) -> str:
    """A comm as netdash decodes it (netdash.textsafe.decode)."""
    return comm.decode("utf-8", errors="backslashreplace")


@pytest.fixture(scope="module")
def lab() -> Iterator[KnownSocketsLab]:
    skip_unless_root()
    with temporary_netns("lab") as name, KnownSocketsLab(name, loadgen_pairs=200) as running:
        yield running


def ss_lines(lab: KnownSocketsLab, *args: str) -> list[list[str]]:
    return [line.split() for line in ss(lab.netns, "-H", *args).splitlines()]


def states(lines: list[list[str]]) -> set[str]:
    return {fields[0] for fields in lines}


# -------------------------------------------------------------------------------------- live


@needs_root
def test_lab_starts_fast_with_every_promised_tcp_state(lab: KnownSocketsLab) -> None:
    assert lab.setup_seconds is not None and lab.setup_seconds < 2.0
    tcp = ss_lines(lab, "-tan")
    assert {"LISTEN", "ESTAB", "CLOSE-WAIT", "FIN-WAIT-2", "TIME-WAIT"} <= states(tcp)
    counts = {state: sum(1 for f in tcp if f[0] == state) for state in states(tcp)}
    assert counts["ESTAB"] >= 2 * lab.loadgen_pairs
    assert counts["TIME-WAIT"] >= 2 and counts["CLOSE-WAIT"] == 2
    assert listen_queue(lab.netns, lab.ports["slowapp"]) == 3
    local = [(f[0], f[3]) for f in tcp]
    assert ("LISTEN", "[::]:5432") in local  # IPv6 only (IPV6_V6ONLY)
    assert local.count(("ESTAB", "[::1]:5432")) == 2  # psql's two connections, server side


@needs_root
def test_lab_udp_and_unix_sockets(lab: KnownSocketsLab) -> None:
    udp = {(f[0], f[3], f[4]) for f in ss_lines(lab, "-uan")}
    assert ("UNCONN", "0.0.0.0:53", "0.0.0.0:*") in udp
    assert ("UNCONN", "[::]:53", "[::]:*") in udp
    assert ("UNCONN", "127.0.0.1%lo:5353", "0.0.0.0:*") in udp
    assert any(state == "ESTAB" and peer == "127.0.0.1:123" for state, _, peer in udp)
    unix = ss_lines(lab, "-xan")
    local = {(f[0], f[1], f[4]) for f in unix}
    assert ("u_str", "LISTEN", lab.unix_path) in local
    assert ("u_str", "LISTEN", "@" + lab.abstract_name) in local
    assert ("u_dgr", "UNCONN", lab.dgram_path) in local
    assert sum(1 for f in unix if f[:2] == ["u_str", "ESTAB"]) >= 4  # the pair and psql's


@needs_root
def test_nginx_listener_has_three_owners_in_ss(lab: KnownSocketsLab) -> None:
    (line,) = ss(lab.netns, "-Htlnp", "sport = :80").splitlines()
    pids = {int(part.split(",")[0]) for part in line.split("pid=")[1:]}
    assert pids == set(lab.pids["nginx"]) and len(pids) == 3


@needs_root
def test_the_stream_moves_bytes(lab: KnownSocketsLab) -> None:
    port = lab.processes["curl"].info["streaming_port"]

    def acked() -> int:
        (_, info) = ss(lab.netns, "-Htin", f"sport = :{port}").splitlines()
        return int(info.split("bytes_acked:")[1].split()[0])

    before = acked()
    time.sleep(0.3)
    moved = acked() - before
    assert lab.stream_rate * 0.1 < moved < lab.stream_rate * 0.3 * 3  # paced, not flat out


@needs_root
def test_dump_sees_three_nginx_owners_and_hostile_comms_byte_exact(lab: KnownSocketsLab) -> None:
    argv = [sys.executable, "-m", "netdash", "dump", "connections", "--json", "--netns"]
    done = subprocess.run([*argv, lab.netns], capture_output=True, cwd=REPO, timeout=30, check=True)
    rows = json.loads(done.stdout)
    listeners = {r["local_port"]: r for r in rows if r["proto"] == "tcp" and r["state"] == "LISTEN"}
    owners = listeners[lab.ports["nginx"]]["owners"]
    assert sorted(o["pid"] for o in owners) == sorted(lab.pids["nginx"])
    assert {o["process"] for o in owners} == {"nginx"}
    for role, comm in (("markup", MARKUP_COMM), ("badbytes", BAD_BYTES_COMM)):
        (pid,) = lab.pids[role]
        assert Path(f"/proc/{pid}/comm").read_bytes() == comm + b"\n"  # prctl took it verbatim
        assert listeners[lab.ports[role]]["process"] == shown(comm)


@needs_root
def test_lab_leaves_no_process_behind_even_when_the_body_fails() -> None:
    skip_unless_root()
    with temporary_netns("lab") as name:
        with pytest.raises(RuntimeError), KnownSocketsLab(name, loadgen_pairs=10) as lab:
            pids, unix_dir = lab.all_pids(), lab.unix_dir
            assert len(pids) == 17 and all(Path(f"/proc/{pid}").exists() for pid in pids)
            raise RuntimeError("a failing test")
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert not unix_dir.exists()
        assert "users:" not in ss(name, "-Htuaxp")  # no socket is held by anyone any more


@needs_root
def test_a_role_that_fails_is_reported_and_nothing_is_left() -> None:
    skip_unless_root()
    with temporary_netns("lab") as name:
        lab = KnownSocketsLab(name)
        lab.ports["java"] = lab.ports["nginx"]  # two listeners on one port: java cannot bind
        # The roles start together, so whichever binds second is the one that fails.
        failed = r"(java|nginx) failed: error .*Address already in use"
        with pytest.raises(LabError, match=failed), lab:
            pass
        assert lab.all_pids()
        assert not [pid for pid in lab.all_pids() if Path(f"/proc/{pid}").exists()]


# --------------------------------------------------------------------------------- recorded


@pytest.fixture(scope="module")
def recording_samples() -> tuple[SocketSample, ...]:
    return read_recording(RECORDING).samples


def all_sockets(samples: tuple[SocketSample, ...]) -> Iterator[tuple[SocketSample, Socket]]:
    return ((sample, sock) for sample in samples for sock in sample.sockets)


def acked(sock: Socket) -> int:
    return (sock.tcp.bytes_acked or 0) if sock.tcp is not None else 0


def test_recording_is_small_and_shows_an_example_host() -> None:
    recording = read_recording(RECORDING)
    assert RECORDING.stat().st_size < 1024 * 1024
    assert recording.host.hostname == "web-1" and recording.host.netns == "host"
    assert recording.host.hostname != os.uname().nodename
    assert len(recording.samples) >= 5


def test_recording_holds_every_state(recording_samples: tuple[SocketSample, ...]) -> None:
    for sample in recording_samples:
        tcp = {s.state for s in sample.sockets if s.proto == "tcp"}
        assert {"LISTEN", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2"} <= tcp
        waiting = [s for s in sample.sockets if s.state == "TIME_WAIT"]
        assert len(waiting) >= 2 and all(s.inode == 0 for s in waiting)
        assert {"UNCONN", "ESTABLISHED"} <= {s.state for s in sample.sockets if s.proto == "udp"}
        queued = [s for s in sample.sockets if s.state == "LISTEN" and s.recv_q == 3]
        assert [s.local_port for s in queued] == [9000]
        not_accepted = [s for s in sample.sockets if s.local_port == 9000 and not s.inode]
        assert len(not_accepted) == 3


def test_recording_owners(recording_samples: tuple[SocketSample, ...]) -> None:
    sample = recording_samples[0]
    listeners = {s.local_port: sample.owners_of(s) for s in sample.sockets if s.state == "LISTEN"}
    assert len(listeners[80]) == 3 and {o.comm for o in listeners[80]} == {"nginx"}
    assert [o.comm for o in listeners[6666]] == [shown(MARKUP_COMM)]
    assert [o.comm for o in listeners[6667]] == [shown(BAD_BYTES_COMM)]
    inodes = {s.inode for s in sample.sockets}
    assert set(sample.owners) <= inodes  # only the lab's owners: nothing of the recording host


def test_recording_has_moving_byte_counters(recording_samples: tuple[SocketSample, ...]) -> None:
    for before, after in itertools.pairwise(recording_samples):
        old = index_sockets(before.sockets)
        new = index_sockets(after.sockets)
        moved = [key for key in new.keys() & old.keys() if acked(new[key]) > acked(old[key])]
        assert moved, "no TCP socket sent anything between two samples"


def test_recording_has_unix_sockets(recording_samples: tuple[SocketSample, ...]) -> None:
    unix = [s for _, s in all_sockets(recording_samples[:1]) if s.proto == "unix"]
    kinds = {(s.sock_type, s.state) for s in unix}
    assert {("stream", "LISTEN"), ("stream", "ESTABLISHED"), ("dgram", "UNCONN")} <= kinds
    assert "@netdash-lab" in {s.local_addr for s in unix}
    assert any(s.local_addr and s.local_addr.endswith("/.s.PGSQL.5432") for s in unix)
    assert all(recording_samples[0].owners_of(s) for s in unix)
