"""The ``prunetrain`` command line: thin click commands over the Python API.

A user error (bad option, bad data, damaged ticket) prints one line on stderr
and exits with code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import signal
import sys

import click

from prunetrain.backends import BACKENDS
from prunetrain.baselines import BASELINES
from prunetrain.baselines.recipes import RECIPES, overridden
from prunetrain.cli_options import (
    block_options,
    choice,
    json_option,
    network_options,
    output_options,
    param_option,
    parse_method_params,
    search_batch_size_help,
    seed_options,
)
from prunetrain.errors import PrunetrainError
from prunetrain.interrupts import STOPPING, deferred_interrupt, exit_code, interrupting, signal_of
from prunetrain.options import BaselineOptions, SearchOptions
from prunetrain.search import DEFAULT_METHOD, SEARCHERS

EXIT_USER_ERROR = 2
# A stopping signal exits with 128 + its number, as a shell says (interrupts.exit_code):
# Ctrl-C 130, SIGTERM 143, SIGHUP 129.

#: Where the run folders go when --out is not given.
RUNS_DIR = "runs"


logger = logging.getLogger("prunetrain")
_handler: logging.Handler | None = None


def configure_logging(level: int = logging.INFO) -> None:
    """Send prunetrain's log messages to stderr, one plain line each (the CLI's messages)."""
    global _handler
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(level)
    logger.propagate = False


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """``--verbose``: debug messages too (even with ``--quiet``); ``--quiet``: warnings only."""
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


def echo_json(obj: object) -> None:
    click.echo(json.dumps(obj, allow_nan=False))


class Commands(click.Group):
    """The command group; an ``EOFError`` escaping a command is an error, not an interrupt.

    click turns ``EOFError`` into :class:`click.Abort`, as it does Ctrl-C, which
    is right at a prompt (Ctrl-D) but not for a file that ends early; no
    command reads a terminal, so here it is a user error, said in one line.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EOFError as e:
            raise PrunetrainError(
                f"unexpected end of input ({_one_line(e) or 'EOFError'})"
            ) from None


@click.group(
    cls=Commands,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="prunetrain")
def cli() -> None:
    """Search frozen random networks for winning tickets, without backpropagation."""


@cli.command()
@network_options()
@block_options(SearchOptions, "method")
@param_option("A method hyperparameter; repeatable.")
@block_options(SearchOptions, "budget")
@click.option("--batch-size", type=int, help=search_batch_size_help())
@block_options(SearchOptions, "schedule", "backend")
@seed_options("search")
@block_options(SearchOptions, "patience", "init_mask", "init_share")
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Continue the interrupted search in DIR exactly where it stopped (its "
    "checkpoint.npz); takes every setting from the checkpoint.",
)
@output_options(
    "Output folder. Default: runs/DATASET-METHOD-ARCH-keepK-BUDGET-seedS-HASH "
    "(HASH: of the whole config; a rerun writes beside it, into ...-2)."
)
@click.option("--verbose", "-v", is_flag=True, help="Say which backend `auto` chose and why.")
def search(**opts) -> None:
    """Search a frozen random network for a mask; write ticket.npz, result.json and the curve.

    A folder that holds a finished run is not overwritten without --force.
    Ctrl-C, SIGTERM and SIGHUP stop at the end of the current step, write the
    best ticket so far and a checkpoint, and exit with code 130, 143 and 129;
    `--resume DIR` continues it. A second one stops at once; one that comes
    after the search's last step changes nothing.
    """
    with deferred_interrupt(STOPPING, one_search=True) as interrupt:  # from now to the summary
        finished = _search(opts)
        interrupt.ignore_until_exit()  # the outputs are written
        _report_search(finished, opts)


def _search(opts: dict):
    """Run or resume the search ``opts`` describe."""
    from prunetrain.api import resume_search, run_search
    from prunetrain.backends import backend_notice

    set_verbosity(opts["quiet"], opts["verbose"])
    if opts["resume"] is not None:
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_', '-')}"
            for name in opts
            if name not in ("resume", "quiet", "verbose", "force", "as_json")
            and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise PrunetrainError(
                f"--resume takes every setting from its checkpoint; drop {', '.join(given)}"
            )
        return resume_search(opts["resume"], progress=not opts["quiet"], force=opts["force"])
    if notice := backend_notice(opts["backend"]):
        logger.debug(notice)

    return run_search(
        opts["dataset"],
        opts["arch"],
        method_params=parse_method_params(opts["params"]),
        batch_size="auto" if opts["batch_size"] is None else opts["batch_size"],
        **_picked(opts, *RUN_KEYS, "schedule", "backend", "patience", "init_mask", "init_share"),
        **_output_options(opts),
    )


def _report_search(finished, opts: dict) -> None:
    """The summary of a search (or its ``--json``); an interrupted one says how to resume
    and exits with 128 + the signal's number (130 for Ctrl-C)."""
    r, out = finished.result, finished.out
    if not _reported_as_json(finished, opts):
        _print_summary(finished)
    if r.interrupted:
        signum = r.signal or signal.SIGINT
        click.echo(
            f"prunetrain: interrupted ({signal.Signals(signum).name}) after {r.evaluations:.0f} "
            f"evaluations; the best ticket so far is in {out}; continue with: "
            f"prunetrain search --resume {out}",
            err=True,
        )
        raise click.exceptions.Exit(exit_code(signum))


def _print_summary(finished) -> None:
    r, m, c, out = finished.result, finished.metrics, finished.config, finished.out
    compiled = (
        f"; {r.compile_seconds:.1f} s compiling before it" if r.compile_seconds >= 0.1 else ""
    )
    lines = [
        f"{c['method']} on {c['dataset']}  arch {c['arch']}  keep {c['keep']:g} ({c['keep_rule']})  backend {c['backend']}",
        f"  {r.evaluations:.0f} evaluations in {r.seconds:.1f} s ({r.evaluations / max(r.seconds, 1e-9):.0f}/s), stopped by {r.stopped_by}{compiled}",
        _accuracy_line(m),
        f"  wrote {out}/ticket.npz, result.json, curve.csv, curve.png",
    ]
    click.echo("\n".join(lines))


@cli.command()
@network_options(
    keep={
        "help": "Fraction of weights kept, in (0, 1] (dense ignores it but for the network's scale)."
    },
    keep_rule={"help": "layer: exact count per layer; global; free (treated as global)."},
)
@block_options(BaselineOptions, "method")
@param_option(
    "A baseline hyperparameter (epochs, lr, ...); repeatable. recipe=NAME starts from a "
    "published recipe (edge-popup: hidden-networks; dense, imp: lottery-ticket) or "
    "converge, and other -p values override it; patience=N trains until validation "
    "accuracy has not improved for N epochs and keeps the best. See `prunetrain methods`."
)
@block_options(BaselineOptions, "budget", "batch_size")
@seed_options("training")
@output_options(
    "Output folder. Default: runs/DATASET-METHOD-ARCH-keepK-seedS-HASH (a rerun: ...-2)."
)
def baseline(**opts) -> None:
    """Run a gradient-trained or data-free baseline; write result.json, the curve and a ticket or weights.

    A folder that holds a finished run is not overwritten without --force.
    """
    from prunetrain.baselines import run_baseline

    set_verbosity(opts["quiet"])
    finished = run_baseline(
        opts["dataset"],
        opts["arch"],
        method_params=parse_method_params(opts["params"]),
        batch_size=opts["batch_size"],
        **_picked(opts, *RUN_KEYS),
        **_output_options(opts),
    )
    if _reported_as_json(finished, opts):
        return
    r, m, c, out = finished.result, finished.metrics, finished.config, finished.out
    wrote = "ticket.npz" if finished.ticket is not None else "weights.npz"
    params = c["method_params"]
    recipe = f"  recipe {params['recipe']}" if params.get("recipe") else ""
    changed = overridden(c["method"], params)
    if changed:
        recipe += f" (overridden: {', '.join(changed)})"
    best = "" if r.best_epoch is None else f", kept epoch {r.best_epoch} (best on validation)"
    lines = [
        f"{c['method']} on {c['dataset']}  arch {c['arch']}  keep {finished.keep_fraction:.4g} ({c['keep_rule']}){recipe}",
        f"  {r.epochs:g} epochs, {r.steps} gradient steps in {r.seconds:.1f} s, stopped by {r.stopped_by}{best}",
        _accuracy_line(m),
        f"  {r.note}",
        f"  wrote {out}/{wrote}, result.json, curve.csv, curve.png",
    ]
    click.echo("\n".join(lines))


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--jobs", "-j", default=1, show_default=True, type=int, help="Local worker processes."
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run on a Dask cluster (tcp://host:8786) instead of local processes.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Output folder. Default: experiments/results/<config name>.",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Start a comparison of more than 1000 runs or a day of search time (asked otherwise).",
)
@click.option("--quiet", "-q", is_flag=True, help="Only the final summary line.")
@json_option
def compare(
    config: str,
    jobs: int,
    scheduler: str | None,
    out: str | None,
    yes: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run every method and baseline of CONFIG.toml over its seeds; resume what is missing.

    Writes results.jsonl, summary.md, summary.json, report.html and plots into --out;
    `prunetrain report` regenerates all but results.jsonl. The whole config is
    checked before the first run. Ctrl-C, SIGTERM and SIGHUP stop at once and exit
    with code 130, 143 and 129, keeping only the runs that finished; several compare
    processes may share one --out (results.jsonl is locked while written).
    """
    from prunetrain.experiments import load_config, run_comparison
    from prunetrain.experiments.config import CONFIRM_RUNS

    comparison = load_config(config)
    size = comparison.describe_size(jobs)
    if comparison.needs_confirmation(jobs) and not yes:
        raise PrunetrainError(
            f"{size}: more than {CONFIRM_RUNS} runs or a day of search; pass --yes to start it"
        )
    out = out or f"experiments/results/{comparison.name}"
    try:
        with interrupting():  # SIGTERM and SIGHUP as Ctrl-C
            result = run_comparison(
                comparison, out, jobs=jobs, scheduler=scheduler, echo=None if quiet else logger.info
            )
    except KeyboardInterrupt as e:
        signum = signal_of(e)
        click.echo(
            f"prunetrain: interrupted ({signal.Signals(signum).name}); the runs that finished "
            f"are in {out}/results.jsonl, and a rerun completes the rest",
            err=True,
        )
        raise click.exceptions.Exit(exit_code(signum)) from None
    if as_json:
        echo_json(
            {
                "config": config,
                "out": out,
                "runs": len(comparison.runs),
                "ran": len(result.ran),
                "skipped": len(result.skipped),
                "failed": result.failed,
                "seconds": result.seconds,
                "files": ["results.jsonl", "summary.md", "summary.json", "report.html"],
            }
        )
    else:
        click.echo(
            f"{len(result.ran)} runs done, {len(result.skipped)} skipped (already done), "
            f"{len(result.failed)} failed in {result.seconds:.0f} s; wrote {out}/results.jsonl, "
            "summary.md, report.html and plots"
        )
    if result.failed:
        raise PrunetrainError(
            f"{len(result.failed)} run(s) failed; rerun to retry them "
            f"(first: {next(iter(result.failed.values()))})"
        )


@cli.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Write one report of all FOLDERS' runs here, instead of regenerating each in place.",
)
@click.option(
    "--targets",
    metavar="F,F,...",
    help="Time-to-target fractions of the reference's final accuracy. Default: the config's "
    "[report] (kept in summary.json), else 0.9,0.95,0.98.",
)
@click.option(
    "--reference", help="Label whose final accuracy the targets are fractions of (edge-popup)."
)
@click.option(
    "--default",
    "default_label",
    help=f"Label of the default search, the second reference of the paired differences ({DEFAULT_METHOD}).",
)
@click.option(
    "--times",
    metavar="S,S,...",
    help="Seconds of each run's wall time for the at-equal-time table. Default: the config's "
    "[report] (kept in summary.json), else 5,15,60,300,600.",
)
def report(
    folders: tuple[str, ...],
    out: str | None,
    targets: str | None,
    reference: str | None,
    default_label: str | None,
    times: str | None,
) -> None:
    """Regenerate summary.md, summary.json, the plots and report.html from results.jsonl.

    Runs nothing: everything comes from the records `prunetrain compare` wrote into each of
    FOLDERS.
    """
    import shlex

    from prunetrain.experiments import report_folders

    overrides: dict = {"reference": reference, "default": default_label}
    if targets:
        overrides["targets"] = _numbers(targets, "--targets", "fractions such as 0.9,0.95,0.98")
    if times:
        overrides["times"] = _numbers(times, "--times", "seconds such as 5,15,60,300,600")
    args = ["prunetrain", "report", *folders]
    for flag, value in (
        ("--out", out),
        ("--targets", targets),
        ("--reference", reference),
        ("--default", default_label),
        ("--times", times),
    ):
        if value:
            args += [flag, value]
    written = report_folders(
        folders, out, overrides=overrides, command=" ".join(map(shlex.quote, args))
    )
    for path in written:
        click.echo(f"wrote {path.parent}/summary.md, summary.json, report.html and the plots")


def _numbers(text: str, flag: str, expected: str) -> list[float]:
    """The comma-separated numbers of an option; its range is checked where the value is used."""
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise PrunetrainError(f"bad {flag} {text!r}: expected {expected}") from None


@cli.command()
@click.argument("model", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option(
    "--dataset",
    help="Dataset to evaluate on. Default: the one the run used, found again by its "
    "recorded path and checked by its content hash.",
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder of the IDX files.")
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="Splits to report (default: all).",
)
@json_option
def evaluate(
    model: str, dataset: str | None, data_dir: str | None, splits: tuple[str, ...], as_json: bool
) -> None:
    """Accuracy and loss of a saved MODEL (a ticket.npz or a baseline's weights.npz) on a dataset."""
    from prunetrain.api import evaluate_model, load_model, load_recorded_dataset
    from prunetrain.data import load_dataset
    from prunetrain.runs import SPLITS
    from prunetrain.ticket import Ticket

    loaded = load_model(model)
    if dataset:
        data = load_dataset(dataset, data_dir=data_dir)
    else:
        data = load_recorded_dataset(loaded.meta, data_dir)
    metrics = evaluate_model(loaded, data, splits or SPLITS)
    if as_json:
        echo_json({"model": model, "ticket": model, "dataset": data.name, "metrics": metrics})
        return
    if isinstance(loaded, Ticket):
        what = f"{loaded.spec.arch} keep {loaded.keep_fraction:.4f}"
    else:
        what = f"trained weights {loaded.arch}"
    click.echo(f"{model}: {what} on {data.name}")
    for split, row in metrics.items():
        click.echo(
            f"  {split:<5} accuracy {row['accuracy']:.4f}  loss {row['loss']:.4f}  (n={row['n']})"
        )


@cli.command()
@click.argument("model", metavar="TICKET", type=click.Path(dir_okay=False))
@click.argument("data", metavar="DATA", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Write the predictions to this CSV file (default: stdout).",
)
@click.option("--proba", is_flag=True, help="Add one probability column per class.")
def predict(model: str, data: str, out: str | None, proba: bool) -> None:
    """Predict the class of every sample of DATA (.npz with X, or .csv) with TICKET.

    Raw features go through the feature scaling the search used (recorded in
    the ticket). A CSV file's feature columns are found by the names the
    ticket recorded, else every column but a label column is a feature.
    Also takes a baseline's weights.npz.
    """
    from prunetrain.api import load_model, model_arch
    from prunetrain.api import predict as predict_classes
    from prunetrain.data import read_features
    from prunetrain.files import atomic_write, check_regular_file

    loaded = load_model(model)
    check_regular_file(data, "data file")  # a FIFO would block, a long name raise
    X = read_features(data, model_arch(loaded)[0], loaded.meta.get("feature_names"))
    labels, probabilities, classes = predict_classes(loaded, X)
    header = ["prediction"] + ([f"proba_{c}" for c in classes.tolist()] if proba else [])

    def write(f) -> None:
        import csv

        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for i, label in enumerate(labels.tolist()):
            writer.writerow([label] + ([repr(float(p)) for p in probabilities[i]] if proba else []))

    if out is None:
        write(sys.stdout)
    else:
        atomic_write(out, write, binary=False)
        logger.info("wrote %d predictions to %s", len(labels), out)


def _about(cls, **more) -> dict:
    """What ``methods`` lists of a registered class: its summary, its options' defaults, and
    each option's default, declared type and range."""
    options, declared = cls.param_defaults(), cls.param_table()
    return {"summary": cls.summary, **more, "options": options, "hyperparameters": declared}


@cli.command()
@json_option
def methods(as_json: bool) -> None:
    """List the search methods and the baselines, with their options (-p NAME=VALUE): each
    one's default, type and range."""
    listing = {
        "default": DEFAULT_METHOD,
        "search": {name: _about(SEARCHERS[name]) for name in sorted(SEARCHERS)},
        "baselines": {
            name: _about(
                cls,
                produces=cls.produces,
                recipes={
                    r.name: {"params": dict(r.params), "source": r.source}
                    for r in RECIPES.get(name, {}).values()
                },
            )
            for name, cls in BASELINES.items()
        },
    }
    if as_json:
        click.echo(json.dumps(listing, default=repr))
        return
    width = max(map(len, [*SEARCHERS, *BASELINES]))
    for title, kind in (
        (
            "search methods (prunetrain search --method NAME)",
            "search",
        ),
        ("baselines (prunetrain baseline --method NAME)", "baselines"),
    ):
        click.echo(title)
        for name, entry in listing[kind].items():
            marker = " (default)" if kind == "search" and name == DEFAULT_METHOD else ""
            click.echo(f"  {name:<{width}}  {entry['summary']}{marker}")
            options = [f"-p {k}={v['default']!r}" for k, v in entry["hyperparameters"].items()]
            column = max(map(len, options), default=0)
            for option, about in zip(options, entry["hyperparameters"].values()):
                click.echo(f"  {'':<{width}}  {option:<{column}}  {about['describe']}")
            for recipe, about in entry.get("recipes", {}).items():
                values = ", ".join(f"{k}={v!r}" for k, v in about["params"].items())
                click.echo(f"  {'':<{width}}  recipe={recipe}: {values}; {about['source']}")


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder of the IDX files.")
@json_option
def datasets(data_dir: str | None, as_json: bool) -> None:
    """List the named datasets and whether they can be loaded here."""
    from prunetrain.data import DATASETS, load_dataset

    rows = {}
    for name in DATASETS:
        try:
            data = load_dataset(name, data_dir=data_dir)
        except PrunetrainError as e:
            rows[name] = {"available": False, "reason": str(e)}
            continue
        rows[name] = {
            "available": True,
            "description": data.describe(),
            "n_train": len(data.y_train),
            "n_val": len(data.y_val),
            "n_test": len(data.y_test),
            "n_features": data.n_features,
            "n_classes": data.n_classes,
        }
    files = "your own data (X/y or X_train/y_train/X_test/y_test; csv with a label column)"
    if as_json:
        echo_json({"datasets": rows, "files": files})
        return
    for name, row in rows.items():
        status = row["description"] if row["available"] else f"not available: {row['reason']}"
        click.echo(f"{name:<14} {status}")
    click.echo(f"{'FILE.npz/.csv':<14} {files}")


@cli.command()
@click.option("--arch", default="784-300-100-10", show_default=True, help="Network to evaluate.")
@click.option("--population", default=64, show_default=True, type=int, help="Masks per evaluation.")
@click.option(
    "--batch-size", default=1024, show_default=True, type=int, help="Samples per evaluation."
)
@click.option("--batch", "old_batch", type=int, hidden=True)  # deprecated name of --batch-size
@click.option(
    "--backend",
    "backends",
    multiple=True,
    type=choice(BACKENDS),
    help="Backend to measure; repeatable (default: all that run here).",
)
@click.option(
    "--repeats", default=5, show_default=True, type=int, help="Timed rounds; medians are reported."
)
@json_option
def bench(
    arch: str,
    population: int,
    batch_size: int,
    old_batch: int | None,
    backends: tuple[str, ...],
    repeats: int,
    as_json: bool,
) -> None:
    """Mask evaluations per second of each backend, against this machine's fp32 GEMM peak."""
    from prunetrain.bench import format_bench, run_bench

    if old_batch is not None:
        logger.warning("--batch is deprecated: use --batch-size (as search and baseline do)")
        batch_size = old_batch
    if population < 1 or batch_size < 1 or repeats < 1:
        raise PrunetrainError("--population, --batch-size and --repeats must be at least 1")
    result = run_bench(arch, population, batch_size, list(backends) or None, repeats)
    click.echo(json.dumps(result) if as_json else format_bench(result))


#: Options that search and baseline pass on to the API unchanged, under the same names.
RUN_KEYS = (
    "data_dir",
    "init",
    "scale",
    "keep",
    "keep_rule",
    "method",
    "budget",
    "seed",
    "network_seed",
)


def _picked(opts: dict, *names: str) -> dict:
    """The options ``names`` of ``opts``, to pass on as keyword arguments of the same names."""
    return {name: opts[name] for name in names}


def _output_options(opts: dict) -> dict:
    """What search and baseline pass on about output: progress, the folder, --force."""
    return {
        "progress": not opts["quiet"],
        "out": opts["out"],
        "runs_dir": None if opts["out"] else RUNS_DIR,
        "force": opts["force"],
    }


def _reported_as_json(finished, opts: dict) -> bool:
    """Print the ``--json`` of a search or baseline (its record without the history, and the
    folder); True when the caller should print nothing more (``--json`` or ``--quiet``)."""
    if opts["as_json"]:
        summary = {k: v for k, v in finished.record().items() if k != "history"}
        echo_json({"out": None if finished.out is None else str(finished.out), **summary})
    return opts["as_json"] or opts["quiet"]


def _accuracy_line(m: dict) -> str:
    val = f"{m['val']['accuracy']:.4f}" if "val" in m else "-"
    return f"  accuracy  train {m['train']['accuracy']:.4f}  val {val}  test {m['test']['accuracy']:.4f}"


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    configure_logging()
    try:
        code = cli.main(args=argv, prog_name="prunetrain", standalone_mode=False)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        click.echo(f"prunetrain: error: {_one_line(e.format_message())}", err=True)
        code = EXIT_USER_ERROR
    except PrunetrainError as e:  # said with the flags where it names parameters
        click.echo(f"prunetrain: error: {_one_line(e.cli_message or e)}", err=True)
        code = EXIT_USER_ERROR
    except OSError as e:  # a file no check foresaw (a name too long...): one line, if named
        if e.filename is None:
            raise
        click.echo(f"prunetrain: error: {_one_line(f'{e.filename}: {e.strerror}')}", err=True)
        code = EXIT_USER_ERROR
    except (click.Abort, KeyboardInterrupt) as e:
        # click raises Abort from the KeyboardInterrupt (or Interrupted, for SIGTERM and SIGHUP).
        cause = e.__cause__ if isinstance(e, click.Abort) else e
        signum = signal_of(cause) if isinstance(cause, KeyboardInterrupt) else signal.SIGINT
        click.echo(f"prunetrain: interrupted ({signal.Signals(signum).name})", err=True)
        code = exit_code(signum)
    sys.exit(code or 0)
