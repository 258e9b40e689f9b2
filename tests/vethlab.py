"""Two network namespaces joined by a veth pair (LAB.md recipe 1), and `ip` as the oracle.

``vA`` (10.201.0.1/24, fd00:201::1/64) lives in namespace ``a``, ``vB`` (.2, ::2) in ``b``. The
links are created directly inside the namespaces (nothing touches the host's interface list),
with ``addrgenmode none`` and ``nodad`` so no link-local address or DAD probe turns up late and
changes what the tests compare.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from netdash.model import LINK_COUNTER_NAMES
from netdash.textsafe import decode
from tests.conftest import temporary_netns

ADDR_A, ADDR_B = "10.201.0.1", "10.201.0.2"
ADDR6_A, ADDR6_B = "fd00:201::1", "fd00:201::2"


def ip(*args: str | bytes) -> str:
    """Run `ip` and return its stdout; bytes arguments pass non-UTF-8 names through."""
    done = subprocess.run(["ip", *args], capture_output=True, timeout=10, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done.stdout.decode("utf-8", "surrogateescape")


def ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    return json.loads(ip("-n", netns, "-j", *args))


def ip_name(name: str) -> str:
    """A name from `ip -j` (non-UTF-8 bytes kept as surrogates) the way netdash shows it."""
    return decode(name.encode("utf-8", "surrogateescape"))


def ip_counters(entry: dict[str, Any]) -> dict[str, int]:
    """Every ``rtnl_link_stats64`` field of one `ip -j -s -s` entry by netdash's names (`ip`
    leaves out the compressed and nohandler counters while they are 0)."""
    found = dict.fromkeys(LINK_COUNTER_NAMES, 0)
    for direction in ("rx", "tx"):
        for key, value in entry["stats64"][direction].items():
            if key == "carrier_changes":
                continue
            name = key if key in ("multicast", "collisions") else f"{direction}_{key}"
            assert name in found, f"ip reports a counter netdash does not know: {name}"
            found[name] = value
    return found


def ip_counters_by_index(netns: str) -> dict[int, dict[str, int]]:
    return {e["ifindex"]: ip_counters(e) for e in ip_json(netns, "-s", "-s", "link")}


@dataclass(frozen=True)
class VethLab:
    a: str
    b: str

    def ifindex(self, netns: str, name: str) -> int:
        return int(ip_json(netns, "link", "show", name)[0]["ifindex"])


@contextmanager
def veth_lab() -> Iterator[VethLab]:
    """Namespaces ``a`` and ``b`` joined by vA--vB, both up with addresses; removed after."""
    with temporary_netns("la") as a, temporary_netns("lb") as b:
        ip("-n", a, "link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", b)
        for ns, dev, v4, v6 in ((a, "vA", ADDR_A, ADDR6_A), (b, "vB", ADDR_B, ADDR6_B)):
            ip("-n", ns, "link", "set", dev, "addrgenmode", "none")
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "up")
        yield VethLab(a, b)
