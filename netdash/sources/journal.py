"""The journal, through a ``journalctl -o json --all`` subprocess (no Textual, never a shell).

Why a subprocess: it works on every systemd with no compiler (LAB.md recipe 3), copes with
rotation, journald restarts, namespaces and the ``systemd-journal`` group hint, and reads
directories and files of journal files (``-D``/``--file``) for post-mortems. ``--all`` matters:
without it any field over 4,096 bytes comes back as ``null``.

Two journalctl quirks shape :class:`JournalFollower`:

- ``journalctl -n N --since S`` prints the *first* N entries after S, so history is read with
  ``--reverse -n N`` (newest first, stopping at S) and turned around here.
- systemd 252 skips the first new matching entry when it follows from the tail with a match that
  has no history yet (``-f -n 0 -t TAG``; LAB.md). So the follower never seeks the tail: it
  reads the history in its own run, then follows with ``--after-cursor`` the last entry it
  read, or, when there was none, ``--since @T`` (T taken before the history run), both of
  which seek by position, not from the tail. The same cursor resumes a restarted follower, so
  nothing is lost or shown twice.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from netdash.model import PRIORITY_NAMES, JournalEntry
from netdash.sources.errors import PermissionNeeded, SourceError, SourceUnavailable

#: Entries one :meth:`JournalFollower.read_batch` hands over at most.
BATCH_MAX = 5_000
#: Entries queued before the reader stops reading the pipe (journalctl then waits: the journal
#: files keep everything, so a slow consumer loses nothing and memory stays bounded).
QUEUE_MAX = 100_000
#: Restart delays after the follower exits: 0.5 s doubling to 10 s.
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
#: A run that lasted this long resets the backoff.
BACKOFF_RESET_AFTER = 10.0
SYSLOG_FILES = ("/var/log/syslog", "/var/log/messages")


@dataclass(frozen=True, slots=True)
class JournalQuery:
    """What to read and from where; every filter is applied by journalctl.

    Filters of different kinds are ANDed, several values of one kind ORed (journalctl's own
    rule). ``source``: ``journal_dir`` (``-D``), ``journal_file`` (``--file``), ``namespace``
    (``--namespace``) or, with none of them, the system journal.
    """

    units: tuple[str, ...] = ()
    priority: int | None = None  # that level and above (more severe), like -p
    since: str | None = None  # journalctl syntax: "10 min ago", "2026-11-23 10:00", "@epoch"
    pids: tuple[int, ...] = ()
    identifiers: tuple[str, ...] = ()
    lines: int = 1000  # history entries to start with
    journal_dir: str | None = None
    journal_file: str | None = None
    namespace: str | None = None


def parse_priority(text: str) -> int:
    """A journalctl ``-p`` level: a name (``err``, ``warning`` …) or a number 0-7."""
    value = text.strip().lower()
    if value.isdigit() and int(value) < len(PRIORITY_NAMES):
        return int(value)
    if value in PRIORITY_NAMES:
        return PRIORITY_NAMES.index(value)
    names = ", ".join(PRIORITY_NAMES)
    raise ValueError(f"unknown priority '{text}': use 0-7 or one of {names}")


def source_args(query: JournalQuery) -> list[str]:
    if query.journal_file is not None:
        return ["--file", query.journal_file]
    if query.journal_dir is not None:
        return ["-D", query.journal_dir]
    if query.namespace is not None:
        return ["--namespace", query.namespace]
    return []


#: The fields an entry is made of (journalctl adds the cursor and the timestamps itself):
#: a live entry carries 20-30 fields, and leaving the rest out halves the JSON to parse.
OUTPUT_FIELDS = ",".join((
    "MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "_SYSTEMD_USER_UNIT", "SYSLOG_IDENTIFIER", "_PID",
    "_COMM", "_HOSTNAME", "_BOOT_ID",
))  # fmt: skip


def journalctl_args(
    query: JournalQuery,
    follow: bool,
    *,
    after_cursor: str | None = None,
    since: str | None = None,
) -> list[str]:
    """journalctl's arguments (without the program) for ``query``.

    History (``follow=False``): the last ``query.lines`` matching entries, *newest first*
    (``--reverse``: ``-n`` with ``--since`` would give the first N), so callers reverse them.
    Follow: starts after ``after_cursor`` if given, else at ``since`` (default
    ``query.since``, else ``now``) — never from the tail, which loses the first matching entry
    on systemd 252 (see the module docstring).
    """
    args = ["-o", "json", "--all", "--no-pager", f"--output-fields={OUTPUT_FIELDS}"]
    args += source_args(query)
    if follow:
        args.append("--follow")
        if after_cursor is not None:
            args += ["--after-cursor", after_cursor]
        else:
            args += ["--since", since or query.since or "now"]
        args.append("--no-tail")
    else:
        args += ["--reverse", "-n", str(query.lines)]
        if query.since is not None:
            args += ["--since", query.since]
    for unit in query.units:
        args += ["-u", unit]
    if query.priority is not None:
        args += ["-p", str(query.priority)]
    for identifier in query.identifiers:
        args += ["-t", identifier]
    args += [f"_PID={pid}" for pid in query.pids]
    return args


def _text(value: Any) -> str | None:
    """One journal field as text: journalctl writes a string, a list of byte values for binary
    data (decoded with replacement characters) or, for a repeated field, a list of those."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return bytes(value).decode("utf-8", "replace")
        if value and not any(isinstance(item, int) for item in value):
            return _text(value[0])
        if not value:
            return ""
    return str(value)


def _int(value: Any) -> int | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _message(value: Any) -> str:
    """MESSAGE, with every value of a repeated one (one per line) rather than just the first."""
    if isinstance(value, list) and value and not any(isinstance(item, int) for item in value):
        return "\n".join(_text(item) or "" for item in value)
    return _text(value) or ""


def parse_entry(line: bytes | str) -> JournalEntry | None:
    """One ``journalctl -o json`` line as a :class:`JournalEntry`; None for anything that is not
    a journal entry (an empty or foreign line)."""
    try:
        fields = json.loads(line)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    realtime = _int(fields.get("__REALTIME_TIMESTAMP"))
    if realtime is None:
        return None
    priority = _int(fields.get("PRIORITY"))
    if priority is not None and not 0 <= priority < len(PRIORITY_NAMES):
        priority = None
    return JournalEntry(
        realtime_usec=realtime,
        message=_message(fields.get("MESSAGE")),
        priority=priority,
        unit=_text(fields.get("_SYSTEMD_UNIT") or fields.get("_SYSTEMD_USER_UNIT")),
        identifier=_text(fields.get("SYSLOG_IDENTIFIER")),
        pid=_int(fields.get("_PID")),
        comm=_text(fields.get("_COMM")),
        hostname=_text(fields.get("_HOSTNAME")),
        boot_id=_text(fields.get("_BOOT_ID")),
        cursor=_text(fields.get("__CURSOR")),
    )


def parse_lines(lines: Iterable[bytes]) -> list[JournalEntry]:
    return [entry for line in lines if line and (entry := parse_entry(line)) is not None]


def iso_time(realtime_usec: int) -> str:
    """``2026-11-23T10:00:01.000123Z``: UTC, always with microseconds (exact, no float)."""
    seconds, usec = divmod(realtime_usec, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{usec:06d}Z"


def entry_to_json(entry: JournalEntry) -> dict[str, object]:
    """The keys of ``netdash dump journal --json``; text raw (JSON escapes it), null if absent."""
    return {
        "time": iso_time(entry.realtime_usec),
        "priority": entry.priority,
        "priority_name": entry.priority_name,
        "unit": entry.unit,
        "identifier": entry.identifier,
        "pid": entry.pid,
        "comm": entry.comm,
        "hostname": entry.hostname,
        "boot_id": entry.boot_id,
        "message": entry.message,
    }


def _last_line(data: bytes) -> str:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def dump_journal(query: JournalQuery, journalctl: str = "journalctl") -> list[JournalEntry]:
    """The last ``query.lines`` matching entries, oldest first (one journalctl run)."""
    try:
        done = subprocess.run(
            [journalctl, *journalctl_args(query, follow=False)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise SourceUnavailable(f"{journalctl} is not installed") from None
    if done.returncode != 0:
        raise SourceError(f"journalctl exited with {done.returncode}: {_last_line(done.stderr)}")
    entries = parse_lines(done.stdout.split(b"\n"))
    entries.reverse()
    return entries


def exit_words(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"it was killed by {name}"
    return f"it exited with {returncode}"


class EntryQueue:
    """Entries from a reader thread to a consumer, in batches; the producer waits while
    ``limit`` entries are queued (backpressure instead of loss) until :meth:`close`."""

    def __init__(self, limit: int = QUEUE_MAX) -> None:
        self.limit = limit
        self._entries: deque[JournalEntry] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, entries: list[JournalEntry]) -> bool:
        """Queue ``entries``; False once closed (the producer should stop)."""
        with self._cond:
            while len(self._entries) >= self.limit and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return False
            self._entries.extend(entries)
            self._cond.notify_all()
            return True

    def get(self, timeout: float, most: int = BATCH_MAX) -> list[JournalEntry]:
        with self._cond:
            if not self._entries:
                self._cond.wait(timeout)
            count = min(most, len(self._entries))
            batch = [self._entries.popleft() for _ in range(count)]
            self._cond.notify_all()
            return batch

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Follower(Protocol):
    """What the journal pane reads: :class:`JournalFollower` or a syslog follower."""

    @property
    def status(self) -> str: ...

    def start(self) -> None: ...

    def read_batch(self, timeout: float) -> list[JournalEntry]: ...

    def stop(self) -> None: ...


def describe_source(query: JournalQuery) -> str:
    if query.journal_file is not None:
        return f"journalctl --file {query.journal_file}"
    if query.journal_dir is not None:
        return f"journalctl -D {query.journal_dir}"
    if query.namespace is not None:
        return f"journalctl --namespace {query.namespace}"
    return "journalctl (system journal)"


class JournalFollower:
    """Follows the journal in a background thread: the history (``query.lines``), then every new
    matching entry, restarting journalctl with backoff if it dies (resuming after the last
    cursor, so nothing is lost or duplicated). :attr:`status` says what it is doing in words."""

    def __init__(
        self,
        query: JournalQuery,
        journalctl: str = "journalctl",
        *,
        queue_limit: int = QUEUE_MAX,
    ) -> None:
        self.query = query
        self.journalctl = journalctl
        self.restarts = 0
        self._queue = EntryQueue(queue_limit)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._cursor: str | None = None
        self._base = describe_source(query)
        self._status = f"{self._base}: starting"
        self._stderr = ""
        self._last_exit = ""

    @property
    def status(self) -> str:
        return self._status

    @property
    def pid(self) -> int | None:
        """The running journalctl's pid (None between runs): for tests and diagnostics."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal-follower", daemon=True)
        self._thread.start()

    def read_batch(self, timeout: float) -> list[JournalEntry]:
        """What arrived (up to :data:`BATCH_MAX`), waiting at most ``timeout`` s for the first."""
        return self._queue.get(timeout)

    def stop(self) -> None:
        """Terminate journalctl, wait for it and for the thread: no zombie, no thread left."""
        self._stopping.set()
        self._queue.close()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        since = f"@{time.time():.6f}"  # before the history: an entry after it is followed
        if self.query.lines > 0:
            history: list[JournalEntry] = []
            self._status = f"{self._base}: reading the last {self.query.lines} entries"
            returncode, _ = self._run_journalctl(journalctl_args(self.query, False), history.extend)
            history.reverse()
            if history:
                self._cursor = history[-1].cursor
                if not self._queue.put(history):
                    return
            if returncode not in (0, None) and not self._stopping.is_set():
                self._status = f"{self._base}: history failed: {exit_words(returncode)}"
        self._follow(since)

    def _follow(self, since: str) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping.is_set():
            args = journalctl_args(self.query, True, after_cursor=self._cursor, since=since)
            started = time.monotonic()
            self._status = self._base + self._restart_note()
            returncode, delivered = self._run_journalctl(args, self._queue.put)
            if self._stopping.is_set() or returncode is None:
                return
            if delivered or time.monotonic() - started >= BACKOFF_RESET_AFTER:
                delay = BACKOFF_FIRST
            why = exit_words(returncode) + (f": {self._stderr}" if self._stderr else "")
            self._last_exit = why
            self._status = f"restarting journalctl in {delay:g} s: {why}"
            self.restarts += 1
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)

    def _restart_note(self) -> str:
        if not self.restarts:
            return ""
        times = "once" if self.restarts == 1 else f"{self.restarts} times"
        return f" (restarted {times}; last {self._last_exit})"

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes] | None:
        with self._lock:
            if self._stopping.is_set():
                return None
            self._proc = subprocess.Popen(
                [self.journalctl, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            return self._proc

    def _run_journalctl(
        self, args: list[str], sink: Callable[[list[JournalEntry]], Any]
    ) -> tuple[int | None, int]:
        """Run journalctl to its end, handing parsed entries to ``sink`` as they come; returns
        (exit code or None when stopped or not startable, entries delivered)."""
        self._stderr = ""
        try:
            proc = self._spawn(args)
        except OSError as err:
            self._status = f"{self._base}: cannot run {self.journalctl}: {err.strerror}"
            return None, 0
        if proc is None:
            return None, 0
        delivered = 0
        try:
            delivered = self._pump(proc, sink)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
        return (None if self._stopping.is_set() else proc.returncode), delivered

    def _pump(
        self, proc: subprocess.Popen[bytes], sink: Callable[[list[JournalEntry]], Any]
    ) -> int:
        """Read stdout in large chunks (parsed whole lines at a time) and stderr's last line."""
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.fileno(), proc.stderr.fileno()
        delivered, partial, errors = 0, b"", b""
        with selectors.DefaultSelector() as selector:
            selector.register(out, selectors.EVENT_READ)
            selector.register(err, selectors.EVENT_READ)
            open_fds = 2
            while open_fds and not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.5):
                    data = os.read(key.fd, 1 << 18)
                    if not data:
                        selector.unregister(key.fd)
                        open_fds -= 1
                    elif key.fd == err:
                        errors = (errors + data)[-4096:]
                        self._stderr = _last_line(errors)
                    else:
                        *lines, partial = (partial + data).split(b"\n")
                        entries = parse_lines(lines)
                        if entries:
                            self._cursor = entries[-1].cursor or self._cursor
                            delivered += len(entries)
                            if sink(entries) is False:
                                return delivered
        return delivered


def _has_journal_files(directories: Iterable[Path]) -> bool:
    return any(next(directory.glob("*.journal*"), None) is not None for directory in directories)


def _journal_missing(query: JournalQuery, root: Path) -> str | None:
    """Why journalctl would have nothing to read for ``query`` (None when it has something)."""
    if query.journal_file is not None:
        return None if Path(query.journal_file).is_file() else f"no such file {query.journal_file}"
    if query.journal_dir is not None:
        return None if Path(query.journal_dir).is_dir() else f"no directory {query.journal_dir}"
    run, logs = root / "run/systemd", [root / "run/log/journal", root / "var/log/journal"]
    if query.namespace is not None:
        name = query.namespace
        if (run / f"journal.{name}/socket").exists():
            return None
        if _has_journal_files(d for log in logs for d in log.glob(f"*.{name}")):
            return None
        return f"no journald serves namespace {name} and it has no journal files"
    if (run / "journal/socket").exists():
        return None
    if _has_journal_files(d for log in logs for d in log.glob("*") if "." not in d.name):
        return None
    return "no journald running, no journal files"


def choose_source(
    query: JournalQuery,
    journalctl: str = "journalctl",
    syslog_file: str | None = None,
    *,
    root: Path = Path("/"),
) -> tuple[str, str, str | None]:
    """(kind, description, syslog path): see :func:`find_source`."""
    explicit = query.journal_file or query.journal_dir or query.namespace
    have_journalctl = shutil.which(journalctl) is not None
    if explicit:  # asked for by name: no fallback
        if not have_journalctl:
            raise SourceUnavailable(f"{describe_source(query)}: {journalctl} is not installed")
        missing = _journal_missing(query, root)
        if missing:
            raise SourceUnavailable(f"{describe_source(query)}: {missing}")
        return "journal", describe_source(query), None
    if syslog_file is not None:
        return "syslog", f"{syslog_file} (as asked)", _readable(Path(syslog_file))
    why = _journal_missing(query, root) if have_journalctl else "no journalctl"
    if why is None:
        return "journal", describe_source(query), None
    for candidate in SYSLOG_FILES:
        path = root / candidate.lstrip("/")
        if path.is_file():
            return "syslog", f"{path} (no journal: {why})", _readable(path)
    raise SourceUnavailable(
        f"nothing to show: {why} and no syslog file ({', '.join(SYSLOG_FILES)})"
    )


def _readable(path: Path) -> str:
    if not path.is_file():
        raise SourceUnavailable(f"no such syslog file {path}")
    if not os.access(path, os.R_OK):
        raise PermissionNeeded(f"cannot read {path}: needs root or the adm group")
    return str(path)


def find_source(
    query: JournalQuery,
    journalctl: str = "journalctl",
    syslog_file: str | None = None,
    *,
    root: Path = Path("/"),
) -> tuple[str, str]:
    """``("journal" | "syslog", description)``: where the journal pane's entries come from.

    A journal asked for by name (file, directory, namespace) is used or refused, never replaced;
    an explicit ``syslog_file`` is used as asked; otherwise the system journal when journalctl
    exists and a journald runs or journal files exist, else /var/log/syslog or
    /var/log/messages. With none: :class:`SourceUnavailable` saying why.
    """
    kind, description, _ = choose_source(query, journalctl, syslog_file, root=root)
    return kind, description


def open_follower(
    query: JournalQuery,
    journalctl: str = "journalctl",
    syslog_file: str | None = None,
    *,
    root: Path = Path("/"),
) -> Follower:
    """A follower (not started) for the source :func:`find_source` picks."""
    kind, description, path = choose_source(query, journalctl, syslog_file, root=root)
    if kind == "journal":
        return JournalFollower(query, journalctl)
    from netdash.sources.syslog import SyslogFollower

    assert path is not None
    return SyslogFollower(path, query, description=description)
