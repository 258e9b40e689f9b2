"""Journal entries as table rows, and the Journal tab's filter language (no Textual).

``/`` takes the words a ``journalctl`` user already knows, in the Connections pane's
``field:value`` form::

    unit:nginx.service  unit:ssh        (-u; repeat for several units)
    prio:err  p:3                       (-p: that level and above, names or numbers)
    since:"10 min ago"  since:09:00     (--since, journalctl's syntax)
    pid:1234  id:sshd                   (_PID=, -t)
    timeout  "connection refused"       (text anywhere in the message, highlighted)
    re:time(d)?out                      (a regular expression, highlighted)

Field terms go to journalctl (a new query restarts the follower); text terms filter the buffer
and are highlighted in the message column.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from netdash.model import PRIORITY_NAMES, JournalEntry
from netdash.query import QueryError
from netdash.textsafe import visible
from netdash.ui.tableview import Column

COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", width=12, min_width=8, priority=0),
    Column("priority", "Prio", width=7, min_width=4, priority=1),
    Column("source", "Unit / identifier", width=22, min_width=10, priority=0),
    Column("pid", "PID", width=7, align="right", priority=2),
    Column("message", "Message", width=60, min_width=20, priority=0, flex=True),
)
MESSAGE = 4

PRIORITY_STYLES: tuple[str | None, ...] = (
    "bold white on red",  # emerg
    "bold white on red",  # alert
    "bold red",  # crit
    "red",  # err
    "yellow",  # warning
    "bold",  # notice
    None,  # info
    "dim",  # debug
)


def parse_priority(text: str) -> int:
    """``err``, ``3``, ``warning`` … as journalctl's ``-p`` takes them."""
    from netdash.sources.journal import parse_priority as journal_priority

    try:
        return journal_priority(text)
    except ValueError:
        names = ", ".join(PRIORITY_NAMES)
        raise QueryError(f"prio:{text}: a priority is 0-7 or one of {names}") from None


@dataclass(frozen=True)
class JournalFilter:
    """What ``/`` asked for: journalctl's part and the buffer's part."""

    text: str = ""
    units: tuple[str, ...] = ()
    priority: int | None = None
    since: str | None = None
    pids: tuple[int, ...] = ()
    identifiers: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = field(default=None, compare=False)

    @property
    def source_terms(self) -> tuple[object, ...]:
        """The part journalctl applies: a change restarts the follower."""
        return (self.units, self.priority, self.since, self.pids, self.identifiers)


def compile_journal_filter(text: str) -> JournalFilter:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""  # a backslash belongs to the regular expression, not to the quoting
    try:
        words = list(lexer)
    except ValueError as err:
        raise QueryError(f"unbalanced quote: {err}") from err
    units: list[str] = []
    pids: list[int] = []
    identifiers: list[str] = []
    priority: int | None = None
    since: str | None = None
    needles: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        key = key.lower()
        if sep and key in ("unit", "u") and value:
            units.append(value)
        elif sep and key in ("prio", "p", "priority") and value:
            priority = parse_priority(value)
        elif sep and key == "since" and value:
            since = value
        elif sep and key == "pid" and value:
            if not value.isdigit():
                raise QueryError(f"pid:{value}: a pid is a number")
            pids.append(int(value))
        elif sep and key in ("id", "identifier", "t") and value:
            identifiers.append(value)
        elif sep and key == "re" and value:
            try:
                re.compile(value)
            except re.error as err:
                raise QueryError(f"re:{value}: {err}") from err
            needles.append(value)
        else:
            needles.append(re.escape(word))
    pattern = re.compile("|".join(f"(?:{n})" for n in needles), re.IGNORECASE) if needles else None
    return JournalFilter(
        text, tuple(units), priority, since, tuple(pids), tuple(identifiers), pattern
    )


def clock_label(usec: int, today: float) -> str:
    """``10:04:05.123`` today, ``Nov 22 10:04`` before: what a reader needs to place it."""
    seconds = usec / 1e6
    if seconds >= today:
        return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{usec // 1000 % 1000:03d}"
    return time.strftime("%b %d %H:%M", time.localtime(seconds))


def start_of_today() -> float:
    now = time.localtime()
    return time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1))


class JournalRow:
    """One entry as a row; cells built when first painted (a burst brings thousands)."""

    __slots__ = ("_cells", "entry", "highlight", "key", "today")

    born = 0.0  # entries are not "new rows": the journal is all new

    def __init__(
        self, key: int, entry: JournalEntry, today: float, pattern: re.Pattern[str] | None
    ) -> None:
        self.key = key
        self.entry = entry
        self.today = today
        self.highlight = (MESSAGE, pattern) if pattern is not None else None
        self._cells: tuple[str, ...] | None = None

    @property
    def data(self) -> JournalEntry:
        return self.entry

    @property
    def cells(self) -> tuple[str, ...]:
        cells = self._cells
        if cells is None:
            entry = self.entry
            source = entry.unit or entry.identifier or entry.comm or ""
            cells = self._cells = (
                clock_label(entry.realtime_usec, self.today),
                entry.priority_name or "",
                visible(source),
                "" if entry.pid is None else str(entry.pid),
                visible(entry.message.replace("\n", " ⏎ ")),
            )
        return cells

    @property
    def styles(self) -> tuple[str | None, ...] | None:
        priority = self.entry.priority
        if priority is None:
            return None
        style = PRIORITY_STYLES[priority] if 0 <= priority < 8 else None
        if style is None:
            return None
        return (None, style, None, None, style if priority <= 3 else None)

    @property
    def search_text(self) -> str:
        return self.entry.message


def matches(row: JournalRow, pattern: re.Pattern[str] | None) -> bool:
    return pattern is None or pattern.search(row.entry.message) is not None


def priority_counts(entries: Iterable[JournalEntry], since_usec: int = 0) -> list[int]:
    """Entries per priority (index 0-7, and 8 for none) at or after ``since_usec``."""
    counts = [0] * 9
    for entry in entries:
        if entry.realtime_usec >= since_usec:
            counts[entry.priority if entry.priority is not None else 8] += 1
    return counts
