"""Choosing ``probe``'s settings for digits without touching the digits test split.

The digits split is fixed (``load_dataset("digits")`` always returns the same
360 test samples), so runs on other seeds still score on the same test
samples. This script never reads them: it pools digits' training and
validation splits (1,437 samples), cuts them into stratified folds, and for
each fold searches on the rest (a validation split of the usual 144 samples
carved from it) and scores on the fold. It reports, per setting, the fold
accuracy of three ways to pick the returned mask from the same run:

- ``best_val``: the run loop's rule, the best validation accuracy (ties: lower
  validation loss) among all validated masks;
- ``final``: the mask at the end of the budget;
- ``min_val_loss``: the validated mask with the lowest validation loss.

    python experiments/probe_digits_cv.py --budget 20s --folds 4 --seeds 0 1 \\
        --setting base:weight_decay=0.0005 --setting wd2e2:weight_decay=0.02 \\
        --out experiments/results/probe_digits_cv

writes ``runs.jsonl``, ``command.txt`` and ``summary.md`` into ``--out``;
``--summarize`` rewrites ``summary.md`` from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from prunetrain import runs
from prunetrain.data import load_dataset
from prunetrain.provenance import record_provenance
from prunetrain.runs import evaluate_ticket
from prunetrain.search import make_searcher, run
from prunetrain.ticket import Ticket

POLICIES = ("best_val", "final", "min_val_loss")


def fold_datasets(n_folds: int, n_val: int = 144):
    """Digits' train + validation pooled, one Dataset per fold; the fold is its test split."""
    full = load_dataset("digits")
    X = np.concatenate([full.X_train, full.X_val])
    y = np.concatenate([full.y_train, full.y_val])
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y)
    for k, (rest, held) in enumerate(folds):
        tr, va = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=k)
        yield (
            k,
            dataclasses.replace(
                full,
                X_train=np.ascontiguousarray(X[tr]),
                y_train=y[tr],
                X_val=np.ascontiguousarray(X[va]),
                y_val=y[va],
                X_test=np.ascontiguousarray(X[held]),
                y_test=y[held],
            ),
        )


def one_run(data, arch, keep, params, budget, seed, batch_size) -> dict:
    setup = runs.build(data, arch, keep=keep, seed=seed)
    problem = setup.problem(backend="numba", batch_size=batch_size)
    net, rule = setup.network, setup.rule
    validated = []
    callback = lambda row, mask: validated.append(  # noqa: E731
        (row["val_accuracy"], row["val_loss"], [m.copy() for m in mask])
    )
    result = run(problem, make_searcher("probe", **params), budget, seed=seed, callbacks=[callback])
    # The loop's rule for "best_val" (the first best (accuracy, -loss)), whatever ``select`` is.
    top = max(range(len(validated)), key=lambda i: (validated[i][0], -validated[i][1]))
    picks = {
        "best_val": validated[top][2],
        "final": validated[-1][2],
        "min_val_loss": min(validated, key=lambda v: v[1])[2],
    }
    out = {"seed": seed, "evaluations": result.evaluations, "validations": len(validated)}
    for policy, mask in picks.items():
        scores = evaluate_ticket(Ticket(net, mask, rule), data)
        out[policy] = {split: scores[split]["accuracy"] for split in ("train", "val", "test")}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="20s")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arch", default="64-256-256-10")
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument(
        "--setting",
        action="append",
        default=[],
        help="NAME[:key=value,...] probe parameters; repeat for several settings",
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--summarize", action="store_true", help="rewrite summary.md from --out's runs.jsonl"
    )
    args = ap.parse_args(argv)
    settings = []
    for text in args.setting or ["base"]:
        name, _, rest = text.partition(":")
        params = {}
        for item in filter(None, rest.split(",")):
            key, value = item.split("=")
            params[key] = json.loads(value)
        settings.append((name, params))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summarize:
        rows = [json.loads(line) for line in open(args.out / "runs.jsonl")]
    else:
        (args.out / "command.txt").write_text(
            f"python {' '.join(shlex.quote(a) for a in sys.argv)}\n"
        )
        rows = run_settings(settings, args)
    text = summarize(rows, (args.out / "command.txt").read_text().strip(), args)
    (args.out / "summary.md").write_text(text)
    print(text)


def run_settings(settings, args) -> list[dict]:
    """Every setting on every fold and seed, each run appended to ``runs.jsonl`` as it ends."""
    rows = []
    with open(args.out / "runs.jsonl", "w") as fh:
        for name, params in settings:
            for k, data in fold_datasets(args.folds):
                for seed in args.seeds:
                    row = one_run(
                        data, args.arch, args.keep, params, args.budget, seed, args.batch_size
                    )
                    row.update(setting=name, params=params, fold=k)
                    rows.append(row)
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(
                        f"{name} fold {k} seed {seed}: "
                        + " ".join(f"{p} {row[p]['test']:.4f}" for p in POLICIES),
                        file=sys.stderr,
                    )
    return rows


def summarize(rows: list[dict], command: str, args) -> str:
    """Per setting and pick: fold accuracy; then paired differences against base's best_val."""
    cpu = record_provenance()["provenance"]["machine"]["cpu"]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    lines = [
        "# probe on digits: settings and mask picks scored on held-out folds of train + val",
        "",
        f"`{command}`",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores. {len({r['fold'] for r in rows})} folds × "
        f"seeds {sorted({r['seed'] for r in rows})}, "
        f"budget {args.budget} per run, one run at a time. Accuracy on the held-out fold, "
        "mean ± sd over runs; the digits test split is not read.",
        "",
        "| setting | runs | " + " | ".join(POLICIES) + " | validation accuracy of best_val |",
        "| --- | ---: | " + " | ".join("---:" for _ in POLICIES) + " | ---: |",
    ]
    for name in settings:
        mine = [r for r in rows if r["setting"] == name]
        cells = []
        for p in POLICIES:
            acc = np.array([r[p]["test"] for r in mine])
            cells.append(f"{acc.mean():.4f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.4f}")
        val = np.mean([r["best_val"]["val"] for r in mine])
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + f" | {val:.4f} |")
    by = {(r["setting"], r["fold"], r["seed"]): r for r in rows}
    pairs = sorted({(r["fold"], r["seed"]) for r in rows})
    base = settings[0]
    lines += [
        "",
        f"Paired by (fold, seed), against `{base}` with the loop's pick (`best_val`):",
        "",
        "| setting, pick | mean difference | se | better / tied / worse |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in settings:
        for p in POLICIES:
            if (name, p) == (base, "best_val"):
                continue
            d = np.array(
                [by[(name, *k)][p]["test"] - by[(base, *k)]["best_val"]["test"] for k in pairs]
            )
            se = d.std(ddof=1) / np.sqrt(len(d))
            counts = f"{np.sum(d > 0)} / {np.sum(d == 0)} / {np.sum(d < 0)}"
            lines.append(f"| {name}, {p} | {d.mean():+.4f} | {se:.4f} | {counts} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
