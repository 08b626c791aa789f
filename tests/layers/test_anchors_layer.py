"""Tests of mrcnn.layers.anchors.AnchorsLayer."""

import keras
import numpy as np
from keras import ops

from helpers import run_layer_test
from mrcnn.layers.anchors import AnchorsLayer


def _reference_anchors(scales, ratios, strides, image_shape):
    """Brute-force loop: Matterport's anchor layout, normalized."""
    height, width = image_shape[:2]
    rows = []
    for scale, stride in zip(scales, strides):
        feat_h = int(np.ceil(height / stride))
        feat_w = int(np.ceil(width / stride))
        for y in range(feat_h):
            for x in range(feat_w):
                for ratio in ratios:
                    h = scale / np.sqrt(ratio)
                    w = scale * np.sqrt(ratio)
                    cy, cx = y * stride, x * stride
                    rows.append([cy - h / 2, cx - w / 2,
                                 cy + h / 2, cx + w / 2])
    pixel = np.array(rows, np.float64)
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    return (pixel - [0, 0, 1, 1]) / scale


def test_anchors_layer_matches_loop_reference():
    scales, ratios, strides = (8, 16, 32, 64, 128), [0.5, 1, 2], [4, 8, 16,
                                                                  32, 64]
    image_shape = (64, 96, 3)
    layer = AnchorsLayer(scales, ratios, strides, 1, image_shape)
    out = ops.convert_to_numpy(layer(np.zeros((2,) + image_shape, "f4")))
    expected = _reference_anchors(scales, ratios, strides, image_shape)
    assert out.shape == (1, expected.shape[0], 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
    assert layer.num_anchors == expected.shape[0]
    # compute_output_shape((2,) + image_shape) == eager shape == (1, A, 4).
    run_layer_test(AnchorsLayer(scales, ratios, strides, 1, image_shape),
                   np.zeros((2,) + image_shape, "f4"),
                   expected_output_shape=(1, expected.shape[0], 4),
                   expected_output_dtype="float32")


def test_anchors_layer_in_model_and_config_round_trip():
    image_shape = (32, 32, 3)
    layer = AnchorsLayer([8, 16], [1], [4, 8], 1, image_shape, name="anchors")
    inputs = keras.Input(shape=image_shape, batch_size=2)
    model = keras.Model(inputs, layer(inputs))
    out = model.predict(np.ones((2,) + image_shape, "f4"), verbose=0)
    # 8x8 + 4x4 anchors, one ratio.
    assert out.shape == (1, 80, 4)
    # First anchor: centre (0, 0), side 8 -> pixels (-4, -4, 4, 4).
    np.testing.assert_allclose(out[0, 0], np.array([-4, -4, 3, 3]) / 31.0,
                               rtol=1e-6)
    # The from_config clone has the same config (by value) and anchors.
    anchors = run_layer_test(
        AnchorsLayer([8, 16], [1], [4, 8], 1, image_shape, name="anchors"),
        np.ones((2,) + image_shape, "f4"), expected_output_shape=(1, 80, 4),
        rtol=0, atol=0)
    np.testing.assert_array_equal(anchors[0], layer.anchors)
