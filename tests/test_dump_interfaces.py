"""`netdash dump interfaces --json` as a process, on a veth lab, with `ip -j` as the oracle.

About "elapsed" in the rate test: netdash's rates cover *its* window, the monotonic time between
its two counter reads (``rate_seconds`` in the output, about ``--seconds``), which a test cannot
observe from outside. The test reads the kernel's counters itself just before starting netdash
and just after it exits, so its window is wider (interpreter start-up and exit included). Both
windows sit inside one steadily paced flow in each direction, so both divide the same steady
rate's bytes by their own elapsed time and must agree within the pacing jitter (5%). What ties
netdash's numbers to its own window exactly is checked separately: the counters it prints are
those at the end of its window, so they exceed the test's first read by at least the bytes
its rate says moved during the window.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netdash.model import LINK_COUNTER_NAMES
from netdash.netns import entered, resolve_netns
from tests.conftest import skip_unless_root
from tests.test_dump import netdash
from tests.vethlab import ADDR_A, ADDR_B, VethLab, ip, ip_counters, ip_json, ip_name, veth_lab

KEYS = {
    "ifindex", "name", "kind", "operstate", "mtu", "mac", "addresses", *LINK_COUNTER_NAMES,
    "rx_bps", "tx_bps", "rx_pps", "tx_pps", "rate_seconds",
    "carrier", "speed_mbps", "speed_nominal", "duplex", "master", "flags",
}  # fmt: skip
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
DATAGRAM = 1000
PERIOD = 0.005  # each sender writes its chunk every 5 ms, on absolute deadlines
INTO_A, OUT_OF_A = 10, 4  # datagrams per period: ~2 MB/s into vA, ~0.8 MB/s out of it


@pytest.fixture
def lab() -> Iterator[VethLab]:
    skip_unless_root()
    with veth_lab() as made:
        yield made


def dump(netns: str, seconds: float) -> list[dict[str, Any]]:
    result = netdash("dump", "interfaces", "--json", "--netns", netns, "--seconds", str(seconds))
    assert result.returncode == 0, result.stderr
    assert result.stdout.isascii()  # names that are not UTF-8 arrive escaped
    return json.loads(result.stdout)


def oracle(netns: str) -> list[dict[str, Any]]:
    return ip_json(netns, "-s", "-s", "-d", "addr")


def ip_kind(entry: dict[str, Any]) -> str:
    kind = entry.get("linkinfo", {}).get("info_kind")
    return kind or ("loopback" if entry["ifname"] == "lo" else "physical")


def test_every_interface_matches_ip(lab: VethLab) -> None:
    ip("-n", lab.a, "link", "add", "br0", "type", "bridge")
    ip("-n", lab.a, "link", "add", "vP", "type", "veth", "peer", "name", "vQ")
    ip("-n", lab.a, "link", "set", "vP", "master", "br0", "mtu", "1400")
    for _ in range(10):  # idle links: retry if a late packet moved a counter around our read
        before = oracle(lab.a)
        ours = dump(lab.a, 0.2)
        expected = oracle(lab.a)
        if expected == before:
            break
    else:
        raise AssertionError("the counters never held still")
    assert [row["ifindex"] for row in ours] == [e["ifindex"] for e in expected]
    for row, e in zip(ours, expected, strict=True):
        assert set(row) == KEYS
        assert row["name"] == ip_name(e["ifname"])
        assert row["kind"] == ip_kind(e)
        assert (row["operstate"], row["mtu"]) == (e["operstate"], e["mtu"])
        assert row["mac"] == e["address"]
        assert MAC.match(row["mac"])
        assert row["addresses"] == [f"{a['local']}/{a['prefixlen']}" for a in e["addr_info"]]
        assert row["master"] == e.get("master")
        assert row["flags"] == [f for f in e["flags"] if f != "M-DOWN"]
        assert {name: row[name] for name in LINK_COUNTER_NAMES} == ip_counters(e)
        assert (row["rx_bps"], row["tx_bps"], row["rx_pps"], row["tx_pps"]) == (0, 0, 0, 0)
        assert 0.2 <= row["rate_seconds"] < 1.0
    by_name = {row["name"]: row for row in ours}
    va = by_name["vA"]
    assert (va["carrier"], va["speed_mbps"], va["duplex"], va["speed_nominal"]) == (
        True, 10000, "full", True,
    )  # fmt: skip
    assert by_name["vP"]["carrier"] is False and by_name["vP"]["master"] == "br0"
    assert by_name["lo"]["speed_mbps"] is None and by_name["br0"]["kind"] == "bridge"


class PacedUdp:
    """UDP datagrams paced on absolute deadlines, b → a and a → b at different rates, each to a
    bound socket in the other namespace (so no ICMP unreachable comes back; nobody reads it:
    the interface counts what arrives all the same)."""

    def __init__(self, lab: VethLab) -> None:
        self._socks: list[socket.socket] = []
        sink_a, send_a = self._pair(lab.a, ADDR_A)
        sink_b, send_b = self._pair(lab.b, ADDR_B)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(send_b, sink_a.getsockname(), INTO_A)),
            threading.Thread(target=self._send, args=(send_a, sink_b.getsockname(), OUT_OF_A)),
        ]
        for thread in self._threads:
            thread.start()

    def _pair(self, netns: str, addr: str) -> tuple[socket.socket, socket.socket]:
        with entered(resolve_netns(netns)):
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind((addr, 0))
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socks += [sink, sender]
        return sink, sender

    def _send(self, sock: socket.socket, to: tuple[str, int], per_period: int) -> None:
        payload, deadline = b"d" * DATAGRAM, time.monotonic()
        while not self._stop.is_set():
            for _ in range(per_period):
                sock.sendto(payload, to)
            deadline += PERIOD
            time.sleep(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        for sock in self._socks:
            sock.close()


def timed_counters(netns: str, ifindex: int) -> tuple[float, dict[str, int]]:
    """`ip`'s counters of one link and the monotonic time they were read at (the middle of
    the `ip` run: the read happens somewhere inside it)."""
    before = time.monotonic()
    entries = ip_json(netns, "-s", "-s", "link")
    after = time.monotonic()
    entry = next(e for e in entries if e["ifindex"] == ifindex)
    return (before + after) / 2, ip_counters(entry)


def test_rates_over_a_paced_window_match_the_kernel(lab: VethLab) -> None:
    va = lab.ifindex(lab.a, "vA")
    flow = PacedUdp(lab)
    try:
        time.sleep(0.3)
        t0, ip0 = timed_counters(lab.a, va)
        rows = dump(lab.a, 2)
        t1, ip1 = timed_counters(lab.a, va)
    finally:
        flow.stop()
    row = next(r for r in rows if r["ifindex"] == va)
    elapsed = t1 - t0
    assert 2.0 <= row["rate_seconds"] < min(2.5, elapsed)
    for key, counter, scale in (
        ("rx_bps", "rx_bytes", 8),
        ("tx_bps", "tx_bytes", 8),
        ("rx_pps", "rx_packets", 1),
        ("tx_pps", "tx_packets", 1),
    ):
        kernel = (ip1[counter] - ip0[counter]) * scale / elapsed
        assert row[key] == pytest.approx(kernel, rel=0.05), key
        # The printed counters are those at the end of netdash's window: past the test's first
        # read by at least what the rate says moved during the window, and not past its last.
        moved = row[key] * row["rate_seconds"] / scale
        assert ip0[counter] + moved - 1 <= row[counter] <= ip1[counter], counter
    pace = INTO_A * DATAGRAM / PERIOD * 8
    assert 0.8 * pace < row["rx_bps"] < 1.2 * pace  # into vA: not swapped with the way out
    assert 0.8 * pace * OUT_OF_A / INTO_A < row["tx_bps"] < 1.2 * pace * OUT_OF_A / INTO_A


def wait_for_sockets(pid: int, count: int, timeout: float = 20.0) -> None:
    """Until process ``pid`` holds ``count`` sockets: the link reader is open and its first
    sample follows within milliseconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(_is_socket(pid, fd) for fd in os.listdir(f"/proc/{pid}/fd")) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"netdash (pid {pid}) never opened its sockets")


def _is_socket(pid: int, fd: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    except FileNotFoundError:  # closed since the listing (start-up opens and closes files)
        return False


def test_a_counter_reset_during_the_window_gives_null_rates(lab: VethLab) -> None:
    va = lab.ifindex(lab.a, "vA")
    command = ["dump", "interfaces", "--json", "--netns", lab.a, "--seconds", "3"]
    with subprocess.Popen(
        [sys.executable, "-m", "netdash", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        wait_for_sockets(proc.pid, 3)  # counters, link events, ethtool
        time.sleep(0.5)
        ip("-n", lab.a, "link", "del", "vA")  # the same index again: counters start at 0
        ip("-n", lab.a, "link", "add", "vA", "index", str(va), "type", "veth", "peer", "name",
           "vB", "netns", lab.b)  # fmt: skip
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["vA"]["ifindex"] == va and rows["vA"]["operstate"] == "DOWN"
    assert all(rows["vA"][key] is None for key in ("rx_bps", "tx_bps", "rx_pps", "tx_pps"))
    assert rows["vA"]["rate_seconds"] is None and rows["vA"]["tx_packets"] == 0
    assert rows["lo"]["rx_bps"] == 0.0 and rows["lo"]["rate_seconds"] >= 3.0


def test_names_that_are_not_utf8_or_hold_control_characters_are_valid_json(lab: VethLab) -> None:
    ip("-n", lab.a, "link", "add", b"b\xfe", "type", "bridge")
    ip("-n", lab.a, "link", "add", b"v\xffx", "type", "veth", "peer", "name", b"p\x1b")
    ip("-n", lab.a, "link", "set", b"v\xffx", "master", b"b\xfe")
    rows = {row["ifindex"]: row for row in dump(lab.a, 0.1)}
    # `ip -j` writes the ESC raw, which is not valid JSON: parse it leniently.
    listed = json.loads(ip("-n", lab.a, "-j", "link"), strict=False)
    names = {e["ifindex"]: ip_name(e["ifname"]) for e in listed}
    assert {index: row["name"] for index, row in rows.items()} == names
    assert {"b\\xfe", "v\\xffx", "p\x1b"} <= set(names.values())
    by_name = {row["name"]: row for row in rows.values()}
    assert by_name["v\\xffx"]["master"] == "b\\xfe"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seconds", "0"), "more than 0 seconds"),
        (("--seconds", "-1"), "more than 0 seconds"),
        (("--seconds", "nan"), "more than 0 seconds"),
        (("--seconds", "soon"), "not a number of seconds"),
        (("--netns", "nd-no-such-ns"), "no network namespace 'nd-no-such-ns'"),
        (("--netns-pid", "999999999"), "no process with pid 999999999"),
    ],
)
def test_bad_windows_and_missing_namespaces_are_usage_errors(
    args: tuple[str, ...], message: str
) -> None:
    result = netdash("dump", "interfaces", "--json", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
