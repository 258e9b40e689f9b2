"""``+trace``: resolve a name iteratively from the root servers, the way a recursive resolver
does, and show every question asked on the way (zone, server, address, rcode, records, time).

Why not ask the configured resolver: when it answers SERVFAIL or a stale address, the trace
shows which delegation is broken — a lame or silent server, missing glue, a CNAME into a zone
that does not exist. Each server is asked with recursion off (RD clear), over UDP and again over
TCP when the reply is truncated. Servers learned from referrals are asked on the port the root
hints use (53 unless given), as ``dig -p PORT +trace`` does, so a test can run a whole hierarchy
on 127.0.0.x.

Bounds: at most ``max_queries`` questions and ``time_limit`` seconds in all; glueless name
servers are resolved by a nested trace at most ``max_depth`` deep, and a name already being
resolved is not resolved again (a glueless loop); CNAME chains are followed for at most
``MAX_CNAMES`` links and never through the same name twice; a referral must go strictly down
the tree, so referrals cannot loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from netdash.sources.dns import exchange, question, records_of
from netdash.sources.dnsconfig import (
    DnsAnswer,
    NameServer,
    RootHints,
    TraceHop,
    TraceResult,
    default_root_hints,
)

try:  # guarded as in dns.py: the CLI's parser must load without dnspython
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdatatype
except ImportError:
    pass

MAX_CNAMES = 8


@dataclass(frozen=True, slots=True)
class _Final:
    """A reply that ends a descent: an answer, an alias to follow, NXDOMAIN or NODATA."""

    rcode: str
    answers: tuple[DnsAnswer, ...]
    cname_target: dns.name.Name | None = None


@dataclass(frozen=True, slots=True)
class _Referral:
    zone: dns.name.Name
    servers: tuple[NameServer, ...]


@dataclass(frozen=True, slots=True)
class _Failed:
    """Why a descent stopped; ``reasons`` are the root causes (why no server was reachable),
    passed up unchanged through nested traces so the message names the real fault once."""

    error: str
    reasons: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"{self.error}: {'; '.join(self.reasons)}" if self.reasons else self.error


@dataclass
class _Budget:
    queries_left: int
    deadline: float
    stop: Callable[[], bool]
    asked: int = 0


def trace(
    name: str,
    rdtype: str = "A",
    hints: RootHints | None = None,
    *,
    timeout: float = 2.0,
    max_queries: int = 64,
    max_depth: int = 3,
    time_limit: float = 30.0,
    on_hop: Callable[[TraceHop], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> TraceResult:
    """Resolve ``name`` from the roots; ``on_hop`` sees each hop as soon as it is known (in
    this thread), and ``stop()`` returning true ends the trace before the next question (so a
    caller going away waits for one timeout at most, not ``time_limit``). Raises ValueError
    for an unknown type or a bad name, as :func:`lookup` does."""
    qname, rdtype = question(name, rdtype)
    budget = _Budget(max_queries, time.monotonic() + time_limit, stop or (lambda: False))
    tracer = _Tracer(hints or default_root_hints(), timeout, max_depth, on_hop, budget)
    answers, rcode, failed = tracer.resolve(qname, rdtype, 0)
    error = None if failed is None else failed.text
    return TraceResult(name, rdtype, tuple(tracer.hops), answers, rcode, error)


@dataclass
class _Tracer:
    hints: RootHints
    timeout: float
    max_depth: int
    on_hop: Callable[[TraceHop], None] | None
    budget: _Budget
    hops: list[TraceHop] = field(default_factory=list)
    cuts: dict[dns.name.Name, tuple[NameServer, ...]] = field(default_factory=dict)
    resolving: dict[dns.name.Name, None] = field(default_factory=dict)  # in order

    def __post_init__(self) -> None:
        self.cuts[dns.name.root] = self.hints.servers

    def resolve(
        self, qname: dns.name.Name, rdtype: str, depth: int
    ) -> tuple[tuple[DnsAnswer, ...], str | None, _Failed | None]:
        """Answers, rcode, failure: descend for ``qname``, then for each CNAME target."""
        answers: list[DnsAnswer] = []
        seen = {qname}
        while True:
            step = self.descend(qname, rdtype, depth)
            if isinstance(step, _Failed):
                return tuple(answers), None, step
            answers.extend(step.answers)
            target = step.cname_target
            if target is None:
                return tuple(answers), step.rcode, None
            if target in seen:
                return tuple(answers), None, _Failed(f"CNAME loop: {target} again")
            if len(seen) > MAX_CNAMES:
                return tuple(answers), None, _Failed(f"more than {MAX_CNAMES} CNAMEs in a row")
            seen.add(target)
            qname = target

    def descend(self, qname: dns.name.Name, rdtype: str, depth: int) -> _Final | _Failed:
        """From the deepest zone cut known for ``qname``, follow referrals to a final reply."""
        zone = qname
        while zone not in self.cuts:
            zone = zone.parent()
        while True:
            step = self.ask_zone(zone, qname, rdtype, depth)
            if not isinstance(step, _Referral):
                return step
            self.cuts[step.zone] = step.servers
            zone = step.zone

    def ask_zone(
        self, zone: dns.name.Name, qname: dns.name.Name, rdtype: str, depth: int
    ) -> _Final | _Referral | _Failed:
        """Ask the zone's servers in turn until one gives a usable reply."""
        asked, unreachable = 0, []
        for server, address in self.addresses(zone, depth, unreachable):
            if self.budget.queries_left <= 0:
                return _Failed(f"gave up after {self.budget.asked} queries")
            if time.monotonic() >= self.budget.deadline:
                return _Failed(f"gave up after {self.budget.asked} queries (time limit)")
            if self.budget.stop():
                return _Failed(f"stopped after {self.budget.asked} queries")
            asked += 1
            step = self.ask(zone, server, address, qname, rdtype, depth)
            if step is not None:
                return step
        if not asked:
            return _Failed(f"no address for any server of {zone}", tuple(unreachable))
        return _Failed(f"no server of {zone} gave a usable reply ({asked} asked)")

    def addresses(
        self, zone: dns.name.Name, depth: int, unreachable: list[str]
    ) -> Iterator[tuple[NameServer, str]]:
        """The zone's glued addresses first (IPv4 before IPv6), then glueless servers, resolved
        only if every glued one failed; why one has no address goes to ``unreachable``."""
        servers = self.cuts[zone]
        glued = [(server, addr) for server in servers for addr in server.addresses]
        yield from sorted(glued, key=lambda pair: ":" in pair[1])
        for server in servers:
            if server.addresses:
                continue
            name = dns.name.from_text(server.name)
            if name.is_subdomain(zone):
                unreachable.append(f"{name} is inside {zone} and the referral gave no glue")
            elif depth >= self.max_depth:
                unreachable.append(f"{name} is glueless, {depth} levels deep already")
            elif name in self.resolving:
                chain = " → ".join(str(each) for each in (*self.resolving, name))
                unreachable.append(f"glueless servers that need each other: {chain}")
            else:
                found, failed = self.server_addresses(name, depth + 1)
                if failed is not None and failed.reasons:
                    unreachable.extend(failed.reasons)
                elif not found:
                    why = "no A or AAAA records" if failed is None else failed.text
                    unreachable.append(f"glueless {name} did not resolve: {why}")
                for addr in found:
                    yield server, addr

    def server_addresses(self, name: dns.name.Name, depth: int) -> tuple[list[str], _Failed | None]:
        """A glueless server's addresses, by a nested trace (A, then AAAA if none)."""
        self.resolving[name] = None
        try:
            for rdtype in ("A", "AAAA"):
                answers, rcode, failed = self.resolve(name, rdtype, depth)
                found = [a.value for a in answers if a.type == rdtype]
                if found:
                    return found, None
                if failed is not None:
                    return [], failed
                if rcode == "NXDOMAIN":
                    return [], _Failed("NXDOMAIN")
            return [], None
        finally:
            del self.resolving[name]

    def ask(
        self,
        zone: dns.name.Name,
        server: NameServer,
        address: str,
        qname: dns.name.Name,
        rdtype: str,
        depth: int,
    ) -> _Final | _Referral | None:
        """One question; the hop is recorded; None when the next server should be tried."""
        request = dns.message.make_query(qname, rdtype, use_edns=0, payload=1232)
        request.flags &= ~dns.flags.RD
        self.budget.queries_left -= 1
        self.budget.asked += 1
        done = exchange(request, (address, self.hints.port), self.timeout)
        kind, error, step = "no reply", done.error, None
        rcode = records = None
        if done.reply is not None:
            kind, error, step = classify(done.reply, zone, qname, rdtype)
            rcode = dns.rcode.to_text(done.reply.rcode())
            sections = (done.reply.answer, done.reply.authority, done.reply.additional)
            records = tuple(record for section in sections for record in records_of(section))
        hop = TraceHop(
            zone=zone.to_text(),
            server=server.name,
            address=address,
            port=self.hints.port,
            qname=qname.to_text(),
            qtype=rdtype,
            rcode=rcode,
            kind=kind,
            records=records or (),
            ms=done.ms,
            error=error,
            depth=depth,
        )
        self.hops.append(hop)
        if self.on_hop is not None:
            self.on_hop(hop)
        return step


def classify(
    reply: dns.message.Message, zone: dns.name.Name, qname: dns.name.Name, rdtype: str
) -> tuple[str, str | None, _Final | _Referral | None]:
    """What a reply from a server of ``zone`` means: (kind, error, step)."""
    rcode = reply.rcode()
    chain, target, complete = follow_chain(reply, qname, rdtype)
    if rcode == dns.rcode.NXDOMAIN:
        return "nxdomain", None, _Final("NXDOMAIN", chain)
    if rcode != dns.rcode.NOERROR:
        return "lame", f"{dns.rcode.to_text(rcode)}: trying the next server", None
    if complete:
        return "answer", None, _Final("NOERROR", chain)
    if chain:
        return "cname", None, _Final("NOERROR", chain, target)
    child = referral_zone(reply, zone, qname)
    if child is not None:
        return "referral", None, _Referral(child, referred_servers(reply, zone, child))
    upward = [r.name for r in reply.authority if r.rdtype == dns.rdatatype.NS and r.name != zone]
    if upward and not reply.flags & dns.flags.AA:
        return "lame", f"refers to {upward[0]}, not down from {zone}: not a server of it", None
    if reply.flags & dns.flags.AA or any(r.rdtype == dns.rdatatype.SOA for r in reply.authority):
        return "nodata", None, _Final("NOERROR", ())
    return "lame", "neither an answer nor a referral down from this zone", None


def follow_chain(
    reply: dns.message.Message, qname: dns.name.Name, rdtype: str
) -> tuple[tuple[DnsAnswer, ...], dns.name.Name, bool]:
    """The answer records from ``qname`` through any CNAMEs in this reply: (records, the
    last name reached, whether records of ``rdtype`` were found for it)."""
    wanted = dns.rdatatype.from_text(rdtype)
    chain: list[dns.rrset.RRset] = []
    name, seen = qname, {qname}
    while True:
        rrsets = [r for r in reply.answer if r.name == name]
        data = [r for r in rrsets if r.rdtype == wanted]
        if data:
            return records_of(chain + data), name, True
        alias = [r for r in rrsets if r.rdtype == dns.rdatatype.CNAME]
        if not alias:
            return records_of(chain), name, False
        chain.append(alias[0])
        name = alias[0][0].target
        if name in seen or len(chain) > MAX_CNAMES:
            return records_of(chain), name, False
        seen.add(name)


def referral_zone(
    reply: dns.message.Message, zone: dns.name.Name, qname: dns.name.Name
) -> dns.name.Name | None:
    """The child zone of a referral: NS records for a name strictly below ``zone`` that is
    ``qname`` or one of its ancestors. An upward or sideways referral is no referral."""
    for rrset in reply.authority:
        if rrset.rdtype != dns.rdatatype.NS or rrset.name == zone:
            continue
        if qname.is_subdomain(rrset.name) and rrset.name.is_subdomain(zone):
            return rrset.name
    return None


def referred_servers(
    reply: dns.message.Message, zone: dns.name.Name, child: dns.name.Name
) -> tuple[NameServer, ...]:
    """The child's servers with their glue. Glue is taken only for names inside ``zone``,
    the part of the tree the replying server is responsible for (the bailiwick rule)."""
    glue: dict[dns.name.Name, list[str]] = {}
    for rrset in reply.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and rrset.name.is_subdomain(zone):
            glue.setdefault(rrset.name, []).extend(rdata.address for rdata in rrset)
    servers = []
    for rrset in reply.authority:
        if rrset.rdtype == dns.rdatatype.NS and rrset.name == child:
            for rdata in rrset:
                target = rdata.target
                servers.append(NameServer(target.to_text().lower(), tuple(glue.get(target, ()))))
    return tuple(servers)
