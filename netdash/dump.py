"""`netdash dump connections --json`: the scriptable face of the sampler the TUI uses.

One object per socket with the keys documented in README.md. Kept separate from the CLI so the
tests can compare the JSON with `ss` without spawning a process.

:func:`socket_to_json` is the definition of the format; :func:`write_json` writes the very
same bytes (``json.dump(..., separators=(",", ":"))``, ASCII) without building a dict per
socket: at 100,000 sockets the dicts plus ``json.dump``'s pure-Python streaming encoder took
~3.5 s, the encoder below ~0.5 s. It writes in large chunks, so an unbuffered stdout
(``PYTHONUNBUFFERED=1``) costs a few hundred ``write`` calls, not one per token (11.6 million
of them measured, 10 s of system time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, BinaryIO

from netdash.model import Owner, Socket, SocketSample, fd_index

CHUNK_SOCKETS = 2000  # sockets per write: ~900 KB, few syscalls and little memory


def socket_to_json(sock: Socket, sample: SocketSample) -> dict[str, Any]:
    owners = sample.owners_of(sock)
    hidden = not owners and sock.inode != 0 and not sample.owners_complete
    listed = sorted(
        (o.pid, o.comm, fd) for o in owners for fd in sample.fds_of(sock.inode, o.pid) or (None,)
    )
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


def write_json(sample: SocketSample, out: BinaryIO, *, unix: bool = True) -> None:
    """Write ``sample`` as the JSON array of :func:`sample_to_json`, byte for byte as
    ``json.dump(..., separators=(",", ":"))`` writes it, plus a final newline."""
    sockets = [s for s in sample.sockets if unix or s.proto != "unix"]
    chunks = (sockets[i : i + CHUNK_SOCKETS] for i in range(0, len(sockets), CHUNK_SOCKETS))
    write_batches(chunks, sample.owners, sample.owners_complete, out, sample.fd_tables)


def write_batches(
    batches: Iterable[Sequence[Socket]],
    owners: Mapping[int, tuple[Owner, ...]],
    owners_complete: bool,
    out: BinaryIO,
    fd_tables: Mapping[int, Mapping[int, int]],
) -> None:
    """:func:`write_json` for sockets that arrive in batches (``SocketReader.iter_read``):
    each is encoded and written (by ~CHUNK_SOCKETS) as it comes, so the table is never whole
    in memory. Nothing is written before the first batch: a source that fails at once leaves
    stdout empty."""
    encoder = _Encoder(owners, owners_complete, fd_tables)
    pending: list[str] = []
    opening = "["  # before the first chunk; a comma before every later one
    for batch in batches:
        pending += encoder.encode(batch)
        if len(pending) >= CHUNK_SOCKETS:
            out.write((opening + ",".join(pending)).encode("ascii"))
            opening, pending = ",", []
    if pending:
        out.write((opening + ",".join(pending) + "]\n").encode("ascii"))
    else:
        out.write(b"[]\n" if opening == "[" else b"]\n")


class _Encoder:
    """Encodes sockets the way ``json`` does: strings through the same ASCII escaper, ints by
    ``int.__repr__``, floats by ``float.__repr__`` (rtt is always finite), None as null."""

    def __init__(
        self,
        owners: Mapping[int, tuple[Owner, ...]],
        complete: bool,
        fd_tables: Mapping[int, Mapping[int, int]],
    ) -> None:
        self._owners = owners
        self._complete = complete
        self._held = fd_index(fd_tables)  # inode -> [(pid, fd)]: one pass, not one per socket
        self._text: dict[str | None, str] = {None: "null"}  # protos, states, addresses, names

    def text(self, value: str | None) -> str:
        encoded = self._text.get(value)
        if encoded is None:
            if len(self._text) > 200_000:
                self._text.clear()
                self._text[None] = "null"
            encoded = self._text[value] = encode_basestring_ascii(value)  # type: ignore[arg-type]
        return encoded

    def owners(self, owners: Sequence[Owner], inode: int) -> tuple[object, str, str]:
        """(pid, process, owners list) for a socket with owners, sorted as ``socket_to_json``:
        one entry per descriptor."""
        text = self.text
        held = self._held.get(inode, ())
        if len(owners) == 1 and len(held) == 1:
            o = owners[0]
            process = text(o.comm)
            return o.pid, process, f'[{{"pid":{o.pid},"process":{process},"fd":{held[0][1]}}}]'
        listed = sorted(
            (o.pid, o.comm, fd)
            for o in owners
            for fd in [f for pid, f in held if pid == o.pid] or [None]
        )
        items = ",".join(
            f'{{"pid":{p},"process":{text(c)},"fd":{"null" if f is None else f}}}'
            for p, c, f in listed
        )
        return listed[0][0], text(listed[0][1]), f"[{items}]"

    def encode(self, sockets: Iterable[Socket]) -> list[str]:
        """One JSON object per socket. Hot at 100k sockets: no helper calls per field, a
        None is spelled out inline."""
        known, text = self._text.get, self.text
        owners_map, complete, owners_of = self._owners, self._complete, self.owners
        parts = []
        for s in sockets:
            inode = s.inode
            owners = owners_map.get(inode) if inode else None
            if owners:
                pid, process, listed = owners_of(owners, inode)
            else:
                pid = process = "null"
                listed = "null" if inode and not complete else "[]"
            info = s.tcp
            if info is None:
                tail = _NO_TCP
            else:
                acked, received = info.bytes_acked, info.bytes_received
                tail = (
                    f'"rtt_ms":{info.rtt_us / 1000.0!r},"rttvar_ms":{info.rttvar_us / 1000.0!r},'
                    f'"retrans":{info.total_retrans},"cwnd":{info.snd_cwnd},'
                    f'"ssthresh":{info.snd_ssthresh},"mss":{info.snd_mss},'
                    f'"bytes_acked":{"null" if acked is None else acked},'
                    f'"bytes_received":{"null" if received is None else received}}}'
                )
            lport, rport, peer, uid = s.local_port, s.remote_port, s.peer_inode, s.uid
            parts.append(
                f'{{"proto":{known(s.proto) or text(s.proto)},'
                f'"family":{known(s.family) or text(s.family)},'
                f'"type":{known(s.sock_type) or text(s.sock_type)},'
                f'"state":{known(s.state) or text(s.state)},'
                f'"local_addr":{known(s.local_addr) or text(s.local_addr)},'
                f'"local_port":{"null" if lport is None else lport},'
                f'"remote_addr":{known(s.remote_addr) or text(s.remote_addr)},'
                f'"remote_port":{"null" if rport is None else rport},'
                f'"interface":{known(s.interface) or text(s.interface)},'
                f'"peer_inode":{"null" if peer is None else peer},'
                f'"recv_q":{s.recv_q},"send_q":{s.send_q},"inode":{inode},'
                f'"uid":{"null" if uid is None else uid},"pid":{pid},"process":{process},'
                f'"owners":{listed},{tail}'
            )
        return parts


_NO_TCP = (
    '"rtt_ms":null,"rttvar_ms":null,"retrans":null,"cwnd":null,"ssthresh":null,"mss":null,'
    '"bytes_acked":null,"bytes_received":null}'
)
