"""Rows of the routes and neighbours tables, and the words of a route lookup (no Textual).

What ``ip route show table all``, ``ip neigh`` and ``ip route get`` answer, as table rows: the
default routes stand out (bold green), unusable routes (unreachable, blackhole, prohibit) and
failed neighbours in red, stale ones dimmed.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from netdash.model import Neighbour, PolicyRule, Route, RouteLookup
from netdash.textsafe import visible
from netdash.ui.tableview import Column, Row

ROUTE_COLUMNS: tuple[Column, ...] = (
    # An IPv4 destination and gateway are never cut (18 = "255.255.255.255/32"); at 80 columns
    # scope, protocol and source go first.
    Column("dst", "Destination", width=20, min_width=18, priority=0, flex=True),
    Column("gateway", "Gateway", width=15, min_width=15, priority=0),
    Column("dev", "Dev", width=9, min_width=6, priority=0),
    Column("prefsrc", "Source", width=15, min_width=15, priority=4),
    Column("table", "Table", width=6, min_width=5, priority=1),
    Column("protocol", "Proto", width=6, priority=5),
    Column("metric", "Metric", width=6, align="right", priority=2),
    Column("scope", "Scope", width=6, priority=6),
    Column("type", "Type", width=11, min_width=9, priority=3),
)
NEIGHBOUR_COLUMNS: tuple[Column, ...] = (
    Column("address", "Neighbour", width=24, min_width=12, priority=0, flex=True),
    Column("lladdr", "Link address", width=17, priority=0),
    Column("dev", "Dev", width=9, min_width=5, priority=0),
    Column("state", "State", width=18, min_width=9, priority=0),
)

#: Route types through which no packet gets anywhere: a user debugging reachability looks here.
DEAD_ROUTE_TYPES = frozenset({"unreachable", "blackhole", "prohibit", "throw"})
_TABLE_ORDER = {"main": 0, "local": 2}
_NEIGHBOUR_STYLES = {
    "REACHABLE": "green",
    "PERMANENT": "cyan",
    "STALE": "dim",
    "FAILED": "bold red",
    "INCOMPLETE": "yellow",
}


def route_row(index: int, route: Route) -> Row:
    """A route; the key is its position in the kernel's order (routes have no identity of their
    own: two tables may hold the same prefix)."""
    default = route.dst == "default" and route.type == "unicast"
    dead = route.type in DEAD_ROUTE_TYPES
    style = "bold green" if default else ("bold red" if dead else None)
    cells = (
        visible(route.dst),
        visible(route.gateway or ""),
        visible(route.dev or ""),
        visible(route.prefsrc or ""),
        visible(route.table or ""),
        visible(route.protocol or ""),
        "" if route.metric is None else str(route.metric),
        visible(route.scope or ""),
        visible(route.type),
    )
    table_rank = _TABLE_ORDER.get(route.table or "", 1)
    return Row(
        key=("route", index),
        cells=cells,
        sort_values=(
            (route.dst != "default", route.family, route.dst),
            route.gateway or "",
            route.dev or "",
            route.prefsrc or "",
            (table_rank, route.table or ""),
            route.protocol or "",
            route.metric,
            route.scope or "",
            route.type,
        ),
        search_text=" ".join(cells).lower(),
        styles=(style, style, None, None, None, None, None, None, style),
        data=route,
    )


def route_rows(routes: Iterable[Route]) -> list[Row]:
    return [route_row(index, route) for index, route in enumerate(routes)]


def neighbour_row(neighbour: Neighbour) -> Row:
    states = " ".join(neighbour.states) + (" router" if neighbour.router else "")
    style = next((_NEIGHBOUR_STYLES[s] for s in neighbour.states if s in _NEIGHBOUR_STYLES), None)
    cells = (
        visible(neighbour.address),
        visible(neighbour.lladdr or ""),
        visible(neighbour.dev),
        states,
    )
    return Row(
        key=("neighbour", neighbour.dev, neighbour.address),
        cells=cells,
        sort_values=(neighbour.address, neighbour.lladdr or "", neighbour.dev, states),
        search_text=" ".join(cells).lower(),
        styles=(None, None, None, style),
        data=neighbour,
    )


def rules_text(rules: Iterable[PolicyRule]) -> Text:
    """The policy rules on one line each, as ``ip rule`` prints them."""
    text = Text()
    for rule in rules:
        target = f"{rule.action} {rule.table}" if rule.table else rule.action
        text.append(f"{rule.priority}:\t", style="dim")
        text.append(f"{visible(rule.selector)} {visible(target)}\n")
    text.rstrip()
    return text


def only_default_rules(rules: Iterable[PolicyRule]) -> bool:
    """Whether the rules are the kernel's three defaults (local, main, default), which every
    host has and nobody needs to read during an outage."""
    return all(rule.priority in (0, 32766, 32767) for rule in rules)


def lookup_text(lookup: RouteLookup) -> Text:
    """``ip route get`` in one line: "10.0.0.9 via 10.0.0.1 dev eth0 src 10.0.0.5 (table main)"."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if lookup.error:
        text.append(f"{visible(lookup.dst)}: ", style="bold")
        text.append(visible(lookup.error), style="bold red")
        return text
    text.append(visible(lookup.dst), style="bold")
    if lookup.gateway:
        text.append(f" via {visible(lookup.gateway)}", style="bold green")
    if lookup.dev:
        text.append(f" dev {visible(lookup.dev)}")
    if lookup.prefsrc:
        text.append(f" src {visible(lookup.prefsrc)}")
    if lookup.table:
        text.append(f"  (table {visible(lookup.table)})", style="dim")
    return text
