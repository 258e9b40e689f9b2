"""The processes of the known-sockets lab (tests/lablib.py): one role per process.

Run as ``python -S lablib_roles.py ROLE ARGS_JSON`` inside the lab's network namespace. Each role
names itself with ``prctl(PR_SET_NAME)`` (what /proc/PID/comm, `ss -p` and netdash show), opens
its sockets, prints one line ``ready {json}`` (or ``error ...``) and then serves or just holds
them until its stdin closes, its parent dies (``PR_SET_PDEATHSIG``), or its lifetime ends: a lab
that is never closed still cannot outlive its bounded life. Standard library only, so fifteen of
these start in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PR_SET_NAME = 15  # linux/prctl.h
PR_SET_PDEATHSIG = 1  # linux/prctl.h
LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}: close() resets
CHUNK = 8 * 1024  # small paced chunks keep a 1 s byte-rate sample close to the set rate

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: Any) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")


def become(comm: bytes) -> None:
    """Take the role's name (at most 15 bytes: TASK_COMM_LEN 16, include/linux/sched.h) and die
    with the parent, so a killed test run leaves nothing behind."""
    prctl(PR_SET_NAME, ctypes.c_char_p(comm))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def say(word: str, info: dict[str, Any] | None = None) -> None:
    sys.stdout.write(f"{word} {json.dumps(info or {})}\n")
    sys.stdout.flush()


def hold_until_end(deadline: float) -> None:
    """Block until stdin closes (the lab is done) or the deadline passes."""
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if sel.select(deadline - time.monotonic()) and not os.read(sys.stdin.fileno(), 4096):
            return


# ----------------------------------------------------------------------------------- sockets


def tcp_listener(host: str, port: int, backlog: int = 64) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # IPv6 only, as on [::]
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    return sock


def unix_listener(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(16)
    return sock


def exchange(sock: socket.socket, payload: bytes) -> None:
    """Send ``payload`` and read its echo, so both byte counters move."""
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        data = sock.recv(len(payload) - got)
        if not data:
            raise ConnectionError("the echo server closed the connection")
        got += len(data)


def serve_echo(listeners: list[socket.socket], deadline: float) -> None:
    """Accept on ``listeners`` and echo every connection until EOF (then close: the client,
    having closed first, is left in TIME_WAIT), stdin's EOF, or the deadline."""
    sel = selectors.DefaultSelector()
    for lst in listeners:
        lst.setblocking(False)
        sel.register(lst, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    while time.monotonic() < deadline:
        for key, _ in sel.select(deadline - time.monotonic()):
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return
            elif key.data == "accept":
                try:
                    conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                except BlockingIOError:
                    continue  # another worker of the same listener took it
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ, "echo")
            else:
                conn = key.fileobj  # type: ignore[assignment]
                data = conn.recv(65536)
                if data:
                    conn.sendall(data)
                else:
                    sel.unregister(conn)
                    conn.close()


# ------------------------------------------------------------------------------------ servers


def nginx(args: dict[str, Any], deadline: float) -> None:
    """A master and two forked workers sharing one listener: three owners of one socket."""
    listener = tcp_listener("0.0.0.0", args["port"], 128)
    pids = [os.getpid()]
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the master is this worker's parent
                serve_echo([listener], deadline)
            finally:
                os._exit(0)
        pids.append(pid)
    say("ready", {"pids": pids})
    hold_until_end(deadline)  # like nginx's master: holds the listener, never accepts
    for pid in pids[1:]:  # reap the workers: orphans would wait for init, which may be lazy
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def postgres(args: dict[str, Any], deadline: float) -> None:
    listeners = [tcp_listener("::", args["port"]), unix_listener(args["unix_path"])]
    say("ready", {"pids": [os.getpid()]})
    serve_echo(listeners, deadline)


def java(args: dict[str, Any], deadline: float) -> None:
    """Accepts and never reads or closes: when the client closes, these stay in CLOSE_WAIT."""
    listener = tcp_listener("0.0.0.0", args["port"])
    listener.settimeout(0.05)
    say("ready", {"pids": [os.getpid()]})
    held: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            held.append(listener.accept()[0])
        if sel.select(0) and not os.read(sys.stdin.fileno(), 4096):
            return


def slowapp(args: dict[str, Any], deadline: float) -> None:
    """Listens and never accepts: connections wait in the accept queue (Recv-Q of a LISTEN)."""
    listener = tcp_listener("0.0.0.0", args["port"], 16)
    say("ready", {"pids": [os.getpid()]})
    hold_until_end(deadline)
    listener.close()


def holder(open_sockets: Callable[[dict[str, Any]], list[Any]]) -> Callable[..., None]:
    """A role that opens its sockets, says ready, and holds them."""

    def role(args: dict[str, Any], deadline: float) -> None:
        held = open_sockets(args)
        say("ready", {"pids": [os.getpid()]})
        hold_until_end(deadline)
        del held

    return role


def _dnsmasq(args: dict[str, Any]) -> list[Any]:
    return [udp_socket("0.0.0.0", args["port"]), udp_socket("::", args["port"])]


def _ntpd(args: dict[str, Any]) -> list[Any]:
    bound = udp_socket("0.0.0.0", args["port"])
    connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    connected.connect(("127.0.0.1", args["port"]))  # UDP "ESTAB": a fixed peer, no traffic
    return [bound, connected]


def _avahi(args: dict[str, Any]) -> list[Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")  # ss: 127.0.0.1%lo
    sock.bind(("127.0.0.1", args["port"]))
    return [sock]


def _hostile(args: dict[str, Any]) -> list[Any]:
    return [tcp_listener("0.0.0.0", args["port"])]


def _dbus(args: dict[str, Any]) -> list[Any]:
    abstract = unix_listener(b"\0" + args["abstract"].encode())
    return [abstract, *socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)]


def _rsyslogd(args: dict[str, Any]) -> list[Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(args["dgram_path"])
    return [sock]


def loadgen(args: dict[str, Any], deadline: float) -> None:
    """``pairs`` connections to itself, both ends held: a busy table. Every socket resets on
    close (SO_LINGER 0), so tearing the lab down leaves no TIME_WAIT pile in the namespace."""
    listener = tcp_listener("127.0.0.1", args["port"], 512)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    held = [listener]
    for start in range(0, args["pairs"], 256):
        batch = []
        for _ in range(min(256, args["pairs"] - start)):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            client.connect(("127.0.0.1", args["port"]))  # loopback: completes synchronously
            batch.append(client)
        for _ in batch:
            conn, _ = listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            held.append(conn)
        held.extend(batch)
    say("ready", {"pids": [os.getpid()]})
    hold_until_end(deadline)


# ------------------------------------------------------------------------------------ clients


def stream(sock: socket.socket, rate: int, seconds: float) -> None:
    """Send ``rate`` bytes/s for ``seconds`` in small paced chunks, reading the echo back."""
    chunk = b"x" * min(CHUNK, rate)
    period = len(chunk) / rate
    end = time.monotonic() + seconds
    tick = time.monotonic()
    while tick < end:
        try:
            exchange(sock, chunk)
        except OSError:
            return  # the lab is being torn down: nginx died first
        tick += period
        time.sleep(max(0.0, tick - time.monotonic()))


def curl(args: dict[str, Any], deadline: float) -> None:
    web = ("127.0.0.1", args["nginx_port"])
    held = [socket.create_connection(web) for _ in range(3)]
    for sock in held:
        exchange(sock, b"GET / HTTP/1.1\r\nHost: web-1\r\n\r\n")
    streaming = socket.create_connection(web)
    held.append(streaming)
    seconds = min(args["stream_seconds"], deadline - time.monotonic())
    threading.Thread(
        target=stream, args=(streaming, args["stream_rate"], seconds), daemon=True
    ).start()
    say("ready", {"pids": [os.getpid()], "streaming_port": streaming.getsockname()[1]})
    hold_until_end(deadline)


def psql(args: dict[str, Any], deadline: float) -> None:
    held = [socket.create_connection(("::1", args["postgres_port"])) for _ in range(2)]
    local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    local.connect(args["unix_path"])
    held.append(local)
    for sock in held:
        exchange(sock, b"SELECT 1;")
    say("ready", {"pids": [os.getpid()]})
    hold_until_end(deadline)


def healthcheck(args: dict[str, Any], deadline: float) -> None:
    """Leaves behind: FIN_WAIT2 (one orphaned by close(), one still held after shutdown),
    TIME_WAIT (closed first, after a real exchange), and connections nobody accepts."""
    held: list[socket.socket] = []
    for _ in range(args["time_wait"]):
        with socket.create_connection(("127.0.0.1", args["nginx_port"])) as sock:
            exchange(sock, b"HEAD /health HTTP/1.0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):  # the server's FIN: we closed first, so we get TIME_WAIT
                pass
    for _ in range(args["queued"]):
        held.append(socket.create_connection(("127.0.0.1", args["slowapp_port"])))
    abandoned = socket.create_connection(("127.0.0.1", args["java_port"]))
    half_closed = socket.create_connection(("127.0.0.1", args["java_port"]))
    abandoned.close()  # orphaned FIN_WAIT2, inode 0 (the kernel finishes it, tcp_fin_timeout)
    half_closed.shutdown(socket.SHUT_WR)  # FIN_WAIT2 still held by us
    held.append(half_closed)
    say("ready", {"pids": [os.getpid()]})
    hold_until_end(deadline)


ROLES: dict[str, Callable[[dict[str, Any], float], None]] = {
    "nginx": nginx,
    "postgres": postgres,
    "java": java,
    "slowapp": slowapp,
    "dnsmasq": holder(_dnsmasq),
    "ntpd": holder(_ntpd),
    "avahi": holder(_avahi),
    "markup": holder(_hostile),
    "badbytes": holder(_hostile),
    "dbus": holder(_dbus),
    "rsyslogd": holder(_rsyslogd),
    "loadgen": loadgen,
    "curl": curl,
    "psql": psql,
    "healthcheck": healthcheck,
}


def main(argv: list[str]) -> int:
    role, args = argv[0], json.loads(argv[1])
    try:
        become(bytes.fromhex(args["comm"]))
        ROLES[role](args, time.monotonic() + args["lifetime"])
    except Exception as err:
        say("error", {"role": role, "error": f"{type(err).__name__}: {err}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
