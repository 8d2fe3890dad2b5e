"""Frozen random networks: the specification and the weights made from it.

The weights of a :class:`FrozenNetwork` are a pure function of
``(NetworkSpec, seed)``; nothing ever changes them. A search only chooses
which of them to keep, so a ticket needs just the spec, the seed and a mask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np

from prunetrain.errors import PrunetrainError

INIT_SCHEMES = ("signed_constant", "kaiming_normal", "kaiming_uniform", "binary")
SCALE_RULES = ("keep", "none")
ACTIVATIONS = ("relu",)

# What one machine can hold. Every spec checks them (the CLI's --arch, the estimator's hidden
# sizes, compare's archs, tickets and checkpoints all make a spec), so a network too deep or too
# large for memory is refused before its weights are drawn, and a ticket that a search writes
# can always be read back.

#: Weight matrices (layers) a network may have.
MAX_LAYERS = 64
#: Units a layer (input and output included) may have.
MAX_LAYER_SIZE = 2**20
#: Weights a network may have in all: 2**28 float32 weights are 1 GiB, and a search holds a few
#: copies (masks, caches, float64 scores) besides.
MAX_WEIGHTS = 2**28
#: Characters an architecture string may have: far more than MAX_LAYERS + 1 sizes need.
_MAX_ARCH_CHARS = 4096


def parse_arch(text: str) -> tuple[int, ...]:
    """Parse an architecture string such as ``"784-300-100-10"``.

    Parameters
    ----------
    text : str
        Layer sizes joined by ``-`` (or ``x`` / ``,``), input first, output last.

    Returns
    -------
    tuple of int
        The layer sizes.

    Examples
    --------
    >>> parse_arch("64-256-256-10")
    (64, 256, 256, 10)
    """
    text = str(text)
    if len(text) > _MAX_ARCH_CHARS:
        raise PrunetrainError(
            f"bad architecture {text[:40]!r}...: {len(text)} characters; expected at most "
            f"{MAX_LAYERS + 1} layer sizes such as 784-300-100-10"
        )
    parts = text.replace(",", "-").replace("x", "-").split("-")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        raise PrunetrainError(
            f"bad architecture {text!r}: expected layer sizes such as 784-300-100-10"
        ) from None
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise PrunetrainError(
            f"bad architecture {text!r}: need at least an input and an output size, "
            "all positive, such as 784-300-100-10"
        )
    check_layer_sizes(sizes)
    return sizes


def check_layer_sizes(sizes: Sequence[int]) -> None:
    """Raise unless ``sizes`` (positive integers) fit :data:`MAX_LAYERS`, :data:`MAX_LAYER_SIZE`
    and :data:`MAX_WEIGHTS`.

    Examples
    --------
    >>> check_layer_sizes((64, 100_000_000, 10))
    Traceback (most recent call last):
    ...
    prunetrain.errors.PrunetrainError: bad layer sizes 64-100000000-10: a layer of 100000000 units; at most 1048576 per layer
    """
    shown = "-".join(map(str, sizes if len(sizes) <= 8 else (*sizes[:3], "...", sizes[-1])))
    if len(sizes) - 1 > MAX_LAYERS:
        raise PrunetrainError(
            f"bad layer sizes {shown}: {len(sizes) - 1} layers; at most {MAX_LAYERS} "
            f"({MAX_LAYERS + 1} sizes, input and output included)"
        )
    widest = max(sizes)
    if widest > MAX_LAYER_SIZE:
        raise PrunetrainError(
            f"bad layer sizes {shown}: a layer of {widest} units; at most {MAX_LAYER_SIZE} per layer"
        )
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_weights > MAX_WEIGHTS:
        raise PrunetrainError(
            f"bad layer sizes {shown}: {n_weights} weights; at most {MAX_WEIGHTS} (2**28) in all"
        )


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Everything that defines a frozen random MLP except its seed.

    Parameters
    ----------
    layer_sizes : tuple of int
        Input size, hidden sizes, number of classes; e.g. ``(784, 300, 100, 10)``.
        At most :data:`MAX_LAYERS` (64) layers of at most :data:`MAX_LAYER_SIZE`
        (2**20) units, and :data:`MAX_WEIGHTS` (2**28) weights in all.
    init : {"signed_constant", "kaiming_normal", "kaiming_uniform", "binary"}
        How weights are drawn. ``signed_constant`` is ±sqrt(2/fan_in) with a
        random sign, the best-known choice for strong lottery tickets
        (Ramanujan et al. 2020); ``binary`` is ±1.
    scale : {"keep", "none"}
        ``"keep"`` multiplies every weight by ``1/sqrt(keep)`` so that a layer
        keeping a fraction ``keep`` of its weights keeps its activation variance.
    keep : float
        The keep fraction the ``"keep"`` scale rule is computed for; it must
        leave every layer a weight (:func:`check_keep`).
    activation : {"relu"}
        Hidden activation; the output layer is linear (logits).
    bias : bool
        Whether each layer adds a frozen random bias (never masked). Strong
        ticket work uses no biases, the default.
    """

    layer_sizes: tuple[int, ...]
    init: str = "signed_constant"
    scale: str = "keep"
    keep: float = 0.5
    activation: str = "relu"
    bias: bool = False

    def __post_init__(self) -> None:
        sizes = self.layer_sizes
        if isinstance(sizes, str):
            sizes = parse_arch(sizes)
        sizes = tuple(sizes)
        if len(sizes) < 2 or not all(_is_int(s) and s >= 1 for s in sizes):
            raise PrunetrainError(
                f"bad layer sizes {sizes}: need >= 2 sizes, each a positive integer"
            )
        sizes = tuple(int(s) for s in sizes)
        check_layer_sizes(sizes)
        object.__setattr__(self, "layer_sizes", sizes)
        if self.init not in INIT_SCHEMES:
            raise PrunetrainError(
                f"unknown init {self.init!r}; expected one of {', '.join(INIT_SCHEMES)}"
            )
        if self.scale not in SCALE_RULES:
            raise PrunetrainError(
                f"unknown scale rule {self.scale!r}; expected one of {', '.join(SCALE_RULES)}"
            )
        object.__setattr__(self, "keep", check_keep(self.keep, self.shapes))
        if self.activation not in ACTIVATIONS:
            raise PrunetrainError(
                f"unknown activation {self.activation!r}; expected one of {', '.join(ACTIVATIONS)}"
            )
        if not isinstance(self.bias, (bool, np.bool_)):
            raise PrunetrainError(f"bias must be True or False, got {self.bias!r}")
        object.__setattr__(self, "bias", bool(self.bias))

    @property
    def n_layers(self) -> int:
        """Number of weight matrices."""
        return len(self.layer_sizes) - 1

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of each weight matrix."""
        s = self.layer_sizes
        return [(s[i], s[i + 1]) for i in range(len(s) - 1)]

    @property
    def n_weights(self) -> int:
        """Total number of (maskable) weights."""
        return sum(a * b for a, b in self.shapes)

    @property
    def arch(self) -> str:
        """The layer sizes as an architecture string, e.g. ``"784-300-100-10"``."""
        return "-".join(str(s) for s in self.layer_sizes)

    def flops_per_sample(self) -> int:
        """Multiply-adds counted as 2 FLOPs: ``2 * sum(fan_in * fan_out)``."""
        return 2 * self.n_weights

    def to_dict(self) -> dict:
        """A JSON-ready dict; ``NetworkSpec.from_dict`` inverts it."""
        d = dataclasses.asdict(self)
        d["layer_sizes"] = list(self.layer_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> NetworkSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise PrunetrainError(f"unknown network spec fields: {sorted(unknown)}")
        d = dict(d)
        d["layer_sizes"] = tuple(d["layer_sizes"])
        return cls(**d)


def _is_int(value) -> bool:
    """An integer, not a bool (``True`` is no layer size or seed)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_keep(keep: float, shapes: Sequence[tuple[int, ...]] | None = None) -> float:
    """Return ``keep`` as a float if it is a number in (0, 1], else raise.

    With ``shapes`` (the layers' ``(fan_in, fan_out)``, or flat), ``keep`` must also
    leave every layer at least one weight: ``keep * n_l >= 1/2`` for each
    layer of ``n_l`` weights, so that ``round(keep * n_l)``, the count the
    ``"layer"`` rule keeps, is at least 1. The same bound holds under every
    keep rule: ``"global"`` starts from those counts and ``"free"`` draws
    its random masks with that expectation, and a smaller ``keep`` would be
    silently rounded up to another fraction (and its ``1/sqrt(keep)`` weight
    scale overflow float32 when it is tiny, as 1e-300 did).

    Examples
    --------
    >>> check_keep(0.01, [(64, 8), (8, 10)])
    0.01
    >>> check_keep(0.001, [(64, 8), (8, 10)])
    Traceback (most recent call last):
    ...
    prunetrain.errors.PrunetrainError: keep 0.001 leaves layer 2 (8x10, 80 weights) without a weight: expected keep >= 0.00625 for this network
    """
    if isinstance(keep, (bool, np.bool_)) or not isinstance(keep, (int, float, np.number)):
        raise PrunetrainError(f"keep must be a number in (0, 1], got {keep!r}")
    k = float(keep)
    if not (0.0 < k <= 1.0) or math.isnan(k):
        raise PrunetrainError(f"keep must lie in (0, 1], got {keep!r}")
    if shapes:
        sizes = [math.prod(shape) for shape in shapes]
        smallest = int(np.argmin(sizes))
        if k * sizes[smallest] < 0.5 * (1 - 1e-9):  # a keep of 0.5/n in floats is half a weight
            shape = "x".join(map(str, shapes[smallest]))
            raise PrunetrainError(
                f"keep {keep!r} leaves layer {smallest + 1} ({shape}, {sizes[smallest]} weights) "
                f"without a weight: expected keep >= {0.5 / sizes[smallest]:.3g} for this network"
            )
    return k


def init_weights(spec: NetworkSpec, seed: int) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Draw the frozen weights (and biases) of ``spec`` from ``seed``.

    Each layer draws from its own stream of ``SeedSequence(seed)``, so a layer's
    weights do not depend on the sizes of the other layers.

    Returns
    -------
    weights : list of float32 arrays of shape (fan_in, fan_out)
    biases : list of float32 arrays of shape (fan_out,), or None
    """
    seed = check_seed(seed)
    streams = np.random.SeedSequence(seed).spawn(spec.n_layers)
    factor = 1.0 / math.sqrt(spec.keep) if spec.scale == "keep" else 1.0
    weights, biases = [], []
    for (fan_in, fan_out), stream in zip(spec.shapes, streams):
        rng = np.random.default_rng(stream)
        std = math.sqrt(2.0 / fan_in)
        shape = (fan_in, fan_out)
        if spec.init == "kaiming_normal":
            w = rng.standard_normal(shape) * std
        elif spec.init == "kaiming_uniform":
            bound = math.sqrt(3.0) * std
            w = rng.uniform(-bound, bound, shape)
        elif spec.init == "signed_constant":
            w = np.where(rng.random(shape) < 0.5, -std, std)
        else:  # binary
            w = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
        weights.append(np.ascontiguousarray(w * factor, dtype=np.float32))
        if spec.bias:
            # Biases are drawn after the weights from the same stream, with the
            # scale a unit's pre-activation has at init (std of w·a ~ 1).
            biases.append((rng.standard_normal(fan_out) * 0.1).astype(np.float32))
    return weights, (biases if spec.bias else None)


#: Seeds are stored as int64 (tickets, result records).
MAX_SEED = 2**63 - 1


def check_seed(seed: int) -> int:
    """Return ``seed`` as an int in [0, 2**63 - 1], else raise."""
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise PrunetrainError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
    return int(seed)


class FrozenNetwork:
    """A random MLP whose weights never change.

    Parameters
    ----------
    spec : NetworkSpec
        Layer sizes, init scheme, scale rule.
    seed : int
        Seed of the weights; ``(spec, seed)`` determines them exactly.

    Attributes
    ----------
    weights : list of ndarray
        float32 arrays of shape ``(fan_in, fan_out)``, read-only.
    biases : list of ndarray or None
        float32 arrays of shape ``(fan_out,)``, read-only, if ``spec.bias``.

    Examples
    --------
    >>> net = FrozenNetwork(NetworkSpec((4, 3, 2)), seed=0)
    >>> [w.shape for w in net.weights]
    [(4, 3), (3, 2)]
    >>> net.weights_hash == FrozenNetwork(NetworkSpec((4, 3, 2)), seed=0).weights_hash
    True
    """

    def __init__(self, spec: NetworkSpec, seed: int = 0) -> None:
        self.spec = spec
        self.seed = check_seed(seed)
        self.weights, self.biases = init_weights(spec, self.seed)
        for a in self.weights + (self.biases or []):
            a.setflags(write=False)
        self._hash: str | None = None

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return self.spec.shapes

    @property
    def weights_hash(self) -> str:
        """SHA-256 of the spec and the weight bytes; a ticket carries it."""
        if self._hash is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.spec.to_dict(), sort_keys=True).encode())
            for a in self.weights + (self.biases or []):
                h.update(np.ascontiguousarray(a, dtype="<f4").tobytes())
            self._hash = h.hexdigest()
        return self._hash

    def forward(self, masks: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
        """Logits of the masked network on ``X``, in float64 (a plain reference).

        This is the obviously-right definition every backend is tested against.
        """
        a = np.asarray(X, dtype=np.float64)
        for layer, (w, m) in enumerate(zip(self.weights, masks)):
            a = a @ (w.astype(np.float64) * m)
            if self.biases is not None:
                a = a + self.biases[layer]
            if layer < self.spec.n_layers - 1:
                a = np.maximum(a, 0.0)
        return a

    def __repr__(self) -> str:
        return f"FrozenNetwork({self.spec.arch}, init={self.spec.init!r}, seed={self.seed})"
