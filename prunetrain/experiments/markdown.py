"""The markdown of a comparison's report: its tables and its explanatory paragraphs.

Each function turns numbers of :mod:`prunetrain.experiments.aggregate` into
lines of ``summary.md``; :func:`prunetrain.experiments.report.write_report`
puts them together (and :mod:`prunetrain.experiments.html` makes the page).
"""

from __future__ import annotations

import os
import platform

from prunetrain.experiments.aggregate import MethodSummary, hidden_of
from prunetrain.experiments.config import ReportOptions
from prunetrain.experiments.stats import (
    BACKWARD_FORWARDS,
    WILCOXON_MIN_PAIRS,
    PairedDifference,
    min_wilcoxon_p,
)


def _count(x: float | None) -> str:
    """Large counts in short scientific form: 412000000 -> 4.12e8."""
    if x is None:
        return "—"
    if x < 1e4:
        return f"{x:.0f}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _signed(x: float) -> str:
    return f"{x:+.4f}".replace("-", "−")


def _difference(d: PairedDifference | None) -> tuple[str, str]:
    if d is None:
        return "—", "—"
    if d.mean is None:
        return "no common seeds", "—"
    interval = "" if d.ci_low is None else f" [{_signed(d.ci_low)}, {_signed(d.ci_high)}]"
    p = "—" if d.p is None else f"{d.p:.3g}"
    return f"{_signed(d.mean)}{interval}", p


def _overshoot(s: MethodSummary) -> str:
    if s.overshoot_max is None:
        return "—"
    if s.overshoot_unit == "evaluations":
        return f"+{s.overshoot_max:.0f} evals"
    return f"+{s.overshoot_max:.2f} s"


def method_table(rows: list[MethodSummary]) -> list[str]:
    """One row per label of a group: seeds, accuracies with their interval, time and cost."""
    lines = [
        "| method | kind | seeds | test accuracy | val accuracy | wall time (s) | evaluations "
        "| sample-forwards | over budget | keep |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in rows:
        ci = "" if s.test_ci95 is None else f" ± {s.test_ci95:.4f}"
        if s.kind == "search":
            evals = f"{s.evaluations_mean:.0f}"
        elif s.kind == "gradient":
            evals = f"{s.epochs_mean:g} epochs ({s.evaluations_mean:.0f} steps)"
        else:
            evals = "—"
        kind = s.kind if s.kind == "search" else f"{s.kind} baseline ({s.produces})"
        val = "—" if s.val_mean is None else f"{s.val_mean:.4f}"
        lines.append(
            f"| {s.label} | {kind} | {s.seeds} | {s.test_mean:.4f}{ci} | {val} | "
            f"{s.seconds_mean:.2f} | {evals} | {_count(s.sample_forwards_mean)} | "
            f"{_overshoot(s)} | {s.keep_mean:.3f} |"
        )
    return lines


def paired_table(paired: dict) -> list[str]:
    """Each label against the best gradient baseline and the default search, paired by seed."""
    bg, default = paired["best_gradient"], paired["default"]
    if bg is None and default is None:
        return ["No gradient baseline and no default search here: no paired differences."]
    columns = [(name, ref) for name, ref in (("vs_best_gradient", bg), ("vs_default", default))]
    columns = [(name, ref) for name, ref in columns if ref is not None]
    header = (
        "| method | pairs | " + " | ".join(f"− {ref} (95 % CI) | p" for _, ref in columns) + " |"
    )
    lines = [
        "Test accuracy minus that of "
        + " and of ".join(
            f"{'the best gradient baseline' if name == 'vs_best_gradient' else 'the default search'}"
            f", **{ref}**"
            for name, ref in columns
        )
        + ", seed by seed: mean difference [95 % t interval], two-sided Wilcoxon signed-rank p.",
        "",
        header,
        "| --- | ---: | " + " | ".join("---: | ---:" for _ in columns) + " |",
    ]
    for label, entry in paired["methods"].items():
        ds = [entry[name] for name, _ in columns]
        pairs = max((d.n for d in ds if d is not None), default=0)
        cells = " | ".join(" | ".join(_difference(d)) for d in ds)
        lines.append(f"| {label} | {pairs or '—'} | {cells} |")
    return lines


def targets_table(reached: dict | None, options: ReportOptions) -> list[str]:
    """Median wall time and sample-forwards to reach each target fraction of the reference."""
    if reached is None:
        return [
            f"No {options.reference} runs here: no time-to-target (the targets are fractions of "
            "its final accuracy)."
        ]
    ref, acc = reached["reference"], reached["reference_accuracy"]
    targets = reached["targets"]
    header = "| method | " + " | ".join(
        f"{t['fraction']:.0%} ({t['accuracy']:.4f}): time | sample-forwards" for t in targets
    )
    fractions = ", ".join(f"{t['fraction']:.0%}" for t in targets)
    lines = [
        f"Wall time and sample-forwards until the recorded test-accuracy curve first reaches "
        f"{fractions} of **{ref}**'s final accuracy "
        f"({acc:.4f}): the median over seeds (a seed that never gets there counts as never; "
        "“not reached” when half or more never do), with the seeds that reached it. "
        "Only as fine as the recorded points (validations, epochs); a search's clock "
        "includes its validations, a baseline's counts training only.",
        "",
        header + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in targets) + " |",
    ]
    for label in targets[0]["methods"]:
        cells = []
        for t in targets:
            m = t["methods"][label]
            count = f"{m['reached']}/{m['seeds']}"
            if m["seconds"] is None:
                cells.append(f"not reached ({count}) | —")
            else:
                cells.append(f"{m['seconds']:.2f} s ({count}) | {_count(m['sample_forwards'])}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def equal_time_table(table: dict) -> list[str]:
    """Each label's test accuracy at the same seconds of its own wall time."""
    times = table["times"]
    lines = [
        "Test accuracy at each time of the run's own wall time: each seed's last point recorded "
        "at or before it, on the curve of the time-to-target table and the plots; mean over "
        "seeds ± 95 % CI (t). **Bold**: the highest mean at that time. "
        "— : some seed has no recorded point yet. "
        "† finished before this time: its final accuracy "
        "(†(k/n): k of the n seeds had finished and carry their final accuracy).",
        "",
        "| method | " + " | ".join(f"{t:g} s" for t in times) + " |",
        "| --- | " + " | ".join("---:" for _ in times) + " |",
    ]
    for label, cells in table["methods"].items():
        out = []
        for i, c in enumerate(cells):
            if c["mean"] is None:
                out.append("—")
                continue
            ci = "" if c["ci95"] is None else f" ± {c['ci95']:.4f}"
            mark = ""
            if c["finished"] == c["seeds"]:
                mark = " †"
            elif c["finished"]:
                mark = f" †({c['finished']}/{c['seeds']})"
            cell = f"{c['mean']:.4f}{ci}{mark}"
            out.append(f"**{cell}**" if table["ahead"][i] == label else cell)
        lines.append(f"| {label} | " + " | ".join(out) + " |")
    return lines


def sweep_tables(sweep: dict) -> list[str]:
    """A sweep's panels: test accuracy against keep (or width), one column per value."""
    lines = []
    for panel in sweep["panels"]:
        values = panel["values"]
        if sweep["kind"] == "keep":
            title = f"arch {panel['fixed']}"
            heads = [f"keep {v:g}" for v in values]
        else:
            title = f"keep {panel['fixed']:g}"
            by_x = {p["x"]: p["value"] for line in panel["lines"].values() for p in line}
            heads = [f"hidden {hidden_of(by_x[v])}" for v in values]
        lines += [
            "",
            f"{title}: test accuracy, mean ± 95 % CI (t) over seeds",
            "",
            "| method | " + " | ".join(heads) + " |",
            "| --- | " + " | ".join("---:" for _ in heads) + " |",
        ]
        for label, points in panel["lines"].items():
            at = {p["x"]: p for p in points}
            cells = []
            for v in values:
                p = at.get(v)
                if p is None:
                    cells.append("—")
                else:
                    ci = "" if p["test_ci95"] is None else f" ± {p['test_ci95']:.3f}"
                    cells.append(f"{p['test_mean']:.3f}{ci}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def statistics_text(options: ReportOptions) -> str:
    """The paragraph that says how the numbers were computed (intervals, tests, costs)."""
    return (
        "Test accuracy: mean over seeds ± the half-width of the 95 % confidence interval "
        "(Student's t). Runs with the same seed share the frozen network and the data splits, "
        "so methods are compared on paired differences (same dataset, architecture, keep, "
        "init and seed): the mean difference with a Student's t 95 % interval, and a two-sided "
        "Wilcoxon signed-rank p-value (scipy.stats; zero differences dropped; exact without ties, "
        "exact by enumerating all sign flips with ties up to 13 pairs). With n pairs the "
        "exact test cannot give p below 2^(1−n): "
        f"{min_wilcoxon_p(3):g} with 3 seeds, {min_wilcoxon_p(5):g} with 5, so with fewer than "
        f"{WILCOXON_MIN_PAIRS} pairs no difference can reach p < 0.05 — read the interval. "
        "Sample-forwards: samples pushed through the network; a gradient step's backward pass "
        f"counts as {BACKWARD_FORWARDS} forward passes, so a gradient baseline costs "
        f"{1 + BACKWARD_FORWARDS} per training sample of each step. Evaluations: mask "
        "evaluations for searches; for gradient baselines, epochs (and gradient steps) instead."
    )


def budget_text(records: list[dict]) -> str:
    """The paragraph on budgets: the searches', and how the baselines are bounded."""
    budgets = sorted({r["run"]["budget"] for r in records if r["kind"] == "search"})
    if not budgets:
        searches = "There are no searches."
    else:
        which = (
            f"the same budget, **{budgets[0]}**"
            if len(budgets) == 1
            else ("one of the budgets " + ", ".join(f"**{b}**" for b in budgets))
        )
        searches = (
            f"Every search has {which}. The run loop checks it before each step and never cuts "
            "a step short, so a search ends past its budget by less than its last step; "
            "“over budget” is the most any seed went past it."
        )
    return (
        f"{searches} Gradient baselines run their own schedule (epochs; a budget caps them only "
        "when the config gives one), and their wall time is listed next to the searches' for "
        "comparison. Data-free baselines look at no data."
    )


def machines_text(records: list[dict]) -> str:
    """The machines the runs were recorded on (this one, for records that do not say)."""
    recorded = sorted({r.get("versions", {}).get("platform") for r in records} - {None})
    if recorded:
        return "Runs recorded on: " + "; ".join(f"`{p}`" for p in recorded) + "."
    return f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}."
