"""The Diagnose tab: three views of one question, "why can't I reach it?".

``s`` the TCP/IP stack's counters and sysctls (:mod:`netdash.ui.panes.stack`), ``r`` the
resolver in use and a ``dig``-like prompt (:mod:`netdash.ui.panes.resolver`), ``d`` the
host:port checklist (:mod:`netdash.ui.panes.reach`). The app starts a diagnosis here when ``d`` is
pressed on a connection; the views keep their state while another one is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Input, Static

from netdash.diagnose import DiagnoseOptions
from netdash.sources.dnsconfig import ResolverConfig, RootHints, Server
from netdash.ui.panes.reach import ReachPane
from netdash.ui.panes.resolver import ResolverPane
from netdash.ui.panes.stack import StackPane

VIEWS: tuple[tuple[str, str, str], ...] = (
    ("s", "stack", "stack health"),
    ("r", "resolver", "resolver and lookups"),
    ("d", "reach", "reach host:port"),
)
LIVE_ONLY = "read live only: a recording holds no resolver and cannot be diagnosed from here"


@dataclass(frozen=True)
class DiagnoseSettings:
    """What the resolver and reach views need from the command line, read before the app runs
    (the resolver configuration is a file read: never on the event loop)."""

    resolver: ResolverConfig
    nameservers: tuple[Server, ...] | None
    netns: str | None  # the namespace's name for humans, None for the host's
    root_hints: RootHints | None
    options: DiagnoseOptions


class DiagnosePane(Vertical):
    """A line naming the views and their keys, above the view shown."""

    BINDINGS = [
        *(Binding(key, f"show_view('{view}')", label) for key, view, label in VIEWS),
        Binding("escape", "leave_input", "Leave", show=False),
    ]
    can_focus = True  # the keys above work with the focus on no view's widget

    def __init__(self, settings: DiagnoseSettings | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.settings = settings
        self.current = "stack"

    def compose(self) -> ComposeResult:
        yield Static(self._menu(), id="diagnose-menu")
        with ContentSwitcher(initial="stack-pane", id="diagnose-views"):
            yield StackPane(id="stack-pane")
            settings = self.settings
            if settings is None:
                yield Static(Text(LIVE_ONLY, style="dim"), id="resolver-pane")
                yield Static(Text(LIVE_ONLY, style="dim"), id="reach-pane")
            else:
                yield ResolverPane(
                    settings.resolver,
                    settings.nameservers,
                    settings.netns,
                    settings.root_hints,
                    id="resolver-pane",
                )
                yield ReachPane(settings.options, id="reach-pane")

    def _menu(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, view, label in VIEWS:
            style = "bold reverse" if view == self.current else "dim"
            text.append(f" {key} ", style="bold")
            text.append(label, style=style)
            text.append("  ")
        return text

    def action_show_view(self, view: str) -> None:
        """Show ``view`` and put the focus where its keys work (its prompt for lookups)."""
        self.current = view
        self.query_one(ContentSwitcher).current = f"{view}-pane"
        self.query_one("#diagnose-menu", Static).update(self._menu())
        shown = self.query_one(f"#{view}-pane")
        inputs = list(shown.query(Input))
        if view != "stack" and inputs:
            inputs[0].focus()
        else:
            self.focus_view()

    def focus_view(self) -> None:
        """Focus the shown view's first focusable widget other than a prompt (the tab was
        switched to, or a prompt left), else this pane: its keys must keep working."""
        shown = self.query_one(f"#{self.current}-pane")
        for widget in shown.query("*"):
            if widget.focusable and not isinstance(widget, Input):
                widget.focus()
                return
        self.focus()

    def action_leave_input(self) -> None:
        """Esc in a prompt: back to the view's keys; elsewhere Esc goes on to the app."""
        if not isinstance(self.app.focused, Input):
            raise SkipAction()
        self.focus_view()

    def diagnose(self, target: str) -> bool:
        """Show the reach view and start diagnosing ``target``; False in a replay."""
        self.action_show_view("reach")
        pane = self.query_one("#reach-pane")
        if not isinstance(pane, ReachPane):
            return False
        pane.start(target)
        self.focus_view()
        return True

    @property
    def stack(self) -> StackPane:
        return self.query_one(StackPane)
