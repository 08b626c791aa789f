"""Hand-made masks and detect() results shared by the post-processing tests."""

import numpy as np


def region_masks(shape, *regions):
    """bool [H, W, N]; each region is a tuple of slices."""
    out = np.zeros(tuple(shape) + (len(regions),), dtype=bool)
    for k, region in enumerate(regions):
        out[region + (k,)] = True
    return out


def make_result(masks, scores, class_ids=None, soft=None):
    """A detect() result for dense masks [H, W, N], rois from `loop_boxes`."""
    n = masks.shape[-1]
    out = {"rois": loop_boxes(masks),
           "class_ids": np.ones(n, np.int32) if class_ids is None
           else np.asarray(class_ids, np.int32),
           "scores": np.asarray(scores, np.float32), "masks": masks}
    if soft is not None:
        out["soft_masks"] = soft
    return out


def loop_boxes(masks):
    """int32 [N, (y1, x1, y2, x2)] tight boxes (y2/x2 exclusive) by a loop; 0 if empty."""
    boxes = np.zeros((masks.shape[-1], 4), np.int32)
    for k in range(masks.shape[-1]):
        ys, xs = np.nonzero(masks[..., k])
        if ys.size:
            boxes[k] = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
    return boxes


def random_discs(rng, shape=(40, 50), n=12, max_r=8):
    """bool [H, W, n] random discs that overlap each other; some touch the border."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out = np.zeros(shape + (n,), bool)
    for k in range(n):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        r = rng.integers(2, max_r)
        out[..., k] = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    return out
