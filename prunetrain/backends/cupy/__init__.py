"""The CuPy (GPU) backend and its numba.cuda kernels.

Importing this package imports neither CuPy nor numba.cuda: that happens when
a :class:`CupyBackend` is made or
:func:`~prunetrain.backends.cupy.cupy_backend.gpu_unavailable_reason` probes the GPU.
"""

from prunetrain.backends.cupy.cupy_backend import CupyBackend

__all__ = ["CupyBackend"]
