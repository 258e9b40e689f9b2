"""py-spy against real processes: a Python sleeper in a known function, `sleep`, a gone pid,
no py-spy, a py-spy that hangs, and a dump as `nobody` of a root process.

Dumps need ptrace rights over a sibling process: root here (a non-root user could dump its own
processes without Yama, but not on a server with ptrace_scope=1), so those tests need root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netdash.sources import pyspy
from netdash.sources.pyspy import (
    NOT_INSTALLED,
    NOT_PYTHON,
    PERMISSION_DENIED,
    PROCESS_EXITED,
    StackDump,
    dump_stack,
    explain_failure,
    find_py_spy,
    is_python_process,
    parse_dump,
    python_problem,
)
from tests.conftest import needs_root
from tests.test_unprivileged import SETPRIV, python_for_nobody

SLEEPER = """\
import sys
import threading
import time


def inner_known_function():
    print("ready", flush=True)
    time.sleep(60)  # KNOWN LINE


def worker_body():
    time.sleep(60)


threading.Thread(target=worker_body, name="worker-[red]x[/]", daemon=True).start()
inner_known_function()
"""
KNOWN_LINE = SLEEPER.splitlines().index("    time.sleep(60)  # KNOWN LINE") + 1


def start_sleeper(directory: Path, python: str = sys.executable) -> subprocess.Popen[str]:
    """A Python process parked in inner_known_function once it has printed "ready"."""
    script = directory / "sleeper_known.py"
    script.write_text(SLEEPER)
    script.chmod(0o644)
    proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise AssertionError("the sleeper did not start")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@contextmanager
def running_sleeper(directory: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The sleeper and its script, killed on the way out whatever happened."""
    proc = start_sleeper(directory)
    try:
        yield proc, directory / "sleeper_known.py"
    finally:
        stop(proc)


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    with running_sleeper(tmp_path) as running:
        yield running


@pytest.fixture
def not_python() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(["sleep", "60"], text=True)
    try:
        time.sleep(0.05)  # past exec: before it, /proc/PID/exe is still this Python
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty "venv bin" as sys.executable's directory, and an empty PATH."""
    venv_bin = tmp_path / "venv" / "bin"
    empty = tmp_path / "empty"
    venv_bin.mkdir(parents=True)
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(empty))
    return venv_bin


def write_tool(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@needs_root
def test_dump_shows_the_known_function_file_and_line(sleeper):
    proc, script = sleeper
    assert is_python_process(proc.pid) is True
    assert python_problem(proc.pid) is None
    dump = dump_stack(proc.pid)
    assert dump.error is None, dump.error
    assert dump.pid == proc.pid
    main = next(t for t in dump.threads if t.os_thread_id == proc.pid)
    assert main.name == "MainThread"
    assert main.active is False and main.owns_gil is False  # asleep in time.sleep
    innermost = main.frames[0]
    assert (innermost.name, innermost.filename, innermost.line) == (
        "inner_known_function",
        str(script),
        KNOWN_LINE,
    )
    assert main.frames[-1].name == "<module>"
    worker = next(t for t in dump.threads if t.os_thread_id != proc.pid)
    assert worker.name == "worker-[red]x[/]"
    assert worker.frames[0].name == "worker_body"


@needs_root
def test_non_python_process_is_said_so_by_the_check_and_by_py_spy(not_python):
    assert is_python_process(not_python.pid) is False
    assert python_problem(not_python.pid) == NOT_PYTHON
    # py-spy's own verdict ("Failed to find python version"), not only our check
    assert dump_stack(not_python.pid) == StackDump(not_python.pid, error=NOT_PYTHON)


def test_process_that_exited():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert is_python_process(proc.pid) is None
    assert python_problem(proc.pid) == PROCESS_EXITED
    assert dump_stack(proc.pid).error == PROCESS_EXITED


def test_py_spy_absent_from_venv_and_path(bin_dir, sleeper):
    proc, _ = sleeper
    assert find_py_spy() is None
    assert dump_stack(proc.pid) == StackDump(proc.pid, error=NOT_INSTALLED)


def test_py_spy_beside_the_interpreter_wins_over_path(bin_dir, tmp_path, monkeypatch):
    on_path = tmp_path / "path"
    on_path.mkdir()
    write_tool(on_path / "py-spy", "exit 0\n")
    monkeypatch.setenv("PATH", str(on_path))
    assert find_py_spy() == str(on_path / "py-spy")
    beside = write_tool(bin_dir / "py-spy", "exit 0\n")
    assert find_py_spy() == str(beside)


def test_a_hanging_py_spy_times_out_and_is_killed_with_its_children(bin_dir, tmp_path):
    child_pid_file = tmp_path / "child.pid"
    write_tool(bin_dir / "py-spy", f"/bin/sleep 60 &\necho $! > {child_pid_file}\nwait\n")
    started = time.monotonic()
    dump = dump_stack(os.getpid(), timeout=0.5)
    assert dump == StackDump(os.getpid(), error="timed out after 0.5 s")
    assert time.monotonic() - started < 5
    child = int(child_pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "py-spy's own children outlived the timeout"


def _alive(pid: int) -> bool:
    """Running (a killed orphan may linger as a zombie until init reaps it: that is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_unexpected_py_spy_output_is_an_error_not_an_exception(bin_dir):
    write_tool(bin_dir / "py-spy", "echo 'not json'\n")
    dump = dump_stack(1234)
    assert dump.threads == () and dump.error is not None
    assert dump.error.startswith("py-spy printed unexpected output")
    write_tool(bin_dir / "py-spy", "echo 'Error: something new' >&2\nexit 1\n")
    assert dump_stack(1234).error == "py-spy failed: Error: something new"


NOBODY_PROBE = """
import json, sys
import pyspy
pid = int(sys.argv[1])
print(json.dumps({"check": pyspy.is_python_process(pid), "error": pyspy.dump_stack(pid).error}))
"""


@needs_root
def test_dump_as_nobody_of_a_root_process_says_permission_denied(sleeper):
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    python = python_for_nobody()
    if python is None:
        pytest.skip("no python interpreter that nobody may run")
    proc, _ = sleeper
    top = Path(tempfile.mkdtemp(prefix="nd-pyspy-"))
    try:
        (top / "bin").mkdir()
        py_spy = find_py_spy()
        assert py_spy is not None, "py-spy must be installed in the dev venv"
        shutil.copy(py_spy, top / "bin" / "py-spy")
        shutil.copy(pyspy.__file__, top / "pyspy.py")  # stdlib only: runs alone
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755)
        cmd = [
            *SETPRIV,
            "env",
            f"PATH={top / 'bin'}",
            f"PYTHONPATH={top}",
            "PYTHONDONTWRITEBYTECODE=1",
            python,
            "-c",
            NOBODY_PROBE,
            str(proc.pid),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr

    seen = json.loads(done.stdout)
    assert seen == {"check": None, "error": PERMISSION_DENIED}
    assert python_problem(proc.pid) is None  # root may


def test_python_detection_on_a_recorded_proc_tree(tmp_path):
    """Embedders and deleted interpreters count as Python; a plain daemon does not."""
    cases = {
        101: ("/usr/sbin/uwsgi", "7f00-7f10 r-xp 0 fe:00 1 /usr/lib/libpython3.11.so.1.0\n"),
        102: ("/usr/bin/python3.11 (deleted)", ""),
        103: ("/opt/app/server", "5600-5700 r-xp 0 fe:00 2 /opt/py/bin/python3.12d\n"),
        104: (
            "/usr/sbin/nginx",
            "5600-5700 r-xp 0 fe:00 3 /usr/sbin/nginx\n"
            "7f00-7f10 r--p 0 fe:00 4 /usr/lib/python3.11/lib-dynload/_ssl.so\n",
        ),
        105: ("", ""),  # a kernel thread or zombie: no exe, no mappings
    }
    for pid, (exe, maps) in cases.items():
        base = tmp_path / str(pid)
        base.mkdir()
        if exe:
            (base / "exe").symlink_to(exe)
        (base / "maps").write_text(maps)
    verdicts = {pid: is_python_process(pid, tmp_path) for pid in cases}
    assert verdicts == {101: True, 102: True, 103: True, 104: False, 105: False}
    assert is_python_process(106, tmp_path) is None
    assert python_problem(106, tmp_path) == PROCESS_EXITED


def test_py_spy_error_texts():
    """As py-spy 0.4.3 prints them (recorded here with RUST_BACKTRACE=0)."""
    denied_root = (
        "Permission Denied: Try running again with elevated permissions by going "
        "'sudo env \"PATH=$PATH\" !!'\n"
    )
    denied_exe = (
        "Error: Failed to get process executable name. Check that the process is running.\n\n"
        "Caused by:\n    0: Permission denied (os error 13)\n"
    )
    gone = (
        "Error: Failed to get process executable name. Check that the process is running.\n\n"
        "Caused by:\n    0: No such file or directory (os error 2)\n"
    )
    assert explain_failure(denied_root) == PERMISSION_DENIED
    assert explain_failure(denied_exe) == PERMISSION_DENIED
    assert explain_failure("Error: Failed to find python version from target process\n") == (
        NOT_PYTHON
    )
    assert explain_failure(gone) == PROCESS_EXITED
    assert explain_failure("") == "py-spy failed: no message"


def test_parse_dump_keeps_order_and_missing_fields():
    text = (
        '[{"pid": 7, "thread_id": 99, "thread_name": null, "os_thread_id": null,'
        ' "active": true, "owns_gil": true, "frames": [{"name": "f", "filename": "a.py",'
        ' "module": "m", "line": null}, {"name": "g", "filename": "b.py", "line": 2}]}]'
    )
    dump = parse_dump(7, text)
    assert dump.error is None
    (thread,) = dump.threads
    assert (thread.thread_id, thread.os_thread_id, thread.name) == (99, None, None)
    assert thread.active and thread.owns_gil
    assert [(f.name, f.filename, f.line, f.module) for f in thread.frames] == [
        ("f", "a.py", 0, "m"),
        ("g", "b.py", 2, None),
    ]
