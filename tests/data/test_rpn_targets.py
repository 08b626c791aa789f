"""Tests for mrcnn.data.rpn_targets against a slow loop reference."""

import math

import numpy as np
import pytest

from mrcnn.data.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.data.rpn_targets import (build_rpn_targets, match_anchors, rpn_match_labels,
                                    rpn_targets, sample_rpn_targets)

# Backend-independent: NumPy RPN targets against a loop reference; no Keras op.
pytestmark = pytest.mark.backend_independent

STD = np.array([0.1, 0.1, 0.2, 0.2])


def _iou32(a, b):
    """IoU of two boxes with float32 scalar arithmetic (same rounding as the library)."""
    f = np.float32
    ih = max(f(0), min(f(a[2]), f(b[2])) - max(f(a[0]), f(b[0])))
    iw = max(f(0), min(f(a[3]), f(b[3])) - max(f(a[1]), f(b[1])))
    inter = ih * iw
    area_a = max(f(0), f(a[2]) - f(a[0])) * max(f(0), f(a[3]) - f(a[1]))
    area_b = max(f(0), f(b[2]) - f(b[0])) * max(f(0), f(b[3]) - f(b[1]))
    union = area_a + area_b - inter
    return inter / union if union > 0 else f(0)


def _reference(anchors, gt_boxes, gt_class_ids, positive_iou=0.7, negative_iou=0.3):
    """Slow labels (no subsampling) and the best non-crowd box of each anchor."""
    crowd = [k for k in range(len(gt_boxes)) if gt_class_ids[k] < 0]
    normal = [k for k in range(len(gt_boxes)) if gt_class_ids[k] >= 0]
    labels = np.zeros(len(anchors), dtype=np.int32)
    best_gt = [-1] * len(anchors)
    best_iou = [0.0] * len(anchors)
    gt_best = {k: (0.0, -1) for k in normal}
    for i, a in enumerate(anchors):
        for k in normal:
            iou = _iou32(a, gt_boxes[k])
            if iou > best_iou[i]:
                best_iou[i], best_gt[i] = iou, k
            if iou > gt_best[k][0]:
                gt_best[k] = (iou, i)
        near_crowd = any(_iou32(a, gt_boxes[k]) >= 0.001 for k in crowd)
        if best_iou[i] < negative_iou and not near_crowd:
            labels[i] = -1
    for k in normal:
        if gt_best[k][1] >= 0:
            labels[gt_best[k][1]] = 1
    for i in range(len(anchors)):
        if best_iou[i] >= positive_iou:
            labels[i] = 1
    return labels, best_gt


def _small_anchors():
    strides = [4, 8, 16]
    shapes = compute_backbone_shapes((64, 64), strides)
    return generate_pyramid_anchors((8, 16, 32), [0.5, 1, 2], shapes, strides, 1)


def _random_gt(rng, n, size=64.0, crowd=0):
    y1x1 = rng.uniform(0, size - 8, (n, 2))
    hw = rng.uniform(3, 30, (n, 2))
    boxes = np.concatenate([y1x1, np.minimum(y1x1 + hw, size)], axis=1).astype(np.float32)
    ids = rng.integers(1, 3, n).astype(np.int32)
    ids[:crowd] = -1
    return boxes, ids


@pytest.mark.parametrize("seed,num_gt,crowd", [(0, 6, 0), (1, 12, 2), (2, 1, 0), (3, 8, 3)])
def test_labels_match_loop_reference(seed, num_gt, crowd):
    rng = np.random.default_rng(seed)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, num_gt, crowd=crowd)
    expected, _ = _reference(anchors, gt_boxes, ids)
    got = rpn_match_labels(anchors, gt_boxes, ids)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert (expected == 1).any() and (expected == -1).any()


@pytest.mark.parametrize("seed,num_gt,crowd", [(0, 6, 0), (1, 12, 2), (2, 1, 0), (3, 8, 3),
                                                (4, 0, 0), (5, 3, 3)])
def test_match_anchors_matches_loop_reference(seed, num_gt, crowd):
    rng = np.random.default_rng(seed)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, num_gt, crowd=crowd)
    labels, best_gt = _reference(anchors, gt_boxes, ids)
    match = match_anchors(anchors, gt_boxes, ids)
    assert set(match) == {"labels", "positives", "positive_box"}
    assert match["labels"].dtype == np.int8
    np.testing.assert_array_equal(match["labels"], labels)
    np.testing.assert_array_equal(match["positives"], np.flatnonzero(labels == 1))
    # The reference indexes all boxes; match_anchors the non-crowd ones.
    non_crowd = np.flatnonzero(ids >= 0)
    expected_box = [int(np.searchsorted(non_crowd, best_gt[i]))
                    for i in np.flatnonzero(labels == 1)]
    np.testing.assert_array_equal(match["positive_box"], expected_box)
    assert match["positives"].dtype == match["positive_box"].dtype == np.int64


def test_match_anchors_thresholds_and_split_equals_rpn_targets():
    rng = np.random.default_rng(21)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, 10, crowd=2)
    loose = match_anchors(anchors, gt_boxes, ids, positive_iou=0.5, negative_iou=0.1)
    np.testing.assert_array_equal(
        loose["labels"], rpn_match_labels(anchors, gt_boxes, ids, 0.5, 0.1))
    match = match_anchors(anchors, gt_boxes, ids)
    for n in (8, 256):
        split = sample_rpn_targets(match, anchors, gt_boxes, ids, n, STD,
                                   np.random.default_rng(n))
        whole = rpn_targets(anchors, gt_boxes, ids, n, STD, rng=np.random.default_rng(n))
        np.testing.assert_array_equal(split[0], whole[0])
        np.testing.assert_array_equal(split[1], whole[1])
    with pytest.raises(ValueError, match="negative_iou"):
        match_anchors(anchors, gt_boxes, ids, positive_iou=0.2, negative_iou=0.3)


@pytest.mark.parametrize("positive_iou,negative_iou", [(0.5, 0.3), (0.6, 0.4), (0.5, 0.5)])
def test_rpn_targets_and_build_wrapper_take_the_thresholds(positive_iou, negative_iou):
    """Config.RPN_POSITIVE_IOU / RPN_NEGATIVE_IOU reach the labels (no subsampling when
    every labelled anchor fits), against the loop reference at those thresholds."""
    rng = np.random.default_rng(31)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, 9, crowd=1)
    expected, _ = _reference(anchors, gt_boxes, ids, positive_iou, negative_iou)
    n = 2 * len(anchors)                          # keeps every positive and negative
    got, _ = rpn_targets(anchors, gt_boxes, ids, n, STD, rng=0, positive_iou=positive_iou,
                         negative_iou=negative_iou)
    np.testing.assert_array_equal(got, expected)
    default, _ = _reference(anchors, gt_boxes, ids)
    assert (expected == 1).sum() > (default == 1).sum()   # more positives than at 0.7

    class Cfg:
        RPN_TRAIN_ANCHORS_PER_IMAGE = n
        RPN_BBOX_STD_DEV = STD
        RPN_POSITIVE_IOU = positive_iou
        RPN_NEGATIVE_IOU = negative_iou

    wrapped, _ = build_rpn_targets((64, 64, 3), anchors, ids, gt_boxes, Cfg, rng=0)
    np.testing.assert_array_equal(wrapped, expected)


def test_generator_uses_the_same_matching():
    from mrcnn.data import generator, rpn_targets

    # the generator calls this module's match_anchors / sample_rpn_targets
    assert generator.rpn is rpn_targets
    assert rpn_targets.match_anchors is match_anchors
    assert rpn_targets.sample_rpn_targets is sample_rpn_targets


def test_labels_unordered_anchors_across_chunks():
    # Shuffled random anchors: no spatial order, several 2048-anchor chunks.
    rng = np.random.default_rng(7)
    y1x1 = rng.uniform(-10, 120, (5000, 2))
    anchors = np.concatenate([y1x1, y1x1 + rng.uniform(4, 40, (5000, 2))], 1).astype(np.float32)
    gt_boxes, ids = _random_gt(rng, 5, size=120.0, crowd=1)
    expected, _ = _reference(anchors, gt_boxes, ids)
    np.testing.assert_array_equal(rpn_match_labels(anchors, gt_boxes, ids), expected)


def test_best_anchor_per_gt_ties_and_no_zero_iou_match():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    # IoU 0.25 with anchors 0 and 1 (tie): only the lower index becomes positive.
    gt = np.array([[0, 0, 20, 20]], np.float32)
    np.testing.assert_array_equal(rpn_match_labels(anchors, gt, [1]), [1, -1, -1])
    # A box that overlaps no anchor makes nothing positive (Matterport's argwhere would).
    far = np.array([[200, 200, 210, 210]], np.float32)
    np.testing.assert_array_equal(rpn_match_labels(anchors, far, [1]), [-1, -1, -1])
    # A zero-area box is ignored too.
    point = np.array([[5, 5, 5, 5]], np.float32)
    np.testing.assert_array_equal(rpn_match_labels(anchors, point, [1]), [-1, -1, -1])


def test_crowd_handling():
    anchors = np.array([[0, 0, 10, 10],      # overlaps the crowd box slightly
                        [30, 30, 40, 40],    # matches the real box
                        [80, 80, 90, 90]],   # touches nothing
                       np.float32)
    gt = np.array([[9, 9, 25, 25], [30, 30, 40, 40]], np.float32)
    np.testing.assert_array_equal(rpn_match_labels(anchors, gt, [-1, 1]), [0, 1, -1])
    # Only crowd boxes: no positives, near-crowd anchors neutral, rest negative.
    np.testing.assert_array_equal(rpn_match_labels(anchors, gt[:1], [-1]), [0, -1, -1])
    match, bbox = rpn_targets(anchors, gt[:1], [-1], 4, STD, rng=0)
    np.testing.assert_array_equal(match, [0, -1, -1])
    assert not bbox.any()


def test_empty_ground_truth():
    anchors = _small_anchors()
    labels = rpn_match_labels(anchors, np.zeros((0, 4)), np.zeros(0, np.int32))
    assert np.all(labels == -1)
    match, bbox = rpn_targets(anchors, np.zeros((0, 4)), [], 256, STD, rng=1)
    assert (match == -1).sum() == 256 and (match == 0).sum() == len(anchors) - 256
    assert bbox.shape == (256, 4) and bbox.dtype == np.float32 and not bbox.any()


@pytest.mark.parametrize("anchors_per_image", [256, 21, 4])
def test_subsampling_invariants_and_deltas(anchors_per_image):
    rng = np.random.default_rng(11)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, 15, crowd=2)
    unsampled, best_gt = _reference(anchors, gt_boxes, ids)
    match, bbox = rpn_targets(anchors, gt_boxes, ids, anchors_per_image, STD,
                              rng=np.random.default_rng(5))
    assert match.dtype == np.int32 and match.shape == (len(anchors),)
    assert bbox.dtype == np.float32 and bbox.shape == (anchors_per_image, 4)
    pos = np.flatnonzero(match == 1)
    neg = np.flatnonzero(match == -1)
    assert len(pos) == min((unsampled == 1).sum(), anchors_per_image // 2)
    assert len(pos) + len(neg) == min(anchors_per_image, len(pos) + (unsampled == -1).sum())
    assert np.all(unsampled[pos] == 1) and np.all(unsampled[neg] == -1)
    # Deltas of positive anchors, in rpn_match order, divided by the std dev.
    for row, i in enumerate(pos):
        a, g = anchors[i].astype(float), gt_boxes[best_gt[i]].astype(float)
        ah, aw, gh, gw = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
        expected = [((g[0] + gh / 2) - (a[0] + ah / 2)) / ah,
                    ((g[1] + gw / 2) - (a[1] + aw / 2)) / aw,
                    math.log(gh / ah), math.log(gw / aw)]
        np.testing.assert_allclose(bbox[row], np.array(expected) / STD, rtol=1e-4, atol=1e-5)
    assert not bbox[len(pos):].any()


def test_determinism_and_build_wrapper():
    rng = np.random.default_rng(12)
    anchors = _small_anchors()
    gt_boxes, ids = _random_gt(rng, 20)

    class Cfg:
        RPN_TRAIN_ANCHORS_PER_IMAGE = 32
        RPN_BBOX_STD_DEV = STD

    a = rpn_targets(anchors, gt_boxes, ids, 32, STD, rng=np.random.default_rng(3))
    b = build_rpn_targets((64, 64, 3), anchors, ids, gt_boxes, Cfg,
                          rng=np.random.default_rng(3))
    c = rpn_targets(anchors, gt_boxes, ids, 32, STD, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_argument_errors():
    anchors = _small_anchors()
    gt = np.array([[0, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match="gt_class_ids has 2 entries"):
        rpn_match_labels(anchors, gt, [1, 2])
    with pytest.raises(ValueError, match="inverted"):
        rpn_match_labels(anchors, [[10, 0, 5, 10]], [1])
    with pytest.raises(ValueError, match="anchors must have shape"):
        rpn_match_labels(anchors[:, :3], gt, [1])
    with pytest.raises(ValueError, match="anchors_per_image"):
        rpn_targets(anchors, gt, [1], 0, STD)
    with pytest.raises(ValueError, match="bbox_std_dev"):
        rpn_targets(anchors, gt, [1], 8, [0.1, 0.1])
