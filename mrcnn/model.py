"""MaskRCNN: builds the Keras model for a Config and trains / runs it.

Matterport's API::

    import mrcnn.model as modellib
    model = modellib.MaskRCNN(mode="training", config=config, model_dir="logs")
    model.load_weights(path, by_name=True, exclude="heads")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
                epochs=10, layers="heads")
    results = modellib.MaskRCNN("inference", config, "logs").detect([image])

This module only wires parts together: the backbone (``backbones``), FPN and
heads (``mrcnn.heads``), graph layers (``mrcnn.layers``), losses
(``mrcnn.training.trainer``/``mrcnn.losses``), the data pipeline (``mrcnn.data``) and
weight files (``mrcnn.weights.h5``).
"""

import datetime
import logging
import math
import os
import re

import keras
import numpy as np

import backbones
from mrcnn.data.boxes import denorm_boxes
from mrcnn.data.generator import make_generators, model_anchors
from mrcnn.data.image import mold_image
from mrcnn.data.image_meta import compose_image_meta
from mrcnn.data.masks.mini import paste_masks
from mrcnn.data.fit import fit_image
from mrcnn.heads.box import build_box_head
from mrcnn.heads.fpn import build_fpn
from mrcnn.heads.mask import build_mask_head
from mrcnn.heads.rpn import apply_rpn, build_rpn_model
from mrcnn.layers.anchors import AnchorsLayer
from mrcnn.training.precision import compute_dtype
from mrcnn.layers.detection import DetectionLayer
from mrcnn.layers.detection_targets import DetectionTargetLayer
from mrcnn.layers.batching import DetectionBoxes, FixedBatch, LeadingRois
from mrcnn.layers.image_meta import ActiveClassIds, NormalizedWindow, ZeroOutsideWindow
from mrcnn.layers.proposal import ProposalLayer
from mrcnn.layers.pyramid_roi_align import PyramidROIAlign
from mrcnn.training import callbacks as mrcnn_callbacks
from mrcnn.weights import loading as mrcnn_weights
from mrcnn.weights import h5 as weights_io
from mrcnn.config import save_config
from mrcnn.training.schedule import schedule_from_config
from mrcnn.training.trainer import LOSS_NAMES, MaskRCNNTrainer

log = logging.getLogger(__name__)

HEADS_REGEX = r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)"
LAYER_MODES = ("heads", "3+", "4+", "5+", "all")
CHECKPOINT_PATTERN = r"mask_rcnn_(?P<name>.+)_(?P<epoch>\d{4})\.h5$"


class MaskRCNN:
    """Mask R-CNN: a Keras model plus Matterport's training and inference API.

    Args:
        mode: "training" or "inference".
        config: a Config (subclass) instance.
        model_dir: folder for checkpoints and logs; each training run writes
            to ``model_dir/<config.NAME.lower()><YYYYmmddTHHMM>/``.

    Attributes:
        keras_model: the underlying Keras model.
        epoch: epochs trained so far (restored from a checkpoint's name).
        log_dir, checkpoint_path: where the current run writes.
    """

    def __init__(self, mode, config, model_dir):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        if not hasattr(config, "BATCH_SIZE"):
            raise TypeError(f"config must be an instance of a Config subclass (did you pass "
                            f"the class instead of an instance?), got {config!r}")
        self.mode = mode
        self.config = config
        self.model_dir = os.fspath(model_dir)
        self.backbone = backbones.get(config.BACKBONE)
        self.strides = self._feature_strides()
        self.epoch = 0
        self.set_log_dir()
        self.keras_model = self.build(mode, config)
        self._compiled_for = None

    # ------------------------------------------------------------------ build
    def _feature_strides(self):
        """Strides of P2..P6, from the backbone (first stride honoured)."""
        first = int(getattr(self.config, "BACKBONE_FIRST_STRIDE", 2))
        s = list(self.backbone.strides(first))
        strides = s + [s[-1] * 2]
        if list(self.config.BACKBONE_STRIDES) != strides:
            log.info("using feature strides %s from backbone %s (Config.BACKBONE_STRIDES "
                     "was %s)", strides, self.backbone.name, list(self.config.BACKBONE_STRIDES))
            self.config.BACKBONE_STRIDES = strides
        return strides

    def build(self, mode, config):
        """Build the Keras model (Matterport's layer names)."""
        h, w, c = (int(v) for v in config.IMAGE_SHAPE)
        batch = config.BATCH_SIZE
        if config.USE_RPN_ROIS is False:
            raise ValueError("USE_RPN_ROIS = False (feeding ROIs from the data generator) is "
                             "not supported; the heads train on RPN proposals")
        input_image = keras.Input((h, w, c), batch_size=batch, name="input_image")
        input_image_meta = keras.Input((config.IMAGE_META_SIZE,), batch_size=batch,
                                       name="input_image_meta")
        image = FixedBatch(batch, name="input_image_fixed")(input_image)
        image_meta = FixedBatch(batch, name="input_image_meta_fixed")(input_image_meta)
        image = ZeroOutsideWindow(name="input_image_window")([image, image_meta])
        first = int(getattr(self.config, "BACKBONE_FIRST_STRIDE", 2))
        mixed = config.MIXED_PRECISION  # convolutions in 16 bits; geometry stays float32
        with compute_dtype(mixed):
            feats = self.backbone.build(image, first_stride=first)
            if len(feats) != 4:
                raise ValueError(f"backbone {self.backbone.name!r} returned {len(feats)} "
                                 f"feature maps; expected [C2, C3, C4, C5]")
            p2, p3, p4, p5, p6 = build_fpn(*feats, pyramid_size=config.TOP_DOWN_PYRAMID_SIZE)
        rpn_maps, head_maps = [p2, p3, p4, p5, p6], [p2, p3, p4, p5]

        anchors = AnchorsLayer(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS,
                               self.strides, config.RPN_ANCHOR_STRIDE, (h, w),
                               name="anchors")(image)
        with compute_dtype(mixed):
            rpn = build_rpn_model(config.RPN_ANCHORS_PER_LOCATION,
                                  config.TOP_DOWN_PYRAMID_SIZE, config.RPN_ANCHOR_STRIDE,
                                  channels=config.RPN_CONV_CHANNELS)
        num_anchors = model_anchors(config, self.strides).shape[0]
        rpn_class_logits, rpn_class, rpn_bbox = apply_rpn(rpn, rpn_maps, num_anchors)
        proposal_count = (config.POST_NMS_ROIS_TRAINING if mode == "training"
                          else config.POST_NMS_ROIS_INFERENCE)
        rpn_rois = ProposalLayer(proposal_count, config.RPN_NMS_THRESHOLD,
                                 config.PRE_NMS_LIMIT, config.RPN_BBOX_STD_DEV,
                                 name="ROI")([rpn_class, rpn_bbox, anchors])
        num_classes = config.NUM_CLASSES
        mask_size = int(config.MASK_SHAPE[0])
        pool, mask_pool = config.POOL_SIZE, config.MASK_POOL_SIZE

        if mode == "training":
            g = config.MAX_GT_INSTANCES
            mh, mw = config.MINI_MASK_SHAPE if config.USE_MINI_MASK else (h, w)
            inputs = {
                "input_image": input_image,
                "input_image_meta": input_image_meta,
                "input_rpn_match": keras.Input((num_anchors,), batch_size=batch,
                                               dtype="int32", name="input_rpn_match"),
                "input_rpn_bbox": keras.Input((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4),
                                              batch_size=batch, name="input_rpn_bbox"),
                "input_gt_class_ids": keras.Input((g,), batch_size=batch, dtype="int32",
                                                  name="input_gt_class_ids"),
                "input_gt_boxes": keras.Input((g, 4), batch_size=batch, name="input_gt_boxes"),
                "input_gt_masks": keras.Input((mh, mw, g), batch_size=batch, dtype="bool",
                                              name="input_gt_masks"),
            }
            active_class_ids = ActiveClassIds(name="active_class_ids")(image_meta)
            gt = [FixedBatch(batch, name=k + "_fixed")(inputs[k])
                  for k in ("input_gt_class_ids", "input_gt_boxes", "input_gt_masks")]
            rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
                config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO, config.BBOX_STD_DEV,
                (mask_size, mask_size), use_mini_mask=config.USE_MINI_MASK,
                name="proposal_targets")([rpn_rois] + gt)
            t = config.TRAIN_ROIS_PER_IMAGE
            pooled = PyramidROIAlign((pool, pool), (h, w),
                                     name="roi_align_classifier")([rois] + head_maps)
            with compute_dtype(mixed):
                class_logits, _, bbox = build_box_head(pooled, t, num_classes,
                                                       config.FPN_CLASSIF_FC_LAYERS_SIZE)
            # The mask loss uses positive ROIs only; they come first.
            p = max(1, int(t * config.ROI_POSITIVE_RATIO))
            mask_rois = LeadingRois(p, name="mask_rois")(rois)
            mask_class_ids = LeadingRois(p, name="mask_class_ids")(target_class_ids)
            target_mask = LeadingRois(p, name="mask_targets")(target_mask)
            pooled_mask = PyramidROIAlign((mask_pool, mask_pool), (h, w),
                                          name="roi_align_mask")([mask_rois] + head_maps)
            with compute_dtype(mixed):
                mask_logits = build_mask_head(pooled_mask, p, num_classes, mask_size,
                                              config.MASK_HEAD_CHANNELS)
            outputs = {
                "rpn_class_logits": rpn_class_logits, "rpn_bbox": rpn_bbox,
                "mrcnn_class_logits": class_logits, "mrcnn_bbox": bbox,
                "mrcnn_mask_logits": mask_logits, "rois": rois,
                "target_class_ids": target_class_ids, "target_bbox": target_bbox,
                "target_mask": target_mask, "mask_class_ids": mask_class_ids,
                "active_class_ids": active_class_ids,
                "rpn_rois": rpn_rois,
            }
            return MaskRCNNTrainer(inputs=inputs, outputs=outputs,
                                   loss_weights=config.LOSS_WEIGHTS, name="mask_rcnn")

        pooled = PyramidROIAlign((pool, pool), (h, w),
                                 name="roi_align_classifier")([rpn_rois] + head_maps)
        with compute_dtype(mixed):
            _, class_probs, bbox = build_box_head(pooled, proposal_count, num_classes,
                                                  config.FPN_CLASSIF_FC_LAYERS_SIZE)
        window = NormalizedWindow((h, w), name="norm_window")(image_meta)
        detections = DetectionLayer(config.DETECTION_MAX_INSTANCES,
                                    config.DETECTION_MIN_CONFIDENCE,
                                    config.DETECTION_NMS_THRESHOLD, config.BBOX_STD_DEV,
                                    name="mrcnn_detection")([rpn_rois, class_probs, bbox, window])
        det_boxes = DetectionBoxes(name="detection_boxes")(detections)
        pooled_mask = PyramidROIAlign((mask_pool, mask_pool), (h, w),
                                      name="roi_align_mask")([det_boxes] + head_maps)
        with compute_dtype(mixed):
            mask_logits = build_mask_head(pooled_mask, config.DETECTION_MAX_INSTANCES,
                                          num_classes, mask_size, config.MASK_HEAD_CHANNELS)
        masks = keras.layers.Activation("sigmoid", name="mrcnn_mask_probs")(mask_logits)
        return keras.Model(
            inputs=[input_image, input_image_meta],
            outputs=[detections, class_probs, bbox, masks, rpn_rois, rpn_class, rpn_bbox],
            name="mask_rcnn")

    # ------------------------------------------------------------ checkpoints
    def set_log_dir(self, model_path=None):
        """Set the run folder and checkpoint path; resume the epoch from `model_path`.

        With a checkpoint path named ``.../<name><YYYYmmddTHHMM>/mask_rcnn_<name>_<epoch>.h5``
        the run continues in that folder after that epoch; otherwise a new
        folder stamped with the current time is used.
        """
        self.epoch = 0
        now = datetime.datetime.now()
        name = (self.config.NAME or "mrcnn").lower()
        log_dir = None
        if model_path:
            m = re.search(CHECKPOINT_PATTERN, os.path.basename(os.fspath(model_path)))
            if m:
                self.epoch = int(m.group("epoch"))
                log_dir = os.path.dirname(os.path.abspath(model_path))
        if log_dir is None:
            log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M%S}")
        self.log_dir = log_dir
        self.checkpoint_path = os.path.join(log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    def find_last(self):
        """Path of the last checkpoint of the newest run of this config's NAME.

        Raises:
            FileNotFoundError: naming the folder searched, when there is none.
        """
        name = (self.config.NAME or "mrcnn").lower()
        runs = []
        if os.path.isdir(self.model_dir):
            runs = sorted(d for d in os.listdir(self.model_dir)
                          if d.startswith(name) and os.path.isdir(os.path.join(self.model_dir, d)))
        for run in reversed(runs):
            folder = os.path.join(self.model_dir, run)
            ckpts = sorted(f for f in os.listdir(folder)
                           if re.fullmatch(CHECKPOINT_PATTERN, f))
            if ckpts:
                return os.path.join(folder, ckpts[-1])
        raise FileNotFoundError(
            f"no checkpoint of config {name!r} under {os.path.abspath(self.model_dir)} "
            f"(looked for {name}*/mask_rcnn_{name}_NNNN.h5)")

    def save_weights(self, filepath):
        """Save the weights by layer name (atomic; loadable by either mode)."""
        return weights_io.save_weights(self.keras_model, filepath)

    def load_weights(self, filepath, by_name=False, exclude=None, allow_download=False):
        """Load weights; return a report of loaded / excluded / missing / mismatched layers.

        Args:
            filepath: "coco" (Matterport's COCO weights), "imagenet" (the
                backbone's ImageNet weights), "last" (:meth:`find_last`), or a
                path: an ``.h5`` file (Matterport/Keras 2 layout or an mrcnn
                checkpoint, loaded by layer name) or a Keras 3 ``.weights.h5``.
                Named weights are looked up locally first (``$MRCNN_WEIGHTS_DIR``,
                the Keras cache); see ``mrcnn.weights.loading``.
            by_name: skip (and report) layers that are missing from the file or
                have another shape, instead of raising.
            exclude: layer names to skip (list), a regex, or "heads" for the
                NUM_CLASSES-specific layers.
            allow_download: fetch a named file that is not found locally.

        A checkpoint named like ``mask_rcnn_<name>_<epoch>.h5`` sets
        ``self.epoch`` so that training resumes after it.
        """
        report = mrcnn_weights.load_named_weights(self, filepath, by_name=by_name,
                                                  exclude=exclude, allow_download=allow_download)
        log.info("loaded %d layers from %s (excluded %d, missing %d, shape mismatch %d)",
                 len(report["loaded"]), report["path"], len(report["excluded"]),
                 len(report["missing"]), len(report["shape_mismatch"]))
        for name, want, got in report["shape_mismatch"]:
            log.warning("skipped %s: model shapes %s, file shapes %s", name, want, got)
        self.set_log_dir(report["path"])
        return report

    def get_imagenet_weights(self, allow_download=False):
        """Path of the backbone's ImageNet weight file (Matterport's API)."""
        return mrcnn_weights.locate_weights(
            mrcnn_weights.imagenet_entry_name(self.backbone.name), allow_download=allow_download)

    # --------------------------------------------------------------- training
    def layer_regex(self, layers):
        """The trainable-layer regex for a `layers` mode or a user regex."""
        if layers == "heads":
            return HEADS_REGEX
        if layers in ("3+", "4+", "5+", "all"):
            group = self.backbone.layer_regex(layers)
            if group is None:
                group = ".*" if layers == "all" else None
            if group is None:
                raise ValueError(f"backbone {self.backbone.name!r} declares no layer group "
                                 f"{layers!r}; use 'heads', 'all' or a regex")
            return f"({group})|{HEADS_REGEX}"
        if isinstance(layers, str):
            try:
                re.compile(layers)
            except re.error as exc:
                raise ValueError(f"layers must be one of {LAYER_MODES} or a regex; "
                                 f"{layers!r} is neither ({exc})") from None
            return layers
        raise ValueError(f"layers must be one of {LAYER_MODES} or a regex, got {layers!r}")

    def set_trainable(self, layers):
        """Make the layers selected by `layers` trainable and freeze the rest.

        BatchNormalization layers stay frozen (inference statistics) unless
        Config.TRAIN_BN is True.

        Returns:
            names of the trainable leaf layers.
        """
        trained = backbones.set_trainable(self.keras_model, self.layer_regex(layers))
        if not self.config.TRAIN_BN:
            for layer in _leaf_layers(self.keras_model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
        return trained

    def compile(self, learning_rate, momentum, total_steps):
        """Compile the training model: SGD + momentum (or AdamW, Config.OPTIMIZER),
        warm-up/decay, per-variable gradient clipping, decoupled weight decay."""
        cfg = self.config
        schedule = schedule_from_config(cfg, learning_rate, total_steps)
        common = dict(learning_rate=schedule, clipnorm=cfg.GRADIENT_CLIP_NORM or None,
                      weight_decay=cfg.WEIGHT_DECAY or None)
        if cfg.OPTIMIZER.lower() == "adamw":
            common["weight_decay"] = float(cfg.WEIGHT_DECAY or 0.0)  # AdamW needs a float
            optimizer = keras.optimizers.AdamW(beta_1=momentum, **common)
        else:
            optimizer = keras.optimizers.SGD(momentum=momentum, **common)
        if cfg.WEIGHT_DECAY:
            optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
        if cfg.MIXED_PRECISION == "float16":
            # float16 gradients underflow without loss scaling (bfloat16 has
            # float32's range and needs none).
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        self.keras_model.compile(optimizer=optimizer, jit_compile="auto")
        return optimizer

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
              augmentation=None, custom_callbacks=None, no_augmentation_sources=None,
              workers=None, use_multiprocessing=None, verbose=1, seed=0, sampler=None):
        """Train the model (Matterport's API) with ``keras.Model.fit``.

        Args:
            train_dataset, val_dataset: prepared Datasets.
            learning_rate: peak learning rate.
            epochs: train until this epoch (epochs already done count: a
                second call with a larger number continues, as in Matterport).
            layers: "heads", "3+", "4+", "5+", "all" or a regex over layer names.
            augmentation: a built-in augmenter (``mrcnn.data.augment.core``: Fliplr,
                Rot90, ScaleCrop, ..., ``cell_augmentation()``), an imgaug
                augmenter, an albumentations pipeline, or a callable
                ``(image, masks, rng) -> (image, masks)``. Applied after the
                sample cache (Config.CACHE), so every epoch stays random.
            custom_callbacks: extra Keras callbacks.
            no_augmentation_sources: dataset sources not to augment.
            sampler: balanced sampling: "size", an ``image_info`` key (e.g.
                "cell_type") or a callable ``image_id -> group``.
            workers, use_multiprocessing: data-loader processes (default
                Config.WORKERS; multiprocessing when workers > 1).
            seed: seed of the data order and augmentation.

        Returns:
            the Keras History.
        """
        if self.mode != "training":
            raise ValueError("train() needs a model built with mode='training'")
        if epochs <= self.epoch:
            raise ValueError(f"epochs={epochs} but the model has already trained {self.epoch} "
                             f"epochs; pass the epoch number to train until (e.g. "
                             f"{self.epoch + 1})")
        cfg = self.config
        workers = cfg.WORKERS if workers is None else workers
        if use_multiprocessing is None:
            use_multiprocessing = workers > 1
        train_gen, val_gen, data_callbacks = make_generators(
            train_dataset, val_dataset, cfg, model_dir=self.model_dir, augmentation=augmentation,
            sampler=sampler, seed=seed, strides=self.strides, workers=workers,
            use_multiprocessing=use_multiprocessing, epoch=self.epoch,
            no_augmentation_sources=no_augmentation_sources)

        os.makedirs(self.log_dir, exist_ok=True)
        mrcnn_callbacks.check_writable(self.log_dir)
        # The settings travel with the checkpoints: inference rebuilds the
        # same model with mrcnn.config.load_config(<run>/config.json).
        save_config(cfg, os.path.join(self.log_dir, "config.json"))
        trained = self.set_trainable(layers)
        if verbose:
            print(f"\nStarting at epoch {self.epoch}. LR={learning_rate}\n"
                  f"Checkpoint Path: {self.checkpoint_path}\n"
                  f"Training {len(trained)} layers ({layers})")
        total_steps = epochs * cfg.STEPS_PER_EPOCH
        previous = getattr(self.keras_model, "optimizer", None)
        prev_iterations = int(previous.iterations.numpy()) if previous is not None and \
            previous.built else self.epoch * cfg.STEPS_PER_EPOCH
        optimizer = self.compile(learning_rate, cfg.LEARNING_MOMENTUM, total_steps)
        optimizer.build(self.keras_model.trainable_variables)
        optimizer.iterations.assign(prev_iterations)

        callbacks = [
            mrcnn_callbacks.NanGuard(LOSS_NAMES),
            *data_callbacks,
            keras.callbacks.CSVLogger(os.path.join(self.log_dir, "history.csv"), append=True),
            mrcnn_callbacks.Checkpoint(self, self.checkpoint_path),
        ]
        if mrcnn_callbacks.tensorboard_available():
            callbacks.append(keras.callbacks.TensorBoard(log_dir=self.log_dir, write_graph=False,
                                                         profile_batch=0))
        else:
            log.info("tensorboard is not installed: no TensorBoard logs (CSV logs in %s)",
                     self.log_dir)
        callbacks += list(custom_callbacks or [])
        history = self.keras_model.fit(
            train_gen, initial_epoch=self.epoch, epochs=epochs,
            steps_per_epoch=cfg.STEPS_PER_EPOCH, validation_data=val_gen,
            validation_steps=cfg.VALIDATION_STEPS if val_gen is not None else None,
            callbacks=callbacks, verbose=verbose)
        self.epoch = max(self.epoch, epochs)
        return history

    # -------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """Fit images to the model input.

        Returns:
            molded_images float32 [N, H, W, C], image_metas [N, META],
            windows int [N, 4] (the real image inside each molded one).
        """
        molded, metas, windows = [], [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] != self.config.IMAGE_CHANNEL_COUNT:
                raise ValueError(f"images must be [H, W, {self.config.IMAGE_CHANNEL_COUNT}] "
                                 f"arrays, got shape {image.shape}")
            fitted, window, scale, _, _ = fit_image(image, self.config, training=False)
            meta = compose_image_meta(0, image.shape, fitted.shape, window, scale,
                                      np.ones(self.config.NUM_CLASSES, np.int32))
            molded.append(mold_image(fitted, self.config))
            metas.append(meta)
            windows.append(window)
        return np.stack(molded).astype(np.float32), np.stack(metas), np.asarray(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape,
                          image_shape, window):
        """One image's padded detections -> boxes, class ids, scores, full-size masks.

        Args:
            detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero-padded.
            mrcnn_mask: [N, mh, mw, num_classes] mask probabilities.
            original_image_shape: [H, W, C] of the image before molding.
            image_shape: [H, W, C] of the molded image.
            window: (y1, x1, y2, x2) of the real image in the molded one (pixels).

        Returns:
            boxes int32 [n, 4] original pixels, class_ids int32 [n], scores
            float32 [n], masks bool [H, W, n].
        """
        class_ids = detections[:, 4].astype(np.int32)
        keep = np.flatnonzero(class_ids > 0)
        class_ids = class_ids[keep]
        scores = detections[keep, 5].astype(np.float32)
        h, w = int(image_shape[0]), int(image_shape[1])
        # normalized -> molded-image pixels (floats) -> original pixels
        boxes = detections[keep, :4] * np.array([h - 1, w - 1, h - 1, w - 1]) + \
            np.array([0, 0, 1, 1])
        wy1, wx1, wy2, wx2 = (float(v) for v in window)
        oh, ow = int(original_image_shape[0]), int(original_image_shape[1])
        factor = np.array([oh / (wy2 - wy1), ow / (wx2 - wx1)] * 2)
        boxes = (boxes - np.array([wy1, wx1, wy1, wx1])) * factor
        boxes = np.clip(np.round(boxes), 0, [oh, ow, oh, ow]).astype(np.int32)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, class_ids, scores, keep = boxes[ok], class_ids[ok], scores[ok], keep[ok]
        masks = mrcnn_mask[keep, :, :, class_ids] if keep.size else \
            np.zeros((0,) + mrcnn_mask.shape[1:3], np.float32)
        full = paste_masks(masks, boxes, (oh, ow), threshold=self.config.DETECTION_MASK_THRESHOLD)
        return boxes, class_ids, scores, full

    def detect(self, images, verbose=0):
        """Detect instances in images of any size.

        Args:
            images: list of [H, W, C] uint8 images (any number; they are run in
                batches of Config.BATCH_SIZE).

        Returns:
            one dict per image: ``rois`` int32 [N, (y1, x1, y2, x2)] in original
            pixels, ``class_ids`` int32 [N], ``scores`` float32 [N], ``masks``
            bool [H, W, N] at the original resolution.
        """
        if self.mode != "inference":
            raise ValueError("detect() needs a model built with mode='inference'")
        images = list(images)
        results = []
        b = self.config.BATCH_SIZE
        for start in range(0, len(images), b):
            chunk = images[start:start + b]
            molded, metas, windows = self.mold_inputs(chunk)
            results.extend(self.detect_molded(molded, metas, [np.shape(i) for i in chunk],
                                              windows, verbose=verbose))
        return results

    def detect_molded(self, molded_images, image_metas, original_shapes=None, windows=None,
                      verbose=0):
        """Detect on images already molded to the model input (Matterport's API).

        Args:
            molded_images: float32 [n, H, W, C] (n <= BATCH_SIZE; padded internally).
            image_metas: [n, META] from compose_image_meta.
            original_shapes: shapes to unmold to (default: the molded shape,
                i.e. results in molded-image pixels).
            windows: windows of the real images (default: from the metas).
        """
        n = len(molded_images)
        b = self.config.BATCH_SIZE
        if n > b:
            raise ValueError(f"got {n} images for a model with BATCH_SIZE {b}")
        molded = np.zeros((b,) + tuple(molded_images.shape[1:]), np.float32)
        molded[:n] = molded_images
        metas = np.zeros((b, image_metas.shape[1]), np.float32)
        metas[:n] = image_metas
        if verbose:
            print(f"Processing {n} images; molded shape {molded.shape}")
        detections, _, _, mrcnn_mask, _, _, _ = self.keras_model.predict_on_batch(
            [molded, metas])
        detections = keras.ops.convert_to_numpy(detections)
        mrcnn_mask = keras.ops.convert_to_numpy(mrcnn_mask)
        results = []
        for i in range(n):
            shape = original_shapes[i] if original_shapes is not None else molded.shape[1:]
            window = windows[i] if windows is not None else image_metas[i, 7:11]
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], shape, molded.shape[1:], window)
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores,
                            "masks": masks})
        return results

    # ---------------------------------------------------------------- summary
    def parameter_counts(self):
        """Parameters per part: backbone, fpn, rpn, heads, total."""
        counts = {"backbone": 0, "fpn": 0, "rpn": 0, "heads": 0}
        for layer in self.keras_model.layers:
            n = sum(int(np.prod(v.shape)) for v in layer.weights)
            if not n:
                continue
            name = layer.name
            part = ("fpn" if name.startswith("fpn_") else
                    "rpn" if name.startswith("rpn_") else
                    "heads" if name.startswith("mrcnn_") else "backbone")
            counts[part] += n
        counts["total"] = sum(counts.values())
        return counts

    def show_summary(self, print_fn=print):
        """Print the Keras summary and the parameter count of each part."""
        self.keras_model.summary(print_fn=print_fn)
        counts = self.parameter_counts()
        print_fn(f"{'part':10} {'parameters':>14}")
        for k, v in counts.items():
            print_fn(f"{k:10} {v:14,d}")
        return counts


def _leaf_layers(model):
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if isinstance(inner, (list, tuple)) and inner:
            yield from _leaf_layers(layer)
        else:
            yield layer
