"""Evaluation metrics for instance segmentation (NumPy).

Two families live here:

* Matterport's detection metrics, kept name-for-name for compatibility:
  :func:`trim_zeros`, :func:`compute_matches`, :func:`compute_ap`,
  :func:`compute_ap_range` and :func:`compute_recall`. Matching uses
  ``IoU >= threshold`` and requires equal class ids; AP is VOC-style
  all-point interpolated.
* The competition score of the 2018 Data Science Bowl and the 2021
  Sartorius cell-segmentation challenge: :func:`map_iou` (one image),
  :func:`mean_map_iou` / :func:`map_iou_dataset` (mean over images),
  :func:`precision_recall_per_threshold` (the counts behind it) and
  :func:`map_iou_per_class`; :func:`map_iou_from_ious` and
  :func:`map_iou_per_class_from_ious` score a precomputed IoU matrix.
  Matching uses ``IoU > threshold`` (strictly greater) and ignores class
  labels.

COCO box and mask AP (pycocotools) and ``evaluate(model, dataset)`` are in
:mod:`mrcnn.evaluation.report`.

Masks are bool ``[H, W, N]`` arrays, instances last. The competition
functions also accept an integer label image ``[H, W]`` (0 = background,
``k`` = instance ``k``); its instances are taken in increasing label order.

Mask IoUs are computed as a sparse matrix product of the flattened masks, so
memory grows with the number of foreground pixels, not with ``H * W * N``.
"""

import numpy as np
import scipy.sparse

# Competition thresholds 0.50, 0.55, ..., 0.95. Written out (not
# ``np.arange(0.5, 1.0, 0.05)``, whose values drift by an ulp, e.g.
# 0.6000000000000001) so that an IoU of exactly 0.6 compares as expected.
DEFAULT_IOU_THRESHOLDS = np.array(
    [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])


# ---------------------------------------------------------------------------
# Input checking and IoU matrices
# ---------------------------------------------------------------------------

def _as_instance_masks(masks, name):
    """Validates a mask argument and returns it as bool ``[H, W, N]`` or int ``[H, W]``.

    Args:
        masks: bool (or 0/1 numeric) array ``[H, W, N]``, or an integer / bool
            label image ``[H, W]`` (0 = background).
        name: argument name used in error messages.

    Returns:
        ``masks`` as a bool ``[H, W, N]`` array or an integer ``[H, W]`` array.
    """
    masks = np.asarray(masks)
    if masks.ndim == 3:
        return masks if masks.dtype == bool else masks != 0
    if masks.ndim == 2:
        if masks.dtype == bool:
            return masks.astype(np.int64)
        if not np.issubdtype(masks.dtype, np.integer):
            raise TypeError(
                f"{name}: a 2-D label image must have an integer dtype, got "
                f"{masks.dtype}; pass instance masks as bool [H, W, N].")
        if masks.size and masks.min() < 0:
            raise ValueError(
                f"{name}: label image values must be >= 0 (0 = background), "
                f"got minimum {masks.min()}.")
        return masks
    raise ValueError(
        f"{name} must be bool masks [H, W, N] or a label image [H, W], got "
        f"shape {masks.shape}.")


def _instance_matrix(masks):
    """Flattens instance masks into a sparse ``[N, H*W]`` 0/1 matrix.

    Args:
        masks: output of :func:`_as_instance_masks` (bool ``[H, W, N]`` or
            integer label image ``[H, W]``).

    Returns:
        Tuple ``(matrix, areas)``: ``scipy.sparse.csr_matrix`` of shape
        ``[N, H*W]`` (float64 ones on the instance's pixels) and float64
        ``[N]`` pixel counts.
    """
    if masks.ndim == 3:
        h, w, n = masks.shape
        pixels, instances = np.nonzero(masks.reshape(h * w, n))
    else:
        h, w = masks.shape
        flat = masks.reshape(-1)
        pixels = np.flatnonzero(flat)
        labels, instances = np.unique(flat[pixels], return_inverse=True)
        n = labels.size
    matrix = scipy.sparse.csr_matrix(
        (np.ones(pixels.size), (instances, pixels)), shape=(n, h * w))
    areas = np.bincount(instances, minlength=n).astype(np.float64)
    return matrix, areas


def _num_instances(masks):
    """Number of instances in the output of :func:`_as_instance_masks`."""
    if masks.ndim == 3:
        return masks.shape[2]
    return np.unique(masks[masks > 0]).size


def _mask_iou_matrix(masks1, masks2):
    """IoU between every pair of instances of two mask sets.

    Args:
        masks1: bool ``[H, W, N1]`` or integer label image ``[H, W]``.
        masks2: bool ``[H, W, N2]`` or integer label image ``[H, W]``.

    Returns:
        float64 ``[N1, N2]``. A pair whose union is empty (two empty masks)
        has IoU 0.
    """
    if masks1.shape[:2] != masks2.shape[:2]:
        raise ValueError(
            f"Masks must share their height and width, got {masks1.shape} "
            f"and {masks2.shape}.")
    m1, area1 = _instance_matrix(masks1)
    m2, area2 = _instance_matrix(masks2)
    if m1.shape[0] == 0 or m2.shape[0] == 0:
        return np.zeros((m1.shape[0], m2.shape[0]))
    inter = (m1 @ m2.T).toarray()
    union = area1[:, None] + area2[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _box_iou_matrix(boxes1, boxes2):
    """IoU between every pair of pixel boxes.

    Args:
        boxes1: ``[N1, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive.
        boxes2: ``[N2, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive.

    Returns:
        float64 ``[N1, N2]``; 0 where the union is empty.
    """
    b1 = np.asarray(boxes1, dtype=np.float64)[:, None, :]
    b2 = np.asarray(boxes2, dtype=np.float64)[None, :, :]
    ih = np.clip(np.minimum(b1[..., 2], b2[..., 2])
                 - np.maximum(b1[..., 0], b2[..., 0]), 0, None)
    iw = np.clip(np.minimum(b1[..., 3], b2[..., 3])
                 - np.maximum(b1[..., 1], b2[..., 1]), 0, None)
    inter = ih * iw
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _check_boxes(boxes, name):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape [N, (y1, x1, y2, x2)], got {boxes.shape}.")
    return boxes


def iou_matrix(gt_masks, pred_masks):
    """Mask IoU between every ground-truth and every predicted instance.

    Args:
        gt_masks: bool ``[H, W, Ngt]`` or integer label image ``[H, W]``.
        pred_masks: bool ``[H, W, Npred]`` or integer label image ``[H, W]``.

    Returns:
        float64 ``[Ngt, Npred]``. Empty masks have IoU 0 with everything.
    """
    return _mask_iou_matrix(_as_instance_masks(gt_masks, "gt_masks"),
                            _as_instance_masks(pred_masks, "pred_masks"))


# ---------------------------------------------------------------------------
# Matterport detection metrics
# ---------------------------------------------------------------------------

def trim_zeros(x):
    """Drops the all-zero rows of a 2-D array (the padding of box tensors).

    Args:
        x: ``[N, C]`` array, e.g. boxes ``[N, (y1, x1, y2, x2)]``.

    Returns:
        ``[M, C]`` array, ``M <= N``: the rows with at least one non-zero value,
        in their original order.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros expects a 2-D array, got shape {x.shape}.")
    return x[~np.all(x == 0, axis=1)]


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Greedily matches predictions to ground truth by mask IoU (Matterport).

    All-zero rows of ``gt_boxes`` / ``pred_boxes`` are padding and are dropped
    with their masks, class ids and scores. Predictions are then sorted by
    score, descending; each prediction in turn takes the unmatched ground
    truth instance of the same class with the highest mask IoU, provided that
    IoU is ``>= iou_threshold`` and ``>= score_threshold``. (As in Matterport,
    ``score_threshold`` is compared with IoU values, not with prediction
    scores; its default 0 disables it.) Ties go to the lower gt index.

    Args:
        gt_boxes: ``[Ngt, (y1, x1, y2, x2)]`` pixel boxes (zero rows = padding).
        gt_class_ids: int ``[Ngt]``.
        gt_masks: bool ``[H, W, Ngt]``.
        pred_boxes: ``[Npred, (y1, x1, y2, x2)]`` pixel boxes (zero rows =
            padding).
        pred_class_ids: int ``[Npred]``.
        pred_scores: float ``[Npred]``.
        pred_masks: bool ``[H, W, Npred]``.
        iou_threshold: minimum IoU of a match.
        score_threshold: minimum IoU of a candidate (Matterport's name).

    Returns:
        Tuple ``(gt_match, pred_match, overlaps)``, all referring to the
        predictions in SCORE-SORTED order (highest score first) and to the
        ground truth in input order (after padding removal):

        * ``gt_match``: int ``[Ngt]``, index of the matched sorted prediction,
          or -1.
        * ``pred_match``: int ``[Npred]``, for the i-th highest-scoring
          prediction the index of its matched gt instance, or -1.
        * ``overlaps``: float ``[Npred, Ngt]`` mask IoUs, rows in sorted order.
    """
    gt_boxes = _check_boxes(gt_boxes, "gt_boxes")
    pred_boxes = _check_boxes(pred_boxes, "pred_boxes")
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)
    pred_scores = np.asarray(pred_scores).reshape(-1)
    gt_masks = np.asarray(gt_masks)
    pred_masks = np.asarray(pred_masks)
    for name, masks in (("gt_masks", gt_masks), ("pred_masks", pred_masks)):
        if masks.ndim != 3:
            raise ValueError(f"{name} must be [H, W, N], got shape {masks.shape}.")
    n_gt, n_pred = gt_boxes.shape[0], pred_boxes.shape[0]
    for name, arr, n in (("gt_class_ids", gt_class_ids, n_gt),
                         ("gt_masks", gt_masks, n_gt),
                         ("pred_class_ids", pred_class_ids, n_pred),
                         ("pred_scores", pred_scores, n_pred),
                         ("pred_masks", pred_masks, n_pred)):
        count = arr.shape[-1] if arr.ndim == 3 else arr.shape[0]
        if count != n:
            raise ValueError(
                f"{name} holds {count} instances but the boxes hold {n}.")

    gt_keep = ~np.all(gt_boxes == 0, axis=1)
    pred_keep = ~np.all(pred_boxes == 0, axis=1)
    # Slice masks only when there is padding: copying [H, W, N] is costly.
    if not gt_keep.all():
        gt_masks = gt_masks[..., gt_keep]
    if not pred_keep.all():
        pred_masks = pred_masks[..., pred_keep]
    gt_class_ids = gt_class_ids[gt_keep]
    order = np.argsort(-pred_scores[pred_keep], kind="stable")
    pred_class_ids = pred_class_ids[pred_keep][order]
    overlaps = _mask_iou_matrix(_as_instance_masks(pred_masks, "pred_masks"),
                                _as_instance_masks(gt_masks, "gt_masks"))[order]
    candidates = ((pred_class_ids[:, None] == gt_class_ids[None, :])
                  & (overlaps >= iou_threshold)
                  & (overlaps >= score_threshold))
    gt_match = np.full(gt_class_ids.shape[0], -1, dtype=np.int64)
    pred_match = np.full(pred_class_ids.shape[0], -1, dtype=np.int64)
    # Sequential by nature: each prediction sees what higher scores took.
    for i in np.flatnonzero(candidates.any(axis=1)):
        free = candidates[i] & (gt_match < 0)
        if free.any():
            j = int(np.argmax(np.where(free, overlaps[i], -1.0)))
            gt_match[j] = i
            pred_match[i] = j
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision at one IoU threshold (VOC all-point interpolation).

    Precision and recall are taken after each prediction in score order,
    padded to ``precisions = [0, p..., 0]``, ``recalls = [0, r..., 1]``;
    precision is made non-increasing from the right, and AP is the sum of
    precision times the recall step wherever recall changes.

    Empty cases: no ground truth and no predictions gives AP 1.0 (nothing to
    find, nothing wrong), with ``precisions = [1, 1]``, ``recalls = [0, 1]``;
    predictions without ground truth give AP 0.0 (recall curve all 0 then 1,
    precision 0); ground truth without predictions gives AP 0.0.

    Args:
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids,
        pred_scores, pred_masks: as in :func:`compute_matches`.
        iou_threshold: minimum mask IoU of a true positive.

    Returns:
        Tuple ``(mAP, precisions, recalls, overlaps)``: float AP,
        ``[Npred + 2]`` interpolated precisions and recalls, and the
        ``[Npred, Ngt]`` IoUs with predictions in score-sorted order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks, iou_threshold)
    n_gt, n_pred = gt_match.shape[0], pred_match.shape[0]
    if n_gt == 0 and n_pred == 0:
        return 1.0, np.array([1.0, 1.0]), np.array([0.0, 1.0]), overlaps
    hits = np.cumsum(pred_match > -1)
    precisions = hits / np.arange(1, n_pred + 1)
    recalls = hits / n_gt if n_gt else np.zeros(n_pred)
    precisions = np.concatenate([[0.0], precisions, [0.0]])
    recalls = np.concatenate([[0.0], recalls, [1.0]])
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.flatnonzero(recalls[:-1] != recalls[1:]) + 1
    ap = float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over several IoU thresholds (COCO-style).

    Args:
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
        pred_mask: as in :func:`compute_matches`.
        iou_thresholds: 1-D thresholds; default 0.50, 0.55, ..., 0.95.
        verbose: if truthy, print the AP at each threshold and the mean.

    Returns:
        float, the mean AP.
    """
    thresholds = (DEFAULT_IOU_THRESHOLDS if iou_thresholds is None
                  else np.asarray(iou_thresholds, dtype=np.float64).reshape(-1))
    if thresholds.size == 0:
        raise ValueError("iou_thresholds must not be empty.")
    aps = []
    for t in thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask,
                        pred_box, pred_class_id, pred_score, pred_mask,
                        iou_threshold=t)[0]
        if verbose:
            print(f"AP @{t:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = float(np.mean(aps))
    if verbose:
        print(f"AP @{thresholds[0]:.2f}-{thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Fraction of ground-truth boxes found by some prediction (box IoU).

    Each prediction is assigned to the gt box it overlaps most; it is positive
    when that IoU is ``>= iou``. Recall is the number of distinct gt boxes hit
    by positive predictions over the number of gt boxes.

    Args:
        pred_boxes: ``[Npred, (y1, x1, y2, x2)]`` pixel boxes.
        gt_boxes: ``[Ngt, (y1, x1, y2, x2)]`` pixel boxes.
        iou: IoU threshold.

    Returns:
        Tuple ``(recall, positive_ids)``: float recall (1.0 when there are no
        gt boxes: nothing was missed) and int ``[P]`` indices of the positive
        predictions.
    """
    pred_boxes = _check_boxes(pred_boxes, "pred_boxes")
    gt_boxes = _check_boxes(gt_boxes, "gt_boxes")
    if gt_boxes.shape[0] == 0:
        return 1.0, np.zeros(0, dtype=np.int64)
    if pred_boxes.shape[0] == 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    overlaps = _box_iou_matrix(pred_boxes, gt_boxes)
    positive_ids = np.flatnonzero(overlaps.max(axis=1) >= iou)
    matched = np.unique(overlaps.argmax(axis=1)[positive_ids])
    return matched.size / gt_boxes.shape[0], positive_ids


# ---------------------------------------------------------------------------
# Competition score (DSB 2018 / Sartorius 2021)
# ---------------------------------------------------------------------------

def _true_positives(ious, threshold):
    """One-to-one matches with ``IoU > threshold``.

    When every gt row and pred column has at most one candidate (always the
    case for thresholds >= 0.5 and non-overlapping instances), all candidates
    are matches. Otherwise pairs are taken greedily by decreasing IoU, each
    instance used at most once.

    Args:
        ious: ``[Ngt, Npred]`` IoUs.
        threshold: scalar.

    Returns:
        int, the number of matched pairs.
    """
    matches = ious > threshold
    if (matches.sum(axis=0) <= 1).all() and (matches.sum(axis=1) <= 1).all():
        return int(matches.sum())
    gi, pi = np.nonzero(matches)
    order = np.argsort(-ious[gi, pi], kind="stable")
    used_gt = np.zeros(ious.shape[0], dtype=bool)
    used_pred = np.zeros(ious.shape[1], dtype=bool)
    tp = 0
    for g, p in zip(gi[order], pi[order]):
        if not used_gt[g] and not used_pred[p]:
            used_gt[g] = used_pred[p] = True
            tp += 1
    return tp


def _check_thresholds(thresholds):
    thresholds = (DEFAULT_IOU_THRESHOLDS if thresholds is None
                  else np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if thresholds.size == 0:
        raise ValueError("thresholds must not be empty.")
    return thresholds


def _counts_from_ious(ious, thresholds):
    """TP/FP/FN counts and derived rates from an ``[Ngt, Npred]`` IoU matrix."""
    n_gt, n_pred = ious.shape
    tp = np.array([_true_positives(ious, t) for t in thresholds], dtype=np.int64)
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
    thresholds = _check_thresholds(thresholds)
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
    thresholds = _check_thresholds(thresholds)
    gt = _as_instance_masks(gt_masks, "gt_masks")
    pred = _as_instance_masks(pred_masks, "pred_masks")
    gt_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_ids = np.asarray(pred_class_ids).reshape(-1)
    for name, masks, ids in (("gt", gt, gt_ids), ("pred", pred, pred_ids)):
        n = _num_instances(masks)
        if ids.shape[0] != n:
            raise ValueError(
                f"{name}_class_ids has {ids.shape[0]} entries but {name}_masks "
                f"holds {n} instances.")
    return map_iou_per_class_from_ious(_mask_iou_matrix(gt, pred), gt_ids, pred_ids,
                                       class_names, thresholds)


# ---------------------------------------------------------------------------
# Competition score from a precomputed IoU matrix
# ---------------------------------------------------------------------------

def _check_ious(ious):
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2:
        raise ValueError(f"ious must be a [Ngt, Npred] matrix, got shape {ious.shape}.")
    return ious


def map_iou_from_ious(ious, thresholds=None):
    """:func:`map_iou` of one image from its gt x prediction IoU matrix.

    Useful when the IoUs come from elsewhere (e.g. sparse masks,
    ``mrcnn.inference.postprocess.SparseMasks.iou``) or are reused across settings.

    Args:
        ious: float ``[Ngt, Npred]`` mask IoUs (either side may be 0).
        thresholds: 1-D IoU thresholds; default 0.50, 0.55, ..., 0.95.

    Returns:
        float in [0, 1]; 1.0 for an image with neither gt nor predictions.
    """
    counts = _counts_from_ious(_check_ious(ious), _check_thresholds(thresholds))
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
    thresholds = _check_thresholds(thresholds)
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
        key = int(class_id)
        if class_names is not None:
            try:
                key = class_names[key]
            except (IndexError, KeyError):
                raise ValueError(
                    f"class_names has no entry for class id {key}.") from None
        result[key] = score
    return result

