"""Fixtures shared by the data-pipeline tests."""

import pytest

from mrcnn.datasets.shapes import ShapesDataset


@pytest.fixture(scope="module")
def shapes():
    ds = ShapesDataset()
    ds.load_shapes(6, 96, 112, seed=3)
    ds.prepare()
    return ds
