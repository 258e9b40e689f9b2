"""DNS with dnspython: per-server lookups like ``dig``, and a non-blocking reverse resolver
(PTR, ``/etc/hosts``) for the panes. What needs no dnspython (the resolver configuration,
server spelling, services(5), the records reported) is in :mod:`netdash.sources.dnsconfig`, so
that the app loads dnspython only when a name is first asked: import this module there, not at
start.

Each server is asked directly with ``dns.query`` rather than through ``dns.resolver.Resolver``:
the Resolver hides a SERVFAIL behind ``NoNameservers`` and tries the next server, and what the
user wants to see is exactly which server said what. No Textual here: the reverse resolver's
threads report through a plain callback.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from netdash.sources.dnsconfig import (
    RECORD_TYPES,
    DnsAnswer,
    Server,
    ServerAnswer,
    format_server,
    parse_hosts,
)

try:  # a declared dependency; without it (a bare copy run as another user) the CLI still parses
    import dns.exception
    import dns.message
    import dns.name
    import dns.query
    import dns.rcode
    import dns.rdatatype
    import dns.reversename
    import dns.rrset
except ImportError as err:
    _DNSPYTHON_MISSING: ImportError | None = err
else:
    _DNSPYTHON_MISSING = None


def need_dnspython() -> None:
    """Raise SourceUnavailable, saying why, when dnspython could not be imported."""
    if _DNSPYTHON_MISSING is not None:
        from netdash.sources.errors import SourceUnavailable

        raise SourceUnavailable(f"dnspython is not installed: {_DNSPYTHON_MISSING}")


def query_name(name: str, rdtype: str) -> dns.name.Name:
    """The name to ask for: a PTR query for an address asks for its reverse name."""
    if rdtype == "PTR":
        try:
            return dns.reversename.from_address(name)
        except (ValueError, dns.exception.SyntaxError):
            pass
    return dns.name.from_text(name)


@dataclass(frozen=True, slots=True)
class Exchange:
    """What came back from one server: a reply with its round trip, or an ``error`` that
    says why not (silence, a refused socket, garbage)."""

    reply: dns.message.Message | None
    ms: float | None
    error: str | None = None


def exchange(request: dns.message.Message, server: Server, timeout: float) -> Exchange:
    """Send ``request`` over UDP, again over TCP if the reply is truncated. Never raises for
    what the network or the server did: that is the answer the user asked to see."""
    started = time.perf_counter()
    try:
        reply, _tcp = dns.query.udp_with_fallback(
            request, server[0], timeout=timeout, port=server[1]
        )
    except dns.exception.Timeout:
        return Exchange(None, None, f"no reply in {timeout:g} s")
    except OSError as err:
        return Exchange(None, None, err.strerror or str(err))
    except dns.exception.DNSException as err:
        return Exchange(None, None, f"bad reply: {err}")
    return Exchange(reply, (time.perf_counter() - started) * 1000)


def records_of(rrsets: Sequence[dns.rrset.RRset]) -> tuple[DnsAnswer, ...]:
    """One :class:`DnsAnswer` per record of a message section, in the order received."""
    return tuple(
        DnsAnswer(
            rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rrset.ttl, rdata.to_text()
        )
        for rrset in rrsets
        for rdata in rrset
    )


def query_server(qname: dns.name.Name, rdtype: str, server: Server, timeout: float) -> ServerAnswer:
    """One question to one server over UDP, again over TCP if the reply is truncated."""
    done = exchange(dns.message.make_query(qname, rdtype), server, timeout)
    if done.reply is None:
        return ServerAnswer(format_server(server), None, (), None, done.error)
    rcode = dns.rcode.to_text(done.reply.rcode())
    return ServerAnswer(format_server(server), rcode, records_of(done.reply.answer), done.ms)


def question(name: str, rdtype: str) -> tuple[dns.name.Name, str]:
    """The name and type to ask for, checked: ValueError with a message for humans for an
    unknown type or a bad name (a PTR question for an address asks for its reverse name)."""
    need_dnspython()
    rdtype = rdtype.upper()
    if rdtype not in RECORD_TYPES:
        raise ValueError(f"record type {rdtype} is not one of {' '.join(RECORD_TYPES)}")
    try:
        return query_name(name, rdtype), rdtype
    except dns.exception.DNSException as err:
        raise ValueError(f"'{name}' is not a DNS name: {err}") from None


def lookup(
    name: str, rdtype: str, servers: Sequence[Server], timeout: float = 2.0
) -> tuple[ServerAnswer, ...]:
    """Ask every server at once (a silent one costs ``timeout``, not ``timeout`` per server);
    results in the order of ``servers``. Raises ValueError for an unknown type or bad name."""
    qname, rdtype = question(name, rdtype)
    if not servers:
        return ()
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        return tuple(pool.map(lambda server: query_server(qname, rdtype, server, timeout), servers))


class ReverseResolver:
    """Names for addresses without ever blocking the caller: :meth:`name_of` answers from
    ``/etc/hosts`` or the cache, or returns None and starts a PTR lookup in the background.

    At most ``max_in_flight`` lookups run at once; an address asked for while the pool is full
    is not queued (the pane asks again next frame), so a burst of new addresses cannot build a
    backlog of stale questions. Names are kept for their TTL, failures (NXDOMAIN, SERVFAIL,
    silence) for ``negative_ttl``; ``on_resolved(addr, name)`` runs in the worker thread.
    """

    def __init__(
        self,
        servers: Sequence[Server],
        timeout: float = 1.0,
        max_in_flight: int = 8,
        cache_size: int = 4096,
        *,
        hosts: Path = Path("/etc/hosts"),
        negative_ttl: float = 60.0,
        on_resolved: Callable[[str, str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        need_dnspython()
        self.servers = tuple(servers)
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.cache_size = cache_size
        self.negative_ttl = negative_ttl
        self.on_resolved = on_resolved
        self._clock = clock
        try:
            self._hosts = parse_hosts(hosts.read_text(errors="replace"))
        except OSError:
            self._hosts = {}
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="rdns")
        self._closed = False

    def name_of(self, addr: str) -> str | None:
        """A known name now, or None (unknown yet, or known to have none)."""
        try:
            key = ipaddress.ip_address(addr).compressed
        except ValueError:
            return None
        if key in self._hosts:
            return self._hosts[key]
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[1] > self._clock():
                self._cache.move_to_end(key)
                return cached[0]
            if self._closed or key in self._in_flight:
                return None
            if len(self._in_flight) >= self.max_in_flight or not self.servers:
                return None
            self._in_flight.add(key)
        self._pool.submit(self._resolve, key)
        return None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _resolve(self, addr: str) -> None:
        try:
            name, ttl = self._ask(addr)
        except Exception:  # a worker must never die silently holding its in-flight slot
            name, ttl = None, self.negative_ttl
        with self._lock:
            self._in_flight.discard(addr)
            self._cache[addr] = (name, self._clock() + ttl)
            self._cache.move_to_end(addr)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if self.on_resolved is not None:
            self.on_resolved(addr, name)

    def _ask(self, addr: str) -> tuple[str | None, float]:
        """The first server that replies decides; a silent one passes to the next."""
        qname = dns.reversename.from_address(addr)
        for server in self.servers:
            reply = query_server(qname, "PTR", server, self.timeout)
            if reply.rcode is None:
                continue
            for answer in reply.answers:
                if answer.type == "PTR":
                    return answer.value.rstrip(".") or ".", float(answer.ttl)
            return None, self.negative_ttl
        return None, self.negative_ttl

    def close(self) -> None:
        """Stop taking lookups; running ones finish in the background."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
