"""The Textual application: a status line, the panes, a footer; sampling happens elsewhere.

The app is built from a *sampler* (anything with ``sample() -> SocketSample``), so tests and the
screenshot script run the real UI on recorded samples, and the live app on the real kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from netdash.engine import ConnectionsFrame, ConnectionsTracker, Poller
from netdash.engine_conntrack import ConntrackTracker
from netdash.engine_firewall import FirewallTracker
from netdash.engine_links import LinkFrame, LinkTracker
from netdash.engine_procs import CgroupTracker, ProcessesFrame, process_rates
from netdash.model import (
    CgroupInfo,
    ConntrackSample,
    FirewallSample,
    HostInfo,
    JournalEntry,
    LinkSample,
    ProcessSample,
    SocketSample,
)
from netdash.netns import NetnsTarget
from netdash.sources.processes import socket_counts
from netdash.sources.stack import StackFrame, StackSample, StackTracker
from netdash.talkers import CgroupLookup, TalkersFrame, TalkersTracker
from netdash.textsafe import visible
from netdash.ui.gc_policy import GcPolicy
from netdash.ui.messages import (
    ConnectionsUpdated,
    FirewallUpdated,
    JournalAppended,
    LinksUpdated,
    NamesChanged,
    ProcessesUpdated,
    SourceFailed,
    StackUpdated,
    TalkersUpdated,
)
from netdash.ui.names import REPAINT_EVERY, NamedTable, NameOptions, Names, names_label
from netdash.ui.panes.connection_rows import ConnectionsFeed, ConnectionsUpdate
from netdash.ui.panes.connections import ConnectionsPane, socket_trail
from netdash.ui.panes.diagnose import DiagnosePane, DiagnoseSettings
from netdash.ui.panes.firewall import FirewallPane
from netdash.ui.panes.interfaces import InterfacesPane
from netdash.ui.panes.journal import JournalPane
from netdash.ui.panes.journal_rows import JournalFilter
from netdash.ui.panes.process_rows import frame_rows
from netdash.ui.panes.processes import ProcessesPane
from netdash.ui.panes.routes import RoutesSource
from netdash.ui.panes.stack import StackPane
from netdash.ui.panes.talkers import TalkersView, connections_filter
from netdash.ui.screens.help import HelpScreen
from netdash.ui.screens.journal_entry import JournalEntryScreen
from netdash.ui.screens.owner_chooser import OwnerChooser
from netdash.ui.screens.process import ProcessScreen
from netdash.ui.screens.socket_detail import SocketDetailScreen
from netdash.ui.widgets.status_line import StatusLine
from netdash.ui.widgets.virtual_table import VirtualTable


class Sampler(Protocol):
    unix: bool

    def sample(self) -> SocketSample: ...

    def close(self) -> None: ...


class LinksSampler(Protocol):
    def sample(self) -> LinkSample: ...

    def close(self) -> None: ...


#: The tabs in order; the number keys and Tab switch between them.
TABS: tuple[tuple[str, str], ...] = (
    ("tab-connections", "Connections"),
    ("tab-interfaces", "Interfaces"),
    ("tab-processes", "Processes"),
    ("tab-journal", "Journal"),
    ("tab-firewall", "Firewall"),
    ("tab-diagnose", "Diagnose"),
)
TAB_INDEX = {tab_id: index for index, (tab_id, _) in enumerate(TABS)}

Handler = TypeVar("Handler", bound=Callable[..., None])


def survives_closing(handler: Handler) -> Handler:
    """A source's message handler that may run while the app closes: the pollers' last
    messages can arrive after the panes are gone, and that is not an error."""

    @functools.wraps(handler)
    def handle(*args: object, **kwargs: object) -> None:
        with contextlib.suppress(NoMatches):
            handler(*args, **kwargs)

    return handle  # type: ignore[return-value]


#: Seconds the journal thread waits for entries before handing over what it has (a burst of
#: 10,000 entries a second arrives as batches of ~2,500, one repaint each).
JOURNAL_WAIT = 0.25
#: Cgroups are read every this many processes ticks (their counters move slowly; a host may
#: have thousands of groups).
CGROUP_EVERY = 2


class ProcessesSampler(Protocol):
    def sample(self, details: bool = True) -> ProcessSample: ...


class CgroupsSampler(Protocol):
    def read_all(self) -> tuple[CgroupInfo, ...]: ...


class FirewallSampler(Protocol):
    def sample(self) -> FirewallSample: ...

    def close(self) -> None: ...


class ConntrackSampler(Protocol):
    def sample(self) -> ConntrackSample: ...

    def close(self) -> None: ...


class StackSampler(Protocol):
    def sample(self) -> StackSample: ...

    def close(self) -> None: ...


class JournalFollowerLike(Protocol):
    @property
    def status(self) -> str: ...

    def start(self) -> None: ...

    def read_batch(self, timeout: float) -> list[JournalEntry]: ...

    def stop(self) -> None: ...


#: Opens a follower for a filter's journalctl terms (the live app's: netdash.ui.journal_source).
JournalOpener = Callable[[JournalFilter], JournalFollowerLike]


class NetdashApp(App[int]):
    CSS_PATH = "netdash.tcss"
    TITLE = "netdash"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("question_mark", "help", "Help"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("n", "toggle_names", "Names"),
        Binding("escape", "back", "Back", show=False),
        Binding("1", "show_tab(0)", "Connections", show=False),
        Binding("2", "show_tab(1)", "Interfaces", show=False),
        Binding("3", "show_tab(2)", "Processes", show=False),
        Binding("4", "show_tab(3)", "Journal", show=False),
        Binding("5", "show_tab(4)", "Firewall", show=False),
        Binding("6", "show_tab(5)", "Diagnose", show=False),
        # Priority: the screen's own Tab binding moves focus between widgets.
        Binding("tab", "next_tab(1)", "Next tab", show=False, priority=True),
        Binding("shift+tab", "next_tab(-1)", "Previous tab", show=False, priority=True),
    ]

    def __init__(
        self,
        sampler: Sampler,
        host: HostInfo,
        interval: float = 1.0,
        *,
        autostart: bool = True,
        live: bool = True,
        links: LinksSampler | None = None,
        routes: RoutesSource | None = None,
        processes: ProcessesSampler | None = None,
        cgroups: CgroupsSampler | None = None,
        journal: JournalOpener | None = None,
        firewall: FirewallSampler | None = None,
        conntrack: ConntrackSampler | None = None,
        stack: StackSampler | None = None,
        names: NameOptions | None = None,
        diagnose: DiagnoseSettings | None = None,
    ) -> None:
        super().__init__()
        # Names (`n`): nothing is read or started before the first `n`.
        self.names = Names(names or NameOptions(), lambda: self.post_message(NamesChanged()))
        self._names_timer: Timer | None = None
        self._names_painted = 0.0  # time.monotonic() of the last repaint for names
        self.diagnose_settings = diagnose  # None in a replay: no resolver, no diagnosis
        self.live = live  # False on a recording: never read this machine's /proc for its pids
        self.sampler = sampler
        self.host = host
        self.interval = interval
        self.tracker = ConnectionsTracker(interval)
        self.talkers = TalkersTracker(cgroups=CgroupLookup() if live else None)
        self._held_talkers: TalkersFrame | None = None
        self.feed = ConnectionsFeed()
        self.paused = False
        self.poller: Poller[ConnectionsUpdate | None] = Poller(
            "connections",
            self._sample_in_thread,
            self._publish,
            interval,
            on_error=self._report_error,
        )
        self.links = links
        self.routes = routes
        self.link_tracker = LinkTracker(interval)
        self.links_poller: Poller[LinkFrame] | None = (
            Poller(
                "links",
                self._sample_links_in_thread,
                self._publish_links,
                interval,
                on_error=lambda err: self._report_source_error("links", err),
            )
            if links is not None
            else None
        )
        self._held_links: LinkFrame | None = None  # the latest frame while paused
        self.processes = processes
        self.cgroups = cgroups
        self.cgroup_tracker = CgroupTracker()
        self._last_connections: ConnectionsFrame | None = None  # for the processes thread
        self._last_talkers: TalkersFrame | None = None
        self._processes_shown = False  # the processes are sampled only while their tab is shown
        self._processes_pane: ProcessesPane | None = None  # read by the processes thread
        self.open_journal = journal
        self.stack, self.stack_tracker = stack, StackTracker()
        self._diagnose_shown = False  # the stack counters are read while the tab is shown
        self.stack_poller: Poller[StackFrame | None] | None = (
            Poller(
                "stack",
                self._sample_stack_in_thread,
                self._publish_stack,
                interval,
                on_error=lambda err: self._report_source_error("stack", err),
            )
            if stack is not None
            else None
        )
        self.firewall, self.conntrack = firewall, conntrack
        self.firewall_tracker, self.conntrack_tracker = FirewallTracker(), ConntrackTracker()
        self._firewall_shown = False  # read only while the tab is shown (root tools, 2-100 ms)
        self.firewall_poller: Poller[FirewallUpdated | None] | None = (
            Poller(
                "firewall",
                self._sample_firewall_in_thread,
                self._publish_firewall,
                interval,
                on_error=lambda err: self._report_source_error("firewall", err),
            )
            if firewall is not None or conntrack is not None
            else None
        )
        self.journal: JournalFollowerLike | None = None  # started when the tab is first shown
        self.journal_poller: Poller[JournalAppended | None] | None = None
        self._processes_ticks = 0
        self.processes_poller: Poller[ProcessesUpdated | None] | None = (
            Poller(
                "processes",
                self._sample_processes_in_thread,
                self._publish_processes,
                interval,
                on_error=lambda err: self._report_source_error("processes", err),
            )
            if processes is not None
            else None
        )
        self._autostart = autostart
        self.gc_policy = GcPolicy()

    def compose(self) -> ComposeResult:
        yield StatusLine(self.host, self.interval, id="status")
        with TabbedContent(id="tabs"):
            with TabPane(f"1 {TABS[0][1]}", id=TABS[0][0]):
                yield ConnectionsPane(self.feed, self.host, id="connections")
            with TabPane(f"2 {TABS[1][1]}", id=TABS[1][0]):
                yield InterfacesPane(self.routes, id="interfaces")
            with TabPane(f"3 {TABS[2][1]}", id=TABS[2][0]):
                yield ProcessesPane(id="processes")
            with TabPane(f"4 {TABS[3][1]}", id=TABS[3][0]):
                yield JournalPane(id="journal-pane")
            with TabPane(f"5 {TABS[4][1]}", id=TABS[4][0]):
                yield FirewallPane(id="firewall-pane")
            with TabPane(f"6 {TABS[5][1]}", id=TABS[5][0]):
                yield DiagnosePane(self.diagnose_settings, id="diagnose")
        yield Footer(compact=True, show_command_palette=False)  # Ctrl+P still works (help)

    def on_mount(self) -> None:
        # The tab strip is driven by the number keys and Tab; focus stays in the panes, whose
        # keys the footer shows.
        self.query_one(Tabs).can_focus = False
        self._processes_pane = self.query_one(ProcessesPane)
        for table in self.query(NamedTable):
            table.names = self.names
        self.query_one(ConnectionsPane).names = self.query_one(FirewallPane).names = self.names
        self._focus_tab(TABS[0][0])
        self.sampler.unix = False
        self.gc_policy.start()
        if self._autostart:
            self.poller.start()
            if self.links_poller is not None:
                self.links_poller.start()
            if self.processes_poller is not None:
                self.processes_poller.start()
            if self.firewall_poller is not None:
                self.firewall_poller.start()
            if self.stack_poller is not None:
                self.stack_poller.start()
        if self.links is None:
            self.query_one(InterfacesPane).show_error("not sampled (no links source)")
        if self.processes is None:
            self.query_one(ProcessesPane).show_error("processes are read live only, not replayed")
        if self.stack is None:
            self.query_one(StackPane).show_error("read live only, not replayed")
        if self.firewall is None and self.conntrack is None:
            self.query_one(FirewallPane).show_error("rules are read live only, not replayed")

    def on_unmount(self) -> None:
        self.poller.stop()
        self.sampler.close()
        if self.links_poller is not None and self.links is not None:
            self.links_poller.stop()
            self.links.close()
        if self.routes is not None:
            self.routes.close()
        if self.processes_poller is not None:
            self.processes_poller.stop()
        if self.firewall_poller is not None:
            self.firewall_poller.stop()
        if self.stack_poller is not None:
            self.stack_poller.stop()
        if self.stack is not None:
            self.stack.close()
        for source in (self.firewall, self.conntrack):
            if source is not None:
                source.close()
        self._stop_journal()
        self.names.close()
        self.gc_policy.stop()

    # -- the sampling thread -------------------------------------------------------------------

    def _sample_in_thread(self) -> ConnectionsUpdate | None:
        """Sample, track and build rows: everything but painting, off the event loop."""
        self.feed.release()
        frame = self.tracker.update(self.sampler.sample())
        talkers = self.talkers.update(frame)
        self._last_connections, self._last_talkers = frame, talkers
        self.post_message(TalkersUpdated(talkers))
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
        self._report_source_error("connections", err)

    def _report_source_error(self, source: str, err: BaseException) -> None:
        self.post_message(SourceFailed(source, str(err) or type(err).__name__))

    def _sample_links_in_thread(self) -> LinkFrame:
        assert self.links is not None
        return self.link_tracker.update(self.links.sample())

    def _publish_links(self, frame: LinkFrame) -> None:
        self.post_message(LinksUpdated(frame))

    def _sample_processes_in_thread(self) -> ProcessesUpdated | None:
        """Processes joined with the latest sockets and traffic, and every few ticks the
        cgroups; nothing while the Processes tab is hidden (the CPU % then spans the gap)."""
        if not self._processes_shown or self.processes is None:
            return None
        sample = self.processes.sample(details=True)
        connections, talkers = self._last_connections, self._last_talkers
        frame = ProcessesFrame(
            sample,
            socket_counts(connections.sample) if connections is not None else {},
            process_rates(talkers),
        )
        cgroups = None
        if self.cgroups is not None and self._processes_ticks % CGROUP_EVERY == 0:
            groups = self.cgroups.read_all()
            cgroups = self.cgroup_tracker.update(groups, sample.taken_at, frame)
        self._processes_ticks += 1
        shape = self._processes_pane.shape if self._processes_pane is not None else None
        rows = None
        if shape is not None:
            rows = frame_rows(frame, everyone=shape[0], tree=shape[1])
        return ProcessesUpdated(frame, cgroups, rows, shape)

    # -- the journal: a follower subprocess, read in batches by its own thread -----------------

    def start_journal(self, journal_filter: JournalFilter) -> None:
        """(Re)start following with ``journal_filter``'s journalctl terms."""
        pane = self.query_one(JournalPane)
        self._stop_journal()
        if self.open_journal is None:
            pane.show_error("no journal source here (a replay)")
            return
        try:
            follower = self.open_journal(journal_filter)
            follower.start()
        except Exception as err:  # no journalctl, no syslog file: said in the pane
            pane.show_error(str(err) or type(err).__name__)
            return
        self.journal = follower
        pane.restart(follower.status)
        self.journal_poller = Poller(
            "journal",
            lambda: self._read_journal(follower),
            self._publish_journal,
            0.05,  # the read itself waits up to JOURNAL_WAIT for entries
            on_error=lambda err: self._report_source_error("journal", err),
        )
        self.journal_poller.start()

    def _read_journal(self, follower: JournalFollowerLike) -> JournalAppended | None:
        entries = follower.read_batch(JOURNAL_WAIT)
        if follower is not self.journal:
            return None  # replaced while we waited: its entries belong to the old filter
        return JournalAppended(entries, follower.status)

    def _publish_journal(self, update: JournalAppended | None) -> None:
        if update is not None:
            self.post_message(update)

    def _stop_journal(self) -> None:
        poller, follower = self.journal_poller, self.journal
        self.journal_poller, self.journal = None, None
        if follower is not None:
            follower.stop()
        if poller is not None:
            poller.stop(timeout=0.5)

    @on(JournalAppended)
    def _journal_appended(self, message: JournalAppended) -> None:
        if self.paused:
            return  # the follower keeps its place; entries of a paused view are not shown
        try:
            pane = self.query_one(JournalPane)
            pane.append(message.entries, message.status)
        except NoMatches:  # a batch that arrived while the app was closing
            pass

    @on(JournalPane.FilterChanged)
    def _journal_filter_changed(self, message: JournalPane.FilterChanged) -> None:
        self.start_journal(message.filter)

    @on(JournalPane.ShowEntry)
    def _journal_entry(self, message: JournalPane.ShowEntry) -> None:
        self.push_screen(JournalEntryScreen(message.entry))

    def show_journal_for(self, text: str) -> None:
        """The Process screen's journal key: back to the main screen, the Journal tab
        filtered to ``text`` (``unit:nginx.service`` or ``pid:1234``)."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.action_show_tab(3)
        self.query_one(JournalPane).set_filter_text(text)

    # -- the stack counters (Diagnose tab) -----------------------------------------------------

    def _sample_stack_in_thread(self) -> StackFrame | None:
        if not self._diagnose_shown or self.stack is None:
            return None
        return self.stack_tracker.update(self.stack.sample())

    def _publish_stack(self, frame: StackFrame | None) -> None:
        if frame is not None:
            self.post_message(StackUpdated(frame))

    @on(StackUpdated)
    @survives_closing
    def _apply_stack(self, message: StackUpdated) -> None:
        if not self.paused:
            self.query_one(StackPane).apply(message.frame)

    # -- the firewall and conntrack ----------------------------------------------------------

    def _sample_firewall_in_thread(self) -> FirewallUpdated | None:
        if not self._firewall_shown:
            return None
        frame = ct = None
        ct_error = None
        if self.firewall is not None:
            frame = self.firewall_tracker.update(self.firewall.sample())
        if self.conntrack is not None:
            try:
                ct = self.conntrack_tracker.update(self.conntrack.sample())
            except Exception as err:  # conntrack alone failing must not hide the rules
                ct_error = str(err) or type(err).__name__
        return FirewallUpdated(frame, ct, ct_error)

    def _publish_firewall(self, update: FirewallUpdated | None) -> None:
        if update is not None:
            self.post_message(update)

    @on(FirewallUpdated)
    @survives_closing
    def _apply_firewall(self, message: FirewallUpdated) -> None:
        if self.paused:
            return
        pane = self.query_one(FirewallPane)
        frame = message.frame
        if frame is not None:
            rates = {k: (r.packets_per_s, r.bytes_per_s) for k, r in frame.rates.items()}
            pane.apply(frame.sample, rates, frame.moved)
        if message.conntrack is not None or message.conntrack_error is not None:
            pane.show_conntrack(message.conntrack, message.conntrack_error)

    def show_firewall_for(self, ports: Sequence[int]) -> None:
        """The Process screen's rules key: the Firewall tab filtered to ``ports``."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.action_show_tab(4)
        wanted = ",".join(str(port) for port in sorted(set(ports)))
        self.query_one(FirewallPane).set_filter_text(f"port:{wanted}" if wanted else "")

    def _publish_processes(self, update: ProcessesUpdated | None) -> None:
        if update is not None:
            self.post_message(update)

    def sample_now(self) -> None:
        """Run one tick of every source in the calling thread (tests, replay) and deliver it."""
        self.poller.run_once()
        if self.links_poller is not None:
            self.links_poller.run_once()
        if self.processes_poller is not None:
            self.processes_poller.run_once()

    # -- messages ------------------------------------------------------------------------------

    @on(ConnectionsUpdated)
    @survives_closing
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
        for screen in self.screen_stack:  # a detail view may sit on a Process screen
            if isinstance(screen, ProcessScreen | SocketDetailScreen):
                screen.apply_update(update)

    @on(TalkersUpdated)
    @survives_closing
    def _apply_talkers(self, message: TalkersUpdated) -> None:
        if self.paused:
            self._held_talkers = message.frame
            return
        self.query_one(InterfacesPane).apply_talkers(message.frame)

    @on(TalkersView.Chosen)
    def _talker_chosen(self, message: TalkersView.Chosen) -> None:
        """Drill down from a ranking: a process to its Process screen, a host or port to the
        Connections tab filtered to its sockets."""
        talker = message.talker
        if message.grouping == "processes":
            if talker.process is not None:
                trail = ("Interfaces", "processes")
                process = talker.process
                self.post_message(ConnectionsPane.OpenProcess(process.pid, trail, process.comm))
            else:
                self.notify(visible(talker.label), title="no process", severity="warning")
            return
        query = connections_filter(message.grouping, talker.key)
        if query is not None:
            self.action_show_tab(0)
            self.query_one(ConnectionsPane).show_filtered(query)

    @on(ProcessesUpdated)
    @survives_closing
    def _apply_processes(self, message: ProcessesUpdated) -> None:
        if not self.paused:
            pane = self.query_one(ProcessesPane)
            pane.apply_frame(message.frame, message.cgroups, message.rows, message.shape)

    @on(ProcessesPane.OpenProcess)
    def _open_process_from_list(self, message: ProcessesPane.OpenProcess) -> None:
        proc = message.proc
        self.post_message(ConnectionsPane.OpenProcess(proc.pid, ("Processes",), proc.name))

    @on(LinksUpdated)
    @survives_closing
    def _apply_links(self, message: LinksUpdated) -> None:
        if self.paused:
            self._held_links = message.frame  # shown on resume; the history goes on meanwhile
            return
        self.query_one(InterfacesPane).apply_frame(message.frame)

    @on(SourceFailed)
    @survives_closing
    def _failed(self, message: SourceFailed) -> None:
        if message.source == "links":
            self.query_one(InterfacesPane).show_error(message.error)
            return
        if message.source == "processes":
            self.query_one(ProcessesPane).show_error(message.error)
            return
        if message.source == "journal":
            self.query_one(JournalPane).show_error(message.error)
            return
        if message.source == "firewall":
            self.query_one(FirewallPane).show_error(message.error)
            return
        if message.source == "stack":
            self.query_one(StackPane).show_error(message.error)
            return
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
        self.push_screen(
            ProcessScreen(
                message.pid, pane.view, live=self.live, trail=message.trail, name=message.name
            )
        )

    @on(ConnectionsPane.OpenDetail)
    def _open_detail(self, message: ConnectionsPane.OpenDetail) -> None:
        # Socket memory is read only for the socket a detail view shows (the sampler's memory_of).
        self._set_socket_memory(message.entry.sock.cookie or None)
        self.push_screen(
            SocketDetailScreen(message.entry, message.fds, live=self.live),
            callback=lambda _: self._set_socket_memory(None),
        )

    def _set_socket_memory(self, cookie: int | None) -> None:
        if hasattr(self.sampler, "memory_of") and self.sampler.memory_of != cookie:
            self.sampler.memory_of = cookie
            self.poller.poke()

    @on(ConnectionsPane.Diagnose)
    def _diagnose(self, message: ConnectionsPane.Diagnose) -> None:
        """``d`` on a connection: the Diagnose tab's host:port checklist for it."""
        self.action_show_tab(TAB_INDEX["tab-diagnose"])
        if not self.query_one(DiagnosePane).diagnose(message.target):
            self.notify("a recording cannot be diagnosed: run netdash live", severity="warning")

    @on(ConnectionsPane.ChooseOwner)
    def _choose_owner(self, message: ConnectionsPane.ChooseOwner) -> None:
        entry = message.entry

        def chosen(pid: int | None) -> None:
            if pid is not None:
                name = next((o.comm for o in entry.owners if o.pid == pid), None)
                self.post_message(ConnectionsPane.OpenProcess(pid, socket_trail(entry), name))

        self.push_screen(OwnerChooser(message.entry, message.fds), chosen)

    # -- actions -------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.feed.paused = self.paused  # sampling and history go on; the view holds still
        status = self.query_one(StatusLine)
        status.paused = self.paused
        status.redraw()
        if not self.paused:
            self.poller.poke()
            held, self._held_links = self._held_links, None
            if held is not None:
                self.query_one(InterfacesPane).apply_frame(held)
            talkers, self._held_talkers = self._held_talkers, None
            if talkers is not None:
                self.query_one(InterfacesPane).apply_talkers(talkers)

    def action_toggle_names(self) -> None:
        """``n``: names for addresses and ports, or numbers again (the default, like ss -n).
        The first time, the resolver is built in a worker thread: files are read there."""
        names = self.names
        if names.enabled:
            names.stop()
        elif names.start():
            self.run_worker(self._load_names, thread=True, group="names", exit_on_error=False)
        self._repaint_names()

    def _load_names(self) -> None:
        try:
            self.names.load()
        finally:
            self.post_message(NamesChanged(loaded=True))

    @on(NamesChanged)
    @survives_closing
    def _names_changed(self, message: NamesChanged) -> None:
        """Repaint for names at most every REPAINT_EVERY seconds: a burst of answers is one."""
        names = self.names
        if message.loaded and names.enabled:
            said = names.error or f"via {names.source}"
            severity = "warning" if names.error else "information"
            self.notify(said, title="names", severity=severity, markup=False)
        if self._names_timer is not None:
            return
        wait = self._names_painted + REPAINT_EVERY - time.monotonic()
        if wait > 0 and not message.loaded:
            self._names_timer = self.set_timer(wait, self._repaint_names)
        else:
            self._repaint_names()

    def _repaint_names(self) -> None:
        """Draw the named tables and views again (they ask for names of what they draw)."""
        if self._names_timer is not None:
            self._names_timer.stop()
        self._names_timer = None
        self._names_painted = time.monotonic()
        self.names.repainting()
        self.query_one(ConnectionsPane).names_changed()
        for view in self.query(TalkersView):
            view.table.names_changed()
        self.query_one(FirewallPane).names_changed()
        status = self.query_one(StatusLine)
        said = names_label(self.names)  # in full in the Connections status line
        status.names = None if said is None else ("names", said[1])
        status.redraw()

    def action_show_tab(self, index: int) -> None:
        """Number keys: straight to a tab, its table focused (the keys shown are its keys)."""
        tab_id = TABS[index][0]
        self.query_one(TabbedContent).active = tab_id
        self._focus_tab(tab_id)

    def action_next_tab(self, step: int) -> None:
        ids = [tab_id for tab_id, _ in TABS]
        current = self.query_one(TabbedContent).active
        index = ids.index(current) if current in ids else 0
        self.action_show_tab((index + step) % len(ids))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab and the number keys belong to the main screen: a dialog or the Process screen
        # keeps its own Tab (focus) and digits.
        if action in ("next_tab", "show_tab"):
            return self.screen is self.screen_stack[0] or None
        return True

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id is not None:
            self._focus_tab(event.pane.id)
        if event.pane.id == "tab-interfaces":
            self.query_one(InterfacesPane).shown()
        self._processes_shown = event.pane.id == "tab-processes"
        self._firewall_shown = event.pane.id == "tab-firewall"
        self._diagnose_shown = event.pane.id == "tab-diagnose"
        if self._diagnose_shown and self.stack_poller is not None:
            self.stack_poller.poke()
        if self._firewall_shown and self.firewall_poller is not None:
            self.firewall_poller.poke()
        if event.pane.id == "tab-journal" and self.journal is None and self._autostart:
            self.start_journal(self.query_one(JournalPane).filter)
        if self._processes_shown and self.processes_poller is not None:
            self.processes_poller.poke()

    def _focus_tab(self, tab_id: str) -> None:
        if tab_id == "tab-diagnose":
            self.query_one(DiagnosePane).focus_view()
            return
        pane = self.query_one(f"#{tab_id}", TabPane)
        tables = pane.query(VirtualTable)
        for table in tables:
            if table.display:
                table.focus()
                return

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()


def build_live_app(args: argparse.Namespace) -> NetdashApp:
    from netdash.cli import netns_target, open_sampler
    from netdash.sources.cgroups import CgroupReader
    from netdash.sources.conntrack import ConntrackReader
    from netdash.sources.firewall import FirewallReader
    from netdash.sources.host import read_host_info
    from netdash.sources.links import LinkReader
    from netdash.sources.processes import ProcessReader
    from netdash.sources.routes import RouteReader
    from netdash.sources.stack import StackReader

    target = netns_target(args)
    sampler = open_sampler(args)
    return NetdashApp(
        sampler,
        read_host_info(target.label),
        args.interval,
        links=LinkReader(netns=target),
        routes=RouteReader(netns=target),
        processes=ProcessReader(),
        cgroups=CgroupReader(),
        journal=journal_opener(args),
        firewall=FirewallReader(netns=target),
        conntrack=ConntrackReader(netns=target),
        stack=StackReader(netns=target),
        names=NameOptions.from_args(args),
        diagnose=diagnose_settings(args, target),
    )


def diagnose_settings(args: argparse.Namespace, target: NetnsTarget) -> DiagnoseSettings:
    """The resolver and reach views' settings, from the same options as names (``n``)."""
    from netdash.diagnose import DiagnoseOptions
    from netdash.sources.dnsconfig import resolver_config

    resolv_conf = getattr(args, "resolv_conf", None) or Path("/etc/resolv.conf")
    nameservers = tuple(getattr(args, "nameserver", None) or ()) or None
    return DiagnoseSettings(
        resolver=resolver_config(resolv_conf),
        nameservers=nameservers,
        netns=None if target.is_current else target.label,
        root_hints=getattr(args, "root_hints", None),
        options=DiagnoseOptions(nameservers=nameservers, resolv_conf=resolv_conf, netns=target),
    )


def journal_opener(args: argparse.Namespace) -> JournalOpener:
    """Followers for the journal the command line names (system, ``--journal-dir``,
    ``--journal-file``, ``--journal-namespace``, or ``--syslog-file``), with a filter's
    journalctl terms."""
    import dataclasses

    from netdash.dump_journal import query_from_args
    from netdash.sources.journal import open_follower

    base = query_from_args(args, lines=1000)

    def open_journal(journal_filter: JournalFilter) -> JournalFollowerLike:
        query = dataclasses.replace(
            base,
            units=journal_filter.units,
            priority=journal_filter.priority,
            since=journal_filter.since,
            pids=journal_filter.pids,
            identifiers=journal_filter.identifiers,
        )
        return open_follower(query, syslog_file=getattr(args, "syslog_file", None))

    return open_journal


def build_replay_app(
    path: Path,
    interval: float = 1.0,
    *,
    autostart: bool = True,
    names: NameOptions | None = None,
) -> NetdashApp:
    """The real app on a recording: for `--replay`, the UI tests and the screenshots."""
    from netdash.record import ReplaySampler, read_recording

    recording = read_recording(path)
    sampler = ReplaySampler(recording.samples, keep_intervals=True)
    links = (
        ReplayLinks(ReplaySampler(recording.links, keep_intervals=True).sample)
        if recording.links
        else None
    )
    return NetdashApp(
        ReplayAdapter(sampler.sample),
        recording.host,
        interval,
        autostart=autostart,
        live=False,
        links=links,
        routes=recording.routing,
        names=names,
    )


class ReplayAdapter:
    """A recording has what it has: the UNIX toggle filters, it cannot add sockets."""

    def __init__(self, sample: Callable[[], SocketSample]) -> None:
        self.sample = sample
        self.unix = True

    def close(self) -> None:
        pass


class ReplayLinks:
    """Recorded samples of the interfaces, played back one per tick."""

    def __init__(self, sample: Callable[[], LinkSample]) -> None:
        self.sample = sample

    def close(self) -> None:
        pass


def run_app(args: argparse.Namespace) -> int:
    if args.replay is not None:
        app = build_replay_app(args.replay, args.interval, names=NameOptions.from_args(args))
    else:
        app = build_live_app(args)
    app.run()
    return app.return_code or 0
