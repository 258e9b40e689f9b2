"""Why can't I reach host:port? The troubleshooting checklist (name → route → interface →
firewall → listener → connect → TLS) run in order, each step reported as it completes, ending in
a one-line verdict (:mod:`netdash.diagnose_verdict`). No Textual: ``netdash diagnose`` and the
Diagnose tab's reach pane both call :func:`diagnose` from a thread.

Everything runs inside the chosen network namespace (routes, links, rules, sockets, the DNS
queries and the connect), and traffic goes only to the address the user typed (or its name
resolved to) and to the nameservers in use. The whole diagnosis stays under :data:`BUDGET`
seconds: the connect and TLS timeouts are cut to what is left.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from netdash.diagnose_connect import TLS_PORTS, connect, tls_handshake, watch_peer
from netdash.diagnose_firewall import Packet, firewall_path
from netdash.diagnose_resolve import ask_nameservers, failure_reason, hosts_addresses, nameservers
from netdash.diagnose_steps import (
    connect_step,
    firewall_step,
    firewall_summary,
    interface_step,
    listener_step,
    peer_step,
    route_step,
    tls_step,
)
from netdash.diagnose_verdict import TOKENS, Facts, verdict
from netdash.model import Socket
from netdash.netns import HOST, NetnsTarget
from netdash.sources.dnsconfig import Server
from netdash.sources.errors import SourceError

if TYPE_CHECKING:  # imported when first used: `netdash diagnose` of an address skips DNS
    from netdash.sources.routes import RouteReader

BUDGET = 30.0  # seconds for a whole diagnosis
DEFAULT_TIMEOUT = 5.0
STATUSES = ("ok", "warn", "fail", "skip")
_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


@dataclass(frozen=True, slots=True)
class Target:
    """What the user typed: a name or an address, and a port."""

    host: str
    port: int

    @property
    def address(self) -> str | None:
        """The host when it is an IP address (nothing to resolve)."""
        try:
            return ipaddress.ip_address(self.host).compressed
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Step:
    """One checklist item: ``status`` is ok, warn, fail or skip; ``ms`` its duration."""

    name: str
    status: str
    detail: str
    ms: float


@dataclass(frozen=True, slots=True)
class Diagnosis:
    target: str
    address: str | None
    steps: tuple[Step, ...]
    verdict: str

    @property
    def token(self) -> str:
        return self.verdict.split(":", 1)[0]

    @property
    def reachable(self) -> bool:
        return self.token == "reachable"


@dataclass(frozen=True, slots=True)
class DiagnoseOptions:
    """Where and how to look: ``nameservers`` None means resolv.conf's; ``tls`` None means
    on the usual TLS ports (443, 8443, 993, 995, 465, 636)."""

    nameservers: tuple[Server, ...] | None = None
    resolv_conf: Path = Path("/etc/resolv.conf")
    hosts: Path = Path("/etc/hosts")
    netns: NetnsTarget = HOST
    timeout: float = DEFAULT_TIMEOUT
    tls: bool | None = None
    dns_timeout: float = 2.0


class DiagnosisCancelled(Exception):
    """The caller set the cancel event; the steps so far were reported."""


def socket_target(sock: Socket) -> str | None:
    """What ``d`` on a connection diagnoses: its remote end, or for a listener (or an
    unconnected socket) its own address on this host — a wildcard becomes loopback, where a
    local client would connect. None for UNIX sockets and port 0."""
    if sock.proto == "unix":
        return None
    if sock.remote_addr is not None and sock.remote_port:
        addr, port = sock.remote_addr, sock.remote_port
    elif sock.local_addr is not None and sock.local_port:
        addr, port = sock.local_addr, sock.local_port
        if ipaddress.ip_address(addr).is_unspecified:
            addr = "::1" if sock.family == "inet6" else "127.0.0.1"
    else:
        return None
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def parse_target(text: str) -> Target:
    """``HOST:PORT``, ``ADDR:PORT`` or ``[IPV6]:PORT``. Raises ValueError for humans."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"'{text}' is not [IPV6]:PORT")
        port_text = rest[1:]
        if ipaddress.ip_address(host).version != 6:  # ValueError for a non-address
            raise ValueError(f"'{host}' in brackets is not an IPv6 address")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"'{text}' is not HOST:PORT")
        if ":" in host:
            raise ValueError(f"write an IPv6 address in brackets: [{host}]:{port_text}")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"'{port_text}' is not a port (1-65535)")
    if not _is_address(host) and not _NAME.match(host):
        raise ValueError(f"'{host}' is neither an IP address nor a host name")
    return Target(host, int(port_text))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def diagnose(
    target: Target | str,
    options: DiagnoseOptions | None = None,
    on_step: Callable[[Step], None] | None = None,
    cancel: threading.Event | None = None,
) -> Diagnosis:
    """Run the checklist for ``target``; ``on_step`` is called (in this thread) as each step
    completes. Raises ValueError for a bad target, :class:`DiagnosisCancelled` when ``cancel``
    is set between steps."""
    if isinstance(target, str):
        target = parse_target(target)
    run = _Run(target, options or DiagnoseOptions(), on_step, cancel)
    with run.readers:
        run.all_steps()
    return Diagnosis(str(target), run.facts.address, tuple(run.steps), verdict(run.facts))


class _Run:
    """One diagnosis: the facts found, the steps reported, the time left."""

    def __init__(
        self,
        target: Target,
        options: DiagnoseOptions,
        on_step: Callable[[Step], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.target = target
        self.options = options
        self.on_step = on_step
        self.cancel = cancel
        self.facts = Facts(target.host, target.port, address=target.address)
        self.steps: list[Step] = []
        self.deadline = time.monotonic() + BUDGET
        self.readers = ExitStack()
        self._routes: RouteReader | None = None

    def report(
        self, name: str, status: str, detail: str, started: float, ms: float | None = None
    ) -> None:
        """Record a step, tell the caller, and stop here if the caller cancelled."""
        if ms is None:
            ms = (time.perf_counter() - started) * 1000
        step = Step(name, status, detail, ms)
        self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        if self.cancel is not None and self.cancel.is_set():
            raise DiagnosisCancelled()

    def left(self, wanted: float) -> float:
        """``wanted`` seconds, or what is left of the budget (keeping a second to conclude)."""
        return max(0.1, min(wanted, self.deadline - time.monotonic() - 1.0))

    def all_steps(self) -> None:
        self.resolve()
        if self.facts.address is None:
            return
        packet = self.route()
        if packet is not None:
            self.firewall(packet)
        if self.facts.local:
            self.listener()
        sock = self.connect()
        if sock is not None:
            with sock:
                self.after_connect(sock)

    # ---------------------------------------------------------------------------- steps

    def resolve(self) -> None:
        started = time.perf_counter()
        if self.target.address is not None:
            self.report("resolve", "skip", "an address: nothing to resolve", started)
            return
        name = self.target.host
        from_hosts = hosts_addresses(name, self.options.hosts)
        if from_hosts:
            self.choose(list(from_hosts))
            detail = f"{self.options.hosts}: {', '.join(from_hosts)}"
            self.report("resolve", "ok", detail, started)
            return
        servers: list[Server] | tuple[Server, ...] | None = self.options.nameservers
        if not servers:
            servers, why = nameservers(self.options.resolv_conf)
            if why is not None:
                self.facts.dns_failure = f"cannot resolve {name}: {why}"
                self.report("resolve", "fail", why, started)
                return
        self.ask(name, list(servers), started)

    def ask(self, name: str, servers: list[Server], started: float) -> None:
        answers = []
        timeout = self.left(self.options.dns_timeout)
        for answer in ask_nameservers(name, servers, timeout, self.options.netns):
            answers.append(answer)
            status = "ok" if answer.addresses else "warn" if answer.rcode == "NOERROR" else "fail"
            ms = answer.ms if answer.ms is not None else (time.perf_counter() - started) * 1000
            self.report("resolve", status, answer.describe(), started, ms=ms)
        addresses = list(dict.fromkeys(a for answer in answers for a in answer.addresses))
        if not addresses:
            self.facts.dns_failure = failure_reason(name, answers)
            return
        self.choose(addresses)

    def choose(self, addresses: list[str]) -> None:
        """Connect to the first IPv4 address with a route, else the first IPv6 one with a
        route, else the first of all (the route step then says what is wrong)."""
        routed = [a for a in addresses if self.route_reader().route_get(a).error is None]
        ordered = sorted(routed, key=lambda a: ":" in a) or addresses
        self.facts.address = ordered[0]

    def route_reader(self) -> RouteReader:
        """One rtnetlink reader for the run, opened inside the namespace when first needed."""
        if self._routes is None:
            from netdash.sources.routes import RouteReader

            self._routes = self.readers.enter_context(RouteReader(self.options.netns))
        return self._routes

    def route(self) -> Packet | None:
        started = time.perf_counter()
        assert self.facts.address is not None
        try:
            status, detail, packet = route_step(self.facts, self.route_reader())
        except SourceError as err:
            self.report("route", "skip", str(err), started)
            return None
        self.report("route", status, detail, started)
        started = time.perf_counter()
        status, detail = interface_step(self.facts, self.options.netns)
        self.report("interface", status, detail, started)
        return packet

    def firewall(self, packet: Packet) -> None:
        started = time.perf_counter()
        hooks = ("output", "postrouting")
        if self.facts.local:
            hooks += ("prerouting", "input")
        sample, problem = firewall_step(self.options.netns)
        if sample is None:
            status, detail = ("skip", problem) if problem else ("ok", "no firewall rules at all")
        else:
            self.facts.firewall = firewall_path(sample, packet, hooks)
            status, detail = firewall_summary(self.facts)
            if problem is not None:
                status = "warn" if status == "ok" else status
                detail += f" ({problem})"
        self.report("firewall", status, detail, started)

    def listener(self) -> None:
        started = time.perf_counter()
        status, detail = listener_step(self.facts, self.options.netns)
        self.report("listener", status, detail, started)

    def connect(self) -> socket.socket | None:
        started = time.perf_counter()
        assert self.facts.address is not None
        cancelled = self.cancel.is_set if self.cancel is not None else lambda: False
        result, sock = connect(
            self.facts.address,
            self.target.port,
            self.left(self.options.timeout),
            self.options.netns,
            cancelled,
        )
        self.facts.connect = result
        status, detail = connect_step(result)
        try:
            self.report("connect", status, detail, started)
        except DiagnosisCancelled:
            if sock is not None:
                sock.close()
            raise
        return sock

    def after_connect(self, sock: socket.socket) -> None:
        started = time.perf_counter()
        tls = self.options.tls
        if tls or (tls is None and self.target.port in TLS_PORTS):
            name = None if self.target.address is not None else self.target.host
            self.facts.tls = tls_handshake(sock, name, self.left(self.options.timeout))
            status, detail = tls_step(self.facts.tls, self.target.host)
            self.report("tls", status, detail, started)
            return
        self.facts.peer = watch_peer(sock)
        status, detail = peer_step(self.facts.peer)
        self.report("peer", status, detail, started)


__all__ = [
    "BUDGET",
    "STATUSES",
    "TOKENS",
    "DiagnoseOptions",
    "Diagnosis",
    "DiagnosisCancelled",
    "Step",
    "Target",
    "diagnose",
    "parse_target",
]
