"""TableView against a brute-force oracle, column layout, cell fitting; plus a 100k benchmark.

Run ``python tests/test_tableview.py`` for the timings at 100,000 rows (median of several runs).
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import pytest

from netdash.ui import tableview
from netdash.ui.tableview import (
    Column,
    Row,
    SortKey,
    TableView,
    fit_cell,
    header_cell,
    layout_columns,
    search_filter,
)


def make_row(key: int, value: Any, text: str = "", counter: int = 0) -> Row:
    """A row sorted by ``value`` (column 0) or ``counter`` (column 1)."""
    return Row(
        key=key,
        cells=(str(value), str(counter), text),
        sort_values=(value, counter, text),
        search_text=f"{key} {text}".lower(),
    )


def oracle(
    rows: Iterable[Row], keep: Callable[[Row], bool] | None, column: int | None, reverse: bool
) -> list[Row]:
    """What the view must show, sorted the slow obvious way."""
    shown = [row for row in rows if keep is None or keep(row)]
    if column is None:
        return shown
    present = [row for row in shown if row.sort_values[column] is not None]
    absent = [row for row in shown if row.sort_values[column] is None]
    present.sort(key=lambda row: row.sort_values[column], reverse=reverse)
    return present + absent


def assert_consistent(view: TableView, rows: dict[Hashable, Row]) -> None:
    """Same rows, same sort-value sequence as the oracle; positions agree with row_at."""
    column, reverse = view.sort_column, view.reverse
    expected = oracle(rows.values(), view.row_filter, column, reverse)
    shown = list(view)
    assert len(view) == len(expected)
    assert {row.key for row in shown} == {row.key for row in expected}
    assert all(rows[row.key] is row for row in shown), "a stale row version is shown"
    if column is not None:
        assert [r.sort_values[column] for r in shown] == [r.sort_values[column] for r in expected]
    for position, row in enumerate(shown):
        assert view.row_at(position) is row
        assert view.position_of(row.key) == position
    assert view.total == len(rows)


def random_value(rng: random.Random) -> int | None:
    """Few distinct values and some Nones: ties and the None block get exercised."""
    return None if rng.random() < 0.15 else rng.randrange(20)


@pytest.mark.parametrize("incremental_limit", [0, 10_000], ids=["full-sort", "incremental"])
@pytest.mark.parametrize("column,reverse", [(0, False), (0, True), (1, False), (None, False)])
def test_apply_matches_brute_force(
    monkeypatch: pytest.MonkeyPatch, incremental_limit: int, column: int | None, reverse: bool
) -> None:
    monkeypatch.setattr(tableview, "INCREMENTAL_LIMIT", incremental_limit)
    rng = random.Random(f"{incremental_limit}{column}{reverse}")
    rows = {k: make_row(k, random_value(rng), rng.choice("abc")) for k in range(300)}
    view = TableView(rows.values(), sort_column=column, reverse=reverse)
    assert_consistent(view, rows)
    next_key = 300
    for step in range(40):
        if step == 20:
            view.set_filter(lambda row: "a" not in row.search_text)
        removed = rng.sample(sorted(rows), 10)
        for key in removed:
            del rows[key]
        changed = []
        for key in rng.sample(sorted(rows), 30):  # some sort values change, some only counters
            old = rows[key]
            value = random_value(rng) if rng.random() < 0.5 else old.sort_values[0]
            changed.append(make_row(key, value, rng.choice("abc"), old.sort_values[1] + 1))
        for _ in range(12):
            changed.append(make_row(next_key, random_value(rng), rng.choice("abc")))
            next_key += 1
        for row in changed:
            rows[row.key] = row
        view.apply(changed, [*removed, 10**9])  # an unknown key is ignored
        assert_consistent(view, rows)


def test_apply_keeps_tied_rows_in_place() -> None:
    """Equal sort values never shuffle between refreshes (rows would jump under the cursor)."""
    rows = [make_row(k, k % 3) for k in range(60)]
    view = TableView(rows, sort_column=0)
    before = view.keys()
    changed = [make_row(k, k % 3, counter=5) for k in range(0, 60, 2)]
    added = [make_row(100, 1)]
    assert view.apply(changed + added, [7]) is True
    after = view.keys()
    assert [k for k in after if k != 100] == [k for k in before if k != 7]
    last_tie = max(after.index(k) for k in after if k % 3 == 1 and k != 100)
    assert after.index(100) == last_tie + 1  # a new row goes after the rows it ties with


def test_apply_reports_whether_the_order_changed() -> None:
    view = TableView([make_row(k, k) for k in range(10)], sort_column=0)
    assert view.apply([make_row(3, 3, counter=9)]) is False  # only a counter cell changed
    assert view.row_at(3).sort_values[1] == 9
    assert view.apply([make_row(3, 99)]) is True  # its sort value moved it to the end
    assert view.key_at(9) == 3


@pytest.mark.parametrize("reverse", [False, True])
def test_none_sorts_last_in_both_directions(reverse: bool) -> None:
    rows = [make_row(k, None if k % 4 == 0 else k) for k in range(20)]
    view = TableView(rows, sort_column=0, reverse=reverse)
    values = [row.sort_values[0] for row in view]
    assert values[-5:] == [None] * 5
    present = values[:-5]
    assert present == sorted(present, reverse=reverse)
    view.apply([make_row(100, None), make_row(101, 7)], [])
    values = [row.sort_values[0] for row in view]
    assert values[-6:] == [None] * 6


def test_set_sort_changes_column_and_direction() -> None:
    rows = [make_row(k, k % 7, counter=-k) for k in range(50)]
    view = TableView(rows, sort_column=0)
    view.set_sort(1)
    assert [r.sort_values[1] for r in view] == sorted(-k for k in range(50))
    view.set_sort(1, reverse=True)
    assert [r.sort_values[1] for r in view] == sorted((-k for k in range(50)), reverse=True)
    view.set_sort(None)
    assert view.keys() == list(range(50))  # arrival order


def test_filter_narrowing_tests_only_visible_rows() -> None:
    words = ["alpha", "alpine", "beta", "alps", "gamma"]
    rows = [make_row(k, k, words[k % 5]) for k in range(100)]
    view = TableView(rows, sort_column=0, reverse=True)
    view.set_filter(search_filter("al"), filter_text="al")
    assert len(view) == 60
    calls = 0
    grown = search_filter("alp")
    assert grown is not None

    def counting(row: Row) -> bool:
        nonlocal calls
        calls += 1
        return grown(row)

    view.set_filter(counting, filter_text="alp")  # the query only grew: narrow within the view
    assert calls == 60
    assert_consistent(view, {row.key: row for row in rows})
    assert len(view) == 60  # "alpha", "alpine", "alps" all contain "alp"
    calls = 0
    view.set_filter(counting, filter_text="lp")  # not a growth of "alp": all rows again
    assert calls == 100
    view.set_filter(search_filter("alpi"), narrowing=True)
    assert {row.search_text.split()[1] for row in view} == {"alpine"}
    view.set_filter(None)
    assert len(view) == 100


def test_replace_all_and_get() -> None:
    view = TableView([make_row(k, k) for k in range(5)], sort_column=0)
    view.replace_all([make_row(k, -k) for k in range(3, 8)])
    assert view.keys() == [7, 6, 5, 4, 3]
    assert view.get(1) is None and view.get(4) is not None
    assert 4 in view and 1 not in view
    assert view.position_of(1) is None
    twice = TableView([make_row(1, 5), make_row(2, 6), make_row(1, 7)], sort_column=0)
    assert twice.keys() == [2, 1] and twice.total == 2  # a key given twice keeps its last row


def test_layout_drops_by_priority_and_fills_flex() -> None:
    columns = [
        Column("state", "State", 11, priority=0),
        Column("local", "Local", 24, min_width=14, flex=True),
        Column("rtt", "RTT", 6, align="right", priority=5),
        Column("rx", "In/s", 6, align="right", priority=4),
        Column("process", "Process", 14, min_width=10, priority=1, flex=True),
    ]
    wide = layout_columns(columns, 200)
    assert [i for i, _ in wide] == [0, 1, 2, 3, 4]
    assert sum(w for _, w in wide) + 4 == 200
    assert dict(wide)[1] > 24 and dict(wide)[4] > 14  # the flex columns took the rest
    narrow = layout_columns(columns, 46)
    assert [i for i, _ in narrow] == [0, 1, 3, 4]  # RTT (priority 5) went first
    assert sum(w for _, w in narrow) + 3 <= 46
    tiny = layout_columns(columns, 8)
    assert tiny == [(0, 8)]
    assert [i for i, _ in layout_columns(columns, 200, hidden=("rx",))] == [0, 1, 2, 4]


def test_fit_cell_pads_cuts_and_shows_controls() -> None:
    assert fit_cell("abc", 5) == "abc  "
    assert fit_cell("abc", 5, "right") == "  abc"
    assert fit_cell("abcdefgh", 5) == "abcd…"
    assert fit_cell("x\x1b[2Jy", 8) == "x^[[2Jy "
    assert fit_cell("日本語の名前", 7) == "日本語…"  # wide characters count two cells
    assert fit_cell("anything", 0) == ""
    assert header_cell("Process", "▲", 5) == "Pro…▲"
    assert header_cell("RTT", "▼", 6, "right") == "  RTT▼"


def test_tableview_does_not_import_textual() -> None:
    """The view may be built in worker threads and by tests without a terminal: no Textual."""
    code = "import sys, netdash.ui.tableview; sys.exit('textual' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


class CountingFilter:
    """A filter that counts its calls, with a many() that must agree with it."""

    def __init__(self, keep: Callable[[Row], bool], with_many: bool) -> None:
        self.keep = keep
        self.calls = 0
        if with_many:
            self.many = lambda rows: [self(row) for row in rows]

    def __call__(self, row: Row) -> bool:
        self.calls += 1
        return self.keep(row)


@pytest.mark.parametrize("with_many", [False, True], ids=["per-row", "many"])
def test_narrowing_and_widening_test_only_the_rows_that_can_change(with_many: bool) -> None:
    """A filter that only hides tests the shown rows, one that only shows tests the hidden ones;
    both give what a filter from scratch gives, without re-sorting."""
    rng = random.Random(with_many)
    rows = {k: make_row(k, random_value(rng), rng.choice("abcd")) for k in range(400)}
    view = TableView(rows.values(), sort_column=0, reverse=True)
    first = CountingFilter(lambda row: row.search_text[-1] != "d", with_many)
    view.set_filter(first, narrowing=True)  # every row shown, no free slot: tested in bulk
    assert first.calls == 400
    assert_consistent(view, rows)
    view.set_filter(None, widening=True)
    view.apply([], rng.sample(sorted(rows), 40))  # free slots among the rows
    for key in [k for k in rows if k not in view]:
        del rows[key]
    wide = CountingFilter(lambda row: row.search_text[-1] in "abc", with_many)
    view.set_filter(wide)
    assert_consistent(view, rows)
    shown = len(view)
    narrow = CountingFilter(lambda row: row.search_text[-1] in "ab", with_many)
    view.set_filter(narrow, narrowing=True)
    assert narrow.calls == shown  # only the rows on show were asked
    assert_consistent(view, rows)
    hidden = len(rows) - len(view)
    again = CountingFilter(lambda row: row.search_text[-1] in "abc", with_many)
    view.set_filter(again, widening=True)
    assert again.calls == hidden  # only the hidden rows were asked
    assert_consistent(view, rows)
    view.set_filter(None, widening=True)
    assert_consistent(view, rows)
    assert len(view) == len(rows)
    view.set_filter(wide)
    shown = len(view)
    only_new = CountingFilter(lambda row: row.search_text[-1] != "c", with_many)
    everything = CountingFilter(lambda row: wide.keep(row) and only_new.keep(row), with_many)
    view.set_filter(everything, narrowing=True, narrowed_by=only_new)
    assert (everything.calls, only_new.calls) == (0, shown)  # only what the filter adds
    assert_consistent(view, rows)


def fixed_keys() -> list[SortKey]:
    """Columns 0 and 1 from the row's values (1 with a many()), 2 fixed for the key."""
    return [
        SortKey(lambda row: row.sort_values[0]),
        SortKey(lambda row: row.sort_values[1], lambda rows: [r.sort_values[1] for r in rows]),
        SortKey(lambda row: None if row.key % 11 == 0 else row.key % 7, fixed=True),
    ]


def churn(
    rows: dict[int, Row], rng: random.Random, step: int, sizes: tuple[int, int, int]
) -> tuple[list[Row], list[int]]:
    """One refresh of random churn applied to ``rows``: (removed, changed, added) counts."""
    gone, moved, new = sizes
    removed = rng.sample(sorted(rows), gone)
    for key in removed:
        del rows[key]
    changed = [
        make_row(k, random_value(rng), counter=step) for k in rng.sample(sorted(rows), moved)
    ]
    start = max(rows, default=-1) + 1 + gone
    changed += [make_row(start + i, random_value(rng)) for i in range(new)]
    rows.update((row.key, row) for row in changed)
    return changed, removed


def test_presorted_fixed_column_matches_a_sort_through_churn() -> None:
    """A view built with presort keeps every row in a fixed column's order as rows come and go;
    sorting by it then shows what a real sort shows, descending being the exact mirror."""
    rng = random.Random(3)
    keys = fixed_keys()
    rows = {k: make_row(k, random_value(rng)) for k in range(300)}
    view = TableView(rows.values(), sort_column=0, sort_keys=keys, presort=True)
    fixed = keys[2].one
    for step in range(30):
        changed, removed = churn(rows, rng, step, (8, 20, 12 if step % 5 else 2000))
        view.apply(changed, removed)
        if step % 6 == 0:
            view.set_filter(None if step % 12 else (lambda row: row.key % 3 != 0))
    for reverse in (False, True):
        view.set_sort(2, reverse=reverse)
        keep = view.row_filter
        shown = [row for row in rows.values() if keep is None or keep(row)]
        present = sorted((r for r in shown if fixed(r) is not None), key=fixed, reverse=reverse)
        expected = [fixed(r) for r in present] + [None] * sum(fixed(r) is None for r in shown)
        assert [fixed(row) for row in view] == expected
    descending = view.keys()
    view.set_sort(2)
    ascending = view.keys()
    nones = sum(fixed(view.get(k)) is None for k in ascending)
    assert descending[: len(ascending) - nones] == ascending[: len(ascending) - nones][::-1]
    view.set_sort(1)  # and back to a column that is really sorted
    assert [r.sort_values[1] for r in view] == sorted(r.sort_values[1] for r in view)


def test_churn_while_sorted_by_a_presorted_column_keeps_its_order() -> None:
    """Sorting by a presorted column computes no values; the next refresh does, and rows added,
    changed and removed while sorted by it land where a real sort puts them."""
    rng = random.Random(5)
    keys = fixed_keys()
    fixed = keys[2].one
    rows = {k: make_row(k, random_value(rng)) for k in range(300)}
    view = TableView(rows.values(), sort_column=0, sort_keys=keys, presort=True)
    view.set_sort(2, reverse=True)
    copy = view.copy()  # the UI's copy, sorted the same way, shares the lists
    for step in range(12):
        changed, removed = churn(rows, rng, step, (6, 9, 5 if step % 4 else 900))
        view.apply(changed, removed)
        present = sorted(
            (r for r in rows.values() if fixed(r) is not None), key=fixed, reverse=True
        )
        nones = sum(fixed(r) is None for r in rows.values())
        assert [fixed(row) for row in view] == [fixed(r) for r in present] + [None] * nones
    assert copy.total == 300 and [fixed(row) for row in copy][-1] is None  # untouched


def test_copy_is_independent() -> None:
    rows = [make_row(k, k % 5) for k in range(50)]
    view = TableView(rows, sort_column=0, sort_keys=fixed_keys(), presort=True)
    copy = view.copy()
    copy.set_sort(1, reverse=True)
    copy.set_filter(lambda row: row.key < 10)
    copy.apply([make_row(100, 1)], [3])
    assert view.sort_column == 0 and len(view) == 50 and 3 in view and 100 not in view
    assert_consistent(view, {row.key: row for row in rows})
    assert copy.keys() == sorted(copy.keys(), key=lambda k: -copy.get(k).sort_values[1])
    shown = copy.keys()
    view.apply([make_row(200, 2), make_row(4, 9)], [5, 6])  # and the other way round
    view.set_filter(lambda row: row.key % 2 == 0, narrowing=True)
    assert copy.keys() == shown and copy.get(4).sort_values[0] == 4 and 5 in copy
    assert 200 not in copy and copy.total == 50


def test_a_copy_shares_what_a_refresh_leaves_alone() -> None:
    """Copy-on-write by part: a refresh that only changes cells copies the rows, not the key
    index (100k keys: ~5 MB more for a moment on every busy refresh); one that adds a row copies
    the index too. Either way both views stay right, refresh after refresh."""
    rng = random.Random(11)
    keys = fixed_keys()
    rows = {k: make_row(k, random_value(rng), counter=k % 13) for k in range(200)}
    view = TableView(rows.values(), sort_column=1, sort_keys=keys, presort=True)
    for step in range(6):
        copy, before = view.copy(), dict(rows)
        changed = [
            make_row(k, rows[k].sort_values[0], counter=step) for k in rng.sample(sorted(rows), 20)
        ]
        rows.update((row.key, row) for row in changed)
        view.apply(changed)
        assert view._slot_of is copy._slot_of and view._rows is not copy._rows
        assert_consistent(view, rows)
        assert_consistent(copy, before)
        copy, before = view.copy(), dict(rows)
        changed, removed = churn(rows, rng, step, (3, 5, 4))
        view.apply(changed, removed)
        assert view._slot_of is not copy._slot_of
        assert_consistent(view, rows)
        assert_consistent(copy, before)
        copy.set_filter(lambda row: row.key % 3 == 0)  # the copy's own changes stay its own
        copy.apply([make_row(1000 + step, 1)], [next(iter(before))])
        assert_consistent(view, rows)


# -- benchmark: python tests/test_tableview.py --------------------------------------------------


def bench_row(i: int, gen: int, keys: dict[int, tuple[object, ...]]) -> Row:
    """A socket-like row: tuple key, 8 cells, counters that change every generation."""
    local = f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}"
    key = keys.setdefault(i, ("tcp", 2, local, 40000 + i % 20000, "10.9.0.1", 443))
    rtt = (i * 7919) % 100_000 / 100
    cells = (
        "tcp",
        "ESTAB",
        f"{local}:{40000 + i % 20000}",
        "10.9.0.1:443",
        str(gen),
        str(gen * 3),
        f"{rtt:.1f}",
        f"proc{i % 20}",
    )
    rate = (i * 2_654_435_761 + gen * 40_503) % 100_000 if gen else 0  # reshuffled every tick
    values = ("tcp", "ESTAB", i, 443, rate, gen * 3 if i % 10 else None, rtt, f"proc{i % 20}")
    return Row(key, cells, values, f"{cells[2]} {cells[7]}")


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def benchmark(n: int = 100_000, runs: int = 5) -> dict[str, float]:
    """Median CPU times (ms) of the operations the Connections pane does at ``n`` rows."""
    keys: dict[int, tuple[object, ...]] = {}
    rows = [bench_row(i, 0, keys) for i in range(n)]
    results: dict[str, float] = {}
    loads = []
    for _ in range(runs):
        start = time.process_time()
        view = TableView(rows, sort_column=6)
        loads.append(time.process_time() - start)
    results["load, sorted by a float column"] = _median_ms(loads)
    for column, name in ((6, "float"), (2, "int"), (7, "str")):
        sorts = []
        for run in range(runs):
            view.set_sort(None)
            start = time.process_time()
            view.set_sort(column, reverse=bool(run % 2))
            sorts.append(time.process_time() - start)
        results[f"full sort by a {name} column"] = _median_ms(sorts)
    for column, name in ((6, "unchanged"), (4, "reshuffled")):
        view = TableView(rows, sort_column=column)
        live, next_i, applies = list(range(n)), n, []
        for gen in range(1, runs + 1):
            rng = random.Random(gen)
            gone = set(rng.sample(live, n // 100))
            live = [i for i in live if i not in gone] + list(range(next_i, next_i + n // 100))
            next_i += n // 100
            changed = [bench_row(i, gen, keys) for i in live]
            removed = [keys[i] for i in gone]
            previous = list(view.all_rows())  # freeing old rows is the producer's cost, not ours
            start = time.process_time()
            view.apply(changed, removed)
            applies.append(time.process_time() - start)
            del previous
        results[f"apply (all rows' counters, +1%, -1%), sort column {name}"] = _median_ms(applies)
    narrows = []
    for _ in range(runs):
        view.set_filter(search_filter("proc1"), filter_text="proc1")
        start = time.process_time()
        view.set_filter(search_filter("proc12"), filter_text="proc12")
        narrows.append(time.process_time() - start)
    results["filter narrowing (query grew)"] = _median_ms(narrows)
    return results


if __name__ == "__main__":
    for label, ms in benchmark().items():
        print(f"{label:60} {ms:7.1f} ms")
