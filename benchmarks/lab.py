"""A scale lab: N established TCP pairs over ~20 owner processes, in a network namespace of its own.

The benchmark compares netdash with `ss` on the same sockets, so the lab must be big (100,000
sockets), owned by several processes (owners are the expensive part of `ss -p`), quick to build
(seconds) and gone without a trace afterwards. It lives in a fresh namespace so it never touches
the host's sockets, and the sysctls it raises (listen backlog, ephemeral ports) are the
namespace's own copies.

The workers are ``lab_worker.py`` (its docstring explains the address layout that avoids
ephemeral-port exhaustion, and why no TIME_WAIT pile is left behind). Both ends of every pair stay
open in a worker, so ``n_pairs`` pairs are ``2 * n_pairs`` ESTABLISHED sockets, plus one listener
per worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000  # linux/sched.h

#: Raised inside the lab's namespace only (each namespace has its own copy of these).
LAB_SYSCTLS: dict[str, str] = {
    "net.core.somaxconn": "65535",
    "net.ipv4.tcp_max_syn_backlog": "65535",
    "net.ipv4.ip_local_port_range": "1024 65535",
}

#: Ports a worker may use towards its one listener from its one source address.
MAX_PAIRS_PER_WORKER = 60_000
WORKER_SCRIPT = Path(__file__).resolve().with_name("lab_worker.py")

_names = itertools.count()


class LabError(RuntimeError):
    """The lab could not be built; the message says which step failed and why."""


# --------------------------------------------------------------------------- entering namespaces


def _load_setns() -> Callable[[int, int], None]:
    """``os.setns`` (Python 3.12+) or the libc call through ctypes (3.10, 3.11)."""
    if hasattr(os, "setns"):
        return os.setns
    libc = ctypes.CDLL(None, use_errno=True)

    def setns(fd: int, nstype: int) -> None:
        if libc.setns(fd, nstype) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return setns


setns = _load_setns()


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


@contextlib.contextmanager
def thread_in_netns(name: str | None) -> Iterator[None]:
    """Move the calling thread into namespace ``name`` for the ``with`` block, then back.

    setns() changes only the calling thread, and a child spawned from it starts in that
    namespace. This is how both sides of every comparison enter the lab: the same cost for `ss`
    and for netdash, cheaper than ``ip netns exec`` (which also unshares the mount namespace and
    remounts /sys), and it keeps subprocess's vfork path: a ``preexec_fn`` would force a real
    fork(), which costs ~20 ms from a benchmark process holding 100,000 sockets' records and
    makes the child's ``ru_maxrss`` start at the parent's size. ``None`` stays where we are.
    """
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(target, CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(home, CLONE_NEWNET)
    finally:
        os.close(home)


def run_in_netns(argv: list[str], netns: str | None, timeout: float = 60.0) -> str:
    """Run a command inside ``netns`` and return its stdout; raise LabError if it fails."""
    with thread_in_netns(netns):
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with child:
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise LabError(f"{' '.join(argv)} took more than {timeout:.0f} s") from None
    if child.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({child.returncode}): {stderr.strip()}")
    return stdout


def established_count(netns: str | None) -> int:
    """ESTABLISHED TCP sockets in ``netns``, counted by `ss` (the oracle of the whole benchmark)."""
    out = run_in_netns(["ss", "-Htan", "state", "established"], netns)
    return out.count("\n")


# ---------------------------------------------------------------------------------------- lab


def max_pairs_per_worker() -> int:
    """A worker holds 2 fds per pair; without CAP_SYS_RESOURCE it cannot pass the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    by_fds = MAX_PAIRS_PER_WORKER if hard == resource.RLIM_INFINITY else (hard - 64) // 2
    return min(MAX_PAIRS_PER_WORKER, by_fds)


def split_pairs(n_pairs: int, n_procs: int) -> list[int]:
    """Pairs per worker, as even as possible; never a worker with nothing to hold."""
    workers = min(n_procs, n_pairs)
    if workers <= 0:
        return []
    base, extra = divmod(n_pairs, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


L = TypeVar("L", bound="Lab")


class Lab:
    """A lab built on entry and always torn down: a build that fails half-way is undone before
    the error goes on, and ``setup_seconds`` says how long building took."""

    setup_seconds: float | None = None

    def _build(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: L) -> L:
        started = time.monotonic()
        try:
            self._build()
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


def add_namespace(name: str) -> None:
    """``ip netns add NAME``, refusing a name in use: a lab never adopts someone's namespace."""
    if netns_path(name).exists():
        raise LabError(f"namespace {name} already exists; refusing to reuse it")
    run_in_netns(["ip", "netns", "add", name], None)


class SocketLab(Lab):
    """``n_pairs`` ESTABLISHED loopback pairs held by up to ``n_procs`` workers in a new namespace.

    ``n_pairs=0`` is the idle lab: a namespace with ``lo`` up and nothing in it. Use as a context
    manager; on exit the workers are killed and the namespace deleted, whatever happened.
    """

    def __init__(self, n_pairs: int, n_procs: int = 20, netns_name: str | None = None) -> None:
        if n_pairs < 0 or n_procs < 1:
            raise ValueError("n_pairs must be >= 0 and n_procs >= 1")
        self.n_pairs = n_pairs
        self.shares = split_pairs(n_pairs, n_procs)
        if self.shares and self.shares[0] > max_pairs_per_worker():
            raise ValueError(
                f"{self.shares[0]} pairs per worker exceeds {max_pairs_per_worker()} "
                "(ports per source address, or the hard RLIMIT_NOFILE): use more processes"
            )
        self.name = netns_name or f"nd-bench-{os.getpid()}-{next(_names)}"
        self.workers: list[subprocess.Popen[bytes]] = []
        self._created = False

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    @property
    def expected_established(self) -> int:
        """Both ends of every pair: the ESTABLISHED count `ss` must report."""
        return 2 * self.n_pairs

    def _build(self) -> None:
        self._create_namespace()
        self._start_workers()
        self._wait_ready(timeout=30.0 + self.n_pairs / 2000)
        self._verify()

    # ------------------------------------------------------------------------------- building

    def _create_namespace(self) -> None:
        add_namespace(self.name)
        self._created = True
        subprocess.run(
            ["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True
        )
        settings = [f"{key}={value}" for key, value in LAB_SYSCTLS.items()]
        run_in_netns(["ip", "netns", "exec", self.name, "sysctl", "-qw", *settings], None)

    def _start_workers(self) -> None:
        with thread_in_netns(self.name):
            for index, share in enumerate(self.shares):
                argv = [sys.executable, "-S", str(WORKER_SCRIPT), str(index), str(share)]
                self.workers.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                    )
                )

    def _wait_ready(self, timeout: float) -> None:
        """Each worker writes one line: ``ready N`` once all its pairs are accepted."""
        pending = {w.stdout.fileno(): w for w in self.workers if w.stdout is not None}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"{len(pending)} lab workers not ready after {timeout:.0f} s")
            readable, _, _ = select.select(list(pending), [], [], left)
            for fd in readable:
                worker = pending.pop(fd)
                line = worker.stdout.readline().decode(errors="replace").strip()  # type: ignore[union-attr]
                if not line.startswith("ready "):
                    raise LabError(f"lab worker {worker.pid} failed: {line or 'no output'}")

    def _verify(self) -> None:
        count = established_count(self.name)
        if count != self.expected_established:
            raise LabError(
                f"expected {self.expected_established} ESTABLISHED sockets in {self.name}, "
                f"ss counts {count}"
            )

    # ------------------------------------------------------------------------------ tearing down

    def close(self) -> None:
        """Kill the workers (their sockets reset, no TIME_WAIT) and delete the namespace."""
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGKILL)
        for worker in self.workers:
            worker.wait()
            for pipe in (worker.stdin, worker.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self.workers = []
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
            self._created = False
