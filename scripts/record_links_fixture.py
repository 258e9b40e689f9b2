"""Record tests/fixtures/interfaces.recording.json: a veth lab with paced traffic.

Run as root: ``.venv/bin/python scripts/record_links_fixture.py [--samples N]``.

Two namespaces joined by a veth pair (tests/vethlab.py); in namespace ``a`` a second veth pair
whose peer stays down (so one link is LOWERLAYERDOWN, as a link with no cable shows) and a
paced TCP flow from ``a`` to a listener in ``b`` that speeds up halfway (so the graph has a
shape). Every second the real collectors sample namespace ``a`` — links through
:class:`LinkReader` and sockets through the same sampler `netdash` uses — and the recording
keeps both, with owners cut to the lab's processes and an example host name.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

from vethlab import ADDR_B, ip, veth_lab  # noqa: E402

from netdash.engine import ConnectionsSampler  # noqa: E402
from netdash.model import HostInfo, SocketSample  # noqa: E402
from netdash.netns import resolve_netns  # noqa: E402
from netdash.record import RecordedRouting, write_recording  # noqa: E402
from netdash.sources.links import LinkReader  # noqa: E402
from netdash.sources.owners import OwnerMap  # noqa: E402
from netdash.sources.routes import RouteReader  # noqa: E402
from netdash.sources.sockets import SocketReader  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "interfaces.recording.json"
PORT = 5201  # iperf3's port: what a reader expects a bulk flow to use

RECEIVER = f"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{ADDR_B}", {PORT})); s.listen(); c, _ = s.accept()
while c.recv(1 << 16): pass
"""
#: 250 KB/s for the first half, then 1 MB/s: ~2 then ~8 Mb/s on the wire.
SENDER = f"""
import socket, sys, time
seconds = float(sys.argv[1]); c = socket.create_connection(("{ADDR_B}", {PORT}))
chunk = bytes(25_000); start = due = time.monotonic()
while (now := time.monotonic()) - start < seconds:
    c.sendall(chunk)
    due += 1 / (10 if now - start < seconds / 2 else 40)
    time.sleep(max(0.0, due - time.monotonic()))
"""


def in_netns(netns: str, code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", code, *args])


def lab_only(sample: SocketSample, pids: set[int]) -> SocketSample:
    """Owners cut to the lab's processes (the owner map indexes the whole host)."""
    from dataclasses import replace

    owners = {
        inode: owners
        for inode, owners in sample.owners.items()
        if any(owner.pid in pids for owner in owners)
    }
    sockets = tuple(s for s in sample.sockets if s.proto != "unix")
    return replace(sample, sockets=sockets, owners=owners)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=12)
    args = parser.parse_args()
    with veth_lab() as lab:
        ip("-n", lab.a, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1-peer")
        ip("-n", lab.a, "link", "set", "eth1", "up")  # its peer stays down: no carrier
        receiver = in_netns(lab.b, RECEIVER)
        time.sleep(0.5)
        sender = in_netns(lab.a, SENDER, str(args.samples + 2))
        try:
            target = resolve_netns(lab.a)
            links = LinkReader(netns=target)
            sockets = ConnectionsSampler(SocketReader(netns=target), OwnerMap())
            sockets.unix = False
            with RouteReader(netns=target) as reader:
                ip("-n", lab.a, "route", "add", "default", "via", ADDR_B)
                ip("-n", lab.a, "route", "add", "198.51.100.0/24", "via", ADDR_B, "metric", "50")
                ip("-n", lab.a, "route", "add", "unreachable", "203.0.113.0/24")
                ip("-n", lab.a, "neigh", "replace", "10.201.0.9", "lladdr",
                   "02:00:00:00:00:09", "dev", "vA", "nud", "permanent")  # fmt: skip
                routing = RecordedRouting(reader.routes(), reader.rules(), reader.neighbours())
            link_samples, socket_samples = [], []
            for index in range(args.samples):
                if index:
                    time.sleep(1.0)
                link_samples.append(links.sample())
                socket_samples.append(lab_only(sockets.sample(), {sender.pid, receiver.pid}))
        finally:
            sender.kill()
            receiver.kill()
            sender.wait()
            receiver.wait()
    host = HostInfo(hostname="web-1", kernel="6.18.0", netns="host", is_root=True)
    write_recording(FIXTURE, host, socket_samples, link_samples, routing)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
