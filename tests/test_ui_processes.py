"""The Processes tab on a real system: the known-sockets lab's processes, sampled live.

The lab (tests/lablib.py) runs nginx (a master and two workers sharing :80), java holding a
CLOSE_WAIT connection, processes with hostile names, and more, in a namespace of its own; the
app samples that namespace's sockets and the host's processes, as `netdash --netns` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lablib import MARKUP_COMM, KnownSocketsLab

from conftest import needs_root, skip_unless_root, temporary_netns
from netdash.engine import ConnectionsSampler
from netdash.model import HostInfo
from netdash.netns import resolve_netns
from netdash.sources.cgroups import CgroupReader
from netdash.sources.owners import OwnerMap
from netdash.sources.processes import ProcessReader
from netdash.sources.sockets import SocketReader
from netdash.ui.app import NetdashApp
from netdash.ui.panes.process_rows import PROCESS_INDEX
from netdash.ui.panes.processes import ProcessesPane
from netdash.ui.screens.process import ProcessScreen

HOST = HostInfo(hostname="lab", kernel=os.uname().release, netns="lab", is_root=True)


@asynccontextmanager
async def lab_app() -> AsyncIterator[tuple[NetdashApp, object, KnownSocketsLab]]:
    skip_unless_root()
    with temporary_netns("procs") as name, KnownSocketsLab(name) as lab:
        sampler = ConnectionsSampler(SocketReader(netns=resolve_netns(name)), OwnerMap())
        app = NetdashApp(
            sampler, HOST, autostart=False, processes=ProcessReader(), cgroups=CgroupReader()
        )
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("escape", "3")
            for _ in range(2):  # CPU % and rates need two samples
                app.sample_now()
                await pilot.pause()
            yield app, pilot, lab


def rows_named(pane: ProcessesPane, name: str) -> list:
    return [row for row in pane.view if row.data.name == name]


@needs_root
async def test_socket_owners_with_their_sockets_by_state():
    async with lab_app() as (app, _pilot, lab):
        pane = app.query_one(ProcessesPane)
        nginx = rows_named(pane, "nginx")
        assert {row.data.pid for row in nginx} == set(lab.pids["nginx"])
        assert all(row.cells[PROCESS_INDEX["listen"]] == "1" for row in nginx)  # :80, shared
        (java,) = rows_named(pane, "java")
        assert java.cells[PROCESS_INDEX["close_wait"]] == "2"  # the lab's two CLOSE_WAIT
        assert java.styles[PROCESS_INDEX["close_wait"]] == "bold yellow"
        assert java.cells[PROCESS_INDEX["fds"]].endswith(f"/{java.data.fd_soft_limit}")
        hostile = [row for row in pane.view if row.data.name.startswith("[red]")]
        assert hostile and hostile[0].cells[PROCESS_INDEX["name"]].startswith("[red]x[/]")
        assert MARKUP_COMM.decode().startswith(hostile[0].data.name[:5])
        assert all(pane.frame.socket_total(row.data.pid) for row in pane.view)  # owners only


@needs_root
async def test_filter_tree_and_enter_to_the_process_screen():
    async with lab_app() as (app, pilot, lab):
        pane = app.query_one(ProcessesPane)
        await pilot.press("slash", *"proc:nginx", "enter")
        await pilot.pause()
        assert {row.data.name for row in pane.view} == {"nginx"} and len(pane.view) == 3
        await pilot.press("t")
        await pilot.pause()
        names = [row.cells[PROCESS_INDEX["name"]] for row in pane.view]  # master, workers
        depth = [len(name) - len(name.lstrip(" ├└─")) for name in names]
        assert names[-1].strip().startswith("└─ ") and depth[1] == depth[2] > depth[0]
        await pilot.press("escape", "t")
        await pilot.pause()
        master = min(lab.pids["nginx"])
        pane.table.move_cursor_to_key(next(r.key for r in pane.view if r.data.pid == master))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen) and app.screen.pid == master
        assert f"Processes › nginx[{master}]" in "\n".join(
            strip.text for strip in app.screen._compositor.render_strips()
        )
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]


@needs_root
async def test_all_processes_show_a_zombie_and_cgroups_are_ranked():
    code = "import os, time\nif os.fork() == 0: os._exit(0)\ntime.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)  # the child has exited and stays a zombie: its parent never waits
        async with lab_app() as (app, pilot, _lab):
            pane = app.query_one(ProcessesPane)
            await pilot.press("a")
            await pilot.pause()
            zombies = [row for row in pane.view if row.data.ppid == parent.pid]
            assert zombies and zombies[0].data.state == "Z"
            assert zombies[0].styles[PROCESS_INDEX["state"]] == "bold red"
            assert zombies[0].cells[PROCESS_INDEX["command"]] == "<defunct>"
            await pilot.press("c")
            await pilot.pause()
            assert len(pane.cgroup_view) >= 1
            assert any(row.data.info.path == "/" for row in pane.cgroup_view)
    finally:
        parent.kill()
        parent.wait()


@needs_root
async def test_drill_down_connections_process_stack_and_back_to_the_same_row():
    """Connections › :8080 › java[pid] › stack, and Esc twice back to the same socket row."""
    from netdash.ui.panes.connections import ConnectionsPane
    from netdash.ui.screens.stack import ConfirmStackDump, StackScreen

    async with lab_app() as (app, pilot, lab):
        await pilot.press("1")
        pane = app.query_one(ConnectionsPane)
        java = lab.pids["java"][0]
        row = next(r for r in pane.view if r.sock.state == "LISTEN" and r.sock.local_port == 8080)
        pane.table.move_cursor_to_key(row.key)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ProcessScreen) and app.screen.pid == java
        await pilot.press("k")
        for _ in range(40):  # the Python check runs in a thread
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmStackDump):
                break
        assert isinstance(app.screen, ConfirmStackDump)  # the lab's roles are Python
        await pilot.press("y")
        text = ""
        for _ in range(100):
            await pilot.pause(0.1)
            text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
            if "Thread" in text:
                break
        assert isinstance(app.screen, StackScreen)
        assert f"Connections › :8080 › java[{java}] › stack" in text
        assert "Thread" in text and ".py:" in text  # frames with file:line
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        assert pane.table.cursor_row is not None and pane.table.cursor_row.key == row.key


@needs_root
async def test_the_process_screen_shows_cgroups_and_opens_its_journal():
    from netdash.ui.screens.cgroup import CgroupScreen

    async with lab_app() as (app, pilot, lab):
        pane = app.query_one(ProcessesPane)
        nginx = min(lab.pids["nginx"])
        pane.table.move_cursor_to_key(next(r.key for r in pane.view if r.data.pid == nginx))
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("u")
        text = ""
        for _ in range(40):
            await pilot.pause(0.05)
            text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
            if "processes" in text:
                break
        assert isinstance(app.screen, CgroupScreen)
        assert f"nginx[{nginx}] › cgroups" in text and "memory" in text
        await pilot.press("escape", "j")
        await pilot.pause()
        # The lab's processes run in no systemd unit: the journal is filtered by their pid.
        from netdash.ui.panes.journal import JournalPane

        assert app.screen is app.screen_stack[0]
        assert app.query_one("#tabs").active == "tab-journal"
        assert app.query_one(JournalPane).filter.pids == (nginx,)
