"""BLAS held to one thread while prunetrain computes, so results do not depend on thread counts.

OpenBLAS splits a GEMM differently for different thread counts, and on some
CPUs (AVX2 kernels such as Haswell and Zen) that changes the float rounding of
almost every shape; on AVX-512 kernels it still does for long inner
dimensions. A search, a baseline or an evaluation therefore runs every BLAS
call on one thread (:func:`one_blas_thread`), and the parallel work it does
(the Numba backend's worker threads, Numba ``prange`` kernels over
independent moves) never splits a sum. The same seed and evaluation budget
then give the same floats with one thread or with many, in a process of its
own or on a worker that runs several tasks at once.

The limit is process-wide (threadpoolctl changes the BLAS library's own
setting) and counted: the first user caps BLAS, the last to leave restores
what it was, so that concurrent users in threads of one process (a Dask worker
with two threads) can never uncap it under another's feet.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator


class _BlasLimit:
    """The counted process-wide cap of BLAS at one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._controller = None
        self._modules = 0
        self._limiter = None
        self._users = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                # Finding the loaded libraries takes milliseconds: look again only
                # after an import, which may have loaded another BLAS (SciPy's).
                if self._controller is None or len(sys.modules) != self._modules:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                    self._modules = len(sys.modules)
                _release_openblas_control()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
                _release_openblas_control()
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    _release_openblas_control()
                    self._limiter.restore_original_limits()
                    _release_openblas_control()
                    self._limiter = None


def _release_openblas_control() -> None:
    """Let the next thread that sets OpenBLAS's thread count do so.

    threadpoolctl (3.6 and later) lets one Python thread at a time set the
    thread count of a pthreads OpenBLAS, whose pool is process-wide, and
    ignores the others; a thread keeps that control until it leaves a ``with``
    block. The first and the last user of this cap are often different
    threads, so the cap hands the control back after each change.
    """
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:  # an older threadpoolctl: any thread may set it
        return
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


_BLAS = _BlasLimit()


def one_blas_thread() -> contextlib.AbstractContextManager[None]:
    """A context in which every BLAS call of this process runs on one thread.

    Nested and concurrent uses (from several threads) are fine: BLAS gets its
    thread count back when the last one ends.

    Examples
    --------
    >>> import numpy as np
    >>> from threadpoolctl import threadpool_info
    >>> _ = np.ones((2, 2)) @ np.ones((2, 2))
    >>> with one_blas_thread():
    ...     all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    True
    """
    return _BLAS.hold()


def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity), whatever the thread settings say."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@contextlib.contextmanager
def parallel_threads(threads: int) -> Iterator[None]:
    """A context in which OpenMP regions and Numba's parallel kernels use at most ``threads`` threads.

    Runs executed side by side (the comparison runner's ``jobs``) would
    otherwise each start a thread per core and oversubscribe the cores. The
    OpenMP cap is lifted when the context ends; Numba's is a setting of the
    calling thread that stays. Numba is capped only if it is already loaded
    (the backends load it): this module knows threads, not devices.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api="openmp"):
        numba = sys.modules.get("numba")
        if numba is not None:
            with contextlib.suppress(Exception):
                numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        yield
