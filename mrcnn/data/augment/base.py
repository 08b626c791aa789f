"""The pieces every augmenter shares: `Sample`, `Augmenter`, kinds, argument checks.

A `Sample` is an image with its instances and window; an `Augmenter`
transforms a `Sample` (``apply(sample, rng)``) and is also callable the
Matterport way on ``(image, masks)``. Its `kind` tells the generator how
much the transform disturbs the instances:

- PHOTOMETRIC: image values only;
- DIHEDRAL: flips and 90-degree rotations, exact on cached box mini masks;
- RESAMPLE: crops, rotations, scaling, user augmenters (the generator keeps
  full-resolution instance layers).
"""

import numpy as np

from mrcnn.data.masks.instances import InstanceLayers, warp_planes

__all__ = ["PHOTOMETRIC", "DIHEDRAL", "RESAMPLE", "Sample", "Augmenter", "cast_like",
           "check_probability", "check_range", "check_size"]

PHOTOMETRIC, DIHEDRAL, RESAMPLE = 0, 1, 2


# ---------------------------------------------------------------- sample
class Sample:
    """An image with its instances and window, transformed together.

    Args:
        image: [H, W, C] array.
        instances: `InstanceLayers` or `BoxMasks` in the image's frame.
        window: (y1, x1, y2, x2) of the real image inside `image` (padding
            excluded), y2/x2 exclusive; default the whole image.
    """

    def __init__(self, image, instances, window=None):
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"image must be [H, W, C], got shape {image.shape}")
        if tuple(instances.shape) != image.shape[:2]:
            raise ValueError(f"instances cover {tuple(instances.shape)} but the image is "
                             f"{image.shape[0]}x{image.shape[1]}")
        self.image = image
        self.instances = instances
        h, w = image.shape[:2]
        self.window = np.array((0, 0, h, w) if window is None else window, np.int64)

    @property
    def shape(self):
        """(H, W) of the image."""
        return self.image.shape[:2]

    def flip(self, axis):
        """Mirror along axis 0 (upside down) or 1 (left-right)."""
        size = self.image.shape[axis]
        self.image = np.flip(self.image, axis=axis)
        self.instances = self.instances.flip(axis)
        y = self.window.copy()
        self.window[axis], self.window[axis + 2] = size - y[axis + 2], size - y[axis]
        return self

    def transpose(self):
        """Swap the y and x axes."""
        self.image = self.image.transpose(1, 0, 2)
        self.instances = self.instances.transpose()
        self.window = self.window[[1, 0, 3, 2]]
        return self

    def rot90(self, k):
        """Rotate by k * 90 degrees counter-clockwise, as ``np.rot90(image, k)``."""
        k %= 4
        if k == 1:
            self.flip(1).transpose()
        elif k == 2:
            self.flip(0).flip(1)
        elif k == 3:
            self.transpose().flip(1)
        return self

    def crop(self, y, x, height, width):
        """Keep the region [y, y + height) x [x, x + width) (inside the image)."""
        self.image = self.image[y:y + height, x:x + width]
        self.instances = self.instances.crop(y, x, height, width)
        h, w = self.image.shape[:2]
        shifted = self.window - np.array([y, x, y, x])
        self.window = np.clip(shifted, 0, [h, w, h, w])
        return self

    def pad(self, top, bottom, left, right):
        """Add zero rows/columns (background, no instances) on each side."""
        if top or bottom or left or right:
            self.image = np.pad(self.image, [(top, bottom), (left, right), (0, 0)])
            self.instances = self.instances.pad(top, bottom, left, right)
            self.window = self.window + np.array([top, left, top, left])
        return self

    def warp(self, matrix, offset, output_shape, mode="constant"):
        """Resample: output pixel (i, j) reads input ``matrix @ (i, j) + offset``.

        The image is interpolated bilinearly, the instances with nearest
        neighbour (labels stay exact), and the window becomes the bounding
        box of its mapped corners. Pixel centres are at integer coordinates.

        Args:
            matrix: [2, 2]; offset: [2]; output_shape: (height, width).
            mode: scipy.ndimage boundary mode; "constant" fills with zeros.
        """
        matrix = np.asarray(matrix, np.float64)
        offset = np.asarray(offset, np.float64)
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        image = self.image
        gray = image.shape[2] > 1 and all(np.array_equal(image[:, :, 0], image[:, :, c])
                                          for c in range(1, image.shape[2]))
        warped = warp_planes(image[:, :, :1] if gray else image, matrix, offset,
                             (out_h, out_w), order=1, mode=mode, dtype=np.float32)
        warped = cast_like(warped, image.dtype)
        self.image = np.repeat(warped, image.shape[2], axis=2) if gray else warped
        self.instances = self.instances.warp(matrix, offset, (out_h, out_w), mode=mode)
        y1, x1, y2, x2 = (float(v) for v in self.window)
        if y2 > y1 and x2 > x1:
            corners = np.array([[y1, x1], [y1, x2 - 1], [y2 - 1, x1], [y2 - 1, x2 - 1]])
            mapped = np.linalg.solve(matrix, (corners - offset).T).T
            lo = np.floor(mapped.min(axis=0) + 1e-6)
            hi = np.ceil(mapped.max(axis=0) - 1e-6) + 1
            window = np.concatenate([lo, hi]).astype(np.int64)
            self.window = np.clip(window, 0, [out_h, out_w, out_h, out_w])
        else:
            self.window = np.zeros(4, np.int64)
        return self


def cast_like(values, dtype):
    """Round and clip float `values` into `dtype` (integers) or cast (floats)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


# ---------------------------------------------------------------- argument checks
def check_probability(p, name="p"):
    """`p` as a float, or ValueError unless 0 <= p <= 1."""
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_range(value, name, symmetric_around=None, positive=False):
    """(low, high) from a pair, or from a scalar ``v`` as (c - v, c + v).

    Args:
        value: a (low, high) pair, or a scalar when `symmetric_around` is set.
        name: the argument's name, for the error message.
        symmetric_around: the centre c a scalar spreads around, or None to
            require a pair.
        positive: also require low > 0.

    Returns:
        (low, high) floats with low <= high.
    """
    if np.ndim(value) == 0:
        if symmetric_around is None:
            raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
        value = (symmetric_around - value, symmetric_around + value)
    low, high = (float(v) for v in value)
    if low > high or (positive and low <= 0):
        raise ValueError(f"{name} must be (low, high) with low <= high"
                         f"{' and low > 0' if positive else ''}, got {value!r}")
    return low, high


def check_size(size, name="size"):
    """(height, width) from an int or a pair, both >= 1."""
    if np.ndim(size) == 0:
        size = (size, size)
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return h, w


# ---------------------------------------------------------------- augmenter
class Augmenter:
    """Base class: a random transform of a `Sample`.

    Subclasses implement ``apply(sample, rng) -> Sample`` and set `kind`.
    """

    kind = PHOTOMETRIC

    def apply(self, sample, rng):
        """Transform `sample` (it may be modified in place) and return it."""
        raise NotImplementedError(f"{type(self).__name__} must implement "
                                  f"apply(sample, rng) -> Sample")

    def __call__(self, image, masks, rng=None):
        """Matterport-style use: augment an image and its bool [H, W, N] masks.

        Returns:
            (image, masks) transformed together; masks stay [H', W', N] (an
            instance that left the image has an empty mask).
        """
        masks = np.asarray(masks, bool)
        if masks.ndim != 3:
            raise ValueError(f"masks must be [H, W, N], got shape {masks.shape}")
        sample = self.apply(Sample(image, InstanceLayers.from_masks(masks)),
                            np.random.default_rng(rng))
        return sample.image, sample.instances.to_masks()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
