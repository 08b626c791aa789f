"""Tests for mrcnn.data.iou against brute-force NumPy loops."""

import numpy as np
import pytest

from mrcnn.data.iou import (
    box_intersection,
    box_iou,
    instance_matrix,
    iou_from_intersection,
    iou_from_matrices,
    mask_iou,
    pairwise_iou_from_matrix,
    pixel_matrix,
)

# Backend-independent: NumPy box and mask IoU against loops; no Keras op.
pytestmark = pytest.mark.backend_independent


def _box_iou_loop(boxes1, boxes2):
    """IoU of every pair by counting the pixels of integer boxes (y2/x2 exclusive)."""
    def pixels(box):
        y1, x1, y2, x2 = (int(v) for v in box)
        return {(y, x) for y in range(y1, y2) for x in range(x1, x2)}

    out = np.zeros((len(boxes1), len(boxes2)))
    for i, a in enumerate(boxes1):
        for j, b in enumerate(boxes2):
            pa, pb = pixels(a), pixels(b)
            union = len(pa | pb)
            out[i, j] = len(pa & pb) / union if union else 0.0
    return out


def _mask_iou_loop(masks1, masks2):
    """IoU of every pair of [H, W, N] masks, pixel by pixel."""
    h, w = masks1.shape[:2]
    out = np.zeros((masks1.shape[-1], masks2.shape[-1]))
    for i in range(masks1.shape[-1]):
        for j in range(masks2.shape[-1]):
            inter = union = 0
            for y in range(h):
                for x in range(w):
                    a, b = bool(masks1[y, x, i]), bool(masks2[y, x, j])
                    inter += a and b
                    union += a or b
            out[i, j] = inter / union if union else 0.0
    return out


def _labels_to_masks(labels):
    """bool [H, W, N] of a label image, instances in increasing label order."""
    values = np.unique(labels[labels > 0])
    return np.stack([labels == v for v in values], axis=-1) if values.size \
        else np.zeros(labels.shape + (0,), bool)


def _random_int_boxes(rng, n, size=12):
    y1x1 = rng.integers(0, size, (n, 2))
    hw = rng.integers(0, 6, (n, 2))               # some zero-area boxes
    return np.concatenate([y1x1, y1x1 + hw], axis=1)


# --- boxes ----------------------------------------------------------------------

def test_box_iou_matches_pixel_counting():
    rng = np.random.default_rng(0)
    boxes1, boxes2 = _random_int_boxes(rng, 9), _random_int_boxes(rng, 7)
    boxes1[4] = boxes2[2] = [1, 2, 5, 7]           # an identical pair
    got = box_iou(boxes1, boxes2)
    assert got.dtype == np.float64 and got.shape == (9, 7)
    np.testing.assert_allclose(got, _box_iou_loop(boxes1, boxes2), rtol=0, atol=1e-12)
    assert got[4, 2] == 1.0
    assert box_iou(boxes1, boxes2, dtype=np.float32).dtype == np.float32


def test_box_iou_hand_case_empty_union_and_inverted_boxes():
    # Half overlap: 50 / (100 + 100 - 50).
    np.testing.assert_allclose(box_iou([[0, 0, 10, 10]], [[0, 5, 10, 15]]), [[50 / 150]])
    point = np.array([[5, 5, 5, 5]])
    assert box_iou(point, point).tolist() == [[0.0]]           # empty union: 0, not NaN
    inverted = np.array([[10, 10, 0, 0]])                      # y2 < y1: an empty box
    assert box_iou(inverted, [[0, 0, 10, 10]]).tolist() == [[0.0]]
    assert box_iou(inverted, inverted).tolist() == [[0.0]]


def test_box_iou_empty_sets_and_errors():
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert box_iou([[0, 0, 1, 1]], []).shape == (1, 0)
    with pytest.raises(ValueError, match=r"boxes2 must have shape \[N, 4\].*\(3, 5\)"):
        box_iou([[0, 0, 1, 1]], np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"boxes1 must have shape \[N, 4\]"):
        box_intersection(np.zeros(4), [[0, 0, 1, 1]])


def test_box_intersection_and_iou_from_intersection():
    inter = box_intersection([[0, 0, 4, 4], [10, 10, 12, 12]], [[2, 2, 6, 6]])
    np.testing.assert_array_equal(inter, [[4.0], [0.0]])
    iou = iou_from_intersection(np.array([[4.0, 0.0]]), np.array([16.0]),
                                np.array([16.0, 0.0]))
    np.testing.assert_allclose(iou, [[4 / 28, 0.0]])
    # Union 0 (two empty sets) gives 0.
    assert iou_from_intersection(np.zeros((1, 1)), np.zeros(1), np.zeros(1)).tolist() == [[0.0]]


# --- masks ----------------------------------------------------------------------

def test_mask_iou_matches_brute_force_on_random_masks():
    rng = np.random.default_rng(1)
    masks1 = rng.random((9, 11, 5)) < 0.35
    masks2 = rng.random((9, 11, 4)) < 0.5
    masks1[..., 4] = False
    masks2[..., 3] = False                                     # empty vs empty -> 0
    masks2[..., 0] = masks1[..., 1]
    got = mask_iou(masks1, masks2)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _mask_iou_loop(masks1, masks2), rtol=0, atol=1e-12)
    assert got[1, 0] == 1.0 and got[4, 3] == 0.0


def test_mask_iou_of_label_images_equals_their_mask_stacks():
    rng = np.random.default_rng(2)
    labels1 = rng.choice([0, 0, 3, 7, 9], size=(10, 12)).astype(np.uint16)
    labels2 = rng.choice([0, 1, 2], size=(10, 12)).astype(np.int32)
    stack1, stack2 = _labels_to_masks(labels1), _labels_to_masks(labels2)
    want = _mask_iou_loop(stack1, stack2)
    np.testing.assert_allclose(mask_iou(labels1, labels2), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mask_iou(labels1, stack2), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mask_iou(stack1, labels2), want, rtol=0, atol=1e-12)
    # A bool 2-D image is one instance; 0/1 numeric masks count as bool.
    np.testing.assert_allclose(mask_iou(labels1 > 0, stack2.astype(np.uint8)),
                               _mask_iou_loop((labels1 > 0)[..., None], stack2))


def test_mask_iou_empty_sets():
    some = np.zeros((4, 4, 2), bool)
    some[0, 0, 0] = True
    assert mask_iou(np.zeros((4, 4, 0), bool), some).shape == (0, 2)
    assert mask_iou(some, np.zeros((4, 4), np.int32)).shape == (2, 0)
    assert mask_iou(some, some).tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_mask_iou_errors():
    with pytest.raises(ValueError, match=r"masks1 is \(4, 4\) pixels but masks2 is \(4, 5\)"):
        mask_iou(np.zeros((4, 4, 1), bool), np.zeros((4, 5, 1), bool))
    with pytest.raises(ValueError, match=r"gt must be bool masks \[H, W, N\] or a label image"):
        mask_iou(np.zeros(4, bool), np.zeros((4, 4, 1), bool), names=("gt", "pred"))
    with pytest.raises(TypeError, match="pred: a 2-D label image must have an integer dtype"):
        mask_iou(np.zeros((4, 4, 1), bool), np.zeros((4, 4), np.float32), names=("gt", "pred"))
    with pytest.raises(ValueError, match=r"must be >= 0 .* got minimum -1"):
        instance_matrix(np.full((4, 4), -1))


def test_instance_matrix_rows_are_row_major_pixels():
    masks = np.zeros((3, 4, 2), bool)
    masks[1, 2, 0] = masks[2, 3, 0] = True
    masks[0, 0, 1] = True
    matrix = instance_matrix(masks)
    assert matrix.shape == (2, 12)
    assert matrix[0].indices.tolist() == [6, 11] and matrix[1].indices.tolist() == [0]
    np.testing.assert_array_equal(matrix.toarray(),
                                  masks.reshape(12, 2).T.astype(np.float64))


def test_pixel_matrix_accepts_any_order_and_iou_from_matrices():
    # Instances given out of order; empty instance 1.
    matrix = pixel_matrix([2, 0, 2, 0], [5, 1, 3, 2], count=3, num_pixels=6)
    assert matrix.toarray().tolist() == [[0, 1, 1, 0, 0, 0], [0] * 6, [0, 0, 0, 1, 0, 1]]
    other = pixel_matrix([0, 0, 0], [1, 2, 3], count=1, num_pixels=6)
    np.testing.assert_allclose(iou_from_matrices(matrix, other), [[2 / 3], [0.0], [1 / 4]])
    assert iou_from_matrices(matrix, pixel_matrix([], [], 0, 6)).shape == (3, 0)


def test_pairwise_iou_from_matrix_matches_brute_force():
    rng = np.random.default_rng(3)
    masks = rng.random((8, 9, 6)) < 0.2
    masks[..., 5] = False
    i, j, v = pairwise_iou_from_matrix(instance_matrix(masks))
    full = _mask_iou_loop(masks, masks)
    assert np.all(i != j)
    np.testing.assert_allclose(v, full[i, j], rtol=0, atol=1e-12)
    # Every intersecting pair of distinct instances, in both orders.
    want = {(a, b) for a in range(6) for b in range(6) if a != b and full[a, b] > 0}
    assert set(zip(i.tolist(), j.tolist())) == want and len(want) == i.size
    empty = pairwise_iou_from_matrix(instance_matrix(np.zeros((3, 3, 0), bool)))
    assert [a.shape for a in empty] == [(0,), (0,), (0,)]
