"""Tests of mrcnn.layers.batching: layers that fix or slice the batch and ROI axes."""

import numpy as np

from helpers import run_layer_test
from mrcnn.layers.batching import DetectionBoxes, FixedBatch, LeadingRois


def test_leading_rois():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    np.testing.assert_array_equal(np.asarray(LeadingRois(2)(x)), x[:, :2])
    out = run_layer_test(LeadingRois(3, name="leading"), x,
                         expected_output_shape=(2, 3, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, x[:, :3])


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
