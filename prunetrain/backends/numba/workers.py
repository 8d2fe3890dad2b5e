"""The helper threads that every Numba kernel call of prunetrain runs on.

One pool for the whole process: the Numba backend's work items and the
mask-sampling kernels of :mod:`prunetrain.backends.topk` share it, rather
than each keeping a pool (or Numba's OpenMP one) that would wait on the same
cores. The kernels release the GIL, so the helpers run in parallel.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np


class Workers:
    """A pool of helper threads that grows to the largest number ever asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def submit(self, n_helpers: int, fn, *args):
        """Start ``fn(k, *args)`` on a helper for ``k = 1 .. n_helpers``; return the futures."""
        with self._lock:
            if self._size < n_helpers:
                old, self._size = self._pool, n_helpers
                self._pool = ThreadPoolExecutor(n_helpers, thread_name_prefix="prunetrain-numba")
                if old is not None:
                    old.shutdown(wait=False)
            pool = self._pool
        return [pool.submit(fn, k, *args) for k in range(1, n_helpers + 1)]

    def run(self, workers: int, fn) -> None:
        """Call ``fn(slot)`` for slots ``0 .. workers-1``: slot 0 on this thread, the rest on helpers."""
        if workers <= 1:
            fn(0)
            return
        futures = self.submit(workers - 1, fn)
        try:
            fn(0)
        finally:
            for f in futures:
                f.result()


#: The process's one pool.
WORKERS = Workers()


def default_workers() -> int:
    """Worker threads to use by default: Numba's thread count (one per core unless set)."""
    return max(1, numba.get_num_threads())


def run_rows(kernel, size: int, *args) -> None:
    """Run ``kernel(r0, r1, *args)`` over rows ``0 .. size``, split evenly among the workers."""
    workers = max(1, min(size, default_workers()))
    bounds = np.linspace(0, size, workers + 1).astype(int)
    WORKERS.run(workers, lambda slot: kernel(bounds[slot], bounds[slot + 1], *args))
