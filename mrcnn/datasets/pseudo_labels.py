"""Pseudo-labels: confident predictions on unlabeled images, kept as Sartorius annotations.

The semi-supervised step of the Sartorius competition (its
``train_semi_supervised/`` folder holds 1,972 images without annotations):
predict them with a trained model, keep the confident instances, write them
in the `train.csv` format, and fine-tune on the labelled plus the
pseudo-labelled images::

    rows = []
    for image_id, image in unlabeled:
        r = model.detect([image])[0]
        kept = select_pseudo_labels(r, min_score=0.8, min_area=75)
        rows += pseudo_label_rows(image_id, kept["masks"],
                                  image_cell_type(kept, class_names))
    write_pseudo_labels("pseudo.csv", rows)

    train.load_sartorius(data_dir)                              # labelled
    train.load_pseudo_labels("pseudo.csv", data_dir + "/train_semi_supervised")

`samples/cell/pseudo_label.py` does this for a folder of images. The kept
masks of an image are disjoint (a pseudo-label never gives a pixel to two
cells): the higher-scoring instance keeps the shared pixels.
"""

import csv
import io
import numbers
import os

import numpy as np

from mrcnn.data.rle import rle_encode_instances
from mrcnn.data.tempfiles import write_text_atomically
from mrcnn.datasets.sartorius import CSV_COLUMNS, read_sartorius_csv

__all__ = ["select_pseudo_labels", "image_cell_type", "pseudo_label_rows",
           "write_pseudo_labels"]


def _dense(masks):
    masks = masks.to_dense() if hasattr(masks, "to_dense") else np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [H, W, N], got shape {masks.shape}")
    return masks.astype(bool)


def _bound(value, name, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return value


def select_pseudo_labels(result, min_score=0.8, min_area=0, max_area=None):
    """The confident, non-overlapping instances of one image's detections.

    1. instances with ``score >= min_score`` are candidates;
    2. in order of decreasing score (ties: the earlier instance first) each
       takes the pixels of its mask that no better candidate took, so the
       kept masks are disjoint;
    3. an instance left with fewer than ``min_area`` pixels (or more than
       ``max_area``) is dropped; its pixels stay unlabelled.

    Args:
        result: a ``detect()`` result: ``masks`` bool [H, W, N] (or sparse
            masks), ``scores`` [N], ``class_ids`` [N]; ``rois`` optional.
        min_score: lowest score kept, in [0, 1].
        min_area, max_area: pixel bounds of a kept mask after step 2
            (max_area None: no upper bound).

    Returns:
        dict ``masks`` bool [H, W, K] (disjoint), ``scores`` [K],
        ``class_ids`` int32 [K], in order of decreasing score.

    Raises:
        ValueError: a bound out of range, or masks, scores and class ids of
            different lengths.
    """
    if isinstance(min_score, bool) or not isinstance(min_score, numbers.Real) or \
            not 0 <= min_score <= 1:
        raise ValueError(f"min_score must be a number in [0, 1], got {min_score!r}")
    min_area = _bound(min_area, "min_area")
    max_area = _bound(max_area, "max_area", allow_none=True)
    masks = _dense(result["masks"])
    scores = np.asarray(result["scores"], np.float64).reshape(-1)
    class_ids = np.asarray(result["class_ids"]).reshape(-1).astype(np.int32)
    if not masks.shape[-1] == scores.size == class_ids.size:
        raise ValueError(f"the result has {masks.shape[-1]} masks, {scores.size} scores and "
                         f"{class_ids.size} class ids; expected one of each per instance")
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= min_score]
    taken = np.zeros(masks.shape[:2], bool)
    keep, kept_masks = [], []
    for i in order:
        own = masks[..., i] & ~taken
        taken |= own                       # a dropped instance's pixels stay taken
        area = int(own.sum())
        if area and area >= min_area and (max_area is None or area <= max_area):
            keep.append(i)
            kept_masks.append(own)
    out_masks = np.stack(kept_masks, -1) if kept_masks else np.zeros(masks.shape[:2] + (0,), bool)
    keep = np.asarray(keep, np.int64)
    return {"masks": out_masks, "scores": scores[keep].astype(np.float32),
            "class_ids": class_ids[keep]}


def image_cell_type(result, class_names):
    """The image's cell type: the class whose instances' scores sum highest.

    Each Sartorius image holds one cell type (the `cell_type` column is per
    image); see `mrcnn.inference.postprocess.majority_class`.

    Args:
        result: dict with ``class_ids`` and ``scores``.
        class_names: the model's class names, background first.

    Returns:
        the class name; "" when there is no instance or the model has a
        single class (the cell type is unknown: load such a CSV with
        ``class_mode="single"``).
    """
    class_ids = np.asarray(result["class_ids"]).reshape(-1).astype(np.int64)
    if class_ids.size == 0 or len(class_names) <= 2:
        return ""
    if class_ids.min() < 1 or class_ids.max() >= len(class_names):
        raise ValueError(f"class ids must be in [1, {len(class_names) - 1}] for class names "
                         f"{list(class_names)}, got {sorted(set(class_ids.tolist()))}")
    totals = np.bincount(class_ids, weights=np.asarray(result["scores"], np.float64),
                         minlength=len(class_names))
    return str(class_names[int(np.argmax(totals))])


def pseudo_label_rows(image_id, masks, cell_type):
    """`train.csv` rows of one image: one per non-empty instance.

    Args:
        image_id: the image's id (its file name without ".png").
        masks: bool [H, W, N] (or sparse masks) of the instances.
        cell_type: the image's cell type ("" when unknown).

    Returns:
        list of rows in `sartorius.CSV_COLUMNS` order (id, annotation
        (row-major RLE, 1-indexed), width, height, cell_type, and the four
        metadata columns, empty); an image without instances has no row
        (the format cannot hold one).
    """
    image_id = str(image_id)
    if not image_id or image_id != image_id.strip() or "," in image_id or "\n" in image_id:
        raise ValueError(f"image id must be a non-empty name without commas, newlines or "
                         f"surrounding spaces, got {image_id!r}")
    masks = _dense(masks)
    height, width = masks.shape[:2]
    empty = [""] * (len(CSV_COLUMNS) - 5)
    return [[image_id, rle, width, height, str(cell_type)] + empty
            for rle in rle_encode_instances(masks) if rle]


def write_pseudo_labels(path, rows, append=False):
    """Write `train.csv`-format rows atomically (a temporary file renamed over `path`).

    Args:
        path: the CSV to write.
        rows: rows from :func:`pseudo_label_rows`.
        append: keep the rows of an existing `path` (checked to be a
            Sartorius CSV) and add these after them; an image may not be in
            both.

    Returns:
        int, the number of rows in the file (header excluded).

    Raises:
        ValueError: a row of the wrong length, or (append) an image already
            in the file.
    """
    path = os.fspath(path)
    rows = [list(r) for r in rows]
    for k, row in enumerate(rows):
        if len(row) != len(CSV_COLUMNS):
            raise ValueError(f"rows[{k}] has {len(row)} fields, expected {len(CSV_COLUMNS)} "
                             f"({', '.join(CSV_COLUMNS)}): {row!r}")
    old = []
    if append and os.path.exists(path):
        with open(path, newline="", encoding="utf-8-sig") as f:
            old = list(csv.reader(f))
        if not old or tuple(h.strip() for h in old[0]) != CSV_COLUMNS:
            raise ValueError(f"cannot append to {path}: its header is "
                             f"{old[0] if old else None!r}, expected {list(CSV_COLUMNS)}")
        old = old[1:]
        if old:
            records = read_sartorius_csv(path)              # checks every row
            again = sorted({str(r[0]) for r in rows} & set(records))
            if again:
                raise ValueError(f"{path} already holds pseudo-labels of image(s) "
                                 f"{again[:5]}; write another file or leave them out")
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(old)
    writer.writerows(rows)
    write_text_atomically(path, text.getvalue(), prefix=".tmp-pseudo-", suffix=".csv",
                          newline="")
    return len(old) + len(rows)
