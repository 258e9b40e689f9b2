"""Synthetic socket samples for the UI parts of the benchmark: every counter moves every tick.

The lab's sockets are idle, so a real sample of them changes nothing between refreshes; the UI
target is about the worst steady case instead: at 100,000 rows *every* row's counter cells
change (RTT, byte rates), 1% of the rows appear and 1% vanish in each refresh. The records are
the model's own (:class:`netdash.model.Socket` with :class:`TcpInfo`, owners by inode), fed
through the same engine tracker and rows feed as the live app, so only the kernel is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from netdash.model import Owner, Socket, SocketSample, TcpInfo

#: Fraction of rows replaced by new ones in each refresh (the brief: 1% added, 1% removed).
CHURN = 0.01
OWNER_PROCESSES = 20
#: A few sockets in other states, so that the "established" view really filters something.
TIME_WAIT_EVERY = 50
CLOSE_WAIT_EVERY = 100


def state_of(ident: int) -> str:
    if ident % TIME_WAIT_EVERY == 0:
        return "TIME_WAIT"
    if ident % CLOSE_WAIT_EVERY == 1:
        return "CLOSE_WAIT"
    return "ESTABLISHED"


def tcp_info(rtt_us: int, acked: int, received: int) -> TcpInfo:
    """A plausible established connection's tcp_info with the counters the table shows."""
    return TcpInfo(
        ca_state=0,
        retransmits=0,
        probes=0,
        backoff=0,
        options=7,
        snd_wscale=7,
        rcv_wscale=7,
        rto_us=204_000,
        ato_us=40_000,
        snd_mss=32_768,
        rcv_mss=536,
        unacked=0,
        sacked=0,
        lost=0,
        retrans=0,
        pmtu=65_535,
        rcv_ssthresh=65_483,
        rtt_us=rtt_us,
        rttvar_us=rtt_us // 2,
        snd_ssthresh=2_147_483_647,
        snd_cwnd=10,
        advmss=65_483,
        reordering=3,
        rcv_rtt_us=0,
        rcv_space=65_483,
        total_retrans=0,
        bytes_acked=acked,
        bytes_received=received,
        segs_out=acked // 1000 + 1,
        segs_in=received // 1000 + 1,
    )


@dataclass
class SyntheticSockets:
    """``rows`` connected TCP sockets whose counters move on every :meth:`next_sample`, plus one
    listener per owner process (so a sample holds ``rows + OWNER_PROCESSES`` sockets)."""

    rows: int
    interval: float = 1.0
    _ids: list[int] = field(default_factory=list)
    _next_id: int = 0
    _tick: int = 0

    def __post_init__(self) -> None:
        self._ids = list(range(self.rows))
        self._next_id = self.rows

    def next_sample(self) -> SocketSample:
        """The next refresh: after the first, 1% of the ids replaced, every counter advanced."""
        if self._tick:
            churn = max(1, int(self.rows * CHURN))
            # Drop the oldest 1% and add as many new ids: the removals spread over the
            # sort order (addresses are derived from the id), as real churn would.
            self._ids = self._ids[churn:] + list(range(self._next_id, self._next_id + churn))
            self._next_id += churn
        tick = self._tick
        self._tick += 1
        connected = [self._socket(ident, tick) for ident in self._ids]
        owners = {
            sock.inode: self._owner(ident)
            for ident, sock in zip(self._ids, connected, strict=True)
            if sock.inode
        }
        listeners = [self._listener(worker) for worker in range(OWNER_PROCESSES)]
        owners.update({sock.inode: self._owner(n) for n, sock in enumerate(listeners)})
        sockets = (*listeners, *connected)
        return SocketSample(
            sockets=sockets,
            owners=owners,
            sources={"tcp": "synthetic"},
            taken_at=1000.0 + tick * self.interval,
            wall_time=1_700_000_000.0 + tick * self.interval,
        )

    def samples(self) -> Iterator[SocketSample]:
        while True:
            yield self.next_sample()

    @staticmethod
    def _socket(ident: int, tick: int) -> Socket:
        worker, index = divmod(ident, 60_000)
        # Counters grow by a different amount on each tick so that every rate cell changes.
        step = 1 + (ident + tick) % 97
        state = state_of(ident)
        time_wait = state == "TIME_WAIT"  # no inode, no owner, no tcp_info: as the kernel says
        return Socket(
            proto="tcp",
            family="inet",
            state=state,
            local_addr=f"127.1.{worker % 250}.{ident % 250 + 1}",
            local_port=1024 + index,
            remote_addr="127.0.0.1",
            remote_port=20_000 + ident % OWNER_PROCESSES,
            recv_q=0,
            send_q=0,
            inode=0 if time_wait else 1_000_000 + ident,
            uid=0,
            cookie=ident + 1,
            tcp=None
            if time_wait
            else tcp_info(
                rtt_us=50 + (ident * 7 + tick * 13) % 900,
                acked=tick * 1_000 * step,
                received=tick * 700 * step,
            ),
        )

    @staticmethod
    def _listener(worker: int) -> Socket:
        """One listener per owner process, as in the lab; they sort first (LISTEN)."""
        return Socket(
            proto="tcp",
            family="inet",
            state="LISTEN",
            local_addr="127.0.0.1",
            local_port=20_000 + worker,
            remote_addr=None,
            remote_port=None,
            recv_q=0,
            send_q=4096,
            inode=900_000 + worker,
            uid=0,
            cookie=10_000_000 + worker,
        )

    @staticmethod
    def _owner(ident: int) -> tuple[Owner]:
        """The owners of socket ``ident``: one of the workers, shared as the owner map shares
        them (one 1-tuple per process)."""
        return _WORKERS[ident % OWNER_PROCESSES]


_WORKERS = tuple((Owner(pid=10_000 + n, comm=f"worker-{n}"),) for n in range(OWNER_PROCESSES))
