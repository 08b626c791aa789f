"""Instance masks: mini masks and pasting box-sized masks into the image.

- `minimize_mask` / `expand_mask`: store each ground-truth mask cropped to
  its box and resized to a small fixed shape (Matterport's "mini masks"),
  and back to full size.
- `paste_masks`: place the masks predicted inside detection boxes
  (e.g. 28x28 probabilities) into the full image; used by detection.

All resizing is bilinear with pixel centres aligned as in
``skimage.transform.resize`` (output pixel i samples source coordinate
``(i + 0.5) * in / out - 0.5``), with edge values repeated at the borders,
followed by a ``>= threshold`` test. Mini masks are made vectorized over
instances; pasting works box by box (`paste_blocks`: a few array operations
per instance, none per pixel).

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
    The cost is proportional to the total covered area (`paste_blocks` gives the
    same values as one block per instance).

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
    return blocks_to_entries(paste_blocks(masks, boxes, image_shape, cover))


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


def blocks_to_entries(blocks):
    """`paste_blocks` blocks -> `paste_values`' ``(instance, y, x, value)`` entries, in
    instance, then row-major pixel order."""
    n = len(blocks)
    n_rows = np.array([b.shape[0] for _, _, b in blocks], np.int64)
    n_cols = np.array([b.shape[1] for _, _, b in blocks], np.int64)
    n_pix = n_rows * n_cols
    total = int(n_pix.sum())
    if not total:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0, np.float32)
    y0 = np.array([y for y, _, _ in blocks], np.int64)
    x0 = np.array([x for _, x, _ in blocks], np.int64)
    owner = np.repeat(np.arange(n), n_pix)
    local = np.arange(total) - (np.cumsum(n_pix) - n_pix)[owner]
    ys = y0[owner] + local // n_cols[owner]
    xs = x0[owner] + local % n_cols[owner]
    values = np.concatenate([b.ravel() for _, _, b in blocks if b.size])
    return owner, ys, xs, values


def _blocks(flat, offsets, heights, widths, boxes, image_shape, cover=None):
    """`paste_blocks` on ragged masks stored back to back in ``flat``."""
    height, width = (int(v) for v in image_shape[:2])
    n = boxes.shape[0]
    empty = np.zeros((0, 0), np.float32)
    if n == 0 or height <= 0 or width <= 0:
        return [(0, 0, empty)] * n
    y1, x1, y2, x2 = boxes.T
    bh, bw = y2 - y1, x2 - x1
    # Image rows/columns whose centres lie in each covered box, clipped to the
    # image (for integer boxes: [y1, y2) and [x1, x2)).
    oy1, ox1, oy2, ox2 = (boxes if cover is None else cover).T
    cy1 = np.clip(np.ceil(oy1 - 0.5), 0, height).astype(np.int64)
    cy2 = np.clip(np.ceil(oy2 - 0.5), 0, height).astype(np.int64)
    cx1 = np.clip(np.ceil(ox1 - 0.5), 0, width).astype(np.int64)
    cx2 = np.clip(np.ceil(ox2 - 0.5), 0, width).astype(np.int64)
    keep = (bh > 0) & (bw > 0) & (cy2 > cy1) & (cx2 > cx1)
    blocks = []
    for k in range(n):
        if not keep[k]:
            blocks.append((int(cy1[k]), int(cx1[k]), empty))
            continue
        h, w = heights[k], widths[k]
        mask = flat[offsets[k]:offsets[k] + h * w].reshape(h, w)
        # Source coordinates inside the mask of every covered row and column.
        ry = (np.arange(cy1[k], cy2[k]) + 0.5 - y1[k]) * (h / bh[k]) - 0.5
        cx = (np.arange(cx1[k], cx2[k]) + 0.5 - x1[k]) * (w / bw[k]) - 0.5
        r0, r1, fy = _axis_weights(ry, 0, h - 1)
        c0, c1, fx = _axis_weights(cx, 0, w - 1)
        # Interpolated along x for every mask row, then along y: separable bilinear.
        across = (1 - fx) * mask[:, c0] + fx * mask[:, c1]
        fy = fy[:, None]
        block = (1 - fy) * across[r0] + fy * across[r1]
        blocks.append((int(cy1[k]), int(cx1[k]), block.astype(np.float32, copy=False)))
    return blocks


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
