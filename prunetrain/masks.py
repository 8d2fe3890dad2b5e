"""Binary masks over a network's weights: keep rules, random masks, bit packing.

A *mask* is a list of boolean arrays, one per layer, shaped like the layer's
weights ``(fan_in, fan_out)``; ``True`` keeps the weight. A *population* of P
masks is held packed, one bit per weight (:class:`MaskPopulation`), and is
expanded to floats only inside a backend's short-lived buffers.

A *keep rule* says how many weights a mask keeps. It answers for itself in
terms of *segments* of the flat weight vector (the layers end to end, each
flattened in C order): runs of whole layers whose number of kept weights the
rule fixes. :class:`KeepRule` builds the rule of a kind; each kind is one
subclass (:class:`LayerRule`, :class:`GlobalRule`, :class:`FreeRule`), and a
new kind is one more subclass defining :meth:`KeepRule.segments`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import ClassVar, NamedTuple

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.network import check_keep

Mask = list  # list[np.ndarray[bool]], one (fan_in, fan_out) array per layer


class Segment(NamedTuple):
    """Columns ``start:stop`` of the flat weights; they keep ``count`` weights (``None``: any)."""

    start: int
    stop: int
    count: int | None


def _sizes(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    return [math.prod(shape) for shape in shapes]


def _bounds(shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each layer in the flat weight vector."""
    offsets = np.concatenate([[0], np.cumsum(_sizes(shapes))]).astype(np.int64).tolist()
    return list(zip(offsets[:-1], offsets[1:]))


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class KeepRule:
    """How many weights a mask keeps.

    ``KeepRule(keep, kind)`` returns the rule of that kind, an instance of
    the subclass registered for it.

    Parameters
    ----------
    keep : float
        Fraction of weights kept, in (0, 1].
    kind : {"layer", "global", "free"}
        ``"layer"``: every layer keeps exactly ``round(keep * n_l)`` weights
        (the default, as in edge-popup); ``"global"``: the whole network keeps
        ``round(keep * n)`` weights in total, spread freely over layers;
        ``"free"``: any number; ``keep`` is only where random masks start.

    Examples
    --------
    >>> rule = KeepRule(0.5, "global")
    >>> type(rule).__name__, rule.kind, rule.segments([(4, 3), (3, 2)])
    ('GlobalRule', 'global', [Segment(start=0, stop=18, count=9)])
    """

    keep: float
    kind: str

    #: Whether the rule fixes counts (False: masks may keep any number of weights).
    fixes_counts: ClassVar[bool] = True
    _kinds: ClassVar[dict[str, type[KeepRule]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            KeepRule._kinds[cls.kind] = cls

    def __new__(cls, keep: float = 0.5, kind: str | None = "layer"):
        if cls is KeepRule:
            cls = KeepRule._kinds.get(kind, KeepRule)
        return object.__new__(cls)

    def __init__(self, keep: float = 0.5, kind: str | None = None) -> None:
        object.__setattr__(self, "keep", check_keep(keep))
        own = getattr(type(self), "kind", None)  # each subclass sets its kind
        if own is None:
            raise PrunetrainError(
                f"unknown keep rule {kind!r}; expected one of {', '.join(KEEP_KINDS)}"
            )
        if kind not in (None, own):
            raise PrunetrainError(f"{type(self).__name__} is the {own!r} rule, not {kind!r}")
        object.__setattr__(self, "kind", own)

    def __repr__(self) -> str:
        return f"KeepRule(keep={self.keep!r}, kind={self.kind!r})"

    def __reduce__(self):
        return KeepRule, (self.keep, self.kind)

    def __setstate__(self, state: dict) -> None:
        # Pickles written before the rules were subclasses store a bare KeepRule and its fields.
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "__class__", KeepRule._kinds[state["kind"]])

    # --- what a subclass defines ---------------------------------------------------------

    def segments(self, shapes: Sequence[tuple[int, ...]]) -> list[Segment]:
        """The runs of whole layers whose kept counts the rule fixes, in order, covering them all.

        Parameters
        ----------
        shapes : list of tuple
            The layers' shapes, ``(fan_in, fan_out)``.
        """
        raise NotImplementedError

    # --- counts ------------------------------------------------------------------------

    def check_shapes(self, shapes: Sequence[tuple[int, ...]]) -> None:
        """Raise :class:`PrunetrainError` unless ``keep`` leaves every layer a weight.

        The bound is :func:`~prunetrain.network.check_keep`'s, ``keep * n_l >= 1/2``
        for every layer: it is the ``"layer"`` count, and the split ``"global"``
        starts from. Every count below checks it, so no mask is made under a
        keep that a layer cannot hold. (A ``"free"`` rule fixes no count: its
        masks may leave a layer empty, and only ``keep``'s range is checked.)
        """
        check_keep(self.keep, [tuple(shape) for shape in shapes])

    def layer_counts(self, shapes: Sequence[tuple[int, ...]]) -> list[int]:
        """Weights kept per layer under the ``"layer"`` rule (at least one)."""
        self.check_shapes(shapes)
        # keep * fan_in * fan_out, multiplied in that order: the float rounding counts always had
        # (``max``: a layer at exactly half a weight rounds to even, 0, and keeps one)
        return [max(1, round(math.prod(shape, start=self.keep))) for shape in shapes]

    def total_count(self, shapes: Sequence[tuple[int, ...]]) -> int:
        """Weights kept in the whole network under the ``"global"`` rule."""
        self.check_shapes(shapes)
        return max(1, round(self.keep * sum(_sizes(shapes))))

    def layer_split(self, shapes: Sequence[tuple[int, ...]]) -> list[int]:
        """Counts per layer that satisfy the rule, for a method that chooses layer by layer.

        The ``"layer"`` counts; a subclass whose counts span layers adjusts them.
        """
        return self.layer_counts(shapes)

    def layer_segments(self, shapes: Sequence[tuple[int, ...]]) -> list[tuple[range, int | None]]:
        """:meth:`segments` as ``(layers, count)``: the range of layer indices of each."""
        starts = [s for s, _ in _bounds(shapes)] + [sum(_sizes(shapes))]
        return [
            (range(starts.index(seg.start), starts.index(seg.stop)), seg.count)
            for seg in self.segments(shapes)
        ]

    # --- masks -------------------------------------------------------------------------

    def satisfied_by(self, mask: Sequence[np.ndarray]) -> bool:
        """Whether ``mask`` keeps exactly the count this rule asks for."""
        counts = [int(np.count_nonzero(m)) for m in mask]
        return all(
            count is None or sum(counts[layer] for layer in layers) == count
            for layers, count in self.layer_segments([m.shape for m in mask])
        )

    def keep_top(
        self, scores: Sequence[np.ndarray], like: Sequence[np.ndarray] | None = None
    ) -> Mask:
        """The mask keeping the highest scores: in each segment its count, or as many as ``like``.

        A segment without a count (``"free"``) keeps its positive scores.
        Ties fall as ``argpartition`` leaves them; callers that expect ties
        break them first (:func:`prunetrain.baselines.select.jitter`).

        Parameters
        ----------
        scores : list of ndarray
            One array of scores per layer, shaped like the layer (or flat).
        like : list of ndarray of bool, optional
            A mask shaped like ``scores``: each counted segment keeps as many
            weights as ``like`` keeps there, instead of the rule's count.

        Examples
        --------
        >>> KeepRule(0.5).keep_top([np.array([[0.1, 0.9], [0.5, 0.2]])])[0]
        array([[False,  True],
               [ True, False]])
        """
        values = [np.asarray(s) for s in scores]
        out: list[np.ndarray | None] = [None] * len(values)
        for layers, count in self.layer_segments([v.shape for v in values]):
            flat = np.concatenate([values[layer].ravel() for layer in layers])
            if count is None:
                keep = flat > 0
            else:
                if like is not None:
                    count = sum(int(np.count_nonzero(like[layer])) for layer in layers)
                keep = _top(flat, count)
            sizes = [values[layer].size for layer in layers]
            for layer, part in zip(layers, np.split(keep, np.cumsum(sizes)[:-1])):
                out[layer] = part.reshape(values[layer].shape)
        return out

    def random_mask(self, shapes: Sequence[tuple[int, int]], rng: np.random.Generator) -> Mask:
        """One uniformly random mask that satisfies the rule.

        A counted segment keeps exactly its count, chosen uniformly without
        replacement (one ``rng.choice`` per segment, in order); in a segment
        without a count each weight is kept independently with probability
        ``keep`` (one ``rng.random`` per segment).
        """
        sizes = _sizes(shapes)
        flat = np.zeros(sum(sizes), dtype=bool)
        for start, stop, count in self.segments(shapes):
            n = stop - start
            if count is None:
                flat[start:stop] = rng.random(n) < self.keep
            else:
                flat[start:stop][rng.choice(n, size=count, replace=False)] = True
        flats = np.split(flat, np.cumsum(sizes)[:-1])
        return [f.reshape(shape) for f, shape in zip(flats, shapes)]

    # --- other rules and files -----------------------------------------------------------

    def with_keep(self, keep: float) -> KeepRule:
        """The rule of the same kind keeping ``keep``."""
        return KeepRule(keep, self.kind)

    def counted(self) -> KeepRule:
        """The rule a ranking by score keeps to: this one, or one with a count if it has none."""
        return self

    def to_dict(self) -> dict:
        return {"keep": self.keep, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict) -> KeepRule:
        return KeepRule(keep=d["keep"], kind=d["kind"])


class LayerRule(KeepRule):
    """Every layer keeps exactly ``round(keep * n_l)`` weights (at least one): a segment a layer."""

    kind = "layer"

    def segments(self, shapes):
        return [Segment(s, e, k) for (s, e), k in zip(_bounds(shapes), self.layer_counts(shapes))]


class GlobalRule(KeepRule):
    """The network keeps ``round(keep * n)`` weights in total: one segment, the whole mask."""

    kind = "global"

    def segments(self, shapes):
        return [Segment(0, sum(_sizes(shapes)), self.total_count(shapes))]

    def layer_split(self, shapes):
        """The ``"layer"`` counts, the largest layer taking what makes the total exact."""
        counts = self.layer_counts(shapes)
        largest = int(np.argmax(_sizes(shapes)))
        counts[largest] += self.total_count(shapes) - sum(counts)
        return counts


class FreeRule(KeepRule):
    """Any number of weights (``keep`` is where random masks start): one free segment a layer."""

    kind = "free"
    fixes_counts = False

    def check_shapes(self, shapes):
        check_keep(self.keep)  # any count is a free mask's, an empty layer included

    def segments(self, shapes):
        self.check_shapes(shapes)
        return [Segment(s, e, None) for s, e in _bounds(shapes)]

    def counted(self):
        """The ``"global"`` rule of the same keep: a ranking by score needs a count."""
        return KeepRule(self.keep, "global")


#: The kinds of keep rule defined here (the CLI's choices), in the order they were defined.
KEEP_KINDS = tuple(KeepRule._kinds)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Where the ``k`` largest of the flat ``values`` are (ties as ``argpartition`` leaves them)."""
    keep = np.zeros(values.size, dtype=bool)
    if k >= values.size:
        keep[:] = True
    elif k > 0:
        keep[np.argpartition(values, values.size - k)[values.size - k :]] = True
    return keep


def random_mask(
    shapes: Sequence[tuple[int, int]], rule: KeepRule, rng: np.random.Generator
) -> Mask:
    """One uniformly random mask that satisfies ``rule`` (:meth:`KeepRule.random_mask`).

    Under ``"layer"`` and ``"global"`` exactly the rule's count is kept, chosen
    uniformly without replacement; under ``"free"`` each weight is kept
    independently with probability ``rule.keep``.
    """
    return rule.random_mask(shapes, rng)


class Layout:
    """Where each layer lives in a flat mask, and which column ranges a keep rule counts.

    Parameters
    ----------
    shapes : list of (fan_in, fan_out)
    rule : KeepRule

    Attributes
    ----------
    segments : list of Segment
        ``(start, stop, count)``: the column ranges whose number of kept
        weights the rule fixes (``count``; ``None`` under the ``"free"``
        rule), :meth:`KeepRule.segments`.
    """

    def __init__(self, shapes, rule: KeepRule) -> None:
        self.shapes = [tuple(int(x) for x in s) for s in shapes]
        self.rule = rule
        self.sizes = [a * b for a, b in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.segments = rule.segments(shapes)

    def layer(self, flat: np.ndarray, layer: int) -> np.ndarray:
        """Layer ``layer`` of every row of ``flat`` as a ``(P, fan_in, fan_out)`` view."""
        s, e = self.offsets[layer], self.offsets[layer + 1]
        return flat[:, s:e].reshape(len(flat), *self.shapes[layer])

    def population(self, flat: np.ndarray) -> MaskPopulation:
        return MaskPopulation.from_layers([self.layer(flat, i) for i in range(len(self.shapes))])

    def mask(self, row: np.ndarray) -> Mask:
        """One flat row as a mask (a list of per-layer arrays, copied)."""
        return [
            row[s:e].reshape(shape).copy()
            for s, e, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)
        ]

    def flatten(self, mask: Mask) -> np.ndarray:
        return np.concatenate([np.asarray(m, dtype=bool).ravel() for m in mask])

    def keep_fraction(self, start: int, stop: int, count: int | None) -> float:
        return self.rule.keep if count is None else count / (stop - start)


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
