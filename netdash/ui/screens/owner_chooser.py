"""Enter on a socket held by several processes (nginx workers on one listener): pick one."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from netdash.textsafe import visible
from netdash.ui.panes.connection_rows import ConnEntry, local_label


class OwnerChooser(ModalScreen[int | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Back")]

    def __init__(self, entry: ConnEntry, fds: Mapping[int, tuple[int, ...]] | None = None) -> None:
        """``fds``: each owner's descriptors on the socket (pid -> fds), from the sample."""
        super().__init__()
        self.entry = entry
        self.fds = fds or {}

    def compose(self) -> ComposeResult:
        options = []
        for owner in self.entry.owners:  # one per process, by pid
            fds = ",".join(map(str, self.fds.get(owner.pid, ()))) or "?"
            label = Text(f"{owner.pid:>7}  ")
            label.append(visible(owner.comm), style="bold")
            label.append(f"  user {visible(owner.user or str(owner.uid))}  fd {fds}")
            options.append(Option(label, id=str(owner.pid)))
        with Vertical(id="chooser"):
            yield Static(
                Text(
                    f"{len(options)} processes hold {local_label(self.entry.sock)} — open which?",
                    style="bold",
                )
            )
            yield OptionList(*options, id="owners")

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
