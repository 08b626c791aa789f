"""Tests for mrcnn.evaluation.competition against hand-worked cases and slow references."""

import numpy as np
import pytest

from mrcnn.evaluation import (
    DEFAULT_IOU_THRESHOLDS,
    error_breakdown,
    touches_border,
    iou_matrix,
    map_iou,
    map_iou_dataset,
    map_iou_per_class,
    matched_pairs,
    mean_map_iou,
    precision_recall_per_threshold,
)
from tests.evaluation.eval_helpers import iou_loop, masks_of, sixty_percent_pair

# Backend-independent: the competition mAP-IoU in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent


# ---------------------------------------------------------------------------
# iou_matrix
# ---------------------------------------------------------------------------

def test_iou_matrix_matches_brute_force_on_random_overlapping_masks():
    rng = np.random.default_rng(0)
    gt = rng.random((16, 20, 5)) < 0.3
    pred = rng.random((16, 20, 7)) < 0.3
    pred[..., 6] = False  # an empty mask has IoU 0 with everything
    np.testing.assert_allclose(iou_matrix(gt, pred), iou_loop(gt, pred),
                               rtol=0, atol=1e-12)


def test_iou_matrix_hand_case_and_empty_sets():
    gt, pred = sixty_percent_pair()
    assert iou_matrix(gt, pred)[0, 0] == 0.6
    assert iou_matrix(gt, np.zeros((20, 20, 0), bool)).shape == (1, 0)
    assert iou_matrix(np.zeros((20, 20, 0), bool), pred).shape == (0, 1)


def test_iou_matrix_rejects_bad_inputs():
    with pytest.raises(ValueError, match="height and width"):
        iou_matrix(np.zeros((4, 4, 1), bool), np.zeros((4, 5, 1), bool))
    with pytest.raises(ValueError, match="label image"):
        iou_matrix(np.zeros((4,), bool), np.zeros((4, 4, 1), bool))
    with pytest.raises(TypeError, match="integer dtype"):
        iou_matrix(np.zeros((4, 4), np.float32), np.zeros((4, 4, 1), bool))
    with pytest.raises(ValueError, match=">= 0"):
        iou_matrix(np.full((4, 4), -1), np.zeros((4, 4, 1), bool))


# ---------------------------------------------------------------------------
# Competition score
# ---------------------------------------------------------------------------

TWO_GT = masks_of((20, 20), np.s_[0:5, 0:5], np.s_[10:20, 10:20])


def test_map_iou_perfect_match():
    assert map_iou(TWO_GT, TWO_GT.copy()) == 1.0


def test_map_iou_one_missed_of_two():
    # Each threshold: TP=1, FN=1 -> 1/2.
    assert map_iou(TWO_GT, TWO_GT[..., :1]) == pytest.approx(0.5)


def test_map_iou_one_false_positive():
    pred = np.concatenate([TWO_GT[..., :1], masks_of((20, 20), np.s_[0:3, 15:20])],
                          axis=-1)
    # Each threshold: TP=1, FP=1 -> 1/2.
    assert map_iou(TWO_GT[..., :1], pred) == pytest.approx(0.5)


def test_map_iou_exact_sixty_percent_is_strictly_compared():
    gt, pred = sixty_percent_pair()
    # IoU 0.6 > t only for t = 0.50 and 0.55: score = 2 / 10.
    assert map_iou(gt, pred) == pytest.approx(0.2)
    counts = precision_recall_per_threshold(gt, pred)
    np.testing.assert_array_equal(counts["tp"], [1, 1] + [0] * 8)
    np.testing.assert_array_equal(counts["fp"], [0, 0] + [1] * 8)
    np.testing.assert_array_equal(counts["fn"], [0, 0] + [1] * 8)
    np.testing.assert_allclose(counts["score"], [1, 1] + [0] * 8)
    np.testing.assert_allclose(counts["precision"], [1, 1] + [0] * 8)
    np.testing.assert_allclose(counts["recall"], [1, 1] + [0] * 8)
    np.testing.assert_array_equal(counts["thresholds"], DEFAULT_IOU_THRESHOLDS)


def test_map_iou_empty_cases():
    none = np.zeros((20, 20, 0), bool)
    assert map_iou(none, none) == 1.0
    assert map_iou(np.zeros((20, 20), np.int32), np.zeros((20, 20), np.int32)) == 1.0
    assert map_iou(TWO_GT, none) == 0.0
    assert map_iou(none, TWO_GT) == 0.0
    counts = precision_recall_per_threshold(TWO_GT, none)
    np.testing.assert_array_equal(counts["fn"], [2] * 10)
    assert np.isnan(counts["precision"]).all()
    np.testing.assert_array_equal(counts["recall"], [0] * 10)


def test_map_iou_label_image_equals_mask_stack():
    gt, pred = sixty_percent_pair()
    gt_masks = np.concatenate([TWO_GT[..., 1:], gt], axis=-1)
    pred_masks = np.concatenate([pred, TWO_GT[..., 1:],
                                 masks_of((20, 20), np.s_[15:20, 0:5])], axis=-1)
    gt_labels = np.zeros((20, 20), np.int64)
    gt_labels[gt_masks[..., 0]] = 7      # labels need not be consecutive
    gt_labels[gt_masks[..., 1]] = 3
    pred_labels = np.zeros((20, 20), np.uint16)
    for k in range(pred_masks.shape[-1]):
        pred_labels[pred_masks[..., k]] = k + 1
    want = map_iou(gt_masks, pred_masks)
    # TP at 0.50 and 0.55 is 2 (of 2 gt, 3 preds) -> 2/3; later 1 -> 1/4.
    assert want == pytest.approx((2 * 2 / 3 + 8 * 1 / 4) / 10)
    assert map_iou(gt_labels, pred_labels) == pytest.approx(want)
    assert map_iou(gt_labels, pred_masks) == pytest.approx(want)
    assert map_iou(gt_masks, pred_labels) == pytest.approx(want)


def _map_iou_reference(gt, pred, thresholds):
    """Slow score: loops over pairs, greedy one-to-one by decreasing IoU."""
    ious = iou_loop(gt, pred)
    scores = []
    for t in thresholds:
        pairs = sorted(((ious[g, p], g, p) for g in range(ious.shape[0])
                        for p in range(ious.shape[1]) if ious[g, p] > t),
                       key=lambda x: -x[0])
        used_g, used_p, tp = set(), set(), 0
        for _, g, p in pairs:
            if g not in used_g and p not in used_p:
                used_g.add(g)
                used_p.add(p)
                tp += 1
        fp, fn = ious.shape[1] - tp, ious.shape[0] - tp
        scores.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
    return float(np.mean(scores))


@pytest.mark.parametrize("seed", range(4))
def test_map_iou_agrees_with_slow_reference_including_low_thresholds(seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((12, 12, 4)) < 0.4
    # Overlapping, duplicated predictions make the one-to-one rule matter.
    pred = np.concatenate([gt[..., :2], gt[..., :1],
                           rng.random((12, 12, 3)) < 0.4], axis=-1)
    for thresholds in (DEFAULT_IOU_THRESHOLDS, [0.05, 0.1, 0.2, 0.3]):
        assert map_iou(gt, pred, thresholds) == pytest.approx(
            _map_iou_reference(gt, pred, thresholds))


def _pairs_reference(ious, t):
    """Slow one-to-one matches: every pair above t, greedy by decreasing IoU."""
    pairs = sorted(((ious[g, p], g, p) for g in range(ious.shape[0])
                    for p in range(ious.shape[1]) if ious[g, p] > t), key=lambda x: -x[0])
    used_g, used_p, out = set(), set(), []
    for _, g, p in pairs:
        if g not in used_g and p not in used_p:
            used_g.add(g)
            used_p.add(p)
            out.append((g, p))
    return sorted(out)


@pytest.mark.parametrize("seed", range(4))
def test_matched_pairs_and_error_breakdown_agree_with_slow_reference(seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((12, 12, 4)) < 0.4
    pred = np.concatenate([gt[..., :2], gt[..., :1], rng.random((12, 12, 3)) < 0.4], axis=-1)
    ious = iou_loop(gt, pred)
    for t in (0.05, 0.2, 0.5, 0.9):
        gi, pi = matched_pairs(ious, t)
        assert list(zip(gi.tolist(), pi.tolist())) == _pairs_reference(ious, t)
        errors = error_breakdown(ious, t)
        want = _pairs_reference(ious, t)
        assert errors["matched"] == len(want)
        assert errors["missed"] == 4 - len(want) and errors["false_positives"] == 6 - len(want)
        assert errors["matched_ious"] == pytest.approx([ious[g, p] for g, p in want])
        # The counts at t are the competition's: TP / (TP + FP + FN) at that one threshold.
        counts = precision_recall_per_threshold(gt, pred, [t])
        assert (counts["tp"][0], counts["fp"][0], counts["fn"][0]) == (
            errors["matched"], errors["false_positives"], errors["missed"])


def test_touches_border_hand_cases():
    # 10 x 12 image; boxes y2/x2 exclusive: the last row is 9, the last column 11.
    boxes = [[0, 3, 4, 6],      # top row
             [3, 0, 5, 2],      # left column
             [5, 5, 10, 7],     # reaches the last row (y2 == 10)
             [2, 8, 4, 12],     # reaches the last column (x2 == 12)
             [1, 1, 9, 11],     # one pixel inside every edge
             [0, 0, 0, 0]]      # empty (SparseMasks.boxes of an empty mask)
    assert touches_border(boxes, (10, 12)).tolist() == [True, True, True, True, False, False]
    assert touches_border(np.zeros((0, 4), np.int32), (10, 12)).shape == (0,)
    with pytest.raises(ValueError, match=r"boxes must be \[N, \(y1, x1, y2, x2\)\], got shape \(2, 3\)"):
        touches_border(np.zeros((2, 3)), (10, 12))


def test_error_breakdown_counts_missed_objects_at_the_edge():
    # Three gt objects on an 8 x 8 image: a 2 x 2 at the top-left corner (missed), an
    # interior 2 x 2 (missed) and an interior 3 x 3 (found exactly).
    gt = np.concatenate([masks_of((8, 8), np.s_[0:2, 0:2]), masks_of((8, 8), np.s_[3:5, 1:3]),
                         masks_of((8, 8), np.s_[3:6, 4:7])], axis=-1)
    pred = masks_of((8, 8), np.s_[3:6, 4:7])
    edge = np.array([gt[0, :, i].any() or gt[-1, :, i].any() or gt[:, 0, i].any()
                     or gt[:, -1, i].any() for i in range(3)])     # brute force: [T, F, F]
    errors = error_breakdown(iou_matrix(gt, pred), at_edge=edge)
    assert (errors["missed"], errors["missed_at_edge"]) == (2, 1)
    # Found objects never count, at the edge or not.
    assert error_breakdown(iou_matrix(gt, gt), at_edge=np.ones(3, bool))["missed_at_edge"] == 0
    assert "missed_at_edge" not in error_breakdown(iou_matrix(gt, pred))
    with pytest.raises(ValueError, match=r"at_edge must be a bool array of the 3 gt objects"):
        error_breakdown(iou_matrix(gt, pred), at_edge=np.ones(2, bool))
    with pytest.raises(ValueError, match=r"at_edge must be a bool array"):
        error_breakdown(iou_matrix(gt, pred), at_edge=[1, 0, 0])


def test_error_breakdown_hand_case():
    # The 60% pair matches at 0.5 (IoU 0.6); a second gt is missed; a stray prediction is false.
    gt, pred = sixty_percent_pair()
    gt = np.concatenate([gt, masks_of(gt.shape[:2], np.s_[0:2, 0:2])], axis=-1)
    pred = np.concatenate([pred, masks_of(gt.shape[:2], np.s_[-2:, -2:])], axis=-1)
    errors = error_breakdown(iou_matrix(gt, pred))
    assert (errors["n_gt"], errors["n_pred"], errors["matched"]) == (2, 2, 1)
    assert (errors["missed"], errors["false_positives"]) == (1, 1)
    assert errors["matched_ious"] == pytest.approx([0.6])
    assert error_breakdown(iou_matrix(gt, pred), 0.6)["matched"] == 0    # strictly greater
    empty = error_breakdown(np.zeros((0, 3)))
    assert (empty["missed"], empty["false_positives"], empty["matched_ious"].size) == (0, 3, 0)
    with pytest.raises(ValueError, match=r"\[Ngt, Npred\]"):
        error_breakdown(np.zeros(3))


def test_map_iou_duplicate_prediction_counts_once():
    # Two identical predictions of one object: TP=1, FP=1 at every threshold.
    assert map_iou(TWO_GT[..., :1], np.repeat(TWO_GT[..., :1], 2, -1)) == 0.5
    assert map_iou(TWO_GT[..., :1], np.repeat(TWO_GT[..., :1], 2, -1),
                   thresholds=[0.1, 0.3]) == 0.5


def test_mean_map_iou_and_map_iou_dataset():
    gt, pred = sixty_percent_pair()
    pairs = [(TWO_GT, TWO_GT), (TWO_GT, TWO_GT[..., :1]), (gt, pred)]
    want = (1.0 + 0.5 + 0.2) / 3
    assert mean_map_iou(*zip(*pairs)) == pytest.approx(want)
    assert map_iou_dataset(pairs) == pytest.approx(want)
    with pytest.raises(ValueError, match="2 images"):
        mean_map_iou([TWO_GT, TWO_GT], [TWO_GT])
    with pytest.raises(ValueError, match="at least one"):
        mean_map_iou([], [])


def test_map_iou_per_class():
    gt, pred = sixty_percent_pair()
    # Class 1: the 0.6 pair -> 0.2. Class 2: one perfect + one missed -> 0.5.
    # Class 3: prediction only -> 0.0.
    gt_masks = np.concatenate([gt, TWO_GT], axis=-1)
    gt_ids = np.array([1, 2, 2])
    pred_masks = np.concatenate([pred, TWO_GT[..., 1:],
                                 masks_of((20, 20), np.s_[15:20, 0:5])], axis=-1)
    pred_ids = np.array([1, 2, 3])
    got = map_iou_per_class(gt_masks, gt_ids, pred_masks, pred_ids)
    assert got == pytest.approx({1: 0.2, 2: 0.5, 3: 0.0})
    # A perfect prediction of the wrong class scores 0 in both classes.
    swapped = map_iou_per_class(gt_masks, gt_ids, pred_masks, [2, 1, 3])
    assert swapped[1] == 0.0
    names = ["BG", "shsy5y", "astro", "cort"]
    got = map_iou_per_class(gt_masks, gt_ids, pred_masks, pred_ids,
                            class_names=names)
    assert got == pytest.approx({"shsy5y": 0.2, "astro": 0.5, "cort": 0.0})
    with pytest.raises(ValueError, match="pred_class_ids has 2"):
        map_iou_per_class(gt_masks, gt_ids, pred_masks, [1, 2])
    with pytest.raises(ValueError, match="class id 3"):
        map_iou_per_class(gt_masks, gt_ids, pred_masks, pred_ids,
                          class_names=names[:3])


def test_map_iou_per_class_accepts_label_images():
    labels = np.zeros((20, 20), np.int32)
    labels[TWO_GT[..., 0]] = 5
    labels[TWO_GT[..., 1]] = 2
    # Sorted labels: 2 -> class 1 (the big square), 5 -> class 2.
    got = map_iou_per_class(labels, [1, 2], TWO_GT, [2, 1])
    assert got == {1: 1.0, 2: 1.0}


def test_map_iou_from_ious_hand_cases():
    from mrcnn.evaluation import map_iou_from_ious
    # One pair at IoU 0.72 matches at 0.50..0.70 (5 of 10 thresholds); a
    # second gt is missed: score 1/2 at those thresholds, 0 above -> 0.25.
    ious = np.array([[0.72], [0.0]])
    assert map_iou_from_ious(ious) == pytest.approx(0.25)
    assert map_iou_from_ious(np.zeros((0, 0))) == 1.0
    assert map_iou_from_ious(np.zeros((2, 0))) == 0.0
    assert map_iou_from_ious(np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match=r"ious must be a \[Ngt, Npred\] matrix"):
        map_iou_from_ious(np.zeros(3))


def test_map_iou_from_ious_agrees_with_map_iou():
    from mrcnn.evaluation import map_iou_from_ious, map_iou_per_class_from_ious
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:30, :30]
    gt = np.stack([(yy - rng.integers(30)) ** 2 + (xx - rng.integers(30)) ** 2 < 30
                   for _ in range(5)], axis=-1)
    pred = np.roll(gt, 1, axis=1)[..., :4]
    assert map_iou_from_ious(iou_matrix(gt, pred)) == pytest.approx(map_iou(gt, pred))
    gt_ids, pred_ids = [1, 2, 1, 2, 1], [1, 2, 2, 2]
    assert map_iou_per_class_from_ious(iou_matrix(gt, pred), gt_ids, pred_ids) == \
        pytest.approx(map_iou_per_class(gt, gt_ids, pred, pred_ids))
    with pytest.raises(ValueError, match=r"ious has shape \(5, 4\) but there are 5 gt"):
        map_iou_per_class_from_ious(iou_matrix(gt, pred), gt_ids, [1])
