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
from pathlib import Path
from typing import TYPE_CHECKING

import prunetrain
from prunetrain.errors import PrunetrainError
from prunetrain.network import NetworkSpec, check_keep, check_seed, parse_arch
from prunetrain.problem import Budget
from prunetrain.runs import check_searcher

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
#: Past this many runs, or this much search time (the searches' time budgets over the jobs),
#: a comparison is confirmed before it starts (``prunetrain compare --yes``): a typo in a grid
#: should not start a week of work without a word.
CONFIRM_RUNS = 1000
CONFIRM_SECONDS = 24 * 3600.0


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

    def size(self, jobs: int | None = 1) -> tuple[int, float]:
        """The number of runs, and the seconds their searches' time budgets take on ``jobs``
        (``None``: workers unknown, the sum).

        Only time budgets are estimable before running: evaluation budgets and
        baselines count 0, so the time is a lower bound.
        """
        seconds = sum(
            Budget.parse(r.budget).seconds or 0.0
            for r in self.runs
            if r.kind == "search" and r.budget is not None
        )
        return len(self.runs), seconds / max(1, int(jobs or 1))

    def describe_size(self, jobs: int | None = 1) -> str:
        """One line: how many runs, and how long their search budgets take where that is known."""
        n, seconds = self.size(jobs)
        if not seconds:
            return f"{n} runs (time not estimated: evaluation budgets)"
        where = f"on {jobs} jobs" if jobs else "in all"
        return f"{n} runs; their search budgets alone take {_duration(seconds)} {where}"

    def needs_confirmation(self, jobs: int = 1) -> bool:
        """Whether it is larger than :data:`CONFIRM_RUNS` runs or :data:`CONFIRM_SECONDS`."""
        n, seconds = self.size(jobs)
        return n > CONFIRM_RUNS or seconds > CONFIRM_SECONDS


def _duration(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.3g} {unit}"
    return f"{seconds:.3g} s"


def load_config(path: str | os.PathLike) -> Comparison:
    """Read and check a comparison config (TOML); raise :class:`PrunetrainError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise PrunetrainError(f"no config file at {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PrunetrainError(f"{path} is not valid TOML: {e}") from None
    except RecursionError:
        raise PrunetrainError(f"{path} is nested too deeply to be a config") from None
    return parse_config(raw, name=path.stem, source=str(path))


def parse_config(raw: dict, name: str = "comparison", source: str | None = None) -> Comparison:
    """Turn a config's dict (as TOML reads it) into a :class:`Comparison`, checking all of it.

    Every value is checked for type and range before any run exists: the
    lists, the budget, the network options, the ``[search]`` options, and
    each method's and baseline's hyperparameters (a searcher's are checked by
    setting it up on a tiny problem). A name must be a plain file name, and
    no run may appear twice (a repeated seed, say).

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
    if not isinstance(raw, dict):
        raise PrunetrainError(f"{where}: a config is a table of keys")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise PrunetrainError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(TOP_KEYS))}"
        )
    report = ReportOptions.parse(
        _table(raw.get("report", {}), "report", where), f"{where}: [report]"
    )
    try:
        config_name = check_name(raw.get("name", name))
        datasets = _list(raw, "datasets", where, default=["digits"], kind=str)
        keeps = [check_keep(k) for k in _list(raw, "keeps", where, default=[0.5])]
        seeds = [check_seed(s) for s in _list(raw, "seeds", where, default=[0])]
        data_dir = raw.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise PrunetrainError(f"data_dir must be a folder name, got {data_dir!r}")
        all_methods = raw.get("all_methods", False)
        if not isinstance(all_methods, bool):
            raise PrunetrainError(f"all_methods must be true or false, got {all_methods!r}")
        if "budget" not in raw:
            raise PrunetrainError(
                'a budget for every search is required, e.g. budget = "2000evals"'
            )
        budget = str(Budget.parse(raw["budget"]))
        network = _network_options(raw)
        search_options = _search_options(_table(raw.get("search", {}), "search", where))
    except PrunetrainError as e:
        raise PrunetrainError(f"{where}: {e}") from None

    methods = dict(_table(raw.get("methods", {}), "methods", where))
    if all_methods:
        listed = {_table(e, f"methods.{k}", where).get("method", k) for k, e in methods.items()}
        for method in sorted(SEARCHERS):
            if method not in listed:
                methods[method] = {}
    entries = []  # (kind, label, method, params, budget, batch size of a search)
    for label, entry in methods.items():
        entry = dict(_table(entry, f"methods.{label}", where))
        method = entry.pop("method", label)
        try:
            if not isinstance(method, str):
                raise PrunetrainError(f"method must be a method name, got {method!r}")
            searcher = make_searcher(method, **entry)
            batch = resolve_batch_size(search_options["batch_size"], searcher)
            check_searcher(searcher, network["keep_rule"])
        except PrunetrainError as e:
            raise PrunetrainError(f"{where}: [methods.{label}]: {e}") from None
        # The resolved size is part of the run (and of its key), as if the config had said it.
        entries.append(("search", label, method, searcher.get_params(), budget, batch or 0))
    for label, entry in dict(_table(raw.get("baselines", {}), "baselines", where)).items():
        entry = dict(_table(entry, f"baselines.{label}", where))
        method = entry.pop("method", label)
        cap = entry.pop("budget", None)
        try:
            if not isinstance(method, str):
                raise PrunetrainError(f"method must be a baseline name, got {method!r}")
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
    for what, values in (("dataset", datasets), ("keep", keeps), ("seed", seeds)):
        repeated = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if repeated is not None:
            raise PrunetrainError(
                f"{where}: {what} {repeated!r} twice in {what}s; each run must be listed once"
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
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        repeated = next(r for i, r in enumerate(runs) if r.key in keys[:i])
        raise PrunetrainError(
            f"{where}: the run {repeated.label} {repeated.dataset} {repeated.arch} keep "
            f"{repeated.keep:g} seed {repeated.seed} is listed twice (archs and hidden sizes "
            "that name one network?)"
        )
    return Comparison(
        name=config_name,
        runs=runs,
        budget=budget,
        data_dir=data_dir,
        source=source,
        report=report,
    )


def check_name(name) -> str:
    """``name`` if it is a plain file name (results go to ``experiments/results/<name>``)."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or name != name.strip()
    ):
        raise PrunetrainError(
            f"name must be a plain file name (no folders, not . or ..), got {name!r}"
        )
    return name


def _network_options(raw: dict) -> dict:
    """``init``, ``scale`` and ``keep_rule``, checked as the network and the keep rule check them."""
    from prunetrain.masks import KeepRule

    options = {
        "init": raw.get("init", "signed_constant"),
        "scale": raw.get("scale", "keep"),
        "keep_rule": raw.get("keep_rule", "layer"),
    }
    for key, value in options.items():
        if not isinstance(value, str):
            raise PrunetrainError(f"{key} must be a name, got {value!r}")
    NetworkSpec((1, 1), init=options["init"], scale=options["scale"])
    KeepRule(0.5, options["keep_rule"])
    return options


def _search_options(given: dict) -> dict:
    """The ``[search]`` table with its defaults, each option checked."""
    from prunetrain.backends import BACKEND_NAMES
    from prunetrain.problem import SCHEDULES

    extra = set(given) - set(SEARCH_OPTIONS)
    if extra:
        raise PrunetrainError(
            f"unknown [search] option(s) {', '.join(sorted(extra))}; "
            f"expected {', '.join(SEARCH_OPTIONS)}"
        )
    options = {**SEARCH_OPTIONS, **given}
    batch, patience = options["batch_size"], options["patience"]
    if batch != "auto" and (not _is_count(batch) or batch < 0):
        raise PrunetrainError(
            f"batch size must be a positive integer, 0 (the whole training set) or 'auto', "
            f"got {batch!r}"
        )
    if patience is not None and (not _is_count(patience) or patience < 1):
        raise PrunetrainError(f"patience must be a whole number >= 1, got {patience!r}")
    if options["schedule"] not in SCHEDULES:
        raise PrunetrainError(
            f"unknown batch schedule {options['schedule']!r}; expected one of {', '.join(SCHEDULES)}"
        )
    if options["backend"] not in BACKEND_NAMES:
        raise PrunetrainError(
            f"unknown backend {options['backend']!r}; expected one of {', '.join(BACKEND_NAMES)}"
        )
    return options


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def resolve_archs(comparison: Comparison, datasets: dict) -> Comparison:
    """Replace hidden-only architectures (``"*-300-100-*"``) by each dataset's full sizes.

    Raises :class:`PrunetrainError` if a full architecture is too large
    (:func:`~prunetrain.network.check_layer_sizes`), if a keep leaves one of its
    layers without a weight, or if two archs of the config name one network.
    """
    runs = []
    named: dict[tuple[str, str], str] = {}  # (dataset, full arch) -> the arch as the config gave it
    checked: set[tuple[str, float]] = set()
    for r in comparison.runs:
        given = r.arch
        if r.arch.startswith("*"):
            data = datasets[r.dataset]
            hidden = r.arch.strip("*-")
            sizes = [
                data.n_features,
                *([int(h) for h in hidden.split("-")] if hidden else []),
                data.n_classes,
            ]
            r = dataclasses.replace(r, arch="-".join(map(str, sizes)))
        # Sizes and keep fit a network only once the data gives inputs and classes: check
        # them here, before any run, rather than in each run.
        if (r.arch, r.keep) not in checked:
            check_keep(r.keep, NetworkSpec(parse_arch(r.arch), keep=1.0).shapes)
            checked.add((r.arch, r.keep))
        first = named.setdefault((r.dataset, r.arch), given)
        if first != given:
            raise PrunetrainError(
                f"archs {first!r} and {given!r} are the same network {r.arch} on {r.dataset}: "
                "each run must be listed once"
            )
        runs.append(r)
    return dataclasses.replace(comparison, runs=runs)


def _archs(raw: dict, where: str) -> list[str]:
    """Full architectures (``"64-256-10"``) or hidden sizes only (``"*-256-*"``), checked."""
    if "archs" in raw and "hidden" in raw:
        raise PrunetrainError(
            f"{where}: give archs (full sizes) or hidden (hidden sizes), not both"
        )
    if "hidden" in raw:
        out = []
        for h in _list(raw, "hidden", where):
            if not isinstance(h, list) or not all(_is_count(x) and x >= 1 for x in h):
                raise PrunetrainError(
                    f"{where}: hidden must be lists of positive sizes, e.g. [[300, 100]]; got {h!r}"
                )
            out.append("-".join(["*", *map(str, h), "*"]))
        return out
    out = []
    for a in _list(raw, "archs", where, default=["*-256-256-*"], kind=str):
        if a.startswith("*"):  # hidden sizes only: inputs and classes from the data
            if not (a == "*-*" or (a.startswith("*-") and a.endswith("-*"))):
                raise PrunetrainError(
                    f"{where}: bad architecture {a!r}: hidden sizes only are written *-300-100-*"
                )
            hidden = a[2:-2]
            try:
                sizes = parse_arch(f"1-{hidden}-1")[1:-1] if hidden else ()
            except PrunetrainError:
                raise PrunetrainError(
                    f"{where}: bad architecture {a!r}: hidden sizes must be positive "
                    "integers, such as *-300-100-*"
                ) from None
            out.append("-".join(["*", *map(str, sizes), "*"]))
        else:
            out.append("-".join(map(str, parse_arch(a))))
    return out


def _list(raw: dict, key: str, where: str, default=None, kind: type | None = None) -> list:
    value = raw.get(key, default)
    if value is None:
        raise PrunetrainError(f"{where}: {key} is required")
    if not isinstance(value, list) or not value:
        raise PrunetrainError(f"{where}: {key} must be a non-empty list, got {value!r}")
    if kind is not None and not all(isinstance(v, kind) for v in value):
        raise PrunetrainError(f"{where}: {key} must be a list of {kind.__name__}s, got {value!r}")
    return value


def _table(entry, what: str, where: str) -> dict:
    if not isinstance(entry, dict):
        raise PrunetrainError(f"{where}: [{what}] must be a table of options")
    return dict(entry)
