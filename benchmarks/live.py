"""Parts (e) and CPU: the real `netdash` in a real terminal (tmux, 120x40, 1 s interval).

The app runs as a user would run it, ``netdash --netns NS --interval 1`` in a tmux pane, on its
own tmux server (``tmux -L``) so no other session on the machine is touched. Once it shows the
lab's rows it is left to settle, then its CPU is read from ``/proc/PID/stat`` (utime + stime,
all threads) over a measured stretch of wall time, and its peak RSS from ``VmHWM`` in
``/proc/PID/status``. The tmux server's own CPU is reported beside it: drawing the screen costs
the terminal something too, and hiding that would flatter us.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
COLUMNS, LINES = 120, 40
_sessions = itertools.count()


class LiveError(RuntimeError):
    """The app did not come up, or died while measured (the message has the screen's text)."""


@dataclass(frozen=True)
class LiveResult:
    netns: str | None
    ready_s: float  # from start to the first screen showing what we waited for
    seconds: float  # the measured stretch
    cpu_percent: float  # of one core, netdash's process (all threads)
    tmux_cpu_percent: float  # the tmux server drawing it
    peak_rss_kib: int  # VmHWM at the end
    rss_kib: int  # VmRSS at the end

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def netdash_command() -> list[str]:
    """The installed `netdash` next to this interpreter, or ``python -m netdash``."""
    script = Path(sys.executable).with_name("netdash")
    return [str(script)] if script.exists() else [sys.executable, "-m", "netdash"]


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of ``pid`` (proc(5): fields 14 and 15 of /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rindex(b")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[11]) + int(fields[12])


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LiveError(f"no {key} in /proc/{pid}/status")


class TmuxApp:
    """One app in a detached tmux session on a private server socket."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.socket = f"nd-bench-{os.getpid()}-{next(_sessions)}"
        self.argv = list(argv)
        self.pid = 0
        self.server_pid = 0
        self.socket_path = ""

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            raise LiveError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        self.tmux(
            "new-session", "-d", "-s", "bench", "-x", str(COLUMNS), "-y", str(LINES),
            "-e", "COLORTERM=truecolor", *self.argv,
        )  # fmt: skip
        self.tmux("set-option", "-t", "bench", "remain-on-exit", "on")  # keep a crash readable
        self.pid = int(self.tmux("display-message", "-p", "-t", "bench", "#{pane_pid}"))
        self.server_pid = int(self.tmux("display-message", "-p", "#{pid}"))
        self.socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def alive(self) -> bool:
        return self.tmux("display-message", "-p", "-t", "bench", "#{pane_dead}").strip() != "1"

    def wait_for(self, text: str, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive():
                raise LiveError(f"netdash exited; its screen:\n{self.screen()}")
            if text in self.screen():
                return time.monotonic() - started
            time.sleep(0.1)
        raise LiveError(f"no {text!r} on screen after {timeout:.0f} s; it shows:\n{self.screen()}")

    def stop(self) -> None:
        try:
            if self.alive():
                self.tmux("send-keys", "-t", "bench", "q")
                deadline = time.monotonic() + 3
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
        except LiveError:
            pass  # the server is already gone
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        if self.socket_path:  # kill-server leaves the socket file behind (tmux 3.3)
            Path(self.socket_path).unlink(missing_ok=True)


def run_live(
    netns: str | None,
    seconds: float,
    *,
    settle: float = 5.0,
    wait_text: str = "127.1.",
    ready_timeout: float = 120.0,
) -> LiveResult:
    """Run `netdash` (in ``netns``, or on the host) and measure it for ``seconds``.

    ``wait_text`` is what the screen must show before the clock starts (a lab address; the
    footer's "Quit" for an empty namespace); ``settle`` seconds more let the first full owner
    scan and the first samples pass, so what is measured is the steady state.
    """
    argv = netdash_command()
    if netns is not None:
        argv += ["--netns", netns]
    app = TmuxApp([*argv, "--interval", "1"])
    app.start()
    try:
        ready = app.wait_for(wait_text, ready_timeout)
        time.sleep(settle)
        app_ticks, tmux_ticks = cpu_ticks(app.pid), cpu_ticks(app.server_pid)
        started = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - started
        if not app.alive():
            raise LiveError(f"netdash exited while measured; its screen:\n{app.screen()}")
        used = (cpu_ticks(app.pid) - app_ticks) / TICKS
        tmux_used = (cpu_ticks(app.server_pid) - tmux_ticks) / TICKS
        return LiveResult(
            netns=netns,
            ready_s=ready,
            seconds=wall,
            cpu_percent=100.0 * used / wall,
            tmux_cpu_percent=100.0 * tmux_used / wall,
            peak_rss_kib=status_kib(app.pid, "VmHWM"),
            rss_kib=status_kib(app.pid, "VmRSS"),
        )
    finally:
        app.stop()
