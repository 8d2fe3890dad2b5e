import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.errors import PrunetrainError
from prunetrain.network import (
    INIT_SCHEMES,
    MAX_LAYER_SIZE,
    MAX_LAYERS,
    MAX_WEIGHTS,
    FrozenNetwork,
    NetworkSpec,
    parse_arch,
)


def test_parse_arch():
    assert parse_arch("784-300-100-10") == (784, 300, 100, 10)
    assert parse_arch("4x3x2") == (4, 3, 2)
    for bad in ["", "784", "a-b", "10--5", "10-0-3", "-3-4"]:
        with pytest.raises(PrunetrainError, match="bad architecture"):
            parse_arch(bad)


def test_shapes_and_counts():
    spec = NetworkSpec((784, 300, 100, 10))
    assert spec.shapes == [(784, 300), (300, 100), (100, 10)]
    assert spec.n_weights == 784 * 300 + 300 * 100 + 100 * 10
    assert spec.flops_per_sample() == 2 * spec.n_weights
    assert spec.arch == "784-300-100-10"
    assert NetworkSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init": "xavier"}, "unknown init"),
        ({"scale": "double"}, "unknown scale"),
        ({"keep": 0.0}, r"keep must lie in \(0, 1\]"),
        ({"keep": 1.5}, r"keep must lie in \(0, 1\]"),
        ({"keep": float("nan")}, "keep must lie"),
        ({"activation": "tanh"}, "unknown activation"),
    ],
)
def test_spec_rejects_bad_values(kwargs, match):
    with pytest.raises(PrunetrainError, match=match):
        NetworkSpec((4, 3), **kwargs)


@pytest.mark.parametrize("init", INIT_SCHEMES)
@pytest.mark.parametrize("scale", ["keep", "none"])
def test_init_statistics(init, scale):
    keep = 0.25
    net = FrozenNetwork(NetworkSpec((400, 300, 10), init=init, scale=scale, keep=keep), seed=0)
    factor = 2.0 if scale == "keep" else 1.0  # 1/sqrt(0.25)
    for w, (fan_in, _) in zip(net.weights, net.shapes):
        assert w.dtype == np.float32 and not w.flags.writeable
        std = math.sqrt(2.0 / fan_in) if init != "binary" else 1.0
        expected = std * factor
        if init in ("signed_constant", "binary"):
            np.testing.assert_allclose(np.unique(np.abs(w)), [expected], rtol=1e-6)
            assert abs((w > 0).mean() - 0.5) < 0.03
        else:
            assert abs(w.std() / expected - 1) < 0.05
            assert abs(w.mean()) < 0.05 * expected
        if init == "kaiming_uniform":
            assert np.abs(w).max() <= math.sqrt(3) * expected * (1 + 1e-6)
            assert np.abs(w).max() > 0.95 * math.sqrt(3) * expected


def test_weights_are_a_pure_function_of_spec_and_seed():
    spec = NetworkSpec((20, 10, 5))
    a, b, c = FrozenNetwork(spec, 1), FrozenNetwork(spec, 1), FrozenNetwork(spec, 2)
    for wa, wb, wc in zip(a.weights, b.weights, c.weights):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)
    assert a.weights_hash == b.weights_hash != c.weights_hash
    # A layer's weights do not depend on the size of later layers.
    d = FrozenNetwork(NetworkSpec((20, 10, 7)), 1)
    np.testing.assert_array_equal(a.weights[0], d.weights[0])


def test_hash_covers_spec_not_only_weights():
    # binary ±1 weights with and without keep scaling differ; so do hashes of specs
    # whose weights happen to be equal (scale=none vs keep=1.0 with scale=keep).
    a = FrozenNetwork(NetworkSpec((6, 4), scale="none"), 0)
    b = FrozenNetwork(NetworkSpec((6, 4), scale="keep", keep=1.0), 0)
    np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert a.weights_hash != b.weights_hash


def test_bias_option():
    net = FrozenNetwork(NetworkSpec((5, 4, 3), bias=True), 0)
    assert [b.shape for b in net.biases] == [(4,), (3,)]
    assert FrozenNetwork(NetworkSpec((5, 4, 3)), 0).biases is None


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=2, max_size=4), st.integers(0, 2**32), st.booleans())
def test_forward_matches_a_naive_loop(sizes, seed, bias):
    net = FrozenNetwork(NetworkSpec(tuple(sizes), bias=bias), seed % 1000)
    rng = np.random.default_rng(seed)
    X = rng.random((3, sizes[0]))
    masks = [rng.random(s) < 0.5 for s in net.shapes]
    out = net.forward(masks, X)
    for n in range(3):
        a = X[n].astype(np.float64)
        for layer, (w, m) in enumerate(zip(net.weights, masks)):
            z = np.array(
                [
                    sum(a[i] * float(w[i, j]) * m[i, j] for i in range(len(a)))
                    for j in range(w.shape[1])
                ]
            )
            if bias:
                z = z + net.biases[layer]
            a = z if layer == len(masks) - 1 else np.maximum(z, 0)
        np.testing.assert_allclose(out[n], a, rtol=1e-10, atol=1e-12)


def test_seed_validation():
    for bad in [-1, 1.5, "3", True]:
        with pytest.raises(PrunetrainError, match="seed"):
            FrozenNetwork(NetworkSpec((3, 2)), bad)


# The first weights and biases of NetworkSpec((5, 4, 3), init=..., bias=True) with seed 2024,
# as NumPy's Generator drew them when tickets were first written. Tickets store no weights:
# if NumPy's random streams change, every saved ticket stops loading (its weights hash
# differs), so a change must fail here, loudly, before it reaches users.
PINNED_WEIGHTS = {
    "signed_constant": (
        [0.8944271802902222, 0.8944271802902222, -0.8944271802902222, 0.8944271802902222],
        [-1.0, -1.0, -1.0],
        [0.026886792853474617, -0.05660170316696167],
    ),
    "kaiming_normal": (
        [-0.1893720030784607, -0.15349464118480682, 0.5350342988967896, -0.5415955185890198],
        [2.2140161991119385, -0.8298833966255188, 1.0592010021209717],
        [-0.05357133969664574, 0.04816072806715965],
    ),
    "kaiming_uniform": (
        [0.466522753238678, 0.09161966294050217, -1.0314805507659912, 0.5143353939056396],
        [-1.3031636476516724, -0.1445605754852295, -1.3396687507629395],
        [0.026886792853474617, -0.05660170316696167],
    ),
    "binary": (
        [1.4142135381698608, 1.4142135381698608, -1.4142135381698608, 1.4142135381698608],
        [-1.4142135381698608, -1.4142135381698608, -1.4142135381698608],
        [0.026886792853474617, -0.05660170316696167],
    ),
}


@pytest.mark.parametrize("init", INIT_SCHEMES)
def test_weights_of_a_known_spec_and_seed_are_pinned(init):
    net = FrozenNetwork(NetworkSpec((5, 4, 3), init=init, bias=True), seed=2024)
    first, second, bias = PINNED_WEIGHTS[init]
    # Exact: NumPy makes these floats from the bit generator's integers in IEEE arithmetic.
    assert net.weights[0].ravel()[:4].tolist() == first
    assert net.weights[1].ravel()[:3].tolist() == second
    assert net.biases[0][:2].tolist() == bias
    assert net.biases[1][:2].tolist() == [-0.05461287498474121, -0.052211228758096695]


def test_weights_hash_of_the_default_spec_is_pinned():
    # The hash covers the spec's JSON too: a new spec field would also invalidate tickets.
    expected = "688da32dfe5f2fb2f86264c16d59b0f284bfcc21193e2fd3cb03a1a185fdb74c"
    assert FrozenNetwork(NetworkSpec((64, 32, 10)), 0).weights_hash == expected


# --- bounds: what a machine holds and what a ticket can be read back with -------------------


def test_an_arch_deeper_than_a_ticket_holds_is_refused_where_it_enters():
    """A 72-layer --arch searched to exit 0, then `evaluate` refused its ticket ("expected 2
    to 65"): the spec and the ticket share one bound, so the arch is refused up front."""
    import prunetrain.ticket

    assert prunetrain.ticket.MAX_LAYERS is MAX_LAYERS
    deepest = (4,) + (3,) * (MAX_LAYERS - 1) + (2,)
    assert NetworkSpec(deepest).n_layers == MAX_LAYERS
    too_deep = "-".join(["8"] * 73)
    with pytest.raises(PrunetrainError) as err:
        parse_arch(too_deep)
    assert str(err.value) == (
        "bad layer sizes 8-8-8-...-8: 72 layers; at most 64 (65 sizes, input and output included)"
    )
    with pytest.raises(PrunetrainError, match="65 layers; at most 64"):
        NetworkSpec((4,) + (3,) * MAX_LAYERS + (2,))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ((64, 10**8, 10), "a layer of 100000000 units; at most 1048576 per layer"),
        ((10**9, 10), "a layer of 1000000000 units"),
        ((64, 10**6, 10**6, 10), "1000074000000 weights; at most 268435456 (2**28) in all"),
    ],
)
def test_layer_sizes_past_memory_are_refused_before_any_weight(sizes, message):
    """Sizes of 10^8-10^9 were accepted and failed later with a MemoryError traceback."""
    with pytest.raises(PrunetrainError) as err:
        NetworkSpec(sizes)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PrunetrainError, match=message.split(";")[0]):
        parse_arch("-".join(map(str, sizes)))
    with pytest.raises(PrunetrainError):
        NetworkSpec.from_dict({"layer_sizes": list(sizes)})  # tickets, checkpoints


def test_the_bounds_themselves_are_accepted():
    assert NetworkSpec((MAX_LAYER_SIZE, 2)).n_weights == 2 * MAX_LAYER_SIZE
    assert NetworkSpec((2**14, 2**14)).n_weights == MAX_WEIGHTS
    assert parse_arch("x".join(["9"] * 65)) == (9,) * 65
    with pytest.raises(PrunetrainError, match="characters"):
        parse_arch("9-" * 5000 + "9")


@pytest.mark.parametrize("keep", [1e-300, 1e-3])
def test_a_keep_that_leaves_a_layer_without_a_weight_is_refused(keep):
    """`--keep 1e-300` gave NaN probabilities: 1/sqrt(keep) overflowed the float32 weights."""
    with pytest.raises(PrunetrainError) as err:
        NetworkSpec((64, 8, 10), keep=keep)
    assert str(err.value) == (
        f"keep {keep!r} leaves layer 2 (8x10, 80 weights) without a weight: "
        "expected keep >= 0.00625 for this network"
    )
    assert NetworkSpec((64, 8, 10), keep=0.00625).keep == 0.00625  # half a weight rounds up


def test_keep_1e_minus_300_is_refused_by_the_cli_and_the_estimator(tmp_path, capsys):
    from prunetrain.cli import main
    from prunetrain.estimator import SubnetworkClassifier

    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--keep", "1e-300", "--arch", "64-8-10", "--budget", "20evals",
              "--out", str(out), "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert "keep 1e-300 leaves layer 2 (8x10, 80 weights) without a weight" in err
    assert not out.exists()
    X = np.random.default_rng(0).random((40, 6))
    y = np.arange(40) % 2
    with pytest.raises(PrunetrainError, match="leaves layer"):
        SubnetworkClassifier(hidden_layer_sizes=(4,), keep=1e-300, budget="20evals").fit(X, y)


def test_a_72_layer_arch_is_refused_by_the_cli_before_the_search(tmp_path, capsys):
    from prunetrain.cli import main

    out = tmp_path / "o"
    arch = "-".join(["64", *["8"] * 71, "10"])
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--arch", arch, "--budget", "20evals", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "72 layers; at most 64" in err
    assert not out.exists()


def test_the_estimator_refuses_hidden_sizes_past_the_bound():
    from prunetrain.estimator import SubnetworkClassifier

    X = np.random.default_rng(0).random((40, 6))
    y = np.arange(40) % 2
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        SubnetworkClassifier(hidden_layer_sizes=10**8).fit(X, y)
    with pytest.raises(PrunetrainError, match="at most 1048576 per layer"):
        SubnetworkClassifier(hidden_layer_sizes=(4, 10**8)).fit(X, y)
    with pytest.raises(PrunetrainError, match="at most 64"):
        SubnetworkClassifier(hidden_layer_sizes=(4,) * 64).fit(X, y)


def test_a_ticket_with_keep_1e_minus_300_is_refused_when_loaded(tmp_path, capsys):
    """Such a ticket passed every check, then `evaluate --json` failed on NaN in JSON."""
    import warnings

    from prunetrain.cli import main
    from prunetrain.errors import TicketError
    from prunetrain.masks import KeepRule
    from prunetrain.ticket import Ticket

    spec = NetworkSpec((64, 8, 10))
    object.__setattr__(spec, "keep", 1e-300)  # as a spec was before keep met its shapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the 1/sqrt(keep) scale overflows float32
        net = FrozenNetwork(spec, 0)
    path = tmp_path / "t.npz"
    Ticket(net, [np.ones(s, dtype=bool) for s in net.shapes], KeepRule(1e-300)).save(path)
    with pytest.raises(TicketError, match="keep 1e-300 leaves layer 2"):
        Ticket.load(path)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(path), "--dataset", "digits", "--json"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and err.count("\n") == 1 and "leaves layer 2" in err
    assert out == ""
