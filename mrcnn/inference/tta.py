"""Test-time augmentation and ensembles of detection results (NumPy).

:func:`tta_results` runs a model (or several, an ensemble) on transformed
copies of an image (flips, 90-degree turns, scales: see
`mrcnn.inference.transforms`) and maps the detections back to the original
frame; :func:`merge_tta` merges those results into one by mask-IoU clustering
and voting, averaging the mask probabilities; :func:`detect_tta` does both,
and :class:`TTAModel` wraps a model so that its ``detect`` does them::

    from mrcnn.inference.tta import TTAModel
    tta = TTAModel([model_fold0, model_fold1], "dihedral+scales")
    result = tta.detect([image])[0]

Variants are named sets (:data:`TTA_SETS`: ``"flips"``, ``"dihedral"``,
``"scales"``, joined by ``+`` for their union, e.g. ``"dihedral+scales"``), or
a list of transform names (``"lr"``, ``"rot90"``, ``"lr-rot270-s1.25"``).
Models are asked for ``soft_masks`` (when their ``detect`` takes it), so that
the merge averages probabilities. Results are ``detect()`` dicts (see
`mrcnn.inference.results`); flips are named as in :data:`FLIPS`.

Turned non-square images and scaled images have other sizes than the
original. A ``MaskRCNN`` with ``IMAGE_RESIZE_MODE = "none"`` runs each variant
in an input of the variant's own size (its twin at that size, sharing its
weights: `mrcnn.inference.fitted_input`), whatever its own ``IMAGE_SHAPE``:
padding below and right of an image costs accuracy, so its input need only
hold the untransformed images. Another detector with a fixed input (a
``config`` with ``"none"`` and no twins) needs an ``IMAGE_SHAPE`` that holds
every variant (:func:`tta_input_shape`); with ``"square"`` every variant is
resized to ``IMAGE_MAX_DIM``, which undoes a scale variant's resize.
"""

import inspect
import math

import numpy as np
import scipy.sparse

from mrcnn.data.fit import padded_size
from mrcnn.data.masks.sparse import FLIPS, SparseMasks, check_flip, run_starts
from mrcnn.inference.fitted_input import (
    detect_fitted, exceeds_input, fits_each_input, fitted_shape, model_input_size)
from mrcnn.inference.results import compact, expand, from_state, score_order, select_state, to_state
from mrcnn.inference.transforms import Transform

__all__ = ["FLIPS", "TTA_SETS", "tta_variants", "tta_input_shape", "flip_image",
           "flip_result", "flip_tta", "tta_results", "merge_tta", "detect_tta", "TTAModel"]

# Named sets of TTA variants ("a+b" is the union of two sets, in order).
TTA_SETS = {
    # the three of the first version: identity, left-right, up-down
    "flips": ("none", "lr", "ud"),
    # the 8 symmetries of the square: 4 turns x (no flip, left-right)
    "dihedral": ("none", "lr", "ud", "lrud", "rot90", "rot270", "lr-rot90", "lr-rot270"),
    # image resized by 0.8 and 1.25 (smaller / larger cells)
    "scales": ("none", "s0.8", "s1.25"),
}


def tta_variants(variants="flips"):
    """The :class:`~mrcnn.inference.transforms.Transform` of each variant.

    Args:
        variants: a set name of :data:`TTA_SETS` or a union ``"dihedral+scales"``,
            a transform name, or a sequence of transform names / Transforms.

    Returns:
        tuple of distinct Transforms, in order (the first occurrence kept).
    """
    if isinstance(variants, str):
        names = variants.split("+")
        if all(n in TTA_SETS for n in names):
            variants = [v for n in names for v in TTA_SETS[n]]
        elif "+" in variants:
            unknown = [n for n in names if n not in TTA_SETS]
            raise ValueError(f"unknown TTA set {unknown[0]!r} in {variants!r}; sets: "
                             f"{sorted(TTA_SETS)} (join with '+')")
        else:
            variants = [variants]
    if isinstance(variants, Transform):
        variants = [variants]
    try:
        variants = list(variants)
    except TypeError:
        raise TypeError(f"variants must be a TTA set name {sorted(TTA_SETS)}, a transform name "
                        f"or a list of them, got {variants!r}") from None
    try:
        parsed = [Transform.parse(v) for v in variants]
    except ValueError as error:
        raise ValueError(f"{error}; or a TTA set {sorted(TTA_SETS)}") from None
    out = tuple(dict.fromkeys(parsed))
    if not out:
        raise ValueError("TTA needs at least one variant, got none")
    return out


def tta_input_shape(image_shapes, variants="flips", multiple=64):
    """``(h, w)`` model input that holds every variant of every image.

    For ``IMAGE_RESIZE_MODE = "none"`` models: the largest transformed height
    and width, rounded up to ``multiple``.

    Args:
        image_shapes: ``(H, W, ...)`` of each image.
        variants: as :func:`tta_variants`.
    """
    transforms = tta_variants(variants)
    sizes = [t.shape(s) for s in image_shapes for t in transforms]
    if not sizes:
        raise ValueError("tta_input_shape needs at least one image shape, got none")
    return padded_size(np.max(sizes, axis=0), multiple)


def flip_image(image, flip):
    """Flips an ``[H, W, ...]`` image: ``"lr"`` columns, ``"ud"`` rows, ``"lrud"`` both."""
    check_flip(flip)
    return Transform(flip=flip).image(image)


def flip_result(result, flip):
    """Maps detections of a flipped image back to the original (or vice versa).

    Args:
        result: a detect() result on an image flipped by ``flip``.
        flip: one of :data:`FLIPS`.

    Returns:
        Result in the other frame: masks (and soft masks) flipped, rois
        mirrored (``x1' = W - x2``, ``x2' = W - x1`` for ``"lr"``).
    """
    check_flip(flip)
    return Transform(flip=flip).result(result, _frame(result))


def flip_tta(model, image, flips=("none", "lr", "ud")):
    """Detects on flipped copies of an image, with one model or an ensemble.

    :func:`tta_results` restricted to flips (:data:`FLIPS`).

    Returns:
        List of results in the original image frame, ``len(models) *
        len(flips)`` of them (model-major), ready for :func:`merge_tta`.
    """
    flips = tuple(flips)
    for flip in flips:
        check_flip(flip)
    return tta_results(model, image, flips, sparse=False)


def tta_results(model, image, variants="flips", soft_masks=True, sparse=True):
    """Detects on transformed copies of an image, with one model or an ensemble.

    Args:
        model: an object with ``detect(images) -> [result, ...]`` (a
            ``MaskRCNN`` in inference mode), or a list of them (ensemble of
            checkpoints).
        image: ``[H, W, C]`` image.
        variants: as :func:`tta_variants` (default: the 3 flips).
        soft_masks: ask the models for ``soft_masks`` (when their ``detect``
            takes it) so that :func:`merge_tta` averages probabilities.
        sparse: results with SparseMasks masks (dense ones otherwise).

    Returns:
        List of results in the original image frame, ``len(models) *
        len(variants)`` of them (model-major), ready for :func:`merge_tta`.
    """
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    if not models:
        raise ValueError("TTA needs at least one model, got none")
    transforms = tta_variants(variants)
    image = np.asarray(image)
    images = [t.image(image) for t in transforms]
    results = []
    for m in models:
        _check_input(m, image.shape, transforms)
        detections = _detect_each(m, images, soft_masks)
        for r, t in zip(detections, transforms):
            r = t.invert(r, image.shape)
            results.append(r if sparse == isinstance(r["masks"], SparseMasks) else
                           _convert(r, sparse))
    return results


def _frame(result):
    masks = result.get("masks") if isinstance(result, dict) else None
    return masks.shape if isinstance(masks, SparseMasks) else np.shape(masks)[:2]


def _convert(result, sparse):
    return compact(result) if sparse else expand(result)


def _detect_each(model, images, soft_masks):
    """Detections of each variant, asking for sparse soft masks when ``detect`` takes them.

    A fixed-input MaskRCNN runs each variant in an input of its own size
    (variants of one size share a batch; `mrcnn.inference.fitted_input` says
    why a tight input matters).
    """
    try:
        params = inspect.signature(model.detect).parameters
    except (TypeError, ValueError):
        params = {}
    if soft_masks and "soft_masks" in params and "sparse" in params:
        return detect_fitted(model, images, soft_masks=True, sparse=True)
    return detect_fitted(model, images)


def _check_input(model, shape, transforms):
    """A clear error when an image (or a variant) does not fit a "none"-mode model's input.

    A model that detects images of any size (``any_input_size``, e.g. a
    `mrcnn.inference.tiling.TiledModel`) takes every image and variant. A
    ``MaskRCNN`` that runs each variant in its own input
    (:func:`fits_each_input`) takes every variant of an image that fits its
    input as ``detect`` would (a turned or scaled copy may be larger); a
    larger image goes in tiles, as with ``detect``.
    """
    config = getattr(model, "config", None)
    if getattr(config, "IMAGE_RESIZE_MODE", None) != "none" \
            or getattr(model, "any_input_size", False) is True:
        return
    limit = model_input_size(model)
    if fits_each_input(model):
        need = fitted_shape(model, shape)
        if exceeds_input(model, need):
            raise ValueError(
                f"the {shape[0]}x{shape[1]} image needs a {need[0]}x{need[1]} input (after "
                f"IMAGE_SCALE {config.IMAGE_SCALE}), larger than the model input "
                f"{limit[0]}x{limit[1]}; run it in overlapping tiles, "
                f"TTAModel(TiledModel(model), ...) (mrcnn.inference.TiledModel), or build the "
                f"model with IMAGE_SHAPE [{need[0]}, {need[1]}, 3]")
        return
    for t in transforms:
        size = t.shape(shape)
        if exceeds_input(model, size):
            need = tta_input_shape([shape], transforms)
            raise ValueError(
                f"TTA variant {t.name!r} makes the {shape[0]}x{shape[1]} image "
                f"{size[0]}x{size[1]}, larger than the model input {limit[0]}x{limit[1]} "
                f"(IMAGE_RESIZE_MODE 'none'); build the inference model with IMAGE_SHAPE "
                f"[{need[0]}, {need[1]}, 3] (mrcnn.inference.tta_input_shape) or drop "
                f"that variant")


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
            (see :func:`tta_results`).
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
    states, dense_flags = zip(*[to_state(r, f"results[{k}]")
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
    pooled = SparseMasks.from_sorted(
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
    for k in score_order(scores):
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
    starts = np.flatnonzero(run_starts(key))
    sums = np.add.reduceat(member_val[order].astype(np.float64), starts) \
        if starts.size else np.zeros(0)
    owner, pixel = np.divmod(key[starts], size)
    mean = (sums / votes[owner]).astype(np.float32)

    keep_cluster = np.flatnonzero(votes >= min_votes)
    keep_cluster = keep_cluster[score_order(merged_scores[keep_cluster])]
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
    state = select_state(state, keep)
    state["rois"] = state["masks"].boxes()
    if not use_soft:
        state["soft"] = None
    return from_state(state, dense_flags[0])


def detect_tta(model, image, variants="flips", iou_threshold=0.5, min_votes=None,
               mask_threshold=0.5, soft_masks=False, sparse=False, flips=None):
    """:func:`tta_results` followed by :func:`merge_tta` (one image).

    Args:
        model, image, variants: see :func:`tta_results` (``flips=`` is the
            former name of `variants`, still accepted).
        iou_threshold, min_votes, mask_threshold: see :func:`merge_tta`.
        soft_masks: keep the merged ``soft_masks`` (the mean member
            probabilities) in the result.
        sparse: masks as SparseMasks (dense bool ``[H, W, N]`` otherwise).

    Returns:
        One result in the original image frame (masks at the image's size).
    """
    variants = _variants_arg(variants, flips)
    merged = merge_tta(tta_results(model, image, variants, soft_masks=True, sparse=True),
                       iou_threshold=iou_threshold, min_votes=min_votes,
                       mask_threshold=mask_threshold)
    if not soft_masks:
        merged.pop("soft_masks", None)
    return merged if sparse else expand(merged)


def _variants_arg(variants, flips):
    if flips is None:
        return variants
    if variants not in ("flips", None):
        raise ValueError(f"give variants or flips (its former name), not both: got "
                         f"variants={variants!r}, flips={flips!r}")
    return flips


class TTAModel:
    """Wraps a model (or an ensemble) so that ``detect`` merges its TTA runs.

    ``TTAModel(models, variants).detect(images)`` returns, per image,
    ``detect_tta(models, image, variants, ...)``; use it wherever a model is
    expected (``mrcnn.evaluation.report.evaluate``, prediction scripts).

    Args:
        model: a model with ``detect`` or a list of them.
        variants: as :func:`tta_variants` (``flips=``: its former name).
        iou_threshold, min_votes, mask_threshold: see :func:`merge_tta`.
    """

    def __init__(self, model, variants="flips", iou_threshold=0.5, min_votes=None,
                 mask_threshold=0.5, flips=None):
        self.models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not self.models:
            raise ValueError("TTAModel needs at least one model, got none")
        self.variants = tta_variants(_variants_arg(variants, flips))
        self.iou_threshold = iou_threshold
        self.min_votes = min_votes
        self.mask_threshold = mask_threshold
        self.config = getattr(self.models[0], "config", None)

    def detect(self, images, verbose=0, soft_masks=False, sparse=False):
        """One merged result per image (see :func:`detect_tta`)."""
        return [detect_tta(self.models, image, self.variants, self.iou_threshold,
                           self.min_votes, self.mask_threshold, soft_masks=soft_masks,
                           sparse=sparse) for image in images]
