"""The reach pane (Diagnose tab) with Pilot: the real diagnosis against a listener on
127.0.0.1 (reachable) and a closed port (refused), steps filling in as they complete; and,
with a scripted runner, that a new diagnosis replaces the running one and that what the
system says is shown as text, never markup."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Input

from netdash.diagnose import DiagnoseOptions, Diagnosis, DiagnosisCancelled, Step
from netdash.ui.panes.reach import ReachPane


class ReachApp(App[None]):
    def __init__(self, pane: ReachPane) -> None:
        super().__init__()
        self.pane = pane
        self.finished: list[Diagnosis] = []

    def compose(self) -> ComposeResult:
        yield self.pane

    def on_reach_pane_finished(self, message: ReachPane.Finished) -> None:
        self.finished.append(message.diagnosis)


def screen_text(app: App[None]) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def listener() -> Iterator[int]:
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released: nobody else takes 127.0.0.1 ports
    from under a test in the moment between)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


async def diagnose_typed(app: ReachApp, pilot, target: str) -> None:
    await pilot.click("#reach-input")
    await pilot.press(*target, "enter")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_a_listener_on_loopback_is_reachable_step_by_step(listener: int) -> None:
    app = ReachApp(ReachPane(DiagnoseOptions(timeout=1.0)))
    async with app.run_test(size=(120, 30)) as pilot:
        await diagnose_typed(app, pilot, f"127.0.0.1:{listener}")
        pane = app.pane
        assert [s.name for s in pane.steps][:3] == ["resolve", "route", "interface"]
        assert [s.name for s in pane.steps][-2:] == ["connect", "peer"]
        text = screen_text(app)
        assert f"reachable: connected to 127.0.0.1:{listener}" in text
        assert f"listening on 127.0.0.1:{listener}" in text
        assert " ms" in text
        assert len(app.finished) == 1 and app.finished[0].reachable


async def test_a_closed_port_is_refused(closed_port: int) -> None:
    app = ReachApp(ReachPane(DiagnoseOptions(timeout=1.0)))
    async with app.run_test(size=(120, 30)) as pilot:
        await diagnose_typed(app, pilot, f"127.0.0.1:{closed_port}")
        text = screen_text(app)
        assert f"refused: nothing listens on port {closed_port} on this host" in text
        assert f"nothing listens on tcp port {closed_port}" in text
        assert app.finished[0].token == "refused"
        app.query_one("#reach-input", Input).value = ""
        await diagnose_typed(app, pilot, "no-port")  # replaces the last one, says why
        assert "not host:port" in screen_text(app)


def scripted(release: threading.Event, seen_cancel: list[bool]):
    """A runner that reports one step, then (for the first target) waits to be cancelled."""

    def run(target: str, options, *, on_step, cancel) -> Diagnosis:
        step = Step("resolve", "ok", f"[bold red]{target}[/] \x1b]0;title\x07", 1.0)
        on_step(step)
        if target.startswith("slow"):
            release.wait(5)
            seen_cancel.append(cancel.is_set())
            raise DiagnosisCancelled()
        return Diagnosis(target, None, (step,), "timeout: [red]no answer[/] in 1 s")

    return run


async def test_a_new_diagnosis_replaces_the_running_one_and_text_stays_text() -> None:
    release, seen_cancel = threading.Event(), []
    app = ReachApp(ReachPane(runner=scripted(release, seen_cancel)))
    async with app.run_test(size=(120, 30)) as pilot:
        app.pane.start("slow.test:80")
        await pilot.pause()
        assert "diagnosing slow.test:80" in screen_text(app)
        app.pane.start("fast.test:443")
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert seen_cancel == [True]
        text = screen_text(app)
        assert "slow.test" not in text
        assert "[bold red]fast.test:443[/] ^[]0;title^G" in text  # markup and escapes as text
        assert "timeout: [red]no answer[/] in 1 s" in text
        assert [d.target for d in app.finished] == ["fast.test:443"]
        assert app.query_one("#reach-input", Input).value == "fast.test:443"
