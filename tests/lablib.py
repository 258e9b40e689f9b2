"""A small server with sockets in known states, inside a network namespace the caller made.

:class:`KnownSocketsLab` starts real processes (tests/lablib_roles.py) that name themselves like
the daemons of a web server and hold TCP, UDP and UNIX sockets in every state netdash must show:
a listener with three owners (nginx's master and workers), IPv6, streaming traffic, CLOSE_WAIT
and FIN_WAIT2, TIME_WAIT, an accept queue nobody drains, connected and device-bound UDP, UNIX
stream/dgram/abstract/pair sockets, comms with markup, escapes and non-UTF-8 bytes, and a few
hundred idle pairs. Tests assert on it live; scripts/record_fixture.py records it for the UI.

Servers start first, then clients; each process prints ``ready`` when its sockets are in place,
and the lab checks the namespace with `ss` before handing itself over. On exit every process
group is killed and waited for, whatever happened. TIME_WAIT and orphaned FIN_WAIT2 sockets
belong to the kernel, not to the lab's processes: they linger ~60 s in the namespace (gone with
it), so one namespace should host one lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

ROLES_SCRIPT = Path(__file__).resolve().with_name("lablib_roles.py")

#: The hostile process names: Rich markup plus an escape sequence, and bytes that are not UTF-8.
MARKUP_COMM = b"[red]x[/]\x1b[31m"
BAD_BYTES_COMM = b"bad\xffname"

#: Role -> comm (what /proc/PID/comm says; at most 15 bytes).
COMMS: dict[str, bytes] = {
    "nginx": b"nginx",
    "postgres": b"postgres",
    "java": b"java",
    "slowapp": b"slowapp",
    "dnsmasq": b"dnsmasq",
    "ntpd": b"ntpd",
    "avahi": b"avahi-daemon",
    "markup": MARKUP_COMM,
    "badbytes": BAD_BYTES_COMM,
    "dbus": b"dbus-daemon",
    "rsyslogd": b"rsyslogd",
    "loadgen": b"loadgen",
    "curl": b"curl",
    "psql": b"psql",
    "healthcheck": b"healthcheck",
}

#: Role -> its port (TCP for servers, UDP for dnsmasq, ntpd and avahi).
PORTS: dict[str, int] = {
    "nginx": 80,
    "postgres": 5432,
    "java": 8080,
    "slowapp": 9000,
    "dnsmasq": 53,
    "ntpd": 123,
    "avahi": 5353,
    "markup": 6666,
    "badbytes": 6667,
    "loadgen": 7000,
}

SERVERS = ("nginx", "postgres", "java", "slowapp", "dnsmasq", "ntpd", "avahi", "markup")
SERVERS += ("badbytes", "dbus", "rsyslogd", "loadgen")
CLIENTS = ("curl", "psql", "healthcheck")

ABSTRACT_NAME = "netdash-lab"  # shown as @netdash-lab
TIME_WAIT_COUNT = 3
ACCEPT_QUEUE = 3
STOP_GRACE = 1.0  # seconds the roles get to exit on their own before SIGKILL


class LabError(RuntimeError):
    """The lab could not be built; the message says which step failed and why."""


@dataclass
class LabProcess:
    role: str
    popen: subprocess.Popen[bytes]
    pids: list[int] = field(default_factory=list)  # the process, then any it forked
    info: dict[str, Any] = field(default_factory=dict)


class KnownSocketsLab:
    """The lab in namespace ``netns`` (created and deleted by the caller). A context manager.

    ``pids`` maps each role to its pids (nginx: master first, then its two workers),
    ``ports`` each role to its port; ``unix_path``, ``dgram_path`` and ``abstract_name`` name
    the UNIX sockets. Traffic: curl streams ``stream_rate`` bytes/s through nginx (echoed back)
    for ``stream_seconds``; every process exits by itself after ``lifetime`` seconds at most.
    Enter it from a thread that outlives it: the roles die with the thread that started them
    (``PR_SET_PDEATHSIG`` follows the parent *thread*).
    """

    def __init__(
        self,
        netns: str,
        *,
        loadgen_pairs: int = 300,
        stream_rate: int = 256 * 1024,
        stream_seconds: float = 30.0,
        lifetime: float = 600.0,
        unix_dir: Path | None = None,
    ) -> None:
        if loadgen_pairs < 0 or stream_rate <= 0 or stream_seconds < 0 or lifetime <= 0:
            raise ValueError("loadgen_pairs, stream_seconds >= 0; stream_rate, lifetime > 0")
        self.netns = netns
        self.loadgen_pairs = loadgen_pairs
        self.stream_rate = stream_rate
        self.stream_seconds = stream_seconds
        self.lifetime = lifetime
        self.ports = dict(PORTS)
        self.abstract_name = ABSTRACT_NAME
        self.processes: dict[str, LabProcess] = {}
        self.setup_seconds: float | None = None
        self._given_dir = unix_dir
        self._own_dir: Path | None = None

    # -- what it made --------------------------------------------------------------------------

    @property
    def unix_dir(self) -> Path:
        if self._given_dir is not None:
            return self._given_dir
        if self._own_dir is None:
            raise LabError("the lab is not running")
        return self._own_dir

    @property
    def unix_path(self) -> str:
        return str(self.unix_dir / ".s.PGSQL.5432")

    @property
    def dgram_path(self) -> str:
        return str(self.unix_dir / "log")

    @property
    def pids(self) -> dict[str, list[int]]:
        return {role: list(proc.pids) for role, proc in self.processes.items()}

    def all_pids(self) -> list[int]:
        return [pid for proc in self.processes.values() for pid in proc.pids]

    # -- life ----------------------------------------------------------------------------------

    def __enter__(self) -> KnownSocketsLab:
        started = time.monotonic()
        try:
            if self._given_dir is None:
                self._own_dir = Path(tempfile.mkdtemp(prefix="netdash-lab-"))
            self._start(SERVERS)
            self._start(CLIENTS)
            wait_for_states(self, timeout=3.0)
        except BaseException:
            self.close()
            raise
        self.setup_seconds = time.monotonic() - started
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _role_args(self, role: str) -> dict[str, Any]:
        ports = self.ports
        return {
            "comm": COMMS[role].hex(),
            "lifetime": self.lifetime,
            "port": ports.get(role),
            "unix_path": self.unix_path,
            "dgram_path": self.dgram_path,
            "abstract": self.abstract_name,
            "pairs": self.loadgen_pairs,
            "stream_rate": self.stream_rate,
            "stream_seconds": self.stream_seconds,
            "time_wait": TIME_WAIT_COUNT,
            "queued": ACCEPT_QUEUE,
            **{f"{name}_port": ports[name] for name in ("nginx", "postgres", "java", "slowapp")},
        }

    def _start(self, roles: tuple[str, ...]) -> None:
        """Start ``roles`` inside the namespace, all at once, and wait until each is ready."""
        from netdash.netns import entered, resolve_netns

        target = resolve_netns(self.netns)
        with entered(target):  # children are created in the calling thread's namespace
            for role in roles:
                argv = [sys.executable, "-S", str(ROLES_SCRIPT), role]
                argv.append(json.dumps(self._role_args(role)))
                popen = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
                )
                self.processes[role] = LabProcess(role, popen, [popen.pid])
        self._wait_ready([self.processes[role] for role in roles], timeout=5.0)

    def _wait_ready(self, procs: list[LabProcess], timeout: float) -> None:
        pending = {proc.popen.stdout.fileno(): proc for proc in procs if proc.popen.stdout}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"lab roles not ready after {timeout:.0f} s: {_roles(pending)}")
            for fd in select.select(list(pending), [], [], left)[0]:
                proc = pending.pop(fd)
                line = _read_line(fd)
                word, _, payload = line.partition(" ")
                if word != "ready":
                    raise LabError(f"lab role {proc.role} failed: {line or 'exited silently'}")
                proc.info = json.loads(payload)
                proc.pids = proc.info["pids"]

    def close(self) -> None:
        """End every process and wait for it, then clean up.

        Closing stdin asks each role to exit (nginx's master then reaps its workers: an orphan
        would wait for init, and this VM's init reaps late); a role still there after a grace
        period is killed with its whole process group (which holds the forked workers).
        """
        for proc in self.processes.values():
            _close_pipe(proc.popen.stdin)
        deadline = time.monotonic() + STOP_GRACE
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            if proc.popen.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()
            _close_pipe(proc.popen.stdout)
        _wait_gone([pid for proc in self.processes.values() for pid in proc.pids[1:]])
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None


def _close_pipe(pipe: IO[bytes] | None) -> None:
    if pipe is not None:
        with contextlib.suppress(OSError):
            pipe.close()


def _roles(pending: dict[int, LabProcess]) -> str:
    return ", ".join(proc.role for proc in pending.values())


def _read_line(fd: int) -> str:
    """One line from a pipe without buffering past it (the role may write nothing more)."""
    out = bytearray()
    while not out.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        out += byte
    return out.decode(errors="backslashreplace").strip()


def _wait_gone(pids: list[int], timeout: float = 2.0) -> None:
    """Forked grandchildren are reaped by init, not by us: wait until they are no more."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid):
            if time.monotonic() > deadline:
                raise LabError(f"lab process {pid} survived SIGKILL")
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


# --------------------------------------------------------------------------- checking with ss


def ss(netns: str, *args: str) -> str:
    """`ss ARGS` run inside ``netns`` (the oracle for the lab and its tests)."""
    from netdash.netns import entered, resolve_netns

    with entered(resolve_netns(netns)):
        child = subprocess.Popen(["ss", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=10)
    if child.returncode != 0:
        raise LabError(f"ss {' '.join(args)} failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="backslashreplace")


def tcp_states(netns: str) -> dict[str, int]:
    """TCP sockets per `ss` state name (ESTAB, LISTEN, CLOSE-WAIT, ...) in ``netns``."""
    counts: dict[str, int] = {}
    for line in ss(netns, "-Htan").splitlines():
        state = line.split()[0]
        counts[state] = counts.get(state, 0) + 1
    return counts


def listen_queue(netns: str, port: int) -> int:
    """Recv-Q of the TCP listener on ``port``: connections waiting for accept()."""
    for line in ss(netns, "-Htln", f"sport = :{port}").splitlines():
        return int(line.split()[1])
    raise LabError(f"no TCP listener on port {port}")


def expected_states(lab: KnownSocketsLab) -> dict[str, int]:
    """The least number of TCP sockets per `ss` state that the lab promises."""
    return {
        "LISTEN": 7,  # nginx, postgres, java, slowapp, the two hostile ones, loadgen
        "ESTAB": 2 * lab.loadgen_pairs + 2 * 4 + 2 * 2 + 2 * ACCEPT_QUEUE,
        "CLOSE-WAIT": 2,
        "FIN-WAIT-2": 2,
        "TIME-WAIT": TIME_WAIT_COUNT,
    }


def missing_states(lab: KnownSocketsLab) -> list[str]:
    counts = tcp_states(lab.netns)
    missing = [
        f"{state} {counts.get(state, 0)} < {least}"
        for state, least in expected_states(lab).items()
        if counts.get(state, 0) < least
    ]
    queued = listen_queue(lab.netns, lab.ports["slowapp"])
    if queued != ACCEPT_QUEUE:
        missing.append(f"slowapp accept queue {queued} != {ACCEPT_QUEUE}")
    return missing


def wait_for_states(lab: KnownSocketsLab, timeout: float) -> None:
    """The handshakes and FINs of loopback are quick but not synchronous with `ready`."""
    deadline = time.monotonic() + timeout
    while missing := missing_states(lab):
        if time.monotonic() > deadline:
            raise LabError(f"lab in {lab.netns} is missing: {'; '.join(missing)}")
        time.sleep(0.02)
