"""Tests for mrcnn.data.anchors: hand-counted cases and a brute-force generator."""

import math

import numpy as np
import pytest

from mrcnn.data.anchors import (
    anchor_coverage,
    best_anchor_iou,
    compute_backbone_shapes,
    dataset_anchor_scales,
    generate_anchors,
    generate_pyramid_anchors,
    suggest_anchor_scales,
)
from mrcnn.data.iou import box_iou

# Backend-independent: NumPy anchor generation against hand counts; no Keras op.
pytestmark = pytest.mark.backend_independent


def _anchors_loop(scale, ratios, shape, feature_stride, anchor_stride):
    """Brute-force anchors in Matterport order: cells row-major, ratios fastest."""
    out = []
    for i in range(0, shape[0], anchor_stride):
        for j in range(0, shape[1], anchor_stride):
            cy, cx = i * feature_stride, j * feature_stride
            for r in ratios:
                h, w = scale / math.sqrt(r), scale * math.sqrt(r)
                out.append([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2])
    return np.array(out).reshape(-1, 4)


def test_hand_counted_single_level():
    # 64x64 image, stride 32 -> 2x2 feature map, 3 ratios -> 12 anchors.
    anchors = generate_anchors(16, [0.5, 1, 2], (2, 2), 32, 1)
    assert anchors.dtype == np.float32 and anchors.shape == (12, 4)
    s = 16 / math.sqrt(2) / 2  # half of the short side of the 0.5 / 2 ratios
    lh = 16 * math.sqrt(2) / 2  # half of the long side
    # Cell (0, 0) centred at (0, 0): ratio 0.5 is tall (h > w), ratio 2 is wide.
    np.testing.assert_allclose(anchors[0], [-lh, -s, lh, s], rtol=1e-6)
    np.testing.assert_allclose(anchors[1], [-8, -8, 8, 8])
    np.testing.assert_allclose(anchors[2], [-s, -lh, s, lh], rtol=1e-6)
    # Cell (0, 1) centred at (y=0, x=32); cell (1, 0) at (y=32, x=0); (1, 1) at (32, 32).
    np.testing.assert_allclose(anchors[4], [-8, 24, 8, 40])
    np.testing.assert_allclose(anchors[7], [24, -8, 40, 8])
    np.testing.assert_allclose(anchors[10], [24, 24, 40, 40])


@pytest.mark.parametrize("scale,ratios,shape,fs,ast", [
    (32, [0.5, 1, 2], (5, 7), 8, 1),
    (4, [0.2, 1, 5], (6, 3), 4, 2),
    (100, [1], (3, 4), 12, 3),
])
def test_generate_anchors_matches_loop(scale, ratios, shape, fs, ast):
    np.testing.assert_allclose(generate_anchors(scale, ratios, shape, fs, ast),
                               _anchors_loop(scale, ratios, shape, fs, ast),
                               rtol=1e-6, atol=1e-5)


def test_extreme_ratios_give_width_over_height_and_scale_squared_area():
    anchors = generate_anchors(4, [0.2, 5], (1, 1), 4, 1).astype(np.float64)
    heights = anchors[:, 2] - anchors[:, 0]
    widths = anchors[:, 3] - anchors[:, 1]
    np.testing.assert_allclose(widths / heights, [0.2, 5], rtol=1e-5)
    np.testing.assert_allclose(widths * heights, [16, 16], rtol=1e-5)


def test_multiple_scales_per_level_ratio_major():
    anchors = generate_anchors([8, 16], [0.5, 2], (1, 1), 4, 1).astype(np.float64)
    sides = np.sqrt((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1]))
    aspect = (anchors[:, 3] - anchors[:, 1]) / (anchors[:, 2] - anchors[:, 0])
    np.testing.assert_allclose(sides, [8, 16, 8, 16], rtol=1e-5)
    np.testing.assert_allclose(aspect, [0.5, 0.5, 2, 2], rtol=1e-5)


def test_compute_backbone_shapes_ceil():
    np.testing.assert_array_equal(compute_backbone_shapes((100, 130, 3), [4, 8, 64]),
                                  [[25, 33], [13, 17], [2, 3]])
    with pytest.raises(ValueError, match="stride"):
        compute_backbone_shapes((64, 64), [4, 0])
    with pytest.raises(ValueError, match="image_shape"):
        compute_backbone_shapes((0, 64), [4])


def test_pyramid_counts_and_levels():
    strides = [4, 8, 16, 32, 64]
    shapes = compute_backbone_shapes((1024, 1024, 3), strides)
    anchors = generate_pyramid_anchors((32, 64, 128, 256, 512), [0.5, 1, 2], shapes, strides, 1)
    assert anchors.shape == (sum((1024 // s) ** 2 * 3 for s in strides), 4) == (261888, 4)
    assert anchors.dtype == np.float32

    # Non-square image, odd sizes, small scales: each level equals its own loop.
    strides = [4, 8, 16]
    scales = (4, 8, 16)
    shapes = compute_backbone_shapes((90, 130), strides)
    ratios = [0.2, 1, 5]
    anchors = generate_pyramid_anchors(scales, ratios, shapes, strides, 1)
    expected = np.concatenate([_anchors_loop(sc, ratios, tuple(sh), st, 1)
                               for sc, sh, st in zip(scales, shapes, strides)])
    assert anchors.shape[0] == sum(math.ceil(90 / s) * math.ceil(130 / s) * 3 for s in strides)
    np.testing.assert_allclose(anchors, expected, rtol=1e-6, atol=1e-5)


def test_pyramid_validation():
    shapes = [[4, 4], [2, 2]]
    with pytest.raises(ValueError, match="one scale, feature shape and stride per level"):
        generate_pyramid_anchors((8, 16, 32), [1], shapes, [4, 8], 1)
    with pytest.raises(ValueError, match="ratios"):
        generate_pyramid_anchors((8, 16), [1, -2], shapes, [4, 8], 1)
    with pytest.raises(ValueError, match="scale"):
        generate_pyramid_anchors((8, 0), [1], shapes, [4, 8], 1)
    with pytest.raises(ValueError, match="feature_stride"):
        generate_pyramid_anchors((8, 16), [1], shapes, [4, 0], 1)
    with pytest.raises(ValueError, match="anchor_stride"):
        generate_pyramid_anchors((8, 16), [1], shapes, [4, 8], 0)
    with pytest.raises(ValueError, match="feature_shapes"):
        generate_pyramid_anchors((8, 16), [1], [4, 4], [4, 8], 1)


def test_pyramid_with_two_scales_per_level_groups_anchors_by_cell():
    from mrcnn.data.anchors import generate_pyramid_anchors
    a = generate_pyramid_anchors(((16, 24), (32, 48)), [0.5, 1, 2], [[2, 2], [1, 1]], [32, 64], 1)
    assert a.shape == (2 * 2 * 6 + 1 * 1 * 6, 4)
    # the first 6 anchors share the first cell's centre (0, 0), with sizes 16 and 24
    centres = (a[:6, :2] + a[:6, 2:]) / 2
    np.testing.assert_allclose(centres, 0, atol=1e-5)
    sides = np.sqrt((a[:6, 2] - a[:6, 0]) * (a[:6, 3] - a[:6, 1]))
    np.testing.assert_allclose(sorted(sides), [16, 16, 16, 24, 24, 24], rtol=1e-5)


# ------------------------------------------------------------- anchor_coverage
def _iou_loop(box, anchor):
    y1, x1 = max(box[0], anchor[0]), max(box[1], anchor[1])
    y2, x2 = min(box[2], anchor[2]), min(box[3], anchor[3])
    inter = max(0.0, y2 - y1) * max(0.0, x2 - x1)
    area = lambda b: (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area(box) + area(anchor) - inter)


def test_anchor_coverage_against_brute_force():
    from mrcnn.data.anchors import anchor_coverage
    rng = np.random.default_rng(4)
    anchors = generate_pyramid_anchors((8, 16), [0.5, 1, 2], [(8, 8), (4, 4)], [4, 8], 1)
    yx = rng.uniform(0, 24, (37, 2))
    hw = rng.uniform(4, 20, (37, 2))
    boxes = np.concatenate([yx, yx + hw], axis=1)
    got = anchor_coverage(boxes, anchors, threshold=0.6, chunk=5)
    ious = np.array([[_iou_loop(b, a) for a in anchors] for b in boxes])
    assert got["boxes"] == 37
    assert got["covered"] == pytest.approx(np.mean((ious >= 0.6).any(1)))
    assert got["positives_per_box"] == pytest.approx((ious >= 0.6).sum(1).mean())
    assert got["mean_best_iou"] == pytest.approx(ious.max(1).mean())


def test_anchor_coverage_hand_case_and_errors():
    from mrcnn.data.anchors import anchor_coverage
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], float)
    got = anchor_coverage([[0, 0, 10, 10], [0, 0, 10, 14]], anchors)
    # box 1: IoU 1.0 and 0.5; box 2: IoU 100/140 = 0.714 and 140/200 = 0.7
    assert got["covered"] == 1.0 and got["positives_per_box"] == 1.5
    assert got["mean_best_iou"] == pytest.approx((1.0 + 100 / 140) / 2)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        anchor_coverage(np.zeros(3), anchors)
    assert anchor_coverage(np.zeros((0, 4)), anchors)["boxes"] == 0


# ------------------------------------------------------------- anchors fitted to boxes
def _random_boxes(n, height, width, seed=0):
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, [height, width], (n, 2))
    half = rng.uniform(1.5, 40, (n, 2))
    return np.concatenate([np.clip(centre - half, 0, None),
                           np.minimum(centre + half, [height, width])], axis=1)


@pytest.mark.parametrize("stride,anchor_stride", [(4, 1), (8, 1), (16, 2), (64, 1)])
def test_best_anchor_iou_matches_brute_force(stride, anchor_stride):
    """The closed form equals the maximum IoU over every generated anchor of each size."""
    height, width = 200, 232
    boxes = _random_boxes(300, height, width)
    scales, ratios = [8, 11, 23, 64], [0.5, 1, 2]
    shape = compute_backbone_shapes((height, width), [stride])[0]
    brute = np.stack([box_iou(boxes, generate_anchors(s, ratios, shape, stride,
                                                      anchor_stride)).max(axis=1)
                      for s in scales], axis=1)
    fast = best_anchor_iou(boxes, scales, ratios, stride, (height, width), anchor_stride)
    np.testing.assert_allclose(fast, brute, atol=1e-5)


def _squares(sizes, centres):
    """Square boxes [n, 4] of the given sides centred at the given (y, x) points."""
    return np.array([[cy - s / 2, cx - s / 2, cy + s / 2, cx + s / 2]
                     for s in sizes for cy, cx in centres], np.float64)


def test_suggest_anchor_scales_one_size_per_level_when_it_covers_all():
    """32 px squares on the stride-64 grid: one size per level reaches IoU 1 for every box."""
    boxes = _squares([32], [(64, 64), (64, 128), (128, 64)])
    scales, stats = suggest_anchor_scales(boxes, (256, 256), [4, 8, 16, 32, 64], ratios=[1])
    assert all(isinstance(level, int) for level in scales) and len(scales) == 5
    assert 32 in scales and stats["covered"] == 1.0 and stats["mean_best_iou"] == 1.0


def test_suggest_anchor_scales_two_sizes_when_one_cannot():
    """16 and 23 px squares (IoU 0.48 with each other): no single size per level reaches
    0.7 with both, two per level do; min_gain decides whether the extra size is worth it."""
    boxes = _squares([16, 23], [(64, 64), (64, 128), (128, 128)])
    scales, stats = suggest_anchor_scales(boxes, (256, 256), [4, 8, 16, 32, 64], ratios=[1])
    assert all(len(level) == 2 for level in scales)
    assert stats["covered"] == 1.0
    # the stats are anchor_coverage of the suggested anchors, recomputed independently
    shapes = compute_backbone_shapes((256, 256), [4, 8, 16, 32, 64])
    anchors = generate_pyramid_anchors(scales, [1], shapes, [4, 8, 16, 32, 64], 1)
    assert anchor_coverage(boxes, anchors) == stats
    one, stats_one = suggest_anchor_scales(boxes, (256, 256), [4, 8, 16, 32, 64], ratios=[1],
                                           min_gain=0.6)
    assert all(isinstance(level, int) for level in one)
    assert stats_one["covered"] == 0.5


def test_suggest_anchor_scales_objectives():
    """Mostly 24 px squares and a few 6 px ones: the coverage objective ignores the small
    boxes no anchor reaches 0.7 with; the mean best IoU also serves them (a smaller size)."""
    boxes = np.concatenate([_squares([24], [(64, 64), (64, 128), (128, 64), (128, 128)]),
                            _squares([6], [(32, 192), (192, 32)])])
    args = ((256, 256), [4, 8, 16, 32, 64])
    by_cover, cover_stats = suggest_anchor_scales(boxes, *args, ratios=[1], objective="covered")
    by_mean, mean_stats = suggest_anchor_scales(boxes, *args, ratios=[1])
    assert cover_stats["covered"] >= mean_stats["covered"]
    assert mean_stats["mean_best_iou"] > cover_stats["mean_best_iou"]
    assert min(np.ravel(by_mean)) < min(np.ravel(by_cover))


def test_suggest_anchor_scales_errors():
    with pytest.raises(ValueError, match=r"non-empty \[n, \(y1, x1, y2, x2\)\].*\(0, 4\)"):
        suggest_anchor_scales(np.zeros((0, 4)), (64, 64), [4, 8])
    with pytest.raises(ValueError, match="max_per_level must be an integer in 1..8, got 0"):
        suggest_anchor_scales(_squares([16], [(32, 32)]), (64, 64), [4, 8], max_per_level=0)
    with pytest.raises(ValueError, match="threshold"):
        suggest_anchor_scales(_squares([16], [(32, 32)]), (64, 64), [4, 8], threshold=0)
    with pytest.raises(ValueError, match="objective must be 'mean_best_iou' or 'covered', got 'x'"):
        suggest_anchor_scales(_squares([16], [(32, 32)]), (64, 64), [4, 8], objective="x")
    with pytest.raises(ValueError, match="feature_strides must list at least one stride"):
        suggest_anchor_scales(_squares([16], [(32, 32)]), (64, 64), [])


class _Squares:
    """A stand-in dataset: image i holds squares (y, x, side) as instance masks."""

    def __init__(self, images, size=96):
        self.images, self.size = images, size
        self.image_ids = np.arange(len(images))

    def load_mask(self, image_id):
        squares = self.images[image_id]
        masks = np.zeros((self.size, self.size, len(squares)), bool)
        for n, (y, x, side) in enumerate(squares):
            masks[y:y + side, x:x + side, n] = True
        return masks, np.ones(len(squares), np.int32)


class _AnchorConfig:
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    RPN_ANCHOR_STRIDE = 1
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    IMAGE_SHAPE = np.array([64, 64, 3])


def test_dataset_anchor_scales_fits_the_masks_boxes_scaled_over_the_whole_image():
    data = _Squares([[(4, 4, 16), (40, 60, 23)], [(70, 70, 16)], []])
    scales, stats, base = dataset_anchor_scales(data, _AnchorConfig(), scale=2.0)
    boxes = np.array([[4, 4, 20, 20], [40, 60, 63, 83], [70, 70, 86, 86]], float) * 2
    # the grid spans the farthest box (172 px), past IMAGE_SHAPE's 64
    want, want_stats = suggest_anchor_scales(boxes, (172, 172), _AnchorConfig.BACKBONE_STRIDES)
    assert scales == want and stats == want_stats and stats["boxes"] == 3
    shapes = compute_backbone_shapes((172, 172), _AnchorConfig.BACKBONE_STRIDES)
    config_anchors = generate_pyramid_anchors(_AnchorConfig.RPN_ANCHOR_SCALES, [0.5, 1, 2],
                                              shapes, _AnchorConfig.BACKBONE_STRIDES, 1)
    assert base == anchor_coverage(boxes, config_anchors)
    assert stats["mean_best_iou"] > base["mean_best_iou"]
    # max_images: a seeded choice of that many images (1, 2, 4 and 8 boxes: every pair
    # has its own total), the same one each time
    counts = (1, 2, 4, 8)
    data = _Squares([[(10 * j, 10 * j, 8) for j in range(c)] for c in counts])
    totals = {a + b for i, a in enumerate(counts) for b in counts[i + 1:]}
    picks = {dataset_anchor_scales(data, _AnchorConfig(), max_images=2, seed=s)[1]["boxes"]
             for s in range(6)}
    assert picks <= totals and len(picks) > 1
    assert dataset_anchor_scales(data, _AnchorConfig(), max_images=None)[1]["boxes"] == 15
    assert dataset_anchor_scales(data, _AnchorConfig(), max_images=2, seed=4) == \
        dataset_anchor_scales(data, _AnchorConfig(), max_images=2, seed=4)


def test_dataset_anchor_scales_without_instances_is_a_clear_error():
    with pytest.raises(ValueError, match="the 2 images read hold no instances"):
        dataset_anchor_scales(_Squares([[], []]), _AnchorConfig())
