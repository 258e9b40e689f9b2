"""bmon-style bar graphs of a rate over time, as plain strings (no Textual).

A column of the graph covers an equal slice of the window and shows the mean of the samples in
it, drawn with eighth blocks, so a 10-line graph has 80 levels. The scale's top is a round number
(1, 2 or 5 times a power of ten) at or above the window's highest column, written on the axis:
a graph without units on its axis only says "something moved".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

EIGHTHS = " ▁▂▃▄▅▆▇█"


def bucket_means(
    times: Sequence[float],
    values: Sequence[float | None],
    now: float,
    window: float,
    width: int,
    span: float = 0.0,
) -> list[float | None]:
    """``width`` column values covering ``(now - window, now]``, oldest first.

    A value at time ``t`` is a rate measured over ``(t - span, t]`` and stands for every column
    that interval touches, so a 1 s sample drawn on a 1-minute graph 80 columns wide fills its
    1.3 columns instead of leaving gaps. A column is the mean of the values touching it; None
    when none does (before the interface existed, or rates unknown after a counter reset).
    """
    if width <= 0 or window <= 0:
        return []
    sums = [0.0] * width
    counts = [0] * width
    start = now - window
    scale = width / window
    for at, value in zip(times, values, strict=True):
        if value is None or at <= start or at > now:
            continue
        # Column c covers (start + c / scale, start + (c + 1) / scale].
        last = min(width - 1, math.ceil((at - start) * scale - 1e-9) - 1)
        first = max(0, min(last, math.floor((at - span - start) * scale + 1e-9)))
        for column in range(first, last + 1):
            sums[column] += value
            counts[column] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(width)]


def nice_top(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        top = step * 10.0**exponent
        if top >= value * (1 - 1e-9):
            return top
    return 10.0 ** (exponent + 1)


def bar_lines(points: Sequence[float | None], height: int, top: float) -> list[str]:
    """``height`` lines, top line first, of eighth-block bars; unknown columns are blank, a
    known zero sits on the baseline as a thin line so "idle" and "no data" look different."""
    if height <= 0:
        return []
    levels = height * 8
    heights = []
    for value in points:
        if value is None:
            heights.append(-1)
        else:
            heights.append(max(1, round(min(value, top) / top * levels)) if value > 0 else 0)
    lines = []
    for row in range(height):
        floor = (height - 1 - row) * 8
        chars = []
        for level in heights:
            if level < 0:
                chars.append(" ")
            elif level == 0:
                chars.append("▁" if row == height - 1 else " ")
            else:
                chars.append(EIGHTHS[max(0, min(8, level - floor))])
        lines.append("".join(chars))
    return lines


def graph_block(
    points: Sequence[float | None],
    height: int,
    width: int,
    label: Callable[[float], str],
    axis_width: int = 7,
    floor: float = 0.0,
) -> list[str]:
    """Bars with a y axis: each labelled line is marked with the value at its top edge (the
    scale's top on the first line, one near the middle), 0 on the baseline; labels are
    right-aligned in ``axis_width`` and followed by ``│``. ``floor`` is the smallest top: an
    idle link's graph reads "0 of 1Kb", not a scale of fractions of a bit."""
    known = [p for p in points if p is not None]
    top = nice_top(max(max(known) if known else 0.0, floor))
    bars = bar_lines(points[-max(0, width) :], height, top)
    marks = {0: label(top), height - 1: "0"}
    if height >= 4:
        middle = height // 2
        marks[middle] = label(top * (height - middle) / height)
    return [f"{marks.get(i, ''):>{axis_width}}│{bar}" for i, bar in enumerate(bars)]
