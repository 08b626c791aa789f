"""Shared test data for the cache: a dict of arrays covering every encoding."""

import numpy as np
import pytest


def _example_arrays(seed=0):
    rng = np.random.default_rng(seed)
    gray = rng.integers(0, 256, (37, 29, 1), dtype=np.uint8)
    return {
        "image": np.repeat(gray, 3, axis=2),                     # stored once ("repeat")
        "color": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        "masks": rng.random((13, 11, 5)) < 0.3,                  # odd sizes: bit packing
        "layers": rng.integers(0, 900, (20, 30, 2), dtype=np.uint16),
        "class_ids": np.array([1, 3, 2], np.int32),
        "boxes": np.zeros((0, 4), np.int32),
        "scale": np.array([0.75]),
    }


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture
def example_arrays():
    """``example_arrays(seed=0) -> {name: array}``: gray "repeat" image, bit-packed
    masks, empty and scalar-like arrays."""
    return _example_arrays


@pytest.fixture
def assert_same():
    """``assert_same(a, b)``: same names, dtypes and values."""
    return _assert_same
