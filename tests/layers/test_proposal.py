"""Tests of mrcnn.layers.proposal.ProposalLayer against a NumPy loop
re-implementation with its own greedy NMS."""

import keras
import numpy as np
import pytest

from helpers import run_layer_test
from mrcnn.layers.proposal import ProposalLayer
from tests.layers.layer_refs import np_apply_delta, np_iou, run_compiled

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def _np_greedy_nms(boxes, scores, threshold, max_output):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if len(keep) == max_output:
            break
        if all(np_iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def _np_proposals(probs, deltas, anchors, count, threshold, limit):
    batch = probs.shape[0]
    out = np.zeros((batch, count, 4))
    for b in range(batch):
        scores = probs[b, :, 1]
        top = sorted(range(len(scores)), key=lambda i: -scores[i])[:limit]
        boxes = []
        for i in top:
            anchor = anchors[b if anchors.shape[0] > 1 else 0, i]
            box = np_apply_delta(anchor, deltas[b, i] * STD)
            boxes.append([min(max(v, 0.0), 1.0) for v in box])
        keep = _np_greedy_nms(boxes, [scores[i] for i in top], threshold,
                              count)
        for row, k in enumerate(keep):
            out[b, row] = boxes[k]
    return out


def _random_inputs(rng, batch, num_anchors, anchor_batch=1):
    centres = rng.uniform(0.1, 0.9, size=(anchor_batch, num_anchors, 2))
    sides = rng.uniform(0.1, 0.4, size=(anchor_batch, num_anchors, 2))
    anchors = np.concatenate([centres - sides / 2, centres + sides / 2],
                             axis=-1).astype(np.float32)
    foreground = rng.random((batch, num_anchors))
    probs = np.stack([1 - foreground, foreground], -1).astype(np.float32)
    deltas = rng.normal(0, 1.5, size=(batch, num_anchors, 4)).astype(
        np.float32)
    return probs, deltas, anchors


@pytest.mark.parametrize("anchor_batch", [1, 2])
def test_proposals_match_numpy_reference(anchor_batch):
    rng = np.random.default_rng(anchor_batch)
    probs, deltas, anchors = _random_inputs(rng, 2, 80, anchor_batch)
    layer = ProposalLayer(proposal_count=20, nms_threshold=0.5,
                          pre_nms_limit=50, rpn_bbox_std_dev=STD)
    out = run_compiled(layer, [probs, deltas, anchors])
    expected = _np_proposals(probs, deltas, anchors, 20, 0.5, 50)
    assert out.shape == (2, 20, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_few_survivors_are_zero_padded():
    # Identical anchors and deltas: NMS keeps exactly one box per image.
    anchors = np.tile(np.array([[[0.2, 0.2, 0.5, 0.6]]], np.float32),
                      (1, 10, 1))
    probs = np.zeros((1, 10, 2), np.float32)
    probs[0, :, 1] = np.linspace(0.1, 0.9, 10)
    probs[0, :, 0] = 1 - probs[0, :, 1]
    deltas = np.zeros((1, 10, 4), np.float32)
    deltas[0, :, 0] = 0.5  # dy = 0.05 after the std dev: shift by 0.015
    layer = ProposalLayer(5, 0.7, 1000, STD)
    out = run_compiled(layer, [probs, deltas, anchors])
    np.testing.assert_allclose(out[0, 0], [0.215, 0.2, 0.515, 0.6],
                               atol=1e-6)
    assert np.all(out[0, 1:] == 0)


def test_proposals_are_clipped_to_image():
    anchors = np.array([[[-0.2, 0.5, 0.3, 1.4]]], np.float32)
    probs = np.array([[[0.1, 0.9]]], np.float32)
    layer = ProposalLayer(2, 0.7, 10, STD)
    out = run_compiled(layer, [probs, np.zeros((1, 1, 4), np.float32), anchors])
    np.testing.assert_allclose(out[0], [[0, 0.5, 0.3, 1], [0, 0, 0, 0]],
                               atol=1e-6)


def test_layer_contract_and_bad_arguments():
    probs, deltas, anchors = _random_inputs(np.random.default_rng(4), 3, 50)
    # compute_output_shape([(3, 50, 2), (3, 50, 4), (1, 50, 4)]) == (3, 7, 4);
    # the from_config clone has the same config by value.
    out = run_layer_test(ProposalLayer(7, 0.6, 100, STD, name="ROI"),
                         [probs, deltas, anchors],
                         expected_output_shape=(3, 7, 4),
                         expected_output_dtype="float32")
    np.testing.assert_allclose(
        out, _np_proposals(probs, deltas, anchors, 7, 0.6, 100),
        rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="proposal_count"):
        ProposalLayer(0, 0.7, 10, STD)
    with pytest.raises(ValueError, match="rpn_bbox_std_dev"):
        ProposalLayer(5, 0.7, 10, [0.1])


def test_compiles_with_xla_on_tensorflow():
    """Keras enables XLA by default on TensorFlow + GPU."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA compilation check for the TensorFlow backend")
    import tensorflow as tf
    probs, deltas, anchors = _random_inputs(np.random.default_rng(9), 2, 40)
    layer = ProposalLayer(10, 0.5, 30, STD)
    out = tf.function(lambda *x: layer(list(x)), jit_compile=True)(
        probs, deltas, anchors).numpy()
    np.testing.assert_allclose(
        out, _np_proposals(probs, deltas, anchors, 10, 0.5, 30),
        rtol=1e-5, atol=1e-5)
