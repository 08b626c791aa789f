"""Adapters that run user augmenters on a `mrcnn.data.augment.base.Sample`.

`adapter_for` picks one of them for a user's augmenter (it is what
`mrcnn.data.augment.combinators.as_augmenter` calls for anything that is
not already an `Augmenter` or a list):

- `ImgaugAdapter`: an imgaug augmenter (anything with ``to_deterministic``
  and ``augment_image``), applied to the image and the bool masks as
  Matterport did. imgaug is never imported here; its hooks are used only if
  the module is already loaded (by whoever built the augmenter).
- `AlbumentationsAdapter`: an albumentations transform or Compose. The
  instance label layers go in as ``masks``, which albumentations resamples
  with nearest neighbour, so every instance stays exact.
- `CallableAdapter`: any ``(image, masks, rng) -> (image, masks)`` function
  on bool [H, W, N] masks.

Instances that leave the image have no pixels afterwards and are dropped by
the generator.
"""

import sys
import threading

import numpy as np

from mrcnn.data.augment.base import RESAMPLE, Augmenter
from mrcnn.data.masks.instances import InstanceLayers

__all__ = ["CallableAdapter", "ImgaugAdapter", "AlbumentationsAdapter", "adapter_for"]


def _require_layers(sample, who):
    if not isinstance(sample.instances, InstanceLayers):
        raise TypeError(f"{who} needs full-resolution instances (InstanceLayers), got "
                        f"{type(sample.instances).__name__}")
    return sample.instances


def _masks_back(sample, image, masks, count, who):
    """Put the augmented image and bool [H, W, N] masks back into `sample`."""
    image = np.asarray(image)
    masks = np.asarray(masks)
    if image.ndim != 3 or masks.ndim != 3 or masks.shape[:2] != image.shape[:2] \
            or masks.shape[2] != count:
        raise ValueError(f"{who} must return an [H, W, C] image and [H, W, N={count}] masks "
                         f"of the same size, got shapes {image.shape} and {masks.shape}")
    return _replace(sample, image, InstanceLayers.from_masks(masks.astype(bool)))


def _replace(sample, image, instances):
    """Put a user augmenter's image and instances into `sample`.

    A user augmenter says nothing about the padding, so when the image size
    changed the window becomes the whole image.
    """
    if image.shape[:2] != sample.shape:
        sample.window = np.array([0, 0, image.shape[0], image.shape[1]], np.int64)
    sample.image = image
    sample.instances = instances
    return sample


class CallableAdapter(Augmenter):
    """A user function ``(image, masks, rng) -> (image, masks)`` on bool [H, W, N] masks.

    The masks are materialized at full resolution for the call (as in
    Matterport), which costs H * W * N bytes; prefer the built-in
    augmenters for images with hundreds of instances.
    """

    kind = RESAMPLE

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"augmentation must be callable, got {type(fn).__name__}")
        self.fn = fn

    def apply(self, sample, rng):
        layers = _require_layers(sample, "a callable augmentation")
        image, masks = self.fn(sample.image, layers.to_masks(), rng)
        return _masks_back(sample, image, masks, layers.count, repr(self.fn))


# Geometric imgaug augmenters that may touch masks (Matterport's list).
_IMGAUG_MASK_AUGMENTERS = frozenset({
    "Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud", "CropAndPad",
    "Affine", "PiecewiseAffine"})


def _imgaug_mask_hooks():
    """imgaug hooks that keep colour augmenters off the masks, or None.

    Uses imgaug only if it is already imported (by whoever built the
    augmenter); never imports it.
    """
    imgaug = sys.modules.get("imgaug")
    if imgaug is None or not hasattr(imgaug, "HooksImages"):
        return None

    def activator(images, augmenter, parents, default):
        return type(augmenter).__name__ in _IMGAUG_MASK_AUGMENTERS

    return imgaug.HooksImages(activator=activator)


class ImgaugAdapter(Augmenter):
    """An imgaug augmenter, applied as Matterport did.

    A deterministic copy (seeded from the sample's rng, so runs repeat) is
    applied to the image and to the uint8 [H, W, N] masks; on the masks only
    geometric augmenters run (imgaug hooks). The masks are materialized at
    full resolution for the call.
    """

    kind = RESAMPLE

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def apply(self, sample, rng):
        layers = _require_layers(sample, "an imgaug augmenter")
        det = self.augmenter.to_deterministic()
        seed = int(rng.integers(2 ** 31 - 1))
        if hasattr(det, "seed_"):
            det.seed_(seed)
        elif hasattr(det, "reseed"):
            det.reseed(seed)
        image = det.augment_image(sample.image)
        masks = layers.to_masks().astype(np.uint8)
        hooks = _imgaug_mask_hooks()
        masks = det.augment_image(masks, hooks=hooks) if hooks is not None \
            else det.augment_image(masks)
        return _masks_back(sample, image, np.asarray(masks) > 0, layers.count,
                           "the imgaug augmenter")


class AlbumentationsAdapter(Augmenter):
    """An albumentations transform or Compose.

    The instance label layers go in as ``masks`` (albumentations resamples
    masks with nearest neighbour and skips pixel-level transforms on them),
    so instances stay exact whatever the pipeline does. Seeded per sample
    with ``set_random_seed`` (albumentations >= 2) so runs repeat.
    """

    kind = RESAMPLE

    def __init__(self, transform):
        self.transform = transform
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def apply(self, sample, rng):
        layers = _require_layers(sample, "an albumentations transform")
        planes = [np.ascontiguousarray(layers.layers[:, :, i])
                  for i in range(layers.layers.shape[2])]
        seed = int(rng.integers(2 ** 31 - 1))
        with self._lock:  # the seed and the call must not interleave between threads
            if hasattr(self.transform, "set_random_seed"):
                self.transform.set_random_seed(seed)
            out = self.transform(image=np.ascontiguousarray(sample.image), masks=planes)
        image = np.asarray(out["image"])
        stack = np.stack([np.asarray(m) for m in out["masks"]], axis=-1)
        if image.ndim == 2:
            image = image[:, :, None]
        if stack.shape[:2] != image.shape[:2]:
            raise ValueError(f"the albumentations transform returned an image of "
                             f"{image.shape[:2]} but masks of {stack.shape[:2]}")
        return _replace(sample, image, InstanceLayers(
            stack.astype(layers.layers.dtype, copy=False), layers.layer_of))


def adapter_for(augmentation):
    """The adapter that runs a user's augmenter, or None if it is none of them.

    Args:
        augmentation: an albumentations transform (its class comes from the
            ``albumentations`` package), an imgaug augmenter (from ``imgaug``,
            or anything with ``to_deterministic`` and ``augment_image``), or
            a callable ``(image, masks, rng) -> (image, masks)``.

    Returns:
        an `AlbumentationsAdapter`, `ImgaugAdapter` or `CallableAdapter`, or
        None for anything else.
    """
    package = (type(augmentation).__module__ or "").split(".")[0]
    if package == "albumentations":
        return AlbumentationsAdapter(augmentation)
    if package == "imgaug" or (hasattr(augmentation, "to_deterministic")
                               and hasattr(augmentation, "augment_image")):
        return ImgaugAdapter(augmentation)
    if callable(augmentation):
        return CallableAdapter(augmentation)
    return None
