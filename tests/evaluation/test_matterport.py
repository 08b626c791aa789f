"""Tests for mrcnn.evaluation.matterport against hand-worked cases and slow references."""

import numpy as np
import pytest

from mrcnn.evaluation import (
    compute_ap,
    compute_ap_range,
    compute_matches,
    compute_recall,
    trim_zeros,
)
from tests.evaluation.eval_helpers import boxes_of, iou_loop, masks_of

# Backend-independent: Matterport's compute_ap and friends in NumPy; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_trim_zeros():
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5], [0, 0, 0, 0]])
    np.testing.assert_array_equal(trim_zeros(x), [[1, 2, 3, 4], [0, 0, 0, 5]])
    assert trim_zeros(np.zeros((0, 4))).shape == (0, 4)
    with pytest.raises(ValueError, match="2-D"):
        trim_zeros(np.zeros(4))


# ---------------------------------------------------------------------------
# compute_matches / compute_ap / compute_ap_range
# ---------------------------------------------------------------------------

def _ap_case():
    """3 GT, 3 preds on a 30x40 image.

    GT: A rows 0-10 cols 0-10, B rows 0-10 cols 20-30, C rows 20-30 cols 0-10.
    Preds, given in shuffled order:
      input 0 = P3, score 0.7: rows 0-6 of B       -> IoU 60/100 = 0.6 with B
      input 1 = P1, score 0.9: exactly A           -> IoU 1.0 with A
      input 2 = P2, score 0.8: rows 20-30 cols 30-40 (touches nothing) -> FP
    C is never predicted.
    """
    shape = (30, 40)
    gt_masks = masks_of(shape, np.s_[0:10, 0:10], np.s_[0:10, 20:30],
                      np.s_[20:30, 0:10])
    pred_masks = masks_of(shape, np.s_[0:6, 20:30], np.s_[0:10, 0:10],
                        np.s_[20:30, 30:40])
    return (boxes_of(gt_masks), np.array([1, 1, 1]), gt_masks,
            boxes_of(pred_masks), np.array([1, 1, 1]), np.array([0.7, 0.9, 0.8]),
            pred_masks)


def test_compute_matches_hand_case_refers_to_score_sorted_predictions():
    gt_match, pred_match, overlaps = compute_matches(*_ap_case())
    # Sorted order: P1 (input 1), P2 (input 2), P3 (input 0).
    np.testing.assert_array_equal(pred_match, [0, -1, 1])
    np.testing.assert_array_equal(gt_match, [0, 2, -1])
    np.testing.assert_allclose(overlaps, [[1, 0, 0], [0, 0, 0], [0, 0.6, 0]])


def test_compute_ap_hand_case():
    # Sorted: P1 TP, P2 FP, P3 TP (IoU 0.6 >= 0.5).
    # precisions 1, 1/2, 2/3 ; recalls 1/3, 1/3, 2/3
    # padded p = [0, 1, 1/2, 2/3, 0], r = [0, 1/3, 1/3, 2/3, 1]
    # monotone p = [1, 1, 2/3, 2/3, 0]
    # recall steps at indices 1, 3, 4: AP = 1/3*1 + 1/3*2/3 + 1/3*0 = 5/9
    ap, precisions, recalls, overlaps = compute_ap(*_ap_case())
    assert ap == pytest.approx(5 / 9)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert overlaps.shape == (3, 3)
    # At 0.7, P3 becomes an FP: p = [1, 1, 1/2, 1/3, 0] -> AP = 1/3 * 1.
    assert compute_ap(*_ap_case(), iou_threshold=0.7)[0] == pytest.approx(1 / 3)


def test_compute_ap_requires_equal_classes():
    case = list(_ap_case())
    case[4] = np.array([1, 2, 1])  # P1 now predicts class 2: A unmatched.
    # Sorted: P1 FP, P2 FP, P3 TP -> p = [0, 0, 0, 1/3, 0] monotone
    # [1/3, 1/3, 1/3, 1/3, 0]; steps at 3 (0 -> 1/3) and 4: AP = 1/3 * 1/3.
    assert compute_ap(*case)[0] == pytest.approx(1 / 9)


def test_compute_ap_range_hand_case(capsys):
    # P3 (IoU exactly 0.6) matches at 0.50, 0.55, 0.60 -> AP 5/9 there,
    # 1/3 at the 7 other thresholds: mean = (3 * 5/9 + 7/3) / 10 = 0.4.
    assert compute_ap_range(*_ap_case(), verbose=1) == pytest.approx(0.4)
    assert "AP @0.50-0.95" in capsys.readouterr().out
    assert compute_ap_range(*_ap_case(), iou_thresholds=[0.5, 0.7],
                            verbose=0) == pytest.approx((5 / 9 + 1 / 3) / 2)


def test_compute_ap_empty_cases():
    empty_masks = np.zeros((8, 8, 0), bool)
    empty = (np.zeros((0, 4)), np.zeros(0, int), empty_masks)
    one = masks_of((8, 8), np.s_[0:4, 0:4])
    some = (boxes_of(one), np.array([1]), one)
    ap, p, r, _ = compute_ap(*empty, *empty[:2], np.zeros(0), empty_masks)
    assert ap == 1.0 and p.tolist() == [1, 1] and r.tolist() == [0, 1]
    assert compute_ap(*empty, *some[:2], np.array([0.9]), one)[0] == 0.0
    assert compute_ap(*some, *empty[:2], np.zeros(0), empty_masks)[0] == 0.0


def test_compute_matches_drops_zero_padding_rows():
    gt_boxes, gt_ids, gt_masks, pred_boxes, pred_ids, scores, pred_masks = _ap_case()
    pad = np.zeros((30, 40, 2), bool)
    padded = (np.vstack([gt_boxes, np.zeros((2, 4))]), np.r_[gt_ids, 0, 0],
              np.concatenate([gt_masks, pad], axis=-1),
              np.vstack([pred_boxes, np.zeros((2, 4))]), np.r_[pred_ids, 0, 0],
              np.r_[scores, 0.95, 0.99], np.concatenate([pred_masks, pad], -1))
    gt_match, pred_match, overlaps = compute_matches(*padded)
    np.testing.assert_array_equal(pred_match, [0, -1, 1])
    np.testing.assert_array_equal(gt_match, [0, 2, -1])


def _matches_reference(gt_ids, gt_masks, pred_ids, scores, pred_masks,
                       iou_threshold, score_threshold):
    """Matterport's greedy matching, written as plain nested loops."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    overlaps = iou_loop(pred_masks[..., order], gt_masks)
    gt_match = [-1] * gt_masks.shape[-1]
    pred_match = [-1] * len(order)
    for i, src in enumerate(order):
        ranked = sorted(range(len(gt_match)), key=lambda j: (-overlaps[i, j], j))
        for j in ranked:
            if overlaps[i, j] < score_threshold or overlaps[i, j] < iou_threshold:
                break
            if gt_match[j] > -1:
                continue
            if pred_ids[src] == gt_ids[j]:
                gt_match[j], pred_match[i] = i, j
                break
    return np.array(gt_match), np.array(pred_match), overlaps


@pytest.mark.parametrize("seed", range(6))
def test_compute_matches_agrees_with_slow_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (24, 24)

    def random_rects(n):
        regions = []
        for _ in range(n):
            y, x = rng.integers(0, 18, size=2)
            h, w = rng.integers(3, 7, size=2)
            regions.append(np.s_[y:y + h, x:x + w])
        return masks_of(shape, *regions)

    gt_masks = random_rects(6)
    # Predictions: jittered copies of the gt plus random extras, so that many
    # pairs overlap and several predictions compete for one gt.
    pred_masks = np.concatenate(
        [np.roll(gt_masks, rng.integers(-2, 3, size=2), axis=(0, 1)),
         np.roll(gt_masks, rng.integers(-2, 3, size=2), axis=(0, 1)),
         random_rects(4)], axis=-1)
    gt_ids = rng.integers(1, 3, size=6)
    pred_ids = rng.integers(1, 3, size=pred_masks.shape[-1])
    scores = rng.random(pred_masks.shape[-1])
    for iou_t, score_t in [(0.5, 0.0), (0.3, 0.0), (0.1, 0.4)]:
        got = compute_matches(boxes_of(gt_masks), gt_ids, gt_masks,
                              boxes_of(pred_masks), pred_ids, scores, pred_masks,
                              iou_threshold=iou_t, score_threshold=score_t)
        want = _matches_reference(gt_ids, gt_masks, pred_ids, scores,
                                  pred_masks, iou_t, score_t)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[2], want[2], rtol=0, atol=1e-12)


def test_compute_matches_rejects_inconsistent_counts():
    case = list(_ap_case())
    case[5] = np.array([0.7, 0.9])
    with pytest.raises(ValueError, match="pred_scores holds 2"):
        compute_matches(*case)
    case = list(_ap_case())
    case[0] = np.zeros((3, 5))
    with pytest.raises(ValueError, match="gt_boxes"):
        compute_matches(*case)


# ---------------------------------------------------------------------------
# compute_recall
# ---------------------------------------------------------------------------

def test_compute_recall_hand_case():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 60]])
    pred = np.array([
        [0, 0, 10, 10],    # IoU 1 with gt 0
        [0, 0, 10, 5],     # IoU 50/100 = 0.5 with gt 0 (same gt again)
        [20, 20, 30, 26],  # IoU 60/100 = 0.6 with gt 1
        [70, 70, 80, 80],  # nothing
    ])
    recall, positive_ids = compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(2 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1, 2])
    recall, positive_ids = compute_recall(pred, gt, 0.55)
    assert recall == pytest.approx(2 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 2])
    recall, positive_ids = compute_recall(pred, gt, 0.7)
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0])
    assert compute_recall(np.zeros((0, 4)), gt, 0.5)[0] == 0.0
    assert compute_recall(pred, np.zeros((0, 4)), 0.5)[0] == 1.0
