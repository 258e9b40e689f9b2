"""`netdash dump journal --json` (no Textual): the last N matching entries, oldest first.

The entries come from journalctl (the system journal, or ``--journal-dir``/``--journal-file``/
``--journal-namespace``) with every filter applied by journalctl itself, or, where there is no
journal, from the tail of a syslog file (see :func:`netdash.sources.journal.find_source`).
Messages are raw text: JSON escapes them, nothing else does.
"""

from __future__ import annotations

import argparse
import json
import sys

from netdash.sources.journal import (
    JournalQuery,
    choose_source,
    dump_journal,
    entry_to_json,
    parse_priority,
)


def priority_level(text: str) -> int:
    """argparse type for ``--priority``: journalctl's names or numbers (a bad one: exit 2)."""
    try:
        return parse_priority(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def query_from_args(args: argparse.Namespace, lines: int = 100) -> JournalQuery:
    """The :class:`JournalQuery` the command line asks for (options absent on a parser read as
    unset, so the TUI's top-level options work here too)."""
    return JournalQuery(
        units=tuple(getattr(args, "unit", None) or ()),
        priority=getattr(args, "priority", None),
        since=getattr(args, "since", None),
        pids=tuple(getattr(args, "pid", None) or ()),
        identifiers=tuple(getattr(args, "identifier", None) or ()),
        lines=getattr(args, "lines", None) or lines,
        journal_dir=getattr(args, "journal_dir", None),
        journal_file=getattr(args, "journal_file", None),
        namespace=getattr(args, "journal_namespace", None),
    )


def run_dump_journal(args: argparse.Namespace) -> int:
    """Print the entries as one JSON array; say on stderr when they come from a syslog file."""
    query = query_from_args(args)
    kind, description, path = choose_source(query, syslog_file=getattr(args, "syslog_file", None))
    if kind == "journal":
        entries = dump_journal(query)
    else:
        from netdash.sources.syslog import read_syslog_tail

        assert path is not None
        print(f"netdash: reading syslog {description}", file=sys.stderr)
        entries = read_syslog_tail(path, query)
    sys.stdout.write(json.dumps([entry_to_json(e) for e in entries], separators=(",", ":")))
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
