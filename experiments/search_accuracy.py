"""Held-out test accuracy of search methods over seeds, with test accuracy against wall time.

Each run searches on the training split (batches) and the validation split
(which mask to return); the test split is never given to the search. Every
time the run's chosen mask changes, a copy is kept, and after the run those
copies are scored on the test split, giving the curve "test accuracy of the
mask the search would return if stopped now" against wall time.

    python experiments/search_accuracy.py --dataset digits --arch 64-256-256-10 \\
        --keep 0.5 --budget 60s --seeds 0 1 2 --methods accumulate hill random \\
        --out experiments/results/local_digits

writes ``runs.jsonl`` (one line per run, with its curve), ``summary.md`` and
``curve.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
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
from prunetrain.provenance import record_provenance
from prunetrain.runs import evaluate_ticket, resolve_arch
from prunetrain.search import make_searcher, run
from prunetrain.ticket import Ticket


def one_run(data, sizes, keep, method, params, budget, seed, backend, batch_size) -> dict:
    spec = NetworkSpec(sizes, keep=keep)
    net = FrozenNetwork(spec, seed)
    rule = KeepRule(keep)
    problem = Problem(
        net, data, rule, backend=make_backend(backend, net), batch_size=batch_size, seed=seed
    )
    searcher = make_searcher(method, **params)
    snapshots = []

    def snapshot(row, mask):
        if row["improved"]:
            snapshots.append((row["seconds"], row["evaluations"], [m.copy() for m in mask]))

    result = run(problem, searcher, budget, seed=seed, callbacks=[snapshot])
    curve = []
    for seconds, evaluations, mask in snapshots:
        test = evaluate_ticket(Ticket(net, mask, rule), data, ["test"])["test"]["accuracy"]
        curve.append({"seconds": seconds, "evaluations": evaluations, "test_accuracy": test})
    final = evaluate_ticket(Ticket(net, result.mask, rule), data)
    return {
        "method": method,
        "params": searcher.get_params(),
        "seed": seed,
        "backend": problem.backend.name,
        "seconds": result.seconds,
        "evaluations": result.evaluations,
        "train_accuracy": final["train"]["accuracy"],
        "val_accuracy": final["val"]["accuracy"] if "val" in final else None,
        "test_accuracy": final["test"]["accuracy"],
        "test_loss": final["test"]["loss"],
        "curve": curve,
    }


def time_to(run: dict, target: float) -> float | None:
    """Wall time at which the mask the search would return first reached ``target`` on test."""
    points = [(p["seconds"], p["test_accuracy"]) for p in run["curve"]]
    points.append((run["seconds"], run["test_accuracy"]))
    return next((t for t, acc in points if acc >= target), None)


def summarize(runs: list[dict], header: list[str], targets: list[float] = ()) -> str:
    lines = header + [
        "",
        "| method | seeds | test accuracy (mean ± sd) | min | max | val accuracy | train accuracy | evaluations | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        test = np.array([r["test_accuracy"] for r in rs])
        lines.append(
            f"| {m} | {len(rs)} | {test.mean():.4f} ± {test.std(ddof=1) if len(rs) > 1 else 0:.4f} | "
            f"{test.min():.4f} | {test.max():.4f} | {np.mean([r['val_accuracy'] for r in rs]):.4f} | "
            f"{np.mean([r['train_accuracy'] for r in rs]):.4f} | {np.mean([r['evaluations'] for r in rs]):.0f} | "
            f"{np.mean([r['seconds'] for r in rs]):.1f} |"
        )
    if targets:
        lines += [
            "",
            "Wall time (s) at which the returned mask first reached each test accuracy, per seed "
            "(— not reached):",
            "",
            "| method | seed | " + " | ".join(f"{t:g}" for t in targets) + " |",
            "| --- | ---: |" + " ---: |" * len(targets),
        ]
        for r in runs:
            cells = [time_to(r, t) for t in targets]
            lines.append(
                f"| {r['method']} | {r['seed']} | "
                + " | ".join("—" if c is None else f"{c:.1f}" for c in cells)
                + " |"
            )
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    for i, m in enumerate(methods):
        color = f"C{i}"
        for j, r in enumerate(rs for rs in runs if rs["method"] == m):
            xs = [p["seconds"] for p in r["curve"]] + [r["seconds"]]
            ys = [p["test_accuracy"] for p in r["curve"]] + [r["test_accuracy"]]
            ax.step(xs, ys, where="post", color=color, alpha=0.8, label=m if j == 0 else None)
    ax.set(xlabel="wall time (s)", ylabel="test accuracy of the returned mask", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--arch")
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--budget", default="60s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["accumulate"])
    parser.add_argument("--param", action="append", default=[], help="METHOD:NAME=VALUE")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--targets", type=float, nargs="*", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    command = "python experiments/search_accuracy.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )

    params: dict[str, dict] = {m: {} for m in args.methods}
    for p in args.param:
        method, _, pair = p.partition(":")
        name, _, value = pair.partition("=")
        params.setdefault(method, {})[name] = json.loads(value)
    data = load_dataset(args.dataset)
    sizes = resolve_arch(args.arch, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.jsonl"
    done = []
    if runs_path.exists():  # resume: keep finished runs of this same command
        done = [json.loads(line) for line in runs_path.read_text().splitlines() if line.strip()]
    for method in args.methods:
        for seed in args.seeds:
            if any(r["method"] == method and r["seed"] == seed for r in done):
                continue
            start = time.time()
            r = one_run(
                data,
                sizes,
                args.keep,
                method,
                params[method],
                args.budget,
                seed,
                args.backend,
                args.batch_size,
            )
            done.append(r)
            with runs_path.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{method} seed {seed}: test {r['test_accuracy']:.4f} val {r['val_accuracy']:.4f} "
                f"train {r['train_accuracy']:.4f} ({r['evaluations']:.0f} evals, {time.time() - start:.0f} s)",
                flush=True,
            )
    runs = [r for r in done if r["method"] in args.methods and r["seed"] in args.seeds]
    cpu = record_provenance()["provenance"]["machine"]["cpu"]
    header = [
        f"# {args.dataset} {'-'.join(map(str, sizes))}, keep {args.keep}, budget {args.budget} per run",
        "",
        f"`{command}`",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()}; backend {runs[0]['backend']}. "
        "Test accuracy is measured on the held-out test split after each search; the search "
        "saw only training batches and the validation split.",
    ]
    (out / "summary.md").write_text(summarize(runs, header, args.targets))
    plot(runs, out / "curve.png", f"{args.dataset} {'-'.join(map(str, sizes))} keep {args.keep}")
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
