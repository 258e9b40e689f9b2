"""iptables rules from ``iptables-save -c`` output (both backends, both families).

A pure parser: :mod:`netdash.sources.firewall` runs ``iptables-nft-save -c``,
``iptables-legacy-save -c`` and the ip6tables variants inside the namespace. The save format
(iptables-save(8)): ``*table``, then ``:CHAIN POLICY [packets:bytes]`` per chain (``-`` for a
user chain), then ``[packets:bytes] -A CHAIN match... -j TARGET`` per rule, then ``COMMIT``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from netdash.model import FirewallChain, FirewallRule
from netdash.sources.nft import complement, merge_ranges

_RULE = re.compile(r"^\[(\d+):(\d+)\] (-A (\S+).*)$")
_INCOMPATIBLE = re.compile(r"^# Table `([^']+)' (?:contains incompatible|is incompatible)")
SINGLE_PORT = ("--dport", "--sport", "--destination-port", "--source-port")
MULTI_PORT = ("--dports", "--sports", "--ports", "--destination-ports", "--source-ports")
STANDARD_TARGETS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "reject", "RETURN": "return"}


@dataclass
class SaveOutput:
    """One ``*-save -c`` run parsed: rules, chains, the tables it listed, and the tables it
    called incompatible (nft tables under an iptables name: not iptables-nft's)."""

    rules: list[FirewallRule] = field(default_factory=list)
    chains: list[FirewallChain] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    incompatible: set[str] = field(default_factory=set)


def parse_save(text: str, backend: str, family: str) -> SaveOutput:
    out = SaveOutput()
    table = ""
    positions: dict[str, int] = {}
    user_chains: set[str] = set()
    for line in text.splitlines():
        bad = _INCOMPATIBLE.match(line)
        if bad:
            out.incompatible.add(bad.group(1))
        elif line.startswith("*"):
            table, positions, user_chains = line[1:].strip(), {}, set()
            out.tables.add(table)
        elif line.startswith(":") and table:
            chain = _chain(line, backend, family, table)
            out.chains.append(chain)
            if chain.policy is None:
                user_chains.add(chain.name)
        elif line.startswith("[") and table:
            rule = _rule(line, backend, family, table, positions, user_chains)
            if rule is not None:
                out.rules.append(rule)
    drop = out.incompatible
    out.rules = [r for r in out.rules if r.table not in drop]
    out.chains = [c for c in out.chains if c.table not in drop]
    out.tables -= drop
    return out


def _chain(line: str, backend: str, family: str, table: str) -> FirewallChain:
    words = line[1:].split()
    name = words[0]
    policy = words[1] if len(words) > 1 and words[1] != "-" else None
    return FirewallChain(
        backend=backend,
        family=family,
        table=table,
        name=name,
        hook=name.lower() if policy is not None else None,
        type=table if policy is not None else None,
        policy=policy.lower() if policy is not None else None,
    )


def _rule(
    line: str,
    backend: str,
    family: str,
    table: str,
    positions: dict[str, int],
    user_chains: set[str],
) -> FirewallRule | None:
    match = _RULE.match(line)
    if match is None:
        return None
    packets, size, text, chain = match.groups()
    positions[chain] = positions.get(chain, 0) + 1
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return FirewallRule(
        backend=backend,
        family=family,
        table=table,
        chain=chain,
        text=text,
        position=positions[chain],
        comment=_option(words, "--comment"),
        verdict=_verdict(words, user_chains),
        packets=int(packets),
        bytes=int(size),
        ports=rule_ports(words),
    )


def _option(words: list[str], name: str) -> str | None:
    for index, word in enumerate(words[:-1]):
        if word == name:
            return words[index + 1]
    return None


def _verdict(words: list[str], user_chains: set[str]) -> str | None:
    goto = _option(words, "-g") or _option(words, "--goto")
    if goto is not None:
        return f"goto {goto}"
    target = _option(words, "-j") or _option(words, "--jump")
    if target is None:
        return None
    if target in STANDARD_TARGETS:
        return STANDARD_TARGETS[target]
    if target in user_chains or not target.isupper():
        return f"jump {target}"
    return target.lower()  # an extension target: LOG, MASQUERADE, DNAT ...


def rule_ports(words: list[str]) -> tuple[tuple[int, int], ...]:
    """Port ranges of ``--dport``/``--sport`` (``a`` or ``a:b``) and multiport's ``--dports``/
    ``--sports``/``--ports`` (``a,b:c``); ``! --dport 22`` gives every port but 22."""
    found: list[tuple[int, int]] = []
    for index, word in enumerate(words[:-1]):
        if word not in SINGLE_PORT and word not in MULTI_PORT:
            continue
        ranges = merge_ranges(_port_list(words[index + 1]))
        if index > 0 and words[index - 1] == "!":
            ranges = complement(ranges)
        found.extend(ranges)
    return merge_ranges(found)


def _port_list(value: str) -> list[tuple[int, int]]:
    out = []
    for part in value.split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            out.append((int(low), int(high or low)))
    return out
