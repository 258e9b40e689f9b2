"""Record tests/fixtures/connections.recording.json: the known-sockets lab, as netdash sees it.

Run as root: ``.venv/bin/python scripts/record_fixture.py [--loadgen-pairs N] [--samples N]``.
It makes a temporary network namespace, starts :class:`KnownSocketsLab` in it (tests/lablib.py),
and samples it through the real collectors, built exactly as `netdash record --netns NAME` builds
them (``ConnectionsSampler(SocketReader(netns=...), OwnerMap())``), once a second.

Two things are cut before writing, so the recording holds the lab and nothing of this machine:

- owners: :class:`OwnerMap` indexes the sockets of every process on the host, and
  `netdash record` writes that whole map; only the owners of the sampled sockets are kept.
- UNIX sockets: unix_diag lists the sockets of the namespace it is asked from, so only the lab's
  appear; any UNIX socket not held by a lab process is dropped all the same (and counted).

The host info is an example server's ("web-1", namespace "host"), so screenshots taken from the
recording never show this machine's name or the temporary namespace's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]  # tests/ first: the root has a conftest.py too

from lablib import KnownSocketsLab  # noqa: E402

from conftest import temporary_netns  # noqa: E402  (tests/ is not a package)
from netdash.engine import ConnectionsSampler  # noqa: E402
from netdash.model import HostInfo, SocketSample  # noqa: E402
from netdash.netns import resolve_netns  # noqa: E402
from netdash.record import write_recording  # noqa: E402
from netdash.sources.owners import OwnerMap  # noqa: E402
from netdash.sources.sockets import SocketReader  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "connections.recording.json"
EXAMPLE_HOST = "web-1"
#: Each socket costs ~1 KB of JSON per sample (tcp_info and meminfo spelled out): the lab's ~45
#: sockets plus 25 loadgen pairs make ~95 rows, busier than a screen, in ~550 KB for 6 samples.
#: The live lab's default of 300 pairs would make a 4 MB file.
LOADGEN_PAIRS = 25


def lab_only(sample: SocketSample, lab_pids: set[int]) -> tuple[SocketSample, int, int]:
    """``sample`` with owners cut to its own sockets and UNIX sockets cut to the lab's, and how
    many sockets and owner entries were cut."""

    def is_lab_unix(sock: object) -> bool:
        owners = sample.owners_of(sock)  # type: ignore[arg-type]
        return bool(owners) and all(owner.pid in lab_pids for owner in owners)

    kept = tuple(s for s in sample.sockets if s.proto != "unix" or is_lab_unix(s))
    inodes = {s.inode for s in kept if s.inode}
    owners = {inode: owners for inode, owners in sample.owners.items() if inode in inodes}
    # owners_complete is about the sockets shown: a host process that hides its fds even from
    # root (pid 1 on some VMs) holds none of the lab's, so it must not mark the example hidden.
    complete = sample.owners_complete or all(s.inode in owners for s in kept if s.inode)
    trimmed = dataclasses.replace(sample, sockets=kept, owners=owners, owners_complete=complete)
    return trimmed, len(sample.sockets) - len(kept), len(sample.owners) - len(owners)


def record(netns: str, samples: int, interval: float) -> list[SocketSample]:
    """What `netdash record --netns NETNS --samples N --interval S` samples."""
    sampler = ConnectionsSampler(SocketReader(netns=resolve_netns(netns)), OwnerMap())
    taken = []
    try:
        for index in range(samples):
            if index:
                time.sleep(interval)
            taken.append(sampler.sample())
    finally:
        sampler.close()
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=FIXTURE)
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--loadgen-pairs", type=int, default=LOADGEN_PAIRS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("record_fixture: needs root (it creates a network namespace)", file=sys.stderr)
        return 1
    with (
        temporary_netns("rec") as netns,
        KnownSocketsLab(netns, loadgen_pairs=args.loadgen_pairs) as lab,
    ):
        time.sleep(args.interval)  # let the stream run for a while before the first sample
        raw = record(netns, args.samples, args.interval)
        lab_pids = set(lab.all_pids())
    samples, dropped, cut = zip(*(lab_only(sample, lab_pids) for sample in raw), strict=True)
    host = HostInfo(hostname=EXAMPLE_HOST, kernel=os.uname().release, netns="host", is_root=True)
    write_recording(args.output, host, samples)
    size = args.output.stat().st_size
    print(
        f"wrote {len(samples)} samples of {len(samples[-1].sockets)} sockets to {args.output} "
        f"({size / 1024:.0f} KiB; lab set up in {lab.setup_seconds:.2f} s; "
        f"UNIX sockets not of the lab dropped: {sum(dropped)}; "
        f"owner entries of other sockets cut: {sum(cut)})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
