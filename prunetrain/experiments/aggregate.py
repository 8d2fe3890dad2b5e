"""A comparison's numbers: records grouped and summarised, compared, swept.

Runs are grouped by (dataset, architecture, keep, init); inside a group, by
label (the config's name for a method or baseline). Per label a
:class:`MethodSummary` (test accuracy, mean over seeds with a Student's t 95 %
interval, time and cost); between labels, paired differences by seed against
the best gradient baseline and the default search, the time and
sample-forwards to reach fractions of the reference's accuracy, accuracy at
equal wall time; across groups, the sweeps over keep and width.
:mod:`prunetrain.experiments.stats` has the statistics,
:mod:`prunetrain.experiments.markdown` and :mod:`prunetrain.experiments.report`
turn these numbers into a report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunetrain.errors import PrunetrainError
from prunetrain.experiments.config import ReportOptions
from prunetrain.experiments.stats import (
    accuracy_at,
    ci95,
    forward_cost,
    median_or_none,
    paired_difference,
    time_to_target,
)


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
