"""Evolutionary and distribution-based mask search: GA, (1+λ)/(μ,λ)/(μ+λ) evolution, PBIL, CEM, NES.

Every searcher here works on a *population* of masks and evaluates it whole:
each step takes one fresh batch and makes one call to
:meth:`Problem.evaluate <prunetrain.objective.Problem.evaluate>` for every
mask of the generation, incumbents included, so that all the masks compared
in a step are compared on the same samples.

A population is held as one boolean array ``(P, n_weights)``: the layers of
a mask laid end to end, each flattened in C order. The operators below are
plain functions over such arrays (or over a column range of them, one
*segment*), vectorised over the population:

- :func:`swap_mutation` switches ``k[i]`` kept weights of row ``i`` off and as
  many pruned ones on, so the row's count is unchanged; :func:`flip_mutation`
  flips ``k[i]`` weights (the ``"free"`` rule);
- :func:`uniform_crossover` takes each weight from one of two parents,
  :func:`block_crossover` a whole unit (a column: a hidden unit's fan-in)
  from one parent; :func:`repair_counts` then switches random weights among
  those where the parents differ until the count is right;
- :func:`~prunetrain.backends.topk.gumbel_top_k` draws masks with exactly ``k`` kept weights from
  logits ``θ`` as the top ``k`` of ``θ + Gumbel noise`` (sampling without
  replacement with probabilities proportional to ``exp θ``).

Keep rules: under ``"layer"`` each layer is a segment with its own count,
under ``"global"`` the whole mask is one segment (weights can move between
layers), under ``"free"`` nothing is counted and mutation is bit flipping.

Default hyperparameters were picked on digits 64-256-256-10, keep 0.5, by
validation accuracy in 20 s runs at batch size 256 (one seed). Smaller
batches buy more generations per second at the price of noisier selection;
on digits 256 beat 1024 clearly for every method here and 128 was no better.
The exception is ``evolution``'s ``confirm``, built after measuring on
Fashion-MNIST's training data that most late winners of a generation were no
better than their parent (``experiments/results/evolution_acceptance``).
"""

from __future__ import annotations

import math

import numpy as np

from prunetrain.backends.topk import gumbel_top_k, top_k_rows
from prunetrain.errors import PrunetrainError
from prunetrain.hyperparams import check_choice, check_flag, check_number
from prunetrain.masks import Layout, Mask, check_mask
from prunetrain.search.base import Searcher, register

# --- operators ----------------------------------------------------------------------


def _distinct_positions(rng: np.random.Generator, rows: int, n: int, m: int):
    """``(rows, m)`` random positions in ``[0, n)`` and a mask of each one's first occurrence.

    For ``m >= n`` every row is a random permutation of all ``n`` positions.
    """
    if m >= n:
        pos = np.argsort(rng.random((rows, n)), axis=1)
        return pos, np.ones(pos.shape, dtype=bool)
    pos = rng.integers(0, n, size=(rows, m))
    order = np.argsort(pos, axis=1, kind="stable")
    ranked = np.take_along_axis(pos, order, axis=1)
    first = np.ones(pos.shape, dtype=bool)
    np.put_along_axis(first, order[:, 1:], ranked[:, 1:] != ranked[:, :-1], axis=1)
    return pos, first


def _first(valid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The first ``k[i]`` true entries of each row of ``valid``."""
    return valid & (np.cumsum(valid, axis=1) <= np.asarray(k)[:, None])


def swap_mutation(
    seg: np.ndarray, k: np.ndarray, rng: np.random.Generator, keep: float = 0.5
) -> None:
    """Switch ``k[i]`` random kept weights of row ``i`` off and as many pruned ones on, in place.

    The number of kept weights of every row is unchanged. ``keep`` (the
    rows' kept fraction) only sizes the random draw of candidate positions;
    a row gets fewer swaps than asked when it has fewer kept or pruned
    weights, or (odds about e^-16) when the draw falls short.

    Parameters
    ----------
    seg : ndarray of bool, shape (P, n)
        The rows to mutate (may be a column slice of a larger array).
    k : ndarray of int, shape (P,)
        Swaps per row.
    rng : numpy.random.Generator
    keep : float
        Fraction of kept weights in the rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> seg = np.zeros((3, 10), dtype=bool); seg[:, :4] = True
    >>> swap_mutation(seg, np.array([0, 1, 3]), rng, keep=0.4)
    >>> seg.sum(axis=1), (seg[:, 4:].sum(axis=1))
    (array([4, 4, 4]), array([0, 1, 3]))
    """
    rows = np.flatnonzero(np.asarray(k) > 0)
    if len(rows) == 0:
        return
    n = seg.shape[1]
    kk = np.asarray(k)[rows]
    side = min(max(keep, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    side = min(side, 1.0 - side)
    kmax = int(kk.max())
    # Enough draws that a row finds k weights of the rarer kind but with odds ~ e^-16.
    m = math.ceil((1.2 * kmax + 3 * math.sqrt(kmax) + 16) / side)
    pos, first = _distinct_positions(rng, len(rows), n, m)
    bits = seg[rows[:, None], pos]
    on, off = bits & first, ~bits & first
    s = np.minimum(kk, np.minimum(on.sum(axis=1), off.sum(axis=1)))
    switch_off, switch_on = _first(on, s), _first(off, s)
    r = np.broadcast_to(rows[:, None], pos.shape)
    seg[r[switch_off], pos[switch_off]] = False
    seg[r[switch_on], pos[switch_on]] = True


def flip_mutation(seg: np.ndarray, k: np.ndarray, rng: np.random.Generator) -> None:
    """Flip ``k[i]`` distinct random weights of row ``i`` of ``seg``, in place (bit-flip mutation)."""
    rows = np.flatnonzero(np.asarray(k) > 0)
    if len(rows) == 0:
        return
    kk = np.minimum(np.asarray(k)[rows], seg.shape[1])
    pos, first = _distinct_positions(rng, len(rows), seg.shape[1], int(kk.max()) * 5 // 4 + 16)
    take = _first(first, kk)
    r = np.broadcast_to(rows[:, None], pos.shape)[take]
    seg[r, pos[take]] = ~seg[r, pos[take]]


def _random_bits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fair random booleans, drawn 8 per random byte."""
    rows, n = shape[0], int(np.prod(shape[1:]))
    raw = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, axis=1, count=n, bitorder="little").view(bool).reshape(shape)


def uniform_crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Children taking each weight from parent ``a`` or ``b`` with probability 1/2.

    ``a`` and ``b`` are bool arrays of the same shape ``(P, ...)``; row ``i``
    of the result is a child of ``a[i]`` and ``b[i]``. Counts are not kept:
    follow with :func:`repair_counts`.
    """
    # b ^ ((a ^ b) & m): a where m, else b; bitwise ops on bools are ~20x faster than np.where.
    child = a ^ b
    child &= _random_bits(rng, a.shape)
    child ^= b
    return child


def block_crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Children taking every unit's whole fan-in (a column) from parent ``a`` or ``b``.

    ``a`` and ``b`` are one layer of two populations, bool ``(P, fan_in, fan_out)``:
    column ``j`` holds the incoming weights of unit ``j``, which travel
    together. Counts are not kept: follow with :func:`repair_counts`.
    """
    child = a ^ b
    child &= _random_bits(rng, (a.shape[0], a.shape[2]))[:, None, :]
    child ^= b
    return child


def choose_in_rows(
    candidates: np.ndarray, need: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random ``min(need[i], #candidates in row i)`` candidates of each row.

    Returns ``(rows, columns)`` of the chosen entries of the bool array
    ``candidates`` ``(R, n)``. Each candidate gets a uniform key and each row
    keeps its smallest keys; keys far above what a row needs are dropped
    before sorting, so the cost is one pass over the candidates.
    """
    need = np.asarray(need, dtype=np.int64)
    r, c = np.nonzero(candidates)
    if len(r) == 0:
        return r, c
    counts = np.bincount(r, minlength=len(need))
    u = rng.random(len(r))
    # Only keys below ~ (need + margin) / count can be among a row's smallest.
    cutoff = np.minimum(1.0, (2.0 * need + 32.0) / np.maximum(counts, 1))
    survive = u < cutoff[r]
    short = np.bincount(r[survive], minlength=len(need)) < np.minimum(need, counts)
    survive |= short[r]
    r, c, u = r[survive], c[survive], u[survive]
    order = np.lexsort((u, r))
    r, c = r[order], c[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=len(need)))[:-1]])
    rank = np.arange(len(r)) - starts[r]
    take = rank < need[r]
    return r[take], c[take]


def repair_counts(
    child: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    count: int | np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Make every row of ``child`` keep exactly ``count`` weights, in place.

    Random weights among those where the parents ``a`` and ``b`` differ are
    switched off (too many kept) or on (too few), so the child still takes
    every weight from one of its parents. If the parents themselves hold
    other counts, any weight may be switched.

    Parameters
    ----------
    child, a, b : ndarray of bool, shape (R, n)
    count : int or ndarray of int, shape (R,)
    rng : numpy.random.Generator
    """
    excess = child.sum(axis=1) - np.asarray(count)
    if not excess.any():
        return
    diff = a != b
    for too_many in (True, False):
        rows = np.flatnonzero(excess > 0 if too_many else excess < 0)
        if len(rows) == 0:
            continue
        need = np.abs(excess[rows])
        state = child[rows] if too_many else ~child[rows]
        candidates = state & diff[rows]
        short = candidates.sum(axis=1) < need
        candidates[short] = state[short]
        rr, cc = choose_in_rows(candidates, need, rng)
        child[rows[rr], cc] = not too_many


def topk_mode(theta: np.ndarray, k: int) -> np.ndarray:
    """The single most likely mask of :func:`gumbel_top_k`: the top ``k`` of ``θ``."""
    return top_k_rows(np.asarray(theta)[None], k)[0]


# --- shared machinery ----------------------------------------------------------------


class PopulationSearcher(Searcher):
    """Shared machinery: the flat layout, mutation, crossover, evaluation of a generation."""

    # Every method here was clearly better at 256 than at 1024 on digits: more generations
    # per second outweigh the noisier selection (see the module docstring).
    preferred_batch_size = 256

    def setup(self, problem, rng, init_mask: Mask | None = None) -> None:
        super().setup(problem, rng, init_mask)
        self.layout = Layout(problem.shapes, problem.rule)
        self.init_flat = (
            None
            if init_mask is None
            else self.layout.flatten(check_mask(init_mask, problem.shapes))
        )
        self.best_row: np.ndarray | None = None
        self.best_loss = np.inf
        self.generations = 0

    def random_rows(self, n: int) -> np.ndarray:
        """``n`` random masks satisfying the rule, as flat rows."""
        return np.stack([self.layout.flatten(self.problem.random_mask(self.rng)) for _ in range(n)])

    def start_rows(self, n: int, mutation: float) -> np.ndarray:
        """The first generation: random masks, or mutants of the warm-start mask (row 0 itself)."""
        if self.init_flat is None:
            return self.random_rows(n)
        rows = np.repeat(self.init_flat[None], n, axis=0)
        k = self.rng.poisson(mutation, n)
        k[0] = 0
        self.mutate(rows, k)
        return rows

    def evaluate(self, rows: np.ndarray) -> np.ndarray:
        """Training losses of ``rows`` on a fresh batch (one backend call)."""
        batch = self.problem.next_batch()
        loss, _ = self.problem.evaluate(self.layout.population(rows), batch)
        self.generations += 1
        return np.asarray(loss, dtype=np.float64)

    def mutate(self, rows: np.ndarray, k: np.ndarray) -> None:
        """Mutate ``rows`` in place: ``k[i]`` swaps (flips under ``"free"``) for row ``i``.

        The swaps of a row land on the rule's segments in proportion to
        their sizes (a multinomial draw), so every weight is equally likely
        to be touched.
        """
        k = np.asarray(k, dtype=np.int64)
        segments = self.layout.segments
        if len(segments) == 1:
            split = k[:, None]
        else:
            shares = np.array([e - s for s, e, _ in segments], dtype=np.float64)
            split = self.rng.multinomial(k, shares / shares.sum())
        for j, (s, e, count) in enumerate(segments):
            if count is None:
                flip_mutation(rows[:, s:e], split[:, j], self.rng)
            else:
                swap_mutation(
                    rows[:, s:e], split[:, j], self.rng, self.layout.keep_fraction(s, e, count)
                )

    def recombine(self, a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
        """Children of ``a[i]`` and ``b[i]`` (``"uniform"`` or ``"block"``), counts repaired."""
        lay = self.layout
        if kind == "uniform":
            child = uniform_crossover(a, b, self.rng)
        else:
            child = np.empty_like(a)
            for layer in range(len(lay.shapes)):
                lay.layer(child, layer)[:] = block_crossover(
                    lay.layer(a, layer), lay.layer(b, layer), self.rng
                )
        for s, e, count in lay.segments:
            if count is not None:
                repair_counts(child[:, s:e], a[:, s:e], b[:, s:e], count, self.rng)
        return child

    def remember(self, rows: np.ndarray, loss: np.ndarray) -> None:
        """The best of the generation just evaluated becomes the recommended mask."""
        i = int(np.argmin(loss))
        self.best_row, self.best_loss = rows[i].copy(), float(loss[i])

    def recommend(self) -> tuple[Mask, float]:
        if self.best_row is None:
            row = self.init_flat if self.init_flat is not None else self.random_rows(1)[0]
            self.best_row = row.copy()
        return self.layout.mask(self.best_row), self.best_loss


def _poisson_at_least_one(rng: np.random.Generator, mean, size=None) -> np.ndarray:
    """Mutation sizes: ``1 + Poisson(mean - 1)``, so a child always differs from its parent."""
    return 1 + rng.poisson(np.maximum(np.asarray(mean, dtype=np.float64) - 1.0, 0.0), size)


# --- genetic algorithm ----------------------------------------------------------------


@register
class GeneticSearcher(PopulationSearcher):
    """Genetic algorithm: tournament selection, elitism, crossover, mutation.

    Each generation evaluates the whole population (elites again) on a
    fresh batch. The ``elites`` best pass unchanged; every other member of
    the next generation is a child of two parents, each the best of
    ``tournament`` members drawn at random: with probability ``crossover_rate``
    their crossover, otherwise a copy of the first, then mutated with
    ``1 + Poisson(mutation - 1)`` swaps (flips under the ``"free"`` rule).
    Under the ``"layer"`` and ``"global"`` rules crossover is followed by
    count repair among the weights where the parents differ, and mutation
    swaps a kept and a pruned weight, so every child keeps exact counts.

    Parameters
    ----------
    population : int
        Masks per generation.
    elites : int
        Best masks copied unchanged into the next generation.
    tournament : int
        Members drawn per tournament (selection pressure).
    crossover : {"uniform", "block"}
        ``"uniform"``: each weight from either parent; ``"block"``: each
        unit's whole fan-in from either parent.
    crossover_rate : float
        Probability that a child is a crossover (else a mutated copy).
    mutation : float
        Mean swaps per child (at least one).
    """

    name = "ga"
    summary = "genetic algorithm: tournaments, elitism, uniform/block crossover, swap mutation"

    def __init__(
        self,
        population: int = 16,
        elites: int = 2,
        tournament: int = 3,
        crossover: str = "uniform",
        crossover_rate: float = 0.5,
        mutation: float = 8.0,
    ) -> None:
        self.population = population
        self.elites = elites
        self.tournament = tournament
        self.crossover = crossover
        self.crossover_rate = crossover_rate
        self.mutation = mutation

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        p = check_number("population", self.population, 2, open_low=False, integer=True)
        check_number("tournament", self.tournament, 0, integer=True)
        check_number("elites", self.elites, 0, p, open_low=False, open_high=True, integer=True)
        check_choice("crossover", self.crossover, ("uniform", "block"))
        check_number("crossover_rate", self.crossover_rate, 0, 1, open_low=False)
        check_number("mutation", self.mutation, 0)
        self.rows = self.start_rows(p, float(self.mutation))

    def step(self) -> None:
        rows, rng = self.rows, self.rng
        loss = self.evaluate(rows)
        self.remember(rows, loss)
        p, e = len(rows), int(self.elites)
        n = p - e
        order = np.argsort(loss, kind="stable")
        drawn = rng.integers(0, p, size=(2, n, int(self.tournament)))
        winners = np.take_along_axis(drawn, np.argmin(loss[drawn], axis=2)[..., None], 2)[..., 0]
        mothers, fathers = winners
        children = rows[mothers]
        cross = np.flatnonzero(rng.random(n) < float(self.crossover_rate))
        if len(cross):
            children[cross] = self.recombine(
                rows[mothers[cross]], rows[fathers[cross]], self.crossover
            )
        self.mutate(children, _poisson_at_least_one(rng, float(self.mutation), n))
        self.rows = np.concatenate([rows[order[:e]], children])


# --- (1+λ), (μ,λ), (μ+λ) evolution -----------------------------------------------------

STRATEGIES = ("1+lambda", "mu,lambda", "mu+lambda")


@register
class EvolutionSearcher(PopulationSearcher):
    """(1+λ), (μ,λ) and (μ+λ) evolution with swap mutation and a self-adapted strength.

    Each generation makes ``offspring`` children, each a copy of a parent
    with ``1 + Poisson(σ - 1)`` swaps (flips under the ``"free"`` rule), and
    evaluates them on a fresh batch — with the parents under ``"1+lambda"``
    and ``"mu+lambda"``, so incumbents are always compared on the same batch.

    - ``"1+lambda"``: one parent. The strength follows the 1/5th success
      rule: ``σ ← σ · adapt ** ((s - 1/5) / (4/5))`` with ``s`` the fraction
      of children better than the parent, so σ grows while more than a fifth
      of the children improve and shrinks otherwise. With ``confirm`` (the
      default) the best child does not replace the parent at once: if it
      beats the parent it becomes the *challenger*, evaluated with the next
      generation on the next batch, and replaces the parent only if it beats
      it there too. Without ``confirm`` the best child replaces the parent
      as soon as its loss is lower.
    - ``"mu,lambda"`` / ``"mu+lambda"``: ``parents`` parents, each with its own
      strength; a child inherits its parent's σ times ``exp(tau · N(0, 1))``
      (log-normal self-adaptation), and the ``parents`` best children (and,
      with ``+``, parents) survive with their σ.

    σ is kept in ``[1, max_mutation]``.

    Parameters
    ----------
    strategy : {"1+lambda", "mu,lambda", "mu+lambda"}
    offspring : int
        λ, children per generation.
    parents : int
        μ, survivors per generation (``"mu,lambda"`` and ``"mu+lambda"``).
    mutation : float
        Initial σ, the mean swaps per child.
    adapt : float
        Step factor of the 1/5th success rule (> 1).
    tau : float
        Learning rate of the log-normal self-adaptation.
    max_mutation : float, optional
        Cap on σ (default: 1 % of the weights, at least 1).
    confirm : bool
        ``"1+lambda"`` only: a child must beat the parent on a second,
        independent batch before it replaces it (see above). The best of
        λ children on one batch is partly the luckiest: on Fashion-MNIST at
        batch 256, once progress slows, about 45 % of the children that
        won a generation were worse than their parent on fresh data, and
        the search went on swapping without improving. Confirmation costs
        one more mask per generation and no extra backend call.

    Notes
    -----
    ``"mu,lambda"`` and ``"mu+lambda"`` select on one batch; ``confirm``
    does not apply to them.
    """

    name = "evolution"
    summary = "(1+λ), (μ,λ), (μ+λ) evolution with swap mutation and self-adapted strength"

    def __init__(
        self,
        strategy: str = "1+lambda",
        offspring: int = 16,
        parents: int = 4,
        mutation: float = 4.0,
        adapt: float = 1.5,
        tau: float = 0.3,
        max_mutation: float | None = None,
        confirm: bool = True,
    ) -> None:
        self.strategy = strategy
        self.offspring = offspring
        self.parents = parents
        self.mutation = mutation
        self.adapt = adapt
        self.tau = tau
        self.max_mutation = max_mutation
        self.confirm = confirm

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        check_choice("strategy", self.strategy, STRATEGIES)
        lam = check_number("offspring", self.offspring, 0, integer=True)
        parents = check_number("parents", self.parents, 0, integer=True)
        mu = 1 if self.strategy == "1+lambda" else parents
        if self.strategy == "mu,lambda" and mu > lam:
            raise PrunetrainError(f"parents must be <= offspring for mu,lambda, got {mu} > {lam}")
        check_number("mutation", self.mutation, 0)
        check_number("adapt", self.adapt, 1)
        check_number("tau", self.tau, 0, open_low=False)
        check_flag("confirm", self.confirm)
        cap = check_number("max_mutation", self.max_mutation, 0, optional=True)
        self.cap = cap if cap is not None else max(1.0, 0.01 * self.layout.n)
        sigma0 = min(max(float(self.mutation), 1.0), self.cap)
        self.parent_rows = self.start_rows(mu, sigma0)
        self.sigma = np.full(mu, sigma0)
        self.challenger: np.ndarray | None = None

    def step(self) -> None:
        if self.strategy == "1+lambda" and self.confirm:
            self._step_confirmed()
            return
        rng, lam = self.rng, int(self.offspring)
        mu = len(self.parent_rows)
        pick = rng.integers(0, mu, lam) if mu > 1 else np.zeros(lam, dtype=np.int64)
        sigma = self.sigma[pick]
        if self.strategy != "1+lambda":
            sigma = np.clip(
                sigma * np.exp(float(self.tau) * rng.standard_normal(lam)), 1.0, self.cap
            )
        children = self.parent_rows[pick]
        self.mutate(children, _poisson_at_least_one(rng, sigma))
        if self.strategy == "mu,lambda":
            rows, sigmas = children, sigma
        else:
            rows = np.concatenate([self.parent_rows, children])
            sigmas = np.concatenate([self.sigma, sigma])
        loss = self.evaluate(rows)
        self.remember(rows, loss)
        if self.strategy == "1+lambda":
            self._one_fifth_rule(loss[1:], loss[0])
            best = int(np.argmin(loss))  # the parent (index 0) wins ties
            self.parent_rows = rows[best : best + 1].copy()
        else:
            keep = np.argsort(loss, kind="stable")[:mu]
            self.parent_rows, self.sigma = rows[keep], sigmas[keep]

    def _one_fifth_rule(self, children_loss: np.ndarray, parent_loss: float) -> None:
        """``σ ← σ · adapt ** ((s - 1/5) / (4/5))``, ``s`` the fraction of children that beat the parent."""
        success = float(np.mean(children_loss < parent_loss))
        self.sigma = np.clip(
            self.sigma * float(self.adapt) ** ((success - 0.2) / 0.8), 1.0, self.cap
        )

    def _step_confirmed(self) -> None:
        """(1+λ) where a winning child must beat the parent again on the next batch."""
        lam = int(self.offspring)
        children = np.repeat(self.parent_rows, lam, axis=0)
        self.mutate(children, _poisson_at_least_one(self.rng, np.full(lam, self.sigma[0])))
        head = [self.parent_rows]
        if self.challenger is not None:
            head.append(self.challenger[None])
        rows = np.concatenate(head + [children])
        loss = self.evaluate(rows)
        h = len(head)
        self._one_fifth_rule(loss[h:], loss[0])
        parent_loss = float(loss[0])
        if h == 2 and loss[1] < loss[0]:  # confirmed on a batch it was not chosen on
            self.parent_rows, parent_loss = rows[1:2].copy(), float(loss[1])
        best = h + int(np.argmin(loss[h:]))
        self.challenger = rows[best].copy() if loss[best] < parent_loss else None
        # Recommend the parent: every replacement of it has been confirmed.
        self.best_row, self.best_loss = self.parent_rows[0].copy(), parent_loss


# --- estimation of distribution: PBIL, CEM, NES -------------------------------------------


class DistributionSearcher(PopulationSearcher):
    """Shared machinery of searchers that evolve independent keep logits ``θ``, one per weight.

    Samples honour the keep rule: under ``"layer"`` (each layer) and
    ``"global"`` (the whole mask) a sample keeps the top ``k`` of
    ``θ + Gumbel noise`` (:func:`~prunetrain.backends.topk.gumbel_top_k`), so counts are exact; under
    ``"free"`` each weight is kept with probability ``sigmoid(θ)``. The *mode*
    is the top ``k`` of ``θ`` (``θ > 0`` under ``"free"``).

    Each generation evaluates the incumbent (the best mask of the previous
    generation), the mode and ``population`` samples on one fresh batch;
    only the samples update the distribution. :meth:`recommend` validates
    the incumbent and that mode (the validation split is not charged to the
    budget) and returns the better.

    Parameters
    ----------
    population : int
        Samples per generation.
    max_logit : float
        Logits are clipped to ``[-max_logit, max_logit]``, so no weight is
        ever certain and sampling keeps exploring.
    """

    def __init__(self, population: int = 32, max_logit: float = 5.0) -> None:
        self.population = population
        self.max_logit = max_logit

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        check_number("population", self.population, 0, integer=True)
        check_number("max_logit", self.max_logit, 0)
        n = self.layout.n
        # A tiny fixed jitter breaks the ties of a flat θ, so the first mode is a random mask.
        self.theta = 1e-3 * rng.standard_normal(n)
        if self.init_flat is not None:
            self.theta += np.where(self.init_flat, 1.0, -1.0) * min(2.0, float(self.max_logit))
        self.mode_row: np.ndarray | None = None
        self.mode_loss = np.inf

    def sample(self, size: int) -> np.ndarray:
        rows = np.empty((size, self.layout.n), dtype=bool)
        for s, e, count in self.layout.segments:
            if count is None:
                p = 1.0 / (1.0 + np.exp(-self.theta[s:e]))
                rows[:, s:e] = self.rng.random((size, e - s), dtype=np.float32) < p
            else:
                rows[:, s:e] = gumbel_top_k(self.theta[s:e], count, size, self.rng)
        return rows

    def mode(self) -> np.ndarray:
        row = np.empty(self.layout.n, dtype=bool)
        for s, e, count in self.layout.segments:
            row[s:e] = self.theta[s:e] > 0 if count is None else topk_mode(self.theta[s:e], count)
        return row

    def step(self) -> None:
        samples = self.sample(int(self.population))
        self.mode_row = self.mode()
        head = [self.mode_row[None]]
        if self.best_row is not None:
            head.append(self.best_row[None])
        rows = np.concatenate(head + [samples])
        loss = self.evaluate(rows)
        self.mode_loss = float(loss[0])
        self.remember(rows, loss)
        self.update(samples, loss[len(head) :])
        np.clip(self.theta, -float(self.max_logit), float(self.max_logit), out=self.theta)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        """Move ``θ`` given the samples of this generation and their losses."""
        raise NotImplementedError

    def recommend(self) -> tuple[Mask, float]:
        best, best_loss = super().recommend()
        if self.mode_row is None or np.array_equal(self.mode_row, self.best_row):
            return best, best_loss
        mode_mask = self.layout.mask(self.mode_row)
        # Validation is not charged to the budget and happens only at validation points.
        vb, vm = self.problem.validate(best), self.problem.validate(mode_mask)
        if (vm[1], -vm[0]) > (vb[1], -vb[0]):
            return mode_mask, self.mode_loss
        return best, best_loss

    @property
    def probabilities(self) -> np.ndarray:
        """``sigmoid(θ)``, the keep probabilities (flat, layers end to end)."""
        return 1.0 / (1.0 + np.exp(-self.theta))

    def set_probabilities(self, p: np.ndarray) -> None:
        eps = 1.0 / (1.0 + math.exp(float(self.max_logit)))
        p = np.clip(p, eps, 1.0 - eps)
        self.theta = np.log(p) - np.log1p(-p)


@register
class PBILSearcher(DistributionSearcher):
    """Population-based incremental learning over Bernoulli keep probabilities.

    With ``p = sigmoid(θ)``, each generation moves ``p`` toward the mean of
    the ``elite`` best samples and, where the best and the worst sample
    differ, away from the worst:

    ``p ← (1 - lr) p + lr · mean(best samples)``;
    ``p ← p + negative_lr · (x_best - x_worst)`` on the bits where they differ.

    Parameters
    ----------
    population : int
        Samples per generation.
    lr : float
        Learning rate toward the best samples, in (0, 1].
    elite : int
        Best samples averaged.
    negative_lr : float
        Learning rate away from the worst sample (0 turns it off).
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "pbil"
    summary = "population-based incremental learning over Bernoulli keep probabilities"

    def __init__(
        self,
        population: int = 32,
        lr: float = 0.02,
        elite: int = 2,
        negative_lr: float = 0.02,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.lr = lr
        self.elite = elite
        self.negative_lr = negative_lr

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        check_number("lr", self.lr, 0, 1)
        check_number("elite", self.elite, 0, int(self.population), integer=True)
        check_number("negative_lr", self.negative_lr, 0, open_low=False)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        order = np.argsort(loss, kind="stable")
        lr = float(self.lr)
        p = (1.0 - lr) * self.probabilities + lr * samples[order[: int(self.elite)]].mean(axis=0)
        if float(self.negative_lr) > 0 and len(order) > 1:
            best, worst = samples[order[0]], samples[order[-1]]
            p += float(self.negative_lr) * (best.astype(np.float64) - worst)
        self.set_probabilities(p)


@register
class CEMSearcher(DistributionSearcher):
    """Cross-entropy method over Bernoulli keep probabilities.

    Each generation the best ``elite_fraction`` of the samples (at least
    one) refit the distribution, with smoothing:

    ``p ← (1 - smoothing) p + smoothing · mean(elite samples)``, ``p = sigmoid(θ)``.

    Parameters
    ----------
    population : int
        Samples per generation.
    elite_fraction : float
        Fraction of the samples that refit the distribution, in (0, 1].
    smoothing : float
        Weight of the new fit, in (0, 1].
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "cem"
    summary = "cross-entropy method (elite fraction) over Bernoulli keep probabilities"

    def __init__(
        self,
        population: int = 32,
        elite_fraction: float = 0.25,
        smoothing: float = 0.1,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.elite_fraction = elite_fraction
        self.smoothing = smoothing

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        check_number("elite_fraction", self.elite_fraction, 0, 1)
        check_number("smoothing", self.smoothing, 0, 1)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        n_elite = max(1, int(round(float(self.elite_fraction) * len(loss))))
        elite = samples[np.argsort(loss, kind="stable")[:n_elite]].mean(axis=0)
        a = float(self.smoothing)
        self.set_probabilities((1.0 - a) * self.probabilities + a * elite)


def nes_utilities(n: int) -> np.ndarray:
    """Rank-based fitness shaping of Wierstra et al. (2014): utilities of ranks 1..n (best first).

    ``u_k = max(0, log(n/2 + 1) - log k) / Σ_j max(0, log(n/2 + 1) - log j) - 1/n``;
    they sum to zero, so only the ranks of the fitnesses matter.

    Examples
    --------
    >>> u = nes_utilities(4)
    >>> bool(abs(u.sum()) < 1e-12 and u[0] > u[1] > u[2] == u[3])
    True
    """
    raw = np.maximum(0.0, math.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
    return raw / raw.sum() - 1.0 / n


@register
class NESSearcher(DistributionSearcher):
    """Natural evolution strategy with a Bernoulli (logit) search distribution.

    Samples are ranked by loss and given the utilities of
    :func:`nes_utilities`; ``θ`` follows the search gradient

    ``θ ← θ + lr · Σ_i u_i (x_i - sigmoid(θ))``,

    the gradient of the expected utility for independent Bernoulli weights
    (``∂ log P(x) / ∂θ = x - sigmoid(θ)``). It is used unpreconditioned: the
    natural gradient would divide by the Fisher information ``p (1 - p)``
    of each logit, which has no closed form for the top-k sampler; the rank
    shaping and the logit clip keep the steps bounded instead.
    Under the ``"layer"`` and ``"global"`` rules, where samples are the
    Gumbel-top-k of ``θ``, the Bernoulli score is an approximation of that
    sampler's score; because the utilities sum to zero, the ``sigmoid(θ)``
    term cancels and the update is ``lr · Σ_i u_i x_i``.

    Parameters
    ----------
    population : int
        Samples per generation.
    lr : float
        Step size on the logits.
    momentum : float
        Heavy-ball momentum of the logit updates, in [0, 1).
    max_logit : float
        See :class:`DistributionSearcher`.
    """

    name = "nes"
    summary = "natural evolution strategy over Bernoulli keep logits, rank-shaped fitness"

    def __init__(
        self,
        population: int = 32,
        lr: float = 5.0,
        momentum: float = 0.0,
        max_logit: float = 5.0,
    ) -> None:
        super().__init__(population, max_logit)
        self.lr = lr
        self.momentum = momentum

    def setup(self, problem, rng, init_mask=None) -> None:
        super().setup(problem, rng, init_mask)
        check_number("lr", self.lr, 0)
        check_number("momentum", self.momentum, 0, 1, open_low=False, open_high=True)
        self.velocity = np.zeros_like(self.theta)

    def update(self, samples: np.ndarray, loss: np.ndarray) -> None:
        u = np.empty(len(loss))
        u[np.argsort(loss, kind="stable")] = nes_utilities(len(loss))
        # einsum, not BLAS: a threaded GEMV leaves OpenBLAS threads spinning into the next
        # sampling and evaluation, which cost a third of the generations on 2 cores.
        weighted = np.einsum("p,pn->n", u.astype(np.float32), samples.view(np.uint8))
        grad = weighted - u.sum() * self.probabilities
        self.velocity = float(self.momentum) * self.velocity + float(self.lr) * grad
        self.theta += self.velocity
