"""Box arithmetic in ``keras.ops`` (runs on every Keras backend, jit-safe).

All boxes are ``[..., 4]`` tensors in ``(y1, x1, y2, x2)`` order with any
number of leading dimensions. The functions do not care whether the boxes
are in pixels or normalized coordinates, except :func:`norm_boxes_graph` and
:func:`denorm_boxes_graph`, which convert between the two using Matterport's
convention::

    norm   = (box - [0, 0, 1, 1]) / [h - 1, w - 1, h - 1, w - 1]
    denorm = round(norm * [h - 1, w - 1, h - 1, w - 1] + [0, 0, 1, 1])

i.e. pixel boxes have exclusive ``y2, x2`` and normalized ``0`` / ``1`` map to
the first / last pixel.

Box deltas are ``(dy, dx, log(dh), log(dw))`` relative to the box centre and
size (``dy = (gt_cy - cy) / h``); callers multiply / divide by
``BBOX_STD_DEV`` themselves.

Integer inputs are cast to ``float32``; float inputs keep their dtype.
"""

from keras import ops

__all__ = [
    "apply_box_deltas_graph",
    "clip_boxes_graph",
    "box_refinement_graph",
    "overlaps_graph",
    "norm_boxes_graph",
    "denorm_boxes_graph",
    "box_area_graph",
    "scale_boxes_graph",
]


def _as_float(x):
    """Converts ``x`` to a tensor, casting non-float dtypes to float32."""
    x = ops.convert_to_tensor(x)
    if "float" not in str(x.dtype):
        x = ops.cast(x, "float32")
    return x


def _check_last_dim(x, name):
    last = x.shape[-1] if len(x.shape) else None
    if last is not None and last != 4:
        raise ValueError(
            f"`{name}` must have a last dimension of 4 (y1, x1, y2, x2); "
            f"got shape {tuple(x.shape)}."
        )


def _unstack4(x):
    """Splits ``[..., 4]`` into four ``[...]`` tensors."""
    return x[..., 0], x[..., 1], x[..., 2], x[..., 3]


def box_area_graph(boxes):
    """Area of boxes; degenerate (inverted or empty) boxes have area 0.

    Args:
        boxes: ``[..., 4]`` boxes ``(y1, x1, y2, x2)``.

    Returns:
        ``[...]`` areas, ``max(y2 - y1, 0) * max(x2 - x1, 0)``.
    """
    boxes = _as_float(boxes)
    _check_last_dim(boxes, "boxes")
    y1, x1, y2, x2 = _unstack4(boxes)
    return ops.maximum(y2 - y1, 0.0) * ops.maximum(x2 - x1, 0.0)


MAX_LOG_SCALE = 4.135166556742356  # log(1000 / 16)
MAX_SHIFT = 10.0


def sanitize_deltas(deltas):
    """Make predicted deltas safe to apply: the result of apply_box_deltas_graph stays finite.

    Non-finite values (a diverging network) become 0, shifts are limited to
    +-MAX_SHIFT box sizes and log-size deltas to +-MAX_LOG_SCALE
    (log(1000/16), torchvision's limit).

    Args:
        deltas: ``[..., 4]`` ``(dy, dx, log(dh), log(dw))`` (after std-dev scaling).
    """
    deltas = _as_float(deltas)
    deltas = ops.where(ops.isfinite(deltas), deltas, ops.zeros_like(deltas))
    limit = ops.convert_to_tensor([MAX_SHIFT, MAX_SHIFT, MAX_LOG_SCALE, MAX_LOG_SCALE],
                                  dtype=deltas.dtype)
    return ops.clip(deltas, -limit, limit)


def apply_box_deltas_graph(boxes, deltas):
    """Refines boxes with ``(dy, dx, log(dh), log(dw))`` deltas.

    Args:
        boxes: ``[..., 4]`` boxes ``(y1, x1, y2, x2)``.
        deltas: ``[..., 4]`` deltas ``(dy, dx, log(dh), log(dw))``, already
            multiplied by ``BBOX_STD_DEV``; broadcastable against ``boxes``.

    Returns:
        ``[..., 4]`` refined boxes ``(y1, x1, y2, x2)`` in the units of
        ``boxes`` (not clipped). For predicted deltas, pass them through
        :func:`sanitize_deltas` first.
    """
    boxes = _as_float(boxes)
    deltas = ops.cast(_as_float(deltas), boxes.dtype)
    _check_last_dim(boxes, "boxes")
    _check_last_dim(deltas, "deltas")
    y1, x1, y2, x2 = _unstack4(boxes)
    dy, dx, dh, dw = _unstack4(deltas)
    height = y2 - y1
    width = x2 - x1
    center_y = y1 + 0.5 * height + dy * height
    center_x = x1 + 0.5 * width + dx * width
    height = height * ops.exp(dh)
    width = width * ops.exp(dw)
    new_y1 = center_y - 0.5 * height
    new_x1 = center_x - 0.5 * width
    return ops.stack(
        [new_y1, new_x1, new_y1 + height, new_x1 + width], axis=-1
    )


def clip_boxes_graph(boxes, window):
    """Clips box corners to lie inside a window.

    Args:
        boxes: ``[..., 4]`` boxes ``(y1, x1, y2, x2)``.
        window: ``[4]`` or ``[..., 4]`` (broadcastable against ``boxes``)
            window ``(wy1, wx1, wy2, wx2)`` in the same units as ``boxes``.

    Returns:
        ``[..., 4]`` boxes with ``y`` coordinates clipped to ``[wy1, wy2]``
        and ``x`` coordinates to ``[wx1, wx2]``.
    """
    boxes = _as_float(boxes)
    window = ops.cast(_as_float(window), boxes.dtype)
    _check_last_dim(boxes, "boxes")
    _check_last_dim(window, "window")
    wy1, wx1, wy2, wx2 = _unstack4(window)
    y1, x1, y2, x2 = _unstack4(boxes)
    y1 = ops.maximum(ops.minimum(y1, wy2), wy1)
    x1 = ops.maximum(ops.minimum(x1, wx2), wx1)
    y2 = ops.maximum(ops.minimum(y2, wy2), wy1)
    x2 = ops.maximum(ops.minimum(x2, wx2), wx1)
    return ops.stack([y1, x1, y2, x2], axis=-1)


def scale_boxes_graph(boxes, factor):
    """Boxes grown (or shrunk) about their centres by ``factor``.

    Args:
        boxes: ``[..., 4]`` boxes ``(y1, x1, y2, x2)``.
        factor: python float > 0; each box's height and width are multiplied
            by it, its centre stays (all-zero padding rows stay zero).

    Returns:
        ``[..., 4]`` boxes ``(cy - f * h / 2, cx - f * w / 2, cy + f * h / 2,
        cx + f * w / 2)``; the same tensor when ``factor == 1``.
    """
    boxes = _as_float(boxes)
    _check_last_dim(boxes, "boxes")
    factor = float(factor)
    if factor == 1.0:
        return boxes
    y1, x1, y2, x2 = _unstack4(boxes)
    grow_y = (y2 - y1) * ((factor - 1.0) / 2.0)
    grow_x = (x2 - x1) * ((factor - 1.0) / 2.0)
    return ops.stack([y1 - grow_y, x1 - grow_x, y2 + grow_y, x2 + grow_x], axis=-1)


def box_refinement_graph(boxes, gt_boxes):
    """Deltas that turn ``boxes`` into ``gt_boxes``.

    Inverse of :func:`apply_box_deltas_graph` for boxes with positive size.

    Args:
        boxes: ``[..., 4]`` source boxes ``(y1, x1, y2, x2)``.
        gt_boxes: ``[..., 4]`` target boxes, same shape (or broadcastable).

    Returns:
        ``[..., 4]`` deltas ``(dy, dx, log(dh), log(dw))`` (not divided by
        ``BBOX_STD_DEV``). Rows where either box has a non-positive height
        or width (e.g. zero padding) get all-zero deltas instead of
        NaN / inf, so padded static-shape tensors stay finite.
    """
    boxes = _as_float(boxes)
    gt_boxes = ops.cast(_as_float(gt_boxes), boxes.dtype)
    _check_last_dim(boxes, "boxes")
    _check_last_dim(gt_boxes, "gt_boxes")
    y1, x1, y2, x2 = _unstack4(boxes)
    gy1, gx1, gy2, gx2 = _unstack4(gt_boxes)
    height = y2 - y1
    width = x2 - x1
    gt_height = gy2 - gy1
    gt_width = gx2 - gx1
    valid = ops.logical_and(
        ops.logical_and(height > 0, width > 0),
        ops.logical_and(gt_height > 0, gt_width > 0),
    )
    # Replace invalid sizes by 1 before dividing / taking logs so that no
    # NaN is ever produced (NaN in an unused `where` branch would still
    # poison gradients).
    one = ops.ones_like(height)
    height = ops.where(valid, height, one)
    width = ops.where(valid, width, one)
    gt_height = ops.where(valid, gt_height, one)
    gt_width = ops.where(valid, gt_width, one)
    center_y = y1 + 0.5 * height
    center_x = x1 + 0.5 * width
    gt_center_y = gy1 + 0.5 * gt_height
    gt_center_x = gx1 + 0.5 * gt_width
    deltas = ops.stack(
        [
            (gt_center_y - center_y) / height,
            (gt_center_x - center_x) / width,
            ops.log(gt_height / height),
            ops.log(gt_width / width),
        ],
        axis=-1,
    )
    return ops.where(valid[..., None], deltas, ops.zeros_like(deltas))


def overlaps_graph(boxes1, boxes2):
    """Pairwise intersection-over-union.

    Args:
        boxes1: ``[..., N1, 4]`` boxes ``(y1, x1, y2, x2)``.
        boxes2: ``[..., N2, 4]`` boxes, leading dims broadcastable with
            ``boxes1``'s.

    Returns:
        ``[..., N1, N2]`` IoU. Pairs whose union is zero (e.g. two all-zero
        padding boxes) give 0, never NaN; a zero-area box has IoU 0 with
        every box.
    """
    boxes1 = _as_float(boxes1)
    boxes2 = ops.cast(_as_float(boxes2), boxes1.dtype)
    _check_last_dim(boxes1, "boxes1")
    _check_last_dim(boxes2, "boxes2")
    if len(boxes1.shape) < 2 or len(boxes2.shape) < 2:
        raise ValueError(
            "`boxes1` and `boxes2` must have shape [..., N, 4]; got "
            f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}."
        )
    a1 = box_area_graph(boxes1)[..., :, None]  # [..., N1, 1]
    a2 = box_area_graph(boxes2)[..., None, :]  # [..., 1, N2]
    b1 = boxes1[..., :, None, :]  # [..., N1, 1, 4]
    b2 = boxes2[..., None, :, :]  # [..., 1, N2, 4]
    inter_h = ops.maximum(
        ops.minimum(b1[..., 2], b2[..., 2]) - ops.maximum(b1[..., 0], b2[..., 0]),
        0.0,
    )
    inter_w = ops.maximum(
        ops.minimum(b1[..., 3], b2[..., 3]) - ops.maximum(b1[..., 1], b2[..., 1]),
        0.0,
    )
    inter = inter_h * inter_w
    union = a1 + a2 - inter
    positive = union > 0
    safe_union = ops.where(positive, union, ops.ones_like(union))
    return ops.where(positive, inter / safe_union, ops.zeros_like(inter))


def _shape_scale_shift(shape, dtype):
    """``[h-1, w-1, h-1, w-1]`` and ``[0, 0, 1, 1]`` as ``dtype`` tensors."""
    if isinstance(shape, (tuple, list)):
        if len(shape) < 2:
            raise ValueError(
                f"`shape` must be (height, width); got {shape!r}."
            )
        h, w = shape[0], shape[1]
        h = ops.cast(ops.convert_to_tensor(h), dtype)
        w = ops.cast(ops.convert_to_tensor(w), dtype)
    else:
        shape = ops.cast(ops.convert_to_tensor(shape), dtype)
        if len(shape.shape) != 1 or (
            shape.shape[0] is not None and shape.shape[0] < 2
        ):
            raise ValueError(
                "`shape` must be (height, width) or a 1-D tensor starting "
                f"with them; got a tensor of shape {tuple(shape.shape)}."
            )
        h, w = shape[0], shape[1]
    scale = ops.stack([h - 1.0, w - 1.0, h - 1.0, w - 1.0])
    shift = ops.convert_to_tensor([0.0, 0.0, 1.0, 1.0], dtype=dtype)
    return scale, shift


def norm_boxes_graph(boxes, shape):
    """Pixel boxes (exclusive ``y2, x2``) to normalized coordinates.

    Args:
        boxes: ``[..., 4]`` pixel boxes ``(y1, x1, y2, x2)``.
        shape: image ``(height, width)``: python ints, or a 1-D tensor whose
            first two entries are height and width (e.g. an image shape
            ``(h, w, c)``).

    Returns:
        ``[..., 4]`` float boxes ``(b - [0, 0, 1, 1]) / [h-1, w-1, h-1, w-1]``.
    """
    boxes = _as_float(boxes)
    _check_last_dim(boxes, "boxes")
    scale, shift = _shape_scale_shift(shape, boxes.dtype)
    return (boxes - shift) / scale


def denorm_boxes_graph(boxes, shape):
    """Normalized boxes to pixel boxes (exclusive ``y2, x2``).

    Args:
        boxes: ``[..., 4]`` normalized boxes ``(y1, x1, y2, x2)``.
        shape: image ``(height, width)``: python ints or a 1-D tensor whose
            first two entries are height and width.

    Returns:
        ``[..., 4]`` FLOAT tensor ``round(b * [h-1, w-1, h-1, w-1] +
        [0, 0, 1, 1])``: integral values but not cast to an int dtype (cast
        with ``ops.cast(..., "int32")`` if needed). Rounding is half to
        even, as in ``tf.round`` / ``np.round``.
    """
    boxes = _as_float(boxes)
    _check_last_dim(boxes, "boxes")
    scale, shift = _shape_scale_shift(shape, boxes.dtype)
    return ops.round(boxes * scale + shift)
