"""The connection filter language: what a user types after `/`.

Terms are separated by spaces and ANDed. A bare word matches any column's text. Field terms borrow
`ss`'s vocabulary so muscle memory carries over::

    state:estab  state:time-wait  state:TIME_WAIT   (ss or netstat spelling, any case)
    port:443     port:8000-8100   port:>1024        (either side)
    sport:22     dport:5432                         (local / remote side, as in ss)
    addr:10.0.0.0/8  addr:192.168.  addr:::1        (either side; CIDR, text prefix or exact)
    src:… dst:…                                     (local / remote address)
    proc:nginx   pid:1234   user:www-data   proto:udp   iface:lo
    !state:listen                                   (negation)

Compiling is separate from matching so a bad term is reported once, as a :class:`QueryError` with a
message fit for the filter bar, and matching 100,000 rows does no parsing at all.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket as _socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from netdash.model import Owner, Socket


class QueryError(ValueError):
    """A term the user typed cannot be understood; ``str()`` says which and why."""


class Subject(Protocol):
    """What a filter looks at: the socket, its owners and its row text (lower case)."""

    @property
    def sock(self) -> Socket: ...

    @property
    def owners(self) -> tuple[Owner, ...]: ...

    @property
    def text(self) -> str: ...


Check = Callable[[Subject], bool]

FIELDS = (
    "state",
    "port",
    "sport",
    "dport",
    "addr",
    "src",
    "dst",
    "proc",
    "pid",
    "user",
    "proto",
    "iface",
)

# Every spelling users bring from ss, netstat and the kernel, folded to lower case without - and _.
_STATE_ALIASES: dict[str, tuple[str, ...]] = {
    "estab": ("ESTABLISHED",),
    "established": ("ESTABLISHED",),
    "synsent": ("SYN_SENT",),
    "synrecv": ("SYN_RECV", "NEW_SYN_RECV"),
    "synreceived": ("SYN_RECV", "NEW_SYN_RECV"),
    "newsynrecv": ("NEW_SYN_RECV",),
    "finwait1": ("FIN_WAIT1",),
    "finwait2": ("FIN_WAIT2",),
    "timewait": ("TIME_WAIT",),
    "close": ("CLOSE",),
    "closed": ("CLOSE",),
    "closewait": ("CLOSE_WAIT",),
    "lastack": ("LAST_ACK",),
    "listen": ("LISTEN",),
    "listening": ("LISTEN",),
    "closing": ("CLOSING",),
    "unconn": ("UNCONN",),
    "unconnected": ("UNCONN",),
}
# ss's state groups (ss(8), "STATE-FILTER").
_CONNECTED = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "CLOSING",
    "NEW_SYN_RECV",
)
_STATE_ALIASES["connected"] = _CONNECTED
_STATE_ALIASES["synchronized"] = tuple(s for s in _CONNECTED if s not in ("SYN_SENT", "SYN_RECV"))
_STATE_ALIASES["bucket"] = ("SYN_RECV", "NEW_SYN_RECV", "TIME_WAIT")
_STATE_ALIASES["big"] = (
    *(s for s in _CONNECTED if s not in ("SYN_RECV", "TIME_WAIT")),
    "LISTEN",
    "CLOSE",
    "UNCONN",
)


@dataclass(frozen=True)
class Query:
    """A compiled filter. ``text`` is what the user typed, for showing and for narrowing checks."""

    text: str
    checks: tuple[Check, ...]

    def __call__(self, subject: Subject) -> bool:
        return all(check(subject) for check in self.checks)

    @property
    def empty(self) -> bool:
        return not self.checks

    def narrows(self, previous: Query | None) -> bool:
        """True when this query can only remove rows that ``previous`` kept.

        Typing more letters of the last word, or adding a term, only ever narrows; so the pane can
        filter the current view instead of all 100,000 rows.
        """
        if previous is None or previous.empty:
            return False
        old, new = previous.text.split(), self.text.split()
        if len(new) < len(old) or old[:-1] != new[: len(old) - 1]:
            return False
        last_old, last_new = old[-1], new[len(old) - 1]
        if last_new == last_old:
            return True

        # A longer bare word is a narrower substring match; field values are not (port:8 vs 80),
        # and a bare word that became a field term ("state" -> "state:listen") is a new question.
        def is_bare(word: str) -> bool:
            return ":" not in word and not word.startswith("!") and '"' not in word

        return is_bare(last_old) and is_bare(last_new) and last_new.startswith(last_old)


def compile_query(text: str) -> Query:
    """Parse ``text`` into a :class:`Query`, raising :class:`QueryError` on a bad term."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise QueryError(f"unbalanced quote in filter: {err}") from None
    return Query(text=text.strip(), checks=tuple(_compile_term(word) for word in words))


def _compile_term(word: str) -> Check:
    negate = word.startswith("!")
    if negate:
        word = word[1:]
        if not word:
            raise QueryError("'!' must be followed by a term to negate, e.g. !state:listen")
    field, sep, value = word.partition(":")
    if sep and field.lower() in FIELDS:
        check = _compile_field(field.lower(), value)
    elif sep and field.isalpha() and value and not _looks_like_address(word):
        raise QueryError(f"unknown field '{field}:' (fields: {', '.join(f + ':' for f in FIELDS)})")
    else:
        check = _compile_text(word)
    if negate:
        return lambda subject, _check=check: not _check(subject)
    return check


def _looks_like_address(word: str) -> bool:
    """``fe80:…`` or ``::1`` typed as free text is an address, not an unknown field."""
    try:
        ipaddress.ip_address(word.split("%")[0])
    except ValueError:
        return False
    return True


def _compile_text(word: str) -> Check:
    needle = word.lower()
    return lambda subject: needle in subject.text


def _compile_field(field: str, value: str) -> Check:
    if not value:
        raise QueryError(f"'{field}:' needs a value, e.g. {_EXAMPLES[field]}")
    return _FIELD_COMPILERS[field](value)


_EXAMPLES = {
    "state": "state:estab",
    "port": "port:443",
    "sport": "sport:22",
    "dport": "dport:5432",
    "addr": "addr:10.0.0.0/8",
    "src": "src:127.0.0.1",
    "dst": "dst:10.1.",
    "proc": "proc:nginx",
    "pid": "pid:1234",
    "user": "user:root",
    "proto": "proto:tcp",
    "iface": "iface:lo",
}


def parse_states(value: str) -> tuple[str, ...]:
    """Map an ss or netstat state name (or a comma list of them) to kernel state names."""
    states: list[str] = []
    for part in value.split(","):
        folded = part.lower().replace("-", "").replace("_", "")
        if folded not in _STATE_ALIASES:
            raise QueryError(
                f"unknown state '{part}' (try estab, syn-sent, syn-recv, fin-wait-1, fin-wait-2, "
                "time-wait, close-wait, last-ack, listen, closing, unconn, connected)"
            )
        states.extend(_STATE_ALIASES[folded])
    return tuple(states)


def _compile_state(value: str) -> Check:
    wanted = frozenset(parse_states(value))
    return lambda subject: subject.sock.state in wanted


def parse_port_range(value: str) -> tuple[int, int]:
    """``443``, ``8000-8100``, ``>1024``, ``<=1023`` or a service name → inclusive (low, high)."""
    for op, make in (
        (">=", lambda n: (n, 65535)),
        ("<=", lambda n: (0, n)),
        (">", lambda n: (n + 1, 65535)),
        ("<", lambda n: (0, n - 1)),
    ):
        if value.startswith(op):
            return make(_port_number(value[len(op) :]))
    low, dash, high = value.partition("-")
    if dash and low and high:
        first, last = _port_number(low), _port_number(high)
        if first > last:
            raise QueryError(f"port range '{value}' is backwards; write {last}-{first}")
        return first, last
    port = _port_number(value)
    return port, port


def _port_number(text: str) -> int:
    if text.isdigit():
        port = int(text)
        if port > 65535:
            raise QueryError(f"port {port} is out of range (0-65535)")
        return port
    try:
        return _socket.getservbyname(text)  # /etc/services, a local file: never the network
    except OSError:
        raise QueryError(f"'{text}' is not a port number, range or known service") from None


def _compile_ports(value: str, sides: str) -> Check:
    low, high = parse_port_range(value)

    def within(port: int | None) -> bool:
        return port is not None and low <= port <= high

    if sides == "local":
        return lambda subject: within(subject.sock.local_port)
    if sides == "remote":
        return lambda subject: within(subject.sock.remote_port)
    return lambda subject: within(subject.sock.local_port) or within(subject.sock.remote_port)


@lru_cache(maxsize=65536)
def _parsed_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_matcher(value: str) -> Callable[[str | None], bool]:
    """CIDR (``10.0.0.0/8``), an exact address, or a text prefix (``192.168.``)."""
    if "/" in value:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            message = f"'{value}' is not a valid network (e.g. 10.0.0.0/8, fd00::/8)"
            raise QueryError(message) from None

        def in_network(addr: str | None) -> bool:
            parsed = _parsed_address(addr) if addr else None
            return parsed is not None and parsed.version == network.version and parsed in network

        return in_network
    exact = _parsed_address(value)
    if exact is not None:
        return lambda addr: addr is not None and _parsed_address(addr) == exact
    prefix = value.lower()
    return lambda addr: addr is not None and addr.lower().startswith(prefix)


def _compile_addr(value: str, sides: str) -> Check:
    match = address_matcher(value)
    if sides == "local":
        return lambda subject: match(subject.sock.local_addr)
    if sides == "remote":
        return lambda subject: match(subject.sock.remote_addr)
    return lambda subject: match(subject.sock.local_addr) or match(subject.sock.remote_addr)


def _compile_proc(value: str) -> Check:
    needle = value.lower()
    return lambda subject: any(needle in owner.comm.lower() for owner in subject.owners)


def _compile_pid(value: str) -> Check:
    if not value.isdigit():
        raise QueryError(f"pid:'{value}' is not a number")
    pid = int(value)
    return lambda subject: any(owner.pid == pid for owner in subject.owners)


def _compile_user(value: str) -> Check:
    """Matches an owner's user name or uid; sockets without visible owners match by socket uid."""
    name = value.lower()
    uid = int(value) if value.isdigit() else None

    def matches(subject: Subject) -> bool:
        if subject.owners:
            return any((o.user or "").lower() == name or o.uid == uid for o in subject.owners)
        return uid is not None and subject.sock.uid == uid

    return matches


_PROTOCOLS: dict[str, tuple[str | None, str | None]] = {
    "tcp": ("tcp", None),
    "udp": ("udp", None),
    "unix": ("unix", None),
    "tcp4": ("tcp", "inet"),
    "tcp6": ("tcp", "inet6"),
    "udp4": ("udp", "inet"),
    "udp6": ("udp", "inet6"),
    "inet": (None, "inet"),
    "inet6": (None, "inet6"),
    "ipv4": (None, "inet"),
    "ipv6": (None, "inet6"),
}


def _compile_proto(value: str) -> Check:
    wanted: list[tuple[str | None, str | None]] = []
    for part in value.lower().split(","):
        if part not in _PROTOCOLS:
            raise QueryError(f"unknown protocol '{part}' (tcp, udp, unix, tcp4, tcp6, udp4, udp6)")
        wanted.append(_PROTOCOLS[part])

    def matches(subject: Subject) -> bool:
        sock = subject.sock
        return any(
            (p is None or sock.proto == p) and (f is None or sock.family == f) for p, f in wanted
        )

    return matches


def _compile_iface(value: str) -> Check:
    return lambda subject: subject.sock.interface == value


_FIELD_COMPILERS: dict[str, Callable[[str], Check]] = {
    "state": _compile_state,
    "port": lambda v: _compile_ports(v, "either"),
    "sport": lambda v: _compile_ports(v, "local"),
    "dport": lambda v: _compile_ports(v, "remote"),
    "addr": lambda v: _compile_addr(v, "either"),
    "src": lambda v: _compile_addr(v, "local"),
    "dst": lambda v: _compile_addr(v, "remote"),
    "proc": _compile_proc,
    "pid": _compile_pid,
    "user": _compile_user,
    "proto": _compile_proto,
    "iface": _compile_iface,
}


def quote_value(value: str) -> str:
    """Quote a value for a filter term so a group like a command name with spaces survives."""
    return shlex.quote(value)


def joined(terms: Sequence[str]) -> str:
    return " ".join(term for term in terms if term)
