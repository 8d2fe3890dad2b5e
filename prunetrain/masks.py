"""Binary masks over a network's weights: keep rules, random masks, bit packing.

A *mask* is a list of boolean arrays, one per layer, shaped like the layer's
weights ``(fan_in, fan_out)``; ``True`` keeps the weight. A *population* of P
masks is held packed, one bit per weight (:class:`MaskPopulation`), and is
expanded to floats only inside a backend's short-lived buffers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.network import check_keep

Mask = list  # list[np.ndarray[bool]], one (fan_in, fan_out) array per layer

KEEP_KINDS = ("layer", "global", "free")


@dataclasses.dataclass(frozen=True)
class KeepRule:
    """How many weights a mask keeps.

    Parameters
    ----------
    keep : float
        Fraction of weights kept, in (0, 1].
    kind : {"layer", "global", "free"}
        ``"layer"``: every layer keeps exactly ``round(keep * n_l)`` weights
        (the default, as in edge-popup); ``"global"``: the whole network keeps
        ``round(keep * n)`` weights in total, spread freely over layers;
        ``"free"``: any number; ``keep`` is only where random masks start.
    """

    keep: float = 0.5
    kind: str = "layer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep", check_keep(self.keep))
        if self.kind not in KEEP_KINDS:
            raise PrunetrainError(
                f"unknown keep rule {self.kind!r}; expected one of {', '.join(KEEP_KINDS)}"
            )

    def layer_counts(self, shapes: Sequence[tuple[int, int]]) -> list[int]:
        """Weights kept per layer under the ``"layer"`` rule (at least one)."""
        return [max(1, round(self.keep * a * b)) for a, b in shapes]

    def total_count(self, shapes: Sequence[tuple[int, int]]) -> int:
        """Weights kept in the whole network under the ``"global"`` rule."""
        return max(1, round(self.keep * sum(a * b for a, b in shapes)))

    def satisfied_by(self, mask: Sequence[np.ndarray]) -> bool:
        """Whether ``mask`` keeps exactly the count this rule asks for."""
        shapes = [m.shape for m in mask]
        counts = [int(np.count_nonzero(m)) for m in mask]
        if self.kind == "layer":
            return counts == self.layer_counts(shapes)
        if self.kind == "global":
            return sum(counts) == self.total_count(shapes)
        return True

    def to_dict(self) -> dict:
        return {"keep": self.keep, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> KeepRule:
        return cls(keep=d["keep"], kind=d["kind"])


def random_mask(
    shapes: Sequence[tuple[int, int]], rule: KeepRule, rng: np.random.Generator
) -> Mask:
    """One uniformly random mask that satisfies ``rule``.

    Under ``"layer"`` and ``"global"`` exactly the rule's count is kept, chosen
    uniformly without replacement; under ``"free"`` each weight is kept
    independently with probability ``rule.keep``.
    """
    sizes = [a * b for a, b in shapes]
    if rule.kind == "layer":
        flats = []
        for n, k in zip(sizes, rule.layer_counts(shapes)):
            flat = np.zeros(n, dtype=bool)
            flat[rng.choice(n, size=k, replace=False)] = True
            flats.append(flat)
    elif rule.kind == "global":
        total = sum(sizes)
        flat = np.zeros(total, dtype=bool)
        flat[rng.choice(total, size=rule.total_count(shapes), replace=False)] = True
        flats = np.split(flat, np.cumsum(sizes)[:-1])
    else:
        flats = [rng.random(n) < rule.keep for n in sizes]
    return [f.reshape(shape) for f, shape in zip(flats, shapes)]


def pack_mask(mask: Sequence[np.ndarray]) -> np.ndarray:
    """Pack a mask into one uint8 array, 1 bit per weight (little bit order).

    Layers are flattened in C order and concatenated before packing, so the
    packed size is ``ceil(n_weights / 8)`` bytes with no per-layer padding.
    """
    flat = np.concatenate([np.asarray(m, dtype=bool).ravel() for m in mask])
    return np.packbits(flat, bitorder="little")


def unpack_mask(packed: np.ndarray, shapes: Sequence[tuple[int, int]]) -> Mask:
    """Invert :func:`pack_mask` given the layer shapes."""
    sizes = [a * b for a, b in shapes]
    total = sum(sizes)
    packed = np.asarray(packed, dtype=np.uint8).ravel()
    if packed.size != (total + 7) // 8:
        raise PrunetrainError(
            f"packed mask has {packed.size} bytes, expected {(total + 7) // 8} "
            f"for layers {list(shapes)}"
        )
    flat = np.unpackbits(packed, count=total, bitorder="little").astype(bool)
    return [f.reshape(s) for f, s in zip(np.split(flat, np.cumsum(sizes)[:-1]), shapes)]


def check_mask(mask: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]]) -> Mask:
    """Return ``mask`` as a list of bool arrays, or raise if shapes differ."""
    mask = list(mask)
    if len(mask) != len(shapes):
        raise PrunetrainError(f"mask has {len(mask)} layers, network has {len(shapes)}")
    out = []
    for layer, (m, s) in enumerate(zip(mask, shapes)):
        m = np.asarray(m)
        if m.shape != tuple(s):
            raise PrunetrainError(f"mask layer {layer} has shape {m.shape}, expected {tuple(s)}")
        out.append(m.astype(bool, copy=False))
    return out


class MaskPopulation:
    """P masks over the same network, held packed: 1 bit per weight.

    ``packed[l]`` is a ``(P, ceil(fan_in*fan_out/8))`` uint8 array holding
    layer ``l`` of every mask, flattened in C order, little bit order (bit
    ``k`` of a row lives in byte ``k >> 3`` at bit ``k & 7``). Backends expand
    it to floats one chunk at a time.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shapes = [(4, 3), (3, 2)]
    >>> masks = [random_mask(shapes, KeepRule(0.5), rng) for _ in range(5)]
    >>> pop = MaskPopulation.from_masks(masks, shapes)
    >>> len(pop), pop.layer(0).shape
    (5, (5, 4, 3))
    >>> all((a == b).all() for a, b in zip(pop.mask(2), masks[2]))
    True
    """

    def __init__(self, packed: Sequence[np.ndarray], shapes: Sequence[tuple[int, int]]) -> None:
        self.shapes = [tuple(int(x) for x in s) for s in shapes]
        self.packed = [np.ascontiguousarray(p, dtype=np.uint8) for p in packed]
        if len(self.packed) != len(self.shapes):
            raise PrunetrainError("a population needs one packed array per layer")
        sizes = {p.shape[0] for p in self.packed}
        if len(sizes) != 1:
            raise PrunetrainError("every layer of a population must hold the same P masks")
        for p, (a, b) in zip(self.packed, self.shapes):
            if p.ndim != 2 or p.shape[1] != (a * b + 7) // 8:
                raise PrunetrainError(f"packed layer of shape {p.shape} does not fit ({a}, {b})")

    def __len__(self) -> int:
        return self.packed[0].shape[0]

    @classmethod
    def from_layers(cls, layers: Sequence[np.ndarray]) -> MaskPopulation:
        """Pack boolean arrays of shape ``(P, fan_in, fan_out)``, one per layer."""
        shapes = [tuple(a.shape[1:]) for a in layers]
        packed = [
            np.packbits(
                np.asarray(a, dtype=bool).reshape(a.shape[0], -1), axis=1, bitorder="little"
            )
            for a in layers
        ]
        return cls(packed, shapes)

    @classmethod
    def from_masks(
        cls, masks: Iterable[Sequence[np.ndarray]], shapes: Sequence[tuple[int, int]]
    ) -> MaskPopulation:
        """Pack a sequence of masks (each a list of per-layer bool arrays)."""
        masks = [check_mask(m, shapes) for m in masks]
        if not masks:
            raise PrunetrainError("a population needs at least one mask")
        return cls.from_layers(
            [np.stack([m[layer] for m in masks]) for layer in range(len(shapes))]
        )

    def layer(self, layer: int, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """Layer ``layer`` of the masks ``rows`` (all by default) as bool ``(P, fan_in, fan_out)``."""
        a, b = self.shapes[layer]
        p = self.packed[layer] if rows is None else self.packed[layer][rows]
        bits = np.unpackbits(p, axis=1, count=a * b, bitorder="little")
        return bits.reshape(p.shape[0], a, b).view(bool)

    def mask(self, index: int) -> Mask:
        """Mask number ``index`` as a list of bool arrays."""
        return [self.layer(layer, slice(index, index + 1))[0] for layer in range(len(self.shapes))]

    def select(self, rows: slice | np.ndarray) -> MaskPopulation:
        """The sub-population ``rows`` (still packed)."""
        return MaskPopulation([p[rows] for p in self.packed], self.shapes)

    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.packed)
