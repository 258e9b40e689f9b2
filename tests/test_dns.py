"""DNS against a server the test runs itself on 127.0.0.x (never the machine's resolver):
per-server lookups (answers, NXDOMAIN, SERVFAIL, silence, TCP after truncation), the reverse
resolver's caches and in-flight cap counted at the server, hosts/services files, resolv.conf,
and `netdash dns` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netdash.sources.dns import ReverseResolver, lookup
from netdash.sources.dnsconfig import format_server, parse_server, resolver_config, service_name
from tests.dnslab import LONG_TXT, SLOW_SUFFIX, ZoneServer, silent_server, zone_server

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[ZoneServer]:
    with zone_server() as zone:
        yield zone


@pytest.fixture
def silent() -> Iterator[tuple[str, int]]:
    with silent_server() as address:
        yield address


def only(replies):
    assert len(replies) == 1
    return replies[0]


def test_forward_lookups_give_answers_ttls_and_rcode(server: ZoneServer) -> None:
    reply = only(lookup("www.lab.test", "A", [server.address]))
    assert reply.server == format_server(server.address)
    assert reply.rcode == "NOERROR" and reply.error is None and reply.ms is not None
    assert [(a.name, a.type, a.ttl, a.value) for a in reply.answers] == [
        ("www.lab.test.", "A", 300, "192.0.2.10")
    ]
    assert only(lookup("www.lab.test", "aaaa", [server.address])).answers[0].value == (
        "2001:db8::10"
    )
    assert only(lookup("lab.test", "MX", [server.address])).answers[0].value == "10 mail.lab.test."
    assert only(lookup("lab.test", "TXT", [server.address])).answers[0].value == '"v=spf1 -all"'
    cname = only(lookup("alias.lab.test", "CNAME", [server.address])).answers[0]
    assert (cname.type, cname.ttl, cname.value) == ("CNAME", 120, "www.lab.test.")


def test_ptr_for_an_address_asks_for_the_reverse_name(server: ZoneServer) -> None:
    assert only(lookup("192.0.2.10", "PTR", [server.address])).answers[0].value == "www.lab.test."
    assert only(lookup("2001:db8::10", "PTR", [server.address])).answers[0].value == "v6.lab.test."
    assert server.asked[("10.2.0.192.in-addr.arpa.", "PTR")] == 1


def test_nxdomain_servfail_and_silence_are_told_apart(
    server: ZoneServer, silent: tuple[str, int]
) -> None:
    assert only(lookup("nope.lab.test", "A", [server.address])).rcode == "NXDOMAIN"
    assert only(lookup("broken.lab.test", "A", [server.address])).rcode == "SERVFAIL"
    started = time.monotonic()
    good, quiet = lookup("www.lab.test", "A", [server.address, silent], timeout=0.5)
    assert time.monotonic() - started < 1.5  # servers are asked at once
    assert good.rcode == "NOERROR" and good.answers
    assert quiet.server == format_server(silent)
    assert (quiet.rcode, quiet.answers, quiet.ms, quiet.error) == (
        None,
        (),
        None,
        "no reply in 0.5 s",
    )


def test_a_truncated_reply_is_asked_again_over_tcp(server: ZoneServer) -> None:
    reply = only(lookup("big.lab.test", "TXT", [server.address]))
    assert reply.rcode == "NOERROR" and server.tcp_asked == 1
    assert reply.answers[0].value == LONG_TXT


def test_a_bad_type_or_name_is_a_value_error(server: ZoneServer) -> None:
    with pytest.raises(ValueError, match="record type HINFO"):
        lookup("www.lab.test", "HINFO", [server.address])
    with pytest.raises(ValueError, match="not a DNS name"):
        lookup("a" * 70 + ".test", "A", [server.address])


def wait_for(predicate, seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_reverse_resolver_never_blocks_and_caches_for_the_ttl(server: ZoneServer, tmp_path) -> None:
    resolved: list[tuple[str, str | None]] = []
    rdns = ReverseResolver(
        [server.address], hosts=tmp_path / "none", on_resolved=lambda a, n: resolved.append((a, n))
    )
    try:
        assert rdns.name_of("192.0.2.10") is None  # asked, not waited for
        wait_for(lambda: rdns.name_of("192.0.2.10") is not None)
        assert rdns.name_of("192.0.2.10") == "www.lab.test"
        assert resolved == [("192.0.2.10", "www.lab.test")]
        assert rdns.name_of("192.0.2.11") is None
        wait_for(lambda: rdns.name_of("192.0.2.11") == "short.lab.test")
        for _ in range(20):
            rdns.name_of("192.0.2.10")
        assert server.asked[("10.2.0.192.in-addr.arpa.", "PTR")] == 1
        time.sleep(1.1)  # short.lab.test's TTL is 1 s: asked again after it
        rdns.name_of("192.0.2.11")
        wait_for(lambda: server.asked[("11.2.0.192.in-addr.arpa.", "PTR")] == 2)
        assert rdns.name_of("2001:db8:0::10") is None
        wait_for(lambda: rdns.name_of("2001:db8::10") == "v6.lab.test")
    finally:
        rdns.close()


def test_failures_are_cached_for_a_while(server: ZoneServer, silent, tmp_path) -> None:
    now = [1000.0]
    rdns = ReverseResolver(
        [server.address], hosts=tmp_path / "none", negative_ttl=30.0, clock=lambda: now[0]
    )
    quiet = ReverseResolver([silent], timeout=0.2, hosts=tmp_path / "none", negative_ttl=30.0)
    try:
        for addr, qname in (("192.0.2.99", "99.2.0.192"), ("192.0.2.12", "12.2.0.192")):
            key = (f"{qname}.in-addr.arpa.", "PTR")
            rdns.name_of(addr)
            wait_for(lambda key=key: server.asked[key] == 1 and rdns.in_flight == 0)
            for _ in range(10):
                assert rdns.name_of(addr) is None
            assert server.asked[key] == 1  # NXDOMAIN / SERVFAIL remembered
            now[0] += 31
            rdns.name_of(addr)
            wait_for(lambda key=key: server.asked[key] == 2)
        quiet.name_of("192.0.2.10")
        wait_for(lambda: quiet.in_flight == 0)
        assert quiet.name_of("192.0.2.10") is None and quiet.in_flight == 0  # silence remembered
    finally:
        rdns.close()
        quiet.close()


def test_no_more_than_max_in_flight_at_once(server: ZoneServer, tmp_path) -> None:
    """The server holds 192.0.3.x for 0.4 s; of ten asked at once, three go out."""
    rdns = ReverseResolver([server.address], max_in_flight=3, hosts=tmp_path / "none")
    slow = [f"192.0.3.{n}" for n in range(10)]

    def asked() -> int:
        return sum(n for (name, _), n in server.asked.items() if name.endswith(SLOW_SUFFIX))

    try:
        for addr in slow:
            assert rdns.name_of(addr) is None
        assert rdns.in_flight == 3
        wait_for(lambda: rdns.in_flight == 0)  # nothing new is asked for meanwhile
        assert asked() == 3
        for addr in slow:
            rdns.name_of(addr)
        wait_for(lambda: rdns.in_flight == 0)
        assert asked() == 6  # the next three; the first three are cached as having no name
    finally:
        rdns.close()


def test_etc_hosts_comes_first(server: ZoneServer, tmp_path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "# comment\n192.0.2.10  local-www www-alias  # trailing\n192.0.2.10 second\n"
        "::1 ip6-localhost\nnot-an-address x\n"
    )
    rdns = ReverseResolver([server.address], hosts=hosts)
    try:
        assert rdns.name_of("192.0.2.10") == "local-www"
        assert rdns.name_of("0:0::1") == "ip6-localhost"
        time.sleep(0.1)
        assert sum(server.asked.values()) == 0
    finally:
        rdns.close()


def test_service_names_from_a_services_file(tmp_path) -> None:
    services = tmp_path / "services"
    services.write_text(
        "# services\nssh\t\t22/tcp\nhttp 80/tcp www # web\ndomain 53/udp\ndomain 53/tcp\n"
        "bogus x/tcp\n"
    )
    assert service_name(22, "tcp", services) == "ssh"
    assert service_name(80, "TCP", services) == "http"
    assert service_name(53, "udp", services) == "domain"
    assert service_name(22, "udp", services) is None
    assert service_name(1, "tcp", tmp_path / "missing") is None


def test_resolver_config_reads_both_files(tmp_path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# Generated\nnameserver 192.0.2.1\nnameserver 2001:db8::1 ; v6\n"
        "domain old.test\nsearch lab.test corp.test\noptions ndots:2 edns0\noptions rotate\n"
    )
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("passwd: files\nhosts:   files  dns  # comment\n")
    config = resolver_config(resolv, nsswitch)
    assert config.nameservers == ("192.0.2.1", "2001:db8::1")
    assert config.search == ("lab.test", "corp.test")
    assert config.options == ("ndots:2", "edns0", "rotate")
    assert config.hosts_line == "files dns"
    assert (config.path, config.stub, config.error) == (str(resolv), False, None)


def test_the_systemd_resolved_stub_is_said(tmp_path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files resolve [!UNAVAIL=return] dns myhostname\n")
    config = resolver_config(resolv, nsswitch)
    assert config.stub and config.nameservers == ("127.0.0.53",)
    assert config.hosts_line == "files resolve [!UNAVAIL=return] dns myhostname"
    missing = resolver_config(tmp_path / "gone", tmp_path / "gone2")
    assert missing.nameservers == () and missing.hosts_line is None
    assert missing.error is not None and "gone" in missing.error and not missing.stub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("2001:db8:0::1", ("2001:db8::1", 53)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "1.2.3.4:0", "1.2.3.4:x", "[::1", "[::1]x"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


def netdash(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netdash", "dns", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def test_netdash_dns_json(server: ZoneServer, silent, tmp_path) -> None:
    here, quiet = format_server(server.address), format_server(silent)
    done = netdash(
        "www.lab.test", "--server", here, "--server", quiet, "--timeout", "0.5", "--json"
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["name"], document["type"], document["resolv_conf"]) == (
        "www.lab.test",
        "A",
        None,
    )
    first, second = document["servers"]
    assert first["server"] == here and first["rcode"] == "NOERROR" and first["ms"] >= 0
    assert first["answers"] == [
        {"name": "www.lab.test.", "type": "A", "ttl": 300, "value": "192.0.2.10"}
    ]
    assert second == {
        "server": quiet,
        "rcode": None,
        "answers": [],
        "ms": None,
        "error": "no reply in 0.5 s",
    }


def test_netdash_dns_exit_codes(server: ZoneServer, silent, tmp_path) -> None:
    here = format_server(server.address)
    nx = netdash("nope.lab.test", "MX", "--server", here, "--json")
    assert nx.returncode == 0 and json.loads(nx.stdout)["servers"][0]["rcode"] == "NXDOMAIN"
    quiet = netdash("www.lab.test", "--server", format_server(silent), "--timeout", "0.3", "--json")
    assert quiet.returncode == 1
    assert netdash("www.lab.test", "HINFO", "--server", here, "--json").returncode == 2
    assert netdash("www.lab.test", "--server", "not-an-ip", "--json").returncode == 2
    # resolv.conf is read only without --server (a port cannot be given there, so no query
    # is sent from these: one has no usable nameserver, the other does not exist)
    empty = tmp_path / "resolv.conf"
    empty.write_text("# nothing\nnameserver not-an-address\n")
    none = netdash("www.lab.test", "--resolv-conf", str(empty), "--json")
    assert none.returncode == 1 and none.stderr == f"netdash: no nameserver in {empty}\n"
    gone = netdash("www.lab.test", "--resolv-conf", str(tmp_path / "gone"), "--json")
    assert gone.returncode == 1 and "gone: No such file" in gone.stderr
