"""Tests of mrcnn/inference/tiling.py: overlapping tiles, each instance once, at the original size."""

import numpy as np
import pytest

from mrcnn.data.boxes import extract_bboxes
from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.inference.tiling import (TiledModel, default_tile, detect_tiled, tile_cores,
                                    tile_starts)

H, W, TILE, OVERLAP = 100, 130, 48, 16
# By hand: rows ceil((100 - 48) / 32) + 1 = 3 tiles at 0, 52/2, 52; columns
# ceil(82 / 32) + 1 = 4 at 0, 82/3 = 27.3, 54.7, 82. Seams: middles of the overlaps.
ROWS, COLS = [0, 26, 52], [0, 27, 55, 82]
ROW_CORES = [(0, 37), (37, 63), (63, 100)]           # (26 + 48) // 2, (52 + 74) // 2
COL_CORES = [(0, 37), (37, 65), (65, 92), (92, 130)]  # (27+48)//2, (55+75)//2, (82+103)//2


def test_grid_by_hand():
    assert tile_starts(H, TILE, OVERLAP) == ROWS
    assert tile_starts(W, TILE, OVERLAP) == COLS
    assert tile_cores(ROWS, TILE, H) == ROW_CORES
    assert tile_cores(COLS, TILE, W) == COL_CORES
    assert tile_starts(40, 48, 16) == [0] and tile_cores([0], 48, 40) == [(0, 40)]
    assert tile_starts(48, 48, 16) == [0]


def _disc(cy, cx, r):
    yy, xx = np.mgrid[0:H, 0:W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _rect(y1, y2, x1, x2):
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


# (mask, class id, score): inside a core, across a seam, wider than three tiles,
# on a four-tile corner, across three row tiles, inside an overlap.
OBJECTS = [
    (_disc(15, 15, 5), 1, 0.95),
    (_rect(5, 20, 35, 60), 2, 0.9),
    (_rect(78, 92, 5, 125), 1, 0.85),
    (_disc(47, 47, 10), 3, 0.8),
    (_rect(30, 70, 90, 125), 2, 0.75),
    (_disc(42, 12, 2), 1, 0.7),
]


def coordinate_image():
    """int32 [H, W, 2]: each pixel holds its (y, x), so a fake detector knows its tile."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([yy, xx], -1).astype(np.int32)


class FakeDetector:
    """Returns every object's pixels inside the tile (exact at seams), from `min_area` on."""

    def __init__(self, objects=OBJECTS, min_area=1, extra=(), soft=False):
        self.objects, self.min_area, self.extra, self.soft = objects, min_area, extra, soft
        self.calls = []

    def __call__(self, tiles):
        self.calls.append([t.shape for t in tiles])
        out = []
        for t in tiles:
            y, x = (int(v) for v in t[0, 0])
            h, w = t.shape[:2]
            masks, ids, scores = [], [], []
            for mask, cid, score in list(self.objects) + [e[:3] for e in self.extra
                                                           if e[3] == (y, x)]:
                piece = mask[y:y + h, x:x + w]
                if piece.sum() >= self.min_area:
                    masks.append(piece), ids.append(cid), scores.append(score)
            masks = np.stack(masks, -1) if masks else np.zeros((h, w, 0), bool)
            out.append({"class_ids": np.array(ids, np.int32),
                        "scores": np.array(scores, np.float32), "masks": masks})
            if self.soft:
                out[-1]["soft_masks"] = masks * soft_value(y, x, h, w)[..., None]
        return out


def soft_value(y, x, h, w):
    """Probabilities that differ from tile to tile: (0.5, 1] by pixel and tile origin."""
    yy, xx = np.mgrid[y:y + h, x:x + w]
    return (0.5 + 0.5 * ((yy + 2 * xx + y + 3 * x) % 11 + 1) / 11).astype(np.float32)


def reference(objects, min_area):
    """Brute force: per object, the union of its tile pieces the detector reports."""
    expected = []
    for mask, cid, score in objects:
        union = np.zeros((H, W), bool)
        for y in ROWS:
            for x in COLS:
                piece = np.zeros((H, W), bool)
                piece[y:y + TILE, x:x + TILE] = mask[y:y + TILE, x:x + TILE]
                if piece.sum() >= min_area:
                    union |= piece
        if union.any():
            expected.append((union, cid, score))
    return expected


def check(result, expected):
    assert isinstance(result["masks"], SparseMasks) and result["masks"].shape == (H, W)
    masks = result["masks"].to_dense()
    assert masks.shape[-1] == len(expected)
    by_score = sorted(expected, key=lambda e: -e[2])
    np.testing.assert_allclose(result["scores"], [e[2] for e in by_score])
    np.testing.assert_array_equal(result["class_ids"], [e[1] for e in by_score])
    for k, (mask, _, _) in enumerate(by_score):
        np.testing.assert_array_equal(masks[..., k], mask, err_msg=f"instance {k}")
    np.testing.assert_array_equal(result["rois"], extract_bboxes(masks))


def test_instances_across_seams_come_back_once_with_the_full_mask():
    fake = FakeDetector()
    result = detect_tiled(fake, coordinate_image(), tile=TILE, overlap=OVERLAP, batch_size=5)
    check(result, [(m, c, s) for m, c, s in OBJECTS])          # the objects themselves
    check(result, reference(OBJECTS, 1))
    # 12 tiles in calls of at most 5, none larger than the tile
    assert [len(c) for c in fake.calls] == [5, 5, 2]
    assert all(s[0] <= TILE and s[1] <= TILE for c in fake.calls for s in c)


def test_soft_masks_take_each_pixels_highest_value_among_the_pieces():
    result = detect_tiled(FakeDetector(soft=True), coordinate_image(), tile=TILE,
                          overlap=OVERLAP, soft_masks=True, dense=True)
    by_score = sorted(OBJECTS, key=lambda o: -o[2])
    for k, (mask, _, _) in enumerate(by_score):
        ref = np.zeros((H, W), np.float32)              # brute force over the tile grid
        for y in ROWS:
            for x in COLS:
                piece = np.zeros((H, W), np.float32)
                piece[y:y + TILE, x:x + TILE] = mask[y:y + TILE, x:x + TILE] * \
                    soft_value(y, x, min(TILE, H - y), min(TILE, W - x))
                ref = np.maximum(ref, piece)
        np.testing.assert_array_equal(result["soft_masks"][..., k], ref)
        np.testing.assert_array_equal(result["masks"][..., k], mask)
    with pytest.raises(ValueError, match=r"soft_masks=True but the result of tile \(0, 0\)"):
        detect_tiled(FakeDetector(), coordinate_image(), tile=TILE, soft_masks=True)


def test_pieces_the_detector_misses_are_left_out_of_the_union():
    # a detector that misses pieces under 180 px: the two small discs vanish, and the
    # bar at columns 20..59 loses columns 20..26 (only tile (0, 0) sees them, 168 px)
    bar = (_rect(2, 8, 20, 60), 3, 0.6)
    objects = OBJECTS + [bar]
    result = detect_tiled(FakeDetector(objects, min_area=180), coordinate_image(), tile=TILE,
                          overlap=OVERLAP)
    expected = reference(objects, 180)
    assert [e[2] for e in expected] == [0.9, 0.85, 0.8, 0.75, 0.6]
    np.testing.assert_array_equal(expected[-1][0], _rect(2, 8, 27, 60))
    check(result, expected)


def test_lone_detections_in_a_tile_margin_are_dropped_in_the_core_kept():
    # tile (0, 0): columns 0..47, core 0..36. A spurious piece at columns 40..45
    # (centre 43, in the margin) that tile (0, 27) does not confirm is dropped;
    # one at columns 30..35 (centre 33, in the core) is kept.
    margin = (_rect(2, 6, 40, 46), 1, 0.5, (0, 0))
    core = (_rect(2, 6, 30, 36), 2, 0.4, (0, 0))
    fake = FakeDetector(objects=[], extra=[margin, core])
    result = detect_tiled(fake, coordinate_image(), tile=TILE, overlap=OVERLAP)
    check(result, [(core[0], 2, 0.4)])


def test_merged_instance_takes_the_best_piece_class_and_score():
    # tiles (0, 0) and (0, 27) both see columns 27..47; the pieces agree there
    left = (_rect(10, 20, 20, 60), 1, 0.6, (0, 0))          # tile (0, 0) keeps columns < 48
    right = (_rect(10, 20, 27, 60), 2, 0.9, (0, 27))
    fake = FakeDetector(objects=[], extra=[left, right])
    result = detect_tiled(fake, coordinate_image(), tile=TILE, overlap=OVERLAP)
    check(result, [(_rect(10, 20, 20, 60), 2, 0.9)])


def test_pieces_that_disagree_in_the_shared_rectangle_stay_apart():
    left = (_rect(10, 20, 20, 60), 1, 0.6, (0, 0))          # columns 27..47 shared: 210 px
    right = (_rect(10, 20, 40, 60), 2, 0.9, (0, 27))        # columns 40..47: 80 px, IoU 0.38
    fake = FakeDetector(objects=[], extra=[left, right])
    result = detect_tiled(fake, coordinate_image(), tile=TILE, overlap=OVERLAP)
    check(result, [(_rect(10, 20, 20, 48), 1, 0.6), (_rect(10, 20, 40, 60), 2, 0.9)])
    merged = detect_tiled(fake, coordinate_image(), tile=TILE, overlap=OVERLAP, merge_iou=0.38)
    check(merged, [(_rect(10, 20, 20, 60), 2, 0.9)])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"tile": 0}, ValueError, "tile must be >= 1"),
    ({"tile": "48"}, TypeError, "tile must be an int or"),
    ({"tile": 48, "overlap": 48}, ValueError, "overlap 48 must be >= 0 and smaller"),
    ({"tile": 48, "merge_iou": 0}, ValueError, r"merge_iou must be in \(0, 1\]"),
    ({}, ValueError, "tile is needed"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        detect_tiled(FakeDetector(), coordinate_image(), **kwargs)


def test_a_detector_returning_the_wrong_shape_is_named():
    def wrong(tiles):
        return [{"class_ids": np.zeros(0, np.int32), "scores": np.zeros(0, np.float32),
                 "masks": np.zeros((10, 10, 0), bool)} for _ in tiles]
    with pytest.raises(ValueError, match=r"tile \(0, 0\) has masks of shape \(10, 10\), "
                                         r"expected the tile's \(48, 48\)"):
        detect_tiled(wrong, coordinate_image(), tile=TILE)


def test_default_tile_divides_the_input_by_the_scale():
    from model_helpers import make_config
    assert default_tile(make_config(IMAGE_RESIZE_MODE="none")) == (64, 64)
    assert default_tile(make_config(IMAGE_RESIZE_MODE="none", IMAGE_SCALE=2.0)) == (32, 32)
    assert default_tile(make_config(IMAGE_RESIZE_MODE="pad64", IMAGE_SHAPE=[128, 192, 3],
                                    IMAGE_SCALE=1.5)) == (85, 128)
    with pytest.raises(ValueError, match="'crop' is for training"):
        default_tile(make_config(IMAGE_RESIZE_MODE="crop"))


# ---------------------------------------------------------------- a real tiny model
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from model_helpers import make_config

    import mrcnn.model as modellib
    import keras
    keras.utils.set_random_seed(0)
    config = make_config(IMAGE_RESIZE_MODE="none", IMAGES_PER_GPU=2)
    model = modellib.MaskRCNN("inference", config, str(tmp_path_factory.mktemp("logs")))
    # detections whatever the random initialisation: class 1 wins every ROI (the box
    # and mask heads stay random) ...
    layer = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, _ = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.log([0.2, 0.4, 0.2, 0.2]).astype(np.float32)])
    # ... and its masks are not empty (a random mask head can put every pixel below 0.5,
    # and the TTA merge drops instances with empty masks: seen once on JAX)
    mask = model.keras_model.get_layer("mrcnn_mask")
    kernel, bias = mask.get_weights()
    bias[1] += 2.0
    mask.set_weights([kernel, bias])
    return model


def _smooth(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 80 * np.sin(yy / 7.0 + seed) * np.cos(xx / 9.0)
    return np.clip(base[..., None] + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)


def test_real_model_on_an_image_three_times_its_input(tiny_model):
    image = _smooth(150, 170)                               # input 64x64
    with pytest.raises(ValueError, match="detect_tiled"):
        tiny_model.detect([image])
    r = detect_tiled(tiny_model, image, overlap=16)
    masks = r["masks"]
    assert isinstance(masks, SparseMasks) and masks.shape == (150, 170)
    n = masks.count
    assert n > 0 and r["rois"].shape == (n, 4) and r["class_ids"].shape == (n,)
    assert (r["rois"][:, :2] >= 0).all() and (r["rois"][:, 2] <= 150).all()
    assert (r["rois"][:, 3] <= 170).all()
    assert np.all(np.diff(r["scores"]) <= 0)
    dense = TiledModel(tiny_model, overlap=16).detect([image])[0]
    assert dense["masks"].shape == (150, 170, n)
    np.testing.assert_array_equal(dense["masks"], masks.to_dense())


def test_real_model_single_tile_equals_detect(tiny_model):
    image = _smooth(60, 64, seed=1)
    ref = tiny_model.detect([image])[0]
    got = detect_tiled(tiny_model, image, dense=True)
    order = np.argsort(-ref["scores"], kind="stable")
    np.testing.assert_allclose(got["scores"], ref["scores"][order])
    np.testing.assert_array_equal(got["class_ids"], ref["class_ids"][order])
    np.testing.assert_array_equal(got["masks"], ref["masks"][..., order])
    soft_ref = tiny_model.detect([image], soft_masks=True)[0]["soft_masks"]
    soft = TiledModel(tiny_model).detect([image], soft_masks=True)[0]["soft_masks"]
    np.testing.assert_array_equal(soft, soft_ref[..., order])


def test_tta_over_a_tiled_model_takes_images_larger_than_the_input(tiny_model):
    """predict.py --tile --tta: each variant of the whole image is detected in tiles (the
    variant-size check of a plain "none"-mode model does not apply)."""
    from mrcnn.inference.tta import detect_tta

    # input 64x64: 2x2 tiles of the image and of its turns, 3x3 of the x1.25 variant (150x170
    # gave 3x4 and 4x5 for the same checks: 80 tiles, ~1.5 min of PyTorch's eager inference)
    image = _smooth(100, 110, seed=2)
    with pytest.raises(ValueError, match=r"the 100x110 image needs a 128x128 input .*larger "
                                         r"than the model input 64x64; run it in overlapping "
                                         r"tiles, TTAModel\(TiledModel\(model\)"):
        detect_tta(tiny_model, image, "none")
    tiled = TiledModel(tiny_model, overlap=16)
    plain = tiled.detect([image], soft_masks=True)[0]
    from mrcnn.inference.tta import merge_tta
    one = detect_tta(tiled, image, "none", min_votes=1)
    # one run merged: the tiled detections with their overlapping duplicates clustered (a
    # random model's detections overlap, on some backends above the merge IoU)
    expected = merge_tta([plain], min_votes=1)
    assert one["masks"].shape == (100, 110, expected["masks"].shape[-1]) and len(expected["scores"])
    np.testing.assert_array_equal(one["masks"], expected["masks"])
    np.testing.assert_allclose(one["scores"], expected["scores"])
    turned = detect_tta(tiled, image, ["none", "lr", "rot90", "s1.25"], min_votes=1)
    assert turned["masks"].shape[:2] == (100, 110) and turned["masks"].shape[-1] > 0
