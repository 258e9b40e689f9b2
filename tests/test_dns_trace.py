"""``+trace`` against a DNS hierarchy the tests run on 127.0.0.x (tests/dnslab.py): a root
delegating ``test.`` (to a silent server first, then a working one), which delegates
``example.test.`` (to a lame server that refers back up, then the real one), a glueless
delegation, CNAMEs within and across zones, NXDOMAIN and NODATA at the leaf, and delegations
that cannot work (glue missing, glueless servers that need each other, a CNAME loop). Through
the function and through `netdash dns --trace --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdash.sources.dnsconfig import (
    IANA_ROOT_HINTS,
    RootHints,
    TraceResult,
    default_root_hints,
    load_root_hints,
    parse_root_hints,
)
from netdash.sources.dnstrace import trace
from tests.dnslab import LONG_TXT, Hierarchy, hierarchy

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 0.3  # the silent server costs this once per trace that goes through test.


@pytest.fixture(scope="module")
def lab() -> Iterator[Hierarchy]:
    with hierarchy() as servers:
        yield servers


@pytest.fixture
def hints(lab: Hierarchy) -> RootHints:
    return load_root_hints(lab.root)


def steps(result: TraceResult) -> list[tuple[int, str, str, str]]:
    """(depth, zone, server, kind) of each hop."""
    return [(hop.depth, hop.zone, hop.server, hop.kind) for hop in result.hops]


def values(result: TraceResult) -> list[tuple[str, str, int, str]]:
    return [(a.name, a.type, a.ttl, a.value) for a in result.answers]


def test_a_trace_follows_referrals_and_skips_silent_and_lame_servers(
    lab: Hierarchy, hints: RootHints
) -> None:
    started = time.monotonic()
    result = trace("www.example.test", "A", hints, timeout=TIMEOUT)
    assert time.monotonic() - started < 3 * TIMEOUT  # one timeout, the rest at loopback speed
    root = lab.address("root")
    assert steps(result) == [
        (0, ".", root, "referral"),
        (0, "test.", "lame.test.", "no reply"),
        (0, "test.", "ns1.test.", "referral"),
        (0, "example.test.", "up.test.", "lame"),
        (0, "example.test.", "ns.example.test.", "answer"),
    ]
    assert (result.rcode, result.error) == ("NOERROR", None)
    assert values(result) == [("www.example.test.", "A", 300, "192.0.2.80")]
    referral, silent, _test, lame, answer = result.hops
    assert (referral.address, referral.port, referral.rcode) == (root, lab.port, "NOERROR")
    assert [(r.name, r.type, r.value) for r in referral.records] == [
        ("test.", "NS", "lame.test."),
        ("test.", "NS", "ns1.test."),
        ("lame.test.", "A", lab.address("lame")),
        ("ns1.test.", "A", lab.address("test")),
    ]
    assert silent.address == lab.address("lame") and silent.rcode is None and silent.ms is None
    assert silent.error == f"no reply in {TIMEOUT:g} s"
    assert lab.servers["lame"].asked[("www.example.test.", "A")] == 1
    assert lame.address == root and lame.error is not None and "refers to test." in lame.error
    assert answer.address == lab.address("example") and answer.ms is not None and answer.ms > 0
    assert all(hop.qname == "www.example.test." and hop.qtype == "A" for hop in result.hops)
    assert sum(server.recursion_desired for server in lab.servers.values()) == 0  # RD off


def test_cnames_in_the_answer_and_into_another_zone(lab: Hierarchy, hints: RootHints) -> None:
    alias = trace("alias.example.test", "A", hints, timeout=TIMEOUT)
    assert (alias.rcode, alias.error) == ("NOERROR", None)
    assert values(alias) == [
        ("alias.example.test.", "CNAME", 120, "www.example.test."),
        ("www.example.test.", "A", 300, "192.0.2.80"),
    ]
    assert alias.hops[-1].kind == "answer"
    outside = trace("outside.example.test", "A", hints, timeout=TIMEOUT)
    assert (outside.rcode, outside.error) == ("NOERROR", None)
    assert values(outside) == [
        ("outside.example.test.", "CNAME", 120, "www.glueless.test."),
        ("www.glueless.test.", "A", 30, "192.0.2.90"),
    ]
    kinds = [(hop.qname, hop.kind) for hop in outside.hops if hop.depth == 0]
    assert ("outside.example.test.", "cname") in kinds
    assert kinds[-1] == ("www.glueless.test.", "answer")
    # the alias's target starts again from the deepest zone known (test.), not the root
    after_cname = [hop.zone for hop in outside.hops if hop.qname == "www.glueless.test."]
    assert "." not in after_cname and after_cname[0] == "test."
    asked_cname = trace("alias.example.test", "CNAME", hints, timeout=TIMEOUT)
    assert values(asked_cname) == [("alias.example.test.", "CNAME", 120, "www.example.test.")]


def test_a_glueless_delegation_is_resolved_by_a_nested_trace(
    lab: Hierarchy, hints: RootHints
) -> None:
    result = trace("www.glueless.test", "A", hints, timeout=TIMEOUT)
    assert (result.rcode, result.error) == ("NOERROR", None)
    assert values(result) == [("www.glueless.test.", "A", 30, "192.0.2.90")]
    nested = [(hop.zone, hop.qname, hop.kind) for hop in result.hops if hop.depth == 1]
    assert nested == [
        (".", "ns.glueless.other.", "referral"),
        ("other.", "ns.glueless.other.", "answer"),
    ]
    last = result.hops[-1]
    assert (last.depth, last.zone, last.server, last.address) == (
        0,
        "glueless.test.",
        "ns.glueless.other.",
        lab.address("glueless"),
    )


def test_nxdomain_and_nodata_at_the_leaf(lab: Hierarchy, hints: RootHints) -> None:
    missing = trace("nope.example.test", "A", hints, timeout=TIMEOUT)
    assert (missing.rcode, missing.error, missing.answers) == ("NXDOMAIN", None, ())
    leaf = missing.hops[-1]
    assert (leaf.zone, leaf.rcode, leaf.kind) == ("example.test.", "NXDOMAIN", "nxdomain")
    assert [r.type for r in leaf.records] == ["SOA"]
    nodata = trace("www.example.test", "MX", hints, timeout=TIMEOUT)
    assert nodata.hops[-1].records[0].type == "SOA"
    assert (nodata.rcode, nodata.error, nodata.answers) == ("NOERROR", None, ())
    assert nodata.hops[-1].kind == "nodata"


def test_a_truncated_reply_is_asked_again_over_tcp(lab: Hierarchy, hints: RootHints) -> None:
    before = lab.servers["example"].tcp_asked
    result = trace("big.example.test", "TXT", hints, timeout=TIMEOUT)
    assert result.rcode == "NOERROR" and lab.servers["example"].tcp_asked == before + 1
    assert [a.value for a in result.answers] == [LONG_TXT]


def test_broken_delegations_end_with_a_clear_error(lab: Hierarchy, hints: RootHints) -> None:
    no_glue = trace("x.loopy.test", "A", hints, timeout=TIMEOUT)
    assert no_glue.rcode is None and no_glue.error == (
        "no address for any server of loopy.test.: "
        "ns.loopy.test. is inside loopy.test. and the referral gave no glue"
    )
    cycle = trace("x.loopa.test", "A", hints, timeout=TIMEOUT)
    assert cycle.error == (
        "no address for any server of loopa.test.: glueless servers that need each other: "
        "ns.loopb.test. → ns.loopa.test. → ns.loopb.test."
    )
    loop = trace("loop1.example.test", "A", hints, timeout=TIMEOUT)
    assert loop.rcode is None and loop.error == "CNAME loop: loop1.example.test. again"
    assert [a.value for a in loop.answers] == ["loop2.example.test.", "loop1.example.test."]
    short = trace("www.example.test", "A", hints, timeout=TIMEOUT, max_queries=2)
    assert short.error == "gave up after 2 queries" and len(short.hops) == 2


def test_silent_roots_and_hop_callbacks(lab: Hierarchy) -> None:
    silent_first = load_root_hints(f"{lab.address('lame')}:{lab.port},{lab.root}")
    seen = []
    result = trace("www.example.test", "A", silent_first, timeout=TIMEOUT, on_hop=seen.append)
    assert result.rcode == "NOERROR" and tuple(seen) == result.hops
    assert [hop.kind for hop in result.hops[:2]] == ["no reply", "referral"]
    silent_only = load_root_hints(f"{lab.address('lame')}:{lab.port}")
    nobody = trace("www.example.test", "A", silent_only, timeout=TIMEOUT)
    assert nobody.error == "no server of . gave a usable reply (1 asked)"
    asked: list[str] = []
    stopped = trace(
        "www.example.test",
        "A",
        silent_first,
        timeout=TIMEOUT,
        stop=lambda: bool(asked),
        on_hop=lambda hop: asked.append(hop.address),
    )
    assert stopped.error == "stopped after 1 queries" and len(stopped.hops) == 1


def test_root_hints_files_addresses_and_the_built_in_list(lab: Hierarchy, tmp_path) -> None:
    builtin = default_root_hints()
    assert len(builtin.servers) == 13 and builtin.port == 53
    assert builtin.servers[0].name == "a.root-servers.net."
    assert builtin.servers[0].addresses == ("198.41.0.4", "2001:503:ba3e::2:30")
    assert parse_root_hints(IANA_ROOT_HINTS) == builtin.servers
    named_root = tmp_path / "named.root"
    named_root.write_text(
        ";  comment\n.  3600000  IN  NS  LOCAL-ROOT.\n"
        f"LOCAL-ROOT.  3600000  A  {lab.address('root')}\n"
        "local-root. 3600000 AAAA not-an-address\n"
    )
    hints = load_root_hints(f"{named_root},127.0.0.1:{lab.port}")
    assert hints.port == lab.port
    assert [(s.name, s.addresses) for s in hints.servers] == [
        ("local-root.", (lab.address("root"),)),
        ("127.0.0.1", ("127.0.0.1",)),
    ]
    with pytest.raises(ValueError, match="one port"):
        load_root_hints("127.0.0.1:5353,127.0.0.2:5354")
    with pytest.raises(ValueError, match="neither an address"):
        load_root_hints(str(tmp_path / "missing"))
    (tmp_path / "empty").write_text("; nothing\n")
    with pytest.raises(ValueError, match="no NS records"):
        load_root_hints(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="record type"):
        trace("www.example.test", "HINFO", hints)


def netdash_trace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netdash", "dns", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def test_netdash_dns_trace_json(lab: Hierarchy, tmp_path) -> None:
    named_root = tmp_path / "root.hints"
    named_root.write_text(f".  3600000  NS  a.root.\na.root.  3600000  A  {lab.address('root')}\n")
    done = netdash_trace(
        "alias.example.test",
        "--trace",
        "--root-hints",
        f"{named_root},{lab.root}",
        "--timeout",
        str(TIMEOUT),
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["name"], document["type"], document["rcode"], document["error"]) == (
        "alias.example.test",
        "A",
        "NOERROR",
        None,
    )
    assert document["answers"] == [
        {"name": "alias.example.test.", "type": "CNAME", "ttl": 120, "value": "www.example.test."},
        {"name": "www.example.test.", "type": "A", "ttl": 300, "value": "192.0.2.80"},
    ]
    first, silent = document["trace"][:2]
    assert (first["zone"], first["server"], first["address"], first["port"]) == (
        ".",
        "a.root.",
        lab.address("root"),
        lab.port,
    )
    assert first["rcode"] == "NOERROR" and first["kind"] == "referral" and first["ms"] >= 0
    assert {"name": "test.", "type": "NS", "ttl": 172800, "value": "ns1.test."} in first["records"]
    assert silent["rcode"] is None and silent["ms"] is None and silent["kind"] == "no reply"
    assert document["trace"][-1]["records"] == document["answers"]


def test_netdash_dns_trace_failures_and_usage(lab: Hierarchy) -> None:
    failed = netdash_trace("x.loopy.test", "--trace", "--root-hints", lab.root, "--timeout", "0.3")
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    assert document["rcode"] is None and "gave no glue" in document["error"]
    nx = netdash_trace("nope.example.test", "--trace", "--root-hints", lab.root, "--timeout", "0.3")
    assert nx.returncode == 0 and json.loads(nx.stdout)["rcode"] == "NXDOMAIN"
    assert netdash_trace("x.test", "--trace", "--server", "127.0.0.1").returncode == 2
    assert netdash_trace("x.test", "--root-hints", lab.root).returncode == 2
    bad = netdash_trace("x.test", "--trace", "--root-hints", "/nonexistent/hints")
    assert bad.returncode == 2 and "neither an address" in bad.stderr
