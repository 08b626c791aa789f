"""Post-processing of detections for instance-segmentation submissions (NumPy).

Competitions such as Sartorius 2021 reject masks that overlap, and the
winning solutions all tuned a short chain of clean-up steps on a validation
fold. This module provides those steps on :meth:`MaskRCNN.detect` results::

    from mrcnn.inference.postprocess import PostprocessConfig, postprocess, SARTORIUS_MIN_AREA
    cfg = PostprocessConfig(min_score={"shsy5y": 0.4, "astro": 0.6, "cort": 0.6},
                            mask_nms=0.3, min_area=SARTORIUS_MIN_AREA)
    clean = postprocess(model.detect([image])[0], cfg, class_names=dataset.class_names)

The chain (:func:`postprocess`) is: optional majority class (every instance
takes the image's dominant class) -> per-class score filter -> mask threshold
(when soft masks are present) -> mask NMS -> overlap removal (each pixel goes
to the highest-scoring instance, or with ``overlap_order="nested"`` first to an
instance lying mostly inside a larger one) -> per-class minimum area -> optional
dilation followed by a second overlap removal. Each step is also a public
function. Test-time augmentation lives in `mrcnn.inference.tta`, the sparse
masks in `mrcnn.data.masks.sparse` and :func:`compact` / :func:`expand` in
`mrcnn.inference.results`; `mrcnn.inference` exports them all.

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
import heapq
import numbers

import numpy as np
import scipy.sparse

from mrcnn.data.masks.sparse import SparseMasks, run_starts
from mrcnn.inference.results import from_state, score_order, select_state, to_state, with_masks

__all__ = [
    "SARTORIUS_MIN_AREA", "OVERLAP_ORDERS", "NESTED_FRACTION", "PostprocessConfig",
    "postprocess", "filter_by_score",
    "apply_mask_threshold", "mask_nms", "remove_overlaps", "remove_small", "dilate",
    "majority_class", "resolve_class_keys",
]

# Minimum mask areas (pixels) per Sartorius cell type used by public notebooks.
# Map names to class ids with ``class_names=dataset.class_names``.
SARTORIUS_MIN_AREA = {"shsy5y": 75, "astro": 150, "cort": 75}

#: Who gets a pixel that several instances claim (:func:`remove_overlaps`,
#: ``PostprocessConfig.overlap_order``). "score": the highest-scoring instance.
#: "nested": the same, except that an instance lying mostly inside a larger one
#: (at least ``NESTED_FRACTION`` of its pixels in the larger mask) claims first.
#: Two touching objects found both one by one and as one detection over the pair
#: then come out as the two objects: the single keeps its pixels and the pair's
#: detection keeps the rest, where by score the pair's detection, often the
#: higher-scoring, swallows the single. It also lets a fragment detected inside
#: a whole cell cut it up: on real nuclei "nested" gained, on the synthetic
#: Sartorius cells it lost (benchmarks/RESULTS.md, session 66), so "score" stays
#: the default and `mrcnn.evaluation.tuning.tune_postprocess` can choose.
OVERLAP_ORDERS = ("score", "nested")      # the first is PostprocessConfig's default
NESTED_FRACTION = 0.5


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

def _majority_class(state):
    class_ids = state["class_ids"]
    if class_ids.size == 0:
        return state
    if class_ids.min() < 0:
        raise ValueError(f"class_ids must be >= 0, got {int(class_ids.min())}")
    totals = np.bincount(class_ids, weights=state["scores"].astype(np.float64))
    winner = int(np.argmax(totals))                  # ties: the smallest class id
    return dict(state, class_ids=np.full_like(class_ids, winner))


def _filter_by_score(state, min_score, class_names):
    limits = _per_instance(min_score, state["class_ids"], "min_score", class_names)
    return select_state(state, state["scores"] >= limits)


def _apply_mask_threshold(state, threshold):
    if state["soft"] is None:
        return state
    out = dict(state, masks=state["soft"].binary(threshold))
    keep = out["masks"].areas() > 0
    out = select_state(out, keep)
    out["rois"] = out["masks"].boxes()
    return out


def _mask_nms(state, iou_threshold, class_aware):
    n = state["masks"].count
    i, j, iou = state["masks"].pairwise_iou()
    hit = iou > iou_threshold
    if class_aware:
        hit &= state["class_ids"][i] == state["class_ids"][j]
    adjacency = scipy.sparse.csr_matrix(
        (np.ones(int(hit.sum()), bool), (i[hit], j[hit])), shape=(n, n))
    rank = np.empty(n, np.int64)
    order = score_order(state["scores"])
    rank[order] = np.arange(n)
    suppressed = np.zeros(n, bool)
    indptr, indices = adjacency.indptr, adjacency.indices
    # Greedy by nature: an instance suppresses others only if it survives.
    for k in order:
        if suppressed[k] or indptr[k] == indptr[k + 1]:
            continue
        neighbours = indices[indptr[k]:indptr[k + 1]]
        suppressed[neighbours[rank[neighbours] > rank[k]]] = True
    return select_state(state, ~suppressed)


def _remove_overlaps(state, order="score"):
    masks = state["masks"]
    rank = np.empty(masks.count, np.int64)
    rank[_claim_order(state, order)] = np.arange(masks.count)
    # Sort entries by pixel, then by rank: the first entry of a pixel wins.
    entries = np.lexsort((rank[masks.instance], masks.pixel))
    first = run_starts(masks.pixel[entries])
    keep = np.zeros(entries.size, bool)
    keep[entries[first]] = True
    resolved = SparseMasks.from_sorted(masks.shape, masks.count, masks.instance[keep],
                                masks.pixel[keep])
    return with_masks(state, resolved)


def _claim_order(state, order):
    """Instance indices in the order they claim contested pixels (see `OVERLAP_ORDERS`)."""
    by_score = score_order(state["scores"])
    if order == "score" or state["masks"].count < 2:
        return by_score
    masks = state["masks"]
    matrix = masks.matrix()
    inter = (matrix @ matrix.T).tocoo()
    inner, outer, shared = inter.row, inter.col, inter.data
    areas = masks.areas()
    nested = (areas[inner] < areas[outer]) & (shared >= NESTED_FRACTION * areas[inner])
    inner, outer = inner[nested], outer[nested]
    if inner.size == 0:                  # nothing nested: the score order as it is
        return by_score
    # Kahn's topological sort of "inner before outer", the best-scoring ready instance first.
    rank = np.empty(masks.count, np.int64)
    rank[by_score] = np.arange(masks.count)
    waiting = np.bincount(outer, minlength=masks.count)
    outers = [[] for _ in range(masks.count)]
    for i, j in zip(inner.tolist(), outer.tolist()):
        outers[i].append(j)
    ready = [(int(rank[k]), int(k)) for k in np.flatnonzero(waiting == 0)]
    heapq.heapify(ready)
    claim = []
    while ready:
        _, k = heapq.heappop(ready)
        claim.append(k)
        for j in outers[k]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, (int(rank[j]), j))
    return np.array(claim, np.int64)


def _remove_small(state, min_area, class_names):
    limits = _per_instance(min_area, state["class_ids"], "min_area", class_names)
    return select_state(state, state["masks"].areas() >= limits)


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
        inst, pixel = np.divmod(key[run_starts(key)], height * width)
    grown = SparseMasks.from_sorted(masks.shape, masks.count, inst, pixel)
    return with_masks(state, grown)


# ---------------------------------------------------------------------------
# Public steps (result -> result)
# ---------------------------------------------------------------------------

def majority_class(result):
    """Gives every instance the class with the largest summed score of the image.

    Each Sartorius image holds one cell type, so the detector's per-cell
    classes can be replaced by the image's dominant one (seed 000 labelled
    each image with a single cell type). The winner is the class id whose
    instances' scores sum highest (ties go to the smallest class id); scores,
    masks and boxes are unchanged. An image without instances is returned as is.

    Args:
        result: a detect() result.

    Returns:
        Result whose ``class_ids`` all equal the image's majority class.
    """
    state, dense = to_state(result)
    return from_state(_majority_class(state), dense)


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
    state, dense = to_state(result)
    return from_state(_filter_by_score(state, min_score, class_names), dense)


def apply_mask_threshold(result, threshold=0.5):
    """Re-binarizes the masks from ``soft_masks`` at ``threshold`` (``>=``).

    A result without ``soft_masks`` is returned unchanged (its masks were
    binarized by detection at ``Config.DETECTION_MASK_THRESHOLD``). Instances
    left empty are dropped; rois become the new masks' boxes.
    """
    state, dense = to_state(result)
    return from_state(_apply_mask_threshold(state, float(threshold)), dense)


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
    state, dense = to_state(result)
    return from_state(_mask_nms(state, iou_threshold, class_aware), dense)


def remove_overlaps(result, order="score"):
    """Gives every pixel to one of the instances that cover it.

    With ``order="score"`` the highest-scoring instance wins; ties in score go
    to the instance that comes first. With ``order="nested"`` an instance with
    at least half its pixels inside a larger instance's mask claims before that
    larger one (and, through chains of such instances, before every instance it
    lies in); otherwise scores decide as before (`OVERLAP_ORDERS`). Instances
    left empty are dropped and rois are recomputed from the masks; soft masks
    are dropped. Afterwards no pixel belongs to two instances, as the Sartorius
    competition requires.

    Args:
        result: a detect() result.
        order: "score" or "nested".

    Returns:
        Result with non-overlapping masks.
    """
    _check_overlap_order(order, "order")
    state, dense = to_state(result)
    return from_state(_remove_overlaps(state, order), dense)


def _check_overlap_order(order, name):
    if order not in OVERLAP_ORDERS:
        raise ValueError(f"{name} must be one of {list(OVERLAP_ORDERS)}, got {order!r}")


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
    state, dense = to_state(result)
    return from_state(_remove_small(state, min_area, class_names), dense)


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
    state, dense = to_state(result)
    if iterations:
        state = _dilate(state, iterations, connectivity)
    return from_state(state, dense)


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
        overlap_order: which instance gets a contested pixel, "score" (the
            default: the higher score, the Kaggle notebooks' rule) or "nested"
            (an instance lying mostly inside a larger one keeps its pixels,
            otherwise the higher score); see :func:`remove_overlaps`.
        majority_class: first give every instance the class with the largest
            summed score of the image (:func:`majority_class`; one cell type
            per image, as in Sartorius), so the per-class thresholds below
            apply with the image's type.
    """

    min_score: object = 0.0
    mask_threshold: float = 0.5
    mask_nms: object = None
    min_area: object = 0
    dilation: int = 0
    resolve_overlaps: bool = True
    overlap_order: str = OVERLAP_ORDERS[0]
    majority_class: bool = False

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
        _check_overlap_order(self.overlap_order, "overlap_order")
        if not isinstance(self.majority_class, (bool, np.bool_)):
            raise TypeError(f"majority_class must be True or False, got "
                            f"{self.majority_class!r}")


def _run_chain(state, config, class_names):
    """:func:`postprocess` on a state."""
    if config.majority_class:
        state = _majority_class(state)
    state = _filter_by_score(state, config.min_score, class_names)
    state = _apply_mask_threshold(state, config.mask_threshold)
    if config.mask_nms is not None:
        state = _mask_nms(state, config.mask_nms, class_aware=False)
    if config.resolve_overlaps:
        state = _remove_overlaps(state, config.overlap_order)
    state = _remove_small(state, config.min_area, class_names)
    if config.dilation:
        state = _dilate(state, config.dilation, connectivity=1)
        if config.resolve_overlaps:
            state = _remove_overlaps(state, config.overlap_order)
    return state


def postprocess(result, config=None, class_names=None):
    """Cleans one image's detections for submission.

    Order: majority class (if asked) -> score filter -> mask threshold (soft
    masks only) -> mask NMS -> overlap removal -> minimum area -> dilation ->
    overlap removal again.

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
    state, dense = to_state(result)
    state = _run_chain(state, config, class_names)
    state["soft"] = None
    return from_state(state, dense)
