"""Image resizing, molding and conversion (NumPy side).

`resize_image` turns an image of any size into the model's input size and
returns what is needed to go back: the `window` holding the real image inside
the padded one, the `scale` applied, the `padding` added and the `crop` taken.
`resize_mask` applies the same transform to instance masks, and
`undo_resize_boxes` maps boxes from the molded image back to the original.

Pixel boxes are (y1, x1, y2, x2) with y2, x2 exclusive.
"""

import os

import numpy as np
import skimage.transform

RESIZE_MODES = ("none", "square", "pad64", "crop")


def _resize(image, output_shape, order):
    """skimage resize without anti-aliasing, keeping the dtype.

    Integer images are rounded to the nearest value before the cast back
    (a plain cast would truncate 254.9999 to 254).
    """
    out = skimage.transform.resize(
        image, output_shape, order=order, mode="constant", cval=0, clip=True,
        preserve_range=True, anti_aliasing=False)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


def _centered_padding(size, target):
    """(before, after) padding that centres `size` inside `target`."""
    before = (target - size) // 2
    return before, target - size - before


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square",
                 rng=None):
    """Resize an image keeping its aspect ratio (Matterport semantics).

    Modes:
        none: no change. window is the full image, scale 1.
        square: scale up so the short side is `min_dim` (never down for it),
            then down if needed so the long side is at most `max_dim`; pad
            with zeros to `max_dim` x `max_dim`, centred.
        pad64: scale up so the short side is `min_dim` (when given; `max_dim`
            is not applied, as in Matterport), then pad each side with zeros
            to the next multiple of 64, centred.
        crop: scale up so the short side is at least `min_dim`, then take a
            random `min_dim` x `min_dim` crop. No padding.

    `min_scale` forces at least that scale-up (in "square" the `max_dim` limit
    still wins).

    Args:
        image: [H, W] or [H, W, C] array of any dtype.
        min_dim: int or None, minimum length of the short side.
        max_dim: int or None, maximum length of the long side ("square").
        min_scale: float or None, minimum scale factor.
        mode: one of "none", "square", "pad64", "crop".
        rng: np.random.Generator, an int seed or None; used only by "crop".

    Returns:
        image: the resized image, same dtype as the input.
        window: (y1, x1, y2, x2) of the real image inside the returned one,
            in its pixels, y2/x2 exclusive.
        scale: float, factor applied to the original image.
        padding: [(top, bottom), (left, right), (0, 0)] zeros added.
        crop: (y, x, h, w) of the crop in the scaled image ("crop" mode),
            else None.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; valid modes are {RESIZE_MODES}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be [H, W] or [H, W, C], got shape {image.shape}")
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode == "square" and not max_dim:
        raise ValueError(f"resize mode 'square' needs max_dim, got {max_dim!r}")
    if mode == "crop" and not min_dim:
        raise ValueError(f"resize mode 'crop' needs min_dim (the crop size), got {min_dim!r}")

    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        long_side = max(h, w)
        if round(long_side * scale) > max_dim:
            scale = max_dim / long_side
    if scale != 1:
        image = _resize(image, (round(h * scale), round(w * scale)), order=1)
    h, w = image.shape[:2]

    if mode == "square":
        top, bottom = _centered_padding(h, max_dim)
        left, right = _centered_padding(w, max_dim)
    elif mode == "pad64":
        top, bottom = _centered_padding(h, -(-h // 64) * 64)
        left, right = _centered_padding(w, -(-w // 64) * 64)
    else:  # crop
        rng = np.random.default_rng(rng)
        y = int(rng.integers(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        return image, (0, 0, min_dim, min_dim), scale, padding, crop

    padding = [(top, bottom), (left, right), (0, 0)]
    image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
    window = (top, left, h + top, w + left)
    return image, window, scale, padding, crop


def _nearest_indices(in_size, out_size):
    """Source index of each output pixel for a nearest-neighbour resize.

    Pixel centres are aligned as in skimage.transform.resize: output pixel i
    covers source coordinate (i + 0.5) * in / out - 0.5.
    """
    idx = np.floor((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(np.intp)
    return np.minimum(idx, in_size - 1)


def resize_mask(mask, scale, padding, crop=None):
    """Apply the transform of `resize_image` to instance masks.

    Uses nearest-neighbour sampling with the same pixel alignment as the
    image resize, over the whole [H, W, N] stack at once.

    Args:
        mask: [H, W, N] instance masks (bool or any dtype).
        scale: the `scale` returned by `resize_image`.
        padding: the `padding` returned by `resize_image`.
        crop: the `crop` returned by `resize_image` (or None).

    Returns:
        [h, w, N] masks of the same dtype, aligned with the resized image.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [H, W, N], got shape {mask.shape}")
    h, w = mask.shape[:2]
    if scale != 1:
        new_h, new_w = round(h * scale), round(w * scale)
        rows = _nearest_indices(h, new_h)
        cols = _nearest_indices(w, new_w)
        mask = mask[rows[:, None], cols[None, :]]
    if crop is not None:
        y, x, ch, cw = crop
        return mask[y:y + ch, x:x + cw]
    pad = [tuple(p) for p in padding[:2]] + [(0, 0)]
    return np.pad(mask, pad, mode="constant", constant_values=0)


def undo_resize_boxes(boxes, window, scale, crop=None, original_shape=None):
    """Map pixel boxes from the molded image back to the original image.

    Inverse of the box transform implied by `resize_image`:
    ``original = (molded - window offset + crop offset) / scale``.
    With `original_shape`, the exact per-axis factors
    ``original size / window size`` are used instead of `scale` (they differ
    from it by the rounding of the resized size) and the boxes are clipped
    to the original image.

    Args:
        boxes: [N, (y1, x1, y2, x2)] pixel boxes in the molded image,
            y2/x2 exclusive.
        window: (y1, x1, y2, x2) returned by `resize_image`.
        scale: the `scale` returned by `resize_image`.
        crop: the `crop` returned by `resize_image` (or None).
        original_shape: optional (H, W, ...) of the original image.

    Returns:
        float64 [N, (y1, x1, y2, x2)] boxes in original-image pixels, not
        rounded (round them for integer pixel boxes).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [N, (y1, x1, y2, x2)], got shape {boxes.shape}")
    wy1, wx1, wy2, wx2 = (float(v) for v in window)
    shift = np.array([wy1, wx1, wy1, wx1])
    if crop is not None:
        shift = shift - np.array([crop[0], crop[1], crop[0], crop[1]], dtype=np.float64)
    factor = np.full(4, 1.0 / float(scale))
    if original_shape is not None and crop is None:
        oh, ow = float(original_shape[0]), float(original_shape[1])
        if wy2 <= wy1 or wx2 <= wx1:
            raise ValueError(f"window {tuple(window)} has no area")
        factor = np.array([oh / (wy2 - wy1), ow / (wx2 - wx1)] * 2)
    out = (boxes - shift) * factor
    if original_shape is not None:
        limits = np.array([original_shape[0], original_shape[1]] * 2, dtype=np.float64)
        out = np.clip(out, 0, limits)
    return out


def mold_image(images, config):
    """Subtract the mean pixel: uint8 RGB -> float32 model input.

    Args:
        images: [..., H, W, C] array.
        config: a Config with MEAN_PIXEL [C].

    Returns:
        float32 array of the same shape.
    """
    return np.asarray(images).astype(np.float32) - np.asarray(config.MEAN_PIXEL, np.float32)


def unmold_image(normalized_images, config):
    """Inverse of `mold_image`: add the mean pixel back, clip to 0..255, uint8."""
    images = np.asarray(normalized_images, np.float32) + np.asarray(config.MEAN_PIXEL,
                                                                    np.float32)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def to_rgb_uint8(image):
    """Convert an image to RGB uint8 [H, W, 3].

    Channels: [H, W] and [H, W, 1] grayscale are repeated to 3 channels;
    [H, W, 2] (gray + alpha) uses the gray channel; [H, W, 4] RGBA drops the
    alpha channel; [H, W, 3] is kept.

    Values:
        uint8: unchanged.
        bool: False/True -> 0/255.
        other integer types (uint16, int32 from 16-bit readers, ...): negative
            values are clipped to 0; if the maximum is below 4096 the image is
            taken to be 12-bit and 0..4095 maps to 0..255; otherwise 0..65535
            maps to 0..255 (values above 65535 are clipped). Note that a dim
            16-bit image whose values all stay below 4096 is therefore
            brightened 16x.
        float: must lie in [0, 1] (0..1 maps to 0..255); other ranges raise
            ValueError.

    Args:
        image: [H, W] or [H, W, C] array, C in 1..4.

    Returns:
        uint8 [H, W, 3].
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1..4 "
                         f"(gray, gray+alpha, RGB, RGBA), got shape {image.shape}")
    channels = image.shape[-1]
    if channels in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]

    dtype = image.dtype
    if dtype == np.uint8:
        return np.ascontiguousarray(image)
    if dtype == bool:
        return image.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(dtype, np.integer):
        values = np.clip(image.astype(np.float64), 0, 65535)
        top = 4095.0 if values.size and values.max() < 4096 else 65535.0
        return np.rint(values * (255.0 / top)).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if image.size:
            lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
            if lo < -1e-6 or hi > 1 + 1e-6 or np.isnan(image).any():
                raise ValueError(f"float images must have values in [0, 1], got range "
                                 f"[{lo}, {hi}]; convert to uint8 first (e.g. scale "
                                 f"0..255 floats with image.astype(np.uint8))")
        return np.rint(np.clip(image, 0, 1) * 255.0).astype(np.uint8)
    raise TypeError(f"unsupported image dtype {dtype}; expected bool, an integer or a "
                    f"float type")


def read_image_size(path, what):
    """(height, width) of an image file, from its header (no pixel decoding).

    Args:
        path: image file.
        what: how errors name the image, e.g. ``"nucleus image 'abc'"``.

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: if the file cannot be read as an image.
    """
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: file not found: {path!r}")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except OSError as error:
        raise ValueError(f"{what}: cannot read {path!r} as an image ({error})") from error
    return height, width
