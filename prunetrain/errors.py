"""Exceptions raised on bad user input.

Every error a user can cause derives from :class:`PrunetrainError`, which is a
:class:`ValueError`, so Python callers can catch either and the CLI can turn
any of them into one line and exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable


class PrunetrainError(ValueError):
    """A user error: bad input, a bad option, a damaged or mismatched file.

    Its message names the Python parameters a caller passes (``out``,
    ``force=True``). One made by :meth:`naming` also says it with the command
    line's flags (``--out``, ``--force``) as ``cli_message``, which the CLI
    prints instead.
    """

    cli_message: str | None = None

    @classmethod
    def naming(cls, say: Callable[[Callable[[str], str]], str]) -> PrunetrainError:
        """The error ``say(name)`` words, where ``name("out")`` is ``out``, or ``--out`` in the
        :attr:`cli_message`; ``name("force=True")`` is ``--force`` there, and
        ``name("dataset=PATH")`` ``--dataset PATH`` (:func:`flag`)."""
        error = cls(say(lambda parameter: parameter))
        error.cli_message = say(flag)
        return error


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


def flag(parameter: str) -> str:
    """The command-line flag of a Python parameter: ``data_dir`` -> ``--data-dir``,
    ``force=True`` -> ``--force``, ``dataset=PATH`` -> ``--dataset PATH``."""
    name, _, value = parameter.partition("=")
    option = "--" + name.replace("_", "-")
    return option if value in ("", "True") else f"{option} {value}"


class FinishedRunError(PrunetrainError):
    """A run folder holds a finished run, which is not replaced without ``force``."""
