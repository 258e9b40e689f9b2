"""The Diagnose tab's resolver view: which resolver configuration is in effect, and a lookup
prompt like ``dig`` (``NAME [TYPE] [@SERVER] [+trace]``).

The configuration is said plainly because it is where "could not resolve host" usually starts:
which ``resolv.conf`` (with ``--netns``, entered by setns, the host's file still applies — only
``ip netns exec`` bind-mounts ``/etc/netns/NAME/resolv.conf``), its nameservers, search list
and options, the ``hosts:`` line of nsswitch.conf, and whether systemd-resolved's stub sits in
between.

A lookup asks each nameserver directly (or the one given with ``@``) and shows, per server,
the rcode, the latency and the answers with their TTLs; ``+trace`` resolves from the root
servers (``@SERVER`` then is where the trace starts) and shows each hop as it completes. The
questions run in a thread worker and come back as messages: the UI never waits on the network.
Everything from DNS is data, shown as :class:`rich.text.Text`, never markup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Static

from netdash.sources.dnsconfig import (
    RECORD_TYPES,
    SYSTEMD_STUB,
    DnsAnswer,
    NameServer,
    ResolverConfig,
    RootHints,
    Server,
    ServerAnswer,
    TraceHop,
    TraceResult,
    config_servers,
    format_server,
    hop_server,
    namespace_resolv_conf,
    parse_server,
)
from netdash.textsafe import visible

PROMPT = "lookup: NAME [TYPE] [@SERVER] [+trace]   (l: here, Esc: leave)"


@dataclass(frozen=True, slots=True)
class DigQuery:
    """What the prompt asked for. An address alone asks for its PTR, as ``dig -x`` does."""

    name: str
    rdtype: str
    server: Server | None = None
    trace: bool = False


def parse_dig_query(text: str) -> DigQuery:
    """``NAME [TYPE] [@SERVER] [+trace]`` in any order. Raises ValueError for humans."""
    words = text.split()
    server, trace_it, plain = None, False, []
    for word in words:
        if word.startswith("@"):
            server = parse_server(word[1:])
        elif word.startswith("+"):
            if word.lower() != "+trace":
                raise ValueError(f"{word}: the only option is +trace")
            trace_it = True
        else:
            plain.append(word)
    if len(plain) == 2 and plain[1].upper() in RECORD_TYPES:
        return DigQuery(plain[0], plain[1].upper(), server, trace_it)
    if len(plain) == 2 and plain[0].upper() in RECORD_TYPES:
        return DigQuery(plain[1], plain[0].upper(), server, trace_it)
    if len(plain) == 2:
        raise ValueError(f"record type {plain[1]} is not one of {' '.join(RECORD_TYPES)}")
    if len(plain) != 1:
        raise ValueError("type a name, then optionally a type, @server and +trace")
    return DigQuery(plain[0], "PTR" if is_address(plain[0]) else "A", server, trace_it)


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def config_text(
    config: ResolverConfig,
    servers_override: Sequence[Server] | None,
    netns: str | None,
    netns_file: Path | None,
    root_hints: RootHints | None,
) -> Text:
    """The effective configuration, one fact a line, each with the label on the left."""
    text = Text(no_wrap=False)
    fact(text, "resolv.conf", config.path, resolv_conf_note(config, netns, netns_file))
    if config.error:
        text.append(f"             {visible(config.error)}\n", style="bold red")
    if netns is not None and netns_file is not None and Path(config.path) != netns_file:
        text.append(
            f"             {netns_file} exists but netdash does NOT use it (only "
            f"`ip netns exec {netns}` puts it in place): pass --resolv-conf {netns_file}\n",
            style="yellow",
        )
    listed = "  ".join(config.nameservers) or "none (glibc would try 127.0.0.1)"
    if servers_override:
        asked = "  ".join(format_server(server) for server in servers_override)
        fact(text, "nameservers", asked, f"--nameserver; resolv.conf lists {listed}")
    else:
        fact(text, "nameservers", listed, "")
    fact(text, "search", " ".join(config.search) or "-", "", end="   ")
    fact(text, "options", " ".join(config.options) or "-", "", label_width=0)
    fact(text, "hosts", config.hosts_line or "(no hosts: line)", config.nsswitch_path)
    if config.stub:
        fact(
            text,
            "stub",
            f"systemd-resolved at {SYSTEMD_STUB}",
            "it forwards to its own upstream servers (resolvectl status lists them)",
        )
    hints = "IANA root hints (built in)" if root_hints is None else root_hints.source
    fact(text, "+trace from", hints, "")
    text.rstrip()
    return text


def resolv_conf_note(config: ResolverConfig, netns: str | None, netns_file: Path | None) -> str:
    if netns is None:
        return ""
    if netns_file is not None and Path(config.path) == netns_file:
        return f"netns {netns}'s own file, given with --resolv-conf"
    return f"netns {netns} entered by setns: the host's file still applies"


def fact(
    text: Text, label: str, value: str, note: str, *, end: str = "\n", label_width: int = 12
) -> None:
    text.append(f"{label:<{label_width}} ", style="bold cyan")
    text.append(visible(value))
    if note:
        text.append(f"  ({visible(note)})", style="dim")
    text.append(end)


def records_table(records: Sequence[DnsAnswer]) -> Table:
    """name TTL type value, like dig's answer section."""
    table = Table.grid(padding=(0, 1))
    table.add_column(overflow="fold", ratio=2)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True, style="cyan")
    table.add_column(overflow="fold", ratio=3)
    for record in records:
        table.add_row(
            Text(visible(record.name)),
            Text(str(record.ttl), style="dim"),
            Text(visible(record.type)),
            Text(visible(record.value)),
        )
    return table


def rcode_text(rcode: str | None, error: str | None) -> Text:
    if rcode is None:
        return Text(visible(error or "no reply"), style="bold red")
    return Text(rcode, style="bold green" if rcode == "NOERROR" else "bold yellow")


def ms_text(ms: float | None) -> Text:
    return Text("" if ms is None else f"{ms:.1f} ms", style="dim")


def lookup_view(replies: Sequence[ServerAnswer]) -> list[RenderableType]:
    """Per server: ``server  rcode  latency``, then its answers."""
    parts: list[RenderableType] = []
    for reply in replies:
        line = Text.assemble(
            (visible(reply.server), "bold"), "  ", rcode_text(reply.rcode, reply.error), "  "
        )
        line.append_text(ms_text(reply.ms))
        if reply.rcode is not None and not reply.answers:
            line.append("  no records", style="dim")
        parts.append(line)
        if reply.answers:
            parts.append(Padding(records_table(reply.answers), (0, 0, 0, 2)))
    return parts


def hop_view(hop: TraceHop) -> list[RenderableType]:
    """One hop: ``zone  server (address)  rcode kind  latency``, then what it said — for a
    referral the child zone's servers with their glue, else the records."""
    indent = "  " * hop.depth
    line = Text.assemble(
        indent, (visible(hop.zone), "bold cyan"), "  ", visible(hop_server(hop)), "  "
    )
    line.append_text(rcode_text(hop.rcode, hop.error))
    if hop.rcode is not None:
        line.append(f" {hop.kind}", style="bold" if hop.kind == "answer" else "")
    line.append("  ")
    line.append_text(ms_text(hop.ms))
    parts: list[RenderableType] = [line]
    if hop.rcode is not None and hop.error:
        parts.append(Text(f"{indent}  {visible(hop.error)}", style="yellow"))
    if hop.kind in ("referral", "lame") and any(r.type == "NS" for r in hop.records):
        parts.append(Text(f"{indent}  → {visible(referral_summary(hop.records))}", style="dim"))
    elif hop.records:
        parts.append(Padding(records_table(hop.records), (0, 0, 0, 2 + 2 * hop.depth)))
    return parts


def referral_summary(records: Sequence[DnsAnswer]) -> str:
    """``test. NS ns1.test. 192.0.2.1, ns2.test.`` — servers with their glue addresses."""
    glue: dict[str, list[str]] = {}
    for record in records:
        if record.type in ("A", "AAAA"):
            glue.setdefault(record.name.lower(), []).append(record.value)
    servers = [r for r in records if r.type == "NS"]
    if not servers:
        return "a referral without NS records"
    described = [
        " ".join([server.value, *glue.get(server.value.lower(), ["(no glue)"])])
        for server in servers
    ]
    return f"{servers[0].name} NS " + ", ".join(described)


def trace_outcome(result: TraceResult) -> list[RenderableType]:
    if result.error is not None:
        parts: list[RenderableType] = [Text(f"trace failed: {visible(result.error)}", "bold red")]
    else:
        line = Text.assemble("answer: ", rcode_text(result.rcode, None))
        if not result.answers:
            line.append("  no records", style="dim")
        parts = [line]
    if result.answers:
        parts.append(Padding(records_table(result.answers), (0, 0, 0, 2)))
    return parts


class ResolverPane(Vertical):
    """The configuration above, the prompt, then the last lookup's results (scrollable)."""

    DEFAULT_CSS = """
    ResolverPane { height: 1fr; }
    ResolverPane #resolver-config { height: auto; max-height: 12; padding: 0 1; }
    ResolverPane #resolver-query { height: 3; border: tall $accent; }
    ResolverPane #resolver-results { height: 1fr; padding: 0 1; }
    """

    BINDINGS = [
        Binding("l", "focus_prompt", "Lookup…"),
        Binding("escape", "leave_prompt", "Leave", show=False),
    ]

    class Answered(Message, bubble=False):
        """A plain lookup's replies, from the worker."""

        def __init__(self, generation: int, replies: tuple[ServerAnswer, ...]) -> None:
            super().__init__()
            self.generation, self.replies = generation, replies

    class HopSeen(Message, bubble=False):
        """One hop of a trace, as soon as it is known."""

        def __init__(self, generation: int, hop: TraceHop) -> None:
            super().__init__()
            self.generation, self.hop = generation, hop

    class Traced(Message, bubble=False):
        def __init__(self, generation: int, result: TraceResult) -> None:
            super().__init__()
            self.generation, self.result = generation, result

    class Failed(Message, bubble=False):
        def __init__(self, generation: int, error: str) -> None:
            super().__init__()
            self.generation, self.error = generation, error

    def __init__(
        self,
        config: ResolverConfig,
        servers_override: tuple[Server, ...] | None,
        netns: str | None,
        root_hints: RootHints | None,
        *,
        timeout: float = 2.0,
        netns_etc: Path = Path("/etc/netns"),
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.config = config
        self.servers_override = servers_override or None
        self.netns = netns
        self.root_hints = root_hints
        self.timeout = timeout
        self.netns_file = None if netns is None else namespace_resolv_conf(netns, netns_etc)
        self.generation = 0
        self.busy = False  # a lookup is under way
        self.dig: DigQuery | None = None
        self.parts: list[RenderableType] = []
        self.hops: list[TraceHop] = []

    def compose(self) -> ComposeResult:
        yield Static(self.config_text(), id="resolver-config")
        yield Input(placeholder=PROMPT, id="resolver-query")
        with VerticalScroll(id="resolver-results"):
            yield Static(Text("no lookup yet", style="dim"), id="resolver-answer")

    def on_unmount(self) -> None:
        self.generation += 1  # a trace under way stops before its next question

    def config_text(self) -> Text:
        return config_text(
            self.config, self.servers_override, self.netns, self.netns_file, self.root_hints
        )

    @property
    def servers(self) -> tuple[Server, ...]:
        """Who a lookup without ``@SERVER`` asks: ``--nameserver``, else resolv.conf's."""
        return self.servers_override or config_servers(self.config)

    # -- the prompt ----------------------------------------------------------------------------

    def action_focus_prompt(self) -> None:
        self.query_one("#resolver-query", Input).focus()

    def action_leave_prompt(self) -> None:
        if not self.query_one("#resolver-query", Input).has_focus:
            raise SkipAction()  # Esc goes on to the app
        self.query_one("#resolver-results").focus()

    @on(Input.Submitted, "#resolver-query")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.lookup(event.value)

    def lookup(self, text: str) -> None:
        """Start the lookup ``text`` asks for (``NAME [TYPE] [@SERVER] [+trace]``); the
        results replace the last ones as they arrive."""
        self.generation += 1
        self.hops, self.dig, self.busy = [], None, False
        try:
            query = parse_dig_query(text)
        except ValueError as err:
            self.show(Text(f"{visible(text.strip())}: {visible(str(err))}", "bold red"), [])
            return
        self.dig = query
        if query.trace:
            self.start_trace(query)
            return
        servers = (query.server,) if query.server else self.servers
        if not servers:
            self.show(
                Text(f"no nameserver in {visible(self.config.path)}: give @SERVER", "bold red"), []
            )
            return
        listed = ", ".join(format_server(server) for server in servers)
        self.show(self.title(query, f"asking {listed}…"), [])
        self.busy = True
        generation, timeout = self.generation, self.timeout
        self.run_worker(
            lambda: self.ask(generation, query, servers, timeout),
            thread=True,
            group="resolver-lookup",
            exclusive=True,
        )

    def start_trace(self, query: DigQuery) -> None:
        hints = self.root_hints
        if query.server is not None:
            addr, port = query.server
            hints = RootHints((NameServer(addr, (addr,)),), port, format_server(query.server))
        where = "the root servers" if hints is None else visible(hints.source)
        self.show(self.title(query, f"tracing from {where}…"), [])
        self.busy = True
        generation, timeout = self.generation, self.timeout
        self.run_worker(
            lambda: self.follow(generation, query, hints, timeout),
            thread=True,
            group="resolver-lookup",
            exclusive=True,
        )

    @staticmethod
    def title(query: DigQuery, doing: str) -> Text:
        text = Text.assemble((visible(query.name), "bold"), " ", (query.rdtype, "cyan"))
        text.append(f"  {doing}", style="dim")
        return text

    # -- in the worker thread ------------------------------------------------------------------
    # dnspython is imported by the first lookup, in the worker: not when the app starts.

    def ask(
        self, generation: int, query: DigQuery, servers: tuple[Server, ...], timeout: float
    ) -> None:
        try:
            from netdash.sources.dns import lookup

            replies = lookup(query.name, query.rdtype, servers, timeout=timeout)
        except Exception as err:  # a bad name, or dnspython missing: said, not raised
            self.post_message(self.Failed(generation, str(err) or type(err).__name__))
            return
        self.post_message(self.Answered(generation, replies))

    def follow(
        self, generation: int, query: DigQuery, hints: RootHints | None, timeout: float
    ) -> None:
        def seen(hop: TraceHop) -> None:
            self.post_message(self.HopSeen(generation, hop))

        try:
            from netdash.sources.dnstrace import trace

            result = trace(
                query.name,
                query.rdtype,
                hints,
                timeout=timeout,
                on_hop=seen,
                stop=lambda: generation != self.generation,  # replaced, or the pane is gone
            )
        except Exception as err:
            self.post_message(self.Failed(generation, str(err) or type(err).__name__))
            return
        self.post_message(self.Traced(generation, result))

    # -- back on the UI thread -----------------------------------------------------------------

    def _current(self, message: Answered | HopSeen | Traced | Failed) -> bool:
        """Whether a message is about the lookup shown (not one replaced since)."""
        return message.generation == self.generation and self.dig is not None

    def on_resolver_pane_answered(self, message: Answered) -> None:
        if self._current(message):
            assert self.dig is not None
            self.busy = False
            replied = sum(reply.rcode is not None for reply in message.replies)
            doing = f"{replied} of {len(message.replies)} servers replied"
            self.show(self.title(self.dig, doing), lookup_view(message.replies))

    def on_resolver_pane_hop_seen(self, message: HopSeen) -> None:
        if self._current(message) and self.busy:
            assert self.dig is not None
            self.hops.append(message.hop)
            doing = f"tracing… {len(self.hops)} questions so far"
            parts = [part for hop in self.hops for part in hop_view(hop)]
            self.show(self.title(self.dig, doing), parts)

    def on_resolver_pane_traced(self, message: Traced) -> None:
        if self._current(message):
            assert self.dig is not None
            self.busy = False
            result = message.result
            parts = [part for hop in result.hops for part in hop_view(hop)]
            doing = f"trace: {len(result.hops)} questions"
            self.show(self.title(self.dig, doing), [*parts, *trace_outcome(result)])

    def on_resolver_pane_failed(self, message: Failed) -> None:
        if self._current(message):
            assert self.dig is not None
            self.busy = False
            error = Text(visible(message.error), style="bold red")
            self.show(self.title(self.dig, "failed"), [error])

    def show(self, heading: Text, parts: list[RenderableType]) -> None:
        self.parts = parts
        self.query_one("#resolver-answer", Static).update(Group(heading, *parts))
