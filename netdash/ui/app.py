"""The Textual application: a status line, the panes, a footer; sampling happens elsewhere.

The app is built from a *sampler* (anything with ``sample() -> SocketSample``), so tests and the
screenshot script run the real UI on recorded samples, and the live app on the real kernel.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

from netdash.engine import ConnectionsTracker, Poller
from netdash.model import HostInfo, SocketSample
from netdash.ui.gc_policy import GcPolicy
from netdash.ui.messages import ConnectionsUpdated, SourceFailed
from netdash.ui.panes.connection_rows import ConnectionsFeed, ConnectionsUpdate
from netdash.ui.panes.connections import ConnectionsPane
from netdash.ui.screens.help import HelpScreen
from netdash.ui.screens.owner_chooser import OwnerChooser
from netdash.ui.screens.process import ProcessScreen
from netdash.ui.screens.socket_detail import SocketDetailScreen
from netdash.ui.widgets.status_line import StatusLine


class Sampler(Protocol):
    unix: bool

    def sample(self) -> SocketSample: ...

    def close(self) -> None: ...


class NetdashApp(App[int]):
    CSS_PATH = "netdash.tcss"
    TITLE = "netdash"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(
        self,
        sampler: Sampler,
        host: HostInfo,
        interval: float = 1.0,
        *,
        autostart: bool = True,
        live: bool = True,
    ) -> None:
        super().__init__()
        self.live = live  # False on a recording: never read this machine's /proc for its pids
        self.sampler = sampler
        self.host = host
        self.interval = interval
        self.tracker = ConnectionsTracker(interval)
        self.feed = ConnectionsFeed()
        self.paused = False
        self.poller: Poller[ConnectionsUpdate | None] = Poller(
            "connections",
            self._sample_in_thread,
            self._publish,
            interval,
            on_error=self._report_error,
        )
        self._autostart = autostart
        self.gc_policy = GcPolicy()

    def compose(self) -> ComposeResult:
        yield StatusLine(self.host, self.interval, id="status")
        yield ConnectionsPane(self.feed, self.host, id="connections")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sampler.unix = False
        self.gc_policy.start()
        if self._autostart:
            self.poller.start()

    def on_unmount(self) -> None:
        self.poller.stop()
        self.sampler.close()
        self.gc_policy.stop()

    # -- the sampling thread -------------------------------------------------------------------

    def _sample_in_thread(self) -> ConnectionsUpdate | None:
        """Sample, track and build rows: everything but painting, off the event loop."""
        self.feed.release()
        frame = self.tracker.update(self.sampler.sample())
        update = self.feed.consume(frame)
        if update is not None and update.full:
            self.gc_policy.loaded()
        if update is not None and update.view is not None:
            self.gc_policy.settle()  # only a new view hands the UI young 100k-entry containers
        return update

    def _publish(self, update: ConnectionsUpdate | None) -> None:
        if update is not None:
            self.post_message(ConnectionsUpdated(update))

    def _report_error(self, err: BaseException) -> None:
        self.post_message(SourceFailed("connections", str(err) or type(err).__name__))

    def sample_now(self) -> None:
        """Run one tick in the calling thread (tests, replay) and deliver it."""
        self.poller.run_once()

    # -- messages ------------------------------------------------------------------------------

    @on(ConnectionsUpdated)
    def _apply(self, message: ConnectionsUpdated) -> None:
        update = message.update
        pane = self.query_one(ConnectionsPane)
        pane.apply_update(update)
        status = self.query_one(StatusLine)
        status.sources = update.frame.sample.sources
        status.gaps = update.frame.sample.gaps
        status.sampled_at = update.frame.sample.taken_at
        status.shown, status.total = len(pane.view), pane.view.total
        status.error = None
        status.redraw()
        if isinstance(self.screen, ProcessScreen):
            self.screen.apply_update(update)

    @on(SourceFailed)
    def _failed(self, message: SourceFailed) -> None:
        status = self.query_one(StatusLine)
        status.error = f"{message.source}: {message.error}"
        status.redraw()

    @on(ConnectionsPane.UnixToggled)
    def _unix_toggled(self, message: ConnectionsPane.UnixToggled) -> None:
        self.sampler.unix = message.enabled
        self.poller.poke()

    @on(ConnectionsPane.OpenProcess)
    def _open_process(self, message: ConnectionsPane.OpenProcess) -> None:
        pane = self.query_one(ConnectionsPane)
        self.push_screen(ProcessScreen(message.pid, pane.view, live=self.live))

    @on(ConnectionsPane.OpenDetail)
    def _open_detail(self, message: ConnectionsPane.OpenDetail) -> None:
        self.push_screen(SocketDetailScreen(message.entry, live=self.live))

    @on(ConnectionsPane.ChooseOwner)
    def _choose_owner(self, message: ConnectionsPane.ChooseOwner) -> None:
        def chosen(pid: int | None) -> None:
            if pid is not None:
                self.post_message(ConnectionsPane.OpenProcess(pid))

        self.push_screen(OwnerChooser(message.entry), chosen)

    # -- actions -------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.feed.paused = self.paused  # sampling and history go on; the view holds still
        status = self.query_one(StatusLine)
        status.paused = self.paused
        status.redraw()
        if not self.paused:
            self.poller.poke()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()


def build_live_app(args: argparse.Namespace) -> NetdashApp:
    from netdash.cli import netns_target, open_sampler
    from netdash.sources.host import read_host_info

    target = netns_target(args)
    sampler = open_sampler(args)
    return NetdashApp(sampler, read_host_info(target.label), args.interval)


def build_replay_app(path: Path, interval: float = 1.0, *, autostart: bool = True) -> NetdashApp:
    """The real app on a recording: for `--replay`, the UI tests and the screenshots."""
    from netdash.record import ReplaySampler, read_recording

    recording = read_recording(path)
    sampler = ReplaySampler(recording.samples)
    return NetdashApp(
        ReplayAdapter(sampler.sample), recording.host, interval, autostart=autostart, live=False
    )


class ReplayAdapter:
    """A recording has what it has: the UNIX toggle filters, it cannot add sockets."""

    def __init__(self, sample: Callable[[], SocketSample]) -> None:
        self.sample = sample
        self.unix = True

    def close(self) -> None:
        pass


def run_app(args: argparse.Namespace) -> int:
    if args.replay is not None:
        app = build_replay_app(args.replay, args.interval)
    else:
        app = build_live_app(args)
    app.run()
    return app.return_code or 0
