"""Exceptions raised on bad user input.

Every error a user can cause derives from :class:`PrunetrainError`, which is a
:class:`ValueError`, so Python callers can catch either and the CLI can turn
any of them into one line and exit code 2.
"""

from __future__ import annotations


class PrunetrainError(ValueError):
    """A user error: bad input, a bad option, a damaged or mismatched file."""


class DataError(PrunetrainError):
    """A dataset is missing, malformed or inconsistent (NaN, shape, labels)."""


class TicketError(PrunetrainError):
    """A ticket file is damaged or belongs to another network."""


class ArchiveError(PrunetrainError):
    """An ``.npz`` archive is malformed, too large, or not what was expected of it."""


class BackendUnavailableError(PrunetrainError):
    """A backend was asked for by name but cannot run on this machine."""
