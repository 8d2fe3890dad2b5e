"""Backends: the only place that knows NumPy from Numba from CuPy.

``make_backend(name, network)`` returns a :class:`Backend` bound to one
network. ``"auto"`` picks the fastest backend that works here.

The NumPy references live here (:mod:`.numpy_backend`, :mod:`.flips`,
:mod:`.screen`, :mod:`.topk`); the Numba backend and its kernels in
:mod:`prunetrain.backends.numba`, the CuPy backend and its numba.cuda
kernels in :mod:`prunetrain.backends.cupy`.
"""

from __future__ import annotations

import time

from prunetrain.backends.base import Backend
from prunetrain.backends.cupy import CupyBackend
from prunetrain.backends.cupy.cupy_backend import gpu_info, gpu_sgemm_peak
from prunetrain.backends.numba import NumbaBackend
from prunetrain.backends.numpy_backend import NumpyBackend
from prunetrain.errors import BackendUnavailableError, PrunetrainError
from prunetrain.network import FrozenNetwork

# CuPy is always listed: whether a GPU works is probed (once) only when cupy is asked
# for, and an explicit `--backend cupy` then says why it cannot run.
BACKENDS: dict[str, type[Backend]] = {
    "numpy": NumpyBackend,
    "numba": NumbaBackend,
    "cupy": CupyBackend,
}
#: Every name a backend may have, whether or not it can run here (a config names them).
BACKEND_NAMES = ("auto", "numpy", "numba", "cupy")
# Tried in this order by "auto"; a backend that cannot run here is skipped.
AUTO_ORDER = ("cupy", "numba", "numpy")


def backend_names() -> list[str]:
    """Names accepted by :func:`make_backend`, ``"auto"`` first."""
    return ["auto", *BACKENDS]


def resolve_backend(name: str) -> type[Backend]:
    """The backend class for ``name``; ``"auto"`` picks the first usable one."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            cls = BACKENDS.get(candidate)
            if cls is not None and cls.unavailable_reason() is None:
                return cls
        return NumpyBackend
    cls = BACKENDS.get(name)
    if cls is None:
        raise PrunetrainError(
            f"unknown backend {name!r}; expected one of {', '.join(backend_names())}"
        )
    reason = cls.unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} cannot run here: {reason}")
    return cls


def backend_notice(name: str) -> str | None:
    """One line saying why ``"auto"`` passes over the GPU backend here, else ``None``.

    Meant for a verbose mode: ``None`` unless ``name`` is ``"auto"`` and the
    CuPy backend cannot run (the reason is probed once per process).
    """
    if name != "auto":
        return None
    reason = CupyBackend.unavailable_reason()
    if reason is None:
        return None
    return f"backend auto: GPU backend 'cupy' not used ({reason}); using {resolve_backend('auto').name!r}"


def warm_up(backend: Backend, X, y) -> float:
    """Compile (or load from Numba's cache) every kernel a search may call; return the seconds taken.

    Runs :meth:`Backend.warm_up` on a few rows of ``(X, y)``. Called by the
    run loop before its clock starts.
    """
    start = time.perf_counter()
    backend.warm_up(X, y)
    return time.perf_counter() - start


def make_backend(name: str, network: FrozenNetwork) -> Backend:
    """A backend of kind ``name`` (or ``"auto"``) bound to ``network``."""
    return resolve_backend(name)(network)


__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "Backend",
    "CupyBackend",
    "NumbaBackend",
    "NumpyBackend",
    "backend_names",
    "backend_notice",
    "gpu_info",
    "gpu_sgemm_peak",
    "make_backend",
    "resolve_backend",
    "warm_up",
]
