"""Choosing which weights to keep from per-weight scores, under a keep rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prunetrain.masks import KeepRule, Mask


def keep_largest(
    values: Sequence[np.ndarray], rule: KeepRule, shapes: Sequence[tuple[int, int]]
) -> Mask:
    """The mask keeping the weights of largest value: the rule's count per layer, or in total.

    Under the ``"layer"`` rule each layer keeps exactly its count; under
    ``"global"`` and ``"free"`` the whole network keeps ``round(keep · n)``,
    spread over the layers by value. Ties fall as ``argpartition`` leaves
    them; callers that expect ties break them first (:func:`jitter`).

    Examples
    --------
    >>> keep_largest([np.array([[0.1, 0.9], [0.5, 0.2]])], KeepRule(0.5), [(2, 2)])[0]
    array([[False,  True],
           [ True, False]])
    """
    return rule.counted().keep_top([np.asarray(v).reshape(s) for v, s in zip(values, shapes)])


def jitter(values: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """``values`` times ``1 + 1e-9·u`` (u uniform): equal values are ordered at random, others kept.

    Magnitudes of a ``signed_constant`` network are all equal within a layer,
    so without this a magnitude ranking would keep whatever ``argpartition``
    happens to return first.
    """
    return [np.asarray(v, dtype=np.float64) * (1 + 1e-9 * rng.random(np.shape(v))) for v in values]
