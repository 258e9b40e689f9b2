"""The reach-diagnosis lab: the seeds' failure cases built for real in two namespaces.

``client`` (vA, 10.201.0.1, fd00:201::1) is where netdash diagnoses from; ``server`` (vB, .2,
::2) runs the services: a plain listener on :data:`OPEN` (both families), a TLS server with a
self-signed certificate made here on :data:`TLS`, and one that accepts then resets on
:data:`RESET`. The client has a listener on 127.0.0.1:`LOOPBACK_ONLY` only (the classic "works
with curl on the box, refused from anywhere else") and its own DNS server on 127.0.0.1 serving
``diag.test``. Firewall rules are added per test with :meth:`DiagLab.rules` (a table of its
own, deleted after). Everything goes when the lab closes.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from netdash.netns import NetnsTarget, entered, resolve_netns
from tests.dnslab import ZoneServer, authoritative
from tests.vethlab import ADDR6_A, ADDR6_B, ADDR_A, ADDR_B, veth_lab

OPEN, TLS, RESET, LOOPBACK_ONLY, CLOSED = 8080, 8443, 8081, 7070, 9
TLS_NAME = "tls.diag.test"
ZONE = f"""
$TTL 300
@    SOA ns.diag.test. admin.diag.test. 1 3600 600 86400 60
@    NS  ns.diag.test.
ns   A   127.0.0.1
www  A   {ADDR_B}
www  AAAA {ADDR6_B}
tls  A   {ADDR_B}
"""


@dataclass
class DiagLab:
    client: str
    server: str
    dns: tuple[str, int]
    cert_not_after: datetime.datetime

    @property
    def client_ns(self) -> NetnsTarget:
        return resolve_netns(self.client)

    @contextmanager
    def rules(self, netns: str, chain: str) -> Iterator[None]:
        """nft ``chain`` (a body such as ``type filter hook output priority 0; tcp dport 80
        drop``) in a table ``diaglab`` of ``netns``, removed afterwards."""
        nft(netns, f"table inet diaglab {{\n chain c {{\n  {chain}\n }}\n}}\n")
        try:
            yield
        finally:
            subprocess.run(
                ["ip", "netns", "exec", netns, "nft", "delete", "table", "inet", "diaglab"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def nft(netns: str, text: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"],
        input=text,
        text=True,
        capture_output=True,
        timeout=10,
        check=True,
    )


def self_signed(name: str, directory: Path) -> tuple[Path, Path, datetime.datetime]:
    """A certificate for ``name`` (CN and SAN) signed by its own key (EC P-256: quick)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=90)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, not_after


def listen(netns: str, addr: str, port: int) -> socket.socket:
    """A listening TCP socket made inside ``netns``."""
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    with entered(resolve_netns(netns)):
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((addr, port))
    sock.listen(16)
    return sock


class Acceptor:
    """Accepts on ``sock`` in a thread and hands each connection to ``handle``."""

    def __init__(self, sock: socket.socket, handle) -> None:
        self.sock = sock
        self.handle = handle
        self.sock.settimeout(0.1)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    self.handle(conn)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()


def hold(conn: socket.socket) -> None:
    """Keep a plain connection until the client goes (what a quiet HTTP server does)."""
    conn.recv(1)


def reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends a RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def tls_handler(context: ssl.SSLContext):
    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)

    return handle


@contextmanager
def diag_lab() -> Iterator[DiagLab]:
    with ExitStack() as stack:
        lab = stack.enter_context(veth_lab())
        client, server = lab.a, lab.b
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diaglab")))
        cert, key, not_after = self_signed(TLS_NAME, directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        services = [
            (listen(server, ADDR_B, OPEN), hold),
            (listen(server, ADDR6_B, OPEN), hold),
            (listen(server, ADDR_B, TLS), tls_handler(context)),
            (listen(server, ADDR_B, RESET), reset),
            (listen(client, "127.0.0.1", LOOPBACK_ONLY), hold),
        ]
        for sock, handler in services:
            stack.callback(Acceptor(sock, handler).close)
        with entered(resolve_netns(client)):
            dns = ZoneServer("127.0.0.1", 0, responder=authoritative(ZONE, "diag.test."))
        stack.callback(dns.close)
        yield DiagLab(client, server, dns.address, not_after)


__all__ = [
    "ADDR6_A",
    "ADDR6_B",
    "ADDR_A",
    "ADDR_B",
    "CLOSED",
    "LOOPBACK_ONLY",
    "OPEN",
    "RESET",
    "TLS",
    "TLS_NAME",
    "DiagLab",
    "diag_lab",
]
