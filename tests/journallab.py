"""A journald of the tests' own, writers for it, and journal files made from export fixtures.

- :func:`journald_namespace` starts ``systemd-journald NAME`` (a journal namespace: its socket is
  ``/run/systemd/journal.NAME/socket``, its files ``/var/log/journal/<machine-id>.NAME``, read
  with ``journalctl --namespace NAME``), so bursts and restarts never touch a journal anyone
  else uses. It kills only the pids it started and removes the namespace's files afterwards.
  A namespaced journald exits after 30 s without clients, so the lab keeps a stdout stream
  open to it.
- :func:`send` writes one entry through the native protocol (one datagram, ``KEY=value\\n``, or
  ``KEY\\n<le64 length><bytes>\\n`` for values with a newline or of any size: the binary-safe
  form; ``logger`` truncates at 1,024 bytes and ``systemd-cat`` splits lines).
- :func:`export_entry` / :func:`make_journal` write the journal *export format* and turn it
  into a journal file with ``systemd-journal-remote`` (no daemon involved).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

JOURNALD = "/lib/systemd/systemd-journald"
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
MACHINE_ID = Path("/etc/machine-id")

Value = str | bytes


def encode_fields(fields: Mapping[str, Value]) -> bytes:
    """The native protocol / export format body: text values as ``KEY=value\\n``; values with a
    newline, or bytes, in the binary-safe form ``KEY\\n<le64 size><data>\\n``."""
    parts = []
    for key, value in fields.items():
        data = value.encode() if isinstance(value, str) else value
        if isinstance(value, str) and "\n" not in value:
            parts.append(f"{key}=".encode() + data + b"\n")
        else:
            parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
    return b"".join(parts)


def send(socket_path: str, fields: Mapping[str, Value]) -> None:
    """One journal entry as one datagram to a journald socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.sendto(encode_fields(fields), socket_path)


def send_many(socket_path: str, entries: list[Mapping[str, Value]]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(socket_path)
        for fields in entries:
            sock.send(encode_fields(fields))


@dataclass
class Journald:
    """A running ``systemd-journald NAME`` started by the tests."""

    name: str
    proc: subprocess.Popen[bytes] | None = None
    keepalive: socket.socket | None = None
    log: Path = field(default_factory=Path)

    @property
    def socket_path(self) -> str:
        return f"/run/systemd/journal.{self.name}/socket"

    def send(self, message: Value, **fields: Value) -> None:
        send(self.socket_path, {"MESSAGE": message, **fields})

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [JOURNALD, self.name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"journald exited: {self.log.read_text(errors='replace')}")
            with suppress(OSError):
                self.keepalive = _stdout_stream(self.name)
                return
            time.sleep(0.02)
        raise RuntimeError("journald did not answer in 10 s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill our journald (its pid only) and wait for it."""
        if self.keepalive is not None:
            self.keepalive.close()
            self.keepalive = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.start()


def _stdout_stream(name: str) -> socket.socket:
    """A client connection (journald's stdout stream protocol header) that keeps a namespaced
    journald from exiting when idle."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(f"/run/systemd/journal.{name}/stdout")
        sock.sendall(b"netdash-test-keepalive\n\n6\n0\n0\n0\n0\n")
    except OSError:
        sock.close()
        raise
    return sock


def skip_unless_journald() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a journald of the tests' own)")
    if not os.access(JOURNALD, os.X_OK) or shutil.which("journalctl") is None:
        pytest.skip("needs systemd (journald and journalctl): apt-get install systemd")


def skip_unless_journal_remote() -> None:
    if not os.access(JOURNAL_REMOTE, os.X_OK) or shutil.which("journalctl") is None:
        pytest.skip("needs systemd-journal-remote: apt-get install systemd-journal-remote")


@contextmanager
def machine_id() -> Iterator[str]:
    """journald needs /etc/machine-id; a bare container may lack it: then one is written for
    the test and removed after."""
    existing = MACHINE_ID.read_text().strip() if MACHINE_ID.exists() else ""
    if existing:
        yield existing
        return
    made = uuid.uuid4().hex
    MACHINE_ID.write_text(made + "\n")
    try:
        yield made
    finally:
        MACHINE_ID.unlink(missing_ok=True)


@contextmanager
def journald_namespace(tmp: Path) -> Iterator[Journald]:
    """A journald of our own in a fresh namespace; every trace of it is removed after."""
    skip_unless_journald()
    name = f"ndt{os.getpid()}x{uuid.uuid4().hex[:6]}"
    with machine_id() as mid:
        journald = Journald(name, log=tmp / f"journald-{name}.log")
        try:
            journald.start()
            yield journald
        finally:
            journald.kill()
            shutil.rmtree(f"/run/systemd/journal.{name}", ignore_errors=True)
            for base in ("/var/log/journal", "/run/log/journal"):
                shutil.rmtree(f"{base}/{mid}.{name}", ignore_errors=True)


def export_entry(fields: Mapping[str, Value]) -> bytes:
    """One entry of the journal export format (a blank line ends it)."""
    return encode_fields(fields) + b"\n"


def make_journal(output: Path, *exports: bytes) -> Path:
    """A journal file from export-format data (systemd-journal-remote appends to ``output``;
    the file name must end in ``.journal``)."""
    skip_unless_journal_remote()
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={output}", "-"],
        input=b"".join(exports),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return output


def journalctl_json(*args: str) -> list[dict]:
    """The oracle: ``journalctl -o json --all ARGS``, one entry per line."""
    import json

    done = subprocess.run(
        ["journalctl", "-o", "json", "--all", "--no-pager", *args],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
