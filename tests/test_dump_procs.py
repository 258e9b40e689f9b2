"""`netdash dump processes --json` and `netdash dump cgroups --json`, run as a user runs them,
against processes and cgroups made by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import needs_root, skip_unless_root

PROCESS_KEYS = {
    "pid", "ppid", "name", "cmdline", "user", "state", "threads", "cpu_percent", "rss",
    "num_fds", "fd_limit", "start_time", "cgroup", "cgroups_v1", "unit", "container", "sockets",
}  # fmt: skip
CGROUP_KEYS = {
    "path", "hierarchy", "unit", "container", "procs", "memory_current", "memory_limit",
    "cpu_usage_usec", "cpu_throttled_usec", "pids_current", "pids_limit",
}  # fmt: skip

#: A process named ndproc-test with a known fd limit, two TCP listeners, a UNIX socket pair
#: and a zombie child it never waits for.
HOLDER = """
import os, resource, socket, sys, time
open("/proc/self/comm", "w").write("ndproc-test")
resource.setrlimit(resource.RLIMIT_NOFILE, (777, 4096))
held = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)] + list(socket.socketpair())
if os.fork() == 0:
    os._exit(0)
print("ready", flush=True)
time.sleep(60)
"""


def netdash(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "netdash", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def holder() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        time.sleep(0.1)  # the child has exited by now: a zombie
        yield process
    finally:
        process.kill()
        process.wait()


@needs_root
def test_dump_processes_lists_sockets_limits_and_zombies():
    skip_unless_root()  # other users' fds (and so their sockets) need root
    with holder() as process:
        rows = netdash("dump", "processes", "--json", "--seconds", "0.3")
    assert all(set(row) == PROCESS_KEYS for row in rows)
    (mine,) = [row for row in rows if row["pid"] == process.pid]
    assert mine["name"] == "ndproc-test" and mine["state"] in ("S", "R")
    assert mine["sockets"] == {"LISTEN": 2, "udp": 0, "unix": 2}
    assert mine["fd_limit"] == 777 and mine["num_fds"] >= 7  # 0-2, 4 sockets, the pipe
    assert mine["cmdline"][0] == sys.executable and mine["user"] == "root"
    assert mine["cpu_percent"] is not None and mine["rss"] > 0
    (zombie,) = [row for row in rows if row["ppid"] == process.pid]
    assert zombie["state"] == "Z" and zombie["cmdline"] == [] and zombie["rss"] == 0
    assert any(row["pid"] == 1 for row in rows)


@needs_root
def test_dump_cgroups_lists_the_groups_with_their_limits():
    skip_unless_root()
    from test_cgroups import MEMORY_LIMIT, PIDS_LIMIT, cgroup_lab

    with cgroup_lab() as lab:
        rows = netdash("dump", "cgroups", "--json")
    assert rows and all(set(row) == CGROUP_KEYS for row in rows)
    by_group = {(row["hierarchy"], row["path"]): row for row in rows}
    memory = by_group[(lab.hierarchies["memory"], lab.paths["memory"])]
    assert memory["memory_limit"] == MEMORY_LIMIT and memory["procs"] == 3
    pids = by_group[(lab.hierarchies["pids"], lab.paths["pids"])]
    assert (pids["pids_current"], pids["pids_limit"]) == (3, PIDS_LIMIT)
    assert memory["pids_limit"] is None  # the memory hierarchy has no pids files: null


def test_dump_processes_refuses_a_bad_window():
    done = subprocess.run(
        [sys.executable, "-m", "netdash", "dump", "processes", "--json", "--seconds", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "more than 0 seconds" in done.stderr
