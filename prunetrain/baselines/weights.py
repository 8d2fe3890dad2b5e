"""Trained weights: what a gradient-trained baseline writes as ``weights.npz``, and reads back.

``dense``, ``dense-sklearn`` and ``imp`` learn weights, so their model is not
a ticket of the frozen network. Their file holds the weights (``weight_i``),
biases (``bias_i``), the mask of ``imp`` (``mask_i``) and, since this format
was given a ``meta`` entry, the same facts a ticket records about its data
(dataset, classes, data source, feature scaling). Older files without it are
read too, taking the dataset from the ``result.json`` beside them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prunetrain.baselines.backprop import logits_of
from prunetrain.errors import PrunetrainError, TicketError
from prunetrain.files import atomic_write
from prunetrain.ticket import check_meta

FORMAT = "prunetrain-weights"


def two_class_logits(z: np.ndarray) -> np.ndarray:
    """Logits with one column per class: scikit-learn's single logistic output gets a zero column."""
    return np.concatenate([np.zeros_like(z), z], axis=1) if z.shape[1] == 1 else z


def snapshot_logits(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray] | None
) -> Callable[[np.ndarray], np.ndarray]:
    """``logits(X)`` of copies of ``weights`` and ``biases``: unchanged by further training."""
    w = [np.array(a) for a in weights]
    b = None if biases is None else [np.array(a) for a in biases]
    return lambda X: two_class_logits(logits_of(w, b, X))


@dataclasses.dataclass
class TrainedWeights:
    """A trained MLP: ReLU layers ``X @ W_i + b_i``, the last one linear.

    Attributes
    ----------
    weights : list of ndarray
        ``(fan_in, fan_out)`` per layer (pruned weights are zero).
    biases : list of ndarray or None
        One per layer, or none.
    mask : list of ndarray or None
        The pruning mask (``imp``), for the record.
    meta : dict
        Dataset name, classes, data source, feature scaling, method, seed.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray] | None
    mask: list[np.ndarray] | None
    meta: dict

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Inputs, hidden sizes and outputs (two for a one-logit two-class model)."""
        outputs = self.weights[-1].shape[1]
        hidden = [w.shape[1] for w in self.weights[:-1]]
        return (self.weights[0].shape[0], *hidden, 2 if outputs == 1 else outputs)

    @property
    def arch(self) -> str:
        return "-".join(map(str, self.layer_sizes))

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, one column per output."""
        return two_class_logits(logits_of(self.weights, self.biases, X))

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``weights.npz`` whole or not at all."""
        arrays = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"bias_{i}": b for i, b in enumerate(self.biases or [])})
        arrays.update({f"mask_{i}": m for i, m in enumerate(self.mask or [])})
        arrays["format"] = np.array(FORMAT)
        arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True, allow_nan=False))
        return atomic_write(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainedWeights:
        """Read a ``weights.npz`` written by ``prunetrain baseline``.

        Raises
        ------
        TicketError
            The file is missing, damaged, or holds no weights.
        """
        path = Path(path)
        if not path.is_file():
            raise TicketError(f"no weights file at {path}")
        try:
            with np.load(path, allow_pickle=False) as f:
                fields = {k: f[k] for k in f.files}
            meta = json.loads(str(fields["meta"])) if "meta" in fields else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise TicketError(
                f"{path} is damaged or not a weights file ({type(e).__name__})"
            ) from None

        def numbered(prefix: str) -> list[np.ndarray]:
            out = []
            while f"{prefix}{len(out)}" in fields:
                out.append(fields[f"{prefix}{len(out)}"])
            return out

        weights, biases, mask = numbered("weight_"), numbered("bias_"), numbered("mask_")
        if not weights:
            raise TicketError(f"{path} holds no weights (weight_0, weight_1, ...)")
        for a, b in zip(weights, weights[1:]):
            if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
                raise TicketError(f"{path} is damaged: its weight shapes do not chain")
        if biases and len(biases) != len(weights):
            raise TicketError(f"{path} is damaged: {len(weights)} weights but {len(biases)} biases")
        if meta is None:
            meta = _meta_from_result(path)
        try:
            meta = check_meta(meta)  # the keys prunetrain reads, typed as for a ticket
        except PrunetrainError as e:
            raise TicketError(f"{path} is damaged ({e})") from None
        return cls(weights, biases or None, mask or None, meta)


def _meta_from_result(path: Path) -> dict:
    """A weights file from before its ``meta`` entry: the dataset from ``result.json`` beside it."""
    record = path.parent / "result.json"
    try:
        config = json.loads(record.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {k: config[k] for k in ("dataset", "data_source", "method", "seed") if k in config}
