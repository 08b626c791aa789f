"""Image meta: the per-image vector that travels with each molded image.

Layout of the 1-D float32 vector (length ``12 + num_classes``)::

    [0]        image_id
    [1:4]      original_image_shape (H, W, C) before resizing
    [4:7]      image_shape (H, W, C) after resizing and padding
    [7:11]     window (y1, x1, y2, x2): the real image inside the padded one,
               in pixels of the molded image, y2/x2 exclusive
    [11]       scale applied to the original image
    [12:]      active_class_ids: 1 for classes of the image's source, else 0

Image ids are stored as float32, which is exact up to 2**24 (16,777,216).
"""

import numpy as np

# Where each part lives in the vector: the one definition of the layout,
# used by compose/parse here and by the graph layers (mrcnn.layers.image_meta).
IMAGE_ID = 0
ORIGINAL_SHAPE = slice(1, 4)
IMAGE_SHAPE = slice(4, 7)
WINDOW = slice(7, 11)
SCALE = 11
ACTIVE_CLASS_IDS = slice(12, None)
FIXED_SIZE = 12  # image_id + 3 + 3 + 4 + scale


def image_meta_size(num_classes):
    """Length of the image meta vector for `num_classes` (background included)."""
    return FIXED_SIZE + int(num_classes)


def _vector(value, length, name):
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size != length:
        raise ValueError(f"{name} must have {length} values, got {arr.size}: {value!r}")
    return arr


def compose_image_meta(image_id, original_image_shape, image_shape, window,
                       scale, active_class_ids):
    """Pack the attributes of one image into a float32 vector.

    Args:
        image_id: int, the image's index in its Dataset.
        original_image_shape: (H, W, C) before resizing.
        image_shape: (H, W, C) after resizing and padding.
        window: (y1, x1, y2, x2) in pixels of the resized image; the region
            holding the real image (y2, x2 exclusive).
        scale: float, the scale factor applied to the original image.
        active_class_ids: [num_classes] ints, 1 for classes that the image's
            dataset can contain.

    Returns:
        float32 [12 + num_classes] vector (layout in the module docstring).
    """
    active = np.asarray(active_class_ids, dtype=np.float64).ravel()
    if active.size < 1:
        raise ValueError("active_class_ids must have one value per class "
                         "(background included), got an empty array")
    meta = np.concatenate([
        [float(image_id)],
        _vector(original_image_shape, 3, "original_image_shape"),
        _vector(image_shape, 3, "image_shape"),
        _vector(window, 4, "window"),
        [float(scale)],
        active,
    ])
    return meta.astype(np.float32)


def parse_image_meta(meta):
    """Unpack image meta vector(s) into their parts.

    Args:
        meta: [meta_size] or [batch, meta_size] array made by
            `compose_image_meta` (meta_size = 12 + num_classes).

    Returns:
        dict with numpy values; for a [batch, meta_size] input every value
        gains a leading batch axis:
            image_id: int64 scalar.
            original_image_shape: int32 [3].
            image_shape: int32 [3].
            window: int32 [4] (y1, x1, y2, x2) in pixels of the molded image.
            scale: float32 scalar.
            active_class_ids: int32 [num_classes].
    """
    meta = np.asarray(meta)
    if meta.ndim not in (1, 2) or meta.shape[-1] < FIXED_SIZE + 1:
        raise ValueError(f"image meta must be [meta_size] or [batch, meta_size] with "
                         f"meta_size = 12 + num_classes >= 13, got shape {meta.shape}")

    def ints(part, dtype=np.int32):
        return np.round(part).astype(dtype)

    return {
        "image_id": ints(meta[..., IMAGE_ID], np.int64),
        "original_image_shape": ints(meta[..., ORIGINAL_SHAPE]),
        "image_shape": ints(meta[..., IMAGE_SHAPE]),
        "window": ints(meta[..., WINDOW]),
        "scale": meta[..., SCALE].astype(np.float32),
        "active_class_ids": ints(meta[..., ACTIVE_CLASS_IDS]),
    }
