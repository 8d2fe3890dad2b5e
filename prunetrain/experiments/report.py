"""A comparison's report: ``summary.md``, ``summary.json``, the plots and ``report.html``.

Runs are grouped by (dataset, architecture, keep, init); inside a group, by
label (the config's name for a method or baseline). Per label: test accuracy,
mean over seeds with a Student's t 95 % interval. Between labels: paired
differences by seed against the best gradient baseline and against the
default search, with a Wilcoxon signed-rank p-value; the wall time and
sample-forwards to reach fractions of edge-popup's final accuracy; each
label's test accuracy at equal times of its own wall time; Pareto fronts of
accuracy against cost; and, when a comparison has several keeps or
architectures, accuracy against keep and against width
(:mod:`prunetrain.experiments.stats` has the statistics,
:mod:`prunetrain.experiments.plots` the figures).

Everything is computed from the records of ``results.jsonl``, so
:func:`report_folders` (``prunetrain report DIR``) regenerates a report
without rerunning anything, and ``compare`` calls the same
:func:`write_report` at its end.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.experiments import plots as figures
from prunetrain.experiments.stats import (
    BACKWARD_FORWARDS,
    WILCOXON_MIN_PAIRS,
    PairedDifference,
    accuracy_at,
    ci95,
    forward_cost,
    median_or_none,
    min_wilcoxon_p,
    paired_difference,
    pareto_front,
    time_to_target,
)
from prunetrain.files import atomic_write, write_json

__all__ = [
    "MethodSummary",
    "ReportOptions",
    "ci95",
    "report_folders",
    "summarize",
    "write_report",
]

RESULTS = "results.jsonl"
SUMMARY_JSON = "summary.json"
HTML_PAGE = "report.html"


#: The options that are lists of numbers: which values are allowed, and what is expected.
_NUMBER_LISTS = {
    "targets": (
        lambda t: 0 < t <= 2,
        "fractions of the reference's accuracy in (0, 2], e.g. [0.9, 0.95, 0.98]",
    ),
    "times": (lambda t: 0 < t < math.inf, "seconds above 0, e.g. [5, 15, 60, 300, 600]"),
}


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """What a report compares against; a config's ``[report]`` table.

    Attributes
    ----------
    targets : tuple of float
        Time-to-target thresholds, as fractions of the reference's final
        test accuracy (mean over seeds).
    reference : str
        Label (or method name) whose final accuracy the targets are fractions of.
    default : str, optional
        Label (or method name) of the default search: paired differences are
        taken against it as well as against the best gradient baseline. None:
        the package's default method (``prunetrain.search.DEFAULT_METHOD``).
    times : tuple of float
        Seconds of each run's own wall time at which the "at equal time"
        table reads every label's test accuracy.
    """

    targets: tuple[float, ...] = (0.90, 0.95, 0.98)
    reference: str = "edge-popup"
    default: str | None = None
    times: tuple[float, ...] = (5.0, 15.0, 60.0, 300.0, 600.0)

    @classmethod
    def parse(cls, raw: Mapping | None, where: str = "[report]") -> ReportOptions:
        """Check a ``[report]`` table (or a ``summary.json``'s ``options``) and build the options.

        Examples
        --------
        >>> ReportOptions.parse({"targets": [0.5, 0.9]}).targets
        (0.5, 0.9)
        """
        raw = {k: v for k, v in dict(raw or {}).items() if v is not None}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields
        if unknown:
            raise PrunetrainError(
                f"{where}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"expected {', '.join(sorted(fields))}"
            )
        out = {}
        for name, (inside, expected) in _NUMBER_LISTS.items():
            if name in raw:
                values = raw[name]
                if (
                    not isinstance(values, (list, tuple))
                    or not values
                    or not all(
                        isinstance(t, (int, float)) and not isinstance(t, bool) and inside(t)
                        for t in values
                    )
                ):
                    raise PrunetrainError(
                        f"{where}: {name} must be a non-empty list of {expected}; got {values!r}"
                    )
                out[name] = tuple(float(t) for t in values)
        for name in ("reference", "default"):
            if name in raw:
                if not isinstance(raw[name], str) or not raw[name]:
                    raise PrunetrainError(f"{where}: {name} must be a label, got {raw[name]!r}")
                out[name] = raw[name]
        return cls(**out)

    def to_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "targets": list(self.targets),
            "times": list(self.times),
        }


@dataclasses.dataclass
class MethodSummary:
    """Statistics of one label in one group, over its seeds."""

    label: str
    method: str
    kind: str  # "search", "gradient" or "data-free"
    produces: str  # "ticket" or "weights"
    seeds: int
    test_mean: float
    test_ci95: float | None
    test_values: list[float]
    seed_list: list[int]  # the seed of each of test_values
    val_mean: float | None
    seconds_mean: float
    evaluations_mean: float
    sample_forwards_mean: float  # forward-pass equivalents (a backward pass counts as two)
    epochs_mean: float | None
    keep_mean: float
    budget: str | None
    overshoot_max: float | None  # searches: most any seed went past the budget
    overshoot_unit: str | None  # "evaluations" or "seconds"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def test_by_seed(self) -> dict[int, float]:
        return dict(zip(self.seed_list, self.test_values))


def kind_of(record: dict) -> tuple[str, str]:
    """``(kind, produces)`` of a record: search / gradient / data-free, ticket / weights."""
    if record["kind"] == "search":
        return "search", "ticket"
    from prunetrain.baselines import BASELINES

    cls = BASELINES.get(record["run"]["method"])
    trains = True if cls is None else cls.trains
    produces = record.get("produces", "ticket")
    return ("gradient" if trains else "data-free"), produces


def group_of(record: dict) -> tuple[str, str, float, str]:
    """The group of a record: ``(dataset, arch, keep, init)``; runs in it share seeds' networks."""
    run = record["run"]
    return (run["dataset"], run["arch"], run["keep"], run["options"].get("init", "signed_constant"))


def overshoot(record: dict) -> tuple[float | None, str | None]:
    """How far a search went past its budget, and the unit; ``(None, None)`` for a baseline.

    Records from before the run loop recorded it get it from their totals
    (for a time budget that includes the final validation).
    """
    if record["kind"] != "search":
        return None, None
    from prunetrain.problem import Budget

    budget = Budget.parse(record["run"]["budget"])
    unit = "evaluations" if budget.evaluations is not None else "seconds"
    if "budget_overshoot" in record:
        return float(record["budget_overshoot"]), unit
    if record.get("stopped_by") != "budget":
        return 0.0, unit
    used = record["evaluations"] if unit == "evaluations" else record["seconds"]
    limit = budget.evaluations if unit == "evaluations" else budget.seconds
    return max(0.0, float(used) - limit), unit


def summarize(records: list[dict]) -> dict[tuple, list[MethodSummary]]:
    """Per group ``(dataset, arch, keep, init)``, one :class:`MethodSummary` per label, best first.

    Raises :class:`PrunetrainError` if a label has two different runs of the
    same seed in a group (records of two configs that use the same label).
    """
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        groups.setdefault(group_of(r), {}).setdefault(r["label"], []).append(r)
    out = {}
    for key, by_label in groups.items():
        rows = []
        for label, rs in by_label.items():
            seeds = [r["run"]["seed"] for r in rs]
            twice = sorted({s for s in seeds if seeds.count(s) > 1})
            if twice:
                raise PrunetrainError(
                    f"{label!r} has {seeds.count(twice[0])} different runs of seed {twice[0]} "
                    f"in {group_title(key)}: records of different configs under one label; "
                    "report them separately"
                )
            kind, produces = kind_of(rs[0])
            test = [r["test_accuracy"] for r in rs]
            val = [r["val_accuracy"] for r in rs if r.get("val_accuracy") is not None]
            epochs = [r["epochs"] for r in rs if r.get("epochs") is not None]
            overs = [overshoot(r) for r in rs]
            rows.append(
                MethodSummary(
                    label=label,
                    method=rs[0]["run"]["method"],
                    kind=kind,
                    produces=produces,
                    seeds=len(rs),
                    test_mean=float(np.mean(test)),
                    test_ci95=ci95(test),
                    test_values=test,
                    seed_list=seeds,
                    val_mean=float(np.mean(val)) if val else None,
                    seconds_mean=float(np.mean([r["seconds"] for r in rs])),
                    evaluations_mean=float(np.mean([r["evaluations"] for r in rs])),
                    sample_forwards_mean=float(
                        np.mean([forward_cost(r.get("sample_forwards", 0.0), kind) for r in rs])
                    ),
                    epochs_mean=float(np.mean(epochs)) if epochs else None,
                    keep_mean=float(np.mean([r["keep_fraction"] for r in rs])),
                    budget=rs[0]["run"]["budget"],
                    overshoot_max=None if overs[0][0] is None else max(o for o, _ in overs),
                    overshoot_unit=overs[0][1],
                )
            )
        rows.sort(key=lambda s: (-s.test_mean, s.label))
        out[key] = rows
    return out


def group_title(key: tuple) -> str:
    dataset, arch, keep, init = key
    return f"{dataset} {arch}, keep {keep:g}, init {init}"


def group_slug(key: tuple) -> str:
    dataset, arch, keep, init = key
    return f"{Path(dataset).stem}_{arch}_keep{keep:g}_{init}"


# --- comparisons inside a group ----------------------------------------------------------------


def find_label(rows: list[MethodSummary], name: str, kinds: Sequence[str]) -> MethodSummary | None:
    """The row labelled ``name``, else the first of ``kinds`` whose method is ``name``."""
    for s in rows:
        if s.label == name:
            return s
    return next((s for s in rows if s.method == name and s.kind in kinds), None)


def paired_comparisons(rows: list[MethodSummary], options: ReportOptions) -> dict:
    """Every label's paired differences against the best gradient baseline and the default search."""
    best_gradient = next((s for s in rows if s.kind == "gradient"), None)  # rows are best first
    from prunetrain.search import DEFAULT_METHOD

    default = find_label(rows, options.default or DEFAULT_METHOD, ("search",))
    out: dict = {
        "best_gradient": best_gradient and best_gradient.label,
        "default": default and default.label,
        "methods": {},
    }
    for s in rows:
        entry = {}
        for name, ref in (("vs_best_gradient", best_gradient), ("vs_default", default)):
            if ref is None or ref.label == s.label:
                entry[name] = None
            else:
                entry[name] = paired_difference(
                    s.test_by_seed(), ref.test_by_seed(), s.label, ref.label
                )
        out["methods"][s.label] = entry
    return out


def targets_reached(
    records: list[dict], rows: list[MethodSummary], options: ReportOptions
) -> dict | None:
    """Time and sample-forwards to each target, per label (median over seeds); None without a reference."""
    reference = find_label(rows, options.reference, ("gradient", "search", "data-free"))
    if reference is None:
        return None
    kinds = {s.label: s.kind for s in rows}
    out = {
        "reference": reference.label,
        "reference_accuracy": reference.test_mean,
        "targets": [],
    }
    for fraction in options.targets:
        accuracy = fraction * reference.test_mean
        methods = {}
        for s in rows:
            per_seed = []
            for r in records:
                if r["label"] == s.label:
                    hit = time_to_target(r["history"], accuracy, kinds[s.label])
                    per_seed.append(
                        {
                            "seed": r["run"]["seed"],
                            "seconds": hit.seconds,
                            "sample_forwards": hit.sample_forwards,
                        }
                    )
            methods[s.label] = {
                "seconds": median_or_none([p["seconds"] for p in per_seed]),
                "sample_forwards": median_or_none([p["sample_forwards"] for p in per_seed]),
                "reached": sum(p["seconds"] is not None for p in per_seed),
                "seeds": len(per_seed),
                "per_seed": per_seed,
            }
        out["targets"].append({"fraction": fraction, "accuracy": accuracy, "methods": methods})
    return out


def at_equal_time(records: list[dict], rows: list[MethodSummary], times: Sequence[float]) -> dict:
    """Each label's test accuracy at each of ``times`` seconds of its runs' own wall time.

    Per seed, the recorded curve's value at that time (:func:`accuracy_at`:
    the last point at or before it; a run that had ended, its final
    accuracy). Per label, the mean over seeds with its Student's t 95 %
    interval, or None while some seed has no point yet (as on the plots, so
    that the mean never jumps between the seeds that happen to have
    started). ``ahead`` names, per time, the label with the highest mean.
    """
    methods = {}
    for s in rows:
        cells = []
        runs = [r for r in records if r["label"] == s.label]
        for t in times:
            per_seed = []
            for r in runs:
                at = accuracy_at(r["history"], t, ended=r["seconds"], final=r["test_accuracy"])
                per_seed.append(
                    {"seed": r["run"]["seed"], "accuracy": at.accuracy, "finished": at.finished}
                )
            values = [p["accuracy"] for p in per_seed]
            complete = all(v is not None for v in values)
            cells.append(
                {
                    "seconds": t,
                    "mean": float(np.mean(values)) if complete else None,
                    "ci95": ci95(values) if complete else None,
                    "seeds": len(per_seed),
                    "finished": sum(p["finished"] for p in per_seed),
                    "per_seed": per_seed,
                }
            )
        methods[s.label] = cells
    ahead = []
    for i in range(len(times)):
        means = [(cells[i]["mean"], label) for label, cells in methods.items()]
        means = [(m, label) for m, label in means if m is not None]
        # Highest mean; on a tie the label first in the table (best final accuracy).
        ahead.append(max(means, key=lambda m: m[0])[1] if means else None)
    return {"times": list(times), "methods": methods, "ahead": ahead}


# --- sweeps ---------------------------------------------------------------------------------


def arch_weights(arch: str) -> int:
    """Weights of a fully connected network ``"784-300-100-10"`` (no biases).

    Examples
    --------
    >>> arch_weights("64-32-10")
    2368
    """
    sizes = [int(x) for x in arch.split("-")]
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def hidden_of(arch: str) -> str:
    """``"784-300-100-10"`` -> ``"300-100"`` (the part a width sweep changes)."""
    parts = arch.split("-")
    return "-".join(parts[1:-1]) or arch


def sweeps(groups: dict[tuple, list[MethodSummary]]) -> list[dict]:
    """Sweeps over keep (fixed architecture) and over width (fixed keep) found among the groups.

    One entry per ``(kind, dataset, init)``, with one panel per architecture
    (keep sweeps) or per keep (width sweeps) that has at least two values.
    """
    out = []
    by_data: dict[tuple, dict[tuple, list[MethodSummary]]] = {}
    for key, rows in groups.items():
        dataset, arch, keep, init = key
        by_data.setdefault((dataset, init), {})[(arch, keep)] = rows
    for (dataset, init), cells in by_data.items():
        for kind, fixed_index in (("keep", 0), ("width", 1)):
            panels = []
            for fixed in sorted({c[fixed_index] for c in cells}, key=_sort_key(kind)):
                swept = [c for c in cells if c[fixed_index] == fixed]
                if len(swept) < 2:
                    continue
                lines: dict[str, list[dict]] = {}
                for cell in sorted(swept, key=lambda c: _value(kind, c)):
                    for s in cells[cell]:
                        lines.setdefault(s.label, []).append(
                            {
                                "value": cell[1] if kind == "keep" else cell[0],
                                "x": _value(kind, cell),
                                "test_mean": s.test_mean,
                                "test_ci95": s.test_ci95,
                                "seeds": s.seeds,
                            }
                        )
                panels.append(
                    {
                        "fixed": fixed,
                        "values": sorted({_value(kind, c) for c in swept}),
                        "lines": lines,
                    }
                )
            if panels:
                out.append({"kind": kind, "dataset": dataset, "init": init, "panels": panels})
    return out


def _value(kind: str, cell: tuple) -> float:
    arch, keep = cell
    return float(keep) if kind == "keep" else float(arch_weights(arch))


def _sort_key(kind: str):
    # Keep sweeps have one panel per architecture (by size); width sweeps one per keep.
    return (lambda arch: arch_weights(arch)) if kind == "keep" else (lambda keep: keep)


# --- the markdown ------------------------------------------------------------------------------


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


def _method_table(rows: list[MethodSummary]) -> list[str]:
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


def _paired_table(paired: dict) -> list[str]:
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


def _targets_table(reached: dict | None, options: ReportOptions) -> list[str]:
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


def _equal_time_table(table: dict) -> list[str]:
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


def _sweep_tables(sweep: dict) -> list[str]:
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


def _statistics_text(options: ReportOptions) -> str:
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


def _budget_text(records: list[dict]) -> str:
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


def _machines(records: list[dict]) -> str:
    recorded = sorted({r.get("versions", {}).get("platform") for r in records} - {None})
    if recorded:
        return "Runs recorded on: " + "; ".join(f"`{p}`" for p in recorded) + "."
    return f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}."


def write_report(
    records: list[dict],
    out: str | os.PathLike,
    *,
    name: str,
    commands: Sequence[str] = (),
    options: ReportOptions | None = None,
    regenerated_by: str | None = None,
    plots: bool = True,
) -> Path:
    """Write ``summary.md``, ``summary.json``, the PNG plots and ``report.html`` into ``out``.

    Parameters
    ----------
    records : list of dict
        Records of ``results.jsonl`` (one per run).
    out : path
        The folder to write into.
    name : str
        The comparison's name (the title).
    commands : sequence of str
        The ``prunetrain compare`` command(s) that made the records, quoted
        in the rerun line.
    options : ReportOptions, optional
        Targets, references and equal times; by default 90, 95 and 98 % of
        ``edge-popup``, the package's default search method, and 5, 15, 60,
        300 and 600 s.
    regenerated_by : str, optional
        The ``prunetrain report`` command, when the report is regenerated.
    plots : bool
        Draw the plots; without, only the tables and the page are written
        (the page embeds the plots already in ``out``).

    Returns
    -------
    Path
        ``out/summary.md``.
    """
    out = Path(out)
    options = options or ReportOptions()
    groups = summarize(records)
    single = len(groups) == 1
    if commands:
        made = "Made by " + " and ".join(f"`{c}`" for c in commands)
        rerun = "; rerun with the same command (it runs only what is missing from `results.jsonl`)"
    else:
        made, rerun = "Made from `results.jsonl`", " (the command that made it was not recorded)"
    lines = [
        f"# Comparison: {name}",
        "",
        made
        + rerun
        + (f"; this report regenerated by `{regenerated_by}`." if regenerated_by else "."),
        "",
        _budget_text(records),
        "",
        _statistics_text(options),
        "",
        _machines(records),
    ]
    found = sweeps(groups)
    data_keys = {(s["dataset"], s["init"]) for s in found}
    plot_jobs = []
    if found:
        lines += ["", "## Sweeps"]
    for sweep in found:
        suffix = "" if len(data_keys) == 1 else f"_{Path(sweep['dataset']).stem}_{sweep['init']}"
        file = f"sweep_{sweep['kind']}{suffix}.png"
        what = "keep" if sweep["kind"] == "keep" else "width (weights of the frozen network)"
        lines += [
            "",
            f"### Test accuracy against {what}: {sweep['dataset']}, init {sweep['init']}",
            *_sweep_tables(sweep),
            "",
            f"![test accuracy against {sweep['kind']}]({file})",
        ]
        plot_jobs.append(functools.partial(_plot_sweep, sweep, out / file))
    json_groups = []
    for key, rows in groups.items():
        suffix = "" if single else f"_{group_slug(key)}"
        group_records = [r for r in records if group_of(r) == key]
        paired = paired_comparisons(rows, options)
        reached = targets_reached(group_records, rows, options)
        equal_time = at_equal_time(group_records, rows, options.times)
        lines += [
            "",
            f"## {group_title(key)}",
            "",
            *_method_table(rows),
            "",
            "### Paired differences",
            "",
            *_paired_table(paired),
            "",
            "### Time to target",
            "",
            *_targets_table(reached, options),
            "",
            "### At equal time",
            "",
            *_equal_time_table(equal_time),
            "",
            *(f"![{alt}]({stem}{suffix}.png)" for stem, alt in GROUP_PLOTS),
        ]
        plot_jobs.append(
            functools.partial(_draw_group, out, suffix, group_records, rows, group_title(key))
        )
        json_groups.append(
            {
                "dataset": key[0],
                "arch": key[1],
                "keep": key[2],
                "init": key[3],
                "methods": [s.to_dict() for s in rows],
                "pareto": {cost: _front(rows, cost) for cost in ("seconds", "sample_forwards")},
                "paired": {
                    **paired,
                    "methods": {
                        label: {k: (d.to_dict() if d else None) for k, d in entry.items()}
                        for label, entry in paired["methods"].items()
                    },
                },
                "time_to_target": reached,
                "at_equal_time": equal_time,
            }
        )
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    for job in plot_jobs if plots else ():
        job()
    atomic_write(out / "summary.md", lambda f: f.write(text), binary=False)
    budgets = sorted({r["run"]["budget"] for r in records if r["kind"] == "search"})
    write_json(
        out / SUMMARY_JSON,
        {
            "name": name,
            "budget": budgets[0] if len(budgets) == 1 else budgets,
            "commands": list(commands),
            "regenerated_by": regenerated_by,
            "options": options.to_dict(),
            "run_keys": [r["key"] for r in records],
            "statistics": _statistics_text(options),
            "groups": json_groups,
            "sweeps": found,
        },
    )
    from prunetrain.experiments.html import write_page

    write_page(out / "summary.md", out / HTML_PAGE, title=f"Comparison: {name}")
    return out / "summary.md"


#: The plots of each group: file stem and alt text.
GROUP_PLOTS = (
    ("test_vs_time", "test accuracy against wall time"),
    ("test_vs_evaluations", "test accuracy against evaluations"),
    ("final_accuracy", "final test accuracy"),
    ("pareto_time", "final test accuracy against wall time, Pareto front"),
    ("pareto_forwards", "final test accuracy against sample-forwards, Pareto front"),
)


def _front(rows: list[MethodSummary], cost: str) -> list[str]:
    """Labels on the Pareto front of final test accuracy against ``cost`` (a ``*_mean`` field)."""
    on = pareto_front([getattr(s, f"{cost}_mean") for s in rows], [s.test_mean for s in rows])
    return [s.label for s, front in zip(rows, on) if front]


def _draw_group(out: Path, suffix: str, records: list[dict], rows: list, title: str) -> None:
    path = {stem: out / f"{stem}{suffix}.png" for stem, _ in GROUP_PLOTS}
    figures.plot_curves(records, rows, "seconds", path["test_vs_time"], title)
    figures.plot_curves(records, rows, "evaluations", path["test_vs_evaluations"], title)
    figures.plot_final(rows, path["final_accuracy"], title)
    figures.plot_pareto(rows, "seconds", path["pareto_time"], title)
    figures.plot_pareto(rows, "sample_forwards", path["pareto_forwards"], title)


def _plot_sweep(sweep: dict, path: Path) -> None:
    panels = []
    for panel in sweep["panels"]:
        if sweep["kind"] == "keep":
            title, ticks = f"arch {panel['fixed']}", None
        else:
            by_x = {p["x"]: p["value"] for line in panel["lines"].values() for p in line}
            title = f"keep {panel['fixed']:g}"
            ticks = [(x, hidden_of(by_x[x])) for x in panel["values"]]
        lines = {
            label: [(p["x"], p["test_mean"], p["test_ci95"]) for p in points]
            for label, points in panel["lines"].items()
        }
        panels.append({"title": title, "x_ticks": ticks, "lines": lines})
    keep = sweep["kind"] == "keep"
    figures.plot_sweep(
        panels,
        "keep (fraction of weights kept)"
        if keep
        else "weights of the frozen network (hidden sizes)",
        path,
        f"{sweep['dataset']}, init {sweep['init']}: test accuracy against "
        f"{'keep' if keep else 'width'}",
        log_x=not keep,
    )


# --- prunetrain report ----------------------------------------------------------------------


def _read_folder(folder: Path) -> tuple[list[dict], dict]:
    """The records of ``folder/results.jsonl`` and what its last ``summary.json`` said."""
    from prunetrain.experiments.runner import read_results

    results = folder / RESULTS
    if not results.is_file():
        raise PrunetrainError(f"no {RESULTS} in {folder}: nothing to report")
    records = read_results(results)
    if not records:
        raise PrunetrainError(f"{results} holds no finished runs")
    previous: dict = {}
    try:
        loaded = json.loads((folder / SUMMARY_JSON).read_text())
        previous = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    keys = previous.get("run_keys")
    if isinstance(keys, list) and keys and all(k in records for k in keys):
        # The runs the last report covered; results.jsonl keeps runs of old configs after them.
        return [records[k] for k in keys], previous
    return list(records.values()), previous


def report_folders(
    folders: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    overrides: Mapping | None = None,
    command: str | None = None,
    plots: bool = True,
) -> list[Path]:
    """Regenerate the report of each comparison folder from its ``results.jsonl``; run nothing.

    Parameters
    ----------
    folders : sequence of paths
        Folders written by ``prunetrain compare``.
    out : path, optional
        Write one report of all the folders' runs here instead of one in each.
    overrides : mapping, optional
        Report options (``targets``, ``reference``, ``default``, ``times``,
        as in a config's ``[report]``) to use instead of those the folder's last
        ``summary.json`` kept; the rest stay as they were, else the defaults.
    command : str, optional
        The ``prunetrain report`` command line, quoted in the report.
    plots : bool
        Draw the plots too (see :func:`write_report`).

    Returns
    -------
    list of Path
        The ``summary.md`` files written.

    Every folder is read and checked before anything is written.
    """
    if not folders:
        raise PrunetrainError("give at least one comparison folder")
    ReportOptions.parse(overrides)  # a bad override fails before anything is read
    read = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise PrunetrainError(f"{folder} is not a folder")
        read.append((folder, *_read_folder(folder)))

    def options_of(previous: dict) -> ReportOptions:
        saved = previous.get("options")
        saved = saved if isinstance(saved, dict) else {}
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        return ReportOptions.parse({**saved, **given})

    def commands_of(previous: dict) -> list[str]:
        saved = previous.get("commands") or []
        return [c for c in saved if isinstance(c, str)]

    jobs = []
    if out is None:
        for folder, records, previous in read:
            summarize(records)  # raises on conflicting records before anything is written
            name = previous.get("name") or folder.name
            jobs.append((records, folder, name, commands_of(previous), options_of(previous)))
    else:
        merged: dict[str, dict] = {}
        for _, records, _ in read:
            merged.update({r["key"]: r for r in records})
        records = list(merged.values())
        summarize(records)
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise PrunetrainError(f"--out {out} exists and is not a folder")
        commands = [c for _, _, previous in read for c in commands_of(previous)]
        jobs.append((records, out, out.name, commands, options_of(read[0][2])))
    return [
        write_report(
            records,
            folder,
            name=name,
            commands=commands,
            options=opts,
            regenerated_by=command,
            plots=plots,
        )
        for records, folder, name, commands, opts in jobs
    ]
