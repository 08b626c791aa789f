"""Mixed precision: which parts of the model compute in 16 bits.

``Config.MIXED_PRECISION`` = ``"bfloat16"`` or ``"float16"`` builds the
convolutional trunk (backbone, FPN, the RPN's shared conv, the box and mask
heads' conv/BN stages) under Keras' ``mixed_bfloat16`` / ``mixed_float16``
dtype policy: variables stay float32, convolutions run in 16 bits. Everything
that holds coordinates or probabilities stays float32: anchors, proposals,
detection targets, ROIAlign (it samples 16-bit feature maps into float32
crops), the final logit / delta / mask layers, softmax, the detection layer
and the losses. A 16-bit box coordinate would be off by up to 4 pixels at
1024 px (bfloat16 keeps 8 significant bits).

``"float16"`` needs loss scaling: Keras wraps the optimizer in a
``LossScaleOptimizer`` when the model's policy is ``mixed_float16``; here the
trainer asks for it explicitly (see ``MaskRCNN.compile``).
"""

import contextlib

import keras

POLICIES = {None: None, False: None, "bfloat16": "mixed_bfloat16",
            "float16": "mixed_float16"}


def policy_name(setting):
    """Keras dtype-policy name for a ``Config.MIXED_PRECISION`` value (None: float32).

    Raises:
        ValueError: for anything but None, False, "bfloat16" or "float16".
    """
    try:
        return POLICIES[setting]
    except (KeyError, TypeError):
        raise ValueError(
            f"MIXED_PRECISION must be None, 'bfloat16' or 'float16', got {setting!r}") from None


@contextlib.contextmanager
def compute_dtype(setting):
    """Layers created inside compute in 16 bits (``setting`` as in Config.MIXED_PRECISION).

    Restores the previous global dtype policy on exit, also on error, so that
    building a mixed-precision model never changes what the caller builds next.
    """
    name = policy_name(setting)
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
