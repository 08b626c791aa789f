"""Tests of mrcnn.layers.batching: layers that fix or slice the batch and ROI axes."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.layers.batching import DetectionBoxes, FixedBatch, LeadingRois


def test_leading_rois():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    np.testing.assert_array_equal(np.asarray(LeadingRois(2)(x)), x[:, :2])
    out = run_layer_test(LeadingRois(3, name="leading"), x,
                         expected_output_shape=(2, 3, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, x[:, :3])


def test_leading_rois_keep_the_positives_of_the_fullest_image():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    ids = np.array([[3, 1, 0, 0, 0], [2, 0, 0, 0, 0]], "int32")
    out = np.asarray(keras.ops.convert_to_numpy(LeadingRois(4)(x, ids)))
    expected = 4 if keras.backend.backend() == "jax" else 2    # JAX: static shapes
    np.testing.assert_array_equal(out, x[:, :expected])
    none = np.asarray(keras.ops.convert_to_numpy(LeadingRois(4)(x, np.zeros_like(ids))))
    assert none.shape[1] == (4 if keras.backend.backend() == "jax" else 1)   # at least one
    many = np.asarray(keras.ops.convert_to_numpy(LeadingRois(2)(x, np.ones_like(ids))))
    np.testing.assert_array_equal(many, x[:, :2])                            # at most count
    assert LeadingRois(4).compute_output_shape((2, 5, 3), (2, 5)) == \
        (2, 4 if keras.backend.backend() == "jax" else None, 3)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's XLA")
def test_leading_rois_keep_the_static_count_under_xla():
    import tensorflow as tf

    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    ids = np.array([[3, 1, 0, 0, 0], [2, 0, 0, 0, 0]], "int32")
    layer = LeadingRois(4)
    out = tf.function(lambda a, b: layer(a, b), jit_compile=True)(x, ids)
    np.testing.assert_array_equal(out.numpy(), x[:, :4])


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
