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

from conftest import needs_root, skip_unless_root
from netdash.engine_links import LinkRate
from netdash.model import Link, LinkCounters
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.format import human_bits
from netdash.ui.panes.connections import ConnectionsPane
from netdash.ui.panes.interface_rows import COLUMN_INDEX, link_row
from netdash.ui.panes.interfaces import InterfacesPane
from netdash.ui.panes.routes import RoutesView
from netdash.ui.panes.talkers import TalkersView
from netdash.ui.screens.process import ProcessScreen
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
    from netdash.ui.app import TABS

    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, app)  # on the Interfaces tab (2)
        tabs = app.query_one("#tabs")
        ids = [tab_id for tab_id, _ in TABS]
        start = ids.index("tab-interfaces")
        for step in range(1, len(ids) + 1):  # Tab goes round every tab, back to Interfaces
            await pilot.press("tab")
            await pilot.pause()
            assert tabs.active == ids[(start + step) % len(ids)]
            assert app.focused is not None and tabs.active_pane in app.focused.ancestors
        await pilot.press("shift+tab")
        await pilot.pause()
        assert tabs.active == ids[start - 1]
        for number, tab_id in enumerate(ids, start=1):
            await pilot.press(str(number))
            await pilot.pause()
            assert tabs.active == tab_id
        await pilot.press("2")
        await pilot.pause()
        assert app.focused.id == "links"


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


async def test_top_talkers_name_the_remote_host_and_enter_filters_the_connections_tab():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        await pilot.press("t")
        await pilot.pause()
        view = pane.query_one("#talkers-view", TalkersView)
        assert app.focused is view.table
        top = view.view.row_at(0)
        assert top.data.key == "10.201.0.2"  # vethlab's ADDR_B: the receiver
        sent = recorded_tx_bps("vA") / 8  # bytes/s on the wire, headers included
        assert 0.8 * sent < top.data.rate.tx <= sent  # TCP payload: a little less than the link
        text = screen_text(app)
        assert "top remote hosts" in text and "TCP only" in text
        await pilot.press("h")
        await pilot.pause()
        assert view.grouping == "host_ports" and view.view.row_at(0).data.label == "10.201.0.2:5201"
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-connections"
        connections = app.query_one(ConnectionsPane)
        assert (
            connections.query is not None and connections.query.text == "dst:10.201.0.2 dport:5201"
        )
        assert [row.sock.remote_port for row in connections.view] == [5201]


async def test_per_process_bandwidth_names_the_sender_and_enter_opens_it():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        await pilot.press("w")
        await pilot.pause()
        view = pane.query_one("#processes-view", TalkersView)
        top = view.view.row_at(0).data
        assert top.process is not None and top.process.comm.startswith("python")
        assert top.rate.tx > 500_000 and top.sockets == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen) and app.screen.pid == top.process.pid


async def test_routes_view_shows_every_table_and_neighbours_from_the_recording():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        await pilot.press("r")
        await pilot.pause()
        await pilot.pause(0.3)  # the tables are read in a worker
        routes = pane.query_one(RoutesView)
        assert routes.tables is not None
        rows = list(routes.route_view)
        default = next(row for row in rows if row.data.dst == "default")
        assert default.cells[1] == "10.201.0.2" and default.styles[0] == "bold green"
        dead = next(row for row in rows if row.data.type == "unreachable")
        assert dead.styles[0] == "bold red"
        assert {row.data.table for row in rows} >= {"main", "local"}
        neighbours = [row.data for row in routes.neighbour_view]
        assert any(n.address == "10.201.0.9" and n.states == ("PERMANENT",) for n in neighbours)
        await pilot.press("g")
        for key in "10.201.0.7":
            await pilot.press(key)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert "not in a recording" in screen_text(app)  # lookups need the live kernel


@needs_root
async def test_route_to_asks_the_live_kernel_of_the_namespace():
    skip_unless_root()
    from vethlab import veth_lab

    from netdash.netns import resolve_netns
    from netdash.record import ReplaySampler, read_recording
    from netdash.sources.routes import RouteReader
    from netdash.ui.app import ReplayAdapter

    recording = read_recording(RECORDING)
    with veth_lab() as lab, RouteReader(netns=resolve_netns(lab.a)) as reader:
        app = NetdashApp(
            ReplayAdapter(ReplaySampler(recording.samples).sample),
            recording.host,
            autostart=False,
            live=False,
            routes=reader,
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("escape", "2", "r")
            await pilot.pause(0.3)
            for query, expected in (("10.201.0.2", "dev vA"), ("192.0.2.1", "unreachable")):
                await pilot.press("g", *query, "enter")
                for _ in range(20):
                    await pilot.pause(0.05)
                    if expected.split()[-1] in screen_text(app):
                        break
                assert expected in screen_text(app).replace("Network is unreachable", "unreachable")


async def test_slash_filters_the_interfaces_as_you_type_and_esc_clears_it():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await loaded(pilot, app)
        await pilot.press("slash", "1", "0", ".", "2")
        await pilot.pause()
        assert [row.data[0].name for row in pane.view] == ["vA"]  # by its address
        await pilot.press("enter")
        assert app.focused is pane.table
        await pilot.press("escape")
        await pilot.pause()
        assert len(pane.view) == 4 and app.screen is app.screen_stack[0]
        await pilot.press("slash", "d", "o", "w", "n", "enter")  # by state
        assert [row.data[0].name for row in pane.view] == ["eth1-peer"]
