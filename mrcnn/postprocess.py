"""Post-processing of detections for instance-segmentation submissions (NumPy).

Competitions such as Sartorius 2021 reject masks that overlap, and the
winning solutions all tuned a short chain of clean-up steps on a validation
fold. This module provides those steps on :meth:`MaskRCNN.detect` results::

    from mrcnn.postprocess import PostprocessConfig, postprocess, SARTORIUS_MIN_AREA
    cfg = PostprocessConfig(min_score={"shsy5y": 0.4, "astro": 0.6, "cort": 0.6},
                            mask_nms=0.3, min_area=SARTORIUS_MIN_AREA)
    clean = postprocess(model.detect([image])[0], cfg, class_names=dataset.class_names)

The chain (:func:`postprocess`) is: per-class score filter -> mask threshold
(when soft masks are present) -> mask NMS -> overlap removal (each pixel goes
to the highest-scoring instance) -> per-class minimum area -> optional
dilation followed by a second overlap removal. Each step is also a public
function. Test-time augmentation: :func:`flip_tta` runs a model (or several,
an ensemble) on flipped copies of an image and maps the detections back;
:func:`merge_tta` merges those result lists into one.

A *result* is a dict as returned by ``detect``:

* ``rois``: int32 ``[N, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive
  (optional on input: computed from the masks when missing);
* ``class_ids``: int32 ``[N]``; ``scores``: float32 ``[N]``;
* ``masks``: bool ``[H, W, N]``, or a :class:`SparseMasks`;
* optional ``soft_masks``: float ``[H, W, N]`` mask probabilities (or a
  :class:`SparseMasks` with values), used by the mask threshold and TTA.

Every function returns a new dict with the same four keys (other keys are
not carried over), masks in the same form (dense or sparse) as the input.
Steps that change pixels (overlap removal, dilation) recompute ``rois`` from
the masks and drop ``soft_masks``. Instances are always returned in the
input's order (or, after :func:`merge_tta`, by decreasing score).

Internally masks are handled as :class:`SparseMasks`, the list of each
instance's foreground pixels: the work is proportional to the number of
foreground pixels, not to ``H * W * N`` (a 520x704 image with 500 cells is
183 MB as a dense bool array but ~150k foreground pixels).
"""

import dataclasses
import math
import numbers

import numpy as np
import scipy.sparse

from mrcnn.data.boxes import extract_bboxes

# Minimum mask areas (pixels) per Sartorius cell type used by public notebooks.
# Map names to class ids with ``class_names=dataset.class_names``.
SARTORIUS_MIN_AREA = {"shsy5y": 75, "astro": 150, "cort": 75}

# Flip names for test-time augmentation: identity, left-right, up-down, both.
FLIPS = ("none", "lr", "ud", "lrud")


# ---------------------------------------------------------------------------
# Sparse instance masks
# ---------------------------------------------------------------------------

class SparseMasks:
    """Instance masks stored as their foreground pixels.

    Entries are sorted by instance, then by row-major pixel index, with no
    duplicate (instance, pixel) pair.

    Attributes:
        shape: ``(H, W)`` of the image.
        count: number of instances ``N`` (instances may be empty).
        instance: int64 ``[P]`` instance index of each stored pixel.
        pixel: int64 ``[P]`` row-major pixel index ``y * W + x``.
        value: float32 ``[P]`` soft mask values, or None for binary masks.
    """

    __slots__ = ("shape", "count", "instance", "pixel", "value")

    def __init__(self, shape, count, instance, pixel, value=None):
        """Builds masks from (instance, pixel[, value]) triples in any order.

        Args:
            shape: ``(H, W)``.
            count: number of instances ``N``.
            instance: int ``[P]`` values in ``[0, N)``.
            pixel: int ``[P]`` row-major pixel indices in ``[0, H * W)``.
            value: optional float ``[P]``; for a duplicated (instance, pixel)
                pair the first value is kept.
        """
        if len(shape) != 2:
            raise ValueError(f"shape must be (H, W), got {shape!r}")
        height, width = (int(v) for v in shape)
        count = int(count)
        if height < 0 or width < 0 or count < 0:
            raise ValueError(f"shape and count must be >= 0, got shape {shape!r}, "
                             f"count {count}")
        instance = np.asarray(instance, dtype=np.int64).reshape(-1)
        pixel = np.asarray(pixel, dtype=np.int64).reshape(-1)
        if instance.shape != pixel.shape:
            raise ValueError(f"instance and pixel must have the same length, got "
                             f"{instance.size} and {pixel.size}")
        if instance.size and (instance.min() < 0 or instance.max() >= count):
            raise ValueError(f"instance indices must lie in [0, {count}), got range "
                             f"[{instance.min()}, {instance.max()}]")
        if pixel.size and (pixel.min() < 0 or pixel.max() >= height * width):
            raise ValueError(f"pixel indices must lie in [0, {height * width}) for a "
                             f"{height}x{width} image, got range "
                             f"[{pixel.min()}, {pixel.max()}]")
        if value is not None:
            value = np.asarray(value, dtype=np.float32).reshape(-1)
            if value.shape != pixel.shape:
                raise ValueError(f"value must have one entry per pixel ({pixel.size}), "
                                 f"got {value.size}")
        key = instance * (height * width) + pixel
        if key.size > 1 and not np.all(key[1:] > key[:-1]):
            order = np.argsort(key, kind="stable")
            first = order[_run_starts(key[order])]        # duplicates dropped
            instance, pixel = instance[first], pixel[first]
            value = None if value is None else value[first]
        self._set((height, width), count, instance, pixel, value)

    def _set(self, shape, count, instance, pixel, value):
        self.shape, self.count = shape, count
        self.instance, self.pixel, self.value = instance, pixel, value

    @classmethod
    def _raw(cls, shape, count, instance, pixel, value=None):
        """Wraps arrays already in canonical order (no checks)."""
        out = cls.__new__(cls)
        out._set(tuple(shape), int(count), instance, pixel, value)
        return out

    @classmethod
    def from_dense(cls, masks, soft=False):
        """Converts ``[H, W, N]`` masks.

        Args:
            masks: ``[H, W, N]`` array. Binary mode: nonzero pixels are on.
                Soft mode: every pixel with a value > 0 is stored with it.
            soft: keep the values (float mask probabilities).

        Returns:
            SparseMasks.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be [H, W, N], got shape {masks.shape}")
        height, width, count = masks.shape
        on = masks > 0 if soft else masks.astype(bool, copy=False)
        # Only the pixels inside each instance's tight box are gathered.
        inst, ys, xs = _box_pixels(extract_bboxes(on))
        hit = on[ys, xs, inst]
        inst, ys, xs = inst[hit], ys[hit], xs[hit]
        value = masks[ys, xs, inst].astype(np.float32) if soft else None
        return cls._raw((height, width), count, inst, ys * width + xs, value)

    @classmethod
    def from_labels(cls, labels):
        """Converts an integer label image (0 = background).

        Args:
            labels: int ``[H, W]``; instances are the distinct nonzero labels,
                in increasing label order.

        Returns:
            SparseMasks with one instance per distinct label.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not (np.issubdtype(labels.dtype, np.integer)
                                    or labels.dtype == bool):
            raise ValueError(f"labels must be an integer [H, W] image, got shape "
                             f"{labels.shape} dtype {labels.dtype}")
        flat = labels.reshape(-1)
        pixel = np.flatnonzero(flat)
        values, inst = np.unique(flat[pixel], return_inverse=True)
        return cls(labels.shape, values.size, inst, pixel)

    def __len__(self):
        return self.count

    def __repr__(self):
        kind = "binary" if self.value is None else "soft"
        return (f"SparseMasks(shape={self.shape}, count={self.count}, "
                f"pixels={self.pixel.size}, {kind})")

    def to_dense(self):
        """bool ``[H, W, N]`` masks (soft masks: the stored pixels are on)."""
        height, width = self.shape
        out = np.zeros((height * width, self.count), dtype=bool)
        out[self.pixel, self.instance] = True
        return out.reshape(height, width, self.count)

    def to_soft(self):
        """float32 ``[H, W, N]`` values (1.0 for binary masks, 0 elsewhere)."""
        height, width = self.shape
        out = np.zeros((height * width, self.count), dtype=np.float32)
        out[self.pixel, self.instance] = 1.0 if self.value is None else self.value
        return out.reshape(height, width, self.count)

    def areas(self):
        """int64 ``[N]`` number of stored pixels per instance."""
        return np.bincount(self.instance, minlength=self.count)

    def boxes(self):
        """int32 ``[N, (y1, x1, y2, x2)]`` tight boxes, y2/x2 exclusive; 0 if empty."""
        width = self.shape[1]
        boxes = np.zeros((self.count, 4), dtype=np.int32)
        if self.pixel.size == 0:
            return boxes
        ys, xs = np.divmod(self.pixel, width)
        starts = np.flatnonzero(np.r_[True, self.instance[1:] != self.instance[:-1]])
        ends = np.r_[starts[1:], self.pixel.size] - 1
        owners = self.instance[starts]
        # Rows are sorted within an instance; columns need a reduction.
        boxes[owners, 0] = ys[starts]
        boxes[owners, 2] = ys[ends] + 1
        boxes[owners, 1] = np.minimum.reduceat(xs, starts)
        boxes[owners, 3] = np.maximum.reduceat(xs, starts) + 1
        return boxes

    def select(self, index):
        """Instances ``index`` (bool ``[N]`` or int indices, in that order)."""
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (self.count,):
                raise ValueError(f"a boolean index must have shape ({self.count},), "
                                 f"got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.count):
            raise ValueError(f"instance index out of range [0, {self.count}): "
                             f"{index.tolist()}")
        new_of_old = np.full(self.count, -1, dtype=np.int64)
        new_of_old[index] = np.arange(index.size)
        if np.all(np.diff(index) > 0):            # increasing: a filter
            keep = new_of_old[self.instance] >= 0
            return SparseMasks._raw(self.shape, index.size,
                                    new_of_old[self.instance[keep]], self.pixel[keep],
                                    None if self.value is None else self.value[keep])
        # Reordered (or repeated) selection: gather each instance's run.
        starts = np.searchsorted(self.instance, index, side="left")
        counts = np.searchsorted(self.instance, index, side="right") - starts
        owner = np.repeat(np.arange(index.size), counts)
        src = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        src = src + np.repeat(starts, counts)
        return SparseMasks._raw(self.shape, index.size, owner, self.pixel[src],
                                None if self.value is None else self.value[src])

    def binary(self, threshold=None):
        """Binary masks: pixels with ``value >= threshold`` (all stored if None)."""
        if self.value is None or threshold is None:
            return SparseMasks._raw(self.shape, self.count, self.instance, self.pixel)
        keep = self.value >= threshold
        return SparseMasks._raw(self.shape, self.count, self.instance[keep],
                                self.pixel[keep])

    def flip(self, flip):
        """Masks flipped by ``flip`` in :data:`FLIPS` (its own inverse)."""
        _check_flip(flip)
        height, width = self.shape
        ys, xs = np.divmod(self.pixel, width)
        if "lr" in flip:
            xs = width - 1 - xs
        if "ud" in flip:
            ys = height - 1 - ys
        return SparseMasks(self.shape, self.count, self.instance, ys * width + xs,
                           self.value)

    def matrix(self):
        """``scipy.sparse.csr_matrix`` ``[N, H*W]`` with ones on the stored pixels."""
        height, width = self.shape
        indptr = np.r_[0, np.cumsum(self.areas())]
        return scipy.sparse.csr_matrix(
            (np.ones(self.pixel.size), self.pixel, indptr),
            shape=(self.count, height * width))

    def iou(self, other):
        """Mask IoU with every instance of ``other``: float64 ``[N, M]``."""
        if not isinstance(other, SparseMasks):
            raise TypeError(f"other must be SparseMasks, got {type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"image shapes differ: {self.shape} and {other.shape}")
        if self.count == 0 or other.count == 0:
            return np.zeros((self.count, other.count))
        inter = (self.matrix() @ other.matrix().T).toarray()
        union = self.areas()[:, None] + other.areas()[None, :] - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def pairwise_iou(self):
        """IoU of every pair of distinct instances that intersect.

        Returns:
            ``(i, j, iou)``: int64 ``[K]``, int64 ``[K]``, float64 ``[K]`` with
            ``i != j``; both orders of a pair are listed.
        """
        if self.count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        m = self.matrix()
        inter = (m @ m.T).tocoo()
        i, j, v = inter.row.astype(np.int64), inter.col.astype(np.int64), inter.data
        off = i != j
        i, j, v = i[off], j[off], v[off]
        areas = self.areas()
        return i, j, v / (areas[i] + areas[j] - v)


def _box_pixels(boxes):
    """Every pixel of every box, instance by instance, rows then columns.

    Args:
        boxes: int ``[N, (y1, x1, y2, x2)]``, y2/x2 exclusive.

    Returns:
        ``(instance, y, x)`` int64 arrays of length ``sum of box areas``.
    """
    boxes = np.asarray(boxes, dtype=np.int64)
    y1, x1 = boxes[:, 0], boxes[:, 1]
    widths = np.maximum(boxes[:, 3] - x1, 0)
    counts = np.maximum(boxes[:, 2] - y1, 0) * widths
    inst = np.repeat(np.arange(boxes.shape[0]), counts)
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    row, col = np.divmod(local, np.maximum(widths, 1)[inst])
    return inst, y1[inst] + row, x1[inst] + col


def _run_starts(sorted_keys):
    """bool mask of the first element of each run of equal sorted keys."""
    return np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if sorted_keys.size \
        else np.zeros(0, bool)


def _check_flip(flip):
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")


# ---------------------------------------------------------------------------
# Results <-> internal state
# ---------------------------------------------------------------------------

def _to_state(result, name="result"):
    """Validates a result dict and converts it to sparse form.

    Returns:
        ``(state, dense)``: state dict with ``rois`` int32 ``[N, 4]``,
        ``class_ids`` int32 ``[N]``, ``scores`` float32 ``[N]``, ``masks``
        binary SparseMasks, ``soft`` SparseMasks with values or None; ``dense``
        tells whether the input masks were an array.
    """
    if not isinstance(result, dict):
        raise TypeError(f"{name} must be a dict with rois, class_ids, scores and "
                        f"masks (a detect() result), got {type(result).__name__}")
    missing = [k for k in ("class_ids", "scores", "masks") if k not in result]
    if missing:
        raise ValueError(f"{name} lacks {missing}; expected keys rois, class_ids, "
                         f"scores, masks (and optionally soft_masks)")
    masks = result["masks"]
    dense = not isinstance(masks, SparseMasks)
    masks = SparseMasks.from_dense(masks) if dense else masks.binary()
    n = masks.count
    class_ids = np.asarray(result["class_ids"]).astype(np.int32).reshape(-1)
    scores = np.asarray(result["scores"]).astype(np.float32).reshape(-1)
    rois = result.get("rois")
    rois = masks.boxes() if rois is None else np.asarray(rois).astype(np.int32)
    if rois.ndim != 2 or rois.shape[1] != 4:
        raise ValueError(f"{name}['rois'] must be [N, (y1, x1, y2, x2)], got shape "
                         f"{rois.shape}")
    for key, arr in (("class_ids", class_ids), ("scores", scores), ("rois", rois)):
        if arr.shape[0] != n:
            raise ValueError(f"{name}['{key}'] has {arr.shape[0]} entries but "
                             f"masks hold {n} instances")
    soft = result.get("soft_masks")
    if soft is not None:
        soft = soft if isinstance(soft, SparseMasks) else \
            SparseMasks.from_dense(soft, soft=True)
        if soft.shape != masks.shape or soft.count != n:
            raise ValueError(f"{name}['soft_masks'] holds {soft.count} instances of "
                             f"{soft.shape}, masks {n} of {masks.shape}")
    state = {"rois": rois, "class_ids": class_ids, "scores": scores,
             "masks": masks, "soft": soft}
    return state, dense


def _from_state(state, dense):
    """Result dict from a state (dense or sparse masks as requested)."""
    masks, soft = state["masks"], state["soft"]
    out = {"rois": state["rois"].astype(np.int32),
           "class_ids": state["class_ids"].astype(np.int32),
           "scores": state["scores"].astype(np.float32),
           "masks": masks.to_dense() if dense else masks}
    if soft is not None:
        out["soft_masks"] = soft.to_soft() if dense else soft
    return out


def _select(state, index):
    index = np.asarray(index)
    return {"rois": state["rois"][index], "class_ids": state["class_ids"][index],
            "scores": state["scores"][index], "masks": state["masks"].select(index),
            "soft": None if state["soft"] is None else state["soft"].select(index)}


def _with_masks(state, masks):
    """Replaces the binary masks (pixels changed): drop empties, new rois, no soft."""
    keep = masks.areas() > 0
    masks = masks.select(keep)
    return {"rois": masks.boxes(), "class_ids": state["class_ids"][keep],
            "scores": state["scores"][keep], "masks": masks, "soft": None}


def compact(result):
    """The same result with :class:`SparseMasks` masks (small to store)."""
    return _from_state(*_to_state(result)[:1], dense=False)


def expand(result):
    """The same result with dense bool ``[H, W, N]`` masks."""
    return _from_state(*_to_state(result)[:1], dense=True)


# ---------------------------------------------------------------------------
# Per-class values
# ---------------------------------------------------------------------------

def resolve_class_keys(values, class_names=None, name="values"):
    """Maps a dict keyed by class ids and/or class names to one keyed by ids.

    Args:
        values: dict ``{class id or name: value}``.
        class_names: sequence indexed by class id (``Dataset.class_names``) or
            dict ``{id: name}``; needed when a key is a name.
        name: argument name used in error messages.

    Returns:
        dict ``{int class id: value}``.
    """
    if isinstance(class_names, dict):
        ids_of = {str(v): int(k) for k, v in class_names.items()}
    else:
        ids_of = {str(v): i for i, v in enumerate(class_names or ())}
    out = {}
    for key, value in values.items():
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, bool):
            out[int(key)] = value
        elif isinstance(key, str):
            if key not in ids_of:
                known = sorted(ids_of) if ids_of else "none (pass class_names)"
                raise ValueError(f"{name}: unknown class name {key!r}; known names: "
                                 f"{known}")
            out[ids_of[key]] = value
        else:
            raise TypeError(f"{name}: keys must be class ids (int) or names (str), "
                            f"got {key!r}")
    return out


def _per_instance(values, class_ids, name, class_names=None, default=0.0):
    """float ``[N]`` threshold of each instance from a number or a per-class dict."""
    if isinstance(values, dict):
        out = np.full(class_ids.shape[0], default, dtype=np.float64)
        for class_id, value in resolve_class_keys(values, class_names, name).items():
            out[class_ids == class_id] = _number(value, f"{name}[{class_id}]")
        return out
    return np.full(class_ids.shape[0], _number(values, name), dtype=np.float64)


def _number(value, name):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# Steps (state -> state)
# ---------------------------------------------------------------------------

def _filter_by_score(state, min_score, class_names):
    limits = _per_instance(min_score, state["class_ids"], "min_score", class_names)
    return _select(state, state["scores"] >= limits)


def _apply_mask_threshold(state, threshold):
    if state["soft"] is None:
        return state
    out = dict(state, masks=state["soft"].binary(threshold))
    keep = out["masks"].areas() > 0
    out = _select(out, keep)
    out["rois"] = out["masks"].boxes()
    return out


def _score_order(scores):
    """Indices by decreasing score; equal scores keep their input order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _mask_nms(state, iou_threshold, class_aware):
    n = state["masks"].count
    i, j, iou = state["masks"].pairwise_iou()
    hit = iou > iou_threshold
    if class_aware:
        hit &= state["class_ids"][i] == state["class_ids"][j]
    adjacency = scipy.sparse.csr_matrix(
        (np.ones(int(hit.sum()), bool), (i[hit], j[hit])), shape=(n, n))
    rank = np.empty(n, np.int64)
    order = _score_order(state["scores"])
    rank[order] = np.arange(n)
    suppressed = np.zeros(n, bool)
    indptr, indices = adjacency.indptr, adjacency.indices
    # Greedy by nature: an instance suppresses others only if it survives.
    for k in order:
        if suppressed[k] or indptr[k] == indptr[k + 1]:
            continue
        neighbours = indices[indptr[k]:indptr[k + 1]]
        suppressed[neighbours[rank[neighbours] > rank[k]]] = True
    return _select(state, ~suppressed)


def _remove_overlaps(state):
    masks = state["masks"]
    rank = np.empty(masks.count, np.int64)
    rank[_score_order(state["scores"])] = np.arange(masks.count)
    # Sort entries by pixel, then by rank: the first entry of a pixel wins.
    order = np.lexsort((rank[masks.instance], masks.pixel))
    first = _run_starts(masks.pixel[order])
    keep = np.zeros(order.size, bool)
    keep[order[first]] = True
    resolved = SparseMasks._raw(masks.shape, masks.count, masks.instance[keep],
                                masks.pixel[keep])
    return _with_masks(state, resolved)


def _remove_small(state, min_area, class_names):
    limits = _per_instance(min_area, state["class_ids"], "min_area", class_names)
    return _select(state, state["masks"].areas() >= limits)


def _dilate(state, iterations, connectivity):
    masks = state["masks"]
    height, width = masks.shape
    if connectivity == 1:
        offsets = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
    else:
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    inst, pixel = masks.instance, masks.pixel
    for _ in range(iterations):
        ys, xs = np.divmod(pixel, width)
        new_inst, new_pix = [], []
        for dy, dx in offsets:
            y, x = ys + dy, xs + dx
            ok = (y >= 0) & (y < height) & (x >= 0) & (x < width)
            new_inst.append(inst[ok])
            new_pix.append(y[ok] * width + x[ok])
        key = np.sort(np.concatenate(new_inst) * (height * width)
                      + np.concatenate(new_pix))
        inst, pixel = np.divmod(key[_run_starts(key)], height * width)
    grown = SparseMasks._raw(masks.shape, masks.count, inst, pixel)
    return _with_masks(state, grown)


# ---------------------------------------------------------------------------
# Public steps (result -> result)
# ---------------------------------------------------------------------------

def filter_by_score(result, min_score, class_names=None):
    """Keeps the instances whose score is at least their class's threshold.

    Args:
        result: a detect() result (see the module docstring).
        min_score: float, or dict ``{class id or name: threshold}``; classes
            missing from the dict are not filtered.
        class_names: needed when ``min_score`` has class names as keys
            (``Dataset.class_names``).

    Returns:
        Result with the instances ``scores >= threshold``.
    """
    state, dense = _to_state(result)
    return _from_state(_filter_by_score(state, min_score, class_names), dense)


def apply_mask_threshold(result, threshold=0.5):
    """Re-binarizes the masks from ``soft_masks`` at ``threshold`` (``>=``).

    A result without ``soft_masks`` is returned unchanged (its masks were
    binarized by detection at ``Config.DETECTION_MASK_THRESHOLD``). Instances
    left empty are dropped; rois become the new masks' boxes.
    """
    state, dense = _to_state(result)
    return _from_state(_apply_mask_threshold(state, float(threshold)), dense)


def mask_nms(result, iou_threshold, class_aware=False):
    """Greedy non-maximum suppression on mask IoU.

    Instances are visited by decreasing score; each surviving instance
    suppresses every lower-scoring one whose mask IoU with it is strictly
    greater than ``iou_threshold``. Only intersecting pairs are computed
    (sparse product), so hundreds of cells cost little.

    Args:
        result: a detect() result.
        iou_threshold: float in [0, 1].
        class_aware: only suppress instances of the same class.

    Returns:
        Result with the surviving instances, in input order.
    """
    iou_threshold = _number(iou_threshold, "iou_threshold")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    state, dense = _to_state(result)
    return _from_state(_mask_nms(state, iou_threshold, class_aware), dense)


def remove_overlaps(result):
    """Gives every pixel to the highest-scoring instance that covers it.

    Ties in score go to the instance that comes first. Instances left empty
    are dropped and rois are recomputed from the masks; soft masks are
    dropped. Afterwards no pixel belongs to two instances, as the Sartorius
    competition requires.

    Args:
        result: a detect() result.

    Returns:
        Result with non-overlapping masks.
    """
    state, dense = _to_state(result)
    return _from_state(_remove_overlaps(state), dense)


def remove_small(result, min_area, class_names=None):
    """Drops instances with fewer than ``min_area`` pixels.

    Args:
        result: a detect() result.
        min_area: int, or dict ``{class id or name: pixels}`` (e.g.
            :data:`SARTORIUS_MIN_AREA` with ``class_names``); classes missing
            from the dict are kept whatever their size.
        class_names: needed when ``min_area`` has class names as keys.

    Returns:
        Result with the instances of area ``>= min_area``.
    """
    state, dense = _to_state(result)
    return _from_state(_remove_small(state, min_area, class_names), dense)


def dilate(result, iterations=1, connectivity=1):
    """Binary dilation of every mask (seed 002's post-processing).

    Equivalent to ``scipy.ndimage.binary_dilation`` of each mask with
    ``generate_binary_structure(2, connectivity)`` (1: cross, 2: 3x3 square)
    repeated ``iterations`` times. Masks may overlap afterwards: run
    :func:`remove_overlaps` (``postprocess`` does).

    Returns:
        Result with grown masks and their boxes; soft masks are dropped.
    """
    iterations = int(iterations)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (cross) or 2 (square), got "
                         f"{connectivity!r}")
    state, dense = _to_state(result)
    if iterations:
        state = _dilate(state, iterations, connectivity)
    return _from_state(state, dense)


# ---------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PostprocessConfig:
    """Settings of :func:`postprocess`.

    Attributes:
        min_score: minimum detection score; float or dict ``{class id or
            name: score}`` (missing classes are not filtered).
        mask_threshold: binarization threshold of ``soft_masks`` (ignored for
            results without them).
        mask_nms: IoU threshold of mask NMS, or None to skip it (seed 003
            used a low one, e.g. 0.3, after the detector's box NMS).
        min_area: minimum mask area in pixels after overlap removal; int or
            dict (e.g. :data:`SARTORIUS_MIN_AREA`).
        dilation: binary dilation iterations (0 = none; seed 002 used 1).
        resolve_overlaps: give each pixel to one instance (required by
            Sartorius; turn off for COCO-style evaluation).
    """

    min_score: object = 0.0
    mask_threshold: float = 0.5
    mask_nms: object = None
    min_area: object = 0
    dilation: int = 0
    resolve_overlaps: bool = True

    def __post_init__(self):
        for name in ("min_score", "min_area"):
            value = getattr(self, name)
            if isinstance(value, dict):
                for key, v in value.items():
                    _number(v, f"{name}[{key!r}]")
            else:
                _number(value, name)
        if not 0.0 <= _number(self.mask_threshold, "mask_threshold") <= 1.0:
            raise ValueError(f"mask_threshold must be in [0, 1], got "
                             f"{self.mask_threshold}")
        if self.mask_nms is not None and \
                not 0.0 <= _number(self.mask_nms, "mask_nms") <= 1.0:
            raise ValueError(f"mask_nms must be None or in [0, 1], got {self.mask_nms}")
        if isinstance(self.dilation, bool) or not isinstance(
                self.dilation, (numbers.Integral, np.integer)) or self.dilation < 0:
            raise ValueError(f"dilation must be an int >= 0, got {self.dilation!r}")


def _run_chain(state, config, class_names):
    """:func:`postprocess` on a state."""
    state = _filter_by_score(state, config.min_score, class_names)
    state = _apply_mask_threshold(state, config.mask_threshold)
    if config.mask_nms is not None:
        state = _mask_nms(state, config.mask_nms, class_aware=False)
    if config.resolve_overlaps:
        state = _remove_overlaps(state)
    state = _remove_small(state, config.min_area, class_names)
    if config.dilation:
        state = _dilate(state, config.dilation, connectivity=1)
        if config.resolve_overlaps:
            state = _remove_overlaps(state)
    return state


def postprocess(result, config=None, class_names=None):
    """Cleans one image's detections for submission.

    Order: score filter -> mask threshold (soft masks only) -> mask NMS ->
    overlap removal -> minimum area -> dilation -> overlap removal again.

    Args:
        result: a detect() result (dense or sparse masks, optional soft masks).
        config: :class:`PostprocessConfig` (default: its defaults, which only
            remove overlaps).
        class_names: ``Dataset.class_names`` (or ``{id: name}``) when the
            config's per-class dicts use names.

    Returns:
        Result dict (rois, class_ids, scores, masks) without ``soft_masks``.
    """
    config = PostprocessConfig() if config is None else config
    if not isinstance(config, PostprocessConfig):
        raise TypeError(f"config must be a PostprocessConfig, got "
                        f"{type(config).__name__}")
    state, dense = _to_state(result)
    state = _run_chain(state, config, class_names)
    state["soft"] = None
    return _from_state(state, dense)


# ---------------------------------------------------------------------------
# Test-time augmentation and ensembles
# ---------------------------------------------------------------------------

def flip_image(image, flip):
    """Flips an ``[H, W, ...]`` image: ``"lr"`` columns, ``"ud"`` rows, ``"lrud"`` both."""
    _check_flip(flip)
    image = np.asarray(image)
    if "lr" in flip:
        image = image[:, ::-1]
    if "ud" in flip:
        image = image[::-1]
    return np.ascontiguousarray(image)


def flip_result(result, flip):
    """Maps detections of a flipped image back to the original (or vice versa).

    Args:
        result: a detect() result on an image flipped by ``flip``.
        flip: one of :data:`FLIPS`.

    Returns:
        Result in the other frame: masks (and soft masks) flipped, rois
        mirrored (``x1' = W - x2``, ``x2' = W - x1`` for ``"lr"``).
    """
    _check_flip(flip)
    state, dense = _to_state(result)
    height, width = state["masks"].shape
    rois = state["rois"].copy()
    if "lr" in flip:
        rois[:, [1, 3]] = width - state["rois"][:, [3, 1]]
    if "ud" in flip:
        rois[:, [0, 2]] = height - state["rois"][:, [2, 0]]
    state = dict(state, rois=rois, masks=state["masks"].flip(flip),
                 soft=None if state["soft"] is None else state["soft"].flip(flip))
    return _from_state(state, dense)


def flip_tta(model, image, flips=("none", "lr", "ud")):
    """Detects on flipped copies of an image, with one model or an ensemble.

    Args:
        model: an object with ``detect(images) -> [result, ...]`` (a
            ``MaskRCNN`` in inference mode), or a list of them (ensemble of
            checkpoints).
        image: ``[H, W, C]`` image.
        flips: flips from :data:`FLIPS`.

    Returns:
        List of results in the original image frame, ``len(models) *
        len(flips)`` of them (model-major), ready for :func:`merge_tta`.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    flips = tuple(flips)
    if not models or not flips:
        raise ValueError(f"flip_tta needs at least one model and one flip, got "
                         f"{len(models)} models and flips {flips!r}")
    for flip in flips:
        _check_flip(flip)
    images = [flip_image(image, flip) for flip in flips]
    results = []
    for m in models:
        detections = m.detect(images)
        results.extend(flip_result(r, f) for r, f in zip(detections, flips))
    return results


def merge_tta(results, iou_threshold=0.5, min_votes=None, mask_threshold=0.5):
    """Merges detections of the same image from several TTA variants / models.

    Algorithm:

    1. Pool the instances of all ``K`` results and visit them by decreasing
       score. Each instance joins the cluster whose first (highest-scoring)
       member has the largest mask IoU with it, if that IoU is
       ``> iou_threshold`` and the cluster has no member from the same
       result yet; otherwise it starts a new cluster. A cluster thus holds at
       most one instance per result.
    2. Keep clusters with at least ``min_votes`` members.
    3. Score = sum of the member scores / ``K`` (a result that missed the
       instance counts as 0, as in weighted boxes fusion); class = the class
       with the largest summed member score.
    4. Mask: per pixel, the mean over the members of their soft masks (when
       every result has ``soft_masks``) or of their binary masks (a vote),
       kept where ``>= mask_threshold``. Clusters whose merged mask is empty
       are dropped; rois are the merged masks' boxes.

    Args:
        results: list of results of the same image, all in the original frame
            (see :func:`flip_tta`).
        iou_threshold: mask IoU above which two instances are the same object.
        min_votes: minimum cluster size; default ``ceil(K / 2)``.
        mask_threshold: threshold on the mean member mask.

    Returns:
        One result, instances by decreasing merged score; it carries
        ``soft_masks`` (the member mean) when the inputs had them.
    """
    results = list(results)
    if not results:
        raise ValueError("merge_tta needs at least one result, got none")
    states, dense_flags = zip(*[_to_state(r, f"results[{k}]")
                                for k, r in enumerate(results)])
    shape = states[0]["masks"].shape
    for k, s in enumerate(states):
        if s["masks"].shape != shape:
            raise ValueError(f"results[{k}] is for a {s['masks'].shape} image, "
                             f"results[0] for {shape}")
    k_results = len(states)
    min_votes = math.ceil(k_results / 2) if min_votes is None else int(min_votes)
    if not 1 <= min_votes <= k_results:
        raise ValueError(f"min_votes must be in [1, {k_results}], got {min_votes}")
    use_soft = all(s["soft"] is not None for s in states)
    counts = np.array([s["masks"].count for s in states])
    offsets = np.r_[0, np.cumsum(counts)]
    total = int(offsets[-1])
    source = np.repeat(np.arange(k_results), counts)
    scores = np.concatenate([s["scores"] for s in states]).astype(np.float64)
    class_ids = np.concatenate([s["class_ids"] for s in states]).astype(np.int64)
    pooled = SparseMasks._raw(
        shape, total,
        np.concatenate([s["masks"].instance + offsets[k] for k, s in enumerate(states)]),
        np.concatenate([s["masks"].pixel for s in states]))

    # 1. Greedy clustering (sequential: each instance sees earlier clusters).
    i, j, iou = pooled.pairwise_iou()
    hit = iou > iou_threshold
    graph = scipy.sparse.csr_matrix((iou[hit], (i[hit], j[hit])), shape=(total, total))
    cluster = np.full(total, -1, np.int64)
    anchor = np.full(total, -1, np.int64)
    has_source = np.zeros((total, k_results), bool)
    n_clusters = 0
    for k in _score_order(scores):
        lo, hi = graph.indptr[k], graph.indptr[k + 1]
        neighbours, ious = graph.indices[lo:hi], graph.data[lo:hi]
        c = cluster[neighbours]
        ok = (c >= 0) & (anchor[np.maximum(c, 0)] == neighbours)
        ok &= ~has_source[np.maximum(c, 0), source[k]]
        if ok.any():
            target = c[np.argmax(np.where(ok, ious, -1.0))]
        else:
            target = n_clusters
            anchor[target] = k
            n_clusters += 1
        cluster[k] = target
        has_source[target, source[k]] = True

    # 2-3. Votes, scores and classes per cluster.
    votes = np.bincount(cluster, minlength=n_clusters)
    merged_scores = np.bincount(cluster, weights=scores, minlength=n_clusters) / k_results
    n_classes = int(class_ids.max()) + 1 if total else 1
    class_votes = np.bincount(cluster * n_classes + class_ids, weights=scores,
                              minlength=n_clusters * n_classes)
    merged_classes = class_votes.reshape(n_clusters, n_classes).argmax(axis=1)

    # 4. Mean member mask per cluster.
    if use_soft:
        members = [s["soft"] for s in states]
    else:
        members = [s["masks"] for s in states]
    member_inst = np.concatenate([m.instance + offsets[k] for k, m in enumerate(members)])
    member_pix = np.concatenate([m.pixel for m in members])
    member_val = np.concatenate([np.ones(m.pixel.size, np.float32) if m.value is None
                                 else m.value for m in members])
    size = shape[0] * shape[1]
    key = cluster[member_inst] * size + member_pix
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(_run_starts(key))
    sums = np.add.reduceat(member_val[order].astype(np.float64), starts) \
        if starts.size else np.zeros(0)
    owner, pixel = np.divmod(key[starts], size)
    mean = (sums / votes[owner]).astype(np.float32)

    keep_cluster = np.flatnonzero(votes >= min_votes)
    keep_cluster = keep_cluster[_score_order(merged_scores[keep_cluster])]
    new_of_old = np.full(n_clusters, -1, np.int64)
    new_of_old[keep_cluster] = np.arange(keep_cluster.size)
    on = new_of_old[owner] >= 0
    soft = SparseMasks(shape, keep_cluster.size, new_of_old[owner[on]], pixel[on],
                       mean[on])
    state = {"rois": np.zeros((keep_cluster.size, 4), np.int32),
             "class_ids": merged_classes[keep_cluster].astype(np.int32),
             "scores": merged_scores[keep_cluster].astype(np.float32),
             "masks": soft.binary(mask_threshold), "soft": soft}
    keep = state["masks"].areas() > 0
    state = _select(state, keep)
    state["rois"] = state["masks"].boxes()
    if not use_soft:
        state["soft"] = None
    return _from_state(state, dense_flags[0])


def detect_tta(model, image, flips=("none", "lr", "ud"), iou_threshold=0.5,
               min_votes=None, mask_threshold=0.5):
    """:func:`flip_tta` followed by :func:`merge_tta` (one image)."""
    return merge_tta(flip_tta(model, image, flips), iou_threshold=iou_threshold,
                     min_votes=min_votes, mask_threshold=mask_threshold)


class TTAModel:
    """Wraps a model (or an ensemble) so that ``detect`` merges flipped runs.

    ``TTAModel(models, flips).detect(images)`` returns, per image,
    ``merge_tta(flip_tta(models, image, flips), ...)``; use it wherever a
    model is expected (``mrcnn.evaluation.evaluate``, prediction scripts).

    Args:
        model: a model with ``detect`` or a list of them.
        flips: flips from :data:`FLIPS`.
        iou_threshold, min_votes, mask_threshold: see :func:`merge_tta`.
    """

    def __init__(self, model, flips=("none", "lr", "ud"), iou_threshold=0.5,
                 min_votes=None, mask_threshold=0.5):
        self.models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not self.models:
            raise ValueError("TTAModel needs at least one model, got none")
        for flip in flips:
            _check_flip(flip)
        self.flips = tuple(flips)
        self.iou_threshold = iou_threshold
        self.min_votes = min_votes
        self.mask_threshold = mask_threshold
        self.config = getattr(self.models[0], "config", None)

    def detect(self, images, verbose=0):
        """One merged result per image (see :func:`detect_tta`)."""
        return [detect_tta(self.models, image, self.flips, self.iou_threshold,
                           self.min_votes, self.mask_threshold) for image in images]
