"""Tests of mrcnn.losses: hand-computed values, NumPy loop references, empty
cases and finite gradients (on the active Keras backend)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from mrcnn import losses as _losses


class _Compiled:
    """The loss functions, wrapped in jax.jit on JAX (eager JAX compiles
    every op separately, which makes tiny tests slow); unchanged otherwise.
    """

    def __getattr__(self, name):
        fn = getattr(_losses, name)
        if keras.backend.backend() == "jax":
            import jax
            return jax.jit(fn)
        return fn


losses = _Compiled()


def _value(x):
    return float(ops.convert_to_numpy(x))


def _grad(fn, x):
    """Gradient of the scalar fn(x) with respect to x, as NumPy."""
    backend = keras.backend.backend()
    x = np.asarray(x, np.float32)
    if backend == "jax":
        import jax
        return np.asarray(jax.grad(lambda v: fn(v))(x))
    if backend == "tensorflow":
        import tensorflow as tf
        variable = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(variable)
            loss = fn(variable)
        return tape.gradient(loss, variable).numpy()
    if backend == "torch":
        import torch
        variable = torch.tensor(x, requires_grad=True)
        fn(variable).backward()
        return variable.grad.numpy()
    pytest.skip(f"no gradient helper for backend {backend}")


def _np_smooth_l1(d):
    d = np.abs(d)
    return np.where(d < 1, 0.5 * d ** 2, d - 0.5)


def _np_softmax_ce(logits, label):
    m = logits.max()
    return m + math.log(np.exp(logits - m).sum()) - logits[label]


# ---------------------------------------------------------------- rpn_class


def test_rpn_class_loss_hand_case():
    match = np.array([[1, -1, 0]], np.int32)
    logits = np.array([[[0.0, math.log(3.0)],    # pos: log(1 + 3) - log 3
                        [0.0, 0.0],              # neg: log 2
                        [5.0, -5.0]]], np.float32)  # neutral: ignored
    expected = (math.log(4.0 / 3.0) + math.log(2.0)) / 2
    assert _value(losses.rpn_class_loss(match, logits)) == pytest.approx(
        expected, rel=1e-5)


def test_rpn_class_loss_matches_loop_reference():
    rng = np.random.default_rng(0)
    match = rng.integers(-1, 2, size=(2, 50)).astype(np.int32)
    logits = rng.normal(size=(2, 50, 2)).astype(np.float32) * 3
    total, count = 0.0, 0
    for b in range(2):
        for a in range(50):
            if match[b, a] != 0:
                total += _np_softmax_ce(logits[b, a], int(match[b, a] == 1))
                count += 1
    assert _value(losses.rpn_class_loss(match, logits)) == pytest.approx(
        total / count, rel=1e-5)


def test_rpn_class_loss_all_neutral_is_zero_with_finite_grad():
    match = np.zeros((2, 6), np.int32)
    logits = np.random.default_rng(1).normal(size=(2, 6, 2))
    assert _value(losses.rpn_class_loss(match, logits)) == 0.0
    grad = _grad(lambda v: losses.rpn_class_loss(match, v), logits)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


# ----------------------------------------------------------------- rpn_bbox


def test_rpn_bbox_loss_hand_case():
    match = np.array([[0, 1, -1, 1]], np.int32)
    target = np.array([[[0.5, 0, 0, 2],       # target of anchor 1
                        [0, -3, 0, 0],        # target of anchor 3
                        [9, 9, 9, 9]]], np.float32)  # padding row
    pred = np.zeros((1, 4, 4), np.float32)
    pred[0, 3] = [0, 0, 0, 0.5]
    pred[0, 0] = [7, 7, 7, 7]  # neutral anchor: ignored
    # anchor 1: |d| = .5, 0, 0, 2  -> .125 + 0 + 0 + 1.5
    # anchor 3: |d| = 0, 3, 0, .5  -> 0 + 2.5 + 0 + .125
    expected = (0.125 + 1.5 + 2.5 + 0.125) / 8
    assert _value(losses.rpn_bbox_loss(target, match, pred)) == pytest.approx(
        expected, rel=1e-6)


def test_rpn_bbox_loss_matches_loop_reference():
    rng = np.random.default_rng(2)
    batch, anchors, rows = 3, 40, 12
    match = rng.choice([-1, 0, 1], p=[0.3, 0.5, 0.2],
                       size=(batch, anchors)).astype(np.int32)
    match[2] = 0  # an image without positives
    target = rng.normal(size=(batch, rows, 4)).astype(np.float32) * 2
    pred = rng.normal(size=(batch, anchors, 4)).astype(np.float32) * 2
    values = []
    for b in range(batch):
        i = 0
        for a in range(anchors):
            if match[b, a] == 1 and i < rows:
                values.extend(_np_smooth_l1(target[b, i] - pred[b, a]))
                i += 1
    assert _value(losses.rpn_bbox_loss(target, match, pred)) == pytest.approx(
        np.mean(values), rel=1e-5)


def test_rpn_bbox_loss_no_positive_is_zero_with_finite_grad():
    match = np.array([[0, -1, -1, 0]], np.int32)
    target = np.ones((1, 3, 4), np.float32)
    pred = np.full((1, 4, 4), 5.0, np.float32)
    assert _value(losses.rpn_bbox_loss(target, match, pred)) == 0.0
    grad = _grad(lambda v: losses.rpn_bbox_loss(target, match, v), pred)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


# --------------------------------------------------------------- mrcnn_class


def test_mrcnn_class_loss_hand_case_with_inactive_and_padding():
    target = np.array([[1, 0, 2, 0]], np.int32)
    logits = np.array([[[0, 0, 0],          # argmax 0 (active): CE = log 3
                        [0, math.log(2.0), 0],  # argmax 1 (active): target 0
                        [0, 0, 5.0],        # argmax 2: inactive -> weight 0
                        [0, 9.0, 0]]],      # padding row (valid False)
                      np.float32)
    active = np.array([[1, 1, 0]], np.float32)
    valid = np.array([[True, True, True, False]])
    # row 1: log(1 + 2 + 1) - 0 = log 4
    expected = (math.log(3.0) + math.log(4.0)) / 2
    assert _value(losses.mrcnn_class_loss(
        target, logits, active, valid)) == pytest.approx(expected, rel=1e-5)
    # Without `valid`, the padding row counts (argmax 1 is active, target 0).
    pad_ce = _np_softmax_ce(logits[0, 3], 0)
    expected_all = (math.log(3.0) + math.log(4.0) + pad_ce) / 3
    assert _value(losses.mrcnn_class_loss(
        target, logits, active)) == pytest.approx(expected_all, rel=1e-5)


def test_mrcnn_class_loss_matches_loop_reference():
    rng = np.random.default_rng(3)
    batch, rois, classes = 2, 10, 4
    target = rng.integers(0, classes, size=(batch, rois)).astype(np.int32)
    logits = rng.normal(size=(batch, rois, classes)).astype(np.float32) * 2
    active = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.int32)
    valid = rng.random((batch, rois)) < 0.7
    total, count = 0.0, 0
    for b in range(batch):
        for r in range(rois):
            if valid[b, r] and active[b, np.argmax(logits[b, r])]:
                total += _np_softmax_ce(logits[b, r], target[b, r])
                count += 1
    assert _value(losses.mrcnn_class_loss(
        target, logits, active, valid)) == pytest.approx(total / count,
                                                         rel=1e-5)


def test_mrcnn_class_loss_no_valid_roi_is_zero_with_finite_grad():
    target = np.zeros((1, 3), np.int32)
    logits = np.ones((1, 3, 2), np.float32)
    active = np.ones((1, 2), np.float32)
    valid = np.zeros((1, 3), bool)
    assert _value(losses.mrcnn_class_loss(target, logits, active, valid)) == 0
    grad = _grad(
        lambda v: losses.mrcnn_class_loss(target, v, active, valid), logits)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


# ---------------------------------------------------------------- mrcnn_bbox


def test_mrcnn_bbox_loss_hand_case():
    target_ids = np.array([[2, 0, 1]], np.int32)
    target = np.array([[[1, 0, 0, 0.5],
                        [8, 8, 8, 8],   # background: ignored
                        [0, 0, -2, 0]]], np.float32)
    pred = np.full((1, 3, 3, 4), 100.0, np.float32)  # other classes: ignored
    pred[0, 0, 2] = [0, 0, 0, 0]       # diffs 1, 0, 0, .5 -> .5 + .125
    pred[0, 2, 1] = [0.2, 0, 0, 0]     # diffs .2, 0, 2, 0 -> .02 + 1.5
    expected = (0.5 + 0.125 + 0.02 + 1.5) / 8
    assert _value(losses.mrcnn_bbox_loss(
        target, target_ids, pred)) == pytest.approx(expected, rel=1e-5)


def test_mrcnn_bbox_loss_no_positive_is_zero_with_finite_grad():
    target_ids = np.zeros((2, 3), np.int32)
    target = np.ones((2, 3, 4), np.float32)
    pred = np.ones((2, 3, 2, 4), np.float32)
    assert _value(losses.mrcnn_bbox_loss(target, target_ids, pred)) == 0.0
    grad = _grad(lambda v: losses.mrcnn_bbox_loss(target, target_ids, v), pred)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


# ---------------------------------------------------------------- mrcnn_mask


@pytest.mark.parametrize("name, expected", [
    # pixel 1: -log(0.75); pixel 2: target 0, p = .5 -> -log(.5)
    ("mrcnn_mask_loss", (-math.log(0.75) - math.log(0.5)) / 2),
    # overlap 0.75, sum p 1.25, sum t 1: 1 - (1.5 + 1) / (2.25 + 1)
    ("mrcnn_mask_dice_loss", 1.0 - 2.5 / 3.25),
])
def test_mask_losses_hand_case(name, expected):
    target_ids = np.array([[1, 0]], np.int32)
    target = np.array([[[[1, 0]], [[1, 1]]]], np.float32)  # [1, 2, 1, 2]
    logits = np.zeros((1, 2, 1, 2, 2), np.float32)
    logits[0, 0, 0, :, 1] = [math.log(3.0), 0.0]  # p = 0.75 and 0.5
    logits[0, 0, 0, :, 0] = 50.0                  # wrong class: ignored
    logits[0, 1] = -50.0                          # background ROI: ignored
    assert _value(getattr(losses, name)(
        target, target_ids, logits)) == pytest.approx(expected, rel=1e-5)


def test_mrcnn_mask_loss_matches_loop_reference_and_is_stable():
    rng = np.random.default_rng(4)
    batch, rois, size, classes = 2, 5, 4, 3
    target_ids = rng.integers(0, classes, size=(batch, rois)).astype(np.int32)
    target = (rng.random((batch, rois, size, size)) < 0.5).astype(np.float32)
    logits = rng.normal(size=(batch, rois, size, size, classes)) * 4
    logits[0, 0, 0, 0, :] = 200.0  # huge logits must not overflow
    total, count = 0.0, 0
    for b in range(batch):
        for r in range(rois):
            c = target_ids[b, r]
            if c > 0:
                x = logits[b, r, :, :, c]
                z = target[b, r]
                total += np.sum(np.maximum(x, 0) - x * z
                                + np.log1p(np.exp(-np.abs(x))))
                count += size * size
    value = _value(losses.mrcnn_mask_loss(target, target_ids,
                                          logits.astype(np.float32)))
    assert math.isfinite(value)
    assert value == pytest.approx(total / count, rel=1e-5)


@pytest.mark.parametrize("name", ["mrcnn_mask_loss", "mrcnn_mask_dice_loss"])
def test_mask_losses_no_positive_is_zero_with_finite_grad(name):
    loss = getattr(losses, name)
    target_ids = np.zeros((1, 2), np.int32)
    target = np.ones((1, 2, 3, 3), np.float32)
    logits = np.full((1, 2, 3, 3, 2), -30.0, np.float32)
    assert _value(loss(target, target_ids, logits)) == 0.0
    grad = _grad(lambda v: loss(target, target_ids, v), logits)
    assert np.all(np.isfinite(grad)) and np.all(grad == 0)


# ---------------------------------------------------------------- mask Dice


def test_mrcnn_mask_dice_loss_matches_loop_reference():
    """The mean over the positive ROIs of each one's own Dice (not pooled pixels)."""
    rng = np.random.default_rng(9)
    batch, rois, size, classes = 2, 5, 6, 3
    target_ids = rng.integers(0, classes, size=(batch, rois)).astype(np.int32)
    target = (rng.random((batch, rois, size, size)) < 0.3).astype(np.float32)
    target[0, 1] = 0.0                              # an empty target
    logits = (rng.normal(size=(batch, rois, size, size, classes)) * 3).astype(np.float32)
    logits[1, 2, 0, 0, :] = 200.0                   # saturated probabilities stay finite
    per_roi = []
    for b in range(batch):
        for r in range(rois):
            c = target_ids[b, r]
            if c > 0:
                p = 1 / (1 + np.exp(-logits[b, r, :, :, c].astype(np.float64)))
                t = target[b, r]
                per_roi.append(1 - (2 * np.sum(p * t) + 1) / (np.sum(p) + np.sum(t) + 1))
    value = _value(losses.mrcnn_mask_dice_loss(target, target_ids, logits))
    assert math.isfinite(value) and len(per_roi) > 3
    assert value == pytest.approx(np.mean(per_roi), rel=1e-5)


def test_mrcnn_mask_dice_loss_perfect_mask_is_near_zero_and_grad_points_to_target():
    target = np.zeros((1, 1, 4, 4), np.float32)
    target[0, 0, 1:3, 1:3] = 1.0
    ids = np.array([[1]], np.int32)
    perfect = np.where(target[..., None] > 0, 30.0, -30.0).repeat(2, axis=-1)
    assert _value(losses.mrcnn_mask_dice_loss(target, ids, perfect)) < 1e-6
    logits = np.zeros((1, 1, 4, 4, 2), np.float32)
    grad = _grad(lambda v: losses.mrcnn_mask_dice_loss(target, ids, v), logits)
    inside, outside = grad[0, 0, 1:3, 1:3, 1], grad[0, 0, 0, :, 1]
    assert np.all(inside < 0) and np.all(outside > 0)   # descent raises p inside, lowers it out
    assert np.all(grad[..., 0] == 0)                     # other classes get no gradient


def test_losses_gradients_finite_with_positives():
    rng = np.random.default_rng(5)
    target_ids = np.array([[1, 0, 2]], np.int32)
    target_bbox = rng.normal(size=(1, 3, 4)).astype(np.float32)
    pred_bbox = rng.normal(size=(1, 3, 3, 4)).astype(np.float32)
    grad = _grad(lambda v: losses.mrcnn_bbox_loss(target_bbox, target_ids, v),
                 pred_bbox)
    assert np.all(np.isfinite(grad))
    assert np.any(grad[0, 0, 1] != 0) and np.all(grad[0, 1] == 0)


# ---------------------------------------------------------------- foreground


def test_foreground_loss_hand_case():
    target = np.array([[[[1.0], [0.0]]]], np.float32)          # [1, 1, 2, 1]
    logits = np.array([[[[math.log(3.0)], [0.0]]]], np.float32)  # p = 0.75, 0.5
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    assert _value(losses.foreground_loss(target, logits)) == pytest.approx(expected, rel=1e-5)


def test_foreground_loss_matches_the_mean_over_every_pixel_and_is_stable():
    rng = np.random.default_rng(7)
    target = (rng.random((2, 6, 5, 1)) < 0.3).astype(np.float32)
    logits = (rng.normal(size=(2, 6, 5, 1)) * 4).astype(np.float32)
    logits[0, 0, 0, 0], logits[1, 0, 0, 0] = 200.0, -200.0     # no overflow
    probability = 1 / (1 + np.exp(-logits.astype(np.float64)))
    eps = 1e-300
    bce = -(target * np.log(np.maximum(probability, eps))
            + (1 - target) * np.log(np.maximum(1 - probability, eps)))
    bce[0, 0, 0, 0] = 0.0 if target[0, 0, 0, 0] else 200.0      # exact limits of the two
    bce[1, 0, 0, 0] = 200.0 if target[1, 0, 0, 0] else 0.0
    value = _value(losses.foreground_loss(target, logits))
    assert math.isfinite(value) and value == pytest.approx(bce.mean(), rel=1e-5)
    grad = _grad(lambda x: losses.foreground_loss(target, x), logits)
    np.testing.assert_allclose(grad, (probability - target) / target.size, rtol=1e-4,
                               atol=1e-7)
