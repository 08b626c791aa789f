"""Model evaluation: competition score, COCO AP, cross-validation folds, tuning.

* :func:`evaluate` runs a model over a dataset and prints a table of the
  competition score (mAP over IoU 0.50-0.95, per class and overall) and of
  COCO mask and box AP / AP50 / AP75 (pycocotools).
* :func:`coco_ap` computes COCO AP from ground truth and predictions held
  in memory.
* :func:`kfold_indices`, :func:`subset_dataset` and :func:`kfold_datasets`
  split a dataset into cross-validation folds.
* :func:`collect_predictions` and :func:`tune_postprocess` search
  post-processing thresholds on a validation fold, as the Kaggle solutions
  did::

      preds, gts = collect_predictions(model, val_set)
      best, table = tune_postprocess(
          preds, gts, {"min_score": [0.3, 0.5, 0.7], "mask_nms": [None, 0.3],
                       "min_area": [0, 75, 150]},
          class_names=val_set.class_names, per_class=True)

Ground truth items (``gts``, ``gt_list``) are ``(masks, class_ids)`` pairs
or dicts with ``masks`` and ``class_ids``; masks are bool ``[H, W, N]``, an
integer label image ``[H, W]`` or :class:`~mrcnn.inference.postprocess.SparseMasks`.
Predictions are ``detect()`` results (dense or sparse masks).
"""

import contextlib
import copy
import dataclasses
import io
import itertools
import numbers

import numpy as np

from mrcnn.datasets.coco import coco_index
from mrcnn.evaluation.metrics import map_iou_from_ious, map_iou_per_class_from_ious
from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.inference.postprocess import (
    PostprocessConfig,
    postprocess as run_postprocess,
    resolve_class_keys,
)
from mrcnn.inference.results import compact

# COCO keeps at most 100 detections per image and class by default; cell
# images hold hundreds of instances, so the default here is larger.
DEFAULT_MAX_DETS = 1000
_AP_KEYS = ("AP", "AP50", "AP75")


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def _as_sparse(masks, name):
    if isinstance(masks, SparseMasks):
        return masks.binary()
    masks = np.asarray(masks)
    if masks.ndim == 2:
        return SparseMasks.from_labels(masks)
    if masks.ndim == 3:
        return SparseMasks.from_dense(masks)
    raise ValueError(f"{name}: masks must be bool [H, W, N], a label image [H, W] "
                     f"or SparseMasks, got shape {masks.shape}")


def _gt_item(item, name):
    """``(SparseMasks, int32 class ids [N])`` of one ground-truth item."""
    if isinstance(item, dict):
        if "masks" not in item or "class_ids" not in item:
            raise ValueError(f"{name} must have keys 'masks' and 'class_ids', got "
                             f"{sorted(item)}")
        masks, class_ids = item["masks"], item["class_ids"]
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        masks, class_ids = item
    else:
        raise TypeError(f"{name} must be a (masks, class_ids) pair or a dict, got "
                        f"{type(item).__name__}")
    masks = _as_sparse(masks, name)
    class_ids = np.asarray(class_ids).astype(np.int32).reshape(-1)
    if class_ids.size != masks.count:
        raise ValueError(f"{name}: {class_ids.size} class ids for {masks.count} masks")
    return masks, class_ids


def _pred_item(result, name):
    if not isinstance(result, dict):
        raise TypeError(f"{name} must be a detect() result dict, got "
                        f"{type(result).__name__}")
    return compact(result)


def _class_name(class_id, class_names):
    if class_names is None:
        return int(class_id)
    try:
        return class_names[int(class_id)]
    except (IndexError, KeyError):
        raise ValueError(f"class_names has no entry for class id {class_id}") from None


# ---------------------------------------------------------------------------
# COCO AP (pycocotools)
# ---------------------------------------------------------------------------

def _coco_rles(masks):
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
        _class_name(c, class_names): {key: mean(precision[pick][:, :, k])
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
        gt_list: per-image ground truth (see the module docstring).
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
        gt_masks, gt_ids = _gt_item(gt, f"gt_list[{k}]")
        pred = _pred_item(pred, f"pred_list[{k}]")
        if pred["masks"].shape != gt_masks.shape:
            raise ValueError(f"image {k}: predictions are {pred['masks'].shape}, ground "
                             f"truth {gt_masks.shape}")
        height, width = gt_masks.shape
        images.append({"id": k + 1, "height": height, "width": width})
        for anns, masks, ids, boxes, scores in (
                (gt_anns, gt_masks, gt_ids, gt_masks.boxes(), None),
                (dt_anns, pred["masks"], pred["class_ids"], pred["rois"],
                 pred["scores"])):
            rles, areas, xywh = _coco_rles(masks), masks.areas(), _xywh(boxes)
            for n in range(masks.count):
                ann = {"id": len(anns) + 1, "image_id": k + 1,
                       "category_id": int(ids[n]), "segmentation": rles[n],
                       "area": float(areas[n]), "bbox": xywh[n].tolist(),
                       "iscrowd": 0}
                if scores is not None:
                    ann["score"] = float(scores[n])
                anns.append(ann)
    cat_ids = sorted({a["category_id"] for a in gt_anns + dt_anns})
    categories = [{"id": c, "name": str(_class_name(c, class_names))} for c in cat_ids]
    out = {}
    for key, iou_type in (("mask", "segm"), ("box", "bbox")):
        if not gt_anns:
            out[key] = {k: float("nan") for k in _AP_KEYS}
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


# ---------------------------------------------------------------------------
# evaluate(model, dataset)
# ---------------------------------------------------------------------------

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
        results = model.detect(images)
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
            gt, gt_ids = _gt_item((masks, class_ids), f"image {image_id}")
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

    Args:
        model: object with ``detect(images) -> [result, ...]`` (a MaskRCNN in
            inference mode, or ``mrcnn.inference.postprocess.TTAModel``).
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
        (see :func:`coco_ap`), ``per_image`` (list of ``{"image_id",
        "map_iou", "n_gt", "n_pred"}``) and ``n_images``.
    """
    class_names = getattr(dataset, "class_names", None)
    per_image, per_class, gt_list, pred_list = [], {}, [], []
    for image_id, result, gt, gt_ids in _detections(model, dataset, image_ids):
        pred = compact(_apply(postprocess, result, class_names))
        if pred["masks"].shape != gt.shape:
            raise ValueError(f"image {image_id}: predicted masks are "
                             f"{pred['masks'].shape}, ground truth {gt.shape}")
        ious = gt.iou(pred["masks"])
        score = map_iou_from_ious(ious, thresholds)
        per_image.append({"image_id": image_id, "map_iou": score,
                          "n_gt": gt.count, "n_pred": pred["masks"].count})
        for class_id, value in map_iou_per_class_from_ious(
                ious, gt_ids, pred["class_ids"], None, thresholds).items():
            per_class.setdefault(class_id, []).append(value)
        gt_list.append((gt, gt_ids))
        pred_list.append(pred)
    if not per_image:
        raise ValueError("evaluate needs at least one image, got none")
    report = {"map_iou": float(np.mean([p["map_iou"] for p in per_image])),
              "map_iou_per_class": {_class_name(c, class_names): float(np.mean(per_class[c]))
                                    for c in sorted(per_class)}}
    report.update(coco_ap(gt_list, pred_list, class_names, max_dets))
    report["per_image"] = per_image
    report["n_images"] = len(per_image)
    if verbose:
        print(format_report(report))
    return report


def format_report(report):
    """Text table of an :func:`evaluate` report: metrics x (all, each class)."""
    classes = list(report["map_iou_per_class"])
    for kind in ("mask", "box"):
        classes += [c for c in report[kind]["per_class"] if c not in classes]
    header = ["metric", "all"] + [str(c) for c in classes]
    lines = [["mAP-IoU (competition)", report["map_iou"]]
             + [report["map_iou_per_class"].get(c, float("nan")) for c in classes]]
    for kind in ("mask", "box"):
        for key in _AP_KEYS:
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
    out.append(f"({report['n_images']} images)")
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Cross-validation
# ---------------------------------------------------------------------------

def kfold_indices(n, k, seed=0, stratify=None):
    """Shuffled k-fold split of ``n`` items (all folds at once).

    The folds are those of :func:`mrcnn.datasets.folds.kfold_split` (items
    shuffled and dealt to the folds in turn; with ``stratify``, label by
    label), returned as index arrays for every fold.

    Args:
        n: number of items.
        k: number of folds, ``2 <= k <= n``.
        seed: shuffling seed.
        stratify: optional ``[n]`` labels (e.g. each image's cell type); each
            label's items are spread over the folds as evenly as possible.

    Returns:
        list of ``k`` pairs ``(train, val)`` of sorted int64 index arrays; the
        ``val`` arrays partition ``range(n)`` and differ in size by at most 1.
    """
    from mrcnn.datasets.folds import kfold_split

    n = int(n)
    if not isinstance(k, (numbers.Integral, np.integer)) or not 2 <= k <= n:
        raise ValueError(f"k must be an integer in [2, n={n}], got {k!r}")
    if stratify is not None and len(stratify) != n:
        raise ValueError(f"stratify has {len(stratify)} labels for n={n} items")
    folds = [kfold_split(range(n), int(k), fold, seed, groups=stratify)
             for fold in range(int(k))]
    return [(np.asarray(train, np.int64), np.asarray(val, np.int64))
            for train, val in folds]


def subset_dataset(dataset, image_ids):
    """A prepared copy of ``dataset`` holding only ``image_ids``.

    The copy is shallow: it shares the classes and any loader state, with
    ``image_info`` restricted to the given internal ids (in that order). It
    works for datasets whose ``load_image`` / ``load_mask`` read what they
    need from ``image_info``, as Matterport datasets do.

    Args:
        dataset: prepared Dataset.
        image_ids: internal image ids of ``dataset``.

    Returns:
        Dataset of the same class, prepared, with ids ``0 .. len(image_ids)-1``.
    """
    n = len(dataset.image_info)
    ids = [int(i) for i in image_ids]
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ValueError(f"image ids out of range [0, {n}): {bad[:10]}")
    subset = copy.copy(dataset)
    subset.image_info = [dataset.image_info[i] for i in ids]
    subset.class_info = list(dataset.class_info)
    subset.prepare()
    return subset


def kfold_datasets(dataset, k, seed=0, stratify=None):
    """``(train, val)`` dataset pairs of a k-fold split (see :func:`kfold_indices`)."""
    return [(subset_dataset(dataset, train), subset_dataset(dataset, val))
            for train, val in kfold_indices(len(dataset.image_info), k, seed, stratify)]


# ---------------------------------------------------------------------------
# Threshold tuning
# ---------------------------------------------------------------------------

def collect_predictions(model, dataset, image_ids=None):
    """Detections and ground truth of a validation set, in compact form.

    Masks are kept as :class:`~mrcnn.inference.postprocess.SparseMasks` (a few hundred
    kB per cell image instead of ``H * W * N`` bytes).

    Returns:
        ``(predictions, gts)``: lists of compact detect() results and of
        ``(SparseMasks, class_ids)`` pairs, one per image.
    """
    predictions, gts = [], []
    for _, result, gt, gt_ids in _detections(model, dataset, image_ids):
        predictions.append(compact(result))
        gts.append((gt, gt_ids))
    return predictions, gts


_CLASS_FIELDS = ("min_score", "min_area")


def _score_images(preds, gts, config, class_names, thresholds, images):
    return np.array([map_iou_from_ious(
        gts[j][0].iou(run_postprocess(preds[j], config, class_names)["masks"]),
        thresholds) for j in images])


def tune_postprocess(predictions, gts, grid, base=None, class_names=None,
                     per_class=False, thresholds=None, verbose=0):
    """Grid search of post-processing settings on a validation set.

    Every combination of ``grid`` values is applied (on top of ``base``) to
    every image's predictions with :func:`mrcnn.inference.postprocess.postprocess`, and
    scored by the mean competition score. With ``per_class=True`` the best
    combination is then refined class by class for the per-class fields
    (``min_score``, ``min_area``): for each class in turn, each combination of
    those fields' grid values is tried for that class only, and kept if it
    raises the overall score.

    ``mask_threshold`` only has an effect when the predictions carry
    ``soft_masks``; on binary masks tune score, NMS, area and dilation.

    Args:
        predictions: per-image detect() results (dense or compact; optionally
            with ``soft_masks``).
        gts: per-image ground truth (see the module docstring).
        grid: dict ``{PostprocessConfig field: [values, ...]}``.
        base: PostprocessConfig for the fields not in ``grid``.
        class_names: ``Dataset.class_names``; per-class results are then
            keyed by name, and names in ``base`` / ``grid`` dicts resolve.
        per_class: refine ``min_score`` / ``min_area`` per class.
        thresholds: IoU thresholds of the score (default 0.50-0.95).
        verbose: print the best rows when truthy.

    Returns:
        ``(best, table)``: the best PostprocessConfig and a list of dicts, one
        per grid combination (its grid values and ``score``) by decreasing
        score (ties keep grid order), followed with ``per_class=True`` by one
        row per refinement candidate (``class``, field values, ``score``).
    """
    base = PostprocessConfig() if base is None else base
    if not isinstance(base, PostprocessConfig):
        raise TypeError(f"base must be a PostprocessConfig, got {type(base).__name__}")
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict {{field: [values]}}, got {grid!r}")
    fields = {f.name for f in dataclasses.fields(PostprocessConfig)}
    for key, values in grid.items():
        if key not in fields:
            raise ValueError(f"grid key {key!r} is not a PostprocessConfig field; "
                             f"valid: {sorted(fields)}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") \
                or not list(values):
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got "
                             f"{values!r}")
    preds = [_pred_item(p, f"predictions[{k}]") for k, p in enumerate(predictions)]
    gts = [_gt_item(g, f"gts[{k}]") for k, g in enumerate(gts)]
    if len(preds) != len(gts) or not preds:
        raise ValueError(f"need as many predictions as gts (at least one), got "
                         f"{len(preds)} and {len(gts)}")
    keys = list(grid)
    combos = list(itertools.product(*(list(grid[k]) for k in keys)))
    configs = [dataclasses.replace(base, **dict(zip(keys, c))) for c in combos]
    every = range(len(preds))
    scores = np.stack([_score_images(preds, gts, cfg, class_names, thresholds, every)
                       for cfg in configs])                  # [configs, images]
    means = scores.mean(axis=1)
    order = np.argsort(-means, kind="stable")
    table = [dict(zip(keys, combos[i]), score=float(means[i])) for i in order]
    best_index = int(order[0])
    best, best_scores = configs[best_index], scores[best_index]

    if per_class:
        best, rows = _refine_per_class(preds, gts, grid, best, best_scores,
                                       class_names, thresholds)
        table += rows
    if verbose:
        for row in table[:10]:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
        print(f"best: {best}")
    return best, table


def _refine_per_class(preds, gts, grid, config, image_scores, class_names, thresholds):
    """Per-class coordinate search of min_score / min_area (see tune_postprocess)."""
    class_fields = [f for f in _CLASS_FIELDS if f in grid]
    if not class_fields:
        raise ValueError(f"per_class tuning needs {_CLASS_FIELDS[0]!r} or "
                         f"{_CLASS_FIELDS[1]!r} in the grid, got {sorted(grid)}")
    classes = sorted({int(c) for p in preds for c in p["class_ids"]}
                     | {int(c) for _, ids in gts for c in ids})
    # Per-class dicts keyed by class id, starting from the global best.
    values = {}
    for field in class_fields:
        current = getattr(config, field)
        if isinstance(current, dict):
            resolved = resolve_class_keys(current, class_names, field)
            values[field] = {c: resolved.get(c, 0) for c in classes}
        else:
            values[field] = {c: current for c in classes}
    total = float(image_scores.mean())
    rows = []
    for c in classes:
        images = [j for j, p in enumerate(preds) if np.any(p["class_ids"] == c)]
        if not images:
            continue
        for combo in itertools.product(*(list(grid[f]) for f in class_fields)):
            trial = {f: {**values[f], c: v} for f, v in zip(class_fields, combo)}
            cfg = dataclasses.replace(config, **trial)
            new = image_scores.copy()
            new[images] = _score_images(preds, gts, cfg, class_names, thresholds, images)
            score = float(new.mean())
            rows.append(dict({"class": _class_name(c, class_names)},
                             **dict(zip(class_fields, combo)), score=score))
            if score > total + 1e-12:
                total, image_scores, values = score, new, trial
    named = {f: {_class_name(c, class_names): _plain(v) for c, v in values[f].items()}
             for f in class_fields}
    return dataclasses.replace(config, **named), rows


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
