"""Numbers and addresses as an SRE reads them: short, aligned, in the units `ss` and htop use.

Pure functions, no Textual: the row builders call them in the sampling thread.
"""

from __future__ import annotations

import socket
import time

#: `ss`'s short state names: what users type and expect to read (ESTAB, TIME-WAIT …).
SHORT_STATES: dict[str, str] = {
    "ESTABLISHED": "ESTAB",
    "SYN_SENT": "SYN-SENT",
    "SYN_RECV": "SYN-RECV",
    "NEW_SYN_RECV": "SYN-RECV",
    "FIN_WAIT1": "FIN-WAIT-1",
    "FIN_WAIT2": "FIN-WAIT-2",
    "TIME_WAIT": "TIME-WAIT",
    "CLOSE": "CLOSE",
    "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST_ACK": "LAST-ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
    "UNCONN": "UNCONN",
}

#: Display order of states when sorting by the State column: the life of a connection.
STATE_ORDER: dict[str, int] = {
    name: index
    for index, name in enumerate(
        (
            "LISTEN",
            "SYN_SENT",
            "SYN_RECV",
            "NEW_SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "CLOSE_WAIT",
            "CLOSING",
            "LAST_ACK",
            "TIME_WAIT",
            "CLOSE",
            "UNCONN",
        )
    )
}


def short_state(state: str) -> str:
    return SHORT_STATES.get(state, state)


def endpoint(addr: str | None, port: int | None, interface: str | None = None) -> str:
    """``ss``'s spelling of an endpoint: ``10.0.0.1:22``, ``[::1]:22``, ``127.0.0.1%lo:53``,
    ``*`` for an unconnected side. UNIX paths are returned as they are."""
    if addr is None:
        return "*" if port is None else f"*:{port}"
    host = f"[{addr}]" if ":" in addr else addr
    if interface:
        host = f"{host}%{interface}"
    return host if port is None else f"{host}:{port}"


def address_sort_key(family: str, addr: str | None, port: int | None) -> tuple[int, bytes, int]:
    """Sort addresses numerically (10.0.0.9 before 10.0.0.10), IPv4 before IPv6, ``*`` last."""
    if addr is None:
        return (9, b"", port or 0)
    try:
        packed = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    except OSError:  # a UNIX path
        return (8, addr.encode("utf-8", "surrogateescape"), port or 0)
    return (4 if len(packed) == 4 else 6, packed, port or 0)


_BYTE_UNITS = ("B", "K", "M", "G", "T", "P")


def human_bytes(value: float | None) -> str:
    """1536 → ``1.5K``; binary units as htop and nethogs show them; None → empty."""
    if value is None:
        return ""
    if value < 1024:
        return f"{value:.0f}B"
    for unit in _BYTE_UNITS[1:]:
        value /= 1024.0
        if value < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{value:.1f}{unit}" if value < 100 else f"{value:.0f}{unit}"
    raise AssertionError("unreachable")


def human_rate(value: float | None) -> str:
    """Bytes per second for the In/s and Out/s columns; an idle socket shows ``0``."""
    if value is None:
        return ""
    if value < 0.5:
        return "0"
    return human_bytes(value)


def human_bits(bits: float | None) -> str:
    """Bits per second as iftop and bmon show them, SI units: ``0``, ``812b``, ``12.3Mb``."""
    if bits is None:
        return ""
    if bits < 0.5:
        return "0"
    for unit in ("b", "Kb", "Mb", "Gb", "Tb"):
        if bits < 1000 or unit == "Tb":
            return f"{bits:.0f}{unit}" if bits >= 100 or unit == "b" else f"{bits:.1f}{unit}"
        bits /= 1000.0
    raise AssertionError("unreachable")


def human_count(value: float | None) -> str:
    """Packets (or errors) per second: ``0``, ``12``, ``3.4K``, ``1.2M``."""
    if value is None:
        return ""
    if value < 0.5:
        return "0"
    if value < 1000:
        return f"{value:.0f}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}K"
    return f"{value / 1_000_000:.1f}M"


def milliseconds(us: int | None) -> str:
    """An RTT in µs as ms with the precision that matters: 0.05, 1.25, 12.3, 250."""
    if us is None:
        return ""
    ms = us / 1000.0
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``: an age or a timer, as a person says it."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def clock_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int] | tuple[int, ...], width: int) -> str:
    """The last ``width`` values as block characters scaled to their own maximum.

    Each character is the maximum of the values it covers, so a one-tick spike stays visible.
    """
    if width <= 0 or not values:
        return ""
    per = max(1, len(values) // width)
    points = [
        max(values[i : i + per]) for i in range(max(0, len(values) - per * width), len(values), per)
    ]
    top = max(points) or 1
    last = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[0 if v == 0 else max(1, round(v * last / top))] for v in points)
