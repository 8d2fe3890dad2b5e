"""A comparison's results file, ``results.jsonl``: its name, reading, locked appends, rewriting.

One JSON record per line, one line per finished run, keyed by the run's key
(a hash of its config). Every writer holds the file's lock (a hidden file
beside it), so several comparisons may share one folder; a line cut short by
a crash is skipped on reading, and an append never leaves half a line.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from prunetrain.files import atomic_write, file_lock, write_error

#: The results file of a comparison folder.
RESULTS = "results.jsonl"


def read_results(path: str | os.PathLike) -> dict[str, dict]:
    """Records of ``results.jsonl`` by key; a damaged line (an interrupted write) is skipped."""
    path = Path(path)
    out: dict[str, dict] = {}
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            out[record["key"]] = record
    return out


def lock(path: Path):
    """The lock every writer of ``path`` (``results.jsonl``) holds while it writes."""
    return file_lock(lock_path(path))


def lock_path(path: Path) -> Path:
    """The lock file of ``path``, a hidden file beside it."""
    return path.with_name(f".{path.name}.lock")


def append_record(path: Path, record: dict) -> None:
    """Append one record as a line, under the lock (so two writers never interleave)."""
    with lock(path):
        _append_unlocked(path, json.dumps(record, allow_nan=False) + "\n")


def _append_unlocked(path: Path, text: str) -> None:
    size = path.stat().st_size if path.is_file() else None
    if size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a line cut off by a crash: start on a fresh one
                text = "\n" + text
    try:
        with path.open("a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # a full disk: take back the part written, so every line is whole
        with contextlib.suppress(OSError):
            if size is None:
                path.unlink()
            else:
                os.truncate(path, size)
        raise write_error(path, e) from None


def rewrite_in_order(path: Path, keys: Sequence[str]) -> list[dict]:
    """Rewrite ``results.jsonl`` with the records of ``keys`` first, in that order; return them.

    Under the lock the file is read again, so a record another process
    appended since this one started is kept (runs of other configs go after).
    """
    current = list(keys)
    with lock(path):
        done = read_results(path)
        ordered = [done[key] for key in current if key in done]
        mine = set(current)
        others = [record for key, record in done.items() if key not in mine]
        if done:
            text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in ordered + others)
            atomic_write(path, lambda f: f.write(text), binary=False)
    return ordered
