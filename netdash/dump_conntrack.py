"""`netdash dump conntrack --json` (no Textual): the conntrack table in numbers.

The table is sampled twice, ``--seconds`` apart, through the engine's tracker, so the per-CPU
counters' rates are those the pane shows. The object::

    {"count": 42, "max": 262144, "fill": 0.00016, "near_limit": false,
     "by_state": {"ESTABLISHED": 30, "TIME_WAIT": 8, "udp ASSURED": 3, "udp UNREPLIED": 1},
     "by_proto": {"tcp": 38, "udp": 4},
     "top_sources": [{"address": "10.0.0.1", "count": 20}, ...],      # at most 10
     "top_destinations": [...],
     "stats": {"drop": {"total": 0, "per_s": 0.0}, "early_drop": {...}, ...},
     "rate_seconds": 1.0, "errors": []}

``by_state`` has TCP entries by their conntrack state and the others as "PROTO STATUS" (ASSURED,
UNREPLIED, or REPLIED: a reply seen, not yet assured). ``per_s`` is null when a counter went
backwards during the window (a reset). Entries that could not be listed (no root) leave
``by_state`` … ``top_destinations`` empty and say why in ``errors`` (also on stderr, exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from netdash.engine_conntrack import ConntrackFrame


def conntrack_to_json(frame: ConntrackFrame) -> dict[str, Any]:
    sample = frame.sample
    return {
        "count": sample.count,
        "max": sample.max,
        "fill": frame.fill,
        "near_limit": frame.near_limit,
        "by_state": dict(sample.by_state),
        "by_proto": dict(sample.by_proto),
        "top_sources": [{"address": a, "count": n} for a, n in sample.top_sources],
        "top_destinations": [{"address": a, "count": n} for a, n in sample.top_destinations],
        "stats": {
            name: {"total": total, "per_s": frame.rates.get(name)}
            for name, total in sample.stats.items()
        },
        "rate_seconds": frame.seconds,
        "errors": list(sample.errors),
    }


def run_dump_conntrack(args: argparse.Namespace, target: Any) -> int:
    """Write the object; exit 1 when conntrack is active but its entries could not be
    listed (no root), so a script notices the gap."""
    from netdash.engine_conntrack import ConntrackTracker
    from netdash.sources.conntrack import NOT_LOADED, ConntrackReader

    tracker = ConntrackTracker()
    with ConntrackReader(target) as reader:
        start = tracker.update(reader.sample())
        time.sleep(max(0.0, start.sample.taken_at + args.seconds - time.monotonic()))
        frame = tracker.update(reader.sample())
        listed = reader.table_read
    sys.stdout.write(json.dumps(conntrack_to_json(frame), separators=(",", ":")) + "\n")
    sys.stdout.flush()
    for error in frame.sample.errors:
        print(f"netdash: {error}", file=sys.stderr)
    return 0 if listed or NOT_LOADED in frame.sample.errors else 1


__all__ = ["conntrack_to_json", "run_dump_conntrack"]
