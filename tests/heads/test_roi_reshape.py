"""Tests of mrcnn.heads.roi_reshape: folding the ROI axis into the batch axis."""

import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.heads.roi_reshape import MergeRoiBatch, SplitRoiBatch


def test_merge_roi_batch():
    x = np.arange(2 * 3 * 4 * 4 * 5, dtype="float32").reshape(2, 3, 4, 4, 5)
    out = run_layer_test(MergeRoiBatch(name="merge"), x,
                         expected_output_shape=(6, 4, 4, 5), rtol=0, atol=0)
    # Row b * N + n holds ROI n of image b.
    np.testing.assert_array_equal(out[1 * 3 + 2], x[1, 2])
    np.testing.assert_array_equal(out, x.reshape(6, 4, 4, 5))


def test_split_roi_batch_inverts_merge():
    x = np.arange(6 * 5, dtype="float32").reshape(6, 5)
    out = run_layer_test(SplitRoiBatch(3, name="split"), x,
                         expected_output_shape=(2, 3, 5), rtol=0, atol=0)
    np.testing.assert_array_equal(out[1, 2], x[5])
    merged = np.asarray(MergeRoiBatch()(out))
    np.testing.assert_array_equal(merged, x)


def test_symbolic_shapes_with_open_batch():
    assert MergeRoiBatch().compute_output_shape((None, 3, 7)) == (None, 7)
    assert SplitRoiBatch(4).compute_output_shape((None, 7)) == (None, 4, 7)
    assert SplitRoiBatch(4).compute_output_shape((8, 7, 2)) == (2, 4, 7, 2)


def test_split_roi_batch_rejects_a_batch_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="a batch of 7 rows is not a multiple of num_rois=3"):
        SplitRoiBatch(3)(np.zeros((7, 2), "float32"))
    with pytest.raises(ValueError, match="num_rois must be a positive int or None, got 0"):
        SplitRoiBatch(0)
    with pytest.raises(ValueError, match="num_rois=None .* needs a positive int batch_size"):
        SplitRoiBatch(None)


def test_split_roi_batch_with_a_varying_roi_count():
    x = np.arange(6 * 5, dtype="float32").reshape(6, 5)
    out = run_layer_test(SplitRoiBatch(None, batch_size=2, name="split"), x,
                         expected_output_shape=(2, 3, 5), rtol=0, atol=0)
    np.testing.assert_array_equal(out[1, 2], x[5])
    assert SplitRoiBatch(None, batch_size=2).compute_output_shape((None, 7)) == (2, None, 7)
