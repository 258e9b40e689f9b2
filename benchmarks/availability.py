"""Which parts of the benchmark can run with the netdash that is checked out right now.

The benchmark was written while netdash's modules were landing one by one; a part whose modules
are missing (or do not import) is reported as "not available yet: <why>" instead of crashing the
run, so the other parts still measure.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
from collections.abc import Iterable
from functools import cache

PARTS = ("sample", "dump", "ui", "keys", "rss", "cpu")

_SAMPLE = (
    ("netdash.sources.sockets", "SocketReader"),
    ("netdash.sources.owners", "OwnerMap"),
    ("netdash.netns", "resolve_netns"),
    ("netdash.engine", "ConnectionsSampler"),
)
_UI = (
    ("netdash.ui.tableview", "TableView"),
    ("netdash.ui.widgets.virtual_table", "VirtualTable"),
    ("netdash.ui.app", "NetdashApp"),
)


@cache
def _missing_attr(module: str, name: str) -> str | None:
    try:
        loaded = importlib.import_module(module)
    except ImportError as err:
        return f"{module} is not there yet ({err})"
    except Exception as err:  # a module being written may fail in any way
        return f"{module} fails to import: {type(err).__name__}: {err}"
    if not hasattr(loaded, name):
        return f"{module}.{name} is not there yet"
    return None


def _first_missing(needs: Iterable[tuple[str, str]]) -> str | None:
    for module, name in needs:
        reason = _missing_attr(module, name)
        if reason:
            return reason
    return None


@cache
def _cli_missing() -> str | None:
    """`netdash dump connections --json` and `netdash --netns` must exist and parse."""
    from benchmarks.live import netdash_command

    command = netdash_command()
    for args, needle in ((["dump", "connections", "--help"], "--no-unix"), (["--help"], "--netns")):
        try:
            done = subprocess.run(
                [*command, *args], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError as err:
            return f"cannot run {' '.join(command)}: {err}"
        if done.returncode != 0 or needle not in done.stdout:
            return f"`netdash {' '.join(args)}` does not offer {needle} yet"
    return None


def _live_missing() -> str | None:
    if shutil.which("tmux") is None:
        return "tmux is not installed"
    return _cli_missing() or _first_missing(_UI)


def unavailable_parts(parts: Iterable[str]) -> dict[str, str]:
    """part -> why it cannot run now, for each requested part that cannot."""
    checks = {
        "sample": lambda: _first_missing(_SAMPLE),
        "dump": _cli_missing,
        "ui": lambda: _first_missing(_UI),
        "keys": lambda: _first_missing(_UI),
        "rss": _live_missing,
        "cpu": _live_missing,
    }
    missing: dict[str, str] = {}
    for part in parts:
        reason = checks[part]()
        if reason:
            missing[part] = reason
    return missing
