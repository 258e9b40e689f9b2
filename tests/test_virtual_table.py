"""VirtualTable driven by Pilot: 100k rows, sorting, cursor identity, literal cells, narrow widths.

Run ``python tests/test_virtual_table.py`` for timings at 100,000 rows (median of several runs).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable

from rich.style import Style
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.message import Message
from textual.pilot import Pilot
from textual.strip import Strip

from netdash.textsafe import visible
from netdash.ui.tableview import Column, Row, TableView
from netdash.ui.widgets.virtual_table import VirtualTable

COLUMNS = (
    Column("id", "ID", 7, align="right", priority=0),
    Column("state", "State", 11, priority=0),
    Column("local", "Local", 22, min_width=12, flex=True),
    Column("remote", "Remote", 22, min_width=12, priority=1, flex=True),
    Column("rtt", "RTT", 7, align="right", priority=5),
    Column("rx", "In/s", 8, align="right", priority=4),
    Column("tx", "Out/s", 8, align="right", priority=4),
    Column("process", "Process", 16, min_width=10, priority=2, flex=True),
)
ID, STATE, LOCAL, REMOTE, RTT = 0, 1, 2, 3, 4


def make_row(
    i: int, *, sort_id: int | None = None, process: str | None = None, **kw: object
) -> Row:
    """Row ``i``: ID column sorts by ``sort_id`` (default ``i``), RTT by ``i % 97``."""
    value = i if sort_id is None else sort_id
    name = process if process is not None else f"proc{i % 20}"
    cells = (str(i), "ESTAB", f"10.0.0.1:{i}", "10.9.0.1:443", str(i % 97), "0", "0", name)
    values = (value, "ESTAB", i, 443, i % 97, 0, 0, name)
    return Row(i, cells, values, f"{i} {name}".lower(), **kw)  # type: ignore[arg-type]


class TableApp(App[None]):
    """One VirtualTable and nothing else; records the table's messages."""

    def __init__(self, view: TableView, **table_options: object) -> None:
        super().__init__()
        self.view = view
        self.table_options = table_options
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield VirtualTable(COLUMNS, view=self.view, **self.table_options)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one(VirtualTable).focus()

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        self.messages.append(message)

    def on_virtual_table_row_activated(self, message: VirtualTable.RowActivated) -> None:
        self.messages.append(message)

    def on_virtual_table_sort_changed(self, message: VirtualTable.SortChanged) -> None:
        self.messages.append(message)


def screen_strips(table: VirtualTable) -> list[Strip]:
    """The table's lines as the compositor gets them (through Textual's styles cache)."""
    width, height = table.outer_size
    return table.render_lines(Region(0, 0, width, height))


def screen_text(table: VirtualTable) -> list[str]:
    return [strip.text for strip in screen_strips(table)]


def cells_of(line: str) -> list[str]:
    return line.split()


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.pause()


async def test_100k_rows_load_scroll_and_move() -> None:
    view = TableView((make_row(i) for i in range(100_000)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        lines = screen_text(table)
        assert cells_of(lines[0])[:4] == ["ID▲", "State", "Local", "Remote"]
        assert cells_of(lines[1]) == [
            "0",
            "ESTAB",
            "10.0.0.1:0",
            "10.9.0.1:443",
            "0",
            "0",
            "0",
            "proc0",
        ]
        assert cells_of(lines[39])[0] == "38"
        assert table.virtual_size.height == 100_001
        assert table.cursor_key == 0
        await pilot.press("end")
        await settle(pilot)
        assert table.cursor_key == 99_999
        lines = screen_text(table)
        assert cells_of(lines[0])[0] == "ID▲"  # the header stays on top
        assert cells_of(lines[-1])[0] == "99999"
        assert cells_of(lines[1])[0] == str(99_999 - 38)
        await pilot.press("up", "up")
        assert table.cursor_key == 99_997
        await pilot.press("home", "down", "pagedown")
        assert table.cursor_position == 1 + 39
        assert cells_of(screen_text(table)[-1])[0] == "40"  # scrolled just enough
        assert table.cursor_row is not None and table.cursor_row.cells[0] == "40"
        await pilot.press("enter")
        moved = [m.key for m in app.messages if isinstance(m, VirtualTable.CursorMoved)]
        assert moved == [0, 99_999, 99_998, 99_997, 0, 1, 40]
        activated = [m for m in app.messages if isinstance(m, VirtualTable.RowActivated)]
        assert [m.key for m in activated] == [40]


async def test_click_header_sorts_then_reverses() -> None:
    view = TableView((make_row(i) for i in range(500)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        header = screen_text(table)[0]
        rtt_x = header.index("RTT")
        await pilot.click(VirtualTable, offset=(rtt_x, 0))
        await settle(pilot)
        assert view.sort_column == RTT and not view.reverse
        lines = screen_text(table)
        assert "RTT▲" in lines[0] and "ID▲" not in lines[0]
        assert [cells_of(line)[4] for line in lines[1:4]] == ["0", "0", "0"]
        await pilot.click(VirtualTable, offset=(rtt_x, 0))
        await settle(pilot)
        lines = screen_text(table)
        assert view.reverse and "RTT▼" in lines[0]
        assert table.cursor_key == 0  # followed its row to the end of the reversed view
        assert "0" in [cells_of(line)[0] for line in lines[1:]]
        await pilot.press("home")
        assert cells_of(screen_text(table)[1])[4] == "96"
        sorts = [
            (m.column_key, m.reverse)
            for m in app.messages
            if isinstance(m, VirtualTable.SortChanged)
        ]
        assert sorts == [("rtt", False), ("rtt", True)]


async def test_programmatic_sort_moves_arrow_and_keeps_cursor() -> None:
    view = TableView((make_row(i) for i in range(1_000)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        assert table.move_cursor_to_key(500)
        view.set_sort(ID, reverse=True)
        table.refresh_rows()
        await settle(pilot)
        assert table.cursor_key == 500 and table.cursor_position == 499
        lines = screen_text(table)
        assert "ID▼" in lines[0]
        assert "500" in [cells_of(line)[0] for line in lines[1:]]  # the cursor row is on screen
        table.sort_by("rtt")
        await settle(pilot)
        assert table.cursor_key == 500
        assert view.row_at(table.cursor_position).key == 500
        assert "RTT▲" in screen_text(table)[0]
        assert not [m for m in app.messages if isinstance(m, VirtualTable.SortChanged)]


async def test_cursor_keeps_its_key_when_rows_arrive_above_it() -> None:
    view = TableView((make_row(i, sort_id=i * 10) for i in range(1_000)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        table.move_cursor_to_key(300)
        await settle(pilot)
        screen_line = table.cursor_position - table.scroll_offset.y + 1
        app.messages.clear()
        above = [make_row(5_000 + n, sort_id=n * 10 + 5) for n in range(50)]  # sort before 300
        view.apply(above, removed=[0, 1])
        table.refresh_rows()
        await settle(pilot)
        assert table.cursor_key == 300
        assert table.cursor_position == 300 + 50 - 2
        assert table.cursor_position - table.scroll_offset.y + 1 == screen_line  # it did not jump
        assert cells_of(screen_text(table)[screen_line])[0] == "300"
        assert not [m for m in app.messages if isinstance(m, VirtualTable.CursorMoved)]
        view.apply([], removed=[300])  # the cursor's row vanished: same position, next row
        table.refresh_rows()
        await settle(pilot)
        assert table.cursor_position == 348 and table.cursor_key == view.key_at(348)
        assert [m.key for m in app.messages if isinstance(m, VirtualTable.CursorMoved)] == [
            table.cursor_key
        ]


async def test_cells_are_never_markup_nor_terminal_control() -> None:
    rows = [
        make_row(0, process="[red]x[/]"),
        make_row(1, process=visible("\x1b]0;pwned\x07")),
        make_row(2, process="raw\x1b[2Jesc"),  # a producer that forgot textsafe.visible
    ]
    app = TableApp(TableView(rows, sort_column=ID))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        strips = screen_strips(table)
        lines = [strip.text for strip in strips]
        assert cells_of(lines[1])[-1] == "[red]x[/]"
        assert cells_of(lines[2])[-1] == "^[]0;pwned^G"
        assert cells_of(lines[3])[-1] == "raw^[[2Jesc"
        for strip in strips:
            for segment in strip:
                assert "\x1b" not in segment.text and "\x07" not in segment.text


async def test_80_columns_drop_low_priority_and_never_overflow() -> None:
    long_name = "a-very-long-process-name-that-cannot-fit"
    rows = [make_row(i, process=long_name) for i in range(100)]
    app = TableApp(TableView(rows, sort_column=ID))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        assert [c.key for c in table.visible_columns] == [
            "id", "state", "local", "remote", "rx", "tx", "process"
        ]  # fmt: skip
        strips = screen_strips(table)
        assert all(strip.cell_length <= 80 for strip in strips)
        usable = table.scrollable_content_region.width
        for strip in strips:
            assert strip.crop(0, usable).text.rstrip() == strip.text.rstrip()  # not under the bar
        header = strips[0].text
        assert "RTT" not in header and "Process" in header
        assert cells_of(strips[1].text)[-1].endswith("…")
        table.hidden_columns = ("remote",)
        await settle(pilot)
        assert "Remote" not in screen_text(table)[0]


async def test_one_segment_per_plain_line_and_styled_cells_split() -> None:
    styles = (None, "bold red", None, None, None, None, None, None)
    rows = [make_row(0), make_row(1, styles=styles)]
    app = TableApp(TableView(rows, sort_column=ID))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        table.move_cursor_to_key(1)
        await settle(pilot)
        plain = table.render_line(1)
        assert len(list(plain)) == 1  # one segment for the whole line
        styled = list(table.render_line(2))
        assert [s.text.strip() for s in styled][1] == "ESTAB"
        assert styled[1].style is not None and styled[1].style.bold
        assert len(styled) == 3


async def test_only_changed_lines_are_repainted() -> None:
    view = TableView((make_row(i) for i in range(1_000)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        painted: list[int] = []
        original = table.render_line

        def spy(y: int) -> Strip:
            painted.append(y)
            return original(y)

        table.render_line = spy  # type: ignore[method-assign]
        assert original(6) is original(6)  # cached
        view.apply([make_row(i) for i in range(1_000)], removed=[])  # new objects, same content
        table.refresh_rows()
        await settle(pilot)
        assert painted == []  # nothing on screen looks different: no output
        view.apply([make_row(5, process="changed")], removed=[])  # row 5 is on line 6
        table.refresh_rows()
        await settle(pilot)
        assert sorted(set(painted)) == [6]
        assert cells_of(screen_text(table)[6])[-1] == "changed"
        assert original(6) is original(6)  # the new version is cached, not re-rendered per frame
        painted.clear()
        await pilot.press("down")
        await settle(pilot)
        assert sorted(set(painted)) == [1, 2]  # old and new cursor lines only
        painted.clear()
        view.apply([make_row(5_000)], removed=[])  # the row count changes, far below the screen
        table.refresh_rows()
        await settle(pilot)
        assert painted == []  # no layout, no repaint: only the scrollbar knows
        await pilot.press("end")
        await settle(pilot)
        assert cells_of(screen_text(table)[-1])[0] == "5000"
        painted.clear()
        view.set_sort(LOCAL)  # the same order by another column: only the arrow moves
        table.refresh_rows()
        await settle(pilot)
        assert painted == [0]
        assert "Local▲" in screen_text(table)[0]


async def test_scrollbar_appears_when_rows_outgrow_the_screen() -> None:
    view = TableView((make_row(i) for i in range(5)), sort_column=ID)
    app = TableApp(view)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        assert table.scrollable_content_region.width == 120
        view.apply([make_row(i) for i in range(5, 200)], removed=[])
        table.refresh_rows()
        await settle(pilot)
        assert table.scrollable_content_region.width == 118  # the scrollbar took its columns
        assert all(strip.cell_length <= 120 for strip in screen_strips(table))
        await pilot.press("end")
        await settle(pilot)
        assert cells_of(screen_text(table)[-1])[0] == "199"
        view.apply([], removed=range(3, 200))
        table.refresh_rows()
        await settle(pilot)
        assert table.scroll_offset.y == 0 and table.cursor_key == 2
        assert [cells_of(line)[0] for line in screen_text(table)[1:4]] == ["0", "1", "2"]


async def test_new_rows_highlight_then_fade() -> None:
    view = TableView((make_row(i) for i in range(10)), sort_column=ID)
    app = TableApp(view, new_row_seconds=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        new_style = table.get_component_rich_style("virtual-table--new")
        assert new_style.bgcolor is not None
        view.apply([make_row(3, born=time.monotonic())], removed=[])
        table.refresh_rows()
        await settle(pilot)

        def background(y: int) -> object:
            style = next(iter(table.render_line(y))).style or Style()
            return style.bgcolor

        assert background(4) != background(5)  # row 3 (line 4) stands out
        await asyncio.sleep(0.45)
        await settle(pilot)
        assert background(4) == background(5)  # faded by the widget's own timer


async def test_enter_in_footer_is_configurable() -> None:
    for options, shown, posts in (
        ({}, True, True),
        ({"activate_label": None}, False, True),
        ({"activatable": False}, False, False),
        ({}, True, True),  # the other instances did not change the class's bindings
    ):
        app = TableApp(TableView([make_row(1)]), **options)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            enter = app.screen.active_bindings.get("enter")
            assert (enter is not None and enter.binding.show) == shown, options
            if shown:
                assert enter is not None and enter.binding.description == "Drill down"
            await pilot.press("enter")
            activated = [m for m in app.messages if isinstance(m, VirtualTable.RowActivated)]
            assert bool(activated) == posts, options


# -- timings: python tests/test_virtual_table.py ----------------------------------------------


async def _cpu_ms(pilot: Pilot[None], keys: Iterable[str]) -> float:
    start = time.process_time()
    await pilot.press(*keys)
    await pilot.pause()
    return (time.process_time() - start) * 1000


async def measure(n: int = 100_000, runs: int = 30) -> dict[str, float]:
    """CPU ms on the event loop: first paint of ``n`` rows, a key press and its repaint."""
    rows = [make_row(i) for i in range(n)]
    results: dict[str, float] = {}
    app = TableApp(TableView())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.query_one(VirtualTable)
        loads = []
        for _ in range(5):
            start = time.process_time()
            view = TableView(rows, sort_column=RTT)
            table.set_view(view)
            await pilot.pause()
            loads.append(time.process_time() - start)
        results["load 100k rows (TableView + set_view + first paint)"] = (
            statistics.median(loads) * 1000
        )
        idle = [await _cpu_ms(pilot, ["f19"]) for _ in range(runs)]  # unbound: Pilot's own cost
        table.move_cursor_to(n // 2)
        await settle(pilot)
        down = [await _cpu_ms(pilot, ["down"]) for _ in range(runs)]
        page = [await _cpu_ms(pilot, ["pagedown"]) for _ in range(runs)]
        base = statistics.median(idle)
        results["cursor down + repaint (minus Pilot's own cost)"] = statistics.median(down) - base
        results["page down + full repaint (minus Pilot's own cost)"] = (
            statistics.median(page) - base
        )
        results["Pilot's own cost per key (subtracted)"] = base
    return results


if __name__ == "__main__":
    for label, ms in asyncio.run(measure()).items():
        print(f"{label:60} {ms:7.1f} ms")
