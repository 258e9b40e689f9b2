"""The Interfaces tab driven with Pilot on a recording of a real veth lab.

tests/fixtures/interfaces.recording.json (scripts/record_links_fixture.py) holds namespace ``a``
of a veth lab: ``lo``, ``vA`` carrying a paced TCP flow (~2 then ~8 Mb/s out), ``eth1`` set up
with its peer ``eth1-peer`` down (no carrier). Link samples replay with their recorded spacing,
so the rates on screen are the recorded ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from textual.pilot import Pilot

from netdash.engine_links import LinkRate
from netdash.model import Link, LinkCounters
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.format import human_bits
from netdash.ui.panes.interface_rows import COLUMN_INDEX, link_row
from netdash.ui.panes.interfaces import InterfacesPane
from netdash.ui.widgets.rate_graph import RateGraph

RECORDING = Path(__file__).parent / "fixtures" / "interfaces.recording.json"


def recorded_tx_bps(name: str) -> float:
    """The last interval's TX rate of ``name``, from the recording's own counters."""
    samples = json.loads(RECORDING.read_text())["links"]
    (before, after) = samples[-2:]
    index = next(link["ifindex"] for link in after["links"] if link["name"] == name)
    sent = after["counters"][str(index)]["tx_bytes"] - before["counters"][str(index)]["tx_bytes"]
    return sent * 8 / (after["taken_at"] - before["taken_at"])


async def loaded(pilot: Pilot, app: NetdashApp) -> InterfacesPane:
    await pilot.press("escape")  # the help screen shown at start
    for _ in range(len(json.loads(RECORDING.read_text())["links"])):
        app.sample_now()
        await pilot.pause()
    await pilot.press("2")
    await pilot.pause()
    return app.query_one(InterfacesPane)


def screen_text(app: NetdashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def row_of(pane: InterfacesPane, name: str):
    return next(row for row in pane.view if row.data[0].name == name)


async def test_the_interfaces_tab_lists_links_with_their_recorded_rates():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        assert app.query_one("#tabs").active == "tab-interfaces"
        assert app.focused is pane.table
        assert [row.data[0].name for row in pane.view] == ["eth1", "eth1-peer", "lo", "vA"]
        va = row_of(pane, "vA")
        assert va.cells[COLUMN_INDEX["tx"]] == human_bits(recorded_tx_bps("vA"))
        assert recorded_tx_bps("vA") > 5_000_000  # the flow's second half: ~8 Mb/s
        assert va.cells[COLUMN_INDEX["addresses"]].startswith("10.201.0.1/24")
        text = screen_text(app)
        assert "4 interfaces · 2 down" in text and "NO-CARRIER" in text


async def test_down_links_stand_out_and_the_busy_one_is_graphed():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        for name in ("eth1", "eth1-peer"):
            assert row_of(pane, name).styles[COLUMN_INDEX["state"]] == "bold red"
        assert row_of(pane, "vA").styles[COLUMN_INDEX["state"]] == "green"
        pane.table.move_cursor_to_key(row_of(pane, "vA").key)
        await pilot.pause()
        graph = app.query_one(RateGraph)
        assert graph.name_shown == "vA"
        text = screen_text(app)
        assert "TX vA  now 8.0Mb/s" in text
        tx_block = text[text.index("TX vA") :].splitlines()[1:]
        assert any(set(line.split("│", 1)[1]) - {" ", "▁"} for line in tx_block if "│" in line)
        await pilot.press("z")
        await pilot.pause()
        assert graph.window == 300.0 and "last 5m" in screen_text(app)


async def test_tab_and_number_keys_switch_tabs_and_focus_follows():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)
        tabs = app.query_one("#tabs")
        await pilot.press("tab")
        await pilot.pause()
        assert tabs.active == "tab-connections" and app.focused.id == "sockets"
        await pilot.press("tab")
        await pilot.pause()
        assert tabs.active == "tab-interfaces" and app.focused.id == "links"
        await pilot.press("1")
        await pilot.pause()
        assert tabs.active == "tab-connections"


async def test_the_pane_fits_80x24():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await loaded(pilot, app)
        shown = [column.key for column in pane.table.visible_columns]
        assert shown[:4] == ["name", "state", "rx", "tx"] and "drops" in shown
        lines = screen_text(app).splitlines()
        assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
        assert any(line.startswith("vA ") for line in lines)  # every link visible
        assert any("RX " in line and "now" in line for line in lines)  # and the graph


async def test_pause_holds_the_interfaces_too():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        shown = pane.frame
        await pilot.press("p")
        app.sample_now()
        await pilot.pause()
        assert pane.frame is shown
        await pilot.press("p")
        await pilot.pause()
        assert pane.frame is not shown


def test_names_and_counters_are_shown_literally_and_rising_drops_stand_out():
    link = Link(
        ifindex=7, name="[red]x[/]\x1b[31m", kind="veth", operstate="UP", carrier=True,
        mtu=1500, mac="02:00:00:00:00:07", flags=("UP",), addresses=("10.0.0.1/24",),
    )  # fmt: skip
    counters = LinkCounters(*([0] * 6), 12, 0, 0, 0)
    rising = LinkRate(8e6, 0.0, 100.0, 0.0, 0.0, 0.0, 3.0, 0.0, 1.0)
    row = link_row(link, rising, counters)
    assert row.cells[0] == "[red]x[/]^[[31m"  # markup as text, the ESC made visible
    assert row.cells[COLUMN_INDEX["drops"]] == "12↑"
    assert row.styles[COLUMN_INDEX["drops"]] == "bold red"
    calm = link_row(link, LinkRate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0), counters)
    drops = COLUMN_INDEX["drops"]
    assert calm.cells[drops] == "12" and calm.styles[drops] == "yellow"  # dropped before, not now
