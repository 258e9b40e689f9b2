"""The interfaces of one network namespace: what they are (rarely changes) and their counters.

:class:`LinkReader` opens its sockets *inside* the namespace once (a socket stays bound to the
namespace it was created in, so the per-tick reads need no ``setns``):
:class:`~netdash.sources.linkstats.LinkStatsReader` for the counters (~1,000x cheaper than
pyroute2's ``get_links`` at 1,000 links), a :class:`~netdash.sources.linkstats.LinkEvents`
listener that says when link details changed, and an ``AF_INET`` socket for the ethtool ioctl
(``/sys/class/net`` does not follow ``setns``). Link and address details come from pyroute2's
``IPRoute``, made afresh inside the namespace for each (rare) read; see
:meth:`LinkReader.read_links` for why it is not kept.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pyroute2 import IPRoute

from netdash.model import Link, LinkCounters, LinkSample
from netdash.netns import HOST, NamespaceReader, NetnsTarget
from netdash.sources.errors import PermissionNeeded, SourceUnavailable
from netdash.sources.linkstats import LinkEvents, LinkStatsReader
from netdash.textsafe import decode

# linux/if.h, in the order `ip link` prints them (iproute2 print_link_flags).
_IFF_NAMES: tuple[tuple[int, str], ...] = (
    (0x8, "LOOPBACK"), (0x2, "BROADCAST"), (0x10, "POINTOPOINT"), (0x1000, "MULTICAST"),
    (0x80, "NOARP"), (0x200, "ALLMULTI"), (0x100, "PROMISC"), (0x20, "NOTRAILERS"),
    (0x4, "DEBUG"), (0x8000, "DYNAMIC"), (0x4000, "AUTOMEDIA"), (0x2000, "PORTSEL"),
    (0x400, "MASTER"), (0x800, "SLAVE"), (0x1, "UP"), (0x10000, "LOWER_UP"),
    (0x20000, "DORMANT"), (0x40000, "ECHO"),
)  # fmt: skip
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40

#: Kinds whose ethtool speed is a made-up constant (veth says 10000), not a wire's capacity.
VIRTUAL_KINDS = frozenset((
    "loopback", "veth", "tun", "tap", "bridge", "dummy", "vxlan", "geneve", "gre", "gretap",
    "ip6gre", "ip6gretap", "ipip", "sit", "ip6tnl", "vti", "vti6", "wireguard", "macvlan",
    "macvtap", "ipvlan", "ipvtap", "vrf", "ifb", "nlmon", "vcan", "netkit",
))  # fmt: skip

# linux/sockios.h, linux/ethtool.h
SIOCETHTOOL = 0x8946
ETHTOOL_GSET = 0x1
ETHTOOL_GLINKSETTINGS = 0x4C
_LINK_SETTINGS = struct.Struct("=IIBBBBBBBbBBBB28x")  # struct ethtool_link_settings, 48 bytes
_LEGACY_CMD = struct.Struct("=IIIHBBBBBBIIH")  # struct ethtool_cmd up to speed_hi
SPEED_UNKNOWN = 0xFFFFFFFF
DUPLEX_NAMES = {0: "half", 1: "full"}
_IFREQ = 40  # sizeof(struct ifreq) on 64-bit: 16-byte name + 24-byte union (ifr_data pointer)

#: Reread link details at least this often, in case an announcement was missed.
REFRESH_SECONDS = 30.0


class LinkReader(NamespaceReader):
    """Reads the interfaces of ``netns``: :meth:`read_links`, :meth:`read_counters`, and
    :meth:`sample` which joins both and rereads details only when they changed."""

    def __init__(
        self,
        netns: NetnsTarget = HOST,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(netns)
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._opened: list[Any] = []
        try:
            self._open_inside()
        except BaseException:
            self.close()
            raise
        self._links: tuple[Link, ...] | None = None
        self._read_at = 0.0
        self._last: Mapping[int, LinkCounters] = {}

    def _open_inside(self) -> None:
        with self._inside():
            self._stats = self._keep(LinkStatsReader())
            self._events = self._keep(LinkEvents())
            self._ioctl = self._keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))

    def _keep(self, thing: Any) -> Any:
        self._opened.append(thing)
        return thing

    def close(self) -> None:
        while self._opened:
            self._opened.pop().close()
        super().close()

    # ------------------------------------------------------------------------------- reading

    def read_counters(self) -> dict[int, LinkCounters]:
        """Every interface's counters by ifindex (one ``RTM_GETSTATS`` dump)."""
        return self._stats.read()

    def read_links(self) -> tuple[Link, ...]:
        """Every interface with its addresses, kind, state and speed (pyroute2 + ethtool)."""
        try:
            # A fresh IPRoute each time (~3 ms, only when links changed), created inside the
            # namespace: pyroute2 0.9 keeps one socket per *thread*, so an IPRoute made inside
            # the namespace on one thread lists the host's links when a poller thread uses it.
            with self._inside(), IPRoute() as ipr:
                raw_links = ipr.get_links()
                raw_addrs = ipr.get_addr()
        except PermissionError as err:
            raise PermissionNeeded(f"listing interfaces needs privileges: {err}") from err
        except OSError as err:
            raise SourceUnavailable(f"listing interfaces failed: {err.strerror}") from err
        names = {msg["index"]: _name(msg.get_attr("IFLA_IFNAME")) for msg in raw_links}
        addresses = _addresses_by_index(raw_addrs)
        return tuple(self._link(msg, names, addresses.get(msg["index"], ())) for msg in raw_links)

    def _link(self, msg: Any, names: Mapping[int, str], addresses: tuple[str, ...]) -> Link:
        flags = msg["flags"]
        kind = _kind(msg, flags)
        raw_name = msg.get_attr("IFLA_IFNAME")
        speed, duplex = ethtool_speed(self._ioctl, _name_bytes(raw_name))
        carrier = msg.get_attr("IFLA_CARRIER")
        mac = msg.get_attr("IFLA_ADDRESS")
        master = msg.get_attr("IFLA_MASTER")
        return Link(
            ifindex=msg["index"],
            name=names[msg["index"]],
            kind=kind,
            operstate=msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN",
            carrier=None if carrier is None else bool(carrier),
            mtu=msg.get_attr("IFLA_MTU") or 0,
            mac=mac.lower() if isinstance(mac, str) else None,
            flags=link_flags(flags),
            master=names.get(master) if master else None,
            speed_mbps=speed,
            duplex=duplex,
            speed_nominal=kind in VIRTUAL_KINDS,
            addresses=addresses,
            qdisc=msg.get_attr("IFLA_QDISC"),
        )

    def sample(self) -> LinkSample:
        """Counters now, joined with link details reread only when something changed: the
        kernel announced a change, the set of ifindexes moved, a counter went backwards (the
        link was recreated with the same ifindex), or :attr:`refresh_seconds` passed.

        An interface that vanished (or appeared) between the two reads is left out of this
        sample; the next one sees the namespace as it then is.
        """
        counters = self.read_counters()
        taken_at, wall = self._clock(), time.time()
        if self._details_stale(counters, taken_at):
            self._links = self.read_links()
            self._read_at = taken_at
        self._last = counters
        links = tuple(link for link in self._links or () if link.ifindex in counters)
        return LinkSample(links, counters, taken_at=taken_at, wall_time=wall)

    def _details_stale(self, counters: Mapping[int, LinkCounters], now: float) -> bool:
        changed = self._events.changed()  # always drain, whatever else decides
        if self._links is None or changed or now - self._read_at >= self.refresh_seconds:
            return True
        if {link.ifindex for link in self._links} != counters.keys():
            return True
        return any(_went_back(self._last.get(index), new) for index, new in counters.items())


def _went_back(old: LinkCounters | None, new: LinkCounters) -> bool:
    return old is not None and (new.rx_packets < old.rx_packets or new.tx_packets < old.tx_packets)


def _name(raw: str | bytes | None) -> str:
    """pyroute2 hands over a name that is not UTF-8 as bytes: decode it without failing."""
    if isinstance(raw, bytes):
        return decode(raw)
    return raw or ""


def _name_bytes(raw: str | bytes | None) -> bytes:
    if isinstance(raw, bytes):
        return raw
    return (raw or "").encode()


def _kind(msg: Any, flags: int) -> str:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    if kind:
        return str(kind)
    return "loopback" if flags & IFF_LOOPBACK else "physical"


def link_flags(flags: int) -> tuple[str, ...]:
    """``IFF_*`` bits as ``ip link`` names them, NO-CARRIER first when up without a carrier."""
    names = ["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING else []
    names.extend(name for bit, name in _IFF_NAMES if flags & bit)
    return tuple(names)


def _addresses_by_index(messages: Iterable[Any]) -> dict[int, tuple[str, ...]]:
    """ "addr/prefixlen" by ifindex in the kernel's order; IFA_LOCAL is the address itself
    (IFA_ADDRESS is the peer on a point-to-point link), IPv6 has only IFA_ADDRESS."""
    found: dict[int, list[str]] = {}
    for msg in messages:
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if addr:
            found.setdefault(msg["index"], []).append(f"{addr}/{msg['prefixlen']}")
    return {index: tuple(addrs) for index, addrs in found.items()}


# ---------------------------------------------------------------------------------- ethtool


def ethtool_speed(sock: socket.socket, name: bytes) -> tuple[int | None, str | None]:
    """(speed in Mb/s, duplex) of interface ``name`` through ``SIOCETHTOOL`` on ``sock``.

    ``ETHTOOL_GLINKSETTINGS`` first (since 4.6), then the legacy ``ETHTOOL_GSET``. (None,
    None) where the driver has no ethtool (lo, tun, a vanished link) or does not know.
    """
    if len(name) >= 16:
        return None, None
    for ask in (_link_settings, _legacy_settings):
        try:
            speed, duplex = ask(sock, name)
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP):
                continue
            return None, None  # ENODEV: gone meanwhile; EPERM: not ours to ask
        known = speed not in (0, SPEED_UNKNOWN, 0xFFFF) and speed < 0x7FFFFFFF
        return (speed if known else None), DUPLEX_NAMES.get(duplex)
    return None, None


def _ethtool(sock: socket.socket, name: bytes, data: ctypes.Array[ctypes.c_char]) -> None:
    ifreq = bytearray(_IFREQ)
    ifreq[: len(name)] = name
    struct.pack_into("=Q", ifreq, 16, ctypes.addressof(data))
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)


def _link_settings(sock: socket.socket, name: bytes) -> tuple[int, int]:
    """The handshake of linux/ethtool.h: ask with ``link_mode_masks_nwords`` 0, the kernel
    answers with minus the number it wants; ask again with that many words of room."""
    data = ctypes.create_string_buffer(_LINK_SETTINGS.size)
    struct.pack_into("=I", data, 0, ETHTOOL_GLINKSETTINGS)
    _ethtool(sock, name, data)
    nwords = -_LINK_SETTINGS.unpack_from(data)[9]
    if nwords <= 0:
        raise OSError(errno.EOPNOTSUPP, "no link mode handshake")
    data = ctypes.create_string_buffer(_LINK_SETTINGS.size + 3 * 4 * nwords)
    struct.pack_into("=I", data, 0, ETHTOOL_GLINKSETTINGS)
    struct.pack_into("=b", data, 15, nwords)
    _ethtool(sock, name, data)
    fields = _LINK_SETTINGS.unpack_from(data)
    return fields[1], fields[2]


def _legacy_settings(sock: socket.socket, name: bytes) -> tuple[int, int]:
    data = ctypes.create_string_buffer(44)  # struct ethtool_cmd
    struct.pack_into("=I", data, 0, ETHTOOL_GSET)
    _ethtool(sock, name, data)
    fields = _LEGACY_CMD.unpack_from(data)
    speed = fields[3] | fields[12] << 16
    return speed, fields[4]


__all__ = ["VIRTUAL_KINDS", "LinkReader", "ethtool_speed", "link_flags"]
