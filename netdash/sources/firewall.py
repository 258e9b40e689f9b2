"""Firewall rules with their counters: nftables and both iptables backends, in one sample.

Why this shape (LAB.md recipe 2, measured at 5,000 rules): ``nft -j list ruleset`` costs
~130-190 ms and its rule text (``nft -a``) ~60-80 ms more, so the structure (rules, text, ports,
chains, sets, the iptables-nft mapping) is re-read only when the nf_tables generation
(``NFT_MSG_GETGEN``) changed; every tick reads the counters through one ``NFT_MSG_GETRULE`` dump
(:mod:`netdash.sources.nftnl`). iptables-nft rules are nf_tables rules too: they are reported
once, as backend ``iptables-nft``, with the save output's text and their counters taken from the
same dump (matched by position in their chain). iptables-legacy has no generation: its saves run
every tick, and only when the kernel lists legacy tables (``/proc/thread-self/net/
ip_tables_names``, so the legacy module is never loaded just by looking).

Every tool runs in a child spawned from a thread inside the namespace (no ``ip netns exec``,
no shell). What cannot be read is said in ``errors``, never shown as "no rules".
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field, replace

from netdash.model import FirewallChain, FirewallRule, FirewallSample, FirewallSet
from netdash.netns import HOST, NamespaceReader, NetnsTarget
from netdash.sources.errors import PermissionNeeded, SourceError
from netdash.sources.iptables import SaveOutput, parse_save
from netdash.sources.nft import NftStructure, parse_rule_texts, parse_ruleset
from netdash.sources.nftnl import CounterRef, NftSocket, RuleKey

NEEDS_ROOT = "needs root (CAP_NET_ADMIN)"
NFT_EPERM = f"nft: Operation not permitted: {NEEDS_ROOT}"
NO_RULES = "no rules at all"
BOTH_BACKENDS = (
    "warning: both iptables-legacy and nf_tables hold rules: packets pass through both "
    "(iptables-legacy rules are not in `nft list ruleset`)"
)
#: (save tool, family, /proc/thread-self/net file that lists the legacy tables)
NFT_SAVES = (("iptables-nft-save", "ip"), ("ip6tables-nft-save", "ip6"))
LEGACY_SAVES = (
    ("iptables-legacy-save", "ip", "ip_tables_names"),
    ("ip6tables-legacy-save", "ip6", "ip6_tables_names"),
)
TOOL_TIMEOUT = 30.0


@dataclass
class _Structure:
    """What is re-read only when the generation changes."""

    generation: int | None = None
    nft_rules: list[FirewallRule] = field(default_factory=list)
    named: dict[tuple[object, ...], tuple[str, str, str]] = field(default_factory=dict)
    chains: list[FirewallChain] = field(default_factory=list)
    sets: list[FirewallSet] = field(default_factory=list)
    ipt_rules: list[FirewallRule] = field(default_factory=list)
    #: index in ipt_rules → the nf_tables rule that carries its counter
    ipt_keys: dict[int, RuleKey] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class FirewallReader(NamespaceReader):
    """Reads :class:`FirewallSample` s of one network namespace; keep one per namespace."""

    def __init__(self, netns: NetnsTarget = HOST) -> None:
        super().__init__(netns)
        self._sock: NftSocket | None = None
        self._structure: _Structure | None = None
        self.structure_reads = 0  # how often the structure was re-read (tests, benchmark)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        super().close()

    # -- one tick ---------------------------------------------------------------------------

    def sample(self) -> FirewallSample:
        errors: list[str] = []
        rules, chains, sets = self._nf_tables(errors)
        legacy = self._legacy(errors)
        rules += legacy.rules
        chains += legacy.chains
        if legacy.rules and len(rules) > len(legacy.rules):
            errors.append(BOTH_BACKENDS)
        if not rules and not _unreadable(errors):
            errors.append(NO_RULES if not chains else "no rules at all (only chain policies)")
        return FirewallSample(
            rules=tuple(rules),
            chains=tuple(chains),
            sets=tuple(sets),
            errors=tuple(errors),
            taken_at=time.monotonic(),
        )

    def _nf_tables(
        self, errors: list[str]
    ) -> tuple[list[FirewallRule], list[FirewallChain], list[FirewallSet]]:
        """nft and iptables-nft rules with this tick's counters (structure re-read if stale)."""
        try:
            sock = self._socket()
            generation = sock.generation()
            if self._structure is None or self._structure.generation != generation:
                self._structure = self._read_structure(generation)
            counters, named = sock.rule_counters(), sock.named_counters()
            if sock.generation() != generation:  # changed under us: next tick re-reads
                self._structure.generation = None
        except PermissionNeeded:
            errors.append(NFT_EPERM)
            self._structure = None
            return self._iptables_nft_only(errors)
        except SourceError as err:
            errors.append(f"nf_tables: {err}")
            self._structure = None
            return self._iptables_nft_only(errors)
        structure = self._structure
        errors.extend(structure.errors)
        rules = [_with_counter(r, counters, named, structure.named) for r in structure.nft_rules]
        for index, rule in enumerate(structure.ipt_rules):
            key = structure.ipt_keys.get(index)
            value = counters.get(key) if key is not None else None
            rules.append(
                replace(rule, packets=value[0], bytes=value[1])
                if isinstance(value, tuple)
                else rule
            )
        return rules, list(structure.chains), list(structure.sets)

    def _iptables_nft_only(
        self, errors: list[str]
    ) -> tuple[list[FirewallRule], list[FirewallChain], list[FirewallSet]]:
        """Without nf_tables netlink (no permission): the iptables-nft saves say why too."""
        out = SaveOutput()
        for tool, family in NFT_SAVES:
            text = self._run_save(tool, errors)
            if text is not None:
                found = parse_save(text, "iptables-nft", family)
                out.rules += found.rules
                out.chains += found.chains
        return out.rules, out.chains, []

    # -- the structure ----------------------------------------------------------------------

    def _read_structure(self, generation: int) -> _Structure:
        self.structure_reads += 1
        out = _Structure(generation=generation)
        nft = self._read_nft(out.errors)
        saves = {
            family: self._run_save(tool, out.errors, quiet_missing=True)
            for tool, family in NFT_SAVES
        }
        ipt_tables: set[tuple[str, str]] = set()
        for tool, family in NFT_SAVES:
            text = saves[family]
            if text is None:
                if nft is not None and any(f == family for f, _ in nft.tables):
                    out.errors.append(
                        f"{tool} not installed: iptables-nft rules shown as nft rules"
                    )
                continue
            parsed = parse_save(text, "iptables-nft", family)
            ipt_tables |= {(family, t) for t in parsed.tables}
            out.ipt_rules += parsed.rules
            out.chains += parsed.chains
        if nft is None:  # no nft JSON to map iptables-nft counters: re-read every tick
            out.generation = None
        else:
            mine = [r for r in nft.rules if (r.family, r.table) not in ipt_tables]
            out.nft_rules = mine
            out.named = nft.named
            out.chains = [
                c for c in nft.chains if (c.family, c.table) not in ipt_tables
            ] + out.chains
            out.sets = nft.sets
            out.ipt_keys = _map_iptables_nft(out.ipt_rules, nft.rules, ipt_tables)
        return out

    def _read_nft(self, errors: list[str]) -> NftStructure | None:
        doc = self._run(["nft", "-j", "list", "ruleset"], errors, "nft")
        text = (
            self._run(["nft", "-a", "list", "ruleset"], errors, "nft") if doc is not None else None
        )
        if doc is None or text is None:
            return None
        try:
            return parse_ruleset(json.loads(doc), parse_rule_texts(text))
        except (ValueError, KeyError, TypeError) as err:
            errors.append(f"nft: could not parse `nft -j list ruleset`: {err}")
            return None

    # -- iptables-legacy --------------------------------------------------------------------

    def _legacy(self, errors: list[str]) -> SaveOutput:
        out = SaveOutput()
        for tool, family, names in LEGACY_SAVES:
            present = self._legacy_tables(names)
            if present is False:
                continue
            text = self._run_save(tool, errors, quiet_missing=present is None)
            if text is not None:
                found = parse_save(text, "iptables-legacy", family)
                out.rules += found.rules
                out.chains += found.chains
        return out

    def _legacy_tables(self, names: str) -> bool | None:
        """Whether the kernel has legacy tables of this family here; None when we cannot tell
        (run the tool, and let it say why)."""
        try:
            with self._ns.inside(), open(f"/proc/thread-self/net/{names}", "rb") as listing:
                return bool(listing.read().strip())
        except FileNotFoundError:
            return False
        except PermissionError:
            return None

    # -- running tools ----------------------------------------------------------------------

    def _socket(self) -> NftSocket:
        if self._sock is None:
            with self._ns.inside():
                self._sock = NftSocket()
        return self._sock

    def _run_save(self, tool: str, errors: list[str], *, quiet_missing: bool = False) -> str | None:
        return self._run([tool, "-c"], errors, tool, quiet_missing=quiet_missing)

    def _run(
        self, args: list[str], errors: list[str], label: str, *, quiet_missing: bool = False
    ) -> str | None:
        """stdout of one tool run inside the namespace, or None with the reason in ``errors``."""
        env = {**os.environ, "LC_ALL": "C"}
        try:
            with self._ns.inside():
                done = subprocess.run(
                    args,
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                    timeout=TOOL_TIMEOUT,
                    check=False,
                    env=env,
                )
        except FileNotFoundError:
            if not quiet_missing:
                errors.append(f"{label} not installed")
            return None
        except subprocess.TimeoutExpired:
            errors.append(f"{label}: no answer in {TOOL_TIMEOUT:.0f} s")
            return None
        out = done.stdout.decode("utf-8", "surrogateescape")
        err = done.stderr.decode("utf-8", "surrogateescape")
        if done.returncode != 0:
            errors.append(_tool_error(label, err))
            return None
        return (
            out + "\n" + "\n".join(line for line in err.splitlines() if line.startswith("# Table"))
        )


def _tool_error(label: str, stderr: str) -> str:
    """A tool's failure in one line; permission problems worded the same for every tool."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    lowered = text.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return f"{label}: Operation not permitted: {NEEDS_ROOT}"
    return f"{label}: {lines[0] if lines else 'failed'}"


def _unreadable(errors: list[str]) -> bool:
    return any(not e.startswith("warning:") for e in errors)


def _with_counter(
    rule: FirewallRule,
    counters: dict[RuleKey, CounterRef],
    named: dict[tuple[str, str, str], tuple[int, int]],
    refs: dict[tuple[object, ...], tuple[str, str, str]],
) -> FirewallRule:
    """The rule with this tick's counter: its own, or the named counter's it updates."""
    value = counters.get((rule.family, rule.table, rule.chain, rule.handle or 0))
    if isinstance(value, str):
        value = named.get((rule.family, rule.table, value))
    elif value is None and rule.key in refs:
        value = named.get(refs[rule.key])
    if value is None:
        return rule if rule.packets is None else replace(rule, packets=None, bytes=None)
    return replace(rule, packets=value[0], bytes=value[1])


def _map_iptables_nft(
    ipt_rules: list[FirewallRule], nft_rules: list[FirewallRule], tables: set[tuple[str, str]]
) -> dict[int, RuleKey]:
    """Each iptables-nft rule's nf_tables key: the n-th rule of the same chain (nft lists a
    chain's rules in order). A chain whose rule counts differ is left unmapped."""
    by_chain: dict[tuple[str, str, str], list[int]] = {}
    for rule in nft_rules:
        if (rule.family, rule.table) in tables and rule.handle is not None:
            by_chain.setdefault((rule.family, rule.table, rule.chain), []).append(rule.handle)
    counts: dict[tuple[str, str, str], int] = {}
    for rule in ipt_rules:
        chain = (rule.family, rule.table, rule.chain)
        counts[chain] = counts.get(chain, 0) + 1
    found = {}
    for index, rule in enumerate(ipt_rules):
        chain = (rule.family, rule.table, rule.chain)
        handles = by_chain.get(chain, [])
        if len(handles) == counts[chain] and rule.position is not None:
            found[index] = (*chain, handles[rule.position - 1])
    return found


def rules_touching_port(
    rules: list[FirewallRule] | tuple[FirewallRule, ...], port: int
) -> list[FirewallRule]:
    """The rules that match on ``port`` (dport or sport, in a range, an anonymous or named
    set, or a negation that lets it through): the ``port:`` filter."""
    return [r for r in rules if any(low <= port <= high for low, high in r.ports)]
