"""The header line: where netdash is looking, with what, how fresh, and what it cannot see."""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.text import Text
from textual.widget import Widget

from netdash.model import HostInfo
from netdash.sources.host import WITHOUT_ROOT
from netdash.textsafe import visible
from netdash.ui.format import duration


class StatusLine(Widget):
    """One line: host · kernel · netns · root · source · interval · age · LIVE/PAUSED · rows."""

    DEFAULT_CSS = """
    StatusLine {
        height: auto;
        max-height: 2;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, host: HostInfo, interval: float, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.host = host
        self.interval = interval
        self.sources: Mapping[str, str] = {}
        self.gaps: tuple[str, ...] = ()
        self.sampled_at: float | None = None  # monotonic
        self.paused = False
        self.shown = 0
        self.total = 0
        self.error: str | None = None
        self.names: tuple[str, str] | None = None  # (text, style) while names (n) are on
        self._text: Text | None = None  # what was last painted

    def on_mount(self) -> None:
        self.set_interval(1.0, self.redraw)  # the sample's age keeps moving

    def redraw(self) -> None:
        """Repaint if the line changed (after a sample, and each second for the age): on an
        idle host the line reads the same from tick to tick and costs no repaint."""
        text = self._build()
        if text != self._text:
            lines_before = self._text.plain.count("\n") if self._text is not None else -1
            self._text = text
            self.refresh(layout=text.plain.count("\n") != lines_before)  # the ⚠ line comes or goes

    def render(self) -> Text:
        if self._text is None:
            self._text = self._build()
        return self._text

    def _build(self) -> Text:
        """Most urgent first, so a narrow terminal cuts the least useful facts: is it live,
        how fresh, how many rows, then where and how it is looking."""
        text = Text(no_wrap=True, overflow="ellipsis")
        host = self.host
        text.append(f" {visible(host.hostname)} ", style="bold")
        text.append(
            "PAUSED" if self.paused else "LIVE",
            style="reverse yellow" if self.paused else "bold green",
        )
        text.append(" · ")
        if self.sampled_at is None:
            text.append("waiting for the first sample", style="yellow")
        else:
            text.append(*self.age_label(time.monotonic() - self.sampled_at))
        text.append(f" · {self.shown:,}/{self.total:,} rows")
        if self.names is not None:
            text.append(" · ")
            text.append(*self.names)
        if self.error:
            text.append(f" · {visible(self.error)}", style="bold red")
        text.append(f" · netns {visible(host.netns)} · ")
        if host.is_root:
            text.append("root", style="bold green")
        else:
            text.append(WITHOUT_ROOT, style="bold yellow")
        text.append(f" · {self.source_label()} every {self.interval:g}s · {host.kernel}")
        if self.gaps:
            text.append("\n ⚠ " + gaps_summary(self.gaps), style="bold yellow")
        return text

    def age_label(self, age: float) -> tuple[str, str]:
        """(text, style) of the sample's age. While samples arrive on time it reads the same
        from tick to tick ("≤1s ago"): a clock that flips 0.0s/1.0s tells nothing, and each
        flip would cost a repaint. A late sample shows its age, in red once clearly stalled."""
        if age <= 1.5 * self.interval:
            return f"≤{self.interval:g}s ago", ""
        return f"{duration(age)} ago", "bold red" if age > 3 * self.interval + 1 else "yellow"

    def source_label(self) -> str:
        kinds = sorted(set(self.sources.values()))
        if not kinds:
            return "source: -"
        if len(kinds) == 1:
            return kinds[0]
        return ", ".join(f"{proto}: {kind}" for proto, kind in sorted(self.sources.items()))


def gaps_summary(gaps: tuple[str, ...]) -> str:
    """The fallback's missing fields in one line: "/proc/net fallback: no tcp_info (…); no …"."""
    prefix = "/proc/net fallback: "
    plain = [gap.removeprefix(prefix) for gap in gaps]
    head = prefix if len(plain) == len(gaps) and any(g.startswith(prefix) for g in gaps) else ""
    return head + "; ".join(dict.fromkeys(plain))
