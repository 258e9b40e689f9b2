"""The resolver view with Pilot: the configuration from temporary files, lookups typed at the
prompt against DNS servers the test runs on 127.0.0.x (tests/dnslab.py), answered without
blocking the app while a silent server times out, and ``+trace`` hops shown as they come."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from netdash.sources.dnsconfig import (
    ResolverConfig,
    RootHints,
    Server,
    format_server,
    load_root_hints,
    resolver_config,
)
from netdash.ui.panes.resolver import DigQuery, ResolverPane, parse_dig_query
from tests.dnslab import Hierarchy, ZoneServer, hierarchy, silent_server, zone_server

MARKUP_TXT = '"[bold red]boom[/] \\027[31m"'  # markup and an escape sequence, as data


class ResolverApp(App[None]):
    AUTO_FOCUS = "#resolver-results"

    def __init__(self, pane: ResolverPane) -> None:
        super().__init__()
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


def write_config(tmp_path: Path, resolv: str, hosts_line: str = "files dns") -> ResolverConfig:
    (tmp_path / "resolv.conf").write_text(resolv)
    (tmp_path / "nsswitch.conf").write_text(f"passwd: files\nhosts: {hosts_line}\n")
    return resolver_config(tmp_path / "resolv.conf", tmp_path / "nsswitch.conf")


def rendered(static: Static, width: int = 100) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(static.content)
    return console.export_text()


def answer_text(app: ResolverApp) -> str:
    return rendered(app.pane.query_one("#resolver-answer", Static))


def screen_text(app: App[None]) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_until(pilot, predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.02)


async def type_lookup(pilot, text: str, *, key_by_key: bool = True) -> None:
    """Into the prompt, as a user would: ``l`` from the results (Esc leaves the prompt), the
    text (key by key, or pasted: a key press costs ~0.1 s on a busy machine), Enter."""
    await pilot.press("escape", "l")
    if key_by_key:
        await pilot.press(*text)
    else:
        pilot.app.query_one("#resolver-query", Input).value = text
    await pilot.press("enter")


def with_markup(query: dns.message.Message) -> dns.message.Message:
    response = dns.message.make_response(query)
    name = query.question[0].name
    response.answer.append(dns.rrset.from_text(name, 42, "IN", "TXT", MARKUP_TXT))
    return response


@pytest.fixture
def server() -> Iterator[ZoneServer]:
    with zone_server() as zone:
        yield zone


@pytest.fixture
def silent() -> Iterator[Server]:
    with silent_server() as address:
        yield address


@pytest.fixture(scope="module")
def lab() -> Iterator[Hierarchy]:
    with hierarchy() as servers:
        yield servers


async def test_the_configuration_in_effect_is_shown(tmp_path) -> None:
    config = write_config(
        tmp_path,
        "nameserver 192.0.2.1\nnameserver 2001:db8::53\nsearch lab.test corp.test\n"
        "options ndots:2 edns0\n",
        "files resolve [!UNAVAIL=return] dns",
    )
    app = ResolverApp(ResolverPane(config, None, None, None))
    async with app.run_test(size=(80, 24)):
        text = " ".join(screen_text(app).split())
        assert f"resolv.conf {tmp_path}/resolv.conf" in text
        assert "nameservers 192.0.2.1 2001:db8::53" in text
        assert "search lab.test corp.test options ndots:2 edns0" in text
        assert "hosts files resolve [!UNAVAIL=return] dns" in text
        assert "systemd-resolved" not in text and "netns" not in text
        assert "+trace from IANA root hints (built in)" in text
        assert app.pane.servers == (("192.0.2.1", 53), ("2001:db8::53", 53))


async def test_netns_stub_and_override_are_said(tmp_path) -> None:
    config = write_config(tmp_path, "nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    netns_etc = tmp_path / "netns"
    (netns_etc / "blue").mkdir(parents=True)
    (netns_etc / "blue" / "resolv.conf").write_text("nameserver 192.0.2.99\n")
    override = (("127.0.0.1", 5353),)
    hints = RootHints((), 53, "my.hints")
    pane = ResolverPane(config, override, "blue", hints, netns_etc=netns_etc)
    app = ResolverApp(pane)
    async with app.run_test(size=(120, 30)):
        text = " ".join(screen_text(app).split())
        assert "(netns blue entered by setns: the host's file still applies)" in text
        assert f"{netns_etc}/blue/resolv.conf exists but netdash does NOT use it" in text
        assert f"pass --resolv-conf {netns_etc}/blue/resolv.conf" in text
        assert "nameservers 127.0.0.1:5353 (--nameserver; resolv.conf lists 127.0.0.53)" in text
        assert "stub systemd-resolved at 127.0.0.53" in text
        assert "+trace from my.hints" in text
        assert pane.servers == override
    own = resolver_config(netns_etc / "blue" / "resolv.conf", tmp_path / "nsswitch.conf")
    app = ResolverApp(ResolverPane(own, None, "blue", None, netns_etc=netns_etc))
    async with app.run_test(size=(120, 30)):
        text = " ".join(screen_text(app).split())
        assert "netns blue's own file, given with --resolv-conf" in text
        assert "does NOT use it" not in text


async def test_a_typed_lookup_shows_answers_ttl_and_rcode(server: ZoneServer, tmp_path) -> None:
    config = write_config(tmp_path, f"nameserver {server.address[0]}\n")
    app = ResolverApp(ResolverPane(config, None, None, None, timeout=1.0))
    here = format_server(server.address)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_lookup(pilot, f"www.lab.test aaaa @{here}")
        await wait_until(pilot, lambda: not app.pane.busy)
        await pilot.pause()
        text = screen_text(app)
        assert "www.lab.test AAAA  1 of 1 servers replied" in text
        assert f"{here}  NOERROR  " in text and " ms" in text
        assert "www.lab.test. 300 AAAA 2001:db8::10" in " ".join(text.split())
        assert server.asked[("www.lab.test.", "AAAA")] == 1
        await type_lookup(pilot, f"nope.lab.test @{here}", key_by_key=False)
        await wait_until(pilot, lambda: not app.pane.busy)
        assert f"{here}  NXDOMAIN" in answer_text(app) and "no records" in answer_text(app)
        await type_lookup(pilot, "www.lab.test HINFO", key_by_key=False)
        assert "record type HINFO is not one of" in answer_text(app) and not app.pane.busy


async def test_the_app_keeps_responding_while_a_silent_server_times_out(
    server: ZoneServer, silent: Server, tmp_path
) -> None:
    config = write_config(tmp_path, "nameserver 192.0.2.1\n")  # never asked: overridden
    pane = ResolverPane(config, (silent, server.address), None, None, timeout=2.0)
    app = ResolverApp(pane)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_lookup(pilot, "www.lab.test")
        asked = time.monotonic()
        await pilot.press("x", "y", "z")  # typed while the silent server is being waited for
        await pilot.pause()
        assert pane.busy and time.monotonic() - asked < 2.0
        assert app.query_one(Input).value == "www.lab.testxyz"
        assert "asking " in answer_text(app)
        await wait_until(pilot, lambda: not pane.busy)
        assert time.monotonic() - asked >= 1.9
        text = answer_text(app)
        assert "1 of 2 servers replied" in text
        assert f"{format_server(silent)}  no reply in 2 s" in text
        assert "www.lab.test. 300 A 192.0.2.10" in " ".join(text.split())


async def test_strings_from_dns_are_data_not_markup(tmp_path) -> None:
    config = write_config(tmp_path, "")
    with zone_server(responder=with_markup) as odd:
        app = ResolverApp(ResolverPane(config, (odd.address,), None, None, timeout=1.0))
        async with app.run_test(size=(100, 24)) as pilot:
            app.pane.lookup("odd.test TXT")
            await wait_until(pilot, lambda: not app.pane.busy)
            await pilot.pause()
            assert "[bold red]boom[/] \\027[31m" in screen_text(app)
    nothing = ResolverApp(ResolverPane(config, None, None, None))
    async with nothing.run_test(size=(80, 24)):
        nothing.pane.lookup("www.lab.test")
        assert "no nameserver in" in answer_text(nothing) and not nothing.pane.busy


async def test_a_trace_shows_each_hop_as_it_comes(lab: Hierarchy, tmp_path) -> None:
    config = write_config(tmp_path, "nameserver 192.0.2.1\n")
    pane = ResolverPane(config, None, None, load_root_hints(lab.root), timeout=1.0)
    app = ResolverApp(pane)
    async with app.run_test(size=(80, 24)) as pilot:
        await type_lookup(pilot, "alias.example.test +trace")
        # the root's referral is on screen while the silent lame.test. is being waited for
        await wait_until(pilot, lambda: len(pane.hops) >= 1)
        await pilot.pause()
        assert pane.busy and "tracing… 1 questions so far" in answer_text(app)
        assert "→ test. NS lame.test." in answer_text(app)
        await wait_until(pilot, lambda: not pane.busy)
        text = " ".join(answer_text(app).split())
        assert "alias.example.test A trace: 5 questions" in text
        assert "test. lame.test. (" in text and "no reply in 1 s" in text
        assert "example.test. up.test. (" in text and "NOERROR lame" in text
        assert "answer: NOERROR" in text
        assert "www.example.test. 300 A 192.0.2.80" in text
        await type_lookup(pilot, f"x.loopy.test +trace @{lab.root}", key_by_key=False)
        await wait_until(pilot, lambda: not pane.busy)
        text = " ".join(answer_text(app).split())
        assert "x.loopy.test A trace: 3 questions" in text  # from the root given with @
        assert "trace failed: no address for any server of loopy.test." in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("www.lab.test", DigQuery("www.lab.test", "A")),
        ("www.lab.test mx", DigQuery("www.lab.test", "MX")),
        ("MX lab.test", DigQuery("lab.test", "MX")),
        ("192.0.2.10", DigQuery("192.0.2.10", "PTR")),
        ("x.test +trace @[::1]:5353", DigQuery("x.test", "A", ("::1", 5353), True)),
        ("@127.0.0.1 x.test TXT", DigQuery("x.test", "TXT", ("127.0.0.1", 53))),
    ],
)
def test_parse_dig_query(text: str, expected: DigQuery) -> None:
    assert parse_dig_query(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "type a name"),
        ("a b c", "type a name"),
        ("x.test HINFO", "record type HINFO"),
        ("x.test +short", r"\+short: the only option is \+trace"),
        ("x.test @nowhere", "not an IP address"),
    ],
)
def test_parse_dig_query_rejects(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_dig_query(text)
