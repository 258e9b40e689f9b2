"""The live app's default path does not import pyroute2: importing any of it costs ~8 MB of RSS
on top of the app (~22 MB alone), and netdash's peak RSS has a target to meet.

Each check runs in a fresh interpreter (this test process has imported pyroute2 long ago, for
other tests' oracles) and reports which ``pyroute2`` modules it ended up with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_unless_root, temporary_netns
from tests.vethlab import ip, ip_json

#: What the live app imports to start (ui/app.py, and build_live_app's readers), and the
#: routes source, which keeps pyroute2 for rules and neighbours only.
STARTUP_MODULES = (
    "netdash.cli",
    "netdash.ui.app",
    "netdash.sources.cgroups",
    "netdash.sources.conntrack",
    "netdash.sources.firewall",
    "netdash.sources.host",
    "netdash.sources.links",
    "netdash.sources.processes",
    "netdash.sources.routes",
    "netdash.sources.stack",
)

REPO = Path(__file__).resolve().parents[1]

IMPORTS = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2")))
"""

SAMPLES = """
import json, sys
import netdash.ui.app
from netdash.netns import resolve_netns
from netdash.sources.links import LinkReader
from netdash.sources.routes import RouteReader

def pyroute2_modules():
    return sorted(m for m in sys.modules if m.split(".")[0] == "pyroute2")

target = resolve_netns(sys.argv[1])
with LinkReader(target) as reader:
    first, second = reader.sample(), reader.sample()
with RouteReader(target) as routes:
    table = routes.routes()
    before_rules = pyroute2_modules()
    routes.rules()  # still decoded by pyroute2: proves the check sees an import
print(json.dumps({
    "links": {link.ifindex: link.name for link in second.links},
    "addresses": {link.name: link.addresses for link in first.links},
    "counted": sorted(second.counters),
    "routes": len(table),
    "after_samples": before_rules,
    "after_rules": pyroute2_modules(),
}))
"""


def run_python(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,  # this checkout's netdash, whatever is installed
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def netns() -> Iterator[str]:
    skip_unless_root()
    with temporary_netns("np") as name:
        ip("-n", name, "link", "add", "vN", "type", "veth", "peer", "name", "vM")
        ip("-n", name, "link", "set", "vN", "addrgenmode", "none")
        ip("-n", name, "addr", "add", "10.201.40.1/24", "dev", "vN")
        ip("-n", name, "link", "set", "vN", "up")
        yield name


def test_importing_the_app_and_its_readers_leaves_pyroute2_out() -> None:
    assert json.loads(run_python(IMPORTS, *STARTUP_MODULES)) == []


def test_the_importer_would_see_pyroute2() -> None:
    """The check above can fail: a module that imports pyroute2 shows up."""
    assert "pyroute2" in json.loads(run_python(IMPORTS, "netdash.ui.app", "pyroute2"))


def test_link_samples_in_a_namespace_do_without_pyroute2(netns: str) -> None:
    got = json.loads(run_python(SAMPLES, netns))
    assert got["after_samples"] == []
    assert "pyroute2" in got["after_rules"]  # rules() imports it when asked, not before
    expected = {str(e["ifindex"]): e["ifname"] for e in ip_json(netns, "link")}
    assert got["links"] == expected and set(expected.values()) == {"lo", "vN", "vM"}
    assert got["counted"] == sorted(int(index) for index in expected)
    assert got["addresses"]["vN"] == ["10.201.40.1/24"]
    assert got["routes"] >= 2  # vN's subnet route and its local route, read without pyroute2
