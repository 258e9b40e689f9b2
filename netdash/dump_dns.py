"""`netdash dns NAME [TYPE] [--server S ...] [--resolv-conf PATH] --json` (no Textual): ask
each nameserver directly, like ``dig @server``, and print what each one said. With ``--trace``
(and ``--root-hints``), resolve iteratively from the root servers instead, like ``dig +trace``,
and print every hop.

Exit 0 when at least one server replied (NXDOMAIN and SERVFAIL are replies) or the trace
reached a final reply, 1 when none did, the trace failed or there is no nameserver to ask,
2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netdash.sources.dnsconfig import (
    BUILT_IN,
    RECORD_TYPES,
    DnsAnswer,
    ResolverConfig,
    RootHints,
    Server,
    ServerAnswer,
    TraceHop,
    TraceResult,
    config_servers,
    load_root_hints,
    parse_server,
    resolver_config,
)


def server_argument(text: str) -> Server:
    try:
        return parse_server(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def record_type(text: str) -> str:
    if text.upper() not in RECORD_TYPES:
        raise argparse.ArgumentTypeError(f"'{text}' is not one of {' '.join(RECORD_TYPES)}")
    return text.upper()


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"the timeout must be 0-60 seconds, not {text}")
    return value


def root_hints_argument(text: str) -> RootHints:
    try:
        return load_root_hints(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_dns_parser(commands: Any) -> None:  # argparse's _SubParsersAction
    dns = commands.add_parser("dns", help="ask each nameserver for a name, like dig")
    dns.add_argument("name", help="a name, or an address for PTR")
    dns.add_argument(
        "type", nargs="?", type=record_type, default="A", help=" ".join(RECORD_TYPES) + " (A)"
    )
    dns.add_argument(
        "--server",
        "--nameserver",
        type=server_argument,
        action="append",
        metavar="ADDR[:PORT]",
        help="ask this server instead of resolv.conf's (repeatable; IPv6 as [::1]:5353)",
    )
    # SUPPRESS: not given here, the TUI's own --resolv-conf/--root-hints (before `dns`) stand.
    dns.add_argument("--resolv-conf", type=Path, default=argparse.SUPPRESS, metavar="PATH")
    dns.add_argument(
        "--timeout", type=timeout_seconds, default=2.0, metavar="S", help="per server (2)"
    )
    dns.add_argument(
        "--trace", action="store_true", help="resolve from the root servers, every hop shown"
    )
    dns.add_argument(
        "--root-hints",
        type=root_hints_argument,
        default=argparse.SUPPRESS,
        metavar="FILE_OR_ADDR[:PORT],...",
        help="where --trace starts: named.root files and/or addresses (IANA's built in); "
        "their port is used for every server of the trace",
    )
    dns.add_argument(
        "--json", action="store_true", required=True, help="JSON output (the only format for now)"
    )


def servers_to_ask(args: argparse.Namespace) -> tuple[list[Server], ResolverConfig | None]:
    """``--server``s, or resolv.conf's nameservers (an unparsable line there is skipped)."""
    servers = args.server or getattr(args, "nameserver", None)
    if servers:
        return list(servers), None
    config = resolver_config(resolv_conf_of(args))
    return list(config_servers(config)), config


def resolv_conf_of(args: argparse.Namespace) -> Path:
    return getattr(args, "resolv_conf", None) or Path("/etc/resolv.conf")


def run_dns(args: argparse.Namespace) -> int:
    args.root_hints = getattr(args, "root_hints", None)
    if args.trace or args.root_hints is not None:
        return run_trace(args)
    servers, config = servers_to_ask(args)
    if not servers:
        where = (config and config.error) or f"no nameserver in {resolv_conf_of(args)}"
        print(f"netdash: {where}", file=sys.stderr)
        return 1
    from netdash.sources.dns import lookup  # dnspython: not for building the CLI's parser

    try:
        replies = lookup(args.name, args.type, servers, timeout=args.timeout)
    except ValueError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return 2
    document = {
        "name": args.name,
        "type": args.type,
        "resolv_conf": None if config is None else config.path,
        "servers": [server_to_json(reply) for reply in replies],
    }
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0 if any(reply.rcode is not None for reply in replies) else 1


def server_to_json(reply: ServerAnswer) -> dict[str, Any]:
    """The issue's keys (server, rcode, answers, ms) and ``error`` (null when it replied)."""
    return {
        "server": reply.server,
        "rcode": reply.rcode,
        "answers": records_to_json(reply.answers),
        "ms": None if reply.ms is None else round(reply.ms, 3),
        "error": reply.error,
    }


def run_trace(args: argparse.Namespace) -> int:
    if not args.trace:
        print("netdash: --root-hints is for --trace", file=sys.stderr)
        return 2
    if args.server:
        print(
            "netdash: --trace starts at the root servers: give them with --root-hints",
            file=sys.stderr,
        )
        return 2
    from netdash.sources.dnstrace import trace  # dnspython: not for building the CLI's parser

    try:
        result = trace(args.name, args.type, args.root_hints, timeout=args.timeout)
    except ValueError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(trace_to_json(result, args.root_hints), separators=(",", ":")))
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0 if result.error is None else 1


def trace_to_json(result: TraceResult, hints: RootHints | None) -> dict[str, Any]:
    """The hops in the order asked, the final answers and rcode, and ``error`` (null when the
    trace reached a final reply)."""
    return {
        "name": result.name,
        "type": result.type,
        "root_hints": BUILT_IN if hints is None else hints.source,
        "trace": [hop_to_json(hop) for hop in result.hops],
        "answers": records_to_json(result.answers),
        "rcode": result.rcode,
        "error": result.error,
    }


def hop_to_json(hop: TraceHop) -> dict[str, Any]:
    return {
        "zone": hop.zone,
        "server": hop.server,
        "address": hop.address,
        "port": hop.port,
        "qname": hop.qname,
        "qtype": hop.qtype,
        "rcode": hop.rcode,
        "kind": hop.kind,
        "records": records_to_json(hop.records),
        "ms": None if hop.ms is None else round(hop.ms, 3),
        "error": hop.error,
        "depth": hop.depth,
    }


def records_to_json(records: Sequence[DnsAnswer]) -> list[dict[str, Any]]:
    return [{"name": r.name, "type": r.type, "ttl": r.ttl, "value": r.value} for r in records]
