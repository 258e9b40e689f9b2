"""Fixtures shared by the test modules.

Root: a test marked ``@pytest.mark.root`` (or using :data:`needs_root`, or a fixture below that
needs root) is skipped with the reason when not run as root. CI runs everything as root.

Network namespaces: :func:`temporary_netns` makes one with a unique name (it contains the pid)
and ``lo`` up, and deletes it afterwards; ``netns`` and ``netns_module`` are that as fixtures.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IS_ROOT = os.geteuid() == 0
ROOT_REASON = (
    "needs root (network namespaces, setns, other users' sockets): run as root, as CI does"
)

#: Decorate a test that needs root; it is skipped with a clear reason otherwise.
needs_root = pytest.mark.root

_names = itertools.count(1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None and not IS_ROOT:
        pytest.skip(ROOT_REASON)


def skip_unless_root() -> None:
    """For fixtures: skip the requesting test unless we are root and `ip` is installed."""
    if not IS_ROOT:
        pytest.skip(ROOT_REASON)
    if shutil.which("ip") is None:
        pytest.skip("needs the `ip` command (iproute2)")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@contextmanager
def temporary_netns(tag: str = "t") -> Iterator[str]:
    """A fresh network namespace named ``nd-<tag><pid>-<n>`` with ``lo`` up; deleted after."""
    name = f"nd-{tag}{os.getpid()}-{next(_names)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)


@pytest.fixture
def netns() -> Iterator[str]:
    """The name of a fresh network namespace for one test (needs root: skips otherwise)."""
    skip_unless_root()
    with temporary_netns() as name:
        yield name


@pytest.fixture(scope="module")
def netns_module() -> Iterator[str]:
    """A fresh network namespace shared by the tests of one module (needs root)."""
    skip_unless_root()
    with temporary_netns("m") as name:
        yield name
