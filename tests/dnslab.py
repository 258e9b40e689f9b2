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
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

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
    (lower-case name, type), ``tcp_asked`` the TCP connections. UDP replies larger than 512
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
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, wire: bytes, limit: int | None) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        key = (question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype))
        self.asked[key] += 1
        response = self.responder(query)
        if response is None:
            return None
        out = response.to_wire()
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
