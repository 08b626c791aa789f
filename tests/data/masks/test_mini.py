import time

import numpy as np
import pytest
import skimage.transform

from mrcnn.data.masks import expand_mask, minimize_mask, paste_masks, unmold_mask
from mrcnn.data.masks.mini import paste_blocks, paste_soft_masks, paste_values, write_blocks

# Backend-independent: NumPy mini-mask shrinking and pasting; no Keras op.
pytestmark = pytest.mark.backend_independent


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def _reference_paste(mask, box, image_shape, threshold=0.5):
    """Slow reference: skimage-resize one mask to its box, threshold, place it."""
    y1, x1, y2, x2 = (int(v) for v in box)
    h, w = image_shape[:2]
    out = np.zeros((h, w), bool)
    if y2 <= y1 or x2 <= x1:
        return out
    resized = skimage.transform.resize(mask.astype(float), (y2 - y1, x2 - x1), order=1,
                                       mode="edge", preserve_range=True,
                                       anti_aliasing=False) >= threshold
    # place into a canvas large enough for boxes that stick out, then crop
    pad = max(-y1, -x1, y2 - h, x2 - w, 0)
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), bool)
    canvas[y1 + pad:y2 + pad, x1 + pad:x2 + pad] = resized
    return canvas[pad:pad + h, pad:pad + w]


def _ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def test_minimize_expand_round_trip():
    shape = (120, 160)
    masks = np.zeros(shape + (3,), bool)
    masks[10:50, 20:90, 0] = True                      # rectangle
    masks[..., 1] = _ellipse(shape, 80, 100, 25, 40)   # ellipse
    masks[100:103, 5:150, 2] = True                    # thin bar (upsampled rows)
    boxes = np.array([[10, 20, 50, 90], [55, 60, 106, 141], [100, 5, 103, 150]])
    mini = minimize_mask(boxes, masks, (56, 56))
    assert mini.shape == (56, 56, 3) and mini.dtype == bool
    assert mini[..., 0].all() and mini[..., 2].all()
    back = expand_mask(boxes, mini, shape)
    assert back.shape == shape + (3,)
    np.testing.assert_array_equal(back[..., 0], masks[..., 0])
    np.testing.assert_array_equal(back[..., 2], masks[..., 2])
    assert _iou(back[..., 1], masks[..., 1]) > 0.95


def test_minimize_matches_per_instance_reference():
    rng = np.random.default_rng(0)
    shape = (90, 110)
    n = 6
    masks = np.zeros(shape + (n,), bool)
    boxes = np.zeros((n, 4), int)
    for i in range(n):
        cy, cx = rng.integers(20, 70), rng.integers(20, 90)
        ry, rx = rng.integers(3, 20), rng.integers(3, 20)
        masks[..., i] = _ellipse(shape, cy, cx, ry, rx)
        ys, xs = np.nonzero(masks[..., i])
        boxes[i] = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
    mini = minimize_mask(boxes, masks, (28, 28))
    for i in range(n):
        y1, x1, y2, x2 = boxes[i]
        expected = skimage.transform.resize(
            masks[y1:y2, x1:x2, i].astype(float), (28, 28), order=1, mode="edge",
            preserve_range=True, anti_aliasing=False) >= 0.5
        assert _iou(mini[..., i], expected) >= 0.95


def test_minimize_zero_area_and_outside_boxes():
    masks = np.ones((20, 20, 3), bool)
    boxes = np.array([[5, 5, 5, 10], [3, 3, 8, 8], [25, 25, 30, 30]])
    mini = minimize_mask(boxes, masks, (7, 7))
    assert not mini[..., 0].any() and mini[..., 1].all() and not mini[..., 2].any()
    assert minimize_mask(np.zeros((0, 4)), np.zeros((20, 20, 0), bool), (7, 7)).shape == (7, 7, 0)


def test_paste_masks_matches_reference():
    rng = np.random.default_rng(1)
    image_shape = (120, 150)
    n = 25
    y1 = rng.integers(-15, 110, n)
    x1 = rng.integers(-15, 140, n)
    boxes = np.stack([y1, x1, y1 + rng.integers(1, 60, n), x1 + rng.integers(1, 60, n)], 1)
    # smooth blobs, so that resizing differences are only at the edges
    yy, xx = np.mgrid[0:28, 0:28] / 27.0
    centers = rng.random((n, 2))
    masks = np.exp(-((yy - centers[:, :1, None]) ** 2 + (xx - centers[:, 1:, None]) ** 2)
                   / 0.1).astype(np.float32)
    got = paste_masks(masks, boxes, image_shape)
    assert got.shape == image_shape + (n,) and got.dtype == bool
    for i in range(n):
        expected = _reference_paste(masks[i], boxes[i], image_shape)
        assert _iou(got[..., i], expected) >= 0.95, i


def test_paste_random_masks_agree_pixel_for_pixel():
    # Same interpolation as the reference: only float ties could differ.
    rng = np.random.default_rng(2)
    image_shape = (80, 90)
    n = 60
    y1, x1 = rng.integers(-10, 75, n), rng.integers(-10, 85, n)
    boxes = np.stack([y1, x1, y1 + rng.integers(1, 50, n), x1 + rng.integers(1, 50, n)], 1)
    masks = rng.random((n, 14, 14)).astype(np.float32)
    got = paste_masks(masks, boxes, image_shape)
    expected = np.stack([_reference_paste(masks[i], boxes[i], image_shape)
                         for i in range(n)], -1)
    assert (got != expected).mean() < 1e-4


def test_paste_all_ones_is_exactly_the_clipped_box():
    image_shape = (50, 60)
    boxes = np.array([[5, 7, 20, 31], [-4, 50, 10, 70], [30, 10, 31, 11], [40, 40, 40, 45]])
    masks = np.ones((4, 28, 28), np.float32)
    got = paste_masks(masks, boxes, image_shape)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        expected = np.zeros(image_shape, bool)
        expected[max(y1, 0):y2, max(x1, 0):x2] = True
        np.testing.assert_array_equal(got[..., i], expected)
        np.testing.assert_array_equal(_reference_paste(masks[i], boxes[i], image_shape),
                                      expected)


def test_paste_threshold_and_empty():
    masks = np.full((1, 4, 4), 0.6, np.float32)
    box = np.array([[0, 0, 8, 8]])
    assert paste_masks(masks, box, (10, 10), threshold=0.5)[..., 0].sum() == 64
    assert paste_masks(masks, box, (10, 10), threshold=0.7).sum() == 0
    empty = paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), (10, 12))
    assert empty.shape == (10, 12, 0) and empty.dtype == bool
    with pytest.raises(ValueError, match=r"boxes must be \[N=1"):
        paste_masks(masks, np.zeros((2, 4)), (10, 10))


def test_unmold_mask_single_instance():
    mask = np.zeros((28, 28), np.float32)
    mask[7:21, 7:21] = 1.0
    box = (10, 20, 66, 76)
    got = unmold_mask(mask, box, (100, 100, 3))
    assert got.shape == (100, 100)
    np.testing.assert_array_equal(got, _reference_paste(mask, box, (100, 100)))
    np.testing.assert_array_equal(got, paste_masks(mask[None], np.array([box]),
                                                   (100, 100))[..., 0])


def test_paste_many_instances_is_fast():
    rng = np.random.default_rng(0)
    n = 200
    y1, x1 = rng.integers(-10, 500, n), rng.integers(-10, 680, n)
    boxes = np.stack([y1, x1, y1 + rng.integers(5, 80, n), x1 + rng.integers(5, 80, n)], 1)
    masks = rng.random((n, 28, 28)).astype(np.float32)
    paste_masks(masks, boxes, (520, 704))
    start = time.perf_counter()
    paste_masks(masks, boxes, (520, 704))
    assert time.perf_counter() - start < 1.0  # ~0.04 s measured on 2 CPU cores


def _reference_values(mask, box, image_shape, cover=None):
    """Brute force: the bilinear value at every pixel whose centre lies in a (fractional) box
    (or in `cover`, the mask still placed by `box`, its edges repeated beyond)."""
    mh, mw = mask.shape
    y1, x1, y2, x2 = (float(v) for v in box)
    cy1, cx1, cy2, cx2 = (float(v) for v in (box if cover is None else cover))
    out = np.zeros(image_shape, np.float64)
    for y in range(image_shape[0]):
        for x in range(image_shape[1]):
            if not (cy1 <= y + 0.5 < cy2 and cx1 <= x + 0.5 < cx2):
                continue
            sy = min(max((y + 0.5 - y1) * mh / (y2 - y1) - 0.5, 0), mh - 1)
            sx = min(max((x + 0.5 - x1) * mw / (x2 - x1) - 0.5, 0), mw - 1)
            r0, c0 = int(np.floor(sy)), int(np.floor(sx))
            r1, c1 = min(r0 + 1, mh - 1), min(c0 + 1, mw - 1)
            fy, fx = sy - r0, sx - c0
            out[y, x] = ((1 - fy) * ((1 - fx) * mask[r0, c0] + fx * mask[r0, c1])
                         + fy * ((1 - fx) * mask[r1, c0] + fx * mask[r1, c1]))
    return out


def test_paste_soft_masks_are_the_values_the_binary_masks_threshold():
    rng = np.random.default_rng(3)
    image_shape = (70, 90)
    n = 40
    y1, x1 = rng.integers(-10, 65, n), rng.integers(-10, 85, n)
    boxes = np.stack([y1, x1, y1 + rng.integers(0, 40, n), x1 + rng.integers(0, 40, n)], 1)
    masks = rng.random((n, 14, 14)).astype(np.float32)
    soft = paste_soft_masks(masks, boxes, image_shape)
    assert soft.shape == image_shape + (n,) and soft.dtype == np.float32
    for threshold in (0.5, 0.25, 0.8, 1e-6):           # exactly the same pixels
        np.testing.assert_array_equal(soft >= threshold,
                                      paste_masks(masks, boxes, image_shape, threshold))
    for i in range(n):                                 # and the bilinear values
        np.testing.assert_allclose(soft[..., i], _reference_values(masks[i], boxes[i],
                                                                   image_shape), atol=1e-6)
    # all-ones masks: exactly 1 on the clipped box, 0 elsewhere
    ones = paste_soft_masks(np.ones((1, 5, 5)), [[-3, 4, 6, 9]], (8, 8))
    expected = np.zeros((8, 8), np.float32)
    expected[0:6, 4:8] = 1
    np.testing.assert_array_equal(ones[..., 0], expected)


def test_paste_values_fractional_boxes_and_masks_of_any_size():
    rng = np.random.default_rng(4)
    image_shape = (30, 40)
    masks = [rng.random((3, 5)), rng.random((7, 2)), rng.random((4, 4)), rng.random((2, 2))]
    boxes = np.array([[2.3, 4.6, 11.2, 19.9], [-3.4, 30.2, 8.8, 45.0], [10, 10, 10, 20],
                      [25.6, 0.2, 25.9, 3.0]])     # a zero-height and a pixel-thin box
    inst, ys, xs, values = paste_values(masks, boxes, image_shape)
    assert values.dtype == np.float32
    key = inst * 10_000 + ys * 100 + xs                 # instance, then row-major order
    assert np.all(np.diff(key) > 0)
    for i, mask in enumerate(masks):
        expected = _reference_values(mask, boxes[i], image_shape)
        got = np.zeros(image_shape)
        got[ys[inst == i], xs[inst == i]] = values[inst == i]
        np.testing.assert_allclose(got, expected, atol=1e-6)
        covered = np.zeros(image_shape, bool)
        covered[ys[inst == i], xs[inst == i]] = True
        y1, x1, y2, x2 = boxes[i]
        yc, xc = np.mgrid[0:30, 0:40] + 0.5
        np.testing.assert_array_equal(covered, (yc >= y1) & (yc < y2) & (xc >= x1) & (xc < x2))
    assert np.sum(inst == 2) == 0 and np.sum(inst == 3) == 0   # no pixel centre inside
    with pytest.raises(ValueError, match=r"masks\[1\] must be a 2-D \[mh, mw\] array, got "
                                         r"shape \(3,\)"):
        paste_values([np.ones((2, 2)), np.ones(3)], np.zeros((2, 4)), (5, 5))
    with pytest.raises(ValueError, match="boxes must be finite"):
        paste_values(np.ones((1, 2, 2)), [[0, 0, np.nan, 3]], (5, 5))
    with pytest.raises(ValueError, match=r"masks\[0\] of shape \(0, 2\)"):
        paste_values([np.ones((0, 2))], [[0, 0, 2, 2]], (5, 5))


def test_paste_blocks_with_cover_boxes_against_brute_force():
    """The blocks (what detect() writes into its dense masks) hold the brute-force values on
    the cover box's pixels, and exactly paste_values' entries (detect()'s sparse masks: the
    vectorized per-pixel implementation)."""
    rng = np.random.default_rng(5)
    image_shape = (40, 50)
    n = 12
    masks = rng.random((n, 6, 8)).astype(np.float32)
    boxes = np.sort(rng.uniform(-8, 55, (n, 2, 2)), axis=1).reshape(n, 4)   # y1 x1 y2 x2
    cover = np.round(boxes + rng.uniform(-2.5, 2.5, (n, 4)))
    cover[3] = [10, 10, 10, 30]                       # covers nothing
    blocks = paste_blocks(masks, boxes, image_shape, cover=cover)
    assert len(blocks) == n and blocks[3][2].shape == (0, 0)
    assert sum(b.size > 0 for _, _, b in blocks) >= n - 3
    soft = write_blocks(np.zeros(image_shape + (n,), np.float32), blocks)
    binary = write_blocks(np.zeros(image_shape + (n,), bool), blocks, threshold=0.6)
    for i in range(n):
        expected = _reference_values(masks[i], boxes[i], image_shape, cover[i])
        np.testing.assert_allclose(soft[..., i], expected, atol=1e-6)
        np.testing.assert_array_equal(binary[..., i], soft[..., i] >= 0.6)
    inst, ys, xs, values = paste_values(masks, boxes, image_shape, cover=cover)
    np.testing.assert_array_equal(soft[ys, xs, inst], values)        # bit for bit
    assert values.size == sum(b.size for _, _, b in blocks)
    ragged = [m[: 3 + i % 4] for i, m in enumerate(masks)]          # masks of several sizes
    inst, ys, xs, values = paste_values(ragged, boxes, image_shape, cover=cover)
    soft = write_blocks(np.zeros(image_shape + (n,), np.float32),
                        paste_blocks(ragged, boxes, image_shape, cover=cover))
    np.testing.assert_array_equal(soft[ys, xs, inst], values)
    assert np.count_nonzero(soft) == np.count_nonzero(values)
