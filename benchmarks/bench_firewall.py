"""Firewall tick at scale: netdash's firewall tick on an unchanged ruleset against one
``nft -j list ruleset`` plus one ``iptables-save -c``, in the same namespace and the same run.

The issue's target (at 5,000 rules): a tick with an unchanged ruleset costs no more than those
two tools. Run as root (it builds a network namespace):

    .venv/bin/python benchmarks/bench_firewall.py                  # 5,000 rules, 5 rounds
    .venv/bin/python benchmarks/bench_firewall.py --rules 1000 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import CommandRunner, Comparison, Side, call_side, command_side, compare
from benchmarks.lab import Lab, add_namespace, run_in_netns
from benchmarks.report import machine_info, print_sides, write_results

TARGET = "tick <= nft -j + iptables-save"
NFT_JSON = ["nft", "-j", "list", "ruleset"]
IPTABLES_SAVE = ["iptables-save", "-c"]
REFERENCE = "nft -j list ruleset + iptables-save -c"
_names = itertools.count(1)


def progress(text: str) -> None:
    print(f"[bench_firewall] {text}", file=sys.stderr, flush=True)


def ruleset(rules: int) -> str:
    """``rules`` nft rules in table inet bench: most with an anonymous counter, every tenth
    with a named counter, every hundredth matching a named set, spread over 10 chains."""
    lines = [
        "table inet bench {",
        "  counter hits { }",
        "  set web { type inet_service; flags interval; elements = { 8000-8080, 9001 } }",
    ]
    chains = 10
    per_chain = [rules // chains + (1 if i < rules % chains else 0) for i in range(chains)]
    for chain, count in enumerate(per_chain):
        head = "type filter hook input priority 0; policy accept;" if chain == 0 else ""
        lines.append(f"  chain c{chain} {{ {head}")
        for i in range(count):
            port = 10000 + chain * 5000 + i
            if i % 100 == 99:
                lines.append(f'    tcp dport @web counter accept comment "set {i}"')
            elif i % 10 == 9:
                lines.append(f'    udp dport {port} counter name "hits" accept')
            else:
                lines.append(f'    tcp dport {port} counter accept comment "rule {chain}.{i}"')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


IPTABLES_RULES = [
    ["iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"],
    ["iptables-nft", "-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "80,443", "-j",
     "ACCEPT"],
    ["iptables-legacy", "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
]  # fmt: skip


class FirewallLab(Lab):
    """A namespace with ``rules`` nft rules, two iptables-nft rules and one iptables-legacy
    rule (both backends, the worst case: the legacy save runs every tick); deleted on exit."""

    def __init__(self, rules: int) -> None:
        self.rules = rules
        self.name = f"nd-bench-fw-{os.getpid()}-{next(_names)}"
        self._created = False

    def _build(self) -> None:
        add_namespace(self.name)
        self._created = True
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
            input=ruleset(self.rules),
            text=True,
            check=True,
            capture_output=True,
            timeout=300,
        )
        for argv in IPTABLES_RULES:
            run_in_netns(["ip", "netns", "exec", self.name, *argv], None)

    def close(self) -> None:
        if self._created:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
            self._created = False


class NetdashFirewall:
    """The firewall source and tracker as the live engine runs them, inside the lab."""

    def __init__(self, netns: str) -> None:
        from netdash.engine_firewall import FirewallTracker
        from netdash.netns import resolve_netns
        from netdash.sources.firewall import FirewallReader

        self.reader = FirewallReader(resolve_netns(netns))
        self.tracker = FirewallTracker()
        self.last: Any = None

    def tick(self) -> None:
        self.last = self.tracker.update(self.reader.sample())

    def counters(self) -> None:
        sock = self.reader._socket()  # the per-tick netlink dump alone, for information
        sock.rule_counters()

    def close(self) -> None:
        self.reader.close()


def sides(netdash: NetdashFirewall, runner: CommandRunner) -> list[Side]:
    return [
        call_side(
            "netdash tick (unchanged)",
            netdash.tick,
            "FirewallTracker.update(FirewallReader.sample()), same ruleset generation",
        ),
        command_side(REFERENCE, runner, NFT_JSON, IPTABLES_SAVE),
        call_side("  rule counters dump", netdash.counters, "one NFT_MSG_GETRULE dump, parsed"),
        command_side("  nft -a list ruleset", runner, ["nft", "-a", "list", "ruleset"]),
    ]


def sanity_checks(lab: FirewallLab, netdash: NetdashFirewall) -> dict[str, Any]:
    """Untimed: netdash lists every rule once, with nft's counters (a wrong answer fast is
    worth nothing)."""
    netdash.tick()
    sample = netdash.last.sample
    doc = json.loads(run_in_netns(["ip", "netns", "exec", lab.name, *NFT_JSON], None))
    nft_rules = sum(
        1 for item in doc["nftables"] if "rule" in item and item["rule"]["table"] == "bench"
    )
    ours = [r for r in sample.rules if r.backend == "nft"]
    by_backend = {
        b: sum(1 for r in sample.rules if r.backend == b)
        for b in ("nft", "iptables-nft", "iptables-legacy")
    }
    errors = [e for e in sample.errors if not e.startswith("warning:")]
    checks = {
        "nft rules (nft -j)": nft_rules,
        "rules by backend": by_backend,
        "rules with counters": sum(1 for r in ours if r.packets is not None),
        "errors": errors,
    }
    checks["ok"] = (
        by_backend == {"nft": lab.rules, "iptables-nft": 2, "iptables-legacy": 1}
        and nft_rules == lab.rules
        and checks["rules with counters"] == lab.rules
        and not errors
    )
    return checks


def ratios(comparison: Comparison) -> dict[str, float]:
    return {
        f"netdash tick (unchanged) / {REFERENCE}": comparison.ratio(
            "netdash tick (unchanged)", REFERENCE
        )
    }


def measure(lab: FirewallLab, repeat: int, warmup: int = 1) -> dict[str, Any]:
    netdash = NetdashFirewall(lab.name)
    try:
        with CommandRunner(lab.name) as runner:
            checks = sanity_checks(lab, netdash)  # the first tick reads the structure
            reads = netdash.reader.structure_reads
            progress(f"timing 4 sides x {repeat} rounds, interleaved")
            comparison = compare(sides(netdash, runner), repeat=repeat, warmup=warmup)
            checks["structure re-read while timing"] = netdash.reader.structure_reads - reads
            checks["ok"] = checks["ok"] and checks["structure re-read while timing"] == 0
    finally:
        netdash.close()
    return {
        "rules": lab.rules,
        "setup_s": lab.setup_seconds,
        "checks": checks,
        "sides": {name: side.to_json() for name, side in comparison.sides.items()},
        "ratios": ratios(comparison),
    }


def print_result(result: dict[str, Any]) -> None:
    print(f"\n{result['rules']:,} nft rules (+2 iptables-nft, +1 iptables-legacy)")
    print_sides(result["sides"], width=42)
    print("ratios (median of per-round ratios):")
    for name, value in result["ratios"].items():
        print(f"  {name:<66}{value:8.3f}x  {TARGET}: {'PASS' if value <= 1 else 'FAIL'}")
    print(f"checks: {result['checks']}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=5000, help="nft rules in the lab (>= 10)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (>= 1)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rules < 10:
        parser.error("--repeat must be >= 1 and --rules >= 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench_firewall: needs root (it builds a network namespace)", file=sys.stderr)
        return 2
    machine = machine_info()
    started = time.monotonic()
    progress(f"lab: {args.rules:,} nft rules")
    with FirewallLab(args.rules) as lab:
        progress(f"lab {lab.name} ready in {lab.setup_seconds:.1f} s")
        result = measure(lab, args.repeat)
    print_result(result)
    progress(f"done in {time.monotonic() - started:.0f} s")
    write_results(args.json, machine, vars(args), result)
    return 0 if result["checks"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
