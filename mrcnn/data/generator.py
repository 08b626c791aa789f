"""Batches of training inputs: a Dataset -> dicts of model inputs (a ``keras.utils.PyDataset``).

`DataGenerator` builds each sample with `mrcnn.data.sample` (stage 1 cached
in a `mrcnn.data.cache.SampleCache`), adds RPN targets and packs a batch;
when boxes repeat between epochs (no resampling augmentation) the anchor
matching, the deterministic and costly part of the RPN targets, is cached as
well and only the anchor subsampling is redone. Cached and fresh samples are
identical.

An error while building a sample (an unreadable image, masks that do not
fit it) is raised as `mrcnn.data.sample.sample_error` makes it: the message
names the image id and its reference (the path) and what to do, the
original error is its ``__cause__``, and the generator keeps both in
`DataGenerator.last_error`, so that `mrcnn.training.loop.fit` can raise it
instead of the backend's wrapper of it (TensorFlow's error from inside
tf.data).

Batches are deterministic for a given seed: the order of images in epoch e
is drawn from ``(seed, e)`` (optionally balanced by `sampling.BalancedSampler`)
and each sample's randomness (augmentation, crops, anchor subsampling) from
``(seed, e, index)``, whichever worker builds it.

In a job of several processes (`mrcnn.distribute.cluster`) the global batch
``b`` of a step is the same as with one process: images ``b * B .. b * B +
B - 1`` of the epoch's order (``B`` = BATCH_SIZE). On JAX each process gives
only its rows of it (`shard_rows`; Keras assembles the global array from the
processes' parts); TensorFlow's ``MultiWorkerMirroredStrategy`` takes the
whole global batch on every worker and keeps the worker's part itself, and
there only the chief writes new entries into a shared disk cache (the others
prepare the same samples at the same time).
"""

import logging

import keras
import numpy as np

from mrcnn.data import rpn_targets as rpn
from mrcnn.data.anchors import model_anchors
from mrcnn.data.augment import as_augmenter
from mrcnn.data.boxes import norm_boxes
from mrcnn.data.cache import digest, open_cache, sample_key
from mrcnn.data.image import mold_image
from mrcnn.data.sample import (PREPARE_VERSION, PreparedSample, check_num_classes,
                               finish_sample, plan, prepare_sample, sample_error,
                               sample_error_in)
from mrcnn.data.sampling import as_sampler
from mrcnn.distribute import cluster

log = logging.getLogger(__name__)

__all__ = ["DataGenerator", "make_generators", "batch_error", "shard_rows"]

# Bump when mrcnn.data.rpn_targets changes its anchor matching rules.
RPN_MATCH_VERSION = 1

_RESIZE_FIELDS = ("IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE",
                  "IMAGE_SCALE", "IMAGE_SCALE_RANGE")
_MINI_FIELDS = ("USE_MINI_MASK", "MINI_MASK_SHAPE", "MAX_GT_INSTANCES")


def shard_rows(batch_size, shard=None):
    """The rows of each global batch this process gives: all, or its share.

    Args:
        batch_size: images in the global batch (BATCH_SIZE).
        shard: None (all rows), or ``(process_index, process_count)``: the
            contiguous block ``index * B / count .. (index + 1) * B / count - 1``.

    Returns:
        a ``range`` of row indices.

    Raises:
        ValueError: the batch does not split evenly over the processes.
    """
    if shard is None:
        return range(batch_size)
    index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be (process_index, process_count) with 0 <= index < count, "
                         f"got {tuple(shard)!r}")
    if batch_size % count:
        raise ValueError(f"the global batch of {batch_size} images does not split evenly over "
                         f"{count} processes: make BATCH_SIZE (GPU_COUNT x IMAGES_PER_GPU, "
                         f"GPU_COUNT counting the devices of all processes) a multiple of {count}")
    share = batch_size // count
    return range(index * share, (index + 1) * share)


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
        workers, use_multiprocessing, max_queue_size: as keras.utils.PyDataset.
        no_augmentation_sources: dataset sources whose images are not
            augmented (Matterport's option).
        cache: a `cache.SampleCache` (e.g. from `cache.open_cache(config)`)
            or None. Worker processes share a disk cache; an in-memory cache
            is per process.
        sampler: None, or a `sampling.BalancedSampler` / what it accepts
            ("size", an image_info key, a callable) to balance the epochs.
        batch_size: images per global batch (default Config.BATCH_SIZE, what
            the model takes over all its devices).
        shard: None, or ``(process_index, process_count)``: give only this
            process's rows of each global batch (`shard_rows`); the batches
            per epoch and the samples of each row are the same.

    Attributes:
        last_error: None, or ``(error raised, original error)`` of the last
            sample that failed (see `sample.sample_error`); kept because
            Keras re-raises errors with ``__cause__`` cleared. Set it to None
            to forget it. Worker processes keep their own.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, steps=None,
                 seed=0, workers=1, use_multiprocessing=False,
                 max_queue_size=10, no_augmentation_sources=None, cache=None, sampler=None,
                 batch_size=None, shard=None):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if not len(dataset.image_ids):
            raise ValueError(f"{type(dataset).__name__} has no images (did you call prepare()?)")
        check_num_classes(dataset, config)      # a setting, not an image's fault: fail now
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.augmenter = as_augmenter(augmentation)
        self.no_augmentation_sources = frozenset(no_augmentation_sources or ())
        self.cache = cache
        self.sampler = as_sampler(sampler)
        self.mini_masks, self.repeating_boxes = plan(config, self.augmenter)
        self.batch_size = int(batch_size or config.BATCH_SIZE)
        self.rows = shard_rows(self.batch_size, shard)
        self.seed = int(seed)
        self.epoch = 0
        self.anchors = model_anchors(config)
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
        self.last_error = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["last_error"] = None        # errors stay in the process that met them
        return state

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        """Next epoch's order (Keras calls this; ``MaskRCNN.train`` sets ``epoch`` to fit's
        own as each epoch begins: `mrcnn.training.fit_inputs.GeneratorEpochs`)."""
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
        ious = (float(cfg.RPN_POSITIVE_IOU), float(cfg.RPN_NEGATIVE_IOU))
        if self.cache is None or not self.repeating_boxes:
            return rpn.rpn_targets(self.anchors, bbox, class_ids,
                                   cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, cfg.RPN_BBOX_STD_DEV, rng,
                                   *ious)
        key = digest("rpn-match", self._anchor_key, np.asarray(bbox, np.int32),
                     np.asarray(class_ids) < 0, np.asarray(ious))
        match = self.cache.get(key)
        if match is None:
            match = rpn.match_anchors(self.anchors, bbox, class_ids, *ious)
            self.cache.put(key, match)
        return rpn.sample_rpn_targets(match, self.anchors, bbox, class_ids,
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
        try:
            prepared = self.prepared(image_id)
            source = self.dataset.image_info[image_id]["source"]
            augmenter = None if source in self.no_augmentation_sources else self.augmenter
            image, meta, class_ids, bbox, mask = finish_sample(
                prepared, self.dataset, self.config, image_id, augmenter, rng)
            match, rpn_bbox = self.rpn_targets(bbox, class_ids, rng)
        except Exception as error:
            wrapped = sample_error(error, self.dataset, image_id)
            cause = error if wrapped is not error else error.__cause__
            self.last_error = (wrapped, cause)
            raise wrapped from cause
        return image, meta, class_ids, bbox, mask, match, rpn_bbox

    def batch_spec(self):
        """``{input name: (shape, dtype)}`` of every batch (this process's rows)."""
        cfg = self.config
        b, g = len(self.rows), int(cfg.MAX_GT_INSTANCES)
        h, w = int(cfg.IMAGE_SHAPE[0]), int(cfg.IMAGE_SHAPE[1])
        mh, mw = (int(v) for v in (cfg.MINI_MASK_SHAPE if cfg.USE_MINI_MASK else (h, w)))
        return {
            "input_image": ((b, h, w, int(cfg.IMAGE_CHANNEL_COUNT)), np.float32),
            "input_image_meta": ((b, int(cfg.IMAGE_META_SIZE)), np.float32),
            "input_rpn_match": ((b, self.anchors.shape[0]), np.int32),
            "input_rpn_bbox": ((b, int(cfg.RPN_TRAIN_ANCHORS_PER_IMAGE), 4), np.float32),
            "input_gt_class_ids": ((b, g), np.int32),
            "input_gt_boxes": ((b, g, 4), np.float32),
            "input_gt_masks": ((b, mh, mw, g), bool),
        }

    def __getitem__(self, index):
        cfg = self.config
        h, w = int(cfg.IMAGE_SHAPE[0]), int(cfg.IMAGE_SHAPE[1])
        batch = {name: np.zeros(shape, dtype)
                 for name, (shape, dtype) in self.batch_spec().items()}
        for j, row in enumerate(self.rows):
            image, meta, class_ids, bbox, mask, match, rpn_bbox = self.sample(
                index * self.batch_size + row)
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
                    sampler=None, seed=0, workers=None,
                    use_multiprocessing=None, epoch=0, no_augmentation_sources=None,
                    shard="auto"):
    """Training and validation generators from the Config, sharing one sample cache.

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
        workers, use_multiprocessing: data-loader workers (default
            Config.WORKERS; processes when workers > 1).
        epoch: the epoch training starts at.
        no_augmentation_sources: sources the training generator does not augment.
        shard: "auto" (this process's share of each batch in a JAX job of
            several processes, `mrcnn.distribute.cluster.data_shard`), None
            (whole batches) or ``(process_index, process_count)``.

    Returns:
        (train_generator, val_generator or None, cache): the
        `mrcnn.data.cache.SampleCache`, or None when caching is off.
    """
    workers = config.WORKERS if workers is None else workers
    if use_multiprocessing is None:
        use_multiprocessing = workers > 1
    if shard == "auto":
        shard = cluster.data_shard()
    # Whole batches on every process of a job (TensorFlow): they all prepare the
    # same samples, so only the chief stores them.
    cache = open_cache(config, model_dir, writes=shard is not None or cluster.is_chief())
    if cache is not None and cache.mode == "memory" and use_multiprocessing:
        log.warning("Config.CACHE=True keeps the cache in memory, per process; Keras starts "
                    "new worker processes every epoch, so with use_multiprocessing their "
                    "caches are lost. Use CACHE='disk' (or worker threads).")
    common = dict(workers=max(workers, 1),
                  use_multiprocessing=use_multiprocessing,
                  max_queue_size=config.MAX_QUEUE_SIZE, cache=cache, shard=shard)
    train = DataGenerator(train_dataset, config, shuffle=True, augmentation=augmentation,
                          steps=config.STEPS_PER_EPOCH, seed=seed, sampler=sampler,
                          no_augmentation_sources=no_augmentation_sources, **common)
    train.epoch = epoch
    val = None
    if val_dataset is not None and config.VALIDATION_STEPS:
        val = DataGenerator(val_dataset, config, shuffle=False,
                            steps=config.VALIDATION_STEPS, seed=seed + 1, **common)
    return train, val, cache


def batch_error(error, generators):
    """The sample error behind `error`, raised by ``keras.Model.fit`` over `generators`.

    Keras and the backends re-raise an error of the data pipeline in their
    own way: as is but with ``__cause__`` cleared (traceback filtering), or
    wrapped (TensorFlow's tf.data raises an ``OpError`` whose message holds
    the Python traceback). The generator that raised it kept it in
    `DataGenerator.last_error`.

    Args:
        error: the exception ``fit`` raised.
        generators: the `DataGenerator` objects it ran over.

    Returns:
        ``(sample error, original error)`` when `error` is, or wraps, the
        last error a generator raised, else None. An error raised in a
        worker process (``use_multiprocessing``) is found in the error
        itself or rebuilt from TensorFlow's message; its original error
        stayed in the worker (None).
    """
    for generator in generators:
        last = getattr(generator, "last_error", None)
        if last is not None and (error is last[0] or str(last[0]) in str(error)):
            return last
    if isinstance(getattr(error, "image_id", None), int) and hasattr(error, "image_reference"):
        return error, None                   # a worker's error, unpickled: its cause stayed there
    rebuilt = sample_error_in(str(error))
    return None if rebuilt is None else (rebuilt, None)
