"""The foreground head: a dense, per-pixel foreground logit from P2 (training only).

Config.FOREGROUND_LOSS adds it to the training graph: two 3x3 conv + ReLU
stages (``mrcnn_foreground_conv1``, ``mrcnn_foreground_conv2``) and a 1x1 conv
to one logit (``mrcnn_foreground``) on P2, upsampled bilinearly
(``mrcnn_foreground_up``) to the target's grid (Config.FOREGROUND_STRIDE:
1, the full input, by default). Its loss (`mrcnn.losses.foreground_loss`)
supervises every pixel of every training image, as Cellpose's flows do,
where the mask head learns only from the ROIs it is given: from few images
and random weights the pyramid's features learn where the objects and their
edges are sooner. The inference graph does not build it; its layers in a
checkpoint are skipped when an inference model loads it by name.
"""

from keras import layers

from mrcnn.heads.same_conv import SameConv2D


def build_foreground_head(p2, upsample=1, channels=128):
    """Foreground logits ``[B, H2 * upsample, W2 * upsample, 1]`` from P2 ``[B, H2, W2, C]``.

    Args:
        p2: the finest pyramid level.
        upsample: the bilinear upsampling factor to the target's grid (P2's
            stride / Config.FOREGROUND_STRIDE), an int >= 1.
        channels: the 3x3 stages' width.
    """
    x = p2
    for k in (1, 2):
        x = SameConv2D(channels, 3, padding="same", name=f"mrcnn_foreground_conv{k}")(x)
        x = layers.Activation("relu", name=f"mrcnn_foreground_relu{k}")(x)
    x = layers.Conv2D(1, 1, name="mrcnn_foreground")(x)
    if int(upsample) > 1:
        x = layers.UpSampling2D(int(upsample), interpolation="bilinear",
                                name="mrcnn_foreground_up")(x)
    return x
