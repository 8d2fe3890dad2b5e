"""The one path from arguments to a run record (issue 20): ``runs.build``, ``runs.search``,
and run-loop callbacks that see each validated mask."""

import json

import numpy as np
import pytest

from prunetrain import runs
from prunetrain.api import run_search
from prunetrain.errors import PrunetrainError
from prunetrain.masks import pack_mask
from prunetrain.options import FolderOptions, SearchOptions
from prunetrain.search import make_searcher, run

ARCH = "64-24-16-10"


def test_build_makes_the_network_and_rule_a_search_runs_on(digits):
    setup = runs.build(digits, ARCH, keep=0.25, keep_rule="global", seed=3, network_seed=7)
    assert setup.data is digits and setup.loaded_from is None
    assert setup.spec.arch == ARCH and setup.spec.keep == 0.25
    assert (setup.rule.keep, setup.rule.kind) == (0.25, "global")
    assert (setup.seed, setup.network_seed, setup.network.seed) == (3, 7, 7)
    named = runs.build("digits", ARCH, seed=3)
    assert named.loaded_from == "digits" and named.network_seed == 3
    again = runs.build(digits, ARCH, seed=4, network=setup.network)
    assert again.network is setup.network and again.network_seed == 7
    with pytest.raises(PrunetrainError, match="takes 32 inputs"):
        runs.build(digits, "32-10")


def test_search_gives_what_run_search_gives(digits, tmp_path):
    setup = runs.build(digits, ARCH, seed=1)
    options = SearchOptions(method="random", budget="60evals")
    done = runs.search(setup, make_searcher("random"), options, FolderOptions(tmp_path / "r"))
    expected = run_search(digits, ARCH, method="random", budget="60evals", seed=1)
    assert done.config == expected.config
    assert pack_mask(done.ticket.mask).tobytes() == pack_mask(expected.ticket.mask).tobytes()
    assert done.metrics == expected.metrics
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    assert (
        record["config"] == done.config
        and record["test_accuracy"] == done.metrics["test"]["accuracy"]
    )
    assert not (tmp_path / "r" / "checkpoint.npz").exists()


def test_run_config_of_a_baseline(digits):
    setup = runs.build(digits, ARCH, seed=2)
    config = runs.run_config(setup, "magnitude", {}, None, baseline=True)
    assert list(config) == [
        "dataset", "data_source", "arch", "init", "scale", "keep", "keep_rule", "method",
        "method_params", "budget", "seed", "network_seed", "baseline",
    ]  # fmt: skip


def test_a_callback_sees_every_validated_mask(digits):
    setup = runs.build(digits, ARCH, seed=1)
    searcher = make_searcher("random")
    problem = setup.problem(searcher, backend="numpy")
    seen = []

    def callback(row, mask):
        seen.append((row, [m.copy() for m in mask]))

    result = run(problem, searcher, "200evals", seed=1, callbacks=[callback])
    assert [row for row, _ in seen] == result.history  # the start's and the final one's too
    for row, mask in seen:
        assert problem.validate(mask)[1] == row["val_accuracy"]
    last_better = [mask for row, mask in seen if row["improved"]][-1]
    for a, b in zip(last_better, result.mask):
        np.testing.assert_array_equal(a, b)


def test_a_callback_can_stop_a_search_before_its_first_step(digits):
    setup = runs.build(digits, ARCH, seed=1)
    searcher = make_searcher("random")
    result = run(setup.problem(searcher), searcher, "200evals", callbacks=[lambda row, mask: True])
    assert result.stopped_by == "callback" and len(result.history) == 1
    assert result.history[0]["evaluations"] == 0


def test_run_search_passes_callbacks_on_and_a_callback_can_stop_it(digits):
    seen = []

    def callback(row, mask):
        seen.append(row["evaluations"])
        return len(seen) == 3

    done = run_search(
        digits, ARCH, method="random", budget="2000evals", seed=1, callbacks=[callback]
    )
    assert done.result.stopped_by == "callback"
    assert seen == [row["evaluations"] for row in done.result.history] and len(seen) == 3
    assert done.result.evaluations < 2000


def test_search_resume_and_the_estimator_reach_the_loop_through_the_run_service(
    digits, tmp_path, monkeypatch
):
    from prunetrain.api import resume_search
    from prunetrain.estimator import SubnetworkClassifier

    loops = []
    search_loop = runs.search_loop

    def counted(problem, searcher, options, seed, **kwargs):
        loops.append("resumed" if kwargs.get("resume") else options.method)
        return search_loop(problem, searcher, options, seed, **kwargs)

    def ctrl_c(row, mask):
        if row["evaluations"] > 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "search_loop", counted)
    out = tmp_path / "r"
    first = run_search(
        digits, ARCH, method="random", budget="100evals", out=out, callbacks=[ctrl_c]
    )
    assert first.result.stopped_by == "interrupted" and (out / "checkpoint.npz").is_file()
    assert resume_search(out, dataset=digits).result.stopped_by == "budget"
    SubnetworkClassifier(hidden_layer_sizes=(8,), method="hill", budget="20evals").fit(
        digits.X_train, digits.y_train
    )
    assert loops == ["random", "resumed", "hill"]


def test_only_the_run_service_imports_the_run_loop():
    """``search.run`` is the door for a caller with a problem in hand; the package's own runs
    (api, resume, baselines, estimator, the comparison runner) use ``runs.search_loop``."""
    import ast
    from pathlib import Path

    import prunetrain

    root = Path(prunetrain.__file__).parent
    allowed = {"runs.py", "search/loop.py", "search/__init__.py", "__init__.py"}
    for path in root.rglob("*.py"):
        name = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "prunetrain.search",
                "prunetrain.search.loop",
            ):
                imported = {alias.name for alias in node.names} & {"run", "RunLoop"}
                assert not imported or name in allowed, (name, imported)
            if isinstance(node, ast.Attribute) and node.attr == "finish":
                assert name == "runs.py" or not (
                    isinstance(node.value, ast.Name) and node.value.id == "runs"
                ), name


def test_a_library_error_names_the_parameter_and_the_cli_its_flag(digits, tmp_path, capsys):
    from prunetrain.cli import main

    with pytest.raises(PrunetrainError) as refused:
        run_search(digits, "32-10")
    assert str(refused.value) == ("arch 32-10 takes 32 inputs but dataset 'digits' has 64 features")
    out = tmp_path / "r"
    run_search(digits, ARCH, method="random", budget="20evals", out=out)
    with pytest.raises(PrunetrainError) as refused:
        run_search(digits, ARCH, method="random", budget="20evals", out=out)
    assert str(refused.value) == (
        f"out {out} already holds a finished run (random on digits); pass force=True to "
        "overwrite it, or choose another out"
    )
    for args, said in [
        (["--arch", "32-10"], "--arch 32-10 takes 32 inputs"),
        (["--arch", ARCH, "--out", str(out)], f"--out {out} already holds a finished run (random on digits); pass --force to overwrite it, or choose another --out"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(["search", "--method", "random", "--budget", "20evals", "-q", *args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(f"prunetrain: error: {said}"), err
