"""A run's options (issue 30): typed blocks checked once where they enter, from which the
Python signatures and the command line's options are derived."""

import dataclasses
import inspect

import pytest

from prunetrain.api import resume_search, run_search
from prunetrain.baselines import run_baseline
from prunetrain.cli import cli
from prunetrain.errors import PrunetrainError, flag
from prunetrain.options import (
    BaselineOptions,
    FolderOptions,
    NetworkOptions,
    ResumeOptions,
    SearchOptions,
    takes_options,
)
from prunetrain.problem import Budget


def test_a_block_checks_and_parses_its_values_once_when_made():
    options = SearchOptions(budget="20evals", method_params={"population": 8}, patience=3)
    assert options.budget == Budget(evaluations=20) and options.method_params == {"population": 8}
    assert SearchOptions(budget=options.budget).budget is options.budget  # not parsed again
    assert BaselineOptions(budget="30s").budget == Budget(seconds=30.0)
    assert BaselineOptions().budget is None and BaselineOptions().method_params == {}
    network = NetworkOptions(seed=3)
    assert (network.seed, network.network_seed) == (3, 3)
    assert NetworkOptions(seed=3, network_seed=7).network_seed == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        network.seed = 4
    for make, message in [
        (lambda: SearchOptions(budget="soon"), "bad budget 'soon'"),
        (lambda: SearchOptions(patience=0), "patience"),
        (lambda: SearchOptions(init_share=1.0), "init share must be in (0, 1), got 1.0"),
        (lambda: BaselineOptions(budget="0evals"), "evaluation budget"),
        (lambda: NetworkOptions(seed=-1), "seed must be an integer"),
        (lambda: NetworkOptions(network_seed=2.5), "seed must be an integer"),
    ]:
        with pytest.raises(PrunetrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
            make()


def test_the_python_signatures_are_the_blocks_fields():
    blocks = {
        run_search: (NetworkOptions, SearchOptions, FolderOptions),
        run_baseline: (NetworkOptions, BaselineOptions, FolderOptions),
    }
    for function, kinds in blocks.items():
        parameters = inspect.signature(function).parameters
        fields = [f for kind in kinds for f in dataclasses.fields(kind)]
        assert list(parameters) == [f.name for f in fields]
        assert [p.default for p in parameters.values()] == [f.default for f in fields]
        assert [p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY] == [
            f.name for f in fields if f.name not in ("dataset", "arch")
        ]
    with pytest.raises(TypeError, match="budgett"):
        run_search("digits", budgett="20evals")
    resume = inspect.signature(resume_search).parameters
    assert list(resume) == [f.name for f in dataclasses.fields(ResumeOptions)]
    assert [p.name for p in resume.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["out"]


def test_takes_options_makes_each_block_in_turn():
    seen = []

    @takes_options(NetworkOptions, FolderOptions)
    def run(network, folder):
        seen.append((network, folder))

    run("iris", "4-8-3", seed=5, force=True)
    assert seen == [(NetworkOptions("iris", "4-8-3", seed=5), FolderOptions(force=True))]
    with pytest.raises(PrunetrainError, match="seed"):
        run(seed=-2)


def test_the_command_line_options_are_the_blocks_fields():
    """Each field with help becomes an option of the same name, default and help."""
    commands = {
        "search": (NetworkOptions, SearchOptions),
        "baseline": (NetworkOptions, BaselineOptions),
    }
    for command, kinds in commands.items():
        params = {p.name: p for p in cli.commands[command].params}
        for kind in kinds:
            for field in dataclasses.fields(kind):
                if "help" not in field.metadata:
                    continue
                option = params[field.name]
                assert option.opts == [f"--{field.name.replace('_', '-')}"]
                if field.name != "batch_size":  # the CLI's None stands for "auto"
                    assert option.default == field.default, (command, field.name)
        assert params["seed"].help == {"search": "Seed of the search and, by default, of the "
                                       "network.", "baseline": "Seed of the training and, by "
                                       "default, of the network."}[command]  # fmt: skip


def test_flag_of_a_parameter():
    assert flag("data_dir") == "--data-dir"
    assert flag("force=True") == "--force"
    assert flag("dataset=PATH") == "--dataset PATH"
