"""netdash.malloc: freed multi-megabyte blocks leave the process (the live app's per-refresh
transients at 100k sockets), where glibc would otherwise keep them as holes in its heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netdash.malloc import return_large_blocks

# After one 8 MiB block is freed, glibc serves blocks up to that size from its heap; 64 one-MiB
# blocks are made there (or mmapped), and every other one is freed: holes in the middle of the
# heap stay resident, mmapped blocks go.
SCRIPT = """
import sys
if sys.argv[1] == "tuned":
    from netdash.malloc import return_large_blocks
    assert return_large_blocks()
def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) >> 10
big = b"x" * (8 << 20)
del big
blocks = [b"y" * (1 << 20) for _ in range(64)]
before = rss_mib()
del blocks[::2]
print(before - rss_mib())
"""


def freed_mib(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout)


def test_freed_large_blocks_leave_the_process() -> None:
    if not return_large_blocks():
        pytest.skip("not glibc: mallopt(M_MMAP_THRESHOLD) is not available")
    assert freed_mib("plain") < 8  # the problem: the holes stay resident
    assert freed_mib("tuned") >= 24  # 32 MiB freed, give or take the allocator's slack
