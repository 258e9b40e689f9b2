"""Entry points: `netdash` (the TUI), `netdash dump connections|routes|interfaces --json`,
`netdash record`.

Exit codes: 0 success, 1 a failure (a one-line message on stderr), 2 a usage error. Textual is
imported only for the TUI, so `dump` starts as fast as a small script.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from netdash import __version__
from netdash.malloc import return_large_blocks
from netdash.sources.errors import PermissionNeeded, SourceError

if TYPE_CHECKING:  # the dump path imports these only when it runs
    from netdash.engine_links import LinkRate
    from netdash.model import Link, LinkCounters

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"the interval must be more than 0 seconds, not {text}")
    if value < 0.1:
        raise argparse.ArgumentTypeError("the interval must be at least 0.1 seconds")
    return value


def window_seconds(text: str) -> float:
    """``dump interfaces --seconds``: a rate window, so any finite time above 0 (unlike a poll
    interval, a short one costs nothing but precision)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"the window must be more than 0 seconds, not {text}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return int(text)


def add_netns_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """--netns / --netns-pid, accepted before or after the subcommand.

    On subcommands the default is SUPPRESS: otherwise argparse would overwrite a value given
    before the subcommand with the subcommand's default None.
    """
    default = argparse.SUPPRESS if sub else None
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--netns",
        metavar="NAME",
        default=default,
        help="sample this network namespace (a name from `ip netns list`; needs root)",
    )
    group.add_argument(
        "--netns-pid",
        metavar="PID",
        type=positive_int,
        default=default,
        help="sample the network namespace of process PID (e.g. a container)",
    )


def add_source_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    parser.add_argument(
        "--proc-net",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="read sockets from /proc/net instead of sock_diag netlink (fewer fields: the "
        "fallback used automatically where sock_diag is missing)",
    )


def add_journal_options(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """Where the journal pane and ``dump journal`` read: one journal source at most (like
    journalctl's -D/--file/--namespace), or a syslog file instead of the journal."""
    default = argparse.SUPPRESS if sub else None
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--journal-dir",
        metavar="DIR",
        default=default,
        help="read the journal files in DIR (journalctl -D), e.g. a copy for a post-mortem",
    )
    group.add_argument(
        "--journal-file",
        metavar="FILE",
        default=default,
        help="read this journal file (journalctl --file)",
    )
    group.add_argument(
        "--journal-namespace",
        metavar="NAME",
        default=default,
        help="read the journal namespace NAME (journalctl --namespace)",
    )
    parser.add_argument(
        "--syslog-file",
        metavar="PATH",
        default=default,
        help="tail this syslog file instead of the journal (without a journal, netdash tails "
        "/var/log/syslog or /var/log/messages by itself)",
    )


def add_names_options(parser: argparse.ArgumentParser) -> None:
    """Where the TUI's names (``n``) come from; the same argument types as ``netdash dns``."""
    from netdash.dump_dns import root_hints_argument, server_argument

    parser.add_argument(
        "--nameserver",
        type=server_argument,
        action="append",
        metavar="ADDR[:PORT]",
        help="reverse DNS for names (n) asks this server instead of resolv.conf's (repeatable; "
        "IPv6 as [::1]:5353)",
    )
    parser.add_argument(
        "--resolv-conf",
        type=Path,
        metavar="PATH",
        help="read the nameservers for names (n) from PATH (default /etc/resolv.conf; with "
        "--netns still the host's, as setns does not swap it: pass /etc/netns/NAME/resolv.conf)",
    )
    parser.add_argument(
        "--root-hints",
        type=root_hints_argument,
        metavar="FILE_OR_ADDR[:PORT],...",
        help="where the resolver view's +trace starts: named.root files and/or addresses "
        "(default: IANA's, built in); their port is used for every server of the trace",
    )


def add_journal_dump_parser(dump_what) -> None:  # dump_what: argparse's _SubParsersAction
    from netdash.dump_journal import priority_level

    journal = dump_what.add_parser("journal", help="the last N matching journal entries")
    journal.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    journal.add_argument("--unit", "-u", action="append", metavar="UNIT", help="(repeatable)")
    journal.add_argument(
        "--priority",
        "-p",
        type=priority_level,
        metavar="P",
        help="this priority and above: emerg alert crit err warning notice info debug or 0-7",
    )
    journal.add_argument("--since", "-S", metavar="WHEN", help='journalctl syntax: "1 hour ago"')
    journal.add_argument(
        "--lines", "-n", type=positive_int, default=100, metavar="N", help="default 100"
    )
    journal.add_argument("--pid", type=positive_int, action="append", help="(repeatable)")
    journal.add_argument(
        "--identifier", "-t", action="append", metavar="ID", help="syslog identifier"
    )
    add_journal_options(journal, sub=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netdash",
        description="A live terminal dashboard of the network stack: sockets and their owners.",
    )
    parser.add_argument("--version", action="version", version=f"netdash {__version__}")
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds between samples (default 1)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="show a recording made with `netdash record` instead of live data",
    )
    add_netns_options(parser)
    add_source_options(parser)
    add_journal_options(parser)
    add_names_options(parser)
    commands = parser.add_subparsers(dest="command")

    dump = commands.add_parser("dump", help="print one sample and exit")
    dump_what = dump.add_subparsers(dest="what", required=True)
    connections = dump_what.add_parser("connections", help="TCP, UDP and UNIX sockets")
    connections.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    connections.add_argument("--no-unix", action="store_true", help="leave UNIX sockets out")
    add_netns_options(connections, sub=True)
    add_source_options(connections, sub=True)
    routes = dump_what.add_parser("routes", help="routes of both families in every table")
    routes.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    add_netns_options(routes, sub=True)
    interfaces = dump_what.add_parser(
        "interfaces", help="every interface with its counters and rates over a window"
    )
    interfaces.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    interfaces.add_argument(
        "--seconds",
        type=window_seconds,
        default=1.0,
        metavar="N",
        help="measure rates over N seconds (default 1); counters are those at the end",
    )
    add_netns_options(interfaces, sub=True)
    processes = dump_what.add_parser(
        "processes", help="every process, zombies included, with its sockets and cgroup"
    )
    processes.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    processes.add_argument(
        "--seconds",
        type=window_seconds,
        default=1.0,
        metavar="N",
        help="CPU %% over N seconds (default 1)",
    )
    add_netns_options(processes, sub=True)
    cgroups = dump_what.add_parser("cgroups", help="every populated or limited cgroup")
    cgroups.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    add_journal_dump_parser(dump_what)
    conntrack = dump_what.add_parser(
        "conntrack", help="the conntrack table: count, limit, states, top addresses, stat rates"
    )
    conntrack.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )
    conntrack.add_argument(
        "--seconds",
        type=window_seconds,
        default=1.0,
        metavar="N",
        help="rates over N s (default 1)",
    )
    add_netns_options(conntrack, sub=True)
    from netdash.dump_firewall import add_firewall_dump_parser

    add_firewall_dump_parser(dump_what)
    from netdash.dump_stack import add_stack_dump_parser

    add_stack_dump_parser(dump_what)

    from netdash.dump_dns import add_dns_parser

    add_dns_parser(commands)
    from netdash.dump_diagnose import add_diagnose_parser

    add_diagnose_parser(commands)
    record = commands.add_parser("record", help="record samples to a file for --replay")
    record.add_argument("output", type=Path, help="file to write")
    record.add_argument("--samples", type=positive_int, default=5)
    record.add_argument("--interval", type=positive_seconds, default=1.0, dest="record_interval")
    add_netns_options(record, sub=True)
    return parser


def netns_target(args: argparse.Namespace):  # -> NetnsTarget
    from netdash.netns import resolve_netns

    return resolve_netns(getattr(args, "netns", None), getattr(args, "netns_pid", None))


def open_sampler(args: argparse.Namespace):  # -> ConnectionsSampler
    from netdash.engine import ConnectionsSampler
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    force_proc = ("tcp", "udp", "unix") if getattr(args, "proc_net", False) else ()
    reader = SocketReader(netns=netns_target(args), force_proc=force_proc)
    return ConnectionsSampler(reader, OwnerMap())


def run_dump(args: argparse.Namespace) -> int:
    """One sample as JSON, streamed: every process's fds are read first (as ``ss -p`` does),
    then each batch of sockets is written as the kernel sends it, so the table is never whole
    in memory (peak RSS at 100,000 sockets: ~170 MB when it was). A one-shot process: the cyclic
    GC stays off (the records hold no cycles) and the engine is not imported."""
    import gc

    from netdash.dump import write_batches
    from netdash.sources.owners import OwnerMap
    from netdash.sources.sockets import SocketReader

    gc.disable()
    force_proc = ("tcp", "udp", "unix") if getattr(args, "proc_net", False) else ()
    with SocketReader(netns_target(args), force_proc=force_proc, reuse_unchanged=False) as reader:
        owners = OwnerMap()
        owners.refresh()
        sys.stdout.flush()
        batches = reader.iter_read(tcp_info=True, unix=not args.no_unix)
        write_batches(
            batches, owners.owners(), owners.complete, sys.stdout.buffer, owners.fd_tables()
        )
    sys.stdout.buffer.flush()
    return EXIT_OK


def run_dump_routes(args: argparse.Namespace) -> int:
    """`netdash dump routes --json`: one object per route (see :func:`route_to_json`)."""
    import json

    from netdash.sources.routes import RouteReader

    with RouteReader(netns_target(args)) as reader:
        routes = reader.routes()
    text = json.dumps([route_to_json(route) for route in routes], separators=(",", ":"))
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return EXIT_OK


def route_to_json(route) -> dict[str, object]:  # route: netdash.model.Route
    """The keys of the issue (dst, gateway, dev, prefsrc, protocol, metric, table; null when
    absent) plus family, type and scope: every field of :class:`netdash.model.Route`."""
    return {
        "family": route.family,
        "dst": route.dst,
        "gateway": route.gateway,
        "dev": route.dev,
        "prefsrc": route.prefsrc,
        "protocol": route.protocol,
        "metric": route.metric,
        "table": route.table,
        "type": route.type,
        "scope": route.scope,
    }


def run_dump_interfaces(args: argparse.Namespace) -> int:
    """`netdash dump interfaces --json`: counters read twice, ``--seconds`` apart, through the
    engine's tracker, so rates are computed as the pane computes them. A namespace that cannot
    be found is a usage error (exit 2), like a bad option."""
    import json
    import time

    from netdash.engine_links import LinkTracker
    from netdash.sources.links import LinkReader

    try:
        target = netns_target(args)
    except PermissionNeeded:
        raise
    except SourceError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return EXIT_USAGE
    tracker = LinkTracker(interval=args.seconds)
    with LinkReader(target) as reader:
        start = tracker.update(reader.sample())
        # Sleep to start + N, not N: the first sample also read the link details (pyroute2,
        # ethtool), and the window should be the one asked for.
        time.sleep(max(0.0, start.sample.taken_at + args.seconds - time.monotonic()))
        frame = tracker.update(reader.sample())
    rows = [
        interface_to_json(link, frame.sample.counters[link.ifindex], frame.rates[link.ifindex])
        for link in frame.links
    ]
    sys.stdout.write(json.dumps(rows, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def interface_to_json(
    link: Link, counters: LinkCounters, rate: LinkRate | None
) -> dict[str, object]:
    """One interface: the keys of the issue, every kernel counter (as read at the end of the
    window) by its ``rtnl_link_stats64`` name, rates (null when unknown: the interface appeared
    or its counters reset during the window) and ``rate_seconds``, the monotonic time between
    the two counter reads that the rates cover. Names arrive decoded by
    :func:`netdash.textsafe.decode` (non-UTF-8 bytes as ``\\xNN``), so the JSON is valid."""
    from netdash.model import LINK_COUNTER_NAMES

    row: dict[str, object] = {
        "ifindex": link.ifindex,
        "name": link.name,
        "kind": link.kind,
        "operstate": link.operstate,
        "mtu": link.mtu,
        "mac": link.mac,
        "addresses": list(link.addresses),
    }
    row.update((name, getattr(counters, name)) for name in LINK_COUNTER_NAMES)
    for key in ("rx_bps", "tx_bps", "rx_pps", "tx_pps"):
        row[key] = None if rate is None else getattr(rate, key)
    row["rate_seconds"] = None if rate is None else rate.seconds
    row.update(
        carrier=link.carrier,
        speed_mbps=link.speed_mbps,
        speed_nominal=link.speed_nominal,
        duplex=link.duplex,
        master=link.master,
        flags=list(link.flags),
    )
    return row


def run_record(args: argparse.Namespace) -> int:
    import time

    from netdash.record import write_recording
    from netdash.sources.host import read_host_info

    target = netns_target(args)
    sampler = open_sampler(args)
    samples = []
    try:
        for index in range(args.samples):
            if index:
                time.sleep(args.record_interval)
            samples.append(sampler.sample())
    finally:
        sampler.close()
    write_recording(args.output, read_host_info(target.label), samples)
    print(f"wrote {len(samples)} samples to {args.output}", file=sys.stderr)
    return EXIT_OK


def run_tui(args: argparse.Namespace) -> int:
    from netdash.ui.app import run_app

    return run_app(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return_large_blocks()  # netdash.malloc: a refresh's big transients go back to the kernel
    try:
        if args.command == "dump" and args.what == "routes":
            return run_dump_routes(args)
        if args.command == "dump" and args.what == "interfaces":
            return run_dump_interfaces(args)
        if args.command == "dump" and args.what == "processes":
            from netdash.dump_procs import run_dump_processes

            return run_dump_processes(args, netns_target(args))
        if args.command == "dump" and args.what == "journal":
            from netdash.dump_journal import run_dump_journal

            return run_dump_journal(args)
        if args.command == "dump" and args.what == "conntrack":
            from netdash.dump_conntrack import run_dump_conntrack

            return run_dump_conntrack(args, netns_target(args))
        if args.command == "dump" and args.what == "stack":
            from netdash.dump_stack import run_dump_stack

            return run_dump_stack(args, netns_target(args))
        if args.command == "dump" and args.what == "firewall":
            from netdash.dump_firewall import run_dump_firewall

            return run_dump_firewall(args, netns_target(args))
        if args.command == "dump" and args.what == "cgroups":
            from netdash.dump_procs import run_dump_cgroups

            return run_dump_cgroups(args)
        if args.command == "dump":
            return run_dump(args)
        if args.command == "diagnose":
            from netdash.dump_diagnose import run_diagnose

            return run_diagnose(args)
        if args.command == "dns":
            from netdash.dump_dns import run_dns

            return run_dns(args)
        if args.command == "record":
            return run_record(args)
        return run_tui(args)
    except SourceError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK  # `netdash dump ... | head` is not a failure
    except OSError as err:
        print(f"netdash: {err.strerror or err}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
