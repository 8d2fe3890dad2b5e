"""A comparison's report: per-method statistics over seeds, ``summary.md`` and the plots.

Runs are grouped by (dataset, architecture, keep); inside a group, by label
(the config's name for a method or baseline). Test accuracy is summarised as
the mean over seeds with a 95 % confidence interval from Student's t.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import warnings
from pathlib import Path

import numpy as np

from prunetrain.experiments.config import Comparison
from prunetrain.files import atomic_write, write_json


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
    val_mean: float | None
    seconds_mean: float
    evaluations_mean: float
    epochs_mean: float | None
    keep_mean: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def ci95(values) -> float | None:
    """Half-width of the 95 % confidence interval of the mean (Student's t); None for one value.

    Examples
    --------
    >>> round(ci95([0.8, 0.9, 1.0]), 4)
    0.2484
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return None
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))


def kind_of(record: dict) -> tuple[str, str]:
    """``(kind, produces)`` of a record: search / gradient / data-free, ticket / weights."""
    if record["kind"] == "search":
        return "search", "ticket"
    from prunetrain.baselines import BASELINES

    cls = BASELINES.get(record["run"]["method"])
    trains = True if cls is None else cls.trains
    produces = record.get("produces", "ticket")
    return ("gradient" if trains else "data-free"), produces


def summarize(records: list[dict]) -> dict[tuple, list[MethodSummary]]:
    """Per group ``(dataset, arch, keep)``, one :class:`MethodSummary` per label, best test first."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in records:
        run = r["run"]
        key = (run["dataset"], run["arch"], run["keep"])
        groups.setdefault(key, {}).setdefault(r["label"], []).append(r)
    out = {}
    for key, by_label in groups.items():
        rows = []
        for label, rs in by_label.items():
            kind, produces = kind_of(rs[0])
            test = [r["test_accuracy"] for r in rs]
            val = [r["val_accuracy"] for r in rs if r.get("val_accuracy") is not None]
            epochs = [r["epochs"] for r in rs if r.get("epochs") is not None]
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
                    val_mean=float(np.mean(val)) if val else None,
                    seconds_mean=float(np.mean([r["seconds"] for r in rs])),
                    evaluations_mean=float(np.mean([r["evaluations"] for r in rs])),
                    epochs_mean=float(np.mean(epochs)) if epochs else None,
                    keep_mean=float(np.mean([r["keep_fraction"] for r in rs])),
                )
            )
        rows.sort(key=lambda s: (-s.test_mean, s.label))
        out[key] = rows
    return out


def group_slug(key: tuple) -> str:
    dataset, arch, keep = key
    return f"{Path(dataset).stem}_{arch}_keep{keep:g}"


def write_report(comparison: Comparison, records: list[dict], out: str | os.PathLike) -> Path:
    """Write ``summary.md``, ``summary.json`` and the PNG plots of every group into ``out``."""
    out = Path(out)
    groups = summarize(records)
    single = len(groups) == 1
    lines = [
        f"# Comparison: {comparison.name}",
        "",
        f"Config `{comparison.source or comparison.name}`; rerun with "
        f"`prunetrain compare {comparison.source or 'CONFIG.toml'} --jobs 2 --out {out}`.",
        "",
        f"Every search has the same budget, **{comparison.budget}**. Gradient baselines run their "
        "own schedule (epochs; a budget caps them only when the config gives one), and their "
        "wall time is listed next to the searches' for comparison. Data-free baselines look "
        "at no data. Test accuracy: mean over seeds ± the half-width of the 95 % confidence "
        "interval (Student's t). Evaluations: mask evaluations for searches; for gradient "
        "baselines, epochs (and gradient steps) instead.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}.",
    ]
    for key, rows in groups.items():
        dataset, arch, keep = key
        suffix = "" if single else f"_{group_slug(key)}"
        lines += [
            "",
            f"## {dataset} {arch}, keep {keep:g}",
            "",
            "| method | kind | seeds | test accuracy | val accuracy | wall time (s) | evaluations | keep |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
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
                f"{s.seconds_mean:.2f} | {evals} | {s.keep_mean:.3f} |"
            )
        lines += [
            "",
            f"![test accuracy against wall time](test_vs_time{suffix}.png)",
            f"![test accuracy against evaluations](test_vs_evaluations{suffix}.png)",
            f"![final test accuracy](final_accuracy{suffix}.png)",
        ]
        group_records = [
            r for r in records if (r["run"]["dataset"], r["run"]["arch"], r["run"]["keep"]) == key
        ]
        title = f"{dataset} {arch}, keep {keep:g}"
        plot_curves(group_records, rows, "seconds", out / f"test_vs_time{suffix}.png", title)
        plot_curves(
            group_records, rows, "evaluations", out / f"test_vs_evaluations{suffix}.png", title
        )
        plot_final(rows, out / f"final_accuracy{suffix}.png", title)
    text = "\n".join(lines) + "\n"
    atomic_write(out / "summary.md", lambda f: f.write(text), binary=False)
    write_json(
        out / "summary.json",
        {
            "name": comparison.name,
            "budget": comparison.budget,
            "groups": [
                {"dataset": k[0], "arch": k[1], "keep": k[2], "methods": [s.to_dict() for s in v]}
                for k, v in groups.items()
            ],
        },
    )
    return out / "summary.md"


# --- plots ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def step_curve(rows: list[dict], x_key: str, grid: np.ndarray) -> np.ndarray:
    """Test accuracy of a run on ``grid``: the last recorded value at or before each point.

    Before the first row there is no value (NaN); after the last, the last holds (the run's result).
    """
    points = [(r[x_key], r["test_accuracy"]) for r in rows if r.get("test_accuracy") is not None]
    if not points:
        return np.full(len(grid), np.nan)
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    index = np.searchsorted(xs, grid, side="right") - 1
    return np.where(index >= 0, ys[np.clip(index, 0, len(ys) - 1)], np.nan)


def plot_curves(records: list[dict], rows: list, x_key: str, path: Path, title: str) -> None:
    """Mean test accuracy over seeds against ``x_key`` per label, with a min–max band.

    Both axes are logarithmic. Against wall time, gradient baselines are
    curves (dashed) like the searches; against evaluations — not their currency — they and the
    data-free baselines are horizontal lines at their final mean test accuracy.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    searches = [s for s in rows if s.kind == "search"]
    # Twenty distinct colours, then the same again dash-dotted: ten repeat too soon.
    palette = plt.get_cmap("tab20").colors
    baselines = [s for s in rows if s.kind != "search"]
    # Log scale: gradient baselines take a fraction of the searches' time, and
    # random search makes many more (cheaper) evaluations than the local searches.
    xs = [row[x_key] for r in records for row in r["history"] if row[x_key] > 0]
    lo = max(min(xs, default=1e-3), 1e-4 * max(xs, default=1.0))
    for i, s in enumerate(searches + baselines):
        rs = [r for r in records if r["label"] == s.label]
        color = palette[(2 * i + (i // 10)) % 20]  # dark hues first, then light ones
        curve = s.kind == "search" or (x_key == "seconds" and s.kind == "gradient")
        if not curve:
            ax.axhline(
                s.test_mean,
                color=color,
                linestyle=":" if s.kind == "data-free" else "--",
                linewidth=1.2,
                label=f"{s.label} ({s.kind}, final)",
            )
            continue
        end = max(r["history"][-1][x_key] for r in rs)
        grid = np.geomspace(lo, max(end, 1.01 * lo), 200)
        curves = np.array([step_curve(r["history"], x_key, grid) for r in rs])
        with warnings.catch_warnings():  # columns before any run's first point are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, low, high = (f(curves, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
        ax.plot(
            grid,
            mean,
            color=color,
            linestyle=("-" if i < 20 else "-.") if s.kind == "search" else "--",
            label=s.label if s.kind == "search" else f"{s.label} (gradient)",
        )
        if len(rs) > 1:
            ax.fill_between(grid, low, high, color=color, alpha=0.15)
    ax.set(
        xlabel="wall time (s)" if x_key == "seconds" else "mask evaluations",
        ylabel="test accuracy (mean; band: min–max over seeds)",
        title=title,
    )
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_final(rows: list, path: Path, title: str) -> None:
    """Final test accuracy per label (mean, 95 % CI bars), baselines marked by colour and hatch."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    styles = {
        "search": ("C0", ""),
        "gradient": ("C3", "//"),
        "data-free": ("0.6", ".."),
    }
    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(rows) + 1.4))
    ordered = rows[::-1]  # best at the top
    y = np.arange(len(ordered))
    for i, s in enumerate(ordered):
        color, hatch = styles[s.kind]
        ax.barh(
            i,
            s.test_mean,
            xerr=s.test_ci95 or 0.0,
            color=color,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
            capsize=3,
        )
        ax.text(
            min(s.test_mean + (s.test_ci95 or 0.0), 1.0) + 0.005,
            i,
            f"{s.test_mean:.3f}",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(y, [s.label for s in ordered], fontsize=8)
    ax.set(xlabel="test accuracy (mean over seeds, 95 % CI)", title=title, xlim=(0, 1.08))
    names = {
        "search": "search (no gradients)",
        "gradient": "gradient baseline",
        "data-free": "data-free baseline",
    }
    handles = [
        Patch(facecolor=styles[k][0], hatch=styles[k][1], edgecolor="black", label=names[k])
        for k in styles
        if any(s.kind == k for s in rows)
    ]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
