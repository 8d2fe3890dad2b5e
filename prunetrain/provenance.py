"""Where a result came from: versions, CPU and BLAS, git commit, command line and time.

Every result record (``result.json`` of ``prunetrain search`` and
``prunetrain baseline``, each line of a comparison's ``results.jsonl``) takes
its ``versions`` and ``provenance`` from :func:`record_provenance`, and
``prunetrain bench`` its machine from :func:`machine`. Floats can differ in
their last digits from one CPU or BLAS kernel to another (OpenBLAS picks its
kernels by the instruction sets it finds, e.g. ``Haswell`` for AVX2 and
``SkylakeX`` for AVX-512), so a record says which ones made it.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from prunetrain._version import __version__
from prunetrain.threads import cpu_cores

#: CPU features that change which kernels BLAS and NumPy run, recorded when present.
CPU_FEATURES = (
    "sse4_2",
    "avx",
    "fma",
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
)


def versions() -> dict[str, str]:
    """Versions of prunetrain, Python and the numerical libraries, for result records."""
    out = {"prunetrain": __version__, "python": sys.version.split()[0]}
    for name in ("numpy", "numba", "sklearn", "cupy"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = getattr(module, "__version__", "?")
    out["platform"] = platform.platform()
    return out


def machine() -> dict:
    """The CPU, its cores and features, and every BLAS library loaded in this process.

    Returns
    -------
    dict
        ``cpu`` (model name), ``cpu_features`` (those of :data:`CPU_FEATURES`
        it has), ``cores`` (this process's CPU affinity) and ``blas``: one dict
        per loaded BLAS (threadpoolctl) with ``library``, ``version``,
        ``architecture`` (the kernel set it chose for this CPU: the
        instruction-set level, e.g. ``Haswell``, ``Zen``, ``SkylakeX``),
        ``threading_layer``, ``threads`` (its own setting; prunetrain computes
        on one, see :mod:`prunetrain.threads`) and ``file``.

    Examples
    --------
    >>> m = machine()
    >>> sorted(m)
    ['blas', 'cores', 'cpu', 'cpu_features']
    """
    cpu, features = _cpu()
    return {"cpu": cpu, "cpu_features": list(features), "cores": cpu_cores(), "blas": _blas()}


def describe_blas(blas: list[dict]) -> str:
    """One line for the ``blas`` list of :func:`machine`, e.g. ``openblas 0.3.27 (Haswell, 2 threads)``."""
    if not blas:
        return "unknown"
    return "; ".join(
        f"{b.get('library')} {b.get('version')} ({b.get('architecture')}, {b.get('threads')} threads)"
        for b in blas
    )


def record_provenance() -> dict:
    """The ``versions`` and ``provenance`` entries of a result record.

    ``provenance`` holds ``machine`` (:func:`machine`), ``git`` (:func:`git_commit`:
    the commit of the checkout prunetrain runs from, ``None`` when it is not
    run from one), ``command`` (this process's command line), ``cwd`` and
    ``created_utc`` (ISO 8601, when the record was made). None of these is
    part of a comparison's run key (:attr:`prunetrain.experiments.RunSpec.key`).
    """
    return {
        "versions": versions(),
        "provenance": {
            "machine": machine(),
            "git": git_commit(),
            "command": command_line(),
            "cwd": os.getcwd(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def command_line() -> str:
    """This process's command line, quoted for a POSIX shell (``python -m prunetrain ...`` as such)."""
    argv = list(sys.argv)
    orig = list(getattr(sys, "orig_argv", []))
    if argv and argv[0].endswith("__main__.py") and "-m" in orig:
        argv = [*orig[: orig.index("-m") + 2], *argv[1:]]  # the interpreter, -m and the module
    return shlex.join(argv)


@functools.lru_cache(maxsize=1)
def git_commit() -> dict | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout prunetrain is imported from.

    ``dirty`` is true when tracked files differ from the commit. ``None`` when
    prunetrain is installed (not a checkout), when git is missing, or when the
    package lies in a repository that does not track it (a virtual
    environment inside another project's checkout).
    """
    package = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package), *args],
                capture_output=True,
                text=True,
                timeout=10,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # a status that writes nothing
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


@functools.lru_cache(maxsize=1)
def _cpu() -> tuple[str, tuple[str, ...]]:
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if name is not None and flags:
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    return name, tuple(f for f in CPU_FEATURES if f in flags)


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info

        found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    except Exception:  # noqa: BLE001 - no BLAS information is a fact to record, not an error
        return []
    return [
        {
            "library": i.get("internal_api"),
            "version": i.get("version"),
            "architecture": i.get("architecture"),
            "threading_layer": i.get("threading_layer"),
            "threads": i.get("num_threads"),
            "file": Path(i.get("filepath") or "").name,
        }
        for i in found
    ]
