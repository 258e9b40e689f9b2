"""`netdash diagnose` against every seed case (Could not resolve host, ECONNREFUSED, ETIMEDOUT
from a DROP rule, a REJECT rule with a TCP reset or ICMP admin-prohibited, ENETUNREACH, the
127.0.0.1-only listener, a healthy TLS server, ECONNRESET), each built for real in two
namespaces (:mod:`tests.diaglab`), and the rule evaluator and target parser on their own.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdash.diagnose import (
    DiagnoseOptions,
    Diagnosis,
    DiagnosisCancelled,
    Step,
    diagnose,
    parse_target,
)
from netdash.diagnose_firewall import Packet, firewall_path
from netdash.diagnose_rules import iptables_conditions, nft_conditions, reject_kind
from netdash.diagnose_verdict import TOKENS
from netdash.model import FirewallChain, FirewallRule, FirewallSample
from netdash.netns import resolve_netns
from tests.conftest import needs_root, skip_unless_root, temporary_netns
from tests.diaglab import (
    ADDR6_B,
    ADDR_A,
    ADDR_B,
    CLOSED,
    LOOPBACK_ONLY,
    OPEN,
    RESET,
    TLS,
    TLS_NAME,
    DiagLab,
    diag_lab,
)
from tests.vethlab import ip

REPO = Path(__file__).resolve().parents[1]
OUTPUT = "type filter hook output priority 0; policy accept;"


@pytest.fixture(scope="module")
def lab() -> Iterator[DiagLab]:
    skip_unless_root()
    with diag_lab() as built:
        yield built


def run(lab: DiagLab, target: str, *, timeout: float = 1.0, **extra) -> Diagnosis:
    options = DiagnoseOptions(
        nameservers=(lab.dns,), netns=lab.client_ns, timeout=timeout, dns_timeout=1.0, **extra
    )
    result = diagnose(target, options)
    assert result.token in TOKENS and result.verdict.startswith(f"{result.token}: ")
    return result


def step(result: Diagnosis, name: str) -> Step:
    found = [s for s in result.steps if s.name == name]
    assert found, f"no {name} step in {[s.name for s in result.steps]}"
    return found[-1]


# --------------------------------------------------------------------------- seed cases


@needs_root
def test_a_name_that_does_not_resolve_is_a_dns_failure(lab: DiagLab) -> None:
    result = run(lab, "nope.diag.test:80")
    assert result.token == "dns-failure"
    assert "nope.diag.test does not exist (NXDOMAIN from 127.0.0.1:" in result.verdict
    assert step(result, "resolve").status == "fail"
    assert [s.name for s in result.steps] == ["resolve"]  # nothing is sent anywhere else


@needs_root
def test_a_name_is_resolved_by_each_nameserver_and_the_ipv4_address_is_tried(
    lab: DiagLab,
) -> None:
    result = run(lab, f"www.diag.test:{OPEN}")
    resolved = step(result, "resolve")
    assert resolved.status == "ok" and ADDR_B in resolved.detail and ADDR6_B in resolved.detail
    assert result.address == ADDR_B
    assert result.token == "reachable", result.verdict


@needs_root
def test_nothing_listening_is_refused(lab: DiagLab) -> None:
    remote = run(lab, f"{ADDR_B}:{CLOSED}")
    assert remote.token == "refused"
    assert f"nothing listens on port {CLOSED} there" in remote.verdict
    assert "ECONNREFUSED" in step(remote, "connect").detail
    local = run(lab, f"{ADDR_A}:{CLOSED}")
    assert local.token == "refused"
    assert step(local, "listener").detail == f"nothing listens on tcp port {CLOSED}"
    assert "nothing listens on port 9 on this host" in local.verdict


@needs_root
def test_a_drop_rule_is_a_timeout_that_names_the_rule(lab: DiagLab) -> None:
    rule = f'tcp dport {OPEN} counter drop comment "diaglab drop"'
    with lab.rules(lab.client, f"{OUTPUT}\n  {rule}"):
        started = time.monotonic()
        result = run(lab, f"{ADDR_B}:{OPEN}")
        took = time.monotonic() - started
    assert result.token == "timeout"
    assert "dropped by the local firewall: nft inet diaglab c handle" in result.verdict
    assert "tcp dport 8080 counter drop" in result.verdict
    assert step(result, "firewall").status == "fail"
    assert 1.0 <= took < 5.0  # the connect timeout, not more


@needs_root
def test_a_drop_at_the_peer_is_a_timeout_on_the_path(lab: DiagLab) -> None:
    input_chain = f"type filter hook input priority 0; tcp dport {OPEN} drop"
    with lab.rules(lab.server, input_chain):
        result = run(lab, f"{ADDR_B}:{OPEN}")
    assert result.token == "timeout"
    assert "a DROP rule on the path or at the peer" in result.verdict
    assert "nothing on this host drops it" in result.verdict


@needs_root
def test_a_reject_with_tcp_reset_is_rejected_and_the_rule_named(lab: DiagLab) -> None:
    rule = f"ip daddr {ADDR_B} tcp dport {OPEN} reject with tcp reset"
    with lab.rules(lab.client, f"{OUTPUT}\n  {rule}"):
        result = run(lab, f"{ADDR_B}:{OPEN}")
    assert result.token == "rejected", result.verdict
    assert "(tcp reset) by the local firewall: nft inet diaglab c handle" in result.verdict
    assert f"ip daddr {ADDR_B} tcp dport {OPEN} reject with tcp reset" in result.verdict


@needs_root
def test_an_icmp_admin_prohibited_reject_is_rejected(lab: DiagLab) -> None:
    """connect() says EHOSTUNREACH, as for a host that does not answer ARP: the ICMP code,
    watched on a raw socket, is what tells the firewall apart."""
    local = f"tcp dport {OPEN} reject with icmp type admin-prohibited"
    with lab.rules(lab.client, f"{OUTPUT}\n  {local}"):
        mine = run(lab, f"{ADDR_B}:{OPEN}")
    assert mine.token == "rejected", mine.verdict
    assert "EHOSTUNREACH" in step(mine, "connect").detail
    assert "ICMP admin-prohibited" in mine.verdict
    assert "reject with icmp admin-prohibited" in mine.verdict
    peer = f"type filter hook input priority 0; tcp dport {OPEN} reject with icmpx admin-prohibited"
    assert run(lab, f"[{ADDR6_B}]:{OPEN}").token == "reachable"  # neighbours learnt both ways
    with lab.rules(lab.server, peer):
        theirs = run(lab, f"{ADDR_B}:{OPEN}")
        theirs6 = run(lab, f"[{ADDR6_B}]:{OPEN}", timeout=3.0)
    assert theirs.token == "rejected"
    assert f"{ADDR_B} answered with ICMP admin-prohibited" in theirs.verdict
    assert theirs6.token == "rejected", theirs6.verdict  # IPv6: EACCES
    assert "EACCES" in step(theirs6, "connect").detail


@needs_root
def test_no_route_is_unreachable(lab: DiagLab) -> None:
    result = run(lab, "192.0.2.1:80")
    assert result.token == "unreachable"
    assert "no route to 192.0.2.1 (Network is unreachable)" in result.verdict
    assert step(result, "route").status == "fail"
    assert "ENETUNREACH" in step(result, "connect").detail


@needs_root
def test_no_route_because_the_interface_is_down_says_so() -> None:
    with temporary_netns("diagdown") as name:
        ip("-n", name, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
        ip("-n", name, "addr", "add", "10.203.0.1/24", "dev", "x0")
        result = diagnose("10.203.0.2:80", DiagnoseOptions(netns=resolve_netns(name)))
    assert result.token == "unreachable"
    assert result.verdict.endswith("(Network is unreachable): x0 is down")
    interface = step(result, "interface")
    assert interface.status == "warn"
    assert "x0 DOWN, mtu 1500, 10.203.0.1/24 (set down: ip link set dev x0 up)" in interface.detail


@needs_root
def test_a_listener_on_loopback_only_refuses_other_addresses(lab: DiagLab) -> None:
    result = run(lab, f"{ADDR_A}:{LOOPBACK_ONLY}")
    assert result.token == "refused"
    assert f"listens only on 127.0.0.1:{LOOPBACK_ONLY} (loopback)" in result.verdict
    assert step(result, "listener").status == "fail"
    assert "(an address of this host)" in step(result, "route").detail
    assert run(lab, f"127.0.0.1:{LOOPBACK_ONLY}").token == "reachable"


@needs_root
def test_a_healthy_tls_server_is_reachable_with_its_certificate(lab: DiagLab) -> None:
    result = run(lab, f"{TLS_NAME}:{TLS}")
    assert result.token == "reachable", result.verdict
    tls = step(result, "tls")
    assert tls.status == "ok", tls.detail
    expiry = lab.cert_not_after.strftime("%Y-%m-%d")
    for text in ("TLSv1.3", f"CN={TLS_NAME}", "(self-signed)", f"expires {expiry}"):
        assert text in result.verdict
    plain = run(lab, f"{ADDR_B}:{OPEN}", tls=True)  # not a TLS server: said, not hidden
    assert step(plain, "tls").status == "fail"


@needs_root
def test_a_peer_that_resets_at_once_is_reset(lab: DiagLab) -> None:
    result = run(lab, f"{ADDR_B}:{RESET}")
    assert result.token == "reset", result.verdict
    assert "reset" in result.verdict.split(":", 1)[1]
    # The RST may even beat connect()'s return: then connect() itself says ECONNRESET.
    last = result.steps[-1]
    assert (last.name, last.detail) == ("peer", "the peer reset it at once") or (
        last.name == "connect" and last.detail.startswith("ECONNRESET")
    ), last


@needs_root
def test_steps_are_reported_in_order_as_they_complete_and_can_be_cancelled(
    lab: DiagLab,
) -> None:
    seen: list[Step] = []
    options = DiagnoseOptions(netns=lab.client_ns, timeout=1.0)
    result = diagnose(f"{ADDR_A}:{CLOSED}", options, on_step=seen.append)
    assert seen == list(result.steps)
    assert [s.name for s in seen] == [
        "resolve", "route", "interface", "firewall", "listener", "connect",
    ]  # fmt: skip
    cancel = threading.Event()

    def stop_after_route(reported: Step) -> None:
        if reported.name == "route":
            cancel.set()

    with pytest.raises(DiagnosisCancelled):
        diagnose(f"{ADDR_B}:{OPEN}", options, on_step=stop_after_route, cancel=cancel)


@needs_root
def test_without_cap_net_raw_and_net_admin_the_diagnosis_says_what_it_could_not_see(
    lab: DiagLab,
) -> None:
    """As a user with fewer privileges: no rules read, no ICMP watched; said, not guessed."""
    peer = f"type filter hook input priority 0; tcp dport {OPEN} reject with icmpx admin-prohibited"
    with lab.rules(lab.server, peer):
        done = cli(f"{ADDR_B}:{OPEN}", "--json", "--netns", lab.client, drop_caps=True)
    document = json.loads(done.stdout)
    steps = {entry["name"]: entry for entry in document["steps"]}
    assert steps["firewall"]["status"] == "skip"
    assert "needs root (CAP_NET_ADMIN)" in steps["firewall"]["detail"]
    assert "ICMP not watched: needs CAP_NET_RAW" in steps["connect"]["detail"]
    assert document["verdict"].startswith("unreachable: EHOSTUNREACH (No route to host) at once")
    assert "watching ICMP to tell which needs CAP_NET_RAW" in document["verdict"]


def test_a_name_in_the_hosts_file_is_not_asked_of_any_nameserver(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n127.0.0.1   svc.diaglab.test  svc\n")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        options = DiagnoseOptions(hosts=hosts, resolv_conf=tmp_path / "missing", timeout=1.0)
        result = diagnose(f"SVC:{port}", options)
    assert result.token == "reachable", result.verdict
    assert step(result, "resolve").detail == f"{hosts}: 127.0.0.1"
    empty = tmp_path / "resolv.conf"
    empty.write_text("search example.test\n")
    options = DiagnoseOptions(hosts=hosts, resolv_conf=empty)
    result = diagnose("other.diaglab.test:80", options)
    assert result.verdict == (
        f"dns-failure: cannot resolve other.diaglab.test: no nameserver in {empty}"
    )


# ----------------------------------------------------------------------------- the CLI


def cli(*args: str, drop_caps: bool = False) -> subprocess.CompletedProcess[str]:
    """``netdash diagnose ARGS``; ``drop_caps`` runs it without CAP_NET_RAW and CAP_NET_ADMIN
    (still root, so it can enter the namespace: what a user with only CAP_SYS_ADMIN sees)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    prefix = ["setpriv", "--bounding-set=-net_raw,-net_admin"] if drop_caps else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "netdash.dump_diagnose", "diagnose", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


@needs_root
def test_cli_json_shape_and_exit_codes(lab: DiagLab) -> None:
    done = cli(f"{ADDR_B}:{OPEN}", "--json", "--netns", lab.client)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert set(document) == {"target", "address", "netns", "steps", "verdict"}
    assert document["target"] == f"{ADDR_B}:{OPEN}" and document["netns"] == lab.client
    assert document["verdict"].startswith("reachable: ")
    for entry in document["steps"]:
        assert set(entry) == {"name", "status", "detail", "ms"}
        assert entry["status"] in ("ok", "warn", "fail", "skip") and entry["ms"] >= 0
    server = f"{lab.dns[0]}:{lab.dns[1]}"
    refused = cli("nope.diag.test:80", "--json", "--nameserver", server, "--netns", lab.client)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["verdict"].startswith("dns-failure: ")
    assert cli("no-port", "--json").returncode == 2
    assert cli("::1:80").returncode == 2
    assert cli("10.0.0.1:80", "--netns", "diaglab-no-such-namespace").returncode == 2


@needs_root
def test_cli_prints_each_step_then_the_verdict(lab: DiagLab) -> None:
    done = cli(f"{ADDR_A}:{LOOPBACK_ONLY}", "--netns", lab.client, "--timeout", "1")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"diagnose {ADDR_A}:{LOOPBACK_ONLY} (network namespace {lab.client})"
    assert lines[-1].startswith("refused: the service listens only on 127.0.0.1:")
    assert any(line.split()[:2] == ["fail", "listener"] for line in lines[1:-1])


# -------------------------------------------------------------------- without a network


def test_targets_are_parsed_like_the_user_types_them() -> None:
    assert str(parse_target("www.example.test:443")) == "www.example.test:443"
    assert parse_target("10.0.0.1:22").address == "10.0.0.1"
    six = parse_target("[2001:db8::1]:8443")
    assert (six.host, six.port, str(six)) == ("2001:db8::1", 8443, "[2001:db8::1]:8443")
    assert parse_target("www.example.test:80").address is None
    for bad, message in (
        ("no-port", "not HOST:PORT"),
        ("host:0", "not a port"),
        ("host:70000", "not a port"),
        ("2001:db8::1:80", "in brackets"),
        ("[10.0.0.1]:80", "not an IPv6 address"),
        ("bad host:80", "neither an IP address nor a host name"),
        ("[x]:80", "does not appear to be an IPv4 or IPv6 address"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_target(bad)


def nft_rule(chain: str, text: str, verdict: str | None, handle: int, ports=()) -> FirewallRule:
    return FirewallRule(
        "nft", "inet", "t", chain, text, handle=handle, verdict=verdict, ports=ports
    )


def base(name: str, policy: str = "accept") -> FirewallChain:
    return FirewallChain("nft", "inet", "t", name, hook="output", priority=0, policy=policy)


SYN = Packet(ipaddress.ip_address("10.0.0.2"), 8080, oif="eth0")


def hits(rules: list[FirewallRule], chains: list[FirewallChain], packet: Packet = SYN):
    path = firewall_path(FirewallSample(tuple(rules), tuple(chains)), packet, ("output",))
    return [(hit.describe(), hit.certain) for hit in path.hits]


def test_the_rule_walk_follows_jumps_policies_and_what_is_uncertain() -> None:
    rules = [
        nft_rule("out", "ct state established,related accept", "accept", 1),
        nft_rule("out", "ip daddr 10.1.0.0/16 drop", "drop", 2),
        nft_rule("out", 'oifname "eth*" jump filt', "jump filt", 3),
        nft_rule("filt", "tcp dport { 22, 80 } drop", "drop", 4, ((22, 22), (80, 80))),
        nft_rule("filt", "meta mark 0x1 accept", "accept", 5),
        nft_rule("filt", "tcp dport 8000-8100 reject", "reject", 6, ((8000, 8100),)),
    ]
    chains = [base("out"), FirewallChain("nft", "inet", "t", "filt")]
    assert hits(rules, chains) == [
        ("nft inet t filt handle 6: tcp dport 8000-8100 reject", False)  # after a maybe-accept
    ]
    rules[4] = nft_rule("filt", "udp dport 53 accept", "accept", 5)
    assert hits(rules, chains) == [("nft inet t filt handle 6: tcp dport 8000-8100 reject", True)]
    chains[0] = base("out", policy="drop")
    assert hits(rules, chains, Packet(ipaddress.ip_address("10.0.0.2"), 443, oif="lo")) == [
        ("nft inet t out: policy drop", True)
    ]
    v6 = Packet(ipaddress.ip_address("2001:db8::2"), 8080, oif="eth0")
    rules[5] = nft_rule("filt", "ip daddr 10.0.0.2 reject", "reject", 6)
    assert hits(rules, chains, v6) == [("nft inet t out: policy drop", True)]


def test_rule_text_is_read_as_conditions() -> None:
    text = (
        "ip daddr != { 10.0.0.1, 10.0.0.0/8 } ct state established,related "
        "counter packets 3 bytes 180 accept"
    )
    fields = [(c.field, c.values, c.negated) for c in nft_conditions(text)]
    assert fields == [
        ("daddr", ("10.0.0.1", "10.0.0.0/8"), True),
        ("ctstate", ("established", "related"), False),
    ]
    ipt = (
        "-A OUTPUT -d 10.0.0.2/32 ! -o lo -p tcp -m tcp --dport 7000 -m owner --uid-owner 0 "
        "-j REJECT --reject-with icmp-admin-prohibited"
    )
    assert [(c.field, c.values, c.negated) for c in iptables_conditions(ipt)] == [
        ("daddr", ("10.0.0.2/32",), False),
        ("oif", ("lo",), True),
        ("proto", ("tcp",), False),
        ("dport", ("7000",), False),
        ("other", (), False),
    ]
    rule = FirewallRule("iptables-nft", "ip", "filter", "OUTPUT", ipt, position=1, verdict="reject")
    assert reject_kind(rule) == "icmp admin-prohibited"
    assert reject_kind(nft_rule("c", "reject", "reject", 1)) == "icmp port-unreachable"
    tail = 'tcp dport 80 reject with icmpv6 type admin-prohibited comment "x y"'
    assert reject_kind(nft_rule("c", tail, "reject", 1)) == "icmp admin-prohibited"
