"""Training targets of the region proposal network (NumPy).

Each anchor is labelled by its IoU with the ground-truth boxes (Matterport's
rules):

1. Crowd boxes (``gt_class_ids < 0``) are set aside. An anchor whose IoU with
   any crowd box is ``>= crowd_iou`` (0.001) may not be a negative.
2. IoU is computed against the non-crowd boxes only. An anchor is negative
   (-1) if its best IoU is ``< negative_iou`` (0.3) and it does not touch a
   crowd box.
3. For each non-crowd box, its single best anchor (highest IoU, lowest anchor
   index on ties) becomes positive (1), overriding rule 2, so that every box
   gets at least one anchor. A box that overlaps no anchor at all (best IoU
   0, e.g. a zero-area box) gets none: unlike Matterport's ``argwhere`` form,
   a zero-IoU "best match" never turns anchors positive.
4. An anchor is positive (1) if its best IoU is ``>= positive_iou`` (0.7).
5. Everything else is neutral (0) and ignored by the loss.

Then the labels are subsampled: at most ``anchors_per_image // 2`` positives
are kept (the rest, chosen at random, become 0), and negatives fill the
remainder up to ``anchors_per_image`` (extras at random become 0).

`rpn_targets` does both steps for one image. For a data pipeline that sees
the same boxes again (cached samples without resampling augmentation), the
split form caches the deterministic, costly part: `match_anchors` (rules
1-5, returns plain arrays) and `sample_rpn_targets` (subsampling and deltas,
every epoch); together they give exactly `rpn_targets`'s result.

The IoU matrix is scanned in chunks of anchors; for each chunk only the
boxes that intersect the chunk's bounding box are compared, which makes the
usual spatially ordered pyramid anchors cheap (100 boxes vs 261,888 anchors
in a few tens of milliseconds).
"""

import numbers

import numpy as np

from mrcnn.data.boxes import box_refinement
from mrcnn.data.iou import as_boxes, box_areas, box_iou

__all__ = ["build_rpn_targets", "rpn_targets", "rpn_match_labels", "match_anchors",
           "sample_rpn_targets", "subsample_labels"]

_CHUNK = 2048


def _check_boxes(boxes, name):
    arr = as_boxes(boxes, name)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got non-finite values")
    return arr


def _scan_overlaps(anchors, boxes, chunk=_CHUNK):
    """Row and column maxima of the anchors x boxes IoU matrix.

    Args:
        anchors: float32 [A, (y1, x1, y2, x2)].
        boxes: float32 [G, (y1, x1, y2, x2)], same frame.
        chunk: anchors per block.

    Returns:
        anchor_max: float32 [A], best IoU of each anchor (0 if none).
        anchor_arg: int64 [A], index of that box (lowest on ties; meaningful
            only where ``anchor_max > 0``).
        box_max: float32 [G], best IoU of each box.
        box_arg: int64 [G], index of the first anchor reaching ``box_max``
            (meaningful only where ``box_max > 0``).
    """
    num_anchors, num_boxes = anchors.shape[0], boxes.shape[0]
    anchor_max = np.zeros(num_anchors, dtype=np.float32)
    anchor_arg = np.zeros(num_anchors, dtype=np.int64)
    box_max = np.zeros(num_boxes, dtype=np.float32)
    box_arg = np.zeros(num_boxes, dtype=np.int64)
    if num_anchors == 0 or num_boxes == 0:
        return anchor_max, anchor_arg, box_max, box_arg
    has_area = box_areas(boxes) > 0
    for start in range(0, num_anchors, chunk):
        stop = min(start + chunk, num_anchors)
        a = anchors[start:stop]
        lo = a[:, :2].min(axis=0)
        hi = a[:, 2:].max(axis=0)
        # Boxes that can intersect some anchor of this chunk (ascending index).
        sel = np.flatnonzero(has_area
                             & (boxes[:, 0] < hi[0]) & (boxes[:, 2] > lo[0])
                             & (boxes[:, 1] < hi[1]) & (boxes[:, 3] > lo[1]))
        if sel.size == 0:
            continue
        iou = box_iou(a, boxes[sel], np.float32)  # [chunk, len(sel)]
        rows = np.arange(stop - start)
        best = iou.argmax(axis=1)
        anchor_max[start:stop] = iou[rows, best]
        anchor_arg[start:stop] = sel[best]
        col_best = iou.argmax(axis=0)
        col_max = iou[col_best, np.arange(sel.size)]
        # Strictly greater: earlier chunks (lower anchor indices) win ties.
        better = col_max > box_max[sel]
        box_max[sel[better]] = col_max[better]
        box_arg[sel[better]] = start + col_best[better]
    return anchor_max, anchor_arg, box_max, box_arg


def _match(anchors, gt_boxes, gt_class_ids, positive_iou, negative_iou, crowd_iou):
    """Unsampled labels plus, per anchor, the index of its best non-crowd box.

    Returns:
        labels: int32 [A], 1 / -1 / 0 (rules in the module docstring).
        anchor_arg: int64 [A], index of each anchor's best box among the
            non-crowd boxes (``gt_boxes[gt_class_ids >= 0]``); meaningful
            only where the anchor overlaps one.
    """
    anchors = _check_boxes(anchors, "anchors")
    gt_boxes = _check_boxes(gt_boxes, "gt_boxes")
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    if gt_class_ids.shape[0] != gt_boxes.shape[0]:
        raise ValueError(
            f"gt_class_ids has {gt_class_ids.shape[0]} entries but gt_boxes has "
            f"{gt_boxes.shape[0]} boxes; they must match")
    if not 0 <= negative_iou <= positive_iou <= 1:
        raise ValueError(
            "need 0 <= negative_iou <= positive_iou <= 1, got "
            f"negative_iou={negative_iou}, positive_iou={positive_iou}")
    bad = np.flatnonzero((gt_boxes[:, 2] < gt_boxes[:, 0]) | (gt_boxes[:, 3] < gt_boxes[:, 1]))
    if bad.size:
        raise ValueError(
            f"gt_boxes row {bad[0]} = {gt_boxes[bad[0]].tolist()} is inverted; "
            "boxes are (y1, x1, y2, x2) with y2 >= y1 and x2 >= x1")

    crowd = gt_class_ids < 0
    boxes = gt_boxes[~crowd]
    anchor_max, anchor_arg, box_max, box_arg = _scan_overlaps(anchors, boxes)
    not_crowd = np.ones(anchors.shape[0], dtype=bool)
    if crowd.any():
        crowd_max = _scan_overlaps(anchors, gt_boxes[crowd])[0]
        not_crowd = crowd_max < crowd_iou

    labels = np.zeros(anchors.shape[0], dtype=np.int32)
    labels[(anchor_max < negative_iou) & not_crowd] = -1
    labels[box_arg[box_max > 0]] = 1
    labels[anchor_max >= positive_iou] = 1
    return labels, anchor_arg


def rpn_match_labels(anchors, gt_boxes, gt_class_ids, positive_iou=0.7, negative_iou=0.3,
                     crowd_iou=0.001):
    """Labels every anchor before subsampling (rules in the module docstring).

    Args:
        anchors: [A, (y1, x1, y2, x2)] pixel anchors.
        gt_boxes: [G, (y1, x1, y2, x2)] pixel ground-truth boxes (may be G=0).
        gt_class_ids: [G] int class ids; negative ids mark crowd boxes.
        positive_iou: IoU at or above which an anchor is positive.
        negative_iou: IoU below which an anchor is negative.
        crowd_iou: IoU with a crowd box at or above which an anchor cannot be
            negative.

    Returns:
        int32 [A] labels: 1 positive, -1 negative, 0 neutral.

    Raises:
        ValueError: on bad shapes, inverted gt boxes or thresholds.
    """
    return _match(anchors, gt_boxes, gt_class_ids, positive_iou, negative_iou, crowd_iou)[0]


def match_anchors(anchors, gt_boxes, gt_class_ids, positive_iou=0.7, negative_iou=0.3,
                  crowd_iou=0.001):
    """The deterministic part of `rpn_targets`, as arrays that can be cached.

    Labels every anchor (rules in the module docstring) and records, for
    each positive anchor, its best-IoU non-crowd box; `sample_rpn_targets`
    turns the result into the training targets.

    Args:
        anchors: [A, (y1, x1, y2, x2)] pixel anchors.
        gt_boxes: [G, (y1, x1, y2, x2)] pixel ground-truth boxes (may be G=0),
            same frame as the anchors.
        gt_class_ids: [G] int class ids; negative ids mark crowd boxes.
        positive_iou, negative_iou, crowd_iou: thresholds as in
            `rpn_match_labels`. `rpn_targets` uses the defaults.

    Returns:
        dict of NumPy arrays:
            "labels": int8 [A], 1 positive, -1 negative, 0 neutral, before
                subsampling.
            "positives": int64 [P], the anchors labelled 1, ascending.
            "positive_box": int64 [P], the best box of each of those anchors,
                as an index into the non-crowd boxes
                ``gt_boxes[gt_class_ids >= 0]``.

    Raises:
        ValueError: on bad shapes, inverted gt boxes or thresholds.

    Example:
        >>> match = match_anchors(anchors, gt_boxes, gt_class_ids)
        >>> rpn_match, rpn_bbox = sample_rpn_targets(
        ...     match, anchors, gt_boxes, gt_class_ids, 256, [0.1, 0.1, 0.2, 0.2], rng)
    """
    labels, anchor_arg = _match(anchors, gt_boxes, gt_class_ids, positive_iou, negative_iou,
                                crowd_iou)
    positives = np.flatnonzero(labels == 1)
    return {"labels": labels.astype(np.int8), "positives": positives,
            "positive_box": anchor_arg[positives]}


def sample_rpn_targets(match, anchors, gt_boxes, gt_class_ids, anchors_per_image,
                       bbox_std_dev, rng):
    """RPN targets from a `match_anchors` result: subsampling and box deltas.

    Draws from `rng` exactly as `rpn_targets`, so
    ``sample_rpn_targets(match_anchors(a, b, c), a, b, c, n, std, rng)``
    equals ``rpn_targets(a, b, c, n, std, rng)``.

    Args:
        match: the dict returned by `match_anchors` for these anchors and
            boxes (not modified).
        anchors, gt_boxes, gt_class_ids: the arguments given to
            `match_anchors`.
        anchors_per_image: anchors kept for the loss; at most half positive.
        bbox_std_dev: [4] divisor of the deltas.
        rng: ``np.random.Generator`` choosing the anchors dropped.

    Returns:
        rpn_match: int32 [A], 1 positive, -1 negative, 0 neutral, after
            subsampling.
        rpn_bbox: float32 [anchors_per_image, (dy, dx, log(dh), log(dw))],
            as in `rpn_targets`.
    """
    labels = match["labels"].astype(np.int32)
    first_positives = np.asarray(match["positives"], np.int64)
    anchors = np.asarray(anchors, np.float32)
    crowd = np.asarray(gt_class_ids).reshape(-1) < 0
    boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)[~crowd]
    std = np.asarray(bbox_std_dev, np.float32).reshape(-1)
    positives = subsample_labels(labels, anchors_per_image, rng)
    rpn_bbox = np.zeros((anchors_per_image, 4), dtype=np.float32)
    if positives.size:
        best = np.asarray(match["positive_box"], np.int64)[
            np.searchsorted(first_positives, positives)]
        rpn_bbox[:positives.size] = box_refinement(anchors[positives], boxes[best]) / std
    return labels, rpn_bbox


def subsample_labels(labels, anchors_per_image, rng):
    """Keep at most half positives and fill up with negatives, in place.

    Args:
        labels: int32 [A] (1 positive, -1 negative, 0 neutral); modified.
        anchors_per_image: total anchors kept for the loss.
        rng: np.random.Generator choosing which extras become neutral.

    Returns:
        int64 indices of the positive anchors left, ascending.
    """
    positives = np.flatnonzero(labels == 1)
    max_positives = anchors_per_image // 2
    if positives.size > max_positives:
        keep = rng.choice(positives, max_positives, replace=False)
        labels[positives] = 0
        labels[keep] = 1
        positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == -1)
    max_negatives = anchors_per_image - positives.size
    if negatives.size > max_negatives:
        keep = rng.choice(negatives, max_negatives, replace=False)
        labels[negatives] = 0
        labels[keep] = -1
    return positives


def rpn_targets(anchors, gt_boxes, gt_class_ids, anchors_per_image, bbox_std_dev, rng=None,
                positive_iou=0.7, negative_iou=0.3):
    """RPN match labels and box deltas for one image.

    Args:
        anchors: [A, (y1, x1, y2, x2)] pixel anchors.
        gt_boxes: [G, (y1, x1, y2, x2)] pixel ground-truth boxes (may be G=0).
        gt_class_ids: [G] int class ids; negative ids mark crowd boxes.
        anchors_per_image: anchors kept for the loss (e.g. 256); at most half
            of them positive.
        bbox_std_dev: [4] divisor of the deltas, e.g. ``[0.1, 0.1, 0.2, 0.2]``.
        rng: ``np.random.Generator`` (or seed) used for subsampling; default
            ``np.random.default_rng()``.
        positive_iou, negative_iou: the labelling thresholds of
            `rpn_match_labels` (Config.RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU).

    Returns:
        rpn_match: int32 [A], 1 positive, -1 negative, 0 neutral, after
            subsampling.
        rpn_bbox: float32 [anchors_per_image, (dy, dx, log(dh), log(dw))]:
            deltas from each positive anchor to its best-IoU non-crowd box,
            divided by ``bbox_std_dev``, in the order the positives appear in
            ``rpn_match``; remaining rows are zero.

    Raises:
        ValueError: on bad shapes or arguments.
    """
    if (isinstance(anchors_per_image, bool) or not isinstance(anchors_per_image, numbers.Integral)
            or anchors_per_image < 1):
        raise ValueError(f"anchors_per_image must be a positive integer, got {anchors_per_image!r}")
    std = np.asarray(bbox_std_dev, dtype=np.float32).reshape(-1)
    if std.shape != (4,) or not np.all(std > 0):
        raise ValueError(f"bbox_std_dev must be 4 positive numbers, got {bbox_std_dev!r}")
    rng = np.random.default_rng(rng)

    match = match_anchors(anchors, gt_boxes, gt_class_ids, positive_iou, negative_iou)
    return sample_rpn_targets(match, anchors, gt_boxes, gt_class_ids, anchors_per_image, std,
                              rng)


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng=None):
    """Matterport-compatible wrapper around :func:`rpn_targets`.

    Args:
        image_shape: [height, width, channels] (unused; kept for the
            Matterport signature).
        anchors: [A, (y1, x1, y2, x2)] pixel anchors.
        gt_class_ids: [G] int class ids; negative ids mark crowd boxes.
        gt_boxes: [G, (y1, x1, y2, x2)] pixel boxes.
        config: object with ``RPN_TRAIN_ANCHORS_PER_IMAGE`` and
            ``RPN_BBOX_STD_DEV`` (and optionally ``RPN_POSITIVE_IOU``,
            ``RPN_NEGATIVE_IOU``: 0.7, 0.3 when it has none, as Matterport's).
        rng: ``np.random.Generator`` (or seed) for subsampling.

    Returns:
        rpn_match: int32 [A]; rpn_bbox: float32
        [RPN_TRAIN_ANCHORS_PER_IMAGE, 4]. See :func:`rpn_targets`.
    """
    del image_shape
    return rpn_targets(anchors, gt_boxes, gt_class_ids,
                       config.RPN_TRAIN_ANCHORS_PER_IMAGE, config.RPN_BBOX_STD_DEV, rng=rng,
                       positive_iou=getattr(config, "RPN_POSITIVE_IOU", 0.7),
                       negative_iou=getattr(config, "RPN_NEGATIVE_IOU", 0.3))
