"""Tiled inference: detections on images larger than the model input (NumPy side).

The image is cut into overlapping tiles of the model input's size (in
original pixels: Config.IMAGE_SHAPE divided by IMAGE_SCALE), the tiles run
through the model in batches of Config.BATCH_SIZE, and the detections are
put back together so that each instance is returned once:

1. *Merge across seams.* Two tiles that overlap both see their shared
   rectangle whole, so the two detections of one instance agree there:
   detections of different tiles whose masks, restricted to the shared
   rectangle, have IoU >= ``merge_iou`` are one instance (transitively, so
   an instance larger than the overlap, cut into three or four pieces, is
   joined back). Its mask is the union of the pieces, its score the highest
   and its class that of the highest-scoring piece.
2. *Owner tile.* Each tile owns its *core*: the tile minus half of the
   overlap on each inner side (the cores partition the image). An instance
   is kept when the box centre of at least one of its pieces lies in the
   core of the tile that detected that piece; a lone detection in the
   margin of a tile (the neighbour owns that place and did not confirm it)
   is dropped.

Masks are kept as :class:`~mrcnn.data.masks.sparse.SparseMasks` from tile to
result (the model is asked for sparse masks when its ``detect`` takes
``sparse``), so memory follows the tiles and the foreground, not
``H * W * N``. With ``soft_masks=True`` the pieces' mask probabilities are
merged too (the highest value of each pixel), for the post-processing's
mask threshold. A fixed-input ``MaskRCNN`` runs a tile smaller than its input
(an image smaller than a tile) in an input of the tile's own size
(`mrcnn.inference.fitted_input.detect_fitted`), not padded into its own.

    r = detect_tiled(model, image)                    # tiles of the model input
    r = detect_tiled(model, image, tile=512, overlap=128)
    evaluate(TiledModel(model), dataset)              # wherever a model is expected

Pixel boxes are (y1, x1, y2, x2) with y2/x2 exclusive.
"""

import inspect
import math

import numpy as np

from mrcnn.data.fit import check_factor
from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.inference.fitted_input import detect_fitted, fits_each_input
from mrcnn.inference.results import score_order, to_state

__all__ = ["detect_tiled", "TiledModel", "default_tile", "tile_starts", "tile_cores"]


# ---------------------------------------------------------------- the grid
def default_tile(config):
    """(height, width) in original pixels of the largest tile the model input holds.

    The input is Config.IMAGE_SHAPE; a tile is resized by IMAGE_SCALE (and at
    least IMAGE_MIN_SCALE) before it is padded into it, so the tile is the
    input size divided by that factor, rounded down.

    Raises:
        ValueError: IMAGE_RESIZE_MODE "crop" (training only).
    """
    if config.IMAGE_RESIZE_MODE == "crop":
        raise ValueError("IMAGE_RESIZE_MODE 'crop' is for training; build the inference "
                         "model with 'none' or 'pad64' (or 'square') and IMAGE_SHAPE")
    factor = check_factor(getattr(config, "IMAGE_SCALE", 1.0), "Config.IMAGE_SCALE")
    factor *= max(1.0, float(config.IMAGE_MIN_SCALE or 0))
    size = []
    for side in (int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])):
        t = max(1, int(math.floor(side / factor)))
        while t > 1 and round(t * factor) > side:
            t -= 1
        size.append(t)
    return tuple(size)


def _pair(value, name):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in value)):
        raise TypeError(f"{name} must be an int or (height, width) ints, got {value!r}")
    return int(value[0]), int(value[1])


def tile_starts(size, tile, overlap):
    """Start of each tile along an axis of `size` pixels: first at 0, last at size - tile.

    ``ceil((size - tile) / (tile - overlap)) + 1`` tiles, spread evenly, so
    neighbours overlap by at least `overlap` pixels. One tile (at 0) when the
    image is not larger than the tile.
    """
    if size <= tile:
        return [0]
    n = -(-(size - tile) // (tile - overlap)) + 1
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def tile_cores(starts, tile, size):
    """[(begin, end)] of the core of each tile: the seams are the middles of the overlaps."""
    seams = [(starts[i + 1] + min(starts[i] + tile, size)) // 2 for i in range(len(starts) - 1)]
    bounds = [0] + seams + [size]
    return list(zip(bounds[:-1], bounds[1:]))


# ---------------------------------------------------------------- detection
def _detector(model, soft_masks):
    """(function images -> results, config or None)."""
    config = getattr(model, "config", None)
    detect = getattr(model, "detect", None)
    if detect is None:
        if not callable(model):
            raise TypeError(f"model must have detect(images) or be a callable "
                            f"images -> [result, ...], got {type(model).__name__}")
        return model, config
    try:
        params = inspect.signature(detect).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {"sparse": True} if "sparse" in params else {}
    if soft_masks:
        kwargs["soft_masks"] = True
    if fits_each_input(model):         # a tile smaller than the input: no padded band
        return (lambda images: detect_fitted(model, images, **kwargs)), config
    return (lambda images: detect(images, **kwargs)), config


def _shift(masks, tile_box, shape):
    """A tile's SparseMasks (binary or soft) in image pixels."""
    if masks is None:
        return None
    y, x, th, tw = tile_box
    ys, xs = np.divmod(masks.pixel, tw)
    pixel = (ys + y) * shape[1] + (xs + x)     # row-major order kept: still sorted
    return SparseMasks.from_sorted(shape, masks.count, masks.instance, pixel, masks.value)


def _restricted(masks, box):
    """The pixels of `masks` inside ``box`` (y1, x1, y2, x2), as masks of the box's size
    (so comparing them costs the box's area, not the image's)."""
    ys, xs = np.divmod(masks.pixel, masks.shape[1])
    inside = (ys >= box[0]) & (ys < box[2]) & (xs >= box[1]) & (xs < box[3])
    width = box[3] - box[1]
    local = (ys[inside] - box[0]) * width + (xs[inside] - box[1])   # row-major: still sorted
    return SparseMasks.from_sorted((box[2] - box[0], width), masks.count,
                                   masks.instance[inside], local)


class _Groups:
    """Union-find over detection indices."""

    def __init__(self, n):
        self.parent = np.arange(n)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i, j):
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _check_args(image, tile, overlap, merge_iou):
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be [H, W] or [H, W, C] with H, W >= 1, got shape "
                         f"{image.shape}")
    th, tw = _pair(tile, "tile")
    if th < 1 or tw < 1:
        raise ValueError(f"tile must be >= 1 pixel per side, got {tile!r}")
    if overlap is None:
        overlap = min(th, tw) // 4
    oy, ox = _pair(overlap, "overlap")
    if not (0 <= oy < th and 0 <= ox < tw):
        raise ValueError(f"overlap {overlap!r} must be >= 0 and smaller than the tile "
                         f"{th}x{tw}")
    if not 0 < float(merge_iou) <= 1:
        raise ValueError(f"merge_iou must be in (0, 1], got {merge_iou!r}")
    return image, (th, tw), (oy, ox)


def detect_tiled(model, image, tile=None, overlap=None, merge_iou=0.5, batch_size=None,
                 dense=False, soft_masks=False, verbose=0):
    """Detect instances in an image of any size, in overlapping tiles (see the module doc).

    Args:
        model: a MaskRCNN in inference mode (or anything with
            ``detect(images)`` and ``config``, e.g. a TTAModel), or a callable
            ``tiles -> [result, ...]`` (a list of [h, w, C] tiles in, one
            detect() result per tile out).
        image: [H, W, C] (or [H, W]) image of any size.
        tile: int or (height, width) of a tile in original pixels; default
            `default_tile(model.config)` (needed for a plain callable).
        overlap: int or (y, x) pixels shared by neighbouring tiles (at least;
            the tiles are spread evenly); default a quarter of the tile. Make
            it larger than most instances.
        merge_iou: detections of two tiles are one instance when their mask
            IoU inside the rectangle both tiles see is at least this.
        batch_size: tiles per call; default Config.BATCH_SIZE (1 for a
            callable without config).
        dense: return masks as bool [H, W, N] instead of SparseMasks.
        soft_masks: also return ``soft_masks`` (the model is asked for them;
            a callable must return them): each pixel's highest probability
            among an instance's pieces.
        verbose: print the tile grid.

    Returns:
        a detect() result for the whole image: ``rois`` int32 [N, (y1, x1,
        y2, x2)] image pixels, ``class_ids`` int32 [N], ``scores`` float32
        [N] (by decreasing score), ``masks`` SparseMasks of shape (H, W) (or
        bool [H, W, N] with `dense`) and, with `soft_masks`, ``soft_masks``
        (SparseMasks with values, or float32 [H, W, N] with `dense`).
    """
    detect, config = _detector(model, soft_masks)
    if tile is None:
        if config is None:
            raise ValueError("tile is needed: the model has no config to take the model "
                             "input size from")
        tile = default_tile(config)
    image, (th, tw), (oy, ox) = _check_args(image, tile, overlap, merge_iou)
    if batch_size is None:
        batch_size = int(config.BATCH_SIZE) if config is not None else 1
    height, width = image.shape[:2]
    rows, cols = tile_starts(height, th, oy), tile_starts(width, tw, ox)
    row_cores, col_cores = tile_cores(rows, th, height), tile_cores(cols, tw, width)
    boxes = [(y, x, min(th, height - y), min(tw, width - x)) for y in rows for x in cols]
    cores = [(ry[0], cx[0], ry[1], cx[1]) for ry in row_cores for cx in col_cores]
    if verbose:
        print(f"detect_tiled: {height}x{width} image, {len(rows)}x{len(cols)} tiles of "
              f"{th}x{tw}, overlap {oy}x{ox}")
    pieces = []
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start:start + batch_size]
        results = list(detect([image[y:y + h, x:x + w] for y, x, h, w in chunk]))
        if len(results) != len(chunk):
            raise ValueError(f"the detector returned {len(results)} results for "
                             f"{len(chunk)} tiles")
        for k, (box, result) in enumerate(zip(chunk, results)):
            state, _ = to_state(result, f"the result of tile {box[:2]}")
            if state["masks"].shape != box[2:]:
                raise ValueError(f"the result of tile {box[:2]} has masks of shape "
                                 f"{state['masks'].shape}, expected the tile's {box[2:]}")
            if soft_masks and state["soft"] is None:
                raise ValueError(f"soft_masks=True but the result of tile {box[:2]} has no "
                                 f"soft_masks")
            rois = state["rois"].astype(np.int64) + np.array([box[0], box[1]] * 2)
            pieces.append((start + k, rois, _shift(state["masks"], box, (height, width)),
                           state["class_ids"], state["scores"],
                           _shift(state["soft"], box, (height, width)) if soft_masks else None))
    return _merge(pieces, boxes, cores, (height, width), merge_iou, dense, soft_masks)


def _merge(pieces, boxes, cores, shape, merge_iou, dense, soft_masks=False):
    """Each instance once, from the detections of every tile (see the module doc)."""
    tile_of = np.concatenate([np.full(p[2].count, p[0]) for p in pieces]).astype(np.int64)
    rois = np.concatenate([p[1] for p in pieces]).reshape(-1, 4)
    class_ids = np.concatenate([p[3] for p in pieces]).astype(np.int32)
    scores = np.concatenate([p[4] for p in pieces]).astype(np.float32)
    offsets = np.cumsum([0] + [p[2].count for p in pieces])
    n = int(offsets[-1])
    groups = _Groups(n)
    by_tile = {p[0]: (p[2], offsets[i]) for i, p in enumerate(pieces)}
    for a, b in _overlapping_pairs(boxes):
        _link(groups, by_tile[a], by_tile[b], boxes[a], boxes[b], merge_iou)
    # owner rule: a piece whose box centre lies in its tile's core
    cy, cx = (rois[:, 0] + rois[:, 2]) / 2.0, (rois[:, 1] + rois[:, 3]) / 2.0
    core = np.asarray(cores, np.float64).reshape(-1, 4)[tile_of]
    owned = (cy >= core[:, 0]) & (cy < core[:, 2]) & (cx >= core[:, 1]) & (cx < core[:, 3])
    root = np.array([groups.find(i) for i in range(n)], np.int64)
    kept_roots = np.unique(root[owned])
    new_id = np.full(n, -1, np.int64)
    new_id[np.isin(root, kept_roots)] = np.searchsorted(kept_roots, root[np.isin(root,
                                                                                  kept_roots)])
    count = kept_roots.size
    instance = np.concatenate([new_id[offsets[i] + p[2].instance] for i, p in enumerate(pieces)]
                              or [np.zeros(0, np.int64)])
    pixel = np.concatenate([p[2].pixel for p in pieces] or [np.zeros(0, np.int64)])
    on = instance >= 0
    masks = SparseMasks(shape, count, instance[on], pixel[on])
    member = new_id >= 0
    out_rois = np.zeros((count, 4), np.int64)
    out_rois[:, :2] = np.iinfo(np.int64).max
    np.minimum.at(out_rois[:, 0], new_id[member], rois[member, 0])
    np.minimum.at(out_rois[:, 1], new_id[member], rois[member, 1])
    np.maximum.at(out_rois[:, 2], new_id[member], rois[member, 2])
    np.maximum.at(out_rois[:, 3], new_id[member], rois[member, 3])
    # score and class of each instance's best piece (first one on ties)
    best = np.full(count, -1, np.int64)
    for i in score_order(scores):
        if member[i] and best[new_id[i]] < 0:
            best[new_id[i]] = i
    order = score_order(scores[best]) if count else np.zeros(0, np.int64)
    masks = masks.select(order)
    result = {"rois": out_rois[order].astype(np.int32), "class_ids": class_ids[best][order],
              "scores": scores[best][order], "masks": masks.to_dense() if dense else masks}
    if soft_masks:
        soft = _merge_soft([(offsets[i], p[5]) for i, p in enumerate(pieces)], new_id, shape,
                           count).select(order)
        result["soft_masks"] = soft.to_soft() if dense else soft
    return result


def _merge_soft(pieces, new_id, shape, count):
    """Soft SparseMasks of the merged instances: each pixel's highest value among the pieces."""
    instance = np.concatenate([new_id[off + m.instance] for off, m in pieces])
    pixel = np.concatenate([m.pixel for _, m in pieces])
    value = np.concatenate([m.value for _, m in pieces])
    on = instance >= 0
    instance, pixel, value = instance[on], pixel[on], value[on]
    first = np.argsort(-value, kind="stable")       # the constructor keeps a pair's first value
    return SparseMasks(shape, count, instance[first], pixel[first], value[first])


def _overlapping_pairs(boxes):
    """Index pairs (a < b) of the tiles ``(y, x, h, w)`` whose rectangles intersect."""
    starts = np.array([b[:2] for b in boxes], np.int64).reshape(-1, 2)
    ends = starts + np.array([b[2:] for b in boxes], np.int64).reshape(-1, 2)
    pairs = []
    for a in range(len(boxes)):             # tiles sorted by row, then column
        later = np.arange(a + 1, len(boxes))
        hit = ((starts[later] < ends[a]) & (ends[later] > starts[a])).all(axis=1)
        pairs.extend((a, int(b)) for b in later[hit])
    return pairs


def _link(groups, first, second, box_a, box_b, merge_iou):
    """Join the detections of two tiles that agree inside the rectangle both tiles see."""
    (masks_a, off_a), (masks_b, off_b) = first, second
    y1, x1 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    y2 = min(box_a[0] + box_a[2], box_b[0] + box_b[2])
    x2 = min(box_a[1] + box_a[3], box_b[1] + box_b[3])
    if y2 <= y1 or x2 <= x1 or not masks_a.count or not masks_b.count:
        return
    shared = (y1, x1, y2, x2)
    iou = _restricted(masks_a, shared).iou(_restricted(masks_b, shared))
    for i, j in zip(*np.nonzero(iou >= merge_iou)):
        groups.union(off_a + int(i), off_b + int(j))


class TiledModel:
    """Wraps a model so that ``detect`` runs `detect_tiled` on each image.

    Use it wherever a model is expected (``mrcnn.evaluation.evaluate``,
    prediction scripts) for images larger than the model input; an image
    that fits is one tile, the same as ``model.detect``.

    Args:
        model: as `detect_tiled` (a MaskRCNN, a TTAModel, a callable).
        tile, overlap, merge_iou: as `detect_tiled`.

    Other attributes are the wrapped model's (``config``, ``keras_model``, ...).
    ``any_input_size`` tells `mrcnn.inference.tta` that every TTA variant
    (turned, scaled) fits: each is detected in tiles.
    """

    any_input_size = True

    def __init__(self, model, tile=None, overlap=None, merge_iou=0.5):
        self.model = model
        self.config = getattr(model, "config", None)
        self.tile, self.overlap, self.merge_iou = tile, overlap, merge_iou

    def __getattr__(self, name):
        if name == "model":                  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.model, name)

    def detect(self, images, verbose=0, soft_masks=False, sparse=False):
        """One result per image, masks dense (or SparseMasks with `sparse`)."""
        return [detect_tiled(self.model, image, self.tile, self.overlap, self.merge_iou,
                             dense=not sparse, soft_masks=soft_masks, verbose=verbose)
                for image in images]
