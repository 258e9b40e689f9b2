"""App-level keys that every screen shares: Ctrl+C quits (Textual 8 does not by default)."""

from __future__ import annotations

from pathlib import Path

from netdash.ui.app import build_replay_app
from netdash.ui.screens.help import HelpScreen

RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


async def test_ctrl_c_quits_even_from_a_modal():
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.sample_now()
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0
    assert not app.is_running


async def test_command_palette_opens_with_ctrl_p():
    from textual.command import CommandPalette

    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CommandPalette)
