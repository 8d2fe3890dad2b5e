"""The backend interface: the only thing searchers know about devices."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from prunetrain.backends import flips, hebbian, screen, topk
from prunetrain.errors import PrunetrainError
from prunetrain.masks import MaskPopulation
from prunetrain.network import FrozenNetwork


def check_labels(y: np.ndarray, n_classes: int) -> None:
    """Raise :class:`PrunetrainError` unless every label of the host array ``y`` lies in ``[0, n_classes)``.

    The compiled backends read ``logits[y]`` in their kernels: this keeps them in bounds.
    """
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise PrunetrainError(f"labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")


class Backend(abc.ABC):
    """Evaluates masks of one frozen network on batches held on one device.

    A backend is made for one network (``make_backend(name, network)``); it
    copies the weights to its device once. Data enters through :meth:`asarray`
    and :meth:`aslabels` once per search and stays there; only per-mask
    fitness values and logits for prediction come back as NumPy arrays.

    Every backend gives the same loss as the NumPy reference to 1e-5
    (relative) on the same masks and batch.
    """

    name: ClassVar[str]
    #: The array module of this backend's device arrays (CuPy on the GPU backend).
    xp = np

    def __init__(self, network: FrozenNetwork) -> None:
        self.network = network

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_params64", None)  # a cache, made again when needed
        return state

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """``None`` if this backend can run here, else one line saying why not."""
        return None

    def asarray(self, X: np.ndarray):
        """Features as this backend's float32 device array (C order)."""
        return np.ascontiguousarray(X, dtype=np.float32)

    def aslabels(self, y: np.ndarray):
        """Integer labels as this backend's device array."""
        return np.ascontiguousarray(y, dtype=np.int64)

    def asweights(self, w: np.ndarray):
        """Sample weights as this backend's float64 device array."""
        return np.ascontiguousarray(w, dtype=np.float64)

    def take(self, array, index: np.ndarray):
        """Rows ``index`` of a device array (a minibatch)."""
        return array[index]

    def to_host(self, array) -> np.ndarray:
        """A device array of this backend (features, labels, weights) as a NumPy array."""
        return np.asarray(array)

    def is_device_array(self, obj) -> bool:
        """Whether ``obj`` is an array on this backend's device that is not a NumPy array.

        A checkpoint stores such an array on the host (:meth:`to_host`) and
        moves it back with :meth:`to_device`. The NumPy reference has none.
        """
        return False

    def to_device(self, array: np.ndarray):
        """A host array as an array on this backend's device, of the same dtype and shape."""
        return array

    @abc.abstractmethod
    def evaluate(self, population: MaskPopulation, X, y, w=None) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy of every mask of ``population`` on ``(X, y)``.

        ``w`` (optional, float64 device array of shape ``(B,)``) weights each
        sample: the results are the means of ``w · loss`` and ``w · hit``, the
        weighted means when the weights average 1 (the
        :class:`~prunetrain.problem.Problem` scales them so).

        Returns
        -------
        loss, accuracy : ndarray of shape (P,), float64, on the host
        """

    @abc.abstractmethod
    def logits(self, mask: Sequence[np.ndarray], X) -> np.ndarray:
        """Logits ``(B, C)`` of one mask on ``X``, float32 on the host."""

    # --- mask sampling (the estimation-of-distribution searchers) ----------------------
    def gumbel_top_k(
        self, theta: np.ndarray, k: int, size: int, rng: np.random.Generator
    ) -> np.ndarray:
        """``size`` masks keeping exactly ``k`` of ``len(theta)`` weights, on the host (bool).

        The top ``k`` of ``θ + Gumbel`` (:func:`prunetrain.backends.topk.gumbel_top_k`):
        ``rng`` gives one seed per mask, the keys are made and selected on this
        backend's device, and every backend returns the same bits.
        """
        return topk.gumbel_top_k(
            theta, k, size, rng,
            uniforms=self.counter_uniforms, top_k=self.top_k_rows, to_device=self.to_device,
        )  # fmt: skip

    def counter_uniforms(self, seeds: np.ndarray, n: int):
        """Float32 uniforms ``(len(seeds), n)`` on this backend's device (:func:`~prunetrain.backends.topk.counter_uniforms`)."""
        return topk.counter_uniforms(seeds, n)

    def top_k_rows(self, key, k: int) -> np.ndarray:
        """Host boolean array marking the ``k`` largest of each row of ``key`` (host or device), ties to the lowest columns."""
        return topk.top_k_rows(key, k)

    # --- Hebbian statistics (the Hebbian searchers) ------------------------------------
    def hebbian_pass(self, mask: Sequence[np.ndarray], X, y) -> hebbian.HebbianPass:
        """Forward ``mask`` on the batch ``(X, y)`` (device arrays) in float64, kept on the device.

        What the Hebbian statistics of this batch need; its ``loss``,
        ``input_means`` and ``pre_stds`` are on the host
        (:func:`prunetrain.backends.hebbian.hebbian_pass`).
        """
        weights, biases = self._float64_parameters()
        mask = [self.to_device(np.asarray(m, dtype=bool)) for m in mask]
        return hebbian.hebbian_pass(weights, biases, mask, X, y, self.xp, self.to_host)

    def hebbian_competitive(
        self, hpass: hebbian.HebbianPass, layer: int, winners: int | None
    ) -> np.ndarray:
        """Layer ``layer``'s competitive correlation (:func:`~prunetrain.backends.hebbian.competitive_stat`), on the host."""
        stat = hebbian.competitive_stat(
            hpass.inputs[layer], hpass.pres[layer], hpass.weights[layer], winners, self.xp,
            self.winners_take_all,
        )  # fmt: skip
        return self.to_host(stat)

    def winners_take_all(self, z, k: int):
        """The k-WTA indicator of pre-activations ``z`` (:func:`~prunetrain.backends.hebbian.winners_take_all`), on the device."""
        return hebbian.winners_take_all(z, k, self.xp)

    def hebbian_label(
        self, hpass: hebbian.HebbianPass, layer: int, projection: np.ndarray | None = None
    ) -> np.ndarray:
        """Layer ``layer``'s label correlation (:func:`~prunetrain.backends.hebbian.label_stat`), on the host.

        The target is the one-hot label, or its ``projection`` (a host
        ``(n_classes, fan_out)`` array) for a hidden layer.
        """
        n_classes = self.network.spec.layer_sizes[-1]
        fan_out = self.network.shapes[layer][1]
        if projection is None and fan_out != n_classes:
            raise PrunetrainError(
                f"layer {layer} has {fan_out} units, not one per class ({n_classes}): "
                "its label target needs a projection"
            )
        if projection is not None and tuple(projection.shape) != (n_classes, fan_out):
            raise PrunetrainError(
                f"projection has shape {tuple(projection.shape)}, expected "
                f"({n_classes}, {fan_out}) for layer {layer}"
            )
        target = hebbian.label_target(hpass.y, n_classes, projection, self.xp)
        stat = hebbian.label_stat(hpass.inputs[layer], target, hpass.weights[layer], self.xp)
        return self.to_host(stat)

    def hebbian_reward(
        self, hpass: hebbian.HebbianPass, layer: int, noise: np.ndarray, sigma: float
    ) -> np.ndarray:
        """Layer ``layer``'s three-factor update for the perturbation ``±noise`` (:func:`~prunetrain.backends.hebbian.reward_delta`), on the host.

        ``noise`` (host, ``(B, fan_out)``) is drawn by the searcher with
        standard deviation ``sigma``; the two perturbed passes run on the device.
        """
        delta = hebbian.reward_delta(hpass, layer, self.to_device(noise), sigma, self.xp)
        return self.to_host(delta)

    def _float64_parameters(self) -> tuple[list, list | None]:
        """The weights and biases in float64 on this device, made once (for the Hebbian statistics)."""
        params = self.__dict__.get("_params64")
        if params is None:
            net = self.network
            weights = [self.to_device(w.astype(np.float64)) for w in net.weights]
            biases = None
            if net.biases is not None:
                biases = [self.to_device(b.astype(np.float64)) for b in net.biases]
            params = self._params64 = (weights, biases)
        return params

    # --- exact incremental evaluation of weight flips (local search) -------------------
    def flip_state(self, mask: Sequence[np.ndarray], X, y, w=None) -> flips.FlipState:
        """Forward ``mask`` on the batch ``(X, y)`` and cache what :meth:`flip_gains` needs.

        ``w``: sample weights, as for :meth:`evaluate`.
        """
        return flips.build_state(self.network, mask, X, y, w)

    def flip_gains(
        self,
        state: flips.FlipState,
        layer: int,
        rows: np.ndarray,
        cols: np.ndarray,
        rows2: np.ndarray | None = None,
    ) -> np.ndarray:
        """Exact loss change of each move (see :func:`prunetrain.backends.flips.flip_gains`)."""
        return flips.flip_gains(state, layer, rows, cols, rows2)

    def apply_flips(
        self, state: flips.FlipState, layer: int, rows: np.ndarray, cols: np.ndarray
    ) -> None:
        """Flip weights of ``layer`` and update the caches (see :func:`~prunetrain.backends.flips.apply_flips`)."""
        flips.apply_flips(state, layer, rows, cols)

    def warm_up(self, X, y) -> None:
        """Run every kernel once on a few rows of ``(X, y)``, compiling what is compiled lazily.

        The run loop calls this before its clock starts, so a budget measures
        search, not Numba or CUDA compilation. ``X`` and ``y`` are device
        arrays (as :meth:`asarray` makes them); nothing is charged or kept.
        """
        rows = np.arange(min(8, len(y)))
        X, y = self.take(X, rows), self.take(y, rows)
        shapes = self.network.shapes
        mask = [np.add.outer(np.arange(a), np.arange(b)) % 2 == 0 for a, b in shapes]
        population = MaskPopulation.from_masks([mask, [~m for m in mask]], shapes)
        w = self.asweights(np.ones(len(rows)))
        self.evaluate(population, X, y)
        self.evaluate(population, X, y, w)
        self.logits(mask, X)
        self.gumbel_top_k(np.zeros(16), 4, 2, np.random.default_rng(0))
        for dtype in (np.float32, np.float64):  # a sample's keys; a mode's logits
            self.top_k_rows(np.arange(16, dtype=dtype)[None], 4)
        self.winners_take_all(self.to_device(np.arange(16, dtype=np.float64).reshape(2, 8)), 2)
        self.flip_screen(self.flip_state(mask, X, y, w))
        state = self.flip_state(mask, X, y)
        self.flip_screen(state)
        for layer, (fan_in, _) in enumerate(shapes):
            one = np.zeros(1, dtype=np.int64)
            self.flip_gains(state, layer, one, one)
            self.flip_gains(state, layer, one, one, np.full(1, min(1, fan_in - 1), dtype=np.int64))
            self.apply_flips(state, layer, one, one)

    def flip_screen(self, state: flips.FlipState, probe: float = screen.PROBE) -> list[np.ndarray]:
        """First-order loss change of flipping each weight, every layer, from forward probes.

        One ``(fan_in, fan_out)`` array per layer, on the host (see
        :mod:`prunetrain.backends.screen`; about :func:`~prunetrain.backends.screen.screen_cost`
        forward passes). It only screens: confirm a flip with :meth:`flip_gains`.
        """
        return screen.screen_gains(state, screen.probe_responses(state, probe))

    # --- the checks of a batch that the compiled backends make --------------------------

    def _check_features(self, X):
        """``X`` as a device array (:meth:`asarray`), refused unless ``(n_samples, n_inputs)``."""
        X = self.asarray(X)
        d = self.network.spec.layer_sizes[0]
        if X.ndim != 2 or X.shape[1] != d:
            raise PrunetrainError(
                f"features have shape {tuple(X.shape)}, expected (n_samples, {d})"
            )
        return X

    def _check_batch(self, population: MaskPopulation, X, y):
        """``(X, y)`` as device arrays, refused unless they fit each other, the network and ``population``."""
        if [tuple(s) for s in population.shapes] != [tuple(s) for s in self.network.shapes]:
            raise PrunetrainError(
                f"population has layers {population.shapes}, network has {self.network.shapes}"
            )
        X, y = self._check_features(X), self.aslabels(y)
        B = X.shape[0]
        if y.shape != (B,):
            raise PrunetrainError(f"labels have shape {tuple(y.shape)}, expected ({B},)")
        if B == 0:
            raise PrunetrainError("cannot evaluate masks on an empty batch")
        return X, y

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.network!r})"
