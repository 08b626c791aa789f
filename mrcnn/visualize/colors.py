"""Colours and pixels: instance colours, mask blending, images made displayable.

Matterport's :func:`random_colors` and :func:`apply_mask` (deterministic
here: the same seed gives the same colours), and the pixel work shared by
the pictures: :func:`display_rgb` turns any supported image (gray or RGB,
uint8, 16-bit or float) into uint8 RGB, :func:`blend_instances` fills
instance masks with their colours, :func:`class_colors` gives line colours
for per-class curves. All NumPy; matplotlib's colour tables are imported
inside the functions.
"""

import numpy as np


def random_colors(N, bright=True, seed=0):
    """``N`` well-separated colours: evenly spaced hues in a shuffled order.

    Args:
        N: number of colours (>= 0).
        bright: full brightness if True, else 70 %.
        seed: seed of the shuffle; the same seed gives the same colours
            (Matterport shuffled at random on every call).

    Returns:
        list of ``N`` ``(r, g, b)`` tuples of floats in [0, 1].
    """
    if isinstance(N, bool) or int(N) != N or N < 0:
        raise ValueError(f"N must be a non-negative integer, got {N!r}")
    from matplotlib.colors import hsv_to_rgb
    n = int(N)
    hsv = np.stack([np.arange(n) / max(n, 1), np.ones(n),
                    np.full(n, 1.0 if bright else 0.7)], axis=1)
    rgb = hsv_to_rgb(hsv.reshape(1, n, 3)).reshape(n, 3)
    rgb = rgb[np.random.default_rng(seed).permutation(n)]
    return [tuple(float(v) for v in c) for c in rgb]


def class_colors(n):
    """``n`` distinct line colours: matplotlib's tab10, then evenly spaced hues.

    Returns:
        list of ``n`` ``(r, g, b)`` tuples of floats in [0, 1].
    """
    from matplotlib import colormaps
    if n <= 10:
        return [colormaps["tab10"](i)[:3] for i in range(n)]
    return random_colors(n, bright=False)


def apply_mask(image, mask, color, alpha=0.5):
    """Blends ``color`` into ``image`` where ``mask`` is set, in place.

    Each masked pixel becomes ``(1 - alpha) * pixel + alpha * 255 * color``
    (rounded to the nearest integer for integer images), as in Matterport.

    Args:
        image: ``[H, W, C]`` array with values on a 0..255 scale; modified in
            place.
        mask: bool (or 0/1) ``[H, W]``.
        color: ``C`` (or more; extra entries such as alpha are ignored) floats
            in [0, 1].
        alpha: opacity of the colour, in [0, 1].

    Returns:
        ``image`` (the same array).
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3:
        raise ValueError(f"image must be a numpy array [H, W, C], got "
                         f"{getattr(image, 'shape', type(image))}")
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be [H, W] = {image.shape[:2]}, got {mask.shape}")
    color = np.asarray(color, dtype=np.float64).reshape(-1)
    if color.size < image.shape[2]:
        raise ValueError(f"color needs {image.shape[2]} channels, got {color.size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    blended = (1.0 - alpha) * image[mask] + alpha * 255.0 * color[:image.shape[2]]
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        blended = np.clip(np.rint(blended), info.min, info.max)
    image[mask] = blended
    return image


def display_rgb(image):
    """Any supported image -> uint8 ``[H, W, 3]`` for display.

    Values in 0..255 (or floats in 0..1, or bool) keep their brightness;
    other ranges are stretched between the 0.5th and 99.5th percentiles.
    Gray (``[H, W]``, ``[H, W, 1]``, gray+alpha) is repeated to RGB; RGBA
    drops alpha.

    Raises:
        ValueError: the shape is not ``[H, W]`` or ``[H, W, 1..4]``.
        TypeError: the dtype is not bool, an integer or a float type.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1..4, "
                         f"got shape {image.shape}")
    if image.dtype == np.uint8:
        out = image
    elif image.dtype == bool:
        out = image.astype(np.uint8) * np.uint8(255)
    elif np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating):
        values = image.astype(np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        if np.issubdtype(image.dtype, np.floating) and lo >= 0 and hi <= 1:
            values = values * 255.0
        elif not (lo >= 0 and hi <= 255):
            lo, hi = np.percentile(finite, [0.5, 99.5])
            values = (values - lo) * (255.0 / max(hi - lo, 1e-12))
        out = np.rint(np.clip(np.nan_to_num(values), 0, 255)).astype(np.uint8)
    else:
        raise TypeError(f"unsupported image dtype {image.dtype}; expected bool, an "
                        f"integer or a float type")
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def _top_instance(masks):
    """int ``[H, W]``: index of the last instance covering each pixel, -1 if none."""
    n = masks.shape[2]
    if n == 0:
        return np.full(masks.shape[:2], -1, dtype=np.int64)
    last = n - 1 - np.argmax(masks[:, :, ::-1], axis=2)
    return np.where(masks.any(axis=2), last, -1)


def blend_instances(rgb, masks, colors, alphas):
    """Fills every instance with its colour (later instances on top).

    Args:
        rgb: uint8 ``[H, W, 3]``.
        masks: bool ``[H, W, N]``.
        colors: float ``[N, 3]`` in [0, 1].
        alphas: float ``[N]`` fill opacities (0 = no fill).

    Returns:
        new uint8 ``[H, W, 3]``: ``round((1 - a) * pixel + a * 255 * colour)``
        under each instance, the input elsewhere.
    """
    top = _top_instance(masks)
    out = rgb.copy()
    sel = top >= 0
    k = top[sel]
    a = alphas[k][:, None]
    out[sel] = np.rint((1.0 - a) * rgb[sel] + a * 255.0 * colors[k]).astype(np.uint8)
    return out
