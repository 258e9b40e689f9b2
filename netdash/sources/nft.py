"""The structure of an nftables ruleset, parsed from ``nft -j list ruleset`` (tables, chains,
rules, sets, named counters) and ``nft -a list ruleset`` (each rule's text, by handle).

Pure parsers: :mod:`netdash.sources.firewall` runs the tools (inside the namespace) and calls
these only when the ruleset generation changed. Counters found here are those of the moment the
JSON was taken; later ticks read them through :mod:`netdash.sources.nftnl`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from netdash.model import FirewallChain, FirewallRule, FirewallSet

PortRanges = tuple[tuple[int, int], ...]
PORT_FIELDS = ("dport", "sport")
#: Expressions that end a rule's evaluation (or hand it over), as nft's JSON names them.
VERDICTS = ("accept", "drop", "reject", "return", "continue", "queue")
NAT_VERDICTS = ("masquerade", "snat", "dnat", "redirect")
_HANDLE = re.compile(r"\s+# handle (\d+)$")
_COUNTER_VALUES = re.compile(r"(\bcounter) packets \d+ bytes \d+")


@dataclass
class NftStructure:
    """What ``nft -j`` says of a ruleset, before counters are attached to rules."""

    rules: list[FirewallRule] = field(default_factory=list)
    chains: list[FirewallChain] = field(default_factory=list)
    sets: list[FirewallSet] = field(default_factory=list)
    #: rule key → the named counter it updates (family, table, name)
    named: dict[tuple[object, ...], tuple[str, str, str]] = field(default_factory=dict)
    counters: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    tables: list[tuple[str, str]] = field(default_factory=list)


def parse_ruleset(
    doc: Mapping[str, Any], texts: Mapping[tuple[str, str, str, int], str]
) -> NftStructure:
    """``nft -j list ruleset`` parsed; ``texts`` from :func:`parse_rule_texts`."""
    items = doc.get("nftables", [])
    out = NftStructure()
    set_ports: dict[tuple[str, str, str], PortRanges] = {}
    for item in items:
        if "table" in item:
            out.tables.append((item["table"]["family"], item["table"]["name"]))
        elif "counter" in item:
            c = item["counter"]
            out.counters[(c["family"], c["table"], c["name"])] = (c["packets"], c["bytes"])
        elif "set" in item or "map" in item:
            s = item.get("set") or item["map"]
            kind = s["type"] if isinstance(s["type"], str) else " . ".join(s["type"])
            if "map" in s:
                kind = f"{kind} : {s['map'] if isinstance(s['map'], str) else ' . '.join(s['map'])}"
            elems = s.get("elem", [])
            out.sets.append(FirewallSet(s["family"], s["table"], s["name"], kind, len(elems)))
            if "inet_service" in kind.split(" : ")[0].split(" . ") and " . " not in kind:
                set_ports[(s["family"], s["table"], s["name"])] = _element_ports(elems)
        elif "chain" in item:
            out.chains.append(_chain(item["chain"]))
    for item in items:
        if "rule" in item:
            rule, named = _rule(item["rule"], texts, set_ports)
            out.rules.append(rule)
            if named is not None:
                out.named[rule.key] = (rule.family, rule.table, named)
    return out


def _chain(c: Mapping[str, Any]) -> FirewallChain:
    return FirewallChain(
        backend="nft",
        family=c["family"],
        table=c["table"],
        name=c["name"],
        hook=c.get("hook"),
        priority=c.get("prio"),
        type=c.get("type"),
        policy=c.get("policy"),
    )


def _rule(
    r: Mapping[str, Any],
    texts: Mapping[tuple[str, str, str, int], str],
    set_ports: Mapping[tuple[str, str, str], PortRanges],
) -> tuple[FirewallRule, str | None]:
    """One rule's record (counter values where anonymous) and its named counter, if any."""
    packets = size = None
    named: str | None = None
    verdict: str | None = None
    ports: list[tuple[int, int]] = []
    for expr in r.get("expr", []):
        if not isinstance(expr, dict) or len(expr) != 1:
            continue
        ((kind, body),) = expr.items()
        if kind == "counter":
            if isinstance(body, str):
                named = body
            elif isinstance(body, dict) and "packets" in body:
                packets, size = body["packets"], body["bytes"]
        elif kind in ("match", "vmap"):
            ports.extend(_match_ports(kind, body, r, set_ports))
        elif kind in VERDICTS or kind in NAT_VERDICTS:
            verdict = kind
        elif kind in ("jump", "goto") and isinstance(body, dict):
            verdict = f"{kind} {body.get('target')}"
    handle = r["handle"]
    text = texts.get((r["family"], r["table"], r["chain"], handle), "")
    rule = FirewallRule(
        backend="nft",
        family=r["family"],
        table=r["table"],
        chain=r["chain"],
        text=text,
        handle=handle,
        comment=r.get("comment"),
        verdict=verdict,
        packets=packets,
        bytes=size,
        ports=merge_ranges(ports),
    )
    return rule, named


def _match_ports(
    kind: str,
    body: Any,
    r: Mapping[str, Any],
    set_ports: Mapping[tuple[str, str, str], PortRanges],
) -> PortRanges:
    """Ports a ``match`` (``tcp dport 80``, ranges, sets) or ``vmap`` on a port field names;
    ``!=`` gives the complement, the ports the rule does match."""
    if not isinstance(body, dict):
        return ()
    left = body.get("left") if kind == "match" else body.get("key")
    payload = left.get("payload") if isinstance(left, dict) else None
    if not isinstance(payload, dict) or payload.get("field") not in PORT_FIELDS:
        return ()
    right = body.get("right") if kind == "match" else body.get("data")
    if kind == "vmap" and isinstance(right, dict) and isinstance(right.get("set"), list):
        right = {"set": [e[0] for e in right["set"] if isinstance(e, list) and e]}
    if isinstance(right, str) and right.startswith("@"):
        ranges = set_ports.get((r["family"], r["table"], right[1:]), ())
    else:
        ranges = _value_ports(right)
    if kind == "match" and body.get("op") == "!=":
        return complement(ranges)
    return ranges


def _value_ports(value: Any) -> PortRanges:
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return ((value, value),)
    if isinstance(value, str) and value.isdigit():
        return ((int(value), int(value)),)
    if isinstance(value, dict):
        if "range" in value and len(value["range"]) == 2:
            low, high = value["range"]
            if isinstance(low, int) and isinstance(high, int):
                return ((low, high),)
        if "set" in value and isinstance(value["set"], list):
            return _element_ports(value["set"])
        if "elem" in value:
            return _value_ports(value["elem"].get("val"))
    return ()


def _element_ports(elements: Iterable[Any]) -> PortRanges:
    found: list[tuple[int, int]] = []
    for element in elements:
        found.extend(_value_ports(element))
    return merge_ranges(found)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> PortRanges:
    """Sorted, overlapping and touching ranges joined: (80,80),(81,90) → (80,90)."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def complement(ranges: PortRanges) -> PortRanges:
    """Every port 0-65535 not in ``ranges`` (for ``!=`` and ``! --dport``)."""
    out, start = [], 0
    for low, high in merge_ranges(ranges):
        if low > start:
            out.append((start, low - 1))
        start = high + 1
    if start <= 65535:
        out.append((start, 65535))
    return tuple(out)


def parse_rule_texts(text: str) -> dict[tuple[str, str, str, int], str]:
    """(family, table, chain, handle) → the rule as ``nft -a list ruleset`` prints it, without
    the handle comment and with the counter's values dropped (``counter`` stays: the rule counts,
    and the text stays the same from tick to tick)."""
    found: dict[tuple[str, str, str, int], str] = {}
    family = table = chain = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{") or " { # handle " in line:
            words = line.split()
            if words[0] == "table":
                family, table = words[1], words[2]
            elif words[0] == "chain":
                chain = words[1]
            continue
        match = _HANDLE.search(line)
        if match is None or not chain:
            continue
        body = _COUNTER_VALUES.sub(r"\1", line[: match.start()])
        found[(family, table, chain, int(match.group(1)))] = body.strip()
    return found
