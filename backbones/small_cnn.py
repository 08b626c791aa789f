"""A small plain CNN backbone for quick experiments and CPU tests.

Five stages of 3x3 conv + BatchNorm + ReLU (two per stage, the first with
stride 2), channels 32/64/128/256 at strides 4/8/16/32. About 1.2 M
parameters: it trains from scratch in minutes on a CPU on simple images
(the shapes sample), which the ImageNet-sized backbones do not.

Layer names: ``scnn_s{stage}_conv{k}`` and ``scnn_s{stage}_bn{k}``.
"""

from backbones.registry import register

CHANNELS = (32, 64, 128, 256)
LAYER_GROUPS = {
    "3+": r"scnn_s[345]_.*",
    "4+": r"scnn_s[45]_.*",
    "5+": r"scnn_s5_.*",
    "all": r"scnn_.*",
}


def _stage(x, stage, filters, stride):
    from keras import layers  # imported when a model is built
    for k in (1, 2):
        x = layers.Conv2D(filters, 3, strides=stride if k == 1 else 1, padding="same",
                          use_bias=False, name=f"scnn_s{stage}_conv{k}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"scnn_s{stage}_bn{k}")(x)
        x = layers.Activation("relu", name=f"scnn_s{stage}_relu{k}")(x)
    return x


@register("small-cnn", strides=(4, 8, 16, 32), channels=CHANNELS, layer_groups=LAYER_GROUPS)
def small_cnn(inputs, *, first_stride=2):
    """Build the small CNN on `inputs`; returns [C2, C3, C4, C5]."""
    from keras import layers
    x = layers.Rescaling(1 / 128.0, name="scnn_rescale")(inputs)
    x = _stage(x, 1, 16, first_stride)
    c2 = _stage(x, 2, CHANNELS[0], 2)
    c3 = _stage(c2, 3, CHANNELS[1], 2)
    c4 = _stage(c3, 4, CHANNELS[2], 2)
    c5 = _stage(c4, 5, CHANNELS[3], 2)
    return [c2, c3, c4, c5]
