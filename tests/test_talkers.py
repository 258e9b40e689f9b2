"""Top talkers and per-process bandwidth (TCP only): rankings, iftop's averages with known
numbers, decay, owners, cost, cgroups; then a paced flow between two namespaces on the real
kernel, sampled by the app's own sampler."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from netdash.engine import ConnectionsFrame, ConnectionsSampler, ConnectionsTracker
from netdash.model import (
    NO_OWNER_NEEDS_ROOT,
    NO_OWNER_ORPHAN,
    NO_OWNER_UNKNOWN,
    Owner,
    Socket,
    SocketSample,
)
from netdash.netns import resolve_netns
from netdash.sources.owners import OwnerMap
from netdash.sources.process import read_cgroup
from netdash.sources.sockets import SocketReader
from netdash.talkers import (
    CgroupLookup,
    TalkersFrame,
    TalkersTracker,
    describe_cgroup,
    host_port_label,
    moving_sockets,
)
from tests.conftest import needs_root
from tests.test_engine import tcp_info
from tests.vethlab import ADDR_B, veth_lab

ID = "3f4e" * 16  # a 64-hex container id


def conn(
    local: int,
    remote: str = "10.0.0.2",
    rport: int = 443,
    *,
    acked: int = 0,
    received: int = 0,
    inode: int | None = None,
    local_addr: str = "10.0.0.1",
    state: str = "ESTABLISHED",
) -> Socket:
    family = "inet6" if ":" in remote else "inet"
    return Socket(
        "tcp",
        family,
        state,
        local_addr,
        local,
        remote,
        rport,
        0,
        0,
        local if inode is None else inode,
        tcp=tcp_info(acked, received),
    )


class Flows:
    """Hand-made samples through a real ConnectionsTracker, then a TalkersTracker; counters are
    set per socket and kept between ticks, so a tick names only what moved."""

    def __init__(self, *socks: Socket, cgroups: CgroupLookup | None = None, **kw: object) -> None:
        self.socks = {sock.local_port: sock for sock in socks}
        self.owners: dict[int, tuple[Owner, ...]] = {}
        self.connections = ConnectionsTracker(interval=1.0)
        self.talkers = TalkersTracker(cgroups=cgroups or CgroupLookup(Path("/nonexistent")), **kw)  # type: ignore[arg-type]
        self.now = 0.0
        self.sample_kw: dict[str, object] = {}

    def move(self, port: int, tx: int = 0, rx: int = 0) -> None:
        """Socket ``port`` sends ``tx`` and receives ``rx`` more bytes by the next tick."""
        sock = self.socks[port]
        assert sock.tcp is not None and sock.tcp.bytes_acked is not None
        info = dataclasses.replace(
            sock.tcp,
            bytes_acked=sock.tcp.bytes_acked + tx,
            bytes_received=(sock.tcp.bytes_received or 0) + rx,
        )
        self.socks[port] = dataclasses.replace(sock, tcp=info)

    def frame(self, at: float | None = None) -> ConnectionsFrame:
        self.now = self.now + 1.0 if at is None else at
        sample = SocketSample(
            sockets=tuple(self.socks.values()),
            owners=dict(self.owners),
            taken_at=self.now,
            **self.sample_kw,  # type: ignore[arg-type]
        )
        return self.connections.update(sample)

    def tick(self, at: float | None = None) -> TalkersFrame:
        return self.talkers.update(self.frame(at))


def keys(talkers: tuple) -> list[Hashable]:
    return [t.key for t in talkers]


def test_the_first_frame_has_no_rates_and_no_entries() -> None:
    flows = Flows(conn(5000, acked=10**6))
    frame = flows.tick()
    assert frame.hosts == frame.processes == frame.local_ports == frame.host_ports == ()
    assert frame.total.rate.tx == 0 and frame.windows == (2.0, 10.0, 40.0)


def test_ranking_and_averages_with_known_numbers() -> None:
    flows = Flows(conn(5000, "10.0.0.2"), conn(5001, "10.0.0.3", 22))
    flows.tick(0.0)
    flows.move(5000, tx=1000)
    flows.move(5001, rx=6000)
    assert keys(flows.tick(1.0).hosts) == ["10.0.0.3", "10.0.0.2"]
    flows.move(5000, tx=1000)
    assert keys(flows.tick(2.0).hosts) == ["10.0.0.3", "10.0.0.2"]  # 6000 vs 2000 bytes in 2 s
    flows.move(5000, tx=1000)
    frame = flows.tick(3.0)

    # Ticks end at 1, 2, 3 (midpoints .5, 1.5, 2.5). The 2 s window holds the last two.
    a, b = frame.hosts
    assert (a.key, b.key) == ("10.0.0.2", "10.0.0.3")  # B's bytes left the 2 s window: reranked
    assert a.rate.tx == pytest.approx(1000) and a.sockets == 1
    assert frame.average(a, 2.0).tx == pytest.approx(1000)
    assert frame.average(a, 10.0).tx == pytest.approx(1000)
    assert b.rate.rx == 0 and b.sockets == 0
    assert frame.average(b, 2.0).rx == 0
    assert frame.average(b, 10.0).rx == pytest.approx(6000 / 3)
    assert frame.average(b, 40.0).rx == pytest.approx(6000 / 3)

    assert keys(frame.ranked_by(10.0).hosts) == ["10.0.0.3", "10.0.0.2"]
    assert keys(frame.ranked_by(None).hosts) == ["10.0.0.2", "10.0.0.3"]
    assert keys(frame.host_ports) == [("10.0.0.2", 443), ("10.0.0.3", 22)]
    assert [t.label for t in frame.host_ports] == ["10.0.0.2:443", "10.0.0.3:22"]
    assert keys(frame.local_ports) == [5000, 5001]
    assert frame.average(frame.total, 10.0).rx == pytest.approx(2000)
    assert frame.average(frame.total, 10.0).tx == pytest.approx(1000)
    with pytest.raises(ValueError):
        frame.ranked_by(5.0)

    flows.talkers.rank_window = 10.0
    assert keys(flows.tick(4.0).hosts) == ["10.0.0.3", "10.0.0.2"]


def test_averages_are_weighted_by_time_not_by_tick() -> None:
    flows = Flows(conn(5000))
    flows.tick(0.0)
    flows.move(5000, tx=4000)
    flows.tick(1.0)  # 4000 B/s for one second
    frame = flows.tick(4.0)  # then nothing for three seconds
    (host,) = frame.hosts
    # 4000 bytes over 4 s, not the mean of the two ticks' rates (2000).
    assert frame.average(host, 10.0).tx == pytest.approx(1000)
    # The 2 s window (cutoff 2.0) holds only the newest tick (midpoint 2.5): nothing moved.
    assert frame.average(host, 2.0).tx == 0


def test_an_entry_decays_to_zero_and_drops_out_after_the_longest_window() -> None:
    flows = Flows(conn(5000))
    flows.tick(0.0)
    for at in (1.0, 2.0, 3.0):
        flows.move(5000, tx=1000)
        flows.tick(at)
    seen: dict[float, tuple[float, float, float]] = {}
    for at in range(4, 44):
        frame = flows.tick(float(at))
        if frame.hosts:
            seen[at] = tuple(frame.average(frame.hosts[0], w).tx for w in frame.windows)
        else:
            seen[at] = ()  # type: ignore[assignment]
    assert seen[4] == pytest.approx((500, 750, 750))  # 2 s: ticks 3-4; 10 s and 40 s: all four
    assert seen[5][0] == 0  # gone from the 2 s window
    assert seen[10] == pytest.approx((0, 300, 300))
    assert seen[11] == pytest.approx((0, 200, 3000 / 11))  # the tick ending at 1 s left 10 s
    assert seen[13][1] == 0
    assert seen[42] == pytest.approx((0, 0, 1000 / 40))  # only the tick ending at 3 s is left
    assert seen[43] == ()  # every average is 0: dropped
    last = flows.tick(44.0)
    assert last.processes == last.local_ports == last.host_ports == ()


def test_processes_with_several_owners_and_fds() -> None:
    flows = Flows(conn(5000, inode=11), conn(5001, inode=12))
    nginx = Owner(pid=10, comm="nginx", uid=33, user="www-data")
    flows.owners = {
        11: (
            nginx,
            Owner(pid=11, comm="nginx", uid=33, user="www-data"),
            Owner(10, "nginx"),
        ),
        12: (nginx,),
    }
    flows.tick()
    flows.move(5000, tx=1000)
    flows.move(5001, tx=500, rx=100)
    frame = flows.tick()
    parent, child = frame.processes
    assert parent.key == 10 and parent.label == "nginx (10)"
    assert (parent.rate.tx, parent.rate.rx, parent.sockets) == (1500, 100, 2)  # fd 7: once
    assert parent.process is not None
    assert (parent.process.pid, parent.process.comm, parent.process.user) == (
        10,
        "nginx",
        "www-data",
    )
    assert child.key == 11 and (child.rate.tx, child.sockets) == (1000, 1)
    # A shared socket counts for each holder, so processes may add up to more than the total.
    assert frame.total.rate.tx == 1500


def test_sockets_without_owner_go_to_a_bucket_per_reason() -> None:
    closing = conn(5000, inode=0, state="FIN_WAIT1")  # closed by its process, still sending
    hidden = conn(5001, inode=99)  # another user's: its fds are not readable
    flows = Flows(closing, hidden)
    flows.sample_kw = {"owners_complete": False, "is_root": False}
    flows.tick()
    flows.move(5000, tx=300)
    flows.move(5001, rx=200)
    frame = flows.tick()
    by_key = {t.key: t for t in frame.processes}
    assert set(by_key) == {NO_OWNER_ORPHAN, NO_OWNER_NEEDS_ROOT}
    assert by_key[NO_OWNER_ORPHAN].rate.tx == 300 and by_key[NO_OWNER_ORPHAN].process is None
    assert by_key[NO_OWNER_NEEDS_ROOT].rate.rx == 200
    assert by_key[NO_OWNER_NEEDS_ROOT].label == NO_OWNER_NEEDS_ROOT


def test_loopback_counts_both_ends_and_mapped_addresses_join_their_host() -> None:
    client = conn(5000, "127.0.0.1", 80, local_addr="127.0.0.1")
    server = conn(80, "127.0.0.1", 5000, local_addr="127.0.0.1")
    mapped = conn(6000, "::ffff:10.0.0.9", 443, local_addr="::ffff:10.0.0.1")
    plain = conn(6001, "10.0.0.9", 443)
    v6 = conn(6002, "fd00::2", 443, local_addr="fd00::1")
    flows = Flows(client, server, mapped, plain, v6)
    flows.tick()
    flows.move(5000, tx=1000)
    flows.move(80, rx=1000)
    flows.move(6000, tx=10)
    flows.move(6001, tx=20)
    flows.move(6002, tx=1)
    frame = flows.tick()
    hosts = {t.key: t for t in frame.hosts}
    assert (hosts["127.0.0.1"].rate.rx, hosts["127.0.0.1"].rate.tx) == (1000, 1000)
    assert hosts["127.0.0.1"].sockets == 2
    assert hosts["10.0.0.9"].rate.tx == 30 and hosts["10.0.0.9"].sockets == 2
    ports = {t.key: t.rate for t in frame.local_ports}
    assert (ports[80].rx, ports[5000].tx) == (1000, 1000)
    assert "[fd00::2]:443" in [t.label for t in frame.host_ports]
    assert host_port_label("fd00::2", None) == "[fd00::2]:*"


def test_limit_keeps_the_top_entries() -> None:
    flows = Flows(*(conn(5000 + n, f"10.0.1.{n}") for n in range(5)), limit=2)
    flows.tick()
    for n in range(5):
        flows.move(5000 + n, tx=100 * (n + 1))
    frame = flows.tick()
    assert keys(frame.hosts) == ["10.0.1.4", "10.0.1.3"]
    assert keys(frame.local_ports) == [5004, 5003]
    assert keys(frame.processes) == [NO_OWNER_UNKNOWN]  # all five in one bucket, ranked alone
    assert frame.processes[0].sockets == 5


class Counting(Mapping[Hashable, object]):
    """A mapping that records every access, to show which keys a consumer touched."""

    def __init__(self, inner: Mapping[Hashable, object]) -> None:
        self.inner = inner
        self.looked_up: list[Hashable] = []
        self.walks = 0

    def get(self, key: Hashable, default: object = None) -> object:  # type: ignore[override]
        self.looked_up.append(key)
        return self.inner.get(key, default)

    def __getitem__(self, key: Hashable) -> object:
        self.looked_up.append(key)
        return self.inner[key]

    def __contains__(self, key: object) -> bool:
        self.looked_up.append(key)  # type: ignore[arg-type]
        return key in self.inner

    def __iter__(self) -> Iterator[Hashable]:
        self.walks += 1
        return iter(self.inner)

    def __len__(self) -> int:
        self.walks += 1
        return len(self.inner)


def test_a_tick_visits_only_the_sockets_that_moved() -> None:
    idle = [conn(n, f"10.1.{n // 250}.{n % 250}", inode=n + 1, acked=n) for n in range(10_000)]
    flows = Flows(*idle, conn(20_000, inode=1), conn(20_001, inode=2))
    flows.tick()
    for sock in idle[:3]:  # a change that moves no bytes: changed, but not moving
        flows.socks[sock.local_port] = dataclasses.replace(sock, recv_q=5)
    flows.move(20_000, tx=100)
    flows.move(20_001, rx=50)
    frame = flows.frame()
    assert len(frame.by_key) == 10_002 and len(frame.diff.changed) == 5
    by_key, rates = Counting(frame.by_key), Counting(frame.rates)
    counted = dataclasses.replace(frame, by_key=by_key, rates=rates)  # type: ignore[arg-type]

    talkers = flows.talkers.update(counted)

    assert by_key.walks == rates.walks == 0
    assert len(rates.looked_up) == 5  # the changed keys only
    moved = {conn(20_000).key, conn(20_001).key}
    assert set(by_key.looked_up) == moved  # the three with no bytes were dropped on their rate
    assert [t.key for t in talkers.local_ports] == [20_000, 20_001]
    assert {sock.key for sock, _ in moving_sockets(frame)} == moved


CGROUPS = [
    ("/system.slice/nginx.service", "nginx.service", None),
    ("/system.slice/nginx.service/workers", "nginx.service", None),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", None),
    ("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service", "foo.service", None),
    (f"/system.slice/docker-{ID}.scope", f"docker-{ID}.scope", ID),
    (
        f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{ID}.scope",
        f"cri-containerd-{ID}.scope",
        ID,
    ),
    (f"/kubepods/burstable/podabc/{ID}", None, ID),
    (f"/docker/{ID}", None, ID),
    ("memory:/process_api/12ab", None, None),
    ("/", None, None),
]


@pytest.mark.parametrize(("path", "unit", "container"), CGROUPS)
def test_describe_cgroup(path: str, unit: str | None, container: str | None) -> None:
    tag = describe_cgroup(path)
    assert (tag.path, tag.unit, tag.container) == (path, unit, container)


def fake_process(root: Path, pid: int, start: int, cgroup: str, comm: str = "a b) c") -> None:
    """A /proc/PID with the stat and cgroup files the lookup reads (comm with ')' on purpose)."""
    folder = root / str(pid)
    folder.mkdir(exist_ok=True)
    rest = " ".join(["0"] * 17)  # fields 5-21
    (folder / "stat").write_text(f"{pid} ({comm}) S 1 {rest} {start} 0 0\n")
    (folder / "cgroup").write_text(cgroup)


def test_cgroup_lookup_is_cached_per_pid_and_start_time(tmp_path: Path) -> None:
    fake_process(tmp_path, 42, 1000, "0::/system.slice/nginx.service\n")
    lookup = CgroupLookup(tmp_path)
    first = lookup.lookup(42)
    assert first is not None and first.unit == "nginx.service"
    (tmp_path / "42" / "cgroup").write_text("0::/system.slice/other.service\n")
    assert lookup.lookup(42) is first  # same process: not read again
    fake_process(tmp_path, 42, 2000, "0::/system.slice/other.service\n")  # pid reused
    again = lookup.lookup(42)
    assert again is not None and again.unit == "other.service"
    assert lookup.lookup(43) is None  # gone


def test_ranked_processes_carry_their_cgroup(tmp_path: Path) -> None:
    fake_process(tmp_path, 10, 5, f"12:memory:/docker/{ID}\n0::/\n")
    flows = Flows(conn(5000, inode=11), cgroups=CgroupLookup(tmp_path))
    flows.owners = {11: (Owner(10, "redis"),)}
    flows.tick()
    flows.move(5000, tx=10)
    (talker,) = flows.tick().processes
    assert talker.process is not None and talker.process.cgroup is not None
    assert talker.process.cgroup.container == ID
    assert talker.process.cgroup.path == f"memory:/docker/{ID}"
    (tmp_path / "10" / "stat").unlink()  # looked up once: later ticks keep the tag
    (again,) = flows.tick().processes
    assert again.process == talker.process


# ------------------------------------------------------------------------------- real kernel

PACE_CHUNK = 32 * 1024  # bytes written every PACE_PERIOD: 1.31 MB/s, far below what a veth carries
PACE_PERIOD = 0.025
PACE_SECONDS = 5.0
SENDER_COMM = "ndtalk-send"

RECEIVER = """
import socket, sys
server = socket.create_server((sys.argv[1], 0))
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
while conn.recv(1 << 16):
    pass
"""

#: Writes a chunk at absolute deadlines (a late wake-up catches up, so the mean pace holds) under
#: a comm of its own, then says "connected" once the connection is up.
SENDER = """
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[5].encode(), 0, 0, 0)  # PR_SET_NAME
chunk, period, seconds = b"t" * int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[6])
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
start = time.monotonic()
for n in range(int(seconds / period)):
    time.sleep(max(0.0, start + n * period - time.monotonic()))
    sock.sendall(chunk)
sock.close()
"""


@contextmanager
def in_netns(netns: str, script: str, *args: object) -> Iterator[subprocess.Popen[str]]:
    """``python -c script args`` inside ``netns`` (`ip netns exec` execs: the pid is python's);
    killed and reaped on the way out, whatever happened."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-c", script, *map(str, args)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, f"the lab process exited early ({proc.poll()})"
    return line


def sample_every(netns: str, period: float, count: int) -> list[TalkersFrame]:
    """The app's own sampler (SocketReader + OwnerMap, TCP only) inside ``netns``, through
    ConnectionsTracker and TalkersTracker, ``count`` ticks ``period`` apart."""
    sampler = ConnectionsSampler(SocketReader(netns=resolve_netns(netns)), OwnerMap())
    sampler.tcp_info, sampler.unix = True, False
    connections, talkers = ConnectionsTracker(period), TalkersTracker()
    frames = []
    try:
        start = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, start + n * period - time.monotonic()))
            frames.append(talkers.update(connections.update(sampler.sample())))
    finally:
        sampler.close()
    return frames


@needs_root
def test_a_paced_flow_names_the_receiver_and_the_sending_process() -> None:
    pace = PACE_CHUNK / PACE_PERIOD
    with veth_lab() as lab, in_netns(lab.b, RECEIVER, ADDR_B) as receiver:
        port = int(read_line(receiver))
        args = (ADDR_B, port, PACE_CHUNK, PACE_PERIOD, SENDER_COMM, PACE_SECONDS)
        with in_netns(lab.a, SENDER, *args) as sender:
            assert read_line(sender) == "connected"
            time.sleep(0.5)  # past the first writes
            frames = sample_every(lab.a, 0.5, 8)  # 3.5 s of a 5 s flow: 7 ticks with rates
            cgroup = read_cgroup(sender.pid)

    last = frames[-1]
    assert [t.key for t in last.hosts] == [ADDR_B]
    assert [t.key for t in last.host_ports] == [(ADDR_B, port)]
    (top,) = last.processes
    assert top.key == sender.pid and top.process is not None
    assert (top.process.pid, top.process.comm) == (sender.pid, SENDER_COMM)
    assert top.process.cgroup is not None and top.process.cgroup.path == cgroup
    assert top.sockets == 1
    for talker in (top, last.hosts[0], last.total):
        avg = last.average(talker, 2.0)
        assert avg.tx == pytest.approx(pace, rel=0.10), (avg, pace)
        assert avg.rx == 0  # the receiver sends no payload; acks are not bytes_received
    ticks = [f.total.rate.tx for f in frames[1:]]  # each tick's own rate, not a running total
    assert all(0.5 * pace < tx < 1.5 * pace for tx in ticks), (ticks, pace)
