"""Cgroups, v2 and v1, from ``/proc/self/mountinfo`` and the cgroup filesystem.

A host has one v2 (unified) hierarchy, any number of v1 hierarchies (each binds one or more
controllers: ``memory``, ``cpu,cpuacct``, ``pids``, or none, like ``name=systemd``), or both: a
*hybrid* host mounts v2 at ``/sys/fs/cgroup/unified`` and binds most controllers to v1, so a v2
group there has ``cpu.stat`` (the core usage counters exist without the cpu controller) but no
``memory.current``. Where each hierarchy lives is read from mountinfo, never guessed from
``/sys/fs/cgroup`` names, and every counter a hierarchy does not offer is None with the reason
in :attr:`CgroupInfo.missing` ("no memory.current, memory.max: the memory controller is bound
to v1 here").

What is read (Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/*.rst of the kernel):

====================  ==============================  ===========================================
field                 v2                              v1
====================  ==============================  ===========================================
memory_current        memory.current                  memory.usage_in_bytes
memory_limit          memory.max ("max": None)        memory.limit_in_bytes (≥ 2^63 rounded: None)
cpu_usage_usec        cpu.stat usage_usec             cpuacct.usage (ns)
cpu_throttled_usec    cpu.stat throttled_usec         cpu.stat throttled_time (ns)
pids_current, _limit  pids.current, pids.max          pids.current, pids.max ("max": None)
procs                 lines of cgroup.procs           lines of cgroup.procs
====================  ==============================  ===========================================

Unit and container names come from the path alone (:func:`cgroup_names`), so they work on any
hierarchy and on paths read from ``/proc/PID/cgroup``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from netdash.model import CgroupInfo
from netdash.sources.errors import SourceError, SourceUnavailable
from netdash.sources.process import ProcessGone

#: The controllers whose counters :class:`CgroupReader` reads; :meth:`CgroupReader.read_all`
#: walks v2 and the v1 hierarchies that bind one of these.
COUNTED_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "pids"})

#: How deep :meth:`CgroupReader.read_all` descends (systemd trees are under 10 deep; a delegated
#: user could nest thousands, which a recursive walk must not follow).
MAX_DEPTH = 64

#: v1 memory "unlimited": PAGE_COUNTER_MAX pages in bytes, i.e. LONG_MAX rounded down to a page
#: (9223372036854771712 with 4 KiB pages). Anything from LONG_MAX rounded down to 64 KiB (the
#: largest page size Linux uses) up is unlimited: no real limit sits within 64 KiB of 8 EiB.
V1_UNLIMITED_FLOOR = (2**63 - 1) & ~(64 * 1024 - 1)

#: Mount options that cgroup1_show_options() (kernel/cgroup/cgroup-v1.c) prints besides the
#: controllers and ``name=``; with the VFS's ``rw``/``ro`` they are not part of a hierarchy's name.
_V1_MOUNT_OPTIONS = frozenset(
    {"rw", "ro", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods", "clone_children"}
)


# ---------------------------------------------------------------------------- unit, container

#: A container id in a cgroup path component: ``<id>``, ``docker-<id>.scope``,
#: ``cri-containerd-<id>.scope``, ``crio-<id>.scope``, ``libpod-<id>.scope`` (64 hex digits;
#: ``docker ps`` shows the first 12).
_CONTAINER_ID = re.compile(r"(?:^|[-:])([0-9a-f]{64})(?:\.scope)?$")
#: The user manager's unit: the units it starts sit below it.
_USER_MANAGER = re.compile(r"^user@\d+\.service$")


class CgroupNames(NamedTuple):
    """What a cgroup path names, where it names anything recognisable."""

    unit: str | None  # "nginx.service", "session-3.scope", or a slice: "user-1000.slice"
    container: str | None  # a 64-hex container id


def cgroup_names(path: str) -> CgroupNames:
    """The systemd unit (or slice) and the container id a cgroup path shows.

    The unit is the deepest ``.slice``, ``.service`` or ``.scope`` component, except that the
    search stops at the first service or scope: below it are the unit's own (delegated) groups,
    which are not units — unless it is the user manager ``user@UID.service``, whose children are
    the user's units. So ``/system.slice/nginx.service/workers`` is ``nginx.service``,
    ``/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope`` is ``x.scope`` and
    ``/user.slice/user-1000.slice`` is ``user-1000.slice``. The container id is the deepest
    64-hex component, as Docker, containerd (CRI), CRI-O, Podman and the kubelet's cgroupfs driver
    (``/kubepods/burstable/pod<uid>/<id>``) name them. A ``controllers:/path`` prefix (the v1 form
    :func:`netdash.sources.process.parse_cgroup` gives) is skipped.
    """
    bare = path.split(":", 1)[1] if ":" in path and not path.startswith("/") else path
    unit: str | None = None
    settled = False  # a service or scope (not the user manager) was found: stop looking
    container: str | None = None
    for part in bare.split("/"):
        if not settled and part.endswith((".service", ".scope", ".slice")):
            unit = part
            settled = not part.endswith(".slice") and not _USER_MANAGER.match(part)
        found = _CONTAINER_ID.search(part)
        if found:
            container = found.group(1)
    return CgroupNames(unit, container)


# ---------------------------------------------------------------------------------- mounts


@dataclass(frozen=True, slots=True)
class CgroupMount:
    """Where one hierarchy is mounted.

    ``root`` is the group the mount shows at its top: "/" normally, a subtree when the mount is
    a bind of one (a container without a cgroup namespace sees ``/docker/<id>`` there), so the
    group ``path`` lives at ``mount_point + path[len(root):]``.
    """

    hierarchy: str  # "v2", or the v1 controllers as /proc/PID/cgroup names them: "cpu,cpuacct"
    mount_point: str
    root: str = "/"
    #: The v1 controllers bound to this hierarchy (empty for v2: see its cgroup.controllers).
    controllers: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = () if self.hierarchy == "v2" else self.hierarchy.split(",")
        bound = frozenset(n for n in names if not n.startswith("name="))
        object.__setattr__(self, "controllers", bound)  # frozen: set once, here


def _unescape(field_text: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space, proc_pid_mountinfo(5))."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mountinfo(text: str) -> tuple[CgroupMount, ...]:
    """The cgroup hierarchies in a mountinfo text, one mount each (the first seen, preferring a
    mount of the whole tree), v2 first.

    A line is ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS``
    (proc_pid_mountinfo(5)); a v1 hierarchy's controllers are in SUPEROPTS.
    """
    found: dict[str, CgroupMount] = {}
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        if tail[0] == "cgroup2":
            hierarchy = "v2"
        else:
            options = tail[2].split(",")
            named = [o for o in options if o not in _V1_MOUNT_OPTIONS and "=" not in o]
            hierarchy = ",".join(named + [o for o in options if o.startswith("name=")])
        mount = CgroupMount(hierarchy, _unescape(fields[4]), _unescape(fields[3]))
        if hierarchy not in found or (found[hierarchy].root != "/" and mount.root == "/"):
            found[hierarchy] = mount
    return tuple(sorted(found.values(), key=lambda m: m.hierarchy != "v2"))


def find_mounts(proc_root: Path = Path("/proc")) -> tuple[CgroupMount, ...]:
    """The cgroup hierarchies mounted in this process's mount namespace."""
    try:
        text = (proc_root / "self" / "mountinfo").read_text(errors="surrogateescape")
    except OSError as err:
        raise SourceUnavailable(f"cannot read {proc_root}/self/mountinfo: {err.strerror}") from err
    return parse_mountinfo(text)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """A process's groups from ``/proc/PID/cgroup`` (``ID:controllers:path`` lines, cgroups(7)):
    hierarchy ("v2" for the ``0::`` line, else the controllers) → path."""
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[2].startswith("/"):
            groups["v2" if parts[0] == "0" and not parts[1] else parts[1]] = parts[2]
    return groups


# --------------------------------------------------------------------------------- parsing


def parse_limit(text: str) -> int | None:
    """A limit file's value: ``max`` (v2, and v1 pids.max) and v1's near-2^63 are None."""
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    return None if number >= V1_UNLIMITED_FLOOR else number


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat) as a dict; other lines are skipped."""
    pairs: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            pairs[key] = int(value)
    return pairs


class CgroupGone(SourceError):
    """The group does not exist (removed, or never existed) in that hierarchy."""


# ---------------------------------------------------------------------------------- reading


@dataclass(slots=True)
class _Group:
    """One group being read: where its files are and what was missing, before it is a record."""

    mount: CgroupMount
    directory: bytes
    path: str
    missing: dict[str, list[str]] = field(default_factory=dict)  # reason -> what it explains

    def lack(self, what: str, reason: str) -> None:
        explained = self.missing.setdefault(reason, [])
        if what not in explained:
            explained.append(what)

    def read(self, name: str) -> str | OSError:
        """The text of one file of the group, or the error that stopped it."""
        try:
            fd = os.open(self.directory + b"/" + name.encode(), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            return err
        try:
            chunks = [os.read(fd, 65536)]
            while chunks[-1]:  # until EOF: cgroup.procs of a busy group takes several reads
                chunks.append(os.read(fd, 65536))
        except OSError as err:
            return err
        finally:
            os.close(fd)
        return b"".join(chunks).decode("ascii", "replace")


class _Spec(NamedTuple):
    """Where one counter is: its controller, file, key inside a flat-keyed file (None for a
    one-value file) and the divisor to the model's unit (v1 counts CPU time in nanoseconds)."""

    controller: str
    name: str
    key: str | None = None
    divisor: int = 1


#: The files of each counter, per cgroup version (the order of CgroupInfo's fields).
_SPECS: dict[str, dict[str, _Spec]] = {
    "v2": {
        "memory_current": _Spec("memory", "memory.current"),
        "memory_limit": _Spec("memory", "memory.max"),
        "cpu_usage_usec": _Spec("cpu", "cpu.stat", "usage_usec"),
        "cpu_throttled_usec": _Spec("cpu", "cpu.stat", "throttled_usec"),
        "pids_current": _Spec("pids", "pids.current"),
        "pids_limit": _Spec("pids", "pids.max"),
    },
    "v1": {
        "memory_current": _Spec("memory", "memory.usage_in_bytes"),
        "memory_limit": _Spec("memory", "memory.limit_in_bytes"),
        "cpu_usage_usec": _Spec("cpuacct", "cpuacct.usage", None, 1000),
        "cpu_throttled_usec": _Spec("cpu", "cpu.stat", "throttled_time", 1000),
        "pids_current": _Spec("pids", "pids.current"),
        "pids_limit": _Spec("pids", "pids.max"),
    },
}
_LIMITS = frozenset({"memory_limit", "pids_limit"})


class CgroupReader:
    """Reads groups of the mounted hierarchies.

    ``mounts`` replaces the discovery from ``proc_root/self/mountinfo`` (tests point it at a
    recorded tree: ``CgroupReader(mounts=[CgroupMount("v2", str(tmp_path))])``). Mounts are
    found once, on first use. :meth:`read_all` visits at most ``max_groups`` groups over all
    hierarchies and sets :attr:`truncated` when it stopped there.
    """

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        mounts: Sequence[CgroupMount] | None = None,
        max_groups: int = 5000,
    ) -> None:
        self.proc_root = proc_root
        self._mounts = tuple(mounts) if mounts is not None else None
        self.max_groups = max_groups
        self.truncated = False
        self._v2_controllers: frozenset[str] | None = None
        self._v1_homes: dict[str, CgroupMount] | None = None

    @property
    def mounts(self) -> tuple[CgroupMount, ...]:
        if self._mounts is None:
            self._mounts = find_mounts(self.proc_root)
        return self._mounts

    @property
    def v1_homes(self) -> dict[str, CgroupMount]:
        """Controller -> the v1 hierarchy it is bound to."""
        if self._v1_homes is None:
            self._v1_homes = {c: m for m in self.mounts for c in m.controllers}
        return self._v1_homes

    def mount(self, hierarchy: str) -> CgroupMount:
        """The mount of ``hierarchy``: exactly as named, or the v1 one binding that controller
        (``cpuacct`` finds ``cpu,cpuacct``)."""
        for mount in self.mounts:
            if mount.hierarchy == hierarchy:
                return mount
        if hierarchy in self.v1_homes:
            return self.v1_homes[hierarchy]
        raise SourceUnavailable(f"no cgroup hierarchy {hierarchy!r} is mounted here")

    # -------------------------------------------------------------------------- public API

    def read_cgroup(self, hierarchy: str, path: str) -> CgroupInfo:
        """One group: ``hierarchy`` "v2" or a v1 controller (set), ``path`` as in
        ``/proc/PID/cgroup``. Raises :class:`CgroupGone` when the group does not exist."""
        mount = self.mount(hierarchy)
        if not path.startswith("/") or ".." in path.split("/"):
            raise CgroupGone(f"{path!r} is not a cgroup path visible from this namespace")
        clean = posixpath.normpath(path)
        inside = posixpath.relpath(clean, mount.root)
        if inside == ".." or inside.startswith("../"):
            raise CgroupGone(f"{path} is outside the part of {mount.hierarchy} mounted here")
        directory = os.fsencode(posixpath.normpath(posixpath.join(mount.mount_point, inside)))
        if not os.path.isdir(directory):
            raise CgroupGone(f"no cgroup {path} in the {mount.hierarchy} hierarchy")
        return self._read(_Group(mount, directory, clean))

    def read_all(self, hierarchies: Collection[str] | None = None) -> tuple[CgroupInfo, ...]:
        """Every *populated or limited* group of v2 and of the v1 hierarchies that count
        something (memory, cpu, cpuacct, pids), parents before children.

        Populated: the group or one below it has a process (the groups ``systemd-cgtop`` lists);
        limited: a memory or pids limit is set. Empty, unlimited groups (a stopped unit's
        leftovers) are left out. ``hierarchies`` narrows the walk to those named.
        """
        if not self.mounts:
            raise SourceUnavailable("no cgroup filesystem is mounted here (see mountinfo)")
        self.truncated = False
        budget = [self.max_groups]
        rows: list[CgroupInfo] = []
        for mount in self.mounts:
            if hierarchies is not None and mount.hierarchy not in hierarchies:
                continue
            if mount.hierarchy == "v2" or mount.controllers & COUNTED_CONTROLLERS:
                path = mount.root
                rows.extend(self._walk(mount, os.fsencode(mount.mount_point), path, budget)[0])
        return tuple(rows)

    def read_process(self, pid: int) -> tuple[CgroupInfo, ...]:
        """The groups of one process, in the hierarchies :meth:`read_all` walks."""
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            raise ProcessGone(f"process {pid} has exited") from None
        except OSError as err:
            raise SourceError(f"cannot read /proc/{pid}/cgroup: {err.strerror}") from err
        found: list[CgroupInfo] = []
        for hierarchy, path in parse_proc_cgroup(text).items():
            names = frozenset(hierarchy.split(","))
            if hierarchy == "v2" or names & COUNTED_CONTROLLERS:
                try:
                    found.append(self.read_cgroup(hierarchy, path))
                except (CgroupGone, SourceUnavailable):
                    continue  # moved meanwhile, or a hierarchy not mounted in this namespace
        return tuple(found)

    # ---------------------------------------------------------------------------- walking

    def _walk(
        self, mount: CgroupMount, directory: bytes, path: str, budget: list[int]
    ) -> tuple[list[CgroupInfo], bool]:
        """The kept rows of a subtree, and whether it holds a process."""
        if budget[0] <= 0 or path.count("/") > MAX_DEPTH:
            self.truncated = True  # out of budget, or deeper than any real hierarchy goes
            return [], False
        budget[0] -= 1
        try:
            info = self._read(_Group(mount, directory, path))
        except CgroupGone:
            return [], False  # removed while we walked
        below: list[CgroupInfo] = []
        populated = info.procs > 0
        for name, child in self._children(directory):
            child_path = posixpath.join(path, name)
            rows, child_populated = self._walk(mount, child, child_path, budget)
            below.extend(rows)
            populated = populated or child_populated
        limited = info.memory_limit is not None or info.pids_limit is not None
        return ([info, *below] if populated or limited else below), populated

    @staticmethod
    def _children(directory: bytes) -> Iterator[tuple[str, bytes]]:
        try:
            with os.scandir(directory) as entries:
                subdirs = [e for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        for entry in sorted(subdirs, key=lambda e: e.name):
            yield entry.name.decode("utf-8", "backslashreplace"), entry.path

    # --------------------------------------------------------------------------- one group

    def _read(self, group: _Group) -> CgroupInfo:
        procs_text = group.read("cgroup.procs")
        if isinstance(procs_text, FileNotFoundError) and not os.path.isdir(group.directory):
            raise CgroupGone(f"no cgroup {group.path} in the {group.mount.hierarchy} hierarchy")
        procs = 0
        if isinstance(procs_text, OSError):
            group.lack("cgroup.procs", f"cannot read it: {procs_text.strerror}")
        else:
            procs = procs_text.count("\n")
        files: dict[str, str | OSError] = {}  # cpu.stat serves two counters: read once
        values = {
            metric: self._metric(group, metric, spec, files)
            for metric, spec in _SPECS["v2" if group.mount.hierarchy == "v2" else "v1"].items()
        }
        unit, container = cgroup_names(group.path)
        missing = tuple(f"no {', '.join(what)}: {why}" for why, what in group.missing.items())
        return CgroupInfo(
            path=group.path,
            hierarchy=group.mount.hierarchy,
            unit=unit,
            container=container,
            procs=procs,
            memory_current=values["memory_current"],
            memory_limit=values["memory_limit"],
            cpu_usage_usec=values["cpu_usage_usec"],
            cpu_throttled_usec=values["cpu_throttled_usec"],
            pids_current=values["pids_current"],
            pids_limit=values["pids_limit"],
            missing=missing,
        )

    def _metric(
        self, group: _Group, metric: str, spec: _Spec, files: dict[str, str | OSError]
    ) -> int | None:
        """One counter of the group, or None with the reason recorded."""
        v2 = group.mount.hierarchy == "v2"
        if not v2 and spec.controller not in group.mount.controllers:
            group.lack(spec.name, self._elsewhere(spec.controller))
            return None
        if v2 and spec.key is None and spec.controller in self.v1_homes:
            # A controller serves one hierarchy: bound to v1, its v2 files cannot exist (cpu.stat
            # can: its usage lines are there without the cpu controller).
            group.lack(spec.name, f"the {spec.controller} controller is bound to v1 here")
            return None
        if spec.name not in files:
            files[spec.name] = group.read(spec.name)
        text = files[spec.name]
        if isinstance(text, OSError):
            group.lack(spec.name, self._why_missing(group, spec.controller, text))
            return None
        try:
            if spec.key is None:
                value = parse_limit(text) if metric in _LIMITS else int(text.strip())
            else:
                value = parse_flat_keyed(text).get(spec.key)
                if value is None:
                    why = self._why_absent_key(spec.controller)
                    group.lack(f"{spec.key} in {spec.name}", why)
        except ValueError:
            group.lack(spec.name, f"unreadable value {text.strip()[:40]!r}")
            return None
        return None if value is None else value // spec.divisor

    def _elsewhere(self, controller: str) -> str:
        """Why a v1 hierarchy has no files of ``controller``: where that controller is instead."""
        if controller in self.v1_homes:
            home = self.v1_homes[controller].hierarchy
            return f"the {controller} controller is in the v1 {home!r} hierarchy"
        if controller in self._v2_enabled():
            return f"the {controller} controller is in the v2 hierarchy"
        return f"the {controller} controller is not mounted here"

    def _v2_enabled(self) -> frozenset[str]:
        """The controllers the v2 root offers (empty when v2 is not mounted)."""
        if self._v2_controllers is None:
            self._v2_controllers = frozenset()
            for mount in self.mounts:
                if mount.hierarchy == "v2":
                    text = _Group(mount, os.fsencode(mount.mount_point), "/").read(
                        "cgroup.controllers"
                    )
                    if isinstance(text, str):
                        self._v2_controllers = frozenset(text.split())
        return self._v2_controllers

    def _why_missing(self, group: _Group, controller: str, err: OSError) -> str:
        """Why a group has no ``name``: bound elsewhere, the root, not enabled, or the error."""
        if not isinstance(err, FileNotFoundError):
            return f"cannot read it: {err.strerror}"
        if group.mount.hierarchy == "v2" and controller in self.v1_homes:
            return f"the {controller} controller is bound to v1 here"
        if group.path == group.mount.root:
            return "the root group has no such file"
        if group.mount.hierarchy == "v2":
            enabled = group.read("cgroup.controllers")
            if isinstance(enabled, str) and controller not in enabled.split():
                return (
                    f"the {controller} controller is not enabled for this group "
                    "(not in its parent's cgroup.subtree_control)"
                )
        return "the file does not exist"

    def _why_absent_key(self, controller: str) -> str:
        """Why cpu.stat lacks a counter (v2 throttling needs the cpu controller itself)."""
        if controller in self.v1_homes:
            return f"the {controller} controller is bound to v1 here"
        return f"the {controller} controller is not enabled for this group"


def cgroup_to_json(info: CgroupInfo) -> dict[str, Any]:
    """The ``netdash dump cgroups --json`` object of one group (null where nothing is known)."""
    return {
        "path": info.path,
        "hierarchy": info.hierarchy,
        "unit": info.unit,
        "container": info.container,
        "procs": info.procs,
        "memory_current": info.memory_current,
        "memory_limit": info.memory_limit,
        "cpu_usage_usec": info.cpu_usage_usec,
        "cpu_throttled_usec": info.cpu_throttled_usec,
        "pids_current": info.pids_current,
        "pids_limit": info.pids_limit,
    }
