"""Does (1+λ) evolution accept children that are really better? A check on fresh training data.

Runs ``evolution`` (1+λ) with and without ``confirm`` and, whenever the
parent is replaced, evaluates the old and the new parent on four fresh
training batches that the search never uses (not charged to its budget).
Reports per time window: the mutation strength σ, how often a generation
replaced its parent, the mean change of loss a replacement brought on the
fresh batches, and the fraction of replacements that were worse there.
Only the training split is used, so nothing here touches the test split.
The checks run inside the search's wall clock (fewer generations than a
plain run; more so without ``confirm``, which replaces its parent more often).

    python experiments/evolution_acceptance.py --dataset fashion-mnist \\
        --arch 784-300-100-10 --budget 150 --seed 0 \\
        --out experiments/results/evolution_acceptance

writes ``summary.md`` and ``windows.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from prunetrain.backends import make_backend
from prunetrain.data import load_dataset
from prunetrain.masks import KeepRule
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.problem import Problem
from prunetrain.runs import resolve_arch
from prunetrain.search import make_searcher, run

WINDOWS = [(0, 5), (5, 20), (20, 60), (60, 120), (120, 300), (300, 600)]


def one_run(data, sizes, confirm: bool, seconds: float, seed: int, batch: int, checks: int):
    net = FrozenNetwork(NetworkSpec(sizes, keep=0.5), seed)
    problem = Problem(
        net, data, KeepRule(0.5), backend=make_backend("auto", net), batch_size=batch, seed=seed
    )
    searcher = make_searcher("evolution", confirm=confirm)
    check_rng = np.random.default_rng(10_000 + seed)  # independent of the search's batches
    log: list[dict] = []
    step = searcher.step
    start = time.perf_counter()

    def watched_step():
        before, sigma = searcher.parent_rows[0].copy(), float(searcher.sigma[0])
        step()
        after = searcher.parent_rows[0]
        row = {"t": time.perf_counter() - start, "sigma": sigma, "replaced": False}
        if not np.array_equal(before, after):
            pair = searcher.layout.population(np.stack([before, after]))
            deltas = []
            for _ in range(checks):
                b = problem._make_batch(np.sort(check_rng.choice(problem.n_train, 1024, False)))
                loss, _ = problem.backend.evaluate(pair, b.X, b.y)  # not charged
                deltas.append(float(loss[1] - loss[0]))
            row.update(replaced=True, delta=float(np.mean(deltas)))
        log.append(row)

    searcher.step = watched_step
    run(problem, searcher, f"{seconds}s", seed=seed)
    windows = []
    for lo, hi in WINDOWS:
        rows = [r for r in log if lo <= r["t"] < hi]
        if not rows:
            continue
        deltas = np.array([r["delta"] for r in rows if r["replaced"]])
        windows.append(
            {
                "from_s": lo,
                "to_s": hi,
                "generations": len(rows),
                "median_sigma": float(np.median([r["sigma"] for r in rows])),
                "replaced_fraction": float(np.mean([r["replaced"] for r in rows])),
                "mean_delta_loss": float(deltas.mean()) if deltas.size else None,
                "worse_fraction": float(np.mean(deltas > 0)) if deltas.size else None,
            }
        )
    return windows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--arch", default="784-300-100-10")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--checks", type=int, default=4, help="fresh 1024-sample batches")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    command = "python experiments/evolution_acceptance.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    data = load_dataset(args.dataset)
    sizes = resolve_arch(args.arch, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "runs": {}}
    lines = [
        f"# Are accepted children better? {args.dataset} {'-'.join(map(str, sizes))}, keep 0.5, "
        f"batch {args.batch_size}, seed {args.seed}, {args.budget:g} s per run",
        "",
        f"`{command}`",
        "",
        f"Machine: {platform.machine()}, Linux. Each replacement of the parent is checked on "
        f"{args.checks} fresh 1024-sample training batches (old vs new parent, mean loss change; "
        "positive = worse). No test data is used. The checks run inside the search's wall "
        "clock, so a run makes fewer generations than without them.",
        "",
        "| confirm | window (s) | generations | median σ | generations that replaced the parent | "
        "mean Δloss of a replacement | replacements worse on fresh data |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for confirm in (False, True):
        windows = one_run(
            data, sizes, confirm, args.budget, args.seed, args.batch_size, args.checks
        )
        result["runs"][str(confirm)] = windows
        for w in windows:
            delta = "—" if w["mean_delta_loss"] is None else f"{w['mean_delta_loss']:+.5f}"
            worse = "—" if w["worse_fraction"] is None else f"{w['worse_fraction']:.2f}"
            lines.append(
                f"| {confirm} | {w['from_s']}–{w['to_s']} | {w['generations']} | "
                f"{w['median_sigma']:.0f} | {w['replaced_fraction']:.2f} | {delta} | {worse} |"
            )
        print("\n".join(lines), flush=True)
    (out / "windows.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
