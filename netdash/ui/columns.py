"""Table columns on a terminal: which fit, how wide, and cells cut to exactly that width.

Plain functions over strings, no Textual: :class:`netdash.ui.widgets.virtual_table.VirtualTable`
lays out its header and rows with them, and tests check them without a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, set_cell_size

from netdash.textsafe import visible

__all__ = ["SEPARATOR", "Column", "fit_cell", "header_cell", "layout_columns"]

#: Cells are separated by one space: a box-drawing rule would cost a column per cell at 80 wide.
SEPARATOR = 1


@dataclass(frozen=True)
class Column:
    """How one column is shown; the table drops and sizes columns to fit the terminal.

    ``width`` is the preferred width and ``min_width`` the narrowest useful one (0: same as
    ``width``). When the minimum widths do not fit, columns are dropped highest ``priority``
    number first (1 = never dropped before anything else). ``flex`` columns (Process, Remote)
    take whatever width is left once every column has its preferred width.
    """

    key: str
    title: str
    width: int
    min_width: int = 0
    align: Literal["left", "right"] = "left"
    priority: int = 1
    flex: bool = False

    def __post_init__(self) -> None:
        if self.min_width <= 0 or self.min_width > self.width:
            object.__setattr__(self, "min_width", self.width)


def layout_columns(
    columns: Sequence[Column], width: int, hidden: Iterable[str] = ()
) -> list[tuple[int, int]]:
    """``(column index, cell width)`` of the columns shown in ``width`` cells, left to right.

    Columns whose key is in ``hidden`` are never shown (a view that makes them meaningless).
    Drops columns by priority until the minimum widths (plus one separator between cells) fit,
    grows the survivors toward their preferred widths (most important first), then gives what is
    left to the flex columns. The result never exceeds ``width`` (a single survivor is cut).
    """
    skip = set(hidden)
    shown = [i for i, column in enumerate(columns) if column.key not in skip]

    def needed(indices: list[int]) -> int:
        return sum(columns[i].min_width for i in indices) + SEPARATOR * max(len(indices) - 1, 0)

    while len(shown) > 1 and needed(shown) > width:
        shown.remove(max(shown, key=lambda i: (columns[i].priority, i)))
    widths = {i: min(columns[i].min_width, max(width, 0)) for i in shown}
    spare = width - needed(shown)
    for i in sorted(shown, key=lambda i: (columns[i].priority, i)):
        grow = max(min(spare, columns[i].width - widths[i]), 0)
        widths[i] += grow
        spare -= grow
    flexible = [i for i in shown if columns[i].flex]
    for n, i in enumerate(flexible):
        share = spare // len(flexible) + (1 if n < spare % len(flexible) else 0)
        widths[i] += max(share, 0)
    return [(i, widths[i]) for i in shown]


def fit_cell(text: str, width: int, align: str = "left") -> str:
    """``text`` padded or cut to exactly ``width`` terminal cells, cut text ending in "…".

    Control characters are made visible first: a producer should already have done it, but a raw
    ESC reaching the terminal would be worse than doing it twice. Wide (CJK) characters count two.
    """
    if width <= 0:
        return ""
    if not text.isprintable():
        text = visible(text)
    if text.isascii():
        if len(text) > width:
            return text[: width - 1] + "…"
        return text.ljust(width) if align == "left" else text.rjust(width)
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - length)
    return text + pad if align == "left" else pad + text


def header_cell(title: str, arrow: str, width: int, align: str = "left") -> str:
    """A column title fitted to ``width``, the sort ``arrow`` kept visible even when cut."""
    if not arrow:
        return fit_cell(title, width, align)
    if width <= 1:
        return arrow[:width]
    room = width - 1
    label = title if cell_len(title) <= room else fit_cell(title, room)
    return fit_cell(label + arrow, width, align)
