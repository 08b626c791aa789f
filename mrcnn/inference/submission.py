"""Kaggle submission files for instance segmentation: write and validate.

Two competition formats, chosen by ``order`` (the flattening order of the
run-length encoding, see :mod:`mrcnn.data.rle`):

* ``order="C"`` (default), Sartorius 2021: header ``id,predicted``, row-major
  runs (left to right, then top to bottom);
* ``order="F"``, Data Science Bowl 2018: header ``ImageId,EncodedPixels``,
  column-major runs (top to bottom, then left to right).

Both: one row per predicted instance holding the image id and the instance's
run-length encoding (1-indexed starts, sorted runs), and a single row with an
empty encoding for an image without any instance. No pixel may belong to two
instances.

::

    from mrcnn.inference.submission import submission_rows, write_submission, validate_submission
    rows = []
    for image_id, image in images:
        r = postprocess(model.detect([image])[0], cfg)
        rows += submission_rows(image_id, r["masks"])
    write_submission("submission.csv", rows)
    validate_submission("submission.csv", {i: (520, 704) for i, _ in images})

DSB 2018 nuclei: ``submission_rows(image_id, masks, order="F")``, then
``write_submission(path, rows, order="F")`` and ``validate_submission(path,
shapes, order="F")``.
"""

import csv
import os
import tempfile

import numpy as np

from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.data.rle import check_runs, parse_runs, rle_encode_instances

HEADER = ("id", "predicted")
# The header of each format, by RLE order: Sartorius 2021 (row-major), DSB 2018 (column-major).
HEADERS = {"C": HEADER, "F": ("ImageId", "EncodedPixels")}


def _header(order):
    if not isinstance(order, str) or order not in HEADERS:
        raise ValueError(f"order must be 'C' (row-major runs, Sartorius 2021: "
                         f"id,predicted) or 'F' (column-major runs, DSB 2018: "
                         f"ImageId,EncodedPixels), got {order!r}")
    return HEADERS[order]


def _transposed(masks):
    """The masks of the transposed image ``[W, H, N]``: its row-major runs are
    the column-major runs of the original."""
    if isinstance(masks, SparseMasks):
        height, width = masks.shape
        ys, xs = np.divmod(masks.pixel, width)
        return SparseMasks((width, height), masks.count, masks.instance, xs * height + ys)
    return np.asarray(masks).transpose(1, 0, 2)


def submission_rows(image_id, masks, order="C"):
    """Submission rows of one image.

    Args:
        image_id: the image's id (written as ``str(image_id)``).
        masks: bool ``[H, W, N]`` or SparseMasks, e.g. ``postprocess(...)["masks"]``.
            Empty instances are skipped. Overlaps are not checked here (see
            :func:`validate_submission`); resolve them with
            :func:`mrcnn.inference.postprocess.remove_overlaps`.
        order: "C" (row-major runs, Sartorius) or "F" (column-major runs,
            DSB 2018); each string equals ``mrcnn.data.rle.rle_encode(mask,
            order=order)``.

    Returns:
        list of ``(id, rle)`` tuples, one per non-empty instance, or
        ``[(id, "")]`` when there is none (the format needs a row per image).
    """
    _header(order)
    image_id = str(image_id)
    if isinstance(masks, np.ndarray) and masks.ndim != 3:
        raise ValueError(f"image {image_id!r}: masks must be [H, W, N], got shape "
                         f"{masks.shape}")
    if order == "F":
        masks = _transposed(masks)
    rows = [(image_id, rle) for rle in rle_encode_instances(masks) if rle]
    return rows or [(image_id, "")]


def write_submission(path, rows, order="C"):
    """Writes ``id,predicted`` rows (DSB 2018: ``ImageId,EncodedPixels``) to a CSV atomically.

    The file is written next to ``path`` under a temporary name and renamed,
    so an interrupted run never leaves a truncated submission.

    Args:
        path: output CSV path.
        rows: iterable of ``(id, rle)`` pairs (see :func:`submission_rows`).
        order: "C" writes the Sartorius header ``id,predicted``, "F" the DSB
            2018 header ``ImageId,EncodedPixels``; the rows must have been
            encoded in that order (``submission_rows(..., order=order)``).

    Returns:
        int, the number of rows written (header excluded).
    """
    header = _header(order)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"directory of the submission does not exist: "
                                f"{directory}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".submission-", suffix=".csv", dir=directory)
    except OSError as error:
        raise type(error)(error.errno, f"cannot write the submission {path!r}: "
                                       f"{error.strerror or error}") from error
    count = 0
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            for k, row in enumerate(rows):
                if len(row) != 2:
                    raise ValueError(f"rows[{k}] must be (id, rle), got {row!r}")
                writer.writerow((str(row[0]), str(row[1])))
                count += 1
        os.chmod(tmp, 0o644)          # mkstemp creates the file 0600
        os.replace(tmp, path)
    except OSError as error:          # disk full, folder removed, path is a folder ...
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise type(error)(error.errno, f"cannot write the submission {path!r}: "
                                       f"{error.strerror or error}") from error
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return count


def read_submission(path, order="C"):
    """Reads a submission CSV.

    Args:
        path: CSV path.
        order: "C" expects the header ``id,predicted`` (Sartorius), "F"
            ``ImageId,EncodedPixels`` (DSB 2018).

    Returns:
        list of ``(line number, id, predicted)`` tuples (the header is line 1).

    Raises:
        FileNotFoundError: no such file.
        ValueError: wrong header or a row without exactly two fields.
    """
    expected = _header(order)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"submission file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        found = None if header is None else tuple(h.strip() for h in header)
        if found != expected:
            other = [o for o, h in HEADERS.items() if h == found]
            hint = (f" (that is the header of order={other[0]!r}: pass order={other[0]!r})"
                    if other else "")
            raise ValueError(f"{path}: line 1: header must be '{','.join(expected)}' "
                             f"(order={order!r}), got {header!r}{hint}")
        rows = []
        for row in reader:
            line = reader.line_num
            if len(row) != 2:
                raise ValueError(f"{path}: line {line}: expected 2 fields "
                                 f"({', '.join(expected)}), got {len(row)}: {row!r}")
            rows.append((line, row[0], row[1]))
    return rows


def _checked_runs(text, shape, where):
    """``[R, 2]`` (start, length) runs of one row's RLE, under the submission rules."""
    try:
        runs = parse_runs(text)
        check_runs(runs, shape, strict=True)
    except ValueError as error:
        raise ValueError(f"{where}: malformed RLE: {error}") from None
    return runs


def validate_submission(path, image_shapes, expected_ids=None, order="C"):
    """Checks a submission file the way the competition does.

    Checks: the header is ``id,predicted`` (``order="F"``: ``ImageId,
    EncodedPixels``); every row has two fields; every
    id is a known image; every RLE is well formed (integers, start/length
    pairs, starts >= 1, lengths >= 1, runs sorted and disjoint: see
    :func:`mrcnn.data.rle.check_runs` with ``strict=True``) and lies inside
    its image; an empty ``predicted`` appears only as the single row of
    an image; no pixel belongs to two instances of an image; every expected
    id has at least one row.

    Args:
        path: CSV path.
        image_shapes: dict ``{image id: (H, W)}``; ids are compared as strings.
        expected_ids: ids that must appear (default: all of ``image_shapes``).
        order: "C" (Sartorius, row-major runs) or "F" (DSB 2018, column-major
            runs); sets the header and how a shared pixel is reported.

    Returns:
        dict with ``rows``, ``images`` and ``instances`` counts.

    Raises:
        FileNotFoundError: missing file.
        ValueError: the first problem found, naming the line(s), the image id
            and what was expected.
    """
    _header(order)
    shapes = {}
    for key, shape in image_shapes.items():
        if len(shape) < 2:
            raise ValueError(f"image_shapes[{key!r}] must be (H, W), got {shape!r}")
        shapes[str(key)] = (int(shape[0]), int(shape[1]))
    expected = set(shapes) if expected_ids is None else {str(i) for i in expected_ids}
    unknown = sorted(expected - set(shapes))
    if unknown:
        raise ValueError(f"expected ids without a shape in image_shapes: {unknown[:10]}")
    rows = read_submission(path, order)

    per_image = {}                 # id -> list of (line, runs)
    for line, image_id, predicted in rows:
        where = f"{path}: line {line} (id {image_id!r})"
        if image_id not in expected:
            raise ValueError(f"{where}: id is not one of the expected image ids")
        runs = _checked_runs(predicted, shapes[image_id], where)
        per_image.setdefault(image_id, []).append((line, runs))

    instances = 0
    for image_id, entries in per_image.items():
        empty = [line for line, runs in entries if runs.size == 0]
        if empty and len(entries) > 1:
            raise ValueError(f"{path}: line {empty[0]} (id {image_id!r}): empty "
                             f"prediction beside {len(entries) - 1} instance rows; an "
                             f"empty row is only allowed as an image's single row")
        instances += len(entries) - len(empty)
        _check_disjoint(path, image_id, entries, shapes[image_id], rle_order=order)

    missing = sorted(expected - set(per_image))
    if missing:
        raise ValueError(f"{path}: {len(missing)} expected image ids have no row, "
                         f"e.g. {missing[:10]}; every image needs at least one row "
                         f"(an empty 'predicted' when nothing was found)")
    return {"rows": len(rows), "images": len(per_image), "instances": instances}


def _check_disjoint(path, image_id, entries, shape, rle_order):
    """Raises if two rows of one image cover a common pixel (interval sweep)."""
    lines = np.concatenate([np.full(len(runs), line) for line, runs in entries])
    runs = np.concatenate([runs for _, runs in entries]).reshape(-1, 2)
    if len(runs) < 2:
        return
    order = np.argsort(runs[:, 0], kind="stable")
    starts = runs[order, 0]
    ends = starts + runs[order, 1]                      # exclusive
    reach = np.maximum.accumulate(ends)
    bad = np.flatnonzero(starts[1:] < reach[:-1])
    if bad.size:
        k = bad[0] + 1
        other = np.flatnonzero(ends[:k] > starts[k])[0]
        pixel = int(starts[k])                          # 1-indexed, in rle_order
        if rle_order == "F":
            x, y = divmod(pixel - 1, shape[0])
        else:
            y, x = divmod(pixel - 1, shape[1])
        raise ValueError(f"{path}: lines {lines[order[other]]} and {lines[order[k]]} "
                         f"(id {image_id!r}) share pixel {pixel} (row {y}, column {x}); "
                         f"instances must not overlap")
