"""Tests for mrcnn/visualize.py: saved pictures, rendered pixel colours, plot data.

Pictures are rendered headless (Agg). Pixel checks draw into an Axes that
fills a figure whose size is an exact multiple of the image size, so image
pixel ``(r, c)`` becomes a known block of screen pixels.
"""

import csv
import os
import warnings

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import imread  # noqa: E402
from skimage.draw import ellipse  # noqa: E402

from mrcnn import visualize  # noqa: E402
from mrcnn.config import Config  # noqa: E402


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _png(path):
    """Saved PNG as uint8 [H, W, C]."""
    return np.rint(imread(path) * 255).astype(np.uint8)


def _assert_picture(path, figsize):
    """A non-empty PNG of figsize * DPI pixels with real content."""
    assert os.path.getsize(path) > 0
    img = _png(path)
    assert img.shape[:2] == (round(figsize[1] * visualize.DPI), round(figsize[0] * visualize.DPI))
    colours = np.unique(img[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 10, f"{path} is (almost) a single colour"


def _exact_axes(height, width, scale):
    """Figure of (width*scale, height*scale) pixels with one Axes filling it."""
    fig = Figure(figsize=(width * scale / visualize.DPI, height * scale / visualize.DPI),
                 dpi=visualize.DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_axes([0, 0, 1, 1])


def _rendered(fig):
    """The drawn figure as uint8 [H, W, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _block(rendered, r0, r1, c0, c1, scale):
    """Screen pixels of image rows r0:r1, cols c0:c1 (RGB)."""
    return rendered[r0 * scale:r1 * scale, c0 * scale:c1 * scale, :3]


def _rects(shape, *regions):
    """bool [H, W, N] masks from (y1, x1, y2, x2) rectangles (y2, x2 exclusive)."""
    masks = np.zeros(shape + (len(regions),), bool)
    for k, (y1, x1, y2, x2) in enumerate(regions):
        masks[y1:y2, x1:x2, k] = True
    return masks


def _boxes(regions):
    return np.array(regions, dtype=np.int32).reshape(-1, 4)


def phase_contrast_cells(n=200, shape=(520, 704), seed=0):
    """Gray uint8 image resembling phase contrast, and bool [H, W, n] cell masks.

    Cells are ellipses (radii 6..16 px) on a jittered grid: dark interior,
    bright halo, on a gray, slowly varying, noisy background.
    """
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    h, w = shape
    rows = int(np.ceil(np.sqrt(n * h / w)))
    cols = int(np.ceil(n / rows))
    gy, gx = np.meshgrid((np.arange(rows) + 0.5) * h / rows,
                         (np.arange(cols) + 0.5) * w / cols, indexing="ij")
    centres = np.stack([gy.ravel(), gx.ravel()], 1)[:n] + rng.uniform(-6, 6, (n, 2))
    masks = np.zeros((h, w, n), bool)
    for k, (cy, cx) in enumerate(centres):
        rr, cc = ellipse(cy, cx, rng.uniform(6, 16), rng.uniform(6, 16), shape=shape,
                         rotation=rng.uniform(0, np.pi))
        masks[rr, cc, k] = True
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 10 * np.sin(yy / 90.0) * np.cos(xx / 130.0) + rng.normal(0, 6, shape)
    cells = masks.any(axis=2)
    img[cells] -= 25
    img[ndimage.binary_dilation(cells, iterations=2) & ~cells] += 45
    return np.clip(ndimage.gaussian_filter(img, 0.8), 0, 255).astype(np.uint8), masks


# ---------------------------------------------------------------------------
# Colours and blending
# ---------------------------------------------------------------------------

def test_random_colors_are_evenly_spaced_hues_and_reproducible():
    from matplotlib.colors import rgb_to_hsv
    colors = visualize.random_colors(6)
    assert colors == visualize.random_colors(6)
    hsv = rgb_to_hsv(np.array(colors))
    np.testing.assert_allclose(np.sort(hsv[:, 0]), np.arange(6) / 6, atol=1e-9)
    np.testing.assert_allclose(hsv[:, 1:], 1.0)
    dim = rgb_to_hsv(np.array(visualize.random_colors(4, bright=False)))
    np.testing.assert_allclose(dim[:, 2], 0.7)
    assert visualize.random_colors(0) == []
    with pytest.raises(ValueError, match="non-negative integer"):
        visualize.random_colors(-1)


def test_apply_mask_blends_in_place_hand_values():
    image = np.full((3, 4, 3), 100, np.uint8)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    out = visualize.apply_mask(image, mask, (1.0, 0.2, 0.0), alpha=0.4)
    assert out is image
    # 0.6 * 100 + 0.4 * 255 * (1, 0.2, 0) = (162, 80.4, 60) -> (162, 80, 60)
    np.testing.assert_array_equal(image[1, 1], [162, 80, 60])
    np.testing.assert_array_equal(image[1, 2], [162, 80, 60])
    assert (image[~mask] == 100).all()
    floats = np.zeros((2, 2, 3))
    visualize.apply_mask(floats, np.eye(2, dtype=bool), (0.5, 0.5, 0.5, 1.0), alpha=1.0)
    np.testing.assert_allclose(floats[0, 0], 127.5)
    with pytest.raises(ValueError, match=r"mask must be \[H, W\]"):
        visualize.apply_mask(image, np.zeros((2, 2), bool), (1, 0, 0))


# ---------------------------------------------------------------------------
# display_instances
# ---------------------------------------------------------------------------

def test_display_instances_pixels_take_the_instance_colour(tmp_path):
    scale, h, w = 4, 40, 60
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    regions = [(10, 5, 30, 25), (12, 30, 36, 55), (20, 45, 34, 58)]   # 3rd overlaps 2nd
    masks = _rects((h, w), *regions)
    colors = [(0.2, 0.6, 1.0), (1.0, 0.4, 0.0), (0.0, 1.0, 0.4)]
    alpha = 0.3
    fig, ax = _exact_axes(h, w, scale)
    path = visualize.display_instances(image, _boxes(regions), masks, np.array([1, 2, 1]),
                                       ["BG", "a", "b"], np.array([0.9, 0.8, 0.7]),
                                       ax=ax, colors=colors, alpha=alpha,
                                       save_path=tmp_path / "inst.png")
    assert path == str(tmp_path / "inst.png")
    rendered = _png(path)
    assert rendered.shape[:2] == (h * scale, w * scale)

    def expected(k, r0, r1, c0, c1):
        return np.rint((1 - alpha) * image[r0:r1, c0:c1].astype(np.float64)
                       + alpha * 255 * np.array(colors[k])).astype(np.uint8)

    # Interiors, 3 px clear of outlines and boxes, below the labels.
    for k, (r0, r1, c0, c1) in [(0, (16, 27, 8, 22)), (1, (16, 33, 33, 42))]:
        got = _block(rendered, r0, r1, c0, c1, scale)
        want = np.repeat(np.repeat(expected(k, r0, r1, c0, c1), scale, 0), scale, 1)
        np.testing.assert_array_equal(got, want)
    # Where masks 1 and 2 overlap, the later instance (2) is on top, blended once.
    got = _block(rendered, 24, 31, 48, 52, scale)
    want = np.repeat(np.repeat(expected(2, 24, 31, 48, 52), scale, 0), scale, 1)
    np.testing.assert_array_equal(got, want)
    # Far from every instance the image is unchanged.
    np.testing.assert_array_equal(_block(rendered, 36, 40, 0, 4, scale),
                                  np.repeat(np.repeat(image[36:40, 0:4], scale, 0), scale, 1))


def test_display_instances_grayscale_and_16bit_images():
    scale, h, w = 3, 30, 40
    gray = np.full((h, w), 90, np.uint8)
    masks = _rects((h, w), (8, 8, 26, 30))
    fig, ax = _exact_axes(h, w, scale)
    visualize.display_instances(gray, None, masks, [1], ["BG", "cell"], ax=ax,
                                colors=[(1.0, 0.0, 0.0)], alpha=0.5, show_bbox=False)
    rendered = _rendered(fig)
    # gray 90 -> (0.5 * 90 + 0.5 * 255, 0.5 * 90, 0.5 * 90) = (172.5, 45, 45) -> 172 (even)
    assert (_block(rendered, 14, 22, 12, 26, scale) == [172, 45, 45]).all()
    assert (_block(rendered, 0, 5, 0, 5, scale) == 90).all()

    # 16-bit: stretched so that the 0.5th..99.5th percentiles span 0..255.
    img16 = np.full((h, w), 1000, np.uint16)
    img16[:, w // 2:] = 3000
    fig, ax = _exact_axes(h, w, scale)
    visualize.display_instances(img16, np.zeros((0, 4)), np.zeros((h, w, 0), bool), [],
                                ["BG"], ax=ax)
    rendered = _rendered(fig)
    assert (_block(rendered, 0, h, 0, w // 2, scale) == 0).all()
    assert (_block(rendered, 0, h, w // 2, w, scale) == 255).all()
    assert "no instances" in ax.get_title()


def test_display_instances_labels_never_overlap_and_title_counts_hidden():
    rng = np.random.default_rng(3)
    h, w, n = 120, 160, 30
    y1 = rng.integers(0, h - 20, n)
    x1 = rng.integers(0, w - 20, n)
    regions = [(a, b, a + 15, b + 18) for a, b in zip(y1, x1)]
    fig, ax = _exact_axes(h, w, 4)
    visualize.display_instances(np.zeros((h, w, 3), np.uint8), _boxes(regions),
                                _rects((h, w), *regions), np.ones(n, int), ["BG", "cell"],
                                rng.uniform(0.5, 1, n), ax=ax)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    extents = np.array([t.get_window_extent(renderer).extents for t in ax.texts])
    bbox = np.array([t.get_bbox_patch().get_window_extent(renderer).extents
                     for t in ax.texts])
    assert 0 < len(ax.texts) < n
    for e in (extents, bbox):
        x0, y0, x1, y1 = e.T
        overlap = ((x0[:, None] < x1[None] - 1) & (x0[None] < x1[:, None] - 1)
                   & (y0[:, None] < y1[None] - 1) & (y0[None] < y1[:, None] - 1))
        np.fill_diagonal(overlap, False)
        assert not overlap.any()
    assert f"{n - len(ax.texts)} of {n} labels hidden to avoid overlap" in ax.get_title()


def test_display_instances_four_identical_boxes_get_three_labels():
    h, w = 100, 100
    regions = [(40, 30, 60, 70)] * 4
    fig, ax = _exact_axes(h, w, 4)
    visualize.display_instances(np.zeros((h, w), np.uint8), _boxes(regions),
                                _rects((h, w), *regions), [1, 1, 1, 1], ["BG", "c"],
                                [0.9, 0.8, 0.7, 0.6], ax=ax)
    # Above the box, inside its top, below it; the fourth label has no room.
    assert sorted(t.get_text() for t in ax.texts) == ["c 0.70", "c 0.80", "c 0.90"]
    assert "1 of 4 labels hidden" in ax.get_title()


def test_display_instances_200_cells_phase_contrast(tmp_path):
    image, masks = phase_contrast_cells()
    h, w, n = masks.shape
    fig, ax = _exact_axes(h, w, 1)
    visualize.display_instances(image, None, masks, np.ones(n, int), ["BG", "cell"],
                                np.linspace(1, 0.5, n), title="cells", ax=ax)
    assert len(ax.texts) == 0                 # too many instances for labels
    assert "200 instances, labels hidden (more than max_labels=60)" in ax.get_title()
    rendered = _rendered(fig).astype(int)
    # Inside every cell, 3 px clear of any outline, the fill colour shows on the gray.
    from scipy import ndimage
    top = np.full((h, w), -1)
    for k in range(n):                                   # later instances on top
        top[masks[..., k]] = k
    clear = ((ndimage.minimum_filter(top, 7) == top) & (ndimage.maximum_filter(top, 7) == top)
             & (top >= 0))
    labels, first = np.unique(top[clear], return_index=True)
    assert labels.tolist() == list(range(n))
    ys, xs = np.nonzero(clear)
    ys, xs = ys[first], xs[first]
    colors = np.array(visualize.random_colors(n))
    want = np.rint(0.5 * image[ys, xs, None] + 0.5 * 255 * colors[labels])
    np.testing.assert_array_equal(rendered[ys, xs], want)
    assert (np.abs(rendered[ys, xs] - image[ys, xs, None].astype(int)).max(axis=1) > 40).all()
    path = visualize.display_instances(image, None, masks, np.ones(n, int), ["BG", "cell"],
                                       figsize=(8, 6), save_path=tmp_path / "cells.png")
    _assert_picture(path, (8, 6))


def test_display_instances_rejects_bad_inputs():
    image = np.zeros((10, 10, 3), np.uint8)
    masks = _rects((10, 10), (1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"masks must be bool \[H, W, N\]"):
        visualize.display_instances(image, _boxes([(1, 1, 5, 5)]), masks[:5], [1], ["BG", "a"])
    with pytest.raises(ValueError, match="class id 3 has no entry"):
        visualize.display_instances(image, _boxes([(1, 1, 5, 5)]), masks, [3], ["BG", "a"])
    with pytest.raises(ValueError, match="scores has 2 entries for 1 instances"):
        visualize.display_instances(image, _boxes([(1, 1, 5, 5)]), masks, [1], ["BG", "a"],
                                    [0.5, 0.6])
    with pytest.raises(ValueError, match="image must be"):
        visualize.display_instances(np.zeros((10, 10, 5)), None, masks, [1], ["BG", "a"])


# ---------------------------------------------------------------------------
# Return value and saving conventions
# ---------------------------------------------------------------------------

def test_return_conventions_under_agg(tmp_path):
    image = np.zeros((16, 16), np.uint8)
    masks = _rects((16, 16), (2, 2, 8, 8))
    args = (image, None, masks, [1], ["BG", "a"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # e.g. "FigureCanvasAgg is non-interactive"
        fig = visualize.display_instances(*args, figsize=(3, 3))
    assert isinstance(fig, matplotlib.figure.Figure)
    import matplotlib.pyplot as plt
    plt.close(fig)
    own_fig, own_ax = _exact_axes(16, 16, 4)
    assert visualize.display_instances(*args, ax=own_ax) is None
    nested = tmp_path / "a" / "b" / "x.png"
    assert visualize.display_instances(*args, figsize=(3, 2), save_path=nested) == str(nested)
    _assert_picture(nested, (3, 2))


# ---------------------------------------------------------------------------
# Other pictures: each saves a non-empty PNG of the expected size
# ---------------------------------------------------------------------------

def test_display_images_and_top_masks(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 30), dtype=np.uint8),
              rng.integers(0, 4096, (20, 30, 1)).astype(np.uint16),
              rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
              rng.random((20, 30, 4))]
    path = visualize.display_images(images, titles=list("abcd"), cols=2, figsize=(6, 4),
                                    save_path=tmp_path / "images.png")
    _assert_picture(path, (6, 4))
    with pytest.raises(ValueError, match="titles has 1 entries for 4 images"):
        visualize.display_images(images, titles=["x"])

    masks = _rects((20, 30), (1, 1, 10, 10), (5, 12, 18, 28), (12, 2, 19, 9))
    path = visualize.display_top_masks(images[2], masks, np.array([1, 2, 1]),
                                       ["BG", "small", "big"], figsize=(9, 2.5),
                                       save_path=tmp_path / "top.png")
    _assert_picture(path, (9, 2.5))
    fig = Figure()
    axes = fig.subplots(1, 3).ravel()
    visualize.display_top_masks(images[2], masks, np.array([1, 2, 1]),
                                ["BG", "small", "big"], ax=axes)
    # Classes by area: "big" (one 13 x 16 mask = 208 px) before "small" (81 + 49 = 130 px).
    assert [a.get_title() for a in axes] == [
        "20 x 30, 3 instances", "big: 1 instance, 34.7% of pixels",
        "small: 2 instances, 21.7% of pixels"]


def test_display_differences_colours_by_match(tmp_path):
    h, w, scale = 40, 60, 4
    gt_regions = [(5, 5, 20, 20), (5, 35, 20, 55)]          # 2nd is missed
    pred_regions = [(5, 5, 20, 21), (25, 30, 38, 50)]       # 1st matches, 2nd is false
    gt, pred = _rects((h, w), *gt_regions), _rects((h, w), *pred_regions)
    fig, ax = _exact_axes(h, w, scale)
    visualize.display_differences(np.full((h, w), 128, np.uint8), _boxes(gt_regions), [1, 1],
                                  gt, _boxes(pred_regions), [1, 1], [0.9, 0.8], pred,
                                  ["BG", "cell"], ax=ax)
    rendered = _rendered(fig).astype(int)
    tp = _block(rendered, 11, 17, 9, 16, scale).reshape(-1, 3).mean(0)
    fn = _block(rendered, 11, 17, 39, 51, scale).reshape(-1, 3).mean(0)
    fp = _block(rendered, 30, 35, 34, 46, scale).reshape(-1, 3).mean(0)
    assert tp[1] > tp[0] + 60 and tp[1] > tp[2] + 60       # green
    assert fp[0] > fp[1] + 60 and fp[0] > fp[2] + 60       # red
    assert fn[0] > fn[2] + 60 and fn[1] > fn[2] + 60       # yellow
    assert "1 matched, 1 false positive, 1 missed" in ax.get_title()
    texts = sorted(t.get_text() for t in ax.texts)
    # IoU of the match: 225 / 240; the false positive overlaps no gt.
    assert texts == ["0.80 / 0.00", "0.90 / 0.94", "missed"]
    path = visualize.display_differences(np.zeros((h, w, 3), np.uint8), _boxes(gt_regions),
                                         [1, 1], gt, _boxes(pred_regions), [1, 1],
                                         [0.9, 0.8], pred, ["BG", "cell"], figsize=(5, 4),
                                         save_path=tmp_path / "diff.png")
    _assert_picture(path, (5, 4))


def test_draw_boxes_with_refinement_arrows(tmp_path):
    image = np.full((50, 50), 100, np.uint8)
    boxes = np.array([[5, 5, 20, 20], [25, 25, 45, 40], [0, 30, 10, 45]], float)
    refined = boxes + [[2, 3, 2, 3], [-4, 0, -4, 0], [0, 0, 0, 0]]
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    visualize.draw_boxes(image, boxes, refined, captions=["a", "b", "c"],
                         visibilities=[2, 1, 0], ax=ax)
    quiver = [c for c in ax.collections if type(c).__name__ == "Quiver"][0]
    # One arrow per visible box, from the box centre to the refined centre.
    np.testing.assert_allclose(quiver.U, [3, 0])
    np.testing.assert_allclose(quiver.V, [2, -4])
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b"]
    path = visualize.draw_boxes(image, boxes, refined, masks=_rects((50, 50), (5, 5, 20, 20),
                                                                    (25, 25, 45, 40),
                                                                    (0, 30, 10, 45)),
                                figsize=(4, 4), save_path=tmp_path / "boxes.png")
    _assert_picture(path, (4, 4))
    with pytest.raises(ValueError, match="visibilities"):
        visualize.draw_boxes(image, boxes, visibilities=[3, 2, 2])


def test_display_anchors_sizes_and_targets(tmp_path):
    from mrcnn.data.anchors import generate_anchors
    from mrcnn.data.rpn_targets import rpn_targets
    image = np.full((64, 64), 120, np.uint8)
    anchors = np.concatenate([generate_anchors(8, [0.5, 1, 2], (16, 16), 4, 1),
                              generate_anchors(16, [0.5, 1, 2], (8, 8), 8, 1)])
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    visualize.display_anchors(image, anchors, ax=ax)
    drawn = ax.collections[0].get_paths()
    assert len(drawn) == 6                                  # 2 scales x 3 ratios
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["8 px", "16 px"]
    path = visualize.display_anchors(image, anchors, figsize=(4, 4),
                                     save_path=tmp_path / "anchors.png")
    _assert_picture(path, (4, 4))

    gt = np.array([[10, 10, 26, 30], [40, 36, 56, 52]], np.float32)
    match, bbox = rpn_targets(anchors, gt, np.array([1, 1]), 64, np.array([0.1, 0.1, 0.2, 0.2]),
                              rng=np.random.default_rng(0))
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    visualize.display_anchors(image, anchors, match, bbox, gt_boxes=gt, max_negatives=5, ax=ax)
    pos, neg = int((match == 1).sum()), int((match == -1).sum())
    assert f"{pos} positive, {neg} negative (5 shown)" in ax.get_title()
    quiver = [c for c in ax.collections if type(c).__name__ == "Quiver"][0]
    # Refined positive anchors land on their gt boxes: the arrows end at gt centres.
    ends = np.stack([quiver.X + quiver.U, quiver.Y + quiver.V], 1) + 0.5
    centres = np.array([[(b[1] + b[3]) / 2, (b[0] + b[2]) / 2] for b in gt])
    dist = np.abs(ends[:, None, :] - centres[None]).max(-1).min(1)
    np.testing.assert_allclose(dist, 0, atol=1e-3)
    path = visualize.display_anchors(image, anchors, match, bbox, gt_boxes=gt, figsize=(5, 4),
                                     save_path=tmp_path / "targets.png")
    _assert_picture(path, (5, 4))


# ---------------------------------------------------------------------------
# Score plots
# ---------------------------------------------------------------------------

def test_plot_precision_recall(tmp_path):
    p, r = np.array([0, 1, 0.5, 0]), np.array([0, 0.5, 0.5, 1])
    path = visualize.plot_precision_recall(0.5, p, r, figsize=(3, 3),
                                           save_path=tmp_path / "pr.png")
    _assert_picture(path, (3, 3))
    fig = Figure()
    ax = fig.add_subplot()
    visualize.plot_precision_recall(0.5, p, r, ax=ax)
    assert ax.get_title() == "Precision-recall curve, AP@50 = 0.500"


def test_plot_precision_recall_iou_per_class(tmp_path):
    h, w = 20, 40
    # Class 1 ("astro"): two gt cells, one prediction with IoU 0.6 on the first.
    # Class 2 ("cort"): one gt cell matched exactly.
    gt = _rects((h, w), (0, 0, 10, 10), (0, 20, 10, 30), (12, 0, 20, 8))
    pred = np.zeros((h, w, 2), bool)
    pred[0:10, 0:10, 0] = True
    pred[0:5, 0:5, 0] = False
    pred[0:5, 10:15, 0] = True                      # IoU 75 / 125 = 0.6
    pred[12:20, 0:8, 1] = True
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_precision_recall_iou(gt, [1, 1, 2], pred, [1, 2],
                                        class_names=["BG", "astro", "cort"],
                                        thresholds=[0.5, 0.6, 0.9], ax=axes)
    lines = {(i, line.get_label().split(":")[0]): line.get_ydata()
             for i, a in enumerate(axes) for line in a.get_lines()}
    # Matches need IoU > threshold: the 0.6 pair counts at 0.5 only.
    np.testing.assert_allclose(lines[(0, "astro")], [1, 0, 0])
    np.testing.assert_allclose(lines[(1, "astro")], [0.5, 0, 0])
    np.testing.assert_allclose(lines[(2, "astro")], [0.5, 0, 0])
    np.testing.assert_allclose(lines[(2, "cort")], [1, 1, 1])
    np.testing.assert_allclose(lines[(2, "all (class-agnostic)")], [2 / 3, 1 / 4, 1 / 4])
    # Two images (the same one twice) pool their counts: same rates.
    path = visualize.plot_precision_recall_iou([gt, gt], [[1, 1, 2]] * 2, [pred, pred],
                                               [[1, 2]] * 2, figsize=(9, 3),
                                               save_path=tmp_path / "pr_iou.png")
    _assert_picture(path, (9, 3))


# ---------------------------------------------------------------------------
# Training plots
# ---------------------------------------------------------------------------

def _star(ax):
    line = [ln for ln in ax.get_lines() if ln.get_marker() == "*"][0]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


def test_plot_history_from_dict_history_and_csv(tmp_path):
    logs = {"loss": [3.0, 2.0, 1.5], "val_loss": [3.5, 1.0, 2.0],
            "mrcnn_mask_loss": [0.7, 0.5, 0.4], "val_mrcnn_mask_loss": [0.8, 0.7, 0.6],
            "rpn_class_loss": [0.3, 0.2, 0.1]}
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_history(logs, ax=axes)
    assert [a.get_title() for a in axes] == ["loss", "mrcnn_mask_loss", "rpn_class_loss"]
    # Best = lowest validation value (epochs counted from 1), else lowest training value.
    assert [_star(a) for a in axes] == [(2, 1.0), (3, 0.6), (3, 0.1)]

    class History:                                    # what keras.Model.fit returns
        history = logs
        epoch = [4, 5, 6]                             # a resumed run: 0-based epochs 4..6
    fig = Figure()
    ax = fig.add_subplot()
    visualize.plot_history(History(), metric="loss", ax=ax)
    assert _star(ax) == (6, 1.0)

    # history.csv as written by CSVLogger(append=True); epoch 1 logged twice
    # (resumed run): the later row wins.
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "loss", "val_loss"])
        writer.writerows([[0, 3.0, 3.0], [1, 2.0, 0.5], [1, 2.0, 2.5], [2, 1.0, 1.5]])
    fig = Figure()
    ax = fig.add_subplot()
    visualize.plot_history(path, ax=ax)
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [3.0, 2.5, 1.5])
    assert _star(ax) == (3, 1.5)
    out = visualize.plot_history(path, figsize=(5, 3), save_path=tmp_path / "h.png")
    _assert_picture(out, (5, 3))
    out = visualize.plot_history(logs, save_path=tmp_path / "all.png")
    _assert_picture(out, (15, 3.6))

    with pytest.raises(ValueError, match="history has no"):
        visualize.plot_history(logs, metric="mrcnn_bbox_loss")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        visualize.plot_history(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="keras History"):
        visualize.plot_history([1, 2, 3])


def test_plot_lr_schedule_warmup_and_decay(tmp_path):
    class Warm(Config):
        NAME = "warm"
        NUM_CLASSES = 2
        LEARNING_RATE = 0.01
        N_WARMUP_STEPS = 10
        LR_SCHEDULE = False
        STEPS_PER_EPOCH = 20

    fig = Figure()
    ax = fig.add_subplot()
    visualize.plot_lr_schedule(Warm(), epochs=3, ax=ax)
    x, lr = ax.get_lines()[0].get_xdata(), ax.get_lines()[0].get_ydata()
    assert len(lr) == 60
    # Linear warm-up: lr(step) = 0.01 * (step + 1) / 10, then constant.
    np.testing.assert_allclose(lr[[0, 4, 9, 10, 59]], [0.001, 0.005, 0.01, 0.01, 0.01],
                               rtol=1e-6)
    np.testing.assert_allclose(x[[0, 19, 59]], [0.05, 1.0, 3.0])
    assert "warm-up: 10 steps" in [t.get_text() for t in ax.get_legend().get_texts()]

    class Cosine(Warm):
        LR_SCHEDULE = "cosine"
    fig = Figure()
    ax = fig.add_subplot()
    visualize.plot_lr_schedule(Cosine(), epochs=3, steps=10, ax=ax)
    lr = ax.get_lines()[0].get_ydata()
    # After warm-up t = (step - 10) / 20; factor 0.01 + 0.99 * 0.5 * (1 + cos(pi t)).
    t = (np.arange(10, 30) - 10) / 20
    np.testing.assert_allclose(lr[10:], 0.01 * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * t))),
                               rtol=1e-5)
    path = visualize.plot_lr_schedule(Cosine(), epochs=3, figsize=(6, 3),
                                      save_path=tmp_path / "lr.png")
    _assert_picture(path, (6, 3))


def test_plot_cache_stats(tmp_path):
    stats = [{"hits": 0, "misses": 4, "bytes_stored": 2 * 2 ** 20, "compression_ratio": 3.0},
             {"hits": 3, "misses": 1, "bytes": 3 * 2 ** 20, "ratio": 2.5}]
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_cache_stats(stats, ax=axes)
    assert [t.get_text() for t in axes[0].texts] == ["0%", "75%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [2, 3])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [3.0, 2.5])
    path = visualize.plot_cache_stats(stats, figsize=(9, 3), save_path=tmp_path / "c.png")
    _assert_picture(path, (9, 3))
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_cache_stats([{"hits": 1, "misses": 1}], ax=axes)
    assert axes[2].texts[0].get_text() == "compression_ratio not reported"
    # CacheStats snapshots taken after each epoch: running totals.
    from mrcnn.data.cache import CacheStats
    snaps = [CacheStats(hits=0, misses=8, write_bytes=100, write_raw=300, size_bytes=2 ** 20),
             CacheStats(hits=6, misses=10, write_bytes=100, write_raw=300, read_bytes=60,
                        read_raw=120, size_bytes=2 ** 21)]
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_cache_stats(snaps, cumulative=True, ax=axes)
    # Epoch 2: 6 hits, 2 misses -> 75 %; ratio (300 + 120) / (100 + 60) = 2.625.
    assert [t.get_text() for t in axes[0].texts] == ["0%", "75%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [1, 2])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [3.0, 2.625])
    # The training history with CacheStatsLogger's columns (here the CSV file).
    path = tmp_path / "history.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "cache_hits", "cache_hit_rate", "cache_mb", "cache_misses",
                         "cache_ratio", "loss"])
        writer.writerows([[0, 0, 0.0, 1.5, 5, 0.0, 2.0], [1, 4, 0.8, 1.5, 1, 2.0, 1.0]])
    fig = Figure()
    axes = fig.subplots(1, 3)
    visualize.plot_cache_stats(path, ax=axes)
    assert [t.get_text() for t in axes[0].texts] == ["0%", "80%"]
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [1.5, 1.5])
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), [np.nan, 2.0])
    with pytest.raises(ValueError, match=r"history has no \['cache_hits', 'cache_misses'\]"):
        visualize.plot_cache_stats({"loss": [1.0], "cache_ratio": [2.0], "cache_hit": [1]})
    with pytest.raises(TypeError, match=r"stats\[0\] must be a dict or a CacheStats"):
        visualize.plot_cache_stats([3])
    with pytest.raises(ValueError, match=r"stats\[1\] lacks \['misses'\]"):
        visualize.plot_cache_stats([{"hits": 1, "misses": 0}, {"hits": 2}])
