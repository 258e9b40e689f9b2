"""The Diagnose tab's stack health on a real kernel: listen overflows caused in a namespace
show up as moving counters (highlighted, with a rate) in the app."""

from __future__ import annotations

import time
from pathlib import Path

from test_stack import overflowing_listener

from conftest import needs_root, skip_unless_root, temporary_netns
from netdash.engine import Poller
from netdash.netns import resolve_netns
from netdash.sources.stack import StackReader
from netdash.ui.app import build_replay_app
from netdash.ui.panes.stack import StackPane

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


@needs_root
async def test_moving_counters_are_highlighted_with_their_rates():
    skip_unless_root()
    with temporary_netns("stackui") as name:
        app = build_replay_app(RECORDING, autostart=False)
        app.stack = StackReader(netns=resolve_netns(name))
        app.stack_poller = Poller("stack", app._sample_stack_in_thread, app._publish_stack, 1.0)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("escape", "6")
            pane = app.query_one(StackPane)
            app.stack_poller.run_once()
            await pilot.pause()
            assert pane.frame is not None and not pane.frame.moving
            with overflowing_listener(name):
                time.sleep(1.0)
                app.stack_poller.run_once()
                await pilot.pause()
            row = pane.view.get("TcpExt.ListenOverflows")
            assert row is not None and row.styles[0] == "bold yellow"
            assert row.cells[1] not in ("", "0")  # a rate per second
            text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
            assert "moving now: " in text and "TcpExt.ListenOverflows" in text
            assert "net.core.somaxconn" in text  # the sysctls, with their notes
            await pilot.press("a")
            await pilot.pause()
            assert len(pane.view) > 50  # every counter the kernel keeps
