"""Training samples: one Dataset image -> the arrays of one model input.

A sample is built in two stages:

1. `prepare_sample` (deterministic, the expensive part, cacheable): load the
   image and masks, apply the entry's flip variant (``image_info`` keys
   "vertical_flip" / "horizontal_flip", see `augment.add_flip_variants`),
   resize by Config.IMAGE_SCALE and as Config.IMAGE_RESIZE_MODE says
   (`mrcnn.data.fit.scale_for_model`; "crop" mode: scaled but not yet
   cropped; with IMAGE_SCALE_RANGE: not scaled by a factor) and pack the masks compactly
   (`mrcnn.data.masks.instances`): as boxes + mini masks of the
   MAX_GT_INSTANCES largest instances when the augmentation is only
   flips/90-degree rotations/photometric, else as full-resolution label
   layers.
2. `finish_sample` (random, every epoch): the random scale of
   Config.IMAGE_SCALE_RANGE (multi-scale training; a sample then larger than
   the model input is cropped at a random position), augmentation, the
   random crop of "crop" mode and the padding to Config.IMAGE_SHAPE (`mrcnn.data.fit`),
   boxes and masks of the instances still in the image (the largest
   MAX_GT_INSTANCES), image meta.

`load_image_gt` runs both (Matterport's function of that name). The batches
of the training loop are built by `mrcnn.data.generator`, which raises an
error in either stage (an unreadable file, masks that do not fit the image)
through `sample_error`: the same error type, its message naming the image id
and reference and what to do, the original error as ``__cause__``.
"""

import builtins
import logging
import re

import numpy as np

from mrcnn.data.augment import DIHEDRAL, FLIP_KEYS, PHOTOMETRIC, Fliplr, Sample, as_augmenter
from mrcnn.data.fit import (crop_origin, draw_image_scale, input_padding,
                            prepared_image_scale, resize_mask, scale_for_model, scaled_size)
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks.instances import BoxMasks, InstanceLayers

log = logging.getLogger(__name__)

__all__ = ["PreparedSample", "prepare_sample", "finish_sample", "load_image_gt",
           "keep_largest", "plan", "PREPARE_VERSION", "check_num_classes", "SampleError",
           "sample_error", "sample_error_in"]

# Bump when prepare_sample's output changes meaning (part of every cache key).
PREPARE_VERSION = 1

_warned_max_gt = set()


# ---------------------------------------------------------------- stage 1
class PreparedSample:
    """The deterministic part of a training sample (what the cache stores).

    Attributes:
        image: [h, w, C] image, resized (and padded by "square"/"pad64"), not
            yet padded to Config.IMAGE_SHAPE.
        instances: `InstanceLayers` or `BoxMasks` in the image's frame.
        class_ids: int32 [N], one per instance.
        window: int64 (y1, x1, y2, x2), the real image inside `image`.
        scale: float, resize factor from the original image.
        original_shape: int64 (H, W, C) of the image as loaded.
        image_scale: float, the IMAGE_SCALE factor included in `scale`
            (`mrcnn.data.fit.prepared_image_scale`; 1.0 in cache entries
            written before it existed, which were not scaled by one).
    """

    def __init__(self, image, instances, class_ids, window, scale, original_shape,
                 image_scale=1.0):
        self.image = image
        self.instances = instances
        self.class_ids = np.asarray(class_ids, np.int32)
        self.window = np.asarray(window, np.int64)
        self.scale = float(scale)
        self.original_shape = np.asarray(original_shape, np.int64)
        self.image_scale = float(image_scale)

    @property
    def kind(self):
        return "boxmasks" if isinstance(self.instances, BoxMasks) else "layers"

    def to_arrays(self):
        """{name: array} for the cache."""
        arrays = {"image": self.image, "class_ids": self.class_ids, "window": self.window,
                  "scale": np.array([self.scale]), "original_shape": self.original_shape,
                  "image_scale": np.array([self.image_scale])}
        if isinstance(self.instances, BoxMasks):
            arrays.update(boxes=self.instances.boxes, masks=self.instances.masks)
        else:
            arrays.update(layers=self.instances.layers, layer_of=self.instances.layer_of)
        return arrays

    @classmethod
    def from_arrays(cls, arrays):
        """Inverse of `to_arrays`."""
        image = arrays["image"]
        if "layers" in arrays:
            instances = InstanceLayers(arrays["layers"], arrays["layer_of"])
        else:
            instances = BoxMasks(arrays["boxes"], arrays["masks"], image.shape[:2])
        image_scale = float(arrays["image_scale"][0]) if "image_scale" in arrays else 1.0
        return cls(image, instances, arrays["class_ids"], arrays["window"],
                   float(arrays["scale"][0]), arrays["original_shape"], image_scale)


def _largest(boxes, max_instances):
    """Sorted indices of the `max_instances` boxes of largest area."""
    if boxes.shape[0] <= max_instances:
        return np.arange(boxes.shape[0])
    area = (boxes[:, 2] - boxes[:, 0]).astype(np.int64) * (boxes[:, 3] - boxes[:, 1])
    return np.sort(np.argsort(-area, kind="stable")[:max_instances])


def _warn_max_gt(dataset, image_id, count, max_instances):
    key = (id(dataset), image_id)
    if key not in _warned_max_gt:
        _warned_max_gt.add(key)
        log.warning("image %s has %d instances; keeping the %d largest "
                    "(Config.MAX_GT_INSTANCES)", dataset.image_reference(image_id), count,
                    max_instances)


def prepare_sample(dataset, config, image_id, mini_masks):
    """Stage 1: load, flip variant, resize (`prepared_image_scale`, the mode), pack the instances.

    Args:
        dataset: a prepared `Dataset`.
        config: the model's Config.
        image_id: internal image id.
        mini_masks: True to store boxes + mini masks (Config.MINI_MASK_SHAPE)
            of the MAX_GT_INSTANCES largest instances (needs USE_MINI_MASK;
            allows only dihedral augmentation afterwards); False for label
            layers.

    Returns:
        a `PreparedSample`.
    """
    image = np.asarray(dataset.load_image(image_id))
    mask, class_ids = dataset.load_mask(image_id)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids).astype(np.int32).reshape(-1)
    name = type(dataset).__name__
    if image.ndim != 3:
        raise ValueError(f"load_image({image_id}) of {name} returned shape {image.shape}; "
                         f"expected [H, W, C] (see mrcnn.data.image.to_rgb_uint8)")
    if mask.ndim != 3 or mask.shape[-1] != class_ids.shape[0]:
        raise ValueError(
            f"load_mask({image_id}) of {name} returned masks of shape "
            f"{mask.shape} and {class_ids.shape[0]} class ids; expected [H, W, N] and N")
    if mask.shape[-1] and mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"image {image_id} ({dataset.image_reference(image_id)}) is "
            f"{image.shape[0]}x{image.shape[1]} but its masks are {mask.shape[0]}x{mask.shape[1]}")
    original_shape = image.shape
    if mask.shape[-1]:
        layers = InstanceLayers.from_masks(mask)
    else:
        layers = InstanceLayers(np.zeros(image.shape[:2] + (1,), np.uint16), [])
    info = dataset.image_info[image_id]
    for axis, key in enumerate(FLIP_KEYS):
        if info.get(key):
            image = np.flip(image, axis=axis)
            layers = layers.flip(axis)
    factor = prepared_image_scale(config)
    image, window, scale, padding = scale_for_model(image, config, factor)
    layers = InstanceLayers(resize_mask(layers.layers, scale, padding), layers.layer_of)
    if mini_masks:
        boxes, present = layers.boxes()
        ids = np.flatnonzero(present)
        if ids.size > config.MAX_GT_INSTANCES:
            _warn_max_gt(dataset, image_id, ids.size, config.MAX_GT_INSTANCES)
        ids = ids[_largest(boxes[ids], config.MAX_GT_INSTANCES)]
        minis = layers.minimize(ids, boxes[ids], config.MINI_MASK_SHAPE)
        instances = BoxMasks(boxes[ids], minis, layers.shape)
        class_ids = class_ids[ids]
    else:
        instances = layers
    return PreparedSample(np.ascontiguousarray(image), instances, class_ids, window, scale,
                          original_shape, factor)


# ---------------------------------------------------------------- stage 2
def check_num_classes(dataset, config):
    """ValueError unless Config.NUM_CLASSES covers the dataset's classes (background included)."""
    if dataset.num_classes > config.NUM_CLASSES:
        raise ValueError(
            f"{type(dataset).__name__} has {dataset.num_classes} classes (background "
            f"included) but Config.NUM_CLASSES is {config.NUM_CLASSES}; set NUM_CLASSES = "
            f"{dataset.num_classes}")


def _active_class_ids(dataset, config, image_id):
    check_num_classes(dataset, config)
    active = np.zeros(config.NUM_CLASSES, dtype=np.int32)
    active[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1
    return active


def finish_sample(prepared, dataset, config, image_id, augmenter=None, rng=None,
                  use_mini_mask=None):
    """Stage 2: augmentation, fit to the model input, boxes, masks, meta.

    Args:
        prepared: the `PreparedSample` of `image_id`.
        dataset, config, image_id: as `prepare_sample`.
        augmenter: an `augment.Augmenter` (see `augment.as_augmenter`) or None.
        rng: np.random.Generator (or seed) of this sample.
        use_mini_mask: masks as mini masks in their boxes (default
            Config.USE_MINI_MASK) or at full size; mini-mask samples
            (`prepare_sample` with ``mini_masks=True``) give mini masks only.

    Returns:
        image: [H, W, C] at Config.IMAGE_SHAPE, same dtype as loaded.
        image_meta: float32 [IMAGE_META_SIZE].
        class_ids: int32 [n], n <= MAX_GT_INSTANCES.
        bbox: int32 [n, (y1, x1, y2, x2)] pixel boxes in the model input.
        mask: bool [mh, mw, n] mini masks or [H, W, n] (see `use_mini_mask`).
        Instances without pixels left (cropped or rotated away) are dropped.
    """
    rng = np.random.default_rng(rng)
    prepared = _at_prepared_scale(prepared, dataset, config, image_id)
    class_ids = prepared.class_ids
    if class_ids.size and class_ids.max() >= config.NUM_CLASSES:
        raise ValueError(f"load_mask({image_id}) returned class id {class_ids.max()} but "
                         f"Config.NUM_CLASSES is {config.NUM_CLASSES}")
    active = _active_class_ids(dataset, config, image_id)
    factor = draw_image_scale(config, rng) / prepared.image_scale  # 1 unless multi-scale
    sample = Sample(prepared.image, prepared.instances, prepared.window)
    if factor != 1:
        _rescale(sample, factor)
    if augmenter is not None:
        sample = augmenter.apply(sample, rng)
    if config.IMAGE_RESIZE_MODE == "crop":
        size = int(config.IMAGE_MIN_DIM)
        y, x = crop_origin(sample.shape, size, rng)
        sample.crop(y, x, size, size)
    elif factor != 1:
        _crop_to(sample, config.IMAGE_SHAPE, rng)
    sample = sample.pad(*input_padding(sample.shape, config.IMAGE_SHAPE, "sample"))
    instances = sample.instances
    if isinstance(instances, BoxMasks):
        bbox, mask = instances.boxes, instances.masks
    else:
        boxes, present = instances.boxes()
        ids = np.flatnonzero(present)
        if ids.size > config.MAX_GT_INSTANCES:
            _warn_max_gt(dataset, image_id, ids.size, config.MAX_GT_INSTANCES)
        ids = ids[_largest(boxes[ids], config.MAX_GT_INSTANCES)]
        bbox, class_ids = boxes[ids], class_ids[ids]
        mini = config.USE_MINI_MASK if use_mini_mask is None else use_mini_mask
        mask = (instances.minimize(ids, bbox, config.MINI_MASK_SHAPE) if mini
                else instances.to_masks(ids))
    image = np.ascontiguousarray(sample.image)
    meta = compose_image_meta(image_id, prepared.original_shape, image.shape, sample.window,
                              prepared.scale * factor, active)
    return image, meta, class_ids, bbox.astype(np.int32), mask


_warned_scale = set()


def _at_prepared_scale(prepared, dataset, config, image_id):
    """`prepared`, or the image prepared again when it was made at another IMAGE_SCALE.

    A cache entry written for another Config.IMAGE_SCALE (or before multi-scale
    training was switched on) holds the image at the wrong size; it is never
    used as it is (logged once per image).
    """
    wanted = prepared_image_scale(config)
    if prepared.image_scale == wanted:
        return prepared
    key = (id(dataset), image_id)
    if key not in _warned_scale:
        _warned_scale.add(key)
        log.warning("the prepared (cached) sample of image %s was made at IMAGE_SCALE %g, "
                    "this config needs %g; preparing it again (clear the sample cache "
                    "folder when you change IMAGE_SCALE)", dataset.image_reference(image_id),
                    prepared.image_scale, wanted)
    mini_masks = isinstance(prepared.instances, BoxMasks)
    return prepare_sample(dataset, config, image_id, mini_masks)


def _rescale(sample, factor):
    """Resize a sample (image, instances, window) by `factor`, as `mrcnn.data.fit.resize_image`
    aligns pixels (bilinear image, nearest instances)."""
    h, w = sample.shape
    out_h, out_w = scaled_size((h, w), factor)
    fy, fx = h / out_h, w / out_w
    return sample.warp(np.diag([fy, fx]), [0.5 * fy - 0.5, 0.5 * fx - 0.5], (out_h, out_w),
                       mode="nearest")


def _crop_to(sample, input_shape, rng):
    """Crop a sample larger than ``input_shape`` (H, W) to it, at a random position."""
    h, w = sample.shape
    th, tw = min(h, int(input_shape[0])), min(w, int(input_shape[1]))
    if (th, tw) != (h, w):
        y = int(rng.integers(0, h - th + 1))
        x = int(rng.integers(0, w - tw + 1))
        sample.crop(y, x, th, tw)
    return sample


def plan(config, augmenter):
    """(store mini masks in stage 1, anchor matches repeat between epochs)."""
    kind = augmenter.kind if augmenter is not None else PHOTOMETRIC
    fixed_geometry = (config.IMAGE_RESIZE_MODE != "crop" and kind <= DIHEDRAL
                      and getattr(config, "IMAGE_SCALE_RANGE", None) is None)
    return bool(config.USE_MINI_MASK) and fixed_geometry, fixed_geometry


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False, rng=None):
    """Load and prepare one training sample (both stages, no cache): Matterport's function.

    Args:
        dataset: a prepared `Dataset`.
        config: the model's Config.
        image_id: internal image id in the dataset.
        augment: Matterport's old flag: flip left-right half of the time
            (prefer `augmentation`).
        augmentation: anything `augment.as_augmenter` accepts: built-in
            augmenters, imgaug/albumentations pipelines, or a callable
            ``(image, masks, rng) -> (image, masks)`` on bool [H, W, N] masks.
        use_mini_mask: return mini masks (Config.MINI_MASK_SHAPE, inside each
            box) instead of full-size masks (Matterport's default: False).
        rng: np.random.Generator or seed (crop position, augmentation).

    Returns:
        image [H, W, C] (Config.IMAGE_SHAPE, the dtype loaded), image_meta
        float32 [IMAGE_META_SIZE], class_ids int32 [N], bbox int32
        [N, (y1, x1, y2, x2)] pixel boxes in the image, mask bool [H, W, N]
        (or [mh, mw, N] mini masks): at most MAX_GT_INSTANCES instances
        (the largest), none without pixels.
    """
    if augment and augmentation is None:
        augmentation = Fliplr(0.5)
    augmenter = as_augmenter(augmentation)
    mini_masks, _ = plan(config, augmenter)
    prepared = prepare_sample(dataset, config, image_id, mini_masks and use_mini_mask)
    return finish_sample(prepared, dataset, config, image_id, augmenter, rng,
                         use_mini_mask=use_mini_mask)


class SampleError(ValueError):
    """Building the training sample of one image failed (see `sample_error`).

    Attributes:
        image_id: internal id of the image.
        image_reference: ``dataset.image_reference(image_id)`` (its path), or
            the image's source id when the dataset gives none.
    """


def _image_reference(dataset, image_id):
    """``dataset.image_reference(image_id)``, else ``id '<source id>'``; never raises."""
    try:
        reference = dataset.image_reference(image_id)
    except Exception:  # a broken image_reference must not hide the error being reported
        reference = None
    if reference in (None, ""):
        try:
            reference = f"id {dataset.image_info[image_id]['id']!r}"
        except Exception:
            reference = "no reference"
    return str(reference)


def sample_error(error, dataset, image_id):
    """The error to raise for `error`, met while building the sample of `image_id`.

    Its message names the image (internal id and ``image_reference``, the
    path), the original error and what to do; its type is the original's
    when that type can be built from a message (so ``except OSError`` still
    catches an unreadable file), else `SampleError` (a ValueError). It
    carries ``image_id`` and ``image_reference``; raise it ``from error`` to
    keep the original as ``__cause__``. An error that already names its
    image (made by this function) is returned unchanged.

    Args:
        error: the exception raised by ``load_image``, ``load_mask`` or the
            preparation of the sample.
        dataset: the Dataset.
        image_id: internal image id.
    """
    if isinstance(getattr(error, "image_id", None), int) and hasattr(error, "image_reference"):
        return error
    reference = _image_reference(dataset, image_id)
    message = (f"image {image_id} ({reference}) of {type(dataset).__name__}: {_FAILED} "
               f"{type(error).__name__}: {error}. {_ADVICE}")
    return _named_error(type(error), message, image_id, reference)


_FAILED = "cannot build its training sample:"
_ADVICE = ("Fix or replace that file (or its masks), or remove the image from the dataset, "
           "then train again")
# "<Type>: image <id> (<reference>) of <Dataset>: cannot build ... train again", as a
# traceback's last line shows it
_REPORT = re.compile(r"^([A-Za-z_][\w.]*): (image (\d+) \((.*?)\) of [\w.]+: "
                     + re.escape(_FAILED) + r" .*?" + re.escape(_ADVICE) + r")$",
                     re.MULTILINE | re.DOTALL)


def _named_error(cls, message, image_id, reference):
    """``cls(message)`` if that keeps the message (else `SampleError`), naming its image."""
    error = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            error = cls(message)
        except Exception:  # the type needs other arguments (e.g. TensorFlow's OpError)
            error = None
    if error is None or str(error) != message:   # KeyError quotes its message
        error = SampleError(message)
    error.image_id = int(image_id)
    error.image_reference = reference
    return error


def sample_error_in(text):
    """The `sample_error` reported in `text` (a message holding a traceback), rebuilt.

    A sample error raised in a data-loader worker process reaches TensorFlow
    as text only (tf.data puts the Python traceback into its own error's
    message). The error is rebuilt from the last report in `text`: with its
    type when that is a built-in exception, else as `SampleError`; the
    original error stayed in the worker (no ``__cause__``).

    Returns:
        the error, or None when `text` reports none.
    """
    found = None
    for found in _REPORT.finditer(str(text)):
        pass
    if found is None:
        return None
    name, message, image_id, reference = found.groups()
    return _named_error(getattr(builtins, name, None), message, int(image_id), reference)


def keep_largest(class_ids, bbox, mask, max_instances):
    """Keep the `max_instances` largest instances (by box area), in their order."""
    keep = _largest(np.asarray(bbox), max_instances)
    return class_ids[keep], bbox[keep], mask[..., keep]
