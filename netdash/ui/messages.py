"""Messages from the sampling threads to the UI (`post_message` is thread-safe)."""

from __future__ import annotations

from textual.message import Message

from netdash.engine_conntrack import ConntrackFrame
from netdash.engine_firewall import FirewallFrame
from netdash.engine_links import LinkFrame
from netdash.engine_procs import CgroupRow, ProcessesFrame
from netdash.model import JournalEntry, ProcessInfo
from netdash.sources.stack import StackFrame
from netdash.talkers import TalkersFrame
from netdash.ui.panes.connection_rows import ConnectionsUpdate
from netdash.ui.tableview import Row


class ConnectionsUpdated(Message):
    """A new socket sample, already turned into row changes by the sampling thread."""

    def __init__(self, update: ConnectionsUpdate) -> None:
        super().__init__()
        self.update = update


class LinksUpdated(Message):
    """A new sample of the interfaces with its rates (built in the links thread)."""

    def __init__(self, frame: LinkFrame) -> None:
        super().__init__()
        self.frame = frame


class TalkersUpdated(Message):
    """The talkers rankings of the latest socket sample (built in the sampling thread)."""

    def __init__(self, frame: TalkersFrame) -> None:
        super().__init__()
        self.frame = frame


class ProcessesUpdated(Message):
    """A sample of the processes joined with sockets and traffic, and the cgroups if read."""

    def __init__(
        self,
        frame: ProcessesFrame,
        cgroups: list[CgroupRow] | None,
        rows: list[Row] | None = None,
        shape: tuple[bool, bool] | None = None,
    ) -> None:
        super().__init__()
        self.frame = frame
        self.cgroups = cgroups
        self.rows = rows  # built in the sampling thread for the pane's ``shape`` then
        self.shape = shape


class JournalAppended(Message):
    """A batch of journal entries (possibly empty) and the follower's status in words."""

    def __init__(self, entries: list[JournalEntry], status: str) -> None:
        super().__init__()
        self.entries = entries
        self.status = status


class FirewallUpdated(Message):
    """A read of the rules (with rates) and of conntrack; either may be missing."""

    def __init__(
        self,
        frame: FirewallFrame | None,
        conntrack: ConntrackFrame | None,
        conntrack_error: str | None = None,
    ) -> None:
        super().__init__()
        self.frame = frame
        self.conntrack = conntrack
        self.conntrack_error = conntrack_error


class StackUpdated(Message):
    """A sample of the TCP/IP stack counters with their rates."""

    def __init__(self, frame: StackFrame) -> None:
        super().__init__()
        self.frame = frame


class NamesChanged(Message):
    """Names arrived (from the reverse resolver's threads) or their sources were read
    (``loaded``): the named tables repaint. One queued is enough: later ones fold into it."""

    def __init__(self, loaded: bool = False) -> None:
        super().__init__()
        self.loaded = loaded

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, NamesChanged) and (self.loaded or not message.loaded)


class SourceFailed(Message):
    """A source raised; the pane says so and keeps its last good data."""

    def __init__(self, source: str, error: str) -> None:
        super().__init__()
        self.source = source
        self.error = error


class ProcessSampled(Message):
    def __init__(self, info: ProcessInfo | None, error: str | None = None) -> None:
        super().__init__()
        self.info = info
        self.error = error
