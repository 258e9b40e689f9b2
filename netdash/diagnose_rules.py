"""Firewall rule text, read as conditions on one packet: the selectors of an nft rule as
``nft list ruleset`` prints it and of an iptables rule as ``iptables-save`` prints it, each
answering yes, no or maybe for the SYN a connect() sends (:class:`Packet`); and what a reject
rule answers with. :mod:`netdash.diagnose_firewall` walks the chains with these.

Understood: addresses, prefixes, ranges and literal sets; protocol; destination ports (named
port sets through the ranges the firewall source resolved); interfaces with wildcards; ``ct
state`` (a SYN is NEW); nfproto. Anything else (marks, named address sets, rate limits, ``tcp
flags``, source ports, which are ephemeral) is a *maybe*, never a silent no.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from netdash.model import FirewallRule

Match = Literal["yes", "maybe", "no"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NFT_TOKEN = re.compile(r'"[^"]*"|!=|\{|\}|,|[^\s{},]+')


@dataclass(frozen=True, slots=True)
class Packet:
    """The SYN a connect() sends, as far as rules can see it."""

    dst: Address
    dport: int
    src: Address | None = None
    oif: str | None = None  # the route's interface ("lo" for an address of this host)
    iif: str | None = None  # on the input hook: "lo" for a connection to this host

    @property
    def version(self) -> int:
        return self.dst.version


def rule_matches(rule: FirewallRule, packet: Packet, hook: str) -> tuple[Match, tuple[str, ...]]:
    """Whether ``rule``'s conditions hold for ``packet``, and which ones could not be told."""
    if rule.backend == "nft":
        conditions = nft_conditions(rule.text)
    else:
        conditions = iptables_conditions(rule.text)
    result: Match = "yes"
    unsure: list[str] = []
    for condition in conditions:
        outcome = condition.evaluate(packet, rule, hook)
        if outcome == "no":
            return "no", ()
        if outcome == "maybe":
            result = "maybe"
            unsure.append(condition.text)
    return result, tuple(unsure)


@dataclass(frozen=True, slots=True)
class Condition:
    """One selector: ``field`` is what it looks at, ``values`` what it compares with."""

    field: str  # "daddr", "saddr", "proto", "dport", "sport", "oif", "iif", "ctstate", "other"
    values: tuple[str, ...]
    negated: bool = False
    text: str = ""
    version: int | None = None  # ip / ip6 selectors only see their own family

    def evaluate(self, packet: Packet, rule: FirewallRule, hook: str) -> Match:
        if self.field == "not-tcp" or (self.version not in (None, packet.version)):
            return "no"  # another protocol, or an ip selector on an IPv6 packet
        outcome = self._positive(packet, rule, hook)
        if self.negated and outcome != "maybe":
            return "no" if outcome == "yes" else "yes"
        return outcome

    def _positive(self, packet: Packet, rule: FirewallRule, hook: str) -> Match:
        if self.field == "daddr":
            return _address_in(packet.dst, self.values)
        if self.field == "saddr":
            return "maybe" if packet.src is None else _address_in(packet.src, self.values)
        if self.field == "proto":
            return _any(v.lower() in ("tcp", "6", "all") for v in self.values)
        if self.field == "dport":
            return _port_in(packet.dport, self.values, rule)
        if self.field in ("oif", "iif"):
            name = packet.oif if self.field == "oif" else packet.iif
            if name is None or (self.field == "iif" and hook != "input"):
                return "maybe" if name is None else "no"
            return _any(_interface_is(name, v) for v in self.values)
        if self.field == "nfproto":
            return _any(v.lower() == f"ipv{packet.version}" for v in self.values)
        if self.field == "ctstate":
            return _any(v.lower() == "new" for v in self.values)
        return "maybe"  # sport (ephemeral), marks, limits, flags, named sets …


def _any(found: Iterable[bool]) -> Match:
    return "yes" if any(found) else "no"


def _address_in(addr: Address, values: Sequence[str]) -> Match:
    unknown = False
    for value in values:
        found = _address_value_has(addr, value)
        if found is True:
            return "yes"
        unknown = unknown or found is None
    return "maybe" if unknown else "no"


def _address_value_has(addr: Address, value: str) -> bool | None:
    """Whether ``value`` (an address, a prefix, a range a-b) holds ``addr``; None if unknown."""
    try:
        if "-" in value and "/" not in value:
            low, high = (ipaddress.ip_address(part) for part in value.split("-", 1))
            return low.version == addr.version and low <= addr <= high  # type: ignore[operator]
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None  # @set, a name, a variable
    return network.version == addr.version and addr in network


def _port_in(port: int, values: Sequence[str], rule: FirewallRule) -> Match:
    """Literal ports and ranges are read here; a named set uses what the firewall source
    resolved for the rule (``rule.ports``, its dport *and* sport ranges)."""
    unknown = False
    for value in values:
        low, sep, high = value.replace(":", "-").partition("-")
        if low.isdigit() and (not sep or high.isdigit()):
            if int(low) <= port <= int(high or low):
                return "yes"
        elif value.startswith("@") and rule.ports:
            if any(a <= port <= b for a, b in rule.ports):
                return "yes"
        else:
            unknown = True
    return "maybe" if unknown else "no"


def _interface_is(name: str, pattern: str) -> bool:
    """nft's ``"eth*"`` and iptables' ``eth+`` wildcards."""
    pattern = pattern.strip('"')
    if pattern.endswith(("*", "+")):
        return name.startswith(pattern[:-1])
    return name == pattern


# ----------------------------------------------------------------------- nft rule text

_NFT_ADDR = {("ip", "daddr"): 4, ("ip", "saddr"): 4, ("ip6", "daddr"): 6, ("ip6", "saddr"): 6}
_NFT_PORT_PROTOS = ("tcp", "udp", "th", "sctp", "dccp", "udplite")
_NFT_META = {
    "l4proto": "proto", "oifname": "oif", "oif": "oif", "iifname": "iif", "iif": "iif",
    "nfproto": "nfproto",
}  # fmt: skip
_NFT_STATEMENTS = {"counter": 0, "comment": 1, "log": 0, "notrack": 0}
_NFT_LOG_OPTIONS = ("prefix", "level", "flags", "group", "snaplen", "queue-threshold")
_NFT_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "continue", "queue")
_NO_TCP = ("icmp", "icmpv6", "igmp", "esp", "ah", "gre")


def nft_conditions(text: str) -> list[Condition]:
    """The selectors of a rule as ``nft list ruleset`` prints it (``ip daddr 10.0.0.0/8
    tcp dport { 80, 443 } ct state new drop``), up to its verdict."""
    tokens = _NFT_TOKEN.findall(text)
    found: list[Condition] = []
    i = 0
    while i < len(tokens) and tokens[i] not in _NFT_VERDICTS:
        word, after = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if word in _NFT_STATEMENTS:
            i += 1 + _NFT_STATEMENTS[word]
            if word == "counter" and i < len(tokens) and tokens[i] == "packets":
                i += 4  # "packets N bytes M", when the text still has the values
            while word == "log" and i < len(tokens) and tokens[i] in _NFT_LOG_OPTIONS:
                i += 2
            continue
        start = i
        field, version, width = _nft_selector(word, after)
        negated, values, i = _nft_value(tokens, i + width)
        shown = " ".join(tokens[start:i]).replace(" , ", ", ")
        found.append(Condition(field, tuple(values), negated, shown, version))
    return found


def _nft_selector(word: str, after: str) -> tuple[str, int | None, int]:
    """(field, family version, tokens used) of the selector starting at ``word``."""
    if (word, after) in _NFT_ADDR:
        return after, _NFT_ADDR[(word, after)], 2
    if word in _NFT_PORT_PROTOS and after in ("dport", "sport"):
        if word not in ("tcp", "th"):
            return "not-tcp", None, 2
        return after, None, 2
    if word == "tcp":
        return "other", None, 2  # tcp flags, tcp option …
    if word in _NO_TCP or word == "udp":
        return "not-tcp", None, 2
    if word == "meta" and after in _NFT_META:
        return _NFT_META[after], None, 2
    if word in _NFT_META:
        return _NFT_META[word], None, 1
    if (word, after) in (("ip", "protocol"), ("ip6", "nexthdr")):
        return "proto", 4 if word == "ip" else 6, 2
    if (word, after) == ("ct", "state"):
        return "ctstate", None, 2
    return "other", None, 2 if after and after not in ("!=", "{") else 1


def _nft_value(tokens: list[str], i: int) -> tuple[bool, list[str], int]:
    """An optional ``!=`` then a value, a list ``a,b`` or a set ``{ a, b }``; returns
    (negated, values, index after them)."""
    negated = i < len(tokens) and tokens[i] == "!="
    i += negated
    values: list[str] = []
    braced = i < len(tokens) and tokens[i] == "{"
    i += braced
    while i < len(tokens) and tokens[i] not in _NFT_VERDICTS:
        token = tokens[i]
        i += 1
        if token == "}":
            break
        if token == ",":
            continue
        values.append(token.strip('"'))
        if not braced and (i >= len(tokens) or tokens[i] != ","):
            break
    return negated, values, i


# ------------------------------------------------------------------ iptables-save text

_IPT_FIELDS = {
    "-d": "daddr", "--destination": "daddr", "-s": "saddr", "--source": "saddr",
    "-p": "proto", "--protocol": "proto", "-o": "oif", "--out-interface": "oif",
    "-i": "iif", "--in-interface": "iif", "--dport": "dport", "--destination-port": "dport",
    "--dports": "dport", "--destination-ports": "dport", "--sport": "sport",
    "--source-port": "sport", "--sports": "sport", "--source-ports": "sport",
    "--ctstate": "ctstate", "--state": "ctstate",
}  # fmt: skip
_IPT_IGNORED = {"-A": 1, "-m": 1, "--match": 1, "--comment": 1, "-c": 2}


def iptables_conditions(text: str) -> list[Condition]:
    """The matches of a rule as ``iptables-save`` prints it (``-A OUTPUT -d 10.0.0.2/32 -p tcp
    -m tcp --dport 80 -j DROP``), up to its target."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    found: list[Condition] = []
    i, negated = 0, False
    while i < len(words) and words[i] not in ("-j", "--jump", "-g", "--goto"):
        word = words[i]
        if word == "!":
            negated, i = True, i + 1
            continue
        if word in _IPT_IGNORED:
            i += 1 + _IPT_IGNORED[word]
        elif word in _IPT_FIELDS and i + 1 < len(words):
            values = tuple(words[i + 1].split(","))
            shown = " ".join(["!"] * negated + [word, words[i + 1]])
            found.append(Condition(_IPT_FIELDS[word], values, negated, shown))
            i += 2
        else:  # an option we do not evaluate, with its arguments
            end = i + 1
            while end < len(words) and not words[end].startswith("-") and words[end] != "!":
                end += 1
            found.append(Condition("other", (), False, " ".join(words[i:end])))
            i = end
        negated = False
    return found


# ------------------------------------------------------------------------------- rejects

_ICMP_NAMES = {
    "adm-prohibited": "admin-prohibited", "admin-prohib": "admin-prohibited",
    "no-route": "net-unreachable", "addr-unreachable": "host-unreachable",
}  # fmt: skip


def reject_kind(rule: FirewallRule) -> str | None:
    """How a reject rule answers: "tcp reset" or "icmp <type>" (the defaults: ICMP
    port-unreachable for nft's bare ``reject`` and for iptables' REJECT)."""
    if rule.verdict != "reject":
        return None
    if rule.backend == "nft":
        tokens = _NFT_TOKEN.findall(rule.text)
        tail = tokens[tokens.index("reject") + 1 :] if "reject" in tokens else []
        if tail[:3] == ["with", "tcp", "reset"]:
            return "tcp reset"
        rest = tail[2:] if tail[:1] == ["with"] else []
        rest = rest[1:] if rest[:1] == ["type"] else rest
        kind = rest[0] if rest else "port-unreachable"
    else:
        words = rule.text.split()
        kind = "icmp-port-unreachable"
        if "--reject-with" in words[:-1]:
            kind = words[words.index("--reject-with") + 1]
        if kind == "tcp-reset":
            return "tcp reset"
        kind = kind.split("-", 1)[1] if kind.startswith(("icmp-", "icmp6-")) else kind
    return f"icmp {_ICMP_NAMES.get(kind, kind)}"
