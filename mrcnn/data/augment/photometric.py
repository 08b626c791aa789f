"""Photometric augmenters: brightness, contrast, channel shift.

They change image values inside the sample's window only (padding stays
zero) and never touch the instances; their kind is PHOTOMETRIC. The cached
arrays are never modified: the image is copied before it changes.
"""

import numpy as np

from mrcnn.data.augment.base import Augmenter, cast_like, check_range

__all__ = ["Brightness", "Contrast", "ChannelShift"]


def _window_view(sample):
    y1, x1, y2, x2 = (int(v) for v in sample.window)
    return (slice(y1, y2), slice(x1, x2)) if y2 > y1 and x2 > x1 else None


def _map_window(sample, fn):
    """Replace the window region of the image by ``fn(float32 region)``."""
    region = _window_view(sample)
    if region is None:
        return sample
    image = np.array(sample.image)  # a writable copy; the cached arrays stay intact
    image[region] = cast_like(fn(image[region].astype(np.float32)), image.dtype)
    sample.image = image
    return sample


class Brightness(Augmenter):
    """Add a random offset in [-max_delta, max_delta] to every pixel of the window."""

    def __init__(self, max_delta=20.0):
        self.max_delta = abs(float(max_delta))

    def apply(self, sample, rng):
        delta = rng.uniform(-self.max_delta, self.max_delta)
        return _map_window(sample, lambda x: x + delta)


class Contrast(Augmenter):
    """Scale pixel values around the window mean by a factor in `factor`."""

    def __init__(self, factor=(0.8, 1.2)):
        self.factor = check_range(factor, "factor", symmetric_around=1.0)

    def apply(self, sample, rng):
        f = rng.uniform(*self.factor)
        return _map_window(sample, lambda x: (x - x.mean()) * f + x.mean())


class ChannelShift(Augmenter):
    """Shift pixel values by a random amount in [-intensity, intensity].

    As Keras' ``ImageDataGenerator(channel_shift_range=...)`` (used by the
    DSB 2018 3rd-place solution): one shift for all channels, results clipped
    to the image's own value range. With ``per_channel=True`` every channel
    gets its own shift.
    """

    def __init__(self, intensity=10.0, per_channel=False):
        self.intensity = abs(float(intensity))
        self.per_channel = bool(per_channel)

    def apply(self, sample, rng):
        channels = sample.image.shape[2]
        shift = rng.uniform(-self.intensity, self.intensity,
                            size=channels if self.per_channel else 1)

        def fn(x):
            if not x.size:
                return x
            return np.clip(x + shift.astype(np.float32), x.min(), x.max())
        return _map_window(sample, fn)
