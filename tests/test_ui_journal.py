"""The Journal tab on real journals: a journal file made from export fixtures (units,
priorities, hostile messages) and a journald of the tests' own for the burst.

The app opens followers exactly as the live app does (``journal_opener``: ``journalctl -o json
--all --follow`` with the filter's terms); only the sockets come from a recording.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from journallab import journalctl_json, journald_namespace, make_journal
from test_journal import FIXTURES, hostile_export

from netdash.ui.app import NetdashApp, build_replay_app, journal_opener
from netdash.ui.panes.journal import JournalPane
from netdash.ui.panes.journal_rows import MESSAGE
from netdash.ui.screens.journal_entry import JournalEntryScreen

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


def journal_args(**options: object) -> argparse.Namespace:
    defaults = {"journal_dir": None, "journal_file": None, "journal_namespace": None}
    return argparse.Namespace(**{**defaults, "syslog_file": None, **options})


@pytest.fixture(scope="module")
def journal_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ui-journal")
    exported = (FIXTURES / "services.export").read_bytes()
    return make_journal(folder / "fixture.journal", exported, hostile_export())


def app_on(args: argparse.Namespace) -> NetdashApp:
    app = build_replay_app(RECORDING, autostart=False)
    app.open_journal = journal_opener(args)
    return app


async def open_tab(app: NetdashApp, pilot) -> JournalPane:
    await pilot.press("escape", "4")
    pane = app.query_one(JournalPane)
    app.start_journal(pane.filter)
    return pane


async def wait_until(pilot, ready, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def screen_text(app: NetdashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_entries_filters_and_literal_messages_from_a_journal_file(journal_file):
    oracle = journalctl_json("--file", str(journal_file))
    app = app_on(journal_args(journal_file=str(journal_file)))
    async with app.run_test(size=(140, 40)) as pilot:
        pane = await open_tab(app, pilot)
        await wait_until(pilot, lambda: pane.received == len(oracle))
        assert len(pane.view) == len(oracle) and pane.following
        assert "journalctl --file" in screen_text(app)
        assert pane.table.cursor_position == len(pane.view) - 1  # newest at the bottom

        # journalctl terms restart the follower: counted as journalctl counts them.
        await pilot.press("slash", *"unit:nginx.service prio:err", "enter")
        wanted = journalctl_json("--file", str(journal_file), "-u", "nginx.service", "-p", "err")
        await wait_until(pilot, lambda: pane.received == len(wanted) and len(pane.view) > 0)
        assert {row.entry.unit for row in pane.view} == {"nginx.service"}
        assert all(row.entry.priority <= 3 for row in pane.view)
        assert all(row.styles[1] is not None for row in pane.view)  # err and worse: coloured

        # Text terms filter the buffer, highlighted; hostile messages stay text.
        pane.set_filter_text(r"re:\[link=")  # the same as typed: [ and \ are not key names
        await wait_until(pilot, lambda: pane.received == len(oracle) and len(pane.view) == 1)
        (row,) = list(pane.view)
        assert row.highlight is not None and row.highlight[0] == MESSAGE
        assert row.cells[MESSAGE].startswith("[bold red]markup[/]")
        await pilot.press("escape", "slash", *"red", "enter")
        await wait_until(pilot, lambda: any("^[[31m" in r.cells[MESSAGE] for r in pane.view))

        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, JournalEntryScreen)
        assert "^[[31mred" in screen_text(app)  # the whole entry, escapes visible


async def test_scrolling_up_pauses_following_and_end_resumes(journal_file):
    app = app_on(journal_args(journal_file=str(journal_file)))
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await open_tab(app, pilot)
        await wait_until(pilot, lambda: pane.received > 20)
        await pilot.press("home")
        await pilot.pause()
        assert not pane.following and "paused (End follows)" in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert pane.following and pane.table.cursor_position == len(pane.view) - 1


@pytest.mark.root
async def test_a_burst_of_10000_entries_a_second_keeps_the_ui_answering_and_loses_nothing(
    tmp_path,
):
    """10 s of 10,000 entries a second (as fast as this sender manages), while keys are
    pressed; every entry asked for is counted, the buffer stays bounded."""
    with journald_namespace(tmp_path) as journald:
        app = app_on(journal_args(journal_namespace=journald.name))
        async with app.run_test(size=(140, 40)) as pilot:
            pane = await open_tab(app, pilot)
            await pilot.press("slash", *"id:nd-ui-burst", "enter")
            await pilot.pause(0.5)
            total, per_second = 100_000, 10_000
            # The sender is a process of its own, as a real burst comes from elsewhere (in this
            # process it would compete with the UI for the GIL).
            sender = subprocess.Popen(
                [sys.executable, "-c", BURST, journald.socket_path, str(total), str(per_second)],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
            )
            started = time.monotonic()
            answers: list[float] = []
            while sender.poll() is None:  # keys answered while the burst runs
                pressed = time.monotonic()
                await pilot.press("home" if len(answers) % 2 else "end")
                await pilot.pause()
                answers.append(time.monotonic() - pressed)
                await pilot.pause(0.2)
            assert sender.wait() == 0
            sending = time.monotonic() - started
            oracle = len(journalctl_json("--namespace", journald.name, "-t", "nd-ui-burst"))
            await wait_until(pilot, lambda: pane.received >= oracle, timeout=60)
            assert pane.received == oracle == total
            assert len(pane.rows) == min(total, pane.buffer)  # bounded
            await pilot.pause()
            assert f"of {total:,} received" in screen_text(app)  # the count the user sees
            # Never frozen: keys answered at once as a rule, and within 2 s on a 2-core machine
            # that also runs journald, journalctl and the sender.
            print("key answers during the burst (s):", sorted(round(a, 2) for a in answers))
            assert statistics.median(answers) < 0.5 and max(answers) < 2.0, answers
            assert sending < 20


#: ``total`` entries at up to ``per_second``, in datagrams sent 1,000 at a time.
BURST = """
import sys, time
from journallab import send_many
path, total, per_second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started = time.monotonic()
for chunk in range(0, total, 1000):
    entries = [
        {"MESSAGE": f"burst {i}", "SYSLOG_IDENTIFIER": "nd-ui-burst", "PRIORITY": str(i % 8)}
        for i in range(chunk, min(total, chunk + 1000))
    ]
    send_many(path, entries)
    ahead = started + (chunk + 1000) / per_second - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
"""


async def test_an_entry_of_a_running_process_opens_its_process_screen():
    import os

    from netdash.model import JournalEntry
    from netdash.ui.screens.process import ProcessScreen

    app = build_replay_app(RECORDING, autostart=False)
    now = int(time.time() * 1e6)
    mine = JournalEntry(now, "from the test itself", priority=6, pid=os.getpid(), comm="pytest")
    gone = JournalEntry(now, "from a process long gone", priority=6, pid=4_000_000)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape")
        app.push_screen(JournalEntryScreen(gone))
        await wait_until(pilot, lambda: app.screen.alive is not None)
        assert app.screen.alive is False and "no longer running" in screen_text(app)
        await pilot.press("enter")  # nothing to open: it says so and stays
        assert isinstance(app.screen, JournalEntryScreen)
        await pilot.press("escape")
        app.push_screen(JournalEntryScreen(mine))
        await wait_until(pilot, lambda: app.screen.alive is not None)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ProcessScreen))
        assert app.screen.pid == os.getpid()
        assert f"Journal › pytest[{os.getpid()}]" in screen_text(app)


async def test_the_process_screen_opens_the_journal_of_its_unit():
    """Processes here run in no systemd unit: the unit comes from a recorded cgroup path."""
    from netdash.model import ProcessInfo
    from netdash.ui.messages import ProcessSampled
    from netdash.ui.panes.connections import ConnectionsPane
    from netdash.ui.screens.process import ProcessScreen

    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("escape")
        app.post_message(ConnectionsPane.OpenProcess(4242, ("Connections", ":80"), "nginx"))
        await wait_until(pilot, lambda: isinstance(app.screen, ProcessScreen))
        info = ProcessInfo(
            pid=4242, ppid=1, comm="nginx", user="www-data", uid=33, state="S",
            start_time=None, cmdline=("nginx",), exe=None, cwd=None, threads=1, fds=8,
            fd_soft_limit=1024, fd_hard_limit=4096, cpu_percent=0.0, rss=1 << 20,
            cgroup="0::/system.slice/nginx.service",
        )  # fmt: skip
        app.screen.post_message(ProcessSampled(info))
        await pilot.pause()
        await pilot.press("j")
        await pilot.pause()
        assert app.query_one("#tabs").active == "tab-journal"
        assert app.query_one(JournalPane).filter.units == ("nginx.service",)
