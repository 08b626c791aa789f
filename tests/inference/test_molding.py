"""Pasting predicted masks back into the image (mrcnn/inference/molding.py): "grid" and "centers"."""

import numpy as np
import pytest
from scipy import ndimage

from mrcnn.config import Config
from mrcnn.inference.molding import MASK_PASTES, grid_paste_boxes, unmold_result

pytestmark = pytest.mark.backend_independent


def _detections(norm_boxes, n_pad=3):
    d = np.zeros((len(norm_boxes) + n_pad, 6), np.float32)
    d[:len(norm_boxes), :4] = norm_boxes
    d[:len(norm_boxes), 4] = 1
    d[:len(norm_boxes), 5] = 0.9
    return d


def _brute_force_grid(prob, norm_box, image_shape, window, original_shape, box):
    """Each original pixel of the rounded box: where ROIAlign's samples of the ROI lie in the
    original image (sample by sample), the pixel's fractional sample index, and the mask's
    bilinear value there (edges repeated)."""
    m_h, m_w = prob.shape
    h, w = image_shape[:2]
    wy1, wx1, wy2, wx2 = window
    oh, ow = original_shape[:2]
    y1n, x1n, y2n, x2n = norm_box
    rows = y1n * (h - 1) + np.arange(m_h) * (y2n - y1n) * (h - 1) / (m_h - 1)
    cols = x1n * (w - 1) + np.arange(m_w) * (x2n - x1n) * (w - 1) / (m_w - 1)
    # molded pixel-index coordinate -> original pixel-index coordinate (pixel centres)
    rows_o = (rows + 0.5 - wy1) * oh / (wy2 - wy1) - 0.5
    cols_o = (cols + 0.5 - wx1) * ow / (wx2 - wx1) - 0.5
    out = np.zeros((oh, ow), np.float64)
    ys, xs = np.mgrid[box[0]:box[2], box[1]:box[3]]
    fy = np.interp(ys.ravel(), rows_o, np.arange(m_h), left=-1, right=m_h)
    fx = np.interp(xs.ravel(), cols_o, np.arange(m_w), left=-1, right=m_w)
    values = ndimage.map_coordinates(prob.astype(np.float64), [np.clip(fy, 0, m_h - 1),
                                                               np.clip(fx, 0, m_w - 1)],
                                     order=1, mode="nearest")
    out[ys.ravel(), xs.ravel()] = values
    return out


@pytest.mark.parametrize("original, window, molded", [
    ((64, 64), (0, 0, 64, 64), (64, 64)),          # no resizing
    ((50, 80), (20, 0, 70, 80), (80, 80)),         # padded to a square
    ((40, 60), (16, 0, 80, 96), (96, 96)),         # upscaled 1.6x and padded
])
def test_grid_paste_puts_each_mask_row_where_roialign_sampled_it(original, window, molded):
    rng = np.random.default_rng(0)
    wy1, wx1, wy2, wx2 = window
    h, w = molded
    boxes = []
    for _ in range(6):     # ROIs inside the window, normalized as the graph's (h - 1) frame
        y1, x1 = rng.uniform([wy1, wx1], [wy2 - 12, wx2 - 12])
        y2, x2 = y1 + rng.uniform(3, wy2 - y1 - 1), x1 + rng.uniform(3, wx2 - x1 - 1)
        boxes.append([y1 / (h - 1), x1 / (w - 1), y2 / (h - 1), x2 / (w - 1)])
    masks = np.zeros((9, 28, 28, 2), np.float32)
    masks[:6, :, :, 1] = rng.uniform(size=(6, 28, 28))
    r = unmold_result(_detections(np.array(boxes)), masks, original + (3,), molded + (3,),
                      window, soft_masks=True, paste="grid")
    assert r["soft_masks"].shape == original + (6,)
    for k in range(6):
        want = _brute_force_grid(masks[k, :, :, 1], boxes[k], molded, window, original,
                                 r["rois"][k])
        np.testing.assert_allclose(r["soft_masks"][..., k], want, atol=1e-5, err_msg=str(k))
        np.testing.assert_array_equal(r["masks"][..., k], r["soft_masks"][..., k] >= 0.5)
        y1, x1, y2, x2 = r["rois"][k]
        outside = np.ones(original, bool)
        outside[y1:y2, x1:x2] = False
        assert not r["soft_masks"][..., k][outside].any()     # inside its own box only


def test_grid_paste_boxes_put_the_outer_samples_on_the_rois_corner_pixels():
    # no resizing: the ROI of pixels 10..29 (rows) x 5..44 (cols), exclusive ends 30 / 45
    norm = np.array([[10 / 63, 5 / 63, 29 / 63, 44 / 63]])
    box = grid_paste_boxes(norm, (64, 64), (0, 0, 64, 64), (64, 64), (28, 28))[0]
    cell_y, cell_x = 19 / 27, 39 / 27
    np.testing.assert_allclose(box, [10 + 0.5 - cell_y / 2, 5 + 0.5 - cell_x / 2,
                                     29 + 0.5 + cell_y / 2, 44 + 0.5 + cell_x / 2])
    with pytest.raises(ValueError, match=r"window \(0, 0, 0, 64\) has no area"):
        grid_paste_boxes(norm, (64, 64), (0, 0, 0, 64), (64, 64), (28, 28))


def test_a_target_cut_on_the_grid_comes_back_closer_with_the_grid_paste():
    """An ellipse's mask sampled on ROIAlign's grid over its box (as the training targets are)
    and pasted back: the grid paste recovers it better than Matterport's centre-aligned
    resize, which shifts a box larger than the mask by up to half a mask cell."""
    size = 128
    yy, xx = np.mgrid[:size, :size]
    ellipse = ((yy - 60.3) / 30.2) ** 2 + ((xx - 55.6) / 22.7) ** 2 <= 1
    ys, xs = np.nonzero(ellipse)
    y1, x1, y2, x2 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1     # 60 x 46 pixels
    grid = np.meshgrid(np.linspace(y1, y2 - 1, 28), np.linspace(x1, x2 - 1, 28), indexing="ij")
    masks = np.zeros((1, 28, 28, 2), np.float32)
    masks[0, :, :, 1] = ndimage.map_coordinates(ellipse.astype(np.float64), grid, order=1)
    last = size - 1
    det = _detections(np.array([[y1 / last, x1 / last, (y2 - 1) / last, (x2 - 1) / last]]))
    iou = {}
    for paste in MASK_PASTES:
        r = unmold_result(det, masks, (size, size, 3), (size, size, 3), (0, 0, size, size),
                          paste=paste)
        assert tuple(r["rois"][0]) == (y1, x1, y2, x2)
        m = r["masks"][..., 0]
        iou[paste] = (m & ellipse).sum() / (m | ellipse).sum()
    assert iou["grid"] > 0.985 and iou["grid"] > iou["centers"] + 0.02, iou     # 0.992, 0.964


@pytest.mark.parametrize("paste", MASK_PASTES)
def test_mask_box_scale_pastes_into_the_grown_box_past_a_too_small_detection(paste):
    """A detection box 80% of an ellipse's box: its mask sampled over that box (scale 1, the
    mask fills the box) cannot cover the ellipse; sampled over the box grown 1.5x (as the mask
    head sees it with MASK_BOX_SCALE 1.5) and pasted into the grown box, it does. ``rois``
    stay the detection boxes; the grid paste matches the brute-force sampling of the grown ROI."""
    from mrcnn.data.boxes import scale_boxes
    size, last = 128, 127
    yy, xx = np.mgrid[:size, :size]
    ellipse = ((yy - 60.3) / 30.2) ** 2 + ((xx - 55.6) / 22.7) ** 2 <= 1
    ys, xs = np.nonzero(ellipse)
    tight = np.array([ys.min(), xs.min(), ys.max(), xs.max()], np.float64)   # pixel centres
    small = scale_boxes(tight[None], 0.8)[0]
    small = (small / last).astype(np.float32).astype(np.float64) * last   # as detections hold it
    iou, soft = {}, {}
    for scale in (1.0, 1.5):
        grown = scale_boxes(small[None], scale)[0]      # pixel-centre coordinates
        grid = np.meshgrid(np.linspace(grown[0], grown[2], 28), np.linspace(grown[1], grown[3], 28),
                           indexing="ij")
        masks = np.zeros((1, 28, 28, 2), np.float32)
        masks[0, :, :, 1] = ndimage.map_coordinates(ellipse.astype(np.float64), grid, order=1)
        r = unmold_result(_detections(small[None] / last), masks, (size, size, 3),
                          (size, size, 3), (0, 0, size, size), soft_masks=True, paste=paste,
                          mask_box_scale=scale)
        np.testing.assert_array_equal(r["rois"][0], np.round(small + [0, 0, 1, 1]))
        m = r["masks"][..., 0]
        iou[scale] = (m & ellipse).sum() / (m | ellipse).sum()
        soft[scale] = (r["soft_masks"][..., 0], masks[0, :, :, 1], grown)
    y1, x1, y2, x2 = np.round(small + [0, 0, 1, 1]).astype(int)
    inside = ellipse[y1:y2, x1:x2].sum() / ellipse.sum()      # the best a box-bound mask does
    assert abs(iou[1.0] - inside) < 0.03 and inside < 0.82, (iou, inside)     # 0.793, 0.800
    assert iou[1.5] > 0.95, iou
    if paste == "grid":
        values, prob, grown = soft[1.5]
        box = np.round(grown + [0, 0, 1, 1]).astype(int)
        want = _brute_force_grid(prob, grown / last, (size, size), (0, 0, size, size),
                                 (size, size), box)
        np.testing.assert_allclose(values, want, atol=1e-5)


def test_the_paste_setting_is_checked():
    with pytest.raises(ValueError, match="DETECTION_MASK_PASTE must be 'grid' or 'centers', "
                                         "got 'bilinear'"):
        type("C", (Config,), {"NAME": "c", "NUM_CLASSES": 2, "DETECTION_MASK_PASTE": "bilinear"})()
    assert Config.DETECTION_MASK_PASTE == "grid"
    with pytest.raises(ValueError, match="mask paste must be one of"):
        unmold_result(_detections(np.array([[0.1, 0.1, 0.5, 0.5]])),
                      np.zeros((4, 28, 28, 2), np.float32), (64, 64, 3), (64, 64, 3),
                      (0, 0, 64, 64), paste="middle")
