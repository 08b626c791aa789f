"""Instance masks stored as their foreground pixels (NumPy).

A 520x704 image with 500 cells is 183 MB as a dense bool ``[H, W, N]`` array
but ~150k foreground pixels. :class:`SparseMasks` keeps only those pixels,
as (instance, row-major pixel index ``y * W + x``[, value]) triples, so
areas, boxes, IoU (a sparse matrix product over intersecting pairs only),
selection and flips cost time proportional to the foreground, not to
``H * W * N``. The post-processing steps (`mrcnn.inference.postprocess`), test-time
augmentation (`mrcnn.inference.tta`), evaluation and submission encoding use it.

    masks = SparseMasks.from_dense(dense)        # bool [H, W, N]
    masks.areas(), masks.boxes()                 # [N], [N, (y1, x1, y2, x2)]
    masks.iou(other)                             # [N, M]
    masks.to_dense()                             # bool [H, W, N]

Boxes are pixel ``(y1, x1, y2, x2)`` with y2/x2 exclusive.
"""

import numpy as np

from mrcnn.data.boxes import extract_bboxes
from mrcnn.data.iou import iou_from_matrices, pairwise_iou_from_matrix, pixel_matrix

__all__ = ["FLIPS", "SparseMasks", "check_flip", "run_starts"]

# Flip names for test-time augmentation: identity, left-right, up-down, both.
FLIPS = ("none", "lr", "ud", "lrud")


class SparseMasks:
    """Instance masks stored as their foreground pixels.

    Entries are sorted by instance, then by row-major pixel index, with no
    duplicate (instance, pixel) pair.

    Attributes:
        shape: ``(H, W)`` of the image.
        count: number of instances ``N`` (instances may be empty).
        instance: int64 ``[P]`` instance index of each stored pixel.
        pixel: int64 ``[P]`` row-major pixel index ``y * W + x``.
        value: float32 ``[P]`` soft mask values, or None for binary masks.
    """

    __slots__ = ("shape", "count", "instance", "pixel", "value")

    def __init__(self, shape, count, instance, pixel, value=None):
        """Builds masks from (instance, pixel[, value]) triples in any order.

        Args:
            shape: ``(H, W)``.
            count: number of instances ``N``.
            instance: int ``[P]`` values in ``[0, N)``.
            pixel: int ``[P]`` row-major pixel indices in ``[0, H * W)``.
            value: optional float ``[P]``; for a duplicated (instance, pixel)
                pair the first value is kept.
        """
        if len(shape) != 2:
            raise ValueError(f"shape must be (H, W), got {shape!r}")
        height, width = (int(v) for v in shape)
        count = int(count)
        if height < 0 or width < 0 or count < 0:
            raise ValueError(f"shape and count must be >= 0, got shape {shape!r}, "
                             f"count {count}")
        instance = np.asarray(instance, dtype=np.int64).reshape(-1)
        pixel = np.asarray(pixel, dtype=np.int64).reshape(-1)
        if instance.shape != pixel.shape:
            raise ValueError(f"instance and pixel must have the same length, got "
                             f"{instance.size} and {pixel.size}")
        if instance.size and (instance.min() < 0 or instance.max() >= count):
            raise ValueError(f"instance indices must lie in [0, {count}), got range "
                             f"[{instance.min()}, {instance.max()}]")
        if pixel.size and (pixel.min() < 0 or pixel.max() >= height * width):
            raise ValueError(f"pixel indices must lie in [0, {height * width}) for a "
                             f"{height}x{width} image, got range "
                             f"[{pixel.min()}, {pixel.max()}]")
        if value is not None:
            value = np.asarray(value, dtype=np.float32).reshape(-1)
            if value.shape != pixel.shape:
                raise ValueError(f"value must have one entry per pixel ({pixel.size}), "
                                 f"got {value.size}")
        key = instance * (height * width) + pixel
        if key.size > 1 and not np.all(key[1:] > key[:-1]):
            order = np.argsort(key, kind="stable")
            first = order[run_starts(key[order])]        # duplicates dropped
            instance, pixel = instance[first], pixel[first]
            value = None if value is None else value[first]
        self._set((height, width), count, instance, pixel, value)

    def _set(self, shape, count, instance, pixel, value):
        self.shape, self.count = shape, count
        self.instance, self.pixel, self.value = instance, pixel, value

    @classmethod
    def from_sorted(cls, shape, count, instance, pixel, value=None):
        """Wraps arrays already in canonical order, without any check.

        For code that builds the arrays itself (the post-processing steps):
        ``instance`` and ``pixel`` int64 ``[P]`` sorted by instance, then by
        pixel, with no duplicate pair; ``value`` float32 ``[P]`` or None.
        Use the constructor for anything else.
        """
        out = cls.__new__(cls)
        out._set(tuple(shape), int(count), instance, pixel, value)
        return out

    @classmethod
    def from_dense(cls, masks, soft=False):
        """Converts ``[H, W, N]`` masks.

        Args:
            masks: ``[H, W, N]`` array. Binary mode: nonzero pixels are on.
                Soft mode: every pixel with a value > 0 is stored with it.
            soft: keep the values (float mask probabilities).

        Returns:
            SparseMasks.
        """
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be [H, W, N], got shape {masks.shape}")
        height, width, count = masks.shape
        on = masks > 0 if soft else masks.astype(bool, copy=False)
        # Only the pixels inside each instance's tight box are gathered.
        inst, ys, xs = _box_pixels(extract_bboxes(on))
        hit = on[ys, xs, inst]
        inst, ys, xs = inst[hit], ys[hit], xs[hit]
        value = masks[ys, xs, inst].astype(np.float32) if soft else None
        return cls.from_sorted((height, width), count, inst, ys * width + xs, value)

    @classmethod
    def from_labels(cls, labels):
        """Converts an integer label image (0 = background).

        Args:
            labels: int ``[H, W]``; instances are the distinct nonzero labels,
                in increasing label order.

        Returns:
            SparseMasks with one instance per distinct label.
        """
        labels = np.asarray(labels)
        if labels.ndim != 2 or not (np.issubdtype(labels.dtype, np.integer)
                                    or labels.dtype == bool):
            raise ValueError(f"labels must be an integer [H, W] image, got shape "
                             f"{labels.shape} dtype {labels.dtype}")
        flat = labels.reshape(-1)
        pixel = np.flatnonzero(flat)
        values, inst = np.unique(flat[pixel], return_inverse=True)
        return cls(labels.shape, values.size, inst, pixel)

    def __len__(self):
        return self.count

    def __repr__(self):
        kind = "binary" if self.value is None else "soft"
        return (f"SparseMasks(shape={self.shape}, count={self.count}, "
                f"pixels={self.pixel.size}, {kind})")

    def to_dense(self):
        """bool ``[H, W, N]`` masks (soft masks: the stored pixels are on)."""
        height, width = self.shape
        out = np.zeros((height * width, self.count), dtype=bool)
        out[self.pixel, self.instance] = True
        return out.reshape(height, width, self.count)

    def to_soft(self):
        """float32 ``[H, W, N]`` values (1.0 for binary masks, 0 elsewhere)."""
        height, width = self.shape
        out = np.zeros((height * width, self.count), dtype=np.float32)
        out[self.pixel, self.instance] = 1.0 if self.value is None else self.value
        return out.reshape(height, width, self.count)

    def areas(self):
        """int64 ``[N]`` number of stored pixels per instance."""
        return np.bincount(self.instance, minlength=self.count)

    def boxes(self):
        """int32 ``[N, (y1, x1, y2, x2)]`` tight boxes, y2/x2 exclusive; 0 if empty."""
        width = self.shape[1]
        boxes = np.zeros((self.count, 4), dtype=np.int32)
        if self.pixel.size == 0:
            return boxes
        ys, xs = np.divmod(self.pixel, width)
        starts = np.flatnonzero(np.r_[True, self.instance[1:] != self.instance[:-1]])
        ends = np.r_[starts[1:], self.pixel.size] - 1
        owners = self.instance[starts]
        # Rows are sorted within an instance; columns need a reduction.
        boxes[owners, 0] = ys[starts]
        boxes[owners, 2] = ys[ends] + 1
        boxes[owners, 1] = np.minimum.reduceat(xs, starts)
        boxes[owners, 3] = np.maximum.reduceat(xs, starts) + 1
        return boxes

    def select(self, index):
        """Instances ``index`` (bool ``[N]`` or int indices, in that order)."""
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (self.count,):
                raise ValueError(f"a boolean index must have shape ({self.count},), "
                                 f"got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= self.count):
            raise ValueError(f"instance index out of range [0, {self.count}): "
                             f"{index.tolist()}")
        new_of_old = np.full(self.count, -1, dtype=np.int64)
        new_of_old[index] = np.arange(index.size)
        if np.all(np.diff(index) > 0):            # increasing: a filter
            keep = new_of_old[self.instance] >= 0
            return SparseMasks.from_sorted(self.shape, index.size,
                                    new_of_old[self.instance[keep]], self.pixel[keep],
                                    None if self.value is None else self.value[keep])
        # Reordered (or repeated) selection: gather each instance's run.
        starts = np.searchsorted(self.instance, index, side="left")
        counts = np.searchsorted(self.instance, index, side="right") - starts
        owner = np.repeat(np.arange(index.size), counts)
        src = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        src = src + np.repeat(starts, counts)
        return SparseMasks.from_sorted(self.shape, index.size, owner, self.pixel[src],
                                None if self.value is None else self.value[src])

    def binary(self, threshold=None):
        """Binary masks: pixels with ``value >= threshold`` (all stored if None)."""
        if self.value is None or threshold is None:
            return SparseMasks.from_sorted(self.shape, self.count, self.instance, self.pixel)
        keep = self.value >= threshold
        return SparseMasks.from_sorted(self.shape, self.count, self.instance[keep],
                                self.pixel[keep])

    def flip(self, flip):
        """Masks flipped by ``flip`` in :data:`FLIPS` (its own inverse)."""
        check_flip(flip)
        height, width = self.shape
        ys, xs = np.divmod(self.pixel, width)
        if "lr" in flip:
            xs = width - 1 - xs
        if "ud" in flip:
            ys = height - 1 - ys
        return SparseMasks(self.shape, self.count, self.instance, ys * width + xs,
                           self.value)

    def matrix(self):
        """``scipy.sparse.csr_matrix`` ``[N, H*W]`` with ones on the stored pixels.

        The instance matrix of :mod:`mrcnn.data.iou` (see
        :func:`~mrcnn.data.iou.iou_from_matrices`).
        """
        height, width = self.shape
        return pixel_matrix(self.instance, self.pixel, self.count, height * width)

    def iou(self, other):
        """Mask IoU with every instance of ``other``: float64 ``[N, M]``.

        0 where both masks are empty (:func:`mrcnn.data.iou.iou_from_matrices`).
        """
        if not isinstance(other, SparseMasks):
            raise TypeError(f"other must be SparseMasks, got {type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"image shapes differ: {self.shape} and {other.shape}")
        return iou_from_matrices(self.matrix(), other.matrix())

    def pairwise_iou(self):
        """IoU of every pair of distinct instances that intersect.

        Returns:
            ``(i, j, iou)``: int64 ``[K]``, int64 ``[K]``, float64 ``[K]`` with
            ``i != j``; both orders of a pair are listed.
        """
        return pairwise_iou_from_matrix(self.matrix())


def _box_pixels(boxes):
    """Every pixel of every box, instance by instance, rows then columns.

    Args:
        boxes: int ``[N, (y1, x1, y2, x2)]``, y2/x2 exclusive.

    Returns:
        ``(instance, y, x)`` int64 arrays of length ``sum of box areas``.
    """
    boxes = np.asarray(boxes, dtype=np.int64)
    y1, x1 = boxes[:, 0], boxes[:, 1]
    widths = np.maximum(boxes[:, 3] - x1, 0)
    counts = np.maximum(boxes[:, 2] - y1, 0) * widths
    inst = np.repeat(np.arange(boxes.shape[0]), counts)
    local = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    row, col = np.divmod(local, np.maximum(widths, 1)[inst])
    return inst, y1[inst] + row, x1[inst] + col


def run_starts(sorted_keys):
    """bool mask of the first element of each run of equal sorted keys.

    Args:
        sorted_keys: ``[K]`` array, sorted (equal keys adjacent).

    Returns:
        bool ``[K]``, True where ``sorted_keys[k] != sorted_keys[k - 1]``
        (and at k = 0).
    """
    return np.r_[True, sorted_keys[1:] != sorted_keys[:-1]] if sorted_keys.size \
        else np.zeros(0, bool)


def check_flip(flip):
    """Raises ValueError unless ``flip`` is one of :data:`FLIPS`."""
    if flip not in FLIPS:
        raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
