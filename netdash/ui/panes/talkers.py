"""Top talkers (iftop without pcap) and per-process bandwidth (nethogs without pcap).

Both rank what :class:`~netdash.talkers.TalkersTracker` computed from the per-socket ``tcp_info``
byte counters the sampler already reads: TCP payload only, which the title says. Enter drills
down: a host or port to the Connections tab filtered to it, a process to its Process screen.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from netdash.talkers import Grouping, Talker, TalkersFrame
from netdash.textsafe import visible
from netdash.ui.format import human_rate
from netdash.ui.names import NamedTable, Names
from netdash.ui.tableview import Column, Row, TableView
from netdash.ui.widgets.virtual_table import VirtualTable

GROUPING_TITLES: dict[str, str] = {
    "hosts": "remote hosts",
    "host_ports": "remote host:port",
    "local_ports": "local ports",
    "processes": "processes",
}
#: What ``h`` cycles through in the talkers view (processes have a view of their own).
NETWORK_GROUPINGS: tuple[Grouping, ...] = ("hosts", "host_ports", "local_ports")


def talker_columns(processes: bool) -> tuple[Column, ...]:
    """The entry, its moving sockets, and in/out at the last tick and the three averages."""
    first = Column("label", "Process" if processes else "Talker", width=24, min_width=14,
                   priority=0, flex=True)  # fmt: skip
    rates = []
    for index, window in enumerate(("now", "2s", "10s", "40s")):
        priority = (0, 0, 2, 3)[index] if window != "now" else 4
        rates.append(Column(f"in_{window}", f"In {window}", width=8, min_width=7, align="right",
                            priority=priority))  # fmt: skip
        rates.append(Column(f"out_{window}", f"Out {window}", width=8, min_width=7,
                            align="right", priority=priority))  # fmt: skip
    extra = (Column("unit", "Unit", width=18, min_width=10, priority=1),) if processes else ()
    return (first, Column("sockets", "Socks", width=5, align="right", priority=5), *rates, *extra)


def unit_label(talker: Talker) -> str:
    """The systemd unit, else a short container id, else the cgroup path."""
    cgroup = talker.process.cgroup if talker.process is not None else None
    if cgroup is None:
        return ""
    if cgroup.unit:
        return cgroup.unit
    if cgroup.container:
        return f"container {cgroup.container[:12]}"
    return cgroup.path


def talker_row(talker: Talker, processes: bool) -> Row:
    rates = [talker.rate, *talker.averages]
    cells = [visible(talker.label), str(talker.sockets)]
    for rate in rates:
        cells += [human_rate(rate.rx), human_rate(rate.tx)]
    sort_values: list[object] = [talker.label, talker.sockets]
    for rate in rates:
        sort_values += [rate.rx, rate.tx]
    if processes:
        cells.append(visible(unit_label(talker)))
        sort_values.append(unit_label(talker))
    no_owner = processes and talker.process is None
    return Row(
        key=talker.key,
        cells=tuple(cells),
        sort_values=tuple(sort_values),
        search_text=" ".join(cells).lower(),
        styles=("italic dim",) + (None,) * (len(cells) - 1) if no_owner else None,
        data=talker,
    )


class TalkersView(Vertical):
    """One ranking (TCP only), in the order the tracker ranked it, by its 2 s average."""

    class Chosen(Message):
        """Enter on an entry: the pane drills down (filter the Connections tab, open a process)."""

        def __init__(self, grouping: Grouping, talker: Talker) -> None:
            super().__init__()
            self.grouping = grouping
            self.talker = talker

    def __init__(self, groupings: tuple[Grouping, ...], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.groupings = groupings
        self.grouping: Grouping = groupings[0]
        self.processes = groupings == ("processes",)
        self.frame: TalkersFrame | None = None
        self.view = TableView()  # in the tracker's order: sorting is the tracker's job

    def compose(self) -> ComposeResult:
        yield Static("", classes="talkers-title")
        yield NamedTable(
            talker_columns(self.processes), namer=self._named_cells, activate_label="Drill down"
        )

    def on_mount(self) -> None:
        self.table.set_view(self.view)
        self._show_title()

    @property
    def table(self) -> NamedTable:
        return self.query_one(NamedTable)

    def _named_cells(
        self, row: Row, cells: tuple[str, ...], names: Names, widths: Mapping[int, int]
    ) -> tuple[str, ...]:
        """A drawn entry with names (``n``): a host's name, ``name:https``, a port's service."""
        key = row.key
        if self.grouping == "hosts" and isinstance(key, str):
            label = names.host(key)
        elif self.grouping == "host_ports" and isinstance(key, tuple) and len(key) == 2:
            label = names.endpoint(key[0], key[1], "tcp", width=widths.get(0))
        elif self.grouping == "local_ports" and isinstance(key, int):
            label = names.service(key, "tcp") or cells[0]
        else:
            return cells
        return (label, *cells[1:])

    def show_frame(self, frame: TalkersFrame) -> None:
        self.frame = frame
        self.view.replace_all(talker_row(t, self.processes) for t in frame.ranking(self.grouping))
        self.table.refresh_rows()
        self._show_title()

    def cycle_grouping(self) -> None:
        index = self.groupings.index(self.grouping)
        self.grouping = self.groupings[(index + 1) % len(self.groupings)]
        if self.frame is not None:
            self.show_frame(self.frame)
        self._show_title()

    def _show_title(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"top {GROUPING_TITLES[self.grouping]}", style="bold")
        frame = self.frame
        if frame is not None:
            total = frame.total
            text.append(f" · all TCP in {human_rate(total.rate.rx)}/s")
            text.append(f" out {human_rate(total.rate.tx)}/s")
        text.append(" · TCP only, by 2 s average", style="dim")
        self.query_one(".talkers-title", Static).update(text)

    @on(VirtualTable.RowActivated)
    def _activated(self, event: VirtualTable.RowActivated) -> None:
        event.stop()
        row = self.view.get(event.key)
        if row is not None:
            self.post_message(self.Chosen(self.grouping, row.data))


def connections_filter(grouping: Grouping, key: Hashable) -> str | None:
    """The Connections tab's filter that shows a ranked entry's sockets."""
    if grouping == "hosts" and isinstance(key, str):
        return f"dst:{key}"
    if grouping == "host_ports" and isinstance(key, tuple) and len(key) == 2:
        host, port = key
        return f"dst:{host} dport:{port}"
    if grouping == "local_ports" and isinstance(key, int):
        return f"sport:{key}"
    return None
