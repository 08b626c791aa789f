"""Feature Pyramid Network: C2..C5 backbone maps -> P2..P6.

Layer names follow Matterport (``fpn_c5p5``, ``fpn_p2``, ...) so that its
weight files load by name.
"""

from keras import layers

from mrcnn.heads.same_conv import SameConv2D


def build_fpn(c2, c3, c4, c5, pyramid_size=256):
    """Top-down pathway with lateral 1x1 connections.

    Args:
        c2, c3, c4, c5: backbone feature maps [B, H/s, W/s, C_i] with strides
            s, 2s, 4s, 8s (s = 4 normally, 2 with the first stride dropped).
        pyramid_size: channels of every pyramid level (TOP_DOWN_PYRAMID_SIZE).

    Returns:
        [P2, P3, P4, P5, P6], each [B, h_i, w_i, pyramid_size]; P6 is P5
        subsampled by 2 (used by the RPN only).
    """
    p5 = layers.Conv2D(pyramid_size, 1, name="fpn_c5p5")(c5)
    p4 = layers.Add(name="fpn_p4add")([
        layers.UpSampling2D(2, name="fpn_p5upsampled")(p5),
        layers.Conv2D(pyramid_size, 1, name="fpn_c4p4")(c4)])
    p3 = layers.Add(name="fpn_p3add")([
        layers.UpSampling2D(2, name="fpn_p4upsampled")(p4),
        layers.Conv2D(pyramid_size, 1, name="fpn_c3p3")(c3)])
    p2 = layers.Add(name="fpn_p2add")([
        layers.UpSampling2D(2, name="fpn_p3upsampled")(p3),
        layers.Conv2D(pyramid_size, 1, name="fpn_c2p2")(c2)])
    p2 = SameConv2D(pyramid_size, 3, padding="same", name="fpn_p2")(p2)
    p3 = SameConv2D(pyramid_size, 3, padding="same", name="fpn_p3")(p3)
    p4 = SameConv2D(pyramid_size, 3, padding="same", name="fpn_p4")(p4)
    p5 = SameConv2D(pyramid_size, 3, padding="same", name="fpn_p5")(p5)
    p6 = layers.MaxPooling2D(pool_size=1, strides=2, name="fpn_p6")(p5)
    return [p2, p3, p4, p5, p6]
