"""Render the README's pictures from the real app: SVGs under screenshots/, then PNGs.

Run: ``.venv/bin/python scripts/screenshots.py [--output DIR] [--no-png] [--only NAME...]``
(root for a live Process screen; see below). Every picture is the real :class:`NetdashApp`
running headless (``App.run_test``), driven by key presses (the cursor is put on the row a
picture needs), on tests/fixtures/connections.recording.json: the known-sockets lab as the real
collectors saw it. So the pictures show sockets of every kind and an example host ("web-1"),
not this machine; only the live Process screen (below) shows this machine's paths and cgroup,
as it would on any.

What is fixed, so that a rerun changes a replayed picture only when the UI changed (the six
replayed pictures come out byte for byte the same):

- rates: a replay normally stamps each sample with the time it is replayed, so two samples
  replayed 5 ms apart would show rates 200 times too high. :class:`RecordedSpacing` stamps them
  with the recording's own spacing instead, ending a little ahead of now (so the sample's
  age always reads 0.0 s).
- /proc: the detail and Process screens look the owners' pids up on this machine, where a
  recording's pids are absent or belong to someone else; :func:`recorded_pids_not_looked_up`.
- the Process screen needs a process that exists. As root, that one picture is taken on a live
  :class:`KnownSocketsLab` in a temporary namespace, sampled exactly as `netdash --netns` does;
  its pids, start time and sizes are real and so differ from run to run (render it with
  ``--only process`` when that screen changed). Without root the replay is used and the
  picture's title says the facts are missing.
- the other live pictures (root only; left as they were without it) differ from run to run in
  their rates, pids and timings. The Diagnose tab's: ``diagnose`` is ``d`` on a connection
  stuck in SYN-SENT in the diag lab (tests/diaglab.py), whose namespace a has an nft rule
  dropping its packets to b's TLS port; ``resolver`` a lookup answered by two dnspython
  servers on 127.0.10.53 and .54 port 53, listed by a resolv.conf written to
  /tmp/netdash-shots (a fixed path: the picture shows it); ``stack-health`` a lossy veth
  (tests/losslab.py) with a transfer across it and a listener that never accepts. ``names`` is
  the known-sockets lab with ``n`` on, named by that folder's hosts and services files.

PNGs are made with ``rsvg-convert -w 1400``: it lays the SVG out in DejaVu Sans Mono, where
cairosvg falls back to a proportional font and the columns drift (LAB.md §6).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
# tests/ first: the repository root has a conftest.py of its own (the CI hooks).
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from textual.pilot import Pilot  # noqa: E402

from netdash.diagnose import DiagnoseOptions  # noqa: E402
from netdash.model import HostInfo, SocketSample  # noqa: E402
from netdash.record import ReplaySampler, read_recording  # noqa: E402
from netdash.ui.app import NetdashApp, ReplayAdapter  # noqa: E402
from netdash.ui.names import NameOptions  # noqa: E402
from netdash.ui.panes.connection_rows import ConnEntry  # noqa: E402
from netdash.ui.panes.connections import ConnectionsPane  # noqa: E402
from netdash.ui.panes.interfaces import InterfacesPane  # noqa: E402
from netdash.ui.screens.help import HelpScreen  # noqa: E402
from netdash.ui.screens.process import ProcessScreen  # noqa: E402
from netdash.ui.screens.socket_detail import SocketDetailScreen  # noqa: E402

if TYPE_CHECKING:
    from vethlab import VethLab

RECORDING = REPO / "tests" / "fixtures" / "connections.recording.json"
INTERFACES_RECORDING = REPO / "tests" / "fixtures" / "interfaces.recording.json"
OUTPUT = REPO / "screenshots"
SIZE = (120, 36)
SMALL = (80, 24)
PROCESS = "process"  # taken apart from SHOTS: live when root
DETAIL = (120, 40)  # at 36 lines the listener's owners, last in the detail, fall below the fold
SAMPLES = 2  # two samples: rates and the state sparklines need a previous one
PNG_WIDTH = 1400
AHEAD = 5.0  # seconds: more than any one picture takes to render
FACTS_WAIT = 3.0  # seconds for the process facts, cpu included (two reads 1 s apart)

Drive = Callable[[NetdashApp, Pilot], Awaitable[None]]


class RecordedSpacing:
    """A clock for :class:`ReplaySampler`: the k-th call returns the k-th recorded time, shifted
    so that call number ``count`` (the last one made) is :data:`AHEAD` seconds after the first.

    Being ahead, the last sample's age is below zero, which the status line shows as "0.0s"
    whatever the rendering took: the pictures come out byte for byte the same on every run.
    """

    def __init__(self, samples: Sequence[SocketSample], count: int) -> None:
        times = [sample.taken_at for sample in samples[:count]]
        self._offsets = [t - times[-1] for t in times]
        self._calls = 0
        self._anchor: float | None = None

    def __call__(self) -> float:
        if self._anchor is None:
            self._anchor = time.monotonic() + AHEAD
        offset = self._offsets[min(self._calls, len(self._offsets) - 1)]
        self._calls += 1
        return self._anchor + offset


def replay_app() -> NetdashApp:
    recording = read_recording(RECORDING)
    clock = RecordedSpacing(recording.samples, SAMPLES)
    sampler = ReplaySampler(recording.samples, clock=clock)
    return NetdashApp(ReplayAdapter(sampler.sample), recording.host, autostart=False)


def interfaces_app() -> NetdashApp:
    """The veth lab's recording (scripts/record_links_fixture.py), every sample replayed with
    its recorded spacing, so the graph has its shape and the rates are the recorded ones."""
    from netdash.ui.app import build_replay_app

    return build_replay_app(INTERFACES_RECORDING, autostart=False)


async def load_interfaces(app: NetdashApp, pilot: Pilot, *keys: str) -> None:
    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    for _ in read_recording(INTERFACES_RECORDING).links:
        app.sample_now()
        await pilot.pause()
    await pilot.press("2", *keys)
    await pilot.pause(0.3)  # the routes view reads its tables in a worker
    await pilot.pause()


async def interfaces(app: NetdashApp, pilot: Pilot) -> None:
    await load_interfaces(app, pilot)
    pane = app.query_one(InterfacesPane)
    busy = next(row for row in pane.view if row.data[0].name == "vA")
    pane.table.move_cursor_to_key(busy.key)
    await pilot.pause()


async def talkers(app: NetdashApp, pilot: Pilot) -> None:
    await load_interfaces(app, pilot, "t")


async def processes(app: NetdashApp, pilot: Pilot) -> None:
    await load_interfaces(app, pilot, "w")


async def routes(app: NetdashApp, pilot: Pilot) -> None:
    await load_interfaces(app, pilot, "r")


async def load(app: NetdashApp, pilot: Pilot, samples: int = SAMPLES) -> ConnectionsPane:
    for _ in range(samples):
        app.sample_now()
        await pilot.pause()
    return app.query_one(ConnectionsPane)


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*("space" if char == " " else char for char in text))


async def apply_filter(pilot: Pilot, text: str) -> None:
    await pilot.press("slash")
    await type_text(pilot, text)
    await pilot.press("enter")
    await pilot.pause()


async def cursor_to(pilot: Pilot, pane: ConnectionsPane, match: Callable[[ConnEntry], bool]):
    """Put the cursor on the first row that matches, as arrow keys would."""
    for row in pane.view:
        if match(row.data):
            pane.table.move_cursor_to_key(row.key)
            await pilot.pause()
            return
    raise SystemExit("screenshots: no row in the recording matches the picture's row")


def busiest(pane: ConnectionsPane) -> ConnEntry:
    entries = [row.data for row in pane.view]
    return max(entries, key=lambda entry: entry.rate.rx if entry.rate is not None else -1.0)


def is_web_listener(entry: ConnEntry) -> bool:
    return entry.sock.local_port == 80 and entry.sock.state == "LISTEN"


# ------------------------------------------------------------------------------ the pictures


async def default_view(app: NetdashApp, pilot: Pilot) -> None:
    await load(app, pilot)


async def grouped(app: NetdashApp, pilot: Pilot) -> None:
    await load(app, pilot)
    await pilot.press("g")


async def listening(app: NetdashApp, pilot: Pilot) -> None:
    await load(app, pilot)
    await pilot.press("l")


async def filtered(app: NetdashApp, pilot: Pilot) -> None:
    """Typed before the samples arrive: typing takes a while, and the age should read ~0 s."""
    await apply_filter(pilot, "state:estab port:80")
    await load(app, pilot)


async def detail(app: NetdashApp, pilot: Pilot) -> None:
    pane = await load(app, pilot)
    await cursor_to(pilot, pane, is_web_listener)
    await pilot.press("i")
    await pilot.pause()
    if not isinstance(app.screen, SocketDetailScreen):
        raise SystemExit("screenshots: `i` did not open the socket detail")
    await app.workers.wait_for_complete()  # the owners' command lines, read in a thread
    await pilot.pause()


async def nginx_worker(app: NetdashApp, pilot: Pilot) -> None:
    await open_nginx_worker(app, pilot, await load(app, pilot))


async def live_nginx_worker(app: NetdashApp, pilot: Pilot) -> None:
    """Two live samples a second apart (the lab's stream then shows its rate), then the worker."""
    app.sample_now()
    await pilot.pause(1.0)
    app.sample_now()
    await pilot.pause()
    await open_nginx_worker(app, pilot, app.query_one(ConnectionsPane))


async def open_nginx_worker(app: NetdashApp, pilot: Pilot, pane: ConnectionsPane) -> None:
    """Enter on nginx's busiest connection: the worker that serves the lab's stream.

    Which of the two workers accepted the stream is the kernel's choice; following the traffic
    makes the picture show that worker's sockets with their rates on every run.
    """
    await apply_filter(pilot, "proc:nginx state:estab")
    stream = busiest(pane)
    await cursor_to(pilot, pane, lambda entry: entry is stream)
    await pilot.press("enter")
    await pilot.pause()
    screen = app.screen
    if not isinstance(screen, ProcessScreen):
        raise SystemExit("screenshots: Enter on a connection did not open the Process screen")
    deadline = time.monotonic() + FACTS_WAIT
    while time.monotonic() < deadline and (screen.info is None or screen.info.cpu_percent is None):
        await pilot.pause(0.1)
    await pilot.pause()


def journal_app() -> NetdashApp:
    """The app following a journal file made from the test fixtures (systemd-journal-remote),
    as `netdash --journal-file F` would; the sockets from the connections recording."""
    import argparse
    import tempfile

    from journallab import make_journal
    from test_journal import FIXTURES, hostile_export

    from netdash.ui.app import build_replay_app, journal_opener

    folder = Path(tempfile.gettempdir()) / "netdash-journal"  # a fixed path: the picture shows it
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    exported = (FIXTURES / "services.export").read_bytes()
    journal = make_journal(folder / "fixture.journal", exported, hostile_export())
    app = build_replay_app(RECORDING, autostart=False)
    args = argparse.Namespace(
        journal_file=str(journal), journal_dir=None, journal_namespace=None, syslog_file=None
    )
    app.open_journal = journal_opener(args)
    return app


async def journal_view(app: NetdashApp, pilot: Pilot) -> None:
    from netdash.ui.panes.journal import JournalPane

    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    app.sample_now()  # the header's sockets, from the recording
    await pilot.press("4")
    pane = app.query_one(JournalPane)
    app.start_journal(pane.filter)
    for _ in range(100):
        await pilot.pause(0.05)
        if len(pane.view) >= 29:
            break
    pane.set_filter_text("re:reset|reload|fail")  # text terms: highlighted in the messages
    await pilot.pause()


@dataclass(frozen=True)
class Shot:
    name: str
    drive: Drive
    size: tuple[int, int] = SIZE
    app: Callable[[], NetdashApp] = replay_app


SHOTS = (
    Shot("connections", default_view),
    Shot("connections-grouped", grouped),
    Shot("connections-listening", listening),
    Shot("filter", filtered),
    Shot("detail", detail, DETAIL),
    Shot("connections-80x24", default_view, SMALL),
    Shot("interfaces", interfaces, app=interfaces_app),
    Shot("interfaces-80x24", interfaces, SMALL, app=interfaces_app),
    Shot("talkers", talkers, app=interfaces_app),
    Shot("processes-bandwidth", processes, app=interfaces_app),
    Shot("routes", routes, app=interfaces_app),
    Shot("journal", journal_view, app=journal_app),
)


class RecordedPid(Exception):
    def __str__(self) -> str:
        return "replay: the recording has no process facts, and its pids are not this machine's"


def no_process_facts(pid: int) -> object:
    raise RecordedPid


@contextmanager
def recorded_pids_not_looked_up() -> Iterator[None]:
    """The detail and Process screens read /proc for the owners' pids, but a recording's pids
    are another machine's: here they are absent, or an unrelated process that has the number
    now (pid_max is 32768 on this VM). A recording carries no command lines or process facts,
    so none is read while replayed pictures are taken.
    """
    from netdash.sources import owners
    from netdash.ui.screens import process

    real = owners.read_cmdline, process.ProcessWatcher
    owners.read_cmdline = lambda pid, proc_root=None: None
    process.ProcessWatcher = no_process_facts  # type: ignore[assignment]
    try:
        yield
    finally:
        owners.read_cmdline, process.ProcessWatcher = real


async def take(app: NetdashApp, shot: Shot, output: Path, title: str | None = None) -> Path:
    async with app.run_test(size=shot.size) as pilot:
        await shot.drive(app, pilot)
        await pilot.pause()
        svg = app.export_screenshot(title=title)
    path = output / f"{shot.name}.svg"
    path.write_text(svg, encoding="utf-8")
    return path


# --------------------------------------------------------------------- the live Process screen


def live_app(stack: ExitStack, names: NameOptions | None = None) -> NetdashApp:
    """The app on a fresh known-sockets lab, sampled as `netdash --netns NAME` samples."""
    from lablib import KnownSocketsLab

    from conftest import temporary_netns
    from netdash.engine import ConnectionsSampler
    from netdash.netns import resolve_netns
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    netns = stack.enter_context(temporary_netns("shot"))
    stack.enter_context(KnownSocketsLab(netns, loadgen_pairs=25))
    from netdash.sources.cgroups import CgroupReader
    from netdash.sources.processes import ProcessReader

    sampler = ConnectionsSampler(SocketReader(netns=resolve_netns(netns)), OwnerMap())
    host = read_recording(RECORDING).host  # the Process screen shows no host; keep the example's
    return NetdashApp(
        sampler,
        host,
        autostart=False,
        processes=ProcessReader(),
        cgroups=CgroupReader(),
        names=names,
    )


async def live_processes(app: NetdashApp, pilot: Pilot) -> None:
    """The Processes tab on the lab: its socket owners, two samples a second apart (CPU %)."""
    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    await pilot.press("3")
    app.sample_now()
    await pilot.pause(1.0)
    app.sample_now()
    await pilot.pause()


async def live_stack(app: NetdashApp, pilot: Pilot) -> None:
    """Connections › :8080 › java › stack: the lab's java is a Python process."""
    from netdash.ui.screens.stack import ConfirmStackDump

    app.sample_now()
    await pilot.pause()
    pane = app.query_one(ConnectionsPane)
    await cursor_to(pilot, pane, lambda e: e.sock.local_port == 8080 and e.sock.state == "LISTEN")
    await pilot.press("enter", "k")
    for _ in range(50):
        await pilot.pause(0.05)
        if isinstance(app.screen, ConfirmStackDump):
            break
    await pilot.press("y")
    for _ in range(100):
        await pilot.pause(0.1)
        if "Thread" in "\n".join(s.text for s in app.screen._compositor.render_strips()):
            break
    await pilot.pause()


FIREWALL_RULES = """
table inet web {
    set services { type inet_service; elements = { 80, 443, 5201 } }
    chain input {
        type filter hook input priority 0; policy drop;
        ct state established,related counter accept
        iif "lo" accept
        ct state invalid counter drop comment "invalid"
        udp dport 9999 counter drop comment "blocked probe"
        tcp dport @services ct state new counter accept comment "web"
        icmp type echo-request limit rate 5/second counter accept
    }
}
"""


def firewall_app(stack: ExitStack) -> NetdashApp:
    """A veth lab whose namespace b has FIREWALL_RULES and gets traffic from a: connections to
    the web ports and probes of a blocked one, read as `netdash --netns b` reads them."""
    import subprocess

    from vethlab import ADDR_B, veth_lab

    from netdash.engine import Poller
    from netdash.netns import resolve_netns
    from netdash.sources.conntrack import ConntrackReader
    from netdash.sources.firewall import FirewallReader

    lab = stack.enter_context(veth_lab())
    subprocess.run(["ip", "netns", "exec", lab.b, "nft", "-f", "-"], input=FIREWALL_RULES,
                   text=True, check=True)  # fmt: skip
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.b, sys.executable, "-c",
         "import socket,time\ns=socket.create_server(('0.0.0.0',5201))\n"
         "c=[s.accept() for _ in range(3)]\ntime.sleep(60)"]
    )  # fmt: skip
    stack.callback(server.kill)
    time.sleep(0.3)
    client = (
        "import socket,time\n"
        f"c=[socket.create_connection(('{ADDR_B}',5201)) for _ in range(3)]\n"
        "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        f"for i in range(400): u.sendto(b'x',('{ADDR_B}',9999)); time.sleep(0.004)\n"
        "time.sleep(60)"
    )
    sender = subprocess.Popen(["ip", "netns", "exec", lab.a, sys.executable, "-c", client])
    stack.callback(sender.kill)
    target = resolve_netns(lab.b)
    app = replay_app()
    app.firewall, app.conntrack = FirewallReader(netns=target), ConntrackReader(netns=target)
    app.firewall_poller = Poller(
        "firewall", app._sample_firewall_in_thread, app._publish_firewall, 1.0
    )
    return app


async def live_firewall(app: NetdashApp, pilot: Pilot) -> None:
    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    app.sample_now()
    await pilot.press("5")
    app.firewall_poller.run_once()
    await pilot.pause(1.0)
    app.firewall_poller.run_once()
    await pilot.pause()


# ---------------------------------------------------------------- the Diagnose tab, and names

#: Files the Diagnose and names pictures show by path: a fixed folder, so the path reads the same.
LAB_ETC = Path("/tmp/netdash-shots")
#: Two resolvers on port 53 (where resolv.conf points; root), answering for lab.test only.
NAMESERVERS = ("127.0.10.53", "127.0.10.54")
RESOLV_CONF = f"""\
# Generated by NetworkManager
search lab.test corp.example
nameserver {NAMESERVERS[0]}
nameserver {NAMESERVERS[1]}
options edns0 trust-ad timeout:2 attempts:2
"""
LAB_ZONE = """
$TTL 300
@      SOA   ns1.lab.test. hostmaster.lab.test. 2026112301 3600 600 86400 60
@      NS    ns1.lab.test.
ns1    A     127.0.10.53
www    60    CNAME web.lab.test.
web    A     192.0.2.10
web    A     192.0.2.11
web    AAAA  2001:db8::10
"""
#: The known-sockets lab's remote addresses, named as Debian's /etc/hosts names them.
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
#: netbase's lines for the services the lab's roles stand for. Its whole file would name the
#: lab's made-up ports after what IANA registered there (7000 "bbs", 6667 "ircd"), as `ss -r`
#: does; that is right on a real server and puzzling in a picture of a lab.
SERVICES = """\
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
ntp\t\t123/udp\t\t\t\t# Network Time Protocol
mdns\t\t5353/udp\t\t\t# Multicast DNS
postgresql\t5432/tcp\tpostgres\t# PostgreSQL Database
http-alt\t8080/tcp\twebcache\t# WWW caching service
"""
PAYMENTS = 8443  # the blocked port: the diag lab's TLS service listens there in b
VERDICT_WAIT = 10.0  # seconds: the diagnosis's connect times out after 2


def egress_rules(address: str) -> str:
    """An output chain that drops this host's packets to ``address``:PAYMENTS, as a change
    freeze would, with a comment saying why."""
    return f"""
table inet egress {{
    chain output {{
        type filter hook output priority 0; policy accept;
        ip daddr {address} tcp dport {PAYMENTS} counter drop comment "freeze payments (CHG-1042)"
    }}
}}
"""


def shots_etc() -> Path:
    """:data:`LAB_ETC` with the lab's resolv.conf, hosts and services (written each run)."""
    LAB_ETC.mkdir(exist_ok=True)
    for name, text in (("resolv.conf", RESOLV_CONF), ("hosts", HOSTS), ("services", SERVICES)):
        (LAB_ETC / name).write_text(text, encoding="utf-8")
    return LAB_ETC


def lab_resolvers(stack: ExitStack) -> Path:
    """:data:`NAMESERVERS` serving :data:`LAB_ZONE` until ``stack`` closes; the resolv.conf
    that lists them."""
    from dnslab import ZoneServer, authoritative

    for address in NAMESERVERS:
        server = ZoneServer(address, 53, responder=authoritative(LAB_ZONE, "lab.test."))
        stack.callback(server.close)
    return shots_etc() / "resolv.conf"


def host_in(netns: str | None) -> HostInfo:
    """The examples' host ("web-1"), looking at ``netns`` (None: its own): the header's words."""
    return replace(read_recording(RECORDING).host, netns=netns or "host")


def diagnose_app(
    netns: str | None, resolv_conf: Path, options: DiagnoseOptions | None = None
) -> NetdashApp:
    """The app on ``netns`` (None: this host's) as `netdash [--netns NETNS] --resolv-conf FILE`
    builds it: its sockets, stack counters, and the Diagnose tab's settings."""
    from netdash.engine import ConnectionsSampler
    from netdash.netns import HOST, resolve_netns
    from netdash.sources.dnsconfig import resolver_config
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader
    from netdash.sources.stack import StackReader
    from netdash.ui.panes.diagnose import DiagnoseSettings

    target = HOST if netns is None else resolve_netns(netns)
    options = options or DiagnoseOptions(resolv_conf=resolv_conf, netns=target, timeout=2.0)
    settings = DiagnoseSettings(
        resolver=resolver_config(resolv_conf),
        nameservers=options.nameservers,
        netns=netns,
        root_hints=None,
        options=options,
    )
    sampler = ConnectionsSampler(SocketReader(netns=target), OwnerMap())
    return NetdashApp(
        sampler,
        host_in(netns),
        autostart=False,
        stack=StackReader(netns=target),
        diagnose=settings,
    )


async def wait_until(pilot: Pilot, ready: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.05)


def blocked_payments_app(stack: ExitStack) -> NetdashApp:
    """The diag lab (tests/diaglab.py: a TLS service on b's :data:`PAYMENTS`), an nft rule in a
    that drops a's packets to it, and a client in a stuck connecting (SYN-SENT): netdash looks
    at a, where a user would ask why the client hangs."""
    import socket

    from diaglab import ADDR_B, diag_lab
    from diaglab import nft as nft_in

    from netdash.netns import entered, resolve_netns

    lab = stack.enter_context(diag_lab())
    nft_in(lab.client, egress_rules(ADDR_B))
    with entered(resolve_netns(lab.client)):
        client = socket.socket()
    stack.callback(client.close)
    client.setblocking(False)
    client.connect_ex((ADDR_B, PAYMENTS))  # the SYN is dropped: SYN-SENT for minutes
    resolv_conf = shots_etc() / "resolv.conf"  # the reach view does not show it
    options = DiagnoseOptions(
        nameservers=(lab.dns,),
        resolv_conf=resolv_conf,
        netns=resolve_netns(lab.client),
        timeout=2.0,
        dns_timeout=1.0,
    )
    return diagnose_app(lab.client, resolv_conf, options)


async def live_diagnose(app: NetdashApp, pilot: Pilot) -> None:
    """Connections: the cursor on the stuck connection, ``d``, and the checklist's verdict."""
    from netdash.ui.panes.reach import ReachPane

    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    pane = await load(app, pilot, samples=1)
    await cursor_to(pilot, pane, lambda e: e.sock.state == "SYN_SENT")
    await pilot.press("d")
    reach = app.query_one(ReachPane)
    await wait_until(pilot, lambda: reach.diagnosis is not None, VERDICT_WAIT, "the verdict")
    app.sample_now()  # as the poller would have meanwhile: the header's age reads ≤1s
    await pilot.pause()


def resolver_app(stack: ExitStack) -> NetdashApp:
    """The app on this host with the lab's resolv.conf, its two nameservers running."""
    return diagnose_app(None, lab_resolvers(stack))


async def live_resolver(app: NetdashApp, pilot: Pilot) -> None:
    """``6`` ``r``, and a lookup typed at the prompt: both servers' answers with their TTLs."""
    from netdash.ui.panes.resolver import ResolverPane

    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    app.sample_now()  # the header's sockets (this host's)
    await pilot.press("6", "r")
    await type_text(pilot, "www.lab.test A")
    await pilot.press("enter")
    resolver = app.query_one(ResolverPane)
    await wait_until(pilot, lambda: not resolver.busy and bool(resolver.parts), 5.0, "replies")
    await pilot.press("escape")  # out of the prompt: the footer shows the view's keys again
    await pilot.pause()


def stack_health_app(stack: ExitStack) -> NetdashApp:
    """A lossy veth (tests/losslab.py: one data segment in four from a to b dropped) with a
    transfer running across it, and a listener in a that never accepts while connections keep
    coming (tests/test_stack.py): retransmits and listen overflows move in a."""
    from losslab import lossy_veth_lab
    from test_stack import overflowing_listener

    lab = stack.enter_context(lossy_veth_lab())
    stack.enter_context(overflowing_listener(lab.a, every=0.02))
    stack.enter_context(lossy_transfer(lab))
    return diagnose_app(lab.a, shots_etc() / "resolv.conf")


@contextmanager
def lossy_transfer(lab: VethLab) -> Iterator[None]:
    """Bytes sent from a to b's :data:`losslab.PORT` over one connection until the body ends
    (b reads them all): the sender retransmits what the lossy link dropped."""
    import socket
    import threading

    from losslab import PORT
    from vethlab import ADDR_B

    from netdash.netns import entered, resolve_netns

    with entered(resolve_netns(lab.b)):
        listener = socket.create_server((ADDR_B, PORT))
    with entered(resolve_netns(lab.a)):
        sender = socket.create_connection((ADDR_B, PORT), timeout=5)
    receiver, _ = listener.accept()
    stop = threading.Event()

    def drain() -> None:
        while receiver.recv(1 << 16):
            pass

    def send() -> None:
        chunk = bytes(1 << 16)
        while not stop.is_set():
            sender.sendall(chunk)

    threads = [threading.Thread(target=work, daemon=True) for work in (send, drain)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        threads[0].join(10)  # the last chunk sent: then the receiver gets its end of file
        sender.shutdown(socket.SHUT_WR)
        threads[1].join(10)
        for sock in (sender, receiver, listener):
            sock.close()


async def live_stack_health(app: NetdashApp, pilot: Pilot) -> None:
    """``6``: the stack counters, sampled twice a second apart (rates, and what moves)."""
    if isinstance(app.screen, HelpScreen):
        await pilot.press("escape")
    app.sample_now()
    await pilot.press("6")
    assert app.stack_poller is not None
    app.stack_poller.run_once()
    await pilot.pause(1.0)
    app.stack_poller.run_once()
    await pilot.pause()


def names_app(stack: ExitStack) -> NetdashApp:
    """:func:`live_app` with names from the lab's hosts file (every remote address is in it:
    no query goes out), its services, and its resolv.conf for the rest."""
    resolv_conf = lab_resolvers(stack)
    names = NameOptions(
        resolv_conf=resolv_conf, hosts=LAB_ETC / "hosts", services=LAB_ETC / "services"
    )
    return live_app(stack, names)


async def live_names(app: NetdashApp, pilot: Pilot) -> None:
    """The lab without its few hundred idle pairs (loadgen), two samples a second apart
    (rates), then ``n``: names in the Remote column, services on both sides."""
    await apply_filter(pilot, "!proc:loadgen")
    app.sample_now()
    await pilot.pause(1.0)
    app.sample_now()
    await pilot.pause()
    await pilot.press("n")
    await wait_until(pilot, lambda: app.names.active, 5.0, "names")
    await pilot.pause(0.3)  # past one coalesced repaint
    app.clear_notifications()  # "names via …": the header says it too
    await pilot.pause()


#: Pictures of live processes: taken on a fresh lab when root, else left out (with a note).
LIVE_SHOTS = {
    "processes": live_processes,
    "stack": live_stack,
    "firewall": live_firewall,
    "diagnose": live_diagnose,
    "resolver": live_resolver,
    "stack-health": live_stack_health,
    "names": live_names,
}
LIVE_APPS = {
    "firewall": firewall_app,
    "diagnose": blocked_payments_app,
    "resolver": resolver_app,
    "stack-health": stack_health_app,
    "names": names_app,
}


async def take_process(output: Path) -> tuple[Path, str | None]:
    """process.svg, live when root; the note says what is missing when it is not."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        note = "replay: process facts unavailable (run as root for a live lab)"
        with recorded_pids_not_looked_up():
            shot = Shot(PROCESS, nginx_worker)
            return await take(replay_app(), shot, output, title=f"netdash — {note}"), note
    with ExitStack() as stack:
        return await take(live_app(stack), Shot(PROCESS, live_nginx_worker), output), None


# ---------------------------------------------------------------------------------- PNGs


def to_png(svg: Path) -> Path:
    """The PNG beside ``svg``.

    Rich writes each run of cells as one ``<text>`` with spaces as U+00A0, and librsvg drops
    that character at the start of a ``<text>`` unless whitespace is preserved: every cell after
    "root", a key in the footer, or a right-aligned number would shift one column left. Browsers
    keep it, so the SVG stays as Textual exported it; only rsvg's copy says ``xml:space``.
    """
    png = svg.with_suffix(".png")
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    subprocess.run(
        ["rsvg-convert", "-w", str(PNG_WIDTH), "-o", str(png)],
        input=text.encode(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return png


async def render_all(output: Path, only: set[str]) -> tuple[list[Path], list[str]]:
    output.mkdir(parents=True, exist_ok=True)
    with recorded_pids_not_looked_up():
        svgs = [await take(shot.app(), shot, output) for shot in SHOTS if shot.name in only]
    notes: list[str] = []
    for name, drive in LIVE_SHOTS.items():
        if name not in only:
            continue
        if os.geteuid() != 0:
            notes.append(f"{name}: needs root (a live lab); left as it was")
            continue
        with ExitStack() as stack:
            app = LIVE_APPS.get(name, live_app)(stack)
            svgs.append(await take(app, Shot(name, drive), output))
    if PROCESS not in only:
        return svgs, notes
    process, note = await take_process(output)
    return [*svgs, process], [*notes, note] if note else notes


def main(argv: list[str] | None = None) -> int:
    names = [shot.name for shot in SHOTS] + [PROCESS, *LIVE_SHOTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--no-png", action="store_true", help="SVGs only")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"render only these ({', '.join(names)}); the live '{PROCESS}' differs every run",
    )
    args = parser.parse_args(argv)
    if not args.no_png and shutil.which("rsvg-convert") is None:
        print("screenshots: needs rsvg-convert (apt-get install librsvg2-bin)", file=sys.stderr)
        return 1
    started = time.monotonic()
    svgs, notes = asyncio.run(render_all(args.output, set(args.only)))
    for svg in svgs:
        made = [svg] if args.no_png else [svg, to_png(svg)]
        print("  ".join(f"{path} ({path.stat().st_size / 1024:.0f} KiB)" for path in made))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(svgs)} pictures in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
