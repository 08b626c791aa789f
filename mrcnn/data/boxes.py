"""Box geometry in NumPy: bounding boxes of masks, IoU, box deltas, NMS.

Conventions (Matterport's):

* Pixel boxes are ``[N, (y1, x1, y2, x2)]`` with ``y2``/``x2`` EXCLUSIVE:
  a mask whose rows 2..4 are set has ``y1 = 2, y2 = 5``. Height is
  ``y2 - y1`` (no ``+ 1``).
* Normalized boxes divide by ``[h - 1, w - 1, h - 1, w - 1]`` after shifting
  the exclusive corner: ``norm = (box - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``.
* Box deltas ``[dy, dx, log(dh), log(dw)]`` are relative to the source box's
  size and centre (see :func:`box_refinement`); dividing by ``BBOX_STD_DEV``
  is left to the caller.

Everything here is vectorized NumPy and free of side effects; this module is
also the reference the ``keras.ops`` kernels in ``mrcnn/ops`` are tested
against.
"""

import numpy as np

from mrcnn.data.iou import (as_boxes, box_areas, box_intersection, box_iou,
                            iou_from_intersection, mask_iou)

__all__ = [
    "extract_bboxes",
    "compute_iou",
    "compute_overlaps",
    "compute_overlaps_masks",
    "box_refinement",
    "apply_box_deltas",
    "norm_boxes",
    "denorm_boxes",
    "scale_boxes",
    "non_max_suppression",
]


def extract_bboxes(mask):
    """Computes the tight bounding box of each instance mask.

    Args:
        mask: bool (or 0/1) array [height, width, num_instances].

    Returns:
        int32 array [num_instances, (y1, x1, y2, x2)] in pixels, with ``y2``
        and ``x2`` exclusive. An empty mask gives ``[0, 0, 0, 0]``.

    Raises:
        ValueError: if ``mask`` is not 3-dimensional.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(
            f"mask must have shape [height, width, num_instances], got shape {mask.shape}")
    mask = mask.astype(bool, copy=False)
    height, width, _ = mask.shape
    rows = mask.any(axis=1)  # [H, N]: instance has a pixel in this row
    cols = mask.any(axis=0)  # [W, N]
    non_empty = rows.any(axis=0)  # [N]
    # argmax returns the first True; on the reversed axis it finds the last.
    y1 = np.argmax(rows, axis=0)
    y2 = height - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = width - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1).astype(np.int32)
    boxes[~non_empty] = 0
    return boxes


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of ``boxes`` (Matterport's signature).

    Args:
        box: [4] as (y1, x1, y2, x2).
        boxes: [N, (y1, x1, y2, x2)].
        box_area: float, area of ``box``.
        boxes_area: [N], areas of ``boxes``.

    Returns:
        float32 [N] IoU values; 0 where the union is empty.
    """
    box = np.asarray(box, dtype=np.float32).reshape(1, 4)
    intersection = box_intersection(box, as_boxes(boxes, "boxes"), np.float32)[0]
    box_area = np.asarray(box_area, dtype=np.float32).reshape(1)
    boxes_area = np.asarray(boxes_area, dtype=np.float32).reshape(-1)
    return iou_from_intersection(intersection[None, :], box_area, boxes_area)[0]


def compute_overlaps(boxes1, boxes2):
    """IoU between every pair of boxes of two sets (:func:`mrcnn.data.iou.box_iou`).

    Args:
        boxes1: [N1, (y1, x1, y2, x2)].
        boxes2: [N2, (y1, x1, y2, x2)], same coordinate frame.

    Returns:
        float32 [N1, N2] IoU matrix. Pairs whose union is empty (two
        zero-area boxes) get 0, never NaN.
    """
    return box_iou(boxes1, boxes2, dtype=np.float32)


def compute_overlaps_masks(masks1, masks2):
    """IoU between every pair of instance masks of two sets.

    Computed by :func:`mrcnn.data.iou.mask_iou` (a sparse product over the
    foreground pixels), with exact pixel counts.

    Args:
        masks1: bool [height, width, N1].
        masks2: bool [height, width, N2], same height and width.

    Returns:
        float32 [N1, N2] IoU matrix; 0 where both masks are empty.

    Raises:
        ValueError: if the masks are not 3-D or their height/width differ.
    """
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    if masks1.ndim != 3 or masks2.ndim != 3:
        raise ValueError(
            "masks must have shape [height, width, N], got shapes "
            f"{masks1.shape} and {masks2.shape}")
    return mask_iou(masks1, masks2).astype(np.float32)


def box_refinement(box, gt_box):
    """Deltas that move each ``box`` onto its ``gt_box``.

    For box ``(y1, x1, y2, x2)``: ``h = y2 - y1``, ``cy = y1 + 0.5 * h`` (same for
    x), and the delta is ``[(gcy - cy) / h, (gcx - cx) / w, log(gh / h),
    log(gw / w)]``. The caller divides by ``BBOX_STD_DEV``.

    Args:
        box: [N, (y1, x1, y2, x2)] source boxes (anchors or ROIs), pixels or
            normalized.
        gt_box: [N, (y1, x1, y2, x2)] target boxes, same frame.

    Returns:
        float32 [N, (dy, dx, log(dh), log(dw))].

    Raises:
        ValueError: if shapes differ or a box has zero or negative height or
            width (its deltas would be infinite).
    """
    box = as_boxes(box, "box")
    gt_box = as_boxes(gt_box, "gt_box")
    if box.shape != gt_box.shape:
        raise ValueError(
            f"box and gt_box must have the same shape, got {box.shape} and {gt_box.shape}")
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    for name, boxes, sizes in (("box", box, np.minimum(height, width)),
                               ("gt_box", gt_box, np.minimum(gt_height, gt_width))):
        bad = np.flatnonzero(~(sizes > 0))
        if bad.size:
            raise ValueError(
                f"{name} row {bad[0]} = {boxes[bad[0]].tolist()} has non-positive "
                "height or width; box deltas need boxes with y2 > y1 and x2 > x1")
    center_y = box[:, 0] + 0.5 * height
    center_x = box[:, 1] + 0.5 * width
    gt_center_y = gt_box[:, 0] + 0.5 * gt_height
    gt_center_x = gt_box[:, 1] + 0.5 * gt_width
    deltas = np.stack([
        (gt_center_y - center_y) / height,
        (gt_center_x - center_x) / width,
        np.log(gt_height / height),
        np.log(gt_width / width),
    ], axis=1)
    return deltas.astype(np.float32, copy=False)


def apply_box_deltas(boxes, deltas):
    """Applies deltas to boxes; the inverse of :func:`box_refinement`.

    Args:
        boxes: [N, (y1, x1, y2, x2)].
        deltas: [N, (dy, dx, log(dh), log(dw))], already multiplied by
            ``BBOX_STD_DEV`` if they came from a network.

    Returns:
        float32 [N, (y1, x1, y2, x2)] refined boxes, same frame as ``boxes``.
    """
    boxes = as_boxes(boxes, "boxes")
    deltas = as_boxes(deltas, "deltas")
    if boxes.shape != deltas.shape:
        raise ValueError(
            f"boxes and deltas must have the same shape, got {boxes.shape} and {deltas.shape}")
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1).astype(np.float32, copy=False)


def _norm_scale_shift(shape):
    if len(shape) < 2 or shape[0] < 2 or shape[1] < 2:
        raise ValueError(
            f"shape must be (height, width[, ...]) with height and width >= 2, got {tuple(shape)}")
    h, w = shape[0], shape[1]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return scale, shift


def norm_boxes(boxes, shape):
    """Converts pixel boxes to normalized coordinates.

    Args:
        boxes: [N, (y1, x1, y2, x2)] in pixels, ``y2``/``x2`` exclusive.
        shape: (height, width[, channels]) of the image the boxes live in.

    Returns:
        float32 [N, (y1, x1, y2, x2)] normalized:
        ``(boxes - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]``.
    """
    scale, shift = _norm_scale_shift(shape)
    return ((as_boxes(boxes, "boxes") - shift) / scale).astype(np.float32, copy=False)


def denorm_boxes(boxes, shape):
    """Converts normalized boxes back to pixel coordinates.

    Args:
        boxes: [N, (y1, x1, y2, x2)] normalized.
        shape: (height, width[, channels]) of the target image.

    Returns:
        int32 [N, (y1, x1, y2, x2)] in pixels, ``y2``/``x2`` exclusive:
        ``round(boxes * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1])``.
    """
    scale, shift = _norm_scale_shift(shape)
    boxes = as_boxes(boxes, "boxes", dtype=np.float64)
    return np.around(boxes * scale + shift).astype(np.int32)


def scale_boxes(boxes, factor):
    """Boxes grown (or shrunk) about their centres by ``factor``.

    Args:
        boxes: [N, (y1, x1, y2, x2)] in any units.
        factor: float > 0 multiplying each box's height and width.

    Returns:
        float64 [N, (y1, x1, y2, x2)]: ``(cy - f * h / 2, cx - f * w / 2,
        cy + f * h / 2, cx + f * w / 2)``.
    """
    boxes = as_boxes(boxes, "boxes", dtype=np.float64)
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
    grow = (boxes[:, 2:] - boxes[:, :2]) * ((factor - 1.0) / 2.0)
    return np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)


def non_max_suppression(boxes, scores, threshold, max_output=None):
    """Greedy non-maximum suppression (reference implementation).

    Repeatedly picks the highest-scoring remaining box and drops every
    remaining box whose IoU with it is strictly greater than ``threshold``.
    Equal scores are taken in order of increasing index (lower index first).

    Args:
        boxes: [N, (y1, x1, y2, x2)].
        scores: [N] scores (finite).
        threshold: IoU above which a box is suppressed.
        max_output: optional maximum number of indices to return.

    Returns:
        int32 [K] indices into ``boxes``, in selection order (by decreasing
        score), ``K <= N`` and ``K <= max_output``.

    Raises:
        ValueError: on shape mismatches, non-finite scores or a negative
            ``max_output``.
    """
    boxes = as_boxes(boxes, "boxes")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"scores has {scores.shape[0]} values but there are {boxes.shape[0]} boxes")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores must be finite, got {scores[~np.isfinite(scores)][:5]}")
    if max_output is None:
        max_output = boxes.shape[0]
    if max_output < 0:
        raise ValueError(f"max_output must be >= 0 or None, got {max_output}")
    # Stable sort on -score: ties keep increasing index order.
    order = np.argsort(-scores, kind="stable")
    areas = box_areas(boxes)
    keep = []
    while order.size and len(keep) < max_output:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int32)
