"""Which firewall rules a new TCP connection to ADDR:PORT meets: on its way out, and for an
address of this host on its way in too, so that a diagnosis can *name* the rule that drops or
rejects it ("inet filter output handle 7: tcp dport 8080 drop").

The rules come from :mod:`netdash.sources.firewall` with the text nft and iptables-save print;
this module evaluates that text against one packet (the SYN: family, destination, port, the
interface the route picked, conntrack state NEW). It understands the selectors a
troubleshooting question turns on (addresses, prefixes, ranges and literal sets, protocol, ports,
interfaces, ``ct state``); anything else (marks, named address sets, rate limits, ``tcp
flags`` …) makes a rule a *maybe*, never a silent no. How the hooks combine, as netfilter does
it: an accept ends only its own base chain, while a drop or reject anywhere is final; rules are
walked in the kernel's order, through jumps and gotos, and a chain that ends falls to its policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netdash.diagnose_rules import Packet, reject_kind, rule_matches
from netdash.model import FirewallChain, FirewallRule, FirewallSample

STOPPING = ("drop", "reject")
REFUSING = ("tcp reset", "icmp port-unreachable")  # rejects that connect() sees as ECONNREFUSED
#: iptables tables in the order netfilter calls them on a hook (their fixed priorities).
IPTABLES_PRIORITY = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}
_MAX_DEPTH = 16  # jumps followed; deeper than this is a loop, and nft refuses loops anyway


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule (or a chain policy, ``rule`` None) that stops the packet, certainly or maybe."""

    chain: FirewallChain
    hook: str
    action: str  # "drop" | "reject"
    certain: bool
    rule: FirewallRule | None = None
    reject_with: str | None = None  # "tcp reset", "icmp port-unreachable", ...
    unsure: tuple[str, ...] = ()  # the conditions that could not be evaluated

    def describe(self) -> str:
        """The rule as a person would look it up: where it is, then its text."""
        where = describe_chain(self.chain)
        if self.rule is None:
            return f"{where}: policy {self.action}"
        rule = self.rule
        which = f"handle {rule.handle}" if rule.handle is not None else f"rule {rule.position}"
        return f"{where} {which}: {rule.text}"

    @property
    def refuses(self) -> bool:
        """Whether connect() sees ECONNREFUSED (a TCP reset or ICMP port-unreachable) rather
        than a host/network-unreachable error or silence."""
        return self.action == "reject" and self.reject_with in (
            "tcp reset",
            "icmp port-unreachable",
        )


@dataclass(frozen=True, slots=True)
class FirewallPath:
    """What the rules of the hooks a packet crosses do with it."""

    hooks: tuple[str, ...]
    hits: tuple[RuleHit, ...]  # drops and rejects, certain or maybe, in the order met
    chains_checked: int

    @property
    def decisive(self) -> RuleHit | None:
        """The first rule or policy that certainly stops the packet."""
        return next((hit for hit in self.hits if hit.certain), None)


def describe_chain(chain: FirewallChain) -> str:
    if chain.backend == "nft":
        return f"nft {chain.family} {chain.table} {chain.name}"
    return f"{chain.backend} {chain.family} {chain.table} {chain.name}"


def firewall_path(sample: FirewallSample, packet: Packet, hooks: Sequence[str]) -> FirewallPath:
    """Walk every base chain of ``hooks`` that sees ``packet``'s family, in hook order."""
    walker = _Walker(sample, packet)
    hits: list[RuleHit] = []
    checked = 0
    for hook in hooks:
        for chain in _base_chains(sample.chains, hook, packet.version):
            checked += 1
            hits.extend(walker.base_chain(chain, hook))
    return FirewallPath(tuple(hooks), tuple(hits), checked)


def _base_chains(chains: Iterable[FirewallChain], hook: str, version: int) -> list[FirewallChain]:
    found = [
        c for c in chains if c.hook == hook and c.type != "nat" and _family_sees(c.family, version)
    ]
    return sorted(found, key=_chain_priority)


def _chain_priority(chain: FirewallChain) -> int:
    if isinstance(chain.priority, int):
        return chain.priority
    return IPTABLES_PRIORITY.get(chain.table, 0)


def _family_sees(family: str, version: int) -> bool:
    return family == "inet" or family == ("ip" if version == 4 else "ip6")


class _Walker:
    """Rules by chain, and the walk through one base chain with its jumps."""

    def __init__(self, sample: FirewallSample, packet: Packet) -> None:
        self.packet = packet
        self.chains = {_chain_key(c): c for c in sample.chains}
        self.rules: dict[tuple[str, str, str, str], list[FirewallRule]] = {}
        for rule in sample.rules:
            self.rules.setdefault((rule.backend, rule.family, rule.table, rule.chain), []).append(
                rule
            )

    def base_chain(self, chain: FirewallChain, hook: str) -> list[RuleHit]:
        hits: list[RuleHit] = []
        ended, maybe_accepted = self._walk(chain, hook, hits, entry_sure=True, depth=0)
        if ended is None and chain.policy in STOPPING:
            hits.append(RuleHit(chain, hook, chain.policy, certain=not maybe_accepted))
        return hits

    def _walk(
        self, chain: FirewallChain, hook: str, hits: list[RuleHit], entry_sure: bool, depth: int
    ) -> tuple[str | None, bool]:
        """Rules of ``chain`` in order, drops and rejects noted in ``hits``. Returns the
        verdict that certainly ends the walk (None: it falls through or returns) and whether a
        rule that only maybe matched could have accepted the packet; after such a rule (or a
        maybe-return), nothing later in the chain is certain. A maybe-drop does not make later
        rules uncertain: the packet is stopped either way."""
        certain, maybe_accepted = entry_sure, False
        for rule in self.rules.get(_chain_key(chain), ()):
            match, unsure = rule_matches(rule, self.packet, hook)
            verdict = rule.verdict or ""
            if match == "no" or not verdict:
                continue
            sure = certain and match == "yes"
            kind, _, target = verdict.partition(" ")
            if verdict in STOPPING:
                hits.append(RuleHit(chain, hook, verdict, sure, rule, reject_kind(rule), unsure))
                if sure:
                    return verdict, maybe_accepted
            elif kind in ("jump", "goto"):
                sub = self.chains.get((rule.backend, rule.family, rule.table, target))
                if sub is not None and depth < _MAX_DEPTH:
                    ended, sub_accepted = self._walk(sub, hook, hits, sure, depth + 1)
                    if ended is not None:
                        return ended, maybe_accepted
                    maybe_accepted |= sub_accepted
                    certain = certain and not sub_accepted
                if kind == "goto" and sure:
                    return None, maybe_accepted
                certain = certain and kind == "jump"
            elif verdict in ("accept", "return"):
                if sure:
                    return (verdict if verdict == "accept" else None), maybe_accepted
                maybe_accepted |= verdict == "accept"
                certain = False
        return None, maybe_accepted


def _chain_key(chain: FirewallChain | FirewallRule) -> tuple[str, str, str, str]:
    name = chain.name if isinstance(chain, FirewallChain) else chain.chain
    return (chain.backend, chain.family, chain.table, name)
