"""Intersection over union of boxes and of instance masks (NumPy).

The one place where IoU is computed on the NumPy side. Matterport's
``compute_iou`` / ``compute_overlaps`` / ``compute_overlaps_masks``
(:mod:`mrcnn.data.boxes`), :class:`~mrcnn.data.masks.sparse.SparseMasks`
and the evaluation metrics all call the functions below.

* Boxes are pixel ``[N, (y1, x1, y2, x2)]`` with ``y2``/``x2`` EXCLUSIVE
  (height ``y2 - y1``); a box with ``y2 <= y1`` or ``x2 <= x1`` is empty.
* Masks are bool ``[H, W, N]`` (instances last) or an integer label image
  ``[H, W]`` (0 = background, each other value one instance, taken in
  increasing label order). Mask IoUs are a sparse matrix product of the
  flattened masks (:func:`instance_matrix`), so time and memory grow with the
  number of foreground pixels, not with ``H * W * N``.
* A pair whose union is empty (two empty boxes or masks) has IoU 0, never NaN.

    box_iou(boxes1, boxes2)              # [N1, N2]
    mask_iou(masks1, masks2)             # [N1, N2]
    iou_from_matrices(instance_matrix(masks1), sparse_masks.matrix())
"""

import numpy as np
import scipy.sparse

__all__ = [
    "as_boxes",
    "box_areas",
    "box_intersection",
    "box_iou",
    "instance_matrix",
    "iou_from_intersection",
    "iou_from_matrices",
    "mask_iou",
    "pairwise_iou_from_matrix",
    "pixel_matrix",
]


# ---------------------------------------------------------------------------
# IoU from intersections and areas (shared by boxes and masks)
# ---------------------------------------------------------------------------

def iou_from_intersection(intersection, areas1, areas2):
    """IoU from pairwise intersections and the areas of both sets.

    Args:
        intersection: float ``[N1, N2]`` intersection areas.
        areas1: ``[N1]`` areas of the first set.
        areas2: ``[N2]`` areas of the second set.

    Returns:
        ``[N1, N2]`` array of ``intersection``'s dtype:
        ``intersection / (areas1 + areas2 - intersection)``, 0 where that
        union is not positive (two empty boxes or masks).
    """
    union = areas1[:, None] + areas2[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection),
                     where=union > 0)


# ---------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------

def as_boxes(boxes, name="boxes", dtype=np.float32):
    """``boxes`` as a ``[N, (y1, x1, y2, x2)]`` array of ``dtype``.

    An empty 1-D input is read as ``[0, 4]``.

    Raises:
        ValueError: for any other shape than ``[N, 4]``, naming ``name``.
    """
    arr = np.asarray(boxes)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape [N, 4] as (y1, x1, y2, x2), got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def box_areas(boxes):
    """Areas ``[N]`` of ``[N, (y1, x1, y2, x2)]`` boxes; inverted boxes are empty (0)."""
    return (np.maximum(boxes[:, 2] - boxes[:, 0], 0)
            * np.maximum(boxes[:, 3] - boxes[:, 1], 0))


def box_intersection(boxes1, boxes2, dtype=np.float64):
    """Intersection area of every pair of boxes of two sets.

    Args:
        boxes1: ``[N1, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive.
        boxes2: ``[N2, (y1, x1, y2, x2)]``, same coordinate frame.
        dtype: float dtype the arithmetic is done in.

    Returns:
        ``[N1, N2]`` array of ``dtype``; 0 for disjoint or empty boxes.

    Raises:
        ValueError: if a set is not shaped ``[N, 4]``.
    """
    b1 = as_boxes(boxes1, "boxes1", dtype)[:, None, :]
    b2 = as_boxes(boxes2, "boxes2", dtype)[None, :, :]
    ih = np.maximum(np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0], b2[..., 0]), 0)
    iw = np.maximum(np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1], b2[..., 1]), 0)
    return ih * iw


def box_iou(boxes1, boxes2, dtype=np.float64):
    """IoU between every pair of boxes of two sets.

    Args:
        boxes1: ``[N1, (y1, x1, y2, x2)]`` pixel boxes, y2/x2 exclusive (or
            normalized boxes: IoU does not depend on the scale).
        boxes2: ``[N2, (y1, x1, y2, x2)]``, same coordinate frame.
        dtype: float dtype of the arithmetic and of the result.

    Returns:
        ``[N1, N2]`` IoU matrix of ``dtype``; 0 where the union is empty (two
        zero-area boxes). Inverted boxes (``y2 < y1`` or ``x2 < x1``) are
        empty.

    Raises:
        ValueError: if a set is not shaped ``[N, 4]``.
    """
    boxes1 = as_boxes(boxes1, "boxes1", dtype)
    boxes2 = as_boxes(boxes2, "boxes2", dtype)
    return iou_from_intersection(box_intersection(boxes1, boxes2, dtype),
                                 box_areas(boxes1), box_areas(boxes2))


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------

def pixel_matrix(instance, pixel, count, num_pixels):
    """Sparse 0/1 matrix of (instance, pixel) pairs.

    Args:
        instance: int ``[P]`` instance index of each pixel, in ``[0, count)``.
        pixel: int ``[P]`` row-major pixel index ``y * W + x``, in
            ``[0, num_pixels)``; no (instance, pixel) pair twice.
        count: number of instances ``N``.
        num_pixels: ``H * W``.

    Returns:
        ``scipy.sparse.csr_matrix`` ``[N, H*W]``, float64 ones on the pairs.
    """
    instance = np.asarray(instance, dtype=np.int64).reshape(-1)
    pixel = np.asarray(pixel, dtype=np.int64).reshape(-1)
    if instance.size > 1 and np.any(instance[1:] < instance[:-1]):
        order = np.argsort(instance, kind="stable")
        instance, pixel = instance[order], pixel[order]
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.bincount(instance, minlength=count), out=indptr[1:])
    return scipy.sparse.csr_matrix((np.ones(pixel.size), pixel, indptr),
                                   shape=(count, num_pixels))


def instance_matrix(masks, name="masks"):
    """Flattens instance masks into a sparse ``[N, H*W]`` 0/1 matrix.

    Args:
        masks: bool (or 0/1 numeric; nonzero is on) ``[H, W, N]``, or an
            integer / bool label image ``[H, W]`` (0 = background; instances
            are the distinct nonzero labels in increasing order).
        name: argument name used in error messages.

    Returns:
        ``scipy.sparse.csr_matrix`` ``[N, H*W]``, float64 ones on each
        instance's row-major pixels ``y * W + x``.

    Raises:
        ValueError: for another number of dimensions or a negative label.
        TypeError: for a 2-D label image that is neither integer nor bool.
    """
    masks = np.asarray(masks)
    if masks.ndim == 3:
        height, width, count = masks.shape
        flat = masks.reshape(height * width, count)
        # Scan the instances only at foreground pixels (usually a small part
        # of the image): far cheaper than a nonzero over all H * W * N values.
        foreground = np.flatnonzero(flat.any(axis=1))
        rows, instance = np.nonzero(flat[foreground])
        return pixel_matrix(instance, foreground[rows], count, height * width)
    if masks.ndim == 2:
        if masks.dtype != bool and not np.issubdtype(masks.dtype, np.integer):
            raise TypeError(
                f"{name}: a 2-D label image must have an integer dtype, got "
                f"{masks.dtype}; pass instance masks as bool [H, W, N].")
        if masks.dtype != bool and masks.size and masks.min() < 0:
            raise ValueError(
                f"{name}: label image values must be >= 0 (0 = background), "
                f"got minimum {masks.min()}.")
        flat = masks.reshape(-1)
        pixel = np.flatnonzero(flat)
        labels, instance = np.unique(flat[pixel], return_inverse=True)
        return pixel_matrix(instance, pixel, labels.size, flat.size)
    raise ValueError(
        f"{name} must be bool masks [H, W, N] or a label image [H, W], got "
        f"shape {masks.shape}.")


def _areas(matrix):
    """float64 ``[N]`` pixel counts of the rows of a 0/1 CSR matrix."""
    return np.diff(matrix.indptr).astype(np.float64)


def iou_from_matrices(matrix1, matrix2):
    """IoU between every row of two sparse 0/1 instance matrices.

    Args:
        matrix1: CSR ``[N1, H*W]`` from :func:`instance_matrix` or
            :func:`pixel_matrix` (``SparseMasks.matrix()``).
        matrix2: CSR ``[N2, H*W]``, same ``H*W``.

    Returns:
        float64 ``[N1, N2]``; 0 where both masks are empty.
    """
    n1, n2 = matrix1.shape[0], matrix2.shape[0]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    intersection = (matrix1 @ matrix2.T).toarray()
    return iou_from_intersection(intersection, _areas(matrix1), _areas(matrix2))


def pairwise_iou_from_matrix(matrix):
    """IoU of every pair of distinct, intersecting rows of one instance matrix.

    Args:
        matrix: CSR ``[N, H*W]`` 0/1 instance matrix.

    Returns:
        ``(i, j, iou)``: int64 ``[K]``, int64 ``[K]``, float64 ``[K]`` with
        ``i != j`` and ``iou > 0``; both orders of a pair are listed.
    """
    if matrix.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    inter = (matrix @ matrix.T).tocoo()
    i, j, v = inter.row.astype(np.int64), inter.col.astype(np.int64), inter.data
    off = i != j
    i, j, v = i[off], j[off], v[off]
    areas = _areas(matrix)
    return i, j, v / (areas[i] + areas[j] - v)


def mask_iou(masks1, masks2, names=("masks1", "masks2")):
    """IoU between every pair of instances of two mask sets.

    Args:
        masks1: bool ``[H, W, N1]`` or integer label image ``[H, W]``.
        masks2: bool ``[H, W, N2]`` or integer label image ``[H, W]``, same
            height and width.
        names: the two argument names used in error messages.

    Returns:
        float64 ``[N1, N2]``; 0 where both masks are empty.

    Raises:
        ValueError: if the height and width differ, or as
            :func:`instance_matrix`.
    """
    masks1, masks2 = np.asarray(masks1), np.asarray(masks2)
    matrix1 = instance_matrix(masks1, names[0])
    matrix2 = instance_matrix(masks2, names[1])
    if masks1.shape[:2] != masks2.shape[:2]:
        raise ValueError(
            f"{names[0]} is {masks1.shape[:2]} pixels but {names[1]} is "
            f"{masks2.shape[:2]}; they must have the same height and width")
    return iou_from_matrices(matrix1, matrix2)
