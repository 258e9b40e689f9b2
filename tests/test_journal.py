"""The journal source against a real journald of the tests' own and real journal files.

Live: ``systemd-journald NAME`` (a journal namespace, :mod:`journallab`) fed through the native
protocol; followed with :class:`JournalFollower` and its filters (identifier, ``_PID``,
priority; live entries carry no ``_SYSTEMD_UNIT``), across a journald restart and a killed
journalctl. Files: ``systemd-journal-remote`` turns export fixtures (one boot id) into journal
files read through ``--journal-file``/``--journal-dir`` with every filter; ``journalctl -o json``
with the same filter is the oracle. The syslog fallback on a file we append to and rotate.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from journallab import (
    Journald,
    export_entry,
    journalctl_json,
    journald_namespace,
    make_journal,
)

from netdash.model import JournalEntry
from netdash.sources.errors import SourceUnavailable
from netdash.sources.journal import (
    JournalFollower,
    JournalQuery,
    dump_journal,
    entry_to_json,
    find_source,
    journalctl_args,
    open_follower,
    parse_entry,
    parse_priority,
)

FIXTURES = Path(__file__).parent / "fixtures" / "journal"
BOOT = "5e1f0c2a9b7d4e3f8a6c1b2d3e4f5a6b"  # the one boot id of every fixture entry
BASE_USEC = int(datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc).timestamp()) * 1_000_000
BIG = "x" * 100_000
INVALID_UTF8 = b"caf\xe9 \xff\xfe end"
JSON_KEYS = [
    "time", "priority", "priority_name", "unit", "identifier", "pid", "comm", "hostname",
    "boot_id", "message",
]  # fmt: skip


def collect(follower, until, timeout: float = 10.0) -> list[JournalEntry]:
    """Read batches until ``until(entries)`` holds or ``timeout`` passes."""
    entries: list[JournalEntry] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(entries):
        entries += follower.read_batch(0.2)
    return entries


def settle(follower, seconds: float = 0.6) -> list[JournalEntry]:
    """What else arrives within ``seconds`` (journald notifies readers every ~250 ms)."""
    entries: list[JournalEntry] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entries += follower.read_batch(0.1)
    return entries


def wait_following(follower: JournalFollower) -> int:
    """The pid of the follow run of journalctl (after the history run), once it is running."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = follower.pid
        if pid is not None and "reading the last" not in follower.status:
            return pid
        time.sleep(0.01)
    raise AssertionError(f"not following: {follower.status}")


def messages(entries: list[JournalEntry]) -> list[str]:
    return [entry.message for entry in entries]


# -- parsing, arguments, priorities (no journald needed) -----------------------------------------


def test_parse_entry_fields_binary_and_repeated_values():
    line = json.dumps(
        {
            "__REALTIME_TIMESTAMP": "1768471200000123",
            "__CURSOR": "s=1;i=2",
            "MESSAGE": list(INVALID_UTF8),
            "PRIORITY": "3",
            "_PID": "42",
            "_COMM": "app",
            "_HOSTNAME": "web1",
            "_BOOT_ID": BOOT,
            "SYSLOG_IDENTIFIER": ["first", "second"],
            "_SYSTEMD_USER_UNIT": "app.service",
        }
    ).encode()
    entry = parse_entry(line)
    assert entry == JournalEntry(
        realtime_usec=1768471200000123,
        message="caf\ufffd \ufffd\ufffd end",
        priority=3,
        unit="app.service",
        identifier="first",
        pid=42,
        comm="app",
        hostname="web1",
        boot_id=BOOT,
        cursor="s=1;i=2",
    )
    assert entry.priority_name == "err"
    repeated = parse_entry(b'{"__REALTIME_TIMESTAMP":"1","MESSAGE":["a",[98,255]],"PRIORITY":"9"}')
    assert repeated is not None and repeated.message == "a\nb\ufffd" and repeated.priority is None
    assert parse_entry(b"-- No entries --") is None
    assert parse_entry(b'{"MESSAGE":"no timestamp"}') is None


def values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


def test_follow_arguments_never_seek_the_tail():
    """systemd 252 drops the first new matching entry when following from the tail (-n) with a
    match that has no history: the follow run starts at a cursor or a time instead."""
    query = JournalQuery(
        units=("a.service", "b.service"), priority=3, pids=(7,), identifiers=("t",), namespace="ns"
    )
    follow = journalctl_args(query, True)
    assert "-n" not in follow and "--follow" in follow and "--all" in follow
    assert values(follow, "--since") == ["now"] and values(follow, "--namespace") == ["ns"]
    assert values(follow, "-u") == ["a.service", "b.service"] and values(follow, "-p") == ["3"]
    assert values(follow, "-t") == ["t"] and "_PID=7" in follow
    resumed = journalctl_args(query, True, after_cursor="s=x")
    assert "--since" not in resumed and resumed[resumed.index("--after-cursor") + 1] == "s=x"
    history = journalctl_args(JournalQuery(lines=50, since="1 hour ago"), False)
    assert "--follow" not in history and "--reverse" in history
    assert history[history.index("-n") + 1] == "50" and "1 hour ago" in history


def test_priority_names_and_numbers_like_journalctl():
    assert [parse_priority(p) for p in ("emerg", "err", "WARNING", "3", "7")] == [0, 3, 4, 3, 7]
    for bad in ("error", "8", "-1", ""):
        with pytest.raises(ValueError, match="unknown priority"):
            parse_priority(bad)
    done = subprocess.run(
        [sys.executable, "-m", "netdash", "dump", "journal", "--json", "--priority", "loud"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "unknown priority 'loud'" in done.stderr


def test_entry_to_json_keys_and_exact_utc_microseconds():
    entry = JournalEntry(realtime_usec=BASE_USEC + 5, message="[b]x[/b]", priority=4, pid=9)
    row = entry_to_json(entry)
    assert list(row) == JSON_KEYS
    assert row["time"] == "2026-01-15T10:00:00.000005Z"
    assert (row["priority"], row["priority_name"], row["message"]) == (4, "warning", "[b]x[/b]")
    assert row["unit"] is None and row["boot_id"] is None


# -- which source: journal, syslog or nothing -----------------------------------------------------


def test_find_source_prefers_the_journal_then_syslog_then_says_why(tmp_path):
    root = tmp_path
    query = JournalQuery()
    with pytest.raises(SourceUnavailable) as err:
        find_source(query, journalctl="/nonexistent/journalctl", root=root)
    assert str(err.value) == (
        "nothing to show: no journalctl and no syslog file (/var/log/syslog, /var/log/messages)"
    )
    with pytest.raises(SourceUnavailable, match="no journald running, no journal files"):
        find_source(query, root=root)
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/messages").write_text("")
    kind, description = find_source(query, root=root)
    assert kind == "syslog" and description.startswith(f"{root}/var/log/messages (no journal")
    journal_dir = root / "var/log/journal/0123456789abcdef0123456789abcdef"
    journal_dir.mkdir(parents=True)
    (journal_dir / "system.journal").write_bytes(b"")
    assert find_source(query, root=root) == ("journal", "journalctl (system journal)")
    assert find_source(query, journalctl="/nonexistent/journalctl", root=root)[0] == "syslog"
    # Asked for by name: used, or refused, never replaced by syslog.
    with pytest.raises(SourceUnavailable, match="namespace other"):
        find_source(JournalQuery(namespace="other"), root=root)
    with pytest.raises(SourceUnavailable, match="no such file"):
        find_source(JournalQuery(journal_file=str(root / "none.journal")), root=root)
    assert find_source(JournalQuery(journal_dir=str(journal_dir)), root=root) == (
        "journal",
        f"journalctl -D {journal_dir}",
    )
    syslog = root / "my.log"
    syslog.write_text("")
    assert find_source(query, syslog_file=str(syslog), root=root)[0] == "syslog"


# -- journal files from export fixtures ----------------------------------------------------------


def hostile_export() -> bytes:
    """Markup, escape sequences, invalid UTF-8, a multi-line and a 100 kB message."""
    hostile: list[bytes | str] = [
        "[bold red]markup[/] and [link=http://x]link[/link]",
        "\x1b[31mred\x1b[0m \x1b]0;title\x07 bell\x07",
        INVALID_UTF8,
        "first line\nsecond line\n",
        BIG,
    ]
    return b"".join(
        export_entry(
            {
                "__REALTIME_TIMESTAMP": str(BASE_USEC + 1_800_000_000 + index),
                "__MONOTONIC_TIMESTAMP": str(1_900_000_000 + index),
                "_BOOT_ID": BOOT,
                "_HOSTNAME": "evil",
                "_PID": "666",
                "_COMM": "evil",
                "SYSLOG_IDENTIFIER": "evil",
                "PRIORITY": "2",
                "_SYSTEMD_UNIT": "evil.service",
                "MESSAGE": message,
            }
        )
        for index, message in enumerate(hostile)
    )


@pytest.fixture(scope="module")
def fixture_journal(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("journal")
    exported = (FIXTURES / "services.export").read_bytes()
    return make_journal(directory / "fixture.journal", exported, hostile_export())


def netdash_dump(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "netdash", "dump", "journal", "--json", *args],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


#: (dump options, the same filter for journalctl, a check on every entry it selects)
FILTERS = [
    ([], [], lambda e: True),
    (["--unit", "nginx.service"], ["-u", "nginx.service"], lambda e: e["unit"] == "nginx.service"),
    (
        ["--unit", "nginx.service", "--unit", "ssh.service"],
        ["-u", "nginx.service", "-u", "ssh.service"],
        lambda e: e["unit"] in ("nginx.service", "ssh.service"),
    ),
    (["--priority", "err"], ["-p", "err"], lambda e: e["priority"] <= 3),
    (["--priority", "0"], ["-p", "0"], lambda e: e["priority"] == 0),
    (
        ["--since", "2026-01-15 10:12:00 UTC"],
        ["--since", "2026-01-15 10:12:00 UTC"],
        lambda e: e["time"] >= "2026-01-15T10:12:00",
    ),
    (["--pid", "201"], ["_PID=201"], lambda e: e["pid"] == 201),
    (["--identifier", "sshd"], ["-t", "sshd"], lambda e: e["identifier"] == "sshd"),
    (
        [
            "--unit",
            "postgresql.service",
            "--priority",
            "warning",
            "--since",
            "2026-01-15 10:05 UTC",
        ],
        ["-u", "postgresql.service", "-p", "warning", "--since", "2026-01-15 10:05 UTC"],
        lambda e: e["unit"] == "postgresql.service" and e["priority"] <= 4,
    ),
]


@pytest.mark.parametrize("source", ["--journal-file", "--journal-dir"])
def test_dump_journal_matches_journalctl_line_by_line_with_every_filter(fixture_journal, source):
    where = str(fixture_journal) if source == "--journal-file" else str(fixture_journal.parent)
    oracle_source = ["--file", where] if source == "--journal-file" else ["-D", where]
    for options, journalctl_filter, check in FILTERS:
        rows = netdash_dump(source, where, "--lines", "1000", *options)
        oracle = journalctl_json(*oracle_source, *journalctl_filter)
        assert len(rows) == len(oracle) > 0, options
        assert [r["message"] for r in rows] == [_oracle_message(o["MESSAGE"]) for o in oracle], (
            options
        )
        assert all(check(row) for row in rows), options
        assert all(list(row) == JSON_KEYS for row in rows)
    # --lines N: the last N, oldest first (journalctl's -n with --since would give the first N).
    last = netdash_dump(source, where, "-n", "3", "--since", "2026-01-15 10:00 UTC", "-p", "7")
    assert [r["message"] for r in last] == [
        _oracle_message(o["MESSAGE"]) for o in journalctl_json(*oracle_source, "-p", "7")[-3:]
    ]


def _oracle_message(value) -> str:
    return bytes(value).decode("utf-8", "replace") if isinstance(value, list) else value


def test_hostile_messages_arrive_raw_and_whole(fixture_journal):
    query = JournalQuery(journal_file=str(fixture_journal), identifiers=("evil",), lines=100)
    entries = dump_journal(query)
    assert messages(entries) == [
        "[bold red]markup[/] and [link=http://x]link[/link]",
        "\x1b[31mred\x1b[0m \x1b]0;title\x07 bell\x07",
        "caf\ufffd \ufffd\ufffd end",
        "first line\nsecond line\n",
        BIG,
    ]
    assert {(e.unit, e.pid, e.comm, e.hostname, e.boot_id, e.priority) for e in entries} == {
        ("evil.service", 666, "evil", "evil", BOOT, 2)
    }
    rows = netdash_dump("--journal-file", str(fixture_journal), "-t", "evil")
    assert [row["message"] for row in rows] == messages(entries)
    assert rows[0]["time"] == "2026-01-15T10:30:00.000000Z"


def test_fixture_fields_and_user_units(fixture_journal):
    entries = dump_journal(JournalQuery(journal_file=str(fixture_journal), lines=24, pids=(400,)))
    assert [(e.unit, e.identifier, e.comm, e.hostname) for e in entries] == [
        ("app.service", "app", "python3", "web1")
    ] * 2
    assert [e.realtime_usec for e in entries] == [BASE_USEC + 3 * 60_000_000 + 123,
                                                  BASE_USEC + 7 * 60_000_000 + 123]  # fmt: skip


def test_follower_reads_a_file_then_what_is_appended_to_it(tmp_path):
    journal = make_journal(tmp_path / "live.journal", (FIXTURES / "services.export").read_bytes())
    follower = JournalFollower(JournalQuery(journal_file=str(journal), lines=5, pids=(102,)))
    follower.start()
    try:
        history = collect(follower, lambda got: len(got) >= 2)
        assert messages(history) == ["nginx started #16", "nginx worker exited #20"]
        assert follower.status == f"journalctl --file {journal}"
        now = int(time.time() * 1_000_000)
        appended = [
            export_entry(
                {
                    "__REALTIME_TIMESTAMP": str(now + i),
                    "__MONOTONIC_TIMESTAMP": str(2_000_000_000 + i),
                    "_BOOT_ID": BOOT,
                    "_PID": pid,
                    "MESSAGE": f"appended {i}",
                }
            )
            for i, pid in enumerate(["102", "999", "102"])
        ]
        make_journal(journal, *appended)
        live = collect(follower, lambda got: len(got) >= 2)
        assert messages(live + settle(follower)) == ["appended 0", "appended 2"]
    finally:
        follower.stop()


# -- a journald of our own --------------------------------------------------------------------


@pytest.fixture
def journald(tmp_path) -> Iterator[Journald]:
    with journald_namespace(tmp_path) as running:
        yield running


@pytest.fixture
def follow(journald):
    """Start followers on our namespace; every one is stopped (and checked stopped) after."""
    started: list[JournalFollower] = []

    def start(**filters) -> JournalFollower:
        follower = JournalFollower(JournalQuery(namespace=journald.name, **filters))
        follower.start()
        started.append(follower)
        return follower

    yield start
    for follower in started:
        follower.stop()
        assert follower.pid is None
    assert not [t for t in threading.enumerate() if t.name == "journal-follower"]


def test_live_entries_with_identifier_and_priority_filters(journald, follow):
    journald.send("history", SYSLOG_IDENTIFIER="nd-a", PRIORITY="3")
    follower = follow(identifiers=("nd-a",), priority=3, lines=10)
    assert messages(collect(follower, lambda got: got)) == ["history"]
    assert follower.status == f"journalctl --namespace {journald.name}"
    for priority in range(8):
        journald.send(f"a{priority}", SYSLOG_IDENTIFIER="nd-a", PRIORITY=str(priority))
        journald.send(f"b{priority}", SYSLOG_IDENTIFIER="nd-b", PRIORITY=str(priority))
    live = collect(follower, lambda got: len(got) >= 4)
    assert messages(live + settle(follower)) == ["a0", "a1", "a2", "a3"]
    assert [e.priority_name for e in live] == ["emerg", "alert", "crit", "err"]
    assert {(e.identifier, e.pid, e.boot_id is not None) for e in live} == {
        ("nd-a", os.getpid(), True)
    }


def test_first_entry_of_an_identifier_without_history_is_not_lost(journald, follow):
    """systemd 252 skips the first followed match when it has no history (LAB.md)."""
    follower = follow(identifiers=("nd-new",), lines=100)
    time.sleep(0.3)  # the follower is running before the first entry exists
    journald.send("one", SYSLOG_IDENTIFIER="nd-new")
    journald.send("two", SYSLOG_IDENTIFIER="nd-new")
    assert messages(collect(follower, lambda got: len(got) >= 2)) == ["one", "two"]


SENDER = """
import socket, sys, os
print(os.getpid(), flush=True)
sys.stdin.readline()
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for i in range(3):
    sock.sendto(f"MESSAGE=child {i}\\nSYSLOG_IDENTIFIER=nd-pid\\n".encode(), sys.argv[1])
"""


def test_live_pid_filter(journald, follow):
    child = subprocess.Popen(
        [sys.executable, "-c", SENDER, journald.socket_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        child_pid = int(child.stdout.readline())
        follower = follow(pids=(child_pid,), lines=0)
        journald.send("parent", SYSLOG_IDENTIFIER="nd-pid")
        child.communicate("go\n", timeout=10)
    finally:
        child.kill()
        child.wait()
    got = collect(follower, lambda got: len(got) >= 3)
    assert messages(got + settle(follower)) == ["child 0", "child 1", "child 2"]
    assert {e.pid for e in got} == {child_pid}


def test_big_and_multiline_messages_through_the_native_protocol(journald, follow):
    follower = follow(identifiers=("nd-big",), lines=0)
    journald.send(BIG, SYSLOG_IDENTIFIER="nd-big")
    journald.send("line one\nline two", SYSLOG_IDENTIFIER="nd-big")
    journald.send(INVALID_UTF8, SYSLOG_IDENTIFIER="nd-big")
    got = collect(follower, lambda got: len(got) >= 3)
    assert messages(got) == [BIG, "line one\nline two", "caf\ufffd \ufffd\ufffd end"]


def test_follower_survives_a_journald_restart(journald, follow):
    follower = follow(identifiers=("nd-r",), lines=0)
    for i in range(5):
        journald.send(f"before {i}", SYSLOG_IDENTIFIER="nd-r")
    assert len(collect(follower, lambda got: len(got) >= 5)) == 5
    journald.restart()
    for i in range(5):
        journald.send(f"after {i}", SYSLOG_IDENTIFIER="nd-r")
    got = collect(follower, lambda got: len(got) >= 5, timeout=15)
    assert messages(got + settle(follower)) == [f"after {i}" for i in range(5)]


def test_killed_journalctl_restarts_with_backoff_and_resumes(journald, follow):
    follower = follow(identifiers=("nd-k",), lines=10)
    journald.send("first", SYSLOG_IDENTIFIER="nd-k")
    assert messages(collect(follower, lambda got: got)) == ["first"]
    os.kill(wait_following(follower), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while "restarting" not in follower.status and time.monotonic() < deadline:
        time.sleep(0.01)
    assert follower.status == "restarting journalctl in 0.5 s: it was killed by SIGKILL"
    journald.send("while down", SYSLOG_IDENTIFIER="nd-k")
    journald.send("after", SYSLOG_IDENTIFIER="nd-k")
    got = collect(follower, lambda got: len(got) >= 2)
    assert messages(got + settle(follower)) == ["while down", "after"]  # none lost, none twice
    assert follower.status == (
        f"journalctl --namespace {journald.name} (restarted once; last it was killed by SIGKILL)"
    )


def test_backoff_doubles_while_journalctl_keeps_failing_then_recovers(tmp_path):
    missing = tmp_path / "later.journal"
    follower = JournalFollower(JournalQuery(journal_file=str(missing), lines=10))
    follower.start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(" 2 s:" in s for s in seen):
            if follower.status not in seen:
                seen.append(follower.status)
            time.sleep(0.01)
        restarts = [s for s in seen if s.startswith("restarting")]
        assert [s.split(":")[0] for s in restarts][:3] == [
            "restarting journalctl in 0.5 s",
            "restarting journalctl in 1 s",
            "restarting journalctl in 2 s",
        ]
        assert restarts[0].startswith("restarting journalctl in 0.5 s: it exited with 1: ")
        assert "No such file or directory" in restarts[0]
        make_journal(missing, (FIXTURES / "services.export").read_bytes())
        now = int(time.time() * 1_000_000)
        make_journal(missing, export_entry({"__REALTIME_TIMESTAMP": str(now),
                                            "__MONOTONIC_TIMESTAMP": "3000000000",
                                            "_BOOT_ID": BOOT, "MESSAGE": "at last"}))  # fmt: skip
        got = collect(follower, lambda got: got, timeout=8)
        assert messages(got) == ["at last"]
    finally:
        started = time.monotonic()
        follower.stop()
        assert time.monotonic() - started < 2  # stop() does not wait out the backoff
    assert follower.pid is None


def test_burst_is_counted_exactly_like_journalctl(journald, follow):
    follower = follow(identifiers=("nd-burst",), lines=0)
    time.sleep(0.2)
    count = 5000
    started = time.monotonic()
    sock = journald.socket_path
    from journallab import send_many

    send_many(
        sock, [{"MESSAGE": f"burst {i}", "SYSLOG_IDENTIFIER": "nd-burst"} for i in range(count)]
    )
    got = collect(follower, lambda got: len(got) >= count, timeout=15)
    elapsed = time.monotonic() - started
    got += settle(follower, 0.4)
    assert messages(got) == [f"burst {i}" for i in range(count)]
    oracle = journalctl_json("--namespace", journald.name, "-t", "nd-burst")
    assert len(oracle) == len(got)
    assert elapsed < 10, f"{count} entries took {elapsed:.1f} s"


def test_open_follower_and_dump_on_the_namespace(journald):
    for i in range(3):
        journald.send(f"dumped {i}", SYSLOG_IDENTIFIER="nd-dump", PRIORITY=str(i + 3))
    time.sleep(0.3)
    query = JournalQuery(namespace=journald.name, identifiers=("nd-dump",))
    assert find_source(query) == ("journal", f"journalctl --namespace {journald.name}")
    assert isinstance(open_follower(query), JournalFollower)
    rows = netdash_dump("--journal-namespace", journald.name, "-t", "nd-dump", "-p", "warning")
    assert [(r["message"], r["priority_name"]) for r in rows] == [
        ("dumped 0", "err"),
        ("dumped 1", "warning"),
    ]
    assert len(rows) == len(
        journalctl_json("--namespace", journald.name, "-t", "nd-dump", "-p", "warning")
    )


def test_without_permission_the_status_says_so(journald, tmp_path):
    """journalctl run as nobody cannot open the namespace's files (root, mode 0640)."""
    as_nobody = tmp_path / "journalctl-as-nobody"
    as_nobody.write_text(
        '#!/bin/sh\nexec setpriv --reuid 65534 --regid 65534 --clear-groups journalctl "$@"\n'
    )
    as_nobody.chmod(0o755)
    journald.send("secret", SYSLOG_IDENTIFIER="nd-perm")
    follower = JournalFollower(JournalQuery(namespace=journald.name), journalctl=str(as_nobody))
    follower.start()
    try:
        deadline = time.monotonic() + 5
        while "restarting" not in follower.status and time.monotonic() < deadline:
            time.sleep(0.01)
        assert follower.status == (
            "restarting journalctl in 0.5 s: it exited with 1: "
            "No journal files were opened due to insufficient permissions."
        )
        assert follower.read_batch(0.1) == []
    finally:
        follower.stop()
