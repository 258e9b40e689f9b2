"""The bar graph helpers behind the Interfaces pane's RX/TX graph (plain strings, no terminal)."""

from __future__ import annotations

from netdash.ui.format import human_bits
from netdash.ui.graph import EIGHTHS, bar_lines, bucket_means, graph_block, nice_top


def test_a_one_second_sample_fills_every_column_its_interval_touches():
    times = [7.0, 8.0, 9.0, 10.0]
    values = [10.0, 20.0, None, 40.0]
    # 10 s window, 20 columns: each sample's second covers two columns.
    points = bucket_means(times, values, now=10.0, window=10.0, width=20, span=1.0)
    assert points[:12] == [None] * 12  # nothing before t=6
    assert points[12:14] == [10.0, 10.0] and points[14:16] == [20.0, 20.0]
    assert points[16:18] == [None, None]  # unknown rate (a counter reset) stays blank
    assert points[18:] == [40.0, 40.0]


def test_columns_average_the_samples_they_hold_and_ignore_the_outside():
    times = [0.5, 1.0, 1.5, 2.0, 99.0]
    points = bucket_means(times, [2.0, 4.0, 6.0, 8.0, 1e9], now=2.0, window=2.0, width=2)
    assert points == [3.0, 7.0]  # (0, 1]: 2 and 4; (1, 2]: 6 and 8; t=99 is after "now"


def test_the_scale_top_is_a_round_number_at_or_above_the_peak():
    assert [nice_top(v) for v in (0, 1, 1.2, 3, 7.5, 10, 999, 1001)] == [
        1, 1, 2, 5, 10, 10, 1000, 2000,
    ]  # fmt: skip


def test_bars_use_eighths_and_tell_idle_from_unknown():
    lines = bar_lines([0.0, None, 50.0, 100.0, 1.0], height=2, top=100.0)
    assert lines == [
        "   " + EIGHTHS[8] + " ",
        "▁ " + EIGHTHS[8] + EIGHTHS[8] + EIGHTHS[1],  # 1% of the scale still shows as a sliver
    ]


def test_graph_block_labels_its_axis_with_units():
    points = [None] * 8 + [3_000_000.0, 8_000_000.0]
    block = graph_block(points, height=4, width=10, label=human_bits, floor=1000.0)
    assert [line[:7] for line in block] == [" 10.0Mb", "       ", "  5.0Mb", "      0"]
    assert all(line[7] == "│" for line in block) and all(len(line) == 18 for line in block)
    idle = graph_block([0.0] * 10, height=4, width=10, label=human_bits, floor=1000.0)
    assert idle[0].startswith("  1.0Kb")  # an idle link's scale is not fractions of a bit
