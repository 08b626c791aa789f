"""Tests for mrcnn.data.masks.sparse against dense NumPy loops and mrcnn.data.iou."""

import numpy as np
import pytest
from result_helpers import loop_boxes, random_discs

from mrcnn.data.iou import mask_iou
from mrcnn.data.masks.sparse import FLIPS, SparseMasks, check_flip, run_starts

# Backend-independent: SparseMasks against dense NumPy loops; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_sparse_masks_round_trip_areas_and_boxes_match_loops():
    rng = np.random.default_rng(0)
    masks = random_discs(rng)
    masks[..., 3] = False                                  # an empty instance
    sparse = SparseMasks.from_dense(masks)
    np.testing.assert_array_equal(sparse.to_dense(), masks)
    np.testing.assert_array_equal(sparse.areas(), masks.sum(axis=(0, 1)))
    np.testing.assert_array_equal(sparse.boxes(), loop_boxes(masks))
    assert sparse.boxes()[3].tolist() == [0, 0, 0, 0]
    # Pixel indices are row-major y * W + x.
    ys, xs = np.nonzero(masks[..., 0])
    np.testing.assert_array_equal(np.sort(sparse.pixel[sparse.instance == 0]),
                                  np.sort(ys * 50 + xs))


def test_sparse_masks_from_labels_and_select_and_flip():
    labels = np.zeros((4, 5), np.int32)
    labels[0, 0:2] = 7
    labels[2:4, 3] = 2
    sparse = SparseMasks.from_labels(labels)
    # Instances in increasing label order: 2 then 7.
    assert sparse.count == 2
    assert sparse.areas().tolist() == [2, 2]
    assert sparse.pixel[sparse.instance == 0].tolist() == [13, 18]
    assert sparse.pixel[sparse.instance == 1].tolist() == [0, 1]
    swapped = sparse.select([1, 0])
    np.testing.assert_array_equal(swapped.to_dense(), sparse.to_dense()[..., ::-1])
    only = sparse.select(np.array([False, True]))
    np.testing.assert_array_equal(only.to_dense()[..., 0], labels == 7)
    dense = sparse.to_dense()
    np.testing.assert_array_equal(sparse.flip("lr").to_dense(), dense[:, ::-1])
    np.testing.assert_array_equal(sparse.flip("ud").to_dense(), dense[::-1])
    np.testing.assert_array_equal(sparse.flip("lrud").to_dense(), dense[::-1, ::-1])


def test_sparse_masks_soft_values_and_binary_threshold():
    soft = np.zeros((3, 3, 1), np.float32)
    soft[0, 0, 0], soft[1, 1, 0], soft[2, 2, 0] = 0.2, 0.5, 0.9
    sparse = SparseMasks.from_dense(soft, soft=True)
    np.testing.assert_allclose(sparse.to_soft(), soft)
    assert sparse.binary(0.5).pixel.tolist() == [4, 8]     # >= 0.5
    assert sparse.binary().pixel.tolist() == [0, 4, 8]


def _iou_loop(m1, m2):
    """Brute-force [N1, N2] IoU of dense masks, one pair at a time."""
    out = np.zeros((m1.shape[-1], m2.shape[-1]))
    for i in range(m1.shape[-1]):
        for j in range(m2.shape[-1]):
            union = np.logical_or(m1[..., i], m2[..., j]).sum()
            out[i, j] = np.logical_and(m1[..., i], m2[..., j]).sum() / union if union else 0
    return out


def test_sparse_iou_matches_dense_mask_iou_and_loops():
    rng = np.random.default_rng(1)
    a, b = random_discs(rng, n=7), random_discs(rng, n=5)
    b[..., 4] = False                                      # an empty instance
    ours = SparseMasks.from_dense(a).iou(SparseMasks.from_dense(b))
    np.testing.assert_allclose(ours, mask_iou(a, b))
    np.testing.assert_allclose(ours, _iou_loop(a, b), rtol=0, atol=1e-12)
    assert SparseMasks.from_dense(a[..., :0]).iou(SparseMasks.from_dense(b)).shape == (0, 5)
    with pytest.raises(ValueError, match="image shapes differ"):
        SparseMasks.from_dense(a).iou(SparseMasks.from_dense(b[:-1]))
    with pytest.raises(TypeError, match="other must be SparseMasks, got ndarray"):
        SparseMasks.from_dense(a).iou(b)
    i, j, v = SparseMasks.from_dense(a).pairwise_iou()
    full = mask_iou(a, a)
    np.testing.assert_allclose(full, _iou_loop(a, a), rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, full[i, j])
    assert np.all(i != j)
    assert int(((full > 0) & ~np.eye(7, dtype=bool)).sum()) == i.size


def test_sparse_masks_rejects_bad_input():
    with pytest.raises(ValueError, match=r"instance indices must lie in \[0, 2\)"):
        SparseMasks((3, 3), 2, [0, 2], [0, 1])
    with pytest.raises(ValueError, match="pixel indices must lie in"):
        SparseMasks((3, 3), 1, [0], [9])
    with pytest.raises(ValueError, match=r"masks must be \[H, W, N\]"):
        SparseMasks.from_dense(np.zeros((3, 3)))



def test_constructor_sorts_and_drops_duplicates_like_from_sorted():
    # Unsorted input with a duplicated (instance, pixel) pair: the first value wins.
    masks = SparseMasks((2, 3), 2, [1, 0, 1, 0], [4, 2, 4, 0], [0.5, 0.25, 0.75, 1.0])
    assert masks.instance.tolist() == [0, 0, 1]
    assert masks.pixel.tolist() == [0, 2, 4]
    assert masks.value.tolist() == [1.0, 0.25, 0.5]
    raw = SparseMasks.from_sorted((2, 3), 2, masks.instance, masks.pixel, masks.value)
    np.testing.assert_array_equal(raw.to_soft(), masks.to_soft())


def test_run_starts_and_check_flip():
    keys = np.array([1, 1, 2, 5, 5, 5, 7])
    expected = [k == 0 or keys[k] != keys[k - 1] for k in range(keys.size)]
    np.testing.assert_array_equal(run_starts(keys), expected)
    assert run_starts(np.zeros(0, np.int64)).shape == (0,)
    for flip in FLIPS:
        check_flip(flip)
    with pytest.raises(ValueError, match=r"flip must be one of .*'rot90'"):
        check_flip("rot90")
