"""Rows of the Firewall tab — chains and their rules, or the hottest rules — and its filter
language (no Textual).

``/`` takes the shared dialect: bare words over the rule text, ``!`` negation, and
``port:443`` (rules matching that port as dport or sport, in a range or through a set;
``port:80,443`` for any of several), ``table:``, ``chain:``, ``verdict:drop``,
``backend:iptables-legacy``, ``family:ip6``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from netdash.model import FirewallChain, FirewallRule, FirewallSample
from netdash.query import QueryError, parse_port_range
from netdash.textsafe import visible
from netdash.ui.format import human_bytes, human_count
from netdash.ui.row_query import compile_row_query
from netdash.ui.tableview import Column, Row

COLUMNS: tuple[Column, ...] = (
    Column("where", "Table / chain", width=22, min_width=12, priority=0),
    Column("id", "#", width=5, align="right", priority=3),
    Column("rule", "Rule", width=40, min_width=20, priority=0, flex=True),
    Column("verdict", "Verdict", width=8, min_width=6, priority=1),
    Column("packets", "Packets", width=9, align="right", priority=2),
    Column("bytes", "Bytes", width=7, align="right", priority=4),
    Column("pps", "Pkt/s", width=7, align="right", priority=0),
    Column("bps", "Bytes/s", width=7, align="right", priority=2),
)
INDEX = {column.key: i for i, column in enumerate(COLUMNS)}
DENY = frozenset({"drop", "reject", "DROP", "REJECT"})

#: (packets/s, bytes/s) of a rule this tick; None before a second sample or after a change.
Rate = tuple[float, float]


def verdict_of(rule: FirewallRule) -> str:
    return rule.verdict or ""


def denies(verdict: str | None) -> bool:
    return bool(verdict) and verdict.split()[0] in DENY


def chain_row(chain: FirewallChain, rules: int) -> Row:
    """A chain header: its hook and policy (a DROP policy stands out)."""
    base = f" hook {chain.hook} prio {chain.priority}" if chain.hook else ""
    policy = (chain.policy or "").lower()
    text = f"{chain.type or 'chain'}{base}" + (f"  policy {policy}" if policy else "")
    where = f"{chain.family} {chain.table} › {chain.name}"
    style = "bold red" if policy == "drop" else "bold"
    cells = (visible(where), "", visible(text), policy, f"{rules} rules", "", "", "")
    return Row(
        key=("chain", chain.backend, chain.family, chain.table, chain.name),
        cells=cells,
        sort_values=(where, None, text, policy, rules, None, None, None),
        search_text=f"{where} {text}".lower(),
        styles=(style, None, style, style if policy == "drop" else None, "dim", None, None, None),
        data=chain,
    )


def rule_row(rule: FirewallRule, rate: Rate | None, moved: bool, indent: str = "  ") -> Row:
    verdict = verdict_of(rule)
    ident = rule.handle if rule.handle is not None else rule.position
    shown_comment = rule.comment and rule.comment not in rule.text  # nft's text has it already
    text = visible(rule.text) + (f'  # "{visible(rule.comment)}"' if shown_comment else "")
    cells = (
        indent + visible(rule.backend if rule.backend != "nft" else rule.chain),
        "" if ident is None else str(ident),
        text,
        visible(verdict),
        "" if rule.packets is None else f"{rule.packets:,}",
        human_bytes(rule.bytes) if rule.bytes is not None else "",
        human_count(rate[0]) if rate is not None else "",
        human_bytes(rate[1]) if rate is not None else "",
    )
    deny = denies(rule.verdict)
    styles = (
        "dim",
        "dim",
        "bold yellow" if moved else None,
        "bold red" if deny else None,
        None,
        None,
        "bold yellow" if moved else None,
        None,
    )
    return Row(
        key=rule.key,
        cells=cells,
        sort_values=(
            (rule.family, rule.table, rule.chain),
            ident,
            rule.text,
            verdict,
            rule.packets,
            rule.bytes,
            rate[0] if rate is not None else None,
            rate[1] if rate is not None else None,
        ),
        search_text=f"{rule.table} {rule.chain} {rule.text} {rule.comment or ''}".lower(),
        styles=styles,
        data=rule,
    )


def tree_rows(
    sample: FirewallSample, rates: Mapping[object, Rate | None], moved: frozenset[object]
) -> list[Row]:
    """Chains in the order the source lists them, each followed by its rules."""
    by_chain: dict[tuple[str, str, str, str], list[FirewallRule]] = {}
    for rule in sample.rules:
        by_chain.setdefault((rule.backend, rule.family, rule.table, rule.chain), []).append(rule)
    rows: list[Row] = []
    seen: set[tuple[str, str, str, str]] = set()
    for chain in sample.chains:
        where = (chain.backend, chain.family, chain.table, chain.name)
        seen.add(where)
        rules = by_chain.get(where, [])
        rows.append(chain_row(chain, len(rules)))
        rows.extend(rule_row(r, rates.get(r.key), r.key in moved) for r in rules)
    for where, rules in by_chain.items():  # rules of chains the source did not list
        if where not in seen:
            rows.extend(rule_row(r, rates.get(r.key), r.key in moved) for r in rules)
    return rows


def hot_rows(rules: Iterable[FirewallRule], rates: Mapping[object, Rate | None]) -> list[Row]:
    """Every rule on its own, for the "hot" order (by packets/s, highest first)."""
    return [rule_row(rule, rates.get(rule.key), False, indent="") for rule in rules]


# ------------------------------------------------------------------------------- the filter

RowCheck = Callable[[Row], bool]


@dataclass(frozen=True)
class FirewallFilter:
    text: str
    check: RowCheck | None


def compile_firewall_filter(text: str) -> FirewallFilter:
    return FirewallFilter(text, compile_row_query(text, _field))


def _rule_only(check: Callable[[FirewallRule], bool]) -> RowCheck:
    """Field terms keep rules; chain headers stay only when they match by name."""
    return lambda row: isinstance(row.data, FirewallRule) and check(row.data)


def _field(field: str, value: str) -> RowCheck:
    lowered = value.lower()
    if field == "port":
        ranges = [parse_port_range(part) for part in value.split(",") if part]
        return _rule_only(lambda rule: touches(rule, ranges))
    if field == "table":
        return _rule_only(lambda rule: rule.table.lower() == lowered)
    if field == "chain":
        return _rule_only(lambda rule: rule.chain.lower() == lowered)
    if field == "verdict":
        return _rule_only(lambda rule: (rule.verdict or "").lower().startswith(lowered))
    if field == "backend":
        return _rule_only(lambda rule: rule.backend == lowered)
    if field == "family":
        return _rule_only(lambda rule: rule.family == lowered)
    raise QueryError(
        f"{field}: unknown field (port, table, chain, verdict, backend, family, or a bare word)"
    )


def touches(rule: FirewallRule, ranges: Iterable[tuple[int, int]]) -> bool:
    """Whether ``rule`` matches on a port in any of ``ranges`` (its own ranges overlap)."""
    return any(low <= high2 and low2 <= high for low, high in ranges for low2, high2 in rule.ports)
