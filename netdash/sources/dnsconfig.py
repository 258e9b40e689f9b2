"""DNS without dnspython: the resolver configuration in use (resolv.conf(5), the ``hosts:``
line of nsswitch.conf(5)), how a server is spelled (``ADDR[:PORT]``, ``[V6]:PORT``), hosts(5)
and services(5), the root hints a trace starts from, and the plain records that lookups and
traces report.

Apart from :mod:`netdash.sources.dns` and :mod:`netdash.sources.dnstrace` (which ask servers,
with dnspython) so that the live app, the CLI's parser and the panes can read the configuration
and show results without loading dnspython: importing it costs several MB of resident memory,
and the app needs it only once the user asks a name (``n``, a lookup, a trace, a diagnosis).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


#: IANA's named.root (https://www.internic.net/domain/named.root), the servers and addresses
#: in force since B-root's renumbering of November 2023; parsed by :func:`parse_root_hints`.
IANA_ROOT_HINTS = """\
.                        3600000      NS    A.ROOT-SERVERS.NET.
A.ROOT-SERVERS.NET.      3600000      A     198.41.0.4
A.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:ba3e::2:30
.                        3600000      NS    B.ROOT-SERVERS.NET.
B.ROOT-SERVERS.NET.      3600000      A     170.247.170.2
B.ROOT-SERVERS.NET.      3600000      AAAA  2801:1b8:10::b
.                        3600000      NS    C.ROOT-SERVERS.NET.
C.ROOT-SERVERS.NET.      3600000      A     192.33.4.12
C.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2::c
.                        3600000      NS    D.ROOT-SERVERS.NET.
D.ROOT-SERVERS.NET.      3600000      A     199.7.91.13
D.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2d::d
.                        3600000      NS    E.ROOT-SERVERS.NET.
E.ROOT-SERVERS.NET.      3600000      A     192.203.230.10
E.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:a8::e
.                        3600000      NS    F.ROOT-SERVERS.NET.
F.ROOT-SERVERS.NET.      3600000      A     192.5.5.241
F.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:2f::f
.                        3600000      NS    G.ROOT-SERVERS.NET.
G.ROOT-SERVERS.NET.      3600000      A     192.112.36.4
G.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:12::d0d
.                        3600000      NS    H.ROOT-SERVERS.NET.
H.ROOT-SERVERS.NET.      3600000      A     198.97.190.53
H.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:1::53
.                        3600000      NS    I.ROOT-SERVERS.NET.
I.ROOT-SERVERS.NET.      3600000      A     192.36.148.17
I.ROOT-SERVERS.NET.      3600000      AAAA  2001:7fe::53
.                        3600000      NS    J.ROOT-SERVERS.NET.
J.ROOT-SERVERS.NET.      3600000      A     192.58.128.30
J.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:c27::2:30
.                        3600000      NS    K.ROOT-SERVERS.NET.
K.ROOT-SERVERS.NET.      3600000      A     193.0.14.129
K.ROOT-SERVERS.NET.      3600000      AAAA  2001:7fd::1
.                        3600000      NS    L.ROOT-SERVERS.NET.
L.ROOT-SERVERS.NET.      3600000      A     199.7.83.42
L.ROOT-SERVERS.NET.      3600000      AAAA  2001:500:9f::42
.                        3600000      NS    M.ROOT-SERVERS.NET.
M.ROOT-SERVERS.NET.      3600000      A     202.12.27.33
M.ROOT-SERVERS.NET.      3600000      AAAA  2001:dc3::35
"""
BUILT_IN = "IANA root hints (built in)"


@dataclass(frozen=True, slots=True)
class NameServer:
    """A server of a zone: its name (lower case, with the final dot; the address itself for a
    hint given as an address) and the addresses known for it (none: glueless)."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RootHints:
    """Where a trace starts. ``port`` is used for every server of the trace (see
    :mod:`netdash.sources.dnstrace`)."""

    servers: tuple[NameServer, ...]
    port: int = DNS_PORT
    source: str = BUILT_IN


def parse_root_hints(text: str) -> tuple[NameServer, ...]:
    """named.root / root.hints: the ``.`` NS records name the servers, their A/AAAA records
    give the addresses. Lines are ``NAME [TTL] [CLASS] TYPE DATA``; ``;`` starts a comment."""
    names: list[str] = []
    addresses: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split(";", 1)[0].split()
        words = [w for w in words if not w.isdigit() and w.upper() not in ("IN", "CH", "HS")]
        if len(words) != 3:
            continue
        owner, rtype, data = words[0].lower(), words[1].upper(), words[2]
        if rtype == "NS" and owner == ".":
            names.append(absolute(data))
        elif rtype in ("A", "AAAA"):
            try:
                address = ipaddress.ip_address(data).compressed
            except ValueError:
                continue
            addresses.setdefault(absolute(owner), []).append(address)
    return tuple(NameServer(name, tuple(addresses.get(name, ()))) for name in dict.fromkeys(names))


def absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def default_root_hints() -> RootHints:
    return RootHints(parse_root_hints(IANA_ROOT_HINTS))


def load_root_hints(spec: str) -> RootHints:
    """``FILE_OR_ADDR[:PORT],...``: root hints files and server addresses, in order. The
    addresses' port (all must use the same one) is the port of the whole trace. Raises
    ValueError with a message for humans."""
    servers: list[NameServer] = []
    ports: set[int] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        try:
            addr, port = parse_server(item)
        except ValueError as not_address:
            servers.extend(read_hints_file(Path(item), not_address))
            continue
        ports.add(port)
        servers.append(NameServer(addr, (addr,)))
    if len(ports) > 1:
        raise ValueError(
            f"root hints use one port for every server of the trace, not {sorted(ports)}"
        )
    if not any(server.addresses for server in servers):
        raise ValueError(f"no root server address in '{spec}'")
    return RootHints(tuple(servers), ports.pop() if ports else DNS_PORT, spec)


def read_hints_file(path: Path, not_address: ValueError) -> tuple[NameServer, ...]:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        raise ValueError(
            f"'{path}' is neither an address ({not_address}) nor a readable file "
            f"({err.strerror or err})"
        ) from None
    servers = parse_root_hints(text)
    if not servers:
        raise ValueError(f"{path}: no NS records for '.' (named.root format expected)")
    return servers


@dataclass(frozen=True, slots=True)
class TraceHop:
    """One question to one server. ``kind`` says what the reply meant: ``referral``,
    ``answer``, ``cname`` (an alias whose target is looked up next), ``nxdomain``, ``nodata``,
    ``lame`` (a reply that neither answers nor refers down; the next server is tried) or
    ``no reply`` (silence or a network error, in ``error``). ``depth`` > 0 marks the questions
    of a nested trace that finds a glueless name server's address."""

    zone: str
    server: str
    address: str
    port: int
    qname: str
    qtype: str
    rcode: str | None
    kind: str
    records: tuple[DnsAnswer, ...]
    ms: float | None
    error: str | None = None
    depth: int = 0


@dataclass(frozen=True, slots=True)
class TraceResult:
    """The hops in the order asked, the final answer (the CNAME chain included) and its rcode;
    ``error`` says why the trace stopped short (then ``rcode`` is None)."""

    name: str
    type: str
    hops: tuple[TraceHop, ...]
    answers: tuple[DnsAnswer, ...]
    rcode: str | None
    error: str | None = None


def hop_server(hop: TraceHop) -> str:
    """``name (address:port)``, or the address alone when the name is the address."""
    where = format_server((hop.address, hop.port))
    return where if hop.server == hop.address else f"{hop.server} ({where})"
