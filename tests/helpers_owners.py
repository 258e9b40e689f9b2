"""Child processes for tests/test_owners.py: real processes holding real sockets.

Run as ``python helpers_owners.py MODE ...``. Every mode prints one JSON line when ready and
exits when its stdin closes, so a test that dies never leaves a child behind. Only the
``probe`` and ``pidns`` modes import netdash (found through PYTHONPATH).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

PR_SET_NAME = 15  # linux/prctl.h


def say(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def owner_fds(omap: Any, owners: Any, inode: int) -> list[tuple[Any, int]]:
    """(owner, fd) for each descriptor through which an owner of ``inode`` holds it."""
    tables = omap.fd_tables()
    return [
        (o, fd)
        for o in owners.get(inode, ())
        for fd, held in sorted(tables.get(o.pid, {}).items())
        if held == inode
    ]


def inode_of(fd: int) -> int:
    return os.fstat(fd).st_ino


def set_comm(name: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME)")


def listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


def holder(args: argparse.Namespace) -> None:
    """Hold ``--count`` listening sockets and obey commands read from stdin."""
    if args.name:
        set_comm(bytes.fromhex(args.name))
    keep: list[Any] = [listener() for _ in range(args.count)]
    sockets = [[s.fileno(), inode_of(s.fileno()), s.getsockname()[1]] for s in keep]
    say({"pid": os.getpid(), "sockets": sockets})
    for line in sys.stdin:
        cmd, *rest = line.split()
        if cmd == "open":
            sock = listener()
            keep.append(sock)
            say({"fd": sock.fileno(), "inode": inode_of(sock.fileno())})
        elif cmd in ("swapsock", "swapfile"):
            # dup2() a new socket or a regular file onto an fd that holds a socket: the old
            # socket closes and the open-fd count stays the same.
            fd = int(rest[0])
            with listener() if cmd == "swapsock" else tempfile.TemporaryFile() as new:
                os.dup2(new.fileno(), fd)
            say({"fd": fd, "inode": inode_of(fd) if cmd == "swapsock" else None})
        elif cmd == "close":
            os.close(int(rest[0]))
            say({})


def forked(_args: argparse.Namespace) -> None:
    """One listening socket shared by this process and a forked child."""
    sock = listener()
    stop_r, stop_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(stop_w)
        os.read(stop_r, 1)  # returns when the parent closes its end (or dies)
        os._exit(0)
    os.close(stop_r)
    say({"pids": [os.getpid(), child], "fd": sock.fileno(), "inode": inode_of(sock.fileno())})
    sys.stdin.read()
    os.close(stop_w)
    os.waitpid(child, 0)


def _new_socket(rng: random.Random) -> list[socket.socket]:
    kind = rng.randrange(3)
    if kind == 0:
        return [listener()]
    if kind == 1:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        return [udp]
    return list(socket.socketpair())


def _short_lived_child(rng: random.Random) -> None:
    """Fork a child that opens a socket and exits soon: pids vanish while the map reads them."""
    if os.fork() == 0:
        try:
            _new_socket(rng)
            time.sleep(rng.random() / 100)
        finally:
            os._exit(0)


def churn(args: argparse.Namespace) -> None:
    """Open and close sockets at random for ``--seconds``, then hold what is left."""
    rng = random.Random(args.seed)
    held: list[socket.socket] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        if held and rng.random() < 0.45:
            held.pop(rng.randrange(len(held))).close()
        else:
            held.extend(_new_socket(rng))
        if rng.random() < 0.05:
            _short_lived_child(rng)
        while True:  # reap children; some stay zombies for a while, as in real life
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(rng.random() / 500)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    say({"pid": os.getpid(), "held": [[s.fileno(), inode_of(s.fileno())] for s in held]})
    sys.stdin.read()


def probe(args: argparse.Namespace) -> None:
    """As an unprivileged user: what does an OwnerMap see of our socket and of root's?"""
    from netdash.sources.owners import OwnerMap

    own = listener()
    inode = inode_of(own.fileno())
    omap = OwnerMap()
    omap.refresh({inode: os.geteuid(), args.root_inode: 0})
    owners = omap.owners()
    say(
        {
            "pid": os.getpid(),
            "uid": os.geteuid(),
            "fd": own.fileno(),
            "inode": inode,
            "own_owners": [
                [o.pid, fd, o.comm, o.uid, o.user] for o, fd in owner_fds(omap, owners, inode)
            ],
            "root_owners": [[o.pid, fd] for o, fd in owner_fds(omap, owners, args.root_inode)],
            "complete": omap.complete,
            "denied": omap.stats.denied,
        }
    )


class Kid:
    """A holder child, driven through its stdin/stdout."""

    def __init__(self, count: int = 2) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "holder", "--count", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._reply()
        self.pid: int = ready["pid"]
        self.sockets: list[list[int]] = ready["sockets"]

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def send(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def pidns(_args: argparse.Namespace) -> None:
    """Run as PID 1 of a new pid namespace (``unshare --pid --fork --mount-proc``).

    Nothing else lives in there, so the exact number of pids a refresh rescans can be checked,
    and ``ns_last_pid`` lets us hand a dead child's pid to a new one.
    """
    from netdash.sources.owners import OwnerMap

    now = [0.0]
    omap = OwnerMap(full_pass_interval=1000.0, clock=lambda: now[0])

    def stats() -> dict[str, Any]:
        st = omap.stats
        return {
            "full": st.full_pass,
            "scanned": st.pids_scanned,
            "fds": st.fds_read,
            "unknown": st.unknown_inodes,
            "pids": st.pids,
        }

    def held_by(inode: int) -> list[list[int]]:
        return [[o.pid, fd] for o, fd in owner_fds(omap, omap.owners(), inode)]

    kids = [Kid() for _ in range(4)]
    out: dict[str, Any] = {"kids": [k.pid for k in kids]}
    omap.refresh()
    out["first"] = stats()
    view = omap.owners()
    omap.refresh()
    omap.refresh()
    out["steady"] = {**stats(), "view_kept": omap.owners() is view}

    opened = kids[0].send("open")
    omap.refresh()
    out["opened"] = {**stats(), "owners": held_by(opened["inode"]), "fd": opened["fd"]}

    fd = kids[1].sockets[0][0]
    swapped = kids[1].send(f"swapsock {fd}")["inode"]
    omap.refresh()
    out["swap_unseen"] = {**stats(), "owners": held_by(swapped)}
    omap.refresh({swapped: 0})
    out["swap_searched"] = {**stats(), "owners": held_by(swapped), "fd": fd}
    omap.refresh({swapped: 0, NOBODYS_INODE: 4242})
    out["ownerless_other_uid"] = stats()
    omap.refresh({swapped: 0, NOBODYS_INODE - 1: 0})
    out["ownerless_root_first"] = stats()
    omap.refresh({swapped: 0, NOBODYS_INODE - 1: 0})
    out["ownerless_root_again"] = stats()

    victim = kids[2]
    count = os.stat(f"/proc/{victim.pid}/fd").st_size
    victim.stop()
    time.sleep(0.05)  # a later start time (clock ticks of 10 ms) for the pid's next owner
    with open("/proc/sys/kernel/ns_last_pid", "w") as last_pid:
        last_pid.write(str(victim.pid - 1))
    reborn = Kid()
    kids[2] = reborn
    omap.refresh()
    out["reuse"] = {
        **stats(),
        "same_pid": reborn.pid == victim.pid,
        "same_count": os.stat(f"/proc/{reborn.pid}/fd").st_size == count,
        "old": [held_by(inode) for _, inode, _ in victim.sockets],
        "new": [held_by(inode) for _, inode, _ in reborn.sockets],
        "pid": reborn.pid,
    }

    now[0] = 5000.0
    omap.refresh()
    owners, tables = omap.full_rescan()
    kept = {pid: dict(table) for pid, table in omap.fd_tables().items()}
    out["full"] = {**stats(), "equal": dict(omap.owners()) == owners and kept == tables}
    for kid in kids:
        kid.stop()
    say(out)


# An inode no process holds (a kernel socket's, or one whose process just closed it).
NOBODYS_INODE = 2**32 - 7


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p_holder = sub.add_parser("holder")
    p_holder.add_argument("--count", type=int, default=1)
    p_holder.add_argument("--name", help="comm to set, as hex bytes")
    p_holder.add_argument("--tag", help="ignored: lets a test put odd bytes in argv")
    sub.add_parser("fork")
    p_churn = sub.add_parser("churn")
    p_churn.add_argument("--seconds", type=float, default=1.0)
    p_churn.add_argument("--seed", type=int, default=0)
    p_probe = sub.add_parser("probe")
    p_probe.add_argument("--root-inode", type=int, required=True)
    sub.add_parser("pidns")
    parsed = parser.parse_args()
    modes = {"holder": holder, "fork": forked, "churn": churn, "probe": probe, "pidns": pidns}
    modes[parsed.mode](parsed)
