"""The owner map (netdash.sources.owners) against real processes holding real sockets.

Children are tests/helpers_owners.py; each prints its pids, fds and socket inodes (from its own
fstat(), an oracle independent of /proc/PID/fd) and exits when its stdin closes.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from netdash.model import Owner
from netdash.sources.owners import (
    FULL_PASS_SECONDS_PER_SOCKET,
    OwnerMap,
    parse_stat,
    parse_status_uids,
    read_cmdline,
)
from netdash.textsafe import decode

HELPER = Path(__file__).with_name("helpers_owners.py")
REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


def requires_root(test: Callable[..., None]) -> Callable[..., None]:
    """The project's ``root`` marker, plus a skip of our own so this module stands alone."""
    skip = pytest.mark.skipif(not IS_ROOT, reason="needs root (unshare, setpriv)")
    return pytest.mark.root(skip(test))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Child:
    """A helper process; ``info`` is the JSON line it printed when ready."""

    def __init__(self, *args: str, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self.reply() if wait else {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"helper {self.proc.args} exited early ({self.proc.poll()})"
        return json.loads(line)

    def send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(*args: str, wait: bool = True) -> Child:
        child = Child(*args, wait=wait)
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


def me() -> tuple[int, str]:
    uid = os.geteuid()
    return uid, pwd.getpwuid(uid).pw_name


def proc_net_inodes() -> dict[int, int | None]:
    """{inode: uid} of this netns's sockets, as a socket dump would give them to refresh()."""
    wanted: dict[int, int | None] = {}
    for name in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            wanted[int(fields[9])] = int(fields[7])
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        wanted[int(line.split()[6])] = None  # /proc/net/unix has no uid column
    wanted.pop(0, None)
    return wanted


def only_pids(owners: Any, pids: set[int]) -> dict[int, tuple[Owner, ...]]:
    """The part of a map that belongs to ``pids`` (the rest of the machine keeps moving)."""
    kept = {ino: tuple(o for o in group if o.pid in pids) for ino, group in owners.items()}
    return {ino: group for ino, group in kept.items() if group}


# -- parsers and a recorded /proc tree ---------------------------------------------------------


def test_parse_stat_takes_comm_up_to_the_last_paren() -> None:
    tail = " ".join(str(n) for n in range(3, 53))  # fields 3..52; field 22 holds "22"
    raw = b"4242 (a) (b c\xff) " + tail.encode()
    assert parse_stat(raw) == (b"a) (b c\xff", 22)


def test_parse_status_uids_reads_all_four() -> None:
    raw = b"Name:\tx\nUmask:\t0022\nUid:\t1000\t0\t1000\t1001\nGid:\t0\t0\t0\t0\n"
    assert parse_status_uids(raw) == (1000, 0, 1000, 1001)
    assert parse_status_uids(b"Name:\tx\n") == ()


def _fake_proc(root: Path, pid: int, comm: bytes, uid: int, links: dict[int, str]) -> None:
    base = root / str(pid)
    (base / "fd").mkdir(parents=True)
    fields = " ".join(["S", *(["0"] * 18), str(pid * 10), *(["0"] * 30)])
    (base / "stat").write_bytes(b"%d (%s) %s\n" % (pid, comm, fields.encode()))
    (base / "status").write_text(f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    for fd, target in links.items():
        (base / "fd" / str(fd)).symlink_to(target)


def test_recorded_tree_builds_sorted_owners_and_keeps_handed_out_views(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 200, b"worker", 0, {7: "socket:[777]", 8: "socket:[888]"})
    _fake_proc(tmp_path, 100, b"we (ird", 0, {3: "socket:[777]", 4: "/dev/null", 5: "pipe:[9]"})
    (tmp_path / "300").mkdir()  # a pid that vanished between listing and reading
    (tmp_path / "self").symlink_to("100")
    clock = FakeClock()
    omap = OwnerMap(proc_root=tmp_path, full_pass_interval=10, clock=clock)
    omap.refresh()
    user = pwd.getpwuid(0).pw_name
    weird, worker = Owner(100, "we (ird", 0, user), Owner(200, "worker", 0, user)
    expected = {777: (weird, worker), 888: (worker,)}
    tables = {100: {3: 777}, 200: {7: 777, 8: 888}}
    assert dict(omap.owners()) == expected
    assert dict(omap.fd_tables()) == tables
    assert omap.full_rescan() == (expected, tables)
    # One owner per process, shared by the sockets it holds: the map costs no object per socket.
    assert omap.owners()[888][0] is omap.owners()[777][1]
    before, tables_before = omap.owners(), omap.fd_tables()

    (tmp_path / "200" / "fd" / "8").unlink()
    clock.now = 10.0  # directory sizes of a recorded tree say nothing: wait for the full pass
    omap.refresh()
    assert omap.stats.full_pass
    assert 888 not in omap.owners()
    assert dict(omap.fd_tables()[200]) == {7: 777}
    assert 888 in before, "a mapping handed out earlier must never change under its holder"
    assert tables_before[200] == {7: 777, 8: 888}, "nor an fd table handed out earlier"


def test_periodic_rescans_are_spread_over_the_interval(tmp_path: Path) -> None:
    """No refresh rescans everything at once after the first: each pid is due once per
    interval, at its own time, so a change the fd count hides is still seen within it."""
    for pid in (101, 102, 103, 104):
        _fake_proc(tmp_path, pid, b"w%d" % pid, 0, {3: f"socket:[{pid}0]"})
    clock = FakeClock()
    omap = OwnerMap(proc_root=tmp_path, full_pass_interval=10, clock=clock)
    omap.refresh()
    assert omap.stats.full_pass and omap.stats.pids_scanned == 4
    scanned = []
    for now in (2.0, 5.0, 7.5, 10.0, 12.0, 15.0):
        clock.now = now
        omap.refresh()
        scanned.append(omap.stats.pids_scanned)
        assert not omap.stats.full_pass
    assert scanned == [0, 2, 1, 1, 0, 2]  # due at 2.5, 5, 7.5, 10, then every 10 s
    (tmp_path / "104" / "fd" / "3").unlink()
    (tmp_path / "104" / "fd" / "3").symlink_to("/dev/null")  # same fd count, no socket
    omap.refresh()
    assert 1040 in omap.owners(), "nothing was due at the same time"
    clock.now = 25.0  # every pid is due once within any 10 s
    omap.refresh()
    assert 1040 not in omap.owners() and 1010 in omap.owners()


def test_the_full_pass_interval_grows_with_the_sockets_known(tmp_path: Path) -> None:
    """Past a few thousand sockets the periodic pass spreads over more time, so that its
    readlinks stay a small share of a core; the pid is rescanned when its turn comes."""
    sockets = 4000
    _fake_proc(tmp_path, 101, b"big", 0, {fd: f"socket:[{fd + 10_000}]" for fd in range(sockets)})
    clock = FakeClock()
    omap = OwnerMap(proc_root=tmp_path, full_pass_interval=10, clock=clock)
    omap.refresh()
    assert omap.full_pass_interval == sockets * FULL_PASS_SECONDS_PER_SOCKET == 20.0
    clock.now = 15.0  # past the base interval, not yet due
    omap.refresh()
    assert omap.stats.pids_scanned == 0
    clock.now = 20.0
    omap.refresh()
    assert omap.stats.pids_scanned == 1


def test_read_cmdline_decodes_odd_bytes_and_knows_zombies(spawn: Callable[..., Child]) -> None:
    child = spawn("holder", "--tag", os.fsdecode(b"x\xff[b]"))
    assert read_cmdline(child.pid) == (
        sys.executable,
        str(HELPER),
        "holder",
        "--tag",
        "x\\xff[b]",
    )
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "child never exited"
        time.sleep(0.01)
    try:
        assert read_cmdline(zombie.pid) == ()
    finally:
        zombie.wait()
    assert read_cmdline(zombie.pid) is None


# -- live processes -----------------------------------------------------------------------------


def test_child_socket_has_its_pid_fd_and_comm(spawn: Callable[..., Child]) -> None:
    child = spawn("holder", "--count", "2", "--name", b"nd-owner-test".hex())
    omap = OwnerMap()
    omap.refresh()
    uid, user = me()
    for fd, inode, _port in child.info["sockets"]:
        assert omap.owners()[inode] == (Owner(child.pid, "nd-owner-test", uid, user),)
        assert omap.fd_tables()[child.pid][fd] == inode


def test_socket_shared_by_fork_lists_both_owners_sorted(spawn: Callable[..., Child]) -> None:
    child = spawn("fork")
    parent_pid, forked_pid = child.info["pids"]
    omap = OwnerMap()
    omap.refresh()
    inode = child.info["inode"]
    owners = omap.owners()[inode]
    assert [o.pid for o in owners] == sorted([parent_pid, forked_pid])
    for pid in (parent_pid, forked_pid):
        assert omap.fd_tables()[pid][child.info["fd"]] == inode


def test_exited_child_disappears_on_next_refresh(spawn: Callable[..., Child]) -> None:
    child = spawn("holder", "--count", "3")
    omap = OwnerMap()
    omap.refresh()
    inodes = [inode for _, inode, _ in child.info["sockets"]]
    assert all(inode in omap.owners() for inode in inodes)
    child.stop()
    omap.refresh()
    assert not omap.stats.full_pass
    assert not [inode for inode in inodes if inode in omap.owners()]
    assert not [o for group in omap.owners().values() for o in group if o.pid == child.pid]


def test_odd_comm_bytes_survive_as_text(spawn: Callable[..., Child]) -> None:
    raw = b"[red]x\x1b\xff"
    child = spawn("holder", "--name", raw.hex())
    omap = OwnerMap()
    omap.refresh()
    (fd, inode, _port) = child.info["sockets"][0]
    (owner,) = omap.owners()[inode]
    assert owner.pid == child.pid and omap.fd_tables()[child.pid][fd] == inode
    assert owner.comm == "[red]x\x1b\\xff" == decode(raw)


def test_churn_is_followed_and_full_pass_matches_full_rescan(
    spawn: Callable[..., Child],
) -> None:
    clock = FakeClock()
    omap = OwnerMap(full_pass_interval=60, clock=clock)
    swapper = spawn("holder", "--count", "2")
    churners = [spawn("churn", "--seconds", "1", "--seed", str(n), wait=False) for n in range(3)]
    omap.refresh()
    deadline = time.monotonic() + 30
    while not all(_ready(c) for c in churners):
        assert time.monotonic() < deadline, "churners never finished"
        clock.now += 0.05
        omap.refresh(proc_net_inodes())
        assert not omap.stats.full_pass
        time.sleep(0.02)
    held = [c.reply() for c in churners]

    # Incremental refreshes alone (fd counts + unknown inodes) follow the churn exactly.
    omap.refresh(proc_net_inodes())
    for report in held:
        table = omap.fd_tables().get(report["pid"], {})
        assert set(table.items()) == {tuple(x) for x in report["held"]}
        assert set(only_pids(omap.owners(), {report["pid"]})) == set(table.values())

    # dup2() of a file onto a socket's fd keeps the fd count: only the full pass sees it.
    fd, gone, _port = swapper.info["sockets"][0]
    swapper.send(f"swapfile {fd}")
    omap.refresh()
    assert gone in omap.owners(), "precondition: a same-count swap is invisible between passes"
    clock.now += 60
    omap.refresh()
    assert omap.stats.full_pass
    assert gone not in omap.owners()
    ours = {swapper.pid, *(r["pid"] for r in held)}
    owners, tables = omap.full_rescan()
    assert only_pids(omap.owners(), ours) == only_pids(owners, ours)
    assert {p: dict(t) for p, t in omap.fd_tables().items() if p in ours} == {
        p: t for p, t in tables.items() if p in ours
    }


def _ready(child: Child) -> bool:
    """Has a churner printed its final line? (poll its stdout without blocking)."""
    assert child.proc.stdout is not None
    readable, _, _ = select.select([child.proc.stdout], [], [], 0)
    return bool(readable)


# -- exact counts, alone in a pid namespace ------------------------------------------------------


@pytest.fixture(scope="module")
def pidns_run() -> dict[str, Any]:
    """Run the `pidns` scenario of the helper as PID 1 of a fresh pid namespace."""
    if not IS_ROOT:
        pytest.skip("needs root: unshare --pid --mount-proc")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(HELPER), "pidns"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@requires_root
def test_steady_refresh_rescans_no_pid(pidns_run: dict[str, Any]) -> None:
    assert pidns_run["first"]["full"] and pidns_run["first"]["scanned"] == 5
    steady = pidns_run["steady"]
    assert (steady["scanned"], steady["fds"], steady["full"]) == (0, 0, False)
    assert steady["view_kept"], "an unchanged map should hand out the same mapping"


@requires_root
def test_only_the_changed_process_is_rescanned(pidns_run: dict[str, Any]) -> None:
    opened = pidns_run["opened"]
    assert opened["scanned"] == 1
    assert opened["owners"] == [[pidns_run["kids"][0], opened["fd"]]]


@requires_root
def test_unknown_inode_search_is_narrowed_and_remembered(pidns_run: dict[str, Any]) -> None:
    assert pidns_run["swap_unseen"]["owners"] == [], "same fd count: no reason to rescan yet"
    searched = pidns_run["swap_searched"]
    assert searched["unknown"] == 1 and searched["scanned"] >= 1
    assert searched["owners"] == [[pidns_run["kids"][1], searched["fd"]]]
    other_uid = pidns_run["ownerless_other_uid"]
    assert (other_uid["unknown"], other_uid["scanned"]) == (1, 0), "no process has uid 4242"
    first, again = pidns_run["ownerless_root_first"], pidns_run["ownerless_root_again"]
    assert (first["unknown"], first["scanned"]) == (1, 5)
    assert (again["unknown"], again["scanned"]) == (0, 0), "an ownerless inode is searched once"


@requires_root
def test_reused_pid_with_same_fd_count_is_rescanned(pidns_run: dict[str, Any]) -> None:
    reuse = pidns_run["reuse"]
    assert reuse["same_pid"] and reuse["same_count"], "precondition: same pid, same fd count"
    assert reuse["old"] == [[], []]
    assert [owners[0][0] for owners in reuse["new"]] == [reuse["pid"]] * 2
    assert pidns_run["full"]["equal"]


# -- without root ----------------------------------------------------------------------------------


def _world_readable_copy() -> Path:
    """netdash and the helper in a directory `nobody` can read (the repo may not be)."""
    top = Path(tempfile.mkdtemp(prefix="nd-owners-"))
    shutil.copytree(REPO / "netdash", top / "netdash", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(HELPER, top / HELPER.name)
    for path in [top, *top.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return top


def _python_for_nobody(setpriv: list[str]) -> str | None:
    """An interpreter `nobody` can run with its own stdlib.

    The venv's python may be a symlink into a directory only root may enter (here: pyenv under
    /root, mode 0700). `env` makes the exec happen as nobody, so this checks what nobody gets.
    """
    for python in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if not python:
            continue
        check = [*setpriv, "env", python, "-c", "import json, pwd, ctypes"]
        if subprocess.run(check, capture_output=True, timeout=30, check=False).returncode == 0:
            return python
    return None


@requires_root
def test_nobody_sees_its_own_socket_but_not_roots() -> None:
    setpriv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    python = _python_for_nobody(setpriv)
    if python is None:
        pytest.skip("no python interpreter that nobody may run")
    top = _world_readable_copy()
    try:
        with socket.create_server(("127.0.0.1", 0)) as roots:
            root_inode = os.fstat(roots.fileno()).st_ino
            as_root = OwnerMap()
            as_root.refresh()
            assert as_root.owners()[root_inode][0].pid == os.getpid()
            cmd = [*setpriv, "env", f"PYTHONPATH={top}", "PYTHONDONTWRITEBYTECODE=1", python]
            cmd += [str(top / HELPER.name), "probe", "--root-inode", str(root_inode)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
    finally:
        shutil.rmtree(top)
    nobody = pwd.getpwnam("nobody").pw_uid
    assert seen["uid"] == nobody
    assert seen["own_owners"] == [
        [seen["pid"], seen["fd"], seen["own_owners"][0][2], nobody, "nobody"]
    ]
    assert seen["complete"] is False and seen["denied"] > 0
    assert seen["root_owners"] == []
