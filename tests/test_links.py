"""The links source against the real kernel: two namespaces joined by a veth pair, `ip` (and
pyroute2, which read the details before) as the oracles, paced TCP and a UDP burst for rates;
plus the counter, link and address parsers on built structs."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest

from netdash.engine_links import LinkFrame, LinkTracker
from netdash.model import LINK_COUNTER_NAMES, LinkCounters, LinkSample
from netdash.netns import entered, resolve_netns
from netdash.sources.links import (
    ARPHRD_IPGRE,
    ARPHRD_SIT,
    ARPHRD_TUNNEL,
    ARPHRD_TUNNEL6,
    LinkReader,
    RawLink,
    link_address,
    parse_addresses,
    parse_links,
)
from netdash.sources.linkstats import LinkStatsReader, counters_from
from netdash.textsafe import decode
from tests.conftest import skip_unless_root
from tests.vethlab import (
    ADDR6_A,
    ADDR_A,
    ADDR_B,
    VethLab,
    ip,
    ip_counters_by_index,
    ip_json,
    ip_name,
    veth_lab,
)

PACE_CHUNK = 16 * 1024  # bytes written every PACE_PERIOD: ~1.6 MB/s, ~13 Mbit/s
PACE_PERIOD = 0.01


@pytest.fixture
def lab() -> Iterator[VethLab]:
    skip_unless_root()
    with veth_lab() as made:
        yield made


#: Point-to-point addresses on tun0: IFA_LOCAL is ours, IFA_ADDRESS the peer.
P2P_V4, P2P_V6 = ("10.201.7.1", "10.201.7.2"), ("fd00:207::1", "fd00:207::2")
BAD_NAMES = (b"v\xffx", b"p\xfe")  # not UTF-8: `ip` passes the bytes through


@pytest.fixture
def zoo(lab: VethLab) -> VethLab:
    """Namespace a with every kind of link this kernel has built in (it loads no modules, so
    no dummy, ipip, gre or wireguard): a bridge with a veth port, a tun with point-to-point
    IPv4 and IPv6 addresses and no hardware address, a tap, a vxlan, an ifb, and a veth pair
    whose names are not UTF-8. ``addrgenmode none`` everywhere: no link-local address turns
    up between two reads."""
    a = lab.a
    ip("-n", a, "link", "add", "br0", "type", "bridge")
    ip("-n", a, "link", "add", "vP", "type", "veth", "peer", "name", "vQ")
    ip("-n", a, "link", "set", "vP", "master", "br0", "mtu", "1400")
    ip("-n", a, "tuntap", "add", "mode", "tun", "name", "tun0")
    ip("-n", a, "tuntap", "add", "mode", "tap", "name", "tap0")
    ip("-n", a, "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789")
    ip("-n", a, "link", "add", "ifb0", "type", "ifb")
    ip("-n", a, "link", "add", BAD_NAMES[0], "type", "veth", "peer", "name", BAD_NAMES[1])
    for dev in ("br0", "vP", "vQ", "tun0", "tap0", "vx0", "ifb0", *BAD_NAMES):
        ip("-n", a, "link", "set", dev, "addrgenmode", "none")
    for dev in ("br0", "vP", "tun0", "ifb0"):  # not vQ: vP is up without a carrier
        ip("-n", a, "link", "set", dev, "up")
    ip("-n", a, "addr", "add", "10.201.5.1/16", "dev", "br0")
    ip("-n", a, "addr", "add", "fd00:205::1/64", "dev", "br0", "nodad")
    ip("-n", a, "addr", "add", P2P_V4[0], "peer", f"{P2P_V4[1]}/32", "dev", "tun0")
    ip("-n", a, "addr", "add", P2P_V6[0], "peer", f"{P2P_V6[1]}/128", "dev", "tun0", "nodad")
    ip("-n", a, "addr", "add", "10.201.6.1/24", "dev", BAD_NAMES[0])
    return lab


def reader_in(netns: str) -> LinkReader:
    return LinkReader(resolve_netns(netns))


def stable_counters(netns: str, read: Callable[[], dict[int, LinkCounters]]) -> tuple[dict, dict]:
    """Our counters and `ip`'s, read between two equal `ip` reads (a late MLD report may move
    a counter between two reads; retry until nothing moved around ours)."""
    for _ in range(20):
        before = ip_counters_by_index(netns)
        ours = {index: asdict(c) for index, c in read().items()}
        if ip_counters_by_index(netns) == before:
            return ours, before
        time.sleep(0.1)
    raise AssertionError(f"the counters of {netns} never held still")


# ------------------------------------------------------------------------ parser, no kernel


def test_a_longer_struct_from_a_newer_kernel_is_cut_and_a_shorter_one_padded() -> None:
    longer = struct.pack("=25Q", *range(1, 26))  # 5.19 appended rx_otherhost_dropped
    got = counters_from(memoryview(longer), 0, len(longer))
    assert asdict(got) == dict(zip(LINK_COUNTER_NAMES, range(1, 25), strict=True))
    shorter = struct.pack("=23Q", *range(1, 24))  # before rx_nohandler (4.6)
    got = counters_from(memoryview(b"pad!" + shorter), 4, len(shorter))
    assert got.rx_packets == 1 and got.tx_compressed == 23 and got.rx_nohandler == 0


def nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + bytes(-size % 4)


def netlink_message(msg_type: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), msg_type, 2, 1, 0) + body


def newlink(ifindex: int, flags: int, *attrs: bytes, link_type: int = 1) -> bytes:
    """An RTM_NEWLINK message: struct ifinfomsg (linux/rtnetlink.h), then attributes."""
    return netlink_message(
        16, struct.pack("=BxHiII", 0, link_type, ifindex, flags, 0) + b"".join(attrs)
    )


def newaddr(family: int, prefixlen: int, ifindex: int, *attrs: bytes) -> bytes:
    """An RTM_NEWADDR message: struct ifaddrmsg (linux/if_addr.h), then attributes."""
    return netlink_message(
        20, struct.pack("=BBBBI", family, prefixlen, 0, 0, ifindex) + b"".join(attrs)
    )


def test_each_operstate_and_attribute_reads_as_pyroute2_decodes_it() -> None:
    """Built RTM_NEWLINK messages, one per IF_OPER_* value, decoded by our parser and by
    pyroute2's ifinfmsg: operstate names, name, mtu, qdisc, master, carrier, nested kind."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    names = []
    for code in range(7):
        raw = newlink(
            5, 0x1003,
            nla(3, b"eth\xff0\0"), nla(4, struct.pack("=I", 9000)), nla(6, b"fq_codel\0"),
            nla(10, struct.pack("=I", 2)), nla(16, bytes([code])), nla(33, b"\1"),
            nla(18, nla(1, b"veth\0") + nla(2, b"")),
            nla(1, bytes.fromhex("02AB0000FF01")), nla(2, b"\xff" * 6),
        )  # fmt: skip
        (ours,) = parse_links([(raw, 0, len(raw))])
        theirs = ifinfmsg(raw)
        theirs.decode()
        assert ours.operstate == theirs.get_attr("IFLA_OPERSTATE")
        names.append(ours.operstate)
        assert decode(ours.name) == decode(theirs.get_attr("IFLA_IFNAME"))
        assert (ours.mtu, ours.qdisc) == (9000, theirs.get_attr("IFLA_QDISC"))
        assert (ours.master, ours.carrier) == (2, theirs.get_attr("IFLA_CARRIER"))
        assert ours.kind == theirs.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")
        assert ours.mac == theirs.get_attr("IFLA_ADDRESS") == "02:ab:00:00:ff:01"
        assert (ours.ifindex, ours.flags) == (theirs["index"], 0x1003)
    assert names == ["UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP"]
    assert ours.name == b"eth\xff0"


def test_a_link_with_few_attributes_and_a_truncated_message() -> None:
    bare = newlink(9, 0x8, nla(3, b"lo\0"))
    short = netlink_message(16, b"\0" * 8)  # shorter than struct ifinfomsg: skipped
    (lo,) = parse_links([(short, 0, len(short)), (b"pad" + bare, 3, len(bare))])
    assert lo == RawLink(9, b"lo", 0x8, None, "UNKNOWN", None, 0, None, None, None)
    weird = newlink(3, 0, nla(16, b"\x09"))  # an IF_OPER_* this code does not know
    assert parse_links([(weird, 0, len(weird))])[0].operstate == "UNKNOWN"


def test_hardware_addresses_as_ip_prints_them() -> None:
    """iproute2's ll_addr_n2a: colon hex of every byte, tunnel endpoints as IP addresses."""
    assert link_address(bytes(6), 772) == "00:00:00:00:00:00"  # loopback
    assert link_address(None, 65534) is None and link_address(b"", 1) is None
    for tunnel in (ARPHRD_TUNNEL, ARPHRD_SIT, ARPHRD_IPGRE):
        assert link_address(bytes([10, 0, 0, 1]), tunnel) == "10.0.0.1"
    assert link_address(bytes(16), ARPHRD_TUNNEL6) == "::"
    assert link_address(bytes([10, 0, 0, 1]), 1) == "0a:00:00:01"  # not a tunnel: hex
    infiniband = bytes(range(0xEC, 0x100))  # 20 bytes: all of them, upper-case never
    assert link_address(infiniband, 32) == infiniband.hex(":") and len(infiniband) == 20
    assert link_address(bytes.fromhex("0A0B0C0D0E0F07"), 1) == "0a:0b:0c:0d:0e:0f:07"


def test_addresses_prefer_ifa_local_and_keep_the_kernels_order() -> None:
    """What pyroute2's ifaddrmsg gave, as "addr/prefixlen": IFA_LOCAL (ours) over IFA_ADDRESS
    (the peer, on a point-to-point link); IPv6 without a peer has IFA_ADDRESS only."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    v4 = socket.inet_pton(socket.AF_INET, "10.1.0.1")
    peer = socket.inet_pton(socket.AF_INET, "10.1.0.2")
    v6, peer6 = (socket.inet_pton(socket.AF_INET6, a) for a in ("fd00::1", "fd00::2"))
    msgs = [
        newaddr(socket.AF_INET, 24, 2, nla(1, v4), nla(2, v4), nla(3, b"eth0\0")),
        newaddr(socket.AF_INET, 32, 3, nla(1, peer), nla(2, v4)),
        newaddr(socket.AF_INET6, 64, 2, nla(1, v6)),
        newaddr(socket.AF_INET6, 128, 3, nla(2, v6), nla(1, peer6)),
        newaddr(socket.AF_INET, 8, 4, nla(3, b"none\0")),  # no address at all: left out
    ]  # fmt: skip
    ours = parse_addresses((raw, 0, len(raw)) for raw in msgs)
    assert ours == {2: ("10.1.0.1/24", "fd00::1/64"), 3: ("10.1.0.1/32", "fd00::1/128")}
    theirs: dict[int, list[str]] = {}
    for raw in msgs:
        msg = ifaddrmsg(raw)
        msg.decode()
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if addr:
            theirs.setdefault(msg["index"], []).append(f"{addr}/{msg['prefixlen']}")
    assert ours == {index: tuple(addrs) for index, addrs in theirs.items()}


# ---------------------------------------------------------------------------- details


def test_links_match_ip(zoo: VethLab) -> None:
    with reader_in(zoo.a) as reader:
        links = reader.read_links()
    expected = ip_json(zoo.a, "-d", "addr")
    assert [link.ifindex for link in links] == [e["ifindex"] for e in expected]
    for link, e in zip(links, expected, strict=True):
        kind = e.get("linkinfo", {}).get("info_kind") or (
            "loopback" if e["ifname"] == "lo" else "physical"
        )
        assert link.name == ip_name(e["ifname"])
        assert link.kind == kind
        assert link.operstate == e["operstate"]
        assert link.mtu == e["mtu"]
        assert link.mac == e.get("address")  # a tun has none
        assert link.qdisc == e["qdisc"]
        assert link.master == (ip_name(e["master"]) if "master" in e else None)
        assert link.flags == tuple(f for f in e["flags"] if f != "M-DOWN")
        assert link.addresses == tuple(f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"])
    by_name = {link.name: link for link in links}
    va = by_name["vA"]
    assert va.addresses == (f"{ADDR_A}/24", f"{ADDR6_A}/64")
    assert (va.carrier, va.speed_mbps, va.duplex, va.speed_nominal) == (True, 10000, "full", True)
    assert by_name["vP"].master == "br0" and by_name["vP"].mtu == 1400
    assert by_name["vP"].carrier is False  # its peer is down
    assert by_name["br0"].kind == "bridge" and by_name["lo"].kind == "loopback"
    assert by_name["br0"].addresses == ("10.201.5.1/16", "fd00:205::1/64")
    assert by_name["lo"].speed_mbps is None and by_name["lo"].duplex is None
    assert by_name["lo"].mac == "00:00:00:00:00:00"
    tun = by_name["tun0"]
    assert (tun.kind, tun.mac, tun.carrier) == ("tun", None, False)
    assert tun.addresses == (f"{P2P_V4[0]}/32", f"{P2P_V6[0]}/128")  # ours, not the peers'
    assert tun.flags[:2] == ("NO-CARRIER", "POINTOPOINT")
    assert {by_name[n].kind for n in ("tap0", "vx0", "ifb0")} == {"tun", "vxlan", "ifb"}
    bad = by_name[decode(BAD_NAMES[0])]
    assert bad.name == "v\\xffx" and bad.addresses == ("10.201.6.1/24",)
    assert bad.speed_mbps == 10000  # ethtool was asked with the raw bytes


def test_links_are_the_records_pyroute2_gave(zoo: VethLab) -> None:
    """The same records as the pyroute2 ``get_links``/``get_addr`` code this replaced, field
    for field (the ethtool fields never came from pyroute2)."""
    with reader_in(zoo.a) as reader:
        ours = [fields_from_netlink(asdict(link)) for link in reader.read_links()]
    assert ours == pyroute2_records(zoo.a)
    assert len(ours) == 11


def fields_from_netlink(link: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in link.items() if k not in ("speed_mbps", "duplex", "speed_nominal")}


def pyroute2_records(netns: str) -> list[dict[str, Any]]:
    """What the pyroute2-based LinkReader made of ``get_links()`` and ``get_addr()``."""
    from pyroute2 import IPRoute

    from netdash.sources.links import link_flags

    with entered(resolve_netns(netns)), IPRoute() as ipr:
        raw_links, raw_addrs = ipr.get_links(), ipr.get_addr()
    addresses: dict[int, list[str]] = {}
    for msg in raw_addrs:
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        addresses.setdefault(msg["index"], []).append(f"{addr}/{msg['prefixlen']}")
    names = {msg["index"]: pyroute2_name(msg.get_attr("IFLA_IFNAME")) for msg in raw_links}
    records = []
    for msg in raw_links:
        info, mac = msg.get_attr("IFLA_LINKINFO"), msg.get_attr("IFLA_ADDRESS")
        carrier, master = msg.get_attr("IFLA_CARRIER"), msg.get_attr("IFLA_MASTER")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        records.append({
            "ifindex": msg["index"],
            "name": names[msg["index"]],
            "kind": kind or ("loopback" if msg["flags"] & 0x8 else "physical"),
            "operstate": msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN",
            "carrier": None if carrier is None else bool(carrier),
            "mtu": msg.get_attr("IFLA_MTU") or 0,
            "mac": mac.lower() if isinstance(mac, str) else None,
            "flags": link_flags(msg["flags"]),
            "master": names.get(master) if master else None,
            "addresses": tuple(addresses.get(msg["index"], ())),
            "qdisc": msg.get_attr("IFLA_QDISC"),
        })  # fmt: skip
    return records


def pyroute2_name(raw: str | bytes) -> str:
    return decode(raw) if isinstance(raw, bytes) else raw


def test_counters_match_ip_and_the_getlink_fallback(lab: VethLab) -> None:
    send_udp(lab, count=50, size=700)
    with reader_in(lab.a) as reader:
        ours, oracle = stable_counters(lab.a, reader.read_counters)
    assert ours == oracle
    assert ours[lab.ifindex(lab.a, "vA")]["tx_packets"] >= 50
    with entered(resolve_netns(lab.b)):
        fallback = LinkStatsReader(use_getstats=False)
    try:
        ours, oracle = stable_counters(lab.b, fallback.read)
    finally:
        fallback.close()
    assert ours == oracle
    assert ours[lab.ifindex(lab.b, "vB")]["rx_bytes"] >= 50 * 700


def test_details_are_reread_only_when_they_change(lab: VethLab) -> None:
    with reader_in(lab.a) as reader:
        calls = count_calls(reader, "read_links")
        reader.sample()
        reader.sample()
        assert calls == [1]  # nothing changed: counters only
        ip("-n", lab.a, "link", "set", "vA", "mtu", "1300")
        mtu = {link.name: link.mtu for link in reader.sample().links}["vA"]
        assert calls == [2] and mtu == 1300
        ip("-n", lab.a, "addr", "add", "10.201.9.1/32", "dev", "lo")
        addrs = {link.name: link.addresses for link in reader.sample().links}["lo"]
        assert calls == [3] and "10.201.9.1/32" in addrs


def count_calls(reader: LinkReader, name: str) -> list[int]:
    calls = [0]
    real = getattr(reader, name)

    def counted(*args: object) -> object:
        calls[0] += 1
        return real(*args)

    setattr(reader, name, counted)
    return calls


# ------------------------------------------------------------------------------ traffic


def send_udp(lab: VethLab, count: int, size: int) -> None:
    """A burst of UDP datagrams from a to b (nobody listens: vB counts them all the same)."""
    with entered(resolve_netns(lab.a)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for _ in range(count):
            sock.sendto(b"u" * size, (ADDR_B, 9))


class PacedFlow:
    """A TCP connection from a to b written at a fixed pace by a thread; a thread in b reads."""

    def __init__(self, lab: VethLab) -> None:
        with entered(resolve_netns(lab.b)):
            self._listener = socket.create_server((ADDR_B, 0))
        port = self._listener.getsockname()[1]
        with entered(resolve_netns(lab.a)):
            self._client = socket.create_connection((ADDR_B, port), timeout=5)
        self._server, _ = self._listener.accept()
        self.sent = self.received = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._write), threading.Thread(target=self._read)]
        for thread in self._threads:
            thread.start()

    def _write(self) -> None:
        chunk, deadline = b"t" * PACE_CHUNK, time.monotonic()
        while not self._stop.is_set():
            self._client.sendall(chunk)
            self.sent += len(chunk)
            deadline += PACE_PERIOD
            time.sleep(max(0.0, deadline - time.monotonic()))
        self._client.shutdown(socket.SHUT_WR)

    def _read(self) -> None:
        while data := self._server.recv(1 << 16):
            self.received += len(data)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for sock in (self._client, self._server, self._listener):
            sock.close()


def test_paced_tcp_and_udp_burst_rates_match_the_kernel(lab: VethLab) -> None:
    va = lab.ifindex(lab.a, "vA")
    with reader_in(lab.a) as reader:
        tracker = LinkTracker(interval=1.0)
        first = tracker.update(reader.sample())
        flow = PacedFlow(lab)
        try:
            time.sleep(0.3)
            t0, ip0 = time.monotonic(), ip_counters_by_index(lab.a)[va]
            frames = [tracker.update(reader.sample())]
            for _ in range(4):  # 4 windows of ~1.3 s: >= 5 s, 5 samples while the flow runs
                time.sleep(1.3)
                frames.append(tracker.update(reader.sample()))
            ip1, t1 = ip_counters_by_index(lab.a)[va], time.monotonic()
        finally:
            flow.stop()
        send_udp(lab, count=200, size=1000)
        burst = tracker.update(reader.sample())
        ours, oracle = stable_counters(lab.a, reader.read_counters)
        last = tracker.update(reader.sample())
    assert flow.received == flow.sent > 5 * PACE_CHUNK / PACE_PERIOD * 0.8
    check_window(frames, va, ip0, ip1, t1 - t0)
    assert ours == oracle  # after the traffic: every counter as the kernel has it
    # The tracker's rates integrate to the kernel's byte totals over the whole run.
    frames_all = [*frames[1:], burst, last]
    moved = sum(f.rates[va].tx_bps * f.rates[va].seconds / 8 for f in frames_all)  # type: ignore[union-attr]
    assert moved == pytest.approx(oracle[va]["tx_bytes"] - frames[0].sample.counters[va].tx_bytes)
    assert oracle[va]["tx_bytes"] - first.sample.counters[va].tx_bytes >= flow.sent + 200 * 1000
    rate = burst.rates[va]
    assert rate is not None and rate.tx_pps * rate.seconds >= 200


def check_window(frames: list[LinkFrame], va: int, ip0: dict, ip1: dict, elapsed: float) -> None:
    """Each tick's rate is the paced rate (not a running total); the window's mean rate is the
    kernel's counter delta over the same window's elapsed time, within 2%."""
    pace_bps = PACE_CHUNK / PACE_PERIOD * 8
    ticks = [f.rates[va] for f in frames[1:]]
    assert all(t is not None and 0.5 * pace_bps < t.tx_bps < 2 * pace_bps for t in ticks), ticks
    seconds = sum(t.seconds for t in ticks)  # type: ignore[union-attr]
    tracked_bps = sum(t.tx_bps * t.seconds for t in ticks) / seconds  # type: ignore[union-attr]
    kernel_bps = (ip1["tx_bytes"] - ip0["tx_bytes"]) * 8 / elapsed
    assert tracked_bps == pytest.approx(kernel_bps, rel=0.02)
    tracked_pps = sum(t.rx_pps * t.seconds for t in ticks) / seconds  # type: ignore[union-attr]
    assert tracked_pps == pytest.approx((ip1["rx_packets"] - ip0["rx_packets"]) / elapsed, rel=0.1)


# ------------------------------------------------------------------ vanishing and resets


def test_an_interface_deleted_mid_run_disappears(lab: VethLab) -> None:
    ip("-n", lab.a, "link", "add", "vX", "type", "veth", "peer", "name", "vY")
    vx = lab.ifindex(lab.a, "vX")
    with reader_in(lab.a) as reader:
        tracker = LinkTracker()
        assert vx in tracker.update(reader.sample()).rates
        real = reader.read_counters

        def then_delete() -> dict[int, LinkCounters]:
            counters = real()  # vX is in this dump ...
            ip("-n", lab.a, "link", "del", "vX")  # ... and gone before its details are read
            return counters

        reader.read_counters = then_delete  # type: ignore[method-assign]
        reader.refresh_seconds = 0.0  # and the details are reread on this very sample
        frame = tracker.update(reader.sample())
        reader.read_counters = real  # type: ignore[method-assign]
        names = {link.name for link in frame.links}
        assert "vX" not in names and {"lo", "vA"} <= names
        assert vx not in frame.rates and vx not in frame.history
        after = tracker.update(reader.sample())
    assert {link.name for link in after.links} == {"lo", "vA"}
    assert set(after.rates) == {link.ifindex for link in after.links}


def test_a_counter_reset_with_the_same_index_gives_no_negative_rate(lab: VethLab) -> None:
    va = lab.ifindex(lab.a, "vA")
    with reader_in(lab.a) as reader:
        tracker = LinkTracker()
        send_udp(lab, count=100, size=1200)
        tracker.update(reader.sample())
        send_udp(lab, count=10, size=1200)
        before = tracker.update(reader.sample())
        assert before.rates[va] is not None and before.rates[va].tx_bps > 0
        old_mac = {link.ifindex: link.mac for link in before.links}[va]
        ip("-n", lab.a, "link", "del", "vA")
        ip("-n", lab.a, "link", "add", "vA", "index", str(va), "type", "veth", "peer", "name",
           "vB", "netns", lab.b)  # fmt: skip
        reset = tracker.update(reader.sample())
        ip("-n", lab.a, "link", "set", "vA", "up")
        ip("-n", lab.b, "link", "set", "vB", "up")
        after = tracker.update(reader.sample())
    assert reset.sample.counters[va].tx_bytes < before.sample.counters[va].tx_bytes
    assert reset.rates[va] is None
    new_mac = {link.ifindex: link.mac for link in reset.links}[va]
    assert new_mac != old_mac  # details were reread for the recreated link
    assert new_mac == ip_json(lab.a, "link", "show", "vA")[0]["address"]
    rate = after.rates[va]
    assert rate is not None and min(asdict(rate).values()) >= 0


def test_a_name_that_is_not_utf8_has_counters_and_details(zoo: VethLab) -> None:
    with reader_in(zoo.a) as reader:
        sample = reader.sample()
    names = {ip_name(e["ifname"]): e["ifindex"] for e in ip_json(zoo.a, "link")}
    assert {"v\\xffx", "p\\xfe"} <= names.keys()
    by_name = {link.name: link for link in sample.links}
    assert {name: by_name[name].ifindex for name in names} == names
    assert names["p\\xfe"] in sample.counters


def test_a_poller_thread_reads_the_namespace_not_the_host(lab: VethLab) -> None:
    """The reader is made on one thread and read on another, as the engine does: everything it
    returns must still be the namespace's (pyroute2 0.9 keeps sockets per thread)."""
    with reader_in(lab.a) as reader:
        got: dict[str, object] = {}
        worker = threading.Thread(target=lambda: got.update(sample=reader.sample()))
        worker.start()
        worker.join(timeout=10)
    sample = got["sample"]
    assert isinstance(sample, LinkSample)
    expected = {e["ifindex"]: e["ifname"] for e in ip_json(lab.a, "link")}
    assert {link.ifindex: link.name for link in sample.links} == expected
    assert sample.counters.keys() == expected.keys()


def test_an_idle_link_keeps_its_counters_record_and_a_busy_one_gets_a_new_one(
    lab: VethLab,
) -> None:
    va, lo = lab.ifindex(lab.a, "vA"), lab.ifindex(lab.a, "lo")
    with reader_in(lab.a) as reader:
        first = reader.read_counters()
        send_udp(lab, count=5, size=100)
        second = reader.read_counters()
    assert second[lo] is first[lo]  # lo did not move: the same object, not rebuilt
    assert second[va] is not first[va] and second[va].tx_packets >= first[va].tx_packets + 5
