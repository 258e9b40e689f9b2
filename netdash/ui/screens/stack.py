"""The Python stack of a process, through py-spy, after the user agreed to pause it.

py-spy attaches with ptrace and stops the target for a few milliseconds: an action on someone
else's process, so it is offered only for Python processes and always confirmed first
(DESIGN.md: "actions on other processes confirm first"). Everything that touches /proc or runs
py-spy happens in a thread; the UI thread only shows the outcome.

Entry point: :func:`offer_stack_dump` (bound to a key on the Process screen).
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, get_current_worker

from netdash.sources import pyspy
from netdash.sources.pyspy import StackDump, StackFrame, ThreadStack
from netdash.textsafe import visible
from netdash.ui.format import clock_time
from netdash.ui.widgets.breadcrumb import Breadcrumb

DUMP_TIMEOUT = 10.0


def _who(pid: int, name: str) -> str:
    return f"PID {pid} ({visible(name)})" if name else f"PID {pid}"


class ConfirmStackDump(ModalScreen[bool]):
    """Says what py-spy will do to the process and waits for y; anything else means no."""

    DEFAULT_CSS = """
    ConfirmStackDump {
        align: center middle;
    }
    #stack-confirm {
        width: 80%;
        max-width: 90;
        height: auto;
        border: round $warning;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No", show=False),
        Binding("enter", "answer(False)", "No", show=False),  # the default is No
    ]

    def __init__(self, pid: int, name: str) -> None:
        super().__init__()
        self.pid = pid
        self.process_name = name

    def compose(self) -> ComposeResult:
        text = Text("stack dump\n\n", style="bold")
        text.append(
            f"py-spy will attach to {_who(self.pid, self.process_name)} with ptrace and pause it "
            "for a few milliseconds to read its stack. Continue? "
        )
        text.append("y/n", style="bold")
        with Vertical(id="stack-confirm"):
            yield Static(text, id="stack-confirm-text")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def thread_header(thread: ThreadStack) -> Text:
    """``Thread 2818 "MainThread"  idle  GIL`` — the facts `py-spy dump` prints, as data."""
    tid = thread.os_thread_id if thread.os_thread_id is not None else thread.thread_id
    header = Text(f"Thread {tid}", style="bold")
    if thread.name:
        header.append(f' "{visible(thread.name)}"', style="bold")
    header.append("  ")
    header.append(
        "active" if thread.active else "idle", style="bold green" if thread.active else "dim"
    )
    header.append("  ")
    header.append(
        "holds the GIL" if thread.owns_gil else "no GIL",
        style="bold yellow" if thread.owns_gil else "dim",
    )
    return header


def frame_text(frame: StackFrame) -> Text:
    """``function  (file:line)``, innermost first as py-spy lists them."""
    text = Text(visible(frame.name), style="bold")
    text.append(f"  ({visible(frame.filename)}:{frame.line})", style="cyan")
    return text


def render_dump(dump: StackDump) -> RenderableType:
    """Each thread's header, then its frames indented (a long path wraps under its frame)."""
    if dump.error is not None:
        return Text(dump.error, style="bold red")
    if not dump.threads:
        return Text("py-spy found no Python threads", style="italic")
    parts: list[RenderableType] = []
    for number, thread in enumerate(dump.threads):
        if number:
            parts.append(Text())
        parts.append(thread_header(thread))
        frames = Table.grid()
        frames.add_column(width=4)
        frames.add_column()
        if not thread.frames:
            frames.add_row("", Text("(no Python frames)", style="dim"))
        for frame in thread.frames:
            frames.add_row("", frame_text(frame))
        parts.append(frames)
    return Group(*parts)


class StackScreen(Screen[None]):
    """Threads and frames of one process; ``r`` reads them again, Esc goes back."""

    DEFAULT_CSS = """
    #stack-title {
        height: auto;
        padding: 0 1;
    }
    #stack-status {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    #stack-body {
        height: 1fr;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "refresh_stack", "Refresh"),
    ]

    def __init__(
        self,
        pid: int,
        name: str,
        *,
        timeout: float = DUMP_TIMEOUT,
        trail: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.pid = pid
        self.process_name = name
        self.trail = (*trail, "stack") if trail else ()
        self.timeout = timeout
        self.dump: StackDump | None = None

    def compose(self) -> ComposeResult:
        if self.trail:
            yield Breadcrumb(self.trail)
        title = Text(f"stack of {_who(self.pid, self.process_name)}", style="bold")
        yield Static(title, id="stack-title")
        yield Static(id="stack-status")
        with VerticalScroll(id="stack-body"):
            yield Static(id="stack-text")
        yield Footer(show_command_palette=False)  # Ctrl+P still works (help)

    def on_mount(self) -> None:
        self.query_one("#stack-body", VerticalScroll).focus()
        self.action_refresh_stack()

    def action_refresh_stack(self) -> None:
        self.query_one("#stack-status", Static).update(Text("reading the stack…"))
        self._read_stack()

    @work(thread=True, exclusive=True, group="stack")
    def _read_stack(self) -> None:
        dump = pyspy.dump_stack(self.pid, timeout=self.timeout)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, dump)

    def _show(self, dump: StackDump) -> None:
        if not self.is_attached:  # closed while py-spy ran
            return
        self.dump = dump
        threads = len(dump.threads)
        status = f"read at {clock_time(time.time())}"
        if dump.error is None:
            status += f" · {threads} thread{'s' if threads != 1 else ''}"
        status += " · r reads again"
        self.query_one("#stack-status", Static).update(Text(status))
        self.query_one("#stack-text", Static).update(render_dump(dump))

    def action_back(self) -> None:
        self.dismiss(None)


def offer_stack_dump(
    app: App[object], pid: int, name: str, trail: tuple[str, ...] = ()
) -> Worker[None]:
    """Check in a thread that ``pid`` is Python, confirm, then open :class:`StackScreen`.

    Not Python, gone or unreadable: a notification says so and nothing else happens. The
    returned worker lets a caller (or a test) wait for the check.
    """

    async def offer() -> None:
        problem = await asyncio.to_thread(pyspy.python_problem, pid)
        if problem is not None:
            app.notify(f"{problem}: {_who(pid, name)}", severity="warning", markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                app.push_screen(StackScreen(pid, name, trail=trail))

        app.push_screen(ConfirmStackDump(pid, name), answered)

    return app.run_worker(offer(), group="stack-offer", exclusive=True)
