"""Mask R-CNN configuration.

`Config` keeps Matterport's API: every setting is an UPPER_CASE class
attribute; users subclass it and override the few values their task needs::

    class CellConfig(Config):
        NAME = "cell"
        NUM_CLASSES = 1 + 3
        IMAGES_PER_GPU = 1

Derived values (BATCH_SIZE, IMAGE_SHAPE, IMAGE_META_SIZE) are computed in ``__init__``,
which validates the settings (a ``ValueError`` naming the value and what was expected);
building a model validates again: settings assigned after construction are checked.
"""

import re

import numpy as np

import backbones
from mrcnn.config_checks import (CHOICES, DISTRIBUTIONS, INTEGER_SETTINGS, NAME_RULE,
                                 NONE_ALLOWED, NUMBER_SETTINGS, foreground_error,
                                 image_scale_error, loss_weights_error, step_decay_error)
from mrcnn.data.fit import RESIZE_MODES
from mrcnn.data.image_meta import image_meta_size


class Config:
    """Base configuration. Subclass it and override what your task needs."""

    # Name of the configuration, in run folder and checkpoint names (<model_dir>/<name>
    # <timestamp>/): a plain folder name, letters, digits, "_", "-", "." (not "." or "..").
    NAME = None

    # Number of devices and images per device (Matterport's meaning): their
    # product BATCH_SIZE is the global batch of one training step. With
    # GPU_COUNT > 1 the training model is data-parallel over GPU_COUNT devices
    # (all processes' devices in a cluster) on the backend's own engine: JAX
    # keras.distribution.DataParallel, TensorFlow MirroredStrategy (see
    # mrcnn.distribute); PyTorch trains on one device. Inference models run
    # on one device in batches of BATCH_SIZE (set GPU_COUNT = 1 to detect).
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    # "auto": data-parallel when GPU_COUNT > 1; "none": one device, GPU_COUNT
    # only multiplies the batch; "data-parallel": over GPU_COUNT devices, even 1.
    DISTRIBUTION = "auto"

    # Steps per training epoch (>= 1) and validation batches run at the end of
    # each epoch (0 = no validation). Integer settings must be ints (not
    # floats: write len(ids) // batch, not len(ids) / batch).
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # Backbone: a name registered in `backbones` ("resnet50", "resnet101",
    # "efficientnetv2-b0", ...) or a callable. With a callable, also set
    # COMPUTE_BACKBONE_SHAPE to a function(image_shape) -> [[h, w], ...] for
    # C2..C6.
    BACKBONE = "resnet101"
    COMPUTE_BACKBONE_SHAPE = None
    # Stride of the backbone's first layer: 2 (standard) or 1 (twice the
    # feature resolution for small objects; strides and anchors follow).
    BACKBONE_FIRST_STRIDE = 2
    # ResNets from random weights: each block's last batch norm starts at gamma 0, so the
    # block starts as the identity (Goyal et al. 2017; torchvision's zero_init_residual).
    BACKBONE_ZERO_INIT_RESIDUAL = False

    # Strides of P2..P6 (and the anchors), derived in __init__ from the backbone and
    # BACKBONE_FIRST_STRIDE (C2..C5's, then twice the last for P6): leave it alone.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]

    # Width of the fully connected layers of the classification head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    # Channels of the top-down FPN layers.
    TOP_DOWN_PYRAMID_SIZE = 256
    # Number of classes, background included.
    NUM_CLASSES = 1

    # Anchor side lengths in pixels, one per pyramid level (P2..P6). An entry
    # may also be a tuple of sizes (the same count at every level), e.g.
    # ((8, 11), (16, 23), (32, 45), (64, 91), (128, 181)) for two scales per
    # octave: more anchors reach IoU 0.7 with objects between the sizes.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    # Anchor height/width ratios (0.5 = wide, 2 = tall).
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    # Anchor stride on the feature map (1 = an anchor at every cell).
    RPN_ANCHOR_STRIDE = 1
    # Width of the RPN's shared 3x3 conv. "auto": 256 as in torchvision (half the cost
    # of Matterport's 512; benchmarks/RESULTS.md), until load_weights meets a file whose
    # RPN is wider (Matterport's COCO weights, a 512-channel checkpoint): the model is
    # then rebuilt at the file's width (this setting becomes it). An int fixes it.
    RPN_CONV_CHANNELS = "auto"

    # IoU threshold of the NMS that filters RPN proposals.
    RPN_NMS_THRESHOLD = 0.7
    # Anchors per image sampled for the RPN loss.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    # IoU with a ground-truth box at or above which an anchor is a positive of the RPN,
    # and below which (with every box) it is a negative (Matterport's and torchvision's
    # 0.7 / 0.3; every box also gets its best anchor). Small objects reach 0.7 with one or
    # two anchors: a lower positive IoU gives each of them more (mrcnn.data.rpn_targets).
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3
    # Anchors kept by score before NMS in the proposal layer.
    PRE_NMS_LIMIT = 6000
    # Proposals kept after NMS in training and inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # Store ground-truth masks at MINI_MASK_SHAPE inside each box instead of
    # at full image size (saves memory; the box head crops from them).
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width)

    # Input image resizing: "none", "square", "pad64" or "crop".
    #   none:   no resizing or padding; the image is used as is.
    #   square: scale so the short side is IMAGE_MIN_DIM and the long side at
    #           most IMAGE_MAX_DIM, then pad to IMAGE_MAX_DIM x IMAGE_MAX_DIM.
    #           IMAGE_MIN_DIM only scales up images whose short side is below
    #           it (the long-side limit wins), so it need not be a multiple
    #           of 64 (e.g. 100 with IMAGE_MAX_DIM 128); IMAGE_MAX_DIM must be.
    #   pad64:  scale as in square (when IMAGE_MIN_DIM is set), then pad each
    #           side to a multiple of 64.
    #   crop:   scale up as in square (IMAGE_MAX_DIM is not used, as in
    #           Matterport), then take a random IMAGE_MIN_DIM square crop
    #           (training only); IMAGE_MIN_DIM is the input size unless
    #           IMAGE_SHAPE is larger.
    # An explicit IMAGE_SHAPE smaller than what the mode produces is refused.
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    # Minimum scale-up factor applied before the min-dim check (0 = off).
    IMAGE_MIN_SCALE = 0
    # Channels per image (3 for RGB; grayscale images are converted to RGB).
    IMAGE_CHANNEL_COUNT = 3
    # Model input size [height, width(, channels)]. Leave None to derive it:
    # [IMAGE_MAX_DIM, IMAGE_MAX_DIM] for "square", "none" and "pad64",
    # [IMAGE_MIN_DIM, IMAGE_MIN_DIM] for "crop". Set it for non-square inputs,
    # e.g. [576, 704, 3] for Sartorius images padded from 520x704.
    IMAGE_SHAPE = None
    # Image size: every image is resized by IMAGE_SCALE before the resize
    # mode above (training and inference; detections come back at the
    # original size), e.g. 2.0 to find small nuclei (seed 004 upscaled
    # 520x704 images to ~928-1333 px). Images larger than IMAGE_SHAPE after
    # it: mrcnn.inference.tiling.detect_tiled (overlapping tiles).
    IMAGE_SCALE = 1.0
    # Multi-scale training: None, or (lo, hi): each training sample is resized
    # by its own random factor, drawn log-uniformly in [lo, hi] (seeded like
    # the augmentation; applied after the sample cache), instead of
    # IMAGE_SCALE; inference uses IMAGE_SCALE. Samples larger than IMAGE_SHAPE
    # are cropped at a random position (use "crop" mode to choose the size).
    IMAGE_SCALE_RANGE = None

    # Pixel mean subtracted from images (RGB).
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    # ROIs per image fed to the classifier and mask heads in training.
    TRAIN_ROIS_PER_IMAGE = 200
    # Fraction of positive ROIs among them.
    ROI_POSITIVE_RATIO = 0.33

    # ROIAlign output sizes of the box and mask heads.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14

    # Output mask size. The standard mask head upsamples MASK_POOL_SIZE by
    # 2, 4 or 8: with the default pool of 14 that is 28N x 28N, N in (1, 2, 4);
    # each factor of 2 above 2 * MASK_POOL_SIZE adds one upsampling stage.
    MASK_SHAPE = [28, 28]
    # Mask head: "standard" (Matterport's four 3x3 convs + upsampling), another
    # name registered with mrcnn.heads.register_mask_head, or a callable
    # fn(pooled, *, num_rois, num_classes, mask_size, channels) -> logits
    # (see mrcnn.heads.registry).
    MASK_HEAD = "standard"
    # Channels of the mask head's conv stages (Matterport: 256). A narrower
    # head (e.g. 64) trains several times faster on a CPU.
    MASK_HEAD_CHANNELS = 256
    # The mask head sees each ROI / detection box grown this many times about its centre
    # (>= 1): masks reach past too-small boxes (mrcnn.layers.mask_boxes). 1.0: Matterport's.
    MASK_BOX_SCALE = 1.0
    # A dense auxiliary loss (mrcnn.heads.foreground; training only): a small head on P2
    # predicts at every pixel whether it lies in an object, against the ground truth read
    # every FOREGROUND_STRIDE pixels (1: all; 2 or 4). False: Matterport's five losses.
    FOREGROUND_LOSS = False
    FOREGROUND_STRIDE = 1

    # Most ground-truth instances used per image (the largest ones are kept).
    MAX_GT_INSTANCES = 100

    # Standard deviations of the box refinement targets.
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # Final detections per image.
    DETECTION_MAX_INSTANCES = 100
    # Minimum class probability of a detection.
    DETECTION_MIN_CONFIDENCE = 0.7
    # IoU threshold of the per-class NMS on detections.
    DETECTION_NMS_THRESHOLD = 0.3
    # Probability above which a mask pixel belongs to the instance.
    DETECTION_MASK_THRESHOLD = 0.5
    # Mask placement in its box: "grid" (where ROIAlign sampled the training targets) or
    # "centers" (Matterport's resize; for Matterport-trained weights). inference.molding
    DETECTION_MASK_PASTE = "grid"

    # Mixed precision (mrcnn.training.precision): "auto" (default: whichever of these is
    # free on the machine the model is built on, else float32), None (float32),
    # "bfloat16" (GPUs from Ampere on, TPUs, CPUs with AMX or AMD's AVX512-BF16) or
    # "float16" (older GPUs, e.g. Kaggle's T4/P100; loss scaling). Convolutions run in
    # 16 bits; variables, boxes, scores and losses stay float32 (weights load alike).
    MIXED_PRECISION = "auto"

    # Optimiser: "SGD" (with momentum LEARNING_MOMENTUM, as in Matterport) or
    # "AdamW" (beta_1 = LEARNING_MOMENTUM; converges much faster when training
    # from scratch: use a learning rate around 1e-3).
    OPTIMIZER = "SGD"
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    # L2 weight decay on kernels (not on BatchNorm gamma/beta).
    WEIGHT_DECAY = 0.0001
    # Linear warm-up over this many steps (0 = off).
    N_WARMUP_STEPS = 0
    # Decay schedule after warm-up: False/None (constant), True or "cosine"
    # (cosine decay to 1% of LEARNING_RATE over the run), "exponential"
    # (to 1% as well; mrcnn.training.schedule.WarmupDecay), or "step" (below).
    LR_SCHEDULE = False
    # LR_SCHEDULE = "step": the rate is multiplied by LR_DECAY_GAMMA after each
    # of these epochs, counted from the start of training (across train()
    # calls), e.g. (20, 25); increasing positive ints. Seeds 001/004 used steps
    # with gamma 0.1-0.5 (mrcnn.training.schedule.WarmupStepDecay).
    LR_DECAY_EPOCHS = ()
    LR_DECAY_GAMMA = 0.1

    # Weights of the losses. "mrcnn_mask_dice_loss" is a soft Dice term on the mask head's
    # positive ROIs (mrcnn.losses.mrcnn_mask_dice_loss), beside its cross entropy; 0 leaves it
    # out (Matterport's five losses). "mrcnn_foreground_loss" only counts with FOREGROUND_LOSS.
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
        "mrcnn_mask_dice_loss": 0.0,
        "mrcnn_foreground_loss": 1.0,
    }

    # Train BatchNorm layers (False freezes them; right for small batches).
    TRAIN_BN = False

    # Batch norms on moving statistics (inference; training if not TRAIN_BN) run folded into
    # the convolution before them: the same numbers, faster (mrcnn.layers.batch_norm_fold).
    FOLD_BATCH_NORMS = True

    # Gradient norm clipping.
    GRADIENT_CLIP_NORM = 5.0

    # Data pipeline: sample cache (False, True = in memory, "disk"),
    # data-loader workers (0 = main process) and queue size.
    CACHE = False
    # Folder of the "disk" cache (None: <model_dir>/cache) and the byte
    # budget of the cache (memory or disk); past it, samples are computed
    # without caching.
    CACHE_DIR = None
    CACHE_MAX_BYTES = 4 * 2**30
    WORKERS = 0
    MAX_QUEUE_SIZE = 10

    def __init__(self):
        """Compute derived values and validate the settings."""
        self._check_types()
        # A function given as a class attribute would be bound to the instance
        # (config.BACKBONE(x) would receive the config): keep the plain function.
        for name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE", "MASK_HEAD"):
            value = getattr(type(self), name, None)
            if callable(value):
                setattr(self, name, value)

        channels = self.IMAGE_CHANNEL_COUNT
        declared = type(self).IMAGE_SHAPE
        if declared is not None:
            if len(declared) not in (2, 3):
                raise ValueError(f"{type(self).__name__}: IMAGE_SHAPE must be "
                                 f"[height, width] or [height, width, channels], got {declared!r}")
            h, w = (int(v) for v in declared[:2])
        elif self.IMAGE_RESIZE_MODE == "crop":
            h = w = self._needed("IMAGE_MIN_DIM", "the crop size")
        else:
            h = w = self._needed("IMAGE_MAX_DIM", "the padded size" if self.IMAGE_RESIZE_MODE
                                 == "square" else "the input size; or set IMAGE_SHAPE")
        self.IMAGE_SHAPE = np.array([h, w, channels])

        # image_id, original shape (3), image shape (3), window (4),
        # scale (1), active class ids (NUM_CLASSES): mrcnn.data.image_meta
        self.IMAGE_META_SIZE = image_meta_size(self.NUM_CLASSES)
        self.BACKBONE_STRIDES = self._backbone_strides()
        self.validate()

    def _backbone_strides(self):
        """P2..P6 strides of the backbone: its C2..C5 strides, then twice the last."""
        if self.BACKBONE_FIRST_STRIDE not in (1, 2):
            raise ValueError(f"{type(self).__name__}: BACKBONE_FIRST_STRIDE must be 1 or 2, "
                             f"got {self.BACKBONE_FIRST_STRIDE!r}")
        backbone = backbones.get(self.BACKBONE)
        strides = list(backbone.strides(self.BACKBONE_FIRST_STRIDE))
        strides.append(strides[-1] * 2)
        declared = [int(v) for v in np.ravel(self.BACKBONE_STRIDES)]
        if declared != list(Config.BACKBONE_STRIDES) and declared != strides:
            raise ValueError(
                f"{type(self).__name__}: BACKBONE_STRIDES={declared} but backbone "
                f"{backbone.name!r} with BACKBONE_FIRST_STRIDE={self.BACKBONE_FIRST_STRIDE} "
                f"has strides {strides} (P2..P6); the strides follow from the backbone: "
                f"remove BACKBONE_STRIDES from the config")
        return strides

    def _needed(self, name, why):
        value = getattr(self, name)
        if not value:
            raise ValueError(f"{type(self).__name__}: IMAGE_RESIZE_MODE "
                             f"{self.IMAGE_RESIZE_MODE!r} needs {name} ({why}), got {value!r}")
        return value

    def _check_types(self):
        """TypeError for a wrong type, ValueError below the minimum; before anything
        is derived (NUM_CLASSES = "4" failed inside NumPy, "2" * GPU_COUNT is "2")."""
        cls = type(self).__name__
        for name, low in INTEGER_SETTINGS.items():
            value = getattr(self, name)
            if value is None and name in NONE_ALLOWED:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{cls}: {name} must be an int, got {value!r} "
                                f"({type(value).__name__})")
            if low is not None and value < low:
                raise ValueError(f"{cls}: {name} must be >= {low}, got {value}")
        for name in NUMBER_SETTINGS:
            value = getattr(self, name)
            if value is None and name in NONE_ALLOWED:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise TypeError(f"{cls}: {name} must be a number, got {value!r} "
                                f"({type(value).__name__})")
        for flag in ("FOLD_BATCH_NORMS", "BACKBONE_ZERO_INIT_RESIDUAL"):
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{cls}: {flag} must be True or False, got {value!r} "
                                f"({type(value).__name__})")
        backbone = backbones.get(self.BACKBONE)
        if self.BACKBONE_ZERO_INIT_RESIDUAL and not backbone.accepts("zero_init_residual"):
            raise ValueError(f"{cls}: BACKBONE_ZERO_INIT_RESIDUAL=True needs a ResNet backbone "
                             f"(resnet18/34/50/101); {backbone.name!r} does not take it")
        name = self.NAME
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{cls}: {NAME_RULE}; got {name!r} ({type(name).__name__})")
        if name is not None and (name in (".", "..") or not re.fullmatch(r"[\w.-]+", name,
                                                                         re.ASCII)):
            raise ValueError(f"{cls}: {NAME_RULE}; got {name!r}")

    # ------------------------------------------------------------------
    def validate(self):
        """Raise ValueError (TypeError for a wrong type) for settings the model cannot use."""
        def fail(msg):
            raise ValueError(f"{type(self).__name__}: {msg}")

        self._check_types()
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT  # derived again per model build

        if not isinstance(self.NUM_CLASSES, (int, np.integer)) or self.NUM_CLASSES < 2:
            fail(f"NUM_CLASSES must be an int >= 2 (background + at least one "
                 f"class), got {self.NUM_CLASSES!r}")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            fail(f"IMAGE_RESIZE_MODE must be one of {RESIZE_MODES}, got "
                 f"{self.IMAGE_RESIZE_MODE!r}")
        mean = np.asarray(self.MEAN_PIXEL)
        if mean.shape != (self.IMAGE_CHANNEL_COUNT,):
            fail(f"MEAN_PIXEL must have IMAGE_CHANNEL_COUNT={self.IMAGE_CHANNEL_COUNT} "
                 f"values, got {self.MEAN_PIXEL!r}")
        h, w = int(self.IMAGE_SHAPE[0]), int(self.IMAGE_SHAPE[1])
        if h % 64 or w % 64:
            fail(f"image size {h}x{w} (from IMAGE_RESIZE_MODE={self.IMAGE_RESIZE_MODE!r}, "
                 f"IMAGE_MIN_DIM={self.IMAGE_MIN_DIM}, IMAGE_MAX_DIM={self.IMAGE_MAX_DIM}"
                 + (f", IMAGE_SHAPE={list(type(self).IMAGE_SHAPE)}"
                    if type(self).IMAGE_SHAPE is not None else "")
                 + ") must be divisible by 64 at both sides (2**6, for the 6 "
                 "downscaling levels); e.g. 512, 576, 640, 704, 1024")
        if self.IMAGE_RESIZE_MODE in ("square", "pad64", "crop") and self.IMAGE_MIN_DIM:
            if self.IMAGE_MAX_DIM and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM:
                fail(f"IMAGE_MIN_DIM={self.IMAGE_MIN_DIM} is larger than "
                     f"IMAGE_MAX_DIM={self.IMAGE_MAX_DIM}")
        error = image_scale_error(self.IMAGE_SCALE, self.IMAGE_SCALE_RANGE)
        if error:
            fail(error)
        if not isinstance(self.DISTRIBUTION, str) or self.DISTRIBUTION not in DISTRIBUTIONS:
            fail(f"DISTRIBUTION must be one of {DISTRIBUTIONS} (data-parallel training over "
                 f"GPU_COUNT devices, see mrcnn.distribute), got {self.DISTRIBUTION!r}")
        # The size the mode produces must fit the input, or every sample fails.
        if self.IMAGE_RESIZE_MODE == "square":
            side = int(self._needed("IMAGE_MAX_DIM", "the padded size"))
            made = f"{side}x{side} images of IMAGE_RESIZE_MODE 'square' (IMAGE_MAX_DIM={side})"
        elif self.IMAGE_RESIZE_MODE == "crop":
            side = int(self._needed("IMAGE_MIN_DIM", "the crop size"))
            made = f"{side}x{side} crops of IMAGE_RESIZE_MODE 'crop' (IMAGE_MIN_DIM={side})"
        if self.IMAGE_RESIZE_MODE in ("square", "crop") and (h < side or w < side):
            fail(f"IMAGE_SHAPE {[h, w]} is smaller than the {made}; raise IMAGE_SHAPE or "
                 f"leave it None to derive it")

        for name in ("POOL_SIZE", "MASK_POOL_SIZE"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                fail(f"{name} must be a positive int, got {value!r}")
        mask_shape = tuple(int(v) for v in self.MASK_SHAPE)
        if len(mask_shape) != 2 or mask_shape[0] != mask_shape[1] or mask_shape[0] < 1:
            fail(f"MASK_SHAPE must be square, e.g. (28, 28), got {tuple(self.MASK_SHAPE)}")
        if self.MASK_HEAD == "standard":
            pool = int(self.MASK_POOL_SIZE)
            n = mask_shape[0] // (2 * pool)
            if mask_shape[0] % (2 * pool) or n < 1 or n & (n - 1) or n > 4:
                sizes = ", ".join(f"({2 * pool * k}, {2 * pool * k})" for k in (1, 2, 4))
                fail(f"MASK_SHAPE must be square {2 * pool}*N with N in (1, 2, 4) for "
                     f"MASK_POOL_SIZE={pool} (the standard mask head doubles the pooled "
                     f"size 1 to 3 times), i.e. {sizes}; got {tuple(self.MASK_SHAPE)}")
        elif not (callable(self.MASK_HEAD) or isinstance(self.MASK_HEAD, str)):
            fail(f"MASK_HEAD must be a registered name or a callable, got {self.MASK_HEAD!r}")
        if not isinstance(self.MASK_HEAD_CHANNELS, (int, np.integer)) or self.MASK_HEAD_CHANNELS < 1:
            fail(f"MASK_HEAD_CHANNELS must be a positive int, got {self.MASK_HEAD_CHANNELS!r}")
        if getattr(self, "USE_RPN_ROIS", True) is not True:
            fail(f"USE_RPN_ROIS = {self.USE_RPN_ROIS!r} (Matterport's debugging option of "
                 f"feeding random ROIs from the data generator) is not supported: the heads "
                 f"always train on RPN proposals; remove the setting")
        if self.USE_MINI_MASK:
            mh, mw = (int(v) for v in self.MINI_MASK_SHAPE)
            if mh < mask_shape[0] or mw < mask_shape[1]:
                fail(f"MINI_MASK_SHAPE {tuple(self.MINI_MASK_SHAPE)} must be at least "
                     f"MASK_SHAPE {mask_shape}: mask targets are resized from it")

        n_levels = len(self.BACKBONE_STRIDES)
        if len(self.RPN_ANCHOR_SCALES) != n_levels:
            fail(f"RPN_ANCHOR_SCALES has {len(self.RPN_ANCHOR_SCALES)} values but there "
                 f"are {n_levels} pyramid levels (BACKBONE_STRIDES="
                 f"{list(self.BACKBONE_STRIDES)}); give one scale per level")
        counts = {len(s) if isinstance(s, (list, tuple, np.ndarray)) else 1
                  for s in self.RPN_ANCHOR_SCALES}
        if len(counts) != 1 or 0 in counts:
            fail(f"RPN_ANCHOR_SCALES entries must all have the same number of sizes, got "
                 f"{self.RPN_ANCHOR_SCALES}")
        flat = np.concatenate([np.ravel(s) for s in self.RPN_ANCHOR_SCALES])
        if np.any(flat <= 0):
            fail(f"RPN_ANCHOR_SCALES must be positive, got {self.RPN_ANCHOR_SCALES}")
        self.RPN_ANCHORS_PER_LOCATION = counts.pop() * len(self.RPN_ANCHOR_RATIOS)
        if any(r <= 0 for r in self.RPN_ANCHOR_RATIOS) or not len(self.RPN_ANCHOR_RATIOS):
            fail(f"RPN_ANCHOR_RATIOS must be positive numbers, got {self.RPN_ANCHOR_RATIOS}")
        for name in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD",
                     "DETECTION_MIN_CONFIDENCE", "DETECTION_MASK_THRESHOLD",
                     "ROI_POSITIVE_RATIO"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                fail(f"{name} must be in [0, 1], got {v!r}")
        if not 0 <= self.RPN_NEGATIVE_IOU <= self.RPN_POSITIVE_IOU <= 1:
            fail(f"need 0 <= RPN_NEGATIVE_IOU <= RPN_POSITIVE_IOU <= 1, got "
                 f"RPN_NEGATIVE_IOU={self.RPN_NEGATIVE_IOU!r}, "
                 f"RPN_POSITIVE_IOU={self.RPN_POSITIVE_IOU!r}")
        if self.POST_NMS_ROIS_TRAINING > self.PRE_NMS_LIMIT or \
                self.POST_NMS_ROIS_INFERENCE > self.PRE_NMS_LIMIT:
            fail(f"POST_NMS_ROIS_TRAINING ({self.POST_NMS_ROIS_TRAINING}) and "
                 f"POST_NMS_ROIS_INFERENCE ({self.POST_NMS_ROIS_INFERENCE}) must not "
                 f"exceed PRE_NMS_LIMIT ({self.PRE_NMS_LIMIT})")
        if not 1 <= self.MASK_BOX_SCALE < np.inf:
            fail(f"MASK_BOX_SCALE must be a finite number >= 1, got {self.MASK_BOX_SCALE!r}")
        if self.TRAIN_ROIS_PER_IMAGE > self.POST_NMS_ROIS_TRAINING:
            fail(f"TRAIN_ROIS_PER_IMAGE ({self.TRAIN_ROIS_PER_IMAGE}) must not exceed "
                 f"POST_NMS_ROIS_TRAINING ({self.POST_NMS_ROIS_TRAINING})")
        expected = set(Config.LOSS_WEIGHTS)
        unknown = set(self.LOSS_WEIGHTS) - expected
        if unknown:
            fail(f"LOSS_WEIGHTS has unknown keys {sorted(unknown)}; expected "
                 f"{sorted(expected)}")
        error = loss_weights_error(self.LOSS_WEIGHTS)
        if error:
            fail(error)
        if self.CACHE_MAX_BYTES is not None and self.CACHE_MAX_BYTES < 0:
            fail(f"CACHE_MAX_BYTES must be >= 0 or None, got {self.CACHE_MAX_BYTES!r}")
        width = self.RPN_CONV_CHANNELS
        if width != "auto" and (isinstance(width, bool) or not isinstance(
                width, (int, np.integer)) or width < 1):
            fail(f"RPN_CONV_CHANNELS must be 'auto' or a positive int, got {width!r}")
        for name, allowed, said in CHOICES:
            if getattr(self, name) not in allowed:
                fail(f"{name} must be {said}, got {getattr(self, name)!r}")
        if not isinstance(self.OPTIMIZER, str) or self.OPTIMIZER.lower() not in ("sgd", "adamw"):
            fail(f"OPTIMIZER must be 'SGD' or 'AdamW', got {self.OPTIMIZER!r}")
        for error in (step_decay_error(self.LR_SCHEDULE, self.LR_DECAY_EPOCHS,
                                       self.LR_DECAY_GAMMA),
                      foreground_error(self.FOREGROUND_LOSS, self.FOREGROUND_STRIDE,
                                       self.BACKBONE_STRIDES[0])):
            if error:
                fail(error)

    # ------------------------------------------------------------------
    def to_dict(self):
        """All settings (class attributes and derived values) as a dict."""
        out = {}
        for name in dir(self):
            if name.isupper() and not name.startswith("_"):
                value = getattr(self, name)
                if not callable(value) or name in ("BACKBONE", "MASK_HEAD"):
                    out[name] = value
        out["COMPUTE_BACKBONE_SHAPE"] = self.COMPUTE_BACKBONE_SHAPE
        out["MASK_HEAD"] = self.MASK_HEAD
        return out

    def display(self):
        """Print every setting, one per line."""
        print("\nConfigurations:")
        for key, value in self.to_dict().items():
            print(f"{key:30} {value}")
        print("\n")

    def __repr__(self):
        return f"<{type(self).__name__} NAME={self.NAME!r} NUM_CLASSES={self.NUM_CLASSES}>"


def jsonable(value):
    """NumPy arrays / scalars, tuples and dicts inside `value` -> plain JSON types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def save_config(config, path):
    """Write a Config's settings to a JSON file (atomically).

    Callable settings (a user backbone function) are stored by name and
    must be given again when loading.
    """
    import json

    from mrcnn.data.tempfiles import write_text_atomically
    data = {}
    for key, value in config.to_dict().items():
        if callable(value):
            value = {"callable": getattr(value, "__name__", repr(value))}
        data[key] = jsonable(value)
    return write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True),
                                 prefix=".tmp-config-", suffix=".json")


DERIVED = ("BATCH_SIZE", "IMAGE_META_SIZE", "RPN_ANCHORS_PER_LOCATION", "BACKBONE_STRIDES")


def config_variant(config, suffix, **overrides):
    """A copy of `config` (a subclass of its class, named ``<class><suffix>``) with overrides.

    The derived values (:data:`DERIVED`: batch size, image meta size, ...)
    are computed again from the new settings. Example: the inference twin of
    a training config, ``config_variant(config, "Inference", IMAGES_PER_GPU=1,
    GPU_COUNT=1)``.
    """
    attrs = {k: v for k, v in config.to_dict().items() if k not in DERIVED}
    attrs.update(overrides)
    return type(f"{type(config).__name__}{suffix}", (type(config),), attrs)()


def load_config(path, **overrides):
    """Rebuild a Config from :func:`save_config`'s JSON, with overrides.

    Example: the inference config of a trained run,
    ``load_config(run_dir + "/config.json", IMAGES_PER_GPU=1)``.
    """
    import json
    with open(path) as f:
        data = json.load(f)
    attrs = {}
    for key, value in data.items():
        if key in DERIVED:
            continue
        if isinstance(value, dict) and set(value) == {"callable"}:
            if key not in overrides:
                raise ValueError(f"{path}: {key} was the callable {value['callable']!r}; pass it "
                                 f"again as load_config(..., {key}=...)")
            continue
        if key in ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            value = np.array(value)
        attrs[key] = value
    attrs.update(overrides)
    return type("LoadedConfig", (Config,), attrs)()
