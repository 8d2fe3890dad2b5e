import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunetrain.errors import PrunetrainError
from prunetrain.masks import (
    KeepRule,
    MaskPopulation,
    check_mask,
    pack_mask,
    random_mask,
    unpack_mask,
)

shapes_strategy = st.lists(
    st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=4
)


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
    shapes_strategy,
    st.floats(0.01, 1.0),
    st.sampled_from(["layer", "global", "free"]),
    st.integers(0, 999),
)
def test_random_mask_obeys_rule(shapes, keep, kind, seed):
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
