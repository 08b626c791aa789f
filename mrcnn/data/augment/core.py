"""Training augmentation that keeps image, masks, boxes and window aligned.

Augmenters transform a `Sample` (image + instances + window) in place of the
Matterport-style ``(image, masks)`` pair, so the masks never have to exist as
a full [H, W, N] stack: geometric transforms move the compact instance
representation of `mrcnn.data.masks.instances` together with the image.

Built-in augmenters (the set of the DSB 2018 3rd-place solution, seed 002,
plus random crops as in seed 003)::

    from mrcnn.data import augment as A
    augmentation = A.Compose([
        A.ScaleCrop(256, scale=(0.75, 1.33), aspect=(0.9, 1.1)),  # zoom, stretch, crop
        A.Fliplr(), A.Flipud(), A.Rot90(),
        A.Sometimes(0.5, A.Rotate(15)),
        A.Brightness(15), A.Contrast((0.85, 1.15)), A.ChannelShift(10),
    ])
    model.train(..., augmentation=augmentation)   # with IMAGE_SHAPE 256 x 256

`cell_augmentation(crop_size=256)` builds that list. Every augmenter is also
callable the Matterport way, ``image, masks = aug(image, masks, rng)`` with
bool [H, W, N] masks. With IMAGE_RESIZE_MODE "crop" the generator takes its
random IMAGE_MIN_DIM crop after the augmentation (crop early with
`RandomCrop`/`ScaleCrop` to save work on large images).

Each augmenter has a `kind`: PHOTOMETRIC (image values only), DIHEDRAL
(flips and 90-degree rotations: exact on cached box mini masks, so the
generator keeps its fastest path) or RESAMPLE (crops, rotations, scaling,
user augmenters: the generator keeps full-resolution instance layers).

User augmenters are wrapped by `as_augmenter` (adapters in
`mrcnn.data.augment.adapters`):
- an imgaug augmenter (anything with ``to_deterministic`` and
  ``augment_image``), applied as Matterport did; imgaug is never imported
  here, only used when the object comes from it;
- an albumentations transform or Compose (its module is
  ``albumentations``), fed the instance label layers as ``masks``, so its
  nearest-neighbour mask interpolation keeps every instance exact;
- any callable ``(image, masks, rng) -> (image, masks)``.
Instances that leave the image are dropped after augmentation.

Seed 000's deterministic alternative, dataset entries that enumerate flip
variants, is `add_flip_variants`; the generator applies the flips while
preparing a sample, so the cache stores each variant once.
"""

import math

import numpy as np

from mrcnn.data.masks.instances import InstanceLayers, warp_planes

__all__ = [
    "PHOTOMETRIC", "DIHEDRAL", "RESAMPLE", "Sample", "Augmenter", "Compose", "Sometimes",
    "OneOf", "Fliplr", "Flipud", "Rot90", "Rotate", "RandomScale", "RandomCrop", "ScaleCrop",
    "Brightness", "Contrast", "ChannelShift", "as_augmenter", "cell_augmentation",
    "add_flip_variants", "FLIP_KEYS",
]

PHOTOMETRIC, DIHEDRAL, RESAMPLE = 0, 1, 2

# image_info keys read by the generator when preparing a sample (seed 000).
FLIP_KEYS = ("vertical_flip", "horizontal_flip")


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
        warped = _cast_like(warped, image.dtype)
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


def _cast_like(values, dtype):
    """Round and clip float `values` into `dtype` (integers) or cast (floats)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def _probability(p, name="p"):
    if not 0 <= p <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def _range(value, name, symmetric_around=None, positive=False):
    """(low, high) from a pair, or from a scalar ``v`` as (c - v, c + v)."""
    if np.ndim(value) == 0:
        if symmetric_around is None:
            raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
        value = (symmetric_around - value, symmetric_around + value)
    low, high = (float(v) for v in value)
    if low > high or (positive and low <= 0):
        raise ValueError(f"{name} must be (low, high) with low <= high"
                         f"{' and low > 0' if positive else ''}, got {value!r}")
    return low, high


def _size(size, name="size"):
    if np.ndim(size) == 0:
        size = (size, size)
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return h, w


# ---------------------------------------------------------------- base
class Augmenter:
    """Base class: a random transform of a `Sample`.

    Subclasses implement ``apply(sample, rng) -> Sample`` and set `kind`.
    """

    kind = PHOTOMETRIC

    def apply(self, sample, rng):
        """Transform `sample` (it may be modified in place) and return it."""
        raise NotImplementedError

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


class Compose(Augmenter):
    """Apply augmenters in order."""

    def __init__(self, augmenters):
        self.augmenters = [as_augmenter(a) for a in augmenters]
        if any(a is None for a in self.augmenters):
            raise TypeError("Compose got None in its list of augmenters")

    @property
    def kind(self):
        return max((a.kind for a in self.augmenters), default=PHOTOMETRIC)

    def apply(self, sample, rng):
        for augmenter in self.augmenters:
            sample = augmenter.apply(sample, rng)
        return sample


class Sometimes(Augmenter):
    """Apply `augmenter` with probability `p`."""

    def __init__(self, p, augmenter):
        self.p = _probability(p)
        self.augmenter = as_augmenter(augmenter)

    @property
    def kind(self):
        return self.augmenter.kind

    def apply(self, sample, rng):
        if rng.random() < self.p:
            sample = self.augmenter.apply(sample, rng)
        return sample


class OneOf(Augmenter):
    """Apply one of `augmenters`, chosen uniformly."""

    def __init__(self, augmenters):
        self.augmenters = [as_augmenter(a) for a in augmenters]
        if not self.augmenters:
            raise ValueError("OneOf needs at least one augmenter")

    @property
    def kind(self):
        return max(a.kind for a in self.augmenters)

    def apply(self, sample, rng):
        return self.augmenters[int(rng.integers(len(self.augmenters)))].apply(sample, rng)


# ---------------------------------------------------------------- geometric
class Fliplr(Augmenter):
    """Mirror left-right with probability `p`."""

    kind = DIHEDRAL

    def __init__(self, p=0.5):
        self.p = _probability(p)

    def apply(self, sample, rng):
        return sample.flip(1) if rng.random() < self.p else sample


class Flipud(Augmenter):
    """Mirror upside down with probability `p`."""

    kind = DIHEDRAL

    def __init__(self, p=0.5):
        self.p = _probability(p)

    def apply(self, sample, rng):
        return sample.flip(0) if rng.random() < self.p else sample


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
        self.scale = _range(scale, "scale", positive=True)
        self.aspect = _range(aspect, "aspect", positive=True)

    def apply(self, sample, rng):
        s = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        a = math.exp(rng.uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        h, w = sample.shape
        out_h = max(1, int(round(h * s * math.sqrt(a))))
        out_w = max(1, int(round(w * s / math.sqrt(a))))
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
        self.size = _size(size)

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
        self.size = _size(size)
        self.scale = _range(scale, "scale", positive=True)
        self.aspect = _range(aspect, "aspect", positive=True)

    def apply(self, sample, rng):
        s = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        a = math.exp(rng.uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        h, w = sample.shape
        out_h = max(1, int(round(h * s * math.sqrt(a))))
        out_w = max(1, int(round(w * s / math.sqrt(a))))
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


# ---------------------------------------------------------------- photometric
def _window_view(sample):
    y1, x1, y2, x2 = (int(v) for v in sample.window)
    return (slice(y1, y2), slice(x1, x2)) if y2 > y1 and x2 > x1 else None


def _map_window(sample, fn):
    """Replace the window region of the image by ``fn(float32 region)``."""
    region = _window_view(sample)
    if region is None:
        return sample
    image = np.array(sample.image)  # a writable copy; the cached arrays stay intact
    image[region] = _cast_like(fn(image[region].astype(np.float32)), image.dtype)
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
        self.factor = _range(factor, "factor", symmetric_around=1.0)

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


def as_augmenter(augmentation):
    """Wrap whatever the user passed as `augmentation` into an `Augmenter`.

    Args:
        augmentation: None, an `Augmenter`, a list/tuple of augmenters
            (composed in order), an imgaug augmenter, an albumentations
            transform, or a callable ``(image, masks, rng) -> (image, masks)``.

    Returns:
        an `Augmenter`, or None for None.
    """
    # The adapters subclass Augmenter, so they live in a module importing this one.
    from mrcnn.data.augment.adapters import (AlbumentationsAdapter, CallableAdapter,
                                             ImgaugAdapter)

    if augmentation is None or isinstance(augmentation, Augmenter):
        return augmentation
    if isinstance(augmentation, (list, tuple)):
        return Compose(augmentation)
    module = type(augmentation).__module__ or ""
    if module.split(".")[0] == "albumentations":
        return AlbumentationsAdapter(augmentation)
    if module.split(".")[0] == "imgaug" or (hasattr(augmentation, "to_deterministic")
                                            and hasattr(augmentation, "augment_image")):
        return ImgaugAdapter(augmentation)
    if callable(augmentation):
        return CallableAdapter(augmentation)
    raise TypeError(f"augmentation must be an mrcnn.data.augment.core.Augmenter, a list of them, "
                    f"an imgaug augmenter, an albumentations transform or a callable "
                    f"(image, masks, rng) -> (image, masks); got {type(augmentation).__name__}")


def cell_augmentation(crop_size=None, scale=(0.75, 1.33), aspect=(0.9, 1.1),
                      max_degrees=15.0, brightness=15.0, contrast=(0.85, 1.15),
                      channel_shift=10.0):
    """The DSB 2018 3rd-place augmentation set (seed 002).

    Random scale with aspect change and a random crop (when `crop_size` is
    given), flips, 90-degree rotations, small-angle rotations (half of the
    time), brightness, contrast and channel shift.

    Args:
        crop_size: int or (height, width) of the random crop, or None for no
            scaling/cropping (the image keeps its size).
        scale, aspect: ranges of `RandomScale`.
        max_degrees: range of `Rotate` (0 disables it).
        brightness, contrast, channel_shift: photometric ranges (0/None
            disables each).

    Returns:
        a `Compose`.
    """
    ops = []
    if crop_size is not None:
        ops.append(ScaleCrop(crop_size, scale, aspect))
    square = crop_size is not None and _size(crop_size)[0] == _size(crop_size)[1]
    # 90 and 270 degree turns only when the output is square (they swap H and W)
    ops += [Fliplr(), Flipud(), Rot90((0, 1, 2, 3) if square else (0, 2))]
    if max_degrees:
        ops.append(Sometimes(0.5, Rotate(max_degrees)))
    if brightness:
        ops.append(Brightness(brightness))
    if contrast:
        ops.append(Contrast(contrast))
    if channel_shift:
        ops.append(ChannelShift(channel_shift))
    return Compose(ops)


def add_flip_variants(dataset, variants=((False, False), (False, True), (True, False),
                                          (True, True))):
    """Register every image once per flip variant (seed 000's deterministic augmentation).

    Each image_info entry is repeated with ``vertical_flip`` and
    ``horizontal_flip`` set; the generator flips such entries while
    preparing them, so each variant is cached once and no random
    augmentation is needed. Call after the add_image calls and before
    ``prepare()``.

    Args:
        dataset: a Dataset whose images are registered but not prepared.
        variants: (vertical_flip, horizontal_flip) pairs.

    Returns:
        the dataset (modified in place): ``len(variants)`` times as many images.
    """
    if "_image_ids" in vars(dataset):
        raise ValueError("add_flip_variants must be called before dataset.prepare()")
    pairs = [(bool(v), bool(h)) for v, h in variants]
    if not pairs:
        raise ValueError("variants must list at least one (vertical_flip, horizontal_flip) pair")
    originals = list(dataset.image_info)
    dataset.image_info = [dict(info, vertical_flip=v, horizontal_flip=h)
                          for v, h in pairs for info in originals]
    return dataset
