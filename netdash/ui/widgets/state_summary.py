"""The state summary: how many sockets are in each TCP state now, and over the last minutes.

At most three lines at 80 columns: four cells a line, each "LABEL count sparkline". A state whose
count grew over the last minute is highlighted: a climbing CLOSE_WAIT or SYN_RECV is usually the
first sign of the incident.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from netdash.engine import HistorySnapshot
from netdash.ui.format import sparkline

#: (history series, label) in reading order.
SUMMARY_CELLS: tuple[tuple[str, str], ...] = (
    ("ESTABLISHED", "ESTAB"),
    ("SYN_SENT", "SYN-SENT"),
    ("SYN_RECV", "SYN-RECV"),
    ("LISTEN", "LISTEN"),
    ("FIN_WAIT1", "FIN-WAIT-1"),
    ("FIN_WAIT2", "FIN-WAIT-2"),
    ("TIME_WAIT", "TIME-WAIT"),
    ("CLOSE_WAIT", "CLOSE-WAIT"),
    ("LAST_ACK", "LAST-ACK"),
    ("CLOSING", "CLOSING"),
    ("UDP", "UDP"),
    ("UNIX", "UNIX"),
)
GROWTH_WINDOW = 60.0
CELLS_PER_LINE = 4


class StateSummary(Widget):
    """Renders counts and history it is given; it never samples anything itself."""

    DEFAULT_CSS = """
    StateSummary { height: 3; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: dict[str, int] = {}
        self.history = HistorySnapshot()
        self.show_unix = False
        self._text: Text | None = None  # what was last painted, and at which width
        self._width = -1

    def update_counts(self, counts: dict[str, int], history: HistorySnapshot) -> None:
        self.counts = dict(counts)
        self.history = history
        self.redraw()

    def redraw(self) -> None:
        """Repaint if the text changed: steady counts draw the same sparklines every second,
        and an idle host should cost no repaint at all."""
        text = self._build(self.size.width)
        if text != self._text:
            self._text, self._width = text, self.size.width
            self.refresh()

    def grew(self, name: str) -> bool:
        before = self.history.value_ago(name, GROWTH_WINDOW)
        return before is not None and self.counts.get(name, 0) > before

    def render(self) -> Text:
        if self._text is None or self._width != self.size.width:
            self._text, self._width = self._build(self.size.width), self.size.width
        return self._text

    def _build(self, total_width: int) -> Text:
        cells = [c for c in SUMMARY_CELLS if c[0] != "UNIX" or self.show_unix]
        width = max(16, total_width // CELLS_PER_LINE)
        text = Text(no_wrap=True, overflow="crop")
        for index, (name, label) in enumerate(cells):
            if index and index % CELLS_PER_LINE == 0:
                text.append("\n")
            count = self.counts.get(name, 0)
            head = f"{label} {count}"
            grew = self.grew(name)
            style = "bold yellow" if grew else ("bold" if count else "dim")
            text.append(head, style=style)
            if grew:
                text.append("↑", style="bold yellow")
            spark_width = width - len(head) - (2 if grew else 1) - 1
            series = self.history.series.get(name, ())
            text.append(" ")
            text.append(
                sparkline(series, spark_width).ljust(max(0, spark_width)),
                style="yellow" if grew else "cyan",
            )
            text.append(" ")
        return text
