"""Samples to JSON and back: the recording format behind replay, UI tests and screenshots.

A recording is what the real collectors saw, so a UI test or a screenshot fed from one shows the
app as it behaves on a real machine, but deterministically. The format is a JSON object
``{"format": "netdash-recording", "version": 1, "host": {...}, "samples": [...]}``, each sample
holding its sockets as objects with the model's field names; gzip-compressed when the file name
ends in ``.gz``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from netdash.model import (
    HostInfo,
    Link,
    LinkCounters,
    LinkSample,
    MemInfo,
    Neighbour,
    Owner,
    PolicyRule,
    Route,
    RouteLookup,
    Socket,
    SocketSample,
    TcpInfo,
    Timer,
)

FORMAT = "netdash-recording"
VERSION = 1


def _record_to_dict(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in dataclasses.fields(record):
        if not item.init:
            continue  # derived (Socket.key): rebuilt on load
        value = getattr(record, item.name)
        out[item.name] = _record_to_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def sample_to_dict(sample: SocketSample) -> dict[str, Any]:
    return {
        "sockets": [_record_to_dict(sock) for sock in sample.sockets],
        "owners": {
            str(inode): [_record_to_dict(o) for o in owners]
            for inode, owners in sample.owners.items()
        },
        "sources": dict(sample.sources),
        "gaps": list(sample.gaps),
        "owners_complete": sample.owners_complete,
        "is_root": sample.is_root,
        "taken_at": sample.taken_at,
        "wall_time": sample.wall_time,
        "fd_tables": {
            str(pid): {str(fd): inode for fd, inode in table.items()}
            for pid, table in sample.fd_tables.items()
        },
    }


def socket_from_dict(data: dict[str, Any]) -> Socket:
    fields = dict(data)
    for name, kind in (("tcp", TcpInfo), ("mem", MemInfo), ("timer", Timer)):
        if fields.get(name) is not None:
            fields[name] = kind(**fields[name])
    return Socket(**fields)


def sample_from_dict(data: dict[str, Any]) -> SocketSample:
    fd_tables = {
        int(pid): {int(fd): inode for fd, inode in table.items()}
        for pid, table in data.get("fd_tables", {}).items()
    }
    return SocketSample(
        sockets=tuple(socket_from_dict(sock) for sock in data["sockets"]),
        owners=_owners_from_dict(data.get("owners", {}), fd_tables),
        fd_tables=fd_tables,
        sources=data.get("sources", {}),
        gaps=tuple(data.get("gaps", ())),
        owners_complete=data.get("owners_complete", True),
        is_root=data.get("is_root", True),
        taken_at=data.get("taken_at", 0.0),
        wall_time=data.get("wall_time", 0.0),
    )


def _owners_from_dict(
    data: dict[str, list[dict[str, Any]]], fd_tables: dict[int, dict[int, int]]
) -> dict[int, tuple[Owner, ...]]:
    """inode -> owners (one per pid). Recordings made when an owner was per descriptor list a
    pid once per fd, with the fd: those fds go to ``fd_tables``."""
    owners: dict[int, tuple[Owner, ...]] = {}
    for key, listed in data.items():
        inode, by_pid = int(key), {}
        for fields in listed:
            fields = dict(fields)
            fd = fields.pop("fd", None)
            if fd is not None:
                fd_tables.setdefault(fields["pid"], {})[fd] = inode
            by_pid.setdefault(fields["pid"], Owner(**fields))
        owners[inode] = tuple(by_pid[pid] for pid in sorted(by_pid))
    return owners


def link_sample_to_dict(sample: LinkSample) -> dict[str, Any]:
    return {
        "links": [_record_to_dict(link) for link in sample.links],
        "counters": {str(i): _record_to_dict(c) for i, c in sample.counters.items()},
        "taken_at": sample.taken_at,
        "wall_time": sample.wall_time,
    }


def link_sample_from_dict(data: dict[str, Any]) -> LinkSample:
    links = []
    for fields in data["links"]:
        fields = dict(fields)
        fields["flags"] = tuple(fields.get("flags", ()))
        fields["addresses"] = tuple(fields.get("addresses", ()))
        links.append(Link(**fields))
    return LinkSample(
        links=tuple(links),
        counters={int(i): LinkCounters(**c) for i, c in data.get("counters", {}).items()},
        taken_at=data.get("taken_at", 0.0),
        wall_time=data.get("wall_time", 0.0),
    )


@dataclasses.dataclass(frozen=True)
class RecordedRouting:
    """One read of the routing state (routes, rules, neighbours), replayed as a routes source.
    Lookups ask the live kernel, so a replay answers them with an explanation instead."""

    route_list: tuple[Route, ...] = ()
    rule_list: tuple[PolicyRule, ...] = ()
    neighbour_list: tuple[Neighbour, ...] = ()

    def routes(self) -> tuple[Route, ...]:
        return self.route_list

    def rules(self) -> tuple[PolicyRule, ...]:
        return self.rule_list

    def neighbours(self) -> tuple[Neighbour, ...]:
        return self.neighbour_list

    def route_get(self, addr: str, source: str | None = None) -> RouteLookup:
        del source
        return RouteLookup(addr, None, None, None, error="not in a recording (ask a live netdash)")

    def close(self) -> None:
        pass


def routing_to_dict(routing: RecordedRouting) -> dict[str, Any]:
    return {
        "routes": [_record_to_dict(r) for r in routing.route_list],
        "rules": [_record_to_dict(r) for r in routing.rule_list],
        "neighbours": [_record_to_dict(n) for n in routing.neighbour_list],
    }


def routing_from_dict(data: dict[str, Any]) -> RecordedRouting:
    return RecordedRouting(
        route_list=tuple(Route(**r) for r in data.get("routes", ())),
        rule_list=tuple(PolicyRule(**r) for r in data.get("rules", ())),
        neighbour_list=tuple(
            Neighbour(**{**n, "states": tuple(n["states"])}) for n in data.get("neighbours", ())
        ),
    )


@dataclasses.dataclass(frozen=True)
class Recording:
    """Socket samples and, optionally (recordings made since the Interfaces pane), link
    samples taken alongside them and one read of the routing state."""

    host: HostInfo
    samples: tuple[SocketSample, ...]
    links: tuple[LinkSample, ...] = ()
    routing: RecordedRouting | None = None


def write_recording(
    path: Path,
    host: HostInfo,
    samples: Iterable[SocketSample],
    links: Iterable[LinkSample] = (),
    routing: RecordedRouting | None = None,
) -> None:
    document = {
        "format": FORMAT,
        "version": VERSION,
        "host": _record_to_dict(host),
        "samples": [sample_to_dict(sample) for sample in samples],
        "links": [link_sample_to_dict(sample) for sample in links],
        "routing": routing_to_dict(routing) if routing is not None else None,
    }
    data = json.dumps(document, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def read_recording(path: Path) -> Recording:
    data = path.read_bytes()
    document = json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} is not a netdash recording")
    if document.get("version") != VERSION:
        raise ValueError(
            f"{path} is a version {document.get('version')} recording; "
            f"this netdash reads version {VERSION}"
        )
    return Recording(
        host=HostInfo(**document["host"]),
        samples=tuple(sample_from_dict(s) for s in document["samples"]),
        links=tuple(link_sample_from_dict(s) for s in document.get("links", ())),
        routing=routing_from_dict(document["routing"]) if document.get("routing") else None,
    )


class ReplaySampler:
    """Plays recorded samples (of sockets or of links) back as if they were live: one per call,
    holding the last one.

    Timestamps are shifted onto the caller's clock so rates and "age of the sample" behave.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        clock: Any = None,
        loop: bool = False,
        keep_intervals: bool = False,
    ):
        """``keep_intervals``: shift the recorded times by one offset instead of stamping each
        sample "now", so rates come out as recorded however fast the samples are asked for
        (the Interfaces pane's graphs and rates in tests and screenshots)."""
        import time

        if not samples:
            raise ValueError("a recording with no samples cannot be replayed")
        self._samples = samples
        self._clock = clock or time.monotonic
        self._loop = loop
        self._next = 0
        self._offset: float | None = None
        self._keep_intervals = keep_intervals
        self.finished = False

    def sample(self) -> Any:
        index = self._next
        if index >= len(self._samples):
            index = 0 if self._loop else len(self._samples) - 1
            self.finished = not self._loop
        self._next = index + 1
        recorded = self._samples[index]
        now = self._clock()
        if not self._keep_intervals:
            return dataclasses.replace(recorded, taken_at=now)
        if self._offset is None or index == 0:
            self._offset = now - recorded.taken_at
        return dataclasses.replace(recorded, taken_at=recorded.taken_at + self._offset)
