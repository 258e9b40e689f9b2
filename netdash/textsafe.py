"""Make strings from the system safe to show: data, never markup or terminal control.

Process names, command lines and paths are chosen by whoever started the process. Rendered
through Rich markup, ``[red]x[/]`` would turn red; written raw, ``\\x1b]0;...`` would retitle the
terminal. netdash renders cells as plain ``Segment`` text (no markup parsing), and this module
makes control characters visible the way ``cat -v`` users expect, so nothing reaches the terminal
that the user cannot see.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ^[ for ESC, ^M for CR, as cat -v shows them
    if code == 0x7F:
        return "^?"
    return f"\\u{code:04x}"


def visible(text: str) -> str:
    """Return ``text`` with every control character replaced by a visible escape."""
    if text.isprintable():
        return text
    return _CONTROL.sub(_visible, text)


def decode(raw: bytes) -> str:
    """Decode bytes from the kernel (names, paths) without ever failing on non-UTF-8.

    Undecodable bytes become ``\\xNN`` so two different names never look the same.
    """
    return raw.decode("utf-8", errors="backslashreplace")
