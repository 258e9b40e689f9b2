"""The Firewall tab's rows and filter language, on rule records as the sources build them."""

from __future__ import annotations

import pytest

from netdash.model import FirewallChain, FirewallRule, FirewallSample
from netdash.query import QueryError
from netdash.ui.panes.firewall_rows import (
    INDEX,
    compile_firewall_filter,
    hot_rows,
    touches,
    tree_rows,
)

INPUT = FirewallChain("nft", "inet", "netdash", "input", "input", 0, "filter", "drop")
FORWARD = FirewallChain("nft", "inet", "netdash", "forward", "forward", 0, "filter", "accept")
SSH = FirewallRule("nft", "inet", "netdash", "input", "tcp dport 22 accept", handle=4,
                   verdict="accept", packets=10, bytes=600, ports=((22, 22),))  # fmt: skip
WEB = FirewallRule("nft", "inet", "netdash", "input", "tcp dport @web accept", handle=5,
                   comment="[red]web[/]", verdict="accept", packets=0, bytes=0,
                   ports=((80, 80), (443, 443), (8000, 8100)))  # fmt: skip
BLOCK = FirewallRule("iptables-legacy", "ip", "filter", "INPUT", "-p udp --dport 53 -j DROP",
                     position=1, verdict="DROP", packets=7, bytes=420,
                     ports=((53, 53),))  # fmt: skip
SAMPLE = FirewallSample(rules=(SSH, WEB, BLOCK), chains=(INPUT, FORWARD))


def keys(rows, check) -> list:
    return [row.key for row in rows if check is None or check(row)]


def test_tree_lists_chains_then_their_rules_and_marks_drops_and_moves():
    rates = {SSH.key: (5.0, 300.0), BLOCK.key: (2.0, 120.0)}
    rows = tree_rows(SAMPLE, rates, frozenset({SSH.key}))
    assert [row.data for row in rows] == [INPUT, SSH, WEB, FORWARD, BLOCK]
    assert rows[0].styles[0] == "bold red" and "policy drop" in rows[0].cells[INDEX["rule"]]
    assert rows[1].styles[INDEX["rule"]] == "bold yellow"  # its counters moved
    assert rows[2].styles[INDEX["rule"]] is None
    assert rows[4].styles[INDEX["verdict"]] == "bold red"  # DROP
    assert rows[2].cells[INDEX["rule"]].endswith('# "[red]web[/]"')  # literally
    assert rows[1].cells[INDEX["pps"]] == "5" and rows[2].cells[INDEX["pps"]] == ""


def test_port_finds_the_rules_touching_it_through_ranges_and_sets():
    rows = hot_rows(SAMPLE.rules, {})
    assert keys(rows, compile_firewall_filter("port:443").check) == [WEB.key]
    assert keys(rows, compile_firewall_filter("port:8050").check) == [WEB.key]  # in a range
    assert keys(rows, compile_firewall_filter("port:22,53").check) == [SSH.key, BLOCK.key]
    assert keys(rows, compile_firewall_filter("port:1-100").check) == [SSH.key, WEB.key, BLOCK.key]
    assert keys(rows, compile_firewall_filter("port:9999").check) == []
    assert touches(WEB, [(8100, 9000)]) and not touches(WEB, [(8101, 9000)])


def test_fields_words_and_negation():
    rows = hot_rows(SAMPLE.rules, {})
    assert keys(rows, compile_firewall_filter("verdict:drop").check) == [BLOCK.key]
    assert keys(rows, compile_firewall_filter("backend:nft !port:22").check) == [WEB.key]
    assert keys(rows, compile_firewall_filter("dport").check) == [SSH.key, WEB.key, BLOCK.key]
    assert keys(rows, compile_firewall_filter("chain:input").check) == [SSH.key, WEB.key, BLOCK.key]
    assert compile_firewall_filter("").check is None
    with pytest.raises(QueryError, match="unknown field"):
        compile_firewall_filter("color:red")
    with pytest.raises(QueryError):
        compile_firewall_filter("port:99999")
