"""The figures of a comparison's report: curves, final accuracy, Pareto fronts, sweeps.

Every function takes the report's summaries (:class:`~prunetrain.experiments.report.MethodSummary`)
and records, writes one PNG with :func:`prunetrain.files.atomic_write` and closes its figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunetrain.experiments.stats import pareto_front
from prunetrain.files import atomic_write

#: Marker colour and hatch of each kind of method.
KIND_STYLES = {
    "search": ("C0", ""),
    "gradient": ("C3", "//"),
    "data-free": ("0.6", ".."),
}
KIND_NAMES = {
    "search": "search (no gradients)",
    "gradient": "gradient baseline",
    "data-free": "data-free baseline",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def colour(i: int):
    """The ``i``-th of twenty distinct colours: the dark hues of tab20 first, then the light ones."""
    palette = _pyplot().get_cmap("tab20").colors
    return palette[(2 * i + (i // 10)) % 20]


# --- curves over a run ----------------------------------------------------------------------


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


def seed_band(
    histories: Sequence[list[dict]], x_key: str, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, minimum and maximum over seeds of their step curves on ``grid``.

    Each seed's last value is carried forward; a point where some seed has
    no value yet (before its first row) is NaN in all three, so the mean
    never jumps between the seeds that happen to have started.

    Examples
    --------
    >>> a = [{"seconds": 1.0, "test_accuracy": 0.2}, {"seconds": 3.0, "test_accuracy": 0.6}]
    >>> b = [{"seconds": 2.0, "test_accuracy": 0.4}]
    >>> mean, low, high = seed_band([a, b], "seconds", np.array([1.5, 2.5, 4.0]))
    >>> mean.round(3).tolist(), high.tolist()
    ([nan, 0.3, 0.5], [nan, 0.4, 0.6])
    """
    curves = np.array([step_curve(h, x_key, grid) for h in histories], dtype=float)
    complete = ~np.isnan(curves).any(axis=0)
    out = []
    for f in (np.mean, np.min, np.max):
        values = np.full(len(grid), np.nan)
        if complete.any():
            values[complete] = f(curves[:, complete], axis=0)
        out.append(values)
    return out[0], out[1], out[2]


def plot_curves(records: list[dict], rows: list, x_key: str, path: Path, title: str) -> None:
    """Mean test accuracy over seeds against ``x_key`` per label, with a min–max band.

    The x axis is logarithmic. The mean is drawn only where every seed has a
    value (each seed's last value carried forward). Against wall time,
    gradient baselines are curves (dashed) like the searches; against
    evaluations — not their currency — they and the data-free baselines are
    horizontal lines at their final mean test accuracy.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    searches = [s for s in rows if s.kind == "search"]
    baselines = [s for s in rows if s.kind != "search"]
    # Log scale: gradient baselines take a fraction of the searches' time, and
    # random search makes many more (cheaper) evaluations than the local searches.
    xs = [row[x_key] for r in records for row in r["history"] if row[x_key] > 0]
    lo = max(min(xs, default=1e-3), 1e-4 * max(xs, default=1.0))
    for i, s in enumerate(searches + baselines):
        rs = [r for r in records if r["label"] == s.label]
        curve = s.kind == "search" or (x_key == "seconds" and s.kind == "gradient")
        if not curve:
            ax.axhline(
                s.test_mean,
                color=colour(i),
                linestyle=":" if s.kind == "data-free" else "--",
                linewidth=1.2,
                label=f"{s.label} ({s.kind}, final)",
            )
            continue
        end = max(r["history"][-1][x_key] for r in rs)
        grid = np.geomspace(lo, max(end, 1.01 * lo), 200)
        mean, low, high = seed_band([r["history"] for r in rs], x_key, grid)
        ax.plot(
            grid,
            mean,
            color=colour(i),
            linestyle=("-" if i < 20 else "-.") if s.kind == "search" else "--",
            label=s.label if s.kind == "search" else f"{s.label} (gradient)",
        )
        if len(rs) > 1:
            ax.fill_between(grid, low, high, color=colour(i), alpha=0.15)
    ax.set(
        xlabel="wall time (s)" if x_key == "seconds" else "mask evaluations",
        ylabel="test accuracy (mean; band: min–max over seeds)",
        title=title,
    )
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _save(fig, path)


def _kind_legend(ax, rows, loc: str) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=KIND_STYLES[k][0], hatch=KIND_STYLES[k][1], edgecolor="black", label=name)
        for k, name in KIND_NAMES.items()
        if any(s.kind == k for s in rows)
    ]
    ax.legend(handles=handles, fontsize=7, loc=loc)


def plot_final(rows: list, path: Path, title: str) -> None:
    """Final test accuracy per label (mean, 95 % CI bars), baselines marked by colour and hatch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.4 * len(rows) + 1.4))
    ordered = rows[::-1]  # best at the top
    for i, s in enumerate(ordered):
        color, hatch = KIND_STYLES[s.kind]
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
    ax.set_yticks(np.arange(len(ordered)), [s.label for s in ordered], fontsize=8)
    ax.set(xlabel="test accuracy (mean over seeds, 95 % CI)", title=title, xlim=(0, 1.08))
    _kind_legend(ax, rows, "lower right")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


# --- Pareto fronts ------------------------------------------------------------------------


def plot_pareto(rows: list, cost: str, path: Path, title: str) -> None:
    """Final test accuracy (mean, 95 % CI) against mean cost per label, the Pareto front joined.

    ``cost`` is ``"seconds"`` (wall time) or ``"sample_forwards"``
    (forward-pass equivalents; a backward pass counts as two). The x axis
    is logarithmic; a cost of 0 (data-free baselines' sample-forwards) is
    drawn at the left edge and labelled ``(0)``.
    """
    plt = _pyplot()
    costs = np.array(
        [s.seconds_mean if cost == "seconds" else s.sample_forwards_mean for s in rows], dtype=float
    )
    accs = np.array([s.test_mean for s in rows], dtype=float)
    front = pareto_front(costs, accs)
    positive = costs[costs > 0]
    floor = positive.min() / 3 if len(positive) else 1.0
    xs = np.where(costs > 0, costs, floor)
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for s, x, y, on_front in zip(rows, xs, accs, front):  # front: filled and bold
        color, _ = KIND_STYLES[s.kind]
        ax.errorbar(
            x,
            y,
            yerr=s.test_ci95 or 0.0,
            fmt="o",
            markersize=8 if on_front else 5,
            markerfacecolor=color if on_front else "white",
            markeredgecolor=color,
            ecolor=color,
            capsize=2,
            linewidth=0.8,
        )
        ax.annotate(
            s.label + (" (0)" if x == floor and cost != "seconds" else ""),
            (x, y),
            textcoords="offset points",
            xytext=(5, 3),
            fontsize=6.5,
            fontweight="bold" if on_front else "normal",
        )
    on = np.array(front)
    order = np.argsort(xs[on])
    fx, fy = xs[on][order], accs[on][order]
    ax.step(fx, fy, where="post", color="black", linewidth=1.0, alpha=0.6, label="Pareto front")
    ax.set_xscale("log")
    ax.set(
        xlabel="wall time (s, mean over seeds)"
        if cost == "seconds"
        else "sample-forwards (forward-pass equivalents; backward = 2 forwards)",
        ylabel="final test accuracy (mean, 95 % CI)",
        title=f"{title}: filled = on the Pareto front",
    )
    ax.grid(alpha=0.3)
    _kind_legend(ax, rows, "lower right")
    _save(fig, path)


# --- sweeps over keep and width -----------------------------------------------------------


def plot_sweep(panels: list[dict], x_label: str, path: Path, title: str, log_x: bool) -> None:
    """Test accuracy (mean over seeds, 95 % CI band) against a swept value, one line per label.

    Each panel is ``{"title", "x_ticks": [(x, label), ...], "lines": {label: [(x, mean, ci95 or
    None), ...]}}``; a label has the same colour in every panel.
    """
    plt = _pyplot()
    labels = list(dict.fromkeys(label for p in panels for label in p["lines"]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels) + 2.2, 4.4), squeeze=False, sharey=True
    )
    for ax, panel in zip(axes[0], panels):
        for label, points in panel["lines"].items():
            c = colour(labels.index(label))
            points = sorted(points)
            x = np.array([p[0] for p in points], dtype=float)
            mean = np.array([p[1] for p in points], dtype=float)
            half = np.array([np.nan if p[2] is None else p[2] for p in points], dtype=float)
            ax.plot(x, mean, "o-", color=c, markersize=3, linewidth=1.2, label=label)
            if not np.isnan(half).all():
                ax.fill_between(x, mean - half, mean + half, color=c, alpha=0.12)
        if log_x:
            ax.set_xscale("log")
        ticks = panel.get("x_ticks")
        if ticks:
            ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=7)
            ax.minorticks_off()
        ax.set(xlabel=x_label, title=panel["title"])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (mean; band: 95 % CI)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
