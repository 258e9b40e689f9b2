"""Where the user is in the drill-down: ``Connections › :8080 › nginx[1234] › stack``.

Each screen of the drill-down is given the trail that led to it and adds its own step; Esc walks
back one screen, so the trail on screen is always the way back.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from netdash.textsafe import visible

SEPARATOR = " › "


def trail_text(steps: Sequence[str]) -> Text:
    """The steps, separated, the last one (where the user is) in bold; shown literally."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for index, step in enumerate(steps):
        if index:
            text.append(SEPARATOR, style="dim")
        text.append(visible(step), style="bold" if index == len(steps) - 1 else "")
    return text


def process_step(name: str | None, pid: int) -> str:
    """A process as a step of the trail: ``nginx[1234]``."""
    return f"{name}[{pid}]" if name else f"pid {pid}"


class Breadcrumb(Static):
    DEFAULT_CSS = """
    Breadcrumb { height: 1; padding: 0 1; background: $panel; }
    """

    def __init__(self, steps: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(trail_text(steps), id=id)
        self.steps = tuple(steps)

    def show(self, steps: Sequence[str]) -> None:
        self.steps = tuple(steps)
        self.update(trail_text(self.steps), layout=False)
