"""Writing files whole or not at all: write to a temporary name, then rename.

Also: a folder's set of files written as a unit (:func:`write_folder`), the
check that a folder can be written before any work (:func:`check_writable_folder`)
and an exclusive lock between processes (:func:`file_lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from prunetrain.errors import PrunetrainError


def atomic_write(
    path: str | os.PathLike, write: Callable[[object], None], binary: bool = True
) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    If ``write`` raises, ``path`` is untouched and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text), binary=False)


def check_writable_folder(out: str | os.PathLike, what: str = "--out") -> Path:
    """Raise unless files can be written into the folder ``out`` (made later if missing).

    Creates and removes a probe folder in ``out`` or its nearest existing
    ancestor, so a path under a file, in ``/proc`` or in a read-only folder
    is refused before any work, and nothing is left on disk.

    Raises
    ------
    PrunetrainError
        One line naming ``what`` (the option), the path and the reason.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PrunetrainError(f"{what} {out} exists and is not a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PrunetrainError(f"{what} {out} lies under {existing}, which is not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prunetrain-probe-", dir=existing))
    except OSError as e:
        raise PrunetrainError(f"cannot write {what} {out}: {e.strerror} (in {existing})") from None
    return out


def write_folder(out: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Write the files ``fill(folder)`` makes into ``out`` as a unit: all of them or none.

    ``fill`` writes into an empty staging folder. A new ``out`` is that folder
    renamed; into an existing one the staged files are renamed one by one,
    replacing files of the same names and leaving other files alone. If
    ``fill`` raises, the staging folder is removed and ``out`` is as it was.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PrunetrainError(f"--out {out} exists and is not a folder")
    fresh = not out.exists()
    parent = out.parent if fresh else out
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=parent))
    try:
        fill(staging)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
        if fresh:
            try:
                os.rename(staging, out)  # atomic: the whole set appears at once
                return out
            except OSError:
                if not out.is_dir():  # only a folder made meanwhile is worked around
                    raise
        for path in sorted(staging.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    An advisory ``fcntl.flock`` lock between processes on POSIX; on a system
    without ``fcntl`` the block runs unlocked. Not re-entrant within a process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Raise unless ``path`` is a regular file (or a link to one) that can be opened.

    A FIFO, a device or a folder is refused at once: reading a FIFO blocks until
    a writer comes, a device may never end. A name too long for the file system
    and a missing file are refused with the reason.

    Raises
    ------
    PrunetrainError
        One line naming ``what``, the path and the reason.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise PrunetrainError(f"cannot read {what} {_shown(path)}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise PrunetrainError(f"{what} {_shown(path)} is {kind}")
    return path


def _shown(path: Path, limit: int = 120) -> str:
    """``path`` as text for a one-line message, its middle cut out past ``limit`` characters."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"
