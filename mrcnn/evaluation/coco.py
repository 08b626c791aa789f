"""COCO mask and box AP of predictions held in memory (pycocotools).

    out = coco_ap(gt_list, pred_list, class_names=dataset.class_names)
    out["mask"]["AP"], out["box"]["AP50"], out["mask"]["per_class"]

Ground truth items are ``(masks, class_ids)`` pairs or dicts, predictions
``detect()`` results (see :mod:`mrcnn.evaluation.inputs`). Boxes handed to
pycocotools are ``[x, y, w, h]`` converted from pixel ``(y1, x1, y2, x2)``
with y2/x2 exclusive.
"""

import contextlib
import io

import numpy as np

from mrcnn.datasets.coco import coco_index
from mrcnn.evaluation.inputs import as_ground_truth, as_prediction, class_key

__all__ = ["AP_KEYS", "DEFAULT_MAX_DETS", "coco_ap", "coco_rles"]

# COCO keeps at most 100 detections per image and class by default; cell
# images hold hundreds of instances, so the default here is larger.
DEFAULT_MAX_DETS = 1000
# The summary values of each kind ("mask", "box").
AP_KEYS = ("AP", "AP50", "AP75")


def coco_rles(masks):
    """pycocotools RLEs of SparseMasks (``mask.encode`` of a Fortran uint8 array)."""
    from pycocotools import mask as mask_utils

    height, width = masks.shape
    if masks.count == 0:
        return []
    planes = np.zeros((masks.count, width, height), np.uint8)
    ys, xs = np.divmod(masks.pixel, width)
    planes[masks.instance, xs, ys] = 1
    # [N, W, H] C-ordered, transposed: a Fortran-ordered [H, W, N] view.
    return mask_utils.encode(planes.transpose(2, 1, 0))


def _xywh(boxes):
    """``[N, (x, y, w, h)]`` float64 of pixel ``[N, (y1, x1, y2, x2)]`` boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1],
                     boxes[:, 2] - boxes[:, 0]], axis=1)


def _coco_summary(coco_eval, cat_ids, class_names):
    """AP / AP50 / AP75 overall and per category from an accumulated COCOeval."""
    precision = coco_eval.eval["precision"][:, :, :, 0, -1]      # [T, R, K], area all
    thresholds = coco_eval.params.iouThrs

    def mean(values):
        values = values[values > -1]
        return float(values.mean()) if values.size else float("nan")

    picks = {"AP": slice(None),
             "AP50": np.flatnonzero(np.isclose(thresholds, 0.5)),
             "AP75": np.flatnonzero(np.isclose(thresholds, 0.75))}
    out = {key: mean(precision[pick]) for key, pick in picks.items()}
    out["per_class"] = {
        class_key(c, class_names): {key: mean(precision[pick][:, :, k])
                                    for key, pick in picks.items()}
        for k, c in enumerate(cat_ids)}
    return out


def coco_ap(gt_list, pred_list, class_names=None, max_dets=DEFAULT_MAX_DETS):
    """COCO mask and box AP of predictions, computed by pycocotools.

    Each image's ground truth and predictions are converted to COCO
    annotations in memory (masks as pycocotools RLE, boxes ``[x, y, w, h]``:
    gt boxes are the masks' tight boxes, predicted boxes the ``rois``), then
    ``COCOeval`` runs with ``iouType`` ``"segm"`` and ``"bbox"``. AP is the
    mean precision over IoU 0.50:0.95, recall points and categories (area
    "all"), as ``COCOeval.summarize`` reports it, with ``maxDets = [1, 10,
    max_dets]``.

    Args:
        gt_list: per-image ground truth (see :mod:`mrcnn.evaluation.inputs`).
        pred_list: per-image detect() results, same length.
        class_names: optional names (``Dataset.class_names`` or ``{id: name}``)
            for the ``per_class`` keys.
        max_dets: detections kept per image and class (highest scores).

    Returns:
        dict ``{"mask": summary, "box": summary}``; a summary holds ``AP``,
        ``AP50``, ``AP75`` (NaN when no category has ground truth) and
        ``per_class`` ``{class: {"AP", "AP50", "AP75"}}``.
    """
    from pycocotools.cocoeval import COCOeval

    gt_list, pred_list = list(gt_list), list(pred_list)
    if len(gt_list) != len(pred_list):
        raise ValueError(f"gt_list has {len(gt_list)} images but pred_list has "
                         f"{len(pred_list)}")
    max_dets = int(max_dets)
    if max_dets < 1:
        raise ValueError(f"max_dets must be >= 1, got {max_dets}")
    images, gt_anns, dt_anns = [], [], []
    for k, (gt, pred) in enumerate(zip(gt_list, pred_list)):
        gt_masks, gt_ids = as_ground_truth(gt, f"gt_list[{k}]")
        pred = as_prediction(pred, f"pred_list[{k}]")
        if pred["masks"].shape != gt_masks.shape:
            raise ValueError(f"image {k}: predictions are {pred['masks'].shape}, ground "
                             f"truth {gt_masks.shape}")
        height, width = gt_masks.shape
        images.append({"id": k + 1, "height": height, "width": width})
        for anns, masks, ids, boxes, scores in (
                (gt_anns, gt_masks, gt_ids, gt_masks.boxes(), None),
                (dt_anns, pred["masks"], pred["class_ids"], pred["rois"],
                 pred["scores"])):
            rles, areas, xywh = coco_rles(masks), masks.areas(), _xywh(boxes)
            for n in range(masks.count):
                ann = {"id": len(anns) + 1, "image_id": k + 1,
                       "category_id": int(ids[n]), "segmentation": rles[n],
                       "area": float(areas[n]), "bbox": xywh[n].tolist(),
                       "iscrowd": 0}
                if scores is not None:
                    ann["score"] = float(scores[n])
                anns.append(ann)
    cat_ids = sorted({a["category_id"] for a in gt_anns + dt_anns})
    categories = [{"id": c, "name": str(class_key(c, class_names))} for c in cat_ids]
    out = {}
    for key, iou_type in (("mask", "segm"), ("box", "bbox")):
        if not gt_anns:
            out[key] = {k: float("nan") for k in AP_KEYS}
            out[key]["per_class"] = {}
            continue
        coco_gt = coco_index({"images": images, "categories": categories,
                              "annotations": gt_anns})
        coco_dt = coco_index({"images": images, "categories": categories,
                              "annotations": dt_anns})
        coco_eval = COCOeval(coco_gt, coco_dt, iou_type)
        coco_eval.params.maxDets = [1, 10, max_dets]
        # Only the "all" area range is reported; the small/medium/large
        # ranges would triple the (pure Python) per-image matching time.
        coco_eval.params.areaRng = [[0, 1e10]]
        coco_eval.params.areaRngLbl = ["all"]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval.evaluate()
            coco_eval.accumulate()
        out[key] = _coco_summary(coco_eval, coco_eval.params.catIds, class_names)
    return out
