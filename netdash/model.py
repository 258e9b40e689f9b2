"""The vocabulary every layer shares: small frozen records, no behaviour beyond derived properties.

Sources build these, the engine turns sequences of them into rates and history, and the UI,
`netdash dump` and the tests consume them. Everything here is plain data and JSON-serialisable
through :func:`netdash.record.to_jsonable`, so a recorded sample can stand in for a live source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

# Kernel TCP states, include/net/tcp_states.h. UDP and UNIX sockets reuse the same numbers
# (TCP_ESTABLISHED for connected, TCP_CLOSE for unconnected, TCP_LISTEN for listening).
TCP_STATES: dict[int, str] = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}

#: What UDP and UNIX sockets are called in each kernel state (as `ss` names them).
DATAGRAM_STATES: dict[int, str] = {1: "ESTABLISHED", 7: "UNCONN", 10: "LISTEN"}

#: States shown in the summary line, in the order an SRE reads them.
SUMMARY_STATES: tuple[str, ...] = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
)

#: Why a socket has no owner process. Inode 0 is the kernel saying "no file refers to me".
NO_OWNER_TIME_WAIT = "no owner: TIME_WAIT sockets are kept by the kernel, not a process"
NO_OWNER_REQUEST = "no owner: connection request (SYN_RECV), not yet accepted"
NO_OWNER_NOT_ACCEPTED = "no owner: not yet accept()ed by the listening process"
NO_OWNER_ORPHAN = "no owner: closed by its process, the kernel is finishing it"
NO_OWNER_NEEDS_ROOT = "needs root: owned by another user's process"
NO_OWNER_DENIED = "owner hidden: a process refused access to its fds, even to root"
NO_OWNER_UNKNOWN = "no owner found: kernel socket, or its process just closed it"


@dataclass(frozen=True)  # no field slots, on purpose: see below
class TcpInfo:
    """The fields of ``struct tcp_info`` (linux/tcp.h) that netdash shows.

    Times are in microseconds as the kernel reports them. Fields added to the struct after
    Linux 4.x are ``None`` when the kernel's struct is too short to hold them.

    Live records are :class:`~netdash.sources.tcpinfo.PackedTcpInfo`, a subclass that reads
    each field from the kernel's bytes. This class has no storage of its own, so that a packed
    record carries neither 39 empty slots (312 bytes, 31 MB at 100,000 sockets) nor a
    ``__dict__`` (48 bytes): calling it builds an eager record (old kernels, recordings,
    copies), an instance of a private subclass that keeps the fields in a ``__dict__`` and
    calls itself TcpInfo.
    """

    __slots__ = ()

    ca_state: int
    retransmits: int  # retransmissions of the segment in flight now (ss "retrans:X/...")
    probes: int
    backoff: int
    options: int
    snd_wscale: int
    rcv_wscale: int
    rto_us: int
    ato_us: int
    snd_mss: int
    rcv_mss: int
    unacked: int
    sacked: int
    lost: int
    retrans: int  # segments retransmitted and not yet acknowledged
    pmtu: int
    rcv_ssthresh: int
    rtt_us: int
    rttvar_us: int
    snd_ssthresh: int
    snd_cwnd: int
    advmss: int
    reordering: int
    rcv_rtt_us: int
    rcv_space: int
    total_retrans: int
    pacing_rate: int | None = None
    bytes_acked: int | None = None
    bytes_received: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None
    notsent_bytes: int | None = None
    min_rtt_us: int | None = None
    data_segs_in: int | None = None
    data_segs_out: int | None = None
    delivery_rate: int | None = None
    busy_time_us: int | None = None
    bytes_sent: int | None = None
    bytes_retrans: int | None = None

    @property
    def rtt_ms(self) -> float:
        return self.rtt_us / 1000.0

    @property
    def rttvar_ms(self) -> float:
        return self.rttvar_us / 1000.0

    def __new__(cls, *args: object, **kwargs: object) -> TcpInfo:
        return object.__new__(_EagerTcpInfo if cls is TcpInfo else cls)

    def __reduce__(self) -> tuple[type[TcpInfo], tuple[int | None, ...]]:
        return TcpInfo, tuple(getattr(self, item.name) for item in fields(self))


class _EagerTcpInfo(TcpInfo):
    """What ``TcpInfo(...)`` builds: no ``__slots__``, so the fields go to a ``__dict__``."""


_EagerTcpInfo.__name__ = _EagerTcpInfo.__qualname__ = "TcpInfo"  # as repr() and errors say


@dataclass(frozen=True, slots=True)
class MemInfo:
    """``INET_DIAG_SKMEMINFO`` / ``UNIX_DIAG_MEMINFO``: the socket's buffer accounting (ss -m)."""

    rmem_alloc: int
    rcvbuf: int
    wmem_alloc: int
    sndbuf: int
    fwd_alloc: int
    wmem_queued: int
    optmem: int
    backlog: int
    drops: int | None = None


#: ``idiag_timer`` values (net/ipv4/inet_diag.c) as `ss -o` names them.
TIMER_NAMES: dict[int, str] = {1: "on", 2: "keepalive", 3: "timewait", 4: "persist"}


@dataclass(frozen=True, slots=True)
class Timer:
    """The `ss -o` timer: which timer is armed, when it fires, and how often it already fired.

    ``expires_ms`` is what the kernel said when the record was built. A live source keeps a
    socket's record across samples while nothing but the countdown moved (the deadline is the
    same), so for such a record it is the countdown at its first reading: ``fires_at`` (a
    ``time.monotonic()`` deadline, None where the source does not know it) and
    :meth:`remaining_ms` give the countdown at any later moment, such as a sample's
    ``taken_at``.
    """

    name: str
    expires_ms: int
    retrans: int
    fires_at: float | None = None

    def remaining_ms(self, now: float) -> int:
        """Milliseconds until it fires, at monotonic time ``now`` (never below 0)."""
        if self.fires_at is None:
            return self.expires_ms
        return max(0, round((self.fires_at - now) * 1000))


@dataclass(frozen=True, slots=True)
class Socket:
    """One TCP, UDP or UNIX socket as the kernel reports it, without its owners.

    Owners are joined through :class:`SocketSample` (inode -> owners) rather than stored here,
    so a sample of 100,000 sockets never has to copy records to attach them.
    Addresses are bare RFC 5952 text (``::1``, ``127.0.0.1``); an unconnected remote is ``None``.
    For UNIX sockets ``local_addr`` is the path, ``@name`` for abstract names, ``None`` if unnamed.
    """

    proto: str  # "tcp" | "udp" | "unix"
    family: str  # "inet" | "inet6" | "unix"
    state: str  # a TCP_STATES / DATAGRAM_STATES name
    local_addr: str | None
    local_port: int | None
    remote_addr: str | None
    remote_port: int | None
    recv_q: int
    send_q: int
    inode: int
    uid: int | None = None
    interface: str | None = None  # the bound device (SO_BINDTODEVICE), as in 127.0.0.1%lo
    sock_type: str | None = None  # UNIX only: "stream" | "dgram" | "seqpacket"
    peer_inode: int | None = None  # UNIX only
    cookie: int = 0
    timer: Timer | None = None
    tcp: TcpInfo | None = None
    mem: MemInfo | None = None

    key: tuple[object, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Computed once per record: the engine indexes 100,000 sockets by key every tick.
        object.__setattr__(self, "key", socket_key(self))


def socket_key(sock: Socket) -> tuple[object, ...]:
    """Stable identity across samples (DESIGN.md, "Stable row identity").

    The address tuple, not the inode: a socket's inode is 0 until accept() and again in TIME_WAIT,
    so an inode change is a change, not a new row. Listening and unconnected sockets add the inode
    because SO_REUSEPORT lets several share one address.
    """
    if sock.proto == "unix":
        return ("unix", sock.inode)
    base = (
        sock.proto,
        sock.family,
        sock.local_addr,
        sock.local_port,
        sock.remote_addr,
        sock.remote_port,
        sock.interface,
    )
    if sock.state in ("LISTEN", "UNCONN"):
        return (*base, sock.inode)
    return base


@dataclass(frozen=True, slots=True)
class Owner:
    """A process holding a socket (through one file descriptor or more).

    One record per process, shared by all of its sockets: the descriptors are in
    :attr:`SocketSample.fd_tables`, looked up when something shows them. Kept per socket (as
    it once was, with its fd), owners cost ~180 bytes a socket, 18 MB at 100,000.
    """

    pid: int
    comm: str
    uid: int | None = None
    user: str | None = None


@dataclass(frozen=True)
class SocketSample:
    """One moment of the socket table, with the owner join and an honest account of its gaps.

    ``sources`` says, per protocol, where the records came from ("sock_diag" or "/proc/net");
    ``gaps`` lists, in words for humans, the fields that source cannot fill.
    ``owners_complete`` is False when permissions hid other users' file descriptors (not root).
    ``owners`` maps a socket inode to its owners sorted by pid; ``fd_tables`` maps each owner's
    pid to its socket descriptors ({fd: inode}), for :meth:`fds_of`.
    """

    sockets: tuple[Socket, ...]
    owners: Mapping[int, tuple[Owner, ...]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    gaps: tuple[str, ...] = ()
    owners_complete: bool = True
    is_root: bool = True  # with owners_complete False: "needs root" vs "refused even to root"
    taken_at: float = 0.0  # time.monotonic() when the sample finished
    wall_time: float = 0.0  # time.time() at the same moment
    fd_tables: Mapping[int, Mapping[int, int]] = field(default_factory=dict)

    def owners_of(self, sock: Socket) -> tuple[Owner, ...]:
        if not sock.inode:
            return ()
        return self.owners.get(sock.inode, ())

    def fds_of(self, inode: int, pid: int) -> tuple[int, ...]:
        """The descriptors through which ``pid`` holds the socket ``inode``, in order."""
        return fds_holding(self.fd_tables, inode, pid)

    def no_owner_reason(self, sock: Socket) -> str | None:
        """Why ``sock`` has no owner, or None when it has one."""
        if sock.inode and sock.inode in self.owners:
            return None
        return no_owner_reason(sock, owners_complete=self.owners_complete, is_root=self.is_root)


def fds_holding(
    fd_tables: Mapping[int, Mapping[int, int]], inode: int, pid: int
) -> tuple[int, ...]:
    """The descriptors of ``pid`` in ``fd_tables`` (pid -> {fd: inode}) that hold ``inode``."""
    table = fd_tables.get(pid)
    if not table or not inode:
        return ()
    return tuple(sorted(fd for fd, held in table.items() if held == inode))


def fd_index(fd_tables: Mapping[int, Mapping[int, int]]) -> dict[int, list[tuple[int, int]]]:
    """inode -> [(pid, fd), ...] sorted, for a caller that needs every socket's descriptors
    (``netdash dump``): one pass over the tables instead of one per socket."""
    index: dict[int, list[tuple[int, int]]] = {}
    for pid, table in fd_tables.items():
        for fd, inode in table.items():
            index.setdefault(inode, []).append((pid, fd))
    for held in index.values():
        held.sort()
    return index


def no_owner_reason(sock: Socket, *, owners_complete: bool, is_root: bool = False) -> str:
    """Explain a missing owner the way DESIGN.md asks: never a bare "unknown"."""
    if not sock.inode:
        if sock.state == "TIME_WAIT":
            return NO_OWNER_TIME_WAIT
        if sock.state in ("SYN_RECV", "NEW_SYN_RECV"):
            return NO_OWNER_REQUEST
        if sock.state in ("FIN_WAIT1", "FIN_WAIT2", "LAST_ACK", "CLOSING"):
            return NO_OWNER_ORPHAN
        return NO_OWNER_NOT_ACCEPTED
    if not owners_complete:
        return NO_OWNER_DENIED if is_root else NO_OWNER_NEEDS_ROOT
    return NO_OWNER_UNKNOWN


@dataclass(frozen=True, slots=True)
class HostInfo:
    """What the header line says about where netdash is looking."""

    hostname: str
    kernel: str
    netns: str  # "host" or the namespace name / "pid 1234"
    is_root: bool


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the Process screen shows about one process (keyed by pid and start time)."""

    pid: int
    ppid: int | None
    comm: str
    user: str | None
    uid: int | None
    state: str | None
    start_time: float | None  # seconds since the epoch
    cmdline: tuple[str, ...] | None
    exe: str | None
    cwd: str | None
    threads: int | None
    fds: int | None
    fd_soft_limit: int | None
    fd_hard_limit: int | None
    cpu_percent: float | None
    rss: int | None
    cgroup: str | None
    denied: tuple[str, ...] = ()  # fields hidden by permissions ("exe", "cwd", "fds" ...)


# ------------------------------------------------------------------------- interfaces, routes

#: ``struct rtnl_link_stats64`` (linux/if_link.h), in the kernel's order and with its names, as
#: ``ip -s -j link`` and ``/sys/class/net/*/statistics`` name them. Newer kernels append fields.
LINK_COUNTER_NAMES: tuple[str, ...] = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
    "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
    "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
    "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
    "rx_nohandler",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LinkCounters:
    """One interface's 64-bit counters at one moment (``struct rtnl_link_stats64``)."""

    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int
    rx_errors: int
    tx_errors: int
    rx_dropped: int
    tx_dropped: int
    multicast: int
    collisions: int
    rx_length_errors: int = 0
    rx_over_errors: int = 0  # "overruns" in ip -s link
    rx_crc_errors: int = 0
    rx_frame_errors: int = 0
    rx_fifo_errors: int = 0
    rx_missed_errors: int = 0
    tx_aborted_errors: int = 0
    tx_carrier_errors: int = 0
    tx_fifo_errors: int = 0
    tx_heartbeat_errors: int = 0
    tx_window_errors: int = 0
    rx_compressed: int = 0
    tx_compressed: int = 0
    rx_nohandler: int = 0


@dataclass(frozen=True, slots=True)
class Link:
    """An interface as ``ip -d addr`` describes it; what changes rarely (read at start and when
    the kernel announces a change), apart from its counters.

    ``kind`` is the rtnetlink kind ("veth", "bridge", "bond", "vlan", "tun", ...), "loopback" for
    lo and "physical" for a device without one. ``speed_mbps`` and ``duplex`` come from ethtool
    and are None where unknown; ``speed_nominal`` marks virtual links whose speed means nothing
    (no utilisation is computed for them). ``addresses`` are "addr/prefixlen" strings.
    """

    ifindex: int
    name: str
    kind: str
    operstate: str  # "UP", "DOWN", "LOWERLAYERDOWN", "UNKNOWN", ... (IF_OPER_*)
    carrier: bool | None
    mtu: int
    mac: str | None  # lower-case colon form
    flags: tuple[str, ...] = ()  # "UP", "BROADCAST", "LOOPBACK", "PROMISC", ...
    master: str | None = None  # the bridge or bond this link is enslaved to
    speed_mbps: int | None = None
    duplex: str | None = None  # "full" | "half"
    speed_nominal: bool = False
    addresses: tuple[str, ...] = ()
    qdisc: str | None = None


@dataclass(frozen=True)
class LinkSample:
    """One moment of the interfaces: their descriptions and their counters by ifindex."""

    links: tuple[Link, ...]
    counters: Mapping[int, LinkCounters] = field(default_factory=dict)
    taken_at: float = 0.0  # time.monotonic()
    wall_time: float = 0.0  # time.time()


@dataclass(frozen=True, slots=True)
class Route:
    """One route, with the fields ``ip -j route show table all`` gives (None when absent)."""

    family: str  # "inet" | "inet6"
    dst: str  # "default" or a CIDR
    gateway: str | None = None
    dev: str | None = None
    prefsrc: str | None = None
    protocol: str | None = None  # "kernel", "boot", "static", "dhcp", ... or a number
    metric: int | None = None
    table: str | None = None  # "main", "local", ... or a number as text
    type: str = "unicast"  # "local", "broadcast", "unreachable", "blackhole", ...
    scope: str | None = None  # "host", "link", "global"


@dataclass(frozen=True, slots=True)
class RouteLookup:
    """What ``ip route get ADDR`` answers: where the kernel would send a packet for ``dst``."""

    dst: str
    dev: str | None
    gateway: str | None
    prefsrc: str | None
    table: str | None = None
    error: str | None = None  # "Network is unreachable", ... when there is no route


@dataclass(frozen=True, slots=True)
class Neighbour:
    """An ARP/NDP entry as ``ip -j neigh`` shows it."""

    family: str  # "inet" | "inet6"
    address: str
    dev: str
    lladdr: str | None  # None while INCOMPLETE or FAILED
    states: tuple[str, ...]  # NUD states, upper case: ("REACHABLE",), ("STALE",), ("PERMANENT",)
    router: bool = False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A routing policy rule (``ip rule``): which table a packet is looked up in."""

    family: str
    priority: int
    selector: str  # "from all", "from 10.0.0.0/8 iif eth1", ... as ip rule prints it
    table: str | None
    action: str = "lookup"  # "lookup", "unreachable", "blackhole", "prohibit", "goto"


# ------------------------------------------------------------------------- processes, cgroups


@dataclass(frozen=True, slots=True)
class Proc:
    """One process as the Processes pane lists it (what ``ps -eo pid,ppid,user,stat,rss,pcpu,
    nlwp,cmd`` shows, plus fds, limits, namespace and cgroup).

    Keyed by (pid, start_ticks): a reused pid is a new process. ``cmdline`` is None where it
    cannot be read and ``()`` for kernel threads and zombies; ``cpu_percent`` (of one core) is
    None on a process's first sample. ``denied`` names the fields permissions hid.
    """

    pid: int
    start_ticks: int  # /proc/PID/stat field 22: clock ticks after boot
    ppid: int
    name: str  # comm
    state: str  # the kernel's letter: R, S, D, Z, T, t, X, I
    uid: int | None
    user: str | None
    cmdline: tuple[str, ...] | None
    threads: int
    rss: int  # bytes
    cpu_percent: float | None
    start_time: float  # seconds since the epoch
    num_fds: int | None = None
    fd_soft_limit: int | None = None
    fd_hard_limit: int | None = None
    netns: int | None = None  # inode of /proc/PID/ns/net
    cgroup: str | None = None  # the unified ("0::") path
    cgroups_v1: Mapping[str, str] = field(default_factory=dict)  # controller -> path
    denied: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_ticks)

    @property
    def zombie(self) -> bool:
        return self.state == "Z"


@dataclass(frozen=True)
class ProcessSample:
    """Every process at one moment."""

    procs: tuple[Proc, ...]
    taken_at: float = 0.0  # time.monotonic()
    wall_time: float = 0.0


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    """One cgroup (a v2 group, or a group of one v1 hierarchy) and what its files say.

    Every counter is None where the hierarchy has no such file (v1 has no ``pids.max`` in the
    memory hierarchy; the v2 ``unified`` mount of a hybrid host has no ``memory.current``);
    ``memory_limit`` and ``pids_limit`` are None when unlimited. ``missing`` says in words what
    was not available and why.
    """

    path: str  # inside its hierarchy: "/system.slice/nginx.service"
    hierarchy: str  # "v2", or the v1 controller(s): "memory", "cpu,cpuacct", "pids"
    unit: str | None = None  # systemd unit or slice: "nginx.service"
    container: str | None = None  # docker/containerd/cri-o/podman/kubepods id
    procs: int = 0
    memory_current: int | None = None
    memory_limit: int | None = None
    cpu_usage_usec: int | None = None
    cpu_throttled_usec: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    missing: tuple[str, ...] = ()


# -------------------------------------------------------------------------------- journal

#: syslog priorities (RFC 5424), as journalctl names them: 0 emerg … 7 debug.
PRIORITY_NAMES: tuple[str, ...] = (
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal (or syslog) entry; every text is raw data from the system, escaped only
    when rendered. Fields the entry lacks are None."""

    realtime_usec: int  # __REALTIME_TIMESTAMP: microseconds since the epoch
    message: str  # MESSAGE, invalid UTF-8 decoded with replacement characters
    priority: int | None = None  # PRIORITY, 0-7
    unit: str | None = None  # _SYSTEMD_UNIT (or _SYSTEMD_USER_UNIT)
    identifier: str | None = None  # SYSLOG_IDENTIFIER
    pid: int | None = None  # _PID
    comm: str | None = None  # _COMM
    hostname: str | None = None  # _HOSTNAME
    boot_id: str | None = None  # _BOOT_ID
    cursor: str | None = None  # __CURSOR: where to resume after a restart

    @property
    def time(self) -> float:
        return self.realtime_usec / 1e6

    @property
    def priority_name(self) -> str | None:
        return PRIORITY_NAMES[self.priority] if self.priority is not None else None


# ------------------------------------------------------------------------------- firewall


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One nftables or iptables rule with its counters (None where the rule counts nothing).

    ``text`` is the rule as ``nft -a list ruleset`` or ``iptables-save`` prints it, without
    its counter; ``ports`` the port ranges it matches on (dport/sport, sets resolved), so a
    "what touches port N" filter need not parse text.
    """

    backend: str  # "nft" | "iptables-nft" | "iptables-legacy"
    family: str  # "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev"
    table: str
    chain: str
    text: str
    handle: int | None = None  # nft
    position: int | None = None  # iptables, 1-based within its chain
    comment: str | None = None
    verdict: str | None = None  # "accept", "drop", "reject", "jump X", "return", ...
    packets: int | None = None
    bytes: int | None = None
    ports: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> tuple[object, ...]:
        """Stable identity: nft rules by handle; iptables rules by position and text (an edit
        is a new rule, so its counters never make a rate with the old one's)."""
        where = (self.backend, self.family, self.table, self.chain)
        return (
            (*where, self.handle) if self.handle is not None else (*where, self.position, self.text)
        )


@dataclass(frozen=True, slots=True)
class FirewallChain:
    backend: str
    family: str
    table: str
    name: str
    hook: str | None = None  # base chains only
    priority: int | str | None = None
    type: str | None = None  # "filter", "nat", "route"
    policy: str | None = None  # "accept" | "drop" for base chains


@dataclass(frozen=True, slots=True)
class FirewallSet:
    family: str
    table: str
    name: str
    type: str  # "inet_service", "ipv4_addr", ... (a map: "key : value")
    elements: int


@dataclass(frozen=True)
class FirewallSample:
    """The rules of one moment; ``errors`` says in words what could not be read and why."""

    rules: tuple[FirewallRule, ...] = ()
    chains: tuple[FirewallChain, ...] = ()
    sets: tuple[FirewallSet, ...] = ()
    errors: tuple[str, ...] = ()
    taken_at: float = 0.0


@dataclass(frozen=True)
class ConntrackSample:
    """The connection tracking table in numbers (no per-flow records: only counts)."""

    count: int
    max: int | None
    by_state: Mapping[str, int] = field(default_factory=dict)  # TCP states, and UDP etc. by status
    by_proto: Mapping[str, int] = field(default_factory=dict)
    top_sources: tuple[tuple[str, int], ...] = ()
    top_destinations: tuple[tuple[str, int], ...] = ()
    stats: Mapping[str, int] = field(default_factory=dict)  # per-CPU counters, summed
    errors: tuple[str, ...] = ()
    taken_at: float = 0.0
