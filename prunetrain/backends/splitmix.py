"""SplitMix64's constants, shared by the NumPy reference and the Numba kernels of mask sampling.

Output ``j`` of a generator seeded with ``s`` is ``mix(s + (j+1)·γ)`` in
wrapping uint64 arithmetic, where ``mix`` is ``z = (z ^ z >> 30) · M1``,
``z = (z ^ z >> 27) · M2``, ``z ^ z >> 31`` (see
:func:`prunetrain.backends.topk.counter_uniforms`).
"""

from __future__ import annotations

import numpy as np

#: The increment γ of SplitMix64.
GAMMA = np.uint64(0x9E3779B97F4A7C15)
#: The first multiplier of its output mix.
M1 = np.uint64(0xBF58476D1CE4E5B9)
#: The second multiplier of its output mix.
M2 = np.uint64(0x94D049BB133111EB)
