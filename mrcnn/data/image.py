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
