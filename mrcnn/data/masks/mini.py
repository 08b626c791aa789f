"""Instance masks: mini masks and pasting box-sized masks into the image.

- `minimize_mask` / `expand_mask`: store each ground-truth mask cropped to
  its box and resized to a small fixed shape (Matterport's "mini masks"),
  and back to full size.
- `paste_masks`: place the masks predicted inside detection boxes
  (e.g. 28x28 probabilities) into the full image; used by detection.

All resizing is bilinear with pixel centres aligned as in
``skimage.transform.resize`` (output pixel i samples source coordinate
``(i + 0.5) * in / out - 0.5``), with edge values repeated at the borders,
followed by a ``>= threshold`` test. The work is vectorized over instances:
no Python loop over instances or pixels.

Pixel boxes are [N, (y1, x1, y2, x2)] with y2, x2 exclusive.
"""

import numpy as np


def _axis_weights(coords, lo, hi):
    """Linear-interpolation indices and weights along one axis.

    Args:
        coords: float array of source coordinates.
        lo, hi: int arrays (broadcastable to coords), the valid index range
            [lo, hi] (inclusive); coordinates are clamped into it.

    Returns:
        (i0, i1, frac): the value at a coordinate is
        (1 - frac) * v[i0] + frac * v[i1].
    """
    coords = np.clip(coords, lo, hi)
    i0 = np.floor(coords).astype(np.intp)
    i1 = np.minimum(i0 + 1, hi)
    frac = (coords - i0).astype(np.float32)
    return i0, i1, frac


def _int_boxes(boxes, n, name="boxes"):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] < 4 or boxes.shape[0] != n:
        raise ValueError(f"{name} must be [N={n}, (y1, x1, y2, x2)], got shape {boxes.shape}")
    return np.round(boxes[:, :4].astype(np.float64)).astype(np.int64)


def minimize_mask(bbox, mask, mini_shape):
    """Crop each instance mask to its box and resize it to `mini_shape`.

    Args:
        bbox: [N, (y1, x1, y2, x2)] int pixel boxes, y2/x2 exclusive
            (clipped to the mask).
        mask: [H, W, N] bool instance masks.
        mini_shape: (mh, mw) size of the mini masks.

    Returns:
        bool [mh, mw, N]: bilinear resize of each box crop, thresholded at
        0.5. Instances whose box has zero area give an empty mini mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [H, W, N], got shape {mask.shape}")
    height, width, n = mask.shape
    mh, mw = (int(v) for v in mini_shape)
    if mh < 1 or mw < 1:
        raise ValueError(f"mini_shape must be positive (height, width), got {mini_shape!r}")
    boxes = _int_boxes(bbox, n, "bbox")
    y1 = np.clip(boxes[:, 0], 0, height)
    x1 = np.clip(boxes[:, 1], 0, width)
    y2 = np.clip(boxes[:, 2], 0, height)
    x2 = np.clip(boxes[:, 3], 0, width)
    valid = (y2 > y1) & (x2 > x1)
    if height == 0 or width == 0 or n == 0:
        return np.zeros((mh, mw, n), bool)
    # Source coordinates of each mini-mask row/column: [N, mh] and [N, mw],
    # clamped to the box ([lo, hi] inclusive; any in-image range for
    # zero-area boxes, whose result is discarded).
    bh = np.maximum(y2 - y1, 1)[:, None]
    bw = np.maximum(x2 - x1, 1)[:, None]
    ys = y1[:, None] + (np.arange(mh) + 0.5) * (bh / mh) - 0.5
    xs = x1[:, None] + (np.arange(mw) + 0.5) * (bw / mw) - 0.5
    y_lo = np.minimum(y1, height - 1)
    x_lo = np.minimum(x1, width - 1)
    y_hi = np.maximum(np.minimum(y2 - 1, height - 1), y_lo)
    x_hi = np.maximum(np.minimum(x2 - 1, width - 1), x_lo)
    r0, r1, fy = _axis_weights(ys, y_lo[:, None], y_hi[:, None])
    c0, c1, fx = _axis_weights(xs, x_lo[:, None], x_hi[:, None])

    inst = np.arange(n)[:, None, None]

    def gather(rows, cols):
        return mask[rows[:, :, None], cols[:, None, :], inst].astype(np.float32)

    fy, fx = fy[:, :, None], fx[:, None, :]
    top = (1 - fx) * gather(r0, c0) + fx * gather(r0, c1)
    bottom = (1 - fx) * gather(r1, c0) + fx * gather(r1, c1)
    mini = ((1 - fy) * top + fy * bottom) >= 0.5
    mini &= valid[:, None, None]
    return np.ascontiguousarray(np.moveaxis(mini, 0, -1))


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Paste box-sized mask probabilities into full-size instance masks.

    Each mask is resized (bilinear) to the size of its box and thresholded;
    the parts of a box outside the image are dropped. Fully vectorized: the
    cost is proportional to the total box area.

    Args:
        masks: float [N, mh, mw] values (e.g. probabilities) predicted inside
            each box.
        boxes: [N, (y1, x1, y2, x2)] pixel boxes in the target image, y2/x2
            exclusive (rounded to ints). Zero-area boxes give empty masks.
        image_shape: (H, W, ...) of the target image.
        threshold: a pixel is set where the resized value is >= threshold.

    Returns:
        bool [H, W, N] masks.
    """
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, mh, mw], got shape {masks.shape}")
    n, mh, mw = masks.shape
    if n and (mh < 1 or mw < 1):
        raise ValueError(f"masks must have a positive size, got shape {masks.shape}")
    height, width = (int(v) for v in image_shape[:2])
    boxes = _int_boxes(boxes, n)
    out = np.zeros((height, width, n), dtype=bool)
    if n == 0 or height == 0 or width == 0:
        return out

    y1, x1, y2, x2 = boxes.T
    bh, bw = y2 - y1, x2 - x1
    # Image rows/columns covered by each box after clipping to the image.
    cy1, cy2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
    cx1, cx2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
    keep = (bh > 0) & (bw > 0) & (cy2 > cy1) & (cx2 > cx1)
    n_rows = np.where(keep, cy2 - cy1, 0)
    n_cols = np.where(keep, cx2 - cx1, 0)

    def ranges(counts, starts):
        """Concatenate arange(starts[i], starts[i] + counts[i]) over i."""
        total = int(counts.sum())
        owner = np.repeat(np.arange(n), counts)
        first = np.cumsum(counts) - counts
        values = np.arange(total) - first[owner] + starts[owner]
        return owner, values, first

    row_owner, rows, row_first = ranges(n_rows, cy1)
    col_owner, cols, col_first = ranges(n_cols, cx1)

    # Source coordinates inside the mask of every covered row and column.
    ry = (rows - y1[row_owner] + 0.5) * (mh / np.maximum(bh[row_owner], 1)) - 0.5
    cx = (cols - x1[col_owner] + 0.5) * (mw / np.maximum(bw[col_owner], 1)) - 0.5
    r0, r1, fy = _axis_weights(ry, 0, mh - 1)
    c0, c1, fx = _axis_weights(cx, 0, mw - 1)

    # Pass 1: interpolate along x for every (covered column, mask row).
    # (the two advanced indices around the slice give shape [C, mh])
    col_values = ((1 - fx)[:, None] * masks[col_owner, :, c0]
                  + fx[:, None] * masks[col_owner, :, c1])

    # Pass 2: every pixel (row, col) of every box, interpolated along y.
    n_pix = n_rows * n_cols
    pix_owner = np.repeat(np.arange(n), n_pix)
    local = np.arange(int(n_pix.sum())) - (np.cumsum(n_pix) - n_pix)[pix_owner]
    width_of = n_cols[pix_owner]
    row_i = row_first[pix_owner] + local // width_of
    col_i = col_first[pix_owner] + local % width_of
    w1 = fy[row_i]
    values = (1 - w1) * col_values[col_i, r0[row_i]] + w1 * col_values[col_i, r1[row_i]]
    on = values >= threshold
    out[rows[row_i[on]], cols[col_i[on]], pix_owner[on]] = True
    return out


def expand_mask(bbox, mini_mask, image_shape):
    """Inverse of `minimize_mask`: mini masks back to full-size masks.

    Args:
        bbox: [N, (y1, x1, y2, x2)] pixel boxes, y2/x2 exclusive.
        mini_mask: [mh, mw, N] bool (or float) mini masks.
        image_shape: (H, W, ...) of the full image.

    Returns:
        bool [H, W, N] masks.
    """
    mini_mask = np.asarray(mini_mask)
    if mini_mask.ndim != 3:
        raise ValueError(f"mini_mask must be [mh, mw, N], got shape {mini_mask.shape}")
    return paste_masks(np.moveaxis(mini_mask, -1, 0).astype(np.float32), bbox,
                       image_shape, threshold=0.5)


def unmold_mask(mask, bbox, image_shape, threshold=0.5):
    """Paste one predicted mask into a full-size image mask.

    Args:
        mask: float [mh, mw] probabilities inside the box.
        bbox: (y1, x1, y2, x2) pixel box, y2/x2 exclusive.
        image_shape: (H, W, ...) of the image.
        threshold: pixels with value >= threshold are set.

    Returns:
        bool [H, W] mask.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [mh, mw], got shape {mask.shape}")
    return paste_masks(mask[None], np.asarray(bbox)[None], image_shape, threshold)[..., 0]
