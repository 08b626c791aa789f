"""Tests for mrcnn/metrics.py against hand-worked cases and slow references."""

import numpy as np
import pytest

from mrcnn.evaluation import (
    DEFAULT_IOU_THRESHOLDS,
    compute_ap,
    compute_ap_range,
    compute_matches,
    compute_recall,
    iou_matrix,
    map_iou,
    map_iou_dataset,
    map_iou_per_class,
    mean_map_iou,
    precision_recall_per_threshold,
    trim_zeros,
)


def _masks(shape, *regions):
    """bool [H, W, N] masks; each region is a tuple of slices or a bool [H, W]."""
    out = np.zeros(shape + (len(regions),), dtype=bool)
    for k, region in enumerate(regions):
        if isinstance(region, np.ndarray):
            out[..., k] = region
        else:
            out[region + (k,)] = True
    return out


def _boxes(masks):
    """Pixel boxes (y2, x2 exclusive) of bool [H, W, N] masks, via loops."""
    boxes = np.zeros((masks.shape[-1], 4), dtype=np.int32)
    for k in range(masks.shape[-1]):
        ys, xs = np.nonzero(masks[..., k])
        if ys.size:
            boxes[k] = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
    return boxes


def _iou_loop(m1, m2):
    """Brute-force [N1, N2] IoU, one pair at a time."""
    out = np.zeros((m1.shape[-1], m2.shape[-1]))
    for i in range(m1.shape[-1]):
        for j in range(m2.shape[-1]):
            inter = np.logical_and(m1[..., i], m2[..., j]).sum()
            union = np.logical_or(m1[..., i], m2[..., j]).sum()
            out[i, j] = inter / union if union else 0.0
    return out


def _sixty_percent_pair():
    """GT 10x10 (100 px); pred = 75 px of it + 25 px outside -> IoU 75/125 = 0.6."""
    gt = np.zeros((20, 20), dtype=bool)
    gt[0:10, 0:10] = True
    pred = gt.copy()
    pred[0:5, 0:5] = False        # 25 px of the GT removed
    pred[0:5, 10:15] = True       # 25 px outside added
    return gt[..., None], pred[..., None]


# ---------------------------------------------------------------------------
# iou_matrix / trim_zeros
# ---------------------------------------------------------------------------

def test_iou_matrix_matches_brute_force_on_random_overlapping_masks():
    rng = np.random.default_rng(0)
    gt = rng.random((16, 20, 5)) < 0.3
    pred = rng.random((16, 20, 7)) < 0.3
    pred[..., 6] = False  # an empty mask has IoU 0 with everything
    np.testing.assert_allclose(iou_matrix(gt, pred), _iou_loop(gt, pred),
                               rtol=0, atol=1e-12)


def test_iou_matrix_hand_case_and_empty_sets():
    gt, pred = _sixty_percent_pair()
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
    gt_masks = _masks(shape, np.s_[0:10, 0:10], np.s_[0:10, 20:30],
                      np.s_[20:30, 0:10])
    pred_masks = _masks(shape, np.s_[0:6, 20:30], np.s_[0:10, 0:10],
                        np.s_[20:30, 30:40])
    return (_boxes(gt_masks), np.array([1, 1, 1]), gt_masks,
            _boxes(pred_masks), np.array([1, 1, 1]), np.array([0.7, 0.9, 0.8]),
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
    one = _masks((8, 8), np.s_[0:4, 0:4])
    some = (_boxes(one), np.array([1]), one)
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
    overlaps = _iou_loop(pred_masks[..., order], gt_masks)
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
        return _masks(shape, *regions)

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
        got = compute_matches(_boxes(gt_masks), gt_ids, gt_masks,
                              _boxes(pred_masks), pred_ids, scores, pred_masks,
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


# ---------------------------------------------------------------------------
# Competition score
# ---------------------------------------------------------------------------

TWO_GT = _masks((20, 20), np.s_[0:5, 0:5], np.s_[10:20, 10:20])


def test_map_iou_perfect_match():
    assert map_iou(TWO_GT, TWO_GT.copy()) == 1.0


def test_map_iou_one_missed_of_two():
    # Each threshold: TP=1, FN=1 -> 1/2.
    assert map_iou(TWO_GT, TWO_GT[..., :1]) == pytest.approx(0.5)


def test_map_iou_one_false_positive():
    pred = np.concatenate([TWO_GT[..., :1], _masks((20, 20), np.s_[0:3, 15:20])],
                          axis=-1)
    # Each threshold: TP=1, FP=1 -> 1/2.
    assert map_iou(TWO_GT[..., :1], pred) == pytest.approx(0.5)


def test_map_iou_exact_sixty_percent_is_strictly_compared():
    gt, pred = _sixty_percent_pair()
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
    gt, pred = _sixty_percent_pair()
    gt_masks = np.concatenate([TWO_GT[..., 1:], gt], axis=-1)
    pred_masks = np.concatenate([pred, TWO_GT[..., 1:],
                                 _masks((20, 20), np.s_[15:20, 0:5])], axis=-1)
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
    ious = _iou_loop(gt, pred)
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


def test_map_iou_duplicate_prediction_counts_once():
    # Two identical predictions of one object: TP=1, FP=1 at every threshold.
    assert map_iou(TWO_GT[..., :1], np.repeat(TWO_GT[..., :1], 2, -1)) == 0.5
    assert map_iou(TWO_GT[..., :1], np.repeat(TWO_GT[..., :1], 2, -1),
                   thresholds=[0.1, 0.3]) == 0.5


def test_mean_map_iou_and_map_iou_dataset():
    gt, pred = _sixty_percent_pair()
    pairs = [(TWO_GT, TWO_GT), (TWO_GT, TWO_GT[..., :1]), (gt, pred)]
    want = (1.0 + 0.5 + 0.2) / 3
    assert mean_map_iou(*zip(*pairs)) == pytest.approx(want)
    assert map_iou_dataset(pairs) == pytest.approx(want)
    with pytest.raises(ValueError, match="2 images"):
        mean_map_iou([TWO_GT, TWO_GT], [TWO_GT])
    with pytest.raises(ValueError, match="at least one"):
        mean_map_iou([], [])


def test_map_iou_per_class():
    gt, pred = _sixty_percent_pair()
    # Class 1: the 0.6 pair -> 0.2. Class 2: one perfect + one missed -> 0.5.
    # Class 3: prediction only -> 0.0.
    gt_masks = np.concatenate([gt, TWO_GT], axis=-1)
    gt_ids = np.array([1, 2, 2])
    pred_masks = np.concatenate([pred, TWO_GT[..., 1:],
                                 _masks((20, 20), np.s_[15:20, 0:5])], axis=-1)
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


def test_coco_ap_and_evaluate_are_exported_by_the_evaluation_package():
    import mrcnn.evaluation
    import mrcnn.evaluation.report
    assert mrcnn.evaluation.coco_ap is mrcnn.evaluation.report.coco_ap
    assert mrcnn.evaluation.evaluate is mrcnn.evaluation.report.evaluate
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mrcnn.evaluation.nope
