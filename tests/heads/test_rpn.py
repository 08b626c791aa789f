"""Tests of mrcnn.heads.rpn: the shared RPN head, its anchor order and
FlattenAnchors."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.heads.rpn import FlattenAnchors, apply_rpn, build_rpn_model

A, DEPTH, CHANNELS = 3, 8, 16


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_flatten_anchors_layer():
    x = np.arange(2 * 3 * 4 * 6, dtype="float32").reshape(2, 3, 4, 6)
    out = run_layer_test(FlattenAnchors(2, name="rpn_class_flat"), x,
                         expected_output_shape=(2, 36, 2), rtol=0, atol=0)
    # Row (y * W + x) * (C / k) + a holds channels a*k .. a*k + k - 1 of cell (y, x).
    np.testing.assert_array_equal(out[1, (2 * 4 + 3) * 3 + 1], x[1, 2, 3, 2:4])
    assert FlattenAnchors(4).compute_output_shape((None, None, None, 12)) == (
        None, None, 4)


def test_rpn_model_names_and_shapes():
    rpn = build_rpn_model(A, DEPTH, channels=CHANNELS)
    assert rpn.name == "rpn_model"
    assert rpn.get_layer("rpn_conv_shared").kernel.shape == (3, 3, DEPTH, CHANNELS)
    assert rpn.get_layer("rpn_class_raw").kernel.shape == (1, 1, CHANNELS, 2 * A)
    assert rpn.get_layer("rpn_bbox_pred").kernel.shape == (1, 1, CHANNELS, 4 * A)
    rng = np.random.default_rng(0)
    for h, w in ((8, 8), (4, 6), (1, 1)):
        logits, probs, bbox = rpn.predict_on_batch(
            rng.normal(size=(2, h, w, DEPTH)).astype("f4"))
        assert logits.shape == (2, h * w * A, 2)
        assert probs.shape == (2, h * w * A, 2)
        assert bbox.shape == (2, h * w * A, 4)


def test_anchor_stride_subsamples_the_grid():
    rpn = build_rpn_model(A, DEPTH, anchor_stride=2, channels=CHANNELS)
    logits, probs, bbox = rpn.predict_on_batch(np.ones((1, 8, 6, DEPTH), "f4"))
    assert logits.shape == (1, 4 * 3 * A, 2) and bbox.shape == (1, 4 * 3 * A, 4)


def test_anchor_order_is_row_column_anchor_and_probs_are_softmax():
    rpn = build_rpn_model(A, DEPTH, channels=CHANNELS)
    raw = keras.Model(rpn.input, [rpn.get_layer("rpn_class_raw").output,
                                   rpn.get_layer("rpn_bbox_pred").output])
    rng = np.random.default_rng(1)
    h, w = 5, 7
    x = rng.normal(size=(2, h, w, DEPTH)).astype("f4")
    logits, probs, bbox = rpn.predict_on_batch(x)
    class_raw, bbox_raw = raw.predict_on_batch(x)
    np.testing.assert_allclose(logits, class_raw.reshape(2, h * w * A, 2),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bbox, bbox_raw.reshape(2, h * w * A, 4),
                               rtol=1e-6, atol=1e-6)
    # The same order spelled out: anchor a of cell (row, column).
    for b, row, col, a in ((0, 0, 0, 0), (1, 4, 6, 2), (0, 2, 3, 1), (1, 0, 6, 0)):
        i = (row * w + col) * A + a
        np.testing.assert_allclose(logits[b, i], class_raw[b, row, col, 2 * a:2 * a + 2],
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(bbox[b, i], bbox_raw[b, row, col, 4 * a:4 * a + 4],
                                   rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(probs, _softmax(logits.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("static", [False, True])
def test_apply_rpn_concatenates_levels_in_order(static):
    sizes = [(8, 8), (4, 4), (2, 2), (1, 1)]
    total = sum(h * w for h, w in sizes) * A
    rpn = build_rpn_model(A, DEPTH, channels=CHANNELS)
    maps = [keras.Input(shape=(h, w, DEPTH), batch_size=2) for h, w in sizes]
    outputs = apply_rpn(rpn, maps, num_anchors=total if static else None)
    model = keras.Model(maps, outputs)
    names = {layer.name for layer in model.layers}
    assert {"rpn_model", "rpn_class_logits", "rpn_class", "rpn_bbox"} <= names
    if static:
        assert [tuple(o.shape) for o in outputs] == [
            (2, total, 2), (2, total, 2), (2, total, 4)]
    rng = np.random.default_rng(2)
    data = [rng.normal(size=(2, h, w, DEPTH)).astype("f4") for h, w in sizes]
    logits, probs, bbox = model.predict_on_batch(data)
    assert logits.shape == (2, total, 2) and bbox.shape == (2, total, 4)
    per_level = [rpn.predict_on_batch(d) for d in data]
    for got, k in ((logits, 0), (probs, 1), (bbox, 2)):
        np.testing.assert_allclose(
            got, np.concatenate([level[k] for level in per_level], axis=1),
            rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, _softmax(logits.astype(np.float64)),
                               rtol=1e-5, atol=1e-6)


def test_flatten_anchors_rejects_channels_that_are_not_a_multiple_of_k():
    with pytest.raises(ValueError, match="5 channels are not a multiple of k=2"):
        FlattenAnchors(2)(np.zeros((1, 3, 3, 5), "float32"))
