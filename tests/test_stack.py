"""Stack health: counters and sysctls of a namespace against the real kernel (listen overflows
caused by the test, `nstat` as the oracle), parsers on recorded text, the tracker's rates on
recorded samples (resets give None, never a negative rate), and `dump stack --json`.

The overflows: a listener with backlog 1 that never accepts, inside a fresh namespace, gets
more connections than its accept queue holds. The kernel drops the extra SYNs and handshakes
and counts them (net/ipv4/tcp_input.c, tcp_conn_request: ``LINUX_MIB_LISTENOVERFLOWS``, then
``tcp_listendrop``), in that namespace only.

The retransmits: 4 MiB over a veth pair whose receiving end drops one data packet in four with
nft (tests/losslab.py; this kernel has no netem). The sending namespace counts them
(``Tcp.RetransSegs``, ``TcpExt.TCPFastRetrans``), at least the dropped payload over the MSS;
the receiving namespace and the host do not.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from netdash.netns import entered, resolve_netns
from netdash.sources.stack import (
    StackReader,
    StackSample,
    StackTracker,
    Sysctl,
    ephemeral_risk,
    parse_pairs,
    parse_port_range,
    parse_sockstat,
    split_counters,
)
from tests.conftest import needs_root
from tests.losslab import drops, lossy_veth_lab, transfer_across

REPO = Path(__file__).resolve().parent.parent
OVERFLOWS, DROPS = "TcpExt.ListenOverflows", "TcpExt.ListenDrops"
RETRANS, FAST_RETRANS = "Tcp.RetransSegs", "TcpExt.TCPFastRetrans"
#: Counters a lossy transfer moves, for the nstat comparison (some may stay at 0 in a run).
LOSS_COUNTERS = (RETRANS, FAST_RETRANS, "TcpExt.TCPLostRetransmit", "TcpExt.TCPTimeouts")

# ------------------------------------------------------------------- recorded text

RECORDED_SNMP = """\
Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 1 64 12810 0
IcmpMsg: InType3
IcmpMsg: 2
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens EstabResets CurrEstab RetransSegs OutRsts
Tcp: 1 200 120000 -1 350 62 4 17 205
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 219 3 9 221 8 1
UdpLite: InDatagrams NoPorts
"""  # the last header has lost its value line (a truncated read)

RECORDED_NETSTAT = """\
TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts OutOfWindowIcmps
TcpExt: 5 40 41 3 2
IpExt: InNoRoutes InOctets
IpExt: 0 377684636 99
"""  # IpExt's value line has one value too many: skipped, not misaligned

RECORDED_SOCKSTAT = """\
sockets: used 11
TCP: inuse 3 orphan 0 tw 1 alloc 4 mem 184
UDP: inuse 2 mem 155
FRAG: inuse 0 memory 0
"""


def test_parse_pairs_keys_counters_by_kernel_group_and_name() -> None:
    values = parse_pairs(RECORDED_SNMP) | parse_pairs(RECORDED_NETSTAT)
    assert values["Tcp.RetransSegs"] == 17
    assert values["Tcp.OutRsts"] == 205
    assert values["Tcp.MaxConn"] == -1
    assert values["IcmpMsg.InType3"] == 2
    assert values["Udp.RcvbufErrors"] == 8 and values["Udp.SndbufErrors"] == 1
    assert values[OVERFLOWS] == 40 and values[DROPS] == 41
    assert values["TcpExt.SyncookiesSent"] == 5 and values["TcpExt.OutOfWindowIcmps"] == 2
    assert not any(key.startswith(("UdpLite.", "IpExt.")) for key in values)
    assert len(values) == 4 + 1 + 9 + 6 + 5


def test_split_counters_keeps_settings_and_gauges_out_of_the_rates() -> None:
    counters, gauges = split_counters(parse_pairs(RECORDED_SNMP))
    assert gauges == {
        "Ip.Forwarding": 1, "Ip.DefaultTTL": 64, "Tcp.RtoAlgorithm": 1, "Tcp.RtoMin": 200,
        "Tcp.RtoMax": 120000, "Tcp.MaxConn": -1, "Tcp.CurrEstab": 4,
    }  # fmt: skip
    assert "Tcp.RetransSegs" in counters and not set(gauges) & set(counters)


def test_parse_sockstat() -> None:
    assert parse_sockstat(RECORDED_SOCKSTAT) == {
        "sockets.used": 11, "TCP.inuse": 3, "TCP.orphan": 0, "TCP.tw": 1, "TCP.alloc": 4,
        "TCP.mem": 184, "UDP.inuse": 2, "UDP.mem": 155, "FRAG.inuse": 0, "FRAG.memory": 0,
    }  # fmt: skip


def recorded_tree(root: Path, *, conntrack: bool) -> tuple[Path, Path]:
    net, sys_root = root / "net", root / "sys"
    net.mkdir()
    (net / "snmp").write_text(RECORDED_SNMP)
    (net / "netstat").write_text(RECORDED_NETSTAT)  # no sockstat: an error, the rest kept
    values = {
        "net/ipv4/tcp_congestion_control": "cubic\n",
        "net/ipv4/tcp_available_congestion_control": "reno cubic\n",
        "net/ipv4/ip_local_port_range": "32768\t60999\n",
        "net/ipv4/tcp_rmem": "4096\t131072\t6291456\n",
        "net/core/somaxconn": "4096\n",
    }
    if conntrack:
        values["net/netfilter/nf_conntrack_max"] = "262144\n"
    for rel, text in values.items():
        (sys_root / rel).parent.mkdir(parents=True, exist_ok=True)
        (sys_root / rel).write_text(text)
    return net, sys_root


@pytest.mark.parametrize("conntrack", [True, False])
def test_reader_on_a_recorded_tree(tmp_path: Path, conntrack: bool) -> None:
    net, sys_root = recorded_tree(tmp_path, conntrack=conntrack)
    sample = StackReader(net_root=net, sysctl_root=sys_root).sample()
    assert sample.counters[OVERFLOWS] == 40 and "Tcp.CurrEstab" not in sample.counters
    assert sample.gauges["Tcp.CurrEstab"] == 4
    rmem = sample.sysctl("net.ipv4.tcp_rmem")
    assert rmem is not None and rmem.value == "4096 131072 6291456" and "receive" in rmem.note
    assert parse_port_range(sample.sysctl("net.ipv4.ip_local_port_range").value) == (32768, 60999)
    assert (sample.sysctl("net.netfilter.nf_conntrack_max") is not None) is conntrack
    # Missing files are named in errors; conntrack's sysctls are optional (module not loaded).
    missing = {"tcp_max_syn_backlog", "tcp_tw_reuse", "tcp_fin_timeout", "tcp_wmem"}
    assert any("/proc/net/sockstat" in e for e in sample.errors)
    assert {e.split()[1].rsplit(".", 1)[1] for e in sample.errors if e.startswith("sysctl")} == (
        missing
    )
    assert not any("conntrack" in e for e in sample.errors)


# ------------------------------------------------------------------- the tracker


def sample(at: float, **counters: int) -> StackSample:
    return StackSample({k.replace("_", "."): v for k, v in counters.items()}, (), at)


def test_tracker_rates_moving_and_resets() -> None:
    tracker = StackTracker()
    first = tracker.update(sample(10.0, Tcp_RetransSegs=100, Tcp_OutRsts=5))
    assert first.seconds is None and first.rates == {"Tcp.RetransSegs": None, "Tcp.OutRsts": None}
    assert first.moving == frozenset()
    second = tracker.update(sample(12.0, Tcp_RetransSegs=140, Tcp_OutRsts=5, Udp_NoPorts=1))
    assert second.seconds == 2.0
    assert second.rates == {"Tcp.RetransSegs": 20.0, "Tcp.OutRsts": 0.0, "Udp.NoPorts": None}
    assert second.moving == frozenset({"Tcp.RetransSegs"})
    # The namespace was recreated: counters start again from small values.
    third = tracker.update(sample(13.0, Tcp_RetransSegs=3, Tcp_OutRsts=7, Udp_NoPorts=1))
    assert third.rates["Tcp.RetransSegs"] is None and third.resets == ("Tcp.RetransSegs",)
    assert third.rates["Tcp.OutRsts"] == 2.0 and third.moving == frozenset({"Tcp.OutRsts"})
    fourth = tracker.update(sample(14.0, Tcp_RetransSegs=4, Tcp_OutRsts=7, Udp_NoPorts=1))
    assert fourth.rates["Tcp.RetransSegs"] == 1.0 and fourth.resets == ()
    same_time = tracker.update(sample(14.0, Tcp_RetransSegs=9, Tcp_OutRsts=7, Udp_NoPorts=1))
    assert all(rate is None for rate in same_time.rates.values())


def test_ephemeral_risk_takes_the_busiest_local_address() -> None:
    ports = (32768, 60999)  # 28,232 ports
    assert ephemeral_risk(ports, {}) is None
    ok = ephemeral_risk(ports, {"10.0.0.1": 100, "10.0.0.2": 50})
    assert ok is not None and (ok.address, ok.sockets, ok.ports, ok.level) == (
        "10.0.0.1", 100, 28232, "ok"
    )  # fmt: skip
    warn = ephemeral_risk(ports, {"10.0.0.1": 100, "10.0.0.2": 20000})
    assert warn is not None and warn.address == "10.0.0.2" and warn.level == "warning"
    full = ephemeral_risk((60000, 60099), {"10.0.0.1": 95})
    assert full is not None and full.fill == 0.95 and full.level == "critical"


# ------------------------------------------------------------------- the real kernel


@contextmanager
def overflowing_listener(netns: str, every: float = 0.05) -> Iterator[None]:
    """Inside ``netns``: a listener with backlog 1 that never accepts, and a thread opening a
    new non-blocking connection to it every ``every`` seconds until the body ends (each SYN
    past the full queue is an overflow, whenever a sample is taken); all closed afterwards."""
    opened: list[socket.socket] = []
    stop = threading.Event()
    ready = threading.Event()

    def flood() -> None:
        with entered(resolve_netns(netns)):
            listener = socket.socket()
            opened.append(listener)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            address = listener.getsockname()
            while True:
                client = socket.socket()
                opened.append(client)
                client.setblocking(False)
                client.connect_ex(address)
                ready.set()
                if stop.wait(every):
                    return

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        assert ready.wait(5), "the flood did not start"
        yield
    finally:
        stop.set()
        thread.join(10)
        for sock in opened:
            sock.close()


def sampled_in_a_thread(reader: StackReader) -> StackSample:
    """Sample from a worker thread, as the engine does: the main thread's entering would make
    ``/proc/net`` (the main thread's view) look right by accident."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(reader.sample).result(timeout=10)


def wait_for(reader: StackReader, name: str, above: int, timeout: float = 3.0) -> StackSample:
    deadline = time.monotonic() + timeout
    while True:
        now = sampled_in_a_thread(reader)
        if now.counters[name] > above or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


def nstat(netns: str) -> dict[str, int]:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "nstat", "-asz", "--json"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    return json.loads(out)["kernel"]


@needs_root
def test_listen_overflows_move_in_the_namespace_only(netns: str) -> None:
    with StackReader(resolve_netns(netns)) as inside, StackReader() as host:
        tracker = StackTracker()
        before = tracker.update(sampled_in_a_thread(inside))
        host_before = sampled_in_a_thread(host)
        with overflowing_listener(netns):
            after = wait_for(inside, OVERFLOWS, before.sample.counters[OVERFLOWS])
            host_after = sampled_in_a_thread(host)
            oracle = nstat(netns)
        frame = tracker.update(after)
    overflows = after.counters[OVERFLOWS] - before.sample.counters[OVERFLOWS]
    drops = after.counters[DROPS] - before.sample.counters[DROPS]
    assert overflows >= 1 and drops >= overflows, (overflows, drops)
    assert {OVERFLOWS, DROPS} <= frame.moving and frame.rates[OVERFLOWS] > 0
    # nstat names are the group and name run together; nothing else ran in this namespace
    # between the two reads, so the counters agree exactly.
    for name in (OVERFLOWS, DROPS, "Tcp.ActiveOpens", "Tcp.PassiveOpens"):
        assert oracle[name.replace(".", "")] == after.counters[name], name
    # The host did not see them (other jobs may overflow a host listener meanwhile, but not
    # by as many as this test caused in the namespace in the same instant).
    host_moved = host_after.counters[OVERFLOWS] - host_before.counters[OVERFLOWS]
    assert host_moved < overflows


@needs_root
def test_retransmits_move_in_the_sending_namespace_only() -> None:
    """4 MiB from a to b over a veth where b's nft drops one data packet in four: a's reader sees
    the retransmits (at least the dropped payload over the MSS), b's and the host's do not."""
    with (
        lossy_veth_lab(every=4) as lab,
        StackReader(resolve_netns(lab.a)) as sender,
        StackReader(resolve_netns(lab.b)) as receiver,
        StackReader() as host,
    ):
        tracker = StackTracker()
        before = tracker.update(sampled_in_a_thread(sender)).sample
        receiver_before, host_before = sampled_in_a_thread(receiver), sampled_in_a_thread(host)
        with transfer_across(lab, 4 << 20) as transfer:
            receiver_after = sampled_in_a_thread(receiver)
            after = sampled_in_a_thread(sender)
            host_after = sampled_in_a_thread(host)
            oracle = nstat(lab.a)
        dropped = drops(lab)
    frame = tracker.update(after)
    retransmitted = after.counters[RETRANS] - before.counters[RETRANS]
    assert transfer.seconds < 8, transfer
    assert dropped.packets >= 5, dropped
    assert retransmitted >= dropped.payload_segments(transfer.mss) > 100, (dropped, transfer)
    assert {RETRANS, FAST_RETRANS} <= frame.moving
    rate = frame.rates[RETRANS]
    assert frame.seconds is not None and rate == pytest.approx(retransmitted / frame.seconds)
    assert rate > 0
    # nothing else ran in a, and the data were all acknowledged: the counters agree exactly.
    for name in LOSS_COUNTERS:
        assert oracle[name.replace(".", "")] == after.counters[name], name
    # b only sent a SYN-ACK, ACKs and one byte, none of them dropped: it retransmitted nothing.
    assert receiver_after.counters[RETRANS] == receiver_before.counters[RETRANS]
    assert (
        receiver_after.counters["Tcp.PassiveOpens"] > receiver_before.counters["Tcp.PassiveOpens"]
    )
    # Other jobs may retransmit on the host meanwhile, but not this many in the same second.
    assert host_after.counters[RETRANS] - host_before.counters[RETRANS] < retransmitted


@needs_root
def test_sysctls_are_the_namespaces_own(netns: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.core.somaxconn=1234"],
        check=True, timeout=10,
    )  # fmt: skip
    with StackReader(resolve_netns(netns)) as inside:
        mine = sampled_in_a_thread(inside)
    host = sampled_in_a_thread(StackReader())
    assert mine.sysctl("net.core.somaxconn") == Sysctl(
        "net.core.somaxconn", "1234", mine.sysctl("net.core.somaxconn").note
    )
    assert host.sysctl("net.core.somaxconn").value != "1234"
    assert mine.errors == () and len(mine.counters) > 100
    assert "bbr" in mine.sysctl("net.ipv4.tcp_available_congestion_control").value.split() or (
        mine.sysctl("net.ipv4.tcp_congestion_control").value
        in mine.sysctl("net.ipv4.tcp_available_congestion_control").value.split()
    )


@needs_root
def test_dump_stack_json_with_netns_sees_the_overflows_as_rates(netns: str) -> None:
    command = [sys.executable, "-m", "netdash", "dump", "stack", "--json", "--seconds", "1.5"]
    proc = subprocess.Popen(
        [*command, "--netns", netns], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.5)  # inside the window: after the first sample, before the second
        with overflowing_listener(netns):
            out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["netns"] == netns and data["errors"] == []
    assert 1.4 < data["rate_seconds"] < 3
    overflow = data["counters"][OVERFLOWS]
    assert overflow["total"] >= 1 and overflow["per_s"] > 0 and overflow["moving"]
    assert OVERFLOWS in data["moving"] and OVERFLOWS in data["key_counters"]
    assert data["counters"]["Udp.RcvbufErrors"] == {"total": 0, "per_s": 0.0, "moving": False}
    assert "Tcp.CurrEstab" in data["gauges"] and "Tcp.CurrEstab" not in data["counters"]
    sysctls = {s["name"]: s for s in data["sysctls"]}
    assert sysctls["net.ipv4.tcp_fin_timeout"]["value"].isdigit()
    assert sysctls["net.ipv4.tcp_fin_timeout"]["note"]
    assert data["notes"][OVERFLOWS].startswith("accept queue full")
