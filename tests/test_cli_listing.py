"""Discoverability (issue 19): choices from the registries, `methods`, --json everywhere."""

import json

import pytest

from prunetrain.backends import backend_names
from prunetrain.baselines import BASELINES
from prunetrain.cli import main
from prunetrain.masks import KEEP_KINDS
from prunetrain.network import INIT_SCHEMES, SCALE_RULES
from prunetrain.problem import SCHEDULES
from prunetrain.search import DEFAULT_METHOD, SEARCHERS


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def choices_in_help(text: str, option: str) -> list[str]:
    """The ``[a|b|c]`` click prints after ``option`` in ``--help``."""
    after = text.split(f"{option} [", 1)[1]
    return after.split("]", 1)[0].split("|")


@pytest.mark.parametrize(
    "command, option, names",
    [
        ("search", "--method", sorted(SEARCHERS)),
        ("search", "--backend", backend_names()),
        ("search", "--init", list(INIT_SCHEMES)),
        ("search", "--scale", list(SCALE_RULES)),
        ("search", "--keep-rule", list(KEEP_KINDS)),
        ("search", "--schedule", list(SCHEDULES)),
        ("baseline", "--method", list(BASELINES)),
        ("baseline", "--init", list(INIT_SCHEMES)),
    ],
)
def test_options_list_the_registry_names(capsys, command, option, names):
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    assert choices_in_help(" ".join(out.split()), option) == names


def test_shell_completion_offers_the_methods():
    from click.shell_completion import ShellComplete

    from prunetrain.cli import cli as group

    complete = ShellComplete(group, {}, "prunetrain", "_PRUNETRAIN_COMPLETE")
    offered = [c.value for c in complete.get_completions(["search", "--method"], "hebb")]
    assert offered == ["hebbian", "hebbian-label", "hebbian-reward"]


def test_methods_aligns_its_columns_and_lists_the_baselines(capsys):
    code, out, _ = cli(capsys, "methods")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("  ") and line.strip()]
    more = ("-p ", "recipe=")  # a method's continuation lines: its options and recipes
    names = [line.split()[0] for line in rows if not line.strip().startswith(more)]
    assert names == [*sorted(SEARCHERS), *BASELINES]

    def text_column(line: str) -> int:  # where the summary, "options:" or "recipe=" begins
        rest = line.lstrip()
        if not rest.startswith(more):
            rest = rest[len(rest.split()[0]) :].lstrip()
        return len(line) - len(rest)

    assert len({text_column(line) for line in rows}) == 1  # one column, long names included
    assert (
        f"  {DEFAULT_METHOD} " in out
        and "(default)" in out.split(f"  {DEFAULT_METHOD} ")[1].splitlines()[0]
    )
    assert "recipe=hidden-networks: epochs=100," in out  # a baseline's recipes


def test_methods_shows_each_options_default_type_and_range(capsys):
    """Issue 30: the declared hyperparameters, one line each, in a column of their own."""
    code, out, _ = cli(capsys, "methods")
    assert code == 0
    ga = out.split("\n  ga ", 1)[1].split("\n  hebbian ", 1)[0].splitlines()[1:]
    assert [" ".join(line.split()) for line in ga] == [
        "-p population=16 int in [2, 10000]",
        "-p elites=2 int in [0, population)",
        "-p tournament=3 int in [1, 10000]",
        "-p crossover='uniform' str in {'uniform', 'block'}",
        "-p crossover_rate=0.5 float in [0, 1]",
        "-p mutation=8.0 float in (0, 1000000000]",
    ]
    assert len({line.index(" int ") for line in ga if " int " in line}) == 1  # aligned
    rows = [" ".join(line.split()) for line in out.splitlines()]
    assert "-p confirm=True bool" in rows  # evolution's flag
    assert "-p t_start=None float in (0, 1e+06], or None" in rows  # anneal's optional one
    assert "-p first='hebbian-reward' searcher or its name, other than 'pipeline'" in rows
    assert "-p epochs=10 int in [0, 10000]" in rows  # a baseline's options too
    assert "-p recipe=None str in {'converge', 'hidden-networks'}, or None" in rows


def test_methods_json(capsys):
    code, out, _ = cli(capsys, "methods", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["default"] == DEFAULT_METHOD
    assert set(listing["search"]) == set(SEARCHERS) and set(listing["baselines"]) == set(BASELINES)
    assert listing["search"]["random"]["options"] == {"population": 32}
    assert listing["baselines"]["dense"]["produces"] == "weights"
    assert listing["baselines"]["dense"]["options"]["epochs"] == 10
    assert listing["search"]["random"]["hyperparameters"] == {
        "population": {
            "default": 32,
            "type": "int",
            "range": "in [1, 10000]",
            "optional": False,
            "describe": "int in [1, 10000]",
        }
    }
    patience = listing["baselines"]["dense"]["hyperparameters"]["patience"]
    assert (patience["default"], patience["optional"]) == (None, True)


def test_search_and_baseline_json(tmp_path, capsys):
    code, out, err = cli(
        capsys, "search", "--json", "--method", "random", "--budget", "10evals",
        "--arch", "64-8-10", "--out", tmp_path / "s",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    record = json.loads((tmp_path / "s" / "result.json").read_text())
    assert summary["out"] == str(tmp_path / "s")
    assert summary["test_accuracy"] == record["test_accuracy"] and "history" not in summary
    code, out, err = cli(
        capsys, "baseline", "--json", "-q", "--method", "magnitude", "--arch", "64-8-10",
        "--out", tmp_path / "b",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["method"] == "magnitude"


def test_compare_and_datasets_json(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(
        'name = "c"\ndatasets = ["digits"]\narchs = ["64-8-10"]\nkeeps = [0.5]\nseeds = [0]\n'
        'budget = "10evals"\n\n[methods.random]\n'
    )
    code, out, err = cli(capsys, "compare", config, "--out", tmp_path / "out", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["runs"], result["ran"], result["skipped"], result["failed"]) == (1, 1, 0, {})
    code, out, _ = cli(capsys, "datasets", "--json")
    assert code == 0
    digits = json.loads(out)["datasets"]["digits"]
    assert digits["available"] and (digits["n_features"], digits["n_classes"]) == (64, 10)


def test_bench_takes_batch_size_like_search_and_batch_as_a_deprecated_alias(capsys):
    args = ["bench", "--arch", "8-4", "--population", "1", "--repeats", "1", "--backend", "numpy"]
    code, out, err = cli(capsys, *args, "--batch-size", "6", "--json")
    assert code == 0 and json.loads(out)["batch"] == 6 and not err
    code, out, err = cli(capsys, *args, "--batch", "5", "--json")
    assert code == 0 and json.loads(out)["batch"] == 5 and "deprecated" in err
    code, out, _ = cli(capsys, "bench", "--help")
    assert "--batch-size" in out and "--batch " not in out
