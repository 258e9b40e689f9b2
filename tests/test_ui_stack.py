"""The stack dump offer and screen, driven with Pilot in the real app (replayed, not sampling)
against real processes: a Python sleeper in a known function, and `sleep`.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdash.sources import pyspy
from netdash.sources.pyspy import StackDump
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.screens.stack import ConfirmStackDump, StackScreen, offer_stack_dump
from tests.conftest import needs_root
from tests.test_pyspy import KNOWN_LINE, running_sleeper

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


def make_app() -> NetdashApp:
    return build_replay_app(RECORDING, autostart=False)


def screen_text(app: NetdashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    with running_sleeper(tmp_path) as running:
        yield running


@pytest.fixture
def dumps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every pid dump_stack is asked for; the real py-spy still runs."""
    calls: list[int] = []
    real = pyspy.dump_stack

    def recording(pid: int, timeout: float = 10.0) -> StackDump:
        calls.append(pid)
        return real(pid, timeout)

    monkeypatch.setattr(pyspy, "dump_stack", recording)
    return calls


async def offer(app: NetdashApp, pilot, pid: int, name: str) -> None:
    await offer_stack_dump(app, pid, name).wait()
    await pilot.pause()


@pytest.mark.parametrize("key", ["n", "escape", "enter"])
async def test_declining_runs_nothing(sleeper, dumps, key):
    proc, _ = sleeper
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.screen
        await offer(app, pilot, proc.pid, "python3")
        assert isinstance(app.screen, ConfirmStackDump)
        text = " ".join(screen_text(app).replace("│", " ").split())
        assert (
            f"py-spy will attach to PID {proc.pid} (python3) with ptrace and pause it for a few"
            " milliseconds to read its stack. Continue? y/n"
        ) in text
        await pilot.press(key)
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert app.screen is home
    assert dumps == []


@needs_root
async def test_accepting_shows_threads_and_frames_and_r_reads_again(sleeper, dumps):
    proc, script = sleeper
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.screen
        await offer(app, pilot, proc.pid, "python3")
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, StackScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = screen_text(app)
        assert f"stack of PID {proc.pid} (python3)" in text
        assert f'Thread {proc.pid} "MainThread"  idle  no GIL' in text
        assert f"inner_known_function  ({script}:{KNOWN_LINE})" in text
        assert '"worker-[red]x[/]"' in text  # a thread name is data, not markup
        assert dumps == [proc.pid]

        await pilot.press("r")  # no second confirmation inside the screen
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, StackScreen)
        assert dumps == [proc.pid, proc.pid]
        assert "inner_known_function" in screen_text(app)

        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is home


async def test_non_python_process_only_notifies(dumps):
    proc = subprocess.Popen(["sleep", "60"])
    try:
        app = make_app()
        async with app.run_test(size=(120, 40)) as pilot:
            home = app.screen
            await pilot.pause(0.05)  # past exec
            await offer(app, pilot, proc.pid, "sleep")
            assert app.screen is home
            messages = [note.message for note in app._notifications]
            assert messages == [f"not a Python process: PID {proc.pid} (sleep)"]
    finally:
        proc.kill()
        proc.wait()
    assert dumps == []


async def test_reading_never_blocks_the_ui_and_esc_leaves_while_py_spy_runs(monkeypatch):
    release = threading.Event()
    done = threading.Event()

    def slow(pid: int, timeout: float = 10.0) -> StackDump:
        release.wait(10)
        done.set()
        return StackDump(pid, error="timed out after 10 s")

    monkeypatch.setattr(pyspy, "dump_stack", slow)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        home = app.screen
        await app.push_screen(StackScreen(4242, "[bold]x"))
        await pilot.pause()
        text = screen_text(app)
        assert "reading the stack…" in text
        assert "stack of PID 4242 ([bold]x)" in text
        await pilot.press("escape")  # answered while the dump still runs
        await pilot.pause()
        assert app.screen is home and not done.is_set()
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is home


async def test_an_error_is_shown_as_is(monkeypatch):
    monkeypatch.setattr(
        pyspy,
        "dump_stack",
        lambda pid, timeout=10.0: StackDump(pid, error=pyspy.PERMISSION_DENIED),
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(StackScreen(4242, "x"))
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "permission denied (needs root or CAP_SYS_PTRACE)" in screen_text(app)
