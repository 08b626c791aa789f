"""Masks, boxes and detect() results shared by the evaluation tests."""

import numpy as np


def masks_of(shape, *regions):
    """bool [H, W, N] masks; each region is a tuple of slices or a bool [H, W]."""
    out = np.zeros(shape + (len(regions),), dtype=bool)
    for k, region in enumerate(regions):
        if isinstance(region, np.ndarray):
            out[..., k] = region
        else:
            out[region + (k,)] = True
    return out


def boxes_of(masks):
    """Pixel boxes (y2, x2 exclusive) of bool [H, W, N] masks, via loops; 0 if empty."""
    boxes = np.zeros((masks.shape[-1], 4), dtype=np.int32)
    for k in range(masks.shape[-1]):
        ys, xs = np.nonzero(masks[..., k])
        if ys.size:
            boxes[k] = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
    return boxes


def iou_loop(m1, m2):
    """Brute-force [N1, N2] IoU, one pair at a time."""
    out = np.zeros((m1.shape[-1], m2.shape[-1]))
    for i in range(m1.shape[-1]):
        for j in range(m2.shape[-1]):
            inter = np.logical_and(m1[..., i], m2[..., j]).sum()
            union = np.logical_or(m1[..., i], m2[..., j]).sum()
            out[i, j] = inter / union if union else 0.0
    return out


def sixty_percent_pair():
    """GT 10x10 (100 px); pred = 75 px of it + 25 px outside -> IoU 75/125 = 0.6."""
    gt = np.zeros((20, 20), dtype=bool)
    gt[0:10, 0:10] = True
    pred = gt.copy()
    pred[0:5, 0:5] = False        # 25 px of the GT removed
    pred[0:5, 10:15] = True       # 25 px outside added
    return gt[..., None], pred[..., None]


def square(shape, y, x, size):
    """bool [H, W] with a ``size`` x ``size`` square at (y, x)."""
    m = np.zeros(shape, bool)
    m[y:y + size, x:x + size] = True
    return m


def detect_result(masks, class_ids, scores, rois=None):
    """A detect() result for dense masks; rois are the masks' tight boxes by default."""
    return {"rois": boxes_of(masks) if rois is None else np.asarray(rois, np.int32),
            "class_ids": np.asarray(class_ids, np.int32),
            "scores": np.asarray(scores, np.float32), "masks": masks}


class OracleModel:
    """Fake model: detect() returns each image's ground truth (score 1.0),
    optionally without the last instance."""

    def __init__(self, dataset, drop_last=False):
        self.lookup = {dataset.load_image(i).tobytes(): i for i in dataset.image_ids}
        self.dataset = dataset
        self.drop_last = drop_last

    def detect(self, images):
        out = []
        for image in images:
            masks, class_ids = self.dataset.load_mask(self.lookup[image.tobytes()])
            if self.drop_last:
                masks, class_ids = masks[..., :-1], class_ids[:-1]
            out.append(detect_result(masks, class_ids, np.ones(len(class_ids))))
        return out
