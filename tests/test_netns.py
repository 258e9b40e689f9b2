"""Choosing a network namespace (clear errors) and stepping into it (per thread, always back)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from netdash.netns import HOST, NETNS_RUN_DIR, NetnsTarget, entered, resolve_netns
from netdash.sources.errors import PermissionNeeded, SourceError, SourceUnavailable
from netdash.sources.sockets import SocketReader

REPO = Path(__file__).resolve().parents[1]


def my_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def interfaces(net_root: str) -> list[str]:
    lines = Path(net_root, "dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


def test_no_choice_is_the_current_namespace() -> None:
    assert resolve_netns(None, None) == HOST == NetnsTarget("host", None)


def test_a_missing_name_says_how_to_list_them() -> None:
    name = f"nd-missing-{os.getpid()}"
    with pytest.raises(SourceUnavailable) as caught:
        resolve_netns(name)
    assert str(caught.value) == f"no network namespace '{name}' (see `ip netns list`)"


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".."])
def test_a_name_that_is_a_path_is_refused(name: str) -> None:
    with pytest.raises(SourceError, match="is not a network namespace name"):
        resolve_netns(name)


def test_name_and_pid_together_are_refused() -> None:
    with pytest.raises(SourceError, match="by name or by pid, not both"):
        resolve_netns("x", 1)


def test_a_missing_pid() -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    with pytest.raises(SourceUnavailable, match=f"^no process with pid {pid_max + 1}$"):
        resolve_netns(pid=pid_max + 1)
    with pytest.raises(SourceError, match="is not a process id"):
        resolve_netns(pid=0)


def test_our_own_pid() -> None:
    target = resolve_netns(pid=os.getpid())
    assert target == NetnsTarget(f"pid {os.getpid()}", f"/proc/{os.getpid()}/ns/net")


@pytest.mark.root
def test_a_file_that_is_not_a_namespace() -> None:
    name = f"nd-notns-{os.getpid()}"
    path = NETNS_RUN_DIR / name
    NETNS_RUN_DIR.mkdir(exist_ok=True)
    path.write_text("")
    try:
        with pytest.raises(SourceError, match="is not a namespace file"):
            resolve_netns(name)
    finally:
        path.unlink()


_AS_NOBODY = """
import json, sys
from netdash.netns import entered, resolve_netns
out = {}
try:
    resolve_netns(pid=1)
except Exception as err:
    out["pid"] = [type(err).__name__, str(err)]
target = resolve_netns(sys.argv[1])
try:
    with entered(target):
        pass
except Exception as err:
    out["enter"] = [type(err).__name__, str(err)]
print(json.dumps(out))
"""


@pytest.mark.root
def test_without_privileges_the_messages_say_what_is_needed(netns: str) -> None:
    cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
           sys.executable, "-c", _AS_NOBODY, netns]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=True)
    out = json.loads(done.stdout)
    assert out["pid"] == [
        "PermissionNeeded",
        "reading the network namespace of pid 1 needs root (or ptrace access to its process)",
    ]
    assert out["enter"] == [
        "PermissionNeeded",
        f"entering the network namespace of {netns} needs root (CAP_SYS_ADMIN)",
    ]
    assert issubclass(PermissionNeeded, SourceError)


@pytest.mark.root
def test_entered_moves_only_the_calling_thread_and_always_comes_back(netns: str) -> None:
    target = resolve_netns(netns)
    home = my_netns()
    seen: dict[str, object] = {}

    def worker() -> None:
        with entered(target):
            seen["inside"] = my_netns()
            seen["thread_self"] = interfaces("/proc/thread-self/net")
            seen["proc_net"] = interfaces("/proc/net")  # the main thread's namespace
        seen["after"] = my_netns()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["inside"] != home and seen["after"] == home
    assert seen["thread_self"] == ["lo"]
    assert seen["proc_net"] == interfaces("/proc/thread-self/net") != ["lo"]
    with pytest.raises(RuntimeError), entered(target):
        raise RuntimeError("boom")
    assert my_netns() == home


@pytest.mark.root
def test_a_reader_opened_by_pid_lists_that_process_namespace(netns: str) -> None:
    target = resolve_netns(netns)
    with entered(target):
        server = socket.create_server(("127.0.0.1", 0))
        inside = my_netns()
    port, inode = server.getsockname()[1], os.fstat(server.fileno()).st_ino
    sleeper = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while os.readlink(f"/proc/{sleeper.pid}/ns/net") != inside:  # until `ip` did setns()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        by_pid = resolve_netns(pid=sleeper.pid)
        with server, SocketReader(by_pid) as reader:
            found = reader.read(tcp_info=False, unix=False).sockets
        assert [s.local_port for s in found if s.inode == inode] == [port]
        assert by_pid.label == f"pid {sleeper.pid}"
    finally:
        sleeper.kill()
        sleeper.wait()
