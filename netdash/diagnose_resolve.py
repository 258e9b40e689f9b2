"""The name step of a diagnosis: ``/etc/hosts`` first, as glibc's ``hosts: files dns`` does,
then every nameserver asked directly for A and AAAA (``dns.query`` through
:func:`netdash.sources.dns.query_server`), so the user sees which server said what: one
answering NXDOMAIN while another answers is the kind of thing "Could not resolve host" hides.

Queries run at once, each from a thread that enters the diagnosed network namespace first (a
nameserver on 127.0.0.53 there is not the host's). Search domains are not applied: the name is
asked as typed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from netdash.netns import NetnsTarget, entered
from netdash.sources.dnsconfig import (
    Server,
    ServerAnswer,
    config_servers,
    format_server,
    resolver_config,
)
from netdash.textsafe import visible

ADDRESS_TYPES = ("A", "AAAA")


@dataclass(frozen=True, slots=True)
class NameAnswer:
    """What one nameserver said about a name, A and AAAA together."""

    server: str
    addresses: tuple[str, ...]
    rcode: str | None  # NXDOMAIN/SERVFAIL/... if either query got one, else NOERROR; None: silent
    error: str | None  # why nothing came back
    ms: float | None  # the slower of the two queries

    def describe(self) -> str:
        if self.rcode is None:
            return f"{self.server}: {self.error or 'no reply'}"
        if self.addresses:
            return f"{self.server}: {', '.join(self.addresses)}"
        if self.rcode == "NOERROR":
            return f"{self.server}: no A or AAAA record (NOERROR, no data)"
        return f"{self.server}: {self.rcode}"


def nameservers(resolv_conf: Path) -> tuple[list[Server], str | None]:
    """resolv.conf's nameservers (a line that is not an address is skipped) and, when there is
    none, why."""
    config = resolver_config(resolv_conf)
    servers = list(config_servers(config))
    if servers:
        return servers, None
    return servers, config.error or f"no nameserver in {resolv_conf}"


def hosts_addresses(name: str, hosts: Path) -> tuple[str, ...]:
    """Every address hosts(5) gives ``name`` (canonical name or alias, case-insensitive)."""
    try:
        text = hosts.read_text(errors="replace")
    except OSError:
        return ()
    wanted = name.rstrip(".").lower()
    found: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and wanted in (w.lower() for w in words[1:]):
            try:
                found.append(ipaddress.ip_address(words[0].split("%", 1)[0]).compressed)
            except ValueError:
                continue
    return tuple(dict.fromkeys(found))


def ask_nameservers(
    name: str, servers: Sequence[Server], timeout: float, netns: NetnsTarget
) -> Iterator[NameAnswer]:
    """Each server's :class:`NameAnswer`, yielded as it completes (both of its queries done).
    Raises ValueError when ``name`` is not a DNS name."""
    from netdash.sources.dns import query_name, query_server  # dnspython: loaded on first use

    qname = query_name(name, "A")
    if not servers:
        return

    def ask(server: Server, rdtype: str) -> ServerAnswer:
        with entered(netns):
            return query_server(qname, rdtype, server, timeout)

    with ThreadPoolExecutor(max_workers=2 * len(servers), thread_name_prefix="diag-dns") as pool:
        futures = {
            server: [pool.submit(ask, server, rdtype) for rdtype in ADDRESS_TYPES]
            for server in servers
        }
        pending = {f: server for server, pair in futures.items() for f in pair}
        done_servers: set[Server] = set()
        for future in as_completed(pending):
            server = pending[future]
            if server in done_servers or not all(f.done() for f in futures[server]):
                continue
            done_servers.add(server)
            yield combine(server, [f.result() for f in futures[server]])


def combine(server: Server, replies: Sequence[ServerAnswer]) -> NameAnswer:
    """One answer from the A and the AAAA reply of one server."""
    addresses = tuple(
        visible(answer.value)
        for reply in replies
        for answer in reply.answers
        if answer.type in ADDRESS_TYPES
    )
    rcodes = [reply.rcode for reply in replies if reply.rcode is not None]
    bad = [rcode for rcode in rcodes if rcode != "NOERROR"]
    times = [reply.ms for reply in replies if reply.ms is not None]
    return NameAnswer(
        server=format_server(server),
        addresses=addresses,
        rcode=(bad or rcodes or [None])[0],
        error=next((reply.error for reply in replies if reply.error), None),
        ms=max(times) if times else None,
    )


def failure_reason(name: str, answers: Sequence[NameAnswer]) -> str:
    """Why ``name`` got no address, in the words of the servers (for the verdict)."""
    said = {answer.rcode for answer in answers}
    if said == {"NXDOMAIN"}:
        servers = ", ".join(answer.server for answer in answers)
        return f"{name} does not exist (NXDOMAIN from {servers})"
    if said == {None}:
        return f"no nameserver answered for {name} ({'; '.join(a.describe() for a in answers)})"
    if said == {"NOERROR"}:
        return f"{name} exists but has no A or AAAA record"
    return f"{name} did not resolve: {'; '.join(answer.describe() for answer in answers)}"


def first_address(answers: Sequence[NameAnswer], prefer: Callable[[str], bool]) -> str | None:
    """The address to connect to: the first one ``prefer`` accepts (one with a route), else
    the first one at all."""
    every = [addr for answer in answers for addr in answer.addresses]
    return next((addr for addr in every if prefer(addr)), every[0] if every else None)
