"""`?`: every key, grouped as the user meets them, plus the filter language."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str], ...] = (
    ("q, Ctrl+C", "quit"),
    ("?", "this help"),
    ("1-6, Tab", "Connections, Interfaces, Processes, Journal, Firewall, Diagnose; Tab cycles"),
    (
        "n",
        "names: remote hosts by reverse DNS (/etc/hosts first), ports by /etc/services, in"
        " Connections, talkers and conntrack; n again: numbers (the default, like ss -n)",
    ),
    ("", ""),
    ("Connections", ""),
    ("/", "filter (Enter applies, Esc restores)"),
    ("s / S", "sort by the next column / reverse (or click a header)"),
    ("a / l / e", "all sockets / listening (accept-queue fill) / established"),
    ("g", "group by state, remote host, local port, process, none"),
    ("u", "show UNIX sockets too"),
    ("i", "socket detail: tcp_info, timers, memory, owners"),
    ("d", "why can't I reach it? the host:port checklist on the remote end (Diagnose tab)"),
    ("Enter", "drill down: group → its sockets, socket → owning process"),
    ("Esc", "back: filter input, filter, group, grouping, screen"),
    ("p", "pause the view (sampling and history go on)"),
    ("↑ ↓ PgUp PgDn Home End", "move"),
    ("Ctrl+P", "command palette"),
    ("", ""),
    ("Interfaces", ""),
    ("i", "interfaces: rates, errors, drops; graph of the selected one (z: 1/5/10 min)"),
    ("/ (interfaces)", "filter by name, kind, state or address; Esc clears"),
    ("t", "top talkers, TCP only (h: remote host / host:port / local port); Enter: sockets"),
    ("w", "bandwidth per process, TCP only; Enter: the process"),
    ("r", "routes, rules, neighbours; g: route to an address"),
    ("", ""),
    ("Processes", ""),
    ("a / t / c", "all processes / tree / cgroups; Enter: the Process screen"),
    ("u / k / j", "(Process screen) cgroups / py-spy stack, asked first / its journal"),
    ("", ""),
    ("Journal", ""),
    ("/ (journal)", 'unit:X prio:err since:"10 min ago" pid:N id:TAG, text or re:REGEX'),
    ("End, f", "follow again after scrolling up; Enter: the whole entry"),
    ("", ""),
    ("Firewall", ""),
    ("h / c", "hottest rules first (packets/s) / conntrack; f on a Process screen: its rules"),
    ("/ (firewall)", "port:443 (ranges, sets)  verdict:drop  table:  chain:  backend:  text"),
    ("", ""),
    ("Diagnose", ""),
    ("s", "stack health: TCP/IP counters as rates (a: all of them) and the sysctls that matter"),
    ("r", "resolver in use; lookup like dig: NAME [TYPE] [@SERVER] [+trace] (l: the prompt)"),
    ("d", "reach host:port: name, route, firewall, listener, connect, TLS, then a verdict"),
)

FILTER_HELP = (
    "Filter terms are ANDed; a bare word matches any column.\n"
    "state:estab  state:time-wait  state:TIME_WAIT   port:443  port:8000-8100  port:>1024\n"
    "sport:22 (local)  dport:5432 (remote)  addr:10.0.0.0/8  addr:192.168.  src:…  dst:…\n"
    "proc:nginx  pid:1234  user:www-data  proto:udp  proto:tcp6  iface:lo\n"
    "!term negates it: !state:listen  !addr:127.0.0.0/8"
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for keys, meaning in KEYS:
            if keys and not meaning:  # a section heading
                table.add_row(Text(keys, style="bold underline"), "")
            else:
                table.add_row(keys, meaning)
        with VerticalScroll(id="help-body"):
            yield Static(Text("netdash — keys", style="bold"))
            yield Static(table)
            yield Static(Text("\n" + FILTER_HELP))
            yield Static(Text("\nEsc closes this help.", style="dim"))
