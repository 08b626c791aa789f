"""Test-time augmentation and ensembles of detection results (NumPy).

:func:`flip_tta` runs a model (or several, an ensemble) on flipped copies of
an image and maps the detections back to the original frame;
:func:`merge_tta` merges those results into one by mask-IoU clustering and
voting; :func:`detect_tta` does both, and :class:`TTAModel` wraps a model so
that its ``detect`` does them::

    from mrcnn.inference.tta import TTAModel
    tta = TTAModel([model_fold0, model_fold1], flips=("none", "lr", "ud"))
    result = tta.detect([image])[0]

Results are ``detect()`` dicts (see `mrcnn.inference.results`); flips are named as in
:data:`FLIPS`. These names are also importable from `mrcnn.inference.postprocess`.
"""

import math

import numpy as np
import scipy.sparse

from mrcnn.data.masks.sparse import FLIPS, SparseMasks, check_flip, run_starts
from mrcnn.inference.results import from_state, score_order, select_state, to_state

__all__ = ["FLIPS", "flip_image", "flip_result", "flip_tta", "merge_tta", "detect_tta",
           "TTAModel"]


def flip_image(image, flip):
    """Flips an ``[H, W, ...]`` image: ``"lr"`` columns, ``"ud"`` rows, ``"lrud"`` both."""
    check_flip(flip)
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
    check_flip(flip)
    state, dense = to_state(result)
    height, width = state["masks"].shape
    rois = state["rois"].copy()
    if "lr" in flip:
        rois[:, [1, 3]] = width - state["rois"][:, [3, 1]]
    if "ud" in flip:
        rois[:, [0, 2]] = height - state["rois"][:, [2, 0]]
    state = dict(state, rois=rois, masks=state["masks"].flip(flip),
                 soft=None if state["soft"] is None else state["soft"].flip(flip))
    return from_state(state, dense)


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
        check_flip(flip)
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


def detect_tta(model, image, flips=("none", "lr", "ud"), iou_threshold=0.5,
               min_votes=None, mask_threshold=0.5):
    """:func:`flip_tta` followed by :func:`merge_tta` (one image)."""
    return merge_tta(flip_tta(model, image, flips), iou_threshold=iou_threshold,
                     min_votes=min_votes, mask_threshold=mask_threshold)


class TTAModel:
    """Wraps a model (or an ensemble) so that ``detect`` merges flipped runs.

    ``TTAModel(models, flips).detect(images)`` returns, per image,
    ``merge_tta(flip_tta(models, image, flips), ...)``; use it wherever a
    model is expected (``mrcnn.evaluation.report.evaluate``, prediction scripts).

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
            check_flip(flip)
        self.flips = tuple(flips)
        self.iou_threshold = iou_threshold
        self.min_votes = min_votes
        self.mask_threshold = mask_threshold
        self.config = getattr(self.models[0], "config", None)

    def detect(self, images, verbose=0):
        """One merged result per image (see :func:`detect_tta`)."""
        return [detect_tta(self.models, image, self.flips, self.iou_threshold,
                           self.min_votes, self.mask_threshold) for image in images]
