"""The firewall source, engine and dump against real netfilter in namespaces: nft tables with
anonymous and named counters, sets of ports and a DROP-policy chain, an iptables-nft and an
iptables-legacy rule; known traffic sent through the veth pair; `nft -j list ruleset` and
`iptables-*-save -c` as the oracles."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdash.engine_firewall import FirewallTracker
from netdash.model import FirewallRule, FirewallSample
from netdash.netns import entered, resolve_netns
from netdash.sources.firewall import NFT_EPERM, NO_RULES, FirewallReader, rules_touching_port
from netdash.sources.iptables import parse_save
from netdash.sources.nft import parse_rule_texts
from tests.conftest import needs_root, skip_unless_root
from tests.vethlab import ADDR_B, VethLab, veth_lab

REPO = Path(__file__).resolve().parent.parent
RULESET = """
table inet nd {
    counter web { }
    set webports { type inet_service; flags interval; elements = { 8000-8080, 9001 } }
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport 5201 counter accept comment "iperf3"
        tcp dport @webports counter name "web" accept
        udp dport { 7000, 7100-7199 } counter accept
        tcp sport 1000-2000 counter jump sub
        iifname "lo" accept
    }
    chain sub {
        counter return
    }
    chain guard {
        type filter hook forward priority 0; policy drop;
    }
}
"""
IPT_NFT = ["iptables-nft", "-A", "INPUT", "-p", "udp", "--dport", "6000"]
IPT_NFT += ["-m", "comment", "--comment", "ipt nft", "-j", "ACCEPT"]
IPT_LEGACY = ["iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", "6001", "-j", "DROP"]


def in_ns(netns: str, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def need_tools() -> None:
    for tool in ("nft", "iptables-nft", "iptables-legacy", "iptables-legacy-save"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (apt-get install nftables iptables)")


@pytest.fixture(scope="module")
def lab() -> Iterator[VethLab]:
    skip_unless_root()
    need_tools()
    with veth_lab() as lab:
        in_ns(lab.b, "nft", "-f", "-", stdin=RULESET)
        in_ns(lab.b, *IPT_NFT)
        in_ns(lab.b, *IPT_LEGACY)
        yield lab


def send_udp(lab: VethLab, port: int, count: int, payload: int = 100) -> None:
    with entered(resolve_netns(lab.a)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for _ in range(count):
            sock.sendto(b"x" * payload, (ADDR_B, port))


def tcp_syn(lab: VethLab, port: int) -> None:
    """One SYN to a closed port of b (answered by a RST): one packet through b's input."""
    with entered(resolve_netns(lab.a)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock, pytest.raises(ConnectionRefusedError):
        sock.settimeout(5)
        sock.connect((ADDR_B, port))


def nft_oracle(netns: str) -> tuple[dict[int, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(handle → anonymous counter) of table inet nd, and named counter → values."""
    doc = json.loads(in_ns(netns, "nft", "-j", "list", "ruleset"))["nftables"]
    rules, named = {}, {}
    for item in doc:
        if "rule" in item and item["rule"]["table"] == "nd":
            for expr in item["rule"]["expr"]:
                if isinstance(expr.get("counter"), dict):
                    rules[item["rule"]["handle"]] = (
                        expr["counter"]["packets"],
                        expr["counter"]["bytes"],
                    )
        if "counter" in item:
            named[item["counter"]["name"]] = (item["counter"]["packets"], item["counter"]["bytes"])
    return rules, named


def save_oracle(netns: str, tool: str) -> dict[str, tuple[int, int]]:
    """Rule text → counters from `iptables-*-save -c`."""
    found = {}
    for line in in_ns(netns, tool, "-c").splitlines():
        m = re.match(r"^\[(\d+):(\d+)\] (.*)$", line)
        if m:
            found[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return found


def by_backend(sample: FirewallSample, backend: str) -> list[FirewallRule]:
    return [r for r in sample.rules if r.backend == backend]


@needs_root
def test_rules_chains_sets_and_counters_match_nft_and_iptables_save(lab: VethLab) -> None:
    send_udp(lab, 5201, 7)
    send_udp(lab, 6000, 3)
    send_udp(lab, 6001, 4)
    tcp_syn(lab, 8005)
    with FirewallReader(resolve_netns(lab.b)) as reader:
        sample = reader.sample()
    nft_rules, named = nft_oracle(lab.b)
    ours = {r.handle: r for r in by_backend(sample, "nft")}
    texts = {r.text for r in ours.values()}
    assert texts == {
        'udp dport 5201 counter accept comment "iperf3"',
        'tcp dport @webports counter name "web" accept',
        "udp dport { 7000, 7100-7199 } counter accept",
        "tcp sport 1000-2000 counter jump sub",
        'iifname "lo" accept',
        "counter return",
    }
    for handle, counters in nft_rules.items():
        assert (ours[handle].packets, ours[handle].bytes) == counters
    iperf = next(r for r in ours.values() if r.comment == "iperf3")
    assert (iperf.packets, iperf.bytes, iperf.verdict) == (7, 7 * 128, "accept")
    web = next(r for r in ours.values() if "@webports" in r.text)
    assert (web.packets, web.bytes) == named["web"] and web.packets == 1
    assert next(r for r in ours.values() if "lo" in r.text).packets is None  # no counter
    assert {r.verdict for r in ours.values()} == {"accept", "jump sub", "return"}

    (ipt,) = by_backend(sample, "iptables-nft")
    assert save_oracle(lab.b, "iptables-nft-save")[ipt.text] == (ipt.packets, ipt.bytes) == (3, 384)
    assert (ipt.family, ipt.table, ipt.chain, ipt.position) == ("ip", "filter", "INPUT", 1)
    assert (ipt.comment, ipt.verdict, ipt.handle) == ("ipt nft", "accept", None)
    (legacy,) = by_backend(sample, "iptables-legacy")
    assert save_oracle(lab.b, "iptables-legacy-save")[legacy.text] == (4, 512)
    assert (legacy.packets, legacy.verdict, legacy.ports) == (4, "drop", ((6001, 6001),))
    assert not any(r.table == "filter" and r.backend == "nft" for r in sample.rules)  # once

    chains = {(c.backend, c.table, c.name): c for c in sample.chains}
    fwd = chains[("nft", "nd", "guard")]
    assert (fwd.hook, fwd.priority, fwd.type, fwd.policy) == ("forward", 0, "filter", "drop")
    assert chains[("nft", "nd", "sub")].hook is None
    assert chains[("iptables-nft", "filter", "INPUT")].policy == "accept"
    assert chains[("iptables-legacy", "filter", "INPUT")].policy == "accept"
    assert [(s.name, s.type, s.elements) for s in sample.sets] == [("webports", "inet_service", 2)]
    assert [e for e in sample.errors if not e.startswith("warning:")] == []
    assert any("both iptables-legacy and nf_tables" in e for e in sample.errors)


@needs_root
def test_port_query_finds_exactly_the_rules_touching_the_port(lab: VethLab) -> None:
    with FirewallReader(resolve_netns(lab.b)) as reader:
        rules = reader.sample().rules

    def texts(port: int) -> list[str]:
        return [r.text for r in rules_touching_port(rules, port)]

    assert texts(8005) == ['tcp dport @webports counter name "web" accept']  # named set
    assert texts(9001) == texts(8080) == texts(8005)
    assert texts(7150) == ["udp dport { 7000, 7100-7199 } counter accept"]  # anonymous set
    assert texts(1500) == ["tcp sport 1000-2000 counter jump sub"]  # a range, sport
    assert texts(5201) == ['udp dport 5201 counter accept comment "iperf3"']
    assert [r.backend for r in rules_touching_port(rules, 6000)] == ["iptables-nft"]
    assert [r.backend for r in rules_touching_port(rules, 6001)] == ["iptables-legacy"]
    assert texts(8081) == texts(7099) == []


@needs_root
def test_rates_match_the_traffic_sent_and_the_structure_is_read_once(lab: VethLab) -> None:
    tracker = FirewallTracker()
    with FirewallReader(resolve_netns(lab.b)) as reader:
        first = tracker.update(reader.sample())
        assert first.rates == {} and first.seconds is None
        send_udp(lab, 5201, 50)
        send_udp(lab, 6000, 20)
        send_udp(lab, 6001, 10)
        frame = tracker.update(reader.sample())
        assert reader.structure_reads == 1  # the ruleset did not change: counters only
    assert frame.seconds is not None and frame.seconds > 0
    rules = {
        (r.backend, r.text.split()[-1] if r.backend != "nft" else r.text): r
        for r in frame.sample.rules
    }
    expected = {
        ("nft", 'udp dport 5201 counter accept comment "iperf3"'): 50,
        ("iptables-nft", "ACCEPT"): 20,
        ("iptables-legacy", "DROP"): 10,
    }
    for name, count in expected.items():
        rate = frame.rate(rules[name])
        assert rate is not None
        assert rate.packets_per_s * frame.seconds == pytest.approx(count)
        assert rate.bytes_per_s * frame.seconds == pytest.approx(count * 128)
    assert {rules[name].key for name in expected} <= frame.moved
    still = next(r for r in frame.sample.rules if r.text == "counter return")
    assert still.key not in frame.moved and frame.rate(still).packets_per_s == 0


@needs_root
def test_deleted_and_flushed_rules_give_no_rate_and_resets_are_reported() -> None:
    skip_unless_root()
    need_tools()
    with veth_lab() as lab:
        in_ns(lab.b, "nft", "-f", "-", stdin=RULESET)
        in_ns(lab.b, *IPT_NFT)
        tracker = FirewallTracker()
        with FirewallReader(resolve_netns(lab.b)) as reader:
            send_udp(lab, 5201, 5)
            send_udp(lab, 6000, 5)
            before = tracker.update(reader.sample())
            sport = next(r for r in before.sample.rules if "sport" in r.text)
            in_ns(
                lab.b, "nft", "delete", "rule", "inet", "nd", "input", "handle", str(sport.handle)
            )
            in_ns(lab.b, "iptables-nft", "-Z")  # counters to 0, same rules
            after = tracker.update(reader.sample())
            # A flush and the same ruleset again: the same handles, counters from 0.
            in_ns(lab.b, "nft", "flush", "ruleset")
            in_ns(lab.b, "nft", "-f", "-", stdin=RULESET)
            reloaded = tracker.update(reader.sample())
            assert reader.structure_reads == 3
            in_ns(lab.b, "nft", "flush", "ruleset")
            flushed = tracker.update(reader.sample())
    assert sport.key in after.gone and sport.key not in after.rates
    ipt = next(r for r in before.sample.rules if r.backend == "iptables-nft")
    assert ipt.key in after.reset and ipt.key not in after.rates
    iperf = next(r for r in before.sample.rules if r.comment == "iperf3")
    assert iperf.key in after.rates and iperf.key not in after.reset
    assert iperf.key in reloaded.reset and iperf.key not in reloaded.rates
    assert sport.key in {r.key for r in reloaded.sample.rules} and ipt.key in reloaded.gone
    for frame in (after, reloaded):
        assert all(r.packets_per_s >= 0 and r.bytes_per_s >= 0 for r in frame.rates.values())
    assert flushed.sample.rules == () and flushed.rates == {}
    assert iperf.key in flushed.gone
    assert flushed.sample.errors == (NO_RULES,)


@needs_root
def test_dump_firewall_json_in_a_namespace_before_or_after_the_subcommand(lab: VethLab) -> None:
    send_udp(lab, 7000, 9)  # before the window: in the counters, not in the rates
    outputs = []
    for args in (
        ["--netns", lab.b, "dump", "firewall", "--json"],
        ["dump", "firewall", "--json", "--seconds", "0.3", "--netns", lab.b],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "netdash", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    for out in outputs:
        assert set(out) == {"rules", "chains", "sets", "errors"}
        row = next(r for r in out["rules"] if r["text"].startswith("udp dport { 7000"))
        assert row["packets"] >= 9 and row["packets_per_s"] == 0 and row["bytes_per_s"] == 0
        assert set(row) == {
            "backend", "family", "table", "chain", "handle", "text", "comment", "verdict",
            "packets", "bytes", "packets_per_s", "bytes_per_s",
        }  # fmt: skip
        ipt = next(r for r in out["rules"] if r["backend"] == "iptables-nft")
        assert ipt["position"] == 1 and "handle" not in ipt
        fwd = next(c for c in out["chains"] if c["name"] == "guard")
        assert fwd["policy"] == "drop" and fwd["hook"] == "forward"
        assert out["sets"] == [
            {
                "family": "inet",
                "table": "nd",
                "name": "webports",
                "type": "inet_service",
                "elements": 2,
            }
        ]


@needs_root
def test_as_nobody_the_sample_says_root_is_needed_instead_of_no_rules(tmp_path: Path) -> None:
    from tests.test_unprivileged import SETPRIV, python_for_nobody

    need_tools()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    python = python_for_nobody()
    if python is None:
        pytest.skip("no python interpreter that nobody may run")
    shutil.copytree(
        REPO / "netdash", tmp_path / "netdash", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    probe = (
        "import json; from netdash.sources.firewall import FirewallReader\n"
        "s = FirewallReader().sample()\n"
        "print(json.dumps({'rules': len(s.rules), 'errors': s.errors}))\n"
    )
    done = subprocess.run(
        [
            *SETPRIV,
            "env",
            f"PYTHONPATH={tmp_path}",
            "PYTHONDONTWRITEBYTECODE=1",
            python,
            "-c",
            probe,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["rules"] == 0
    assert NFT_EPERM in seen["errors"]
    assert (
        "iptables-nft-save: Operation not permitted: needs root (CAP_NET_ADMIN)" in seen["errors"]
    )
    assert NO_RULES not in seen["errors"]


def test_iptables_save_parser_positions_ports_verdicts_and_incompatible_tables() -> None:
    text = """# Table `filter' contains incompatible base-chains, use 'nft' tool to list them.
*filter
:INPUT ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING DROP [1:2]
:mine - [0:0]
[5:300] -A PREROUTING -p tcp -m multiport --dports 22,80:90 -m comment --comment "two words" -j mine
[1:60] -A PREROUTING -p tcp ! --dport 22 -j LOG
[0:0] -A mine -p udp -m udp --sport 53 -g other
COMMIT
"""
    out = parse_save(text, "iptables-nft", "ip")
    assert out.tables == {"mangle"} and out.incompatible == {"filter"}
    assert [(c.name, c.policy, c.hook) for c in out.chains] == [
        ("PREROUTING", "drop", "prerouting"),
        ("mine", None, None),
    ]
    first, second, third = out.rules
    assert (first.position, first.packets, first.bytes) == (1, 5, 300)
    assert first.text.startswith("-A PREROUTING -p tcp") and "[5:300]" not in first.text
    assert (first.comment, first.verdict, first.ports) == (
        "two words",
        "jump mine",
        ((22, 22), (80, 90)),
    )
    assert (second.position, second.verdict, second.ports) == (2, "log", ((0, 21), (23, 65535)))
    assert (third.position, third.chain, third.verdict) == (1, "mine", "goto other")


def test_nft_text_parser_keeps_rules_by_handle_without_counter_values() -> None:
    text = """table inet t { # handle 1
\tchain c { # handle 2
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport 22 counter packets 12 bytes 720 accept # handle 3
\t\tcounter name "web" drop # handle 4
\t}
}
table ip u { # handle 2
\tchain c { # handle 1
\t\tudp dport 1 counter packets 0 bytes 0 comment "a  b" # handle 3
\t}
}
"""
    assert parse_rule_texts(text) == {
        ("inet", "t", "c", 3): "tcp dport 22 counter accept",
        ("inet", "t", "c", 4): 'counter name "web" drop',
        ("ip", "u", "c", 3): 'udp dport 1 counter comment "a  b"',
    }
