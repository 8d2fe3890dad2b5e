"""Shared fixtures: a small network, the digits dataset (embedded, loads in ~0.1 s), planted problems."""

from __future__ import annotations

import numpy as np
import pytest

from prunetrain.data import Dataset, load_dataset
from prunetrain.masks import KeepRule, random_mask
from prunetrain.network import FrozenNetwork, NetworkSpec


def planted(seed=0, sizes=(12, 24, 4), n=600):
    """Labels made by a hidden subnetwork of the very network that is searched.

    Returns ``(network, dataset, target_mask)``; the target keeps half of
    every layer, like the searches do.
    """
    rng = np.random.default_rng(seed)
    net = FrozenNetwork(NetworkSpec(sizes), seed)
    target = random_mask(net.shapes, KeepRule(0.5), rng)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = np.argmax(net.forward(target, X), axis=1)
    a, b = int(n * 0.7), int(n * 0.85)
    data = Dataset("planted", X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:], np.arange(sizes[-1]))
    return net, data, target


def near_ties(logits, rtol=1e-4, atol=1e-5) -> int:
    """Rows whose arg-max another class could take under float32 rounding.

    Two backends (or float32 against float64) may break such a near-tie
    differently, so their accuracies may differ by at most this many samples.
    Identical output units make exact ties, so there can be many.
    """
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    close = logits >= top - (atol + rtol * np.abs(top))
    return int((close.sum(axis=-1) > 1).sum())


def assert_accuracy_agrees(acc, ref_acc, ref_logits, n):
    """``acc`` and ``ref_acc`` (fractions of ``n`` samples) differ only on near-ties."""
    assert abs(float(acc) - float(ref_acc)) * n <= near_ties(ref_logits) + 1e-9


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def small_net():
    return FrozenNetwork(NetworkSpec((64, 24, 16, 10)), seed=3)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def default_signal_handlers():
    """Give SIGINT, SIGTERM and SIGHUP their default handlers back after each test.

    ``prunetrain search`` (``cli.main``) leaves them ignored once its outputs
    are written, as the process is about to exit; run in process, a test
    must not pass that on to the next.
    """
    import signal

    from prunetrain.interrupts import STOPPING

    yield
    for signum in STOPPING:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default)
