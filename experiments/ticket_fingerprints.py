"""Fingerprints of the tickets every entry point makes, to show a refactor changed no result.

Every registered searcher runs on every CPU backend under every keep rule, with one seed and a
small evaluation budget, through :func:`prunetrain.run_search`; a few also run through
``SubnetworkClassifier.fit``, a warm start (``init_mask``), the comparison runner and every
baseline. Each case's fingerprint is the SHA-256 of its mask bits (or trained weights) together
with the budget it charged (evaluations, sample-forwards) and the losses of its history, so a
change in what a searcher sees, flips or is charged shows up even where the ticket survives it.

Floats are compared bit for bit, so fingerprints are only comparable on one machine (CPU, BLAS
and library versions): write them before a change and check them after, on the same machine::

    python experiments/ticket_fingerprints.py --write /tmp/before.json    # before the change
    python experiments/ticket_fingerprints.py --check /tmp/before.json    # after: exit 1 on a difference

Takes about two minutes on two cores (Numba compiles first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings

import numpy as np

ARCH = "64-24-16-10"
BUDGET = "120evals"
SEED = 1
RULES = ("layer", "global", "free")
BACKENDS = ("numpy", "numba")
ESTIMATOR_METHODS = ("probe", "accumulate", "ga", "hebbian")
RUNNER_METHODS = ("probe", "steepest")
BASELINE_PARAMS = {
    "dense": {"epochs": 1},
    "dense-sklearn": {"epochs": 2},
    "edge-popup": {"epochs": 1},
    "imp": {"epochs": 1, "rounds": 2},
    "random": {},
    "magnitude": {},
    "synflow": {},
}


def digest(*parts) -> str:
    """SHA-256 over arrays (their bytes, dtype and shape) and JSON-able values, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=repr).encode())
    return h.hexdigest()


def mask_bits(mask) -> np.ndarray:
    return np.packbits(np.concatenate([np.asarray(m, dtype=bool).ravel() for m in mask]))


def history_losses(history) -> list:
    return [[r["evaluations"], r.get("train_loss"), r.get("val_loss")] for r in history]


def search_cases() -> dict[str, str]:
    from prunetrain.api import run_search
    from prunetrain.search import SEARCHERS

    found = {}
    for name in sorted(SEARCHERS):
        for backend in BACKENDS:
            for rule in RULES:
                run = run_search(
                    "digits", ARCH, method=name, keep_rule=rule, backend=backend,
                    budget=BUDGET, seed=SEED,
                )  # fmt: skip
                r = run.result
                found[f"search/{name}/{backend}/{rule}"] = digest(
                    mask_bits(r.mask), r.evaluations, r.sample_forwards, history_losses(r.history)
                )
    run = run_search(
        "digits", ARCH, method="probe", init_mask="hebbian-reward", budget=BUDGET, seed=SEED
    )
    r = run.result
    found["search/init_mask=hebbian-reward/probe"] = digest(
        mask_bits(r.mask), r.evaluations, history_losses(r.history)
    )
    return found


def estimator_cases() -> dict[str, str]:
    from sklearn.datasets import load_digits

    from prunetrain import SubnetworkClassifier

    X, y = load_digits(return_X_y=True)
    found = {}
    for method in ESTIMATOR_METHODS:
        clf = SubnetworkClassifier(
            hidden_layer_sizes=(24, 16), method=method, budget=BUDGET, random_state=SEED
        ).fit(X[:900], y[:900])
        found[f"estimator/{method}"] = digest(
            mask_bits(clf.masks_), clf.n_evaluations_, clf.loss_curve_, clf.predict(X[900:])
        )
        clf.set_params(warm_start=True).fit(X[:900], y[:900])
        found[f"estimator/{method}/warm"] = digest(mask_bits(clf.masks_), clf.n_evaluations_)
    return found


def runner_cases() -> dict[str, str]:
    from prunetrain.experiments.config import RunSpec
    from prunetrain.experiments.runner import execute_run

    options = {
        "init": "signed_constant", "scale": "keep", "keep_rule": "layer", "backend": "numba",
        "batch_size": 256, "schedule": "rotate", "patience": None,
    }  # fmt: skip
    found = {}
    for kind, method, budget, params in [
        *(("search", m, BUDGET, {}) for m in RUNNER_METHODS),
        ("baseline", "edge-popup", None, {"epochs": 1}),
    ]:
        spec = RunSpec(
            kind=kind, dataset="digits", arch=ARCH, keep=0.5, method=method, label=method,
            params=params, budget=budget, seed=SEED, options=options,
        )  # fmt: skip
        record = execute_run(spec.to_dict())
        rows = [
            [r["evaluations"], r.get("train_loss"), r.get("val_loss"), r.get("test_accuracy")]
            for r in record["history"]
        ]
        found[f"runner/{kind}/{method}"] = digest(
            rows, record["evaluations"], record["test_accuracy"]
        )
    return found


def baseline_cases() -> dict[str, str]:
    from prunetrain.baselines import run_baseline

    found = {}
    for method, params in BASELINE_PARAMS.items():
        run = run_baseline("digits", ARCH, method=method, method_params=params, seed=SEED)
        if run.ticket is not None:
            model = [mask_bits(run.ticket.mask)]
        else:
            model = [np.asarray(w) for w in run.result.weights]
        found[f"baseline/{method}"] = digest(*model, run.metrics["test"]["accuracy"])
    return found


def fingerprints() -> dict[str, str]:
    found = {}
    for cases in (search_cases, estimator_cases, runner_cases, baseline_cases):
        found.update(cases())
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--write", metavar="FILE", help="write the fingerprints to FILE")
    what.add_argument("--check", metavar="FILE", help="compare with FILE; exit 1 on a difference")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    found = fingerprints()
    if args.check:
        with open(args.check) as f:
            before = json.load(f)
        changed = sorted(k for k in before.keys() & found.keys() if before[k] != found[k])
        missing, new = sorted(before.keys() - found.keys()), sorted(found.keys() - before.keys())
        for label, keys in (("changed", changed), ("missing", missing), ("new", new)):
            for key in keys:
                print(f"{label}: {key}")
        same = len(before.keys() & found.keys()) - len(changed)
        print(f"{same} of {len(before)} fingerprints unchanged")
        return 1 if changed or missing else 0
    text = json.dumps(found, indent=1, sort_keys=True)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text + "\n")
        print(f"{len(found)} fingerprints written to {args.write}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
