"""The checklist's steps between the name and the verdict, each as (status, detail): read one
source of the diagnosed namespace, note what it found in :class:`Facts`, and say it in a line.
:mod:`netdash.diagnose` runs them in order and times them.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from netdash.diagnose_connect import ConnectResult, PeerCheck, TlsSummary
from netdash.diagnose_firewall import Packet
from netdash.diagnose_verdict import Facts, accepts, socket_text, tls_text
from netdash.model import FirewallSample, Link
from netdash.netns import NetnsTarget
from netdash.sources.errors import SourceError

if TYPE_CHECKING:
    from netdash.sources.routes import RouteReader

UP_STATES = ("UP", "UNKNOWN")  # lo and some tunnels say UNKNOWN while they work
EXPIRY_WARN_DAYS = 14


def route_step(facts: Facts, routes: RouteReader) -> tuple[str, str, Packet | None]:
    """``ip route get ADDR``: the interface, gateway and source a SYN would leave with."""
    addr = facts.address
    assert addr is not None
    found = routes.route_get(addr)
    facts.route = found
    if found.error is not None:
        return "fail", f"{addr}: {found.error}", None
    facts.local = found.dev == "lo" or ipaddress.ip_address(addr).is_loopback
    parts = [addr]
    if found.gateway:
        parts.append(f"via {found.gateway}")
    parts += [f"dev {found.dev}", f"src {found.prefsrc}" if found.prefsrc else ""]
    if found.table and found.table != "main":
        parts.append(f"table {found.table}")
    detail = " ".join(part for part in parts if part)
    if facts.local:
        detail += " (an address of this host)"
    src = ipaddress.ip_address(found.prefsrc) if found.prefsrc else None
    packet = Packet(
        dst=ipaddress.ip_address(addr),
        dport=facts.port,
        src=src,
        oif=found.dev,
        iif="lo" if facts.local else None,
    )
    return "ok", detail, packet


def interface_step(facts: Facts, netns: NetnsTarget) -> tuple[str, str]:
    """The state of the route's interface (DOWN or no carrier explains a lot); with no route,
    the interfaces that are down, since a link going down takes its routes with it."""
    from netdash.sources.links import LinkReader

    dev = facts.route.dev if facts.route is not None else None
    try:
        with LinkReader(netns) as reader:
            links = reader.read_links()
    except SourceError as err:
        return "skip", f"{dev or 'interfaces'}: {err}"
    if dev is None:
        down = [link for link in links if link.operstate not in UP_STATES]
        covering = [link.name for link in down if _on_link(link, facts.address)]
        facts.links_down = ", ".join(covering) or None
        if down:
            texts = "; ".join(link_text(link) for link in down)
            return "warn", f"no route, and these interfaces are down: {texts}"
        return "ok", "no route; every interface is up"
    link = next((link for link in links if link.name == dev), None)
    if link is None:
        return "warn", f"{dev}: not found among the interfaces"
    if link.operstate in UP_STATES:
        return "ok", link_text(link)
    return "fail", link_text(link)


def _on_link(link: Link, addr: str | None) -> bool:
    """Whether one of the link's own prefixes holds ``addr`` (its route left with it)."""
    if addr is None:
        return False
    target = ipaddress.ip_address(addr)
    for text in link.addresses:
        network = ipaddress.ip_network(text, strict=False)
        if network.version == target.version and target in network:
            return True
    return False


def link_text(link: Link) -> str:
    """``eth0 UP, mtu 1500, 10.0.0.1/24``, and why a down link is down when it is known."""
    text = f"{link.name} {link.operstate}, mtu {link.mtu}"
    if link.addresses:
        text += f", {' '.join(link.addresses)}"
    if "UP" not in link.flags:
        text += " (set down: ip link set dev NAME up)".replace("NAME", link.name)
    elif link.carrier is False:
        text += " (no carrier: the cable, the switch port or the veth's other end is down)"
    return text


def firewall_step(netns: NetnsTarget) -> tuple[FirewallSample | None, str | None]:
    """The rules of the namespace (None when there are none to evaluate) and what could not
    be read, in words (None when everything could)."""
    from netdash.sources.firewall import NEEDS_ROOT, NO_RULES, FirewallReader

    try:
        with FirewallReader(netns) as reader:
            sample = reader.sample()
    except SourceError as err:  # PermissionNeeded included
        return None, f"cannot read the rules: {err}"
    problems = [e for e in sample.errors if not e.startswith(NO_RULES)]
    if any(NEEDS_ROOT in e for e in problems):
        problems = [NEEDS_ROOT]  # said once, not once per tool
    problem = f"cannot read the rules: {'; '.join(problems)}" if problems else None
    if not sample.rules and not sample.chains:
        return None, problem
    return sample, problem


def firewall_summary(facts: Facts) -> tuple[str, str]:
    """The rules in the path: the one that stops the SYN, or those that may."""
    path = facts.firewall
    assert path is not None
    what = f"tcp to {facts.where}"
    hooks = "/".join(path.hooks)
    if not path.hits:
        return (
            "ok",
            f"{path.chains_checked} base chains on {hooks}: nothing drops or rejects {what}",
        )
    decisive = path.decisive
    if decisive is not None:
        return "fail", f"{decisive.action}: {decisive.describe()}"
    maybes = "; ".join(
        f"{hit.describe()} (if {' and '.join(hit.unsure) or 'reached'})" for hit in path.hits
    )
    return "warn", f"may {path.hits[0].action} {what}: {maybes}"


def listener_step(facts: Facts, netns: NetnsTarget) -> tuple[str, str]:
    """For an address of this host: what listens on the port, and on which address."""
    from netdash.sources.sockets import SocketReader

    try:
        with SocketReader(netns, reuse_unchanged=False) as reader:
            read = reader.read(tcp_info=False, unix=False)
    except SourceError as err:
        facts.listeners = None
        return "skip", f"cannot list sockets: {err}"
    listeners = tuple(
        s
        for s in read.sockets
        if s.proto == "tcp" and s.state == "LISTEN" and s.local_port == facts.port
    )
    facts.listeners = listeners
    if not listeners:
        return "fail", f"nothing listens on tcp port {facts.port}"
    bound = ", ".join(sorted({socket_text(s) for s in listeners}))
    if any(accepts(s, facts.address or "") for s in listeners):
        return "ok", f"listening on {bound}"
    return "fail", f"listening only on {bound}: a connection to {facts.address} is refused"


def connect_step(result: ConnectResult) -> tuple[str, str]:
    if result.outcome == "connected":
        return "ok", f"connected from {result.local} in {result.ms:.1f} ms"
    detail = result.error or result.outcome
    if result.outcome != "timeout":
        detail += f" after {result.ms:.0f} ms"
    if result.icmp is not None:
        detail += f"; ICMP {result.icmp.name} from {result.icmp.source}"
    elif not result.icmp_watched and result.outcome != "timeout":
        detail += " (ICMP not watched: needs CAP_NET_RAW)"
    return "fail", detail


def tls_step(tls: TlsSummary, host: str) -> tuple[str, str]:
    """The handshake's protocol, cipher and certificate; warn on an expiring or expired
    certificate or one that does not name the host typed."""
    if tls.protocol is None:
        return "fail", tls_text(tls)
    detail = tls_text(tls)
    days = tls.days_left()
    warn = days is not None and days < EXPIRY_WARN_DAYS
    if tls.names and host.lower() not in (name.lower() for name in tls.names):
        detail += f"; the certificate names {', '.join(tls.names)}, not {host}"
        warn = True
    if tls.issuer is not None and not tls.self_signed:
        detail += f"; issuer {tls.issuer}"
    return ("warn" if warn or tls.error else "ok"), detail


def peer_step(peer: PeerCheck) -> tuple[str, str]:
    if peer.outcome == "quiet":
        return "ok", "connection stays open (the peer waits for the client to speak)"
    if peer.outcome == "banner":
        return "ok", f"the peer says: {peer.banner}"
    return "fail", f"the peer {'reset' if peer.outcome == 'reset' else 'closed'} it at once"
