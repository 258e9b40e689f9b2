"""The whole sampler as an unprivileged user: its own sockets have owners, others' "need root"."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from netdash.model import NO_OWNER_NEEDS_ROOT

REPO = Path(__file__).resolve().parent.parent
SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

PROBE = """
import json, os, socket, sys
from netdash.dump import socket_to_json
from netdash.engine import ConnectionsSampler
from netdash.sources.owners import OwnerMap
from netdash.sources.sockets import SocketReader

mine = socket.create_server(("127.0.0.1", 0))
sampler = ConnectionsSampler(SocketReader(), OwnerMap())
sample = sampler.sample()
by_port = {s.local_port: s for s in sample.sockets if s.proto == "tcp" and s.state == "LISTEN"}
own = by_port[mine.getsockname()[1]]
roots = by_port[int(sys.argv[1])]
print(json.dumps({
    "pid": os.getpid(),
    "own_owners": [[o.pid, o.user] for o in sample.owners_of(own)],
    "root_reason": sample.no_owner_reason(roots),
    "root_json_owners": socket_to_json(roots, sample)["owners"],
    "complete": sample.owners_complete,
    "is_root": sample.is_root,
}))
"""


def python_for_nobody() -> str | None:
    """An interpreter nobody may run (the venv's may link into root's home, mode 0700)."""
    for python in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if (
            python
            and subprocess.run(
                [*SETPRIV, "env", python, "-c", "import json"],
                capture_output=True,
                timeout=30,
                check=False,
            ).returncode
            == 0
        ):
            return python
    return None


@pytest.mark.root
def test_sampler_as_nobody_owns_its_sockets_and_says_needs_root_for_others():
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    python = python_for_nobody()
    if python is None:
        pytest.skip("no python interpreter that nobody may run")
    top = Path(tempfile.mkdtemp(prefix="nd-nobody-"))
    try:
        shutil.copytree(
            REPO / "netdash", top / "netdash", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in [top, *top.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        with socket.create_server(("127.0.0.1", 0)) as roots:
            cmd = [
                *SETPRIV,
                "env",
                f"PYTHONPATH={top}",
                "PYTHONDONTWRITEBYTECODE=1",
                python,
                "-c",
                PROBE,
                str(roots.getsockname()[1]),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(top)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["is_root"] is False and seen["complete"] is False
    assert seen["own_owners"] == [[seen["pid"], "nobody"]]
    assert seen["root_reason"] == NO_OWNER_NEEDS_ROOT
    assert seen["root_json_owners"] is None  # "hidden by permissions", not "no owner"
    assert os.geteuid() == 0
