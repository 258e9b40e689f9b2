"""One worker of the socket lab: connects to itself ``PAIRS`` times and holds both ends.

Started by :class:`benchmarks.lab.SocketLab` inside the lab's namespace as
``python -S lab_worker.py INDEX PAIRS``. It imports only what it needs so that twenty of them start
in a fraction of a second on two cores, then writes ``ready PAIRS`` (or ``error ...``) on stdout
and holds its sockets until stdin closes or it is killed.

Worker ``i`` listens on ``127.0.0.1:20000+i`` and connects from ``127.1.x.y`` (its own source
address: all of 127.0.0.0/8 is local on ``lo``). ``IP_BIND_ADDRESS_NO_PORT`` defers the choice of
source port to connect(), which then only needs the whole 4-tuple to be unique: ~64,000 ports per
worker with the lab's ``ip_local_port_range``. Every socket gets ``SO_LINGER {1, 0}`` so that when
the worker dies its sockets are reset and freed at once, leaving no TIME_WAIT pile behind.
"""

from __future__ import annotations

import resource
import socket
import struct
import sys

LISTEN_ADDR = "127.0.0.1"
PORT_BASE = 20000
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; Python's socket module exports it only from 3.12
BATCH = 1000  # pairs connected before they are accepted, so the accept queue never overflows
LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}: close() resets


def source_address(index: int) -> str:
    return f"127.1.{index // 250}.{index % 250 + 1}"


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))


def listener(port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.bind((LISTEN_ADDR, port))
    sock.listen(backlog)
    return sock


def client(source: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    sock.bind((source, 0))
    sock.connect((LISTEN_ADDR, port))  # completes at once on loopback: the handshake is synchronous
    return sock


def hold_pairs(index: int, pairs: int) -> list[socket.socket]:
    """Connect and accept ``pairs`` pairs, in batches no bigger than the accept queue."""
    port = PORT_BASE + index
    source = source_address(index)
    server = listener(port, min(BATCH, pairs) + 1)
    held = [server]
    left = pairs
    while left:
        batch = min(BATCH, left)
        held.extend(client(source, port) for _ in range(batch))
        for _ in range(batch):
            accepted, _ = server.accept()
            accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            held.append(accepted)
        left -= batch
    return held


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stdout.write("error usage: lab_worker.py INDEX PAIRS\n")
        return 2
    index, pairs = int(argv[0]), int(argv[1])
    try:
        raise_fd_limit(2 * pairs + 64)
        held = hold_pairs(index, pairs)
    except Exception as err:
        sys.stdout.write(f"error {type(err).__name__}: {err}\n")
        sys.stdout.flush()
        return 1
    sys.stdout.write(f"ready {pairs}\n")
    sys.stdout.flush()
    sys.stdin.buffer.read()  # hold everything until the lab closes our stdin or kills us
    del held
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
