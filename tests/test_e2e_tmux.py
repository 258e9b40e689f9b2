"""End to end: the installed `netdash` in a real terminal (tmux), driven as a person would.

These run the console script that `pip install` put next to this interpreter, inside a detached
tmux session, then type with ``send-keys`` and read the screen with ``capture-pane``: the whole
path from argv, terminal size detection and key decoding to what lands in the terminal's cells.
Everything else (Pilot tests, the sources' tests) stops short of that.

Each wait polls the screen against a deadline. Escape is followed by a wait for the screen it
leads to, never by another key at once: an Escape just before a key is read as Alt+key (LAB §6).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lablib import MARKUP_COMM, KnownSocketsLab

from conftest import skip_unless_root, temporary_netns

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"
NETDASH = Path(sys.executable).parent / "netdash"
WAIT = 10.0  # seconds any one screen may take to appear (first paint is ~1 s here)
POLL = 0.05

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux), as CI installs"
)


class Terminal:
    """One program in a detached tmux session on a private server socket, and its screen."""

    def __init__(self, socket: Path, name: str, width: int, height: int) -> None:
        self.socket = socket
        self.name = name
        self.width = width
        self.height = height
        # A CI-like environment: nothing of the caller's terminal leaks in (LAB §6: env -i works).
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
        }

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=check,
        )

    def start(self, argv: list[str], status_file: Path) -> None:
        """Run ``argv`` in the session; its exit status lands in ``status_file``.

        The command line is ``sh -c 'SCRIPT' ARGV...``: the arguments reach the program as
        positional parameters, never pasted into the script text.
        """
        script = '"$@"; echo $? > "$STATUS_FILE"'
        self.tmux(
            "new-session", "-d", "-s", self.name, "-x", str(self.width), "-y", str(self.height),
            "-e", "COLORTERM=truecolor", "-e", "TERM=xterm-256color",
            "-e", f"STATUS_FILE={status_file}",
            "--", "sh", "-c", script, "netdash", *argv,
        )  # fmt: skip

    def screen(self, *, escapes: bool = False, join: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", self.name]
        args += ["-e"] if escapes else []
        args += ["-J"] if join else []  # lines the terminal wrapped come back as one
        return self.tmux(*args).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def wait_for(self, ready: Callable[[str], bool], what: str, timeout: float = WAIT) -> str:
        """The screen, as soon as ``ready(screen)``; fail with the last screen seen otherwise."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(f"netdash exited while waiting for {what}; last screen:\n{screen}")
            screen = self.screen()
            if ready(screen):
                return screen
            time.sleep(POLL)
        pytest.fail(f"no {what} after {timeout:.0f} s; the screen was:\n{screen}")

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.name, check=False).returncode == 0

    def wait_gone(self, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                pytest.fail(f"the session did not end; the screen was:\n{self.screen()}")
            time.sleep(POLL)

    def kill(self) -> None:
        self.tmux("kill-server", check=False)


@pytest.fixture
def terminal(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Terminal]]:
    """Makes terminals on a tmux server of this test's own; the server is killed afterwards."""
    if not NETDASH.exists():
        pytest.fail(f"the netdash console script is not installed at {NETDASH}")
    made: list[Terminal] = []
    socket = tmp_path / "tmux.sock"
    name = f"netdash-e2e-{os.getpid()}-{request.node.name}"[:60]

    def make(width: int = 120, height: int = 40) -> Terminal:
        term = Terminal(socket, f"{name}-{len(made)}", width, height)
        made.append(term)
        return term

    try:
        yield make
    finally:
        for term in made:
            term.kill()


@pytest.fixture(scope="module")
def lab() -> Iterator[KnownSocketsLab]:
    """One known-sockets lab in its own namespace for the live tests (one namespace, one lab)."""
    skip_unless_root()
    with temporary_netns("e2e") as netns, KnownSocketsLab(netns, loadgen_pairs=5) as running:
        yield running


def table_rows(screen: str) -> list[str]:
    """The socket rows on screen: lines that start with a protocol."""
    return [line for line in screen.splitlines() if re.match(r"(tcp|udp|raw|unix)6? ", line)]


def is_nginx_row(row: str) -> bool:
    """Owned by nginx: one process (``PID nginx``) or the shared listener (``nginx +2``)."""
    return re.search(r" \d+ nginx( \+2)?$", row) is not None


def has_footer(screen: str) -> bool:
    lines = screen.rstrip("\n").splitlines()
    return bool(lines) and "Quit" in lines[-1]


def read_status(path: Path, timeout: float = 2.0) -> int:
    """The exit status the shell wrote (it writes just before the session ends)."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        if time.monotonic() > deadline:
            pytest.fail("netdash's exit status was never written")
        time.sleep(POLL)
    return int(path.read_text())


@pytest.mark.root
def test_start_filter_drill_down_back_and_quit(lab, terminal, tmp_path):
    nginx_pids = {str(pid) for pid in lab.pids["nginx"]}
    term = terminal(120, 40)
    status_file = tmp_path / "status"
    term.start([str(NETDASH), "--netns", lab.netns], status_file)
    try:
        screen = term.wait_for(
            lambda s: has_footer(s) and "0.0.0.0:80 " in s and "nginx" in s, "first screen"
        )
        assert f"netns {lab.netns}" in screen
        assert "postgres" in screen and "[::]:5432" in screen

        term.keys("/")
        term.wait_for(lambda s: "proc:nginx" in s, "the filter input (placeholder)")
        term.keys("proc:nginx", literal=True)
        term.keys("Enter")
        filtered = term.wait_for(
            lambda s: (
                "filter: proc:nginx" in s
                and bool(rows := table_rows(s))
                and all(is_nginx_row(row) for row in rows)
            ),
            "a table of nginx rows only",
        )
        rows = table_rows(filtered)
        assert any("LISTEN" in row and "0.0.0.0:80 " in row for row in rows)
        assert any("ESTAB" in row for row in rows)

        # The cursor is on the top row, the listener all three nginx processes share.
        term.keys("Enter")
        chooser = term.wait_for(lambda s: "processes hold 0.0.0.0:80" in s, "the owner chooser")
        offered = re.findall(r"(\d+)\s+nginx\s+user", chooser)
        assert set(offered) == nginx_pids
        term.keys("Down", "Enter")  # keys are read in order: no wait needed between them
        process = term.wait_for(
            lambda s: "sockets owned by" in s and "parent" in s, "the Process screen and its facts"
        )
        pid = offered[1]
        assert f"sockets owned by {pid}:" in process
        assert re.search(rf"pid\s+{pid}\s+parent {lab.pids['nginx'][0]}", process)
        assert re.search(r"command\s+nginx", process)
        owned = table_rows(process)
        assert owned and all(f" {pid} nginx" in row or "nginx +2" in row for row in owned)
        assert f"Connections › :80 › nginx[{pid}]" in process  # the breadcrumb

        # The lab's roles are Python: k offers a py-spy stack, after saying what it will do.
        term.keys("k")
        term.wait_for(lambda s: "ptrace" in s, "the py-spy confirmation")
        term.keys("y")
        stack = term.wait_for(lambda s: "Thread" in s and ".py:" in s, "the stack")
        assert f"nginx[{pid}] › stack" in stack
        term.keys("Escape")
        term.wait_for(lambda s: "sockets owned by" in s, "the Process screen again")

        term.keys("Escape")
        back = term.wait_for(
            lambda s: "filter: proc:nginx" in s and "sockets owned by" not in s,
            "the filtered table again",
        )
        assert table_rows(back) and all(is_nginx_row(row) for row in table_rows(back))
        assert has_footer(back)

        term.keys("q")
        term.wait_gone()
        assert read_status(status_file) == 0
    finally:
        term.kill()


def test_replay_fits_80x24(terminal, tmp_path):
    term = terminal(80, 24)
    term.start([str(NETDASH), "--replay", str(RECORDING)], tmp_path / "status")
    try:
        screen = term.wait_for(lambda s: has_footer(s) and bool(table_rows(s)), "the replay")
        assert term.tmux("display", "-p", "-t", term.name, "#{pane_width}").stdout.strip() == "80"
        joined = term.screen(join=True)  # anything drawn past the edge would have wrapped
        assert max(len(line) for line in joined.splitlines()) <= 80
        assert len(screen.splitlines()) <= 24
        assert "web-1" in screen  # the recording's host, not this machine
        header = next(line for line in screen.splitlines() if line.startswith("Proto"))
        for column in ("State", "Local", "Remote", "Process"):
            assert column in header  # laid out for 80 columns, not cut by the terminal
        assert "Quit" in screen.splitlines()[-1]
        term.keys("q")
        term.wait_gone()
        assert read_status(tmp_path / "status") == 0
    finally:
        term.kill()


@pytest.mark.root
def test_hostile_process_names_reach_the_terminal_as_text(lab, terminal, tmp_path):
    term = terminal(120, 40)
    term.start([str(NETDASH), "--netns", lab.netns], tmp_path / "status")
    try:
        term.wait_for(lambda s: has_footer(s) and bool(table_rows(s)), "first screen")
        term.keys("/")
        term.wait_for(lambda s: "proc:nginx" in s, "the filter input (placeholder)")
        term.keys("sport:6666-6667", literal=True)
        term.keys("Enter")
        name = MARKUP_COMM.split(b"\x1b")[0].decode()  # "[red]x[/]"
        plain = term.wait_for(
            lambda s: "filter: sport:6666-6667" in s and len(table_rows(s)) == 2, "two rows"
        )
        assert f"{name}^[" in plain  # markup not applied; the ESC drawn as two characters
        assert "bad\\xffname" in plain  # the byte that is not UTF-8, spelled out
        coloured = term.screen(escapes=True)
        line = next(line for line in coloured.splitlines() if name in line)
        after = line[line.index(name) :]
        # The terminal's own SGR sequences are fine; the name's ESC [31m must not have arrived
        # as an escape (tmux would then re-emit the palette red it set).
        assert after.startswith(f"{name}^[")
        assert "\x1b[31m" not in coloured
        term.keys("q")
        term.wait_gone()
    finally:
        term.kill()
