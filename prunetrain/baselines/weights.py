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
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from prunetrain.baselines.backprop import logits_of
from prunetrain.errors import PrunetrainError, TicketError
from prunetrain.files import atomic_write, check_regular_file
from prunetrain.network import MAX_LAYERS
from prunetrain.npz import Expect, entry_names, read_entries
from prunetrain.ticket import MAX_META_CHARS, check_meta, parse_meta

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
        """Read a ``weights.npz`` written by ``prunetrain baseline``, trusting nothing in it.

        The file must be a regular file of at most :data:`MAX_WEIGHTS_BYTES`;
        its entry names must be a weights file's (``weight_i``, and ``bias_i``
        and ``mask_i`` for every layer or none, ``format``, ``meta``), for at
        most :data:`~prunetrain.network.MAX_LAYERS` layers; each entry is checked (stored, the
        dtype and dimensions expected) before its data is read
        (:func:`prunetrain.npz.read_entries`). Then: float weights and biases,
        all finite, at least one unit per layer, each layer's inputs the
        previous layer's outputs, a bias per unit, a boolean mask per weight;
        ``meta`` checked as a ticket's (:func:`prunetrain.ticket.parse_meta`).

        Raises
        ------
        TicketError
            The file is missing, not a regular file, damaged, or not an MLP's weights.
        """
        try:
            path = check_regular_file(path, "weights file")  # a FIFO would block the reading
        except PrunetrainError as e:
            raise TicketError(str(e)) from None
        try:
            layers = _layer_count(entry_names(path, MAX_WEIGHTS_BYTES))
            fields = read_entries(path, _entries(layers), MAX_WEIGHTS_BYTES)
            if "format" in fields and str(fields["format"]) != FORMAT:
                raise PrunetrainError(f"its format is {str(fields['format'])!r}, not {FORMAT!r}")
            meta = parse_meta(str(fields["meta"])) if "meta" in fields else None
            weights, biases, mask = (
                [fields[f"{prefix}_{i}"] for i in range(layers) if f"{prefix}_{i}" in fields]
                for prefix in ("weight", "bias", "mask")
            )
            _check_layers(weights, biases, mask)
            if meta is None:
                meta = check_meta(_meta_from_result(path))
        except PrunetrainError as e:
            raise TicketError(f"{path} is damaged or not a weights file ({_one_line(e)})") from None
        return cls(weights, biases or None, mask or None, meta)


#: A weights file may be at most this large (784-4096-4096-10 in float64 is 160 MB).
#: It holds at most :data:`~prunetrain.network.MAX_LAYERS` layers, as a ticket's network.
MAX_WEIGHTS_BYTES = 2**30
_ENTRY_NAME = re.compile(r"(weight|bias|mask)_(0|[1-9][0-9]{0,8})")


def _layer_count(names: list[str]) -> int:
    """The number of layers an archive's entry names describe, checked to be a weights file's."""
    numbers: dict[str, set[int]] = {"weight": set(), "bias": set(), "mask": set()}
    for name in names:
        match = _ENTRY_NAME.fullmatch(name)
        if match:
            numbers[match.group(1)].add(int(match.group(2)))
        elif name not in ("format", "meta"):
            raise PrunetrainError(
                f"it holds an entry {name!r}; a weights file holds weight_i, bias_i, mask_i, "
                "format and meta"
            )
    layers = len(numbers["weight"])
    if not 1 <= layers <= MAX_LAYERS:
        raise PrunetrainError(
            f"it holds {layers} layers of weights; a weights file holds 1 to {MAX_LAYERS}"
        )
    for prefix, found in numbers.items():
        missing = sorted(set(range(max(found, default=-1) + 1)) - found)
        if missing:
            raise PrunetrainError(f"it holds {prefix}_{max(found)} but no {prefix}_{missing[0]}")
        if found and len(found) != layers:
            raise PrunetrainError(
                f"it holds {layers} weights but {len(found)} {prefix} entries; "
                f"expected one {prefix} per layer or none"
            )
    return layers


def _entries(layers: int) -> dict[str, Expect]:
    """What each entry of a weights file must hold: its size is bounded by the file's."""
    out = {
        "format": Expect("text", 64, optional=True),
        "meta": Expect("text", MAX_META_CHARS, optional=True),
    }
    for i in range(layers):
        out[f"weight_{i}"] = Expect("array", MAX_WEIGHTS_BYTES, ndim=2)
        out[f"bias_{i}"] = Expect("array", MAX_WEIGHTS_BYTES, ndim=1, optional=True)
        out[f"mask_{i}"] = Expect("array", MAX_WEIGHTS_BYTES, ndim=2, optional=True)
    return out


def _check_layers(weights: list, biases: list, mask: list) -> None:
    """Raise unless the arrays are an MLP's: float, finite, chained, a bias per unit, a mask per weight."""
    for i, w in enumerate(weights):
        what = f"weight_{i}"
        if w.dtype.kind != "f":
            raise PrunetrainError(f"its {what} has dtype {w.dtype}; expected floats")
        if 0 in w.shape:
            raise PrunetrainError(f"its {what} has shape {w.shape}; expected at least one unit")
        if i and weights[i - 1].shape[1] != w.shape[0]:
            raise PrunetrainError(
                f"its weight shapes do not chain: weight_{i - 1} has {weights[i - 1].shape[1]} "
                f"outputs, {what} {w.shape[0]} inputs"
            )
        if not np.isfinite(w).all():
            raise PrunetrainError(f"its {what} holds NaN or infinite values")
    for i, b in enumerate(biases):
        if b.dtype.kind != "f" or b.shape != (weights[i].shape[1],):
            raise PrunetrainError(
                f"its bias_{i} has dtype {b.dtype} and shape {b.shape}; expected "
                f"{weights[i].shape[1]} floats, one per unit of weight_{i}"
            )
        if not np.isfinite(b).all():
            raise PrunetrainError(f"its bias_{i} holds NaN or infinite values")
    for i, m in enumerate(mask):
        if m.dtype != bool or m.shape != weights[i].shape:
            raise PrunetrainError(
                f"its mask_{i} has dtype {m.dtype} and shape {m.shape}; expected booleans "
                f"of weight_{i}'s shape {weights[i].shape}"
            )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


#: A ``result.json`` beside an old weights file is read only up to this size.
MAX_RECORD_BYTES = 16 * 2**20


def _meta_from_result(path: Path) -> dict:
    """A weights file from before its ``meta`` entry: the dataset from ``result.json`` beside it.

    An unreadable, oversized or malformed record gives no facts (``{}``); the
    caller checks what it gives as a ticket's ``meta``.
    """
    try:
        record = check_regular_file(path.parent / "result.json", "record")
        if record.stat().st_size > MAX_RECORD_BYTES:
            return {}
        config = json.loads(record.read_text())["config"]
        return {k: config[k] for k in ("dataset", "data_source", "method", "seed") if k in config}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # PrunetrainError too
        return {}
