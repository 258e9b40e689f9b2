"""Names instead of numbers (the ``n`` key): reverse DNS and service names, put in at paint time.

Off by default, like ``ss -n``: nothing is read, no thread started and no socket opened until
the first ``n``. Then a worker thread reads the resolver's configuration, ``/etc/hosts`` and
``/etc/services`` and builds a :class:`~netdash.sources.dns.ReverseResolver`; from then on the
tables ask :meth:`Names.name_of` for the rows they draw (~40 a frame, never the 100,000 a view
may hold), which answers from ``/etc/hosts`` or the cache at once, or starts a lookup in the
background and answers None: the number is shown until the name arrives.

Rows are built in the sampling thread and never change, so the names are not in them: a
:class:`NamedTable` passes a drawn row's cells through its pane's *namer* (a function of the
row, its cells and the column widths) while names are on. Filtering and sorting stay on the
addresses (``addr:10.0.0.0/8`` keeps its meaning).

When lookups finish, :class:`Names` calls ``changed`` (from a resolver thread) once per burst:
the app posts a message and repaints the named tables, at most once per
:data:`REPAINT_EVERY` seconds; a name that did not change (a cache entry renewed) or an address
still without one repaints nothing.

With ``--netns`` the namespace is entered by setns, which does not swap ``/etc/resolv.conf``
(only ``ip netns exec`` bind-mounts ``/etc/netns/NAME/resolv.conf``): the host's file applies,
and the resolver's threads ask from the host's namespace. :attr:`Names.source` says which file
or which ``--nameserver`` is in use.
"""

from __future__ import annotations

import argparse
import ipaddress
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.strip import Strip

from netdash.diagnose_resolve import nameservers
from netdash.sources.dnsconfig import SYSTEMD_STUB, Server, format_server, parse_services
from netdash.textsafe import visible
from netdash.ui.widgets.virtual_table import VirtualTable

if TYPE_CHECKING:  # dnspython is loaded by the first `n` (in load), not when the app starts
    from netdash.sources.dns import ReverseResolver

#: Seconds between two repaints for names that arrived (a burst of lookups is one repaint).
REPAINT_EVERY = 0.15
#: Service names only below this port: Linux hands out ephemeral ports from 32768 (the default
#: ``ip_local_port_range``), and a client's random port is not the service /etc/services lists.
SERVICE_PORTS_BELOW = 32768
#: Names last resolved, kept to show while they are looked up again; past this many, forgotten.
KNOWN_LIMIT = 8192


@dataclass(frozen=True)
class NameOptions:
    """Where names come from: ``--nameserver`` (else ``--resolv-conf``'s nameservers), the hosts
    and services files, the per-query timeout and how long a failure is remembered."""

    nameservers: tuple[Server, ...] = ()
    resolv_conf: Path = Path("/etc/resolv.conf")
    hosts: Path = Path("/etc/hosts")
    services: Path = Path("/etc/services")
    timeout: float = 1.0
    negative_ttl: float = 60.0
    netns: str | None = None  # entered by setns: the host's resolv.conf applies (said)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> NameOptions:
        pid = getattr(args, "netns_pid", None)
        return cls(
            nameservers=tuple(getattr(args, "nameserver", None) or ()),
            resolv_conf=getattr(args, "resolv_conf", None) or Path("/etc/resolv.conf"),
            netns=getattr(args, "netns", None) or (None if pid is None else f"pid {pid}"),
        )


class Names:
    """The state of the ``n`` toggle and the resolver behind it.

    Used on the UI thread, except :meth:`load` (a worker thread: it reads files) and the
    resolver's callback (its threads). ``changed`` must be thread-safe (the app posts a message).
    """

    def __init__(self, options: NameOptions, changed: Callable[[], None] = lambda: None) -> None:
        self.options = options
        self.changed = changed
        self.enabled = False
        self.loading = False
        self.resolver: ReverseResolver | None = None
        self.source = ""  # which resolver, in words, once loaded
        self.error: str | None = None  # what does not work (no dnspython, no nameserver)
        self._services: Mapping[tuple[int, str], str] = {}
        self._loaded = False
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}  # address -> its name at the last lookup
        self._pending = False  # a `changed` call not yet followed by a repaint
        self._refused = False  # an address was asked while every lookup slot was taken

    @property
    def active(self) -> bool:
        """Names are on and their sources read: the tables show names and services."""
        return self.enabled and self._loaded

    def start(self) -> bool:
        """Turn names on; True when the caller must now run :meth:`load` in a worker thread
        (the first time only)."""
        self.enabled = True
        if self._loaded or self.loading:
            return False
        self.loading = True
        return True

    def load(self) -> None:
        """Read the configuration and files and build the resolver (worker thread). dnspython
        is imported here, the first time names are turned on: several MB the app does not
        spend until then."""
        options = self.options
        try:
            self._services = parse_services(options.services.read_text(errors="replace"))
        except OSError:
            self._services = {}
        servers, self.source, error = self._servers()
        try:
            from netdash.sources.dns import ReverseResolver

            resolver = ReverseResolver(
                servers,
                options.timeout,
                hosts=options.hosts,
                negative_ttl=options.negative_ttl,
                on_resolved=self._resolved,
            )
        except Exception as err:  # dnspython missing: /etc/services still works
            self.error = str(err) or type(err).__name__
        else:
            self.resolver = resolver
            self.error = error
        self._loaded, self.loading = True, False

    def _servers(self) -> tuple[tuple[Server, ...], str, str | None]:
        """The servers to ask, the words that say which, and what is wrong with them."""
        options = self.options
        if options.nameservers:
            listed = ", ".join(format_server(server) for server in options.nameservers)
            return options.nameservers, f"{listed} (--nameserver)", None
        servers, error = nameservers(options.resolv_conf)
        whose = ""
        if options.netns:
            whose = " (the host's: --netns enters by setns"
            own = Path("/etc/netns", options.netns, "resolv.conf")
            if own.is_file() and own != options.resolv_conf:  # what `ip netns exec` would use
                whose += f"; --resolv-conf {own} for the namespace's"
            whose += ")"
        listed = ", ".join(format_server(server) for server in servers) or "no nameserver"
        stub = ", systemd-resolved" if any(addr == SYSTEMD_STUB for addr, _ in servers) else ""
        return tuple(servers), f"{listed} from {options.resolv_conf}{whose}{stub}", error

    def stop(self) -> None:
        """Turn names off: the tables show numbers and no lookup is started (the resolver and
        its cache stay for the next ``n``)."""
        self.enabled = False

    def close(self) -> None:
        resolver, self.resolver = self.resolver, None
        if resolver is not None:
            resolver.close()

    # -- asked while painting ------------------------------------------------------------------

    def name_of(self, addr: str | None) -> str | None:
        """A name for ``addr`` now, or None (names off, not known yet, or none exists).

        A name whose TTL ran out is still shown while it is looked up again (stale while
        revalidating): the screen does not flicker back to the number, and the same answer
        needs no repaint. The resolver does not queue an address asked while all its lookup
        slots are busy (it expects to be asked again next frame); the table repaints only the
        lines that changed, so the next finished lookup repaints, and the address is asked again.
        """
        resolver = self.resolver
        if addr is None or resolver is None or not self.enabled:
            return None
        if resolver.in_flight >= resolver.max_in_flight:
            with self._lock:  # said first: a lookup that finishes from now on sees it
                self._refused = True
        name = resolver.name_of(addr)
        if name is not None:
            return name
        return self._known.get(_key(addr))

    def host(self, addr: str) -> str:
        """``addr``'s name (made safe to show), or the address itself."""
        name = self.name_of(addr)
        return visible(name) if name else addr

    def service(self, port: int | None, proto: str) -> str | None:
        """The service name of a well-known or registered port (``proto``: tcp or udp), when
        names are on."""
        if port is None or port >= SERVICE_PORTS_BELOW or not self.active:
            return None
        return self._services.get((port, proto))

    def endpoint(
        self,
        addr: str | None,
        port: int | None,
        proto: str,
        interface: str | None = None,
        *,
        resolve: bool = True,
        width: int | None = None,
    ) -> str:
        """``ss``'s spelling with names: ``example.com:https``, ``[::1]:postgresql``; a name
        too long for ``width`` is cut before the port, which stays whole."""
        name = self.name_of(addr) if resolve else None
        if addr is None:
            host = "*"
        elif name:
            host = visible(name)
        else:
            host = f"[{addr}]" if ":" in addr else addr
        if interface:
            host = f"{host}%{interface}"
        if port is None:
            return host
        service = self.service(port, proto) or str(port)
        if name and width is not None and len(host) + 1 + len(service) > width:
            host = host[: max(width - len(service) - 2, 1)] + "…"
        return f"{host}:{service}"

    # -- the resolver's threads ----------------------------------------------------------------

    def _resolved(self, addr: str, name: str | None) -> None:
        """A lookup finished: ask for a repaint unless the screen already shows the answer (the
        same name as before, or still none) or a repaint is already asked for."""
        key = _key(addr)
        with self._lock:
            before = self._known.get(key)
            if name is None:
                self._known.pop(key, None)
            else:
                if len(self._known) >= KNOWN_LIMIT:
                    self._known.clear()
                self._known[key] = name
            retry, self._refused = self._refused, False
            if (before == name and not retry) or self._pending:
                return
            self._pending = True
        self.changed()

    def repainting(self) -> None:
        """The app repaints now: names that arrive from here on ask for another repaint."""
        with self._lock:
            self._pending = False


def _key(addr: str) -> str:
    """The resolver's spelling of an address (its callback's), e.g. of ``::ffff:10.0.0.1``."""
    try:
        return ipaddress.ip_address(addr).compressed
    except ValueError:
        return addr


#: A pane's way of putting names into a drawn row: (row, its cells, the names, the width of each
#: shown column by index) -> the cells to draw (the same tuple when nothing changes).
Namer = Callable[[Any, tuple[str, ...], Names, Mapping[int, int]], tuple[str, ...]]


class _Renamed:
    """A drawn row with its cells renamed (painting only: the view keeps the original)."""

    __slots__ = ("born", "cells", "highlight", "key", "styles")

    def __init__(self, row: Any, cells: tuple[str, ...]) -> None:
        self.key: Hashable = row.key
        self.cells = cells
        self.styles = row.styles
        self.born: float = row.born
        self.highlight = getattr(row, "highlight", None)


class NamedTable(VirtualTable):
    """A :class:`VirtualTable` whose drawn rows pass through ``namer`` while names are on.

    ``names`` is set by the app after mounting (None: always numbers). The widget caches the
    strips it drew by row, so :meth:`names_changed` drops them when names come, go or change.
    """

    def __init__(self, columns: Any, *, namer: Namer, **kwargs: Any) -> None:
        super().__init__(columns, **kwargs)
        self.namer = namer
        self.names: Names | None = None

    def _render_row(self, row: Any, width: int, is_cursor: bool, is_new: bool) -> Strip:
        names = self.names
        if names is not None and names.active:
            cells = row.cells
            named = self.namer(row, cells, names, dict(self._current_layout()))
            if named is not cells:
                row = _Renamed(row, named)
        return super()._render_row(row, width, is_cursor, is_new)

    def names_changed(self) -> None:
        """Draw every line again: the cached strips show the names (or numbers) of before."""
        self.set_view(self.view)


def names_label(names: Names) -> tuple[str, str] | None:
    """The header's words for the names in use, None while names are off."""
    if not names.enabled:
        return None
    if names.loading or not names.active:
        return "names: starting", "yellow"
    text = f"names via {visible(names.source)}"
    if names.error:
        return f"{text} ({visible(names.error)})", "bold yellow"
    return text, "bold green"
