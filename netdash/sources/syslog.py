"""The classic syslog file, when a machine has no journal (no Textual).

Tails ``/var/log/syslog``, ``/var/log/messages`` or a given file from its last lines, follows
appends, rotation (the path now names another inode: the old file is read to its end first)
and truncation (copytruncate: the size went below where we were). Lines become
:class:`JournalEntry` records: the traditional format (``Nov 23 10:00:01 host ident[pid]: msg``,
local time, no year), the RFC 3339 timestamps rsyslog writes on Debian 12
(``2026-11-23T10:00:01.123456+01:00 host ident[pid]: msg``) and RFC 5424
(``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG``). Files carry no priority unless a
``<PRI>`` prefix says it, and no unit: the priority is then None.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import datetime
from pathlib import Path

from netdash.model import JournalEntry
from netdash.sources.journal import EntryQueue, JournalQuery

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PRI = r"(?:<(?P<pri>\d{1,3})>)?"
_CLASSIC = re.compile(
    _PRI + r"(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d) "
    r"(?P<host>\S+) (?P<rest>.*)",
    re.DOTALL,
)
_ISO = re.compile(
    _PRI + r"(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?P<host>\S+) (?P<rest>.*)",
    re.DOTALL,
)
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) \S+ (?P<rest>.*)",
    re.DOTALL,
)
_TAG = re.compile(r"(?P<ident>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)", re.DOTALL)
_FRACTION = re.compile(r"\.(\d+)")
#: Bytes read from the end of the file per step while looking for the last lines.
TAIL_BLOCK = 1 << 16


def _iso_usec(stamp: str) -> int | None:
    """RFC 3339 to epoch microseconds; fractions of any length (rsyslog may write 6 digits,
    others 3 or 9) cut to microseconds. A stamp without an offset is local time."""
    stamp = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], stamp, count=1)
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _classic_usec(mon: str, day: str, hms: str, now: float) -> int | None:
    """The traditional stamp has no year and is local time: this year, unless that lands more
    than a day in the future (a December line read in January)."""
    if mon not in MONTHS:
        return None
    hour, minute, second = (int(part) for part in hms.split(":"))
    year = time.localtime(now).tm_year
    for guess in (year, year - 1):
        try:
            epoch = time.mktime((guess, MONTHS.index(mon) + 1, int(day), hour, minute, second,
                                 0, 0, -1))  # fmt: skip
        except (OverflowError, ValueError):
            return None
        if epoch <= now + 86400:
            return int(epoch) * 1_000_000
    return None


def _severity(pri: str | None) -> int | None:
    return int(pri) & 7 if pri is not None else None


def parse_syslog_line(line: str, default_usec: int, now: float | None = None) -> JournalEntry:
    """One syslog line; a line in no known format is kept whole as the message, at
    ``default_usec`` (the previous line's time), so nothing is dropped."""
    now = time.time() if now is None else now
    if (match := _RFC5424.match(line)) is not None:
        rest = _strip_structured_data(match["rest"]).removeprefix("\ufeff")
        procid = match["procid"]
        return JournalEntry(
            realtime_usec=_iso_usec(match["ts"]) or default_usec,
            message=rest,
            priority=_severity(match["pri"]),
            identifier=None if match["app"] == "-" else match["app"],
            pid=int(procid) if procid.isdigit() else None,
            hostname=None if match["host"] == "-" else match["host"],
        )
    usec: int | None = None
    if (match := _ISO.match(line)) is not None:
        usec = _iso_usec(match["ts"])
    elif (match := _CLASSIC.match(line)) is not None:
        usec = _classic_usec(match["mon"], match["day"], match["hms"], now)
    if match is None or usec is None:
        return JournalEntry(realtime_usec=default_usec, message=line)
    tag = _TAG.fullmatch(match["rest"])
    return JournalEntry(
        realtime_usec=usec,
        message=tag["msg"] if tag else match["rest"],
        priority=_severity(match["pri"]),
        identifier=tag["ident"] if tag else None,
        pid=int(tag["pid"]) if tag and tag["pid"] else None,
        hostname=match["host"],
    )


def _strip_structured_data(rest: str) -> str:
    """RFC 5424 STRUCTURED-DATA is ``-`` or ``[id k="v"]...``; a ``]`` inside a quoted value
    ends nothing (writers should escape it as ``\\]``, not all do)."""
    if rest.startswith("- ") or rest == "-":
        return rest[2:]
    index = 0
    while index < len(rest) and rest[index] == "[":
        index, quoted = index + 1, False
        while index < len(rest) and (quoted or rest[index] != "]"):
            if rest[index] == "\\":
                index += 1
            elif rest[index] == '"':
                quoted = not quoted
            index += 1
        index += 1
    return rest[index:].removeprefix(" ")


def tail_lines(fd: int, count: int, end: int) -> tuple[list[bytes], int]:
    """The last ``count`` complete lines before offset ``end`` (read backwards in blocks), and
    the offset just after the last of them (a final line without its newline is not complete:
    it is read again, whole, once its newline arrives)."""
    data, position = b"", end
    while position > 0 and data.count(b"\n") <= count:
        step = min(TAIL_BLOCK, position)
        position -= step
        data = os.pread(fd, step, position) + data
    complete = position + data.rfind(b"\n") + 1 if b"\n" in data else position
    lines = data.split(b"\n")[:-1]
    return (lines[-count:] if count > 0 else []), complete


class SyslogFollower:
    """Tails a syslog file in a background thread, with the interface of
    :class:`netdash.sources.journal.JournalFollower`. Identifier and pid filters of ``query``
    apply; the file knows no units, and priorities only from a ``<PRI>`` prefix, so the unit,
    priority and since filters are not applied here (the status says so)."""

    def __init__(
        self,
        path: str,
        query: JournalQuery | None = None,
        *,
        description: str | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self.path = path
        self.query = query or JournalQuery()
        self.poll_interval = poll_interval
        self._queue = EntryQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._base = f"syslog {description or path}"
        unapplied = self.query.units or self.query.priority is not None or self.query.since
        if unapplied:
            self._base += " (unit, priority and time filters need the journal)"
        self._status = self._base
        self._fd = -1
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""
        self._last_usec = 0

    @property
    def status(self) -> str:
        return self._status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syslog-follower", daemon=True)
        self._thread.start()

    def read_batch(self, timeout: float) -> list[JournalEntry]:
        return self._queue.get(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._queue.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def read_tail(self) -> list[JournalEntry]:
        """The last ``query.lines`` lines that pass the filters (``dump journal`` on syslog)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            self._last_usec = int(info.st_mtime * 1_000_000)
            return self._tail_entries(fd, info.st_size)[0]
        finally:
            os.close(fd)

    def _tail_entries(self, fd: int, size: int) -> tuple[list[JournalEntry], int]:
        """The last ``query.lines`` entries that pass the filters, reading further back (4x
        each time) while filters drop lines; and where the complete lines end."""
        want, count = self.query.lines, self.query.lines
        while True:
            lines, end = tail_lines(fd, count, size)
            entries = self._entries(lines)
            if want <= 0 or len(entries) >= want or len(lines) < count:
                return (entries[-want:] if want > 0 else []), end
            count *= 4

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open(tail=True)
            while not self._stopping.wait(self.poll_interval):
                self._poll()
        except OSError as err:
            self._status = f"{self._base}: cannot read it: {err.strerror}"
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _open(self, tail: bool) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        info = os.fstat(fd)
        self._fd, self._inode, self._partial = fd, (info.st_dev, info.st_ino), b""
        self._last_usec = self._last_usec or int(info.st_mtime * 1_000_000)
        self._offset = 0
        if tail:
            entries, self._offset = self._tail_entries(fd, info.st_size)
            self._queue.put(entries)
        self._status = self._base

    def _poll(self) -> None:
        """New bytes of the open file; then, if the path names another file (rotated) or the
        file shrank (truncated), switch or rewind."""
        self._read_new()
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._status = f"{self._base}: rotated away, waiting for the new file"
            return
        if (info.st_dev, info.st_ino) != self._inode:
            self._flush_partial()
            os.close(self._fd)
            self._fd = -1
            self._open(tail=False)
            self._read_new()
        elif info.st_size < self._offset:
            self._offset, self._partial = 0, b""
            self._read_new()

    def _read_new(self) -> None:
        while not self._stopping.is_set():
            data = os.pread(self._fd, 1 << 18, self._offset)
            if not data:
                return
            self._offset += len(data)
            *lines, self._partial = (self._partial + data).split(b"\n")
            if lines and not self._queue.put(self._entries(lines)):
                return

    def _flush_partial(self) -> None:
        if self._partial:
            self._queue.put(self._entries([self._partial]))
            self._partial = b""

    def _entries(self, lines: list[bytes]) -> list[JournalEntry]:
        now, entries = time.time(), []
        identifiers, pids = self.query.identifiers, self.query.pids
        for raw in lines:
            text = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not text:
                continue
            entry = parse_syslog_line(text, self._last_usec, now)
            self._last_usec = entry.realtime_usec
            if identifiers and entry.identifier not in identifiers:
                continue
            if pids and entry.pid not in pids:
                continue
            entries.append(entry)
        return entries


def read_syslog_tail(path: str | Path, query: JournalQuery) -> list[JournalEntry]:
    """The last ``query.lines`` lines of a syslog file as entries, oldest first."""
    return SyslogFollower(str(path), query).read_tail()
