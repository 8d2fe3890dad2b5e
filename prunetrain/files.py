"""Writing files whole or not at all: write to a temporary name, then rename.

Also: a folder's set of files written as a unit (:func:`write_folder`), the
check that a folder can be written before any work (:func:`check_writable_folder`),
exclusive locks between processes (:func:`file_lock`, and :func:`folder_lock` for a run
folder), and the removal of temporary files whose writer was killed (:func:`remove_stale`).

A write that fails (a full or read-only disk, a name too long, no permission) raises a
one-line :class:`~prunetrain.errors.WriteError` naming the file, and leaves nothing behind:
no temporary file, no staging folder, no folder it made.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from prunetrain.errors import BusyFolderError, PrunetrainError, WriteError

#: The lock file of a run folder (:func:`folder_lock`); it exists only while a run holds it.
LOCK_NAME = ".prunetrain.lock"

# Temporary names carry the writer's pid, so a later run can tell a stale one (its writer is
# gone: killed, or its machine lost power) from one being written: `.NAME.PID-XXXXXXXX.tmp`
# beside a file, `.NAME.staging-PID-XXXXXXXX/` beside or in a run folder.
_TEMP_NAME = re.compile(r"\..+\.(\d+)-[a-z0-9_]{8}\.tmp")
_STAGING_NAME = re.compile(r"\..+\.staging-(\d+)-[a-z0-9_]{8}")


def write_error(path: str | os.PathLike, error: OSError) -> WriteError:
    """The one-line error of a failed write of ``path``: the path and the system's reason.

    A write that fails mid-file raises an ``OSError`` that names no file (the
    kernel's ``ENOSPC``); this names the file the caller was writing.
    """
    return WriteError(path, error.strerror or str(error))


def atomic_write(
    path: str | os.PathLike, write: Callable[[object], None], binary: bool = True
) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Missing folders above ``path`` are made. If anything fails, ``path`` is
    untouched, and the temporary file and the folders made are removed.

    Raises
    ------
    WriteError
        The file cannot be written (a full or read-only disk, a name too long,
        no permission): one line naming ``path`` and the reason.
    """
    path = Path(path)
    made = make_folders(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
        )
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        remove_empty_folders(made)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    return path


def write_json(path: str | os.PathLike, obj: object) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text), binary=False)


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """Make ``folder`` and its missing parents; return those made, outermost first.

    What a failed write made is removed again with :func:`remove_empty_folders`.

    Raises
    ------
    WriteError
        A folder cannot be made (nothing made is left behind).
    """
    folder = Path(folder)
    missing = []
    try:
        while _status(folder) is None and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
    except OSError as e:  # a name too long, a loop of links
        raise write_error(folder, e) from None
    made: list[Path] = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to remove
        except OSError as e:
            remove_empty_folders(made)
            raise write_error(path, e) from None
        made.append(path)
    return made


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove the folders :func:`make_folders` made, innermost first, as long as they are empty."""
    for folder in reversed(folders):
        try:
            os.rmdir(folder)
        except OSError:
            return  # not empty (someone else's files, or ours kept): its parents stay too


def check_writable_folder(out: str | os.PathLike, what: str = "--out") -> Path:
    """Raise unless files can be written into the folder ``out`` (made later if missing).

    Creates and removes a probe folder in ``out`` or its nearest existing
    ancestor, so a path under a file, in ``/proc`` or in a read-only folder
    is refused before any work, and nothing is left on disk. A name longer
    than the file system takes is refused too.

    Raises
    ------
    PrunetrainError
        One line naming ``what`` (the option), the path and the reason.
    """
    out = Path(out)

    def refused(reason: str, where: str = "") -> PrunetrainError:
        return PrunetrainError(f"cannot write {what} {_shown(out, 240)}: {reason}{where}")

    try:
        status = _status(out)
        if status is not None and not stat.S_ISDIR(status.st_mode):
            raise PrunetrainError(f"{what} {out} exists and is not a folder")
        existing = out
        while _status(existing) is None and existing != existing.parent:
            existing = existing.parent
    except OSError as e:  # a name too long, a loop of links, no permission to look
        raise refused(e.strerror or str(e)) from None
    if not existing.is_dir():
        raise PrunetrainError(f"{what} {out} lies under {existing}, which is not a folder")
    name_max, path_max = _limits(existing)
    new_names = out.relative_to(existing).parts if existing != out else ()
    if any(len(os.fsencode(name)) > name_max for name in new_names) or (
        len(os.fsencode(os.path.abspath(out))) >= path_max
    ):
        raise refused(os.strerror(errno.ENAMETOOLONG))
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".prunetrain-probe-", dir=existing))
    except OSError as e:
        raise refused(e.strerror or str(e), f" (in {existing})") from None
    return out


def write_folder(
    out: str | os.PathLike, fill: Callable[[Path], None], last: str | None = None
) -> Path:
    """Write the files ``fill(folder)`` makes into ``out`` as a unit: all of them or none.

    ``fill`` writes into an empty staging folder. A new ``out`` is that folder
    renamed; into an existing one the staged files are renamed one by one,
    ``last`` (a file name) after the others, replacing files of the same names
    and leaving other files alone. If anything fails, the staging folder is
    removed and ``out`` is as it was. Staging folders of ``out`` left by
    writers that are gone (killed mid-write) are removed first.

    Raises
    ------
    WriteError
        A file cannot be written: one line naming it (as in ``out``) and the reason.
    """
    out = Path(out)
    try:
        status = _status(out)
    except OSError as e:
        raise write_error(out, e) from None
    if status is not None and not stat.S_ISDIR(status.st_mode):
        raise PrunetrainError(f"--out {out} exists and is not a folder")
    fresh = status is None
    parent = out.parent if fresh else out
    made = make_folders(parent)
    remove_stale(parent, f".{out.name}.staging-")
    staging = None
    done = False
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=parent))
        try:
            fill(staging)
        except WriteError as e:  # name the file as it would be in out, not in the staging folder
            path = Path(e.path)
            if path.is_relative_to(staging):
                raise WriteError(out / path.relative_to(staging), e.reason) from None
            raise
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
        if fresh:
            try:
                os.rename(staging, out)  # atomic: the whole set appears at once
                done = True
                return out
            except OSError:
                if not out.is_dir():  # only a folder made meanwhile is worked around
                    raise
        for path in sorted(staging.iterdir(), key=lambda p: (p.name == last, p.name)):
            os.replace(path, out / path.name)
        done = True
    except OSError as e:
        raise write_error(out, e) from None
    finally:
        if staging is not None:  # gone, if it became out
            shutil.rmtree(staging, ignore_errors=True)
        if not done:
            remove_empty_folders(made)
    return out


def remove_stale(folder: str | os.PathLike, prefix: str = ".") -> list[Path]:
    """Remove the temporary files and staging folders in ``folder`` whose writer is gone.

    Only names :func:`atomic_write` and :func:`write_folder` make, starting
    with ``prefix``, and only those whose process (by the pid in the name) no
    longer runs on this machine; one still being written is left alone.
    Returns what was removed.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _TEMP_NAME.fullmatch(entry.name) or _STAGING_NAME.fullmatch(entry.name)
        if match is None or _running(int(match.group(1))):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether the process ``pid`` runs on this machine (``True`` where that cannot be told)."""
    if os.name != "posix" or pid == os.getpid():
        return True  # elsewhere os.kill(pid, 0) would end the process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` while the block runs; refuse at once if it is held.

    The lock is an advisory ``fcntl.flock`` on ``FOLDER/.prunetrain.lock``
    (:data:`LOCK_NAME`), between processes on POSIX (on a system without
    ``fcntl`` the block runs unlocked). It is re-entrant within a process.
    The file holds the holder's pid, and is removed when the lock is
    released, so a folder keeps no trace of it; a lock held by a process that
    died is released by the system.

    Raises
    ------
    BusyFolderError
        Another process holds the lock: one line naming the folder and its pid.
    WriteError
        The lock file cannot be made.
    """
    path = Path(folder) / LOCK_NAME
    key = os.path.realpath(path)
    with _held_guard:
        nested = key in _held
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    fd = _acquire(path, Path(folder))
    if fd is None:  # no fcntl, or no locks on this file system
        yield
        return
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        path.unlink(missing_ok=True)  # while holding it: see _locked_file
        os.close(fd)


_held: dict[str, int] = {}  # the lock files this process holds, and how many times
_held_guard = threading.Lock()


def _acquire(path: Path, folder: Path) -> int | None:
    """Lock ``path`` without waiting and write this process's pid into it; the open file.

    None where there are no locks (no ``fcntl``, or a file system without them).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fd = _locked_file(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(path)
        raise BusyFolderError(
            f"another prunetrain run is writing into {folder}" + (f" (pid {pid})" if pid else "")
        ) from None
    except OSError as e:
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # a file system without locks (old NFS)
            warnings.warn(
                f"{folder} cannot be locked ({e.strerror}): nothing stops another run "
                "from writing into it meanwhile",
                stacklevel=4,
            )
            return None
        raise write_error(path, e) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # a full disk: the lock holds all the same, its pid unsaid
    return fd


def _locked_file(path: Path, operation: int) -> int:
    """Open ``path`` (made if missing) and ``flock`` it; the open file descriptor.

    A holder removes the lock file when it is done, so a process that waited
    on the file may get a lock on a file that is gone: it tries again until
    the file it locked is the one at ``path``.
    """
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, operation)
            held, now = os.fstat(fd), os.stat(path)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    An advisory ``fcntl.flock`` lock between processes on POSIX, waited for;
    on a system without ``fcntl`` the block runs unlocked. Not re-entrant
    within a process. The holder may remove ``path`` before it lets go: a
    waiter then locks the file made anew.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    while True:
        make_folders(path.parent)
        try:
            fd = _locked_file(path, fcntl.LOCK_EX)
            break
        except FileNotFoundError:  # its folder was removed meanwhile
            continue
        except OSError as e:
            raise write_error(path, e) from None
    try:
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _status(path: Path) -> os.stat_result | None:
    """``os.stat(path)``, or None where nothing is there; other errors (a name too long) raise."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _limits(folder: Path) -> tuple[int, int]:
    """The longest file name and path the file system of ``folder`` takes (in bytes)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # AttributeError: no pathconf (Windows)
        return 255, 4096


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
