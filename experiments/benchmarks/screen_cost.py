"""What screening every weight costs, in forward passes of the same backend, and how well it ranks.

Part 1, cost (issue 17's benchmark). On one batch of B Fashion-MNIST samples
and one random mask, each backend times, in the same run and alternating:

* a forward pass: ``backend.evaluate`` of that one mask (the unit of cost);
* the cache: ``backend.flip_state`` (a float64 forward pass that keeps every
  activation, which probe needs anyway for its exact checks);
* the screen: ``backend.flip_screen`` (probes of every unit, scores of every weight);
* exact checks: ``backend.flip_gains`` of 200 first-layer flips.

Medians over repeats; the screen's cost is quoted as screen time / forward time.

Part 2, ranking. On small networks (digits) where every flip can be evaluated
exactly, the share of the exactly best 1 % of flips that lands in the screen's
best 5 % (and best 1 %), per layer.

    python experiments/benchmarks/screen_cost.py --arch 784-300-100-10 --batch 1024
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.backends.screen import screen_cost
from prunetrain.data import load_dataset
from prunetrain.masks import KeepRule, MaskPopulation, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec, parse_arch
from prunetrain.provenance import record_provenance
from prunetrain.threads import one_blas_thread

RESULTS = Path(__file__).resolve().parents[1] / "results"


def timings(backend_name: str, arch, batch: int, repeats: int, seed: int = 0) -> dict:
    data = load_dataset("fashion-mnist") if arch[0] == 784 else load_dataset("digits")
    net = FrozenNetwork(NetworkSpec(arch), seed)
    rng = np.random.default_rng(seed)
    mask = random_mask(net.shapes, KeepRule(0.5), rng)
    index = rng.choice(len(data.y_train), batch, replace=len(data.y_train) < batch)
    backend = make_backend(backend_name, net)
    X, y = backend.asarray(data.X_train[index]), backend.aslabels(data.y_train[index])
    population = MaskPopulation.from_masks([mask], net.shapes)
    state = backend.flip_state(mask, X, y)
    a, b = net.shapes[0]
    flat = rng.choice(a * b, 200, replace=False)
    rows, cols = np.divmod(flat, b)
    work = {
        "forward": lambda: backend.evaluate(population, X, y),
        "cache": lambda: backend.flip_state(mask, X, y),
        "screen": lambda: backend.flip_screen(state),
        "exact_200": lambda: backend.flip_gains(state, 0, rows, cols),
    }
    for fn in work.values():  # compile and warm up
        fn()
    times = {name: [] for name in work}
    for _ in range(repeats):
        for name, fn in work.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {name: float(np.median(t)) for name, t in times.items()}
    screened = backend.flip_screen(state)
    return {
        "backend": backend_name,
        "arch": "-".join(map(str, arch)),
        "batch": batch,
        "repeats": repeats,
        "median_seconds": med,
        "screen_in_forwards": med["screen"] / med["forward"],
        "cache_in_forwards": med["cache"] / med["forward"],
        "exact_flip_in_forwards": med["exact_200"] / 200 / med["forward"],
        "screen_cost_counted": screen_cost(net.shapes),
        "weights": net.spec.n_weights,
        "screen_bytes": int(sum(np.asarray(g).nbytes for g in screened)),
        "cache_bytes": int(
            sum(np.asarray(a).nbytes for a in state.acts_t + state.pre + state.masked)
        ),
    }


def ranking(arch, batch: int, seed: int) -> dict:
    data = load_dataset("digits")
    net = FrozenNetwork(NetworkSpec(arch), seed)
    mask = random_mask(net.shapes, KeepRule(0.5), np.random.default_rng(seed))
    backend = make_backend("numba", net)
    state = backend.flip_state(mask, data.X_train[:batch], data.y_train[:batch])
    screened = backend.flip_screen(state)
    layers = []
    for layer, (a, b) in enumerate(net.shapes):
        rows, cols = np.divmod(np.arange(a * b), b)
        exact = backend.flip_gains(state, layer, rows, cols)
        score = np.asarray(screened[layer]).ravel()
        n = a * b
        best = np.argsort(exact, kind="stable")[: max(1, round(0.01 * n))]
        row = {"layer": layer, "weights": n, "correlation": float(np.corrcoef(exact, score)[0, 1])}
        for within in (0.01, 0.05):
            top = np.argsort(score, kind="stable")[: max(1, round(within * n))]
            row[f"best_1pct_in_screen_top_{round(within * 100)}pct"] = float(
                np.isin(best, top).mean()
            )
        layers.append(row)
    return {"arch": "-".join(map(str, arch)), "batch": batch, "seed": seed, "layers": layers}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="784-300-100-10")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--backends", default="numba,numpy")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(RESULTS / "screen_cost"))
    args = parser.parse_args(argv)
    command = "python experiments/benchmarks/screen_cost.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    arch = parse_arch(args.arch)
    with one_blas_thread():
        cost = [timings(b, arch, args.batch, args.repeats) for b in args.backends.split(",")]
        ranks = [
            ranking(a, 512, s) for a in [(64, 32, 16, 10), (64, 128, 64, 10)] for s in (0, 1, 2)
        ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"command": command, "cost": cost, "ranking": ranks, "provenance": record_provenance()}
    name = f"{args.arch}_B{args.batch}"
    machine = record["provenance"]["provenance"]["machine"]
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# Screening every weight: cost and ranking ({args.arch}, B = {args.batch})",
        "",
        f"`{command}`",
        "",
        f"CPU: {machine['cpu']} ({', '.join(machine['cpu_features'])}), BLAS: "
        f"{', '.join(b['library'] + ' ' + b['version'] + ' ' + str(b['architecture']) for b in machine['blas'])}. Median of "
        f"{args.repeats} alternating repeats; a forward pass is the backend's own "
        "evaluation of one mask on the batch.",
        "",
        "| backend | forward (ms) | cache (ms) | screen (ms) | screen / forward | cache / forward "
        "| one exact first-layer flip / forward | counted screen cost |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cost:
        m = c["median_seconds"]
        lines.append(
            f"| {c['backend']} | {1e3 * m['forward']:.2f} | {1e3 * m['cache']:.2f} | "
            f"{1e3 * m['screen']:.2f} | {c['screen_in_forwards']:.2f} | "
            f"{c['cache_in_forwards']:.2f} | {c['exact_flip_in_forwards']:.4f} | "
            f"{c['screen_cost_counted']:.2f} |"
        )
    c0 = cost[0]
    lines += [
        "",
        f"Memory: the screen's output is {c0['screen_bytes'] / 2**20:.1f} MiB for "
        f"{c0['weights']:,} weights; the float64 cache {c0['cache_bytes'] / 2**20:.1f} MiB.",
        "",
        "## Ranking against exact gains (digits, B = 512, every flip evaluated exactly)",
        "",
        "| network | seed | layer | weights | corr(screen, exact) | best 1 % in screen's best 1 % "
        "| best 1 % in screen's best 5 % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in ranks:
        for row in r["layers"]:
            lines.append(
                f"| {r['arch']} | {r['seed']} | {row['layer']} | {row['weights']} | "
                f"{row['correlation']:.3f} | {row['best_1pct_in_screen_top_1pct']:.2f} | "
                f"{row['best_1pct_in_screen_top_5pct']:.2f} |"
            )
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
