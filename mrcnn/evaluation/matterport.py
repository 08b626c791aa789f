"""Matterport's detection metrics, kept name-for-name (NumPy).

:func:`trim_zeros`, :func:`compute_matches`, :func:`compute_ap`,
:func:`compute_ap_range` and :func:`compute_recall` behave as in
Matterport's ``mrcnn/utils.py``: matching uses mask ``IoU >= threshold``
and requires equal class ids; AP is VOC-style all-point interpolated.

Boxes are pixel ``[N, (y1, x1, y2, x2)]`` with y2/x2 exclusive; all-zero box
rows are padding. Masks are bool ``[H, W, N]``, instances last. IoUs come
from :mod:`mrcnn.data.iou`.
"""

import numpy as np

from mrcnn.data.iou import box_iou, mask_iou
from mrcnn.evaluation.competition import check_thresholds

__all__ = ["trim_zeros", "compute_matches", "compute_ap", "compute_ap_range",
           "compute_recall"]


def _check_boxes(boxes, name):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape [N, (y1, x1, y2, x2)], got {boxes.shape}.")
    return boxes


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
    overlaps = mask_iou(pred_masks, gt_masks, names=("pred_masks", "gt_masks"))[order]
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
    thresholds = check_thresholds(iou_thresholds, "iou_thresholds")
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
    overlaps = box_iou(pred_boxes, gt_boxes)
    positive_ids = np.flatnonzero(overlaps.max(axis=1) >= iou)
    matched = np.unique(overlaps.argmax(axis=1)[positive_ids])
    return matched.size / gt_boxes.shape[0], positive_ids
