"""The Numba backend: packed masks expanded by Numba kernels, GEMMs in BLAS, fused loss.

A population forward runs as independent *work items*, each a chunk of masks
on a block of rows. One item:

1. expands its masks' packed bits straight into float32 buffers (a Numba
   kernel, one bit → the weight or +0.0, no bool intermediate);
2. runs the first layer of all its masks as ONE sgemm over the shared batch,
   ``X (b×d) @ [W⊙M₁ | … | W⊙M_c] (d × c·h)``;
3. fuses bias and ReLU in place (a Numba kernel);
4. runs each later layer as a batched sgemm ``(c, b, h) @ (c, h, h')``;
5. reduces the logits to per-mask summed cross-entropy and hit counts in one
   fused log-softmax kernel (float64 accumulation).

Items run on one worker thread per core, each with single-threaded BLAS and
``nogil`` kernels on buffers it owns. The two cores then never alternate
between a BLAS thread pool and a Numba parallel region (whose spinning
threads slow each other down on two cores), and no item waits on a barrier.
The items are planned for the machine's cores, not the worker count, and BLAS
always runs on one thread, so the losses are the same floats whatever
``NUMBA_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` say.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from prunetrain.backends import screen
from prunetrain.backends.base import Backend, check_labels
from prunetrain.backends.numba import flip_kernels, hebbian_kernels, screen_kernels, topk_kernels
from prunetrain.backends.numba.workers import WORKERS, default_workers
from prunetrain.errors import PrunetrainError
from prunetrain.masks import MaskPopulation
from prunetrain.network import FrozenNetwork
from prunetrain.threads import cpu_cores, one_blas_thread

# Float buffers of all workers together stay under this many bytes.
BUFFER_BYTES = 1 << 30
# A work item's buffers aim at this size: big enough that the first-layer GEMM
# is wide, small enough that an item's data stays near the cache.
ITEM_BYTES = 32 << 20
# Below this many FLOPs an evaluation runs in the calling thread.
SMALL_FLOPS = 20_000_000

# _BIT_LUT[byte, u] is all ones where bit u of byte is set, else 0: ANDed with a
# float32's bits it keeps the weight or gives exactly +0.0.
_BIT_LUT = (((np.arange(256)[:, None] >> np.arange(8)) & 1) * 0xFFFFFFFF).astype(np.uint32)


# --- kernels -----------------------------------------------------------------------
# Every index below is a range variable into a slice: a computed signed index
# makes Numba check for negative indices, which stops LLVM vectorising.


@njit(cache=True, nogil=True, fastmath=False, inline="always")
def _expand_run(bits, k0, src, dst, lut):  # pragma: no cover - compiled
    """``dst[j] = src[j]`` where bit ``k0 + j`` of ``bits`` is set, else +0 (uint32 views)."""
    n = src.shape[0]
    head = min(n, (8 - (k0 & 7)) & 7)
    for j in range(head):
        k = k0 + j
        dst[j] = src[j] & lut[bits[k >> 3], k & 7]
    full = (n - head) >> 3
    s = src[head:]
    d = dst[head:]
    b = bits[(k0 + head) >> 3 :]
    for t in range(full):
        m = lut[b[t]]
        for u in range(8):
            d[8 * t + u] = s[8 * t + u] & m[u]
    for j in range(head + 8 * full, n):
        k = k0 + j
        dst[j] = src[j] & lut[bits[k >> 3], k & 7]


@njit(cache=True, nogil=True, fastmath=False)
def _expand_wide(packed, start, count, fan_out, weights, out, lut):  # pragma: no cover
    """Masks ``start .. start+count`` of one layer as ``[W⊙M₁ | … ]``, flat ``(fan_in, count·fan_out)``."""
    fan_in = weights.shape[0] // fan_out
    for i in range(fan_in):
        src = weights[i * fan_out : (i + 1) * fan_out]
        for q in range(count):
            o = (i * count + q) * fan_out
            _expand_run(packed[start + q], i * fan_out, src, out[o : o + fan_out], lut)


@njit(cache=True, nogil=True, fastmath=False)
def _expand_stack(packed, start, count, weights, out, lut):  # pragma: no cover
    """Masks ``start .. start+count`` of one layer as ``W⊙M``, flat ``(count, fan_in, fan_out)``."""
    n = weights.shape[0]
    for q in range(count):
        _expand_run(packed[start + q], 0, weights, out[q * n : (q + 1) * n], lut)


@njit(cache=True, nogil=True, fastmath=False)
def _bias_relu(z, bias):  # pragma: no cover
    """In place ``z = max(z + bias, 0)`` over a flat array whose last axis is ``bias``'s (no bias if empty)."""
    h = bias.shape[0]
    if h == 0:
        for k in range(z.shape[0]):
            v = z[k]
            z[k] = v if v > np.float32(0.0) else np.float32(0.0)
        return
    for r in range(z.shape[0] // h):
        seg = z[r * h : (r + 1) * h]
        for j in range(h):
            v = seg[j] + bias[j]
            seg[j] = v if v > np.float32(0.0) else np.float32(0.0)


@njit(cache=True, nogil=True, fastmath=False)
def _cross_entropy_sums(logits, bias, y, w, loss_sum, hits):  # pragma: no cover
    """Per mask of ``logits (c, b, C)``: summed cross-entropy (float64) and arg-max hits,
    each sample's weighted by ``w``.

    Logits get the bias in float32 (as the reference does) and the
    log-softmax in float64; the arg-max takes the first index on ties.
    """
    count, n_rows, n_classes = logits.shape
    has_bias = bias.shape[0] > 0
    row = np.empty(n_classes, dtype=np.float64)
    for q in range(count):
        total = 0.0
        hit = 0.0
        for r in range(n_rows):
            for c in range(n_classes):
                v = logits[q, r, c]
                if has_bias:
                    v = v + bias[c]
                row[c] = np.float64(v)
            best = row[0]
            arg = 0
            for c in range(1, n_classes):
                if row[c] > best:
                    best = row[c]
                    arg = c
            s = 0.0
            for c in range(n_classes):
                s += np.exp(row[c] - best)
            label = y[r]
            total += w[r] * (np.log(s) - (row[label] - best))
            if arg == label:
                hit += w[r]
        loss_sum[q] = total
        hits[q] = hit


# --- planning ----------------------------------------------------------------------


def plan_items(
    n_masks: int,
    n_rows: int,
    n_weights: int,
    act_per_row: int,
    n_workers: int,
    buffer_bytes: int = BUFFER_BYTES,
    item_bytes: int | None = None,
    min_items: int | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split ``n_masks × n_rows`` into mask chunks and row blocks.

    One item (a chunk of ``c`` masks on a block of ``b`` rows) needs
    ``4·c·(n_weights + b·act_per_row)`` bytes of float buffers; each worker
    holds one item at a time. Items aim at ``item_bytes`` and together stay
    under ``buffer_bytes`` (but always hold at least one mask and one row).
    There are at least ``min_items`` (default ``n_workers``) items when the
    work allows it, and a whole number of rounds of ``n_workers`` items where
    the masks alone make that many.

    Returns
    -------
    chunks, blocks : lists of ``(start, count)``
        Masks and rows of the items (every chunk with every block).
    """
    item_bytes = ITEM_BYTES if item_bytes is None else item_bytes
    min_items = n_workers if min_items is None else min_items
    per_worker = max(4, buffer_bytes // max(1, n_workers)) // 4  # floats
    rows = n_rows
    if n_weights + rows * act_per_row > per_worker:
        rows = max(1, (per_worker - n_weights) // max(1, act_per_row))
    target = min(per_worker, max(4, item_bytes) // 4)
    per_mask = n_weights + rows * act_per_row
    n_chunks = math.ceil(n_masks / max(1, min(n_masks, target // per_mask)))
    if n_chunks >= min_items > 1:  # a whole number of rounds keeps the workers even
        n_chunks = min(n_masks, math.ceil(n_chunks / n_workers) * n_workers)
    n_blocks = math.ceil(n_rows / rows)
    if n_chunks * n_blocks < min_items:
        n_blocks = min(n_rows, math.ceil(min_items / n_chunks))
    chunk = math.ceil(n_masks / n_chunks)
    block = math.ceil(n_rows / n_blocks)
    chunks = [(s, min(chunk, n_masks - s)) for s in range(0, n_masks, chunk)]
    blocks = [(s, min(block, n_rows - s)) for s in range(0, n_rows, block)]
    return chunks, blocks


class _Item(NamedTuple):
    """Masks ``start .. start+count`` on rows ``row0 .. row0+n_rows`` (block number ``block``)."""

    start: int
    count: int
    block: int
    row0: int
    n_rows: int


class _Workspace:
    """One worker's reusable float32 buffers: expanded weights and activations."""

    def __init__(self) -> None:
        self.weights = np.empty(0, dtype=np.float32)
        self.acts = np.empty(0, dtype=np.float32)

    def reserve(self, n_weights: int, n_acts: int) -> None:
        """Grow the buffers to hold at least this many floats (they never shrink)."""
        if self.weights.size < n_weights:
            self.weights = np.empty(n_weights, dtype=np.float32)
        if self.acts.size < n_acts:
            self.acts = np.empty(n_acts, dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return self.weights.nbytes + self.acts.nbytes


class NumbaBackend(Backend):
    """Population forward on the CPU: Numba kernels around BLAS GEMMs.

    Masks stay packed (1 bit per weight); a chunk of masks is expanded into
    float32 buffers that each worker thread owns and reuses across calls.
    Chunks are sized so that all workers' buffers together stay under
    ``buffer_bytes`` (default :data:`BUFFER_BYTES`, 1 GiB), never P full float
    copies of the network at once unless they fit; an item always holds at
    least one mask and one row. Losses match the NumPy reference to 1e-5
    relative; accuracies match except where float rounding breaks a near tie.

    Parameters
    ----------
    network : FrozenNetwork
        The network whose masks are evaluated.
    buffer_bytes : int, optional
        Budget of all float buffers together.
    n_workers : int, optional
        Worker threads (default: ``numba.get_num_threads()``, one per core).

    Notes
    -----
    While it evaluates, BLAS is capped at one thread per call, process-wide
    (:func:`prunetrain.threads.one_blas_thread`), so that the workers never
    oversubscribe the cores. The work is split for the machine's cores, not
    for the workers (unless there are more workers than cores), so any
    ``n_workers`` up to the core count gives the same losses to the last bit.
    One backend runs one evaluation at a time; concurrent calls wait their turn.
    Compiled kernels are cached on disk (``cache=True``): only the first call
    on a machine pays for compilation.
    """

    name = "numba"

    def __init__(
        self,
        network: FrozenNetwork,
        *,
        buffer_bytes: int = BUFFER_BYTES,
        n_workers: int | None = None,
    ) -> None:
        super().__init__(network)
        if int(buffer_bytes) < 1:
            raise PrunetrainError(f"buffer_bytes must be positive, got {buffer_bytes!r}")
        self.buffer_bytes = int(buffer_bytes)
        self.n_workers = default_workers() if n_workers is None else int(n_workers)
        if self.n_workers < 1:
            raise PrunetrainError(f"n_workers must be at least 1, got {n_workers!r}")
        self._setup()

    def _setup(self) -> None:
        net = self.network
        # Writable uint32 copies: the expansion kernels AND bits into the float bits.
        self._weight_bits = [
            np.array(w, dtype=np.float32).view(np.uint32).ravel() for w in net.weights
        ]
        if net.biases is None:
            self._biases = [np.empty(0, dtype=np.float32)] * net.spec.n_layers
        else:
            self._biases = [np.array(b, dtype=np.float32) for b in net.biases]
        self._workspaces = [_Workspace() for _ in range(self.n_workers)]
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {
            "network": self.network,
            "buffer_bytes": self.buffer_bytes,
            "n_workers": self.n_workers,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def aslabels(self, y) -> np.ndarray:
        """Integer labels, checked against the classes (the loss kernel reads ``logits[y]``)."""
        y = super().aslabels(y)
        check_labels(y, self.network.spec.layer_sizes[-1])
        return y

    def buffer_nbytes(self) -> int:
        """Bytes held now by the workers' reusable float buffers."""
        return sum(ws.nbytes for ws in self._workspaces)

    # --- public interface -----------------------------------------------------------

    def evaluate(self, population: MaskPopulation, X, y, w=None) -> tuple[np.ndarray, np.ndarray]:
        X, y = self._check_batch(population, X, y)
        P, B = len(population), X.shape[0]
        w = np.ones(B) if w is None else np.ascontiguousarray(w, dtype=np.float64)
        if w.shape != (B,):
            raise PrunetrainError(f"sample weights have shape {w.shape}, expected ({B},)")
        chunks, blocks, workers = self._plan(P, B)
        # One row per block of rows: every item writes its own cells, no locks.
        loss = np.zeros((len(blocks), P))
        hits = np.zeros((len(blocks), P))
        items = [_Item(*c, k, *b) for k, b in enumerate(blocks) for c in chunks]
        self._run(items, workers, population.packed, (X, w), y, loss, hits, None)
        return loss.sum(axis=0) / B, hits.sum(axis=0) / B

    # Local search alternates a forward pass (BLAS) with parallel Numba kernels.
    # OpenBLAS threads keep spinning after a call and slow the Numba threads that
    # follow, so the cache updates run on single-threaded BLAS (measured on
    # 784-300-100-10, B=1024: 144 ms per accumulate step against 185 ms).

    def flip_state(self, mask: Sequence[np.ndarray], X, y, w=None):
        with one_blas_thread():
            return super().flip_state(mask, X, y, w)

    def apply_flips(self, state, layer: int, rows, cols) -> None:
        with one_blas_thread():
            super().apply_flips(state, layer, rows, cols)

    def flip_gains(self, state, layer: int, rows, cols, rows2=None) -> np.ndarray:
        """Exact flip gains by the Numba kernels of :mod:`~prunetrain.backends.numba.flip_kernels`."""
        return flip_kernels.flip_gains(state, layer, rows, cols, rows2)

    def flip_screen(self, state, probe: float | None = None) -> list[np.ndarray]:
        """The screen by the Numba kernels of :mod:`~prunetrain.backends.numba.screen_kernels` (float32 out)."""
        probe = screen.PROBE if probe is None else probe
        with one_blas_thread():
            return screen_kernels.screen_gains(state, screen_kernels.probe_responses(state, probe))

    def counter_uniforms(self, seeds: np.ndarray, n: int) -> np.ndarray:
        """The uniforms of mask sampling by the kernel of :mod:`~prunetrain.backends.numba.topk_kernels`."""
        return topk_kernels.uniforms(seeds, n)

    def top_k_rows(self, key, k: int) -> np.ndarray:
        """The top ``k`` of each row by the kernel of :mod:`~prunetrain.backends.numba.topk_kernels`."""
        return topk_kernels.select_top_k(key, k)

    def winners_take_all(self, z: np.ndarray, k: int) -> np.ndarray:
        """The k-WTA indicator of the Hebbian statistics by the kernel of :mod:`~prunetrain.backends.numba.hebbian_kernels`.

        The statistics' GEMMs stay in BLAS, in the reference's order, so
        this backend's Hebbian searches give the NumPy backend's bits.
        """
        return hebbian_kernels.winners_take_all(z, k)

    def logits(self, mask: Sequence[np.ndarray], X) -> np.ndarray:
        population = MaskPopulation.from_masks([mask], self.network.shapes)
        X = self._check_features(X)
        out = np.empty((X.shape[0], self.network.spec.layer_sizes[-1]), dtype=np.float32)
        if X.shape[0] == 0:
            return out
        chunks, blocks, workers = self._plan(1, X.shape[0])
        items = [_Item(0, 1, k, *b) for k, b in enumerate(blocks)]
        self._run(items, workers, population.packed, (X, None), None, None, None, out)
        return out

    # --- internals ------------------------------------------------------------------

    def _plan(self, n_masks: int, n_rows: int):
        """Mask chunks, row blocks, and how many workers run them.

        The split is planned for the machine's cores, not for the worker
        threads: a chunk's GEMM shapes and a mask's sum over row blocks then
        do not change with ``NUMBA_NUM_THREADS``, and neither do the losses.
        """
        spec = self.network.spec
        small = 2 * n_masks * n_rows * spec.n_weights < SMALL_FLOPS
        # Each of up to `slots` workspaces may be in use: each gets its share of the budget.
        slots = max(self.n_workers, cpu_cores())
        chunks, blocks = plan_items(
            n_masks,
            n_rows,
            spec.n_weights,
            sum(spec.layer_sizes[1:]),
            slots,
            self.buffer_bytes,
            min_items=1 if small else slots,
        )
        workers = 1 if small else self.n_workers
        return chunks, blocks, min(workers, len(chunks) * len(blocks))

    def _run(self, items, workers, packed, X, y, loss, hits, logits_out) -> None:
        spec = self.network.spec
        packed = [p if p.flags.writeable else p.copy() for p in packed]
        count = max(item.count for item in items)
        rows = max(item.n_rows for item in items)
        todo = iter(items)
        take_lock = threading.Lock()

        def work(slot: int) -> None:
            ws = self._workspaces[slot]
            ws.reserve(count * spec.n_weights, count * rows * sum(spec.layer_sizes[1:]))
            while True:
                with take_lock:
                    item = next(todo, None)
                if item is None:
                    return
                self._run_item(ws, item, packed, X, y, loss, hits, logits_out)

        with self._lock, one_blas_thread():
            WORKERS.run(workers, work)

    def _run_item(self, ws: _Workspace, item: _Item, packed, Xw, y, loss, hits, logits_out) -> None:
        start, count, block, r0, n_rows = item
        X, w = Xw
        spec = self.network.spec
        shapes = spec.shapes
        last = spec.n_layers - 1
        wbuf, abuf = ws.weights, ws.acts
        a = X[r0 : r0 + n_rows]
        w_off = a_off = 0
        for layer, (fan_in, fan_out) in enumerate(shapes):
            n_w = count * fan_in * fan_out
            n_z = count * n_rows * fan_out
            w_flat = wbuf[w_off : w_off + n_w]
            if logits_out is not None and layer == last:
                z_flat = logits_out[r0 : r0 + n_rows].reshape(-1)
            else:
                z_flat = abuf[a_off : a_off + n_z]
            w_off += n_w
            a_off += n_z
            if layer == 0:
                _expand_wide(
                    packed[0],
                    start,
                    count,
                    fan_out,
                    self._weight_bits[0],
                    w_flat.view(np.uint32),
                    _BIT_LUT,
                )
                z = z_flat.reshape(n_rows, count * fan_out)
                np.matmul(a, w_flat.reshape(fan_in, count * fan_out), out=z)
                z3 = z.reshape(n_rows, count, fan_out).transpose(1, 0, 2)  # (count, rows, fan_out)
            else:
                _expand_stack(
                    packed[layer],
                    start,
                    count,
                    self._weight_bits[layer],
                    w_flat.view(np.uint32),
                    _BIT_LUT,
                )
                z3 = z_flat.reshape(count, n_rows, fan_out)
                np.matmul(a, w_flat.reshape(count, fan_in, fan_out), out=z3)
            bias = self._biases[layer]
            if layer < last:
                _bias_relu(z_flat, bias)
                a = z3
            elif logits_out is not None:
                if bias.size:
                    z_flat.reshape(-1, fan_out)[...] += bias
            else:
                _cross_entropy_sums(
                    z3,
                    bias,
                    y[r0 : r0 + n_rows],
                    w[r0 : r0 + n_rows],
                    loss[block, start : start + count],
                    hits[block, start : start + count],
                )
