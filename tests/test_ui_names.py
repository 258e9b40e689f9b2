"""Names (`n`) in the Connections, talkers and conntrack views, driven with Pilot on the replay
app, against a DNS server each test runs on 127.0.x.y (tests/dnslab.py) that counts what it is
asked: names fill in without blocking a key, a failed lookup leaves the number, `n` again shows
numbers, `--nameserver` and `--resolv-conf` are honoured, and nothing is asked while names are
off. The hosts and services files are the test's own (no machine's /etc/hosts answering for
127.0.0.1, no dependence on netbase's /etc/services)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest
from dnslab import ZoneServer, lab_address, zone_server
from textual.pilot import Pilot

from conftest import needs_root
from netdash.cli import build_parser
from netdash.engine import Poller
from netdash.model import ConntrackSample
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.names import NameOptions, Names
from netdash.ui.panes.connections import ConnectionsPane, FilterStatus
from netdash.ui.panes.firewall import FirewallPane
from netdash.ui.panes.talkers import TalkersView

FIXTURES = Path(__file__).parent / "fixtures"
CONNECTIONS = FIXTURES / "connections.recording.json"
INTERFACES = FIXTURES / "interfaces.recording.json"
SERVICES = "http 80/tcp www\npostgresql 5432/tcp postgres\niperf3 5201/tcp\n"
V4, V6, RECEIVER = "127.0.0.1", "::1", "10.201.0.2"  # remote addresses of the recordings


def ptr(addr: str) -> str:
    return dns.reversename.from_address(addr).to_text().lower()


def responder(
    names: dict[str, str], silent: frozenset[str] = frozenset(), ttl: int = 300
) -> Callable[[dns.message.Message], dns.message.Message | None]:
    """PTR answers for ``names`` (address -> name), silence for ``silent``, NXDOMAIN else."""
    answers = {ptr(addr): name for addr, name in names.items()}
    quiet = {ptr(addr) for addr in silent}

    def respond(query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        qname = question.name.to_text().lower()
        if qname in quiet:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if qname in answers and question.rdtype == dns.rdatatype.PTR:
            rrset = dns.rrset.from_text(qname, ttl, "IN", "PTR", answers[qname])
            response.answer.append(rrset)
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response

    return respond


def ptr_asked(server: ZoneServer, addr: str) -> int:
    return server.asked[(ptr(addr), "PTR")]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    hosts, services = tmp_path / "hosts", tmp_path / "services"
    hosts.write_text("# nothing: every name comes from the test's server\n")
    services.write_text(SERVICES)
    return hosts, services


def options(server: ZoneServer, files: tuple[Path, Path], **more: object) -> NameOptions:
    return NameOptions(nameservers=(server.address,), hosts=files[0], services=files[1], **more)  # type: ignore[arg-type]


def screen_text(app: NetdashApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def wait_for(pilot: Pilot, ready: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


async def load(app: NetdashApp, pilot: Pilot, samples: int = 2) -> ConnectionsPane:
    for _ in range(samples):
        app.sample_now()
        await pilot.pause()
    return app.query_one(ConnectionsPane)


def remotes(app: NetdashApp) -> set[str]:
    """The Remote cells on screen (Proto, State, Local, Remote are the first four words)."""
    lines = screen_text(app).splitlines()
    return {line.split()[3] for line in lines if line.startswith(("tcp", "udp"))}


def status(app: NetdashApp) -> str:
    return " ".join(part for part, _ in app.query_one(FilterStatus).parts)


def rdns_threads() -> set[threading.Thread]:
    """The reverse resolvers' threads alive (an earlier test's may still be finishing)."""
    return {thread for thread in threading.enumerate() if thread.name.startswith("rdns")}


async def test_names_fill_in_stay_numbers_on_failure_and_n_again_shows_numbers(files):
    names = {V4: "loopback.names.test."}  # ::1 gets NXDOMAIN
    with zone_server(lab_address(61), responder(names)) as server:
        app = build_replay_app(CONNECTIONS, autostart=False, names=options(server, files))
        async with app.run_test(size=(140, 110)) as pilot:
            await load(app, pilot)
            assert {"127.0.0.1:80", "[::1]:5432"} <= remotes(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: "loopback.names.test:http" in screen_text(app))
            await wait_for(pilot, lambda: ptr_asked(server, V6) == 1)
            await wait_for(pilot, lambda: app.names.resolver.in_flight == 0)
            await pilot.pause(0.3)  # past one coalesced repaint
            shown = remotes(app)
            assert "[::1]:postgresql" in shown  # no name: the number, with the service's name
            assert not any(cell.startswith(V4) for cell in shown)
            assert "127.0.0.1:http" in screen_text(app)  # the local side: only the service
            # --nameserver is the server asked, and the header says so.
            host, port = server.address
            assert f"names via {host}:{port} (--nameserver)" in status(app)
            assert ptr_asked(server, V4) == 1  # asked once: the cache answers every repaint
            # Group by remote host: the group's label is the name too.
            await pilot.press("g", "g")
            await pilot.pause()
            assert app.query_one(ConnectionsPane).group_field == "remote host"
            assert "loopback.names.test" in screen_text(app)
            await pilot.press("escape", "n")
            await pilot.pause()
            text = screen_text(app)
            assert "loopback.names.test" not in text and "postgresql" not in text
            assert {"127.0.0.1:80", "[::1]:5432"} <= remotes(app)
            assert "names" not in status(app)
            assert ptr_asked(server, V4) == 1


async def test_a_key_right_after_n_is_handled_while_the_server_is_silent(files):
    silent = frozenset({V4, V6})
    with zone_server(lab_address(62), responder({}, silent)) as server:
        app = build_replay_app(
            CONNECTIONS, autostart=False, names=options(server, files, timeout=3.0)
        )
        async with app.run_test(size=(140, 110)) as pilot:
            pane = await load(app, pilot)
            sorted_by = pane.view.sort_column
            started = time.monotonic()
            await pilot.press("n")
            await wait_for(pilot, lambda: ptr_asked(server, V4) >= 1 and ptr_asked(server, V6) >= 1)
            await pilot.press("s")
            app.sample_now()  # a tick lands too, and is drawn
            await pilot.pause()
            took = time.monotonic() - started
            assert pane.view.sort_column != sorted_by
            assert took < 1.5, f"{took:.2f} s for n and a key while lookups hang for 3 s"
            assert app.names.resolver.in_flight == 2  # both still waiting on the server
            assert {"127.0.0.1:http", "[::1]:postgresql"} <= remotes(app)  # numbers meanwhile


async def test_nothing_is_asked_while_names_are_off(files):
    with zone_server(lab_address(63), responder({V4: "loopback.names.test."}, ttl=1)) as server:
        app = build_replay_app(CONNECTIONS, autostart=False, names=options(server, files))
        before = rdns_threads()
        async with app.run_test(size=(140, 110)) as pilot:
            await load(app, pilot, samples=3)
            assert sum(server.asked.values()) == 0
            assert app.names.resolver is None and not rdns_threads() - before
            await pilot.press("n")
            await wait_for(pilot, lambda: "loopback.names.test" in screen_text(app))
            await pilot.press("n")
            await pilot.pause()
            asked = sum(server.asked.values())
            # Past the 1 s TTL, ticks and repaints with names off ask nothing.
            deadline = time.monotonic() + 1.3
            while time.monotonic() < deadline:
                app.sample_now()
                app._repaint_names()
                await pilot.pause(0.1)
            assert sum(server.asked.values()) == asked
            assert "loopback.names.test" not in screen_text(app)
            await pilot.press("n")  # on again: the expired name is asked for again
            await wait_for(pilot, lambda: ptr_asked(server, V4) == 2)
            await wait_for(pilot, lambda: "loopback.names.test" in screen_text(app))


async def test_top_talkers_by_name(files):
    with zone_server(lab_address(64), responder({RECEIVER: "receiver.names.test."})) as server:
        app = build_replay_app(INTERFACES, autostart=False, names=options(server, files))
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(4):
                app.sample_now()
                await pilot.pause()
            await pilot.press("2", "t")
            await pilot.pause()
            view = app.query_one("#talkers-view", TalkersView)
            assert view.view.row_at(0).key == RECEIVER
            assert RECEIVER in screen_text(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: "receiver.names.test" in screen_text(app))
            await pilot.press("h")  # host:port
            await pilot.pause()
            assert "receiver.names.test:iperf3" in screen_text(app)
            await pilot.press("h")  # local ports: services by name
            await pilot.pause()
            assert view.grouping == "local_ports"
            await pilot.press("n")
            await pilot.pause()
            await pilot.press("h")
            await pilot.pause()
            assert RECEIVER in screen_text(app) and "receiver.names.test" not in screen_text(app)


class FakeConntrack:
    """A conntrack table of counts (the reader's output), its top addresses the recording's."""

    def sample(self) -> ConntrackSample:
        tops = ((V4, 7), (RECEIVER, 3))
        return ConntrackSample(
            count=10, max=1000, top_sources=tops, top_destinations=tops, taken_at=time.monotonic()
        )

    def close(self) -> None:
        pass


async def test_conntrack_top_addresses_by_name(files):
    names = {V4: "loopback.names.test.", RECEIVER: "receiver.names.test."}
    with zone_server(lab_address(65), responder(names)) as server:
        app = build_replay_app(CONNECTIONS, autostart=False, names=options(server, files))
        app.conntrack = FakeConntrack()
        app.firewall_poller = Poller(
            "firewall", app._sample_firewall_in_thread, app._publish_firewall, 1.0
        )
        async with app.run_test(size=(140, 110)) as pilot:
            await pilot.press("5", "c")
            app.firewall_poller.run_once()
            await pilot.pause()
            assert app.query_one(FirewallPane).conntrack_frame is not None
            assert "127.0.0.1" in screen_text(app)
            await pilot.press("n")
            await wait_for(pilot, lambda: "receiver.names.test" in screen_text(app))
            assert "loopback.names.test" in screen_text(app)
            await pilot.press("n")
            await pilot.pause()
            assert "127.0.0.1" in screen_text(app) and "loopback.names.test" not in screen_text(app)


@contextmanager
def on_port_53(names: dict[str, str]) -> Iterator[ZoneServer]:
    """A server where resolv.conf can point (it has no port field): port 53 needs root."""
    server = ZoneServer(lab_address(66), port=53, responder=responder(names))
    try:
        yield server
    finally:
        server.close()


@contextmanager
def netns_resolv_conf(name: str) -> Iterator[Path]:
    """/etc/netns/NAME/resolv.conf, what `ip netns exec NAME` would bind-mount (removed after)."""
    folder = Path("/etc/netns", name)
    made_parent = not folder.parent.exists()
    folder.mkdir(parents=True)
    try:
        (folder / "resolv.conf").write_text("nameserver 192.0.2.53\n")
        yield folder / "resolv.conf"
    finally:
        shutil.rmtree(folder)
        if made_parent:
            with suppress(OSError):  # another test's namespace file may be there by now
                folder.parent.rmdir()


@needs_root
async def test_resolv_conf_and_the_command_line(tmp_path, files):
    netns = f"nd-names-{os.getpid()}"
    with on_port_53({V4: "viaresolv.test."}) as server, netns_resolv_conf(netns) as own:
        resolv_conf = tmp_path / "resolv.conf"
        resolv_conf.write_text(f"search names.test\nnameserver {server.address[0]}\n")
        args = build_parser().parse_args(["--resolv-conf", str(resolv_conf), "--netns", netns])
        from_args = NameOptions.from_args(args)
        assert from_args.resolv_conf == resolv_conf and from_args.nameservers == ()
        assert from_args.netns == netns
        named = NameOptions(resolv_conf=resolv_conf, hosts=files[0], services=files[1], netns=netns)
        app = build_replay_app(CONNECTIONS, autostart=False, names=named)
        async with app.run_test(size=(140, 110)) as pilot:
            await load(app, pilot)
            await pilot.press("n")
            await wait_for(pilot, lambda: "viaresolv.test" in screen_text(app))
            said = status(app)
            assert f"names via {server.address[0]}:53 from {resolv_conf}" in said
            assert "the host's" in said  # --netns by setns keeps the host's file: said
            assert f"--resolv-conf {own} for the namespace's" in said
    args = build_parser().parse_args(["--nameserver", "[::1]:5353", "--nameserver", "127.0.0.9"])
    assert NameOptions.from_args(args).nameservers == (("::1", 5353), ("127.0.0.9", 53))


async def test_a_burst_of_answers_is_one_repaint(files):
    app = build_replay_app(CONNECTIONS, autostart=False, names=NameOptions(hosts=files[0]))
    async with app.run_test(size=(100, 30)) as pilot:
        await load(app, pilot)
        pane = app.query_one(ConnectionsPane)
        repaints: list[float] = []
        repaint = pane.names_changed
        pane.names_changed = lambda: (repaints.append(time.monotonic()), repaint())  # type: ignore[method-assign]
        answers = [
            threading.Thread(target=app.names._resolved, args=(f"192.0.2.{n}", f"h{n}.test"))
            for n in range(50)
        ]  # as the resolver's threads call back, all at once
        for thread in answers:
            thread.start()
        for thread in answers:
            thread.join()
        await pilot.pause(0.5)
        assert 1 <= len(repaints) <= 2
        if len(repaints) == 2:
            assert repaints[1] - repaints[0] >= 0.14  # REPAINT_EVERY apart


def counting_names(opts: NameOptions) -> tuple[Names, list[int]]:
    calls: list[int] = []
    names = Names(opts, lambda: calls.append(1))
    assert names.start()
    names.load()
    return names, calls


def test_an_address_refused_by_the_in_flight_cap_is_asked_after_the_next_answer(files):
    with zone_server(lab_address(67), responder({}, frozenset({V4}))) as server:
        names, calls = counting_names(options(server, files, timeout=0.3))
        try:
            assert names.resolver is not None
            names.resolver.max_in_flight = 1
            assert names.name_of(V4) is None  # asked; the server stays silent
            assert names.name_of(V6) is None  # refused: the only slot is taken
            deadline = time.monotonic() + 3
            while not calls:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert ptr_asked(server, V6) == 0  # a repaint was asked for: it will ask again
            names.repainting()
            assert names.name_of(V6) is None
            while names.resolver.in_flight:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert ptr_asked(server, V6) == 1
            assert len(calls) == 1  # NXDOMAIN for a number already shown: nothing to repaint
        finally:
            names.close()


def test_a_name_past_its_ttl_stays_shown_while_it_is_asked_again(files):
    with zone_server(lab_address(68), responder({V4: "short.names.test."}, ttl=1)) as server:
        names, calls = counting_names(options(server, files))
        try:
            assert names.name_of(V4) is None
            deadline = time.monotonic() + 3
            while names.name_of(V4) is None:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert len(calls) == 1 and ptr_asked(server, V4) == 1
            time.sleep(1.1)  # the TTL runs out
            assert names.name_of(V4) == "short.names.test"  # the old name, asked again
            while ptr_asked(server, V4) < 2 or names.resolver.in_flight:
                assert time.monotonic() < deadline + 1.1
                time.sleep(0.02)
            assert len(calls) == 1  # the same name: no repaint
        finally:
            names.close()
