"""The links source against the real kernel: two namespaces joined by a veth pair, `ip` as
the oracle, paced TCP and a UDP burst for rates; plus the counter parser on built structs."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import pytest

from netdash.engine_links import LinkFrame, LinkTracker
from netdash.model import LINK_COUNTER_NAMES, LinkCounters, LinkSample
from netdash.netns import entered, resolve_netns
from netdash.sources.links import LinkReader
from netdash.sources.linkstats import LinkStatsReader, counters_from
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


# ---------------------------------------------------------------------------- details


def test_links_match_ip(lab: VethLab) -> None:
    ip("-n", lab.a, "link", "add", "br0", "type", "bridge")
    ip("-n", lab.a, "link", "add", "vP", "type", "veth", "peer", "name", "vQ")
    ip("-n", lab.a, "link", "set", "vP", "master", "br0", "mtu", "1400")
    with reader_in(lab.a) as reader:
        links = reader.read_links()
    expected = ip_json(lab.a, "-d", "addr")
    assert [link.ifindex for link in links] == [e["ifindex"] for e in expected]
    for link, e in zip(links, expected, strict=True):
        kind = e.get("linkinfo", {}).get("info_kind") or (
            "loopback" if e["ifname"] == "lo" else "physical"
        )
        assert link.name == e["ifname"]
        assert link.kind == kind
        assert link.operstate == e["operstate"]
        assert link.mtu == e["mtu"]
        assert link.mac == e["address"]
        assert link.qdisc == e["qdisc"]
        assert link.master == e.get("master")
        assert link.flags == tuple(f for f in e["flags"] if f != "M-DOWN")
        assert link.addresses == tuple(f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"])
    by_name = {link.name: link for link in links}
    va = by_name["vA"]
    assert va.addresses == (f"{ADDR_A}/24", f"{ADDR6_A}/64")
    assert (va.carrier, va.speed_mbps, va.duplex, va.speed_nominal) == (True, 10000, "full", True)
    assert by_name["vP"].master == "br0" and by_name["vP"].mtu == 1400
    assert by_name["vP"].carrier is False  # its peer is down
    assert by_name["br0"].kind == "bridge" and by_name["lo"].kind == "loopback"
    assert by_name["lo"].speed_mbps is None and by_name["lo"].duplex is None


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


def test_a_name_that_is_not_utf8(lab: VethLab) -> None:
    made = subprocess.run(
        ["ip", "-n", lab.a, "link", "add", b"v\xffx", "type", "veth", "peer", "name", b"p\xfe"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"ip link add refused a non-UTF-8 name: {made.stderr.decode(errors='replace')}")
    with reader_in(lab.a) as reader:
        sample = reader.sample()
    names = {ip_name(e["ifname"]): e["ifindex"] for e in ip_json(lab.a, "link")}
    assert {"v\\xffx", "p\\xfe"} <= names.keys()
    by_name = {link.name: link for link in sample.links}
    assert {name: by_name[name].ifindex for name in names} == names
    assert by_name["v\\xffx"].speed_mbps == 10000  # ethtool was asked with the raw bytes
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
