"""The CuPy backend: the whole backend interface on one GPU.

Data, weights and local-search caches are CuPy arrays that stay on the device
for the whole search; a population's packed masks (1 bit per weight) are
copied over once per evaluation and expanded there. Only per-mask fitness
values, flip gains and logits for prediction come back to the host.

A population evaluation runs in chunks of masks that fit ``buffer_bytes``:

1. a numba.cuda kernel expands the chunk's packed bits of the first layer into
   ``[W⊙M₁ | … | W⊙M_c]`` (float32, a pruned weight is +0);
2. the first layer of the whole chunk is ONE cuBLAS GEMM over the shared batch,
   ``X (B×d) @ [W⊙M₁ | … ] (d × c·h)``;
3. a kernel adds the bias and applies ReLU in place; each later layer is a
   batched cuBLAS GEMM ``(c, B, h) @ (c, h, h')`` on its own expanded masks;
4. a kernel turns the logits into per-sample cross-entropy (float64) and hits,
   summed per mask in a fixed order (no atomics: results are deterministic).

Local search keeps a :class:`~prunetrain.backends.flips.FlipState` whose
caches are CuPy float64 arrays; the exact flip gains, the cache update of
accepted flips and the forward-probe screen's responses are numba.cuda kernels
(:mod:`prunetrain.backends.cupy.cuda_kernels`).

CuPy imports on machines without a CUDA driver and fails at the first
operation, so whether the GPU is usable is probed once per process
(:func:`gpu_unavailable_reason`): CuPy installed, a device present, a tiny
product computed, a numba.cuda kernel run on CuPy arrays. Neither CuPy nor
numba.cuda is imported until a backend is made or the probe runs; without
CuPy installed the probe costs one module lookup.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from collections.abc import Callable, Sequence

import numpy as np

from prunetrain.backends import flips, screen, topk
from prunetrain.backends.base import Backend, check_labels
from prunetrain.errors import BackendUnavailableError, PrunetrainError
from prunetrain.masks import MaskPopulation, check_mask
from prunetrain.network import FrozenNetwork

#: Float buffers of one evaluation chunk stay under this many bytes of GPU memory.
BUFFER_BYTES = 2 << 30
#: Size of the square float32 GEMM that measures the GPU's own peak.
GPU_GEMM_SIZE = 8192
INSTALL_HINT = "pip install 'prunetrain[gpu]'"


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:197] + "..."


@functools.cache
def gpu_unavailable_reason() -> str | None:
    """``None`` if the CuPy backend can run here, else one line saying why not.

    Probed once per process, in order: CuPy installed (a module lookup,
    without importing it), CuPy imports, a CUDA device is present, a tiny
    product (cuBLAS) and a compiled kernel run and are right, numba.cuda imports (not simulated) and
    runs a kernel on CuPy arrays. ``gpu_unavailable_reason.cache_clear()``
    probes again.
    """
    try:
        if importlib.util.find_spec("cupy") is None:
            return f"CuPy is not installed ({INSTALL_HINT})"
    except (ImportError, ValueError) as exc:
        return f"CuPy cannot be found ({_one_line(exc)})"
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - any failure means "no GPU backend here"
        return f"CuPy cannot be imported ({_one_line(exc)})"
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001
        return f"CuPy finds no usable CUDA driver or GPU ({_one_line(exc)})"
    if n_devices < 1:
        return "CuPy finds no CUDA GPU (CUDA_VISIBLE_DEVICES may hide them)"
    try:
        # cuBLAS, and a kernel that CuPy compiles at run time (NVRTC): what the backend needs.
        a = cupy.arange(4, dtype=cupy.float32)
        value = float(a @ a) + float(cupy.exp(a - a).sum())
    except Exception as exc:  # noqa: BLE001
        return f"CuPy cannot run on the GPU ({_one_line(exc)})"
    if value != 18.0:
        return f"CuPy computed a wrong result on the GPU ({value} instead of 18)"
    try:
        from prunetrain.backends.cupy import cuda_kernels
    except Exception as exc:  # noqa: BLE001
        return f"numba.cuda cannot be imported ({_one_line(exc)}; {INSTALL_HINT})"
    if cuda_kernels.SIMULATOR:
        return "NUMBA_ENABLE_CUDASIM is set: numba.cuda simulates a GPU and cannot use CuPy arrays"
    try:
        z = cupy.asarray([-1.0, 2.0], dtype=cupy.float32)
        cuda_kernels.bias_relu(z, cupy.ones(2, dtype=cupy.float32))
        values = cupy.asnumpy(z).tolist()
    except Exception as exc:  # noqa: BLE001
        return f"numba.cuda cannot run a kernel on CuPy arrays ({_one_line(exc)})"
    if values != [0.0, 3.0]:
        return f"numba.cuda computed a wrong result on CuPy arrays ({values})"
    return None


class CupyBackend(Backend):
    """Population forward, loss and local-search flip gains on one CUDA GPU.

    cuBLAS (through CuPy) runs the GEMMs in float32 (TF32 stays off unless
    ``CUPY_TF32=1`` is set, which would break the 1e-5 agreement);
    numba.cuda kernels expand packed masks and fuse bias + ReLU and the
    float64 loss. Losses match the NumPy reference to 1e-5 relative;
    accuracies match except where float rounding breaks a near tie.

    Parameters
    ----------
    network : FrozenNetwork
        The network whose masks are evaluated; its weights are copied to the
        GPU once.
    buffer_bytes : int, optional
        GPU memory budget of one evaluation chunk's float buffers (default
        :data:`BUFFER_BYTES`, 2 GiB); a chunk always holds at least one mask.
    array_module : module, optional
        ``cupy`` (the default). ``numpy`` runs the same code with the kernels
        under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``): that is
        how this backend is tested on machines without a GPU, slowly.

    Raises
    ------
    BackendUnavailableError
        No usable GPU here (see :func:`gpu_unavailable_reason`).

    Notes
    -----
    The :class:`~prunetrain.backends.flips.FlipState` of this backend holds
    CuPy float64 arrays for the caches (``masked``, ``acts_t``, ``pre``,
    ``probs``, ``log_probs``, ``y``, ``sample_losses``, ``biases``) and NumPy
    arrays on the host for ``mask`` (bool, which searchers index with NumPy)
    and ``weights`` (float64, for the signed coefficient of each flip);
    ``state.loss`` is a host float.
    """

    name = "cupy"

    def __init__(
        self,
        network: FrozenNetwork,
        *,
        buffer_bytes: int = BUFFER_BYTES,
        array_module=None,
    ) -> None:
        super().__init__(network)
        if int(buffer_bytes) < 1:
            raise PrunetrainError(f"buffer_bytes must be positive, got {buffer_bytes!r}")
        self.buffer_bytes = int(buffer_bytes)
        if array_module is None:
            reason = self.unavailable_reason()
            if reason is not None:
                raise BackendUnavailableError(f"backend 'cupy' cannot run here: {reason}")
            import cupy as array_module
        from prunetrain.backends.cupy import cuda_kernels

        if array_module is np and not cuda_kernels.SIMULATOR:
            raise PrunetrainError(
                "CupyBackend(array_module=numpy) runs only under NUMBA_ENABLE_CUDASIM=1"
            )
        self._kernels = cuda_kernels
        self._setup(array_module)

    def _setup(self, xp) -> None:
        self.xp = xp
        self._asnumpy = getattr(xp, "asnumpy", np.asarray)
        net = self.network
        # Copies (xp.array): the network's arrays are read-only, device arrays are not.
        self._w32 = [xp.array(np.ravel(w), dtype=xp.float32) for w in net.weights]
        if net.biases is None:  # no biases: add zeros, which is exact, with the same kernels
            self._b32 = [xp.zeros(b, dtype=xp.float32) for _, b in net.shapes]
            self._b64 = None
        else:
            self._b32 = [xp.array(b, dtype=xp.float32) for b in net.biases]
            self._b64 = [xp.array(b, dtype=xp.float64) for b in net.biases]
        self._host_w64 = [np.array(w, dtype=np.float64) for w in net.weights]
        self._w64 = [xp.array(w) for w in self._host_w64]

    def __getstate__(self) -> dict:
        return {"network": self.network, "buffer_bytes": self.buffer_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["network"], buffer_bytes=state["buffer_bytes"])

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return gpu_unavailable_reason()

    # --- data on the device -----------------------------------------------------------

    def _device(self, a, dtype):
        a = self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))
        # The simulator copies every kernel argument back: NumPy arrays must be writable.
        if isinstance(a, np.ndarray) and not a.flags.writeable:
            a = a.copy()
        return a

    def asarray(self, X):
        return self._device(X, self.xp.float32)

    def aslabels(self, y):
        """Labels as a device int64 array; labels from the host are checked against the classes."""
        if hasattr(y, "__cuda_array_interface__"):  # already on the device: checked on the way in
            return self._device(y, self.xp.int64)
        y = np.asarray(y, dtype=np.int64)
        check_labels(y, self.network.spec.layer_sizes[-1])
        return self._device(y, self.xp.int64)

    def asweights(self, w):
        return self._device(w, self.xp.float64)

    def take(self, array, index: np.ndarray):
        return array[self.xp.asarray(index)]

    def to_host(self, array) -> np.ndarray:
        """A CuPy array copied to the host (``cupy.asnumpy``); NumPy arrays as they are."""
        return self._asnumpy(array)

    def is_device_array(self, obj) -> bool:
        """Whether ``obj`` is a CuPy array (never, under the CUDA simulator, where they are NumPy's)."""
        return self.xp is not np and isinstance(obj, self.xp.ndarray)

    def to_device(self, array: np.ndarray):
        return self.xp.asarray(array)

    # --- mask sampling -----------------------------------------------------------------

    def counter_uniforms(self, seeds: np.ndarray, n: int):
        """The uniforms of mask sampling on the GPU (a numba.cuda kernel), float32 ``(len(seeds), n)``."""
        out = self.xp.empty((len(seeds), n), dtype=self.xp.float32)
        self._kernels.counter_uniforms(self._device(seeds, self.xp.uint64), out)
        return out

    def top_k_rows(self, key, k: int) -> np.ndarray:
        """The top ``k`` of each row selected on the GPU (:func:`~prunetrain.backends.topk.top_k_rows` on CuPy arrays)."""
        return self.to_host(topk.top_k_rows(self.xp.asarray(key), k, self.xp))

    def _float64_parameters(self) -> tuple[list, list | None]:
        """The float64 weights and biases already on the GPU (the Hebbian statistics use them)."""
        return self._w64, self._b64

    # --- population evaluation --------------------------------------------------------

    def evaluate(self, population: MaskPopulation, X, y, w=None) -> tuple[np.ndarray, np.ndarray]:
        xp, kernels = self.xp, self._kernels
        X, y = self._check_batch(population, X, y)
        B = X.shape[0]
        spec = self.network.spec
        P = len(population)
        per_mask = 4 * (spec.n_weights + B * sum(spec.layer_sizes[1:])) + 12 * B
        chunk = max(1, min(P, self.buffer_bytes // per_mask))
        packed = [xp.array(p) for p in population.packed]  # the only per-call upload: bits
        loss = xp.empty(P, dtype=xp.float64)
        acc = xp.empty(P, dtype=xp.float64)
        for start in range(0, P, chunk):
            count = min(chunk, P - start)
            logits = self._population_logits(packed, start, count, X)
            losses = xp.empty((count, B), dtype=xp.float64)
            hits = xp.empty((count, B), dtype=xp.int32)
            kernels.cross_entropy_rows(logits, self._b32[-1], y, losses, hits)
            if w is not None:
                losses *= w[None, :]
                hits = hits * w[None, :]
            kernels.sum_rows(losses, B, loss[start : start + count])
            kernels.sum_rows(hits, B, acc[start : start + count])
        return self.to_host(loss), self.to_host(acc)

    def _population_logits(self, packed, start: int, count: int, X):
        """Logits before the output bias of masks ``start .. start+count``, float32 ``(count, B, C)``."""
        xp, kernels = self.xp, self._kernels
        shapes = self.network.shapes
        last = len(shapes) - 1
        B = X.shape[0]
        a = X
        for layer, (fan_in, fan_out) in enumerate(shapes):
            w = xp.empty(count * fan_in * fan_out, dtype=xp.float32)
            if layer == 0:
                kernels.expand_wide(packed[0], start, count, fan_out, self._w32[0], w)
                z = xp.matmul(a, w.reshape(fan_in, count * fan_out))  # one GEMM for all masks
                z3 = z.reshape(B, count, fan_out).transpose(1, 0, 2)
            else:
                kernels.expand_stack(packed[layer], start, count, self._w32[layer], w)
                z = xp.matmul(a, w.reshape(count, fan_in, fan_out))  # batched GEMM
                z3 = z
            if layer < last:
                kernels.bias_relu(z.reshape(-1), self._b32[layer])
            a = z3
        return xp.ascontiguousarray(a)

    def logits(self, mask: Sequence[np.ndarray], X) -> np.ndarray:
        shapes = self.network.shapes
        population = MaskPopulation.from_masks([check_mask(mask, shapes)], shapes)
        X = self._check_features(X)
        if X.shape[0] == 0:
            return np.empty((0, self.network.spec.layer_sizes[-1]), dtype=np.float32)
        packed = [self.xp.array(p) for p in population.packed]
        z = self._population_logits(packed, 0, 1, X)[0] + self._b32[-1]
        return np.asarray(self.to_host(z), dtype=np.float32)

    # --- exact incremental evaluation of weight flips ---------------------------------

    def flip_state(self, mask: Sequence[np.ndarray], X, y, w=None) -> flips.FlipState:
        """Forward ``mask`` on ``(X, y)`` in float64 on the GPU and cache what flip gains need."""
        xp = self.xp
        mask = [np.array(m, dtype=bool) for m in check_mask(mask, self.network.shapes)]
        state = flips.FlipState(
            weights=self._host_w64,  # host: signed coefficients of flips (never modified)
            biases=self._b64,
            mask=mask,  # host: searchers index it with NumPy
            masked=[w * xp.asarray(m) for w, m in zip(self._w64, mask)],
            acts_t=[xp.ascontiguousarray(xp.asarray(X, dtype=xp.float64).T)],
            pre=[],
            probs=xp.empty(0),
            log_probs=xp.empty(0),
            y=self.aslabels(y),
            sample_losses=xp.empty(0),
            w=None if w is None else self.asweights(w),
        )
        flips.forward_from(state, 0, xp)
        return state

    def flip_gains(self, state, layer: int, rows, cols, rows2=None) -> np.ndarray:
        """Exact flip gains by the numba.cuda kernels; returns float64 on the host."""
        xp, kernels = self.xp, self._kernels
        moves = flips.pack_moves(state, layer, rows, cols, rows2)
        n_moves, B = len(moves.rows), state.batch_size
        if n_moves == 0:
            return np.empty(0)
        moves = [xp.asarray(a) for a in moves]
        out = xp.empty(n_moves, dtype=xp.float64)
        if layer == state.n_layers - 1:
            lanes, _ = kernels.plan_gains(n_moves, B, 1)
            partial = xp.empty((n_moves, lanes), dtype=xp.float64)
            kernels.output_gains(
                state.acts_t[layer], state.probs, state.log_probs, state.y, *moves, partial, out,
                state.w,
            )  # fmt: skip
            return self.to_host(out)
        downstream, widest = flips.flat_downstream(state, layer, xp)
        lanes, workers = kernels.plan_gains(n_moves, B, widest)
        kernels.hidden_gains(
            state.acts_t[layer],
            xp.ascontiguousarray(state.pre[layer].T),
            state.probs,
            state.log_probs,
            state.y,
            *moves,
            *downstream,
            xp.empty((workers, 2 * widest), dtype=xp.float64),
            xp.empty((n_moves, lanes), dtype=xp.float64),
            out,
            state.w,
        )
        return self.to_host(out)

    def flip_screen(self, state, probe: float | None = None) -> list[np.ndarray]:
        """The forward-probe screen on the GPU; only the gains come back (float32, on the host).

        Responses by the numba.cuda kernels (one thread per probed sample and
        unit, its push carried exactly through every later layer), scores by
        one float64 cuBLAS GEMM per layer, ``Aᵀ R / B`` (``R`` times the
        sample weights, if any); the same maths as :mod:`prunetrain.backends.screen`.
        """
        xp, kernels = self.xp, self._kernels
        probe = screen.PROBE if probe is None else probe
        last = state.n_layers - 1
        out = []
        for layer, eps in enumerate(screen.probe_sizes(state, probe)):
            z = state.pre[layer]
            R = xp.empty(z.shape, dtype=xp.float64)
            if layer == last:
                kernels.output_responses(state.probs, state.log_probs, state.y, eps, R)
            else:
                downstream, widest = flips.flat_downstream(state, layer, xp)
                scratch = xp.empty(
                    (kernels.plan_workers(z.size, widest), 2 * widest), dtype=xp.float64
                )
                kernels.hidden_responses(
                    z, eps, state.probs, state.log_probs, state.y, *downstream, scratch, R
                )
            if state.w is not None:  # the weighted mean over samples, as the loss takes it
                R *= state.w[:, None]
            slope = (state.acts_t[layer] @ R) / state.batch_size
            # The flip's signed weight: -w for a kept weight, +w for a pruned one (exact).
            coef = self._w64[layer] - 2.0 * state.masked[layer]
            out.append(self.to_host((coef * slope).astype(xp.float32)))
        return out

    def apply_flips(self, state, layer: int, rows, cols) -> None:
        """Flip weights of ``layer``: mask on the host, caches on the GPU (:func:`flips.apply_flips`)."""
        flips.apply_flips(state, layer, rows, cols, self.xp, self._kernels.add_columns)


# --- the GPU's own peak, for `prunetrain bench` ----------------------------------------


def gpu_sgemm_peak(size: int = GPU_GEMM_SIZE, seed: int = 0) -> Callable[[], float]:
    """A timer for one ``size × size`` float32 cuBLAS GEMM; it returns the GFLOP/s of one call.

    The call is timed from the host with the device synchronised before and
    after, as a backend's evaluation is (its results come back to the host).
    """
    import cupy

    rng = cupy.random.RandomState(seed)
    a = rng.standard_normal((size, size), dtype=cupy.float32)
    b = rng.standard_normal((size, size), dtype=cupy.float32)
    out = cupy.empty((size, size), dtype=cupy.float32)
    device = cupy.cuda.Device()
    cupy.matmul(a, b, out=out)  # warm up: cuBLAS handle and kernels loaded
    device.synchronize()

    def run() -> float:
        device.synchronize()
        t = time.perf_counter()
        cupy.matmul(a, b, out=out)
        device.synchronize()
        return 2.0 * size**3 / (time.perf_counter() - t) / 1e9

    return run


def gpu_info() -> dict:
    """The GPU's name, memory, compute capability, and the CUDA and library versions."""
    import cupy

    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    name = props.get("name", b"?")
    info = {
        "name": name.decode() if isinstance(name, bytes) else str(name),
        "memory_gib": round(props.get("totalGlobalMem", 0) / 2**30, 1),
        "compute_capability": device.compute_capability,
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
        "cupy": cupy.__version__,
    }
    try:
        import numba.cuda

        info["numba_cuda"] = getattr(numba.cuda, "implementation", "?")
    except Exception:  # noqa: BLE001 - a fact to report, not an error
        info["numba_cuda"] = None
    return info
