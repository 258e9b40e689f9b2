"""The Diagnose tab as a whole, live in a namespace: its three views and their keys, ``d`` on a
connection running the host:port checklist on its far end, and socket memory read only while
a socket's detail view is open."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from textual.widgets import Input

from conftest import needs_root, skip_unless_root, temporary_netns
from netdash.diagnose import DiagnoseOptions, socket_target
from netdash.engine import ConnectionsSampler
from netdash.model import HostInfo, Socket
from netdash.netns import NetnsTarget, entered, resolve_netns
from netdash.sources.dnsconfig import resolver_config
from netdash.sources.owners import OwnerMap
from netdash.sources.sockets import SocketReader
from netdash.ui.app import NetdashApp, build_replay_app
from netdash.ui.panes.diagnose import DiagnosePane, DiagnoseSettings
from netdash.ui.panes.reach import ReachPane
from netdash.ui.panes.resolver import ResolverPane
from netdash.ui.panes.stack import StackPane
from netdash.ui.screens.socket_detail import SocketDetailScreen

HOST = HostInfo(hostname="lab", kernel=os.uname().release, netns="lab", is_root=True)
RECORDING = Path(__file__).parent / "fixtures" / "connections.recording.json"


@contextmanager
def connected_pair(target: NetnsTarget) -> Iterator[int]:
    """A listener on 127.0.0.1 in ``target`` with one accepted connection; yields its port."""
    with entered(target):
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        yield listener.getsockname()[1]
    finally:
        for sock in (client, server, listener):
            sock.close()


@asynccontextmanager
async def live_app(tmp_path: Path) -> AsyncIterator[tuple[NetdashApp, object, int]]:
    skip_unless_root()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    with temporary_netns("diagui") as name:
        target = resolve_netns(name)
        settings = DiagnoseSettings(
            resolver=resolver_config(resolv),
            nameservers=None,
            netns=name,
            root_hints=None,
            options=DiagnoseOptions(resolv_conf=resolv, netns=target, timeout=1.0),
        )
        sampler = ConnectionsSampler(SocketReader(netns=target), OwnerMap())
        app = NetdashApp(sampler, HOST, autostart=False, diagnose=settings)
        with connected_pair(target) as port:
            async with app.run_test(size=(140, 40)) as pilot:
                app.sample_now()
                await pilot.pause()
                yield app, pilot, port


async def select_client_of(pilot, port: int) -> None:
    """Filter the Connections table down to the client end of the pair (cursor on it)."""
    await pilot.press("slash", *f"dport:{port}", "enter")
    await pilot.pause()


@needs_root
async def test_d_on_a_connection_diagnoses_its_far_end(tmp_path: Path) -> None:
    async with live_app(tmp_path) as (app, pilot, port):
        await select_client_of(pilot, port)
        await pilot.press("d")
        pane = app.query_one(DiagnosePane)
        reach = app.query_one(ReachPane)
        assert app.query_one("TabbedContent").active == "tab-diagnose"
        assert pane.current == "reach"
        for _ in range(100):
            await pilot.pause(0.05)
            if reach.diagnosis is not None:
                break
        assert reach.diagnosis is not None
        assert reach.diagnosis.verdict.startswith("reachable"), reach.diagnosis.verdict
        assert reach.query_one("#reach-input", Input).value == f"127.0.0.1:{port}"
        names = [step.name for step in reach.diagnosis.steps]
        assert "connect" in " ".join(names)


@needs_root
async def test_the_views_and_their_keys(tmp_path: Path) -> None:
    async with live_app(tmp_path) as (app, pilot, _port):
        await pilot.press("6")
        pane = app.query_one(DiagnosePane)
        assert pane.current == "stack" and app.query_one(StackPane).display
        await pilot.press("r")
        assert pane.current == "resolver"
        resolver = app.query_one(ResolverPane)
        assert resolver.display and "127.0.0.1" in resolver.config_text().plain
        assert app.focused is not None and app.focused.id == "resolver-query"  # the prompt
        await pilot.press("escape", "d")
        assert pane.current == "reach" and app.focused is not None
        assert app.focused.id == "reach-input"
        await pilot.press(*"127.0.0.1:1", "enter")
        reach = app.query_one(ReachPane)
        for _ in range(100):
            await pilot.pause(0.05)
            if reach.diagnosis is not None:
                break
        assert reach.diagnosis is not None and reach.diagnosis.verdict.startswith("refused")
        await pilot.press("escape", "s")
        assert pane.current == "stack"


@needs_root
async def test_socket_memory_is_read_while_a_detail_view_is_open(tmp_path: Path) -> None:
    """Only the socket shown: an exact sock_diag request after each read (SockDiag.read_one)."""
    async with live_app(tmp_path) as (app, pilot, port):
        assert app.sampler.memory_of is None
        await select_client_of(pilot, port)
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, SocketDetailScreen)
        cookie = app.screen.entry.sock.cookie
        assert cookie and app.sampler.memory_of == cookie
        sample = app.sampler.sample().sockets
        assert [s.mem is not None for s in sample if s.cookie == cookie] == [True]
        assert all(s.mem is None for s in sample if s.cookie != cookie)
        app.sample_now()  # the view is live: the next refresh brings the memory
        for _ in range(50):
            await pilot.pause(0.1)
            text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
            if "rmem" in text:
                break
        assert "rmem" in text and "memory" in text
        await pilot.press("escape")
        await pilot.pause()
        assert app.sampler.memory_of is None
        lean = [s for s in app.sampler.sample().sockets if s.remote_port == port]
        assert lean and all(s.mem is None and s.tcp is not None for s in lean)


async def test_a_recording_says_the_views_need_a_live_machine() -> None:
    app = build_replay_app(RECORDING, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("escape", "6", "d")
        text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "read live only" in text


def test_socket_target_is_the_far_end_or_a_listeners_own_address() -> None:
    def sock(state: str, local: str, lport: int, remote: str | None, rport: int | None) -> Socket:
        family = "inet6" if ":" in local else "inet"
        return Socket("tcp", family, state, local, lport, remote, rport, 0, 0, 1)

    assert socket_target(sock("ESTAB", "10.0.0.1", 5000, "10.0.0.2", 443)) == "10.0.0.2:443"
    assert socket_target(sock("LISTEN", "0.0.0.0", 80, None, None)) == "127.0.0.1:80"
    assert socket_target(sock("LISTEN", "::", 80, None, None)) == "[::1]:80"
    assert socket_target(sock("ESTAB", "::1", 5000, "2001:db8::1", 22)) == "[2001:db8::1]:22"
    unix = Socket("unix", "unix", "ESTAB", "/run/x.sock", None, None, None, 0, 0, 7)
    assert socket_target(unix) is None
