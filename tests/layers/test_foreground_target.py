"""mrcnn.layers.foreground_target: the foreground map against the full masks and a NumPy loop."""

import numpy as np
import pytest
from keras import ops

from mrcnn.data.boxes import norm_boxes
from mrcnn.data.masks.mini import minimize_mask
from mrcnn.layers.foreground_target import ForegroundTarget, foreground_target
from mrcnn.utils import extract_bboxes

H, W = 48, 64


def _instances(seed, count=6):
    """Random ellipses [H, W, count] (some touching the image edge) and their boxes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    masks = np.zeros((H, W, count), bool)
    for k in range(count):
        cy, cx = rng.uniform(-2, H + 2), rng.uniform(-2, W + 2)
        ry, rx = rng.uniform(2, 9, size=2)
        masks[..., k] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    masks = masks[..., masks.any(axis=(0, 1))]
    return masks, extract_bboxes(masks)


def _pad(boxes, masks, class_ids, count):
    """The generator's padding: zero boxes, zero masks, class 0 beyond the real instances."""
    n = boxes.shape[0]
    out_boxes = np.zeros((count, 4), np.float32)
    out_boxes[:n] = norm_boxes(boxes, (H, W))
    out_masks = np.zeros(masks.shape[:2] + (count,), bool)
    out_masks[..., :n] = masks
    ids = np.zeros(count, np.int32)
    ids[:n] = class_ids
    return ids[None], out_boxes[None], out_masks[None]


def _loop_reference(class_ids, boxes, mini, stride):
    """The module's rule, pixel by pixel: nearest mini pixel at (y - y1 + 0.5) * mh / h - 0.5."""
    mh, mw, _ = mini.shape
    out = np.zeros((H // stride, W // stride), np.float32)
    for i in range(H // stride):
        for j in range(W // stride):
            y, x = stride * i + stride // 2, stride * j + stride // 2
            for k, (y1, x1, y2, x2) in enumerate(boxes):
                if class_ids[k] <= 0 or not (y1 <= y < y2 and x1 <= x < x2):
                    continue
                my = int(np.floor((y - y1 + 0.5) * mh / (y2 - y1) - 0.5 + 0.5))
                mx = int(np.floor((x - x1 + 0.5) * mw / (x2 - x1) - 0.5 + 0.5))
                if mini[min(max(my, 0), mh - 1), min(max(mx, 0), mw - 1), k]:
                    out[i, j] = 1.0
    return out


def test_mini_masks_at_least_the_box_size_give_back_the_union_of_the_masks():
    masks, boxes = _instances(0)
    mini = minimize_mask(boxes, masks, (28, 28))        # every box is under 20 px
    ids, nboxes, nmini = _pad(boxes, mini, np.ones(len(boxes)), 8)
    got = ops.convert_to_numpy(foreground_target(ids, nboxes, nmini, (H, W), 1))
    assert got.shape == (1, H, W, 1)
    np.testing.assert_array_equal(got[0, ..., 0], masks.any(axis=-1))


@pytest.mark.parametrize("stride", [1, 2, 4])
@pytest.mark.parametrize("mini_size", [6, 28])
def test_mini_masks_follow_the_sampling_rule(stride, mini_size):
    masks, boxes = _instances(stride * 10 + mini_size, count=9)
    mini = minimize_mask(boxes, masks, (mini_size, mini_size))
    class_ids = np.ones(len(boxes), np.int32)
    class_ids[1] = -1                                    # a crowd counts as background
    ids, nboxes, nmini = _pad(boxes, mini, class_ids, 12)
    layer = ForegroundTarget((H, W), stride, use_mini_mask=True)
    got = ops.convert_to_numpy(layer([ids, nboxes, nmini]))
    assert got.shape == (1, H // stride, W // stride, 1)
    np.testing.assert_array_equal(got[0, ..., 0], _loop_reference(class_ids, boxes, mini, stride))
    assert got.any() and not got.all()


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_full_masks_are_read_at_each_cells_pixel(stride):
    masks, boxes = _instances(3)
    class_ids = np.ones(len(boxes), np.int32)
    class_ids[0] = 0                                     # not a real instance
    ids, nboxes, full = _pad(boxes, masks, class_ids, 10)
    got = ops.convert_to_numpy(foreground_target(ids, nboxes, full, (H, W), stride,
                                                 use_mini_mask=False))
    union = masks[..., 1:].any(axis=-1)
    s = stride
    np.testing.assert_array_equal(got[0, ..., 0], union[s // 2::s, s // 2::s])


def test_no_instances_give_an_empty_map_and_bad_strides_are_named():
    ids = np.zeros((2, 4), np.int32)
    got = ops.convert_to_numpy(foreground_target(ids, np.zeros((2, 4, 4), np.float32),
                                                 np.zeros((2, 8, 8, 4), bool), (H, W), 2))
    assert got.shape == (2, H // 2, W // 2, 1) and not got.any()
    with pytest.raises(ValueError, match=r"stride must be an int >= 1 dividing the input "
                                         r"shape \(48, 64\), got 5"):
        ForegroundTarget((H, W), 5)
    layer = ForegroundTarget((H, W), 4, use_mini_mask=False)
    assert ForegroundTarget.from_config(layer.get_config()).get_config() == layer.get_config()
