"""DNS servers the tests run themselves on 127.0.0.x (never the machine's resolver).

:class:`ZoneServer` is a tiny server (UDP and TCP on one port) that counts what it is asked.
By default it serves the flat ``lab.test`` data below (forward and reverse names, a SERVFAIL
name, a slow reverse range, a TXT too big for UDP); give it a ``responder`` to serve anything
else (``None`` from the responder means: stay silent). :func:`zone_server` and
:func:`silent_server` are context managers for fixtures, with addresses unique to this pid so
parallel test runs do not collide.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

LONG_TXT = " ".join(f'"{"x" * 200}{i}"' for i in range(4))  # > 512 bytes: UDP truncates

ZONE: dict[tuple[str, str], tuple[int, list[str]]] = {
    ("www.lab.test.", "A"): (300, ["192.0.2.10"]),
    ("www.lab.test.", "AAAA"): (300, ["2001:db8::10"]),
    ("lab.test.", "MX"): (600, ["10 mail.lab.test."]),
    ("lab.test.", "TXT"): (60, ['"v=spf1 -all"']),
    ("alias.lab.test.", "CNAME"): (120, ["www.lab.test."]),
    ("big.lab.test.", "TXT"): (60, [LONG_TXT]),
    ("10.2.0.192.in-addr.arpa.", "PTR"): (300, ["www.lab.test."]),
    ("11.2.0.192.in-addr.arpa.", "PTR"): (1, ["short.lab.test."]),
    ("0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", "PTR"): (
        300,
        ["v6.lab.test."],
    ),
}
SERVFAIL = {"broken.lab.test.", "12.2.0.192.in-addr.arpa."}
SLOW_SUFFIX = ".3.0.192.in-addr.arpa."  # answered (NXDOMAIN) after 0.4 s: held in flight

#: A query in, a reply out (None: say nothing, like a lame server that never answers).
Responder = Callable[[dns.message.Message], "dns.message.Message | None"]


def lab_reply(query: dns.message.Message) -> dns.message.Message:
    """The default data: :data:`ZONE`, :data:`SERVFAIL`, :data:`SLOW_SUFFIX`."""
    question = query.question[0]
    name = question.name.to_text().lower()
    key = (name, dns.rdatatype.to_text(question.rdtype))
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    if name in SERVFAIL:
        response.set_rcode(dns.rcode.SERVFAIL)
    elif name.endswith(SLOW_SUFFIX):
        time.sleep(0.4)
        response.set_rcode(dns.rcode.NXDOMAIN)
    elif key in ZONE:
        ttl, values = ZONE[key]
        response.answer.append(dns.rrset.from_text_list(name, ttl, "IN", key[1], values))
    elif name not in {zone_name for zone_name, _type in ZONE}:
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response


class ZoneServer:
    """A tiny server (UDP and TCP on one port) that counts what it is asked: ``asked`` by
    (lower-case name, type), ``tcp_asked`` the TCP connections, ``recursion_desired`` the
    queries with RD set. UDP replies larger than 512
    bytes are truncated (TC set, answers dropped), so clients must retry over TCP."""

    def __init__(self, host: str, port: int = 0, responder: Responder = lab_reply) -> None:
        self.responder = responder
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.address = (host, self.udp.getsockname()[1])
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(self.address)
        self.tcp.listen(8)
        self.asked: Counter[tuple[str, str]] = Counter()
        self.tcp_asked = 0
        self.recursion_desired = 0  # queries with RD set
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, wire: bytes, limit: int | None) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
        self.asked[key] += 1
        self.recursion_desired += bool(query.flags & dns.flags.RD)
        response = self.responder(query)
        if response is None:
            return None
        out = response.to_wire(want_shuffle=False)  # records in zone order: tests can rely on it
        if limit is not None and len(out) > limit:
            response.answer.clear()
            response.authority.clear()
            response.additional.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out

    def serve(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.udp, self.tcp], [], [], 0.05)
            if self.udp in ready:
                wire, peer = self.udp.recvfrom(65535)
                threading.Thread(target=self.answer_udp, args=(wire, peer), daemon=True).start()
            if self.tcp in ready:
                conn, _ = self.tcp.accept()
                with conn:
                    self.tcp_asked += 1
                    size = struct.unpack("!H", conn.recv(2))[0]
                    out = self.reply(conn.recv(size), None)
                    if out is not None:
                        conn.sendall(struct.pack("!H", len(out)) + out)

    def answer_udp(self, wire: bytes, peer: tuple[str, int]) -> None:
        out = self.reply(wire, 512)
        if out is not None:
            self.udp.sendto(out, peer)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.udp.close()
        self.tcp.close()


def lab_address(net: int, host: int = 0) -> str:
    """``127.0.NET.X`` with X from this pid (and ``host``), so parallel runs do not collide."""
    return f"127.0.{net}.{(os.getpid() + host) % 200 + 2}"


@contextmanager
def zone_server(host: str | None = None, responder: Responder = lab_reply) -> Iterator[ZoneServer]:
    """A :class:`ZoneServer` on ``host`` (127.0.53.x by default), closed afterwards."""
    server = ZoneServer(host or lab_address(53), responder=responder)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def silent_server(host: str | None = None) -> Iterator[tuple[str, int]]:
    """A bound UDP socket nobody reads: queries vanish, no ICMP comes back, so a timeout."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host or lab_address(54), 0))
    try:
        yield sock.getsockname()
    finally:
        sock.close()


def authoritative(text: str, origin: str) -> Responder:
    """A server for one zone (master-file ``text``, names absolute or relative to ``origin``)
    that behaves like a real one: referrals (not authoritative, NS and in-zone glue) for names
    at or below a delegation, AA answers, CNAMEs chased inside the zone, NXDOMAIN and NODATA
    with the SOA, REFUSED for names outside the zone."""
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    apex = zone.origin
    soa = dns.rrset.RRset(apex, dns.rdataclass.IN, dns.rdatatype.SOA)
    soa.update(zone.find_rdataset(apex, "SOA"))

    def respond(query: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        response = dns.message.make_response(query)
        if not question.name.is_subdomain(apex):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        cut = delegation(zone, question.name)
        if cut is not None:
            refer(zone, cut, response)
            return response
        response.flags |= dns.flags.AA
        answer(zone, question.name, question.rdtype, response, soa)
        return response

    return respond


def rrset_of(zone: dns.zone.Zone, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    rdataset = zone.get_rdataset(name, rdtype)
    if rdataset is None:
        return None
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
    rrset.update(rdataset)
    return rrset


def delegation(zone: dns.zone.Zone, qname: dns.name.Name) -> dns.name.Name | None:
    """The highest zone cut between the apex (excluded) and ``qname`` (included)."""
    for labels in range(len(zone.origin) + 1, len(qname) + 1):
        name = qname.split(labels)[1]
        if zone.get_rdataset(name, dns.rdatatype.NS) is not None:
            return name
    return None


def refer(zone: dns.zone.Zone, cut: dns.name.Name, response: dns.message.Message) -> None:
    ns = rrset_of(zone, cut, dns.rdatatype.NS)
    assert ns is not None
    response.authority.append(ns)
    for rdata in ns:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue = rrset_of(zone, rdata.target, rdtype)
            if glue is not None:
                response.additional.append(glue)


def answer(
    zone: dns.zone.Zone,
    qname: dns.name.Name,
    rdtype: int,
    response: dns.message.Message,
    soa: dns.rrset.RRset,
) -> None:
    name = qname
    for _ in range(8):  # a CNAME loop in the zone is served as it is, up to 8 links
        if zone.get_node(name) is None:  # RFC 6604: the rcode is the last name's
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(soa)
            return
        found = rrset_of(zone, name, rdtype)
        alias = rrset_of(zone, name, dns.rdatatype.CNAME)
        if found is not None:
            response.answer.append(found)
            return
        if alias is None:  # NODATA
            response.authority.append(soa)
            return
        response.answer.append(alias)
        name = alias[0].target
        if not name.is_subdomain(zone.origin):
            return


@dataclass(frozen=True)
class Hierarchy:
    """A root, ``test.``, ``example.test.``, ``other.`` and ``glueless.test.`` served from
    127.0.0.x on one shared port, plus a silent server (``lame.test.``, asked first for
    ``test.``). ``root`` is the address to give as root hints."""

    port: int
    servers: dict[str, ZoneServer]

    @property
    def root(self) -> str:
        return f"{self.servers['root'].address[0]}:{self.port}"

    def address(self, role: str) -> str:
        return self.servers[role].address[0]


ROLES = ("root", "lame", "test", "example", "other", "glueless")


def hierarchy_zones(ip: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Each role's zone (origin, master-file text) with the servers' addresses filled in."""
    soa = "60 SOA ns hostmaster 1 60 60 60 60"
    return {
        "root": (
            ".",
            f"""@ {soa}
@ 60 NS a.root.
a.root. 60 A {ip["root"]}
test. 172800 NS lame.test.
test. 172800 NS ns1.test.
lame.test. 172800 A {ip["lame"]}
ns1.test. 172800 A {ip["test"]}
other. 172800 NS ns.other.
ns.other. 172800 A {ip["other"]}
""",
        ),
        "test": (
            "test.",
            f"""@ {soa}
@ 60 NS ns1
ns1 60 A {ip["test"]}
example 3600 NS up
example 3600 NS ns.example
up 3600 A {ip["root"]}
ns.example 3600 A {ip["example"]}
glueless 3600 NS ns.glueless.other.
loopy 3600 NS ns.loopy
loopa 3600 NS ns.loopb
loopb 3600 NS ns.loopa
""",
        ),
        "example": (
            "example.test.",
            f"""@ {soa}
@ 60 NS ns
ns 60 A {ip["example"]}
www 300 A 192.0.2.80
www 300 AAAA 2001:db8::80
alias 120 CNAME www
outside 120 CNAME www.glueless.test.
big 60 TXT {LONG_TXT}
loop1 60 CNAME loop2
loop2 60 CNAME loop1
""",
        ),
        "other": (
            "other.",
            f"""@ {soa}
@ 60 NS ns
ns 60 A {ip["other"]}
ns.glueless 60 A {ip["glueless"]}
""",
        ),
        "glueless": (
            "glueless.test.",
            f"""@ {soa}
@ 60 NS ns.glueless.other.
www 30 A 192.0.2.90
""",
        ),
    }


def silence(query: dns.message.Message) -> None:
    return None


@contextmanager
def hierarchy() -> Iterator[Hierarchy]:
    """Start the :class:`Hierarchy` (the first server picks the port the others share)."""
    ip = {role: lab_address(55 + n) for n, role in enumerate(ROLES)}
    zones = hierarchy_zones(ip)
    with ExitStack() as stack:
        servers: dict[str, ZoneServer] = {}
        port = 0
        for role in ROLES:
            responder = silence if role == "lame" else authoritative(zones[role][1], zones[role][0])
            server = ZoneServer(ip[role], port, responder)
            stack.callback(server.close)
            port = server.address[1]
            servers[role] = server
        yield Hierarchy(port, servers)
