"""Tests of mrcnn.layers.image_meta: the graph layers that read the image meta."""

import numpy as np

from helpers import run_layer_test
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.layers.image_meta import (ActiveClassIds, NormalizedWindow,
                                     ZeroOutsideWindow)


def _meta(windows, image_shape, active_class_ids):
    return np.stack([
        compose_image_meta(i, image_shape, image_shape, w, 1.0, active_class_ids)
        for i, w in enumerate(windows)]).astype("float32")


def test_zero_outside_window_matches_numpy():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 8, 10, 3)).astype("float32")
    windows = [(1, 2, 7, 9), (0, 0, 8, 10)]
    meta = _meta(windows, (8, 10, 3), np.ones(3))
    got = np.asarray(ZeroOutsideWindow()([image, meta]))
    want = np.zeros_like(image)
    for b, (y1, x1, y2, x2) in enumerate(windows):
        want[b, y1:y2, x1:x2] = image[b, y1:y2, x1:x2]
    np.testing.assert_array_equal(got, want)
    # Shape contract, config round trip and a saved model give the same.
    out = run_layer_test(ZeroOutsideWindow(name="zero_outside"), [image, meta],
                         expected_output_shape=(2, 8, 10, 3), rtol=0, atol=0)
    np.testing.assert_array_equal(out, want)


def test_normalized_window():
    meta = compose_image_meta(0, (50, 90, 3), (64, 128, 3), (7, 0, 57, 128), 1.0,
                              np.ones(2))[None].astype("float32")
    w = np.asarray(NormalizedWindow((64, 128))(meta))[0]
    np.testing.assert_allclose(w, [7 / 63, 0, 56 / 63, 127 / 127], rtol=1e-6)
    out = run_layer_test(NormalizedWindow((64, 128, 3)), np.repeat(meta, 2, 0),
                         expected_output_shape=(2, 4))
    np.testing.assert_allclose(out[1], [7 / 63, 0, 56 / 63, 1], rtol=1e-6)


def test_active_class_ids():
    meta = _meta([(0, 0, 8, 8), (0, 0, 4, 8)], (8, 8, 3), [1, 1, 0, 1])
    meta[1, 12:] = [1, 0, 1, 0]
    out = run_layer_test(ActiveClassIds(name="active_class_ids"), meta,
                         expected_output_shape=(2, 4), rtol=0, atol=0)
    np.testing.assert_array_equal(out, [[1, 1, 0, 1], [1, 0, 1, 0]])


def test_active_class_ids_shape_with_open_meta_length():
    assert ActiveClassIds().compute_output_shape((None, None)) == (None, None)
