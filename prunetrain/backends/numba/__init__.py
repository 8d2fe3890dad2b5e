"""The Numba (CPU) backend and its kernels.

:mod:`~prunetrain.backends.numba.numba_backend` evaluates populations;
:mod:`~prunetrain.backends.numba.flip_kernels` and
:mod:`~prunetrain.backends.numba.screen_kernels` are the fast paths of
:mod:`prunetrain.backends.flips` and :mod:`prunetrain.backends.screen`;
:mod:`~prunetrain.backends.numba.topk_kernels` those of
:mod:`prunetrain.backends.topk`, and
:mod:`~prunetrain.backends.numba.hebbian_kernels` the k-winners-take-all of
:mod:`prunetrain.backends.hebbian`. All of them run on the one thread pool of
:mod:`~prunetrain.backends.numba.workers`.
"""

from prunetrain.backends.numba.numba_backend import NumbaBackend

__all__ = ["NumbaBackend"]
