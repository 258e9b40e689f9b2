"""Conntrack: the reader against `conntrack -L` in a veth lab, parsers and the tracker on
recorded text and samples, and the message an unprivileged user gets.

The lab: namespace ``b`` tracks connections because an nft rule there uses ct (a fresh
namespace tracks nothing, LAB.md recipe 2). From ``a`` (three source addresses) we open TCP
connections that stay ESTABLISHED and others closed into TIME_WAIT, UDP flows that get a reply
and some that do not, one of them over IPv6 (the kernel prints IPv6 in full; conntrack -L and
netdash compress it). ``nf_conntrack_max`` is read-only inside a namespace and drops cannot be
provoked here, so the near-limit warning and the drop rates are tested on recorded samples.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from netdash.cli import main
from netdash.engine_conntrack import ConntrackTracker
from netdash.model import ConntrackSample
from netdash.netns import entered, resolve_netns
from netdash.sources.conntrack import (
    NEEDS_ROOT,
    NETLINK,
    NOT_LOADED,
    NOTHING_TRACKED,
    PROC,
    ConntrackReader,
    parse_proc_conntrack,
    parse_stat,
)
from tests.conftest import skip_unless_root, temporary_netns
from tests.test_unprivileged import REPO, SETPRIV, python_for_nobody
from tests.vethlab import ADDR6_A, ADDR6_B, ADDR_A, ADDR_B, VethLab, ip, veth_lab

SRC_UDP, SRC_TW = "10.201.0.11", "10.201.0.12"  # extra source addresses on vA
DST_SILENT = "10.201.0.22"  # an extra address on vB where UDP gets no reply
TCP_PORT, UDP_ECHO, UDP_SILENT = 5100, 5101, 5102
CT_RULES = (
    ("add", "table", "inet", "t"),
    ("add", "chain", "inet", "t", "c", "{ type filter hook input priority 0; }"),
    ("add", "rule", "inet", "t", "c", "ct", "state", "new,established", "counter"),
)

# ------------------------------------------------------------------- recorded text


RECORDED_TABLE = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.9 sport=40000 dport=443 \
src=10.0.0.9 dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 100 TIME_WAIT src=10.0.0.1 dst=10.0.0.9 sport=40001 dport=443 \
src=10.0.0.9 dst=10.0.0.1 sport=443 dport=40001 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 110 SYN_SENT src=10.0.0.2 dst=10.0.0.8 sport=40002 dport=22 [UNREPLIED] \
src=10.0.0.8 dst=10.0.0.2 sport=22 dport=40002 mark=0 zone=0 use=2
ipv6     10 udp      17 29 src=fd00:0201:0000:0000:0000:0000:0000:0001 \
dst=fd00:0201:0000:0000:0000:0000:0000:0002 sport=5353 dport=53 [UNREPLIED] \
src=fd00:0201:0000:0000:0000:0000:0000:0002 dst=fd00:0201:0000:0000:0000:0000:0000:0001 \
sport=53 dport=5353 mark=0 zone=0 use=2
ipv4     2 udp      17 170 src=10.0.0.1 dst=10.0.0.53 sport=5000 dport=53 src=10.0.0.53 \
dst=10.0.0.1 sport=53 dport=5000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 25 src=10.0.0.3 dst=10.0.0.53 sport=5001 dport=53 src=10.0.0.53 \
dst=10.0.0.3 sport=53 dport=5001 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.9 type=8 code=0 id=7 src=10.0.0.9 \
dst=10.0.0.1 type=0 code=0 id=7 mark=0 zone=0 use=2
ipv4     2 gre      47 179 timeout=180, stream_timeout=180 src=10.0.0.4 dst=10.0.0.9 srckey=0x0 \
dstkey=0x0 src=10.0.0.9 dst=10.0.0.4 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 zone=0 use=2
"""

RECORDED_STAT = """\
entries  clashres found new invalid ignore delete chainlength insert insert_failed drop \
early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000008  00000001 00000000 00000000 0000000a 00000000 00000000 00000000 00000000 00000003 \
00000010 00000002 00000000  00000000 00000000 00000000 00000004
00000008  00000000 00000000 00000000 00000005 00000000 00000000 00000000 00000000 00000001 \
000000f0 00000000 00000000  00000000 00000000 00000000 00000000
"""


def test_parse_proc_table_counts_states_statuses_and_addresses() -> None:
    tally = parse_proc_conntrack(RECORDED_TABLE)
    assert tally.total == 8
    assert dict(tally.by_state) == {
        "ESTABLISHED": 1,
        "TIME_WAIT": 1,
        "SYN_SENT": 1,
        "udp UNREPLIED": 1,
        "udp ASSURED": 1,
        "udp REPLIED": 1,  # a reply seen, not (yet) assured: neither flag printed
        "icmp REPLIED": 1,
        "gre ASSURED": 1,  # its timeouts come before src=: the original tuple still found
    }
    assert dict(tally.by_proto) == {"tcp": 3, "udp": 3, "icmp": 1, "gre": 1}
    assert tally.top(tally.sources, 3) == (("10.0.0.1", 4), ("10.0.0.2", 1), ("10.0.0.3", 1))
    destinations = dict(tally.top(tally.destinations, 10))
    assert destinations == {"10.0.0.9": 4, "10.0.0.8": 1, "10.0.0.53": 2, "fd00:201::2": 1}


def test_parse_stat_sums_cpus_by_header_name_and_leaves_out_entries() -> None:
    stats = parse_stat(RECORDED_STAT)
    assert "entries" not in stats  # every row repeats the total: summing it would double it
    assert stats["drop"] == 0x10 + 0xF0
    assert stats["insert_failed"] == 4 and stats["early_drop"] == 2
    assert stats["invalid"] == 15 and stats["search_restart"] == 4 and stats["clashres"] == 1


def recorded_tree(root: Path, count: int, limit: int, stat: str = RECORDED_STAT) -> None:
    (root / "sys").mkdir(exist_ok=True)
    (root / "net" / "stat").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "nf_conntrack_count").write_text(f"{count}\n")
    (root / "sys" / "nf_conntrack_max").write_text(f"{limit}\n")
    (root / "net" / "stat" / "nf_conntrack").write_text(stat)
    (root / "net" / "nf_conntrack").write_text(RECORDED_TABLE)


def reader_on(root: Path) -> ConntrackReader:
    return ConntrackReader(sysctl_root=root / "sys", net_root=root / "net", method=PROC)


def test_reader_on_a_recorded_tree_and_without_conntrack(tmp_path: Path) -> None:
    recorded_tree(tmp_path, 8, 262144)
    sample = reader_on(tmp_path).sample()
    assert (sample.count, sample.max, sample.errors) == (8, 262144, ())
    assert sample.by_proto["tcp"] == 3 and sample.stats["drop"] == 0x100
    (tmp_path / "sys" / "nf_conntrack_count").unlink()
    missing = reader_on(tmp_path).sample()
    assert missing.errors == (NOT_LOADED,) and missing.max is None


# ------------------------------------------------------------------- the tracker


def at(sample: ConntrackSample, taken_at: float, **stats: int) -> ConntrackSample:
    return dataclasses.replace(sample, taken_at=taken_at, stats={**sample.stats, **stats})


def test_near_limit_warning_from_recorded_fill(tmp_path: Path) -> None:
    recorded_tree(tmp_path, 209716, 262144)  # 80.0 %
    near = ConntrackTracker().update(reader_on(tmp_path).sample())
    assert near.near_limit and near.fill == pytest.approx(0.8, abs=1e-5)
    recorded_tree(tmp_path, 209000, 262144)  # 79.7 %
    below = ConntrackTracker().update(reader_on(tmp_path).sample())
    assert not below.near_limit and below.fill == pytest.approx(0.797, abs=1e-3)
    unknown = ConntrackTracker().update(ConntrackSample(count=5, max=None))
    assert unknown.fill is None and not unknown.near_limit


def test_drop_and_early_drop_rates_from_recorded_samples(tmp_path: Path) -> None:
    recorded_tree(tmp_path, 8, 262144)
    first = reader_on(tmp_path).sample()
    tracker = ConntrackTracker()
    start = tracker.update(at(first, 100.0))
    assert start.seconds is None and start.rate("drop") is None  # nothing to compare yet
    frame = tracker.update(at(first, 102.0, drop=0x100 + 60, early_drop=2 + 8, insert_failed=4))
    assert frame.seconds == pytest.approx(2.0)
    assert frame.rate("drop") == pytest.approx(30.0)
    assert frame.rate("early_drop") == pytest.approx(4.0)
    assert frame.rate("insert_failed") == 0.0 and frame.resets == ()


def test_counter_reset_gives_no_negative_rate() -> None:
    tracker = ConntrackTracker()
    tracker.update(ConntrackSample(10, 100, stats={"drop": 500, "early_drop": 7}, taken_at=1.0))
    frame = tracker.update(
        ConntrackSample(10, 100, stats={"drop": 3, "early_drop": 9}, taken_at=2.0)
    )
    assert frame.rate("drop") is None and frame.resets == ("drop",)
    assert frame.rate("early_drop") == pytest.approx(2.0)
    after = tracker.update(
        ConntrackSample(10, 100, stats={"drop": 13, "early_drop": 9}, taken_at=3.0)
    )
    assert after.rate("drop") == pytest.approx(10.0)  # counting again from the reset value
    assert all(r is None or r >= 0 for f in (frame, after) for r in f.rates.values())


# ------------------------------------------------------------------- real kernel


def netns_run(netns: str, *args: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *args], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def conntrack_oracle(netns: str, *extra: str) -> tuple[Counter[str], Counter[str], list[str]]:
    """`conntrack -L` in the namespace, counted as netdash counts: TCP by state, others by
    protocol and status; and the original source and destination of every entry."""
    by_state: Counter[str] = Counter()
    by_proto: Counter[str] = Counter()
    ends: list[str] = []
    for line in netns_run(netns, "conntrack", "-L", *extra).splitlines():
        cols = line.split()
        proto = cols[0]
        by_proto[proto] += 1
        if proto == "tcp":
            by_state[cols[3]] += 1
        elif "[ASSURED]" in cols:
            by_state[f"{proto} ASSURED"] += 1
        else:
            by_state[f"{proto} {'UNREPLIED' if '[UNREPLIED]' in cols else 'REPLIED'}"] += 1
        src = next(c for c in cols if c.startswith("src="))
        dst = next(c for c in cols if c.startswith("dst="))
        ends += [src, dst]
    return by_state, by_proto, ends


def udp_to(ns: str, family: int, src: str, dst: str, port: int) -> socket.socket:
    with entered(resolve_netns(ns)):
        sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    sock.sendto(b"ping", (dst, port))
    return sock


def open_flows(lab: VethLab, stack: ExitStack) -> None:
    """3 TCP ESTABLISHED from ADDR_A, 2 TCP closed into TIME_WAIT from SRC_TW, 2 UDP flows
    from SRC_TW answered by b, 3 unanswered from SRC_UDP to DST_SILENT and 1 over IPv6."""
    with entered(resolve_netns(lab.b)):
        server = stack.enter_context(socket.create_server((ADDR_B, TCP_PORT), backlog=16))
        echo = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        silent = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        silent6 = stack.enter_context(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    echo.bind((ADDR_B, UDP_ECHO))
    silent.bind((DST_SILENT, UDP_SILENT))
    silent6.bind((ADDR6_B, UDP_SILENT))
    with entered(resolve_netns(lab.a)):
        clients = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(5)]
    for index, client in enumerate(clients):
        stack.enter_context(client)
        client.bind((ADDR_A if index < 3 else SRC_TW, 0))
        client.connect((ADDR_B, TCP_PORT))
        accepted = stack.enter_context(server.accept()[0])
        if index >= 3:  # the client closes first, then the server: conntrack TIME_WAIT
            client.close()
            assert accepted.recv(10) == b""
            accepted.close()
    for _ in range(2):
        sock = stack.enter_context(udp_to(lab.a, socket.AF_INET, SRC_TW, ADDR_B, UDP_ECHO))
        data, peer = echo.recvfrom(100)
        echo.sendto(data, peer)
        assert sock.recv(100) == b"ping"
    for _ in range(3):
        stack.enter_context(udp_to(lab.a, socket.AF_INET, SRC_UDP, DST_SILENT, UDP_SILENT))
    stack.enter_context(udp_to(lab.a, socket.AF_INET6, ADDR6_A, ADDR6_B, UDP_SILENT))
    silent6.recv(10)  # it arrived: the entry exists


def wait_for_time_wait(netns: str) -> None:
    """conntrack sees the last ACK a moment after close() returns; TIME_WAIT then lasts 120 s,
    so the states are stable for the tests."""
    deadline = time.monotonic() + 5
    while conntrack_oracle(netns, "-p", "tcp")[0]["TIME_WAIT"] < 2:
        assert time.monotonic() < deadline, conntrack_oracle(netns, "-p", "tcp")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def ct_lab() -> Iterator[VethLab]:
    skip_unless_root()
    if shutil.which("conntrack") is None or shutil.which("nft") is None:
        pytest.fail("needs the conntrack and nft commands (apt-get install conntrack nftables)")
    with veth_lab() as lab, ExitStack() as stack:
        for address in (SRC_UDP, SRC_TW):
            ip("-n", lab.a, "addr", "add", f"{address}/24", "dev", "vA")
        ip("-n", lab.b, "addr", "add", f"{DST_SILENT}/24", "dev", "vB")
        for rule in CT_RULES:
            netns_run(lab.b, "nft", *rule)
        open_flows(lab, stack)
        wait_for_time_wait(lab.b)
        yield lab


EXPECTED_STATES = {"ESTABLISHED": 3, "TIME_WAIT": 2, "udp REPLIED": 2, "udp UNREPLIED": 4}


@pytest.mark.root
@pytest.mark.parametrize("method", [PROC, NETLINK])
def test_counts_match_conntrack_list_in_the_namespace(ct_lab: VethLab, method: str) -> None:
    with ConntrackReader(resolve_netns(ct_lab.b), method=method) as reader:
        # From a worker thread, as the engine samples: /proc/self/net would show the main
        # thread's namespace there, only /proc/thread-self/net the one the thread entered.
        with ThreadPoolExecutor(1) as pool:
            sample = pool.submit(reader.sample).result()
        assert reader.method_used == method and reader.table_read
    by_state, by_proto, _ = conntrack_oracle(ct_lab.b)
    assert dict(sample.by_state) == dict(by_state)
    assert dict(sample.by_proto) == dict(by_proto)
    for key, count in EXPECTED_STATES.items():  # the flows we made, whatever else b tracks
        assert sample.by_state[key] == count, key
    udp_state, _, _ = conntrack_oracle(ct_lab.b, "-p", "udp")
    assert {k: v for k, v in sample.by_state.items() if k.startswith("udp ")} == dict(udp_state)
    assert sample.count == int(netns_run(ct_lab.b, "conntrack", "-C")) == sum(by_proto.values())
    assert sample.max == int(netns_run(ct_lab.b, "sysctl", "-n", "net.netfilter.nf_conntrack_max"))
    assert sample.errors == ()


@pytest.mark.root
def test_top_sources_and_destinations(ct_lab: VethLab) -> None:
    with ConntrackReader(resolve_netns(ct_lab.b)) as reader:
        sample = reader.sample()
    _, _, ends = conntrack_oracle(ct_lab.b)
    sources = Counter(e[4:] for e in ends if e.startswith("src="))
    destinations = Counter(e[4:] for e in ends if e.startswith("dst="))
    assert dict(sample.top_sources) == dict(sources)
    assert dict(sample.top_destinations) == dict(destinations)
    assert sample.top_sources == (
        (SRC_TW, 4),  # 2 TIME_WAIT + 2 answered UDP
        (ADDR_A, 3),
        (SRC_UDP, 3),
        (ADDR6_A, 1),  # compressed, as conntrack -L prints it
    )
    assert sample.top_destinations == ((ADDR_B, 7), (DST_SILENT, 3), (ADDR6_B, 1))


@pytest.mark.root
def test_dump_conntrack_json_in_the_namespace(
    ct_lab: VethLab, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dump", "conntrack", "--json", "--seconds", "0.2", "--netns", ct_lab.b])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    by_state, by_proto, _ = conntrack_oracle(ct_lab.b)
    assert out["by_state"] == dict(by_state) and out["by_proto"] == dict(by_proto)
    assert out["count"] == sum(by_proto.values()) and out["max"] > 0
    assert out["top_sources"][0] == {"address": SRC_TW, "count": 4}
    assert out["top_destinations"][0] == {"address": ADDR_B, "count": 7}
    for name in ("insert_failed", "drop", "early_drop"):
        assert out["stats"][name] == {"total": 0, "per_s": 0.0}
    assert out["rate_seconds"] == pytest.approx(0.2, abs=0.1)
    assert out["errors"] == [] and out["near_limit"] is False


@pytest.mark.root
def test_a_fresh_namespace_says_nothing_is_tracked() -> None:
    with temporary_netns("ct") as name, ConntrackReader(resolve_netns(name)) as reader:
        with entered(resolve_netns(name)):
            probe = socket.create_server(("127.0.0.1", 0))
            client = socket.create_connection(probe.getsockname())
        with probe, client:
            sample = reader.sample()  # a TCP connection, but no rule uses ct
    assert sample.count == 0 and sample.by_state == {}
    assert sample.errors == (NOTHING_TRACKED,)


PROBE = """
import json
from netdash.sources.conntrack import ConntrackReader
reader = ConntrackReader()
sample = reader.sample()
print(json.dumps({"errors": sample.errors, "max": sample.max, "listed": reader.table_read}))
"""


@pytest.mark.root
def test_without_root_the_message_not_an_empty_table() -> None:
    if shutil.which("setpriv") is None:
        pytest.fail("needs setpriv (util-linux)")
    python = python_for_nobody()
    assert python is not None, "no python interpreter that nobody may run"
    top = Path(tempfile.mkdtemp(prefix="nd-nobody-"))
    try:
        shutil.copytree(
            REPO / "netdash", top / "netdash", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        env = [*SETPRIV, "env", f"PYTHONPATH={top}", "PYTHONDONTWRITEBYTECODE=1", python]
        probe = subprocess.run([*env, "-c", PROBE], capture_output=True, text=True, timeout=60)
        dump = subprocess.run(
            [*env, "-m", "netdash", "dump", "conntrack", "--json", "--seconds", "0.1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(top)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert seen["errors"] == [NEEDS_ROOT] and seen["listed"] is False
    assert seen["max"] > 0  # what an unprivileged user may read is still shown
    assert dump.returncode == 1 and f"netdash: {NEEDS_ROOT}" in dump.stderr
    assert json.loads(dump.stdout)["errors"] == [NEEDS_ROOT]
