"""`netdash dump processes --json` and `netdash dump cgroups --json` (no Textual).

Processes: every process, zombies included, sampled twice ``--seconds`` apart so CPU % is a
rate, joined with the sockets each owns in the namespace (``--netns``) as the Processes tab
counts them. Cgroups: every populated or limited group of every hierarchy with processes, as
:meth:`~netdash.sources.cgroups.CgroupReader.read_all` finds them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def write_json(rows: list[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps(rows, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run_dump_processes(args: argparse.Namespace, target: Any) -> int:
    from netdash.engine import ConnectionsSampler
    from netdash.sources.owners import OwnerMap
    from netdash.sources.processes import ProcessReader, proc_to_json, socket_counts
    from netdash.sources.sockets import SocketReader

    reader = ProcessReader()
    started = time.monotonic()
    reader.sample(details=False)
    sampler = ConnectionsSampler(SocketReader(netns=target), OwnerMap())
    try:
        counts = socket_counts(sampler.sample())
    finally:
        sampler.close()
    time.sleep(max(0.0, started + args.seconds - time.monotonic()))
    sample = reader.sample(details=True)
    write_json([proc_to_json(proc, counts.get(proc.pid, {})) for proc in sample.procs])
    return 0


def run_dump_cgroups(args: argparse.Namespace) -> int:
    del args
    from netdash.sources.cgroups import CgroupReader, cgroup_to_json

    reader = CgroupReader()
    write_json([cgroup_to_json(info) for info in reader.read_all()])
    if reader.truncated:
        print(f"netdash: stopped after {reader.max_groups} cgroups", file=sys.stderr)
    return 0
