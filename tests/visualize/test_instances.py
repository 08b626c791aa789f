"""Tests for mrcnn/visualize/instances.py: rendered pixel colours, labels, saved pictures.

Pixel checks draw into an Axes that fills a figure whose size is an exact
multiple of the image size, so image pixel ``(r, c)`` becomes a known block
of screen pixels (see picture_helpers).
"""

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn.visualize.colors import random_colors
from mrcnn.visualize.instances import (display_differences, display_images, display_instances,
                                       display_top_masks, draw_boxes)
from tests.visualize.picture_helpers import (assert_picture, block, box_array, exact_axes, png,
                                             phase_contrast_cells, rect_masks, render)

# Backend-independent: matplotlib drawings of NumPy results; no Keras op.
pytestmark = pytest.mark.backend_independent


def test_display_instances_pixels_take_the_instance_colour(tmp_path):
    scale, h, w = 4, 40, 60
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    regions = [(10, 5, 30, 25), (12, 30, 36, 55), (20, 45, 34, 58)]   # 3rd overlaps 2nd
    masks = rect_masks((h, w), *regions)
    colors = [(0.2, 0.6, 1.0), (1.0, 0.4, 0.0), (0.0, 1.0, 0.4)]
    alpha = 0.3
    fig, ax = exact_axes(h, w, scale)
    path = display_instances(image, box_array(regions), masks, np.array([1, 2, 1]),
                             ["BG", "a", "b"], np.array([0.9, 0.8, 0.7]),
                             ax=ax, colors=colors, alpha=alpha,
                             save_path=tmp_path / "inst.png")
    assert path == str(tmp_path / "inst.png")
    rendered = png(path)
    assert rendered.shape[:2] == (h * scale, w * scale)

    def expected(k, r0, r1, c0, c1):
        return np.rint((1 - alpha) * image[r0:r1, c0:c1].astype(np.float64)
                       + alpha * 255 * np.array(colors[k])).astype(np.uint8)

    # Interiors, 3 px clear of outlines and boxes, below the labels.
    for k, (r0, r1, c0, c1) in [(0, (16, 27, 8, 22)), (1, (16, 33, 33, 42))]:
        got = block(rendered, r0, r1, c0, c1, scale)
        want = np.repeat(np.repeat(expected(k, r0, r1, c0, c1), scale, 0), scale, 1)
        np.testing.assert_array_equal(got, want)
    # Where masks 1 and 2 overlap, the later instance (2) is on top, blended once.
    got = block(rendered, 24, 31, 48, 52, scale)
    want = np.repeat(np.repeat(expected(2, 24, 31, 48, 52), scale, 0), scale, 1)
    np.testing.assert_array_equal(got, want)
    # Far from every instance the image is unchanged.
    np.testing.assert_array_equal(block(rendered, 36, 40, 0, 4, scale),
                                  np.repeat(np.repeat(image[36:40, 0:4], scale, 0), scale, 1))


def test_display_instances_grayscale_and_16bit_images():
    scale, h, w = 3, 30, 40
    gray = np.full((h, w), 90, np.uint8)
    masks = rect_masks((h, w), (8, 8, 26, 30))
    fig, ax = exact_axes(h, w, scale)
    display_instances(gray, None, masks, [1], ["BG", "cell"], ax=ax,
                      colors=[(1.0, 0.0, 0.0)], alpha=0.5, show_bbox=False)
    rendered = render(fig)
    # gray 90 -> (0.5 * 90 + 0.5 * 255, 0.5 * 90, 0.5 * 90) = (172.5, 45, 45) -> 172 (even)
    assert (block(rendered, 14, 22, 12, 26, scale) == [172, 45, 45]).all()
    assert (block(rendered, 0, 5, 0, 5, scale) == 90).all()

    # 16-bit: stretched so that the 0.5th..99.5th percentiles span 0..255.
    img16 = np.full((h, w), 1000, np.uint16)
    img16[:, w // 2:] = 3000
    fig, ax = exact_axes(h, w, scale)
    display_instances(img16, np.zeros((0, 4)), np.zeros((h, w, 0), bool), [],
                      ["BG"], ax=ax)
    rendered = render(fig)
    assert (block(rendered, 0, h, 0, w // 2, scale) == 0).all()
    assert (block(rendered, 0, h, w // 2, w, scale) == 255).all()
    assert "no instances" in ax.get_title()


def test_display_instances_labels_never_overlap_and_title_counts_hidden():
    rng = np.random.default_rng(3)
    h, w, n = 120, 160, 30
    y1 = rng.integers(0, h - 20, n)
    x1 = rng.integers(0, w - 20, n)
    regions = [(a, b, a + 15, b + 18) for a, b in zip(y1, x1)]
    fig, ax = exact_axes(h, w, 4)
    display_instances(np.zeros((h, w, 3), np.uint8), box_array(regions),
                      rect_masks((h, w), *regions), np.ones(n, int), ["BG", "cell"],
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
    fig, ax = exact_axes(h, w, 4)
    display_instances(np.zeros((h, w), np.uint8), box_array(regions),
                      rect_masks((h, w), *regions), [1, 1, 1, 1], ["BG", "c"],
                      [0.9, 0.8, 0.7, 0.6], ax=ax)
    # Above the box, inside its top, below it; the fourth label has no room.
    assert sorted(t.get_text() for t in ax.texts) == ["c 0.70", "c 0.80", "c 0.90"]
    assert "1 of 4 labels hidden" in ax.get_title()


def test_display_instances_200_cells_phase_contrast(tmp_path):
    image, masks = phase_contrast_cells()
    h, w, n = masks.shape
    fig, ax = exact_axes(h, w, 1)
    display_instances(image, None, masks, np.ones(n, int), ["BG", "cell"],
                      np.linspace(1, 0.5, n), title="cells", ax=ax)
    assert len(ax.texts) == 0                 # too many instances for labels
    assert "200 instances, labels hidden (more than max_labels=60)" in ax.get_title()
    rendered = render(fig).astype(int)
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
    colors = np.array(random_colors(n))
    want = np.rint(0.5 * image[ys, xs, None] + 0.5 * 255 * colors[labels])
    np.testing.assert_array_equal(rendered[ys, xs], want)
    assert (np.abs(rendered[ys, xs] - image[ys, xs, None].astype(int)).max(axis=1) > 40).all()
    path = display_instances(image, None, masks, np.ones(n, int), ["BG", "cell"],
                             figsize=(8, 6), save_path=tmp_path / "cells.png")
    assert_picture(path, (8, 6))


def test_display_instances_rejects_bad_inputs():
    image = np.zeros((10, 10, 3), np.uint8)
    masks = rect_masks((10, 10), (1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"masks must be bool \[H, W, N\]"):
        display_instances(image, box_array([(1, 1, 5, 5)]), masks[:5], [1], ["BG", "a"])
    with pytest.raises(ValueError, match="class id 3 has no entry"):
        display_instances(image, box_array([(1, 1, 5, 5)]), masks, [3], ["BG", "a"])
    with pytest.raises(ValueError, match="scores has 2 entries for 1 instances"):
        display_instances(image, box_array([(1, 1, 5, 5)]), masks, [1], ["BG", "a"],
                          [0.5, 0.6])
    with pytest.raises(ValueError, match="image must be"):
        display_instances(np.zeros((10, 10, 5)), None, masks, [1], ["BG", "a"])


def test_display_images_and_top_masks(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 30), dtype=np.uint8),
              rng.integers(0, 4096, (20, 30, 1)).astype(np.uint16),
              rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
              rng.random((20, 30, 4))]
    path = display_images(images, titles=list("abcd"), cols=2, figsize=(6, 4),
                          save_path=tmp_path / "images.png")
    assert_picture(path, (6, 4))
    with pytest.raises(ValueError, match="titles has 1 entries for 4 images"):
        display_images(images, titles=["x"])

    masks = rect_masks((20, 30), (1, 1, 10, 10), (5, 12, 18, 28), (12, 2, 19, 9))
    path = display_top_masks(images[2], masks, np.array([1, 2, 1]),
                             ["BG", "small", "big"], figsize=(9, 2.5),
                             save_path=tmp_path / "top.png")
    assert_picture(path, (9, 2.5))
    fig = Figure()
    axes = fig.subplots(1, 3).ravel()
    display_top_masks(images[2], masks, np.array([1, 2, 1]),
                      ["BG", "small", "big"], ax=axes)
    # Classes by area: "big" (one 13 x 16 mask = 208 px) before "small" (81 + 49 = 130 px).
    assert [a.get_title() for a in axes] == [
        "20 x 30, 3 instances", "big: 1 instance, 34.7% of pixels",
        "small: 2 instances, 21.7% of pixels"]


def test_display_differences_colours_by_match(tmp_path):
    h, w, scale = 40, 60, 4
    gt_regions = [(5, 5, 20, 20), (5, 35, 20, 55)]          # 2nd is missed
    pred_regions = [(5, 5, 20, 21), (25, 30, 38, 50)]       # 1st matches, 2nd is false
    gt, pred = rect_masks((h, w), *gt_regions), rect_masks((h, w), *pred_regions)
    fig, ax = exact_axes(h, w, scale)
    display_differences(np.full((h, w), 128, np.uint8), box_array(gt_regions), [1, 1],
                        gt, box_array(pred_regions), [1, 1], [0.9, 0.8], pred,
                        ["BG", "cell"], ax=ax)
    rendered = render(fig).astype(int)
    tp = block(rendered, 11, 17, 9, 16, scale).reshape(-1, 3).mean(0)
    fn = block(rendered, 11, 17, 39, 51, scale).reshape(-1, 3).mean(0)
    fp = block(rendered, 30, 35, 34, 46, scale).reshape(-1, 3).mean(0)
    assert tp[1] > tp[0] + 60 and tp[1] > tp[2] + 60       # green
    assert fp[0] > fp[1] + 60 and fp[0] > fp[2] + 60       # red
    assert fn[0] > fn[2] + 60 and fn[1] > fn[2] + 60       # yellow
    assert "1 matched, 1 false positive, 1 missed" in ax.get_title()
    texts = sorted(t.get_text() for t in ax.texts)
    # IoU of the match: 225 / 240; the false positive overlaps no gt.
    assert texts == ["0.80 / 0.00", "0.90 / 0.94", "missed"]
    path = display_differences(np.zeros((h, w, 3), np.uint8), box_array(gt_regions),
                               [1, 1], gt, box_array(pred_regions), [1, 1],
                               [0.9, 0.8], pred, ["BG", "cell"], figsize=(5, 4),
                               save_path=tmp_path / "diff.png")
    assert_picture(path, (5, 4))


def test_draw_boxes_with_refinement_arrows(tmp_path):
    image = np.full((50, 50), 100, np.uint8)
    boxes = np.array([[5, 5, 20, 20], [25, 25, 45, 40], [0, 30, 10, 45]], float)
    refined = boxes + [[2, 3, 2, 3], [-4, 0, -4, 0], [0, 0, 0, 0]]
    fig = Figure(figsize=(4, 4))
    ax = fig.add_subplot()
    draw_boxes(image, boxes, refined, captions=["a", "b", "c"],
               visibilities=[2, 1, 0], ax=ax)
    quiver = [c for c in ax.collections if type(c).__name__ == "Quiver"][0]
    # One arrow per visible box, from the box centre to the refined centre.
    np.testing.assert_allclose(quiver.U, [3, 0])
    np.testing.assert_allclose(quiver.V, [2, -4])
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b"]
    path = draw_boxes(image, boxes, refined, masks=rect_masks((50, 50), (5, 5, 20, 20),
                                                              (25, 25, 45, 40),
                                                              (0, 30, 10, 45)),
                      figsize=(4, 4), save_path=tmp_path / "boxes.png")
    assert_picture(path, (4, 4))
    with pytest.raises(ValueError, match="visibilities"):
        draw_boxes(image, boxes, visibilities=[3, 2, 2])
