"""Shared fixtures: a small network and the digits dataset (embedded, loads in ~0.1 s)."""

from __future__ import annotations

import numpy as np
import pytest

from prunetrain.data import load_dataset
from prunetrain.network import FrozenNetwork, NetworkSpec


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture
def small_net():
    return FrozenNetwork(NetworkSpec((64, 24, 16, 10)), seed=3)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
