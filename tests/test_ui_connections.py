"""The Connections pane driven with Pilot on a recording made by the real collectors.

The recording (tests/fixtures/connections.recording.json, made by scripts/record_fixture.py in a
namespace full of known sockets) is replayed one sample per `sample_now()`, so every test sees
the same sockets a real machine showed, deterministically.
"""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot

from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.panes.connection_rows import COLUMN_INDEX, ConnEntry
from netdash.ui.panes.connections import ConnectionsPane, FilterStatus
from netdash.ui.screens.help import HelpScreen
from netdash.ui.screens.owner_chooser import OwnerChooser
from netdash.ui.screens.process import ProcessScreen
from netdash.ui.screens.socket_detail import SocketDetailScreen, tcp_rows
from netdash.ui.widgets.state_summary import StateSummary
from netdash.ui.widgets.status_line import StatusLine
from netdash.ui.widgets.virtual_table import VirtualTable

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


def make_app() -> NetdashApp:
    return build_replay_app(RECORDING, autostart=False)


async def load(app: NetdashApp, pilot: Pilot, samples: int = 2) -> ConnectionsPane:
    for _ in range(samples):
        app.sample_now()
        await pilot.pause()
    return app.query_one(ConnectionsPane)


def screen_lines(app: NetdashApp) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def visible_entries(pane: ConnectionsPane) -> list[ConnEntry]:
    return [row.data for row in pane.view]


def status_text(pane: ConnectionsPane) -> str:
    return " ".join(part for part, _ in pane.query_one(FilterStatus).parts)


async def type_filter(pilot: Pilot, text: str, submit: bool = True) -> None:
    await pilot.press("slash")
    for char in text:
        await pilot.press(char if char != " " else "space")
    if submit:
        await pilot.press("enter")
    await pilot.pause()


def cursor_entry(pane: ConnectionsPane) -> ConnEntry:
    row = pane.table.cursor_row
    assert row is not None
    return row.data


async def move_cursor_to(pilot: Pilot, pane: ConnectionsPane, match) -> ConnEntry:
    for position, row in enumerate(pane.view):
        if match(row.data):
            pane.table.move_cursor_to_key(row.key)
            await pilot.pause()
            assert pane.table.cursor_position == position
            return row.data
    raise AssertionError("no row matches")


async def test_loads_the_recording_and_shows_header_and_summary():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        tcp_udp = [e for e in visible_entries(pane) if e.sock.proto != "unix"]
        assert len(tcp_udp) == len(visible_entries(pane)) > 50  # UNIX is off by default
        text = "\n".join(screen_lines(app))
        assert "web-1" in text
        assert "LIVE" in text
        assert "sock_diag" in text
        assert "ESTAB 68" in text
        assert "TIME-WAIT 3" in text
        assert "CLOSE-WAIT 2" in text


async def test_filter_narrows_as_you_type_and_enter_returns_to_the_table():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        total = len(pane.view)
        await type_filter(pilot, "state:listen", submit=False)
        assert app.focused is pane.filter_input
        assert {e.sock.state for e in visible_entries(pane)} == {"LISTEN"}
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is pane.table
        assert not pane.filter_input.display
        assert "filter: state:listen" in status_text(pane)  # the active filter stays visible
        assert cursor_entry(pane).sock.state == "LISTEN"
        assert len(pane.view) < total


async def test_field_terms_are_anded_and_negated():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await type_filter(pilot, "proc:nginx !state:listen sport:80")
        entries = visible_entries(pane)
        assert entries
        assert all(e.sock.state == "ESTABLISHED" and e.sock.local_port == 80 for e in entries)
        assert all(any(o.comm == "nginx" for o in e.owners) for e in entries)


async def test_bad_term_shows_a_message_and_keeps_the_last_good_filter():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await type_filter(pilot, "port:5432")
        shown = len(pane.view)
        await pilot.press("slash")
        pane.filter_input.value = "port:5432 prot:x"  # pasted: no valid prefix on the way
        await pilot.pause()
        assert "unknown field 'prot:'" in status_text(pane)
        assert len(pane.view) == shown
        await pilot.press("escape")  # closes the input, restoring the filter it had
        await pilot.pause(0.3)
        assert pane.query.text == "port:5432"
        assert "unknown field" not in status_text(pane)
        assert len(pane.view) == shown


async def test_escape_walks_back_one_step_at_a_time():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await pilot.press("g")  # group by state
        await pilot.pause()
        assert pane.grouped and pane.group_table.display
        await pilot.press("enter")  # into the first group
        await pilot.pause()
        assert pane.group_entry is not None and pane.table.display
        await type_filter(pilot, "127.0.0")
        await pilot.press("slash", "x")
        await pilot.pause()
        steps = []
        for _ in range(5):
            await pilot.press("escape")
            await pilot.pause(0.3)
            steps.append(
                (
                    pane.filter_input.display,
                    bool(pane.query and pane.query.text),
                    pane.group_entry is not None,
                    pane.group_field,
                )
            )
        assert steps == [
            (False, True, True, "state"),  # input closed, filter restored
            (False, False, True, "state"),  # filter cleared
            (False, False, False, "state"),  # left the group
            (False, False, False, None),  # ungrouped
            (False, False, False, None),  # nothing left: Esc on the main screen is harmless
        ]
        assert app.screen is app.screen_stack[0]


async def test_sort_keys_and_header_arrow():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        assert pane.view.sort_column == COLUMN_INDEX["state"]
        await pilot.press("s")
        await pilot.pause()
        column = pane.view.sort_column
        assert column is not None and column != COLUMN_INDEX["state"]
        values = [row.sort_values[column] for row in pane.view]
        present = [v for v in values if v is not None]
        assert present == sorted(present)
        await pilot.press("S")
        await pilot.pause()
        assert pane.view.reverse
        header = pane.table.render_line(0).text
        assert "▼" in header or "▲" in header


async def test_cursor_stays_on_the_same_socket_across_refreshes_and_sorts():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        chosen = await move_cursor_to(pilot, pane, lambda e: e.sock.local_port == 6667)
        for _ in range(3):
            app.sample_now()
            await pilot.pause()
        assert cursor_entry(pane).sock.key == chosen.sock.key
        await pilot.press("s", "s", "S")
        await pilot.pause()
        assert cursor_entry(pane).sock.key == chosen.sock.key


async def test_views_listening_established_all():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await pilot.press("l")
        await pilot.pause()
        assert {e.sock.state for e in visible_entries(pane)} <= {"LISTEN", "UNCONN"}
        header = pane.table.render_line(0).text
        assert "Accept-Q" in header and "Remote" not in header
        slow = next(r for r in pane.view if r.data.sock.local_port == 9000)
        assert slow.cells[COLUMN_INDEX["accept"]].startswith("3/")
        await pilot.press("e")
        await pilot.pause()
        assert {e.sock.state for e in visible_entries(pane)} == {"ESTABLISHED"}
        assert "Accept-Q" not in pane.table.render_line(0).text
        await pilot.press("a")
        await pilot.pause()
        assert "TIME_WAIT" in {e.sock.state for e in visible_entries(pane)}


async def test_unix_toggle_adds_unix_sockets():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        assert not any(e.sock.proto == "unix" for e in visible_entries(pane))
        await pilot.press("u")
        await pilot.pause()
        unix = [e for e in visible_entries(pane) if e.sock.proto == "unix"]
        assert any(e.sock.local_addr == "@netdash-lab" for e in unix)
        assert "UNIX 7" in "\n".join(screen_lines(app))


async def test_group_by_cycles_and_enter_filters_to_the_group():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        seen = []
        for _ in range(4):
            await pilot.press("g")
            await pilot.pause()
            seen.append(pane.group_field)
        assert seen == ["state", "remote host", "local port", "process"]
        groups = {row.cells[0]: row for row in pane.group_view}
        assert int(groups["loadgen"].cells[1]) >= 25
        pane.group_table.move_cursor_to_key(groups["nginx"].key)
        await pilot.press("enter")
        await pilot.pause()
        entries = visible_entries(pane)
        assert entries and all(e.owners[0].comm == "nginx" for e in entries)
        await pilot.press("g")
        await pilot.pause()
        assert pane.group_field is None


async def test_enter_on_a_socket_without_owner_says_why():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await move_cursor_to(pilot, pane, lambda e: e.sock.state == "TIME_WAIT")
        await pilot.press("enter")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("TIME_WAIT" in m for m in messages)
        assert app.screen is app.screen_stack[0]


async def test_enter_on_a_shared_listener_offers_a_chooser_then_the_process_screen():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await type_filter(pilot, "sport:80 state:listen")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, OwnerChooser)
        assert "nginx  user root  fd 3" in "\n".join(screen_lines(app))
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen)
        nginx_pids = sorted(o.pid for o in cursor_entry(pane).owners)
        assert app.screen.pid == nginx_pids[1]
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert pane.query.text == "sport:80 state:listen"


async def test_process_screen_lists_its_sockets_and_esc_returns_to_the_same_row():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await pilot.press("e")
        await pilot.press("s")
        chosen = await move_cursor_to(
            pilot, pane, lambda e: bool(e.owners and e.owners[0].comm == "loadgen")
        )
        view_before, sort_before = pane.view_mode, pane.view.sort_column
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ProcessScreen)
        assert len(screen.view) >= 25  # loadgen's own sockets, through the same virtual table
        assert all(any(o.pid == screen.pid for o in row.data.owners) for row in screen.view)
        trail = f"Connections › :{chosen.sock.local_port} › loadgen[{screen.pid}]"
        assert trail in "\n".join(screen_lines(app))  # the breadcrumb: the way back
        app.sample_now()  # updates keep flowing to the process screen
        await pilot.pause()
        assert "sockets owned by" in "\n".join(screen_lines(app))
        owned = {r.key for r in pane.view.all_rows() if any(o.pid == screen.pid for o in r.owners)}
        assert set(screen.view.keys()) == owned  # the latest rows, only the process's
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert (pane.view_mode, pane.view.sort_column) == (view_before, sort_before)
        assert cursor_entry(pane).sock.key == chosen.sock.key


async def test_detail_of_a_shared_listener_lists_every_owner():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await move_cursor_to(
            pilot, pane, lambda e: e.sock.local_port == 80 and e.sock.state == "LISTEN"
        )
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, SocketDetailScreen)
        text = "\n".join(screen_lines(app))
        assert "owners" in text and text.count("nginx") >= 3
        # Owners are per process; the fds come from the sample's fd tables (a recording made
        # when owners carried their fd: read back into those tables).
        assert text.count("fd 3  nginx") == 3, text
        assert "tcp_info" not in text  # a listener's tcp_info is all zeros: not shown
        assert "16384P" not in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


async def open_detail_of_the_stream(app: NetdashApp, pilot: Pilot, samples: int) -> ConnEntry:
    """Load ``samples``, put the cursor on the lab's streaming connection and press ``i``."""
    pane = await load(app, pilot, samples=samples)
    entry = await move_cursor_to(pilot, pane, lambda e: e.rate is not None and e.rate.tx > 1000)
    await pilot.press("i")
    await pilot.pause()
    return entry


async def test_detail_of_a_connection_shows_its_tcp_info():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        entry = await open_detail_of_the_stream(app, pilot, samples=3)
        text = "\n".join(screen_lines(app))
        for field in (
            "tcp_info",
            "rtt",
            "cwnd",
            "ssthresh",
            "mss",
            "retransmits",
            "bytes acked",
            "rate (TCP payload)",
            "timer",
            "memory",
        ):
            assert field in text, field
        assert str(entry.sock.tcp.snd_cwnd) in text
        assert "(command line not readable)" not in text  # a replay never reads local /proc


async def test_detail_view_follows_its_socket_live():
    """The detail view is live: each refresh shows the socket's new counters."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        first = await open_detail_of_the_stream(app, pilot, samples=2)
        screen = app.screen
        assert isinstance(screen, SocketDetailScreen)
        app.sample_now()
        await pilot.pause()
        now = screen.entry
        assert now.key == first.key and now.sock.tcp.bytes_acked > first.sock.tcp.bytes_acked
        acked = dict(tcp_rows(now.sock.tcp))["bytes acked"]
        assert acked != dict(tcp_rows(first.sock.tcp))["bytes acked"]
        assert acked in "\n".join(screen_lines(app))


async def test_hostile_names_are_shown_literally():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await type_filter(pilot, "sport:6666-6667")
        lines = "\n".join(screen_lines(app))
        assert "[red]x[/]^[" in lines  # markup not applied, ESC made visible (cell may be cut)
        assert "bad\\xffname" in lines
        cells = {row.cells[COLUMN_INDEX["process"]] for row in pane.view}
        assert cells == {"[red]x[/]^[[31m", "bad\\xffname"}
        assert "\x1b" not in "".join(pane.table.render_line(y).text for y in range(5))


async def test_pause_freezes_the_view_while_sampling_goes_on():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        frozen = pane.last_update
        history_before = len(app.tracker.history)
        app.sample_now()
        await pilot.pause()
        assert pane.last_update is frozen
        assert len(app.tracker.history) == history_before + 1
        assert "PAUSED" in "\n".join(screen_lines(app))
        await pilot.press("p")
        await pilot.pause()
        app.sample_now()
        await pilot.pause()
        assert pane.last_update is not frozen


async def test_help_lists_the_keys():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await load(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(screen_lines(app))
        for key in ("/", "Enter", "Esc", "group by", "listening", "pause"):
            assert key in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_80x24_layout_fits_and_drops_columns():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await load(app, pilot)
        lines = screen_lines(app)
        assert len(lines) == 24
        assert all(len(line) <= 80 for line in lines)
        summary = pane.query_one("#summary")
        assert summary.size.height <= 3
        header = pane.table.render_line(0).text
        for essential in ("State", "Local", "Remote", "Process"):
            assert essential in header
        assert "Send-Q" not in header  # dropped first
        assert pane.table.size.height >= 10  # the table still gets most of the screen
        assert "Quit" in lines[-1]


async def test_quit_key():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await load(app, pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert VirtualTable  # imported for type checks above


async def test_proc_net_fallback_says_what_it_cannot_fill():
    import dataclasses

    from netdash.record import read_recording
    from netdash.sources.sockets import GAP_TCP_INFO, GAP_UNIX
    from netdash.ui.app import ReplayAdapter

    recording = read_recording(RECORDING)
    sample = recording.samples[0]
    fallback = dataclasses.replace(
        sample,
        sockets=tuple(dataclasses.replace(s, tcp=None, mem=None) for s in sample.sockets),
        sources={"tcp": "/proc/net", "udp": "/proc/net", "unix": "/proc/net"},
        gaps=(GAP_TCP_INFO, GAP_UNIX),
    )
    app = NetdashApp(ReplayAdapter(lambda: fallback), recording.host, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        text = "\n".join(screen_lines(app))
        assert "/proc/net" in text
        assert "no tcp_info (RTT, retransmits, byte rates)" in text
        assert "no UNIX peers" in text
        assert all(row.cells[COLUMN_INDEX["rtt"]] == "" for row in pane.view)


async def test_process_screen_shows_live_facts_of_a_real_process():
    import os
    import socket

    from netdash.engine import ConnectionsSampler
    from netdash.sources.host import read_host_info
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        sampler = ConnectionsSampler(SocketReader(), OwnerMap())
        app = NetdashApp(sampler, read_host_info(), autostart=False)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await load(app, pilot, samples=1)
            await type_filter(pilot, f"sport:{port}")
            assert cursor_entry(pane).owners[0].pid == os.getpid()
            await pilot.press("enter")
            for _ in range(30):  # the watcher thread's first read
                await pilot.pause(0.1)
                if "open fds" in "\n".join(screen_lines(app)):
                    break
            text = "\n".join(screen_lines(app))
            assert isinstance(app.screen, ProcessScreen)
            assert f"{os.getpid()}" in text
            assert "open fds" in text and "(soft)" in text
            assert "command line" in text and "pytest" in text
            assert "sockets owned by" in text
            assert len(app.screen.view) >= 1
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is app.screen_stack[0]


async def test_groups_count_only_what_the_filter_and_toggles_let_through():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        await type_filter(pilot, "proc:nginx")
        nginx_sockets = len(pane.view)
        await pilot.press("g")
        await pilot.pause()
        counts = {row.cells[0]: int(row.cells[1]) for row in pane.group_view}
        assert sum(counts.values()) == nginx_sockets
        assert set(counts) <= {"LISTEN", "ESTAB"}
        await pilot.press("escape")  # clears the filter, stays grouped
        await pilot.pause()
        labels = {row.cells[0] for row in pane.group_view}
        assert "UNCONN (udp)" in labels and not any("unix" in label for label in labels)
        await pilot.press("u")
        await pilot.pause()
        labels = {row.cells[0] for row in pane.group_view}
        assert "LISTEN (unix)" in labels and "UNCONN (udp)" in labels


async def test_a_refresh_swaps_in_the_feeds_view_even_when_a_sort_raced_it():
    """The sampling thread builds the finished view; the UI thread only swaps it in. A sort the
    user made after the feed built it is applied to it on arrival (and told to the feed)."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        cursor = cursor_entry(pane).sock.key
        update = app._sample_in_thread()  # built with the state sort...
        assert update is not None and update.view is not None
        assert update.view.sort_column == COLUMN_INDEX["state"]
        await pilot.press("s")  # ...and the user sorts by the next column before it arrives
        await pilot.pause()
        column = pane.view.sort_column
        assert column != COLUMN_INDEX["state"] and app.feed.spec.sort_column == column
        app._publish(update)
        await pilot.pause()
        assert pane.view is update.view  # swapped in, not applied row by row
        assert pane.view.sort_column == column
        values = [v for v in (row.sort_values[column] for row in pane.view) if v is not None]
        assert values == sorted(values)
        assert cursor_entry(pane).sock.key == cursor
        following = app._sample_in_thread()  # the feed now builds with the user's sort
        assert following is None or following.view is None or following.view.sort_column == column


async def test_a_long_filter_scrolls_in_its_box_and_typing_costs_no_layout():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await load(app, pilot)
        await pilot.press("slash")
        await pilot.pause()
        layouts = []
        box = pane.filter_input
        box_refresh = box.refresh

        def counting_refresh(*args, **kwargs):
            if kwargs.get("layout"):
                layouts.append(True)
            return box_refresh(*args, **kwargs)

        box.refresh = counting_refresh  # type: ignore[method-assign]
        for char in "a" * 20:
            await pilot.press(char)
        await pilot.pause()
        assert not layouts  # a letter typed repaints the box, it does not lay out the screen
        for char in "a" * 70 + "zq":
            await pilot.press(char)
        await pilot.pause()
        assert len(layouts) <= 1  # once, when the text first outgrows the box
        assert pane.filter_input.value.endswith("azq")
        box_line = next(line for line in screen_lines(app) if "aaaa" in line)
        assert "azq" in box_line  # scrolled to the cursor, not cut at the start


async def test_an_unchanged_header_and_summary_are_not_repainted():
    """An idle host: the same counts and the same header line every second cost no repaint."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await load(app, pilot)
        summary, status = pane.query_one(StateSummary), app.query_one(StatusLine)
        repaints: list[str] = []
        summary.refresh = lambda *a, **k: repaints.append("summary")  # type: ignore[method-assign]
        status.refresh = lambda *a, **k: repaints.append("status")  # type: ignore[method-assign]
        summary.update_counts(dict(summary.counts), summary.history)
        status.redraw()
        assert repaints == []
        counts = dict(summary.counts)
        counts["ESTABLISHED"] = counts.get("ESTABLISHED", 0) + 1
        summary.update_counts(counts, summary.history)
        status.total += 1
        status.redraw()
        assert repaints == ["summary", "status"]


def test_the_sample_age_reads_the_same_while_samples_are_on_time():
    status = StatusLine(make_app().host, interval=1.0)
    assert status.age_label(0.0) == status.age_label(1.2) == ("≤1s ago", "")
    assert status.age_label(2.0) == ("2.0s ago", "yellow")
    assert status.age_label(30.0) == ("30s ago", "bold red")
