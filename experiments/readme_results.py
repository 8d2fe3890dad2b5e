"""The README's result tables, made from the committed ``prunetrain compare`` outputs only.

Every number in README.md's "Results so far" block comes from here. The command

    python experiments/readme_results.py

first regenerates each comparison's report from its ``results.jsonl``
(``prunetrain report DIR``: ``summary.md``, ``summary.json``, the plots and
``report.html``; nothing is rerun), then rewrites the block between the
``<!-- results:begin -->`` and ``<!-- results:end -->`` markers of README.md
from those ``summary.json`` files. ``--check`` changes nothing and exits 1
if the README's block differs from what the committed summaries give (a test
runs it); ``--no-report`` skips regenerating the reports.

To remake the results themselves, rerun the comparisons (each resumes: it runs
only what its ``results.jsonl`` lacks, so delete that file to start afresh)::

    prunetrain compare experiments/configs/digits.toml --jobs 2
    prunetrain compare experiments/configs/fashion_mnist.toml --jobs 2
    prunetrain compare experiments/configs/fashion_mnist_10m.toml --jobs 1
    prunetrain compare experiments/configs/fashion_mnist_wide.toml --jobs 1
    prunetrain compare experiments/configs/fashion_mnist_recipes.toml --jobs 1
    prunetrain compare experiments/configs/fashion_mnist_sweep.toml --jobs 2
    prunetrain compare experiments/configs/fashion_mnist_binary.toml --jobs 2

then run this script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"

#: The comparisons whose every method gets a table row: (folder, what it is).
TABLES = (
    (
        "fashion_mnist_recipes",
        "Fashion-MNIST, `probe` for 10 minutes against the gradient baselines at their recipes",
    ),
    ("digits", "Digits, searches of 30 s"),
    ("fashion_mnist", "Fashion-MNIST, searches of 60 s"),
    ("fashion_mnist_10m", "Fashion-MNIST, `probe` for 10 minutes"),
    ("fashion_mnist_wide", "Fashion-MNIST on a wider network, `probe` for 10 minutes"),
)
#: The comparisons that also get an "at equal time" table.
EQUAL_TIME = ("fashion_mnist_recipes",)
SWEEP = "fashion_mnist_sweep"
BINARY = "fashion_mnist_binary"
ALL = [name for name, _ in TABLES] + [SWEEP, BINARY]


def load(name: str) -> dict:
    with open(RESULTS / name / "summary.json") as f:
        return json.load(f)


def accuracy(mean: float, ci: float | None) -> str:
    return f"{mean:.4f}" if ci is None else f"{mean:.4f} ± {ci:.4f}"


def interval(d: dict | None) -> str:
    if not d:
        return ""
    return f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def method_budget(m: dict, budget: str) -> str:
    if m["kind"] == "search":
        return budget
    if m["kind"] == "gradient":
        epochs = m["epochs_mean"]
        if epochs == int(epochs):
            return f"{epochs:g} epochs"
        return f"{epochs:.1f} epochs (mean; it stopped when converged)"
    return "—"


def group_title(g: dict) -> str:
    return f"{g['dataset']} {g['arch']}, keep {g['keep']:g}, init {g['init']}"


def comparison_table(name: str, what: str) -> list[str]:
    s = load(name)
    lines = []
    for g in s["groups"]:
        paired = g["paired"]
        best = paired.get("best_gradient")
        lines += [
            f"**{what}** — {group_title(g)} "
            f"([`experiments/results/{name}/`](experiments/results/{name}/summary.md)):",
            "",
            "| method | kind | budget | test accuracy (mean ± 95 % CI) | wall time (s) "
            f"| paired difference against {best} (mean [95 % CI]) |",
            "| --- | --- | --- | ---: | ---: | ---: |",
        ]
        for m in g["methods"]:
            kind = m["kind"] if m["kind"] != "gradient" else f"gradient ({m['produces']})"
            versus = paired["methods"].get(m["label"], {}).get("vs_best_gradient")
            lines.append(
                f"| `{m['label']}` | {kind} | {method_budget(m, s['budget'])} "
                f"| {accuracy(m['test_mean'], m['test_ci95'])} | {m['seconds_mean']:.1f} "
                f"| {interval(versus)} |"
            )
        lines.append("")
    return lines


def equal_time_table(name: str) -> list[str]:
    """Each method's mean test accuracy at the report's times of its own wall time."""
    lines = []
    for g in load(name)["groups"]:
        at = g["at_equal_time"]
        lines += [
            f"At equal time — {group_title(g)}: test accuracy (mean of the seeds) at each "
            "time of the method's own wall time; * every seed had finished (its final accuracy "
            "carried), – no point recorded yet:",
            "",
            "| method | " + " | ".join(f"{t:g} s" for t in at["times"]) + " |",
            "| --- | " + " | ".join("---:" for _ in at["times"]) + " |",
        ]
        for label, points in at["methods"].items():
            cells = [
                "–"
                if p["mean"] is None
                else f"{p['mean']:.4f}" + ("*" if p["finished"] == p["seeds"] else "")
                for p in points
            ]
            lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def by_cell(name: str) -> dict[tuple[str, float, str], dict]:
    """Each method's summary row by (arch, keep, label)."""
    return {
        (g["arch"], g["keep"], m["label"]): m for g in load(name)["groups"] for m in g["methods"]
    }


def ordered(values) -> list:
    return sorted(set(values), key=lambda v: (len(str(v)), v) if isinstance(v, str) else v)


def sweep_table() -> list[str]:
    s = load(SWEEP)
    cells = by_cell(SWEEP)
    archs = ordered(a for a, _, _ in cells)
    keeps = ordered(k for _, k, _ in cells)
    labels = list(dict.fromkeys(m["label"] for g in s["groups"] for m in g["methods"]))
    lines = [
        f"**Keep × width** — Fashion-MNIST, searches of {s['budget']}, gradient baselines 10 "
        f"epochs, test accuracy (mean ± 95 % CI over 3 seeds) "
        f"([`experiments/results/{SWEEP}/`](experiments/results/{SWEEP}/summary.md)):",
        "",
        "| network | method | " + " | ".join(f"keep {k:g}" for k in keeps) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in keeps) + " |",
    ]
    for arch in archs:
        for label in labels:
            row = [cells.get((arch, k, label)) for k in keeps]
            values = ["" if m is None else accuracy(m["test_mean"], m["test_ci95"]) for m in row]
            lines.append(f"| {arch} | `{label}` | " + " | ".join(values) + " |")
    lines.append("")
    return lines


def binary_table() -> list[str]:
    s = load(BINARY)
    binary, signed = by_cell(BINARY), by_cell(SWEEP)
    archs = ordered(a for a, _, _ in binary)
    keep = ordered(k for _, k, _ in binary)[0]
    labels = list(dict.fromkeys(m["label"] for g in s["groups"] for m in g["methods"]))
    lines = [
        f'**Binary (±1) weights** — the same grid at keep {keep:g} with `init = "binary"`, '
        f"against the sweep's `signed_constant` (the same signs, another scale) "
        f"([`experiments/results/{BINARY}/`](experiments/results/{BINARY}/summary.md)):",
        "",
        "| method | " + " | ".join(f"{a}: binary | {a}: signed constant" for a in archs) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in archs) + " |",
    ]
    for label in labels:
        values = []
        for arch in archs:
            for cells in (binary, signed):
                m = cells.get((arch, keep, label))
                values.append("" if m is None else accuracy(m["test_mean"], m["test_ci95"]))
        lines.append(f"| `{label}` | " + " | ".join(values) + " |")
    lines.append("")
    return lines


def block() -> str:
    lines = [
        BEGIN,
        "<!-- made by `python experiments/readme_results.py` from the committed comparisons;"
        " edit that script, not this block -->",
        "",
    ]
    for name, what in TABLES:
        lines += comparison_table(name, what)
        if name in EQUAL_TIME:
            lines += equal_time_table(name)
    lines += sweep_table()
    lines += binary_table()
    lines.append(END)
    return "\n".join(lines)


def replace_block(text: str, new: str) -> str:
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"README.md has no {BEGIN} … {END} block")
    return text[:start] + new + text[stop + len(END) :]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is not current")
    parser.add_argument("--no-report", action="store_true", help="do not regenerate the reports")
    args = parser.parse_args(argv)
    if not args.check and not args.no_report:
        from prunetrain.experiments import report_folders

        for name in ALL:
            report_folders(
                [RESULTS / name], command=f"prunetrain report experiments/results/{name}"
            )
    text = README.read_text()
    new = replace_block(text, block())
    if args.check:
        if new != text:
            print("README.md's results block is not what the committed summaries give; run "
                  "python experiments/readme_results.py", file=sys.stderr)  # fmt: skip
            return 1
        print("README.md's results block matches the committed summaries")
        return 0
    if new != text:
        README.write_text(new)
    print(f"README.md's results block made from {len(ALL)} comparisons")
    return 0


if __name__ == "__main__":
    sys.exit(main())
