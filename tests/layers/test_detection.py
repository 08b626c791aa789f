"""Tests of mrcnn.layers.detection.DetectionLayer against a NumPy reference
with explicit per-class loops."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.layers.detection import DetectionLayer, first_argmax
from tests.layers.layer_refs import np_apply_delta, np_iou, run_compiled

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def _np_detections(rois, probs, deltas, windows, max_instances, min_conf,
                   threshold):
    batch, num, num_classes = probs.shape
    out = np.zeros((batch, max_instances, 6))
    for b in range(batch):
        wy1, wx1, wy2, wx2 = windows[b]
        candidates = []  # (score, class, box)
        for n in range(num):
            if not np.any(rois[b, n] != 0):
                continue
            c = int(np.argmax(probs[b, n]))
            score = float(probs[b, n, c])
            if c == 0 or score < min_conf:
                continue
            y1, x1, y2, x2 = np_apply_delta(rois[b, n], deltas[b, n, c] * STD)
            box = [min(max(y1, wy1), wy2), min(max(x1, wx1), wx2),
                   min(max(y2, wy1), wy2), min(max(x2, wx1), wx2)]
            if box[2] <= box[0] or box[3] <= box[1]:     # wholly outside the window
                continue
            candidates.append((score, c, box))
        kept = []
        for c in range(1, num_classes):
            mine = sorted([d for d in candidates if d[1] == c],
                          key=lambda d: -d[0])
            chosen = []
            for det in mine:
                if all(np_iou(det[2], k[2]) <= threshold for k in chosen):
                    chosen.append(det)
            kept.extend(chosen[:max_instances])
        kept.sort(key=lambda d: -d[0])
        for row, (score, c, box) in enumerate(kept[:max_instances]):
            out[b, row] = box + [c, score]
    return out


def test_detections_match_per_class_numpy_reference():
    rng = np.random.default_rng(0)
    batch, num, num_classes = 2, 40, 4
    # ROIs clustered around a few objects so NMS has work to do.
    centres = rng.uniform(0.2, 0.8, size=(batch, 4, 2))
    pick = rng.integers(0, 4, size=(batch, num))
    centre = np.take_along_axis(centres, pick[..., None], axis=1)
    centre = centre + rng.normal(0, 0.02, size=centre.shape)
    side = rng.uniform(0.15, 0.25, size=(batch, num, 2))
    rois = np.concatenate([centre - side / 2, centre + side / 2], -1)
    rois = rois.astype(np.float32)
    rois[1, -5:] = 0  # padding ROIs
    logits = rng.normal(0, 2, size=(batch, num, num_classes))
    logits[1, -5:, 1] = 20  # padding rows with a confident class
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    probs = probs.astype(np.float32)
    deltas = rng.normal(0, 0.5, size=(batch, num, num_classes, 4)).astype(
        np.float32)
    windows = np.array([[0, 0, 1, 1], [0.1, 0.05, 0.9, 0.8]], np.float32)
    layer = DetectionLayer(max_instances=12, min_confidence=0.4,
                           nms_threshold=0.3, bbox_std_dev=STD)
    out = run_compiled(layer, [rois, probs, deltas, windows])
    expected = _np_detections(rois, probs, deltas, windows, 12, 0.4, 0.3)
    assert out.shape == (batch, 12, 6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    # Sanity of the scenario: some detections, some suppressed, some padding.
    assert np.all(np.sum(out[..., 5] > 0, axis=1) > 2)
    assert np.any(out[..., 5] == 0)
    scores = out[..., 5]
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_overlapping_boxes_of_different_classes_are_both_kept():
    rois = np.array([[[0.2, 0.2, 0.5, 0.5], [0.2, 0.2, 0.5, 0.5],
                      [0.21, 0.2, 0.5, 0.5], [0, 0, 0, 0]]], np.float32)
    probs = np.array([[[0.1, 0.9, 0.0], [0.2, 0.0, 0.8],
                       [0.3, 0.7, 0.0], [0.0, 1.0, 0.0]]], np.float32)
    deltas = np.zeros((1, 4, 3, 4), np.float32)
    window = np.array([[0, 0, 1, 1]], np.float32)
    out = run_compiled(DetectionLayer(5, 0.5, 0.3, STD),
               [rois, probs, deltas, window])
    # Class 1's second box is suppressed by its first; class 2 survives;
    # the padding ROI never produces a detection.
    np.testing.assert_allclose(out[0, :2], [[0.2, 0.2, 0.5, 0.5, 1, 0.9],
                                            [0.2, 0.2, 0.5, 0.5, 2, 0.8]],
                               atol=1e-6)
    assert np.all(out[0, 2:] == 0)


def test_boxes_outside_the_window_give_no_detection_nor_take_a_slot():
    """A small image in a large input: ROIs in the padding are dropped before the top-k."""
    window = np.array([[0, 0, 0.5, 0.5]], np.float32)       # the image: the top-left quarter
    rois = np.array([[[0.6, 0.6, 0.8, 0.8],                 # in the padding, most confident
                      [0.7, 0.1, 0.9, 0.3],                 # below the image
                      [0.4, 0.4, 0.6, 0.6],                 # across the corner: clipped
                      [0.1, 0.1, 0.3, 0.3]]], np.float32)   # inside
    probs = np.array([[[0.01, 0.99], [0.02, 0.98], [0.1, 0.9], [0.2, 0.8]]], np.float32)
    out = run_compiled(DetectionLayer(2, 0.5, 0.3, STD),
                       [rois, probs, np.zeros((1, 4, 2, 4), np.float32), window])
    np.testing.assert_allclose(out[0], [[0.4, 0.4, 0.5, 0.5, 1, 0.9],
                                        [0.1, 0.1, 0.3, 0.3, 1, 0.8]], atol=1e-6)


def test_background_and_low_confidence_give_no_detection():
    rois = np.array([[[0.2, 0.2, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]]],
                    np.float32)
    probs = np.array([[[0.9, 0.1], [0.45, 0.55]]], np.float32)
    out = run_compiled(DetectionLayer(3, 0.7, 0.3, STD),
               [rois, probs, np.zeros((1, 2, 2, 4), np.float32),
                np.array([[0, 0, 1, 1]], np.float32)])
    assert np.all(out == 0)


def test_layer_contract_and_bad_arguments():
    rng = np.random.default_rng(5)
    centre = rng.uniform(0.3, 0.7, size=(2, 30, 2))
    rois = np.concatenate([centre - 0.1, centre + 0.1], -1).astype(np.float32)
    rois[1, -4:] = 0  # padding
    probs = rng.dirichlet(np.ones(5), size=(2, 30)).astype(np.float32)
    deltas = rng.normal(0, 0.5, size=(2, 30, 5, 4)).astype(np.float32)
    window = np.array([[0, 0, 1, 1], [0.1, 0.1, 0.9, 0.9]], np.float32)
    inputs = [rois, probs, deltas, window]
    # compute_output_shape([(2, 30, 4), (2, 30, 5), (2, 30, 5, 4), (2, 4)])
    # == (2, 9, 6); the from_config clone has the same config by value.
    out = run_layer_test(DetectionLayer(9, 0.3, 0.3, STD, name="mrcnn_detection"),
                         inputs, expected_output_shape=(2, 9, 6),
                         expected_output_dtype="float32")
    np.testing.assert_allclose(
        out, _np_detections(rois, probs, deltas, window, 9, 0.3, 0.3),
        rtol=1e-5, atol=1e-5)
    assert np.all(np.sum(out[..., 5] > 0, axis=1) > 0)
    with pytest.raises(ValueError, match="max_instances"):
        DetectionLayer(0, 0.7, 0.3, STD)


def test_compiles_with_xla_on_tensorflow():
    """Keras enables XLA by default on TensorFlow + GPU."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA compilation check for the TensorFlow backend")
    import tensorflow as tf
    rng = np.random.default_rng(3)
    centre = rng.uniform(0.3, 0.7, size=(1, 15, 2))
    rois = np.concatenate([centre - 0.1, centre + 0.1], -1).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), size=(1, 15)).astype(np.float32)
    deltas = rng.normal(0, 0.5, size=(1, 15, 3, 4)).astype(np.float32)
    window = np.array([[0, 0, 1, 1]], np.float32)
    layer = DetectionLayer(6, 0.3, 0.3, STD)
    out = tf.function(lambda *x: layer(list(x)), jit_compile=True)(
        rois, probs, deltas, window).numpy()
    np.testing.assert_allclose(
        out, _np_detections(rois, probs, deltas, window, 6, 0.3, 0.3),
        rtol=1e-5, atol=1e-5)


def test_first_argmax_matches_numpy_argmax_including_ties():
    rng = np.random.default_rng(3)
    probs = rng.random((2, 5, 4)).astype(np.float32)
    probs[0, 0] = [0.1, 0.7, 0.7, 0.2]      # tie: the first index wins, as in np.argmax
    probs[1, 2] = [0.25, 0.25, 0.25, 0.25]
    probs[1, 3] = [0.0, 0.0, 0.0, 0.9]
    got = keras.ops.convert_to_numpy(first_argmax(keras.ops.convert_to_tensor(probs)))
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, np.argmax(probs, axis=-1))
    assert got[0, 0] == 1 and got[1, 2] == 0 and got[1, 3] == 3
