"""TCP/IP stack health of one network namespace: kernel counters and the sysctls behind them.

What is read, all from inside the namespace (the calling thread enters it for the read):

- ``/proc/thread-self/net/snmp`` and ``/proc/thread-self/net/netstat``: pairs of lines, a header
  of names then a line of values, both starting with the group (``Tcp: RtoAlgorithm RtoMin …``
  then ``Tcp: 1 200 …``; net/ipv4/proc.c, snmp_seq_show and netstat_seq_show). Every value is
  kept under its kernel name as ``Group.Name`` (``Tcp.RetransSegs``, ``TcpExt.ListenDrops``),
  the names ``nstat`` prints without the separator. ``/proc/net`` would show the namespace of
  the process's main thread, not of the calling thread (see :mod:`netdash.netns`).
- ``/proc/thread-self/net/sockstat``: socket counts now (``TCP: inuse 3 orphan 0 tw 1 …``),
  gauges, kept apart from the counters as ``TCP.inuse`` (upper-case groups, as printed).
- sysctls from ``/proc/sys/net``: the kernel looks ``net.*`` sysctl files up in the namespace
  of the calling thread (``net_ctl_header_lookup`` uses ``current->nsproxy``), so they follow
  ``setns`` without a ``thread-self`` path. Each comes with a plain-language note.

A few snmp fields are not counters but settings or gauges (``Tcp.CurrEstab``, ``Tcp.MaxConn``,
which is -1): they go to ``gauges`` too, so no rate is computed from them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netdash.netns import HOST, NamespaceReader, NetnsTarget

NET_ROOT = Path("/proc/thread-self/net")
SYSCTL_ROOT = Path("/proc/sys")

#: snmp fields that are settings or gauges, not counters (net/ipv4/proc.c prints them along).
GAUGE_FIELDS = frozenset(
    {"Ip.Forwarding", "Ip.DefaultTTL", "Tcp.RtoAlgorithm", "Tcp.RtoMin", "Tcp.RtoMax",
     "Tcp.MaxConn", "Tcp.CurrEstab"}
)  # fmt: skip

#: The counters an on-call engineer looks at first, with what a rising one usually means.
KEY_COUNTERS: dict[str, str] = {
    "Tcp.RetransSegs": "segments sent again: loss or congestion on some path",
    "TcpExt.TCPTimeouts": "retransmission timer expired: a peer or path went silent",
    "Tcp.OutRsts": "resets sent: connections to closed ports, or aborted by this host",
    "Tcp.EstabResets": "established connections reset (by either side)",
    "Tcp.AttemptFails": "connection attempts that failed (refused or reset during handshake)",
    "TcpExt.TCPAbortOnData": "closed with unread data, so a reset was sent",
    "TcpExt.TCPAbortOnTimeout": "given up after too many retransmissions",
    "TcpExt.ListenOverflows": "accept queue full: the application does not accept() fast enough",
    "TcpExt.ListenDrops": "SYNs or handshakes dropped by a listener (overflows included)",
    "TcpExt.SyncookiesSent": "SYN queue full: answered with SYN cookies (a flood or a slow app)",
    "TcpExt.OutOfWindowIcmps": "ICMP errors for segments outside the window (spoofed or stale)",
    "Udp.RcvbufErrors": "UDP datagrams dropped: the receiving socket's buffer was full",
    "Udp.SndbufErrors": "UDP datagrams not sent: the send buffer was full",
    "Udp.NoPorts": "UDP datagrams to a port nobody listens on",
    "Udp.InErrors": "UDP datagrams dropped on receive (buffer errors included)",
}

#: The sysctls shown, by their dotted name, with a plain-language note each.
SYSCTL_NOTES: dict[str, str] = {
    "net.ipv4.tcp_congestion_control": "congestion control for new TCP connections",
    "net.ipv4.tcp_available_congestion_control": "algorithms this kernel can use",
    "net.core.somaxconn": "upper limit of a listen() backlog: a bigger backlog is cut to this",
    "net.ipv4.tcp_max_syn_backlog": "half-open connections a listener keeps before SYN cookies",
    "net.ipv4.ip_local_port_range": "ephemeral ports for outgoing connections: one local "
    "address can have this many connections open to one remote address and port",
    "net.ipv4.tcp_tw_reuse": "reuse TIME_WAIT ports for new outgoing connections "
    "(0 off, 1 on, 2 loopback only)",
    "net.ipv4.tcp_fin_timeout": "seconds an orphaned connection stays in FIN_WAIT_2",
    "net.ipv4.tcp_rmem": "receive buffer per TCP socket: min, default, max bytes",
    "net.ipv4.tcp_wmem": "send buffer per TCP socket: min, default, max bytes",
    "net.netfilter.nf_conntrack_max": "connection tracking table limit: new flows are dropped "
    "when the count reaches it",
    "net.netfilter.nf_conntrack_count": "connections tracked now",
}
#: Sysctls that exist only when their module is loaded: absent is not an error.
OPTIONAL_SYSCTLS = frozenset({"net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_count"})


@dataclass(frozen=True, slots=True)
class Sysctl:
    name: str  # dotted, as `sysctl` prints it
    value: str  # as the kernel prints it, whitespace runs collapsed to one space
    note: str


@dataclass(frozen=True, slots=True)
class StackSample:
    """Counters by ``Group.Name`` (only grow, until a reset), the sysctls, and what failed."""

    counters: Mapping[str, int]
    sysctls: tuple[Sysctl, ...]
    taken_at: float  # time.monotonic()
    errors: tuple[str, ...] = ()
    gauges: Mapping[str, int] = field(default_factory=dict)  # sockstat and snmp settings

    def sysctl(self, name: str) -> Sysctl | None:
        return next((s for s in self.sysctls if s.name == name), None)


def parse_pairs(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` or ``/proc/net/netstat``: for each header line ``Group: A B C``, the
    next line ``Group: 1 2 3`` holds the values; keys are ``Group.A``. A header whose value
    line is missing or of another length (a truncated read) is skipped, not misaligned."""
    result: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in itertools.pairwise(lines):
        group, _, names = header.partition(":")
        vgroup, _, numbers = values.partition(":")
        if vgroup != group or _is_numbers(names) or not _is_numbers(numbers):
            continue
        name_list, value_list = names.split(), numbers.split()
        if len(name_list) != len(value_list):
            continue
        for name, value in zip(name_list, value_list, strict=True):
            result[f"{group}.{name}"] = int(value)
    return result


def _is_numbers(text: str) -> bool:
    parts = text.split()
    return bool(parts) and all(p.lstrip("-").isdigit() for p in parts)


def parse_sockstat(text: str) -> dict[str, int]:
    """``/proc/net/sockstat`` (net/ipv4/proc.c, sockstat_seq_show): ``TCP: inuse 3 orphan 0 tw
    1 alloc 4 mem 2`` — name/value pairs after the group; keys ``TCP.inuse``."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        group, _, rest = line.partition(":")
        words = rest.split()
        for name, value in zip(words[::2], words[1::2], strict=False):
            if value.lstrip("-").isdigit():
                result[f"{group.strip()}.{name}"] = int(value)
    return result


def split_counters(values: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Separate the counters from the few settings and gauges snmp prints among them."""
    counters = {k: v for k, v in values.items() if k not in GAUGE_FIELDS}
    gauges = {k: v for k, v in values.items() if k in GAUGE_FIELDS}
    return counters, gauges


def parse_port_range(value: str) -> tuple[int, int]:
    """``ip_local_port_range`` prints ``32768\\t60999``: first and last port, inclusive."""
    low, high = (int(part) for part in value.split())
    return low, high


@dataclass(frozen=True, slots=True)
class EphemeralRisk:
    """How close the busiest local address is to running out of ephemeral ports."""

    address: str
    sockets: int
    ports: int  # ports in ip_local_port_range
    fill: float  # sockets / ports
    level: str  # "ok", "warning" (>= 50 %), "critical" (>= 90 %)


def ephemeral_risk(
    port_range: tuple[int, int], sockets_per_local_address: Mapping[str, int]
) -> EphemeralRisk | None:
    """Ephemeral-port exhaustion risk: a local address can hold at most one connection per port
    in ``ip_local_port_range`` to a given remote address and port, so the busiest local address
    against the size of the range is the number that matters (a conservative bound: different
    destinations may share a port). None when there are no sockets."""
    if not sockets_per_local_address:
        return None
    ports = max(0, port_range[1] - port_range[0] + 1)
    address, count = max(sockets_per_local_address.items(), key=lambda item: (item[1], item[0]))
    fill = count / ports if ports else float("inf")
    level = "critical" if fill >= 0.9 else "warning" if fill >= 0.5 else "ok"
    return EphemeralRisk(address, count, ports, fill, level)


class StackReader(NamespaceReader):
    """Samples the stack counters and sysctls of ``netns`` (default: netdash's own).

    Keeps an fd on the namespace, so it stays readable even if its name is deleted. The roots
    are parameters so a test can point the reader at a recorded tree.
    """

    def __init__(
        self,
        netns: NetnsTarget = HOST,
        *,
        net_root: Path = NET_ROOT,
        sysctl_root: Path = SYSCTL_ROOT,
    ) -> None:
        super().__init__(netns)
        self.net_root = net_root
        self.sysctl_root = sysctl_root

    def sample(self) -> StackSample:
        """Everything now; a file that cannot be read is said in ``errors``, the rest kept."""
        errors: list[str] = []
        with self._inside():
            taken_at = time.monotonic()
            values: dict[str, int] = {}
            for name in ("snmp", "netstat"):
                values.update(parse_pairs(self._read(name, errors)))
            gauges = parse_sockstat(self._read("sockstat", errors))
            sysctls = self._read_sysctls(errors)
        counters, snmp_gauges = split_counters(values)
        gauges.update(snmp_gauges)
        return StackSample(counters, sysctls, taken_at, tuple(errors), gauges)

    def _read(self, name: str, errors: list[str]) -> str:
        try:
            return (self.net_root / name).read_text()
        except OSError as err:
            errors.append(f"cannot read /proc/net/{name}: {err.strerror or err}")
            return ""

    def _read_sysctls(self, errors: list[str]) -> tuple[Sysctl, ...]:
        found: list[Sysctl] = []
        for name, note in SYSCTL_NOTES.items():
            path = self.sysctl_root / name.replace(".", "/")
            try:
                value = " ".join(path.read_text().split())
            except FileNotFoundError:
                if name not in OPTIONAL_SYSCTLS:
                    errors.append(f"sysctl {name} is missing")
                continue
            except OSError as err:
                errors.append(f"cannot read sysctl {name}: {err.strerror or err}")
                continue
            found.append(Sysctl(name, value, note))
        return tuple(found)


@dataclass(frozen=True, slots=True)
class StackFrame:
    """One sample with per-second rates since the one before and the counters that moved."""

    sample: StackSample
    rates: Mapping[str, float | None]  # None: first sample, new counter, or a reset
    moving: frozenset[str]  # counters that grew since the last sample
    seconds: float | None  # the interval the rates cover; None on the first sample
    resets: tuple[str, ...] = ()  # counters that went backwards


class StackTracker:
    """Turns samples into frames. A counter that goes backwards (the namespace was recreated,
    a counter wrapped) is a reset: its rate is None for that tick, never negative."""

    def __init__(self) -> None:
        self._last: StackSample | None = None

    def update(self, sample: StackSample) -> StackFrame:
        last, self._last = self._last, sample
        if last is None:
            return StackFrame(sample, dict.fromkeys(sample.counters), frozenset(), None)
        seconds = sample.taken_at - last.taken_at
        rates: dict[str, float | None] = {}
        moving: set[str] = set()
        resets: list[str] = []
        for name, value in sample.counters.items():
            before = last.counters.get(name)
            if before is not None and value < before:
                resets.append(name)
            if before is None or value < before or seconds <= 0:
                rates[name] = None
                continue
            rates[name] = (value - before) / seconds
            if value > before:
                moving.add(name)
        return StackFrame(sample, rates, frozenset(moving), seconds, tuple(resets))


__all__ = [
    "KEY_COUNTERS",
    "SYSCTL_NOTES",
    "EphemeralRisk",
    "StackFrame",
    "StackReader",
    "StackSample",
    "StackTracker",
    "Sysctl",
    "ephemeral_risk",
    "parse_pairs",
    "parse_port_range",
    "parse_sockstat",
]
