"""Training samples and batches: Dataset -> model inputs.

A sample is built in two stages:

1. `prepare_sample` (deterministic, the expensive part, cacheable): load the
   image and masks, apply the entry's flip variant (``image_info`` keys
   "vertical_flip" / "horizontal_flip", see `augment.add_flip_variants`),
   resize as Config.IMAGE_RESIZE_MODE says ("crop" mode: scaled but not yet
   cropped) and pack the masks compactly (`mrcnn.data.masks.instances`): as
   boxes + mini masks of the MAX_GT_INSTANCES largest instances when the
   augmentation is only flips/90-degree rotations/photometric, else as
   full-resolution label layers.
2. `finish_sample` (random, every epoch): augmentation, the random crop of
   "crop" mode, padding to Config.IMAGE_SHAPE, boxes and mini masks of the
   instances still in the image (the largest MAX_GT_INSTANCES), image meta.

`DataGenerator` (a ``keras.utils.PyDataset``) caches stage 1 in a
`mrcnn.data.cache.store.SampleCache` and adds RPN targets; when boxes repeat
between epochs (no resampling augmentation) the anchor matching, the
deterministic and costly part of the RPN targets, is cached as well and only
the anchor subsampling is redone. Cached and fresh samples are identical.

Batches are deterministic for a given seed: the order of images in epoch e
is drawn from ``(seed, e)`` (optionally balanced by `sampling.BalancedSampler`)
and each sample's randomness (augmentation, crops, anchor subsampling) from
``(seed, e, index)``, whichever worker builds it.
"""

import logging

import keras
import numpy as np

from mrcnn.data import rpn_targets as rpn
from mrcnn.data.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.data.augment.core import DIHEDRAL, FLIP_KEYS, PHOTOMETRIC, Sample, as_augmenter
from mrcnn.data.boxes import norm_boxes
from mrcnn.data.cache.store import digest, open_cache, sample_key
from mrcnn.data.image import mold_image, resize_image, resize_mask
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks.instances import BoxMasks, InstanceLayers
from mrcnn.data.rpn_targets import match_anchors, sample_rpn_targets  # also exported here
from mrcnn.data.sampling import as_sampler

log = logging.getLogger(__name__)

__all__ = ["PreparedSample", "prepare_sample", "finish_sample", "load_image_gt",
           "keep_largest", "model_anchors", "match_anchors", "sample_rpn_targets",
           "DataGenerator", "make_generators", "PREPARE_VERSION"]

# Bump when prepare_sample's output changes meaning (part of every cache key).
PREPARE_VERSION = 1
# Bump when mrcnn.data.rpn_targets changes its anchor matching rules.
RPN_MATCH_VERSION = 1

_RESIZE_FIELDS = ("IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE")
_MINI_FIELDS = ("USE_MINI_MASK", "MINI_MASK_SHAPE", "MAX_GT_INSTANCES")

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
    """

    def __init__(self, image, instances, class_ids, window, scale, original_shape):
        self.image = image
        self.instances = instances
        self.class_ids = np.asarray(class_ids, np.int32)
        self.window = np.asarray(window, np.int64)
        self.scale = float(scale)
        self.original_shape = np.asarray(original_shape, np.int64)

    @property
    def kind(self):
        return "boxmasks" if isinstance(self.instances, BoxMasks) else "layers"

    def to_arrays(self):
        """{name: array} for the cache."""
        arrays = {"image": self.image, "class_ids": self.class_ids, "window": self.window,
                  "scale": np.array([self.scale]), "original_shape": self.original_shape}
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
        return cls(image, instances, arrays["class_ids"], arrays["window"],
                   float(arrays["scale"][0]), arrays["original_shape"])


def _resize(image, config):
    """Deterministic resize of stage 1: (image, window, scale, padding)."""
    mode = config.IMAGE_RESIZE_MODE
    if mode == "crop":
        # Scale as "crop" mode does but keep the whole image; finish_sample
        # takes the random crop. ("pad64" computes the same scale.)
        image, window, scale, _, _ = resize_image(
            image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
            mode="pad64")
        y1, x1, y2, x2 = window
        return image[y1:y2, x1:x2], (0, 0, y2 - y1, x2 - x1), scale, [(0, 0)] * 3
    image, window, scale, padding, _ = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE, mode=mode)
    return image, window, scale, padding


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
    """Stage 1: load, flip variant, resize, pack the instances.

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
    image, window, scale, padding = _resize(image, config)
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
                          original_shape)


# ---------------------------------------------------------------- stage 2
def _fit_to_model(sample, config, rng):
    """Random crop ("crop" mode) and centred zero padding to Config.IMAGE_SHAPE."""
    if config.IMAGE_RESIZE_MODE == "crop":
        size = int(config.IMAGE_MIN_DIM)
        h, w = sample.shape
        y = int(rng.integers(0, max(h - size, 0) + 1))
        x = int(rng.integers(0, max(w - size, 0) + 1))
        sample.crop(y, x, size, size)
    th, tw = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    h, w = sample.shape
    if h > th or w > tw:
        raise ValueError(
            f"the sample is {h}x{w} after resizing and augmentation, larger than the model "
            f"input {th}x{tw} (Config.IMAGE_SHAPE); crop it (IMAGE_RESIZE_MODE 'crop' or "
            f"augment.RandomCrop), or use Rot90(ks=(0, 2)) for non-square inputs")
    top, left = (th - h) // 2, (tw - w) // 2
    return sample.pad(top, th - h - top, left, tw - w - left)


def _active_class_ids(dataset, config, image_id):
    if dataset.num_classes > config.NUM_CLASSES:
        raise ValueError(
            f"{type(dataset).__name__} has {dataset.num_classes} classes (background "
            f"included) but Config.NUM_CLASSES is {config.NUM_CLASSES}; set NUM_CLASSES = "
            f"{dataset.num_classes}")
    active = np.zeros(config.NUM_CLASSES, dtype=np.int32)
    active[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1
    return active


def finish_sample(prepared, dataset, config, image_id, augmenter=None, rng=None):
    """Stage 2: augmentation, fit to the model input, boxes, masks, meta.

    Args:
        prepared: the `PreparedSample` of `image_id`.
        dataset, config, image_id: as `prepare_sample`.
        augmenter: an `augment.Augmenter` (see `augment.as_augmenter`) or None.
        rng: np.random.Generator (or seed) of this sample.

    Returns:
        image: [H, W, C] at Config.IMAGE_SHAPE, same dtype as loaded.
        image_meta: float32 [IMAGE_META_SIZE].
        class_ids: int32 [n], n <= MAX_GT_INSTANCES.
        bbox: int32 [n, (y1, x1, y2, x2)] pixel boxes in the model input.
        mask: bool [mh, mw, n] mini masks (USE_MINI_MASK) or [H, W, n].
        Instances without pixels left (cropped or rotated away) are dropped.
    """
    rng = np.random.default_rng(rng)
    class_ids = prepared.class_ids
    if class_ids.size and class_ids.max() >= config.NUM_CLASSES:
        raise ValueError(f"load_mask({image_id}) returned class id {class_ids.max()} but "
                         f"Config.NUM_CLASSES is {config.NUM_CLASSES}")
    active = _active_class_ids(dataset, config, image_id)
    sample = Sample(prepared.image, prepared.instances, prepared.window)
    if augmenter is not None:
        sample = augmenter.apply(sample, rng)
    sample = _fit_to_model(sample, config, rng)
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
        mask = (instances.minimize(ids, bbox, config.MINI_MASK_SHAPE) if config.USE_MINI_MASK
                else instances.to_masks(ids))
    image = np.ascontiguousarray(sample.image)
    meta = compose_image_meta(image_id, prepared.original_shape, image.shape, sample.window,
                              prepared.scale, active)
    return image, meta, class_ids, bbox.astype(np.int32), mask


def _plan(config, augmenter):
    """(store mini masks in stage 1, anchor matches repeat between epochs)."""
    kind = augmenter.kind if augmenter is not None else PHOTOMETRIC
    fixed_geometry = config.IMAGE_RESIZE_MODE != "crop" and kind <= DIHEDRAL
    return bool(config.USE_MINI_MASK) and fixed_geometry, fixed_geometry


def load_image_gt(dataset, config, image_id, augmentation=None, rng=None):
    """Load and prepare one training sample (both stages, no cache).

    Args:
        dataset: a prepared `Dataset`.
        config: the model's Config.
        image_id: internal image id in the dataset.
        augmentation: anything `augment.as_augmenter` accepts: built-in
            augmenters, imgaug/albumentations pipelines, or a callable
            ``(image, masks, rng) -> (image, masks)`` on bool [H, W, N] masks.
        rng: np.random.Generator or seed (crop position, augmentation).

    Returns:
        image, image_meta, class_ids, bbox, mask as `finish_sample`: at most
        MAX_GT_INSTANCES instances (the largest), none without pixels.
    """
    augmenter = as_augmenter(augmentation)
    mini_masks, _ = _plan(config, augmenter)
    prepared = prepare_sample(dataset, config, image_id, mini_masks)
    return finish_sample(prepared, dataset, config, image_id, augmenter, rng)


def keep_largest(class_ids, bbox, mask, max_instances):
    """Keep the `max_instances` largest instances (by box area), in their order."""
    keep = _largest(np.asarray(bbox), max_instances)
    return class_ids[keep], bbox[keep], mask[..., keep]


def model_anchors(config, strides=None):
    """Pixel anchors [A, 4] for the model input shape (same order as the RPN output)."""
    strides = list(strides if strides is not None else config.BACKBONE_STRIDES)
    shapes = compute_backbone_shapes(config.IMAGE_SHAPE, strides)
    return generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    shapes, strides, config.RPN_ANCHOR_STRIDE)


# ---------------------------------------------------------------- generator
class DataGenerator(keras.utils.PyDataset):
    """Batches of model inputs built from a Dataset.

    Each item is a dict with ``input_image`` (float32, molded), ``input_image_meta``,
    ``input_rpn_match`` [B, A] int32, ``input_rpn_bbox`` [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4],
    ``input_gt_class_ids`` [B, MAX_GT_INSTANCES] int32 (0 = padding),
    ``input_gt_boxes`` [B, MAX_GT_INSTANCES, 4] normalized (y1, x1, y2, x2),
    ``input_gt_masks`` [B, mh, mw, MAX_GT_INSTANCES] bool.

    Args:
        dataset: a prepared Dataset.
        config: the model's Config.
        shuffle: draw a new image order every epoch.
        augmentation: anything `augment.as_augmenter` accepts, or None.
        steps: batches per epoch (default: enough to see every image once).
        seed: seed of the image order and of all per-sample randomness.
        strides: feature strides of the backbone (default Config.BACKBONE_STRIDES).
        workers, use_multiprocessing, max_queue_size: as keras.utils.PyDataset.
        no_augmentation_sources: dataset sources whose images are not
            augmented (Matterport's option).
        cache: a `cache.SampleCache` (e.g. from `cache.open_cache(config)`)
            or None. Worker processes share a disk cache; an in-memory cache
            is per process.
        sampler: None, or a `sampling.BalancedSampler` / what it accepts
            ("size", an image_info key, a callable) to balance the epochs.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, steps=None,
                 seed=0, strides=None, workers=1, use_multiprocessing=False,
                 max_queue_size=10, no_augmentation_sources=None, cache=None, sampler=None):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if not len(dataset.image_ids):
            raise ValueError(f"{type(dataset).__name__} has no images (did you call prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.augmenter = as_augmenter(augmentation)
        self.no_augmentation_sources = frozenset(no_augmentation_sources or ())
        self.cache = cache
        self.sampler = as_sampler(sampler)
        self.mini_masks, self.repeating_boxes = _plan(config, self.augmenter)
        self.batch_size = config.BATCH_SIZE
        self.seed = int(seed)
        self.epoch = 0
        self.anchors = model_anchors(config, strides)
        self._orders = (None, None)
        length = (self.sampler.epoch_length(dataset) if self.sampler is not None
                  else len(dataset.image_ids))
        self.steps = int(steps) if steps else -(-length // self.batch_size)
        fields = {name: getattr(config, name) for name in _RESIZE_FIELDS}
        if self.mini_masks:
            fields.update({name: getattr(config, name) for name in _MINI_FIELDS})
        self._key_fields = (PREPARE_VERSION, fields)
        self._keys = {}
        self._anchor_key = digest("anchors", RPN_MATCH_VERSION, self.anchors)

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def _order(self):
        epoch, order = self._orders
        if epoch != self.epoch:
            rng = np.random.default_rng((self.seed, self.epoch))
            if self.sampler is not None:
                order = self.sampler.order(self.dataset, rng)
            elif self.shuffle:
                order = rng.permutation(np.asarray(self.dataset.image_ids))
            else:
                order = np.asarray(self.dataset.image_ids)
            self._orders = (self.epoch, order)
        return order

    def prepared(self, image_id):
        """Stage 1 of `image_id`, from the cache when possible."""
        if self.cache is None:
            return prepare_sample(self.dataset, self.config, image_id, self.mini_masks)
        key = self._keys.get(image_id)
        if key is None:  # computed once per generator (hashing image_info costs ~1 ms)
            kind = "boxmasks" if self.mini_masks else "layers"
            key = self._keys[image_id] = sample_key(self.dataset, image_id, self._key_fields,
                                                    kind)
        arrays = self.cache.get(key)
        if arrays is not None:
            try:
                return PreparedSample.from_arrays(arrays)
            except (KeyError, ValueError, TypeError) as error:
                log.warning("cache entry of image %s does not hold a prepared sample (%s); "
                            "recomputing it", image_id, error)
        prepared = prepare_sample(self.dataset, self.config, image_id, self.mini_masks)
        self.cache.put(key, prepared.to_arrays())
        return prepared

    def rpn_targets(self, bbox, class_ids, rng):
        """RPN match [A] and deltas [RPN_TRAIN_ANCHORS_PER_IMAGE, 4] of one sample."""
        cfg = self.config
        if self.cache is None or not self.repeating_boxes:
            return rpn.rpn_targets(self.anchors, bbox, class_ids,
                                   cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, cfg.RPN_BBOX_STD_DEV, rng)
        key = digest("rpn-match", self._anchor_key, np.asarray(bbox, np.int32),
                     np.asarray(class_ids) < 0)
        match = self.cache.get(key)
        if match is None:
            match = match_anchors(self.anchors, bbox, class_ids)
            self.cache.put(key, match)
        return sample_rpn_targets(match, self.anchors, bbox, class_ids,
                                  cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, cfg.RPN_BBOX_STD_DEV, rng)

    def sample(self, position):
        """Prepared arrays of the sample at `position` in this epoch's order.

        Returns:
            image, image_meta, class_ids, bbox, mask (as `finish_sample`),
            rpn_match, rpn_bbox.
        """
        order = self._order()
        image_id = int(order[position % len(order)])
        rng = np.random.default_rng((self.seed, self.epoch, position))
        prepared = self.prepared(image_id)
        source = self.dataset.image_info[image_id]["source"]
        augmenter = None if source in self.no_augmentation_sources else self.augmenter
        image, meta, class_ids, bbox, mask = finish_sample(
            prepared, self.dataset, self.config, image_id, augmenter, rng)
        match, rpn_bbox = self.rpn_targets(bbox, class_ids, rng)
        return image, meta, class_ids, bbox, mask, match, rpn_bbox

    def __getitem__(self, index):
        cfg = self.config
        b, g = self.batch_size, cfg.MAX_GT_INSTANCES
        h, w = int(cfg.IMAGE_SHAPE[0]), int(cfg.IMAGE_SHAPE[1])
        mh, mw = (cfg.MINI_MASK_SHAPE if cfg.USE_MINI_MASK else (h, w))
        batch = {
            "input_image": np.zeros((b, h, w, cfg.IMAGE_CHANNEL_COUNT), np.float32),
            "input_image_meta": np.zeros((b, cfg.IMAGE_META_SIZE), np.float32),
            "input_rpn_match": np.zeros((b, self.anchors.shape[0]), np.int32),
            "input_rpn_bbox": np.zeros((b, cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32),
            "input_gt_class_ids": np.zeros((b, g), np.int32),
            "input_gt_boxes": np.zeros((b, g, 4), np.float32),
            "input_gt_masks": np.zeros((b, mh, mw, g), bool),
        }
        for j in range(b):
            image, meta, class_ids, bbox, mask, match, rpn_bbox = self.sample(index * b + j)
            n = class_ids.shape[0]
            batch["input_image"][j] = mold_image(image, cfg)
            batch["input_image_meta"][j] = meta
            batch["input_rpn_match"][j] = match
            batch["input_rpn_bbox"][j] = rpn_bbox
            batch["input_gt_class_ids"][j, :n] = class_ids
            batch["input_gt_boxes"][j, :n] = norm_boxes(bbox, (h, w))
            batch["input_gt_masks"][j, :, :, :n] = mask
        return batch


def make_generators(train_dataset, val_dataset, config, model_dir=None, augmentation=None,
                    sampler=None, seed=0, strides=None, workers=None,
                    use_multiprocessing=None, epoch=0, no_augmentation_sources=None):
    """Training and validation generators, and the callbacks they need, from the Config.

    Reads Config.CACHE / CACHE_DIR / CACHE_MAX_BYTES (one cache shared by
    both generators), WORKERS, MAX_QUEUE_SIZE, STEPS_PER_EPOCH and
    VALIDATION_STEPS.

    Args:
        train_dataset, val_dataset: prepared Datasets (val may be None).
        config: the model's Config.
        model_dir: the model's log folder (the disk cache defaults to
            ``<model_dir>/cache``).
        augmentation: for the training generator (see `augment.as_augmenter`).
        sampler: balanced sampling of the training set (see `DataGenerator`).
        seed: seed of the training data; validation uses seed + 1.
        strides: backbone feature strides (default Config.BACKBONE_STRIDES).
        workers, use_multiprocessing: data-loader workers (default
            Config.WORKERS; processes when workers > 1).
        epoch: the epoch training starts at.
        no_augmentation_sources: sources the training generator does not augment.

    Returns:
        (train_generator, val_generator or None, callbacks): callbacks holds
        a `cache_callback.CacheStatsLogger` when caching is on.
    """
    from mrcnn.training.callbacks import CacheStatsLogger

    workers = config.WORKERS if workers is None else workers
    if use_multiprocessing is None:
        use_multiprocessing = workers > 1
    cache = open_cache(config, model_dir)
    if cache is not None and cache.mode == "memory" and use_multiprocessing:
        log.warning("Config.CACHE=True keeps the cache in memory, per process; Keras starts "
                    "new worker processes every epoch, so with use_multiprocessing their "
                    "caches are lost. Use CACHE='disk' (or worker threads).")
    common = dict(strides=strides, workers=max(workers, 1),
                  use_multiprocessing=use_multiprocessing,
                  max_queue_size=config.MAX_QUEUE_SIZE, cache=cache)
    train = DataGenerator(train_dataset, config, shuffle=True, augmentation=augmentation,
                          steps=config.STEPS_PER_EPOCH, seed=seed, sampler=sampler,
                          no_augmentation_sources=no_augmentation_sources, **common)
    train.epoch = epoch
    val = None
    if val_dataset is not None and config.VALIDATION_STEPS:
        val = DataGenerator(val_dataset, config, shuffle=False,
                            steps=config.VALIDATION_STEPS, seed=seed + 1, **common)
    callbacks = [CacheStatsLogger(cache)] if cache is not None else []
    return train, val, callbacks
