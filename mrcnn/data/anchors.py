"""Anchor boxes for the region proposal network (NumPy).

An anchor is a pixel box ``(y1, x1, y2, x2)`` centred on a feature-map cell.
For a level with feature stride ``s``, cell ``(i, j)`` is centred at pixel
``(i * s, j * s)``. For each ratio ``r`` (Matterport's convention,
``r = width / height``) the anchor has

    height = scale / sqrt(r)        width = scale * sqrt(r)

so every anchor of a level has area ``scale ** 2``.

Ordering (Matterport's, which trained weights depend on): cells in row-major
order (``y`` outer, ``x`` inner, stepping ``anchor_stride`` cells), and within
a cell the ratios in the order given (fastest). Pyramid anchors concatenate
the levels in the order given.
"""

import math
import numbers

import numpy as np

from mrcnn.data.boxes import extract_bboxes
from mrcnn.data.iou import box_iou

__all__ = ["compute_backbone_shapes", "generate_anchors", "generate_pyramid_anchors",
           "model_anchors", "anchor_coverage", "best_anchor_iou", "suggest_anchor_scales",
           "dataset_anchor_scales"]


def _positive_numbers(values, name, allow_scalar=False):
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0 and allow_scalar:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a non-empty list of positive numbers, got {values!r}")
    return arr


def _positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def compute_backbone_shapes(image_shape, strides):
    """Feature-map size of each pyramid level.

    Args:
        image_shape: (height, width[, channels]) of the network input.
        strides: feature strides of the levels, e.g. ``[4, 8, 16, 32, 64]``.

    Returns:
        int array [num_levels, (height, width)] with
        ``ceil(height / stride), ceil(width / stride)``.

    Raises:
        ValueError: on a non-positive image size or stride.
    """
    if len(image_shape) < 2 or image_shape[0] < 1 or image_shape[1] < 1:
        raise ValueError(
            f"image_shape must be (height, width[, channels]) with positive sizes, "
            f"got {tuple(image_shape)}")
    strides = [_positive_int(s, "each stride") for s in strides]
    if not strides:
        raise ValueError("strides must list at least one stride, got []")
    height, width = int(image_shape[0]), int(image_shape[1])
    return np.array([[math.ceil(height / s), math.ceil(width / s)] for s in strides],
                    dtype=np.int64)


def generate_anchors(scale, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one pyramid level.

    Args:
        scale: anchor side in pixels (sqrt of its area). A 1-D list of scales
            is also accepted; then each cell holds ``len(ratios) * len(scale)``
            anchors, ratio-major (scales fastest), as in Matterport.
        ratios: width/height ratios, e.g. ``[0.5, 1, 2]``.
        shape: (height, width) of the feature map in cells.
        feature_stride: pixels per feature-map cell.
        anchor_stride: place anchors on every ``anchor_stride``-th cell.

    Returns:
        float32 [n, (y1, x1, y2, x2)] pixel anchors (may extend beyond the
        image), ``n = ceil(H / anchor_stride) * ceil(W / anchor_stride) *
        len(ratios) * len(scales)``. Ordering: see the module docstring.

    Raises:
        ValueError: on non-positive scales, ratios or strides, or a bad shape.
    """
    scales = _positive_numbers(scale, "scale", allow_scalar=True)
    ratios = _positive_numbers(ratios, "ratios", allow_scalar=True)
    feature_stride = _positive_number(feature_stride, "feature_stride")
    anchor_stride = _positive_int(anchor_stride, "anchor_stride")
    if len(shape) != 2 or any(isinstance(v, bool) or int(v) != v or v < 0 for v in shape):
        raise ValueError(f"shape must be (height, width) in cells, got {tuple(shape)}")

    # Per-cell anchor sizes: ratios outer, scales inner.
    sqrt_r = np.sqrt(ratios)[:, None]
    heights = (scales[None, :] / sqrt_r).reshape(-1)
    widths = (scales[None, :] * sqrt_r).reshape(-1)
    sizes = np.stack([heights, widths], axis=1)  # [k, 2]

    ys = np.arange(0, int(shape[0]), anchor_stride) * feature_stride
    xs = np.arange(0, int(shape[1]), anchor_stride) * feature_stride
    cy, cx = np.meshgrid(ys, xs, indexing="ij")  # row-major cells
    centers = np.stack([cy.reshape(-1), cx.reshape(-1)], axis=1)  # [cells, 2]

    # [cells, k, 2] -> [cells * k, 2] keeps the anchors of a cell together.
    low = (centers[:, None, :] - 0.5 * sizes[None, :, :]).reshape(-1, 2)
    high = (centers[:, None, :] + 0.5 * sizes[None, :, :]).reshape(-1, 2)
    return np.concatenate([low, high], axis=1).astype(np.float32)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every pyramid level, concatenated level by level.

    Args:
        scales: one anchor scale (pixels) per level, e.g.
            ``(32, 64, 128, 256, 512)``, or a tuple of scales per level (the
            same count at each), e.g. ``((8, 11), (16, 23), ...)``.
        ratios: width/height ratios used at every level, e.g. ``[0.5, 1, 2]``.
        feature_shapes: [num_levels, (height, width)] feature-map sizes, e.g.
            from :func:`compute_backbone_shapes`.
        feature_strides: pixels per cell of each level, e.g.
            ``[4, 8, 16, 32, 64]``.
        anchor_stride: place anchors on every ``anchor_stride``-th cell.

    Returns:
        float32 [total_anchors, (y1, x1, y2, x2)] pixel anchors; level ``i``
        uses ``scales[i]`` and ``feature_strides[i]``.

    Raises:
        ValueError: if the per-level lists have different lengths or hold
            non-positive values.
    """
    if np.ndim(scales) == 0:
        scales = [scales]
    elif np.ndim(scales) == 2:
        scales = [list(np.asarray(s, dtype=np.float64)) for s in scales]
    else:
        scales = list(np.asarray(scales).reshape(-1))
    feature_shapes = np.asarray(feature_shapes)
    if feature_shapes.ndim != 2 or feature_shapes.shape[1] != 2:
        raise ValueError(
            "feature_shapes must have shape [num_levels, (height, width)], "
            f"got shape {feature_shapes.shape}")
    feature_strides = list(np.asarray(feature_strides).reshape(-1))
    if not (len(scales) == len(feature_shapes) == len(feature_strides)) or not scales:
        raise ValueError(
            f"need one scale, feature shape and stride per level; got {len(scales)} scales "
            f"{scales}, {len(feature_shapes)} feature shapes and {len(feature_strides)} "
            f"strides {feature_strides}")
    levels = [
        generate_anchors(scale if isinstance(scale, list) else float(scale), ratios,
                         tuple(int(v) for v in shape),
                         float(stride), anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes, feature_strides)
    ]
    return np.concatenate(levels, axis=0)


def model_anchors(config):
    """Pixel anchors [A, (y1, x1, y2, x2)] of a Config's model input, in the RPN's output order.

    Reads IMAGE_SHAPE, BACKBONE_STRIDES (derived from the backbone by the
    Config), RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS and RPN_ANCHOR_STRIDE: the
    same anchors the model's AnchorsLayer holds (normalized there).
    """
    strides = [int(s) for s in config.BACKBONE_STRIDES]
    shapes = compute_backbone_shapes(config.IMAGE_SHAPE, strides)
    return generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    shapes, strides, config.RPN_ANCHOR_STRIDE)


def anchor_coverage(gt_boxes, anchors, threshold=0.7, chunk=256):
    """How well a set of anchors covers ground-truth boxes (to choose anchor sizes).

    The RPN learns from anchors whose IoU with a GT box is at least
    ``threshold`` (0.7 in Mask R-CNN); a box without any such anchor only gets
    its single best anchor as a positive. Compare anchor settings on your own
    boxes with this before training.

    Args:
        gt_boxes: [N, (y1, x1, y2, x2)] GT boxes in model-input pixels (e.g.
            ``extract_bboxes(mask)`` of images as the model sees them).
        anchors: [A, (y1, x1, y2, x2)] pixel anchors, e.g.
            ``model_anchors(config)``.
        threshold: IoU that makes an anchor positive.
        chunk: GT boxes per IoU block (bounds memory to chunk * A floats).

    Returns:
        dict: ``covered`` (fraction of boxes with an anchor at IoU >=
        threshold), ``positives_per_box`` (mean count of such anchors),
        ``mean_best_iou`` (mean over boxes of the best anchor IoU), ``boxes``.

    Raises:
        ValueError: if either array is not [n, 4].
    """
    gt = np.asarray(gt_boxes, dtype=np.float64)
    an = np.asarray(anchors, dtype=np.float64)
    for name, arr in (("gt_boxes", gt), ("anchors", an)):
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"{name} must have shape [n, (y1, x1, y2, x2)], got {arr.shape}")
    if len(gt) == 0:
        return {"covered": float("nan"), "positives_per_box": float("nan"),
                "mean_best_iou": float("nan"), "boxes": 0}
    best, count = [], []
    for start in range(0, len(gt), chunk):
        iou = box_iou(gt[start:start + chunk], an)
        best.append(iou.max(axis=1))
        count.append((iou >= threshold).sum(axis=1))
    best, count = np.concatenate(best), np.concatenate(count)
    return {"covered": float(np.mean(count > 0)), "positives_per_box": float(count.mean()),
            "mean_best_iou": float(best.mean()), "boxes": int(len(gt))}


def best_anchor_iou(gt_boxes, scales, ratios, stride, image_shape, anchor_stride=1):
    """Best IoU of each box with the anchors of one level, per scale (closed form).

    Equal to the maximum over ``generate_anchors(scale, ratios, shape,
    stride, anchor_stride)`` of :func:`box_iou` with each box, without
    building them: for fixed anchor sizes the IoU falls with the centre
    offset along each axis, so the best anchor of a size sits on the grid
    point nearest the box centre.

    Args:
        gt_boxes: [N, (y1, x1, y2, x2)] pixel boxes.
        scales: [S] anchor sides (pixels).
        ratios: [R] width/height ratios.
        stride: the level's feature stride (pixels per cell).
        image_shape: (height, width) of the model input (bounds the grid).
        anchor_stride: anchors on every ``anchor_stride``-th cell.

    Returns:
        float64 [N, S]: the best IoU over ratios and positions.
    """
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    scales = _positive_numbers(scales, "scales", allow_scalar=True)
    ratios = _positive_numbers(ratios, "ratios", allow_scalar=True)
    shape = compute_backbone_shapes(image_shape, [stride])[0]
    anchor_stride = _positive_int(anchor_stride, "anchor_stride")
    step = float(stride) * anchor_stride
    last = (np.ceil(shape / anchor_stride) - 1) * step                    # the last cell used
    centre = (gt[:, :2] + gt[:, 2:]) / 2
    grid = np.clip(np.round(centre / step) * step, 0, last)                # [N, 2]
    size = gt[:, 2:] - gt[:, :2]                                           # [N, (h, w)]
    sqrt_r = np.sqrt(ratios)
    a_h = scales[:, None] / sqrt_r[None, :]                                # [S, R]
    a_w = scales[:, None] * sqrt_r[None, :]

    def overlap(c_box, half_box, c_anchor, half_anchor):                  # 1-D intersection
        lo = np.maximum(c_box - half_box, c_anchor - half_anchor)
        hi = np.minimum(c_box + half_box, c_anchor + half_anchor)
        return np.maximum(hi - lo, 0.0)

    iy = overlap(centre[:, 0, None, None], size[:, 0, None, None] / 2, grid[:, 0, None, None],
                 a_h[None] / 2)
    ix = overlap(centre[:, 1, None, None], size[:, 1, None, None] / 2, grid[:, 1, None, None],
                 a_w[None] / 2)
    inter = iy * ix
    union = (size[:, 0] * size[:, 1])[:, None, None] + (a_h * a_w)[None] - inter
    return (inter / np.maximum(union, 1e-12)).max(axis=2)


def suggest_anchor_scales(gt_boxes, image_shape, feature_strides, ratios=(0.5, 1, 2),
                          anchor_stride=1, threshold=0.7, max_per_level=4, min_gain=0.02,
                          objective="mean_best_iou"):
    """Anchor sizes per pyramid level fitted to your boxes (for ``Config.RPN_ANCHOR_SCALES``).

    Searches FPN's layout -- level ``l`` holds ``k`` sizes ``s0 * 2**l *
    g**j`` (``j < k``; the sizes double with the stride) -- over the smallest
    size ``s0`` (4 px up, quarter octaves), ``k`` = 1..`max_per_level` and the
    step ``g`` (the ``k`` sizes span one, 1.5 or 2 octaves), and keeps the
    layout with the best `objective`: ``"mean_best_iou"`` (default: the mean
    over boxes of the best anchor IoU; every box counts, also those too
    small for any anchor to reach `threshold`, which the RPN then learns
    from their single best anchor) or ``"covered"`` (the fraction of boxes
    with an anchor at IoU >= `threshold`, the RPN's positives; see
    :func:`anchor_coverage`). More sizes per level cost RPN time, so a
    larger ``k`` is chosen only when it adds at least `min_gain` to the
    objective.

    Args:
        gt_boxes: [N, (y1, x1, y2, x2)] GT boxes in model-input pixels (as
            the model sees them: after any resizing).
        image_shape: (height, width) of the model input.
        feature_strides: the levels' strides (``Config.BACKBONE_STRIDES``).
        ratios: ``Config.RPN_ANCHOR_RATIOS``.
        anchor_stride: ``Config.RPN_ANCHOR_STRIDE``.
        threshold: IoU that makes an anchor positive.
        max_per_level: the most sizes per level to consider (1..8).
        min_gain: what a larger ``k`` must add to the objective to be chosen.
        objective: ``"mean_best_iou"`` or ``"covered"``.

    Returns:
        (scales, stats): ``scales`` a tuple with one entry per level (an int
        for ``k == 1``, else a tuple of ``k`` ints); ``stats`` the dict of
        :func:`anchor_coverage` for them (``covered``,
        ``positives_per_box``, ``mean_best_iou``, ``boxes``).

    Raises:
        ValueError: no boxes, or bad strides, ratios, limits or objective.
    """
    if objective not in ("mean_best_iou", "covered"):
        raise ValueError(f"objective must be 'mean_best_iou' or 'covered', got {objective!r}")
    gt = np.asarray(gt_boxes, dtype=np.float64)
    if gt.ndim != 2 or gt.shape[1] != 4 or len(gt) == 0:
        raise ValueError(f"gt_boxes must be a non-empty [n, (y1, x1, y2, x2)] array, got shape "
                         f"{gt.shape}")
    strides = [_positive_int(s, "each feature stride") for s in feature_strides]
    if not strides:
        raise ValueError("feature_strides must list at least one stride, got []")
    if isinstance(max_per_level, bool) or int(max_per_level) != max_per_level \
            or not 1 <= max_per_level <= 8:
        raise ValueError(f"max_per_level must be an integer in 1..8, got {max_per_level!r}")
    if not 0 < threshold <= 1 or not 0 <= min_gain < 1:
        raise ValueError(f"need 0 < threshold <= 1 and 0 <= min_gain < 1, got threshold "
                         f"{threshold!r}, min_gain {min_gain!r}")
    largest = float(np.sqrt(np.prod(gt[:, 2:] - gt[:, :2], axis=1)).max())
    bases = [4 * 2 ** (i / 4) for i in range(int(4 * np.log2(max(largest, 8) / 4)) + 1)]
    table = {}                                  # (level, rounded size) -> best IoU per box

    def best(level, size):
        key = (level, size)
        if key not in table:
            table[key] = best_anchor_iou(gt, [size], ratios, strides[level], image_shape,
                                         anchor_stride)[:, 0]
        return table[key]

    by_k = {}
    for k in range(1, int(max_per_level) + 1):
        for span in ((1.0,) if k == 1 else (1.0, 1.5, 2.0)):
            step = 2 ** (span / k)
            for s0 in bases:
                levels = [tuple(int(round(s0 * 2 ** level * step ** j)) for j in range(k))
                          for level in range(len(strides))]
                if any(len(set(sizes)) < k for sizes in levels):
                    continue
                ious = np.max([best(level, size) for level, sizes in enumerate(levels)
                               for size in sizes], axis=0)
                covered, mean = float(np.mean(ious >= threshold)), float(ious.mean())
                score = (mean, covered) if objective == "mean_best_iou" else (covered, mean)
                if k not in by_k or score > by_k[k][0]:
                    by_k[k] = (score, levels)
    chosen_k = min(by_k)
    for k in sorted(by_k):
        if by_k[k][0][0] >= by_k[chosen_k][0][0] + min_gain:
            chosen_k = k
    levels = by_k[chosen_k][1]
    scales = tuple(sizes[0] if chosen_k == 1 else sizes for sizes in levels)
    shapes = compute_backbone_shapes(image_shape, strides)
    anchors = generate_pyramid_anchors(scales, ratios, shapes, strides, anchor_stride)
    return scales, anchor_coverage(gt, anchors, threshold)


def dataset_anchor_scales(dataset, config, scale=1.0, max_images=200, seed=0, **kwargs):
    """`suggest_anchor_scales` over a dataset's boxes, for a model built from `config`.

    The boxes of up to `max_images` images (a seeded choice; ``None``: all),
    from their instance masks, times `scale` (the resize the model sees,
    ``Config.IMAGE_SCALE``), against the anchor grid of an input as large as
    ``config.IMAGE_SHAPE`` or the farthest box, whichever is larger (random
    crops put a box anywhere in the input).

    Args:
        dataset: a prepared `mrcnn.dataset.Dataset` (``load_mask``).
        config: a Config (BACKBONE_STRIDES, RPN_ANCHOR_RATIOS,
            RPN_ANCHOR_STRIDE, IMAGE_SHAPE; its RPN_ANCHOR_SCALES is the
            baseline reported).
        scale: factor applied to the boxes.
        max_images: images read at most.
        seed: of the choice of images.
        **kwargs: passed to `suggest_anchor_scales` (threshold,
            max_per_level, min_gain, objective).

    Returns:
        ``(scales, stats, baseline)``: the fitted ``Config.RPN_ANCHOR_SCALES``,
        the `anchor_coverage` dict of them and that of the config's own.

    Raises:
        ValueError: no instance in the images read (or `suggest_anchor_scales`'
            errors).
    """
    ids = np.asarray(dataset.image_ids)
    if max_images is not None and len(ids) > max_images:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_images, replace=False))
    boxes = [np.zeros((0, 4))] + [extract_bboxes(np.asarray(dataset.load_mask(int(i))[0], bool))
                                  for i in ids]
    boxes = np.concatenate(boxes) * float(scale)
    if not len(boxes):
        raise ValueError(f"dataset_anchor_scales: the {len(ids)} images read hold no "
                         f"instances, nothing to fit anchors to")
    shape = np.maximum(np.asarray(config.IMAGE_SHAPE[:2], int),
                       np.ceil(boxes[:, 2:].max(axis=0))).astype(int)
    strides = config.BACKBONE_STRIDES
    scales, stats = suggest_anchor_scales(boxes, shape, strides, config.RPN_ANCHOR_RATIOS,
                                          config.RPN_ANCHOR_STRIDE, **kwargs)
    baseline = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                        compute_backbone_shapes(shape, strides), strides,
                                        config.RPN_ANCHOR_STRIDE)
    return scales, stats, anchor_coverage(boxes, baseline, kwargs.get("threshold", 0.7))
