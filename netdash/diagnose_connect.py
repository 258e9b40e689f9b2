"""The TCP connect of a diagnosis, what the kernel and the network said about it, and what the
peer does once connected (a TLS handshake, a banner, or hanging up).

connect() errors alone cannot tell a firewall from a routing problem: an ICMP
"administratively prohibited" (what ``reject with icmp admin-prohibited`` sends) reaches
connect() as EHOSTUNREACH, the same errno as a neighbour that never answered ARP (measured on
Linux 6.18; ``icmp_err_convert`` in net/ipv4/icmp.c maps code 13 to EHOSTUNREACH; over IPv6
``icmpv6_err_convert`` maps it to EACCES), and nft's bare ``reject`` (ICMP port-unreachable)
gives ECONNREFUSED just like a closed port. So while it connects, netdash listens on a raw ICMP
socket (CAP_NET_RAW; nothing is sent on it) for the error that answers *this* SYN, matched by
the addresses and ports quoted inside it. Without the capability the errno is all there is, and
the diagnosis says so.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from netdash.netns import NetnsTarget, entered
from netdash.textsafe import visible

TLS_PORTS = frozenset({443, 8443, 993, 995, 465, 636})
PEER_WAIT = 0.3  # seconds to watch a new connection for a banner or a hang-up
ICMP_DEST_UNREACH, ICMP6_DEST_UNREACH = 3, 1
#: ICMP destination-unreachable codes by name (RFC 792/1812; ICMPv6: RFC 4443)
ICMP_CODES = {
    0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable", 3: "port-unreachable",
    4: "frag-needed", 6: "net-unknown", 7: "host-unknown", 9: "net-prohibited",
    10: "host-prohibited", 13: "admin-prohibited",
}  # fmt: skip
ICMP6_CODES = {
    0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable", 4: "port-unreachable",
    5: "policy-fail", 6: "reject-route",
}  # fmt: skip
PROHIBITED = frozenset({"net-prohibited", "host-prohibited", "admin-prohibited", "policy-fail"})


@dataclass(frozen=True, slots=True)
class IcmpError:
    """The ICMP destination-unreachable that answered our SYN, and who sent it."""

    source: str
    code: int
    version: int

    @property
    def name(self) -> str:
        names = ICMP_CODES if self.version == 4 else ICMP6_CODES
        return names.get(self.code, f"code {self.code}")

    @property
    def prohibited(self) -> bool:
        """A firewall's answer (reject with admin/host/net-prohibited), not a routing one."""
        return self.name in PROHIBITED


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """How connect() ended: ``outcome`` is one of connected, refused, timeout,
    host-unreachable, net-unreachable, denied (EACCES/EPERM), reset, error."""

    outcome: str
    ms: float
    errno: int | None = None
    error: str | None = None
    local: str | None = None  # our address:port
    icmp: IcmpError | None = None
    icmp_watched: bool = False  # False: no raw socket (no CAP_NET_RAW), ICMP unknown


OUTCOMES = {
    errno.ECONNREFUSED: "refused",
    errno.ETIMEDOUT: "timeout",
    errno.EHOSTUNREACH: "host-unreachable",
    errno.EHOSTDOWN: "host-unreachable",
    errno.ENETUNREACH: "net-unreachable",
    errno.EACCES: "denied",
    errno.EPERM: "denied",
    errno.ECONNRESET: "reset",
}


@dataclass(frozen=True, slots=True)
class TlsSummary:
    """A TLS handshake made without verification (CERT_NONE), and the certificate it showed."""

    protocol: str | None = None
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_after: datetime | None = None
    names: tuple[str, ...] = ()  # subjectAltName DNS names and addresses
    error: str | None = None
    reset: bool = False  # the peer hung up during the handshake

    @property
    def self_signed(self) -> bool:
        return self.subject is not None and self.subject == self.issuer

    def days_left(self, now: datetime | None = None) -> float | None:
        if self.not_after is None:
            return None
        now = now or datetime.now(timezone.utc)
        return (self.not_after - now).total_seconds() / 86400


@dataclass(frozen=True, slots=True)
class PeerCheck:
    """What an accepted connection does in its first moments: ``outcome`` is "quiet" (waits
    for us, as HTTP servers do), "banner" (SSH, SMTP…: ``banner`` is its first line), "reset"
    or "closed" (the peer hung up at once: a wrapper, a proxy without a backend, a limit)."""

    outcome: str
    banner: str | None = None


def open_in_netns(netns: NetnsTarget, family: int) -> tuple[socket.socket, socket.socket | None]:
    """A TCP socket and, if allowed, a raw ICMP socket, both made inside ``netns``."""
    with entered(netns):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
            raw: socket.socket | None = socket.socket(family, socket.SOCK_RAW, proto)
        except OSError:  # EPERM without CAP_NET_RAW
            raw = None
    return sock, raw


def connect(
    addr: str,
    port: int,
    timeout: float,
    netns: NetnsTarget,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[ConnectResult, socket.socket | None]:
    """Connect to ``addr``:``port`` from inside ``netns``; the connected socket comes back
    with the result (the caller closes it), None when it failed."""
    version = ipaddress.ip_address(addr).version
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    sock, raw = open_in_netns(netns, family)
    try:
        sock.bind(("0.0.0.0", 0) if version == 4 else ("::", 0))
        local_port = sock.getsockname()[1]
        started = time.perf_counter()
        code = _connect_waiting(sock, (addr, port), timeout, cancelled)
        ms = (time.perf_counter() - started) * 1000
        icmp = _icmp_answer(raw, addr, port, local_port, version) if raw is not None else None
        local = _local_text(sock)
    finally:
        if raw is not None:
            raw.close()
    if code == 0:
        return ConnectResult("connected", ms, local=local, icmp_watched=raw is not None), sock
    sock.close()
    result = ConnectResult(
        outcome="timeout" if code is None else OUTCOMES.get(code, "error"),
        ms=ms,
        errno=code,
        error=f"no answer in {timeout:g} s" if code is None else _strerror(code),
        local=local,
        icmp=icmp,
        icmp_watched=raw is not None,
    )
    return result, None


def _connect_waiting(
    sock: socket.socket, where: tuple[str, int], timeout: float, cancelled: Callable[[], bool]
) -> int | None:
    """A non-blocking connect waited for in short slices (so a cancelled diagnosis stops
    soon); returns the errno (0: connected) or None on timeout."""
    sock.setblocking(False)
    code = sock.connect_ex(where)
    if code not in (errno.EINPROGRESS, errno.EAGAIN):
        return code
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and not cancelled():
        _, writable, _ = select.select([], [sock], [], min(left, 0.1))
        if writable:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return None


def _strerror(code: int) -> str:
    """ "ECONNREFUSED (Connection refused)": the name people search for, and its meaning."""
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _local_text(sock: socket.socket) -> str | None:
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _icmp_answer(
    raw: socket.socket, addr: str, port: int, local_port: int, version: int
) -> IcmpError | None:
    """The queued destination-unreachable whose quoted packet is our SYN (the kernel hands
    raw sockets their copy before TCP sees the error, so it is queued by now)."""
    raw.setblocking(False)
    want = ipaddress.ip_address(addr).packed
    while True:
        try:
            data, source = raw.recvfrom(2048)
        except OSError:
            return None
        quoted = parse_icmp_unreachable(data, version)
        if quoted is not None and quoted[1:] == (want, local_port, port):
            return IcmpError(source[0], quoted[0], version)


def parse_icmp_unreachable(data: bytes, version: int) -> tuple[int, bytes, int, int] | None:
    """(code, quoted destination, quoted source port, quoted destination port) of an ICMP
    destination-unreachable; None for anything else. An IPv4 raw socket hands over the IP
    header too (RFC 792 layout after it); an IPv6 one starts at the ICMPv6 header (RFC 4443),
    quoting a 40-byte IPv6 header (a SYN carries no extension headers)."""
    try:
        if version == 4:
            start = (data[0] & 0x0F) * 4
            icmp_type, code = data[start], data[start + 1]
            inner = start + 8
            inner_len = (data[inner] & 0x0F) * 4
            dst = data[inner + 16 : inner + 20]
            sport, dport = struct.unpack_from("!HH", data, inner + inner_len)
            wanted = ICMP_DEST_UNREACH
        else:
            icmp_type, code = data[0], data[1]
            dst = data[8 + 24 : 8 + 40]
            sport, dport = struct.unpack_from("!HH", data, 48)
            wanted = ICMP6_DEST_UNREACH
    except (IndexError, struct.error):
        return None
    return (code, dst, sport, dport) if icmp_type == wanted else None


# ------------------------------------------------------------------------------ after


def tls_handshake(sock: socket.socket, server_name: str | None, timeout: float) -> TlsSummary:
    """Handshake without verifying (a diagnosis wants to *see* a bad certificate, not fail on
    it) and parse the peer's certificate from its DER form: under CERT_NONE ``getpeercert()``
    returns an empty dict, so the binary form is the only way to its fields."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            cipher = tls.cipher()
            summary = TlsSummary(protocol=tls.version(), cipher=cipher[0] if cipher else None)
    except (ConnectionResetError, ssl.SSLEOFError, BrokenPipeError) as err:
        return TlsSummary(error=f"the peer hung up during the handshake ({err})", reset=True)
    except TimeoutError:
        return TlsSummary(error=f"no TLS answer in {timeout:g} s")
    except (ssl.SSLError, OSError) as err:
        return TlsSummary(error=visible(str(err)))
    return _with_certificate(summary, der)


def _with_certificate(summary: TlsSummary, der: bytes | None) -> TlsSummary:
    if not der:
        return replace(summary, error="the server sent no certificate")
    try:
        from cryptography import x509
    except ImportError:
        return replace(summary, error="certificate not parsed: the cryptography package is missing")
    try:
        cert = x509.load_der_x509_certificate(der)
        names: tuple[str, ...] = ()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName)) + tuple(
                str(a) for a in san.get_values_for_type(x509.IPAddress)
            )
        except x509.ExtensionNotFound:
            pass
        return replace(
            summary,
            subject=visible(cert.subject.rfc4514_string()),
            issuer=visible(cert.issuer.rfc4514_string()),
            not_after=cert.not_valid_after_utc,
            names=tuple(visible(n) for n in names),
        )
    except ValueError as err:
        return replace(summary, error=f"unreadable certificate: {err}")


def watch_peer(sock: socket.socket, wait: float = PEER_WAIT) -> PeerCheck:
    """Look, without sending anything, at what the peer does in its first ``wait`` seconds."""
    sock.setblocking(False)
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return PeerCheck("quiet")
    try:
        data = sock.recv(512, socket.MSG_PEEK)
    except ConnectionResetError:
        return PeerCheck("reset")
    except OSError:
        return PeerCheck("quiet")
    if not data:
        return PeerCheck("closed")
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    return PeerCheck("banner", visible(line.decode("utf-8", "backslashreplace"))[:120])
