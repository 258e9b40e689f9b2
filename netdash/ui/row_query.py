"""The ``/`` dialect the Processes and Firewall tabs share with the Connections pane: words
ANDed, ``!`` negating, bare words over the row's search text, ``field:value`` terms given
meaning by each tab (no Textual)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from netdash.query import QueryError

RowCheck = Callable[[Any], bool]
#: A tab's meaning for ``field:value`` (field lower-cased); raises QueryError when unknown.
FieldCheck = Callable[[str, str], RowCheck]


def compile_row_query(text: str, field: FieldCheck) -> RowCheck | None:
    """``text``'s terms as one predicate on rows; None when empty. Raises QueryError."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise QueryError(f"unbalanced quote: {err}") from err
    checks = [_term(word, field) for word in words]
    if not checks:
        return None
    return lambda row: all(check(row) for check in checks)


def _term(word: str, field: FieldCheck) -> RowCheck:
    if word.startswith("!") and len(word) > 1:
        inner = _term(word[1:], field)
        return lambda row: not inner(row)
    name, sep, value = word.partition(":")
    if not sep:
        needle = word.lower()
        return lambda row: needle in row.search_text
    if not value:
        raise QueryError(f"{name}: needs a value, as in {name}:…")
    return field(name.lower(), value)
