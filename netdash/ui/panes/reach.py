"""The Diagnose tab's "why can't I reach host:port?": type ``host:port`` (or press ``d`` on a
connection, which calls :meth:`ReachPane.start`) and watch the checklist fill in — name, route,
interface, firewall, listener, connect, TLS — each step with its status and time as it
completes, then the one-line verdict.

The diagnosis (:func:`netdash.diagnose.diagnose`) runs in a thread worker and posts each step
back with ``call_from_thread``; a new diagnosis cancels the one running (its cancel event is
set, and anything it still reports is ignored by its generation number). Everything shown from
the system is data: rich ``Text`` built piece by piece, never markup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from netdash.diagnose import (
    DiagnoseOptions,
    Diagnosis,
    DiagnosisCancelled,
    Step,
    diagnose,
    parse_target,
)
from netdash.textsafe import visible

STATUS_STYLES = {"ok": "bold green", "warn": "bold yellow", "fail": "bold red", "skip": "dim"}
VERDICT_STYLES = {"reachable": "bold green", "timeout": "bold yellow", "dns-failure": "bold red"}
PLACEHOLDER = "host:port ([v6]:port) — Enter: why can't I reach it?"

Runner = Callable[..., Diagnosis]  # diagnose(target, options, on_step=, cancel=)


def steps_table(steps: list[Step]) -> Table:
    """The steps as columns, so that a long detail wraps under its own column."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="dim", justify="right", no_wrap=True)
    table.add_column(ratio=1)
    for step in steps:
        table.add_row(
            Text(step.status, style=STATUS_STYLES.get(step.status, "")),
            step.name,
            f"{step.ms:.1f} ms",
            Text(visible(step.detail)),
        )
    return table


def verdict_text(verdict: str) -> Text:
    """The verdict with its token coloured: green reachable, yellow timeout, red the rest."""
    token, sep, rest = verdict.partition(":")
    text = Text()
    text.append(token, style=VERDICT_STYLES.get(token, "bold red"))
    text.append(sep + visible(rest))
    return text


class ReachPane(Vertical):
    """An input for ``host:port``, the steps as they complete, and the verdict."""

    DEFAULT_CSS = """
    ReachPane { height: auto; }
    ReachPane #reach-steps { height: auto; padding: 0 1; }
    ReachPane #reach-verdict { height: auto; padding: 0 1; }
    """

    class Finished(Message):
        """A diagnosis ended (not posted for one that was replaced)."""

        def __init__(self, diagnosis: Diagnosis) -> None:
            super().__init__()
            self.diagnosis = diagnosis

    def __init__(
        self,
        options: DiagnoseOptions | None = None,
        *,
        runner: Runner = diagnose,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.options = options or DiagnoseOptions()
        self.runner = runner
        self.steps: list[Step] = []
        self.diagnosis: Diagnosis | None = None
        self.running: str | None = None  # the target being diagnosed
        self._generation = 0
        self._cancel = threading.Event()

    def compose(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="reach-input")
        yield Static(id="reach-steps")
        yield Static(Text("type host:port and press Enter", style="dim"), id="reach-verdict")

    @on(Input.Submitted, "#reach-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.start(event.value)

    def start(self, target: str) -> None:
        """Diagnose ``target`` (``host:port``), replacing any diagnosis still running."""
        self.query_one("#reach-input", Input).value = target
        self._cancel.set()
        self._generation += 1
        self.steps, self.diagnosis = [], None
        try:
            parsed = parse_target(target)
        except ValueError as err:
            self.running = None
            self._show_steps()
            self._show_verdict(Text(f"not host:port: {visible(str(err))}", style="bold red"))
            return
        self.running = str(parsed)
        self._cancel = threading.Event()
        self._show_steps()
        generation, cancel, text = self._generation, self._cancel, self.running
        self.run_worker(
            lambda: self._diagnose(text, generation, cancel),
            thread=True,
            group="reach",
            exit_on_error=False,
        )

    # -- in the worker thread ------------------------------------------------------------------

    def _diagnose(self, target: str, generation: int, cancel: threading.Event) -> None:
        def on_step(step: Step) -> None:
            self._from_thread(self._add_step, generation, step)

        try:
            result = self.runner(target, self.options, on_step=on_step, cancel=cancel)
        except DiagnosisCancelled:
            return
        except Exception as err:  # a source failing in an unforeseen way: said, not raised
            self._from_thread(self._failed, generation, str(err) or type(err).__name__)
            return
        self._from_thread(self._finished, generation, result)

    def _from_thread(self, callback: Callable[..., None], *args: object) -> None:
        with suppress(RuntimeError):  # the app is closing
            self.app.call_from_thread(callback, *args)

    # -- on the UI thread ----------------------------------------------------------------------

    def _add_step(self, generation: int, step: Step) -> None:
        if generation == self._generation:
            self.steps.append(step)
            self._show_steps()

    def _finished(self, generation: int, result: Diagnosis) -> None:
        if generation != self._generation:
            return
        self.running, self.diagnosis = None, result
        self.steps = list(result.steps)
        self._show_steps()
        self._show_verdict(verdict_text(result.verdict))
        self.post_message(self.Finished(result))

    def _failed(self, generation: int, error: str) -> None:
        if generation == self._generation:
            self.running = None
            self._show_verdict(Text(f"diagnosis failed: {visible(error)}", style="bold red"))

    def _show_steps(self) -> None:
        self.query_one("#reach-steps", Static).update(steps_table(self.steps))
        if self.running is not None:
            count = len(self.steps)
            where = visible(self.running)
            self._show_verdict(Text(f"diagnosing {where}… ({count} steps so far)", style="dim"))

    def _show_verdict(self, text: Text) -> None:
        self.query_one("#reach-verdict", Static).update(text)

    def on_unmount(self) -> None:
        self._cancel.set()
