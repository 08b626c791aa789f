"""The competition score of the 2018 Data Science Bowl and 2021 Sartorius challenge (NumPy).

For each IoU threshold ``t`` in 0.50, 0.55, ..., 0.95 a prediction and a
ground-truth object match when their mask IoU is STRICTLY greater than ``t``,
one to one; the image scores ``TP / (TP + FP + FN)`` at each threshold, and
the mean over thresholds. Class labels are ignored (except in the per-class
variants, which score each class's instances separately).

* :func:`map_iou` (one image), :func:`mean_map_iou` /
  :func:`map_iou_dataset` (mean over images),
  :func:`precision_recall_per_threshold` (the counts behind it) and
  :func:`map_iou_per_class`;
* :func:`matched_pairs` (the one-to-one matches at a threshold) and
  :func:`error_breakdown` (missed objects, false positives and the matched
  pairs' IoUs: what detection and what mask precision cost; with
  :func:`touches_border`, how many of the missed objects are cut by the image's edge);
* :func:`map_iou_from_ious` and :func:`map_iou_per_class_from_ious` score a
  precomputed ``[Ngt, Npred]`` IoU matrix (e.g. ``SparseMasks.iou``);
* :func:`iou_matrix` is the gt x prediction mask IoU
  (:func:`mrcnn.data.iou.mask_iou`).

Masks are bool ``[H, W, N]`` arrays, instances last, or an integer label
image ``[H, W]`` (0 = background, ``k`` = instance ``k``; its instances are
taken in increasing label order).
"""

import numpy as np

from mrcnn.data.iou import mask_iou
from mrcnn.evaluation.inputs import class_key

__all__ = [
    "DEFAULT_IOU_THRESHOLDS", "check_thresholds", "error_breakdown", "iou_matrix", "map_iou",
    "map_iou_dataset", "map_iou_from_ious", "map_iou_per_class",
    "map_iou_per_class_from_ious", "matched_pairs", "mean_map_iou",
    "precision_recall_per_threshold", "touches_border",
]

# Thresholds 0.50, 0.55, ..., 0.95 (the competitions' and COCO's). Written out
# (not ``np.arange(0.5, 1.0, 0.05)``, whose values drift by an ulp, e.g.
# 0.6000000000000001) so that an IoU of exactly 0.6 compares as expected.
DEFAULT_IOU_THRESHOLDS = np.array(
    [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])


def check_thresholds(thresholds, name="thresholds"):
    """float64 ``[T]`` IoU thresholds; :data:`DEFAULT_IOU_THRESHOLDS` for None.

    Raises:
        ValueError: if ``thresholds`` is empty.
    """
    thresholds = (DEFAULT_IOU_THRESHOLDS if thresholds is None
                  else np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if thresholds.size == 0:
        raise ValueError(f"{name} must not be empty.")
    return thresholds


def iou_matrix(gt_masks, pred_masks):
    """Mask IoU between every ground-truth and every predicted instance.

    Args:
        gt_masks: bool ``[H, W, Ngt]`` or integer label image ``[H, W]``.
        pred_masks: bool ``[H, W, Npred]`` or integer label image ``[H, W]``.

    Returns:
        float64 ``[Ngt, Npred]``. Empty masks have IoU 0 with everything.
    """
    return mask_iou(gt_masks, pred_masks, names=("gt_masks", "pred_masks"))


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------

def matched_pairs(ious, threshold=0.5):
    """The competition's one-to-one matches with ``IoU > threshold``.

    When every gt row and pred column has at most one candidate (always the
    case for thresholds >= 0.5 and non-overlapping instances), all candidates
    are matches. Otherwise pairs are taken greedily by decreasing IoU, each
    instance used at most once.

    Args:
        ious: ``[Ngt, Npred]`` IoUs.
        threshold: scalar.

    Returns:
        ``(gt_index, pred_index)``: int64 ``[K]`` arrays of the matched pairs,
        by increasing gt index.
    """
    ious = _check_ious(ious)
    matches = ious > threshold
    gi, pi = np.nonzero(matches)
    if (matches.sum(axis=0) <= 1).all() and (matches.sum(axis=1) <= 1).all():
        return gi.astype(np.int64), pi.astype(np.int64)
    order = np.argsort(-ious[gi, pi], kind="stable")
    used_gt = np.zeros(ious.shape[0], dtype=bool)
    used_pred = np.zeros(ious.shape[1], dtype=bool)
    keep = []
    for k in order:
        g, p = gi[k], pi[k]
        if not used_gt[g] and not used_pred[p]:
            used_gt[g] = used_pred[p] = True
            keep.append(k)
    keep = np.asarray(sorted(keep, key=lambda k: (gi[k], pi[k])), dtype=np.int64)
    return gi[keep].astype(np.int64), pi[keep].astype(np.int64)


def error_breakdown(ious, threshold=0.5, at_edge=None):
    """Where one image's score goes: detection errors at `threshold`, then mask precision.

    The competition score falls from its value at IoU 0.5 (every object found
    or not, every prediction real or not) to its value at 0.95 as matched
    masks fall short of each threshold: the counts at 0.5 say what detection
    costs, the IoUs of the matched pairs what the masks' precision costs.

    Args:
        ious: float ``[Ngt, Npred]`` mask IoUs.
        threshold: the IoU that makes a match (default 0.5, the competition's lowest).
        at_edge: optional bool ``[Ngt]``: which gt objects touch the image's
            border (:func:`touches_border`); objects cut by a tile's or the
            field of view's edge are the ones Mask R-CNN misses most.

    Returns:
        dict: ``n_gt``, ``n_pred``, ``matched`` (pairs with IoU > threshold,
        one to one), ``missed`` (gt without a match), ``false_positives``
        (predictions without a match) and ``matched_ious`` (float64 ``[matched]``,
        by increasing gt index); with `at_edge` also ``missed_at_edge`` (the
        missed gt objects that touch the border).
    """
    ious = _check_ious(ious)
    gi, pi = matched_pairs(ious, threshold)
    n_gt, n_pred = ious.shape
    errors = {"n_gt": int(n_gt), "n_pred": int(n_pred), "matched": int(gi.size),
              "missed": int(n_gt - gi.size), "false_positives": int(n_pred - gi.size),
              "matched_ious": ious[gi, pi]}
    if at_edge is not None:
        at_edge = np.asarray(at_edge)
        if at_edge.dtype != bool or at_edge.shape != (n_gt,):
            raise ValueError(f"at_edge must be a bool array of the {n_gt} gt objects "
                             f"([Ngt]), got {at_edge.dtype} {at_edge.shape}")
        missed = np.ones(n_gt, bool)
        missed[gi] = False
        errors["missed_at_edge"] = int(np.count_nonzero(missed & at_edge))
    return errors


def touches_border(boxes, shape):
    """bool ``[N]``: which boxes touch the border of a ``shape`` image.

    Args:
        boxes: int ``[N, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive
            (``SparseMasks.boxes``); empty boxes (``y2 <= y1`` or ``x2 <= x1``)
            touch nothing.
        shape: the image's ``(height, width)``.
    """
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, (y1, x1, y2, x2)], got shape {boxes.shape}")
    height, width = int(shape[0]), int(shape[1])
    y1, x1, y2, x2 = boxes.T
    touching = (y1 <= 0) | (x1 <= 0) | (y2 >= height) | (x2 >= width)
    return touching & (y2 > y1) & (x2 > x1)


def _counts_from_ious(ious, thresholds):
    """TP/FP/FN counts and derived rates from an ``[Ngt, Npred]`` IoU matrix."""
    n_gt, n_pred = ious.shape
    tp = np.array([matched_pairs(ious, t)[0].size for t in thresholds], dtype=np.int64)
    fp = n_pred - tp
    fn = n_gt - tp
    denom = tp + fp + fn
    # Empty image predicted empty: every threshold is perfect.
    score = np.where(denom > 0, tp / np.maximum(denom, 1), 1.0)
    precision = np.divide(tp, tp + fp, out=np.full(tp.shape, np.nan),
                          where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.full(tp.shape, np.nan),
                       where=(tp + fn) > 0)
    return {"thresholds": thresholds, "tp": tp, "fp": fp, "fn": fn,
            "precision": precision, "recall": recall, "score": score}


def _check_ious(ious):
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2:
        raise ValueError(f"ious must be a [Ngt, Npred] matrix, got shape {ious.shape}.")
    return ious


# ---------------------------------------------------------------------------
# From masks
# ---------------------------------------------------------------------------

def precision_recall_per_threshold(gt_masks, pred_masks, thresholds=None):
    """Competition counts for one image at each IoU threshold.

    A prediction and a gt object match when their mask IoU is strictly
    greater than the threshold; each object is matched at most once. Class
    labels are ignored.

    Args:
        gt_masks: bool ``[H, W, Ngt]`` or integer label image ``[H, W]``
            (0 = background).
        pred_masks: bool ``[H, W, Npred]`` or integer label image ``[H, W]``.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        dict of ``[T]`` arrays: ``thresholds``; int ``tp``, ``fp``, ``fn``;
        float ``precision = tp / (tp + fp)`` and ``recall = tp / (tp + fn)``
        (NaN where the denominator is 0); float
        ``score = tp / (tp + fp + fn)`` (1.0 when the image has neither gt nor
        predictions).
    """
    thresholds = check_thresholds(thresholds)
    return _counts_from_ious(iou_matrix(gt_masks, pred_masks), thresholds)


def map_iou(gt_masks, pred_masks, thresholds=None):
    """Competition score of one image: mean over thresholds of TP/(TP+FP+FN).

    This is the metric of the 2018 Data Science Bowl and the 2021 Sartorius
    cell-instance-segmentation challenge. Matches need IoU strictly greater
    than the threshold and are one-to-one; class labels are ignored.

    Empty cases: no gt and no predictions -> 1.0 (the image is predicted
    perfectly); gt but no predictions -> 0.0; predictions but no gt -> 0.0.

    Args:
        gt_masks: bool ``[H, W, Ngt]`` (``Ngt`` may be 0) or integer label
            image ``[H, W]`` (0 = background, ``k`` = instance ``k``; a 2-D
            input is always read as a label image).
        pred_masks: bool ``[H, W, Npred]`` or integer label image ``[H, W]``.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        float in [0, 1].
    """
    counts = precision_recall_per_threshold(gt_masks, pred_masks, thresholds)
    return float(np.mean(counts["score"]))


def mean_map_iou(gt_list, pred_list, thresholds=None):
    """Dataset competition score: :func:`map_iou` averaged over images.

    Args:
        gt_list: sequence of per-image gt masks (``[H, W, N]`` bool or
            ``[H, W]`` label images; sizes may differ between images).
        pred_list: sequence of the matching predicted masks, same length.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        float, the unweighted mean of the per-image scores.
    """
    gt_list, pred_list = list(gt_list), list(pred_list)
    if len(gt_list) != len(pred_list):
        raise ValueError(
            f"gt_list has {len(gt_list)} images but pred_list has "
            f"{len(pred_list)}.")
    if not gt_list:
        raise ValueError("mean_map_iou needs at least one image, got none.")
    return float(np.mean([map_iou(g, p, thresholds)
                          for g, p in zip(gt_list, pred_list)]))


def map_iou_dataset(pairs, thresholds=None):
    """:func:`mean_map_iou` over an iterable of ``(gt_masks, pred_masks)`` pairs.

    Args:
        pairs: iterable of ``(gt_masks, pred_masks)`` tuples, one per image.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        float, the mean per-image score.
    """
    pairs = list(pairs)
    return mean_map_iou([p[0] for p in pairs], [p[1] for p in pairs],
                        thresholds)


def map_iou_per_class(gt_masks, gt_class_ids, pred_masks, pred_class_ids,
                      class_names=None, thresholds=None):
    """Competition score computed separately on the instances of each class.

    For every class id present in the gt or in the predictions, the image is
    scored by :func:`map_iou` on that class's gt and predicted instances only.

    Args:
        gt_masks: bool ``[H, W, Ngt]`` or integer label image ``[H, W]``
            (instances in increasing label order).
        gt_class_ids: int ``[Ngt]``, class of each gt instance.
        pred_masks: bool ``[H, W, Npred]`` or integer label image ``[H, W]``.
        pred_class_ids: int ``[Npred]``.
        class_names: optional names used as dict keys: a sequence indexed by
            class id (e.g. ``Dataset.class_names``) or a mapping id -> name.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        dict ``{class id or name: float score}``, in increasing class id.
    """
    thresholds = check_thresholds(thresholds)
    ious = iou_matrix(gt_masks, pred_masks)
    gt_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_ids = np.asarray(pred_class_ids).reshape(-1)
    for name, ids, count in (("gt", gt_ids, ious.shape[0]), ("pred", pred_ids, ious.shape[1])):
        if ids.shape[0] != count:
            raise ValueError(
                f"{name}_class_ids has {ids.shape[0]} entries but {name}_masks "
                f"holds {count} instances.")
    return map_iou_per_class_from_ious(ious, gt_ids, pred_ids, class_names, thresholds)


# ---------------------------------------------------------------------------
# From a precomputed IoU matrix
# ---------------------------------------------------------------------------

def map_iou_from_ious(ious, thresholds=None):
    """:func:`map_iou` of one image from its gt x prediction IoU matrix.

    Useful when the IoUs come from elsewhere (e.g. sparse masks,
    ``mrcnn.data.masks.sparse.SparseMasks.iou``) or are reused across settings.

    Args:
        ious: float ``[Ngt, Npred]`` mask IoUs (either side may be 0).
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        float in [0, 1]; 1.0 for an image with neither gt nor predictions.
    """
    counts = _counts_from_ious(_check_ious(ious), check_thresholds(thresholds))
    return float(np.mean(counts["score"]))


def map_iou_per_class_from_ious(ious, gt_class_ids, pred_class_ids,
                                class_names=None, thresholds=None):
    """:func:`map_iou_per_class` from a precomputed IoU matrix.

    Args:
        ious: float ``[Ngt, Npred]`` mask IoUs.
        gt_class_ids: int ``[Ngt]``.
        pred_class_ids: int ``[Npred]``.
        class_names: optional names used as dict keys: a sequence indexed by
            class id or a mapping id -> name.
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        dict ``{class id or name: float score}`` for every class present in
        the gt or the predictions, in increasing class id.
    """
    ious = _check_ious(ious)
    thresholds = check_thresholds(thresholds)
    gt_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_ids = np.asarray(pred_class_ids).reshape(-1)
    if ious.shape != (gt_ids.shape[0], pred_ids.shape[0]):
        raise ValueError(
            f"ious has shape {ious.shape} but there are {gt_ids.shape[0]} gt and "
            f"{pred_ids.shape[0]} predicted class ids.")
    result = {}
    for class_id in np.union1d(gt_ids, pred_ids):
        sub = ious[np.ix_(gt_ids == class_id, pred_ids == class_id)]
        score = float(np.mean(_counts_from_ious(sub, thresholds)["score"]))
        result[class_key(class_id, class_names)] = score
    return result
