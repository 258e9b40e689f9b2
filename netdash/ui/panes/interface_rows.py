"""One interface's row in the Interfaces table, built from a :class:`LinkFrame` (no Textual).

A host has a handful of interfaces and a busy container host a few thousand, so rows are built
each tick as :class:`LinkRow`\\ s that format their cells only when painted. What makes a row
stand out is decided here, where it can be tested without a terminal: a link that is down, errors
or drops that are rising right now (bold red), and ones that happened before (yellow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netdash.engine_links import LinkFrame, LinkRate
from netdash.model import Link, LinkCounters
from netdash.textsafe import visible
from netdash.ui.format import human_bits, human_count
from netdash.ui.tableview import Column

COLUMNS: tuple[Column, ...] = (
    Column("name", "Interface", width=12, min_width=8, priority=0, flex=True),
    Column("state", "State", width=10, min_width=7, priority=0),
    Column("rx", "RX", width=8, min_width=7, align="right", priority=0),
    Column("tx", "TX", width=8, min_width=7, align="right", priority=0),
    Column("rx_pps", "RX pk/s", width=8, min_width=7, align="right", priority=3),
    Column("tx_pps", "TX pk/s", width=8, min_width=7, align="right", priority=3),
    Column("errors", "Errors", width=7, min_width=6, align="right", priority=1),
    Column("drops", "Drops", width=7, min_width=6, align="right", priority=1),
    Column("util", "Util", width=5, align="right", priority=2),
    Column("speed", "Speed", width=6, align="right", priority=4),
    Column("mtu", "MTU", width=5, align="right", priority=5),
    Column("kind", "Kind", width=8, min_width=6, priority=6),
    Column("addresses", "Addresses", width=24, min_width=15, priority=2, flex=True),
)
COLUMN_INDEX: dict[str, int] = {column.key: index for index, column in enumerate(COLUMNS)}

#: Operational states that mean "no traffic can pass" (IF_OPER_*, as ip prints them).
DOWN_STATES = frozenset({"DOWN", "LOWERLAYERDOWN", "NOTPRESENT"})


def speed_label(link: Link) -> str:
    """``1G``, ``100M``, ``25G``; empty when unknown or nominal (a veth's "10G" means nothing)."""
    mbps = link.speed_mbps
    if mbps is None or link.speed_nominal:
        return ""
    return f"{mbps // 1000}G" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps}M"


def utilisation(link: Link, rate: LinkRate | None) -> float | None:
    """The busier direction's share of the link speed, 0..1; None for nominal or unknown speed."""
    if rate is None or link.speed_mbps is None or link.speed_nominal or link.speed_mbps <= 0:
        return None
    return max(rate.rx_bps, rate.tx_bps) / (link.speed_mbps * 1_000_000)


def state_label(link: Link) -> str:
    """The operstate as ``ip`` prints it, "NO-CARRIER" for a link set up whose cable (or peer)
    is missing, and "LL-DOWN" for LOWERLAYERDOWN (a vlan or bond whose lower link is down)."""
    if link.carrier is False and "UP" in link.flags and link.operstate not in ("UP", "UNKNOWN"):
        return "NO-CARRIER"
    return "LL-DOWN" if link.operstate == "LOWERLAYERDOWN" else link.operstate


def is_down(link: Link) -> bool:
    return link.operstate in DOWN_STATES or (link.carrier is False and link.operstate != "UNKNOWN")


def total_errors(counters: LinkCounters | None) -> int:
    return 0 if counters is None else counters.rx_errors + counters.tx_errors


def total_drops(counters: LinkCounters | None) -> int:
    return 0 if counters is None else counters.rx_dropped + counters.tx_dropped


def errors_rising(rate: LinkRate | None) -> bool:
    return rate is not None and rate.rx_errors_ps + rate.tx_errors_ps > 0


def drops_rising(rate: LinkRate | None) -> bool:
    return rate is not None and rate.rx_drops_ps + rate.tx_drops_ps > 0


def _counter_style(total: int, rising: bool) -> str | None:
    if rising:
        return "bold red"
    return "yellow" if total else None


class LinkRow:
    """One interface's row; ``data`` is ``(link, rate, counters)``.

    Cells and styles are formatted on first use, that is when the row is painted: at 1,000 links
    formatting every row each tick cost ~15 ms of the UI thread, for the ~30 rows on screen. The
    view asks for one column's sort value per row (:data:`SORT_KEYS`), never the whole tuple.
    Immutable once built, like :class:`~netdash.ui.tableview.Row` (the cache only fills in).
    """

    __slots__ = ("_look", "data", "key")
    born = 0.0  # links are not highlighted as new

    def __init__(self, link: Link, rate: LinkRate | None, counters: LinkCounters | None) -> None:
        self.key = link.ifindex
        self.data = (link, rate, counters)
        self._look: tuple[tuple[str, ...], tuple[str | None, ...]] | None = None

    def __repr__(self) -> str:
        return f"LinkRow({self.key!r}, {self.data[0].name!r})"

    @property
    def cells(self) -> tuple[str, ...]:
        return self._formatted()[0]

    @property
    def styles(self) -> tuple[str | None, ...]:
        return self._formatted()[1]

    def _formatted(self) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
        look = self._look
        if look is None:
            look = self._look = row_look(*self.data)
        return look

    @property
    def sort_values(self) -> tuple[Any, ...]:
        """Every column's sort value (for tests; the view asks one column at a time)."""
        return tuple(key(self) for key in SORT_KEYS)

    @property
    def search_text(self) -> str:
        link = self.data[0]
        return " ".join((link.name, link.kind, state_label(link), *link.addresses)).lower()


def _rate_of(name: str) -> Callable[[LinkRow], float | None]:
    def value(row: LinkRow) -> float | None:
        rate = row.data[1]
        return None if rate is None else getattr(rate, name)

    return value


#: Each column's sort value of a row (None sorts last), for ``TableView(sort_keys=...)``.
SORT_KEYS: tuple[Callable[[LinkRow], Any], ...] = (
    lambda row: row.data[0].name,
    lambda row: (not is_down(row.data[0]), row.data[0].operstate),
    _rate_of("rx_bps"),
    _rate_of("tx_bps"),
    _rate_of("rx_pps"),
    _rate_of("tx_pps"),
    lambda row: total_errors(row.data[2]),
    lambda row: total_drops(row.data[2]),
    lambda row: utilisation(row.data[0], row.data[1]),
    lambda row: None if row.data[0].speed_nominal else row.data[0].speed_mbps,
    lambda row: row.data[0].mtu,
    lambda row: row.data[0].kind,
    lambda row: " ".join(row.data[0].addresses),
)


def row_look(
    link: Link, rate: LinkRate | None, counters: LinkCounters | None
) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    """The display cells of one interface and their styles."""
    util = utilisation(link, rate)
    errors, drops = total_errors(counters), total_drops(counters)
    rising_errors, rising_drops = errors_rising(rate), drops_rising(rate)
    name = visible(link.name) + (f" ⊂{visible(link.master)}" if link.master else "")
    cells = (
        name,
        state_label(link),
        human_bits(rate.rx_bps if rate else None),
        human_bits(rate.tx_bps if rate else None),
        human_count(rate.rx_pps if rate else None),
        human_count(rate.tx_pps if rate else None),
        f"{errors:,}" + ("↑" if rising_errors else ""),
        f"{drops:,}" + ("↑" if rising_drops else ""),
        "" if util is None else f"{util * 100:.0f}%",
        speed_label(link),
        str(link.mtu),
        visible(link.kind),
        " ".join(visible(address) for address in link.addresses),
    )
    down = is_down(link)
    styles = (
        "bold red" if down else None,
        "bold red" if down else ("green" if link.operstate == "UP" else None),
        None,
        None,
        None,
        None,
        _counter_style(errors, rising_errors),
        _counter_style(drops, rising_drops),
        "bold red" if util is not None and util >= 0.9 else None,
        None,
        None,
        "dim",
        None,
    )
    return cells, styles


def link_row(link: Link, rate: LinkRate | None, counters: LinkCounters | None) -> LinkRow:
    """The table row of one interface; ``data`` is ``(link, rate, counters)``."""
    return LinkRow(link, rate, counters)


def frame_rows(frame: LinkFrame) -> list[LinkRow]:
    counters = frame.sample.counters.get
    rates = frame.rates.get
    return [LinkRow(link, rates(link.ifindex), counters(link.ifindex)) for link in frame.links]
