"""The one-line verdict of a diagnosis, from what its steps found.

Each verdict starts with one token — reachable, refused, rejected, timeout, unreachable,
dns-failure, reset — and then says why in the terms of the troubleshooting checklists
(Could not resolve host, ECONNREFUSED, ETIMEDOUT, ENETUNREACH/EHOSTUNREACH, ECONNRESET), naming
the firewall rule or the listener that explains the outcome when one does. A pure function of
:class:`Facts`, so every branch can be tested without a network.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from netdash.diagnose_connect import ConnectResult, PeerCheck, TlsSummary
from netdash.diagnose_firewall import FirewallPath, RuleHit
from netdash.model import RouteLookup, Socket

#: An EHOSTUNREACH sooner than this came from an ICMP error, not from ARP/NDP giving up
#: (3 probes a second apart: net.ipv4.neigh.*.mcast_solicit, retrans_time_ms).
FAST_MS = 1000.0
TOKENS = ("reachable", "refused", "rejected", "timeout", "unreachable", "dns-failure", "reset")


@dataclass
class Facts:
    """What a diagnosis has found so far (the run's working state; steps fill it in)."""

    host: str
    port: int
    address: str | None = None
    dns_failure: str | None = None
    route: RouteLookup | None = None
    local: bool = False
    firewall: FirewallPath | None = None
    listeners: tuple[Socket, ...] | None = None  # TCP LISTEN sockets on the port (local only)
    links_down: str | None = None  # with no route: the down interfaces whose prefix holds it
    connect: ConnectResult | None = None
    tls: TlsSummary | None = None
    peer: PeerCheck | None = None

    @property
    def where(self) -> str:
        addr = self.address or self.host
        return f"[{addr}]:{self.port}" if ":" in addr else f"{addr}:{self.port}"


def verdict(facts: Facts) -> str:
    """The verdict line; its first word is one of :data:`TOKENS`."""
    if facts.dns_failure is not None or facts.address is None:
        return f"dns-failure: {facts.dns_failure or f'{facts.host} has no address'}"
    result = facts.connect
    if result is None:
        return f"unreachable: the connection to {facts.where} could not be tried"
    if result.outcome == "connected":
        return _connected(facts)
    if result.outcome == "refused":
        return _refused(facts, result)
    if result.outcome == "timeout":
        return _timeout(facts, result)
    if result.outcome == "reset":
        return (  # the handshake completed, then a RST came before connect() returned
            f"reset: {facts.where} reset the connection as soon as it was made: the service "
            "behind the port (a wrapper, a proxy without backend, a connection limit)"
        )
    return _unreachable(facts, result)


def _connected(facts: Facts) -> str:
    assert facts.connect is not None
    ms = f"{facts.connect.ms:.1f} ms"
    peer, tls = facts.peer, facts.tls
    if tls is not None and tls.reset:
        return (
            f"reset: TCP to {facts.where} connects ({ms}) but the peer hung up during the TLS "
            "handshake (not a TLS port, or the server refused this client)"
        )
    if peer is not None and peer.outcome in ("reset", "closed"):
        how = "reset" if peer.outcome == "reset" else "closed"
        return (
            f"reset: {facts.where} accepts the connection ({ms}) and {how} it at once: the "
            "service behind the port (a wrapper, a proxy without backend, a connection limit)"
        )
    text = f"reachable: connected to {facts.where} in {ms}"
    if tls is not None:
        text += f"; {tls_text(tls)}"
    elif peer is not None and peer.banner:
        text += f"; it says {peer.banner!r}"
    return text


def tls_text(tls: TlsSummary) -> str:
    if tls.error is not None and tls.protocol is None:
        return f"TLS failed: {tls.error}"
    parts = [tls.protocol or "TLS", tls.cipher or ""]
    if tls.subject is not None:
        parts.append(f"certificate {tls.subject}")
        if tls.self_signed:
            parts.append("(self-signed)")
    if tls.not_after is not None:
        days = tls.days_left() or 0.0
        when = tls.not_after.strftime("%Y-%m-%d")
        parts.append(f"expired {when}" if days < 0 else f"expires {when} ({days:.0f} days)")
    if tls.error:
        parts.append(f"({tls.error})")
    return " ".join(part for part in parts if part)


def _local_hit(facts: Facts, want: str) -> RuleHit | None:
    """The local rule that explains an outcome: "refuse" (reset or port-unreachable),
    "prohibit" (an ICMP reject that is not one), "drop"; a certain one before a maybe."""
    if facts.firewall is None:
        return None
    hits = [hit for hit in facts.firewall.hits if _explains(hit, want)]
    hits.sort(key=lambda hit: not hit.certain)
    return hits[0] if hits else None


def _explains(hit: RuleHit, want: str) -> bool:
    if want == "drop":
        return hit.action == "drop"
    return hit.action == "reject" and hit.refuses == (want == "refuse")


def _rule_text(hit: RuleHit) -> str:
    return ("" if hit.certain else "probably ") + hit.describe()


def _refused(facts: Facts, result: ConnectResult) -> str:
    hit = _local_hit(facts, "refuse")
    if hit is not None:
        how = hit.reject_with or "reject"
        rule = _rule_text(hit)
        return f"rejected: {facts.where} is refused ({how}) by the local firewall: {rule}"
    if result.icmp is not None:
        return (
            f"rejected: {result.icmp.source} answered with ICMP {result.icmp.name}: a firewall "
            "REJECT rule (a closed port answers with a TCP reset, not ICMP)"
        )
    if facts.local:
        return _refused_locally(facts)
    return (
        f"refused: {facts.where} answered with a TCP reset: nothing listens on port "
        f"{facts.port} there, or a firewall on the path rejects it with a TCP reset"
    )


def _refused_locally(facts: Facts) -> str:
    listeners = facts.listeners or ()
    if not listeners:
        return f"refused: nothing listens on port {facts.port} on this host ({facts.where})"
    bound = ", ".join(sorted({socket_text(s) for s in listeners}))
    if any(accepts(s, facts.address or "") for s in listeners):
        return f"refused: {facts.where} is refused although {bound} listens (a reset on the way?)"
    if all(_is_loopback(s.local_addr) for s in listeners):
        return (
            f"refused: the service listens only on {bound} (loopback), so {facts.where} is "
            "refused: bind it to 0.0.0.0 (or this address) to accept other connections"
        )
    return f"refused: port {facts.port} listens only on {bound}, not on {facts.address}"


def accepts(sock: Socket, addr: str) -> bool:
    """Whether a listener takes connections to ``addr``: its own address, or the wildcard of
    the family (``::`` takes IPv4 too unless IPV6_V6ONLY, which sock_diag does not say; a
    dual-stack ``::`` is Linux's default)."""
    try:
        wanted = ipaddress.ip_address(addr)
        bound = ipaddress.ip_address(sock.local_addr or "")
    except ValueError:
        return False
    if isinstance(bound, ipaddress.IPv6Address) and bound.ipv4_mapped is not None:
        bound = bound.ipv4_mapped
    if bound.is_unspecified:
        return bound.version == wanted.version or bound.version == 6
    return bound == wanted


def _timeout(facts: Facts, result: ConnectResult) -> str:
    hit = _local_hit(facts, "drop")
    waited = result.error or "no answer"
    if hit is not None:
        return f"timeout: {waited}: dropped by the local firewall: {_rule_text(hit)}"
    return (
        f"timeout: {waited} from {facts.where}: a DROP rule on the path or at the peer, "
        "or the host is down (nothing on this host drops it)"
    )


def _unreachable(facts: Facts, result: ConnectResult) -> str:
    icmp = result.icmp
    if icmp is not None and icmp.prohibited:
        hit = _local_hit(facts, "prohibit")
        rule = f": {_rule_text(hit)}" if hit is not None else ""
        who = "the local firewall" if hit is not None else icmp.source
        return f"rejected: {who} answered with ICMP {icmp.name} (connect: {result.error}){rule}"
    if result.outcome == "denied":
        return _denied(facts, result)
    hit = _local_hit(facts, "prohibit")
    if hit is not None and hit.certain:
        return f"rejected: {result.error}: by the local firewall: {_rule_text(hit)}"
    route = facts.route
    if route is not None and route.error is not None:
        hint = f": {facts.links_down} is down" if facts.links_down else ": check `ip route`"
        return f"unreachable: no route to {facts.address} ({route.error}){hint}"
    if icmp is not None:
        return f"unreachable: {icmp.source} answered ICMP {icmp.name} (connect: {result.error})"
    if result.outcome == "host-unreachable" and not result.icmp_watched and result.ms < FAST_MS:
        return (
            f"unreachable: {result.error} at once: an ICMP error came back (a router's "
            "host-unreachable, or a firewall's reject with admin-prohibited: watching ICMP to "
            "tell which needs CAP_NET_RAW)"
        )
    if result.outcome == "host-unreachable" and route is not None:
        hop = route.gateway or facts.address
        return (
            f"unreachable: {result.error}: {hop} did not answer ARP/NDP on {route.dev} "
            "(the host is down or not on that link)"
        )
    return f"unreachable: {result.error}"


def _denied(facts: Facts, result: ConnectResult) -> str:
    route = facts.route
    if route is not None and route.error is not None:
        return f"unreachable: {route.error} for {facts.address} ({result.error})"
    hit = _local_hit(facts, "prohibit") or _local_hit(facts, "refuse")
    if hit is not None:
        return f"rejected: {result.error}: by the local firewall: {_rule_text(hit)}"
    return f"rejected: {result.error}: a firewall forbids it (ICMPv6 admin-prohibited, or EPERM)"


def socket_text(sock: Socket) -> str:
    addr = sock.local_addr or "?"
    text = f"[{addr}]:{sock.local_port}" if ":" in addr else f"{addr}:{sock.local_port}"
    return f"{text}%{sock.interface}" if sock.interface else text


def _is_loopback(addr: str | None) -> bool:
    try:
        return addr is not None and ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False
