"""A model's twin at another input size, sharing its weights: each TTA variant in its own input.

A model with ``IMAGE_RESIZE_MODE = "none"`` detects every image in one
fixed input (``IMAGE_SHAPE``); a smaller image is padded below and right.
Models trained on crops saw an image's edge only as their convolutions' zero
padding, and a padded band changes what the layers see along the edges it
touches: a 256x256 nucleus tile scored in a 320-512 px input loses 0.02-0.07
mAP-IoU against its own 256x256 input (``benchmarks/RESULTS.md``, sessions 34
and 68). TTA variants have other sizes than the image (a turned 520x704 image
is 704x520, a scaled one larger or smaller), so one input that holds them all
pads every variant. :func:`model_at_input` gives the model at the size a
variant needs, smaller or larger than its own input (rounded up to a multiple
of 64), built once and cached on the model, its weights copied from the
model at every call (so a later ``load_weights`` or training is seen).
"""

import keras
import numpy as np

from mrcnn.config import config_variant
from mrcnn.data.fit import check_factor, padded_size, scaled_size
from mrcnn.weights.transfer import shared_variables

__all__ = ["fits_each_input", "fitted_shape", "model_at_input", "detect_fitted"]


def fits_each_input(model):
    """Whether `model` can run each image in an input of its own size.

    True for a ``MaskRCNN`` (anything with ``mode``, ``config``,
    ``keras_model`` and ``model_dir``) in inference mode whose input is fixed
    (``IMAGE_RESIZE_MODE = "none"``); False for other detectors (callables,
    exported models, a `mrcnn.inference.tiling.TiledModel`).
    """
    config = getattr(model, "config", None)
    return (getattr(model, "mode", None) == "inference"
            and getattr(config, "IMAGE_RESIZE_MODE", None) == "none"
            and hasattr(model, "keras_model") and hasattr(model, "model_dir")
            and getattr(model, "any_input_size", False) is not True)


def model_at_input(model, shape):
    """`model` itself when its input is ``shape`` (h, w), else its twin at that input.

    The twin is a model of ``type(model)`` built from the model's config with
    ``IMAGE_SHAPE = [h, w, channels]`` and one image per batch, cached on the
    model (``model._input_twins``); the model's current weights are copied
    into it at every call.

    Args:
        model: a model for which :func:`fits_each_input` is True.
        shape: (h, w) of the input, each a multiple of 64 (e.g.
            `mrcnn.inference.tta.tta_input_shape`).

    Raises:
        ValueError: `model` does not qualify, or `shape` is not two positive
            multiples of 64.
    """
    if not fits_each_input(model):
        raise ValueError(f"model_at_input needs a MaskRCNN in inference mode with "
                         f"IMAGE_RESIZE_MODE 'none', got {type(model).__name__}")
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (height, width), got {shape!r}") from None
    if h <= 0 or w <= 0 or h % 64 or w % 64:
        raise ValueError(f"shape must be two positive multiples of 64, got {shape!r}")
    config = model.config
    if (h, w) == model_input_size(model):
        return model
    twins = model.__dict__.setdefault("_input_twins", {})
    if (h, w) not in twins or twins[(h, w)][2] is not model.keras_model:   # new or rebuilt
        twin_config = config_variant(config, f"At{h}x{w}", GPU_COUNT=1, IMAGES_PER_GPU=1,
                                     IMAGE_SHAPE=[h, w, int(config.IMAGE_SHAPE[2])])
        twin = type(model)("inference", twin_config, model.model_dir)
        twins[(h, w)] = (twin, shared_variables(model.keras_model, twin.keras_model),
                         model.keras_model)
    twin, pairs, _ = twins[(h, w)]
    for source, target in pairs:        # a copy: JAX may free a buffer that two models share
        target.assign(keras.ops.convert_to_numpy(source))
    return twin



def fitted_shape(model, image_shape, multiple=64):
    """``(h, w)``: the input that holds an ``image_shape`` image after the model's scale.

    The image's size after ``Config.IMAGE_SCALE`` (what `mrcnn.data.fit`
    resizes it to at inference), each side rounded up to `multiple`: the
    tightest input of :func:`model_at_input` for that image.
    """
    factor = check_factor(getattr(model.config, "IMAGE_SCALE", 1.0), "Config.IMAGE_SCALE")
    return padded_size(scaled_size(image_shape[:2], factor), multiple)


def exceeds_input(model, size):
    """True when an ``(h, w)`` input is taller or wider than the model's ``IMAGE_SHAPE``.

    `size` is an input size in pixels (e.g. from :func:`fitted_shape`, or a
    TTA variant's shape); the model's is ``config.IMAGE_SHAPE[:2]``.
    """
    limit = model_input_size(model)
    return int(size[0]) > limit[0] or int(size[1]) > limit[1]


def model_input_size(model):
    """``(h, w)``: the model input, ``config.IMAGE_SHAPE[:2]`` as ints."""
    return tuple(int(v) for v in model.config.IMAGE_SHAPE[:2])


def detect_fitted(model, images, grow=True, **kwargs):
    """``model.detect(images, **kwargs)`` with each image in an input of its own size.

    Images of one :func:`fitted_shape` share a batch of the twin at that size;
    the results come back in the order of `images`. An image larger than the
    model input gets a larger twin too when `grow` is true (memory grows with
    it: for large images prefer `mrcnn.inference.tiling.TiledModel`, whose
    tiles this fits); with ``grow=False`` it goes to the model's own
    ``detect``, which refuses it as usual. A model for which
    :func:`fits_each_input` is False detects them as they are.
    """
    if not fits_each_input(model):
        return model.detect(images, **kwargs)
    results = [None] * len(images)
    groups = {}
    for k, image in enumerate(images):
        size = fitted_shape(model, np.shape(image))
        if not grow and exceeds_input(model, size):
            size = model_input_size(model)
        groups.setdefault(size, []).append(k)
    for size, members in groups.items():
        found = model_at_input(model, size).detect([images[k] for k in members], **kwargs)
        for k, result in zip(members, found):
            results[k] = result
    return results
