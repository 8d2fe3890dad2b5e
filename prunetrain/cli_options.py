"""The command line's option blocks: click options made from the run's option dataclasses.

``prunetrain search`` and ``prunetrain baseline`` take the fields of
:class:`~prunetrain.options.NetworkOptions`, :class:`~prunetrain.options.SearchOptions`
and :class:`~prunetrain.options.BaselineOptions` as options
(:func:`block_options`: the flag, default, type, choices and help of each
come from its field), and share --param, --out, --force, --json and --quiet.
"""

from __future__ import annotations

import dataclasses
import json

import click

from prunetrain.backends import backend_names
from prunetrain.baselines import BASELINES
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KEEP_KINDS
from prunetrain.network import INIT_SCHEMES, SCALE_RULES
from prunetrain.options import NetworkOptions
from prunetrain.problem import SCHEDULES
from prunetrain.search import SEARCHERS


def search_batch_size_help() -> str:
    """--batch-size's help, its defaults read from the searchers so the two cannot drift apart."""
    by_size: dict[int, list[str]] = {}
    for name, cls in sorted(SEARCHERS.items()):
        size = cls.preferred_batch_size  # a pipeline's is its second stage's (a property)
        if isinstance(size, int) and size != 1024:
            by_size.setdefault(size, []).append(name)
    sizes = "; ".join(f"{size} for {', '.join(names)}" for size, names in sorted(by_size.items()))
    return (
        "Training batch size (0: the whole training set). Default: the method's "
        f"({sizes}; else 1024)."
    )


def choice(values) -> click.Choice:
    """A ``click.Choice`` of a registry's names, so ``--help`` and shell completion list them."""
    return click.Choice(list(values))


def json_option(command):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        command
    )


def force_option(command):
    return click.option(
        "--force", is_flag=True, help="Overwrite a finished run in the --out folder."
    )(command)


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


def options(*decorators):
    """Apply click options in the order given, which is their order in ``--help``."""

    def apply(command):
        for option in reversed(decorators):
            command = option(command)
        return command

    return apply


#: The registries an option block's ``choices`` metadata names, read when the CLI is built.
CHOICES = {
    "init": lambda: INIT_SCHEMES,
    "scale": lambda: SCALE_RULES,
    "keep_rule": lambda: KEEP_KINDS,
    "schedule": lambda: SCHEDULES,
    "backend": backend_names,
    "searchers": lambda: sorted(SEARCHERS),
    "baselines": lambda: BASELINES,
}


def block_options(block: type, *names: str, what: str = "run", **changed: dict):
    """The click options of the fields ``names`` of an option block (:mod:`prunetrain.options`).

    Each option's flag is the field's name (``keep_rule``: ``--keep-rule``),
    its default the field's, its help, type and choices the field's metadata
    (``{what}`` in a help names what the command runs); ``changed`` maps a
    field to the click settings this command gives it instead.
    """
    fields = {f.name: f for f in dataclasses.fields(block)}
    made = []
    for name in names:
        field = fields[name]
        meta = field.metadata
        settings = {"default": field.default, "help": meta.get("help", "").format(what=what)}
        if "choices" in meta:
            settings["type"] = choice(CHOICES[meta["choices"]]())
        elif "path" in meta:  # a file or a folder
            is_file = meta["path"] == "file"
            settings["type"] = click.Path(file_okay=is_file, dir_okay=not is_file)
        elif "type" in meta:
            settings["type"] = meta["type"]
        settings.update(changed.get(name, {}))
        settings["show_default"] = settings["default"] is not None
        made.append(click.option(f"--{name.replace('_', '-')}", name, **settings))
    return options(*made)


def network_options(**changed: dict):
    """The options that pick the data and the frozen network (:class:`NetworkOptions`)."""
    names = ("dataset", "data_dir", "arch", "init", "scale", "keep", "keep_rule")
    return block_options(NetworkOptions, *names, **changed)


def seed_options(what: str):
    """--seed (of ``what`` and, by default, of the network) and --network-seed."""
    return block_options(NetworkOptions, "seed", "network_seed", what=what)


def param_option(help: str):
    """--param NAME=VALUE, repeatable: the method's hyperparameters (``method_params``)."""
    return click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE", help=help)


def output_options(out_help: str):
    """--out, --force, --json and --quiet, shared by search and baseline."""
    return options(
        click.option("--out", type=click.Path(), help=out_help),
        force_option,
        json_option,
        click.option("--quiet", "-q", is_flag=True, help="No progress or summary."),
    )
