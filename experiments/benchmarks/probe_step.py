"""A `probe` step split into its parts, against an edge-popup step on the same batch (issue 29).

For each network, one `probe` searcher runs on Fashion-MNIST (keep 0.5, its
default batch of 256, the ``auto`` backend) and its step is timed part by
part, by wrapping the methods it calls:

* ``cache``: the backend's ``flip_state`` — a forward pass that keeps every
  activation (float64), which the exact checks need;
* ``screen``: the backend's ``flip_screen`` — a push of every unit carried to
  each sample's loss, and the loss change of flipping every weight;
* ``scores``: the score update (momentum, weight decay);
* ``proposals``: the keep rule's best mask for the scores, and the flips to get there;
* ``checks``: the exact gains of the proposed flips, and the choice of those to make;
* ``other``: the rest of the step (the batch, applying the flips).

In the same run, alternating with the `probe` steps, an edge-popup step on the
batch `probe` just used: the top-k mask of the scores, the forward and
backward pass and the SGD update (``EdgePopup.fit``'s step), and a plain
forward pass of one mask (``backend.evaluate``) as the unit. Both run under
one BLAS thread, as searches and baselines do. Medians over ``--repeats``
steps after ``--warmup`` steps; the times of one step vary with what the
scores propose, so the spread is printed too.

    python experiments/benchmarks/probe_step.py --archs 784-300-100-10 784-1000-1000-10

writes ``experiments/results/probe_step.json`` and prints a table and the
command line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from prunetrain.backends import warm_up
from prunetrain.baselines.backprop import make_optimizer
from prunetrain.baselines.edge_popup import init_scores, score_gradients, top_k_mask
from prunetrain.data import load_dataset
from prunetrain.masks import KeepRule, MaskPopulation
from prunetrain.network import FrozenNetwork, NetworkSpec, parse_arch
from prunetrain.problem import Budget, Problem
from prunetrain.provenance import describe_blas, machine, versions
from prunetrain.search import make_searcher
from prunetrain.search.loop import searcher_rng
from prunetrain.threads import one_blas_thread

RESULTS = Path(__file__).resolve().parents[1] / "results"
PARTS = ("cache", "screen", "scores", "proposals", "checks")


class PartClock:
    """Seconds spent in named calls during one step (the wrapped methods add to it)."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys(PARTS, 0.0)

    def wrap(self, owner: object, method: str, part: str) -> None:
        inner = getattr(owner, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent[part] += time.perf_counter() - start

        setattr(owner, method, timed)


def measure(
    arch: tuple[int, ...],
    batch: int,
    keep: float,
    warmup: int,
    repeats: int,
    dataset: str = "fashion-mnist",
) -> dict:
    data = load_dataset(dataset)
    network = FrozenNetwork(NetworkSpec(arch, keep=keep), 0)
    rule = KeepRule(keep)
    problem = Problem(network, data, rule, backend="auto", batch_size=batch, seed=0)
    warm_up(problem.backend, problem.X_train, problem.y_train)
    problem.start(Budget.parse("1000000000evals"))
    searcher = make_searcher("probe")
    searcher.setup(problem, searcher_rng(0))

    clock = PartClock()
    backend = problem.backend
    clock.wrap(backend, "flip_state", "cache")
    clock.wrap(backend, "flip_screen", "screen")
    clock.wrap(searcher, "_update_scores", "scores")
    clock.wrap(searcher, "_proposals", "proposals")
    clock.wrap(searcher, "_confirm", "checks")

    # edge-popup at the hidden-networks recipe's optimizer, on the same frozen weights
    scores = init_scores(network.shapes, "kaiming_uniform", np.random.default_rng(0))
    optimizer = make_optimizer("sgd", scores, 0.9, 1e-4)
    weights, biases = list(network.weights), network.biases

    def edge_popup_step(rows: np.ndarray) -> None:
        mask = top_k_mask(scores, rule, network.shapes)
        _, grads = score_gradients(
            scores, mask, weights, biases, data.X_train[rows], data.y_train[rows]
        )
        optimizer.step(scores, grads, 0.1)

    records = []
    for number in range(warmup + repeats):
        clock.spent = dict.fromkeys(PARTS, 0.0)
        start = time.perf_counter()
        searcher.step()
        total = time.perf_counter() - start
        rows = np.asarray(problem.batch.index)  # the batch probe's step just used
        start = time.perf_counter()
        edge_popup_step(rows)
        edge = time.perf_counter() - start
        population = MaskPopulation.from_masks([searcher.mask], network.shapes)
        X, y = backend.asarray(data.X_train[rows]), backend.aslabels(data.y_train[rows])
        start = time.perf_counter()
        backend.evaluate(population, X, y)
        forward = time.perf_counter() - start
        if number >= warmup:
            parts = dict(clock.spent)
            parts["other"] = total - sum(parts.values())
            records.append({"probe": total, "edge_popup": edge, "forward": forward, **parts})

    def median(key: str) -> float:
        return float(np.median([r[key] for r in records]))

    def spread(key: str) -> list[float]:
        return [float(np.percentile([r[key] for r in records], q)) for q in (10, 90)]

    keys = ("probe", "edge_popup", "forward", *PARTS, "other")
    return {
        "dataset": dataset,
        "arch": "-".join(map(str, arch)),
        "backend": backend.name,
        "batch": batch,
        "keep": keep,
        "repeats": repeats,
        "median_seconds": {k: median(k) for k in keys},
        "p10_p90_seconds": {k: spread(k) for k in keys},
        "probe_over_edge_popup": median("probe") / median("edge_popup"),
        "ratio_of_medians_note": "probe step median / edge-popup step median, same batches",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["784-300-100-10", "784-1000-1000-10"])
    parser.add_argument("--batch", type=int, default=256, help="probe's default batch")
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=RESULTS / "probe_step.json")
    args = parser.parse_args(argv)
    command = "python experiments/benchmarks/probe_step.py " + shlex.join(sys.argv[1:])
    with one_blas_thread():
        results = [
            measure(parse_arch(a), args.batch, args.keep, args.warmup, args.repeats, args.dataset)
            for a in args.archs
        ]
    host = machine()  # no file paths: records hold none of this machine's
    record = {
        "command": command,
        "results": results,
        "machine": {
            "cpu": host["cpu"],
            "cpu_features": host["cpu_features"],
            "cores": host["cores"],
            "blas": describe_blas(host["blas"]),
        },
        "versions": versions(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for r in results:
        ms = {k: 1000 * v for k, v in r["median_seconds"].items()}
        print(f"{r['arch']} ({r['backend']}, batch {r['batch']}, median of {r['repeats']} steps)")
        print(
            f"  probe step {ms['probe']:.1f} ms = "
            + " + ".join(f"{p} {ms[p]:.1f}" for p in (*PARTS, "other"))
        )
        print(
            f"  edge-popup step {ms['edge_popup']:.1f} ms; one forward pass {ms['forward']:.1f} ms; "
            f"probe / edge-popup = {r['probe_over_edge_popup']:.2f}"
        )
    print(command)


if __name__ == "__main__":
    main()
