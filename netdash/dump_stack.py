"""`netdash dump stack --json` (no Textual): TCP/IP stack counters with rates, and sysctls.

The counters are sampled twice, ``--seconds`` apart, through :class:`StackTracker`, so the
rates are those the pane shows. The object::

    {"netns": "host",
     "counters": {"Tcp.RetransSegs": {"total": 12, "per_s": 0.0, "moving": false}, ...},
     "key_counters": ["Tcp.RetransSegs", "TcpExt.TCPTimeouts", ...],   # present ones, in order
     "notes": {"Tcp.RetransSegs": "segments sent again: ...", ...},     # for the key counters
     "moving": ["TcpExt.ListenOverflows", ...],                          # grew during the window
     "gauges": {"TCP.inuse": 3, "Tcp.CurrEstab": 1, ...},
     "sysctls": [{"name": "net.core.somaxconn", "value": "4096", "note": "..."}, ...],
     "rate_seconds": 1.0, "errors": []}

Counters keep their kernel names (``Group.Name`` as in ``/proc/net/snmp`` and ``netstat``);
``per_s`` is null when a counter went backwards during the window (a reset).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from netdash.netns import NetnsTarget
from netdash.sources.stack import KEY_COUNTERS, StackFrame, StackReader, StackTracker


def add_stack_dump_parser(dump_what: Any) -> None:  # argparse's _SubParsersAction
    from netdash.cli import add_netns_options, window_seconds

    stack = dump_what.add_parser(
        "stack", help="TCP/IP counters (snmp, netstat, sockstat) with rates, and sysctls"
    )
    stack.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    stack.add_argument(
        "--seconds",
        type=window_seconds,
        default=1.0,
        metavar="N",
        help="measure rates over N seconds (default 1); totals are those at the end",
    )
    add_netns_options(stack, sub=True)


def stack_to_json(frame: StackFrame, label: str) -> dict[str, Any]:
    sample = frame.sample
    present = [name for name in KEY_COUNTERS if name in sample.counters]
    return {
        "netns": label,
        "counters": {
            name: {
                "total": total,
                "per_s": frame.rates.get(name),
                "moving": name in frame.moving,
            }
            for name, total in sorted(sample.counters.items())
        },
        "key_counters": present,
        "notes": {name: KEY_COUNTERS[name] for name in present},
        "moving": sorted(frame.moving),
        "gauges": dict(sorted(sample.gauges.items())),
        "sysctls": [{"name": s.name, "value": s.value, "note": s.note} for s in sample.sysctls],
        "rate_seconds": frame.seconds,
        "errors": list(sample.errors),
    }


def run_dump_stack(args: argparse.Namespace, target: NetnsTarget) -> int:
    """Write the object; exit 1 when some file could not be read (said on stderr too)."""
    seconds = getattr(args, "seconds", 1.0)
    tracker = StackTracker()
    with StackReader(target) as reader:
        first = reader.sample()
        tracker.update(first)
        time.sleep(max(0.0, first.taken_at + seconds - time.monotonic()))
        frame = tracker.update(reader.sample())
    sys.stdout.write(json.dumps(stack_to_json(frame, target.label), separators=(",", ":")) + "\n")
    sys.stdout.flush()
    for error in frame.sample.errors:
        print(f"netdash: {error}", file=sys.stderr)
    return 1 if frame.sample.errors else 0


__all__ = ["add_stack_dump_parser", "run_dump_stack", "stack_to_json"]
