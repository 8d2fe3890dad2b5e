"""Time for each run to reach a test accuracy, from the curves `search_accuracy.py` records.

Each run's curve is the test accuracy of the mask the search would return if
stopped at that moment (the search chose it on validation data), so "time to
reach 0.83" reads off when the returned mask first scored at least 0.83 on
the test split. Targets are fractions (``--fractions``, default 0.95 0.98 1)
of the mean final test accuracy of the reference (the first ``--runs``).

    python experiments/time_to_accuracy.py \\
        --runs experiments/results/local_fashion_mnist/runs.jsonl:accumulate \\
        --runs experiments/results/hebbian_init_fashion_mnist/runs.jsonl:pipeline \\
        --out experiments/results/hebbian_init_fashion_mnist/time_to_accuracy.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np


def load(spec: str) -> tuple[str, list[dict]]:
    """``PATH:METHOD`` → (label, runs of that method in that file)."""
    path, _, method = spec.rpartition(":")
    runs = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    runs = [r for r in runs if r["method"] == method]
    if not runs:
        raise SystemExit(f"no runs of {method!r} in {path}")
    return f"{method} ({Path(path).parent.name})", runs


def time_to(run: dict, target: float) -> float | None:
    """Seconds until the run's returned mask first reached ``target`` test accuracy."""
    points = [(p["seconds"], p["test_accuracy"]) for p in run["curve"]]
    points.append((run["seconds"], run["test_accuracy"]))
    return next((t for t, acc in points if acc >= target), None)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", action="append", required=True, help="PATH/runs.jsonl:METHOD")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.95, 0.98, 1.0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    groups = [load(spec) for spec in args.runs]
    reference = float(np.mean([r["test_accuracy"] for r in groups[0][1]]))
    lines = [
        f"# Time to reach a test accuracy (reference: {groups[0][0]}, mean final {reference:.4f})",
        "",
        "`python experiments/time_to_accuracy.py "
        + shlex.join(sys.argv[1:] if argv is None else argv)
        + "`",
        "",
        "| runs | seeds | final test accuracy (mean) | target | seconds to reach it, per seed | median (of seeds that reached it) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for label, runs in groups:
        final = np.mean([r["test_accuracy"] for r in runs])
        for fraction in args.fractions:
            target = fraction * reference
            times = [time_to(r, target) for r in runs]
            reached = [t for t in times if t is not None]
            median = f"{np.median(reached):.0f} ({len(reached)}/{len(times)})" if reached else "—"
            per_seed = ", ".join("—" if t is None else f"{t:.0f}" for t in times)
            lines.append(
                f"| {label} | {len(runs)} | {final:.4f} | {target:.4f} ({fraction:g}×) | {per_seed} | {median} |"
            )
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
