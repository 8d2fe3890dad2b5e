"""Comparison configs: a TOML file becomes a list of independent runs, each named by a hash.

A config lists datasets, architectures, keep fractions, seeds, one budget for
every search, the search methods with their options and the baselines with
theirs. Every combination is one :class:`RunSpec`; its :attr:`RunSpec.key` is
a hash of everything that determines its result, so a finished run is found
again on a rerun and skipped. See ``experiments/README.md`` for the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import prunetrain
from prunetrain.errors import PrunetrainError
from prunetrain.network import check_keep, check_seed, parse_arch
from prunetrain.objective import Budget

if TYPE_CHECKING:
    from prunetrain.experiments.report import ReportOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Top-level keys of a config file.
TOP_KEYS = {
    "name",
    "datasets",
    "data_dir",
    "archs",
    "hidden",
    "keeps",
    "seeds",
    "budget",
    "init",
    "scale",
    "keep_rule",
    "all_methods",
    "search",
    "methods",
    "baselines",
    "report",
}
#: Options of ``[search]``, shared by every search (``run_search``'s arguments).
#: ``batch_size = "auto"`` becomes each method's preferred size when the config is read.
SEARCH_OPTIONS = {"batch_size": "auto", "schedule": "rotate", "backend": "auto", "patience": None}


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a comparison: a search or a baseline on one dataset, network, keep and seed.

    Attributes
    ----------
    kind : {"search", "baseline"}
    label : str
        The name it has in tables and plots (the config's table name).
    method : str
        A searcher name (``prunetrain methods``) or a baseline name.
    params : dict
        The method's hyperparameters, defaults filled in.
    dataset, arch : str
        Dataset name (or file) and full layer sizes, e.g. ``"64-256-256-10"``.
    keep : float
    seed : int
        Seed of the network and of the run.
    budget : str or None
        The search budget (``"2000evals"``, ``"30s"``); for a baseline an
        optional cap, ``None`` meaning its own schedule.
    options : dict
        Network options (``init``, ``scale``, ``keep_rule``) and, for searches,
        ``batch_size``, ``schedule``, ``backend``, ``patience``.
    """

    kind: str
    label: str
    method: str
    params: dict
    dataset: str
    arch: str
    keep: float
    seed: int
    budget: str | None
    options: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the run's canonical JSON: its identity across reruns.

        The JSON holds what decides the result: every field of the run and
        the prunetrain version that runs it. It leaves out what changes from
        one rerun to the next (the time, the machine, the git commit, the
        command line), so that a rerun finds the runs already done.
        """
        identity = {**self.to_dict(), "prunetrain": prunetrain.__version__}
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def group(self) -> tuple[str, str, float]:
        """Runs that share a table and a plot: same dataset, architecture and keep."""
        return (self.dataset, self.arch, self.keep)


@dataclasses.dataclass
class Comparison:
    """A parsed config: its runs in order, where the data lives, and what its report compares."""

    name: str
    runs: list[RunSpec]
    budget: str
    data_dir: str | None = None
    source: str | None = None
    report: ReportOptions | None = None


def load_config(path: str | os.PathLike) -> Comparison:
    """Read and check a comparison config (TOML); raise :class:`PrunetrainError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise PrunetrainError(f"no config file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PrunetrainError(f"{path} is not valid TOML: {e}") from None
    return parse_config(raw, name=path.stem, source=str(path))


def parse_config(raw: dict, name: str = "comparison", source: str | None = None) -> Comparison:
    """Turn a config's dict (as TOML reads it) into a :class:`Comparison`.

    Examples
    --------
    >>> c = parse_config({"datasets": ["digits"], "archs": ["64-32-10"], "seeds": [0, 1],
    ...                   "budget": "100evals", "methods": {"random": {}},
    ...                   "baselines": {"magnitude": {}}})
    >>> [(r.kind, r.label, r.seed) for r in c.runs]
    [('search', 'random', 0), ('search', 'random', 1), ('baseline', 'magnitude', 0), ('baseline', 'magnitude', 1)]
    """
    from prunetrain.baselines import make_baseline
    from prunetrain.experiments.report import ReportOptions
    from prunetrain.search import SEARCHERS, make_searcher, resolve_batch_size

    where = source or name
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise PrunetrainError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(TOP_KEYS))}"
        )
    if not isinstance(raw.get("report", {}), dict):
        raise PrunetrainError(f"{where}: [report] must be a table of options")
    report = ReportOptions.parse(raw.get("report"), f"{where}: [report]")
    datasets = _list(raw, "datasets", where, default=["digits"])
    keeps = [check_keep(k) for k in _list(raw, "keeps", where, default=[0.5])]
    seeds = [check_seed(s) for s in _list(raw, "seeds", where, default=[0])]
    if "budget" not in raw:
        raise PrunetrainError(
            f'{where}: a budget for every search is required, e.g. budget = "2000evals"'
        )
    budget = str(Budget.parse(raw["budget"]))
    network = {
        "init": raw.get("init", "signed_constant"),
        "scale": raw.get("scale", "keep"),
        "keep_rule": raw.get("keep_rule", "layer"),
    }
    search_options = dict(SEARCH_OPTIONS)
    extra = set(raw.get("search", {})) - set(SEARCH_OPTIONS)
    if extra:
        raise PrunetrainError(
            f"{where}: unknown [search] option(s) {', '.join(sorted(extra))}; "
            f"expected {', '.join(SEARCH_OPTIONS)}"
        )
    search_options.update(raw.get("search", {}))

    methods = dict(raw.get("methods", {}))
    if raw.get("all_methods", False):
        listed = {entry.get("method", label) for label, entry in methods.items()}
        for method in sorted(SEARCHERS):
            if method not in listed:
                methods[method] = {}
    entries = []  # (kind, label, method, params, budget, batch size of a search)
    for label, entry in methods.items():
        entry = _table(entry, f"methods.{label}", where)
        method = entry.pop("method", label)
        try:
            searcher = make_searcher(method, **entry)
            batch = resolve_batch_size(search_options["batch_size"], searcher)
        except PrunetrainError as e:
            raise PrunetrainError(f"{where}: [methods.{label}]: {e}") from None
        # The resolved size is part of the run (and of its key), as if the config had said it.
        entries.append(("search", label, method, searcher.get_params(), budget, batch or 0))
    for label, entry in dict(raw.get("baselines", {})).items():
        entry = _table(entry, f"baselines.{label}", where)
        method = entry.pop("method", label)
        cap = entry.pop("budget", None)
        try:
            baseline = make_baseline(method, **entry)
            baseline.check()
            params = baseline.get_params()
            cap = None if cap is None else str(Budget.parse(cap))
        except PrunetrainError as e:
            raise PrunetrainError(f"{where}: [baselines.{label}]: {e}") from None
        entries.append(("baseline", label, method, params, cap, None))
    if not entries:
        raise PrunetrainError(f"{where}: no [methods.*] or [baselines.*] to run")
    labels = [e[1] for e in entries]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise PrunetrainError(
            f"{where}: {', '.join(twice)} names both a method and a baseline; rename one "
            f'and give its method inside, e.g. [baselines.random-init] method = "random"'
        )

    archs = _archs(raw, where)
    runs = []
    for dataset in datasets:
        for arch in archs:
            for keep in keeps:
                for kind, label, method, params, run_budget, batch in entries:
                    options = dict(network)
                    if kind == "search":
                        options.update(search_options, batch_size=batch)
                    for seed in seeds:
                        runs.append(
                            RunSpec(
                                kind, label, method, params, str(dataset), arch, keep, seed,
                                run_budget, options,
                            )
                        )  # fmt: skip
    return Comparison(
        name=str(raw.get("name", name)),
        runs=runs,
        budget=budget,
        data_dir=raw.get("data_dir"),
        source=source,
        report=report,
    )


def resolve_archs(comparison: Comparison, datasets: dict) -> Comparison:
    """Replace hidden-only architectures (``"*-300-100-*"``) by each dataset's full sizes."""
    runs = []
    for r in comparison.runs:
        if r.arch.startswith("*"):
            data = datasets[r.dataset]
            hidden = r.arch.strip("*-")
            sizes = [
                data.n_features,
                *([int(h) for h in hidden.split("-")] if hidden else []),
                data.n_classes,
            ]
            r = dataclasses.replace(r, arch="-".join(map(str, sizes)))
        runs.append(r)
    return dataclasses.replace(comparison, runs=runs)


def _archs(raw: dict, where: str) -> list[str]:
    if "archs" in raw and "hidden" in raw:
        raise PrunetrainError(
            f"{where}: give archs (full sizes) or hidden (hidden sizes), not both"
        )
    if "hidden" in raw:
        out = []
        for h in _list(raw, "hidden", where):
            if (
                not isinstance(h, Sequence)
                or isinstance(h, str)
                or not all(isinstance(x, int) for x in h)
            ):
                raise PrunetrainError(f"{where}: hidden must be lists of sizes, e.g. [[300, 100]]")
            out.append("-".join(["*", *map(str, h), "*"]))
        return out
    out = []
    for a in _list(raw, "archs", where, default=["*-256-256-*"]):
        if str(a).startswith("*"):  # hidden sizes only: inputs and classes from the data
            out.append("-".join(["*", *map(str, parse_arch(str(a).strip("*-"))), "*"]))
        else:
            out.append("-".join(map(str, parse_arch(a))))
    return out


def _list(raw: dict, key: str, where: str, default=None) -> list:
    value = raw.get(key, default)
    if value is None:
        raise PrunetrainError(f"{where}: {key} is required")
    if not isinstance(value, list) or not value:
        raise PrunetrainError(f"{where}: {key} must be a non-empty list, got {value!r}")
    return value


def _table(entry, what: str, where: str) -> dict:
    if not isinstance(entry, dict):
        raise PrunetrainError(f"{where}: [{what}] must be a table of options")
    return dict(entry)
