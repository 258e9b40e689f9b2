"""The processes source on the real system: processes we start (known names, fds, sockets,
cgroups), a zombie, a process that vanishes mid-sample, a reused pid, a busy loop, records kept
across ticks, ``ps`` as the oracle, and an unprivileged reader. Parsers also on recorded text."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netdash.model import Owner, Proc, Socket, SocketSample
from netdash.sources import processes
from netdash.sources.processes import (
    PAGE_SIZE,
    ProcessReader,
    parse_cgroups,
    parse_cmdline,
    parse_fd_limits,
    parse_stat,
    parse_status,
    proc_to_json,
    socket_counts,
    tag_path,
)
from tests.conftest import needs_root

REPO = Path(__file__).resolve().parent.parent
CGROUP_FS = Path("/sys/fs/cgroup")
HEX = "4f3c2b1a" * 8  # a 64-hex container id

#: A child holding known resources: comm set through /proc/self/comm, N files, 2 TCP listeners,
#: 3 connections to itself (both ends: 6 ESTABLISHED), 4 bound UDP sockets, 2 UNIX pairs (4
#: sockets). Prints one JSON line when ready; exits when its stdin closes.
HOLDER = r"""
import json, os, socket, sys
name, files = sys.argv[1], int(sys.argv[2])
with open("/proc/self/comm", "w") as comm:
    comm.write(name)
keep = [open(os.devnull) for _ in range(files)]
listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
for _ in range(3):
    keep.append(socket.create_connection(listeners[0].getsockname()))
    keep.append(listeners[0].accept()[0])
for _ in range(4):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    keep.append(udp)
for _ in range(2):
    keep.extend(socket.socketpair())
fds = len(os.listdir("/proc/self/fd")) - 1  # the listing's own directory fd
print(json.dumps({"pid": os.getpid(), "fds": fds}), flush=True)
sys.stdin.read()
"""


# ------------------------------------------------------------------------------- children


class Children:
    """Processes a test starts; killed and reaped at teardown, whatever happened."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[str]] = []
        self.pids: list[int] = []  # spawned without Popen (zombies to be)

    def start(self, argv: list[str], ready_line: bool = False) -> tuple[int, Any]:
        child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.popens.append(child)
        said = json.loads(child.stdout.readline()) if ready_line else None  # type: ignore[union-attr]
        return child.pid, said

    def sleeper(self, seconds: int = 60) -> int:
        pid, _ = self.start(["sleep", str(seconds)])
        # Until exec() has set up argv: comm changes a moment before the new cmdline is there.
        wait_for(lambda: cmdline_of(pid) == f"sleep\0{seconds}\0")
        return pid

    def close(self) -> None:
        for child in self.popens:
            child.kill()
            child.wait(timeout=10)
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.popens.clear()
        self.pids.clear()


@pytest.fixture
def children() -> Iterator[Children]:
    kept = Children()
    try:
        yield kept
    finally:
        kept.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.01)


def cmdline_of(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return None


def state_of(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()[0].decode()


def by_pid(sample: Any) -> dict[int, Proc]:
    return {proc.pid: proc for proc in sample.procs}


# -------------------------------------------------------------------------------- parsers


def test_parse_stat_takes_comm_up_to_the_last_parenthesis() -> None:
    raw = (
        b"4242 (a) (b c) S 1 4242 4242 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 3 0 123456 "
        b"9000000 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
    )
    stat = parse_stat(raw)
    assert stat.comm == b"a) (b c"
    assert (stat.state, stat.ppid, stat.cpu_ticks, stat.threads) == ("S", 1, 10, 3)
    assert (stat.start_ticks, stat.rss_pages) == (123456, 512)


def test_parse_status_gives_the_effective_uid_and_the_exact_rss() -> None:
    raw = (
        b"Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t7\n"
        b"Uid:\t0\t33\t33\t33\nGid:\t0\t33\t33\t33\nVmPeak:\t  9000 kB\n"
        b"VmRSS:\t    1812 kB\nRssAnon:\t     108 kB\nThreads:\t1\n"
    )
    assert parse_status(raw) == (33, 1812 * 1024)
    kernel_thread = b"Name:\tkthreadd\nUid:\t0\t0\t0\t0\nThreads:\t1\n"
    assert parse_status(kernel_thread) == (0, None)


def test_parse_cmdline_zombies_are_empty_and_bytes_are_kept_visible() -> None:
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"nginx: worker process\0") == ("nginx: worker process",)
    assert parse_cmdline(b"a\0\0b\xff\0") == ("a", "", "b\\xff")


def test_parse_fd_limits_reads_the_max_open_files_line() -> None:
    text = (
        b"Limit                     Soft Limit           Hard Limit           Units     \n"
        b"Max processes             7823                 7823                 processes \n"
        b"Max open files            1024                 524288               files     \n"
        b"Max locked memory         8388608              8388608              bytes     \n"
    )
    assert parse_fd_limits(text) == (1024, 524288)
    assert parse_fd_limits(text.replace(b"1024 ", b"unlimited ")) == (None, 524288)
    assert parse_fd_limits(b"Limit Soft Hard Units\n") == (None, None)


def test_parse_cgroups_hybrid_pure_v2_and_pure_v1() -> None:
    hybrid = (
        "12:cpu,cpuacct:/system.slice/nginx.service\n"
        "4:memory:/process_api/5b5d\n"
        "1:name=systemd:/system.slice/nginx.service\n"
        "0::/system.slice/nginx.service\n"
    )
    assert parse_cgroups(hybrid) == (
        "/system.slice/nginx.service",
        {
            "cpu,cpuacct": "/system.slice/nginx.service",
            "memory": "/process_api/5b5d",
            "name=systemd": "/system.slice/nginx.service",
        },
    )
    assert parse_cgroups("0::/user.slice/user-1000.slice/session-3.scope\n") == (
        "/user.slice/user-1000.slice/session-3.scope",
        {},
    )
    assert parse_cgroups("3:pids:/a:b\n") == (None, {"pids": "/a:b"})  # paths may hold ':'


# ----------------------------------------------------------------------- the real system


@needs_root
def test_a_process_we_start_has_its_name_fds_sockets_and_json(children: Children) -> None:
    from netdash.engine import ConnectionsSampler
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    pid, said = children.start([sys.executable, "-c", HOLDER, "nd-holder", "7"], ready_line=True)
    proc = by_pid(ProcessReader().sample())[pid]
    assert proc.name == "nd-holder" and proc.user == "root" and proc.uid == 0
    assert proc.cmdline == (sys.executable, "-c", HOLDER, "nd-holder", "7")
    assert proc.ppid == os.getpid() and proc.state in ("S", "R") and proc.threads == 1
    assert proc.num_fds == said["fds"] == len(os.listdir(f"/proc/{pid}/fd"))
    assert proc.num_fds >= 3 + 7 + 2 + 6 + 4 + 4
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    soft, hard = next(line for line in limits if line.startswith("Max open files")).split()[3:5]
    assert (proc.fd_soft_limit, proc.fd_hard_limit) == (int(soft), int(hard))
    assert (
        proc.netns == os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino
    )
    assert proc.cpu_percent is None  # first sight
    assert abs(proc.start_time - time.time()) < 60 and proc.denied == ()

    with SocketReader() as reader:
        counts = socket_counts(ConnectionsSampler(reader, OwnerMap()).sample())
    expected = {"ESTABLISHED": 6, "LISTEN": 2, "udp": 4, "unix": 4}
    assert counts[pid] == expected
    dumped = proc_to_json(proc, counts[pid])
    assert list(dumped) == [
        "pid", "ppid", "name", "cmdline", "user", "state", "threads", "cpu_percent", "rss",
        "num_fds", "fd_limit", "start_time", "cgroup", "cgroups_v1", "unit", "container",
        "sockets",
    ]  # fmt: skip
    assert dumped["sockets"] == expected and list(dumped["sockets"])[-2:] == ["udp", "unix"]
    assert (dumped["pid"], dumped["name"], dumped["fd_limit"]) == (pid, "nd-holder", int(soft))
    assert dumped["cmdline"] == list(proc.cmdline) and dumped["cpu_percent"] is None
    assert json.loads(json.dumps(dumped)) == dumped  # plain JSON types only


def _my_group(hierarchy: str) -> str:
    """This process's path in a hierarchy ("0::" for the unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if (hierarchy == "v2" and number == "0") or controllers == hierarchy:
            return path
    raise AssertionError(f"no {hierarchy} line in /proc/self/cgroup")


class TempCgroup:
    """A group we create under our own (LAB.md recipe 5), removed once its processes are gone."""

    def __init__(self, mount: Path, hierarchy: str, name: str) -> None:
        self.path = _my_group(hierarchy).rstrip("/") + "/" + name
        self.dir = mount / self.path.lstrip("/")
        self.dir.mkdir()

    def add(self, pid: int) -> None:
        (self.dir / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        for _ in range(100):  # a killed member leaves the group a moment after it is reaped
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)
        self.dir.rmdir()


@needs_root
def test_cgroups_we_create_appear_and_name_the_unit_and_container(children: Children) -> None:
    v1_mount, v2_mount = CGROUP_FS / "memory", CGROUP_FS / "unified"
    if (CGROUP_FS / "cgroup.controllers").exists():  # a pure v2 host
        v1_mount, v2_mount = Path("/nonexistent"), CGROUP_FS
    if not v1_mount.is_dir() and not v2_mount.is_dir():
        raise AssertionError("neither a v1 memory hierarchy nor a v2 mount at /sys/fs/cgroup")
    pid = children.sleeper()
    slow, quick = ProcessReader(details_interval=3600.0), ProcessReader(details_interval=0.0)
    first = by_pid(slow.sample())[pid]
    quick.sample()
    groups: list[TempCgroup] = []
    try:
        if v1_mount.is_dir():
            assert first.cgroups_v1["memory"] == _my_group("memory")
            name = f"nd-t{os.getpid()}-docker-{HEX}.scope"
            groups.append(TempCgroup(v1_mount, "memory", name))
            groups[-1].add(pid)
            proc = by_pid(ProcessReader().sample())[pid]
            assert proc.cgroups_v1["memory"] == groups[-1].path
            assert proc.cgroup in ("/", None) and tag_path(proc) == f"memory:{groups[-1].path}"
            dumped = proc_to_json(proc, {})
            assert (dumped["unit"], dumped["container"]) == (name, HEX)
            assert dumped["cgroups_v1"]["memory"] == groups[-1].path
            assert dumped["sockets"] == {"udp": 0, "unix": 0}
        if v2_mount.is_dir():
            assert first.cgroup == _my_group("v2")
            groups.append(TempCgroup(v2_mount, "v2", f"nd-t{os.getpid()}.service"))
            groups[-1].add(pid)
            proc = by_pid(ProcessReader().sample())[pid]
            assert proc.cgroup == groups[-1].path
            assert proc_to_json(proc, {})["unit"] == f"nd-t{os.getpid()}.service"
        # The sleeper's stat did not move: a reader refreshing details hourly keeps the record
        # it read first; one refreshing every sample sees the moves.
        stale = by_pid(slow.sample())[pid]
        assert (stale.cgroup, stale.cgroups_v1) == (first.cgroup, first.cgroups_v1)
        moved = by_pid(quick.sample())[pid]
        assert (moved.cgroup, dict(moved.cgroups_v1)) == (proc.cgroup, dict(proc.cgroups_v1))
        assert moved.cgroup != first.cgroup or moved.cgroups_v1 != first.cgroups_v1
    finally:
        children.close()
        for group in reversed(groups):
            group.remove()


@needs_root
def test_a_zombie_shows_as_zombie(children: Children) -> None:
    pid = os.posix_spawnp("true", ["true"], os.environ)
    children.pids.append(pid)  # reaped at teardown: until then it stays a zombie
    wait_for(lambda: state_of(pid) == "Z")
    proc = by_pid(ProcessReader().sample())[pid]
    assert proc.zombie and proc.state == "Z" and proc.name == "true"
    assert proc.cmdline == () and proc.rss == 0 and proc.ppid == os.getpid()
    assert proc.netns is None and proc.denied == ()  # a zombie has no namespaces left
    assert proc_to_json(proc, {})["state"] == "Z"


@needs_root
def test_a_process_that_exits_after_the_listing_is_skipped(children, monkeypatch) -> None:
    victim = children.sleeper()
    listed = processes._list_pids

    def list_then_kill(root: str) -> set[int]:
        pids = listed(root)
        os.kill(victim, signal.SIGKILL)
        os.waitpid(victim, 0)
        return pids

    monkeypatch.setattr(processes, "_list_pids", list_then_kill)
    reader = ProcessReader()
    sample = reader.sample()
    assert victim not in by_pid(sample) and os.getpid() in by_pid(sample)
    assert reader.stats.vanished >= 1


@pytest.mark.parametrize("when", ["status", "limits"])
@needs_root
def test_a_process_that_exits_between_its_files_is_skipped(children, monkeypatch, when) -> None:
    """Killed after its stat was read: the next file (status, or limits among the details) is
    gone, and the process is dropped without an error."""
    victim = children.sleeper()
    read = processes._read

    def read_then_kill(path: str, size: int = 4096) -> bytes:
        if path == f"/proc/{victim}/{when}" and state_of(victim) is not None:
            os.kill(victim, signal.SIGKILL)
            os.waitpid(victim, 0)
        return read(path, size)

    monkeypatch.setattr(processes, "_read", read_then_kill)
    reader = ProcessReader()
    assert victim not in by_pid(reader.sample())
    assert state_of(victim) is None and reader.stats.vanished >= 1


REUSE = r"""
import json, os, time
from netdash.sources.processes import ProcessReader

def spawn(seconds):
    pid = os.posix_spawnp("sleep", ["sleep", seconds], os.environ)
    while open(f"/proc/{pid}/cmdline").read() != f"sleep\0{seconds}\0":  # exec() done
        time.sleep(0.01)
    return pid

reader = ProcessReader()
first = spawn("61")
one = {p.pid: p for p in reader.sample().procs}[first]
os.kill(first, 9)
os.waitpid(first, 0)
time.sleep(0.05)  # a later start tick (10 ms each)
for attempt in range(100):
    with open("/proc/sys/kernel/ns_last_pid", "w") as last:
        last.write(str(first - 1))
    second = spawn("62")
    if second == first:
        break
    os.kill(second, 9)
    os.waitpid(second, 0)
two = {p.pid: p for p in reader.sample().procs}[second]
print(json.dumps({"pids": [first, second], "attempts": attempt + 1,
                  "keys": [list(one.key), list(two.key)], "cpu": two.cpu_percent,
                  "cmdlines": [one.cmdline, two.cmdline], "stats": reader.stats.reread}))
"""


@needs_root
def test_a_reused_pid_is_a_new_process() -> None:
    """In a PID namespace of its own (nobody else forks there), a sleeper dies and ns_last_pid
    makes the next one get its pid: the reader sees a new key, not the old process moved."""
    if shutil.which("unshare") is None:
        raise AssertionError("needs unshare (util-linux)")
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", REUSE],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["pids"][0] == seen["pids"][1]
    (pid_a, start_a), (pid_b, start_b) = seen["keys"]
    assert pid_a == pid_b and start_b > start_a
    assert seen["cpu"] is None  # first sight of a new process, not a delta against the old one
    assert seen["cmdlines"] == [["sleep", "61"], ["sleep", "62"]]


@needs_root
def test_cpu_percent_of_a_busy_loop_and_of_a_sleeper(children: Children) -> None:
    busy, _ = children.start([sys.executable, "-c", "while True: pass"])
    sleeper = children.sleeper()
    wait_for(lambda: state_of(busy) == "R")
    reader = ProcessReader()
    first = by_pid(reader.sample(details=False))
    assert first[busy].cpu_percent is None and first[sleeper].cpu_percent is None
    time.sleep(1.0)
    second = by_pid(reader.sample(details=False))
    assert 40.0 <= second[busy].cpu_percent <= 110.0  # one core, on a shared machine
    assert second[sleeper].cpu_percent == 0.0


@needs_root
def test_unchanged_processes_keep_their_records_and_changed_ones_do_not(children) -> None:
    sleepers = [children.sleeper() for _ in range(5)]
    busy, _ = children.start([sys.executable, "-c", "while True: pass"])
    wait_for(lambda: state_of(busy) == "R")
    reader = ProcessReader()
    reader.sample()
    second = by_pid(reader.sample())  # cpu_percent None -> 0.0: new records once
    time.sleep(0.05)
    third = by_pid(reader.sample())
    assert all(third[pid] is second[pid] for pid in sleepers)
    assert third[busy] is not second[busy] and third[busy].cpu_percent > 0
    assert reader.stats.kept >= len(sleepers) and reader.stats.reread >= 1
    assert all(third[pid].num_fds is not None for pid in sleepers)


def as_ps_prints(name: str) -> str:
    """ps prints each control character of a name as "?" (other tests on this machine run
    processes with such names on purpose); an undecodable byte, which we show as \\xNN, too."""
    name = re.sub(r"\\x[0-9a-f]{2}", "?", name)
    return "".join(char if char.isprintable() else "?" for char in name)


def _ps_rows() -> dict[int, tuple[str, ...]]:
    out = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,user=,stat=,rss=,nlwp=,comm="],
        env={**os.environ, "LC_ALL": "C.UTF-8"},  # UTF-8 names as they are, not as "?"
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        pid, *rest = line.split(None, 6)
        rows[int(pid)] = tuple(rest)
    return rows


@needs_root
def test_a_full_sample_agrees_with_ps(children: Children) -> None:
    """For every process whose ps line did not move between a ps run before and one after our
    sample, ppid, user and comm are what ps says; for our sleepers also state, rss and threads
    (a busy process elsewhere on the machine may run or grow while we read it)."""
    mine = [children.sleeper() for _ in range(5)]
    before = _ps_rows()
    sample = by_pid(ProcessReader().sample(details=False))
    after = _ps_rows()
    stable = {pid: row for pid, row in before.items() if after.get(pid) == row}
    stable.pop(os.getpid(), None)  # we run while sampling, ps sees us wait for it
    compared = 0
    for pid, (ppid, user, stat, rss, nlwp, comm) in stable.items():
        proc = sample.get(pid)
        if proc is None:
            continue
        ours: tuple[object, ...] = (proc.ppid, as_ps_prints(proc.name))
        theirs: tuple[object, ...] = (int(ppid), comm.removesuffix(" <defunct>"))
        if pid in mine:  # sleeping for sure: what moves in a busy process cannot move here
            ours += (proc.state, proc.rss // 1024, proc.threads)
            theirs += (stat[0], int(rss), int(nlwp))
        assert ours == theirs, (pid, ours, theirs)
        if user.endswith("+"):  # ps cuts names longer than its column
            assert (proc.user or "").startswith(user[:-1])
        else:
            assert proc.user == user
        compared += 1
    assert set(mine) <= stable.keys() and compared >= len(mine) + 10


PROBE = r"""
import json, os, sys
from netdash.sources.processes import ProcessReader
procs = {p.pid: p for p in ProcessReader().sample().procs}
def show(p):
    return {"user": p.user, "netns": p.netns, "num_fds": p.num_fds, "denied": list(p.denied),
            "cmdline": list(p.cmdline or ()), "cgroup": p.cgroup, "fd_limit": p.fd_soft_limit}
print(json.dumps({"me": show(procs[os.getpid()]), "root": show(procs[int(sys.argv[1])])}))
"""


@needs_root
def test_as_nobody_other_users_hidden_fields_are_named_in_denied(children) -> None:
    from tests.test_unprivileged import SETPRIV, python_for_nobody

    python = python_for_nobody()
    if shutil.which("setpriv") is None or python is None:
        raise AssertionError("needs setpriv and a python nobody may run")
    roots = children.sleeper()
    top = Path(tempfile.mkdtemp(prefix="nd-nobody-"))
    try:
        shutil.copytree(
            REPO / "netdash", top / "netdash", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        cmd = [*SETPRIV, "env", f"PYTHONPATH={top}", "PYTHONDONTWRITEBYTECODE=1", python]
        done = subprocess.run(
            [*cmd, "-c", PROBE, str(roots)], capture_output=True, text=True, timeout=60
        )
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["me"]["user"] == "nobody" and seen["me"]["denied"] == []
    assert seen["me"]["netns"] == os.stat("/proc/self/ns/net").st_ino
    root = seen["root"]
    assert root["user"] == "root" and root["cmdline"] == ["sleep", "60"]
    assert root["netns"] is None and "netns" in root["denied"]
    # Linux >= 6.2 counts fds in st_size of /proc/PID/fd for anyone; older kernels hide them.
    assert (root["num_fds"] is None) == ("num_fds" in root["denied"])
    assert root["fd_limit"] is not None and root["cgroup"] is not None


# --------------------------------------------------------------------- socket_counts, json


def _sock(proto: str, state: str, inode: int) -> Socket:
    return Socket(proto, "inet", state, "127.0.0.1", 1, None, None, 0, 0, inode)


def test_socket_counts_counts_each_socket_once_per_holding_process() -> None:
    sockets = (
        _sock("tcp", "LISTEN", 1),
        _sock("tcp", "ESTABLISHED", 2),
        _sock("tcp", "CLOSE_WAIT", 3),
        _sock("tcp", "TIME_WAIT", 0),  # nobody holds it
        _sock("udp", "UNCONN", 4),
        _sock("unix", "ESTABLISHED", 5),
    )
    owners = {
        1: (Owner(10, "a"), Owner(20, "b")),  # forked
        2: (Owner(10, "a"),),
        3: (Owner(20, "b"),),
        4: (Owner(20, "b"),),
        5: (Owner(10, "a"),),
    }
    counts = socket_counts(SocketSample(sockets, owners))
    assert counts == {
        10: {"ESTABLISHED": 1, "LISTEN": 1, "udp": 0, "unix": 1},
        20: {"CLOSE_WAIT": 1, "LISTEN": 1, "udp": 1, "unix": 0},
    }
    assert list(counts[20]) == ["CLOSE_WAIT", "LISTEN", "udp", "unix"]  # tcp_states.h order


def test_proc_to_json_takes_the_pane_counts_too_and_names_v1_units() -> None:
    proc = Proc(
        pid=7, start_ticks=5, ppid=1, name="nginx", state="S", uid=33, user="www-data",
        cmdline=None, threads=2, rss=3 * PAGE_SIZE, cpu_percent=12.3456, start_time=1.5,
        num_fds=9, fd_soft_limit=1024, fd_hard_limit=4096, netns=4026531840, cgroup="/",
        cgroups_v1={"memory": "/", "name=systemd": "/system.slice/nginx.service"},
    )  # fmt: skip
    dumped = proc_to_json(proc, {"ESTABLISHED": 2, "total": 2, "LISTEN": 0})
    assert dumped["sockets"] == {"ESTABLISHED": 2, "udp": 0, "unix": 0}
    assert dumped["cmdline"] is None and dumped["cpu_percent"] == 12.35
    assert (dumped["unit"], dumped["container"]) == ("nginx.service", None)
    assert dumped["rss"] == 3 * PAGE_SIZE and dumped["fd_limit"] == 1024
