"""Local search on exact incremental evaluation: hill climbing, annealing, tabu, steepest, accumulate.

Every searcher here works on one mask. At each step it takes a fresh batch,
caches the mask's activations on it (one forward pass), asks the backend for
the exact loss change of many candidate moves at once (``flip_gains``, a
fraction of a forward pass each) and accepts some of them.

Moves keep the keep rule: under the ``"layer"`` and ``"global"`` rules a move
is a *swap* inside one unit — one weight of unit ``j`` switched on, another of
the same unit switched off — so every layer keeps its count exactly (for the
``"global"`` rule this is stricter than needed); under ``"free"`` a move is a
single flip.

``accumulate`` (the default) differs in how it decides: one flip changes the
mean loss by 1e-5 to 1e-3, below minibatch noise, so instead of acting on one
batch it keeps a pool of candidate flips per layer, adds up each one's exact
loss change over consecutive batches as a decayed average shrunk toward zero,
and flips those whose accumulated evidence says they help. Its moves are
single flips evaluated one by one and accepted in pairs (a kept weight off,
a pruned one on, anywhere in the same layer), so counts stay exact too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from prunetrain.backends.flips import FlipState, flip_cost
from prunetrain.hyperparams import MAX_COUNT, MAX_REPEATS, MAX_SCALE, Choice, Integer, Real
from prunetrain.masks import Mask
from prunetrain.problem import FlipSession
from prunetrain.search.base import Searcher, register

#: Forward passes' worth of candidate moves each layer gets per round by default ...
DEFAULT_WORK = 1.0
#: ... but never fewer candidates than this (or the whole layer, if smaller).
MIN_CANDIDATES = 64


class Moves(NamedTuple):
    """Moves of one layer: move ``k`` flips ``(rows[k], cols[k])`` and, if
    ``rows2`` is given and ``rows2[k] >= 0``, also ``(rows2[k], cols[k])``."""

    rows: np.ndarray
    cols: np.ndarray
    rows2: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, index) -> Moves:
        """The moves at ``index`` (an int array or a slice)."""
        return Moves(
            self.rows[index], self.cols[index], None if self.rows2 is None else self.rows2[index]
        )


class FlipSearcher(Searcher):
    """Shared machinery: the current mask, its cache on the batch, move sampling and costs.

    Parameters
    ----------
    candidates : int, optional
        Candidate moves evaluated per layer per round. By default each layer
        gets about one forward pass worth of candidates (all of a small layer).
    rounds : int
        Rounds of evaluate-and-accept on each batch before the next batch.
    """

    _parameter_constraints = {
        "candidates": Integer(1, MAX_COUNT, optional=True),
        "rounds": Integer(1, MAX_REPEATS),
    }

    def __init__(self, candidates: int | None = None, rounds: int = 1) -> None:
        self.candidates = candidates
        self.rounds = rounds

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        self.mask = [
            m.copy() for m in (init_mask if init_mask is not None else problem.random_mask(rng))
        ]
        self.swaps = problem.rule.fixes_counts
        shapes = problem.shapes
        self.costs = [
            flip_cost(shapes, layer) * (2 if self.swaps else 1) for layer in range(len(shapes))
        ]
        self.counts = [
            min(
                a * b,
                int(self.candidates)
                if self.candidates
                else max(MIN_CANDIDATES, math.ceil(DEFAULT_WORK / c)),
            )
            for (a, b), c in zip(shapes, self.costs)
        ]
        self.session: FlipSession | None = None
        self.best_loss = np.inf
        self.rounds_done = 0

    @property
    def state(self) -> FlipState | None:
        """The current mask's caches on the batch (those of :attr:`session`)."""
        return None if self.session is None else self.session.state

    # --- batches and caches ---------------------------------------------------------
    def new_batch(self) -> FlipSession:
        """Advance to the next batch and cache the current mask on it (one forward pass)."""
        problem = self.problem
        batch = problem.next_batch()
        if self.session is None or problem.schedule == "rotate":
            self.session = problem.flip_session(self.mask, batch)
        self.best_loss = self.session.loss
        return self.session

    def gains(self, layer: int, moves: Moves) -> np.ndarray:
        """Exact loss changes of ``moves`` (the session charges them)."""
        return self.session.gains(layer, *moves)

    def first_accepted(
        self, layer: int, moves: Moves, accept: Callable[[np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, int | None]:
        """Gains of ``moves`` and the first one ``accept`` takes, charged up to it
        (:meth:`~prunetrain.problem.FlipSession.first_accepted`)."""
        return self.session.first_accepted(layer, *moves, accept=accept)

    def accept(self, layer: int, moves: Moves) -> None:
        """Apply ``moves`` (they must touch distinct weights) to the mask and the caches."""
        rows, cols = np.asarray(moves.rows, np.int64), np.asarray(moves.cols, np.int64)
        if moves.rows2 is not None:
            rows2 = np.asarray(moves.rows2, np.int64)
            pair = rows2 >= 0
            rows, cols = np.concatenate([rows, rows2[pair]]), np.concatenate([cols, cols[pair]])
        if len(rows) == 0:
            return
        self.session.apply(layer, rows, cols)
        self.mask[layer] = self.session.mask[layer]
        self.best_loss = self.session.loss

    # --- sampling moves ---------------------------------------------------------------
    def rounds_of_moves(self) -> Iterator[tuple[int, Moves]]:
        """Take a fresh batch, then for each round and layer yield ``(layer, sampled moves)``.

        ``self.rounds_done`` counts the rounds begun so far.
        """
        self.new_batch()
        for _ in range(int(self.rounds)):
            self.rounds_done += 1
            for layer in range(len(self.mask)):
                moves = self.sample_moves(layer, self.counts[layer])
                if len(moves):
                    yield layer, moves

    def sample_moves(self, layer: int, k: int) -> Moves:
        """``k`` random moves of ``layer``: single flips, or swaps inside one unit."""
        a, b = self.problem.shapes[layer]
        flat = self.rng.integers(0, a * b, size=k)
        rows, cols = np.divmod(flat, b)
        if not self.swaps:
            return Moves(rows, cols)
        mask = self.mask[layer]
        rows2 = np.full(k, -1, dtype=np.int64)
        open_ = np.arange(k)
        for _ in range(16):  # rejection sampling: a partner of the other state in the same unit
            if len(open_) == 0:
                break
            trial = self.rng.integers(0, a, size=len(open_))
            ok = mask[trial, cols[open_]] != mask[rows[open_], cols[open_]]
            rows2[open_[ok]] = trial[ok]
            open_ = open_[~ok]
        return Moves(rows, cols, rows2).take(rows2 >= 0)

    def recommend(self) -> tuple[Mask, float]:
        return self.mask, self.best_loss


def _distinct_units(cols, order) -> np.ndarray:
    """Indices from ``order`` whose moves touch a unit no earlier one touched."""
    used_units: set[int] = set()
    chosen = []
    for k in order:
        if int(cols[k]) in used_units:
            continue
        used_units.add(int(cols[k]))
        chosen.append(k)
    return np.array(chosen, dtype=np.int64)


@register
class HillClimber(FlipSearcher):
    """Hill climbing on the current batch.

    Each round samples ``candidates`` moves per layer and accepts, per layer,
    the best improving move (``variant="best"``) or the first improving one in
    random order (``variant="first"``, charged only up to that move).

    Parameters
    ----------
    variant : {"best", "first"}
    candidates, rounds : see :class:`FlipSearcher`.
    """

    name = "hill"
    summary = "hill climbing (best- or first-improvement) on exact flip gains"
    _parameter_constraints = {
        "variant": Choice(("best", "first")),
        **FlipSearcher._parameter_constraints,
    }

    def __init__(
        self, variant: str = "best", candidates: int | None = None, rounds: int = 4
    ) -> None:
        super().__init__(candidates, rounds)
        self.variant = variant

    def step(self) -> None:
        for layer, moves in self.rounds_of_moves():
            if self.variant == "best":
                g = self.gains(layer, moves)
                k = int(np.argmin(g))
                if g[k] >= 0:
                    continue
            else:
                _, k = self.first_accepted(layer, moves, lambda g: g < 0)
                if k is None:
                    continue
            self.accept(layer, moves.take(slice(k, k + 1)))


@register
class Annealer(FlipSearcher):
    """Simulated annealing with Metropolis acceptance.

    Each round, per layer, goes through ``candidates`` random moves in order
    and accepts the first one with ``u < exp(-Δ / T)`` (charged up to it). The
    temperature falls geometrically from ``t_start`` to ``t_end`` over the
    budget. By default ``t_start`` is calibrated from the first round: the
    median |Δ| of the sampled moves, so that a typical worsening move is
    accepted with probability 1/e at the start; ``t_end`` defaults to 1/1000
    of it.

    Parameters
    ----------
    t_start, t_end : float, optional
    candidates, rounds : see :class:`FlipSearcher`.
    """

    name = "anneal"
    summary = "simulated annealing (Metropolis, geometric cooling calibrated from observed deltas)"
    _parameter_constraints = {
        "t_start": Real(0, MAX_SCALE, optional=True),
        "t_end": Real(0, MAX_SCALE, optional=True),
        **FlipSearcher._parameter_constraints,
    }

    def __init__(
        self,
        t_start: float | None = None,
        t_end: float | None = None,
        candidates: int | None = None,
        rounds: int = 4,
    ) -> None:
        super().__init__(candidates, rounds)
        self.t_start = t_start
        self.t_end = t_end

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        self._t0 = None if self.t_start is None else float(self.t_start)
        self._t1 = None if self.t_end is None else float(self.t_end)

    def temperature(self) -> float:
        t0 = self._t0
        t1 = self._t1 if self._t1 is not None else t0 * 1e-3
        return t0 * (t1 / t0) ** self.budget_used()

    def step(self) -> None:
        for layer, moves in self.rounds_of_moves():
            _, k = self.first_accepted(layer, moves, self._metropolis)
            if k is not None:
                self.accept(layer, moves.take(slice(k, k + 1)))

    def _metropolis(self, g: np.ndarray) -> np.ndarray:
        """Which moves Metropolis would accept (``t_start`` calibrated on the first gains)."""
        if self._t0 is None:
            self._t0 = float(np.median(np.abs(g))) or 1e-6
        u = self.rng.random(len(g))
        return u < np.exp(-np.maximum(g, 0.0) / self.temperature())


@register
class TabuSearcher(FlipSearcher):
    """Tabu search: always move to the best sampled non-tabu move, even uphill.

    A weight flipped in the last ``tenure`` rounds is tabu; a tabu move is
    still taken when it improves the loss and beats every allowed move
    (aspiration). On a fixed batch (``"fixed"`` or ``"full"`` schedule) the
    best mask visited is recommended; with rotating batches losses on
    different batches are not comparable, so the current mask is, and
    validation picks among them.

    Parameters
    ----------
    tenure : int
        Rounds a flipped weight stays tabu.
    candidates, rounds : see :class:`FlipSearcher`.
    """

    name = "tabu"
    summary = "tabu search on recently flipped weights, with aspiration"
    _parameter_constraints = {
        "tenure": Integer(1, MAX_COUNT),
        **FlipSearcher._parameter_constraints,
    }

    def __init__(self, tenure: int = 50, candidates: int | None = None, rounds: int = 4) -> None:
        super().__init__(candidates, rounds)
        self.tenure = tenure

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        self.tabu_until = [np.zeros(a * b, dtype=np.int64) for a, b in problem.shapes]
        self.best_visited: tuple[list, float] | None = None

    def recommend(self) -> tuple[Mask, float]:
        if self.problem.schedule != "rotate" and self.best_visited is not None:
            return self.best_visited
        return super().recommend()

    def accept(self, layer: int, moves: Moves) -> None:
        super().accept(layer, moves)
        if self.problem.schedule != "rotate" and (
            self.best_visited is None or self.state.loss < self.best_visited[1]
        ):
            self.best_visited = ([m.copy() for m in self.mask], self.state.loss)

    def step(self) -> None:
        for layer, moves in self.rounds_of_moves():
            g = self.gains(layer, moves)
            now = self.rounds_done
            b = self.problem.shapes[layer][1]
            until = self.tabu_until[layer]
            tabu = until[moves.rows * b + moves.cols] > now
            if moves.rows2 is not None:
                tabu |= until[moves.rows2 * b + moves.cols] > now
            allowed = np.where(tabu, np.inf, g)
            k = int(np.argmin(allowed))
            best_tabu = int(np.argmin(np.where(tabu, g, np.inf)))
            if tabu[best_tabu] and g[best_tabu] < min(0.0, allowed[k]):
                k = best_tabu  # aspiration
            elif not np.isfinite(allowed[k]):
                continue
            until[moves.rows[k] * b + moves.cols[k]] = now + int(self.tenure)
            if moves.rows2 is not None:
                until[moves.rows2[k] * b + moves.cols[k]] = now + int(self.tenure)
            self.accept(layer, moves.take(slice(k, k + 1)))


@register
class SteepestSearcher(FlipSearcher):
    """Block sweeps: accept the best non-conflicting improving moves at once.

    Each round, per layer, sorts the sampled moves by gain and accepts up to
    ``block`` improving ones on distinct units. Gains of moves on different
    units are not exactly additive, so the new loss is checked exactly; if the
    block made it worse than the single best move would have, the block is
    undone and only that move is kept.

    Parameters
    ----------
    block : int
        Most moves accepted per layer per round.
    candidates, rounds : see :class:`FlipSearcher`.
    """

    name = "steepest"
    summary = "block sweeps accepting the best non-conflicting improving flips"
    _parameter_constraints = {
        "block": Integer(1, MAX_COUNT),
        **FlipSearcher._parameter_constraints,
    }

    def __init__(self, block: int = 16, candidates: int | None = None, rounds: int = 4) -> None:
        super().__init__(candidates, rounds)
        self.block = block

    def step(self) -> None:
        for layer, moves in self.rounds_of_moves():
            g = self.gains(layer, moves)
            order = np.argsort(g, kind="stable")
            order = order[g[order] < 0]
            chosen = _distinct_units(moves.cols, order)[: int(self.block)]
            if len(chosen) == 0:
                continue
            before = self.state.loss
            block = moves.take(chosen)
            self.accept(layer, block)
            if len(chosen) > 1 and self.state.loss > before + g[chosen[0]]:
                self.accept(layer, block)  # flipping the same weights again undoes the block
                self.accept(layer, moves.take(chosen[:1]))


@register
class AccumulateSearcher(FlipSearcher):
    """Act on evidence accumulated across batches, not on one batch.

    Per layer a pool of candidate flips is evaluated exactly on every batch.
    Each candidate keeps a decayed sum of its loss changes ``S ← decay·S + Δ``
    and of its observations ``N ← decay·N + 1``; its estimate
    ``S / (N + shrink)`` is shrunk toward zero while it has been seen only a
    few times. Each step, per layer, the candidates with the most negative
    estimates are flipped — in pairs (one off, one on) under the ``"layer"``
    and ``"global"`` rules, so counts stay exact. A flipped candidate keeps
    its evidence with the sign reversed (flipping back would undo the gain);
    candidates whose evidence says they do not help, or that are old, make
    room for fresh random ones.

    Parameters
    ----------
    pool : int, optional
        Candidates per layer (default: about one forward pass worth, all of
        a small layer).
    decay : float
        Per-batch decay of the evidence, in (0, 1).
    shrink : float
        Pseudo-observations of zero change added to every estimate.
    flip_fraction : float
        Most flips per layer per step, as a fraction of the pool (at least one).
    max_age : int
        Steps after which a candidate that was not flipped is replaced.
    """

    name = "accumulate"
    summary = "flips chosen on exact loss changes accumulated over batches"
    _parameter_constraints = {
        "pool": FlipSearcher._parameter_constraints["candidates"],
        "decay": Real(0, 1, closed="neither"),
        "shrink": Real(0, MAX_SCALE, closed="both"),
        "flip_fraction": Real(0, 1),
        "max_age": Integer(1, MAX_COUNT),
    }

    def __init__(
        self,
        pool: int | None = None,
        decay: float = 0.9,
        shrink: float = 2.0,
        flip_fraction: float = 0.05,
        max_age: int = 40,
    ) -> None:
        super().__init__(candidates=pool, rounds=1)
        self.pool = pool
        self.decay = decay
        self.shrink = shrink
        self.flip_fraction = flip_fraction
        self.max_age = max_age

    def setup(self, problem, rng, init_mask=None) -> None:
        self.candidates = self.pool
        super().setup(problem, rng, init_mask)
        shapes = problem.shapes
        # Single flips are evaluated, so a candidate costs one flip, not a swap.
        self.single_costs = [flip_cost(shapes, layer) for layer in range(len(shapes))]
        self.counts = [
            min(
                a * b,
                int(self.pool) if self.pool else max(MIN_CANDIDATES, math.ceil(DEFAULT_WORK / c)),
            )
            for (a, b), c in zip(shapes, self.single_costs)
        ]
        self.members = []  # per layer: flat indices of the pool's weights
        self.in_pool = []
        for (a, b), n in zip(shapes, self.counts):
            in_pool = np.zeros(a * b, dtype=bool)
            members = self._fresh(len(self.members), in_pool, n)
            self.in_pool.append(in_pool)
            self.members.append(members)
        self.S = [np.zeros(n) for n in self.counts]
        self.N = [np.zeros(n) for n in self.counts]
        self.age = [np.zeros(n, dtype=np.int64) for n in self.counts]

    def _fresh(self, layer: int, in_pool: np.ndarray, n: int) -> np.ndarray:
        """Up to ``n`` random weights of ``layer`` not in the pool yet; marks them as in it.

        Under swap rules half are kept weights and half pruned ones (as far as
        possible), so that kept/pruned pairs can be formed.
        """
        free = in_pool.size - int(in_pool.sum())
        n = min(n, free)
        trial = np.empty(0, dtype=np.int64)
        if free > 4 * n:
            trial = np.unique(self.rng.integers(0, in_pool.size, size=8 * n + 16))
            trial = self.rng.permutation(trial[~in_pool[trial]])
        if len(trial) < n:
            trial = self.rng.permutation(np.flatnonzero(~in_pool))
        if self.swaps:
            kept = self.mask[layer].ravel()[trial]
            half = (n + 1) // 2
            take = np.concatenate([trial[kept][:half], trial[~kept][: n - half]])
            if len(take) < n:  # one side ran short: fill up with the other
                rest = trial[~np.isin(trial, take)]
                take = np.concatenate([take, rest[: n - len(take)]])
            trial = take
        chosen = trial[:n].astype(np.int64)
        in_pool[chosen] = True
        return chosen

    def step(self) -> None:
        problem = self.problem
        session = self.new_batch()
        decay, shrink = float(self.decay), float(self.shrink)
        for layer, members in enumerate(self.members):
            b = problem.shapes[layer][1]
            rows, cols = np.divmod(members, b)
            g = session.gains(layer, rows, cols)
            S, N, age = self.S[layer], self.N[layer], self.age[layer]
            S *= decay
            S += g
            N *= decay
            N += 1.0
            age += 1
            estimate = S / (N + shrink)
            chosen = self._choose(layer, members, estimate)
            if len(chosen):
                self._flip(layer, members[chosen])
                S[chosen] = -S[chosen]
                age[chosen] = 0
            # Replace candidates the evidence rules out, and old ones.
            stale = (age >= int(self.max_age)) | ((age >= 5) & (estimate >= 0))
            stale[chosen] = False
            in_pool = self.in_pool[layer]
            if stale.any() and len(members) < in_pool.size:
                idx = np.flatnonzero(stale)
                fresh = self._fresh(layer, in_pool, len(idx))
                idx = idx[: len(fresh)]
                in_pool[members[idx]] = False
                members[idx] = fresh
                S[idx], N[idx], age[idx] = 0.0, 0.0, 0

    def _choose(self, layer: int, members: np.ndarray, estimate: np.ndarray) -> np.ndarray:
        """Pool indices to flip now: the most negative estimates, paired kept/pruned under swaps."""
        limit = max(1, int(float(self.flip_fraction) * len(members)))
        good = np.flatnonzero(estimate < 0)
        good = good[np.argsort(estimate[good], kind="stable")]
        if not self.swaps:
            return good[:limit]
        kept = self.mask[layer].ravel()[members[good]]
        on, off = good[kept], good[~kept]  # switching off a kept weight / on a pruned one
        n = min(len(on), len(off), max(1, limit // 2))
        return np.concatenate([on[:n], off[:n]])

    def _flip(self, layer: int, flat: np.ndarray) -> None:
        rows, cols = np.divmod(flat, self.problem.shapes[layer][1])
        if self.problem.schedule == "rotate":
            # The next step rebuilds the caches on a new batch: only the mask changes.
            self.mask[layer][rows, cols] = ~self.mask[layer][rows, cols]
        else:
            self.accept(layer, Moves(rows, cols))
