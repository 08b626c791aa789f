"""Fit an image of any size to the model's fixed input shape.

`fit_image` applies the Config's resize mode (`resize_image`) and then pads
the result, centred, to Config.IMAGE_SHAPE, so every model input has the same
static shape (needed for XLA/JAX compilation). The returned window and
padding describe where the real image sits, for masks, boxes and unmolding.
"""

import numpy as np

from mrcnn.data.image import resize_image


def _pad_to(image, target_hw, window, padding):
    h, w = image.shape[:2]
    th, tw = int(target_hw[0]), int(target_hw[1])
    if h > th or w > tw:
        raise ValueError(
            f"image is {h}x{w} after resizing, larger than the model input "
            f"{th}x{tw} (Config.IMAGE_SHAPE); use IMAGE_RESIZE_MODE 'square' or "
            f"'crop', or set IMAGE_SHAPE to at least the image size rounded up to 64")
    top, left = (th - h) // 2, (tw - w) // 2
    extra = [(top, th - h - top), (left, tw - w - left)]
    if top or left or th != h or tw != w:
        image = np.pad(image, extra + [(0, 0)] * (image.ndim - 2))
    window = (window[0] + top, window[1] + left, window[2] + top, window[3] + left)
    padding = [(padding[0][0] + extra[0][0], padding[0][1] + extra[0][1]),
               (padding[1][0] + extra[1][0], padding[1][1] + extra[1][1]), (0, 0)]
    return image, window, padding


def fit_image(image, config, rng=None, training=True):
    """Resize and pad an image to the model input shape.

    Args:
        image: [H, W, C] uint8 image.
        config: a Config (IMAGE_RESIZE_MODE, IMAGE_MIN_DIM, IMAGE_MAX_DIM,
            IMAGE_MIN_SCALE, IMAGE_SHAPE).
        rng: np.random.Generator for "crop" mode.
        training: "crop" mode is for training only; at inference it raises.

    Returns:
        image [IMAGE_SHAPE[0], IMAGE_SHAPE[1], C], window (y1, x1, y2, x2)
        of the real image in it, scale, padding [(top, bottom), (left, right),
        (0, 0)] and crop (y, x, h, w) or None, as `resize_image`.
    """
    mode = config.IMAGE_RESIZE_MODE
    if mode == "crop" and not training:
        raise ValueError(
            "IMAGE_RESIZE_MODE 'crop' takes random crops and is for training only; "
            "build the inference model with a config whose mode is 'none', 'square' or "
            "'pad64' and whose IMAGE_SHAPE covers the full image")
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE, mode=mode, rng=rng)
    image, window, padding = _pad_to(image, config.IMAGE_SHAPE[:2], window, padding)
    return image, window, scale, padding, crop
