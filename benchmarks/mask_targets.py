"""How much do mini masks cost the mask targets? Measured on the synthetic Sartorius cells.

Mask R-CNN's mask head learns ``MASK_SHAPE`` targets cut from each ROI's ground-truth
mask. Matterport stores the ground truth as *mini masks* (each instance resized to
``MINI_MASK_SHAPE`` inside its box, thresholded) and cuts the targets from those;
torchvision cuts them from the full-resolution masks (ROIAlign). This script builds
the targets both ways with the graph's own function
(`mrcnn.layers.detection_targets.mask_targets`), pastes them back into the image at
their ROI as inference does (`mrcnn.data.masks.mini.paste_masks`) and scores them
against the true instance mask (IoU), for ROIs equal to the ground-truth boxes and
for jittered ROIs (a random positive: IoU with the box >= 0.5). The full-resolution
target is the best a ``MASK_SHAPE`` head can learn; the difference is what the mini
mask loses: with Matterport's rule (the ROI in the GT box's normalized frame) the
mini mask's pixel centres are misplaced by up to a mini pixel; mapped by the image
positions (`mask_targets` with the image shape, the graph's default) the loss is
the mini mask's own resolution. Also the plain round trip of a mini mask (`minimize_mask` then
`expand_mask`).

    python benchmarks/mask_targets.py                 # 6 images per cell type
    python benchmarks/mask_targets.py --images 2 --mask-shape 56

Prints one table (mean IoU per cell type) and, last,
``full_iou=… matterport56_iou=… mini56_iou=… mini112_iou=…`` over all instances
at jittered ROIs.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mrcnn.data.masks.mini import expand_mask, minimize_mask, paste_masks  # noqa: E402
from mrcnn.inference.molding import unmold_result  # noqa: E402
from mrcnn.datasets.synthetic_cells import CELL_TYPES, synthetic_sartorius_image  # noqa: E402
from mrcnn.data.boxes import extract_bboxes, norm_boxes  # noqa: E402


def iou(a, b):
    """IoU of two bool [H, W, N] stacks, per instance: float [N]."""
    inter = np.logical_and(a, b).sum(axis=(0, 1))
    union = np.logical_or(a, b).sum(axis=(0, 1))
    return inter / np.maximum(union, 1)


def jitter(rng, boxes, shape, min_iou=0.5):
    """A random box per box, IoU >= min_iou with it (rejection sampling), int pixels."""
    out = boxes.copy()
    height, width = shape
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        h, w = y2 - y1, x2 - x1
        for _ in range(100):
            dy1, dx1, dy2, dx2 = rng.uniform(-0.2, 0.2, 4) * [h, w, h, w]
            cand = np.round([y1 + dy1, x1 + dx1, y2 + dy2, x2 + dx2]).astype(int)
            cand = np.clip(cand, 0, [height, width, height, width])
            if cand[2] - cand[0] < 1 or cand[3] - cand[1] < 1:
                continue
            iy = max(0, min(y2, cand[2]) - max(y1, cand[0]))
            ix = max(0, min(x2, cand[3]) - max(x1, cand[1]))
            inter = iy * ix
            union = h * w + (cand[2] - cand[0]) * (cand[3] - cand[1]) - inter
            if inter / union >= min_iou:
                out[i] = cand
                break
    return out


def paste_on_grid(masks, rois, shape):
    """Paste [N, M, M] masks at their pixel ROIs as ``detect()`` does with
    ``DETECTION_MASK_PASTE = "grid"`` (`mrcnn.inference.molding.unmold_result`): mask row i
    on the pixel where the targets (and ROIAlign) sampled row i. bool [H, W, N]."""
    n, size = masks.shape[0], masks.shape[1]
    detections = np.zeros((n, 6), np.float32)
    detections[:, :4] = norm_boxes(rois, shape)
    detections[:, 4:] = 1.0
    probs = np.zeros((n, size, size, 2), np.float32)
    probs[..., 1] = masks
    full = tuple(shape[:2]) + (3,)
    return unmold_result(detections, probs, full, full, (0, 0) + tuple(shape[:2]),
                         paste="grid")["masks"]


def targets(rois, boxes, gt_masks, mask_shape, mini_shape, shape, matterport=False):
    """The graph's mask targets for each ROI (ROI i assigned to GT i), bool [MH, MW, N]."""
    from mrcnn.layers.detection_targets import mask_targets
    import keras
    norm_rois = norm_boxes(rois, shape)[None]
    norm_gt = norm_boxes(boxes, shape)[None]
    if mini_shape is None:
        masks = gt_masks
    else:
        masks = minimize_mask(boxes, gt_masks, mini_shape)
    assigned = np.arange(len(boxes), dtype=np.int32)[None]
    out = mask_targets(norm_rois, norm_gt, masks[None].astype(np.float32), assigned,
                       mask_shape, use_mini_mask=mini_shape is not None,
                       image_shape=None if matterport else shape)
    return np.moveaxis(keras.ops.convert_to_numpy(out)[0], 0, -1)


def measure(images, mask_shape, seed):
    rng = np.random.default_rng(seed)
    variants = [("full", None, False), ("mp56", (56, 56), True), ("mini56", (56, 56), False),
                ("mini112", (112, 112), False)]
    rows = []
    for index in range(images * len(CELL_TYPES)):
        _, cell_type, _, masks = synthetic_sartorius_image(seed, index)
        masks = masks[:, :, masks.sum(axis=(0, 1)) > 0]
        shape = masks.shape[:2]
        boxes = extract_bboxes(masks)
        rois = jitter(rng, boxes, shape)
        row = {"type": cell_type, "n": masks.shape[2],
               "area": masks.sum(axis=(0, 1)).astype(float)}
        for name, mini, matterport in variants:
            for roi_name, r in (("box", boxes), ("jit", rois)):
                t = targets(r, boxes, masks, mask_shape, mini, shape, matterport)
                t = np.moveaxis(t, -1, 0).astype(np.float32)
                row[f"{name}_{roi_name}"] = iou(paste_masks(t, r, shape), masks)
                row[f"{name}_{roi_name}_grid"] = iou(paste_on_grid(t, r, shape), masks)
            if mini is not None:
                back = expand_mask(boxes, minimize_mask(boxes, masks, mini), shape)
                row[f"{name}_roundtrip"] = iou(back, masks)
        rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6, help="images per cell type")
    parser.add_argument("--mask-shape", type=int, default=28, help="MASK_SHAPE side")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = measure(args.images, (args.mask_shape, args.mask_shape), args.seed)

    def mean(key, kind=None):
        vals = [r[key] for r in rows if kind in (None, r["type"])]
        return float(np.concatenate(vals).mean())

    cols = ["mini56_roundtrip", "full_box", "mp56_box", "mini56_box", "mini112_box",
            "full_jit", "mp56_jit", "mini56_jit", "mini112_jit"]
    print(f"mask targets at MASK_SHAPE {args.mask_shape}x{args.mask_shape}, "
          f"{args.images} synthetic image(s) per cell type, mean IoU with the true mask")
    print(f"{'cell type':10s} {'cells':>6s} {'area':>6s} " + " ".join(f"{c:>16s}" for c in cols))
    for kind in list(CELL_TYPES) + [None]:
        n = sum(r["n"] for r in rows if kind in (None, r["type"]))
        area = mean("area", kind)
        print(f"{kind or 'all':10s} {n:6d} {area:6.0f} "
              + " ".join(f"{mean(c, kind):16.4f}" for c in cols))
    print("box: ROI = the GT box; jit: a random ROI of IoU >= 0.5 with it; full: targets cut "
          "from the full mask; mp56: 56x56 mini masks, Matterport's rule (no image shape); "
          "mini56/112: mini masks mapped by the image positions (the graph's default)")
    print("pasted on the targets' grid (detect()'s DETECTION_MASK_PASTE='grid', the default) "
          "instead of with pixel centres aligned ('centers'), at jittered ROIs:")
    for kind in list(CELL_TYPES) + [None]:
        print(f"{kind or 'all':10s} " + " ".join(
            f"{name}={mean(name + '_jit_grid', kind):.4f}"
            for name in ("full", "mp56", "mini56", "mini112")))
    print(f"full_iou={mean('full_jit'):.4f} matterport56_iou={mean('mp56_jit'):.4f} "
          f"mini56_iou={mean('mini56_jit'):.4f} mini112_iou={mean('mini112_jit'):.4f}")


if __name__ == "__main__":
    main()
