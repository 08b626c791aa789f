"""Ground truth and predictions as the evaluation functions take them (NumPy).

* A ground-truth item is a ``(masks, class_ids)`` pair or a dict with
  ``masks`` and ``class_ids``; ``masks`` are bool ``[H, W, N]``, an integer
  label image ``[H, W]`` (0 = background) or
  :class:`~mrcnn.data.masks.sparse.SparseMasks`.
* A prediction is a ``detect()`` result dict (``rois`` pixel boxes
  ``[N, (y1, x1, y2, x2)]`` with y2/x2 exclusive, ``class_ids``, ``scores``,
  ``masks`` dense or sparse); it is kept in compact form (sparse masks).
* Class keys: a class id, or its name when ``class_names`` is given.
"""

import numpy as np

from mrcnn.data.masks.sparse import SparseMasks
from mrcnn.inference.results import compact

__all__ = ["as_ground_truth", "as_prediction", "as_sparse_masks", "class_key"]


def as_sparse_masks(masks, name):
    """Binary :class:`SparseMasks` of bool ``[H, W, N]``, a label image ``[H, W]``
    or SparseMasks (soft values dropped).

    Raises:
        ValueError: for an array of another number of dimensions.
    """
    if isinstance(masks, SparseMasks):
        return masks.binary()
    masks = np.asarray(masks)
    if masks.ndim == 2:
        return SparseMasks.from_labels(masks)
    if masks.ndim == 3:
        return SparseMasks.from_dense(masks)
    raise ValueError(f"{name}: masks must be bool [H, W, N], a label image [H, W] "
                     f"or SparseMasks, got shape {masks.shape}")


def as_ground_truth(item, name):
    """``(SparseMasks, int32 class ids [N])`` of one ground-truth item.

    Args:
        item: ``(masks, class_ids)`` pair or dict with ``masks`` and
            ``class_ids`` (see the module docstring).
        name: what to call the item in error messages.

    Raises:
        TypeError: if ``item`` is neither a pair nor a dict.
        ValueError: for missing keys or as many class ids as masks.
    """
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
    masks = as_sparse_masks(masks, name)
    class_ids = np.asarray(class_ids).astype(np.int32).reshape(-1)
    if class_ids.size != masks.count:
        raise ValueError(f"{name}: {class_ids.size} class ids for {masks.count} masks")
    return masks, class_ids


def as_prediction(result, name):
    """A ``detect()`` result in compact form (SparseMasks masks).

    Raises:
        TypeError: if ``result`` is not a dict.
    """
    if not isinstance(result, dict):
        raise TypeError(f"{name} must be a detect() result dict, got "
                        f"{type(result).__name__}")
    return compact(result)


def class_key(class_id, class_names):
    """``int(class_id)``, or its name in ``class_names`` when given.

    Args:
        class_id: integer class id.
        class_names: None, a sequence indexed by class id (e.g.
            ``Dataset.class_names``) or a mapping id -> name.

    Raises:
        ValueError: if ``class_names`` has no entry for ``class_id``.
    """
    if class_names is None:
        return int(class_id)
    try:
        return class_names[int(class_id)]
    except (IndexError, KeyError):
        raise ValueError(f"class_names has no entry for class id {class_id}") from None
