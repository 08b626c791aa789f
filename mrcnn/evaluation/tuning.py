"""Grid search of post-processing thresholds on a validation set.

As the Kaggle cell-segmentation solutions did::

    preds, gts = collect_predictions(model, val_set)
    best, table = tune_postprocess(
        preds, gts, {"min_score": [0.3, 0.5, 0.7], "mask_nms": [None, 0.3],
                     "min_area": [0, 75, 150]},
        class_names=val_set.class_names, per_class=True)

Settings are scored by the mean competition score
(:func:`mrcnn.evaluation.competition.map_iou_from_ious`) over the images.
Ground truth and predictions are as in :mod:`mrcnn.evaluation.inputs`.
"""

import dataclasses
import itertools

import numpy as np

from mrcnn.evaluation.competition import map_iou_from_ious
from mrcnn.evaluation.inputs import as_ground_truth, as_prediction, class_key
from mrcnn.inference.postprocess import (
    PostprocessConfig,
    postprocess as run_postprocess,
    resolve_class_keys,
)

__all__ = ["tune_postprocess"]

# PostprocessConfig fields that may hold one value per class.
_CLASS_FIELDS = ("min_score", "min_area")


def _score_images(preds, gts, config, class_names, thresholds, images):
    """float64 ``[len(images)]`` competition score of each image under ``config``."""
    return np.array([map_iou_from_ious(
        gts[j][0].iou(run_postprocess(preds[j], config, class_names)["masks"]),
        thresholds) for j in images])


def _check_grid(grid):
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
        gts: per-image ground truth (see :mod:`mrcnn.evaluation.inputs`).
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
    _check_grid(grid)
    preds = [as_prediction(p, f"predictions[{k}]") for k, p in enumerate(predictions)]
    gts = [as_ground_truth(g, f"gts[{k}]") for k, g in enumerate(gts)]
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
            rows.append(dict({"class": class_key(c, class_names)},
                             **dict(zip(class_fields, combo)), score=score))
            if score > total + 1e-12:
                total, image_scores, values = score, new, trial
    named = {f: {class_key(c, class_names): _plain(v) for c, v in values[f].items()}
             for f in class_fields}
    return dataclasses.replace(config, **named), rows


def _plain(value):
    """A NumPy scalar as the Python number it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value
