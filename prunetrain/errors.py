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


class WriteError(PrunetrainError):
    """An output cannot be written: the disk is full or read-only, a name is too long, ...

    ``path`` is the file or folder that could not be written, ``reason`` the
    system's words for why (``No space left on device``).
    """

    def __init__(self, path: object, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot write {path}: {reason}")


class BusyFolderError(PrunetrainError):
    """Another process holds the lock of a run folder: it is writing a run there."""


class FinishedRunError(PrunetrainError):
    """A run folder holds a finished run, which is not replaced without ``force``."""
