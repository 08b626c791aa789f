"""Tests of mrcnn.layers.batching: layers that fix or slice the batch and ROI axes."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.layers.batching import (DetectionBoxes, DetectionClassIds, FixedBatch, LeadingRois,
                                   PositiveRois, UnpackRois)


def test_leading_rois():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    np.testing.assert_array_equal(np.asarray(LeadingRois(2)(x)), x[:, :2])
    out = run_layer_test(LeadingRois(3, name="leading"), x,
                         expected_output_shape=(2, 3, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, x[:, :3])


def test_positive_rois_are_the_rows_with_a_class():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    ids = np.array([[3, 1, 0, 0, 0], [2, 0, 0, 0, 0]], "int32")
    out = np.asarray(keras.ops.convert_to_numpy(PositiveRois()(x, ids)))
    if keras.backend.backend() == "jax":        # static shapes: every row, same layout
        np.testing.assert_array_equal(out, x.reshape(1, 10, 3))
    else:
        np.testing.assert_array_equal(out, np.stack([x[0, 0], x[0, 1], x[1, 0]])[None])
        none = np.asarray(keras.ops.convert_to_numpy(PositiveRois()(x, np.zeros_like(ids))))
        np.testing.assert_array_equal(none, x[:1, :1])   # at least one row (weight 0)
    assert PositiveRois().compute_output_shape((2, 5, 3), (2, 5)) == (1, None, 3)


def test_unpack_rois_puts_the_rows_back_with_zeros_elsewhere():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3) + 1
    ids = np.array([[3, 0, 1, 0, 0], [0, 0, 0, 0, 2]], "int32")
    packed = PositiveRois()(x, ids)
    out = np.asarray(keras.ops.convert_to_numpy(UnpackRois()(packed, ids)))
    if keras.backend.backend() == "jax":        # static shapes: every row came through
        np.testing.assert_array_equal(out, x)
    else:
        np.testing.assert_array_equal(out, np.where((ids > 0)[..., None], x, 0))
    assert UnpackRois().compute_output_shape((1, None, 3), (2, 5)) == (2, 5, 3)


def test_detection_class_ids_are_the_fifth_column():
    detections = np.zeros((1, 3, 6), "float32")
    detections[0, :2, 4] = [2, 1]
    out = run_layer_test(DetectionClassIds(name="ids"), detections,
                         expected_output_shape=(1, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, [[2, 1, 0]])


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA")
def test_positive_rois_keep_every_row_under_xla():
    import tensorflow as tf

    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    ids = np.array([[3, 1, 0, 0, 0], [2, 0, 0, 0, 0]], "int32")
    layer = PositiveRois()
    out = tf.function(lambda a, b: layer(a, b), jit_compile=True)(x, ids)
    np.testing.assert_array_equal(out.numpy(), x.reshape(1, 10, 3))


def test_fixed_batch_keeps_values():
    x = np.arange(30, dtype="float32").reshape(2, 5, 3)
    out = run_layer_test(FixedBatch(2, name="fixed"), x,
                         expected_output_shape=(2, 5, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, x)


def test_detection_boxes_are_the_first_four_columns():
    detections = np.arange(2 * 3 * 6, dtype="float32").reshape(2, 3, 6)
    out = run_layer_test(DetectionBoxes(name="detection_boxes"), detections,
                         expected_output_shape=(2, 3, 4), rtol=0, atol=0)
    np.testing.assert_array_equal(out, detections[..., :4])
