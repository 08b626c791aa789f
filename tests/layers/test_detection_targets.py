"""Tests of mrcnn.layers.detection_targets: hand cases and invariants checked
against NumPy loops."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from helpers import run_layer_test
from mrcnn.layers.detection_targets import DetectionTargetLayer, mask_targets
from tests.layers.layer_refs import np_iou, run_compiled

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


def _np_refinement(box, gt):
    h, w = box[2] - box[0], box[3] - box[1]
    gh, gw = gt[2] - gt[0], gt[3] - gt[1]
    return np.array([(gt[0] + 0.5 * gh - box[0] - 0.5 * h) / h,
                     (gt[1] + 0.5 * gw - box[1] - 0.5 * w) / w,
                     math.log(gh / h), math.log(gw / w)])


def _mask_targets(*args, **kwargs):
    """mask_targets, jitted on JAX (eager JAX compiles every op)."""
    if keras.backend.backend() == "jax":
        import jax
        return np.asarray(jax.jit(
            lambda *a: mask_targets(*a, **kwargs))(*args))
    return ops.convert_to_numpy(mask_targets(*args, **kwargs))


def _random_boxes(rng, shape, min_side=0.05, max_side=0.5):
    side = rng.uniform(min_side, max_side, size=shape + (2,))
    corner = rng.uniform(0, 1 - side)
    return np.concatenate([corner, corner + side], -1).astype(np.float32)


def test_hand_case_order_targets_and_padding():
    gt_boxes = np.array([[[0.2, 0.2, 0.6, 0.6], [0, 0, 0, 0]]], np.float32)
    gt_class_ids = np.array([[3, 0]], np.int32)
    gt_masks = np.ones((1, 8, 8, 2), bool)
    proposals = np.zeros((1, 6, 4), np.float32)
    proposals[0, 0] = [0.22, 0.2, 0.6, 0.62]   # IoU ~0.86: positive
    proposals[0, 1] = [0.7, 0.7, 0.9, 0.9]     # IoU 0: negative
    proposals[0, 2] = [0.0, 0.0, 0.1, 0.3]     # IoU 0: negative
    # rows 3..5: padding
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), include_gt_boxes=False,
                                 seed=0)
    rois, class_ids, deltas, masks = run_compiled(
        layer, [proposals, gt_class_ids, gt_boxes, gt_masks])
    # 1 positive -> int(1 / 0.5) - 1 = 1 negative; the rest is padding.
    np.testing.assert_array_equal(class_ids, [[3, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(rois[0, 0], proposals[0, 0])
    assert any(np.allclose(rois[0, 1], proposals[0, i]) for i in (1, 2))
    assert np.all(rois[0, 2:] == 0)
    expected = _np_refinement(proposals[0, 0], gt_boxes[0, 0]) / STD
    np.testing.assert_allclose(deltas[0, 0], expected, rtol=1e-5, atol=1e-6)
    assert np.all(deltas[0, 1:] == 0)
    assert np.all(masks[0, 1:] == 0)
    assert masks.shape == (1, 6, 4, 4)


def test_include_gt_boxes_adds_gt_as_positive():
    gt_boxes = np.array([[[0.2, 0.2, 0.6, 0.6]]], np.float32)
    proposals = np.zeros((1, 4, 4), np.float32)
    proposals[0, 0] = [0.7, 0.7, 0.9, 0.9]
    layer = DetectionTargetLayer(4, 0.25, STD, (4, 4), seed=0)
    rois, class_ids, deltas, masks = run_compiled(
        layer, [proposals, np.array([[1]], np.int32), gt_boxes,
                np.ones((1, 5, 5, 1), bool)])
    # The GT box is the only positive (no proposal overlaps it).
    np.testing.assert_array_equal(class_ids, [[1, 0, 0, 0]])
    np.testing.assert_allclose(rois[0, 0], gt_boxes[0, 0])
    np.testing.assert_allclose(deltas[0, 0], 0, atol=1e-6)
    np.testing.assert_allclose(rois[0, 1], proposals[0, 0])
    assert np.all(masks[0, 0] == 1)


def test_zero_area_gt_box_is_no_candidate():
    # A fragment one pixel thick has a zero-height normalized box: IoU 0 with
    # everything, itself included, so as a candidate it would be background on top
    # of its object. Only the GT box of positive area is added.
    gt_boxes = np.array([[[0.2, 0.2, 0.6, 0.6], [0.8, 0.1, 0.8, 0.4]]], np.float32)
    proposals = np.zeros((1, 4, 4), np.float32)
    proposals[0, 0] = [0.0, 0.6, 0.1, 0.9]      # IoU 0 with both: a negative
    layer = DetectionTargetLayer(4, 0.25, STD, (4, 4), seed=0)
    rois, class_ids, _, _ = run_compiled(
        layer, [proposals, np.array([[1, 1]], np.int32), gt_boxes,
                np.ones((1, 5, 5, 2), bool)])
    # 1 positive (the first GT box) -> int(1 / 0.25) - 1 = 3 negatives wanted, but
    # the only candidate negative is the proposal: the zero-area box is not one.
    np.testing.assert_array_equal(class_ids, [[1, 0, 0, 0]])
    np.testing.assert_allclose(rois[0, 0], gt_boxes[0, 0])
    np.testing.assert_allclose(rois[0, 1], proposals[0, 0])
    assert np.all(rois[0, 2:] == 0)
    assert not any(np.allclose(r, gt_boxes[0, 1]) for r in rois[0])


def test_square_mini_mask_targets():
    """A square GT whose mini mask is all ones: a ROI equal to the box gives
    all ones, a ROI twice its size (same centre) ones in the centre half."""
    gt_boxes = np.array([[[0.3, 0.3, 0.5, 0.5]]], np.float32)
    gt_masks = np.ones((1, 14, 14, 1), bool)
    rois = np.array([[[0.3, 0.3, 0.5, 0.5],
                      [0.2, 0.2, 0.6, 0.6]]], np.float32)
    masks = _mask_targets(
        rois, gt_boxes, gt_masks, np.zeros((1, 2), np.int32),
        mask_shape=(28, 28))
    assert np.all(masks[0, 0] == 1)
    centre = np.zeros((28, 28))
    centre[7:21, 7:21] = 1  # samples i / 27 in [0.25, 0.75]: i = 7..20
    np.testing.assert_array_equal(masks[0, 1], centre)


def test_full_image_mask_targets():
    """Without mini masks the ROI crops the full-image mask directly."""
    mask = np.zeros((1, 41, 41, 2), bool)
    mask[0, 10:20, 10:30, 1] = True  # GT 1 covers rows 10..19, cols 10..29
    # Normalized box whose corners are the first/last pixel centres.
    roi = np.array([[[10 / 40, 10 / 40, 19 / 40, 29 / 40],
                     [10 / 40, 10 / 40, 28 / 40, 29 / 40]]], np.float32)
    masks = _mask_targets(
        roi, np.zeros((1, 2, 4), np.float32), mask,
        np.ones((1, 2), np.int32), mask_shape=(10, 20), use_mini_mask=False)
    assert np.all(masks[0, 0] == 1)
    # Second ROI spans rows 10..28 in 10 samples (step 2): rows 10..18 ones.
    expected = np.zeros((10, 20))
    expected[:5] = 1
    np.testing.assert_array_equal(masks[0, 1], expected)


def _mask_crop_values(rois, gt_boxes, gt_masks, assigned, mask_shape, use_mini_mask,
                      image_shape=None):
    """The bilinear samples before mask_targets' 0.5 threshold (its own code path)."""
    import mrcnn.layers.detection_targets as dt
    real = dt.crop_and_resize
    seen = []

    def keep(*args, **kwargs):
        seen.append(ops.convert_to_numpy(real(*args, **kwargs)))
        return real(*args, **kwargs)

    dt.crop_and_resize = keep
    try:
        ops.convert_to_numpy(mask_targets(rois, gt_boxes, gt_masks, assigned, mask_shape,
                                          use_mini_mask, image_shape))
    finally:
        dt.crop_and_resize = real
    return seen[0].reshape((rois.shape[0], rois.shape[1]) + tuple(mask_shape))


def test_mini_mask_targets_sample_the_full_mask_positions():
    """A mini mask the size of its box (mh = h: minimize_mask is then the crop itself) gives,
    with the image shape, exactly the samples of the full-image mask, for ROIs inside,
    around and across the box; Matterport's rule (no image shape) does not."""
    from mrcnn.data.boxes import norm_boxes
    from mrcnn.data.masks.mini import minimize_mask
    rng = np.random.default_rng(0)
    height, width = 60, 80
    full = np.zeros((height, width, 2), bool)
    boxes = np.array([[10, 12, 27, 35], [30, 40, 47, 63]])      # both 17 x 23 pixels
    for g, (y1, x1, y2, x2) in enumerate(boxes):
        full[y1:y2, x1:x2, g] = rng.random((y2 - y1, x2 - x1)) < 0.6
    mini = minimize_mask(boxes, full, (17, 23))
    np.testing.assert_array_equal(mini[:, :, 0], full[10:27, 12:35, 0])
    pixel_rois = np.array([[10, 12, 27, 35], [8, 9, 25, 30], [14, 15, 40, 44],
                           [30, 40, 47, 63], [33, 37, 45, 66], [25, 30, 50, 70]])
    rois = norm_boxes(pixel_rois, (height, width))[None]
    gt = norm_boxes(boxes, (height, width))[None]
    assigned = np.array([[0, 0, 0, 1, 1, 1]], np.int32)
    expected = _mask_crop_values(rois, gt, full[None], assigned, (14, 14), False)
    got = _mask_crop_values(rois, gt, mini[None], assigned, (14, 14), True, (height, width))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    matterport = _mask_crop_values(rois, gt, mini[None], assigned, (14, 14), True)
    assert np.abs(matterport - expected).max() > 0.2


def test_layer_passes_the_image_shape_to_the_mask_targets():
    layer = DetectionTargetLayer(4, 0.5, STD, (28, 28), image_shape=(64, 96))
    assert layer.get_config()["image_shape"] == [64, 96]
    assert DetectionTargetLayer.from_config(layer.get_config()).image_shape == (64, 96)
    assert DetectionTargetLayer(4, 0.5, STD, (28, 28)).image_shape is None
    with pytest.raises(ValueError, match=r"image_shape must be \(height, width\)"):
        DetectionTargetLayer(4, 0.5, STD, (28, 28), image_shape=(1, 5))


def test_positive_roi_mask_in_layer_is_partial():
    """ROI = GT box extended 40% downwards (IoU 1/1.4): top rows are ones."""
    gt_boxes = np.array([[[0.2, 0.2, 0.4, 0.4]]], np.float32)
    proposals = np.array([[[0.2, 0.2, 0.48, 0.4]]], np.float32)
    layer = DetectionTargetLayer(2, 1.0, STD, (28, 28),
                                 include_gt_boxes=False, seed=0)
    rois, class_ids, _, masks = run_compiled(
        layer, [proposals, np.array([[1]], np.int32), gt_boxes,
                np.ones((1, 10, 10, 1), bool)])
    np.testing.assert_array_equal(class_ids, [[1, 0]])
    # Row i samples y = 1.4 * 9 * i / 27 of the 10-row mini mask: inside
    # (y <= 9) iff i <= 19.
    expected = np.zeros((28, 28))
    expected[:20] = 1
    np.testing.assert_array_equal(masks[0, 0], expected)
    assert np.all(rois[0, 1] == 0)


def test_mask_box_scale_cuts_the_targets_from_the_grown_roi():
    """ROI = GT box [0.2, 0.4] grown 1.5x to [0.15, 0.45]: in the GT box's frame
    (Matterport's rule) sample i lies at -0.25 + 1.5 * i / 27, inside the all-ones
    mini mask for i = 5..22; the ROI returned for the box head is not grown."""
    gt_boxes = np.array([[[0.2, 0.2, 0.4, 0.4]]], np.float32)
    layer = DetectionTargetLayer(2, 1.0, STD, (28, 28), include_gt_boxes=False, seed=0,
                                 mask_box_scale=1.5)
    rois, class_ids, deltas, masks = run_compiled(
        layer, [gt_boxes.copy(), np.array([[1]], np.int32), gt_boxes,
                np.ones((1, 10, 10, 1), bool)])
    np.testing.assert_array_equal(class_ids, [[1, 0]])
    np.testing.assert_allclose(rois[0, 0], gt_boxes[0, 0])
    np.testing.assert_allclose(deltas[0, 0], 0, atol=1e-6)
    expected = np.zeros((28, 28))
    expected[5:23, 5:23] = 1
    np.testing.assert_array_equal(masks[0, 0], expected)
    config = layer.get_config()
    assert config["mask_box_scale"] == 1.5
    assert DetectionTargetLayer.from_config(config).mask_box_scale == 1.5
    with pytest.raises(ValueError, match="mask_box_scale must be a finite number >= 1; got 0.5"):
        DetectionTargetLayer(2, 1.0, STD, (28, 28), mask_box_scale=0.5)


def test_zero_gt_gives_all_negatives_without_nan():
    rng = np.random.default_rng(1)
    proposals = _random_boxes(rng, (2, 30))
    proposals[1, 5:] = 0  # image 1: only 5 real proposals
    layer = DetectionTargetLayer(10, 0.33, STD, (6, 6), seed=3)
    rois, class_ids, deltas, masks = run_compiled(
        layer, [proposals, np.zeros((2, 4), np.int32),
                np.zeros((2, 4, 4), np.float32), np.zeros((2, 7, 7, 4), bool)])
    for out in (rois, deltas, masks):
        assert np.all(np.isfinite(out))
    assert np.all(class_ids == 0) and np.all(deltas == 0)
    assert np.all(masks == 0)
    # Image 0: every row is a (distinct) negative; image 1: 5, then padding.
    assert np.all(np.any(rois[0] != 0, axis=-1))
    assert len({tuple(r) for r in rois[0]}) == 10
    assert np.all(np.any(rois[1, :5] != 0, axis=-1))
    assert np.all(rois[1, 5:] == 0)
    for row in rois[1, :5]:
        assert np.any(np.all(np.isclose(proposals[1], row), axis=-1))


def test_crowd_boxes_exclude_negatives():
    gt_boxes = np.array([[[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9]]],
                        np.float32)
    gt_class_ids = np.array([[1, -1]], np.int32)  # second GT is a crowd
    proposals = np.array([[[0.6, 0.6, 0.8, 0.8],    # inside the crowd
                           [0.0, 0.6, 0.2, 0.9]]], np.float32)  # negative
    layer = DetectionTargetLayer(6, 0.5, STD, (4, 4), seed=0)
    rois, class_ids, _, _ = run_compiled(
        layer, [proposals, gt_class_ids, gt_boxes,
                np.ones((1, 4, 4, 2), bool)])
    # Positives: the non-crowd GT box only; negatives: proposal 1 only
    # (the crowd GT box itself is not a candidate).
    np.testing.assert_array_equal(class_ids, [[1, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(rois[0, 0], gt_boxes[0, 0])
    np.testing.assert_allclose(rois[0, 1], proposals[0, 1])
    assert np.all(rois[0, 2:] == 0)


@pytest.mark.parametrize("include_gt", [True, False])
def test_random_invariants_against_numpy(include_gt):
    rng = np.random.default_rng(7)
    batch, num, num_gt, rois_per_image, ratio = 2, 60, 5, 16, 0.33
    gt_boxes = _random_boxes(rng, (batch, num_gt), 0.2, 0.5)
    gt_class_ids = rng.integers(1, 4, size=(batch, num_gt)).astype(np.int32)
    gt_class_ids[0, 3:] = 0
    gt_boxes[0, 3:] = 0
    gt_class_ids[1, 4] = -1
    # Proposals: jittered GT boxes (many positives) plus random boxes.
    jitter = gt_boxes[:, rng.integers(0, 3, size=num // 2)] + rng.normal(
        0, 0.03, size=(batch, num // 2, 4)).astype(np.float32)
    jitter = np.concatenate([np.minimum(jitter[..., :2], jitter[..., 2:]),
                             np.maximum(jitter[..., :2], jitter[..., 2:])], -1)
    proposals = np.concatenate(
        [jitter, _random_boxes(rng, (batch, num - num // 2))], axis=1)
    proposals[1, -10:] = 0
    gt_masks = rng.random((batch, 12, 12, num_gt)) < 0.5
    layer = DetectionTargetLayer(rois_per_image, ratio, STD, (8, 8),
                                 include_gt_boxes=include_gt, seed=11)
    rois, class_ids, deltas, masks = run_compiled(
        layer, [proposals, gt_class_ids, gt_boxes, gt_masks])
    assert rois.shape == (batch, rois_per_image, 4)
    assert class_ids.dtype == np.int32
    cap = int(rois_per_image * ratio)
    for b in range(batch):
        real = [g for g in range(num_gt) if gt_class_ids[b, g] > 0]
        crowd = [g for g in range(num_gt) if gt_class_ids[b, g] < 0]
        candidates = [p for p in proposals[b] if np.any(p != 0)]
        if include_gt:
            candidates += [gt_boxes[b, g] for g in real]
        n_pos = n_neg = 0
        for c in candidates:
            best = max(np_iou(c, gt_boxes[b, g]) for g in real)
            crowd_iou = max([np_iou(c, gt_boxes[b, g]) for g in crowd] + [0])
            n_pos += best >= 0.5
            n_neg += best < 0.5 and crowd_iou < 0.001
        pos_count = min(n_pos, cap)
        neg_count = min(int(round(pos_count / ratio, 6)) - pos_count, n_neg,
                        rois_per_image - pos_count)
        assert pos_count > 0
        np.testing.assert_array_equal(class_ids[b, :pos_count] > 0, True)
        np.testing.assert_array_equal(class_ids[b, pos_count:], 0)
        used = pos_count + neg_count
        assert np.all(np.any(rois[b, :used] != 0, axis=-1))
        assert np.all(rois[b, used:] == 0)
        assert len({tuple(r) for r in rois[b, :used]}) == used
        for t in range(used):
            roi = rois[b, t]
            assert any(np.allclose(roi, c) for c in candidates)
            ious = [np_iou(roi, gt_boxes[b, g]) for g in real]
            if t < pos_count:
                g = real[int(np.argmax(ious))]
                assert max(ious) >= 0.5
                assert class_ids[b, t] == gt_class_ids[b, g]
                np.testing.assert_allclose(
                    deltas[b, t], _np_refinement(roi, gt_boxes[b, g]) / STD,
                    rtol=1e-4, atol=1e-4)
            else:
                assert max(ious) < 0.5
                assert np.all(deltas[b, t] == 0) and np.all(masks[b, t] == 0)
        assert np.all(deltas[b, used:] == 0) and np.all(masks[b, used:] == 0)
        assert pos_count / rois_per_image <= ratio


def test_jitted_model_predict_and_config():
    batch, num, num_gt = 2, 12, 3
    layer = DetectionTargetLayer(8, 0.5, STD, (5, 5), seed=1, name="targets")
    inputs = [keras.Input(shape=(num, 4), batch_size=batch),
              keras.Input(shape=(num_gt,), batch_size=batch, dtype="int32"),
              keras.Input(shape=(num_gt, 4), batch_size=batch),
              keras.Input(shape=(6, 6, num_gt), batch_size=batch,
                          dtype="bool")]
    outputs = layer(inputs)
    assert [tuple(o.shape) for o in outputs] == [
        (batch, 8, 4), (batch, 8), (batch, 8, 4), (batch, 8, 5, 5)]
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    gt_boxes = _random_boxes(rng, (batch, num_gt), 0.2, 0.4)
    proposals = _random_boxes(rng, (batch, num))
    proposals[:, :3] = gt_boxes
    data = [proposals, np.array([[1, 2, 0], [0, 0, 0]], np.int32), gt_boxes,
            np.ones((batch, 6, 6, num_gt), bool)]
    rois, class_ids, deltas, masks = model.predict(data, batch_size=batch,
                                                   verbose=0)
    assert np.sum(class_ids[0] > 0) == 4  # cap int(8 * 0.5); >= 4 available
    assert np.all(class_ids[1] == 0)
    assert np.all(np.isfinite(deltas)) and np.all(np.isfinite(masks))
    # Shapes and dtypes (also of compute_output_spec), the from_config clone
    # (same config by value, same seeded sample) and a saved model.
    outputs = run_layer_test(
        DetectionTargetLayer(8, 0.5, STD, (5, 5), seed=1, name="targets"),
        data, expected_output_shape=[(batch, 8, 4), (batch, 8), (batch, 8, 4),
                                     (batch, 8, 5, 5)],
        expected_output_dtype=["float32", "int32", "float32", "float32"])
    assert np.sum(outputs[1][0] > 0) == 4


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="roi_positive_ratio"):
        DetectionTargetLayer(10, 1.5, STD, (4, 4))
    with pytest.raises(ValueError, match="bbox_std_dev"):
        DetectionTargetLayer(10, 0.3, [0.1, 0.1], (4, 4))
    with pytest.raises(ValueError, match="train_rois_per_image"):
        DetectionTargetLayer(0, 0.3, STD, (4, 4))


def test_compiles_with_xla_on_tensorflow():
    """Keras enables XLA by default on TensorFlow + GPU: the layer must not
    use ops without an XLA kernel (e.g. tf.image.crop_and_resize)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("XLA compilation check for the TensorFlow backend")
    import tensorflow as tf
    gt_boxes = np.array([[[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.9, 0.7]]],
                        np.float32)
    far = np.array([[[0.0, 0.8, 0.1, 0.9], [0.8, 0.0, 0.9, 0.2],
                     [0.4, 0.0, 0.45, 0.1], [0.0, 0.5, 0.05, 0.6]]],
                   np.float32)
    proposals = np.concatenate([gt_boxes, far], axis=1)
    data = [proposals, np.array([[1, 2]], np.int32), gt_boxes,
            np.ones((1, 5, 5, 2), bool)]
    # 4 positives (2 proposals + 2 GT boxes) and 4 negatives: all chosen,
    # only their order is random.
    layer = DetectionTargetLayer(8, 0.5, STD, (4, 4), seed=0)
    rois, class_ids, deltas, masks = (
        x.numpy() for x in tf.function(
            lambda *x: layer(list(x)), jit_compile=True)(*data))
    assert sorted(class_ids[0]) == [0, 0, 0, 0, 1, 1, 2, 2]
    np.testing.assert_array_equal(class_ids[0, 4:], 0)
    expected_pos = np.concatenate([gt_boxes[0], gt_boxes[0]])
    np.testing.assert_allclose(np.sort(rois[0, :4], axis=0),
                               np.sort(expected_pos, axis=0), atol=1e-6)
    np.testing.assert_allclose(np.sort(rois[0, 4:], axis=0),
                               np.sort(far[0], axis=0), atol=1e-6)
    np.testing.assert_allclose(deltas, 0, atol=1e-6)
    assert np.all(masks[0, :4] == 1) and np.all(masks[0, 4:] == 0)
