"""Config settings written on a command line: ``--mean-pixel``, ``--mini-mask``, ``--loss-weights``, ...

Each function is an ``argparse`` ``type=``: it turns the flag's text into the
value the Config takes and raises ``argparse.ArgumentTypeError`` naming the
text and what was expected (argparse prints it as the flag's error).

* :func:`parse_mean_pixel`: ``auto``, one gray value or ``R,G,B`` (Config.MEAN_PIXEL);
* :func:`parse_mini_mask`: a mini-mask size or ``none`` (Config.MINI_MASK_SHAPE,
  USE_MINI_MASK);
* :func:`parse_rpn_iou`: the RPN's positive and negative IoUs
  (Config.RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU);
* :func:`parse_loss_weights`: ``name=weight,...`` over Config.LOSS_WEIGHTS' losses,
  the others keeping their weight;
* :func:`parse_scale_range`: ``LO,HI`` (Config.IMAGE_SCALE_RANGE);
* :func:`parse_tta_set`: a test-time augmentation set (``flips``, ``dihedral``,
  ``dihedral+scales``) or transforms ``none,lr,rot90`` (`mrcnn.inference.tta`);
* :func:`stage_epochs`: the last epoch of each stage of a schedule (Matterport's samples
  train their heads, then more layers);
* :func:`run_size_settings`: the Config attributes of ``--steps-per-epoch``,
  ``--validation-steps`` and ``--backbone`` when given.

The samples share them.
"""

import argparse
import math

from mrcnn.config import Config
from mrcnn.inference.tta import tta_variants

__all__ = ["parse_loss_weights", "parse_mean_pixel", "parse_mini_mask", "parse_rpn_iou",
           "parse_scale_range", "parse_tta_set", "run_size_settings", "stage_epochs"]


def parse_mean_pixel(text):
    """'auto' -> 'auto', '30' -> (30.0,), '30,20,10' -> (30.0, 20.0, 10.0) for --mean-pixel."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto, one value or R,G,B (e.g. 30 or 30,30,30), got {text!r}") from None
    if len(values) not in (1, 3) or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected one value or three (R,G,B) in [0, 255], got {text!r}")
    return values


def parse_mini_mask(text):
    """'56' -> 56, 'none' -> 'none' for --mini-mask."""
    if text.strip().lower() == "none":
        return "none"
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a mini-mask size like 56 or 'none', got {text!r}") from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"the mini-mask size must be positive, got {text!r}")
    return size


def parse_loss_weights(text, defaults=None):
    """'rpn_class_loss=0.5,rpn_bbox_loss=0.5' -> all LOSS_WEIGHTS with those two set.

    Args:
        text: comma-separated ``name=weight`` pairs; names are the keys of
            Config.LOSS_WEIGHTS (``rpn_class_loss``, ``rpn_bbox_loss``,
            ``mrcnn_class_loss``, ``mrcnn_bbox_loss``, ``mrcnn_mask_loss``,
            ``mrcnn_mask_dice_loss``, counted when above 0, and
            ``mrcnn_foreground_loss``, which counts with FOREGROUND_LOSS only),
            weights finite numbers >= 0.
        defaults: the weights of the losses not named (default
            Config.LOSS_WEIGHTS: 1 each, the Dice term 0).

    Returns:
        dict of all the weights.
    """
    weights = dict(Config.LOSS_WEIGHTS if defaults is None else defaults)
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(
            f"expected name=weight pairs like rpn_class_loss=0.5, got {text!r}")
    for item in items:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or name not in weights:
            raise argparse.ArgumentTypeError(
                f"expected name=weight with a name of {sorted(weights)}, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not (math.isfinite(weight) and weight >= 0):
            raise argparse.ArgumentTypeError(
                f"the weight of {name} must be a number >= 0, got {value!r}")
        weights[name] = weight
    return weights


def parse_scale_range(text):
    """'LO,HI' -> (lo, hi) floats for --scale-range (0 < lo <= hi)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LO,HI (two numbers, e.g. 1.5,2.5), got {text!r}") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"needs 0 < LO <= HI, got {text!r}")
    return low, high


def parse_tta_set(text):
    """--tta: a set name of `TTA_SETS`, a '+' union of them, or transforms 'a,b,c'.

    Returns the set's name (str) or the list of transform names, as
    `mrcnn.inference.tta.tta_variants` takes them.
    """
    value = text.split(",") if "," in text else text
    try:
        tta_variants(value)
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def parse_rpn_iou(text):
    """'0.5' -> (0.5, 0.3), '0.6,0.4' -> (0.6, 0.4) for --rpn-iou.

    The RPN's labelling thresholds (Config.RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU):
    the positive IoU, then optionally the negative one (default 0.3, or the
    positive one when that is lower); 0 <= negative <= positive <= 1.
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected POS or POS,NEG (IoUs such as 0.5 or 0.6,0.4), got {text!r}")
    positive = values[0]
    negative = values[1] if len(values) == 2 else min(0.3, positive)
    if not 0 <= negative <= positive <= 1:
        raise argparse.ArgumentTypeError(
            f"needs 0 <= NEG <= POS <= 1 (positive IoU, negative IoU), got {text!r}")
    return positive, negative


def stage_epochs(count):
    """An ``argparse`` type for `count` stages' last epochs, e.g. ``40,120,160`` (``count`` 3).

    The epochs must be positive and not fall (a stage that ends where the one before it
    ended trains nothing); the parsed value is a tuple of ints.
    """
    def parse(text):
        try:
            epochs = tuple(int(v) for v in text.split(","))
        except ValueError:
            epochs = ()
        if len(epochs) != count or epochs[0] < 1 or any(
                b < a for a, b in zip(epochs, epochs[1:])):
            raise argparse.ArgumentTypeError(
                f"expected {count} stages' last epochs, positive and rising (e.g. "
                f"{','.join(str(10 * (k + 1)) for k in range(count))}), got {text!r}")
        return epochs

    return parse


def run_size_settings(args):
    """Config attributes of the ``--steps-per-epoch``, ``--validation-steps`` and ``--backbone``
    flags that were given (an argparse namespace may lack any of them)."""
    names = {"steps_per_epoch": "STEPS_PER_EPOCH", "validation_steps": "VALIDATION_STEPS",
             "backbone": "BACKBONE"}
    return {key: getattr(args, flag) for flag, key in names.items()
            if getattr(args, flag, None) is not None}
