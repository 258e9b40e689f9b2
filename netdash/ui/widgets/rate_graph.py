"""The selected interface's RX and TX over the history window, bmon-style, with a scaled axis."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from netdash.engine_links import LinkHistorySnapshot
from netdash.textsafe import visible
from netdash.ui.format import human_bits
from netdash.ui.graph import bucket_means, graph_block

AXIS = 7
#: The windows ``z`` cycles through, in seconds (the engine keeps ten minutes).
WINDOWS: tuple[float, ...] = (60.0, 300.0, 600.0)


def window_label(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 60 else f"{seconds / 60:.0f}m"


class RateGraph(Widget):
    """Two stacked bar graphs (RX above TX) for one interface; it renders what it is given."""

    DEFAULT_CSS = """
    RateGraph { height: 40%; min-height: 6; max-height: 14; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.name_shown = ""
        self.history = LinkHistorySnapshot()
        self.now = 0.0
        self.window = WINDOWS[0]
        self.interval = 1.0  # what one sample's rate covers (the app's interval)

    def show(self, name: str, history: LinkHistorySnapshot, now: float) -> None:
        self.name_shown, self.history, self.now = name, history, now
        self.refresh()

    def cycle_window(self) -> float:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.refresh()
        return self.window

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        if not self.name_shown:
            text.append("no interface selected", style="dim italic")
            return text
        width = max(1, self.size.width - AXIS - 1)
        half = max(1, (self.size.height - 2) // 2)
        for direction, style in (("rx", "green"), ("tx", "cyan")):
            series = self.history.series(f"{direction}_bps")
            points = bucket_means(
                self.history.times, series, self.now, self.window, width, self.interval
            )
            start = self.now - self.window
            recent = [v for at, v in zip(self.history.times, series, strict=True) if at > start]
            known = [v for v in recent if v is not None]
            now = known[-1] if known else None
            peak = max(known) if known else None
            title = (
                f"{direction.upper()} {visible(self.name_shown)}  now {human_bits(now) or '-'}/s"
                f"  peak {human_bits(peak) or '-'}/s  last {window_label(self.window)}\n"
            )
            text.append(title, style="bold")
            for line in graph_block(points, half, width, human_bits, AXIS, floor=1000.0):
                text.append(line[: AXIS + 1], style="dim")
                text.append(line[AXIS + 1 :] + "\n", style=style)
        text.rstrip()
        return text
