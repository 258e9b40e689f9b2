"""The interfaces of one network namespace: what they are (rarely changes) and their counters.

:class:`LinkReader` opens its sockets *inside* the namespace once (a socket stays bound to the
namespace it was created in, so the per-tick reads need no ``setns``):
:class:`~netdash.sources.linkstats.LinkStatsReader` for the counters (~1,000x cheaper than
pyroute2's ``get_links`` at 1,000 links), a :class:`~netdash.sources.linkstats.LinkEvents`
listener that says when link details changed, and an ``AF_INET`` socket for the ethtool ioctl
(``/sys/class/net`` does not follow ``setns``). Link and address details come from an
``RTM_GETLINK`` and an ``RTM_GETADDR`` dump on a fourth socket made inside, an
:class:`~netdash.sources.rtnl.RtnlSocket`, read by the focused parsers :func:`parse_links` and
:func:`parse_addresses` (``struct ifinfomsg`` and ``struct ifaddrmsg`` of linux/rtnetlink.h,
``IFLA_*`` of linux/if_link.h, ``IFA_*`` of linux/if_addr.h).

Not pyroute2: importing any of it costs ~22 MB of RSS in a bare interpreter and ~8.7 MB on
top of the live app's own imports (its ``__init__`` imports everything), the app needed it only
here, and these few attributes are simple to read; the details also read 8x faster (400
links: 10 ms, pyroute2 79 ms). The records are the ones pyroute2's ``get_links``/``get_addr``
gave, field for field (but for a hardware address that is not 6 bytes long, see
:func:`link_address`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from netdash.model import Link, LinkCounters, LinkSample
from netdash.netns import HOST, NamespaceReader, NetnsTarget
from netdash.sources.linkstats import LinkEvents, LinkStatsReader
from netdash.sources.netlink import NLMSG_HEADER
from netdash.sources.rtnl import (
    RawMessage,
    RtnlSocket,
    attr_address,
    attr_bytes,
    attr_string,
    attr_u8,
    attr_u32,
    attributes,
)
from netdash.textsafe import decode

# linux/rtnetlink.h: the message types, and the structs that follow the netlink header.
RTM_GETLINK, RTM_GETADDR = 18, 22
_IFINFOMSG = struct.Struct("=BxHiII")  # struct ifinfomsg: family, pad, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # struct ifaddrmsg: family, prefixlen, flags, scope, index
# linux/if_link.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_QDISC, IFLA_MASTER = 1, 3, 4, 6, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_CARRIER = 16, 18, 33
IFLA_INFO_KIND = 1  # inside the nested IFLA_LINKINFO
#: IF_OPER_* (linux/if.h, RFC 2863) in order, named as ``ip`` and pyroute2 name them.
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
# linux/if_addr.h
IFA_ADDRESS, IFA_LOCAL = 1, 2
# linux/if_arp.h: the link types whose hardware address is an IP address (iproute2 ll_addr.c).
ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE = 768, 769, 776, 778, 823
_IPV4_LINK_TYPES = frozenset((ARPHRD_TUNNEL, ARPHRD_SIT, ARPHRD_IPGRE))
_IPV6_LINK_TYPES = frozenset((ARPHRD_TUNNEL6, ARPHRD_IP6GRE))
#: Receive buffer of the detail dumps. The kernel fills ~32 KiB per recv (a link message
#: carries no VF list without IFLA_EXT_MASK); more would cost RSS, as bytearray zero-fills it.
DETAILS_BUFFER = 1 << 16

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
            self._rtnl = self._keep(RtnlSocket(buffer_size=DETAILS_BUFFER))

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
        """Every interface with its addresses, kind, state and speed: two rtnetlink dumps on
        the socket made inside the namespace (so any thread may call this), and ethtool."""
        links = parse_links(self._rtnl.dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0)))
        addresses = parse_addresses(self._rtnl.dump(RTM_GETADDR, _IFADDRMSG.pack(0, 0, 0, 0, 0)))
        names = {link.ifindex: decode(link.name) for link in links}
        return tuple(self._link(link, names, addresses.get(link.ifindex, ())) for link in links)

    def _link(self, raw: RawLink, names: Mapping[int, str], addresses: tuple[str, ...]) -> Link:
        kind = raw.kind or ("loopback" if raw.flags & IFF_LOOPBACK else "physical")
        speed, duplex = ethtool_speed(self._ioctl, raw.name)
        return Link(
            ifindex=raw.ifindex,
            name=names[raw.ifindex],
            kind=kind,
            operstate=raw.operstate,
            carrier=None if raw.carrier is None else bool(raw.carrier),
            mtu=raw.mtu,
            mac=raw.mac,
            flags=link_flags(raw.flags),
            master=names.get(raw.master) if raw.master else None,
            speed_mbps=speed,
            duplex=duplex,
            speed_nominal=kind in VIRTUAL_KINDS,
            addresses=addresses,
            qdisc=raw.qdisc,
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


def link_flags(flags: int) -> tuple[str, ...]:
    """``IFF_*`` bits as ``ip link`` names them, NO-CARRIER first when up without a carrier."""
    names = ["NO-CARRIER"] if flags & IFF_UP and not flags & IFF_RUNNING else []
    names.extend(name for bit, name in _IFF_NAMES if flags & bit)
    return tuple(names)


# ---------------------------------------------------------------------------------- parsing


class RawLink(NamedTuple):
    """What one ``RTM_NEWLINK`` message says, before master names are looked up and ethtool
    asked."""

    ifindex: int
    name: bytes  # the kernel's bytes: ethtool wants them as they are, the UI decoded
    flags: int  # IFF_* (linux/if.h)
    kind: str | None  # IFLA_INFO_KIND; None for lo and real hardware
    operstate: str
    carrier: int | None
    mtu: int
    mac: str | None
    master: int | None  # the ifindex of its bridge or bond
    qdisc: str | None


def parse_links(messages: Iterable[RawMessage]) -> list[RawLink]:
    """The links of an ``RTM_GETLINK`` dump's messages, in the kernel's (ifindex) order."""
    found = []
    for data, off, length in messages:
        body = off + NLMSG_HEADER
        if length < NLMSG_HEADER + _IFINFOMSG.size:
            continue
        _family, link_type, ifindex, flags, _change = _IFINFOMSG.unpack_from(data, body)
        attrs = attributes(data, body + _IFINFOMSG.size, off + length)
        qdisc = attr_string(data, attrs, IFLA_QDISC)
        found.append(
            RawLink(
                ifindex=ifindex,
                name=attr_string(data, attrs, IFLA_IFNAME) or b"",
                flags=flags,
                kind=_info_kind(data, attrs.get(IFLA_LINKINFO)),
                operstate=_operstate(attr_u8(data, attrs, IFLA_OPERSTATE)),
                carrier=attr_u8(data, attrs, IFLA_CARRIER),
                mtu=attr_u32(data, attrs, IFLA_MTU) or 0,
                mac=link_address(attr_bytes(data, attrs, IFLA_ADDRESS), link_type),
                master=attr_u32(data, attrs, IFLA_MASTER),
                qdisc=None if qdisc is None else decode(qdisc),
            )
        )
    return found


def _info_kind(data: bytes, span: tuple[int, int] | None) -> str | None:
    """IFLA_INFO_KIND inside the nested IFLA_LINKINFO ("veth", "bridge", ...), if any."""
    if span is None:
        return None
    kind = attr_string(data, attributes(data, *span), IFLA_INFO_KIND)
    return decode(kind) if kind else None


def _operstate(code: int | None) -> str:
    if code is None or code >= len(OPERSTATES):
        return "UNKNOWN"
    return OPERSTATES[code]


def link_address(raw: bytes | None, link_type: int) -> str | None:
    """``IFLA_ADDRESS`` as text, as iproute2's ``ll_addr_n2a`` (lib/ll_addr.c) prints it:
    lower-case hex octets joined by colons, except IPv4 (ipip, sit, gre) and IPv6 (ip6tnl,
    ip6gre) tunnel endpoints, printed as addresses. None where the link has none (tun; lo has
    six zeros).

    For the 6-byte MAC of every Ethernet-like link (and lo) this is exactly what pyroute2 gave.
    pyroute2 read every other length as 6 bytes all the same (its ``l2addr``): a 4-byte tunnel
    address came out with two bytes of the *next attribute's header* appended ("0a:00:00:01:
    08:00" for 10.0.0.1), a 20-byte InfiniBand address cut to 6. Those follow ``ip`` now.
    """
    if not raw:
        return None
    if len(raw) == 4 and link_type in _IPV4_LINK_TYPES:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16 and link_type in _IPV6_LINK_TYPES:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return raw.hex(":")


def parse_addresses(messages: Iterable[RawMessage]) -> dict[int, tuple[str, ...]]:
    """ "addr/prefixlen" by ifindex from an ``RTM_GETADDR`` dump's messages, in the kernel's
    order (IPv4, then IPv6). IFA_LOCAL is the address itself: on a point-to-point link
    IFA_ADDRESS is the peer; IPv6 without a peer has only IFA_ADDRESS."""
    found: dict[int, list[str]] = {}
    for data, off, length in messages:
        body = off + NLMSG_HEADER
        if length < NLMSG_HEADER + _IFADDRMSG.size:
            continue
        family, prefixlen, _flags, _scope, ifindex = _IFADDRMSG.unpack_from(data, body)
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        attrs = attributes(data, body + _IFADDRMSG.size, off + length)
        address = attr_address(data, attrs, IFA_LOCAL, family) or attr_address(
            data, attrs, IFA_ADDRESS, family
        )
        if address:
            found.setdefault(ifindex, []).append(f"{address}/{prefixlen}")
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


__all__ = [
    "VIRTUAL_KINDS",
    "LinkReader",
    "RawLink",
    "ethtool_speed",
    "link_address",
    "link_flags",
    "parse_addresses",
    "parse_links",
]
