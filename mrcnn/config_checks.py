"""Checks of Config settings that take more than a line: each returns the error or None.

`mrcnn.config.Config.validate` raises a ValueError naming the config class
with the message returned here.
"""

import numpy as np

# Integer settings and their minimum (None: checked in Config.validate() with its
# own message, or no minimum). Checked before anything is derived from them.
INTEGER_SETTINGS = {
    "NUM_CLASSES": None, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "STEPS_PER_EPOCH": 1,
    "VALIDATION_STEPS": 0, "IMAGE_MIN_DIM": 0, "IMAGE_MAX_DIM": 1, "IMAGE_CHANNEL_COUNT": 1,
    "MAX_GT_INSTANCES": 1, "DETECTION_MAX_INSTANCES": 1, "TRAIN_ROIS_PER_IMAGE": 1,
    "PRE_NMS_LIMIT": 1, "POST_NMS_ROIS_TRAINING": 1, "POST_NMS_ROIS_INFERENCE": 1,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": 1, "RPN_ANCHOR_STRIDE": 1, "FPN_CLASSIF_FC_LAYERS_SIZE": 1,
    "TOP_DOWN_PYRAMID_SIZE": 1, "N_WARMUP_STEPS": 0, "WORKERS": 0, "MAX_QUEUE_SIZE": 1,
    "CACHE_MAX_BYTES": None, "MASK_HEAD_CHANNELS": None, "POOL_SIZE": None,
    "MASK_POOL_SIZE": None, "BACKBONE_FIRST_STRIDE": None, "FOREGROUND_STRIDE": 1,
}
NUMBER_SETTINGS = ("LEARNING_RATE", "LEARNING_MOMENTUM", "WEIGHT_DECAY", "GRADIENT_CLIP_NORM",
                   "LR_DECAY_GAMMA",
                   "RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "DETECTION_MIN_CONFIDENCE",
                   "DETECTION_MASK_THRESHOLD", "ROI_POSITIVE_RATIO", "IMAGE_MIN_SCALE",
                   "MASK_BOX_SCALE")
# Settings where None means "off" / "not used".
NONE_ALLOWED = frozenset({"IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "CACHE_MAX_BYTES",
                          "GRADIENT_CLIP_NORM", "WEIGHT_DECAY", "IMAGE_MIN_SCALE"})
# Settings that take one of a few values: (name, values, how the error names them).
CHOICES = (("CACHE", (False, True, "disk", "memory", None), "False, True (in memory) or 'disk'"),
           ("DETECTION_MASK_PASTE", ("grid", "centers"), "'grid' or 'centers'"),
           ("MIXED_PRECISION", (None, False, "auto", "bfloat16", "float16"),
            "None, 'auto', 'bfloat16' or 'float16'"),
           ("LR_SCHEDULE", (False, True, None, "cosine", "exponential", "step"),
            "False, True/'cosine', 'exponential' or 'step'"))
# Values of DISTRIBUTION (mrcnn.distribute.strategy.DISTRIBUTIONS).
DISTRIBUTIONS = ("auto", "none", "data-parallel")
NAME_RULE = ("NAME must be None or a plain folder name (letters, digits, '_', '-' and '.', "
             "not '.' or '..'): it names the run folder <model_dir>/<name><timestamp>")


def _finite(value):
    """A finite int or float (not a bool)."""
    return (not isinstance(value, bool)
            and isinstance(value, (int, float, np.integer, np.floating))
            and bool(np.isfinite(value)))


def _positive(value):
    """A finite number > 0 (not a bool)."""
    return _finite(value) and value > 0


def loss_weights_error(weights):
    """LOSS_WEIGHTS' values: each a finite number >= 0 (0 leaves that loss out)."""
    for name, weight in weights.items():
        if not (_finite(weight) and weight >= 0):
            return (f"LOSS_WEIGHTS[{name!r}] must be a finite number >= 0 (0 leaves that "
                    f"loss out), got {weight!r}")
    return None


def step_decay_error(schedule, epochs, gamma):
    """LR_DECAY_EPOCHS / LR_DECAY_GAMMA, the settings of LR_SCHEDULE = "step"."""
    if not isinstance(epochs, (list, tuple)) or any(
            isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1
            for e in epochs) or any(b <= a for a, b in zip(epochs, epochs[1:])):
        return (f"LR_DECAY_EPOCHS must be a tuple of increasing positive ints (the epochs "
                f"after which the rate is multiplied by LR_DECAY_GAMMA), e.g. (20, 25); "
                f"got {epochs!r}")
    if not 0 < gamma <= 1:
        return (f"LR_DECAY_GAMMA must be in (0, 1] (the factor of each step decay), got "
                f"{gamma!r}")
    if schedule == "step" and not len(epochs):
        return (f"LR_SCHEDULE = 'step' needs LR_DECAY_EPOCHS, the epochs after which the "
                f"rate is multiplied by LR_DECAY_GAMMA, e.g. (20, 25); got {epochs!r}")
    if schedule != "step" and len(epochs):
        return (f"LR_DECAY_EPOCHS = {tuple(epochs)!r} is only used by LR_SCHEDULE = 'step', "
                f"but LR_SCHEDULE is {schedule!r}: set LR_SCHEDULE = 'step' or "
                f"LR_DECAY_EPOCHS = ()")
    return None


def image_scale_error(scale, scale_range):
    """IMAGE_SCALE (a finite number > 0) and IMAGE_SCALE_RANGE (None or (lo, hi))."""
    if not _positive(scale):
        return (f"IMAGE_SCALE must be a finite number > 0 (the factor every image is "
                f"resized by, e.g. 2.0), got {scale!r}")
    if scale_range is None:
        return None
    if (not isinstance(scale_range, (list, tuple, np.ndarray)) or len(scale_range) != 2
            or not all(_positive(v) for v in scale_range)
            or scale_range[0] > scale_range[1]):
        return (f"IMAGE_SCALE_RANGE must be None or (lo, hi) with 0 < lo <= hi, the range "
                f"of the random training scale, e.g. (1.5, 2.5); got {scale_range!r}")
    return None


def foreground_error(enabled, stride, p2_stride):
    """FOREGROUND_LOSS (a bool) and FOREGROUND_STRIDE (an int dividing P2's stride)."""
    if not isinstance(enabled, (bool, np.bool_)):
        return f"FOREGROUND_LOSS must be True or False, got {enabled!r}"
    if enabled and p2_stride % stride:
        return (f"FOREGROUND_STRIDE must divide P2's stride {p2_stride} (the foreground "
                f"target's grid, 1 = every pixel), got {stride}")
    return None
