"""DNS: the resolver configuration in use, per-server lookups like ``dig``, and a non-blocking
reverse resolver (PTR, ``/etc/hosts``, service names from ``/etc/services``) for the panes.

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
from functools import lru_cache
from pathlib import Path

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


RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR", "CAA")
SYSTEMD_STUB = "127.0.0.53"  # systemd-resolved's stub listener (resolved.conf(5))
DNS_PORT = 53

Server = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """What glibc would use: resolv.conf(5) and the ``hosts:`` line of nsswitch.conf(5).
    ``path`` is said because ``--netns`` by setns keeps the host's file (only ``ip netns exec``
    bind-mounts ``/etc/netns/NAME/resolv.conf``)."""

    path: str
    nameservers: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]
    hosts_line: str | None
    nsswitch_path: str
    stub: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    type: str
    ttl: int
    value: str


@dataclass(frozen=True, slots=True)
class ServerAnswer:
    """One server's reply: ``rcode`` is None when nothing came back, and ``error`` says why."""

    server: str
    rcode: str | None
    answers: tuple[DnsAnswer, ...]
    ms: float | None
    error: str | None = None


def parse_resolv_conf(text: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Nameservers, search domains and options. As in glibc, the last ``search``/``domain``
    line wins and ``#``/``;`` start comments."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            nameservers.append(values[0])
        elif key in ("search", "domain"):
            search = values
        elif key == "options":
            options.extend(values)
    return tuple(nameservers), tuple(search), tuple(options)


def parse_nsswitch_hosts(text: str) -> str | None:
    """The sources after ``hosts:`` ("files dns", "files resolve [!UNAVAIL=return] dns")."""
    for line in text.splitlines():
        key, _, rest = line.split("#", 1)[0].partition(":")
        if key.strip() == "hosts":
            return " ".join(rest.split())
    return None


def resolver_config(
    resolv_conf: Path = Path("/etc/resolv.conf"), nsswitch: Path = Path("/etc/nsswitch.conf")
) -> ResolverConfig:
    """Read both files; a missing file is said in ``error``, not raised (glibc then falls back
    to a nameserver on localhost)."""
    error = None
    try:
        nameservers, search, options = parse_resolv_conf(resolv_conf.read_text(errors="replace"))
    except OSError as err:
        nameservers, search, options = (), (), ()
        error = f"{resolv_conf}: {err.strerror or err}"
    try:
        hosts_line = parse_nsswitch_hosts(nsswitch.read_text(errors="replace"))
    except OSError:
        hosts_line = None
    return ResolverConfig(
        path=str(resolv_conf),
        nameservers=nameservers,
        search=search,
        options=options,
        hosts_line=hosts_line,
        nsswitch_path=str(nsswitch),
        stub=SYSTEMD_STUB in nameservers,
        error=error,
    )


def config_servers(config: ResolverConfig) -> tuple[Server, ...]:
    """The nameservers of ``config`` that can be asked (port 53; a ``%scope`` suffix dropped,
    an unparsable line skipped, as glibc skips it)."""
    servers = []
    for text in config.nameservers:
        try:
            servers.append(parse_server(text.split("%", 1)[0]))
        except ValueError:
            continue
    return tuple(servers)


def namespace_resolv_conf(netns: str, netns_etc: Path = Path("/etc/netns")) -> Path | None:
    """``/etc/netns/NAME/resolv.conf`` if it exists: what ``ip netns exec NAME`` would
    bind-mount over ``/etc/resolv.conf`` — and what entering the namespace by setns, as
    ``--netns`` does, does not."""
    path = netns_etc / netns / "resolv.conf"
    return path if path.is_file() else None


def parse_server(text: str) -> Server:
    """``ADDR``, ``ADDR:PORT``, ``[V6]`` or ``[V6]:PORT`` (a bare IPv6 address has no port).
    Raises ValueError with a message for humans."""
    addr, port = text, DNS_PORT
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"'{text}' is not [IPV6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        addr, port_text = text.split(":")
    else:
        port_text = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"'{port_text}' is not a port (1-65535)")
        port = int(port_text)
    try:
        return ipaddress.ip_address(addr).compressed, port
    except ValueError:
        raise ValueError(f"'{addr}' is not an IP address") from None


def format_server(server: Server) -> str:
    addr, port = server
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


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


def parse_hosts(text: str) -> dict[str, str]:
    """Address -> canonical name (the first name on the first line with that address), as
    gethostbyaddr(3) answers from hosts(5)."""
    names: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        try:
            addr = ipaddress.ip_address(words[0].split("%", 1)[0]).compressed
        except ValueError:
            continue
        names.setdefault(addr, words[1])
    return names


def parse_services(text: str) -> dict[tuple[int, str], str]:
    """(port, protocol) -> name from services(5) lines ``name port/proto [aliases]``."""
    names: dict[tuple[int, str], str] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        port, _, proto = words[1].partition("/")
        if port.isdigit() and proto:
            names.setdefault((int(port), proto.lower()), words[0])
    return names


@lru_cache(maxsize=4)
def _services(path: Path) -> dict[tuple[int, str], str]:
    try:
        return parse_services(path.read_text(errors="replace"))
    except OSError:
        return {}


def service_name(port: int, proto: str, services: Path = Path("/etc/services")) -> str | None:
    """The well-known name of ``port`` (read once per file)."""
    return _services(services).get((port, proto.lower()))


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
