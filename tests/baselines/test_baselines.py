import json

import numpy as np
import pytest

from prunetrain.baselines import BASELINES, make_baseline, run_baseline
from prunetrain.baselines.at_init import synflow_mask, synflow_scores
from prunetrain.baselines.backprop import SGD, Adam, forward, loss_and_gradients
from prunetrain.baselines.edge_popup import score_gradients, top_k_mask
from prunetrain.baselines.imp import default_rounds
from prunetrain.cli import main
from prunetrain.errors import PrunetrainError
from prunetrain.masks import KeepRule
from prunetrain.metrics import cross_entropy
from prunetrain.network import FrozenNetwork, NetworkSpec
from prunetrain.ticket import Ticket

ARCH = "64-16-12-10"


def small_problem(rng, bias=False, sizes=(7, 6, 5, 4), n=9):
    weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [0.1 * rng.standard_normal(b) for b in sizes[1:]] if bias else None
    X = rng.random((n, sizes[0]))
    y = rng.integers(0, sizes[-1], n)
    return weights, biases, X, y


def reference_loss(weights, biases, X, y) -> float:
    return float(cross_entropy(forward(weights, biases, X)[0], y))


def finite_difference(f, arrays, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of ``arrays`` (in place)."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            old = a[index]
            a[index] = old + eps
            up = f()
            a[index] = old - eps
            down = f()
            a[index] = old
            g[index] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("bias", [False, True])
def test_backprop_gradients_match_finite_differences(rng, bias):
    weights, biases, X, y = small_problem(rng, bias)
    loss, grad_w, grad_b = loss_and_gradients(weights, biases, X, y)
    assert loss == pytest.approx(reference_loss(weights, biases, X, y), rel=1e-12)
    numeric = finite_difference(lambda: reference_loss(weights, biases, X, y), weights)
    for g, n in zip(grad_w, numeric):
        np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-9)
    if bias:
        numeric_b = finite_difference(lambda: reference_loss(weights, biases, X, y), biases)
        for g, n in zip(grad_b, numeric_b):
            np.testing.assert_allclose(g, n, rtol=1e-6, atol=1e-9)
    else:
        assert grad_b is None


def test_backprop_keeps_float32_in_float32(rng):
    weights, _, X, y = small_problem(rng)
    w32 = [w.astype(np.float32) for w in weights]
    loss, grads, _ = loss_and_gradients(w32, None, X.astype(np.float32), y)
    assert all(g.dtype == np.float32 for g in grads)
    _, grads64, _ = loss_and_gradients(weights, None, X, y)
    for g, g64 in zip(grads, grads64):
        np.testing.assert_allclose(g, g64, rtol=1e-3, atol=1e-5)


def test_edge_popup_gradient_is_the_mask_derivative_through_abs(rng):
    """Straight-through: d loss / d s = sign(s) · d loss / d m, with m relaxed to a real value."""
    weights, _, X, y = small_problem(rng)
    shapes = [w.shape for w in weights]
    scores = [rng.standard_normal(s) for s in shapes]
    mask = top_k_mask(scores, KeepRule(0.5), shapes)
    loss, grads = score_gradients(scores, mask, weights, None, X, y)
    relaxed = [m.astype(np.float64) for m in mask]

    def loss_of_mask():
        return reference_loss([w * m for w, m in zip(weights, relaxed)], None, X, y)

    assert loss == pytest.approx(loss_of_mask(), rel=1e-12)
    numeric = finite_difference(loss_of_mask, relaxed)
    for g, n, s in zip(grads, numeric, scores):
        np.testing.assert_allclose(g, np.sign(s) * n, rtol=1e-6, atol=1e-9)
    # Pruned weights get a gradient too: that is how they come back.
    assert any(np.abs(g[~m]).max() > 0 for g, m in zip(grads, mask))


def test_top_k_mask_counts_per_layer_and_globally(rng):
    shapes = [(20, 10), (10, 5)]
    scores = [rng.standard_normal(s) for s in shapes]
    layer = top_k_mask(scores, KeepRule(0.3), shapes)
    assert [int(m.sum()) for m in layer] == KeepRule(0.3).layer_counts(shapes)
    assert KeepRule(0.3).satisfied_by(layer)
    glob = top_k_mask(scores, KeepRule(0.3, "global"), shapes)
    assert KeepRule(0.3, "global").satisfied_by(glob)
    threshold = min(np.abs(s[m]).min() for s, m in zip(scores, glob))
    assert all(np.abs(s[~m]).max() <= threshold for s, m in zip(scores, glob))


def test_synflow_scores_are_weight_times_gradient_of_the_path_sum(rng):
    weights, _, _, _ = small_problem(rng)
    mask = [rng.random(w.shape) < 0.7 for w in weights]
    magnitudes = [np.abs(w) * m for w, m in zip(weights, mask)]

    def path_sum():
        v = np.ones(magnitudes[0].shape[0])
        for a in magnitudes:
            v = v @ a
        return v.sum()

    numeric = finite_difference(path_sum, magnitudes)
    for s, n, a in zip(synflow_scores(weights, mask), numeric, magnitudes):
        np.testing.assert_allclose(s, a * n, rtol=1e-6, atol=1e-9)
    # Every weight's score is its share: the scores of one layer add up to R.
    assert all(np.isclose(s.sum(), path_sum()) for s in synflow_scores(weights, mask))


def test_synflow_mask_keeps_the_rule_and_never_revives(rng):
    net = FrozenNetwork(NetworkSpec((12, 8, 6, 3), init="kaiming_normal"), seed=1)
    for kind in ("layer", "global"):
        mask = synflow_mask(net.weights, KeepRule(0.2, kind), 10, rng)
        assert KeepRule(0.2, kind).satisfied_by(mask)


def test_optimizers_follow_their_update_rules():
    p = [np.array([1.0, -2.0])]
    g = [np.array([0.5, 0.25])]
    sgd = SGD(p, momentum=0.9, weight_decay=0.1)
    sgd.step(p, g, lr=0.1)
    sgd.step(p, g, lr=0.1)
    # v1 = g + λp0; p1 = p0 - η v1; v2 = μ v1 + g + λ p1; p2 = p1 - η v2
    p0 = np.array([1.0, -2.0])
    v1 = g[0] + 0.1 * p0
    p1 = p0 - 0.1 * v1
    v2 = 0.9 * v1 + g[0] + 0.1 * p1
    np.testing.assert_allclose(p[0], p1 - 0.1 * v2)
    q = [np.array([1.0, -2.0])]
    Adam(q).step(q, g, lr=0.01)  # the first Adam step moves each weight by lr·sign(g)
    np.testing.assert_allclose(q[0], [0.99, -2.01], rtol=1e-6)


def test_default_imp_rounds():
    assert default_rounds(0.5) == 4 and default_rounds(0.8) == 1 and default_rounds(1.0) == 0


# --- whole baselines on digits ----------------------------------------------------------------


QUICK = {
    "dense": {"epochs": 2},
    "dense-sklearn": {"epochs": 2},
    "edge-popup": {"epochs": 2},
    "imp": {"epochs": 1, "rounds": 2},
    "random": {},
    "magnitude": {},
    "synflow": {"iterations": 5},
}


def test_every_registered_baseline_is_exercised():
    assert set(BASELINES) == set(QUICK)


@pytest.mark.parametrize("method", sorted(QUICK))
def test_baseline_runs_and_records_like_a_search(digits, method, tmp_path, capsys):
    run = run_baseline(
        digits, ARCH, method=method, method_params=QUICK[method], keep=0.25, seed=2, out=tmp_path
    )
    record = json.loads((tmp_path / "result.json").read_text())
    search_keys = {"config", "versions", "provenance", "method", "params", "stopped_by"}
    search_keys |= {"evaluations"}
    search_keys |= {"sample_forwards", "seconds", "keep_fraction", "train_accuracy"}
    search_keys |= {"val_accuracy", "test_accuracy", "metrics", "history"}
    assert search_keys <= set(record) and {"ticket", "note", "epochs"} <= set(record)
    assert record["test_accuracy"] == run.metrics["test"]["accuracy"]
    assert (tmp_path / "curve.png").is_file() and (tmp_path / "curve.csv").is_file()
    # Training never touches the test split: its history holds validation only.
    assert not any("test_accuracy" in row or "test_loss" in row for row in record["history"])
    assert len(run.result.snapshots) == len(record["history"])
    if BASELINES[method].produces == "ticket":
        # A ticket of the frozen network: loads, and `prunetrain evaluate` reproduces it exactly.
        assert record["ticket"] == "ticket.npz" and record["weights"] is None
        ticket = Ticket.load(tmp_path / "ticket.npz")
        assert KeepRule(0.25).satisfied_by(ticket.mask)
        assert ticket.network.weights_hash == FrozenNetwork(run.ticket.spec, 2).weights_hash
    else:
        assert record["ticket"] is None and "not a ticket" in record["note"]
        with np.load(tmp_path / "weights.npz") as f:
            assert "weight_0" in f.files
            if method == "imp":
                assert np.count_nonzero(f["weight_0"]) == np.count_nonzero(f["mask_0"])
        expected_keep = 0.25 if method == "imp" else 1.0
        assert record["keep_fraction"] == pytest.approx(expected_keep, abs=1e-3)
    # `prunetrain evaluate` reads either file and reproduces the recorded metrics exactly.
    model = "ticket.npz" if record["ticket"] else "weights.npz"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tmp_path / model), "--json"])
    assert e.value.code == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == record["metrics"]


def test_trained_baselines_learn_digits(digits):
    params = {"dense": {"lr": 0.01}, "dense-sklearn": {}, "edge-popup": {}}
    results = {
        m: run_baseline(digits, "64-64-10", method=m, method_params={"epochs": 8, **p}, seed=0)
        for m, p in params.items()
    }
    for method, run in results.items():
        assert run.metrics["test"]["accuracy"] > 0.85, method
    data_free = run_baseline(digits, "64-64-10", method="random", seed=0)
    assert data_free.metrics["test"]["accuracy"] < 0.5


def test_same_seed_same_result_and_budget_caps(digits):
    a = run_baseline(digits, ARCH, method="edge-popup", method_params={"epochs": 2}, seed=4)
    b = run_baseline(digits, ARCH, method="edge-popup", method_params={"epochs": 2}, seed=4)
    assert all((x == y).all() for x, y in zip(a.ticket.mask, b.ticket.mask))
    capped = run_baseline(
        digits, ARCH, method="dense", method_params={"epochs": 5}, budget="7evals"
    )
    assert capped.result.steps == 7 and capped.result.stopped_by == "budget"
    imp = run_baseline(digits, ARCH, method="imp", method_params={"epochs": 1}, budget="15evals")
    assert imp.result.steps <= 15 and imp.result.stopped_by == "budget"
    # Stopped between rounds: the mask is the last trained one, consistent with the weights.
    assert all((np.asarray(w)[~m] == 0).all() for w, m in zip(imp.result.weights, imp.result.mask))


def test_imp_reaches_the_keep_and_holds_pruned_weights_at_zero(digits):
    run = run_baseline(
        digits,
        ARCH,
        method="imp",
        method_params={
            "epochs": 1,
            "rounds": 3,
            "weight_decay": 1e-3,
            "optimizer": "sgd",
            "lr": 0.05,
        },
        keep=0.3,
    )
    r = run.result
    assert KeepRule(0.3).satisfied_by(r.mask)
    assert all((w[~m] == 0).all() for w, m in zip(r.weights, r.mask))
    assert [row["round"] for row in r.history] == [0, 0, 1, 2, 3]
    assert r.history[-1]["keep"] == pytest.approx(0.3, abs=0.01)


def test_baseline_errors(digits):
    with pytest.raises(PrunetrainError, match="unknown baseline"):
        make_baseline("backprop")
    with pytest.raises(PrunetrainError, match="takes no option"):
        make_baseline("dense", population=3)
    with pytest.raises(PrunetrainError, match="epochs"):
        run_baseline(digits, ARCH, method="dense", method_params={"epochs": -1})
    with pytest.raises(PrunetrainError, match="optimizer"):
        run_baseline(digits, ARCH, method="dense", method_params={"optimizer": "lbfgs"})


def test_baseline_cli(tmp_path, capsys):
    out = tmp_path / "ep"
    with pytest.raises(SystemExit) as e:
        main(
            [
                "baseline",
                "--method",
                "edge-popup",
                "--arch",
                ARCH,
                "-p",
                "epochs=1",
                "--out",
                str(out),
            ]
        )
    assert e.value.code == 0
    stdout = capsys.readouterr().out
    assert "edge-popup on digits" in stdout and "test" in stdout
    assert {p.name for p in out.iterdir()} == {
        "ticket.npz",
        "result.json",
        "curve.csv",
        "curve.png",
    }
    with pytest.raises(SystemExit) as e:
        main(
            [
                "baseline",
                "--method",
                "dense",
                "--arch",
                ARCH,
                "-p",
                "epochs=1",
                "-q",
                "--out",
                str(tmp_path / "d"),
            ]
        )
    assert e.value.code == 0
    assert (tmp_path / "d" / "weights.npz").is_file()
    assert json.loads((tmp_path / "d" / "result.json").read_text())["ticket"] is None
    for bad in (["--method", "nope"], ["-p", "lr=-1"], ["--budget", "soon"]):
        with pytest.raises(SystemExit) as e:
            main(["baseline", "--arch", ARCH, "--out", str(tmp_path / "x"), *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("prunetrain: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


# --- recipes and convergence mode (issue 29) ------------------------------------------------

#: The recipes as their sources give them (allenai/hidden-networks configs/smallscale/fc/,
#: facebookresearch/open_lth models/mnist_lenet.py, scikit-learn's MLPClassifier defaults).
HIDDEN_NETWORKS = {
    "epochs": 100,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "cosine",
    "score_init": "kaiming_uniform",
    "patience": None,
}
LOTTERY_TICKET = {
    "epochs": 40,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "schedule": "constant",
    "patience": None,
}
TO_CONVERGENCE = {"epochs": 200, "schedule": "constant", "patience": 10}
DOCUMENTED = {
    ("edge-popup", "hidden-networks"): HIDDEN_NETWORKS,
    ("edge-popup", "converge"): {**HIDDEN_NETWORKS, **TO_CONVERGENCE},
    ("dense", "lottery-ticket"): LOTTERY_TICKET,
    ("dense", "converge"): {**LOTTERY_TICKET, **TO_CONVERGENCE},
    ("imp", "lottery-ticket"): {**LOTTERY_TICKET, "rounds": None},
    ("imp", "converge"): {**LOTTERY_TICKET, **TO_CONVERGENCE, "rounds": None},
    ("dense-sklearn", "converge"): {
        "epochs": 200,
        "batch_size": 200,
        "lr": 1e-3,
        "alpha": 1e-4,
        "patience": 10,
    },
}


def test_every_recipe_is_documented_here():
    from prunetrain.baselines.recipes import RECIPES

    assert {(m, r) for m, named in RECIPES.items() for r in named} == set(DOCUMENTED)


@pytest.mark.parametrize(("method", "recipe"), sorted(DOCUMENTED))
def test_a_recipe_resolves_to_its_documented_hyperparameters(method, recipe):
    params = make_baseline(method, recipe=recipe).get_params()
    assert params == {**DOCUMENTED[method, recipe], "recipe": recipe}
    make_baseline(method, recipe=recipe).check_params()


def test_given_values_override_the_recipe_and_the_record_says_which(digits, tmp_path):
    baseline = make_baseline("edge-popup", recipe="hidden-networks", epochs=1, lr=0.05)
    assert baseline.get_params() == {
        **HIDDEN_NETWORKS,
        "epochs": 1,
        "lr": 0.05,
        "recipe": "hidden-networks",
    }
    run = run_baseline(
        digits,
        ARCH,
        method="edge-popup",
        method_params={"recipe": "hidden-networks", "epochs": 1, "weight_decay": 1e-4},
        out=tmp_path,
    )
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["config"]["method_params"]["recipe"] == "hidden-networks"
    assert record["params"]["momentum"] == 0.9 and record["params"]["epochs"] == 1
    assert record["recipe"] == "hidden-networks"
    # weight_decay was given with the recipe's own value: not an override.
    assert record["recipe_overrides"] == ["epochs"]
    assert record["best_epoch"] is None and run.result.stopped_by == "epochs"
    plain = run_baseline(digits, ARCH, method="dense", method_params={"epochs": 1}).record()
    assert plain["recipe"] is None and plain["recipe_overrides"] == []


def test_unknown_recipes_are_one_line_errors_listing_the_known_ones(tmp_path, capsys):
    with pytest.raises(PrunetrainError) as e:
        make_baseline("edge-popup", recipe="fast")
    assert str(e.value) == (
        "unknown recipe 'fast' for baseline 'edge-popup'; expected one of converge, hidden-networks"
    )
    with pytest.raises(PrunetrainError, match="unknown recipe 3 .* converge, lottery-ticket"):
        make_baseline("dense", recipe=3)
    with pytest.raises(PrunetrainError, match="takes no option recipe"):
        make_baseline("random", recipe="converge")
    # Built directly, a recipe name is still checked (against the declared names) before training.
    from prunetrain.baselines.dense import DenseBackprop

    with pytest.raises(PrunetrainError) as e:
        DenseBackprop(recipe="hidden-networks").check_params()
    assert str(e.value) == (
        "recipe must be one of 'converge', 'lottery-ticket' or None; got 'hidden-networks'"
    )
    for bad, message in (
        (["--method", "edge-popup", "-p", "recipe=fast"], "expected one of converge, hidden"),
        (["--method", "dense", "-p", "recipe=hidden-networks"], "converge, lottery-ticket"),
        (["--method", "dense", "-p", "patience=0"], "patience must be a whole number"),
        (["--method", "dense", "-p", "patience=10001"], "patience must be a whole number"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["baseline", "--arch", ARCH, "--out", str(tmp_path / "x"), *bad])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("prunetrain: error:") and message in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_the_cli_names_the_recipe_and_the_kept_epoch(tmp_path, capsys):
    out = tmp_path / "ep"
    args = ["baseline", "--method", "dense", "--arch", ARCH, "--out", str(out)]
    args += ["-p", "recipe=converge", "-p", "epochs=4", "-p", "patience=1"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    stdout = capsys.readouterr().out
    record = json.loads((out / "result.json").read_text())
    assert "recipe converge (overridden: epochs, patience)" in stdout
    assert f"kept epoch {record['best_epoch']} (best on validation)" in stdout
    assert record["recipe"] == "converge" and record["params"]["lr"] == 0.1


def check_converged(run, patience: int) -> int:
    """The run stopped ``patience`` epochs after its best, and returned the best epoch's model."""
    r = run.result
    assert r.stopped_by == "converged"
    since = []  # epochs since the last strict improvement on validation, at each row
    best, best_epoch = -1.0, None
    for row in r.history:
        if row["val_accuracy"] > best:
            best, best_epoch = row["val_accuracy"], row["epoch"]
        since.append(row["epoch"] - best_epoch)
    assert since[-1] == patience and max(since[:-1]) < patience  # stopped at the first chance
    assert r.best_epoch == best_epoch  # the first of equals
    assert run.metrics["val"]["accuracy"] == best  # the kept model is the best epoch's
    return best_epoch


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("dense", {"lr": 0.05, "optimizer": "sgd", "schedule": "constant"}),
        ("edge-popup", {"schedule": "constant"}),
        ("dense-sklearn", {"lr": 0.01}),
    ],
)
def test_convergence_stops_after_patience_epochs_and_keeps_the_best(digits, method, params):
    patience = 2
    run = run_baseline(
        digits,
        "64-16-10",
        method=method,
        method_params={**params, "epochs": 60, "patience": patience},
        seed=1,
    )
    best_epoch = check_converged(run, patience)
    assert run.result.epochs < 60
    # The returned model is the best epoch's: the snapshot of every row is what the run would
    # have returned there, so the last row's is the best epoch's.
    rows = run.result.history
    last = run.result.snapshots[-1](digits.X_val).argmax(axis=1)
    best_row = next(i for i, row in enumerate(rows) if row["epoch"] == best_epoch)
    np.testing.assert_array_equal(last, run.result.snapshots[best_row](digits.X_val).argmax(axis=1))


def test_imp_converges_in_every_round(digits):
    patience = 1
    run = run_baseline(
        digits,
        "64-16-10",
        method="imp",
        method_params={"recipe": "converge", "rounds": 2, "patience": patience, "epochs": 40},
        keep=0.5,
        seed=0,
    )
    r = run.result
    assert r.stopped_by == "converged"
    rounds = [[row for row in r.history if row["round"] == k] for k in (0, 1, 2)]
    epochs = [row["epoch"] for row in r.history]
    assert epochs == list(range(len(epochs)))  # rounds of any length, counted on
    for rows in rounds:  # each round ends `patience` epochs without improving on its best
        vals = [row["val_accuracy"] for row in rows]
        assert len(rows) < 40
        # (a later round's first row, the rewound start, is left out of the history)
        assert len(rows) == patience or max(vals[-patience:]) <= max(vals[:-patience])
    last = rounds[2]
    assert r.best_epoch == max(last, key=lambda row: row["val_accuracy"])["epoch"]
    assert run.metrics["val"]["accuracy"] == max(row["val_accuracy"] for row in last)
    assert KeepRule(0.5).satisfied_by(r.mask)


def test_convergence_needs_a_validation_split(digits):
    import dataclasses

    no_val = dataclasses.replace(digits, X_val=digits.X_val[:0], y_val=digits.y_val[:0])
    with pytest.raises(PrunetrainError, match="patience needs a validation split"):
        run_baseline(no_val, ARCH, method="dense", method_params={"patience": 3})
