"""The filter language: every field, negation, ranges, CIDR, and clear errors for bad terms."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from netdash.model import Owner, Socket
from netdash.query import QueryError, compile_query


@dataclass(frozen=True)
class Entry:
    sock: Socket
    owners: tuple[Owner, ...] = ()
    text: str = ""


def entry(
    state="ESTABLISHED",
    local=("10.0.0.5", 443),
    remote=("192.168.1.9", 51000),
    proto="tcp",
    family="inet",
    owners=(),
    iface=None,
    uid=0,
) -> Entry:
    sock = Socket(
        proto,
        family,
        state,
        local[0],
        local[1],
        remote[0],
        remote[1],
        0,
        0,
        7,
        uid=uid,
        interface=iface,
    )
    text = f"{proto} {state} {local[0]}:{local[1]} {remote[0]}:{remote[1]} " + " ".join(
        o.comm for o in owners
    )
    return Entry(sock, tuple(owners), text.lower())


NGINX = Owner(pid=812, comm="nginx", uid=33, user="www-data")
SSHD = Owner(pid=90, comm="sshd", uid=0, user="root")


@pytest.mark.parametrize("spelling", ["estab", "ESTABLISHED", "established", "Estab"])
def test_state_accepts_ss_and_netstat_spellings(spelling):
    assert compile_query(f"state:{spelling}")(entry())
    assert not compile_query(f"state:{spelling}")(entry(state="TIME_WAIT"))


@pytest.mark.parametrize("spelling", ["time-wait", "TIME_WAIT", "timewait", "Time_Wait"])
def test_time_wait_spellings(spelling):
    assert compile_query(f"state:{spelling}")(entry(state="TIME_WAIT"))


def test_state_groups_like_ss():
    assert compile_query("state:connected")(entry(state="CLOSE_WAIT"))
    assert not compile_query("state:connected")(entry(state="LISTEN"))
    assert compile_query("state:syn-recv")(entry(state="NEW_SYN_RECV"))


def test_ports_either_side_local_remote_and_ranges():
    e = entry()
    assert compile_query("port:443")(e)
    assert compile_query("port:51000")(e)
    assert compile_query("sport:443")(e)
    assert not compile_query("dport:443")(e)
    assert compile_query("dport:50000-52000")(e)
    assert not compile_query("port:8000-8100")(e)
    assert compile_query("sport:>400")(e)
    assert not compile_query("sport:<443")(e)
    assert compile_query("sport:<=443")(e)
    assert compile_query("sport:https")(e)  # a service name from /etc/services


def test_addresses_exact_prefix_and_cidr():
    e = entry()
    assert compile_query("addr:10.0.0.5")(e)
    assert compile_query("addr:192.168.")(e)
    assert compile_query("addr:10.0.0.0/8")(e)
    assert compile_query("dst:192.168.0.0/16")(e)
    assert not compile_query("src:192.168.0.0/16")(e)
    assert not compile_query("addr:10.0.0.50")(e)
    v6 = entry(family="inet6", local=("::1", 22), remote=("::1", 40000))
    assert compile_query("addr:::1")(v6)
    assert compile_query("addr:::/0")(v6)
    assert not compile_query("addr:0.0.0.0/0")(v6)  # an IPv4 network never holds an IPv6 address


def test_unconnected_remote_never_matches_remote_terms():
    listening = entry(state="LISTEN", remote=(None, None))
    assert not compile_query("dport:0-65535")(listening)
    assert not compile_query("dst:0.0.0.0/0")(listening)


def test_owner_fields():
    e = entry(owners=(SSHD, NGINX))
    assert compile_query("proc:ngin")(e)
    assert compile_query("pid:812")(e)
    assert not compile_query("pid:81")(e)
    assert compile_query("user:www-data")(e)
    assert compile_query("user:0")(e)
    assert not compile_query("user:nobody")(e)


def test_proto_and_family():
    e = entry(proto="udp", family="inet6", local=("::", 53), remote=(None, None), state="UNCONN")
    assert compile_query("proto:udp")(e)
    assert compile_query("proto:udp6")(e)
    assert not compile_query("proto:udp4")(e)
    assert compile_query("proto:tcp,udp")(e)


def test_terms_are_anded_negation_and_free_text():
    e = entry(owners=(NGINX,))
    assert compile_query("nginx state:estab")(e)
    assert not compile_query("nginx state:listen")(e)
    assert compile_query("!state:listen")(e)
    assert not compile_query("!proc:nginx")(e)
    assert compile_query("192.168.1")(e)
    assert compile_query("")(e)
    assert compile_query("fe80::1").checks  # an address typed as text is free text, not a field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot:tcp", "unknown field 'prot:'"),
        ("state:bogus", "unknown state 'bogus'"),
        ("port:99999", "out of range"),
        ("port:9000-80", "backwards"),
        ("port:nosuchservice", "not a port number"),
        ("addr:10.0.0.0/33", "not a valid network"),
        ("pid:abc", "not a number"),
        ("proto:sctp", "unknown protocol"),
        ("state:", "needs a value"),
        ("!", "must be followed"),
        ('proc:"unclosed', "unbalanced quote"),
    ],
)
def test_bad_terms_get_a_clear_message(text, message):
    with pytest.raises(QueryError, match=message):
        compile_query(text)


def test_narrowing_detection():
    assert compile_query("ngin").narrows(compile_query("ngi"))
    assert compile_query("nginx state:estab").narrows(compile_query("nginx"))
    assert not compile_query("port:80").narrows(compile_query("port:8"))
    assert not compile_query("ngi").narrows(compile_query("nginx"))
    assert not compile_query("abc").narrows(None)
    assert not compile_query("state:listen").narrows(compile_query("state"))
