"""The connection tracking table of one network namespace, in numbers (no Textual).

What is read, all from inside the namespace (the calling thread enters it for the read):

- ``nf_conntrack_count`` and ``nf_conntrack_max`` from ``/proc/sys/net/netfilter``: the sysctl
  files of ``net.*`` are looked up in the namespace of the *calling thread* (the kernel's
  ``net_ctl_header_lookup`` uses ``current->nsproxy``), so, unlike ``/proc/net``, they follow
  ``setns`` without a ``thread-self`` path. ``nf_conntrack_max`` is one global value, read-only
  inside a child namespace.
- the entries, counted by TCP state, protocol, status and address, from
  ``/proc/thread-self/net/nf_conntrack`` (``/proc/net`` would show the main thread's namespace).
  Measured at 10,000 entries: reading and counting it takes ~50 ms, pyroute2's ``Conntrack.dump``
  1.0 s (``dump_entries`` 4.2 s). The netlink dump is the fallback for kernels built without
  ``CONFIG_NF_CONNTRACK_PROCFS``; its socket is created inside the namespace (pyroute2 opens it
  lazily, so the first request must happen inside too, or it silently lists the host).
- per-CPU counters from ``/proc/thread-self/net/stat/nf_conntrack`` (hex, one row per CPU,
  columns named by its header), summed.

A fresh namespace tracks nothing until some rule uses conntrack (``ct state``, ``-m conntrack``,
NAT). An empty table says so in ``errors`` instead of looking like an idle
server. Listing entries needs root (CAP_NET_ADMIN): without it the count and limit are
still shown and ``errors`` says what is missing.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netdash.model import ConntrackSample
from netdash.netns import HOST, NamespaceReader, NetnsTarget
from netdash.sources.errors import PermissionNeeded, SourceError, SourceUnavailable

SYSCTL_ROOT = Path("/proc/sys/net/netfilter")
NET_ROOT = Path("/proc/thread-self/net")
TOP = 10

PROC, NETLINK = "/proc/net/nf_conntrack", "netlink"
METHODS = ("auto", PROC, NETLINK)

#: include/uapi/linux/netfilter/nf_conntrack_common.h, enum ip_conntrack_status
IPS_SEEN_REPLY, IPS_ASSURED = 1 << 1, 1 << 2
#: net/netfilter/nf_conntrack_proto_tcp.c, tcp_conntrack_names (the names conntrack -L prints)
TCP_CT_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
                 "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")  # fmt: skip
#: the protocol names /proc/net/nf_conntrack prints (each l4proto's name), by number
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "icmpv6",
               132: "sctp", 136: "udplite"}  # fmt: skip

NEEDS_ROOT = "listing connection tracking entries needs root (CAP_NET_ADMIN)"
NOT_LOADED = (
    "connection tracking is not loaded (no /proc/sys/net/netfilter/nf_conntrack_count): "
    "the nf_conntrack module loads with the first rule that uses ct, -m conntrack or NAT"
)
NOTHING_TRACKED = (
    "no connection is tracked in this namespace: the table stays empty until a firewall rule "
    "uses connection tracking (ct state, -m conntrack or NAT)"
)


def status_key(proto: str, *, assured: bool, replied: bool) -> str:
    """The ``by_state`` key of a non-TCP entry: its protocol and the status conntrack -L shows
    (``[ASSURED]``, ``[UNREPLIED]``; REPLIED = a reply was seen but the flow is not assured)."""
    if assured:
        return f"{proto} ASSURED"
    return f"{proto} REPLIED" if replied else f"{proto} UNREPLIED"


class Tally:
    """Counts entries as they are parsed; addresses are kept raw and normalised once each."""

    def __init__(self) -> None:
        self.total = 0
        self.by_state: Counter[str] = Counter()
        self.by_proto: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.destinations: Counter[str] = Counter()

    def top(self, which: Counter[str], n: int) -> tuple[tuple[str, int], ...]:
        """The ``n`` addresses with most entries (ties by address), as ``conntrack -L`` prints
        them: the kernel prints IPv6 in full (``fd00:0201:0000:…``), inet_ntop compresses."""
        merged: Counter[str] = Counter()
        for raw, count in which.items():
            merged[normalise_address(raw)] += count
        ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
        return tuple(ranked[:n])


def normalise_address(raw: str) -> str:
    if ":" not in raw:
        return raw
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, raw))
    except OSError:
        return raw


def parse_proc_conntrack(text: str, tally: Tally | None = None) -> Tally:
    """Count the entries of ``/proc/net/nf_conntrack`` (net/netfilter/nf_conntrack_standalone.c,
    ct_seq_show). Each line::

        ipv4     2 tcp      6 117 TIME_WAIT src=A dst=B sport=P dport=Q src=B dst=A … [ASSURED] …
        ipv4     2 udp      17 29 src=A dst=B sport=P dport=Q [UNREPLIED] src=B dst=A … use=2

    l3 name and number, l4 name and number, seconds left, the protocol's state if it has one,
    then the original tuple (first ``src=``/``dst=``), the reply tuple and flags: ``[UNREPLIED]``
    when no reply was seen, ``[ASSURED]`` when the flow is assured.
    """
    tally = tally or Tally()
    by_state, by_proto = tally.by_state, tally.by_proto
    sources, destinations = tally.sources, tally.destinations
    for line in text.splitlines():
        cols = line.split(None, 6)
        at = line.find(" src=")
        if len(cols) < 6 or at < 0:
            continue
        proto = cols[2]
        by_proto[proto] += 1
        if proto == "tcp":
            by_state[cols[5]] += 1
        else:
            assured, replied = "[ASSURED]" in line, "[UNREPLIED]" not in line
            by_state[status_key(proto, assured=assured, replied=replied)] += 1
        # The original tuple comes first: its src= and the dst= after it (some protocols
        # print more before them, e.g. GRE its timeouts).
        end = line.find(" ", at + 5)
        sources[line[at + 5 : end]] += 1
        at = line.find(" dst=", end)
        destinations[line[at + 5 : line.find(" ", at + 5)]] += 1
        tally.total += 1
    return tally


def parse_netlink_entries(messages: Iterable[Any], tally: Tally | None = None) -> Tally:
    """Count pyroute2 ``Conntrack.dump()`` messages (nfnetlink_conntrack: CTA_TUPLE_ORIG's
    addresses and protocol, CTA_STATUS, CTA_PROTOINFO_TCP_STATE) like the /proc parser."""
    tally = tally or Tally()
    for msg in messages:
        orig = msg.get_attr("CTA_TUPLE_ORIG")
        addrs = orig.get_attr("CTA_TUPLE_IP")
        number = orig.get_attr("CTA_TUPLE_PROTO").get_attr("CTA_PROTO_NUM")
        proto = PROTO_NAMES.get(number, "unknown")
        status = msg.get_attr("CTA_STATUS") or 0
        tally.by_proto[proto] += 1
        if proto == "tcp":
            tally.by_state[_tcp_state(msg)] += 1
        else:
            key = status_key(
                proto, assured=bool(status & IPS_ASSURED), replied=bool(status & IPS_SEEN_REPLY)
            )
            tally.by_state[key] += 1
        src = addrs.get_attr("CTA_IP_V4_SRC") or addrs.get_attr("CTA_IP_V6_SRC")
        dst = addrs.get_attr("CTA_IP_V4_DST") or addrs.get_attr("CTA_IP_V6_DST")
        tally.sources[str(src)] += 1
        tally.destinations[str(dst)] += 1
        tally.total += 1
    return tally


def _tcp_state(msg: Any) -> str:
    info = msg.get_attr("CTA_PROTOINFO")
    tcp = info.get_attr("CTA_PROTOINFO_TCP") if info is not None else None
    state = tcp.get_attr("CTA_PROTOINFO_TCP_STATE") if tcp is not None else None
    if state is None:
        return "NONE"
    return TCP_CT_STATES[state] if state < len(TCP_CT_STATES) else f"UNKNOWN({state})"


def parse_stat(text: str) -> dict[str, int]:
    """Sum the per-CPU rows of ``/proc/net/stat/nf_conntrack`` (ct_cpu_seq_show): a header of
    column names, then one row of hex numbers per possible CPU. ``entries`` is left out: every
    row repeats the namespace's total there (it is ``count``, not a per-CPU counter)."""
    lines = text.split("\n")
    names = lines[0].split()
    sums = dict.fromkeys(names, 0)
    for line in lines[1:]:
        values = line.split()
        if len(values) != len(names):
            continue
        for name, value in zip(names, values, strict=True):
            sums[name] += int(value, 16)
    sums.pop("entries", None)
    return sums


class ConntrackReader(NamespaceReader):
    """Samples the conntrack table of ``netns`` (default: the namespace netdash runs in).

    ``method``: "auto" (the /proc table, netlink where it is missing), :data:`PROC` or
    :data:`NETLINK` (for tests and comparisons). :attr:`method_used` says which one the last
    sample came from (None when the entries could not be listed); :attr:`table_read` whether
    they were. The roots are parameters so a test can point the reader at a recorded tree.
    """

    def __init__(
        self,
        netns: NetnsTarget = HOST,
        *,
        method: str = "auto",
        top: int = TOP,
        sysctl_root: Path = SYSCTL_ROOT,
        net_root: Path = NET_ROOT,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: choose from {METHODS}")
        super().__init__(netns)
        self.method = method
        self.top = top
        self.sysctl_root = sysctl_root
        self.net_root = net_root
        self.method_used: str | None = None
        self.table_read = False

    def sample(self) -> ConntrackSample:
        """The table now. Problems go to ``errors`` in words; what could be read is kept."""
        errors: list[str] = []
        with self._inside():
            taken_at = time.monotonic()
            count = self._read_int("nf_conntrack_count")
            if count is None:
                self.method_used, self.table_read = None, False
                return ConntrackSample(0, None, errors=(NOT_LOADED,), taken_at=taken_at)
            limit = self._read_int("nf_conntrack_max")
            stats = self._read_stats(errors)
            tally = self._read_table(errors)
        if count == 0 and not errors:
            # Kernels since 5.x no longer count found/new/insert per CPU, so an empty table
            # is the only sign; on a server whose rules use ct it is never empty for long.
            errors.append(NOTHING_TRACKED)
        return ConntrackSample(
            count=count,
            max=limit,
            by_state=dict(tally.by_state) if tally else {},
            by_proto=dict(tally.by_proto) if tally else {},
            top_sources=tally.top(tally.sources, self.top) if tally else (),
            top_destinations=tally.top(tally.destinations, self.top) if tally else (),
            stats=stats,
            errors=tuple(errors),
            taken_at=taken_at,
        )

    def _read_int(self, name: str) -> int | None:
        try:
            return int((self.sysctl_root / name).read_text().strip())
        except FileNotFoundError:
            return None
        except PermissionError as err:
            raise PermissionNeeded(f"reading {name} needs root") from err

    def _read_stats(self, errors: list[str]) -> dict[str, int]:
        try:
            return parse_stat((self.net_root / "stat" / "nf_conntrack").read_text())
        except FileNotFoundError:
            errors.append("no per-CPU conntrack counters (/proc/net/stat/nf_conntrack missing)")
        except PermissionError:
            errors.append("reading the per-CPU conntrack counters needs root")
        return {}

    def _read_table(self, errors: list[str]) -> Tally | None:
        self.table_read = False
        tally: Tally | None = None
        try:
            if self.method in ("auto", PROC):
                tally = self._read_proc()
            if tally is None:
                tally = self._read_netlink()
        except PermissionNeeded as err:
            errors.append(str(err))
        except SourceError as err:
            errors.append(f"cannot list conntrack entries: {err}")
        self.table_read = tally is not None
        return tally

    def _read_proc(self) -> Tally | None:
        """The table from /proc, or None when this kernel has no /proc table and the method
        allows the netlink fallback."""
        try:
            text = (self.net_root / "nf_conntrack").read_text()
        except FileNotFoundError as err:
            if self.method == PROC:
                raise SourceUnavailable("/proc/net/nf_conntrack is missing") from err
            return None
        except PermissionError as err:
            raise PermissionNeeded(NEEDS_ROOT) from err
        self.method_used = PROC
        return parse_proc_conntrack(text)

    def _read_netlink(self) -> Tally:
        """Dump through a pyroute2 socket made, and first used, inside the namespace (it is
        opened lazily); closed at once, since a sample is one dump."""
        from pyroute2 import Conntrack

        try:
            ct = Conntrack(nfgen_family=socket.AF_UNSPEC)  # both families (default: IPv4)
            try:
                tally = parse_netlink_entries(ct.dump())
            finally:
                ct.close()
        except PermissionError as err:
            raise PermissionNeeded(NEEDS_ROOT) from err
        except OSError as err:
            raise SourceUnavailable(f"netlink conntrack dump failed: {err}") from err
        self.method_used = NETLINK
        return tally


__all__ = [
    "NETLINK",
    "PROC",
    "ConntrackReader",
    "parse_netlink_entries",
    "parse_proc_conntrack",
    "parse_stat",
]
