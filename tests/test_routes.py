"""The routes source against the real kernel, with `ip -d -j` as the oracle.

A module-scoped lab: namespaces A and B joined by a veth (LAB.md recipe 1), both families, and
in A a default route via B, a static route with a metric, a host route, a multipath route, a
route in table 100 reached through policy rules, blackhole and unreachable routes, permanent
neighbours and learned ones. ``ip -d`` prints table, protocol, scope and type even where plain
``ip`` leaves out main/boot/global/unicast, so fields compare one to one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netdash.cli import route_to_json
from netdash.model import Route
from netdash.netns import entered, resolve_netns
from netdash.sources.routes import (
    RouteNames,
    RouteReader,
    default_gateways,
    nud_states,
    parse_name_file,
    prefix_text,
)
from tests.conftest import skip_unless_root, temporary_netns
from tests.test_dump import netdash as cli

PEER4, PEER6 = "10.201.0.2", "fd00:201::2"
SELF4, SELF6 = "10.201.0.1", "fd00:201::1"
PERM4, PERM6 = ("10.201.0.9", "02:00:00:00:00:09"), ("fd00:201::9", "02:00:00:00:00:0a")


@dataclass(frozen=True)
class RouteLab:
    a: str  # the namespace we read
    b: str  # the peer
    peer_mac: str
    multipath: bool  # the kernel took the two-nexthop route


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def ip_json(ns: str, *args: str) -> Any:
    return json.loads(ip("-n", ns, "-d", "-j", *args).stdout or "[]")


def _no_dad(ns: str) -> None:
    """Addresses usable at once, and no link-local route arriving mid-test after DAD."""
    for key in ("net.ipv6.conf.default.accept_dad", "net.ipv6.conf.all.accept_dad"):
        ip("netns", "exec", ns, "sysctl", "-qw", f"{key}=0")


def _build(a: str, b: str) -> bool:
    _no_dad(a)
    _no_dad(b)
    ip("-n", a, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", b)
    for ns, dev, v4, v6 in ((a, "vA", SELF4, SELF6), (b, "vB", PEER4, PEER6)):
        ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
        ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
        ip("-n", ns, "link", "set", dev, "up")
    for spec in (
        "route add default via 10.201.0.2",
        "-6 route add default via fd00:201::2",
        "route add 192.0.2.0/24 via 10.201.0.2 proto static metric 50",
        "route add 172.16.6.7 via 10.201.0.2",
        "-6 route add fd00:99::/64 via fd00:201::2 proto dhcp",
        "route add 198.51.100.0/24 via 10.201.0.2 table 100",
        "-6 route add fd00:300::/48 via fd00:201::2 table 100",
        "rule add from 10.201.0.1 to 198.51.100.0/24 lookup 100 pref 1000",
        "rule add fwmark 0x10/0xff iif lo lookup 100 pref 1001",
        "-6 rule add to fd00:300::/48 lookup 100 pref 1002",
        "route add blackhole 203.0.113.0/24",
        "route add unreachable 203.0.113.128/25 metric 5",
        "route add prohibit 203.0.113.64/26",
        "route add throw 203.0.113.32/27",
        "-6 route add unreachable fd00:dead::/32",
        f"neigh add {PERM4[0]} lladdr {PERM4[1]} dev vA nud permanent",
        f"neigh add {PERM6[0]} lladdr {PERM6[1]} dev vA nud permanent",
    ):
        ip("-n", a, *spec.split())
    multipath = ip(
        *f"-n {a} route add 172.16.5.0/24 nexthop via 10.201.0.2 weight 1 "
        "nexthop via 10.201.0.3 weight 2".split(),
        check=False,
    )
    return multipath.returncode == 0


def _learn_peer(a: str) -> None:
    """One UDP datagram to the peer per family makes the kernel resolve its lladdr."""
    target = resolve_netns(a)
    with entered(target):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
        socks.append(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
    try:
        socks[0].sendto(b"x", (PEER4, 9))
        socks[1].sendto(b"x", (PEER6, 9))
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        known = {n["dst"] for n in ip_json(a, "neigh") if n.get("lladdr")}
        if {PEER4, PEER6} <= known:
            return
        time.sleep(0.05)
    raise AssertionError(f"the peer was not learned: {known}")


@pytest.fixture(scope="module")
def lab() -> Iterator[RouteLab]:
    skip_unless_root()
    with temporary_netns("ra") as a, temporary_netns("rb") as b:
        multipath = _build(a, b)
        _learn_peer(a)
        mac = ip_json(b, "link", "show", "vB")[0]["address"]
        yield RouteLab(a, b, mac, multipath)


@pytest.fixture(scope="module")
def reader(lab: RouteLab) -> Iterator[RouteReader]:
    with RouteReader(resolve_netns(lab.a)) as made:
        yield made


def expected_route(family: str, entry: dict[str, Any]) -> tuple[Any, ...]:
    """ip's route as a Route's fields; a multipath route by its first nexthop (our rule)."""
    first = entry.get("nexthops", [{}])[0]
    return (
        family,
        entry["dst"],
        entry.get("gateway", first.get("gateway")),
        entry.get("dev", first.get("dev")),
        entry.get("prefsrc"),
        entry["protocol"],
        entry.get("metric"),
        entry["table"],
        entry["type"],
        entry["scope"],
    )


def ip_routes(ns: str) -> list[tuple[Any, ...]]:
    return [
        expected_route(family, entry)
        for option, family in (("-4", "inet"), ("-6", "inet6"))
        for entry in ip_json(ns, option, "route", "show", "table", "all")
    ]


def as_tuple(route: Route) -> tuple[Any, ...]:
    return (
        route.family,
        route.dst,
        route.gateway,
        route.dev,
        route.prefsrc,
        route.protocol,
        route.metric,
        route.table,
        route.type,
        route.scope,
    )


def test_routes_match_ip_field_by_field_in_order(lab: RouteLab, reader: RouteReader) -> None:
    ours = [as_tuple(r) for r in reader.routes()]
    assert ours == ip_routes(lab.a)


def test_routes_cover_every_kind_the_lab_made(lab: RouteLab, reader: RouteReader) -> None:
    """The comparison above is only as good as the lab: check the lab is really there."""
    by_dst = {(r.family, r.dst, r.table): r for r in reader.routes()}
    assert by_dst["inet", "default", "main"].gateway == PEER4
    assert by_dst["inet6", "default", "main"].gateway == PEER6
    static = by_dst["inet", "192.0.2.0/24", "main"]
    assert (static.protocol, static.metric, static.dev) == ("static", 50, "vA")
    assert by_dst["inet", "172.16.6.7", "main"].gateway == PEER4  # a host route: bare address
    assert by_dst["inet6", "fd00:99::/64", "main"].protocol == "dhcp"
    assert by_dst["inet", "198.51.100.0/24", "100"].gateway == PEER4
    assert by_dst["inet6", "fd00:300::/48", "100"].gateway == PEER6
    assert by_dst["inet", "203.0.113.0/24", "main"].type == "blackhole"
    assert by_dst["inet", "203.0.113.128/25", "main"].metric == 5
    assert by_dst["inet", "203.0.113.64/26", "main"].type == "prohibit"
    assert by_dst["inet", "203.0.113.32/27", "main"].type == "throw"
    assert by_dst["inet6", "fd00:dead::/32", "main"].type == "unreachable"
    local = by_dst["inet", SELF4, "local"]
    assert (local.type, local.scope, local.protocol, local.prefsrc) == (
        "local",
        "host",
        "kernel",
        SELF4,
    )
    connected = by_dst["inet", "10.201.0.0/24", "main"]
    assert (connected.scope, connected.prefsrc, connected.gateway) == ("link", SELF4, None)
    if lab.multipath:
        multi = by_dst["inet", "172.16.5.0/24", "main"]
        assert (multi.gateway, multi.dev) == (PEER4, "vA")


def test_a_reader_made_on_one_thread_reads_its_namespace_from_another(
    lab: RouteLab, reader: RouteReader
) -> None:
    """pyroute2 0.9's IPRoute would open a fresh socket, in the host, on the second thread."""
    seen: list[tuple[Route, ...]] = []
    worker = threading.Thread(target=lambda: seen.append(reader.routes()))
    worker.start()
    worker.join(10)
    assert [as_tuple(r) for r in seen[0]] == ip_routes(lab.a)


def test_rules_match_ip_rule_text_and_json(lab: RouteLab, reader: RouteReader) -> None:
    rules = reader.rules()
    for option, family in (("-4", "inet"), ("-6", "inet6")):
        ours = [r for r in rules if r.family == family]
        lines = ip("-n", lab.a, option, "rule", "show").stdout.splitlines()
        assert [f"{r.priority}:\t{r.selector} lookup {r.table}" for r in ours] == lines
        listed = ip_json(lab.a, option, "rule")
        assert [(r.priority, r.table) for r in ours] == [
            (e["priority"], e["table"]) for e in listed
        ]
    selectors = {r.priority: r.selector for r in rules}
    assert selectors[1000] == "from 10.201.0.1 to 198.51.100.0/24"
    assert selectors[1001] == "from all fwmark 0x10/0xff iif lo"
    assert selectors[1002] == "from all to fd00:300::/48"


def test_neighbours_match_ip_neigh(lab: RouteLab, reader: RouteReader) -> None:
    """States change between reads: compare address, lladdr and dev, states when permanent."""
    ours = reader.neighbours()
    listed = ip_json(lab.a, "neigh")
    assert sorted((n.address, n.lladdr, n.dev) for n in ours) == sorted(
        (e["dst"], e.get("lladdr"), e["dev"]) for e in listed
    )
    permanent = {e["dst"]: tuple(e["state"]) for e in listed if "PERMANENT" in e["state"]}
    assert {n.address: n.states for n in ours if n.address in permanent} == permanent
    by_addr = {n.address: n for n in ours}
    assert by_addr[PERM4[0]].lladdr == PERM4[1] and by_addr[PERM4[0]].states == ("PERMANENT",)
    assert by_addr[PERM6[0]].family == "inet6"
    assert by_addr[PEER4].lladdr == by_addr[PEER6].lladdr == lab.peer_mac


LOOKUPS = [
    ("10.201.0.2", None),  # on-link
    ("10.201.0.77", None),
    ("192.0.2.9", None),  # static route
    ("8.8.8.8", None),  # the default route (nothing is sent: a lookup only)
    ("172.16.5.1", None),  # multipath when the kernel took it
    ("10.201.0.1", None),  # our own address: local table, dev lo
    ("198.51.100.5", None),  # table 100's rule needs the source: main's default
    ("198.51.100.5", "10.201.0.1"),  # ... with it, table 100
    ("fd00:201::2", None),
    ("2001:db8::1", None),
    ("fd00:300::1", None),  # table 100 through the IPv6 rule
    ("::1", None),
    ("203.0.113.200", None),  # unreachable
    ("203.0.113.5", None),  # blackhole
    ("203.0.113.65", None),  # prohibit: the kernel answers EACCES, an answer not a failure
    ("203.0.113.33", None),  # throw
    ("fd00:dead::1", None),
]


@pytest.mark.parametrize(("addr", "source"), LOOKUPS)
def test_route_get_matches_ip_route_get(
    lab: RouteLab, reader: RouteReader, addr: str, source: str | None
) -> None:
    args = ["-n", lab.a, "-d", "-j", "route", "get", addr]
    if source:
        args += ["from", source]
    answer = ip(*args, check=False)
    found = reader.route_get(addr, source)
    assert found.dst == addr
    if answer.returncode:
        prefix = "RTNETLINK answers: "
        assert answer.stderr.startswith(prefix)
        assert found.error == answer.stderr.strip()[len(prefix) :]
        assert (found.dev, found.gateway, found.prefsrc) == (None, None, None)
        return
    entry = json.loads(answer.stdout)[0]
    assert found.error is None
    assert (found.dev, found.gateway, found.prefsrc, found.table) == (
        entry.get("dev"),
        entry.get("gateway"),
        entry.get("prefsrc"),
        entry["table"],
    )


def test_route_get_answers_the_lab_as_designed(reader: RouteReader) -> None:
    assert reader.route_get("198.51.100.5", "10.201.0.1").table == "100"
    assert reader.route_get("fd00:300::1").table == "100"
    assert reader.route_get("8.8.8.8").gateway == PEER4
    assert reader.route_get(" 10.201.0.1 ").dev == "lo"
    assert reader.route_get("203.0.113.200").error == "No route to host"
    assert reader.route_get("203.0.113.65").error == "Permission denied"


@pytest.mark.parametrize(
    ("addr", "source", "error"),
    [
        ("nonsense", None, "'nonsense' is not an IPv4 or IPv6 address"),
        ("10.0.0.0/8", None, "'10.0.0.0/8' is not an IPv4 or IPv6 address"),
        ("", None, "'' is not an IPv4 or IPv6 address"),
        ("10.0.0.1", "fd00::1", "fd00::1 and 10.0.0.1 are not of the same address family"),
        ("fe80::1%nosuchdev", None, "no interface 'nosuchdev' for the address scope"),
    ],
)
def test_route_get_reports_bad_input_as_text(
    reader: RouteReader, addr: str, source: str | None, error: str
) -> None:
    found = reader.route_get(addr, source)
    assert (found.error, found.dev, found.gateway) == (error, None, None)


def test_route_get_of_a_scoped_link_local_uses_that_interface(
    lab: RouteLab, reader: RouteReader
) -> None:
    entry = ip_json(lab.a, "route", "get", "fe80::1", "oif", "vA")[0]
    found = reader.route_get("fe80::1%vA")
    assert (found.dev, found.prefsrc, found.error) == ("vA", entry["prefsrc"], None)


def test_default_gateways(reader: RouteReader) -> None:
    gateways = reader.default_gateways()
    assert [(r.family, r.gateway) for r in gateways] == [("inet", PEER4), ("inet6", PEER6)]


def test_custom_table_names_come_from_rt_tables(lab: RouteLab, tmp_path: Path) -> None:
    (tmp_path / "rt_tables").write_text("# ours\n100\tvpn\n0x65 other\n")
    (tmp_path / "rt_tables.d").mkdir()
    (tmp_path / "rt_tables.d" / "x.conf").write_text("254 primary\n")
    with RouteReader(resolve_netns(lab.a), RouteNames([tmp_path])) as named:
        tables = {r.table for r in named.routes()}
        rules = {r.priority: r.table for r in named.rules()}
    assert {"vpn", "primary", "local"} <= tables and "100" not in tables and "main" not in tables
    assert rules[1000] == "vpn"


DUMP_KEYS = ["family", "dst", "gateway", "dev", "prefsrc", "protocol", "metric", "table"]
DUMP_KEYS += ["type", "scope"]


def test_dump_routes_json_matches_ip(lab: RouteLab) -> None:
    done = cli("dump", "routes", "--json", "--netns", lab.a)
    assert (done.returncode, done.stderr) == (0, "")
    dumped = json.loads(done.stdout)
    assert all(list(entry) == DUMP_KEYS for entry in dumped)
    assert [tuple(entry.values()) for entry in dumped] == ip_routes(lab.a)


def test_dump_routes_by_pid_and_before_the_subcommand(lab: RouteLab, reader: RouteReader) -> None:
    expected = [route_to_json(r) for r in reader.routes()]
    holder = subprocess.Popen(["ip", "netns", "exec", lab.a, "sleep", "30"])
    try:
        time.sleep(0.1)
        by_pid = cli("dump", "routes", "--json", "--netns-pid", str(holder.pid))
    finally:
        holder.kill()
        holder.wait()
    assert by_pid.returncode == 0, by_pid.stderr
    assert json.loads(by_pid.stdout) == expected
    before = cli("--netns", lab.a, "dump", "routes", "--json")
    assert json.loads(before.stdout) == expected


def test_dump_routes_errors_and_usage() -> None:
    missing = cli("dump", "routes", "--json", "--netns", "nd-no-such-namespace")
    assert missing.returncode == 1
    assert missing.stderr == (
        "netdash: no network namespace 'nd-no-such-namespace' (see `ip netns list`)\n"
    )
    assert cli("dump", "routes").returncode == 2  # --json is required


def test_name_files_and_prefixes() -> None:
    assert parse_name_file("# c\n255\tlocal\n0x64 vpn # tail\nbad line\n12\n") == {
        255: "local",
        100: "vpn",
    }
    assert prefix_text(None, 0, socket.AF_INET) == "default"
    assert prefix_text("10.0.0.1", 32, socket.AF_INET) == "10.0.0.1"
    assert prefix_text("fd00::", 64, socket.AF_INET6) == "fd00::/64"
    assert prefix_text("fd00::1", 128, socket.AF_INET6) == "fd00::1"
    assert nud_states(0x02) == ("REACHABLE",)
    assert nud_states(0x80 | 0x40) == ("NOARP", "PERMANENT")
    assert nud_states(0) == ("NONE",)


def test_default_gateways_prefer_the_lowest_metric() -> None:
    def gw(gateway: str, metric: int | None, table: str = "main", kind: str = "unicast") -> Route:
        return Route("inet", "default", gateway, "eth0", metric=metric, table=table, type=kind)

    routes = [gw("10.0.0.2", 200), gw("10.0.0.1", 100), gw("10.0.0.9", 1, table="100")]
    routes.append(gw("10.0.0.8", 0, kind="unreachable"))
    assert [r.gateway for r in default_gateways(routes)] == ["10.0.0.1", "10.0.0.2"]
