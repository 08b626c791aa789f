"""Training samples and batches: Dataset -> model inputs.

`load_image_gt` prepares one sample (image fitted to the model input, boxes,
class ids, mini-masks, image meta); `DataGenerator` is a
`keras.utils.PyDataset` that stacks samples into the model's input dict with
RPN targets, so `fit` can run it with `workers` and multiprocessing.

Batches are deterministic for a given seed: the order of images in epoch e is
a permutation drawn from ``(seed, e)`` and each sample's randomness (crops,
augmentation, anchor subsampling) from ``(seed, e, index)``, whichever worker
builds it.
"""

import logging

import keras
import numpy as np

from mrcnn.data.anchors import compute_backbone_shapes, generate_pyramid_anchors
from mrcnn.data.boxes import extract_bboxes, norm_boxes
from mrcnn.data.image import mold_image, resize_mask
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks import minimize_mask
from mrcnn.data.molding import fit_image
from mrcnn.data.rpn_targets import rpn_targets

log = logging.getLogger(__name__)

_warned_max_gt = set()


def load_image_gt(dataset, config, image_id, augmentation=None, rng=None):
    """Load and prepare one training sample.

    Args:
        dataset: a prepared `Dataset`.
        config: the model's Config.
        image_id: internal image id in the dataset.
        augmentation: optional callable ``(image, masks, rng) -> (image, masks)``
            applied after fitting to the model shape (it must keep the shape).
        rng: np.random.Generator (crop position, augmentation).

    Returns:
        image: uint8 [H, W, C] at Config.IMAGE_SHAPE.
        image_meta: float32 [IMAGE_META_SIZE].
        class_ids: int32 [N].
        bbox: int32 [N, (y1, x1, y2, x2)] pixel boxes in the model input.
        mask: bool [MINI_MASK_SHAPE..., N] with USE_MINI_MASK, else [H, W, N].
        Instances that vanish (cropped away, empty mask) are dropped.
    """
    rng = np.random.default_rng(rng)
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    mask = np.asarray(mask, dtype=bool)
    class_ids = np.asarray(class_ids, dtype=np.int32)
    if mask.ndim != 3 or mask.shape[-1] != class_ids.shape[0]:
        raise ValueError(
            f"load_mask({image_id}) of {type(dataset).__name__} returned masks of shape "
            f"{mask.shape} and {class_ids.shape[0]} class ids; expected [H, W, N] and N")
    if mask.shape[-1] and mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"image {image_id} ({dataset.image_reference(image_id)}) is "
            f"{image.shape[0]}x{image.shape[1]} but its masks are {mask.shape[0]}x{mask.shape[1]}")
    original_shape = image.shape
    image, window, scale, padding, crop = fit_image(image, config, rng=rng, training=True)
    if mask.shape[-1]:
        mask = resize_mask(mask, scale, padding, crop)
        if crop is None and mask.shape[:2] != image.shape[:2]:
            mask = _pad_like(mask, image.shape[:2])
    else:
        mask = np.zeros(image.shape[:2] + (0,), bool)

    if augmentation is not None:
        image, mask = augmentation(image, mask, rng)

    keep = mask.any(axis=(0, 1))
    mask, class_ids = mask[..., keep], class_ids[keep]
    bbox = extract_bboxes(mask)

    source = dataset.image_info[image_id]["source"]
    if dataset.num_classes > config.NUM_CLASSES:
        raise ValueError(
            f"{type(dataset).__name__} has {dataset.num_classes} classes (background "
            f"included) but Config.NUM_CLASSES is {config.NUM_CLASSES}; set NUM_CLASSES = "
            f"{dataset.num_classes}")
    if class_ids.size and class_ids.max() >= config.NUM_CLASSES:
        raise ValueError(f"load_mask({image_id}) returned class id {class_ids.max()} but "
                         f"Config.NUM_CLASSES is {config.NUM_CLASSES}")
    active_class_ids = np.zeros(config.NUM_CLASSES, dtype=np.int32)
    active_class_ids[dataset.source_class_ids[source]] = 1

    if config.USE_MINI_MASK:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale,
                                    active_class_ids)
    return image, image_meta, class_ids, bbox, mask


def _pad_like(mask, target_hw):
    """Centre-pad masks to target_hw, as `fit_image` pads the image."""
    h, w = mask.shape[:2]
    th, tw = target_hw
    t, l = (th - h) // 2, (tw - w) // 2
    return np.pad(mask, [(t, th - h - t), (l, tw - w - l), (0, 0)])


def keep_largest(class_ids, bbox, mask, max_instances):
    """Keep the `max_instances` largest instances (by box area)."""
    if class_ids.shape[0] <= max_instances:
        return class_ids, bbox, mask
    area = (bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])
    keep = np.sort(np.argsort(-area, kind="stable")[:max_instances])
    return class_ids[keep], bbox[keep], mask[..., keep]


def model_anchors(config, strides=None):
    """Pixel anchors [A, 4] for the model input shape (same order as the RPN output)."""
    strides = list(strides if strides is not None else config.BACKBONE_STRIDES)
    shapes = compute_backbone_shapes(config.IMAGE_SHAPE, strides)
    return generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                                    shapes, strides, config.RPN_ANCHOR_STRIDE)


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
        augmentation: callable ``(image, masks, rng) -> (image, masks)`` or None.
        steps: batches per epoch (default: enough to see every image once).
        seed: seed of the image order and of all per-sample randomness.
        strides: feature strides of the backbone (default Config.BACKBONE_STRIDES).
        workers, use_multiprocessing, max_queue_size: as keras.utils.PyDataset.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None, steps=None,
                 seed=0, strides=None, workers=1, use_multiprocessing=False,
                 max_queue_size=10):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing,
                         max_queue_size=max_queue_size)
        if not len(dataset.image_ids):
            raise ValueError(f"{type(dataset).__name__} has no images (did you call prepare()?)")
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.batch_size = config.BATCH_SIZE
        n = len(dataset.image_ids)
        self.steps = int(steps) if steps else -(-n // self.batch_size)
        self.seed = int(seed)
        self.epoch = 0
        self.anchors = model_anchors(config, strides)

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def _order(self):
        ids = np.asarray(self.dataset.image_ids)
        if self.shuffle:
            return np.random.default_rng((self.seed, self.epoch)).permutation(ids)
        return ids

    def sample(self, position):
        """Prepared arrays of the sample at `position` in this epoch's order."""
        order = self._order()
        image_id = int(order[position % len(order)])
        rng = np.random.default_rng((self.seed, self.epoch, position))
        image, meta, class_ids, bbox, mask = load_image_gt(
            self.dataset, self.config, image_id, self.augmentation, rng)
        cfg = self.config
        if class_ids.shape[0] > cfg.MAX_GT_INSTANCES:
            key = (id(self.dataset), image_id)
            if key not in _warned_max_gt:
                _warned_max_gt.add(key)
                log.warning("image %s has %d instances; keeping the %d largest "
                            "(Config.MAX_GT_INSTANCES)", self.dataset.image_reference(image_id),
                            class_ids.shape[0], cfg.MAX_GT_INSTANCES)
            class_ids, bbox, mask = keep_largest(class_ids, bbox, mask, cfg.MAX_GT_INSTANCES)
        match, rpn_bbox = rpn_targets(self.anchors, bbox, class_ids,
                                      cfg.RPN_TRAIN_ANCHORS_PER_IMAGE, cfg.RPN_BBOX_STD_DEV, rng)
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
