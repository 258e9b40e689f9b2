"""`netdash dump connections --json` as a process, against `ss` in a namespace of known sockets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import skip_unless_root, temporary_netns
from tests.lablib import KnownSocketsLab

SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "LISTEN": "LISTEN",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "LAST-ACK": "LAST_ACK",
    "CLOSING": "CLOSING",
    "UNCONN": "UNCONN",
    "CLOSED": "CLOSE",
}
KEYS = {
    "proto",
    "family",
    "type",
    "state",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "interface",
    "peer_inode",
    "recv_q",
    "send_q",
    "inode",
    "uid",
    "pid",
    "process",
    "owners",
    "rtt_ms",
    "rttvar_ms",
    "retrans",
    "cwnd",
    "ssthresh",
    "mss",
    "bytes_acked",
    "bytes_received",
}


def netdash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netdash", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, KnownSocketsLab]]:
    skip_unless_root()
    with temporary_netns("dump") as name, KnownSocketsLab(name, loadgen_pairs=20) as lab:
        yield name, lab


def split_endpoint(text: str) -> tuple[str, str | None, int | None]:
    """ss's ``[::1]%lo:80`` → (addr, interface, port); ``*`` parts → None."""
    host, _, port = text.rpartition(":")
    addr, _, iface = host.partition("%")
    addr = addr.strip("[]")
    return addr, iface or None, None if port == "*" else int(port)


def ss_inet(netns: str) -> list[dict]:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "ss", "-tanupH"], capture_output=True, check=True, timeout=10
    ).stdout.decode("utf-8", "backslashreplace")
    sockets = []
    for line in out.splitlines():
        fields = line.split(None, 6)
        proto, state, recv_q, send_q, local, remote = fields[:6]
        users = fields[6] if len(fields) > 6 else ""
        laddr, iface, lport = split_endpoint(local)
        raddr, _, rport = split_endpoint(remote)
        sockets.append(
            {
                "proto": proto,
                "state": SS_STATES[state],
                "local_addr": laddr,
                "local_port": lport,
                "interface": iface,
                "remote_addr": None if rport is None else raddr,
                "remote_port": rport,
                "recv_q": int(recv_q),
                "send_q": int(send_q),
                "pids": sorted({int(p) for p in re.findall(r"pid=(\d+)", users)}),
            }
        )
    return sockets


def wildcard_equal(ss_addr: str, ours: str) -> bool:
    """ss prints a dual-stack wildcard as ``*``; every other address must be equal."""
    return ss_addr == ours or (ss_addr == "*" and ours in ("0.0.0.0", "::"))


def inet_key(sock: dict) -> tuple:
    return (
        sock["proto"],
        sock["state"],
        sock["local_port"],
        sock["remote_addr"],
        sock["remote_port"],
        sock["interface"],
    )


def test_dump_matches_ss_socket_for_socket(lab):
    netns, _ = lab
    result = netdash("dump", "connections", "--json", "--netns", netns)
    assert result.returncode == 0, result.stderr
    ours = [s for s in json.loads(result.stdout) if s["proto"] != "unix"]
    theirs = ss_inet(netns)
    assert ours and all(set(sock) == KEYS for sock in ours)
    stable = [s for s in theirs if s["state"] != "ESTABLISHED" or s["local_port"] != 80]
    unmatched = []
    for expected in stable:
        matches = [
            o
            for o in ours
            if inet_key(o) == inet_key(expected)
            and wildcard_equal(expected["local_addr"], o["local_addr"])
        ]
        if len(matches) != 1:
            unmatched.append(expected)
            continue
        got = matches[0]
        if expected["state"] in ("LISTEN", "UNCONN", "TIME_WAIT", "CLOSE_WAIT"):
            assert (got["recv_q"], got["send_q"]) == (expected["recv_q"], expected["send_q"])
        owners = sorted({o["pid"] for o in got["owners"] or []})
        assert owners == expected["pids"], (expected, got)
        assert got["pid"] == (expected["pids"][0] if expected["pids"] else None)
    assert not unmatched
    assert len(ours) == len(theirs)


def test_dump_fields_for_states_and_families(lab):
    netns, lab_ = lab
    sockets = json.loads(netdash("dump", "connections", "--json", "--netns", netns).stdout)
    by_state: dict[str, list[dict]] = {}
    for sock in sockets:
        by_state.setdefault(sock["state"], []).append(sock)
    listener = next(s for s in by_state["LISTEN"] if s["local_port"] == 80)
    assert listener["family"] == "inet" and listener["remote_addr"] is None
    assert [o["pid"] for o in listener["owners"]] == sorted(lab_.pids["nginx"])
    assert listener["pid"] == min(lab_.pids["nginx"])
    assert listener["process"] == "nginx"
    v6 = next(s for s in by_state["LISTEN"] if s["local_port"] == 5432)
    assert (v6["family"], v6["local_addr"]) == ("inet6", "::")
    time_wait = by_state["TIME_WAIT"][0]
    assert time_wait["inode"] == 0 and time_wait["owners"] == [] and time_wait["pid"] is None
    estab = next(s for s in by_state["ESTABLISHED"] if s["proto"] == "tcp" and s["owners"])
    assert estab["rtt_ms"] is not None and estab["cwnd"] > 0 and estab["mss"] > 0
    udp = next(s for s in sockets if s["proto"] == "udp" and s["local_port"] == 5353)
    assert udp["interface"] == "lo" and udp["rtt_ms"] is None and udp["state"] == "UNCONN"
    unix = [s for s in sockets if s["proto"] == "unix"]
    abstract = next(s for s in unix if s["local_addr"] == "@netdash-lab")
    assert abstract["type"] == "stream" and abstract["state"] == "LISTEN"
    assert abstract["local_port"] is None and abstract["remote_addr"] is None
    assert any(s["peer_inode"] for s in unix if s["state"] == "ESTABLISHED")
    markup = next(s for s in sockets if s["local_port"] == 6666 and s["state"] == "LISTEN")
    assert markup["process"] == "[red]x[/]\x1b[31m"  # data, exactly as the kernel has it


def test_no_unix_leaves_unix_out(lab):
    netns, _ = lab
    result = netdash("dump", "connections", "--json", "--no-unix", "--netns", netns)
    sockets = json.loads(result.stdout)
    assert sockets and not any(s["proto"] == "unix" for s in sockets)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("dump", "connections", "--json", "--netns", "nd-no-such-ns"), 1, "no network namespace"),
        (("dump", "connections", "--json", "--netns-pid", "999999999"), 1, "999999999"),
        (("dump", "connections"), 2, "--json"),
        (("--interval", "0"), 2, "more than 0"),
        (("--interval", "-1"), 2, "interval"),
        (("dump", "sockets", "--json"), 2, "invalid choice"),
    ],
)
def test_errors_exit_codes_and_one_line_messages(args, code, message):
    skip_unless_root()
    result = netdash(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
