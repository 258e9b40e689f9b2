"""Python stack dumps through py-spy: is this pid Python, and what is each thread doing?

py-spy (``py-spy dump --json --pid PID``) attaches with ptrace, pauses the target for a few
milliseconds and reads the interpreter's frames from its memory: no code runs inside the target,
so it works on a wedged process. This module finds the tool, runs it with a timeout and turns its
JSON into small records. Every failure comes back as :attr:`StackDump.error`, a one-line message
for humans, never an exception: the UI shows it as is.

The JSON (py-spy 0.4) is a list of threads::

    [{"pid": 2818, "thread_id": 140357211519872, "thread_name": "MainThread",
      "os_thread_id": 2818, "active": false, "owns_gil": false,
      "frames": [{"name": "inner_known_function", "filename": "/tmp/sleeper.py",
                  "module": null, "short_filename": "sleeper.py", "line": 3,
                  "locals": null, "is_entry": false, "is_shim_entry": false}, ...],
      "process_info": null}, ...]

Frames are innermost first, as in a traceback read bottom-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")

NOT_PYTHON = "not a Python process"
PERMISSION_DENIED = "permission denied (needs root or CAP_SYS_PTRACE)"
NOT_INSTALLED = "py-spy is not installed (pip install py-spy)"
PROCESS_EXITED = "process exited"

# A mapping of the interpreter itself (python3.11, python3.12d) or of libpython (embedders such as
# uwsgi or mod_wsgi): the path is the last field of a /proc/PID/maps line, see proc(5).
_PYTHON_MAPPING = re.compile(
    rb"/(?:libpython\d[^/\n]*|python(?:\d[\d.]*[dmu]?)?(?: \(deleted\))?)$", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class StackFrame:
    """One Python frame: the function, where it is, and its module when py-spy knows it."""

    name: str
    filename: str
    line: int
    module: str | None = None


@dataclass(frozen=True, slots=True)
class ThreadStack:
    """One thread's frames, innermost first; ``active`` is py-spy's guess that it is on CPU."""

    thread_id: int
    os_thread_id: int | None
    name: str | None
    active: bool
    owns_gil: bool
    frames: tuple[StackFrame, ...]


@dataclass(frozen=True, slots=True)
class StackDump:
    """The outcome of one dump: threads, or ``error`` (then ``threads`` is empty)."""

    pid: int
    threads: tuple[ThreadStack, ...] = ()
    error: str | None = None


def _is_python_name(name: str) -> bool:
    return name.removesuffix(" (deleted)").startswith("python")


def is_python_process(pid: int, proc_root: Path = PROC) -> bool | None:
    """Whether ``pid`` runs a Python interpreter; None when its executable cannot be read.

    The executable's name answers for the common case (``python3.11``, a venv's ``python``
    symlink resolves to it); embedders (uwsgi, mod_wsgi, a renamed binary) show as a mapped
    ``libpython`` or ``python*`` file. Reading either needs the same ptrace "read" access that
    py-spy's attach needs, so None here predicts a permission error there. A zombie or kernel
    thread has no executable and no mappings: not Python.
    """
    base = proc_root / str(pid)
    try:
        exe = os.readlink(base / "exe")
    except PermissionError:
        return None
    except FileNotFoundError:
        exe = ""  # a zombie or kernel thread (no mm), or the process is gone: maps tell which
    except OSError:
        return None
    if exe and _is_python_name(os.path.basename(exe)):
        return True
    try:
        maps = (base / "maps").read_bytes()
    except (PermissionError, FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    return _PYTHON_MAPPING.search(maps) is not None


def python_problem(pid: int, proc_root: Path = PROC) -> str | None:
    """Why a stack dump of ``pid`` cannot work, checked cheaply before asking; None if it can."""
    verdict = is_python_process(pid, proc_root)
    if verdict is True:
        return None
    if verdict is False:
        return NOT_PYTHON
    if not (proc_root / str(pid)).exists():
        return PROCESS_EXITED
    return PERMISSION_DENIED


def find_py_spy() -> str | None:
    """py-spy next to this interpreter first, then on PATH.

    Installed with pip into a venv, py-spy lands in the venv's bin directory, which is on PATH
    only while the venv is activated; ``netdash`` started as ``.venv/bin/netdash`` (or through
    sudo, which resets PATH) would otherwise not find it.
    """
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def explain_failure(stderr: str) -> str:
    """py-spy's error text (it exits 1 for every failure) as one line for the user.

    Checked in this order because one message can carry several causes: a process we may not
    read says "Failed to get process executable name. Check that the process is running" with a
    "Permission denied (os error 13)" cause.
    """
    lowered = stderr.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return PERMISSION_DENIED
    if "failed to find python version" in lowered:
        return NOT_PYTHON
    if (
        "no such file or directory" in lowered
        or "no such process" in lowered
        or "check that the process is running" in lowered
    ):
        return PROCESS_EXITED
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return "py-spy failed: " + (lines[0] if lines else "no message")


def parse_dump(pid: int, text: str) -> StackDump:
    """py-spy's JSON (see the module docstring) as records; unexpected output is an error."""
    try:
        raw = json.loads(text)
        threads = tuple(_thread(item) for item in raw)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        return StackDump(pid, error=f"py-spy printed unexpected output ({err})")
    return StackDump(pid, threads)


def _thread(item: dict[str, Any]) -> ThreadStack:
    frames = tuple(
        StackFrame(
            name=str(frame["name"]),
            filename=str(frame["filename"]),
            line=int(frame.get("line") or 0),
            module=frame.get("module"),
        )
        for frame in item.get("frames") or ()
    )
    os_tid = item.get("os_thread_id")
    return ThreadStack(
        thread_id=int(item["thread_id"]),
        os_thread_id=int(os_tid) if os_tid is not None else None,
        name=item.get("thread_name"),
        active=bool(item.get("active")),
        owns_gil=bool(item.get("owns_gil")),
        frames=frames,
    )


def dump_stack(pid: int, timeout: float = 10.0) -> StackDump:
    """Run ``py-spy dump --json --pid PID`` and parse it; never raises for a failed dump.

    py-spy runs in its own session so a timeout kills it and anything it started; killing it
    mid-read is safe, the kernel detaches a dead tracer's tracees. RUST_BACKTRACE=0 keeps its
    errors to the message (a backtrace would follow it when the variable is set, as here).
    """
    py_spy = find_py_spy()
    if py_spy is None:
        return StackDump(pid, error=NOT_INSTALLED)
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    cmd = [py_spy, "dump", "--json", "--pid", str(pid)]
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except OSError as err:
        return StackDump(pid, error=f"py-spy could not run: {err.strerror or err}")
    try:
        out, err_text = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return StackDump(pid, error=f"timed out after {timeout:g} s")
    if proc.returncode != 0:
        return StackDump(pid, error=explain_failure(err_text))
    return parse_dump(pid, out)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
