"""Tests for mrcnn.data.boxes against brute-force loops and hand-worked cases."""

import numpy as np
import pytest

from mrcnn.data.boxes import (
    apply_box_deltas,
    box_refinement,
    compute_iou,
    compute_overlaps,
    compute_overlaps_masks,
    denorm_boxes,
    extract_bboxes,
    non_max_suppression,
    norm_boxes,
)

# Backend-independent: NumPy box math against loops; no Keras op.
pytestmark = pytest.mark.backend_independent


def _iou_loop(a, b):
    """IoU of two boxes, plain Python floats."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _random_boxes(rng, n, size=100.0, zero_area_every=0):
    y1x1 = rng.uniform(0, size, (n, 2))
    hw = rng.uniform(1, size / 2, (n, 2))
    boxes = np.concatenate([y1x1, y1x1 + hw], axis=1)
    if zero_area_every:
        boxes[::zero_area_every, 2] = boxes[::zero_area_every, 0]  # zero height
    return boxes.astype(np.float32)


# --- extract_bboxes -----------------------------------------------------------

def test_extract_bboxes_hand_made():
    mask = np.zeros((8, 10, 3), dtype=bool)
    mask[2:5, 3:7, 0] = True          # rows 2..4, cols 3..6
    mask[0, 9, 1] = True              # a single pixel in the corner
    mask[7, 0, 1] = True
    # instance 2 empty
    boxes = extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 7], [0, 0, 8, 10], [0, 0, 0, 0]])


def test_extract_bboxes_matches_loop():
    rng = np.random.default_rng(0)
    mask = rng.random((20, 30, 6)) > 0.97
    mask[..., 5] = False
    expected = []
    for i in range(mask.shape[-1]):
        ys, xs = np.where(mask[..., i])
        expected.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1] if ys.size else [0] * 4)
    np.testing.assert_array_equal(extract_bboxes(mask), expected)


def test_extract_bboxes_no_instances_and_bad_shape():
    assert extract_bboxes(np.zeros((5, 5, 0), bool)).shape == (0, 4)
    with pytest.raises(ValueError, match="mask must have shape"):
        extract_bboxes(np.zeros((5, 5), bool))


# --- IoU ----------------------------------------------------------------------

def test_compute_overlaps_matches_loop_with_zero_area_boxes():
    rng = np.random.default_rng(1)
    boxes1 = _random_boxes(rng, 17, zero_area_every=5)
    boxes2 = _random_boxes(rng, 11, zero_area_every=4)
    boxes2[3] = boxes1[2]  # identical pair
    overlaps = compute_overlaps(boxes1, boxes2)
    assert overlaps.dtype == np.float32 and overlaps.shape == (17, 11)
    expected = np.array([[_iou_loop(a, b) for b in boxes2.astype(float)]
                         for a in boxes1.astype(float)])
    np.testing.assert_allclose(overlaps, expected, rtol=1e-5, atol=1e-6)
    assert not np.isnan(overlaps).any()
    assert overlaps[2, 3] == pytest.approx(1.0)
    assert np.all(overlaps[::5] == 0)  # zero-area rows


def test_compute_overlaps_two_zero_area_boxes_and_empty():
    point = np.array([[5, 5, 5, 5]], np.float32)
    np.testing.assert_array_equal(compute_overlaps(point, point), [[0.0]])
    assert compute_overlaps(np.zeros((0, 4)), point).shape == (0, 1)
    with pytest.raises(ValueError, match=r"boxes2 must have shape \[N, 4\]"):
        compute_overlaps(point, np.zeros((3, 5)))


def test_compute_iou_hand_case_and_loop():
    box = np.array([0, 0, 10, 10])
    boxes = np.array([[0, 5, 10, 20], [20, 20, 30, 30], [0, 0, 10, 10]])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    np.testing.assert_allclose(compute_iou(box, boxes, 100, areas), [50 / 200, 0.0, 1.0])
    rng = np.random.default_rng(2)
    b = _random_boxes(rng, 9)
    a = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    np.testing.assert_allclose(compute_iou(b[0], b, a[0], a),
                               [_iou_loop(b[0].astype(float), x.astype(float)) for x in b],
                               rtol=1e-5)


def test_compute_overlaps_masks_matches_loop():
    rng = np.random.default_rng(3)
    masks1 = rng.random((16, 12, 5)) > 0.6
    masks2 = rng.random((16, 12, 4)) > 0.5
    masks1[..., 4] = False
    masks2[..., 3] = False  # empty vs empty -> 0
    masks2[..., 0] = masks1[..., 1]
    expected = np.zeros((5, 4))
    for i in range(5):
        for j in range(4):
            inter = np.logical_and(masks1[..., i], masks2[..., j]).sum()
            union = np.logical_or(masks1[..., i], masks2[..., j]).sum()
            expected[i, j] = inter / union if union else 0.0
    got = compute_overlaps_masks(masks1, masks2)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[1, 0] == 1.0


def test_compute_overlaps_masks_empty_and_errors():
    assert compute_overlaps_masks(np.zeros((4, 4, 0), bool),
                                  np.zeros((4, 4, 3), bool)).shape == (0, 3)
    assert compute_overlaps_masks(np.zeros((4, 4, 2), bool),
                                  np.zeros((4, 4, 0), bool)).shape == (2, 0)
    with pytest.raises(ValueError, match="same height and width"):
        compute_overlaps_masks(np.zeros((4, 4, 1), bool), np.zeros((4, 5, 1), bool))
    with pytest.raises(ValueError, match=r"masks must have shape \[height, width, N\]"):
        compute_overlaps_masks(np.zeros((4, 4), np.int32), np.zeros((4, 4, 1), bool))


# --- box deltas ---------------------------------------------------------------

def test_box_refinement_hand_case():
    box = np.array([[0, 0, 10, 20]])        # h=10, w=20, centre (5, 10)
    gt = np.array([[2, 4, 22, 14]])         # h=20, w=10, centre (12, 9)
    np.testing.assert_allclose(box_refinement(box, gt),
                               [[7 / 10, -1 / 20, np.log(2.0), np.log(0.5)]], rtol=1e-6)


def test_box_refinement_apply_round_trip():
    rng = np.random.default_rng(4)
    boxes = _random_boxes(rng, 50)
    targets = _random_boxes(rng, 50)
    deltas = box_refinement(boxes, targets)
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas), targets, rtol=1e-5, atol=1e-3)


def test_box_refinement_rejects_zero_size():
    with pytest.raises(ValueError, match="box row 1"):
        box_refinement([[0, 0, 5, 5], [3, 3, 3, 8]], [[0, 0, 5, 5], [0, 0, 5, 5]])
    with pytest.raises(ValueError, match="same shape"):
        box_refinement(np.ones((2, 4)), np.ones((3, 4)))


def test_apply_box_deltas_hand_case():
    boxes = np.array([[0, 0, 10, 20]])
    # Centre y 5 -> 5 + 0.5 * 10 = 10, height 10 -> 20: rows 0..20.
    deltas = np.array([[0.5, 0.0, np.log(2.0), 0.0]])
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas), [[0, 0, 20, 20]], atol=1e-5)


# --- normalization ------------------------------------------------------------

def test_norm_denorm_hand_case_and_round_trip():
    shape = (101, 201, 3)
    boxes = np.array([[0, 0, 101, 201], [10, 20, 51, 101]], np.int32)
    norm = norm_boxes(boxes, shape)
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm, [[0, 0, 1, 1], [0.1, 0.1, 0.5, 0.5]], atol=1e-7)
    back = denorm_boxes(norm, shape)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, boxes)
    rng = np.random.default_rng(5)
    pix = rng.integers(0, 500, (100, 4)).astype(np.int32)
    np.testing.assert_array_equal(denorm_boxes(norm_boxes(pix, (1024, 768)), (1024, 768)), pix)
    with pytest.raises(ValueError, match="height and width >= 2"):
        norm_boxes(boxes, (1, 5))


# --- NMS ----------------------------------------------------------------------

def test_nms_hand_case():
    boxes = np.array([[0, 0, 10, 10],    # score .9, kept
                      [0, 1, 10, 11],    # IoU with 0 = 90/110 = .82 -> suppressed
                      [0, 20, 10, 30]])  # disjoint -> kept
    keep = non_max_suppression(boxes, np.array([0.9, 0.8, 0.7]), 0.5)
    assert keep.dtype == np.int32
    np.testing.assert_array_equal(keep, [0, 2])
    # Reordered scores: the middle box wins and suppresses box 0.
    np.testing.assert_array_equal(
        non_max_suppression(boxes, np.array([0.8, 0.9, 0.7]), 0.5), [1, 2])
    # Threshold above the overlap keeps all, in score order.
    np.testing.assert_array_equal(
        non_max_suppression(boxes, np.array([0.1, 0.9, 0.7]), 0.9), [1, 2, 0])
    np.testing.assert_array_equal(
        non_max_suppression(boxes, np.array([0.9, 0.8, 0.7]), 0.5, max_output=1), [0])


def test_nms_ties_lower_index_first_and_strict_threshold():
    same = np.array([[0, 0, 10, 10]] * 3)
    np.testing.assert_array_equal(non_max_suppression(same, np.ones(3), 0.5), [0])
    disjoint = np.array([[0, 0, 1, 1], [0, 5, 1, 6], [0, 9, 1, 10]])
    np.testing.assert_array_equal(
        non_max_suppression(disjoint, np.array([0.5, 1.0, 1.0]), 0.5), [1, 2, 0])
    # IoU exactly 0.25 (50 / 200): suppressed only if IoU > threshold.
    pair = np.array([[0, 0, 10, 10], [0, 5, 10, 20]])
    np.testing.assert_array_equal(non_max_suppression(pair, [1.0, 0.5], 0.25), [0, 1])
    np.testing.assert_array_equal(non_max_suppression(pair, [1.0, 0.5], 0.24), [0])


def test_nms_matches_bruteforce_greedy():
    rng = np.random.default_rng(6)
    boxes = _random_boxes(rng, 60)
    scores = rng.random(60)
    # Independent formulation: visit in score order, keep if no kept box overlaps.
    kept = []
    for i in sorted(range(60), key=lambda k: (-scores[k], k)):
        if all(_iou_loop(boxes[i].astype(float), boxes[j].astype(float)) <= 0.3 for j in kept):
            kept.append(i)
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.3), kept)


def test_nms_empty_and_errors():
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    with pytest.raises(ValueError, match="scores has 2 values"):
        non_max_suppression(np.zeros((3, 4)), np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="finite"):
        non_max_suppression(np.zeros((1, 4)), [np.nan], 0.5)
