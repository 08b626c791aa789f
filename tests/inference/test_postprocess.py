"""Tests for mrcnn/inference/postprocess.py on hand-made masks and brute-force references."""

import time

import numpy as np
import pytest
import scipy.ndimage
from result_helpers import loop_boxes, make_result, random_discs, region_masks

import mrcnn.data.masks.sparse
import mrcnn.inference
import mrcnn.inference.results
import mrcnn.inference.tta
from mrcnn.data.iou import mask_iou
from mrcnn.inference import (
    SARTORIUS_MIN_AREA,
    PostprocessConfig,
    SparseMasks,
    apply_mask_threshold,
    compact,
    dilate,
    expand,
    filter_by_score,
    mask_nms,
    merge_tta,
    postprocess,
    remove_overlaps,
    remove_small,
    resolve_class_keys,
)
from mrcnn.inference.postprocess import majority_class

# Backend-independent: NumPy post-processing of hand-made results; no model.
pytestmark = pytest.mark.backend_independent


def test_inference_package_exports_the_names_of_its_modules():
    pp = mrcnn.inference

    for module in (mrcnn.data.masks.sparse, mrcnn.inference.results, mrcnn.inference.tta):
        for name in ("FLIPS", "SparseMasks", "compact", "expand", "flip_image", "flip_result",
                     "flip_tta", "merge_tta", "detect_tta", "TTAModel"):
            if hasattr(module, name):
                assert getattr(pp, name) is getattr(module, name), name
    assert set(pp.__all__) <= set(vars(pp))


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

def test_filter_by_score_scalar_and_per_class_by_id_and_name():
    masks = region_masks((6, 6), np.s_[0:2, 0:2], np.s_[2:4, 2:4], np.s_[4:6, 4:6])
    r = make_result(masks, [0.9, 0.4, 0.6], class_ids=[1, 2, 2])
    assert filter_by_score(r, 0.5)["scores"].tolist() == pytest.approx([0.9, 0.6])
    out = filter_by_score(r, {1: 0.95, "b": 0.5}, class_names=["BG", "a", "b"])
    assert out["scores"].tolist() == pytest.approx([0.6])
    np.testing.assert_array_equal(out["masks"][..., 0], masks[..., 2])
    np.testing.assert_array_equal(out["rois"], [[4, 4, 6, 6]])
    # A class missing from the dict is not filtered.
    assert filter_by_score(r, {2: 0.5})["scores"].tolist() == pytest.approx([0.9, 0.6])
    with pytest.raises(ValueError, match="unknown class name 'c'"):
        filter_by_score(r, {"c": 0.5}, class_names=["BG", "a", "b"])
    with pytest.raises(ValueError, match="pass class_names"):
        filter_by_score(r, {"a": 0.5})


def test_resolve_class_keys_accepts_lists_and_dicts_of_names():
    assert resolve_class_keys(SARTORIUS_MIN_AREA, ["BG", "astro", "cort", "shsy5y"]) \
        == {3: 75, 1: 150, 2: 75}
    assert resolve_class_keys({"x": 1, 4: 2}, {9: "x"}) == {9: 1, 4: 2}


def test_mask_nms_removes_duplicate_keeps_distinct_and_is_greedy():
    # A (score .9) and B (.8) overlap with IoU 16/20 = 0.8, B and C (.7)
    # with 12/28 = 0.43, A and C with 8/28 = 0.29.
    masks = np.zeros((10, 12, 3), bool)
    masks[0:4, 0:4, 0] = True                              # A 16 px
    masks[0:4, 0:5, 1] = True                              # B 20 px, IoU(A,B)=0.8
    masks[0:4, 2:7, 2] = True                              # C 20 px
    ious = mask_iou(masks, masks)
    assert ious[0, 1] == pytest.approx(0.8)
    assert ious[1, 2] == pytest.approx(12 / 28)
    assert ious[0, 2] == pytest.approx(8 / 28)
    r = make_result(masks, [0.9, 0.8, 0.7])
    out = mask_nms(r, 0.5)
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7])
    # Threshold above 0.8 keeps all; the test is strictly greater.
    assert mask_nms(r, 0.8)["scores"].size == 3
    assert mask_nms(r, 0.79)["scores"].size == 2
    # Greedy chain: lower the threshold so B-C (0.43) also counts. A removes
    # B, C survives because B is gone.
    assert mask_nms(r, 0.4)["scores"].tolist() == pytest.approx([0.9, 0.7])
    # Class-aware: different classes never suppress each other.
    r2 = make_result(masks, [0.9, 0.8, 0.7], class_ids=[1, 2, 2])
    assert mask_nms(r2, 0.4, class_aware=True)["scores"].tolist() == \
        pytest.approx([0.9, 0.8])


def test_remove_overlaps_gives_pixel_to_higher_score_and_drops_covered():
    masks = np.zeros((6, 8, 3), bool)
    masks[0:4, 0:4, 0] = True            # low score
    masks[2:6, 2:6, 1] = True            # high score, overlaps 2x2 of the first
    masks[3:5, 3:5, 2] = True            # inside the high one, lower score
    r = make_result(masks, [0.5, 0.9, 0.3], class_ids=[1, 2, 3])
    out = remove_overlaps(r)
    assert out["class_ids"].tolist() == [1, 2]           # the covered one is gone
    expected_low = masks[..., 0] & ~masks[..., 1]
    np.testing.assert_array_equal(out["masks"][..., 0], expected_low)
    np.testing.assert_array_equal(out["masks"][..., 1], masks[..., 1])
    assert out["masks"].sum(axis=2).max() == 1
    np.testing.assert_array_equal(out["rois"], [[0, 0, 4, 4], [2, 2, 6, 6]])
    assert "soft_masks" not in out


def test_remove_overlaps_matches_sequential_reference_and_ties_go_first():
    rng = np.random.default_rng(3)
    masks = random_discs(rng, n=20)
    scores = rng.choice([0.2, 0.5, 0.7, 0.9], size=20)     # many ties
    out = remove_overlaps(make_result(masks, scores))
    # Reference: visit by score (stable), each takes what is still free.
    taken = np.zeros(masks.shape[:2], bool)
    expected = []
    for k in np.argsort(-scores, kind="stable"):
        own = masks[..., k] & ~taken
        taken |= own
        expected.append((k, own))
    expected = [own for k, own in sorted(expected, key=lambda t: t[0]) if own.any()]
    np.testing.assert_array_equal(out["masks"], np.stack(expected, axis=-1))


def _nested_reference(masks, scores, fraction=0.5):
    """Dense brute force of order="nested": repeatedly the best-scoring instance
    that no unplaced smaller instance lies mostly inside claims what is free."""
    n = masks.shape[-1]
    areas = masks.sum(axis=(0, 1))
    inside = np.zeros((n, n), bool)          # inside[i, j]: i lies mostly inside j
    for i in range(n):
        for j in range(n):
            shared = np.logical_and(masks[..., i], masks[..., j]).sum()
            inside[i, j] = i != j and areas[i] < areas[j] and shared >= fraction * areas[i]
    placed, taken, own = [], np.zeros(masks.shape[:2], bool), {}
    while len(placed) < n:
        ready = [k for k in range(n) if k not in placed
                 and not any(inside[i, k] and i not in placed for i in range(n))]
        k = min(ready, key=lambda k: (-scores[k], k))
        own[k] = masks[..., k] & ~taken
        taken |= own[k]
        placed.append(k)
    return [own[k] for k in range(n) if own[k].any()]


def test_remove_overlaps_nested_gives_the_single_its_pixels_inside_the_pairs_detection():
    # Two touching nuclei A (left) and B (right); the detector found A alone
    # (score 0.8) and the pair as one instance (score 0.95).
    masks = np.zeros((10, 16, 2), bool)
    masks[2:8, 1:8, 0] = True                    # A alone: 42 px
    masks[2:8, 1:15, 1] = True                   # the pair: 84 px, all of A inside
    r = make_result(masks, [0.8, 0.95])
    by_score = remove_overlaps(r)                # the pair swallows A
    assert by_score["scores"].tolist() == pytest.approx([0.95])
    nested = remove_overlaps(r, order="nested")
    assert nested["scores"].tolist() == pytest.approx([0.8, 0.95])
    np.testing.assert_array_equal(nested["masks"][..., 0], masks[..., 0])
    np.testing.assert_array_equal(nested["masks"][..., 1], masks[..., 1] & ~masks[..., 0])
    np.testing.assert_array_equal(nested["rois"], [[2, 1, 8, 8], [2, 8, 8, 15]])
    # Less than half of the smaller one inside the larger: the score decides as before.
    masks = np.zeros((10, 16, 2), bool)
    masks[0:10, 0:10, 0] = True                  # 100 px, score 0.95
    masks[2:6, 7:17, 1] = True                   # 36 px, 12 of them (1/3) inside the first
    out = remove_overlaps(make_result(masks, [0.95, 0.8]), order="nested")
    np.testing.assert_array_equal(out["masks"][..., 0], masks[..., 0])
    np.testing.assert_array_equal(out["masks"][..., 1], masks[..., 1] & ~masks[..., 0])


def test_remove_overlaps_nested_matches_a_dense_reference():
    rng = np.random.default_rng(7)
    for trial in range(4):
        masks = random_discs(rng, n=25)
        # Nested pieces: half-discs of some instances, as the single nuclei of a pair.
        extra = masks[..., :6].copy()
        extra[:, : masks.shape[1] // 2] = False
        masks = np.concatenate([masks, extra], axis=-1)
        masks = masks[..., masks.any(axis=(0, 1))]
        scores = rng.choice([0.3, 0.6, 0.9, 0.95], size=masks.shape[-1])
        out = remove_overlaps(make_result(masks, scores), order="nested")
        expected = np.stack(_nested_reference(masks, scores), axis=-1)
        np.testing.assert_array_equal(out["masks"], expected)
        by_score = remove_overlaps(make_result(masks, scores))["masks"]
        assert by_score.shape != expected.shape or (by_score != expected).any()


def test_remove_overlaps_nested_follows_chains_and_rejects_unknown_orders():
    masks = np.zeros((12, 12, 3), bool)
    masks[0:12, 0:12, 0] = True                  # 144 px, score .9
    masks[0:6, 0:12, 1] = True                   # 72 px inside it, score .5
    masks[0:6, 0:4, 2] = True                    # 24 px inside both, score .2
    out = remove_overlaps(make_result(masks, [0.9, 0.5, 0.2]), order="nested")
    assert [int(m.sum()) for m in np.moveaxis(out["masks"], -1, 0)] == [72, 48, 24]
    assert remove_overlaps(make_result(masks, [0.9, 0.5, 0.2]))["scores"].tolist() == \
        pytest.approx([0.9])
    with pytest.raises(ValueError, match=r"order must be one of \['score', 'nested'\], "
                                         r"got 'area'"):
        remove_overlaps(make_result(masks, [0.9, 0.5, 0.2]), order="area")
    with pytest.raises(ValueError, match="overlap_order must be one of"):
        PostprocessConfig(overlap_order=True)


def test_postprocess_resolves_overlaps_by_score_by_default_and_nested_on_request():
    masks = np.zeros((10, 16, 2), bool)
    masks[2:8, 1:8, 0] = True
    masks[2:8, 1:15, 1] = True
    r = make_result(masks, [0.8, 0.95])
    assert PostprocessConfig().overlap_order == "score"
    assert postprocess(r)["scores"].tolist() == pytest.approx([0.95])
    nested = postprocess(r, PostprocessConfig(overlap_order="nested"))
    assert nested["scores"].tolist() == pytest.approx([0.8, 0.95])


def test_remove_small_with_sartorius_areas():
    masks = np.zeros((40, 40, 4), bool)
    masks.reshape(-1, 4)[:74, 0] = True
    masks.reshape(-1, 4)[100:175, 1] = True
    masks.reshape(-1, 4)[200:349, 2] = True
    masks.reshape(-1, 4)[400:550, 3] = True
    r = make_result(masks, [0.9] * 4, class_ids=[3, 3, 1, 1])
    names = ["BG", "astro", "cort", "shsy5y"]
    out = remove_small(r, SARTORIUS_MIN_AREA, class_names=names)
    assert out["masks"].sum(axis=(0, 1)).tolist() == [75, 150]
    assert remove_small(r, 100)["masks"].sum(axis=(0, 1)).tolist() == [149, 150]


@pytest.mark.parametrize("connectivity", [1, 2])
def test_dilate_matches_scipy_per_instance(connectivity):
    rng = np.random.default_rng(4)
    masks = random_discs(rng, n=6, max_r=5)
    masks[0, :, 0] = True                                  # touches the border
    out = dilate(make_result(masks, np.linspace(0.9, 0.4, 6)), iterations=2,
                 connectivity=connectivity)
    structure = scipy.ndimage.generate_binary_structure(2, connectivity)
    expected = np.stack([scipy.ndimage.binary_dilation(masks[..., k], structure,
                                                       iterations=2)
                         for k in range(6)], axis=-1)
    np.testing.assert_array_equal(out["masks"], expected)
    np.testing.assert_array_equal(out["rois"], loop_boxes(expected))


def test_apply_mask_threshold_uses_soft_masks():
    soft = np.zeros((4, 4, 2), np.float32)
    soft[0:2, 0:2, 0] = [[0.9, 0.6], [0.4, 0.2]]
    soft[2:4, 2:4, 1] = 0.3
    r = make_result(soft >= 0.5, [0.9, 0.8], soft=soft)
    out = apply_mask_threshold(r, 0.35)
    assert out["scores"].tolist() == pytest.approx([0.9])  # second went empty
    assert out["masks"][..., 0].sum() == 3
    np.testing.assert_allclose(out["soft_masks"][..., 0], soft[..., 0])
    # Without soft masks nothing changes.
    plain = apply_mask_threshold(make_result(soft >= 0.5, [0.9, 0.8]), 0.99)
    assert plain["masks"].sum() == 2


def test_empty_result_passes_every_step():
    empty = make_result(np.zeros((5, 7, 0), bool), [])
    for out in (filter_by_score(empty, 0.5), mask_nms(empty, 0.3),
                remove_overlaps(empty), remove_small(empty, 10), dilate(empty),
                postprocess(empty, PostprocessConfig(mask_nms=0.3, dilation=1)),
                merge_tta([empty, empty])):
        assert out["masks"].shape == (5, 7, 0)
        assert out["rois"].shape == (0, 4)
        assert out["scores"].shape == (0,)


def test_sparse_and_dense_inputs_give_the_same_output():
    rng = np.random.default_rng(5)
    masks = random_discs(rng, n=15)
    r = make_result(masks, rng.random(15), class_ids=rng.integers(1, 3, 15))
    cfg = PostprocessConfig(min_score=0.2, mask_nms=0.5, min_area=10, dilation=1)
    dense = postprocess(r, cfg)
    sparse = postprocess(compact(r), cfg)
    assert isinstance(sparse["masks"], SparseMasks)
    np.testing.assert_array_equal(expand(sparse)["masks"], dense["masks"])
    np.testing.assert_array_equal(sparse["rois"], dense["rois"])


# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------

def test_postprocess_chain_hand_case():
    masks = np.zeros((10, 10, 5), bool)
    masks[0:4, 0:4, 0] = True        # 16 px, score .9
    masks[0:4, 0:4, 1] = True        # duplicate of 0, score .8 -> mask NMS
    masks[0:4, 3:8, 2] = True        # 20 px, score .7, loses column 3 -> 16 px
    masks[6:9, 6:9, 3] = True        # 9 px, score .95 -> below min_area 10
    masks[8:10, 0:2, 4] = True       # score .1 -> score filter
    r = make_result(masks, [0.9, 0.8, 0.7, 0.95, 0.1], class_ids=[1, 1, 2, 2, 1])
    cfg = PostprocessConfig(min_score=0.2, mask_nms=0.5, min_area={"b": 10, 1: 0})
    out = postprocess(r, cfg, class_names=["BG", "a", "b"])
    assert out["scores"].tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_array_equal(out["masks"][..., 0], masks[..., 0])
    expected = masks[..., 2] & ~masks[..., 0]
    np.testing.assert_array_equal(out["masks"][..., 1], expected)
    assert out["masks"][..., 1].sum() == 16

    # Dilation grows both; the shared border goes to the higher score.
    grown = postprocess(r, PostprocessConfig(min_score=0.2, mask_nms=0.5,
                                             min_area={2: 10}, dilation=1))
    assert grown["masks"].sum(axis=2).max() == 1
    ref0 = scipy.ndimage.binary_dilation(masks[..., 0])
    np.testing.assert_array_equal(grown["masks"][..., 0], ref0)
    ref1 = scipy.ndimage.binary_dilation(expected) & ~ref0
    np.testing.assert_array_equal(grown["masks"][..., 1], ref1)


def test_postprocess_config_validates():
    with pytest.raises(ValueError, match="mask_threshold must be in"):
        PostprocessConfig(mask_threshold=1.5)
    with pytest.raises(ValueError, match="mask_nms must be None or in"):
        PostprocessConfig(mask_nms=2)
    with pytest.raises(ValueError, match="dilation must be an int"):
        PostprocessConfig(dilation=-1)
    with pytest.raises(TypeError, match=r"min_area\['astro'\] must be a number"):
        PostprocessConfig(min_area={"astro": "big"})
    with pytest.raises(TypeError, match="config must be a PostprocessConfig"):
        postprocess(make_result(np.zeros((2, 2, 0), bool), []), {"min_score": 1})


def test_majority_class_takes_the_largest_summed_score():
    masks = region_masks((6, 8), np.s_[0:2, 0:2], np.s_[0:2, 3:5], np.s_[3:5, 0:2],
                         np.s_[3:5, 3:5])
    # Class 2 has the most instances (2) but class 1 the largest summed score:
    # 1: 0.9, 2: 0.3 + 0.4 = 0.7, 3: 0.5.
    r = make_result(masks, [0.9, 0.3, 0.4, 0.5], class_ids=[1, 2, 2, 3])
    out = majority_class(r)
    assert out["class_ids"].tolist() == [1, 1, 1, 1]
    assert out["class_ids"].dtype == np.int32
    np.testing.assert_array_equal(out["masks"], masks)
    np.testing.assert_array_equal(out["rois"], r["rois"])
    assert out["scores"].tolist() == pytest.approx([0.9, 0.3, 0.4, 0.5])
    # 1: 0.9 vs 2: 0.3 + 0.4 + 0.35 = 1.05: now class 2 wins.
    r = make_result(masks, [0.9, 0.3, 0.4, 0.35], class_ids=[1, 2, 2, 2])
    assert majority_class(r)["class_ids"].tolist() == [2, 2, 2, 2]
    # Equal sums: the smallest class id.
    r = make_result(masks[..., :2], [0.5, 0.5], class_ids=[3, 2])
    assert majority_class(r)["class_ids"].tolist() == [2, 2]
    # No instance: nothing to relabel; sparse masks stay sparse.
    empty = majority_class(make_result(np.zeros((4, 4, 0), bool), []))
    assert empty["class_ids"].shape == (0,) and empty["masks"].shape == (4, 4, 0)
    sparse = majority_class(compact(make_result(masks, [0.9, 0.3, 0.4, 0.5],
                                                class_ids=[1, 2, 2, 3])))
    assert isinstance(sparse["masks"], SparseMasks)
    assert sparse["class_ids"].tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="class_ids must be >= 0, got -1"):
        majority_class(make_result(masks[..., :2], [0.5, 0.5], class_ids=[-1, 2]))


def test_majority_class_matches_a_loop_reference():
    rng = np.random.default_rng(7)
    masks = random_discs(rng, n=12)
    for trial in range(20):
        class_ids = rng.integers(1, 4, 12)
        scores = rng.random(12)
        totals = {}
        for c, s in zip(class_ids.tolist(), scores.tolist()):
            totals[c] = totals.get(c, 0.0) + s
        best = max(sorted(totals), key=lambda c: totals[c])
        out = majority_class(make_result(masks, scores, class_ids=class_ids))
        assert out["class_ids"].tolist() == [best] * 12, trial


def test_postprocess_majority_class_comes_before_the_per_class_filters():
    masks = np.zeros((20, 20, 3), bool)
    masks[0:10, 0:10, 0] = True          # 100 px, astro, score .9
    masks[12:20, 0:10, 1] = True         # 80 px, cort, score .8
    masks[0:9, 12:20, 2] = True          # 72 px, astro, score .7
    r = make_result(masks, [0.9, 0.8, 0.7], class_ids=[1, 2, 1])
    names = ["BG", "astro", "cort", "shsy5y"]
    min_area = {"astro": 90, "cort": 75}
    # Without it the cort cell keeps its own minimum (75) and survives;
    # the 72 px astro one is dropped.
    plain = postprocess(r, PostprocessConfig(min_area=min_area), class_names=names)
    assert plain["class_ids"].tolist() == [1, 2]
    # With it every cell is astro (1.6 vs 0.8): the astro minimum (90) drops both small ones.
    cfg = PostprocessConfig(min_area=min_area, majority_class=True)
    out = postprocess(r, cfg, class_names=names)
    assert out["class_ids"].tolist() == [1]
    np.testing.assert_array_equal(out["masks"][..., 0], masks[..., 0])
    # Per-class score thresholds also see the new class: cort's 0.95 no longer applies.
    cfg = PostprocessConfig(min_score={"cort": 0.95}, majority_class=True)
    assert postprocess(r, cfg, class_names=names)["class_ids"].tolist() == [1, 1, 1]
    assert postprocess(r, PostprocessConfig(min_score={"cort": 0.95}),
                       class_names=names)["class_ids"].tolist() == [1, 1]
    assert PostprocessConfig().majority_class is False
    with pytest.raises(TypeError, match="majority_class must be True or False, got 'yes'"):
        PostprocessConfig(majority_class="yes")


def test_postprocess_rejects_inconsistent_result():
    r = make_result(np.zeros((4, 4, 2), bool), [0.5, 0.6])
    r["scores"] = np.array([0.5])
    with pytest.raises(ValueError, match=r"\['scores'\] has 1 entries but masks hold 2"):
        postprocess(r)
    with pytest.raises(ValueError, match="lacks"):
        postprocess({"masks": np.zeros((4, 4, 0), bool)})


def test_remove_overlaps_500_cells_is_fast():
    # 500 discs on a 520x704 image (a dense shsy5y image): well under 0.5 s.
    rng = np.random.default_rng(0)
    height, width, n = 520, 704, 500
    cy, cx = rng.integers(10, height - 10, n), rng.integers(10, width - 10, n)
    radius = rng.integers(5, 15, n)
    offsets = np.arange(-15, 16)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    inside = dy[None] ** 2 + dx[None] ** 2 <= radius[:, None, None] ** 2
    inst, iy, ix = np.nonzero(inside)
    ys, xs = cy[inst] + dy[iy, ix], cx[inst] + dx[iy, ix]
    ok = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    sparse = SparseMasks((height, width), n, inst[ok], ys[ok] * width + xs[ok])
    r = {"rois": sparse.boxes(), "class_ids": np.ones(n, np.int32),
         "scores": rng.random(n).astype(np.float32), "masks": sparse}
    start = time.perf_counter()
    out = remove_overlaps(r)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    covered = np.zeros(height * width, np.int64)
    np.add.at(covered, out["masks"].pixel, 1)
    assert covered.max() == 1
    assert np.count_nonzero(covered) == np.unique(sparse.pixel).size
