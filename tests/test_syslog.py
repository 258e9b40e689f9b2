"""The syslog fallback: line formats, and a follower on a file we append to, rotate and truncate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from netdash.model import JournalEntry
from netdash.sources.journal import JournalQuery, open_follower
from netdash.sources.syslog import SyslogFollower, parse_syslog_line, read_syslog_tail

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc).timestamp()


def local_usec(*when: int) -> int:
    return int(datetime(*when).timestamp()) * 1_000_000  # naive: local time, as syslog writes


def test_classic_iso_and_rfc5424_lines():
    classic = parse_syslog_line("Nov 23 10:00:01 host1 sshd[812]: Accepted [b]key[/b]", 0, NOW)
    assert classic == JournalEntry(
        realtime_usec=local_usec(2026, 11, 23, 10, 0, 1),
        message="Accepted [b]key[/b]",
        identifier="sshd",
        pid=812,
        hostname="host1",
    )
    # December lines read in January belong to last year; single-digit days are space-padded.
    january = datetime(2027, 1, 2, 12).timestamp()
    dec = parse_syslog_line("Dec 31 23:59:59 h kernel: [  1.0] boot", 0, january)
    assert (dec.realtime_usec, dec.identifier, dec.pid, dec.message) == (
        local_usec(2026, 12, 31, 23, 59, 59),
        "kernel",
        None,
        "[  1.0] boot",
    )
    assert parse_syslog_line("Nov  3 01:02:03 h cron: x", 0, NOW).realtime_usec == local_usec(
        2026, 11, 3, 1, 2, 3
    )
    iso = parse_syslog_line(
        "2026-11-23T10:00:01.123456+01:00 web1 postfix/smtpd[99]: connect from x", 0, NOW
    )
    assert (iso.realtime_usec, iso.hostname, iso.identifier, iso.pid, iso.priority) == (
        int(datetime(2026, 11, 23, 9, 0, 1, tzinfo=timezone.utc).timestamp()) * 10**6 + 123456,
        "web1",
        "postfix/smtpd",
        99,
        None,
    )
    rfc = parse_syslog_line(
        "<34>1 2026-11-23T10:00:01.003Z mymachine su 77 ID47 "
        '[x@1 a="]\\]\\"" b="2"][y@2] \ufeff"su root" failed',
        0,
        NOW,
    )
    assert (rfc.priority, rfc.identifier, rfc.pid, rfc.hostname, rfc.message) == (
        2,
        "su",
        77,
        "mymachine",
        '"su root" failed',
    )
    assert rfc.realtime_usec == int(
        datetime(2026, 11, 23, 10, 0, 1, 3000, timezone.utc).timestamp() * 1e6
    )
    odd = parse_syslog_line("not a syslog line at all", 42, NOW)
    assert odd == JournalEntry(realtime_usec=42, message="not a syslog line at all")


def lines(start: int, count: int, ident: str = "app") -> str:
    return "".join(
        f"2026-11-23T10:00:{i % 60:02d}.000000+00:00 h {ident}[{i}]: line {i}\n"
        for i in range(start, start + count)
    )


def collect(follower, count: int, timeout: float = 5.0) -> list[JournalEntry]:
    got: list[JournalEntry] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += follower.read_batch(0.1)
    return got


def messages(entries: list[JournalEntry]) -> list[str]:
    return [entry.message for entry in entries]


def test_follower_tails_appends_rotation_and_truncation(tmp_path):
    log = tmp_path / "syslog"
    log.write_text(lines(0, 10) + "2026-11-23T10:00:10.000000+00:00 h app[10]: line 1")
    follower = SyslogFollower(str(log), JournalQuery(lines=3), poll_interval=0.05)
    follower.start()
    try:
        assert messages(collect(follower, 3)) == ["line 7", "line 8", "line 9"]
        assert follower.status == f"syslog {log}"
        with log.open("a") as out:  # the unfinished line, finished; then more
            out.write("0 finished\n" + lines(11, 2))
        assert messages(collect(follower, 3)) == ["line 10 finished", "line 11", "line 12"]
        with log.open("a") as out:  # written to the old file after the rename: still read
            os.rename(log, tmp_path / "syslog.1")
            out.write(lines(13, 1))
        log.write_text(lines(14, 2))
        assert messages(collect(follower, 3)) == ["line 13", "line 14", "line 15"]
        log.write_text(lines(16, 1))  # truncated in place (copytruncate) and rewritten
        assert messages(collect(follower, 1)) == ["line 16"]
        assert follower.read_batch(0.3) == []
    finally:
        follower.stop()
    assert not follower._thread.is_alive()


def test_identifier_and_pid_filters_and_the_tail_of_what_matches(tmp_path):
    log = tmp_path / "messages"
    log.write_text(lines(0, 20, "app") + lines(20, 200, "noise") + lines(220, 1, "app"))
    query = JournalQuery(lines=3, identifiers=("app",))
    assert messages(read_syslog_tail(log, query)) == ["line 18", "line 19", "line 220"]
    assert messages(read_syslog_tail(log, JournalQuery(pids=(5, 221)))) == ["line 5"]
    follower = open_follower(JournalQuery(units=("x.service",)), syslog_file=str(log))
    assert isinstance(follower, SyslogFollower)
    assert follower.status == (
        f"syslog {log} (as asked) (unit, priority and time filters need the journal)"
    )


def test_dump_journal_from_a_syslog_file(tmp_path):
    log = tmp_path / "syslog"
    log.write_bytes(b"Nov 23 10:00:01 h app[3]: caf\xe9 \x1b[31m\n" + lines(1, 2).encode())
    done = subprocess.run(
        [sys.executable, "-m", "netdash", "dump", "journal", "--json", "--syslog-file", str(log)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["message"] for row in rows] == ["caf\ufffd \x1b[31m", "line 1", "line 2"]
    assert rows[1]["time"] == "2026-11-23T10:00:01.000000Z" and rows[1]["pid"] == 1
    assert f"reading syslog {log}" in done.stderr


def test_no_such_syslog_file_is_an_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "netdash", "dump", "journal", "--json", "--syslog-file",
         str(Path(tmp_path) / "none")],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 1 and "no such syslog file" in done.stderr
