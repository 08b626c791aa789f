"""Fitting images of any size to the model's fixed input: resize, crop, pad.

One set of steps serves training and inference:

1. scale: Config.IMAGE_SCALE (every image resized by that factor first; at
   training a random factor of IMAGE_SCALE_RANGE instead, `draw_image_scale`),
   then Matterport's IMAGE_RESIZE_MODE ("none", "square", "pad64", "crop"),
   composed into one resize by `resize_image` (Matterport's function plus
   the `factor`; also used by `scale_for_model`, the deterministic part the
   training cache stores);
2. "crop" mode, training only: a random IMAGE_MIN_DIM square
   (`crop_origin`);
3. zero padding to Config.IMAGE_SHAPE below and right of the image (it sits
   in the input's top-left corner), so every model input has the same static
   shape (`input_padding`; why the corner: see there).

`fit_image` runs the three steps on an image (inference, inspection, the
reference in the tests); the training pipeline (`mrcnn.data.sample`) runs
step 1 when preparing a sample and steps 2-3 after augmentation, on the
image and its instances together. `resize_mask` applies a resize to masks and
`undo_resize_boxes` maps boxes back to the original image.

Pixel boxes are (y1, x1, y2, x2) with y2, x2 exclusive.
"""

import math

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
                 rng=None, factor=1.0):
    """Resize an image keeping its aspect ratio (Matterport semantics).

    `factor` (Config.IMAGE_SCALE) resizes the image first; the mode then
    works on the resized size (its min_dim / max_dim / min_scale rules as
    below) and both are applied as one resize, so the returned `scale` is
    their product. With factor 1 this is Matterport's function.

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
        factor: float > 0, resize factor applied before the mode's (1: none).

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
    factor = check_factor(factor)
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        if factor != 1:
            image = _resize(image, scaled_size((h, w), factor), order=1)
            window, scale = (0, 0) + image.shape[:2], factor
        return image, window, scale, padding, crop
    if mode == "square" and not max_dim:
        raise ValueError(f"resize mode 'square' needs max_dim, got {max_dim!r}")
    if mode == "crop" and not min_dim:
        raise ValueError(f"resize mode 'crop' needs min_dim (the crop size), got {min_dim!r}")

    # The mode's rules on the size after `factor` (floats: one rounding at the end).
    fh, fw = h * factor, w * factor
    if min_dim:
        scale = max(1, min_dim / min(fh, fw))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        long_side = max(fh, fw)
        if round(long_side * scale) > max_dim:
            scale = max_dim / long_side
    scale = scale * factor
    if scale != 1:
        image = _resize(image, scaled_size((h, w), scale), order=1)
    h, w = image.shape[:2]

    if mode == "square":
        top, bottom = _centered_padding(h, max_dim)
        left, right = _centered_padding(w, max_dim)
    elif mode == "pad64":
        target_h, target_w = padded_size((h, w))
        top, bottom = _centered_padding(h, target_h)
        left, right = _centered_padding(w, target_w)
    else:  # crop
        y, x = crop_origin((h, w), min_dim, rng)
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
        new_h, new_w = scaled_size((h, w), scale)
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


def crop_origin(shape, size, rng=None):
    """Top-left corner ``(y, x)`` of a random ``size`` x ``size`` crop of a ``shape`` image.

    Drawn uniformly with `rng` (a Generator, a seed or None), y first; an
    image smaller than the crop gives 0 on that axis.
    """
    rng = np.random.default_rng(rng)
    h, w = int(shape[0]), int(shape[1])
    y = int(rng.integers(0, max(h - size, 0) + 1))
    x = int(rng.integers(0, max(w - size, 0) + 1))
    return y, x


def input_padding(shape, input_shape, what="image"):
    """``(top, bottom, left, right)`` zero padding that fits `shape` into `input_shape`.

    The image goes to the input's top-left corner: all the padding lies below
    and right of it (``top == left == 0``). A model trained on crops (no
    padding) saw image edges only as its convolutions' own zero padding;
    whatever the padding holds (`ZeroOutsideWindow` zeroes it), the layers
    below turn a padded band into features a crop never produced, and the
    objects along those edges suffer. In the corner two of the four edges stay
    as in training. Measured on the real-nuclei benchmark's four held-out
    256x256 tiles in a 320x320 input (benchmarks/RESULTS.md, "Where the image
    sits in a larger input"): mAP-IoU 0.571 unpadded, 0.550 in the corner,
    0.506 centred. Matterport's "square" and "pad64" modes centre their own
    padding (`resize_image`), as the model saw it in training.

    Raises:
        ValueError: the image is larger than the model input (names both
            sizes and what to change).
    """
    h, w = int(shape[0]), int(shape[1])
    th, tw = int(input_shape[0]), int(input_shape[1])
    if h > th or w > tw:
        raise ValueError(
            f"the {what} is {h}x{w} after resizing, larger than the model input "
            f"{th}x{tw} (Config.IMAGE_SHAPE); use IMAGE_RESIZE_MODE 'square' or 'crop', "
            f"set IMAGE_SHAPE to at least the image size rounded up to 64, lower "
            f"IMAGE_SCALE, or crop it (augment.RandomCrop; Rot90(ks=(0, 2)) for non-square "
            f"inputs); at inference, run it in overlapping tiles of the model input: "
            f"mrcnn.inference.tiling.detect_tiled(model, image) (or TiledModel(model))")
    return 0, th - h, 0, tw - w


def check_factor(factor, name="factor"):
    """`factor` as a float, or ValueError/TypeError unless it is a finite number > 0."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number > 0 (an image resize factor), got "
                        f"{factor!r} ({type(factor).__name__})")
    factor = float(factor)
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"{name} must be a finite number > 0 (an image resize factor), "
                         f"got {factor!r}")
    return factor


def scaled_size(shape, factor):
    """(height, width) of a ``shape`` image resized by `factor` (rounded, at least 1)."""
    return (max(1, int(round(int(shape[0]) * factor))),
            max(1, int(round(int(shape[1]) * factor))))


def padded_size(shape, multiple=64):
    """(height, width) of `shape` with each side rounded up to a multiple of `multiple`."""
    return tuple(-(-int(v) // multiple) * multiple for v in shape[:2])


def prepared_image_scale(config):
    """The IMAGE_SCALE factor of step 1 in training's deterministic (cached) stage.

    Config.IMAGE_SCALE, or 1.0 when Config.IMAGE_SCALE_RANGE is set: then
    the random factor of each sample (`draw_image_scale`) is applied after
    the cache, so no random factor is ever frozen into a cached sample.
    """
    if getattr(config, "IMAGE_SCALE_RANGE", None) is not None:
        return 1.0
    return check_factor(getattr(config, "IMAGE_SCALE", 1.0), "Config.IMAGE_SCALE")


def draw_image_scale(config, rng=None):
    """The IMAGE_SCALE factor of one training sample.

    Drawn log-uniformly in Config.IMAGE_SCALE_RANGE ``(lo, hi)`` with `rng`
    (one draw) when that is set, else Config.IMAGE_SCALE (no draw).
    """
    low_high = getattr(config, "IMAGE_SCALE_RANGE", None)
    if low_high is None:
        return check_factor(getattr(config, "IMAGE_SCALE", 1.0), "Config.IMAGE_SCALE")
    low, high = (check_factor(v, "Config.IMAGE_SCALE_RANGE") for v in low_high)
    if low == high:
        return low
    rng = np.random.default_rng(rng)
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def scale_for_model(image, config, factor=None):
    """Step 1, the deterministic resize: IMAGE_SCALE, then Config.IMAGE_RESIZE_MODE.

    "crop" mode is scaled as Matterport's crop mode scales (short side at
    least IMAGE_MIN_DIM, at least IMAGE_MIN_SCALE) but not cropped: the
    random crop is step 2.

    Args:
        image: [H, W, C] image.
        config: the Config.
        factor: the IMAGE_SCALE factor; default `prepared_image_scale(config)`.

    Returns:
        image, window (y1, x1, y2, x2) of the real image in it, scale (the
        product of the factor and the mode's), padding [(top, bottom),
        (left, right), (0, 0)] (as `resize_image`).
    """
    factor = prepared_image_scale(config) if factor is None else factor
    if config.IMAGE_RESIZE_MODE == "crop":
        image, window, scale, _, _ = resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE, mode="pad64",
            factor=factor)
        y1, x1, y2, x2 = window
        return image[y1:y2, x1:x2], (0, 0, y2 - y1, x2 - x1), scale, [(0, 0)] * 3
    image, window, scale, padding, _ = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE, mode=config.IMAGE_RESIZE_MODE, factor=factor)
    return image, window, scale, padding


def fit_image(image, config, rng=None, training=True, factor=None):
    """Resize (and in "crop" mode crop) an image, then pad it to the model input shape.

    Args:
        image: [H, W, C] image.
        config: a Config (IMAGE_SCALE, IMAGE_RESIZE_MODE, IMAGE_MIN_DIM,
            IMAGE_MAX_DIM, IMAGE_MIN_SCALE, IMAGE_SHAPE).
        rng: np.random.Generator (or seed) for "crop" mode.
        training: "crop" mode is for training only; at inference it raises.
        factor: the IMAGE_SCALE factor; default Config.IMAGE_SCALE (also at
            training: the random factors of IMAGE_SCALE_RANGE are drawn by
            the training pipeline, `mrcnn.data.sample.finish_sample`).

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
    if factor is None:
        factor = check_factor(getattr(config, "IMAGE_SCALE", 1.0), "Config.IMAGE_SCALE")
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE, mode=mode, rng=rng, factor=factor)
    top, bottom, left, right = input_padding(image.shape, config.IMAGE_SHAPE)
    if top or bottom or left or right:
        image = np.pad(image, [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2))
    window = (window[0] + top, window[1] + left, window[2] + top, window[3] + left)
    padding = [(padding[0][0] + top, padding[0][1] + bottom),
               (padding[1][0] + left, padding[1][1] + right), (0, 0)]
    return image, window, scale, padding, crop
