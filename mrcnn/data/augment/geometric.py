"""Geometric augmenters: flips, 90-degree and free rotations, scaling, crops.

Each moves the image, its instances and its window together (see
`mrcnn.data.augment.base.Sample`). Flips and 90-degree rotations are
DIHEDRAL (exact, also on cached box mini masks); the others are RESAMPLE
(the image is interpolated bilinearly, the instances with nearest
neighbour).
"""

import math

import numpy as np

from mrcnn.data.augment.base import (DIHEDRAL, RESAMPLE, Augmenter, check_probability,
                                     check_range, check_size)

__all__ = ["Fliplr", "Flipud", "Rot90", "Rotate", "RandomScale", "RandomCrop", "ScaleCrop"]


class _Flip(Augmenter):
    """Mirror along `_axis` with probability `p`."""

    kind = DIHEDRAL
    _axis = None

    def __init__(self, p=0.5):
        self.p = check_probability(p)

    def apply(self, sample, rng):
        return sample.flip(self._axis) if rng.random() < self.p else sample


class Fliplr(_Flip):
    """Mirror left-right with probability `p`."""

    _axis = 1


class Flipud(_Flip):
    """Mirror upside down with probability `p`."""

    _axis = 0


class Rot90(Augmenter):
    """Rotate by k * 90 degrees, k drawn uniformly from `ks`.

    Odd k swaps height and width: use ``ks=(0, 2)`` for non-square model
    inputs (the generator raises if the result does not fit IMAGE_SHAPE).
    """

    kind = DIHEDRAL

    def __init__(self, ks=(0, 1, 2, 3)):
        ks = tuple(int(k) for k in np.atleast_1d(ks))
        if not ks:
            raise ValueError("ks must list at least one multiple of 90 degrees, got ()")
        self.ks = ks

    def apply(self, sample, rng):
        return sample.rot90(self.ks[int(rng.integers(len(self.ks)))])


class Rotate(Augmenter):
    """Rotate by a random angle in [-max_degrees, max_degrees] about the centre.

    The output keeps the input size; corners are filled with zeros and
    instances rotated out of the image are dropped.
    """

    kind = RESAMPLE

    def __init__(self, max_degrees=15.0):
        if not 0 <= max_degrees <= 180:
            raise ValueError(f"max_degrees must be in [0, 180], got {max_degrees!r}")
        self.max_degrees = float(max_degrees)

    def apply(self, sample, rng):
        angle = math.radians(rng.uniform(-self.max_degrees, self.max_degrees))
        if angle == 0:
            return sample
        h, w = sample.shape
        cos, sin = math.cos(angle), math.sin(angle)
        matrix = np.array([[cos, -sin], [sin, cos]])
        centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
        return sample.warp(matrix, centre - matrix @ centre, (h, w), mode="constant")


def _scaled_size(shape, scale, aspect, rng):
    """Draw a zoom s and a stretch a log-uniformly; the (height, width) they give.

    Height is scaled by ``s * sqrt(a)`` and width by ``s / sqrt(a)`` (at
    least 1 pixel each). Draws s, then a, from `rng`.
    """
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    a = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    h, w = shape
    return max(1, int(round(h * s * math.sqrt(a)))), max(1, int(round(w * s / math.sqrt(a))))


class RandomScale(Augmenter):
    """Resize by a random factor with a random aspect change.

    The scale s and the aspect a are drawn log-uniformly; height is scaled
    by ``s * sqrt(a)`` and width by ``s / sqrt(a)``, so the image size
    changes (follow with `RandomCrop` for a fixed size).

    Args:
        scale: (low, high) zoom factors, e.g. (0.75, 1.33).
        aspect: (low, high) height/width stretch factors, e.g. (0.9, 1.1).
    """

    kind = RESAMPLE

    def __init__(self, scale=(0.75, 1.33), aspect=(1.0, 1.0)):
        self.scale = check_range(scale, "scale", positive=True)
        self.aspect = check_range(aspect, "aspect", positive=True)

    def apply(self, sample, rng):
        h, w = sample.shape
        out_h, out_w = _scaled_size((h, w), self.scale, self.aspect, rng)
        if (out_h, out_w) == (h, w):
            return sample
        # Pixel centres aligned as skimage.transform.resize.
        fy, fx = h / out_h, w / out_w
        return sample.warp(np.diag([fy, fx]), [0.5 * fy - 0.5, 0.5 * fx - 0.5],
                           (out_h, out_w), mode="nearest")


class RandomCrop(Augmenter):
    """Crop a random `size` region (seed 003 trained on 256 x 256 crops).

    An image smaller than `size` along an axis is zero-padded to it at a
    random position first, so the output is always exactly `size`.

    Args:
        size: int or (height, width).
    """

    kind = RESAMPLE

    def __init__(self, size):
        self.size = check_size(size)

    def apply(self, sample, rng):
        th, tw = self.size
        h, w = sample.shape
        if h < th or w < tw:
            top = int(rng.integers(0, max(th - h, 0) + 1))
            left = int(rng.integers(0, max(tw - w, 0) + 1))
            sample.pad(top, max(th - h, 0) - top, left, max(tw - w, 0) - left)
            h, w = sample.shape
        y = int(rng.integers(0, h - th + 1))
        x = int(rng.integers(0, w - tw + 1))
        return sample.crop(y, x, th, tw)


class ScaleCrop(Augmenter):
    """Random scale with aspect change, then a random crop to `size` (seed 002).

    Same distribution as ``Compose([RandomScale(scale, aspect),
    RandomCrop(size)])``, computed in one resampling of the crop only (a
    zoomed 520 x 704 image is never built, which makes it several times
    faster). Where the scaled image is smaller than `size` it is placed at a
    random position and the rest is zero.

    Args:
        size: int or (height, width) of the output.
        scale, aspect: as `RandomScale`.
    """

    kind = RESAMPLE

    def __init__(self, size, scale=(0.75, 1.33), aspect=(0.9, 1.1)):
        self.size = check_size(size)
        self.scale = check_range(scale, "scale", positive=True)
        self.aspect = check_range(aspect, "aspect", positive=True)

    def apply(self, sample, rng):
        h, w = sample.shape
        out_h, out_w = _scaled_size((h, w), self.scale, self.aspect, rng)
        th, tw = self.size
        # Origin of the crop in the scaled frame; negative: the scaled image
        # sits inside the crop with zero padding around it.
        y = int(rng.integers(0, out_h - th + 1)) if out_h >= th \
            else -int(rng.integers(0, th - out_h + 1))
        x = int(rng.integers(0, out_w - tw + 1)) if out_w >= tw \
            else -int(rng.integers(0, tw - out_w + 1))
        fy, fx = h / out_h, w / out_w
        sample.warp(np.diag([fy, fx]), [(y + 0.5) * fy - 0.5, (x + 0.5) * fx - 0.5],
                    (th, tw), mode="nearest")
        top, left = max(-y, 0), max(-x, 0)
        bottom, right = min(out_h - y, th), min(out_w - x, tw)
        if (top, left, bottom, right) != (0, 0, th, tw):   # zero the padding
            sample.crop(top, left, bottom - top, right - left)
            sample.pad(top, th - bottom, left, tw - right)
        return sample
