"""Scoring a model on a dataset: ``evaluate(model, dataset)`` and its printed table.

* :func:`evaluate` runs a model over a dataset and prints a table of the
  competition score (mAP over IoU 0.50-0.95, per class and overall) and of
  COCO mask and box AP / AP50 / AP75 (pycocotools), and where the score goes
  (`mrcnn.evaluation.competition.error_breakdown`: objects missed and false
  positives at IoU 0.5, the matched masks' IoU).
* :func:`format_report` is that table as text.
* :func:`collect_predictions` keeps a validation set's detections and ground
  truth in compact form, for :func:`mrcnn.evaluation.tuning.tune_postprocess`.
"""

import numpy as np

from mrcnn.evaluation.coco import AP_KEYS, DEFAULT_MAX_DETS, coco_ap
from mrcnn.evaluation.competition import (check_thresholds, error_breakdown, map_iou_from_ious,
                                          map_iou_per_class_from_ious, touches_border)
from mrcnn.evaluation.inputs import as_ground_truth, class_key
from mrcnn.inference.fitted_input import detect_fitted
from mrcnn.inference.postprocess import PostprocessConfig, postprocess as run_postprocess
from mrcnn.inference.results import compact

__all__ = ["collect_predictions", "evaluate", "format_errors", "format_report"]


def _batch_size(model):
    size = getattr(getattr(model, "config", None), "BATCH_SIZE", 1)
    return max(int(size), 1)


def _detections(model, dataset, image_ids):
    """Yields ``(image_id, result, gt_masks SparseMasks, gt_class_ids)``."""
    image_ids = [int(i) for i in (dataset.image_ids if image_ids is None else image_ids)]
    step = _batch_size(model)
    for start in range(0, len(image_ids), step):
        chunk = image_ids[start:start + step]
        images = [dataset.load_image(i) for i in chunk]
        results = detect_fitted(model, images, grow=False)
        if len(results) != len(chunk):
            raise ValueError(f"model.detect returned {len(results)} results for "
                             f"{len(chunk)} images")
        for image_id, image, result in zip(chunk, images, results):
            masks, class_ids = dataset.load_mask(image_id)
            masks = np.asarray(masks)
            if masks.ndim != 3 or masks.shape[:2] != np.shape(image)[:2]:
                raise ValueError(
                    f"image {image_id}: load_mask returned masks of shape "
                    f"{masks.shape}, expected [H, W, N] with H, W = "
                    f"{np.shape(image)[:2]}")
            gt, gt_ids = as_ground_truth((masks, class_ids), f"image {image_id}")
            yield image_id, result, gt, gt_ids


def _apply(postprocess, result, class_names):
    if postprocess is None:
        return result
    if isinstance(postprocess, PostprocessConfig):
        return run_postprocess(result, postprocess, class_names=class_names)
    if callable(postprocess):
        return postprocess(result)
    raise TypeError(f"postprocess must be None, a PostprocessConfig or a callable, "
                    f"got {type(postprocess).__name__}")


def evaluate(model, dataset, image_ids=None, postprocess=None, verbose=1,
             max_dets=DEFAULT_MAX_DETS, thresholds=None):
    """Scores a model on a dataset and prints a table.

    A ``MaskRCNN`` with a fixed input (``IMAGE_RESIZE_MODE="none"``) scores
    each image in an input of its own size
    (`mrcnn.inference.fitted_input.detect_fitted`), as ``samples/cell/predict.py``
    and `mrcnn.inference.tiling.TiledModel` detect it: a validation set of
    several sizes is not padded into the largest. An image larger than the
    input is refused, as by ``detect`` (score it with ``TiledModel(model)``).

    Args:
        model: object with ``detect(images) -> [result, ...]`` (a MaskRCNN in
            inference mode, or ``mrcnn.inference.tta.TTAModel``).
        dataset: prepared ``Dataset`` (``load_image``, ``load_mask``,
            ``class_names``).
        image_ids: internal image ids to use (default: all).
        postprocess: None, a ``PostprocessConfig`` (run with the dataset's
            class names), or a callable ``result -> result``.
        verbose: print the table when truthy.
        max_dets: COCO detections kept per image and class.
        thresholds: IoU thresholds of the competition score (default 0.50,
            0.55, ..., 0.95).

    Returns:
        dict with ``map_iou`` (competition score, mean over images),
        ``map_iou_per_class`` ``{class name: score}`` (mean over the images
        where the class occurs in gt or predictions), ``mask`` and ``box``
        (see :func:`mrcnn.evaluation.coco.coco_ap`), ``per_image`` (list of
        ``{"image_id", "map_iou", "n_gt", "n_pred", "missed", "missed_at_edge",
        "false_positives", "matched_iou_median"}``), ``errors`` (over all images, at the lowest
        threshold, ``threshold``: ``n_gt``, ``n_pred``, ``missed``,
        ``missed_at_edge`` (missed objects touching the image border),
        ``false_positives``, and the matched pairs' mask IoU
        ``matched_iou_median`` / ``matched_iou_q25``, NaN when nothing matched;
        `mrcnn.evaluation.competition.error_breakdown`) and ``n_images``.
    """
    class_names = getattr(dataset, "class_names", None)
    lowest = float(check_thresholds(thresholds).min())   # where a match starts
    per_image, per_class, gt_list, pred_list, breakdowns = [], {}, [], [], []
    for image_id, result, gt, gt_ids in _detections(model, dataset, image_ids):
        pred = compact(_apply(postprocess, result, class_names))
        if pred["masks"].shape != gt.shape:
            raise ValueError(f"image {image_id}: predicted masks are "
                             f"{pred['masks'].shape}, ground truth {gt.shape}")
        ious = gt.iou(pred["masks"])
        score = map_iou_from_ious(ious, thresholds)
        errors = error_breakdown(ious, lowest, touches_border(gt.boxes(), gt.shape))
        breakdowns.append(errors)
        per_image.append({"image_id": image_id, "map_iou": score,
                          "n_gt": gt.count, "n_pred": pred["masks"].count,
                          "missed": errors["missed"],
                          "missed_at_edge": errors["missed_at_edge"],
                          "false_positives": errors["false_positives"],
                          "matched_iou_median": _quantile(errors["matched_ious"], 0.5)})
        for class_id, value in map_iou_per_class_from_ious(
                ious, gt_ids, pred["class_ids"], None, thresholds).items():
            per_class.setdefault(class_id, []).append(value)
        gt_list.append((gt, gt_ids))
        pred_list.append(pred)
    if not per_image:
        raise ValueError("evaluate needs at least one image, got none")
    report = {"map_iou": float(np.mean([p["map_iou"] for p in per_image])),
              "map_iou_per_class": {class_key(c, class_names): float(np.mean(per_class[c]))
                                    for c in sorted(per_class)}}
    report.update(coco_ap(gt_list, pred_list, class_names, max_dets))
    report["per_image"] = per_image
    report["errors"] = dict(threshold=lowest, **_total_errors(breakdowns))
    report["n_images"] = len(per_image)
    if verbose:
        print(format_report(report))
    return report


def _quantile(values, q):
    return float(np.quantile(values, q)) if len(values) else float("nan")


def _total_errors(breakdowns):
    """`error_breakdown`s of the images summed: counts added, the matched IoUs pooled."""
    totals = {k: int(sum(b[k] for b in breakdowns))
              for k in ("n_gt", "n_pred", "missed", "missed_at_edge", "false_positives")}
    ious = np.concatenate([b["matched_ious"] for b in breakdowns])
    totals.update(matched_iou_median=_quantile(ious, 0.5), matched_iou_q25=_quantile(ious, 0.25))
    return totals


def format_errors(errors):
    """One line of an `evaluate` report's ``errors``: detection at its IoU, then the masks."""
    edge = (f" ({errors['missed_at_edge']} touching the image edge)"
            if errors.get("missed_at_edge") else "")
    line = (f"at IoU {errors['threshold']:g}: {errors['missed']} of {errors['n_gt']} objects "
            f"missed{edge}, {errors['false_positives']} of {errors['n_pred']} predictions false")
    if errors["n_gt"] > errors["missed"]:
        line += (f"; matched masks' IoU median {errors['matched_iou_median']:.3f} "
                 f"(q25 {errors['matched_iou_q25']:.3f})")
    return line


def format_report(report):
    """Text table of an :func:`evaluate` report: metrics x (all, each class)."""
    classes = list(report["map_iou_per_class"])
    for kind in ("mask", "box"):
        classes += [c for c in report[kind]["per_class"] if c not in classes]
    header = ["metric", "all"] + [str(c) for c in classes]
    lines = [["mAP-IoU (competition)", report["map_iou"]]
             + [report["map_iou_per_class"].get(c, float("nan")) for c in classes]]
    for kind in ("mask", "box"):
        for key in AP_KEYS:
            per = report[kind]["per_class"]
            lines.append([f"{kind} {key}", report[kind][key]]
                         + [per.get(c, {}).get(key, float("nan")) for c in classes])
    widths = [max(len(header[0]), max(len(r[0]) for r in lines))] + \
        [max(len(h), 6) for h in header[1:]]
    out = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                     for i, (h, w) in enumerate(zip(header, widths)))]
    for row in lines:
        out.append("  ".join([row[0].ljust(widths[0])] +
                             [f"{v:.3f}".rjust(w) for v, w in zip(row[1:], widths[1:])]))
    if "errors" in report:
        out.append(format_errors(report["errors"]))
    out.append(f"({report['n_images']} images)")
    return "\n".join(out)


def collect_predictions(model, dataset, image_ids=None):
    """Detections and ground truth of a validation set, in compact form.

    Masks are kept as :class:`~mrcnn.data.masks.sparse.SparseMasks` (a few
    hundred kB per cell image instead of ``H * W * N`` bytes).

    Args:
        model: object with ``detect(images) -> [result, ...]``.
        dataset: prepared ``Dataset``.
        image_ids: internal image ids to use (default: all).

    Returns:
        ``(predictions, gts)``: lists of compact detect() results and of
        ``(SparseMasks, class_ids)`` pairs, one per image.
    """
    predictions, gts = [], []
    for _, result, gt, gt_ids in _detections(model, dataset, image_ids):
        predictions.append(compact(result))
        gts.append((gt, gt_ids))
    return predictions, gts
