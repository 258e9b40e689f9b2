"""dnspython (the ``dns`` package, several MB of resident memory) is loaded only when a name is
first asked: the live app starts without it, and ``n``, a lookup in the resolver view and a
diagnosis of a name each load it and still work.

Each case runs the real ``netdash`` start path (the CLI's parser, ``build_live_app``) headless in
a fresh interpreter — this one imported dnspython long ago — and prints what it saw as JSON.
Every DNS question goes to a :class:`~tests.dnslab.ZoneServer` on 127.0.53.x started here, and
the only connection is to a refused port on 127.0.0.1: nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = "import sys; from tests.test_lazy_imports import main; sys.exit(main(sys.argv[1:]))"
Seen = dict[str, Any]

# -- in the child interpreter -----------------------------------------------------------------


def dnspython_loaded() -> bool:
    return "dns" in sys.modules


@asynccontextmanager
async def live_app(nameserver: str, resolv_conf: str) -> AsyncIterator[tuple[Any, Any]]:
    """``netdash --nameserver NS --resolv-conf FILE`` built as the CLI builds it, running
    headless; yields (app, pilot) once it has been up for a moment."""
    from netdash.cli import build_parser
    from netdash.ui.app import build_live_app

    args = build_parser().parse_args(["--nameserver", nameserver, "--resolv-conf", resolv_conf])
    app = build_live_app(args)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)
        yield app, pilot


async def until(pilot: Any, done: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        await pilot.pause(0.05)
    return True


async def submit(pilot: Any, field: Any, text: str) -> None:
    """Into a prompt that has the focus (pasted: a key press costs ~0.1 s on a busy machine)."""
    field.value = text
    await pilot.press("enter")


async def names_case(nameserver: str, resolv_conf: str, _refused: str) -> Seen:
    async with live_app(nameserver, resolv_conf) as (app, pilot):
        seen: Seen = {"at start": dnspython_loaded()}
        await pilot.press("n")
        seen["names on"] = await until(pilot, lambda: app.names.active)
        seen.update(after=dnspython_loaded(), error=app.names.error, source=app.names.source)
    return seen


async def resolver_case(nameserver: str, resolv_conf: str, _refused: str) -> Seen:
    from rich.console import Console
    from textual.widgets import Input, Static

    from netdash.ui.panes.resolver import ResolverPane

    async with live_app(nameserver, resolv_conf) as (app, pilot):
        seen: Seen = {"at start": dnspython_loaded()}
        await pilot.press("6", "r")
        pane = app.query_one(ResolverPane)
        seen["view shown"] = dnspython_loaded()
        await submit(pilot, pane.query_one("#resolver-query", Input), f"www.lab.test @{nameserver}")
        seen["answered"] = await until(pilot, lambda: pane.dig is not None and not pane.busy)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(pane.query_one("#resolver-answer", Static).content)
        seen.update(after=dnspython_loaded(), answer=console.export_text())
    return seen


async def reach_case(nameserver: str, resolv_conf: str, refused: str) -> Seen:
    from textual.widgets import Input

    from netdash.ui.panes.reach import ReachPane

    async with live_app(nameserver, resolv_conf) as (app, pilot):
        seen: Seen = {"at start": dnspython_loaded()}
        await pilot.press("6", "d")
        pane = app.query_one(ReachPane)
        field = pane.query_one("#reach-input", Input)
        for key, target in (("address", refused), ("name", "nothere.lab.test:80")):
            verdict = await diagnosed(pilot, pane, field, target)
            seen[key] = {"verdict": verdict, "dnspython": dnspython_loaded()}
    return seen


async def diagnosed(pilot: Any, pane: Any, field: Any, target: str) -> str | None:
    """The verdict on ``target`` typed into the reach view (None if none came)."""
    before = pane.diagnosis
    await submit(pilot, field, target)
    await until(pilot, lambda: pane.diagnosis not in (None, before))
    return None if pane.diagnosis in (None, before) else pane.diagnosis.verdict


CASES = {"names": names_case, "resolver": resolver_case, "reach": reach_case}


def main(argv: list[str]) -> int:
    case, *args = argv
    print(json.dumps(asyncio.run(CASES[case](*args))))
    return 0


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def nameserver(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A zone server's ``ADDR:PORT`` and a resolv.conf naming it."""
    from netdash.sources.dnsconfig import format_server
    from tests.dnslab import zone_server

    with zone_server() as server:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {server.address[0]}\n")
        yield format_server(server.address), str(resolv)


@pytest.fixture
def refused() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a bound TCP socket that does not listen: a connect is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def run_case(case: str, nameserver: tuple[str, str], refused: str) -> Seen:
    result = subprocess.run(
        [sys.executable, "-c", RUN, case, *nameserver, refused],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen: Seen = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


def test_the_app_starts_without_dnspython_and_n_loads_it(nameserver, refused) -> None:
    seen = run_case("names", nameserver, refused)
    assert seen["at start"] is False
    assert seen["names on"] is True and seen["error"] is None
    assert seen["after"] is True
    assert seen["source"].startswith(f"{nameserver[0]} (--nameserver)")


def test_a_lookup_in_the_resolver_view_loads_dnspython_and_answers(nameserver, refused) -> None:
    seen = run_case("resolver", nameserver, refused)
    assert seen["at start"] is False and seen["view shown"] is False
    assert seen["answered"] is True and seen["after"] is True
    answer = " ".join(seen["answer"].split())
    assert f"{nameserver[0]} NOERROR" in answer
    assert "www.lab.test. 300 A 192.0.2.10" in answer


def test_reach_loads_dnspython_only_for_a_name(nameserver, refused) -> None:
    seen = run_case("reach", nameserver, refused)
    assert seen["at start"] is False
    assert seen["address"]["verdict"] is not None
    assert seen["address"]["verdict"].startswith("refused")
    assert seen["address"]["dnspython"] is False  # an address needs no name lookup
    assert seen["name"]["verdict"].startswith("dns-failure")
    assert "NXDOMAIN" in seen["name"]["verdict"]
    assert seen["name"]["dnspython"] is True
