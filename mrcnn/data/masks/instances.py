"""Compact, exact representations of the instance masks of one image.

A bool [H, W, N] mask stack is too big to cache or transform cheaply: a
Sartorius image padded to 576 x 704 with 700 cells is 280 MB. The data
pipeline keeps instances in one of two exact forms instead:

- `InstanceLayers`: label images. Instance ``k`` (0-based) is painted with
  the value ``k + 1`` in layer ``layer_of[k]`` of an unsigned [H, W, L]
  stack. Instances sharing a layer never overlap; overlapping instances go to
  different layers (first fit, in instance order), so every mask survives
  exactly. Any geometric transform of the image applies to the stack as is
  (flips, transposes, crops, padding, nearest-neighbour warps) at a cost of
  O(H * W * L), independent of N, and an instance that leaves the image
  simply has no pixels left. Boxes and mini masks are derived afterwards.
- `BoxMasks`: pixel boxes plus mini masks (Config.USE_MINI_MASK), i.e. what
  the model consumes. Flips, transposes (square mini masks) and padding act on
  them exactly in O(N * mh * mw), without going back to full resolution;
  resampling transforms (crops, rotations, scaling) need `InstanceLayers`.

Both expose the same geometric methods (`flip`, `transpose`, `pad`, and for
layers `crop` and `warp`), so `mrcnn.data.augment.base.Sample` can move an image
and its instances together.

Pixel boxes are [N, (y1, x1, y2, x2)] with y2, x2 exclusive. Mini masks are
computed as in `mrcnn.data.masks.mini.minimize_mask` (bilinear, pixel centres
aligned, thresholded at 0.5), bit for bit.
"""

import numpy as np
import scipy.ndimage as ndi

from mrcnn.data.boxes import extract_bboxes

__all__ = ["InstanceLayers", "BoxMasks", "warp_planes"]

# Instances per chunk when computing mini masks, and the most float32
# values of one chunk's intermediate array (bounds the memory used).
_MINI_CHUNK = 128
_MINI_BUDGET = 2 ** 22


def _label_dtype(count):
    return np.uint16 if count < 2 ** 16 else np.uint32


def _check_boxes(boxes, count, name="boxes"):
    boxes = np.asarray(boxes)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != count:
        raise ValueError(f"{name} must be [N={count}, (y1, x1, y2, x2)], got shape "
                         f"{boxes.shape}")
    return np.round(boxes.astype(np.float64)).astype(np.int64)


def _sample_axis(lo, hi, out, limit):
    """Bilinear source indices/weights of `out` samples over [lo, hi) per instance.

    Same arithmetic as ``mrcnn.data.masks.mini.minimize_mask``: output pixel i
    samples ``lo + (i + 0.5) * (hi - lo) / out - 0.5``, clamped to the box.

    Returns:
        i0, i1 int64 [n, out] and frac float32 [n, out].
    """
    span = np.maximum(hi - lo, 1)[:, None]
    coords = lo[:, None] + (np.arange(out) + 0.5) * (span / out) - 0.5
    first = np.minimum(lo, limit - 1)[:, None]
    last = np.maximum(np.minimum(hi - 1, limit - 1), first[:, 0])[:, None]
    coords = np.clip(coords, first, last)
    i0 = np.floor(coords).astype(np.int64)
    i1 = np.minimum(i0 + 1, last)
    return i0, i1, (coords - i0).astype(np.float32)


def warp_planes(array, matrix, offset, output_shape, order, mode="constant", dtype=None):
    """Resample every [H, W] plane of an [H, W, C] array with one 2-D affine map.

    Output pixel (i, j) reads the input at ``matrix @ (i, j) + offset``
    (pixel centres at integers, as scipy.ndimage); outside the input,
    `mode` decides (``"constant"``: zeros, ``"nearest"``: the border value).
    Planes are transformed one by one (faster than a 3-D transform) and a
    diagonal `matrix` uses scipy's separable fast path.

    Args:
        array: [H, W, C].
        matrix: [2, 2]; offset: [2]; output_shape: (height, width).
        order: 0 (nearest neighbour) or 1 (bilinear).
        mode: scipy.ndimage boundary mode.
        dtype: output dtype (default: the input's).

    Returns:
        [height, width, C] array.
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix[0, 1] == 0 and matrix[1, 0] == 0:
        matrix = np.diag(matrix)
    offset = np.asarray(offset, np.float64)
    shape = (int(output_shape[0]), int(output_shape[1]))
    out = np.empty(shape + (array.shape[2],), dtype or array.dtype)
    for c in range(array.shape[2]):   # a few channels or label layers
        out[:, :, c] = ndi.affine_transform(array[:, :, c], matrix, offset, output_shape=shape,
                                            output=out.dtype, order=order, mode=mode, cval=0,
                                            prefilter=False)
    return out


class InstanceLayers:
    """Instance masks stored as non-overlapping label layers.

    Args:
        layers: uint16 or uint32 [H, W, L]; value ``k + 1`` marks the pixels
            of instance ``k`` in layer ``layer_of[k]``, 0 is background.
        layer_of: int [N], the layer holding each instance.

    Use `InstanceLayers.from_masks` to build one from a bool mask stack.
    """

    def __init__(self, layers, layer_of):
        layers = np.asarray(layers)
        if layers.ndim != 3 or layers.shape[2] < 1:
            raise ValueError(f"layers must be [H, W, L] with L >= 1, got shape {layers.shape}")
        if layers.dtype not in (np.uint16, np.uint32):
            raise TypeError(f"layers must be uint16 or uint32 label images, got {layers.dtype}")
        layer_of = np.asarray(layer_of).astype(np.int32, copy=False).reshape(-1)
        if layer_of.size and (layer_of.min() < 0 or layer_of.max() >= layers.shape[2]):
            raise ValueError(f"layer_of must index the {layers.shape[2]} layers, got values "
                             f"in [{layer_of.min()}, {layer_of.max()}]")
        if layer_of.size >= np.iinfo(layers.dtype).max:
            raise ValueError(f"{layer_of.size} instances do not fit {layers.dtype} labels")
        self.layers = layers
        self.layer_of = layer_of

    @property
    def count(self):
        """Number of instances N (including ones left without pixels)."""
        return int(self.layer_of.shape[0])

    @property
    def shape(self):
        """(H, W) of the image frame."""
        return self.layers.shape[:2]

    # ------------------------------------------------------------ conversion
    @classmethod
    def from_masks(cls, masks):
        """Pack a bool [H, W, N] mask stack into label layers (exact).

        Instances are placed in order into the first layer where they overlap
        nothing (the work per instance is limited to its box). Empty masks
        get no pixels.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be [H, W, N], got shape {masks.shape}")
        masks = masks.astype(bool, copy=False)
        height, width, count = masks.shape
        dtype = _label_dtype(count)
        boxes = extract_bboxes(masks) if count else np.zeros((0, 4), np.int32)
        planes = []
        layer_of = np.zeros(count, np.int32)
        # One pass over the instances, each touching only its box (runs once
        # per image when samples are cached).
        for k in np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])):
            y1, x1, y2, x2 = (int(v) for v in boxes[k])
            inside = masks[y1:y2, x1:x2, k]
            for index, plane in enumerate(planes):
                if not plane[y1:y2, x1:x2][inside].any():
                    break
            else:
                planes.append(np.zeros((height, width), dtype))
                index = len(planes) - 1
            planes[index][y1:y2, x1:x2][inside] = k + 1
            layer_of[k] = index
        if not planes:
            planes = [np.zeros((height, width), dtype)]
        return cls(np.stack(planes, axis=-1), layer_of)

    def to_masks(self, ids=None):
        """bool [H, W, len(ids)] masks of the instances `ids` (default: all)."""
        ids = np.arange(self.count) if ids is None else np.asarray(ids, np.int64).reshape(-1)
        labels = (ids + 1).astype(self.layers.dtype)
        return self.layers[:, :, self.layer_of[ids]] == labels

    def boxes(self):
        """Tight pixel boxes of all instances.

        Returns:
            boxes: int32 [N, (y1, x1, y2, x2)], zeros for instances without
                pixels.
            present: bool [N], whether each instance has pixels.
        """
        boxes = np.zeros((self.count, 4), np.int32)
        present = np.zeros(self.count, bool)
        for layer in np.unique(self.layer_of):
            members = np.flatnonzero(self.layer_of == layer)
            # find_objects scans the label image once (C); it returns one
            # slice pair (or None) per label 1..max_label.
            found = ndi.find_objects(self.layers[:, :, layer], max_label=self.count)
            slices = [found[k] for k in members.tolist()]
            has = np.array([s is not None for s in slices], bool)
            corners = np.array([(s[0].start, s[1].start, s[0].stop, s[1].stop)
                                for s in slices if s is not None], np.int32).reshape(-1, 4)
            boxes[members[has]] = corners
            present[members[has]] = True
        return boxes, present

    def minimize(self, ids, boxes, mini_shape):
        """Mini masks of instances `ids` inside `boxes` (as `minimize_mask`).

        Args:
            ids: int [n] instance indices.
            boxes: [n, (y1, x1, y2, x2)] pixel boxes of those instances.
            mini_shape: (mh, mw).

        Returns:
            bool [mh, mw, n], bit-identical to
            ``minimize_mask(boxes, self.to_masks(ids), mini_shape)``.
        """
        ids = np.asarray(ids, np.int64).reshape(-1)
        n = ids.shape[0]
        boxes = _check_boxes(boxes, n)
        mh, mw = (int(v) for v in mini_shape)
        if mh < 1 or mw < 1:
            raise ValueError(f"mini_shape must be positive (height, width), got {mini_shape!r}")
        height, width, depth = self.layers.shape
        out = np.zeros((n, mh, mw), bool)
        if n == 0 or height == 0 or width == 0:
            return np.moveaxis(out, 0, -1)
        y1, x1 = np.clip(boxes[:, 0], 0, height), np.clip(boxes[:, 1], 0, width)
        y2, x2 = np.clip(boxes[:, 2], 0, height), np.clip(boxes[:, 3], 0, width)
        valid = (y2 > y1) & (x2 > x1)
        r0, r1, fy = _sample_axis(y1, y2, mh, height)
        c0, c1, fx = _sample_axis(x1, x2, mw, width)
        # Separable bilinear sampling: first along x for every source row the
        # box spans (few rows for cells smaller than the mini mask), then
        # along y by copying whole rows. Same float32 operations as
        # minimize_mask, so the result is bit-identical.
        first = np.minimum(y1, height - 1)
        rows_spanned = np.maximum(np.minimum(y2 - 1, height - 1), first) - first + 1
        flat = self.layers.reshape(-1)
        layer = self.layer_of[ids].astype(np.int64)
        labels = (ids + 1).astype(self.layers.dtype)
        order = np.argsort(rows_spanned, kind="stable")  # similar heights per chunk
        start = 0
        while start < n:
            tallest = int(rows_spanned[order[min(start + _MINI_CHUNK, n) - 1]])
            size = max(1, min(_MINI_CHUNK, _MINI_BUDGET // (tallest * mw)))
            k = order[start:start + size]
            start += size
            tallest = int(rows_spanned[k].max())
            rows = first[k, None] + np.minimum(np.arange(tallest), rows_spanned[k, None] - 1)
            base = rows[:, :, None] * width
            lay, lab = layer[k, None, None], labels[k, None, None]

            def at_columns(cols):
                index = (base + cols[k][:, None, :]) * depth + lay
                return (flat[index] == lab).astype(np.float32)  # [c, rows, mw]

            wx = fx[k][:, None, :]
            per_row = (1 - wx) * at_columns(c0) + wx * at_columns(c1)
            chunk = np.arange(k.size)[:, None]
            top = per_row[chunk, r0[k] - first[k, None]]       # [c, mh, mw]
            bottom = per_row[chunk, r1[k] - first[k, None]]
            wy = fy[k][:, :, None]
            out[k] = ((1 - wy) * top + wy * bottom) >= 0.5
        out &= valid[:, None, None]
        return np.ascontiguousarray(np.moveaxis(out, 0, -1))

    # ------------------------------------------------------------ geometry
    def flip(self, axis):
        """Mirror along axis 0 (vertical) or 1 (horizontal)."""
        return InstanceLayers(np.flip(self.layers, axis=axis), self.layer_of)

    def transpose(self):
        """Swap the y and x axes."""
        return InstanceLayers(self.layers.transpose(1, 0, 2), self.layer_of)

    def crop(self, y, x, height, width):
        """Keep rows y..y+height and columns x..x+width (clipped to the frame)."""
        return InstanceLayers(self.layers[y:y + height, x:x + width], self.layer_of)

    def pad(self, top, bottom, left, right):
        """Add background rows/columns on each side."""
        return InstanceLayers(
            np.pad(self.layers, [(top, bottom), (left, right), (0, 0)]), self.layer_of)

    def warp(self, matrix, offset, output_shape, mode="constant"):
        """Resample with nearest neighbour: output (i, j) reads input ``matrix @ (i, j) + offset``.

        Args:
            matrix: [2, 2] map from output to input pixel coordinates (pixel
                centres at integers, as scipy.ndimage).
            offset: [2].
            output_shape: (height, width) of the result.
            mode: scipy.ndimage boundary mode ("constant" fills background,
                "nearest" repeats the border).
        """
        layers = warp_planes(self.layers, matrix, offset, output_shape, order=0, mode=mode)
        return InstanceLayers(layers, self.layer_of)


class BoxMasks:
    """Instances as pixel boxes plus mini masks inside them.

    Args:
        boxes: int [N, (y1, x1, y2, x2)] pixel boxes in the image frame.
        masks: bool [mh, mw, N] mini masks (each stretched over its box).
        shape: (H, W) of the image frame.
    """

    def __init__(self, boxes, masks, shape):
        masks = np.asarray(masks, bool)
        if masks.ndim != 3:
            raise ValueError(f"masks must be [mh, mw, N], got shape {masks.shape}")
        self.boxes = _check_boxes(boxes, masks.shape[2]).astype(np.int32)
        self.masks = masks
        self._shape = (int(shape[0]), int(shape[1]))

    @property
    def count(self):
        return int(self.boxes.shape[0])

    @property
    def shape(self):
        return self._shape

    def flip(self, axis):
        """Mirror along axis 0 (vertical) or 1 (horizontal)."""
        if axis not in (0, 1):
            raise ValueError(f"axis must be 0 or 1, got {axis!r}")
        size = self._shape[axis]
        boxes = self.boxes.copy()
        boxes[:, axis] = size - self.boxes[:, axis + 2]
        boxes[:, axis + 2] = size - self.boxes[:, axis]
        return BoxMasks(boxes, np.flip(self.masks, axis=axis), self._shape)

    def transpose(self):
        """Swap the y and x axes (needs square mini masks)."""
        if self.masks.shape[0] != self.masks.shape[1]:
            raise ValueError(f"transposing (rot90) box mini masks needs a square "
                             f"MINI_MASK_SHAPE, got {self.masks.shape[:2]}")
        return BoxMasks(self.boxes[:, [1, 0, 3, 2]], self.masks.transpose(1, 0, 2),
                        self._shape[::-1])

    def pad(self, top, bottom, left, right):
        """Shift the boxes into a frame padded on each side."""
        boxes = self.boxes + np.array([top, left, top, left], np.int32)
        return BoxMasks(boxes, self.masks,
                        (self._shape[0] + top + bottom, self._shape[1] + left + right))

    def crop(self, y, x, height, width):
        raise ValueError("crops need full-resolution instances (InstanceLayers); the "
                         "generator uses them whenever the augmentation crops or resamples")

    def warp(self, matrix, offset, output_shape, mode="constant"):
        raise ValueError("warps need full-resolution instances (InstanceLayers); the "
                         "generator uses them whenever the augmentation crops or resamples")
