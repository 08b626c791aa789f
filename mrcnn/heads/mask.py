"""The standard mask head (Matterport's ``build_fpn_mask_graph``), registered as "standard".

Four 3x3 conv + BN + ReLU stages (``mrcnn_mask_conv1..4``, ``mrcnn_mask_bn1..4``),
a 2x transposed conv (``mrcnn_mask_deconv``: pool p -> 2p, 14 -> 28 by
default) and a 1x1 conv to one mask per class (``mrcnn_mask``). Each further
factor of two (28 -> 56 -> 112) adds a stage (``mrcnn_mask_conv{k}``,
``mrcnn_mask_bn{k}``, ReLU, ``mrcnn_mask_deconv{j}``) before ``mrcnn_mask``.
With a 14x14 pool and 28x28 masks the layers and shapes are Matterport's, so
its weights load by name.
"""

import math

from keras import layers

from mrcnn.heads.registry import register_mask_head
from mrcnn.heads.roi_reshape import MergeRoiBatch, SplitRoiBatch
from mrcnn.heads.same_conv import SameConv2D
from mrcnn.heads.upsample import UpsampleConv2DTranspose


def mask_upsampling_stages(mask_size, pool_size=14):
    """Upsampling stages after the first for `mask_size` from `pool_size` (28 -> 0, 56 -> 1, 112 -> 2).

    Raises:
        ValueError: `mask_size` is not ``2 * pool_size * 2**k``.
    """
    n = mask_size // (2 * pool_size)
    if mask_size % (2 * pool_size) or n < 1 or n & (n - 1):
        raise ValueError(f"mask size must be {2 * pool_size} * 2**k for a pool of "
                         f"{pool_size}, got {mask_size}")
    return int(math.log2(n))


@register_mask_head("standard")
def build_mask_head(pooled, num_rois, num_classes, mask_size=28, channels=256):
    """Per-class mask logits for each ROI.

    Args:
        pooled: ROIAlign output [B, N, p, p, C] (p = MASK_POOL_SIZE, 14 by default).
        num_rois: N, or None when the count varies between steps (the
            training graph on TensorFlow and PyTorch: the batch's positive
            ROIs as [1, M, p, p, C], see mrcnn.layers.batching.PositiveRois).
        num_classes: classes including background.
        mask_size: 2p * 2**k: 28, 56 or 112 for p = 14.
        channels: width of the conv stages (256 in Matterport; smaller heads
            train much faster on a CPU).

    Returns:
        mask logits [B, N, mask_size, mask_size, num_classes] (apply a sigmoid
        for probabilities).
    """
    extra_stages = mask_upsampling_stages(mask_size, pooled.shape[2])
    x = MergeRoiBatch(name="mrcnn_mask_merge")(pooled)
    for i in range(1, 5):
        x = SameConv2D(channels, 3, padding="same", name=f"mrcnn_mask_conv{i}")(x)
        x = layers.BatchNormalization(name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = UpsampleConv2DTranspose(channels, 2, strides=2, activation="relu",
                                name="mrcnn_mask_deconv")(x)
    for j in range(extra_stages):
        k = 5 + j
        x = SameConv2D(channels, 3, padding="same", name=f"mrcnn_mask_conv{k}")(x)
        x = layers.BatchNormalization(name=f"mrcnn_mask_bn{k}")(x)
        x = layers.Activation("relu")(x)
        x = UpsampleConv2DTranspose(channels, 2, strides=2, activation="relu",
                                    name=f"mrcnn_mask_deconv{j + 2}")(x)
    # Mask logits in float32 also under a mixed-precision policy (mrcnn.training.precision).
    x = layers.Conv2D(num_classes, 1, name="mrcnn_mask", dtype="float32")(x)
    return SplitRoiBatch(num_rois, batch_size=pooled.shape[0], name="mrcnn_mask_logits",
                         dtype="float32")(x)


# The standard head takes num_rois=None (a varying ROI count; mrcnn.heads.registry).
build_mask_head.varying_rois = True
