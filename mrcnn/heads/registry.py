"""Mask-head registry: names -> builders of the per-ROI mask head.

``Config.MASK_HEAD`` names a registered head ("standard" is Matterport's) or
is a builder itself. A builder is a function::

    @register_mask_head("light")
    def light_head(pooled, *, num_rois, num_classes, mask_size, channels):
        ...
        return mask_logits

Contract of a builder:

* ``pooled``: symbolic ``[B, num_rois, p, p, C]`` ROIAlign features
  (``p = Config.MASK_POOL_SIZE``, ``C = Config.TOP_DOWN_PYRAMID_SIZE``),
  possibly 16-bit under mixed precision.
* ``num_rois``: the static ROI count N; ``num_classes``: classes including
  background; ``mask_size``: the side of the output masks
  (``Config.MASK_SHAPE[0]``); ``channels``: ``Config.MASK_HEAD_CHANNELS``.
* Returns mask LOGITS ``[B, num_rois, mask_size, mask_size, num_classes]``
  in float32 (the model applies the sigmoid at inference; the loss takes
  logits).
* Layer names start with ``mrcnn_mask`` (so ``train(layers="heads")`` trains
  them, see `mrcnn.heads.names`), and the layer producing one channel per
  class is called ``mrcnn_mask`` (so ``load_weights(..., exclude="heads")``
  skips it for another NUM_CLASSES). Layer names must be unique within the
  head.

A builder marked ``builder.varying_rois = True`` is called with
``num_rois=None`` by the training graph on TensorFlow and PyTorch: ``pooled``
is then ``[1, None, p, p, C]``, the positive ROIs of the whole batch (see
`mrcnn.layers.batching.PositiveRois`), and it splits its output with
``SplitRoiBatch(None, batch_size=pooled.shape[0])``. On JAX it is built once
on ``[B, None, p, p, C]`` as a nested model and run on the leading ``k`` rows
of a few static bucket sizes (`mrcnn.layers.row_buckets.BucketedRows`).
Other builders get ``[B, N, p, p, C]`` with the static N, padding included.

The registry is filled when `mrcnn.heads` is imported (the standard head
registers itself in `mrcnn.heads.mask`).
"""

import inspect

__all__ = ["register_mask_head", "unregister_mask_head", "available_mask_heads",
           "get_mask_head"]

_MASK_HEADS = {}  # lower-cased name -> builder
_KEYWORDS = ("num_rois", "num_classes", "mask_size", "channels")


def _check_builder(builder, name):
    if not callable(builder):
        raise TypeError(f"mask head {name!r} must be callable, got {type(builder).__name__}")
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    missing = [k for k in _KEYWORDS if k not in params]
    if missing:
        raise TypeError(f"mask head {name!r} must accept the keyword arguments "
                        f"{list(_KEYWORDS)} (or **kwargs); it lacks {missing}")


def register_mask_head(name):
    """Decorator that registers a mask-head builder under `name`.

    Raises:
        ValueError: `name` is already registered (names are case-insensitive).
        TypeError: the builder does not take the contract's keyword arguments.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"mask head name must be a non-empty string, got {name!r}")

    def decorator(builder):
        key = name.lower()
        if key in _MASK_HEADS:
            raise ValueError(f"mask head {name!r} is already registered; call "
                             f"unregister_mask_head({name!r}) first to replace it")
        _check_builder(builder, name)
        _MASK_HEADS[key] = builder
        return builder
    return decorator


def unregister_mask_head(name):
    """Remove a registered mask head (e.g. before re-running a notebook cell)."""
    key = str(name).lower()
    if key not in _MASK_HEADS:
        raise ValueError(f"unknown mask head {name!r}; available: {available_mask_heads()}")
    del _MASK_HEADS[key]


def available_mask_heads():
    """Sorted names of the registered mask heads."""
    return sorted(_MASK_HEADS)


def get_mask_head(name_or_callable):
    """The builder for ``Config.MASK_HEAD``: a registered name or a callable.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
        TypeError: neither a string nor a callable, or a callable that does not
            take the contract's keyword arguments.
    """
    if isinstance(name_or_callable, str):
        builder = _MASK_HEADS.get(name_or_callable.lower())
        if builder is None:
            raise ValueError(f"unknown mask head {name_or_callable!r}; available: "
                             f"{available_mask_heads()} (register one with "
                             f"mrcnn.heads.register_mask_head)")
        return builder
    if callable(name_or_callable):
        _check_builder(name_or_callable, getattr(name_or_callable, "__name__", "custom"))
        return name_or_callable
    raise TypeError(f"MASK_HEAD must be a registered name or a callable, got "
                    f"{type(name_or_callable).__name__}")
