"""Run folders a researcher can find, trust and reuse (issue 19): data identity, no silent
overwrite, evaluating trained weights, and ``prunetrain predict`` on raw data.

Every CLI test goes through the real entry point, ``prunetrain.cli.main``.
"""

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from prunetrain.cli import main
from prunetrain.ticket import Ticket

SEARCH = ["search", "--method", "random", "--budget", "30evals", "-q"]


def cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def iris_csv(tmp_path):
    """Iris with string labels and raw (unscaled) features, as a user's CSV file."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    path = tmp_path / "iris.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*bunch.feature_names, "species"])
        for x, t in zip(bunch.data, bunch.target):
            writer.writerow([*map(repr, x.tolist()), bunch.target_names[t]])
    return path


# --- 1. data identity ---------------------------------------------------------------


def test_a_run_on_a_file_records_its_data_and_evaluate_finds_it_again(
    tmp_path, capsys, monkeypatch, iris_csv
):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *SEARCH, "--dataset", "iris.csv", "--arch", "4-16-3", "--out", "D")
    assert code == 0, err
    record = json.loads((tmp_path / "D" / "result.json").read_text())
    source = {
        "path": "iris.csv",
        "resolved": str(iris_csv.resolve()),
        "sha256": hashlib.sha256(iris_csv.read_bytes()).hexdigest(),
    }
    assert record["config"]["data_source"] == source
    ticket = Ticket.load(tmp_path / "D" / "ticket.npz")
    assert ticket.meta["data_source"] == source
    # From another folder the path as given is gone; the resolved path still finds the file.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = cli(capsys, "evaluate", tmp_path / "D" / "ticket.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == record["metrics"]


def test_evaluate_names_the_file_it_needs_when_it_changed_or_is_gone(
    tmp_path, capsys, monkeypatch, iris_csv
):
    monkeypatch.chdir(tmp_path)
    cli(capsys, *SEARCH, "--dataset", "iris.csv", "--arch", "4-16-3", "--out", "D")
    with iris_csv.open("a") as f:
        f.write("5.0,3.0,1.0,0.5,setosa\n")
    code, _, err = cli(capsys, "evaluate", "D/ticket.npz")
    assert code == 2 and err.count("\n") == 1
    assert "iris.csv has changed since this run was made" in err and "--dataset" in err
    # An explicit --dataset evaluates on the file as it is now.
    code, _, err = cli(capsys, "evaluate", "D/ticket.npz", "--dataset", "iris.csv")
    assert code == 0, err
    iris_csv.unlink()
    code, _, err = cli(capsys, "evaluate", "D/ticket.npz")
    assert code == 2 and f"made on the data file iris.csv (resolved {iris_csv}" in err
    assert "not there; pass --dataset PATH" in err


def test_tickets_without_the_new_fields_still_load_and_evaluate(tmp_path, capsys, digits):
    from prunetrain import run_search

    run = run_search(digits, "64-16-10", method="random", budget="20evals")
    old = Ticket(run.ticket.network, run.ticket.mask, run.ticket.rule, {"dataset": "digits"})
    old.save(tmp_path / "old.npz")
    code, out, err = cli(capsys, "evaluate", tmp_path / "old.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == run.metrics


# --- 2. no silent overwrite, distinct default folders ----------------------------------------


def test_a_finished_run_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = cli(capsys, *SEARCH, "--arch", "64-16-10", "--out", out)
    assert code == 0
    before = files(out)
    code, stdout, err = cli(capsys, *SEARCH, "--arch", "64-16-10", "--seed", "1", "--out", out)
    assert code == 2 and err.count("\n") == 1 and not stdout
    assert f"--out {out} already holds a finished run (random on digits)" in err
    assert "--force" in err
    assert files(out) == before  # nothing changed on disk
    code, _, err = cli(
        capsys, *SEARCH, "--arch", "64-16-10", "--seed", "1", "--out", out, "--force"
    )
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["config"]["seed"] == 1
    # A baseline refuses the same way, and --force replaces the search's ticket with its weights.
    code, _, err = cli(
        capsys, "baseline", "-q", "--arch", "64-16-10", "-p", "epochs=1", "--out", out
    )
    assert code == 2 and "already holds a finished run" in err
    code, _, err = cli(
        capsys, "baseline", "-q", "--arch", "64-16-10", "-p", "epochs=1", "--out", out, "--force"
    )
    assert code == 0, err
    assert "weights.npz" in files(out) and "ticket.npz" not in files(out)


def test_an_interrupted_run_may_be_replaced_by_the_search_that_resumes_it(tmp_path, capsys):
    out = tmp_path / "run"
    cli(capsys, *SEARCH, "--arch", "64-16-10", "--out", out)
    record = json.loads((out / "result.json").read_text())
    (out / "result.json").write_text(json.dumps({**record, "stopped_by": "interrupted"}))
    code, _, err = cli(
        capsys, *SEARCH, "--arch", "64-16-10", "--init-mask", out / "ticket.npz", "--out", out
    )
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["stopped_by"] == "budget"


def interrupt_at(monkeypatch, evaluations):
    """Ctrl-C (a real SIGINT) once a search has used ``evaluations``, in the middle of a step."""
    import signal

    from prunetrain.problem import Problem

    next_batch = Problem.next_batch

    def interrupting(self):
        if self.n_evaluations >= evaluations:
            monkeypatch.setattr(Problem, "next_batch", next_batch)
            signal.raise_signal(signal.SIGINT)
        return next_batch(self)

    monkeypatch.setattr(Problem, "next_batch", interrupting)


def test_resume_writes_into_an_interrupted_run_but_not_over_a_finished_one(
    tmp_path, capsys, monkeypatch
):
    args = ["search", "--method", "accumulate", "--budget", "200evals", "--arch", "64-16-10"]
    out = tmp_path / "run"
    interrupt_at(monkeypatch, 100)
    code, _, err = cli(capsys, *args, "-q", "--out", out)
    assert code == 130 and (out / "checkpoint.npz").is_file(), err
    checkpoint = (out / "checkpoint.npz").read_bytes()
    # The folder holds an interrupted run: --resume replaces it without --force.
    code, stdout, err = cli(capsys, "search", "--resume", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["out"] == str(out) and summary["stopped_by"] == "budget"
    assert not (out / "checkpoint.npz").exists()
    # A checkpoint left beside a finished run (say, a copy): refused unless --force.
    (out / "checkpoint.npz").write_bytes(checkpoint)
    before = files(out)
    code, stdout, err = cli(capsys, "search", "--resume", out, "-q")
    assert code == 2 and err.count("\n") == 1 and "already holds a finished run" in err
    assert files(out) == before
    code, _, err = cli(capsys, "search", "--resume", out, "-q", "--force")
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["evaluations"] == summary["evaluations"]


def test_resume_refuses_a_data_file_that_changed(tmp_path, capsys, monkeypatch, iris_csv):
    monkeypatch.chdir(tmp_path)
    interrupt_at(monkeypatch, 100)
    args = ["--method", "accumulate", "--budget", "400evals", "--arch", "4-16-3", "-q"]
    code, _, err = cli(capsys, "search", "--dataset", "iris.csv", *args, "--out", "D")
    assert code == 130, err
    with iris_csv.open("a") as f:
        f.write("5.0,3.0,1.0,0.5,setosa\n")
    before = files(tmp_path / "D")
    code, _, err = cli(capsys, "search", "--resume", "D")
    assert code == 2 and err.count("\n") == 1
    assert "iris.csv has changed since the search was checkpointed" in err
    assert files(tmp_path / "D") == before


def test_default_folders_tell_runs_apart_and_a_rerun_gets_its_own(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    variants = [
        ["--arch", "64-16-10"],
        ["--arch", "64-8-10"],  # same dataset, method, keep and seed: another architecture
        ["--arch", "64-16-10", "--budget", "40evals"],  # another budget
        ["--arch", "64-16-10", "--init", "binary"],  # another option: only the hash differs
    ]
    outs = []
    for extra in variants:
        code, out, err = cli(capsys, *SEARCH, *extra, "--json")
        assert code == 0, err
        outs.append(json.loads(out)["out"])
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(names) == 4
    assert any(n.startswith("digits-random-64-8-10-keep0.5-30evals-seed0-") for n in names)
    assert any(n.startswith("digits-random-64-16-10-keep0.5-40evals-seed0-") for n in names)
    # The same command again: the finished run stays, the rerun goes beside it.
    first = Path(outs[0]).name
    before = files(tmp_path / "runs" / first)
    for rerun in (2, 3):
        code, out, err = cli(capsys, *SEARCH, "--arch", "64-16-10", "--json")
        assert code == 0, err
        assert json.loads(out)["out"] == str(Path("runs") / f"{first}-{rerun}")
        assert (tmp_path / "runs" / f"{first}-{rerun}" / "ticket.npz").is_file()
    assert files(tmp_path / "runs" / first) == before
    code, out, _ = cli(capsys, *SEARCH, "--arch", "64-16-10", "--force", "--json")
    assert code == 0 and json.loads(out)["out"] == str(Path("runs") / first)


# --- 6. evaluate trained weights -------------------------------------------------------


def test_evaluate_reads_weights_written_before_they_had_meta(tmp_path, capsys):
    from prunetrain.baselines import run_baseline

    run = run_baseline("digits", "64-16-10", method="dense-sklearn", method_params={"epochs": 2})
    run.save(tmp_path)
    # A weights.npz as earlier versions wrote it: arrays only; result.json beside it.
    arrays = {f"weight_{i}": w for i, w in enumerate(run.result.weights)}
    arrays.update({f"bias_{i}": b for i, b in enumerate(run.result.biases)})
    np.savez(tmp_path / "weights.npz", **arrays)
    code, out, err = cli(capsys, "evaluate", tmp_path / "weights.npz", "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"] == run.metrics
    code, out, _ = cli(capsys, "evaluate", tmp_path / "weights.npz", "--split", "test")
    assert code == 0 and "trained weights 64-16-10 on digits" in out


def test_evaluate_rejects_a_damaged_weights_file(tmp_path, capsys):
    np.savez(tmp_path / "w.npz", weight_0=np.ones((64, 8)), weight_1=np.ones((7, 10)))
    code, _, err = cli(capsys, "evaluate", tmp_path / "w.npz", "--dataset", "digits")
    assert code == 2 and "weight shapes do not chain" in err and err.count("\n") == 1


# --- 7. predict --------------------------------------------------------------------------------


def test_predict_on_raw_data_reproduces_the_test_accuracy(tmp_path, capsys):
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = 10 * X + 100  # far from [0, 1]: only the recorded scaling maps it back
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:120], order[120:]
    np.savez(
        tmp_path / "split.npz", X_train=X[train], y_train=y[train], X_test=X[test], y_test=y[test]
    )
    np.savez(tmp_path / "new.npz", X=X[test])
    code, _, err = cli(
        capsys,
        *SEARCH,
        "--dataset",
        tmp_path / "split.npz",
        "--arch",
        "4-16-3",
        "--out",
        tmp_path / "D",
    )
    assert code == 0, err
    record = json.loads((tmp_path / "D" / "result.json").read_text())
    code, out, err = cli(
        capsys,
        "predict",
        tmp_path / "D" / "ticket.npz",
        tmp_path / "new.npz",
        "--out",
        tmp_path / "p.csv",
    )
    assert code == 0 and not out, err
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    predicted = np.array([int(r["prediction"]) for r in rows])
    assert len(predicted) == len(test)
    assert np.mean(predicted == y[test]) == record["test_accuracy"]  # exactly


def test_predict_picks_csv_columns_by_name_and_gives_probabilities(tmp_path, capsys, iris_csv):
    code, _, err = cli(
        capsys, *SEARCH, "--dataset", iris_csv, "--arch", "4-16-3", "--out", tmp_path / "D"
    )
    assert code == 0, err
    ticket = tmp_path / "D" / "ticket.npz"
    code, plain, _ = cli(capsys, "predict", ticket, iris_csv)
    assert code == 0
    # The same samples with the columns in another order and no label column.
    with iris_csv.open() as f:
        table = list(csv.reader(f))
    header, body = table[0], table[1:]
    order = [3, 1, 0, 2]
    shuffled = tmp_path / "shuffled.csv"
    with shuffled.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([header[j] for j in order])
        writer.writerows([[row[j] for j in order] for row in body])
    code, again, err = cli(capsys, "predict", ticket, shuffled, "--proba")
    assert code == 0, err
    rows = list(csv.DictReader(again.splitlines()))
    assert [r["prediction"] for r in rows] == [
        r["prediction"] for r in csv.DictReader(plain.splitlines())
    ]
    classes = ["setosa", "versicolor", "virginica"]
    assert list(rows[0]) == ["prediction", *(f"proba_{c}" for c in classes)]
    proba = np.array([[float(r[f"proba_{c}"]) for c in classes] for r in rows])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert [classes[k] for k in proba.argmax(axis=1)] == [r["prediction"] for r in rows]
    assert {r["prediction"] for r in rows} <= set(classes)


def test_predict_user_errors_are_one_line(tmp_path, capsys, iris_csv):
    cli(capsys, *SEARCH, "--dataset", iris_csv, "--arch", "4-16-3", "--out", tmp_path / "D")
    np.savez(tmp_path / "wide.npz", X=np.ones((3, 5)))
    np.savez(tmp_path / "nan.npz", X=np.full((3, 4), np.nan))
    for data, message in [
        ("wide.npz", "has 5 feature columns: the model takes 4"),
        ("nan.npz", "NaN"),
        ("missing.csv", "missing.csv: No such file or directory"),
    ]:
        out = tmp_path / "p.csv"
        code, _, err = cli(
            capsys, "predict", tmp_path / "D" / "ticket.npz", tmp_path / data, "--out", out
        )
        assert code == 2 and message in err and err.count("\n") == 1
        assert not out.exists()
