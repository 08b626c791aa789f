"""Instance masks: mini masks and pasting box-sized masks into the image.

- `minimize_mask` / `expand_mask`: store each ground-truth mask cropped to
  its box and resized to a small fixed shape (Matterport's "mini masks"),
  and back to full size.
- `paste_masks`: place the masks predicted inside detection boxes
  (e.g. 28x28 probabilities) into the full image; used by detection.

All resizing is bilinear with pixel centres aligned as in
``skimage.transform.resize`` (output pixel i samples source coordinate
``(i + 0.5) * in / out - 0.5``), with edge values repeated at the borders,
followed by a ``>= threshold`` test. Mini masks and `paste_values`' per-pixel
entries are computed vectorized over all instances; `paste_blocks` (what dense
masks are written from) prepares every box's sample positions at once and then
interpolates and writes box by box (a few array operations per box, none per
pixel: 7x faster than the entries for 100 detections at 512x512, level with
them for 800 boxes of ~17 px).

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


def paste_values(masks, boxes, image_shape, cover=None):
    """Bilinear values of box-sized masks pasted into the image, as sparse triplets.

    Each mask is resized (bilinear, pixel centres aligned as in
    ``skimage.transform.resize``, edge values repeated) to the size of its box
    and placed there; the parts of a box outside the image are dropped. A box
    may have fractional edges: the pixels whose centres lie inside it are
    covered (for integer boxes, exactly the box's pixels), and image pixel
    ``y`` samples the mask at row ``(y + 0.5 - y1) * mh / (y2 - y1) - 0.5``.
    Fully vectorized: the cost is proportional to the total covered area, whatever
    the number of boxes (`paste_blocks` gives the same values as one block per box,
    faster to write into dense masks when the boxes are few and large).

    Args:
        masks: float ``[N, mh, mw]`` values (e.g. probabilities) predicted
            inside each box, or a list of ``N`` 2-D arrays of any sizes.
        boxes: ``[N, (y1, x1, y2, x2)]`` pixel boxes in the target image, y2/x2
            exclusive, used as given (not rounded; see `paste_masks`). Boxes
            of zero area cover nothing.
        image_shape: ``(H, W, ...)`` of the target image.
        cover: optional ``[N, (y1, x1, y2, x2)]`` boxes whose pixels (centres
            inside) are the ones pasted, instead of those of `boxes`; `boxes`
            then only place the mask (pixels beyond its edge rows and columns
            repeat them). Used by the "grid" paste of `detect()`
            (`mrcnn.inference.molding.grid_paste_boxes`).

    Returns:
        ``(instance, y, x, value)``: int64, int64, int64, float32 arrays, one
        entry per covered pixel, ordered by instance, then row, then column
        (row-major pixel order: the canonical order of
        `mrcnn.data.masks.sparse.SparseMasks`).
    """
    flat, offsets, heights, widths = _ragged(masks)
    return _paste(flat, offsets, heights, widths, _float_boxes(boxes, heights.size),
                  image_shape, None if cover is None else _float_boxes(cover, heights.size))


def paste_masks(masks, boxes, image_shape, threshold=0.5):
    """Paste box-sized mask probabilities into full-size instance masks.

    Each mask is resized (bilinear) to the size of its box and thresholded;
    the parts of a box outside the image are dropped. The cost is
    proportional to the total box area.

    Args:
        masks: float [N, mh, mw] values (e.g. probabilities) predicted inside
            each box.
        boxes: [N, (y1, x1, y2, x2)] pixel boxes in the target image, y2/x2
            exclusive (rounded to ints). Zero-area boxes give empty masks.
        image_shape: (H, W, ...) of the target image.
        threshold: a pixel is set where the resized value is >= threshold.

    Returns:
        bool [H, W, N] masks: exactly ``paste_soft_masks(...) >= threshold``
        for a threshold > 0.
    """
    masks = _uniform(masks)
    height, width = (int(v) for v in image_shape[:2])
    blocks = paste_blocks(masks, _int_boxes(boxes, masks.shape[0]), image_shape)
    return write_blocks(np.zeros((height, width, masks.shape[0]), bool), blocks, threshold)


def paste_soft_masks(masks, boxes, image_shape):
    """`paste_masks` without the threshold: float32 ``[H, W, N]`` values, 0 outside the boxes.

    The same geometry as `paste_masks` (boxes rounded to ints), so
    ``paste_masks(m, b, s, t) == (paste_soft_masks(m, b, s) >= t)`` pixel for
    pixel for any threshold ``t > 0``.
    """
    masks = _uniform(masks)
    height, width = (int(v) for v in image_shape[:2])
    blocks = paste_blocks(masks, _int_boxes(boxes, masks.shape[0]), image_shape)
    return write_blocks(np.zeros((height, width, masks.shape[0]), np.float32), blocks)


def _uniform(masks):
    masks = np.asarray(masks, dtype=np.float32)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [N, mh, mw], got shape {masks.shape}")
    return masks


def _ragged(masks):
    """``(flat, offsets, heights, widths)`` of ``[N, mh, mw]`` masks or a list of 2-D arrays."""
    if isinstance(masks, (list, tuple)):
        arrays = [np.asarray(m, dtype=np.float32) for m in masks]
        for k, m in enumerate(arrays):
            if m.ndim != 2:
                raise ValueError(f"masks[{k}] must be a 2-D [mh, mw] array, got shape {m.shape}")
        heights = np.array([m.shape[0] for m in arrays], np.int64)
        widths = np.array([m.shape[1] for m in arrays], np.int64)
        flat = np.concatenate([m.ravel() for m in arrays]) if arrays else \
            np.zeros(0, np.float32)
    else:
        masks = _uniform(masks)
        n, mh, mw = masks.shape
        heights, widths = np.full(n, mh, np.int64), np.full(n, mw, np.int64)
        flat = masks.reshape(-1)
    empty = (heights < 1) | (widths < 1)
    if empty.any():
        k = int(np.flatnonzero(empty)[0])
        raise ValueError(f"masks must have a positive size, got masks[{k}] of shape "
                         f"({heights[k]}, {widths[k]})")
    sizes = heights * widths
    return flat, np.cumsum(sizes) - sizes, heights, widths


def _float_boxes(boxes, n):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] < 4 or boxes.shape[0] != n:
        raise ValueError(f"boxes must be [N={n}, (y1, x1, y2, x2)], got shape {boxes.shape}")
    boxes = boxes[:, :4].astype(np.float64)
    if not np.isfinite(boxes).all():
        raise ValueError(f"boxes must be finite, got {boxes[~np.isfinite(boxes).all(1)][:3]}")
    return boxes


def paste_blocks(masks, boxes, image_shape, cover=None):
    """`paste_values` as one dense block per instance: what the masks of a detection fill.

    The same values as `paste_values` (bit for bit), arranged as each box's rectangle of
    covered pixels instead of per-pixel entries: writing the blocks into an image costs
    a slice per instance, not three index arrays per pixel.

    Args:
        masks, boxes, image_shape, cover: as `paste_values`.

    Returns:
        list of ``(y, x, block)``, one per instance: float32 ``block`` [rows, cols] holds
        the values of image pixels ``[y:y + rows, x:x + cols]`` (shape (0, 0) where a box
        covers no pixel of the image).
    """
    flat, offsets, heights, widths = _ragged(masks)
    return _blocks(flat, offsets, heights, widths, _float_boxes(boxes, heights.size),
                   image_shape, None if cover is None else _float_boxes(cover, heights.size))


def write_blocks(out, blocks, threshold=None):
    """Write `paste_blocks` blocks into ``out`` [H, W, N] (block k into channel k).

    threshold: None writes the values; a number writes ``values >= threshold`` (a bool
    ``out``). Pixels outside the blocks are left as they are.
    """
    for k, (y, x, block) in enumerate(blocks):
        rows, cols = block.shape
        if rows and cols:
            out[y:y + rows, x:x + cols, k] = block if threshold is None else block >= threshold
    return out


def _concat_ranges(counts, starts):
    """``(owner, values, first)``: arange(starts[i], starts[i] + counts[i]) concatenated."""
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    return owner, np.arange(total) - first[owner] + starts[owner], first


def _covered(boxes, image_shape, cover):
    """Per box: the image rows [cy1, cy2) and columns [cx1, cx2) whose centres lie in it (or
    in `cover`), clipped to the image, and whether it covers any pixel (`keep`)."""
    height, width = (int(v) for v in image_shape[:2])
    y1, x1, y2, x2 = boxes.T
    oy1, ox1, oy2, ox2 = (boxes if cover is None else cover).T
    cy1 = np.clip(np.ceil(oy1 - 0.5), 0, height).astype(np.int64)
    cy2 = np.clip(np.ceil(oy2 - 0.5), 0, height).astype(np.int64)
    cx1 = np.clip(np.ceil(ox1 - 0.5), 0, width).astype(np.int64)
    cx2 = np.clip(np.ceil(ox2 - 0.5), 0, width).astype(np.int64)
    keep = (y2 - y1 > 0) & (x2 - x1 > 0) & (cy2 > cy1) & (cx2 > cx1)
    return cy1, cy2, cx1, cx2, keep


def _blocks(flat, offsets, heights, widths, boxes, image_shape, cover=None):
    """`paste_blocks` on ragged masks stored back to back in ``flat``."""
    height, width = (int(v) for v in image_shape[:2])
    n = boxes.shape[0]
    empty = np.zeros((0, 0), np.float32)
    if n == 0 or height <= 0 or width <= 0:
        return [(0, 0, empty)] * n
    y1, x1, y2, x2 = boxes.T
    bh, bw = y2 - y1, x2 - x1
    cy1, cy2, cx1, cx2, keep = _covered(boxes, image_shape, cover)
    n_rows = np.where(keep, cy2 - cy1, 0)
    n_cols = np.where(keep, cx2 - cx1, 0)
    # Source coordinates inside the mask of every covered row and column, all boxes at
    # once, padded to the largest box (a few array operations in all, none per box).
    safe_h, safe_w = np.where(keep, bh, 1.0), np.where(keep, bw, 1.0)
    rows = cy1[:, None] + np.arange(max(int(n_rows.max()), 1))
    cols = cx1[:, None] + np.arange(max(int(n_cols.max()), 1))
    ry = (rows + 0.5 - y1[:, None]) * (heights / safe_h)[:, None] - 0.5
    cx = (cols + 0.5 - x1[:, None]) * (widths / safe_w)[:, None] - 0.5
    r0, r1, fy = _axis_weights(ry, 0, (heights - 1)[:, None])
    c0, c1, fx = _axis_weights(cx, 0, (widths - 1)[:, None])
    # Per box, interpolated along x for every mask row, then along y (separable bilinear:
    # the same float32 operations as interpolating each pixel from its four neighbours).
    blocks = []
    for k in range(n):
        if not keep[k]:
            blocks.append((int(cy1[k]), int(cx1[k]), empty))
            continue
        h, w, r, c = heights[k], widths[k], n_rows[k], n_cols[k]
        mask = flat[offsets[k]:offsets[k] + h * w].reshape(h, w)
        across = (1 - fx[k, :c]) * mask[:, c0[k, :c]] + fx[k, :c] * mask[:, c1[k, :c]]
        wy = fy[k, :r, None]
        blocks.append((int(cy1[k]), int(cx1[k]),
                       (1 - wy) * across[r0[k, :r]] + wy * across[r1[k, :r]]))
    return blocks


def _paste(flat, offsets, heights, widths, boxes, image_shape, cover=None):
    """`paste_values` on ragged masks stored back to back in ``flat``."""
    height, width = (int(v) for v in image_shape[:2])
    n = boxes.shape[0]
    if n == 0 or height <= 0 or width <= 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, np.float32)
    y1, x1, y2, x2 = boxes.T
    bh, bw = y2 - y1, x2 - x1
    # Image rows/columns whose centres lie in each covered box, clipped to the
    # image (for integer boxes: [y1, y2) and [x1, x2)).
    cy1, cy2, cx1, cx2, keep = _covered(boxes, image_shape, cover)
    n_rows = np.where(keep, cy2 - cy1, 0)
    n_cols = np.where(keep, cx2 - cx1, 0)
    row_owner, rows, row_first = _concat_ranges(n_rows, cy1)
    col_owner, cols, col_first = _concat_ranges(n_cols, cx1)

    # Source coordinates inside the mask of every covered row and column.
    safe_h, safe_w = np.where(keep, bh, 1.0), np.where(keep, bw, 1.0)
    ry = (rows + 0.5 - y1[row_owner]) * (heights[row_owner] / safe_h[row_owner]) - 0.5
    cx = (cols + 0.5 - x1[col_owner]) * (widths[col_owner] / safe_w[col_owner]) - 0.5
    r0, r1, fy = _axis_weights(ry, 0, heights[row_owner] - 1)
    c0, c1, fx = _axis_weights(cx, 0, widths[col_owner] - 1)

    # Every pixel (row, col) of every box, interpolated along x, then y.
    n_pix = n_rows * n_cols
    owner = np.repeat(np.arange(n), n_pix)
    local = np.arange(int(n_pix.sum())) - (np.cumsum(n_pix) - n_pix)[owner]
    row_i = row_first[owner] + local // n_cols[owner]
    col_i = col_first[owner] + local % n_cols[owner]
    base, stride = offsets[owner], widths[owner]
    top_row, bottom_row = base + r0[row_i] * stride, base + r1[row_i] * stride
    left, right, wx = c0[col_i], c1[col_i], fx[col_i]
    top = (1 - wx) * flat[top_row + left] + wx * flat[top_row + right]
    bottom = (1 - wx) * flat[bottom_row + left] + wx * flat[bottom_row + right]
    wy = fy[row_i]
    values = (1 - wy) * top + wy * bottom
    return owner, rows[row_i], cols[col_i], values.astype(np.float32, copy=False)


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
