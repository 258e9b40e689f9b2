"""`netdash dump connections --json`: the scriptable face of the sampler the TUI uses.

One object per socket with the keys documented in README.md. Kept separate from the CLI so the
tests can compare the JSON with `ss` without spawning a process.
"""

from __future__ import annotations

from typing import Any

from netdash.model import Socket, SocketSample


def socket_to_json(sock: Socket, sample: SocketSample) -> dict[str, Any]:
    owners = sample.owners_of(sock)
    hidden = not owners and sock.inode != 0 and not sample.owners_complete
    listed = sorted((o.pid, o.comm, o.fd) for o in owners)
    first = listed[0] if listed else None
    info = sock.tcp
    return {
        "proto": sock.proto,
        "family": sock.family,
        "type": sock.sock_type,
        "state": sock.state,
        "local_addr": sock.local_addr,
        "local_port": sock.local_port,
        "remote_addr": sock.remote_addr,
        "remote_port": sock.remote_port,
        "interface": sock.interface,
        "peer_inode": sock.peer_inode,
        "recv_q": sock.recv_q,
        "send_q": sock.send_q,
        "inode": sock.inode,
        "uid": sock.uid,
        "pid": first[0] if first else None,
        "process": first[1] if first else None,
        "owners": None if hidden else [{"pid": p, "process": c, "fd": f} for p, c, f in listed],
        "rtt_ms": info.rtt_ms if info else None,
        "rttvar_ms": info.rttvar_ms if info else None,
        "retrans": info.total_retrans if info else None,
        "cwnd": info.snd_cwnd if info else None,
        "ssthresh": info.snd_ssthresh if info else None,
        "mss": info.snd_mss if info else None,
        "bytes_acked": info.bytes_acked if info else None,
        "bytes_received": info.bytes_received if info else None,
    }


def sample_to_json(sample: SocketSample, *, unix: bool = True) -> list[dict[str, Any]]:
    return [socket_to_json(sock, sample) for sock in sample.sockets if unix or sock.proto != "unix"]
