"""`netdash dump firewall --json` (no Textual): every rule with its counters and its rates
over ``--seconds``, the chains with their policies, the sets, and what could not be read.

Two samples ``--seconds`` apart through the engine's tracker, so rates are computed as the pane
computes them; counters are those at the end of the window. Rule text and comments are the
kernel's and the tools' data: JSON escapes them, nothing else does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from netdash.engine_firewall import FirewallFrame, FirewallTracker
from netdash.model import FirewallChain, FirewallRule, FirewallSet
from netdash.netns import NetnsTarget
from netdash.sources.firewall import FirewallReader


def add_firewall_dump_parser(dump_what: Any) -> None:  # argparse's _SubParsersAction
    from netdash.cli import add_netns_options, window_seconds

    firewall = dump_what.add_parser(
        "firewall", help="nftables and iptables rules with counters and rates, chains, sets"
    )
    firewall.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    firewall.add_argument(
        "--seconds",
        type=window_seconds,
        default=1.0,
        metavar="N",
        help="measure rates over N seconds (default 1); counters are those at the end",
    )
    add_netns_options(firewall, sub=True)


def run_dump_firewall(args: argparse.Namespace, target: NetnsTarget) -> int:
    seconds = getattr(args, "seconds", 1.0)
    tracker = FirewallTracker()
    with FirewallReader(target) as reader:
        first = reader.sample()
        tracker.update(first)
        time.sleep(max(0.0, first.taken_at + seconds - time.monotonic()))
        frame = tracker.update(reader.sample())
    sys.stdout.write(json.dumps(frame_to_json(frame), separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


def frame_to_json(frame: FirewallFrame) -> dict[str, Any]:
    """The issue's object: ``rules``, ``chains``, ``sets``, ``errors``; a rate is null for a
    rule without a counter, new or reset during the window."""
    sample = frame.sample
    return {
        "rules": [rule_to_json(rule, frame) for rule in sample.rules],
        "chains": [chain_to_json(chain) for chain in sample.chains],
        "sets": [set_to_json(item) for item in sample.sets],
        "errors": list(sample.errors),
    }


def rule_to_json(rule: FirewallRule, frame: FirewallFrame) -> dict[str, Any]:
    rate = frame.rate(rule)
    row: dict[str, Any] = {
        "backend": rule.backend,
        "family": rule.family,
        "table": rule.table,
        "chain": rule.chain,
    }
    if rule.handle is not None:
        row["handle"] = rule.handle
    else:
        row["position"] = rule.position
    row.update(
        text=rule.text,
        comment=rule.comment,
        verdict=rule.verdict,
        packets=rule.packets,
        bytes=rule.bytes,
        packets_per_s=None if rate is None else rate.packets_per_s,
        bytes_per_s=None if rate is None else rate.bytes_per_s,
    )
    return row


def chain_to_json(chain: FirewallChain) -> dict[str, Any]:
    return {
        "backend": chain.backend,
        "family": chain.family,
        "table": chain.table,
        "name": chain.name,
        "hook": chain.hook,
        "priority": chain.priority,
        "type": chain.type,
        "policy": chain.policy,
    }


def set_to_json(item: FirewallSet) -> dict[str, Any]:
    return {
        "family": item.family,
        "table": item.table,
        "name": item.name,
        "type": item.type,
        "elements": item.elements,
    }
