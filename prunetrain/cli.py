"""The ``prunetrain`` command line: thin click commands over the Python API.

A user error (bad option, bad data, damaged ticket) prints one line on stderr
and exits with code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from prunetrain.errors import PrunetrainError
from prunetrain.search import DEFAULT_METHOD

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def parse_method_params(pairs: tuple[str, ...]) -> dict:
    """``("population=64", "tabu=0.5")`` -> ``{"population": 64, "tabu": 0.5}`` (JSON values, else strings)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PrunetrainError(f"bad --param {pair!r}: expected NAME=VALUE")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def network_options(command):
    """The options that pick the data and the frozen network, shared by search and baseline."""
    options = [
        click.option(
            "--dataset",
            default="digits",
            show_default=True,
            help="digits, fashion-mnist, mnist, or a .npz/.csv file.",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False),
            help="Folder of the IDX files (else $PRUNETRAIN_DATA, else the Debian path).",
        ),
        click.option(
            "--arch", help="Layer sizes, e.g. 784-300-100-10. Default: inputs-256-256-classes."
        ),
        click.option(
            "--init",
            "init",
            default="signed_constant",
            show_default=True,
            help="signed_constant, kaiming_normal, kaiming_uniform, binary.",
        ),
        click.option(
            "--scale",
            default="keep",
            show_default=True,
            help="keep (scale weights by 1/sqrt(keep)) or none.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="prunetrain")
def cli() -> None:
    """Search frozen random networks for winning tickets, without backpropagation."""


@cli.command()
@network_options
@click.option(
    "--keep",
    default=0.5,
    show_default=True,
    type=float,
    help="Fraction of weights kept, in (0, 1].",
)
@click.option(
    "--keep-rule",
    default="layer",
    show_default=True,
    help="layer (exact per layer), global, or free.",
)
@click.option(
    "--method",
    default=DEFAULT_METHOD,
    show_default=True,
    help="Search method; see `prunetrain methods`.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A method hyperparameter; repeatable.",
)
@click.option(
    "--budget",
    default="20s",
    show_default=True,
    help="Wall time (30s, 10m, 1h) or evaluations (20000evals).",
)
@click.option(
    "--batch-size",
    type=int,
    help="Training batch size (0: the whole training set). Default: the method's "
    "(256 for ga, evolution, pbil, cem, nes; else 1024).",
)
@click.option(
    "--schedule",
    default="rotate",
    show_default=True,
    help="rotate (fresh minibatch each step), fixed, or full.",
)
@click.option("--backend", default="auto", show_default=True, help="auto, numpy, numba or cupy.")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the search and, by default, of the network.",
)
@click.option("--network-seed", type=int, help="Seed of the frozen weights, if other than --seed.")
@click.option("--patience", type=int, help="Stop after this many validations without improvement.")
@click.option(
    "--init-mask",
    type=click.Path(dir_okay=False),
    help="Start from this ticket's mask (resume a search), or from the mask a "
    "searcher finds first, e.g. hebbian-reward (a Hebbian initialisation).",
)
@click.option(
    "--init-share",
    default=0.25,
    show_default=True,
    type=float,
    help="Most of the budget an --init-mask searcher may use.",
)
@click.option(
    "--out", type=click.Path(), help="Output folder. Default: runs/DATASET-METHOD-keepK-seedS."
)
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Continue the interrupted search in DIR exactly where it stopped (its "
    "checkpoint.pkl); takes every setting from the checkpoint.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--verbose", "-v", is_flag=True, help="Say which backend `auto` chose and why.")
def search(**opts) -> None:
    """Search a frozen random network for a mask; write ticket.npz, result.json and the curve.

    Ctrl-C stops at the end of the current step, writes the best ticket so far
    and a checkpoint, and exits with code 130; `--resume DIR` continues it.
    """
    from prunetrain.api import resume_search, run_search
    from prunetrain.backends import backend_notice

    if opts["resume"] is not None:
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_', '-')}"
            for name in opts
            if name not in ("resume", "quiet", "verbose")
            and ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if given:
            raise PrunetrainError(
                f"--resume takes every setting from its checkpoint; drop {', '.join(given)}"
            )
        out = opts["resume"]
        finished = resume_search(out, progress=not opts["quiet"])
        _report_search(finished, out, opts["quiet"])
        return
    if opts["verbose"] and (notice := backend_notice(opts["backend"])):
        click.echo(notice, err=True)

    out = opts["out"] or (
        f"runs/{Path(opts['dataset']).stem}-{opts['method']}-keep{opts['keep']:g}-seed{opts['seed']}"
    )
    finished = run_search(
        opts["dataset"],
        opts["arch"],
        data_dir=opts["data_dir"],
        init=opts["init"],
        scale=opts["scale"],
        keep=opts["keep"],
        keep_rule=opts["keep_rule"],
        method=opts["method"],
        method_params=parse_method_params(opts["params"]),
        budget=opts["budget"],
        batch_size="auto" if opts["batch_size"] is None else opts["batch_size"],
        schedule=opts["schedule"],
        backend=opts["backend"],
        seed=opts["seed"],
        network_seed=opts["network_seed"],
        patience=opts["patience"],
        init_mask=opts["init_mask"],
        init_share=opts["init_share"],
        progress=not opts["quiet"],
        out=out,
    )
    _report_search(finished, out, opts["quiet"])


def _report_search(finished, out: str, quiet: bool) -> None:
    """The summary of a search; an interrupted one says how to resume and exits with 130."""
    r = finished.result
    if not quiet:
        _print_summary(finished, out)
    if r.interrupted:
        click.echo(
            f"prunetrain: interrupted after {r.evaluations:.0f} evaluations; the best ticket "
            f"so far is in {out}; continue with: prunetrain search --resume {out}",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


def _print_summary(finished, out: str) -> None:
    r, m, c = finished.result, finished.metrics, finished.config
    lines = [
        f"{c['method']} on {c['dataset']}  arch {c['arch']}  keep {c['keep']:g} ({c['keep_rule']})  backend {c['backend']}",
        f"  {r.evaluations:.0f} evaluations in {r.seconds:.1f} s ({r.evaluations / max(r.seconds, 1e-9):.0f}/s), stopped by {r.stopped_by}",
        "  accuracy  train {:.4f}  val {}  test {:.4f}".format(
            m["train"]["accuracy"],
            f"{m['val']['accuracy']:.4f}" if "val" in m else "-",
            m["test"]["accuracy"],
        ),
        f"  wrote {out}/ticket.npz, result.json, curve.csv, curve.png",
    ]
    click.echo("\n".join(lines))


@cli.command()
@network_options
@click.option(
    "--keep",
    default=0.5,
    show_default=True,
    type=float,
    help="Fraction of weights kept, in (0, 1] (dense ignores it but for the network's scale).",
)
@click.option(
    "--keep-rule",
    default="layer",
    show_default=True,
    help="layer (exact per layer), global, or free (treated as global).",
)
@click.option(
    "--method",
    default="dense",
    show_default=True,
    help="dense, dense-sklearn, edge-popup, imp, random, magnitude or synflow.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A baseline hyperparameter (epochs, lr, ...); repeatable.",
)
@click.option(
    "--budget",
    help="Optional cap: wall time (30s, 10m) or gradient steps (5000evals). Default: the method's epochs.",
)
@click.option("--batch-size", type=int, help="Training batch size. Default: the method's (128).")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the training and, by default, of the network.",
)
@click.option("--network-seed", type=int, help="Seed of the frozen weights, if other than --seed.")
@click.option(
    "--out", type=click.Path(), help="Output folder. Default: runs/DATASET-METHOD-keepK-seedS."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress or summary.")
def baseline(**opts) -> None:
    """Run a gradient-trained or data-free baseline; write result.json, the curve and a ticket or weights."""
    from prunetrain.baselines import run_baseline

    out = opts["out"] or (
        f"runs/{Path(opts['dataset']).stem}-{opts['method']}-keep{opts['keep']:g}-seed{opts['seed']}"
    )
    finished = run_baseline(
        opts["dataset"],
        opts["arch"],
        method=opts["method"],
        method_params=parse_method_params(opts["params"]),
        data_dir=opts["data_dir"],
        init=opts["init"],
        scale=opts["scale"],
        keep=opts["keep"],
        keep_rule=opts["keep_rule"],
        budget=opts["budget"],
        batch_size=opts["batch_size"],
        seed=opts["seed"],
        network_seed=opts["network_seed"],
        progress=not opts["quiet"],
        out=out,
    )
    if opts["quiet"]:
        return
    r, m, c = finished.result, finished.metrics, finished.config
    wrote = "ticket.npz" if finished.ticket is not None else "weights.npz"
    click.echo(
        "\n".join(
            [
                f"{c['method']} on {c['dataset']}  arch {c['arch']}  keep {finished.keep_fraction:.4g} ({c['keep_rule']})",
                f"  {r.epochs:g} epochs, {r.steps} gradient steps in {r.seconds:.1f} s, stopped by {r.stopped_by}",
                "  accuracy  train {:.4f}  val {}  test {:.4f}".format(
                    m["train"]["accuracy"],
                    f"{m['val']['accuracy']:.4f}" if "val" in m else "-",
                    m["test"]["accuracy"],
                ),
                f"  {r.note}",
                f"  wrote {out}/{wrote}, result.json, curve.csv, curve.png",
            ]
        )
    )


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
@click.option("--quiet", "-q", is_flag=True, help="Only the final summary line.")
def compare(config: str, jobs: int, scheduler: str | None, out: str | None, quiet: bool) -> None:
    """Run every method and baseline of CONFIG.toml over its seeds; resume what is missing.

    Writes results.jsonl, summary.md, summary.json, report.html and plots into --out;
    `prunetrain report` regenerates all but results.jsonl. The whole config is
    checked before the first run. Ctrl-C stops at once and exits with code 130,
    keeping only the runs that finished; several compare processes may share one
    --out (results.jsonl is locked while written).
    """
    from prunetrain.experiments import load_config, run_comparison

    comparison = load_config(config)
    out = out or f"experiments/results/{comparison.name}"
    try:
        result = run_comparison(
            comparison, out, jobs=jobs, scheduler=scheduler, echo=None if quiet else click.echo
        )
    except KeyboardInterrupt:
        click.echo(
            f"prunetrain: interrupted; the runs that finished are in {out}/results.jsonl, "
            "and a rerun completes the rest",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    click.echo(
        f"{len(result.ran)} runs done, {len(result.skipped)} skipped (already done), "
        f"{len(result.failed)} failed in {result.seconds:.0f} s; wrote {out}/results.jsonl, summary.md, "
        "report.html and plots"
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
def report(
    folders: tuple[str, ...],
    out: str | None,
    targets: str | None,
    reference: str | None,
    default_label: str | None,
) -> None:
    """Regenerate summary.md, summary.json, the plots and report.html from results.jsonl.

    Runs nothing: everything comes from the records `prunetrain compare` wrote into each of
    FOLDERS.
    """
    import shlex

    from prunetrain.experiments import report_folders

    overrides: dict = {"reference": reference, "default": default_label}
    if targets:
        try:
            overrides["targets"] = [float(t) for t in targets.split(",")]
        except ValueError:
            raise PrunetrainError(
                f"bad --targets {targets!r}: expected fractions such as 0.9,0.95,0.98"
            ) from None
    args = ["prunetrain", "report", *folders]
    for flag, value in (
        ("--out", out),
        ("--targets", targets),
        ("--reference", reference),
        ("--default", default_label),
    ):
        if value:
            args += [flag, value]
    written = report_folders(
        folders, out, overrides=overrides, command=" ".join(map(shlex.quote, args))
    )
    for path in written:
        click.echo(f"wrote {path.parent}/summary.md, summary.json, report.html and the plots")


@cli.command()
@click.argument("ticket", type=click.Path(dir_okay=False))
@click.option(
    "--dataset", help="Dataset to evaluate on. Default: the one the ticket was searched on."
)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder of the IDX files.")
@click.option(
    "--split",
    "splits",
    multiple=True,
    type=click.Choice(["train", "val", "test"]),
    help="Splits to report (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(
    ticket: str, dataset: str | None, data_dir: str | None, splits: tuple[str, ...], as_json: bool
) -> None:
    """Accuracy and loss of a saved TICKET on a dataset."""
    from prunetrain.api import SPLITS, evaluate_ticket
    from prunetrain.data import load_dataset
    from prunetrain.ticket import Ticket

    t = Ticket.load(ticket)
    name = dataset or t.meta.get("dataset")
    if not name:
        raise PrunetrainError("the ticket does not name its dataset; pass --dataset")
    data = load_dataset(name, data_dir=data_dir)
    metrics = evaluate_ticket(t, data, splits or SPLITS)
    if as_json:
        click.echo(json.dumps({"ticket": ticket, "dataset": data.name, "metrics": metrics}))
        return
    click.echo(f"{ticket}: {t.spec.arch} keep {t.keep_fraction:.4f} on {data.name}")
    for split, row in metrics.items():
        click.echo(
            f"  {split:<5} accuracy {row['accuracy']:.4f}  loss {row['loss']:.4f}  (n={row['n']})"
        )


@cli.command()
def methods() -> None:
    """List the search methods and their hyperparameters."""
    import inspect

    from prunetrain.search import SEARCHERS

    for name in sorted(SEARCHERS):
        cls = SEARCHERS[name]
        sig = inspect.signature(cls.__init__)
        defaults = ", ".join(
            f"{p.name}={p.default!r}"
            for p in sig.parameters.values()
            if p.name in cls.param_names()
        )
        click.echo(f"{name:<12} {cls.summary}")
        if defaults:
            click.echo(f"{'':<12}   options: {defaults}")


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder of the IDX files.")
def datasets(data_dir: str | None) -> None:
    """List the named datasets and whether they can be loaded here."""
    from prunetrain.data import DATASETS, load_dataset

    for name in DATASETS:
        try:
            status = load_dataset(name, data_dir=data_dir).describe()
        except PrunetrainError as e:
            status = f"not available: {e}"
        click.echo(f"{name:<14} {status}")
    click.echo(
        f"{'FILE.npz/.csv':<14} your own data (X/y or X_train/y_train/X_test/y_test; csv with a label column)"
    )


@cli.command()
@click.option("--arch", default="784-300-100-10", show_default=True, help="Network to evaluate.")
@click.option("--population", default=64, show_default=True, type=int, help="Masks per evaluation.")
@click.option("--batch", default=1024, show_default=True, type=int, help="Samples per evaluation.")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    help="Backend to measure; repeatable (default: all that run here).",
)
@click.option(
    "--repeats", default=5, show_default=True, type=int, help="Timed rounds; medians are reported."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(
    arch: str, population: int, batch: int, backends: tuple[str, ...], repeats: int, as_json: bool
) -> None:
    """Mask evaluations per second of each backend, against this machine's fp32 GEMM peak."""
    from prunetrain.bench import format_bench, run_bench

    if population < 1 or batch < 1 or repeats < 1:
        raise PrunetrainError("--population, --batch and --repeats must be at least 1")
    result = run_bench(arch, population, batch, list(backends) or None, repeats)
    click.echo(json.dumps(result) if as_json else format_bench(result))


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="prunetrain", standalone_mode=False)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        click.echo(f"prunetrain: error: {_one_line(e.format_message())}", err=True)
        code = EXIT_USER_ERROR
    except PrunetrainError as e:
        click.echo(f"prunetrain: error: {_one_line(e)}", err=True)
        code = EXIT_USER_ERROR
    except (click.Abort, KeyboardInterrupt):
        click.echo("prunetrain: interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code or 0)
