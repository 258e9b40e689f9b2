"""A lossy veth link (LAB.md recipes 1 and 2): TCP retransmits on demand, inside namespaces.

This kernel has no netem (no loadable modules), so the loss is an nft rule in the receiving
namespace ``b``: every ``every``-th data segment arriving on vB for :data:`PORT` is dropped
(``numgen inc``, not ``numgen random``). Deterministic on purpose: a random 30 % drop sometimes
loses the same retransmission several times in a row, and each loss doubles the retransmission
timer (200 ms at least), so one run in a few took over 5 s; dropping one packet in ``every``
never drops two retransmissions of one segment in a row, and a 4 MiB transfer takes 0.2–0.6 s.

Only packets longer than 200 bytes are dropped: the handshake, pure ACKs and FINs always pass,
so the receiver never has anything to send again and its counters stay still. The sender
(namespace ``a``) retransmits what was dropped. The rule's counter is the oracle: every dropped
payload byte is sent again at least once, so the sender retransmits at least
``dropped payload / MSS`` segments (:meth:`Drops.payload_segments`).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from netdash.netns import entered, resolve_netns
from tests.vethlab import ADDR_B, VethLab, veth_lab

PORT = 5201
TABLE = "netdash_loss"
#: IPv4 header + TCP header with the timestamp option: the most a data segment from the sender
#: carries besides payload (SACK blocks ride on the receiver's ACKs, not on data).
DATA_HEADERS = 20 + 32
TIMEOUT = 20.0  # seconds any socket call may block before the lab gives up


@dataclass(frozen=True)
class Drops:
    """What the nft rule dropped: packets (GSO packets of many segments, veth keeps them whole)
    and their bytes counted from the IP header on."""

    packets: int
    bytes: int

    def payload_segments(self, mss: int) -> int:
        """The fewest segments of ``mss`` payload bytes that can carry the dropped payload again
        (headers are at most :data:`DATA_HEADERS`, so this never overestimates)."""
        return math.ceil(max(self.bytes - DATA_HEADERS * self.packets, 0) / mss)


@dataclass(frozen=True)
class Transfer:
    size: int  # bytes sent from a to b
    mss: int  # the sender's TCP_MAXSEG: no segment carries more payload
    seconds: float  # from connect until the sender saw every byte acknowledged


def nft_in(netns: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", *args],
        input=stdin, capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def loss_rules(every: int) -> str:
    return f"""\
table inet {TABLE} {{
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "vB" tcp dport {PORT} ip length > 200 numgen inc mod {every} == 0 counter drop
  }}
}}
"""


@contextmanager
def lossy_veth_lab(every: int = 4) -> Iterator[VethLab]:
    """:func:`tests.vethlab.veth_lab` with one data segment in ``every`` from a to b dropped."""
    if shutil.which("nft") is None:
        pytest.fail("needs the nft command (apt-get install nftables)")
    with veth_lab() as lab:
        nft_in(lab.b, "-f", "-", stdin=loss_rules(every))
        yield lab  # the table goes with the namespace


def drops(lab: VethLab) -> Drops:
    """The drop rule's counter, from `nft -j list table` in b."""
    listing = json.loads(nft_in(lab.b, "-j", "list", "table", "inet", TABLE))["nftables"]
    rules = [item["rule"] for item in listing if "rule" in item]
    (counter,) = [e["counter"] for rule in rules for e in rule["expr"] if "counter" in e]
    return Drops(counter["packets"], counter["bytes"])


@contextmanager
def transfer_across(lab: VethLab, size: int) -> Iterator[Transfer]:
    """Send ``size`` bytes from a to b over one TCP connection; b reads them all, then answers
    one byte. Yields once a has that byte (it acknowledges everything, so nothing is left to
    retransmit) with the connection still open, so counters read in the body are final; closed
    after."""
    with entered(resolve_netns(lab.b)):
        listener = socket.create_server((ADDR_B, PORT))
    listener.settimeout(TIMEOUT)
    failures: list[BaseException] = []
    release = threading.Event()
    receiver = threading.Thread(
        target=_receive, args=(listener, size, release, failures), daemon=True
    )
    receiver.start()
    try:
        start = time.monotonic()
        with entered(resolve_netns(lab.a)):
            sender = socket.create_connection((ADDR_B, PORT), timeout=TIMEOUT)
        with sender:
            sender.sendall(bytes(size))
            assert sender.recv(1) == b"k", failures
            seconds = time.monotonic() - start
            yield Transfer(size, sender.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG), seconds)
    finally:
        release.set()
        receiver.join(TIMEOUT)
        listener.close()
    assert not failures, failures


def _receive(
    listener: socket.socket, size: int, release: threading.Event, failures: list[BaseException]
) -> None:
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            received = 0
            while received < size:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    raise ConnectionError(f"closed after {received} of {size} bytes")
                received += len(chunk)
            conn.sendall(b"k")
            release.wait(TIMEOUT)
    except BaseException as err:  # reported by transfer_across, not lost in the thread
        failures.append(err)
