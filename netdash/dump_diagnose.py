"""`netdash diagnose HOST:PORT [--json] [--timeout S] [--tls/--no-tls] [--nameserver ADDR[:PORT]]
[--resolv-conf PATH] [--netns NAME | --netns-pid PID]`: the reach checklist from the command
line (no Textual). Without ``--json`` each step is printed as it completes, then the verdict;
with it, one JSON object ``{"target", "address", "netns", "steps": [{"name", "status",
"detail", "ms"}], "verdict"}``.

Exit 0 when the target is reachable, 1 otherwise (or when the namespace cannot be entered),
2 on a usage error (a bad target, an unknown namespace).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netdash.diagnose import (
    BUDGET,
    DEFAULT_TIMEOUT,
    DiagnoseOptions,
    Diagnosis,
    Step,
    Target,
    diagnose,
    parse_target,
)
from netdash.dump_dns import server_argument
from netdash.netns import NetnsTarget, resolve_netns
from netdash.sources.errors import PermissionNeeded, SourceError
from netdash.textsafe import visible

EXIT_REACHABLE, EXIT_NOT_REACHABLE, EXIT_USAGE = 0, 1, 2


def target_argument(text: str) -> Target:
    try:
        return parse_target(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def connect_timeout(text: str) -> float:
    """Seconds for the connect (and the TLS handshake): the whole diagnosis must stay under
    :data:`BUDGET`, with room for the name and the rules."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= BUDGET - 5:
        raise argparse.ArgumentTypeError(
            f"the timeout must be 0-{BUDGET - 5:g} seconds, not {text}"
        )
    return value


def add_diagnose_parser(commands: Any) -> None:  # argparse's _SubParsersAction
    from netdash.cli import add_netns_options

    parser = commands.add_parser(
        "diagnose",
        help="why can't I reach HOST:PORT? name, route, firewall, listener, connect, TLS",
    )
    parser.add_argument(
        "target", type=target_argument, metavar="HOST:PORT", help="IPv6: [ADDR]:PORT"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    parser.add_argument(
        "--timeout",
        type=connect_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"connect and TLS timeout in seconds (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="try a TLS handshake after connecting (default: on 443 8443 993 995 465 636)",
    )
    parser.add_argument(
        "--nameserver",
        "--server",
        dest="nameserver",
        type=server_argument,
        action="append",
        default=argparse.SUPPRESS,  # not given here, netdash's own (before `diagnose`) stands
        metavar="ADDR[:PORT]",
        help="ask this nameserver instead of resolv.conf's (repeatable; IPv6 as [::1]:5353)",
    )
    parser.add_argument("--resolv-conf", type=Path, default=argparse.SUPPRESS, metavar="PATH")
    add_netns_options(parser, sub=True)


def run_diagnose(args: argparse.Namespace) -> int:
    try:
        netns = resolve_netns(getattr(args, "netns", None), getattr(args, "netns_pid", None))
    except PermissionNeeded as err:
        print(f"netdash: {err}", file=sys.stderr)
        return EXIT_NOT_REACHABLE
    except SourceError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return EXIT_USAGE
    nameservers = getattr(args, "nameserver", None)
    options = DiagnoseOptions(
        nameservers=tuple(nameservers) if nameservers else None,
        resolv_conf=getattr(args, "resolv_conf", None) or Path("/etc/resolv.conf"),
        netns=netns,
        timeout=args.timeout,
        tls=args.tls,
    )
    if args.json:
        result = diagnose(args.target, options)
        sys.stdout.write(json.dumps(diagnosis_to_json(result, netns), separators=(",", ":")))
        sys.stdout.write("\n")
    else:
        print(visible(heading(args.target, options)), flush=True)
        result = diagnose(args.target, options, on_step=print_step)
        print(visible(result.verdict), flush=True)
    return EXIT_REACHABLE if result.reachable else EXIT_NOT_REACHABLE


def heading(target: Target, options: DiagnoseOptions) -> str:
    """What is diagnosed, from where, and which resolver (the host's resolv.conf applies in a
    namespace entered by setns: only `ip netns exec` swaps in /etc/netns/NAME/resolv.conf)."""
    where = f"network namespace {options.netns.label}"
    if target.address is not None:
        return f"diagnose {target} ({where})"
    if options.nameservers:
        servers = ", ".join(f"{addr}:{port}" for addr, port in options.nameservers)
        return f"diagnose {target} ({where}; nameservers {servers})"
    return f"diagnose {target} ({where}; nameservers from {options.resolv_conf})"


def step_line(step: Step) -> str:
    return f"  {step.status:<4}  {step.name:<9}  {step.detail}  ({step.ms:.1f} ms)"


def print_step(step: Step) -> None:
    print(visible(step_line(step)), flush=True)


def diagnosis_to_json(result: Diagnosis, netns: NetnsTarget) -> dict[str, Any]:
    return {
        "target": result.target,
        "address": result.address,
        "netns": netns.label,
        "steps": [
            {"name": s.name, "status": s.status, "detail": s.detail, "ms": round(s.ms, 3)}
            for s in result.steps
        ],
        "verdict": result.verdict,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m netdash.dump_diagnose diagnose HOST:PORT ...``: the subcommand on its own,
    parsed exactly as ``netdash diagnose`` parses it."""
    parser = argparse.ArgumentParser(prog="netdash")
    commands = parser.add_subparsers(dest="command", required=True)
    add_diagnose_parser(commands)
    args = parser.parse_args(argv)
    try:
        return run_diagnose(args)
    except SourceError as err:
        print(f"netdash: {err}", file=sys.stderr)
        return EXIT_NOT_REACHABLE


if __name__ == "__main__":
    sys.exit(main())
