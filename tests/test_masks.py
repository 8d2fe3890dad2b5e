import copy
import dataclasses
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.baselines.select import keep_largest
from prunetrain.errors import PrunetrainError
from prunetrain.masks import (
    KEEP_KINDS,
    FreeRule,
    GlobalRule,
    KeepRule,
    LayerRule,
    MaskPopulation,
    Segment,
    check_mask,
    pack_mask,
    random_mask,
    unpack_mask,
)

shapes_strategy = st.lists(
    st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=4
)


@st.composite
def shapes_and_keep(draw):
    """Shapes and a keep in [0.01, 1] that leaves every layer a weight (keep * n_l >= 1/2)."""
    shapes = draw(shapes_strategy)
    low = max(0.01, 0.5 / min(a * b for a, b in shapes))
    return shapes, draw(st.floats(low, 1.0))


@settings(max_examples=50, deadline=None)
@given(shapes_strategy, st.integers(0, 2**32 - 1), st.floats(0.01, 1.0))
def test_pack_unpack_round_trip(shapes, seed, p):
    rng = np.random.default_rng(seed)
    mask = [rng.random(s) < p for s in shapes]
    packed = pack_mask(mask)
    n = sum(a * b for a, b in shapes)
    assert packed.dtype == np.uint8 and packed.size == (n + 7) // 8
    for a, b in zip(unpack_mask(packed, shapes), mask):
        assert a.dtype == bool
        np.testing.assert_array_equal(a, b)


def test_pack_bit_order_is_little_and_c_order():
    mask = [np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1]], dtype=bool)]
    # bits 0 and 8 set: byte 0 = 0b00000001, byte 1 = 0b00000001
    np.testing.assert_array_equal(pack_mask(mask), [1, 1])


def test_unpack_rejects_wrong_size():
    with pytest.raises(PrunetrainError, match="expected 2"):
        unpack_mask(np.zeros(3, np.uint8), [(3, 3)])


@settings(max_examples=40, deadline=None)
@given(
    shapes_and_keep(),
    st.sampled_from(["layer", "global", "free"]),
    st.integers(0, 999),
)
def test_random_mask_obeys_rule(shapes_keep, kind, seed):
    shapes, keep = shapes_keep
    rule = KeepRule(keep, kind)
    mask = random_mask(shapes, rule, np.random.default_rng(seed))
    assert [m.shape for m in mask] == [tuple(s) for s in shapes]
    assert rule.satisfied_by(mask)
    counts = [int(m.sum()) for m in mask]
    if kind == "layer":
        assert counts == [max(1, round(keep * a * b)) for a, b in shapes]
    if kind == "global":
        assert sum(counts) == max(1, round(keep * sum(a * b for a, b in shapes)))


def test_random_mask_is_deterministic_and_uniform():
    shapes = [(10, 10)]
    a = random_mask(shapes, KeepRule(0.3), np.random.default_rng(5))
    b = random_mask(shapes, KeepRule(0.3), np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    rng = np.random.default_rng(0)
    freq = np.mean([random_mask(shapes, KeepRule(0.3), rng)[0] for _ in range(2000)], axis=0)
    assert np.abs(freq - 0.3).max() < 0.05


def test_free_rule_is_bernoulli():
    mask = random_mask([(200, 200)], KeepRule(0.2, "free"), np.random.default_rng(0))
    assert abs(mask[0].mean() - 0.2) < 0.01


def test_keep_rule_validation():
    with pytest.raises(PrunetrainError, match="keep must lie"):
        KeepRule(0.0)
    with pytest.raises(PrunetrainError, match="unknown keep rule"):
        KeepRule(0.5, "neuron")
    assert KeepRule.from_dict(KeepRule(0.25, "global").to_dict()) == KeepRule(0.25, "global")


def test_population_round_trip_and_select():
    rng = np.random.default_rng(1)
    shapes = [(7, 5), (5, 3)]
    masks = [random_mask(shapes, KeepRule(0.4), rng) for _ in range(6)]
    pop = MaskPopulation.from_masks(masks, shapes)
    assert len(pop) == 6
    assert pop.packed[0].shape == (6, 5)  # ceil(35 / 8)
    assert pop.nbytes() == 6 * (5 + 2)
    for i, m in enumerate(masks):
        for a, b in zip(pop.mask(i), m):
            np.testing.assert_array_equal(a, b)
    sub = pop.select(np.array([4, 1]))
    np.testing.assert_array_equal(sub.layer(1), np.stack([masks[4][1], masks[1][1]]))
    np.testing.assert_array_equal(pop.layer(0, slice(2, 4)), np.stack([masks[2][0], masks[3][0]]))


def test_population_errors():
    shapes = [(3, 2)]
    with pytest.raises(PrunetrainError, match="at least one"):
        MaskPopulation.from_masks([], shapes)
    with pytest.raises(PrunetrainError, match="shape"):
        MaskPopulation.from_masks([[np.ones((2, 3), bool)]], shapes)
    with pytest.raises(PrunetrainError, match="layers"):
        check_mask([np.ones((3, 2), bool)] * 2, shapes)
    with pytest.raises(PrunetrainError, match="does not fit"):
        MaskPopulation([np.zeros((2, 5), np.uint8)], shapes)


# --- keep rules as classes -------------------------------------------------------------


def old_random_mask(shapes, rule, rng):
    """``random_mask`` as it was before the rules were classes (the draws must not change)."""
    sizes = [a * b for a, b in shapes]
    if rule.kind == "layer":
        flats = []
        for n, k in zip(sizes, [max(1, round(rule.keep * a * b)) for a, b in shapes]):
            flat = np.zeros(n, dtype=bool)
            flat[rng.choice(n, size=k, replace=False)] = True
            flats.append(flat)
    elif rule.kind == "global":
        total = sum(sizes)
        flat = np.zeros(total, dtype=bool)
        flat[rng.choice(total, size=max(1, round(rule.keep * total)), replace=False)] = True
        flats = np.split(flat, np.cumsum(sizes)[:-1])
    else:
        flats = [rng.random(n) < rule.keep for n in sizes]
    return [f.reshape(shape) for f, shape in zip(flats, shapes)]


def old_top(values, k):
    keep = np.zeros(values.size, dtype=bool)
    if k >= values.size:
        keep[:] = True
    elif k > 0:
        keep[np.argpartition(values, values.size - k)[values.size - k :]] = True
    return keep


def old_keep_largest(values, rule, shapes):
    """``baselines.select.keep_largest`` before the rules were classes."""
    flat_values = [np.asarray(v).ravel() for v in values]
    if rule.kind == "layer":
        counts = [max(1, round(rule.keep * a * b)) for a, b in shapes]
        flats = [old_top(v, k) for v, k in zip(flat_values, counts)]
    else:
        total = max(1, round(rule.keep * sum(a * b for a, b in shapes)))
        flat = old_top(np.concatenate(flat_values), total)
        flats = np.split(flat, np.cumsum([v.size for v in flat_values])[:-1])
    return [f.reshape(shape) for f, shape in zip(flats, shapes)]


def old_probe_wants(scores, masks, kind):
    """``probe``'s proposals target before the rules were classes (flat scores and masks)."""
    if kind == "free":
        return [s > 0 for s in scores]
    if kind == "layer":
        return [old_top(s, int(m.sum())) for s, m in zip(scores, masks)]
    flat = old_top(np.concatenate(scores), int(sum(int(m.sum()) for m in masks)))
    return np.split(flat, np.cumsum([s.size for s in scores])[:-1])


KINDS = ["layer", "global", "free"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_its_own_class_with_its_segments(kind):
    rule = KeepRule(0.5, kind)
    assert type(rule) is {"layer": LayerRule, "global": GlobalRule, "free": FreeRule}[kind]
    assert isinstance(rule, KeepRule) and rule.kind == kind and rule.keep == 0.5
    assert type(rule)(0.5) == rule and type(rule)(0.5, kind) == rule
    shapes = [(4, 3), (3, 2)]
    expected = {
        "layer": [(0, 12, 6), (12, 18, 3)],
        "global": [(0, 18, 9)],
        "free": [(0, 12, None), (12, 18, None)],
    }[kind]
    assert rule.segments(shapes) == [Segment(*s) for s in expected]
    assert [(list(layers), c) for layers, c in rule.layer_segments(shapes)] == {
        "layer": [([0], 6), ([1], 3)],
        "global": [([0, 1], 9)],
        "free": [([0], None), ([1], None)],
    }[kind]
    assert rule.fixes_counts == (kind != "free")
    assert KEEP_KINDS == ("layer", "global", "free")


def test_rules_compare_hash_and_print_as_before():
    assert KeepRule(0.3, "global") == KeepRule(0.3, "global") != KeepRule(0.3, "layer")
    assert len({KeepRule(0.3, k) for k in KINDS + KINDS}) == 3
    assert hash(KeepRule(0.3, "free")) == hash((0.3, "free"))
    assert repr(KeepRule(0.3, "free")) == "KeepRule(keep=0.3, kind='free')"
    assert KeepRule() == KeepRule(0.5, "layer") and vars(KeepRule()) == {
        "keep": 0.5,
        "kind": "layer",
    }
    with pytest.raises(PrunetrainError, match="not 'layer'"):
        GlobalRule(0.5, "layer")
    with pytest.raises(dataclasses.FrozenInstanceError):
        KeepRule().keep = 0.2
    assert KeepRule(0.3, "free").with_keep(0.2) == KeepRule(0.2, "free")
    assert KeepRule(0.3, "free").counted() == KeepRule(0.3, "global")
    assert KeepRule(0.3, "layer").counted() == KeepRule(0.3, "layer")


# A list of KeepRule(0.3, "global") and KeepRule(0.4, "free") pickled before the rules were
# subclasses (a frozen dataclass KeepRule with fields keep and kind).
OLD_PICKLE = (
    b"\x80\x05\x95k\x00\x00\x00\x00\x00\x00\x00]\x94(\x8c\x10prunetrain.masks\x94\x8c\x08KeepRule"
    b"\x94\x93\x94)\x81\x94}\x94(\x8c\x04keep\x94G?\xd3333333\x8c\x04kind\x94\x8c\x06global\x94ub"
    b"h\x03)\x81\x94}\x94(h\x06G?\xd9\x99\x99\x99\x99\x99\x9ah\x07\x8c\x04free\x94ube."
)


def test_rules_pickle_and_old_pickles_load():
    for kind in KINDS:
        rule = KeepRule(0.3, kind)
        again = pickle.loads(pickle.dumps(rule))
        assert again == rule and type(again) is type(rule)
        assert copy.deepcopy(rule) == rule
    old = pickle.loads(OLD_PICKLE)
    assert old == [KeepRule(0.3, "global"), KeepRule(0.4, "free")]
    assert [type(r) for r in old] == [GlobalRule, FreeRule]


@settings(max_examples=40, deadline=None)
@given(shapes_and_keep(), st.sampled_from(KINDS), st.integers(0, 999))
def test_random_mask_draws_what_it_always_drew(shapes_keep, kind, seed):
    shapes, keep = shapes_keep
    rule = KeepRule(keep, kind)
    new_rng, old_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(2):
        new, old = rule.random_mask(shapes, new_rng), old_random_mask(shapes, rule, old_rng)
        for a, b in zip(new, old):
            np.testing.assert_array_equal(a, b)
    assert new_rng.random() == old_rng.random()


@settings(max_examples=60, deadline=None)
@given(
    shapes_and_keep(),
    st.sampled_from(KINDS),
    st.integers(0, 999),
    st.sampled_from([np.float32, np.float64]),
    st.booleans(),
)
def test_keep_top_is_what_baselines_and_probe_kept(shapes_keep, kind, seed, dtype, ties):
    shapes, keep = shapes_keep
    rng = np.random.default_rng(seed)
    rule = KeepRule(keep, kind)
    scores = [
        (rng.integers(-2, 3, s) if ties else rng.standard_normal(s)).astype(dtype) for s in shapes
    ]
    # baselines: keep_largest (free ranks as global), and the rule's own counts
    mask = keep_largest(scores, rule, shapes)
    for a, b in zip(mask, old_keep_largest(scores, rule, shapes)):
        np.testing.assert_array_equal(a, b)
    assert rule.counted().satisfied_by(mask)
    # probe: flat scores, the counts of the current mask
    flat_scores = [s.ravel() for s in scores]
    like = [m.ravel() for m in rule.random_mask(shapes, rng)]
    for a, b in zip(
        rule.keep_top(flat_scores, like=like), old_probe_wants(flat_scores, like, kind)
    ):
        np.testing.assert_array_equal(a, b)


def test_keep_top_of_a_free_rule_keeps_positive_scores():
    scores = [np.array([[0.5, -1.0], [0.0, 2.0]])]
    np.testing.assert_array_equal(
        KeepRule(0.5, "free").keep_top(scores)[0], [[True, False], [False, True]]
    )


@pytest.mark.parametrize("kind", KINDS)
def test_layer_split_satisfies_the_rule(kind):
    shapes = [(7, 5), (5, 3), (3, 2)]
    rule = KeepRule(0.37, kind)
    counts = rule.layer_split(shapes)
    mask = [np.arange(a * b).reshape(a, b) < k for (a, b), k in zip(shapes, counts)]
    assert rule.satisfied_by(mask)
    if kind != "global":
        assert counts == rule.layer_counts(shapes)


def test_a_new_rule_is_one_class():
    class FirstLayerRule(KeepRule):
        """Only the first layer's count is fixed."""

        kind = "first-layer"

        def segments(self, shapes):
            whole = LayerRule(self.keep).segments(shapes)
            return whole[:1] + [Segment(s, e, None) for s, e, _ in whole[1:]]

    try:
        rule = KeepRule(0.25, "first-layer")
        assert type(rule) is FirstLayerRule
        shapes = [(4, 4), (4, 2)]
        mask = rule.random_mask(shapes, np.random.default_rng(0))
        assert rule.satisfied_by(mask) and int(mask[0].sum()) == 4
        top = rule.keep_top([np.arange(16.0).reshape(4, 4), -np.ones((4, 2))])
        assert top[0].sum() == 4 and top[0][3].all() and not top[1].any()
        assert KeepRule.from_dict(rule.to_dict()) == rule
    finally:
        del KeepRule._kinds["first-layer"]


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "free"])
def test_every_counting_rule_refuses_a_keep_that_leaves_a_layer_without_a_weight(kind):
    """`--keep 1e-300` searched to NaN probabilities: under a rule that fixes counts, no mask is
    made under a keep that rounds a layer's share below one weight."""
    shapes = [(64, 8), (8, 10)]
    rule = KeepRule(1e-300, kind)  # no shapes yet: the fraction alone is fine
    message = "keep 1e-300 leaves layer 2 (8x10, 80 weights) without a weight"
    for use in (rule.check_shapes, lambda s: rule.random_mask(s, np.random.default_rng(0))):
        with pytest.raises(PrunetrainError) as err:
            use(shapes)
        assert message in str(err.value)
    KeepRule(0.00625, kind).random_mask(shapes, np.random.default_rng(0))  # half a weight: one


def test_a_free_rule_fixes_no_count_but_the_network_refuses_the_keep():
    """A free mask may leave a layer empty (a search move may empty it), so the free rule checks
    only keep's range; the keep a user gives also scales the network, whose spec refuses it."""
    from prunetrain.network import NetworkSpec

    rule = KeepRule(1e-300, "free")
    rule.check_shapes([(64, 8), (8, 10)])
    mask = rule.random_mask([(64, 8), (8, 10)], np.random.default_rng(0))
    assert [m.shape for m in mask] == [(64, 8), (8, 10)]
    with pytest.raises(PrunetrainError, match="keep 1e-300 leaves layer 2 .* without a weight"):
        NetworkSpec((64, 8, 10), keep=1e-300)


def test_a_problem_refuses_a_rule_that_leaves_a_layer_without_a_weight():
    from prunetrain.data import Dataset
    from prunetrain.network import FrozenNetwork, NetworkSpec
    from prunetrain.problem import Problem

    X = np.zeros((8, 4), dtype=np.float32)
    y = np.arange(8) % 2
    data = Dataset("d", X, y, X, y, X, y, np.arange(2))
    with pytest.raises(PrunetrainError, match="leaves layer 2"):
        Problem(FrozenNetwork(NetworkSpec((4, 3, 2)), 0), data, KeepRule(0.05), "numpy")
