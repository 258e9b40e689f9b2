"""`i`: one socket in full — addresses, queues, every tcp_info field, timer, memory, owners.

Live: each refresh replaces the socket's facts (:meth:`SocketDetailScreen.apply_update`), and
the app has the sampler read this one socket's memory while the view is open.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from netdash.model import TcpInfo
from netdash.textsafe import visible
from netdash.ui.format import human_bytes, milliseconds
from netdash.ui.panes.connection_rows import (
    ConnectionsUpdate,
    ConnEntry,
    local_label,
    proto_label,
    remote_label,
)

CA_STATES = {0: "open", 1: "disorder", 2: "cwr", 3: "recovery", 4: "loss"}


def _limited(rate: int | None) -> int | None:
    """0 and ~0 both mean "no pacing limit" (ss hides them too)."""
    return None if not rate or rate >= 1 << 63 else rate


def tcp_rows(info: TcpInfo) -> list[tuple[str, str]]:
    """tcp_info as `ss -i` users read it."""
    rows = [
        ("rtt", f"{milliseconds(info.rtt_us)} ms  (var {milliseconds(info.rttvar_us)} ms)"),
        ("rto", f"{milliseconds(info.rto_us)} ms"),
        ("mss", f"{info.snd_mss}  (rcv {info.rcv_mss}, advmss {info.advmss}, pmtu {info.pmtu})"),
        ("cwnd", str(info.snd_cwnd)),
        ("ssthresh", "∞" if info.snd_ssthresh >= 0xFFFF else str(info.snd_ssthresh)),
        ("unacked / lost", f"{info.unacked} / {info.lost}"),
        ("retransmits", f"{info.retransmits} now, {info.total_retrans} in total"),
        ("congestion state", CA_STATES.get(info.ca_state, str(info.ca_state))),
        ("window scale", f"snd {info.snd_wscale} rcv {info.rcv_wscale}"),
    ]
    optional = (
        ("bytes acked", info.bytes_acked, human_bytes),
        ("bytes received", info.bytes_received, human_bytes),
        ("bytes sent", info.bytes_sent, human_bytes),
        ("bytes retransmitted", info.bytes_retrans, human_bytes),
        ("segments out / in", None, None),
        ("delivery rate", info.delivery_rate, lambda v: human_bytes(v) + "/s"),
        ("pacing rate", _limited(info.pacing_rate), lambda v: human_bytes(v) + "/s"),
        ("min rtt", info.min_rtt_us, lambda v: f"{milliseconds(v)} ms"),
        ("not sent", info.notsent_bytes, human_bytes),
    )
    for label, value, show in optional:
        if label == "segments out / in":
            if info.segs_out is not None:
                rows.append((label, f"{info.segs_out} / {info.segs_in}"))
        elif value is not None and show is not None:
            rows.append((label, show(value)))
    return rows


def detail_rows(entry: ConnEntry, now: float | None = None) -> list[tuple[str, str]]:
    sock = entry.sock
    rows = [
        ("protocol", f"{proto_label(sock)} ({sock.family})"),
        ("state", sock.state),
        ("local", local_label(sock)),
        ("remote", remote_label(sock)),
        ("recv-q / send-q", f"{sock.recv_q} / {sock.send_q}"),
        ("inode", str(sock.inode) + ("  (0: no file refers to it)" if not sock.inode else "")),
        ("uid", "" if sock.uid is None else str(sock.uid)),
    ]
    if sock.interface:
        rows.append(("bound device", visible(sock.interface)))
    if sock.peer_inode:
        rows.append(("peer inode", str(sock.peer_inode)))
    if sock.timer is not None:
        timer = sock.timer
        # A kept record's countdown is from its first reading: count from its deadline instead
        # (live only: a recording's deadlines are on another machine's clock).
        left = timer.remaining_ms(now) if now is not None else timer.expires_ms
        fires = f"{timer.name}, fires in {left} ms, {timer.retrans} retrans"
        rows.append(("timer", fires))
    if sock.mem is not None:
        mem = sock.mem
        rows.append(
            (
                "memory",
                f"rmem {mem.rmem_alloc}/{mem.rcvbuf}  wmem {mem.wmem_alloc}/"
                f"{mem.sndbuf}  queued {mem.wmem_queued}  backlog {mem.backlog}"
                + (f"  drops {mem.drops}" if mem.drops is not None else ""),
            )
        )
    if entry.rate is not None:
        rows.append(
            (
                "rate (TCP payload)",
                f"in {human_bytes(entry.rate.rx)}/s  out {human_bytes(entry.rate.tx)}/s",
            )
        )
    return rows


class SocketDetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss", "Close"), Binding("i", "dismiss", "Close", show=False)]

    def __init__(
        self,
        entry: ConnEntry,
        fds: Mapping[int, tuple[int, ...]] | None = None,
        *,
        live: bool = True,
    ) -> None:
        """``fds``: each owner's descriptors on the socket (pid -> fds), from the sample."""
        super().__init__()
        self.entry = entry
        self.fds = fds or {}
        self.live = live
        self.gone = False

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-body"):
            yield Static(self._title(), id="detail-title")
            yield Static(self._facts(), id="facts")
            yield Static(self._owners_text({}), id="owners")
            yield Static(self._tcp_info(), id="tcp-info")

    def apply_update(self, update: ConnectionsUpdate) -> None:
        """Show the socket as the latest refresh has it; if it went away, say so and keep the
        last facts."""
        if update.view is None:  # nothing changed
            return
        row = update.view.get(self.entry.key)
        if row is self.entry:
            return
        if row is None:
            self.gone = True
        else:
            self.entry, self.gone = row, False
        self.query_one("#detail-title", Static).update(self._title())
        self.query_one("#facts", Static).update(self._facts())
        self.query_one("#tcp-info", Static).update(self._tcp_info())

    def _title(self) -> Text:
        text = Text("socket detail", style="bold")
        if self.gone:
            text.append("  (gone: the last reading)", style="bold red")
        return text

    def _facts(self) -> Table:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        now = time.monotonic() if self.live else None
        for label, value in detail_rows(self.entry, now):
            table.add_row(label, Text(value))
        return table

    def _tcp_info(self) -> Table | Text:
        info = self.entry.sock.tcp
        if info is None or self.entry.sock.state == "LISTEN":  # a listener's are all zero
            return Text("")
        tcp_table = Table.grid(padding=(0, 2))
        tcp_table.add_column(style="bold cyan", no_wrap=True)
        tcp_table.add_column()
        tcp_table.add_row(Text("tcp_info", style="bold"), "")
        for label, value in tcp_rows(info):
            tcp_table.add_row(label, Text(value))
        return tcp_table

    def on_mount(self) -> None:
        if self.entry.owners and self.live:
            self._load_cmdlines()

    def _owners_text(self, cmdlines: dict[int, str]) -> Text:
        text = Text("\nowners\n", style="bold")
        if not self.entry.owners:
            text.append(f"  {self.entry.reason or 'none'}\n", style="italic")
        for owner in self.entry.owners:
            fds = ",".join(map(str, self.fds.get(owner.pid, ()))) or "?"
            text.append(f"  pid {owner.pid}  fd {fds}  ")
            text.append(visible(owner.comm), style="bold")
            text.append(f"  user {visible(owner.user or str(owner.uid))}\n")
            if owner.pid in cmdlines:
                text.append(f"    {cmdlines[owner.pid]}\n", style="dim")
        return text

    @work(thread=True, exclusive=True)
    def _load_cmdlines(self) -> None:
        """Command lines are read on demand, in a thread: /proc is never read on the UI thread."""
        from netdash.sources.owners import read_cmdline

        cmdlines: dict[int, str] = {}
        for owner in self.entry.owners:
            argv = read_cmdline(owner.pid)
            cmdlines[owner.pid] = visible(" ".join(argv)) if argv else "(command line not readable)"
        self.app.call_from_thread(self._show_cmdlines, cmdlines)

    def _show_cmdlines(self, cmdlines: dict[int, str]) -> None:
        self.query_one("#owners", Static).update(self._owners_text(cmdlines))
