"""The project's own promises: layering, and CI running exactly the README's test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CORE_MODULES = (
    "netdash.model",
    "netdash.sources",
    "netdash.sources.sockets",
    "netdash.sources.sockdiag",
    "netdash.sources.procnet",
    "netdash.sources.owners",
    "netdash.sources.process",
    "netdash.sources.host",
    "netdash.sources.links",
    "netdash.sources.linkstats",
    "netdash.sources.routes",
    "netdash.sources.dnsconfig",
    "netdash.sources.rtnl",
    "netdash.sources.processes",
    "netdash.sources.cgroups",
    "netdash.sources.pyspy",
    "netdash.sources.journal",
    "netdash.sources.syslog",
    "netdash.dump_journal",
    "netdash.sources.conntrack",
    "netdash.engine_conntrack",
    "netdash.dump_conntrack",
    "netdash.sources.firewall",
    "netdash.engine_firewall",
    "netdash.dump_firewall",
    "netdash.sources.stack",
    "netdash.dump_stack",
    "netdash.netns",
    "netdash.engine",
    "netdash.engine_links",
    "netdash.engine_procs",
    "netdash.talkers",
    "netdash.dump_procs",
    "netdash.sources.dns",
    "netdash.sources.dnstrace",
    "netdash.dump_dns",
    "netdash.diagnose",
    "netdash.diagnose_connect",
    "netdash.diagnose_firewall",
    "netdash.diagnose_resolve",
    "netdash.diagnose_rules",
    "netdash.diagnose_steps",
    "netdash.diagnose_verdict",
    "netdash.dump_diagnose",
    "netdash.query",
    "netdash.record",
    "netdash.dump",
    "netdash.cli",
)


def test_model_sources_and_engine_do_not_import_textual():
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(len(leaked)); sys.exit(1 if leaked else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_ui_does_import_textual():
    """The check above can fail: importing the UI does pull Textual in."""
    code = "import sys, netdash.ui.app; sys.exit(0 if 'textual' in sys.modules else 1)"
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    assert len(commands) >= 2, "the README opens with an install command and a test command"
    test_command = commands[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_no_shell_commands_are_built():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "netdash").rglob("*.py")
        if re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(", path.read_text())
    ]
    assert offenders == []
