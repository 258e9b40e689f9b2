"""Typed errors a source raises instead of returning silently empty data."""

from __future__ import annotations


class SourceError(Exception):
    """A source cannot work; ``str(err)`` is a one-line message for humans."""


class SourceUnavailable(SourceError):
    """The kernel interface or tool is missing here (old kernel, no module, not installed)."""


class PermissionNeeded(SourceError):
    """The source needs privileges this process does not have (usually root)."""
