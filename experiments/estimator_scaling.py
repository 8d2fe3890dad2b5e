"""SubnetworkClassifier on raw, standardised and min-max scaled features, fold by fold.

Issue 19's protocol: ``cross_val_score(SubnetworkClassifier(hidden_layer_sizes=(32,),
budget=B, random_state=S), X, y, cv=2)`` on the first 600 digits, for each way
of presenting the features (raw 0..16 pixels; a ``StandardScaler`` pipeline; a
``MinMaxScaler`` pipeline), for the estimator's current defaults and for the
defaults it had before (no scaling inside, early stopping on), and the wall
time of one default fit on the whole digits set::

    python experiments/estimator_scaling.py --budgets 1000evals 2000evals 5000evals \\
        --seeds 0 1 2 --out experiments/results/estimator_scaling

writes ``results.json`` and ``summary.md`` into ``--out``. Wall times depend on
the machine and on its load; the summary records both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from prunetrain import SubnetworkClassifier
from prunetrain.estimator import DEFAULT_BUDGET

INPUTS = {
    "raw": lambda clf: clf,
    "StandardScaler": lambda clf: make_pipeline(StandardScaler(), clf),
    "MinMaxScaler": lambda clf: make_pipeline(MinMaxScaler(), clf),
}
#: The defaults before issue 19: the estimator did not scale, and stopped early.
OLD = {"scaling": None, "early_stopping": True}


def folds(budget: str, seed: int, inputs: str, old: bool, X, y) -> list[float]:
    clf = SubnetworkClassifier(hidden_layer_sizes=(32,), budget=budget, random_state=seed)
    if old:
        clf.set_params(**OLD)
    return [float(s) for s in cross_val_score(INPUTS[inputs](clf), X, y, cv=2)]


def default_fit_seconds(seed: int, backend: str) -> dict:
    """One fit with every default on 75 % of digits (1347 samples), timed, and its test score."""
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    SubnetworkClassifier(budget="10evals", backend=backend, random_state=seed).fit(X_tr, y_tr)
    clf = SubnetworkClassifier(backend=backend, random_state=seed)
    start = time.perf_counter()
    clf.fit(X_tr, y_tr)
    seconds = time.perf_counter() - start
    return {"seed": seed, "seconds": seconds, "test_accuracy": float(clf.score(X_te, y_te))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", nargs="+", default=["1000evals", "2000evals", "5000evals"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--timing-seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out", default="experiments/results/estimator_scaling")
    args = parser.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(command, flush=True)

    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    rows = []
    for old in (True, False):
        for budget in args.budgets if not old else [DEFAULT_BUDGET_BEFORE]:
            for inputs in INPUTS:
                for seed in args.seeds:
                    start = time.perf_counter()
                    scores = folds(budget, seed, inputs, old, X, y)
                    rows.append(
                        {
                            "defaults": "before" if old else "now",
                            "budget": budget,
                            "inputs": inputs,
                            "seed": seed,
                            "folds": scores,
                            "seconds": time.perf_counter() - start,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    for inputs in INPUTS:  # the backprop-trained reference, same hidden size and folds
        for seed in args.seeds:
            mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=500, random_state=seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                scores = [float(v) for v in cross_val_score(INPUTS[inputs](mlp), X, y, cv=2)]
            rows.append(
                {
                    "defaults": "MLPClassifier",
                    "budget": "max_iter=500",
                    "inputs": inputs,
                    "seed": seed,
                    "folds": scores,
                    "seconds": time.perf_counter() - start,
                }
            )
    timing = [default_fit_seconds(seed, args.backend) for seed in args.timing_seeds]
    print(json.dumps(timing), flush=True)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"command": command, "machine": machine, "rows": rows, "default_fit": timing}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "summary.md").write_text(summary(results, args.seeds))


DEFAULT_BUDGET_BEFORE = "1000evals"


def summary(results: dict, seeds: list[int]) -> str:
    lines = [
        "# SubnetworkClassifier: raw vs scaled features, two folds",
        "",
        f"`{results['command']}`",
        "",
        "First 600 digits, `cross_val_score(..., cv=2)`, `hidden_layer_sizes=(32,)`. "
        "Each cell: fold 1 / fold 2 test accuracy, for `random_state` "
        + ", ".join(map(str, seeds))
        + "; last column: the mean over folds and seeds (range of the fold scores).",
        "",
        "| defaults | budget | input | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " | mean (min–max) |",
        "| --- | --- | --- | " + " | ".join("---" for _ in seeds) + " | --- |",
    ]
    groups: dict[tuple, list] = {}
    for row in results["rows"]:
        groups.setdefault((row["defaults"], row["budget"], row["inputs"]), []).append(row)
    for (defaults, budget, inputs), rows in groups.items():
        cells = [f"{r['folds'][0]:.3f} / {r['folds'][1]:.3f}" for r in rows]
        scores = np.array([r["folds"] for r in rows])
        lines.append(
            f"| {defaults} | {budget} | {inputs} | "
            + " | ".join(cells)
            + f" | {scores.mean():.3f} ({scores.min():.3f}–{scores.max():.3f}) |"
        )
    lines += [
        "",
        "`before`: the estimator's defaults before issue 19 (no scaling inside, early "
        'stopping on); `now`: `scaling="standard"`, `early_stopping=False`; '
        "`MLPClassifier`: scikit-learn's backprop-trained MLP with the same hidden layer.",
        "",
        "## One default fit on digits",
        "",
        "`SubnetworkClassifier(random_state=S).fit` on 1347 digits (75 %, stratified), every "
        f"other parameter at its default (budget {DEFAULT_BUDGET}), kernels already compiled:",
        "",
        "| seed | fit (s) | test accuracy |",
        "| --- | --- | --- |",
    ]
    for t in results["default_fit"]:
        lines.append(f"| {t['seed']} | {t['seconds']:.1f} | {t['test_accuracy']:.3f} |")
    m = results["machine"]
    lines += [
        "",
        f"Machine: {m['platform']}, {m['cores']} cores, load average "
        f"{', '.join(f'{v:.1f}' for v in m['load_average'])} at the end (a shared machine: "
        "wall times are noisy).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
