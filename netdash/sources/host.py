"""Where netdash is looking: host name, kernel, namespace, privileges (the header line)."""

from __future__ import annotations

import os

from netdash.model import HostInfo


def read_host_info(netns_label: str = "host") -> HostInfo:
    uname = os.uname()
    return HostInfo(
        hostname=uname.nodename,
        kernel=uname.release,
        netns=netns_label,
        is_root=os.geteuid() == 0,
    )


#: What a non-root user cannot see, said once in the header instead of "none" everywhere.
WITHOUT_ROOT = "not root: other users' socket owners are hidden"
