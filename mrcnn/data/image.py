"""Image values on the NumPy side: molding (mean pixel), conversion to RGB uint8, file headers.

Fitting an image's size to the model input (resize, crop, pad) is
`mrcnn.data.fit`.
"""

import os

import numpy as np

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


def dataset_mean_pixel(dataset, max_images=200, seed=0):
    """Per-channel mean of a dataset's images (Config.MEAN_PIXEL for data like them).

    Every image counts by its pixels; with more than ``max_images`` images a
    random sample of that many (``seed``) is read.

    Args:
        dataset: a prepared `mrcnn.utils.Dataset` whose ``load_image`` gives
            ``[H, W, C]`` images.
        max_images: how many images to read at most (None: all).
        seed: of the sample.

    Returns:
        float64 ``[C]``.

    Raises:
        ValueError: an empty dataset, or images of different channel counts.
    """
    ids = np.asarray(dataset.image_ids)
    if ids.size == 0:
        raise ValueError("dataset_mean_pixel: the dataset has no images (call prepare() "
                         "after loading them)")
    if max_images is not None and ids.size > max_images:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_images, replace=False))
    total, count, channels = None, 0, None
    for image_id in ids:
        image = np.asarray(dataset.load_image(int(image_id)))
        if image.ndim != 3:
            raise ValueError(f"dataset_mean_pixel: image {int(image_id)} has shape "
                             f"{image.shape}, expected [H, W, C]")
        if channels is not None and image.shape[-1] != channels:
            raise ValueError(f"dataset_mean_pixel: image {int(image_id)} has "
                             f"{image.shape[-1]} channels, the others {channels}")
        channels = image.shape[-1]
        sums = image.reshape(-1, channels).sum(0, dtype=np.float64)
        total = sums if total is None else total + sums
        count += image.shape[0] * image.shape[1]
    return total / count


def dataset_image_shape(*datasets):
    """The largest image height and width over datasets: a model input that holds them all.

    Uses each image's ``height``/``width`` entries of ``image_info`` (the
    Sartorius and COCO loaders record them) and reads the image where one is
    missing.

    Args:
        *datasets: prepared `mrcnn.utils.Dataset` objects.

    Returns:
        ``(height, width)`` ints: the largest of each, over every image (the
        two may come from different images).

    Raises:
        ValueError: no images at all, or a recorded size that is not a
            positive int.
    """
    height = width = 0
    for dataset in datasets:
        for image_id in dataset.image_ids:
            info = dataset.image_info[int(image_id)]
            h, w = info.get("height"), info.get("width")
            if h is None or w is None:
                h, w = np.asarray(dataset.load_image(int(image_id))).shape[:2]
            if int(h) != h or int(w) != w or h < 1 or w < 1:
                raise ValueError(f"dataset_image_shape: image {int(image_id)} "
                                 f"({info.get('path', info.get('id'))}) records a size of "
                                 f"{h!r}x{w!r}, expected positive ints")
            height, width = max(height, int(h)), max(width, int(w))
    if not height:
        raise ValueError("dataset_image_shape: the datasets have no images (call prepare() "
                         "after loading them)")
    return height, width


PERCENTILES = (0.5, 99.5)


def check_bit_depth(bit_depth):
    """Return `bit_depth` if it is a valid conversion rule of `to_rgb_uint8`.

    Raises:
        ValueError: anything but None, an int 8..16 or "percentile" (the
            message shows the value and the choices).
    """
    if bit_depth is None or (isinstance(bit_depth, str) and bit_depth == "percentile"):
        return bit_depth
    valid = (isinstance(bit_depth, (int, np.integer)) and not isinstance(bit_depth, bool)
             and 8 <= bit_depth <= 16)
    if not valid:
        raise ValueError(f"bit_depth must be None, an int 8..16 or 'percentile', got "
                         f"{bit_depth!r}: None takes the dtype's full range (uint16: "
                         f"0..65535), 12 maps 0..4095 to 0..255, 'percentile' stretches "
                         f"each image between its {PERCENTILES[0]}th and {PERCENTILES[1]}th "
                         f"percentiles")
    return int(bit_depth)


def to_rgb_uint8(image, bit_depth=None):
    """Convert an image to RGB uint8 [H, W, 3] by a fixed, documented rule.

    Channels: [H, W] and [H, W, 1] grayscale are repeated to 3 channels;
    [H, W, 2] (gray + alpha) uses the gray channel; [H, W, 4] RGBA drops the
    alpha channel; [H, W, 3] is kept.

    Values: the rule depends on `bit_depth` and the dtype only, never on
    what the pixels happen to contain (the same file always gives the same
    image; twice the signal gives twice the brightness):

    - ``bit_depth=None`` (default), the dtype's full range:
        uint8: unchanged. uint16: 0..65535 -> 0..255. Other integer types
        (int32 from PIL's "I" mode, int16, uint32, ...) are taken to hold
        16-bit data: 0..65535 -> 0..255; negative values clip to 0 and a
        value above 65535 raises ValueError. bool: 0/255. float: values
        must lie in [0, 1] (-> 0..255).
    - ``bit_depth=b`` (an int 8..16; e.g. 12 for 12-bit cameras stored in
        16-bit files): 0..2**b - 1 -> 0..255 for integer and float images;
        a value above 2**b - 1 (or below 0 for floats) raises ValueError (the
        data is not b-bit), as does a uint8 image with b > 8.
    - ``bit_depth="percentile"``: each image is stretched between its 0.5th
        and 99.5th percentiles (``numpy.percentile``, linear; one range over
        all colour channels, so the colour balance is kept), clipped, as
        microscopy viewers do for display; a flat image gives 0. Brightness
        then no longer compares across images.

    bool images give 0/255 whatever the rule. Values are rounded to the
    nearest integer.

    Args:
        image: [H, W] or [H, W, C] array, C in 1..4.
        bit_depth: None, an int 8..16 or "percentile", see above. Datasets
            set it with `Dataset.IMAGE_BIT_DEPTH`.

    Returns:
        uint8 [H, W, 3].

    Raises:
        ValueError: a bad shape, an invalid bit_depth, or values outside the
            range the rule allows (the message gives the range found).
        TypeError: an unsupported dtype (complex, object, ...).
    """
    bit_depth = check_bit_depth(bit_depth)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"image must be [H, W] or [H, W, C] with C in 1..4 "
                         f"(gray, gray+alpha, RGB, RGBA), got shape {image.shape}")
    image = image[:, :, :1] if image.shape[-1] in (1, 2) else image[:, :, :3]
    out = _values_to_uint8(image, bit_depth)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


def _values_to_uint8(image, bit_depth):
    """uint8 of the same shape, by the rule of `to_rgb_uint8`."""
    dtype = image.dtype
    if dtype == bool:
        return image.astype(np.uint8) * np.uint8(255)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"unsupported image dtype {dtype}; expected bool, an integer or a "
                        f"float type")
    is_float = np.issubdtype(dtype, np.floating)
    if is_float and image.size and not np.isfinite(image).all():
        raise ValueError(f"the {dtype} image has NaN or infinite values")
    if bit_depth == "percentile":
        values = image.astype(np.float64)
        if not values.size:
            return values.astype(np.uint8)
        lo, hi = np.percentile(values, PERCENTILES)
        if hi <= lo:
            return np.zeros(values.shape, np.uint8)
        return _scaled(values - lo, hi - lo)
    if dtype == np.uint8:
        if bit_depth not in (None, 8):
            raise ValueError(f"8-bit (uint8) image, but bit_depth={bit_depth} was stated; an "
                             f"8-bit file cannot hold {bit_depth}-bit data: use bit_depth=None "
                             f"(or 8) for these files")
        return image
    if is_float and bit_depth is None:
        lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise ValueError(f"float images must have values in [0, 1], got range "
                             f"[{lo}, {hi}]; convert to uint8 first (e.g. scale "
                             f"0..255 floats with image.astype(np.uint8)), or state the "
                             f"bit depth of the counts (bit_depth=12, 16) or 'percentile'")
        return _scaled(np.clip(image.astype(np.float64), 0, 1), 1.0)
    top = 65535 if bit_depth is None else 2 ** bit_depth - 1
    if image.size:
        lo, hi = image.min(), image.max()
        if hi > top or (is_float and lo < 0):
            rule = (f"bit_depth={bit_depth} allows 0..{top}" if bit_depth is not None else
                    f"{dtype} images are taken to hold 16-bit data, 0..{top}")
            found = int(hi) if not is_float else float(hi)
            raise ValueError(f"the {dtype} image has values up to {found}"
                             + (f" (and down to {float(lo)})" if is_float and lo < 0 else "")
                             + f", but {rule}; state the right bit depth (an int 8..16) or "
                               f"use bit_depth='percentile'")
    return _scaled(np.clip(image.astype(np.float64), 0, top), float(top))


def _scaled(values, top):
    """rint(values / top * 255) as uint8, values in [0, top]."""
    return np.rint(np.clip(values * (255.0 / top), 0, 255)).astype(np.uint8)


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
