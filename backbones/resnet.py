"""ResNet-50 / ResNet-101 backbones with Matterport's layer names.

The network is built inline in the caller's graph, layer by layer, exactly
as Matterport's ``resnet_graph`` did, so Matterport's ``.h5`` weights
(``mask_rcnn_coco.h5``, ImageNet ResNet weights) load by name:

* stem: ``conv1_pad`` (ZeroPadding2D 3), ``conv1`` (7x7, stride 2, valid,
  64, with bias), ``bn_conv1``, ReLU, ``pool1`` (3x3 max-pool, stride 2,
  "same");
* stages 2..5 of bottleneck blocks named ``res{stage}{block}_branch2a/2b/2c``
  (1x1 / 3x3 / 1x1 convs with bias) with batch norms
  ``bn{stage}{block}_branch2a/2b/2c``; the first block of each stage (a
  "conv block") has the projection shortcut ``res{stage}a_branch1`` +
  ``bn{stage}a_branch1``. As in Matterport, a conv block downsamples in its
  first 1x1 conv (branch2a) and in the shortcut.

Stage 2 has 3 blocks (stride 1), stage 3 has 4, stage 4 has 6 (ResNet-50)
or 23 (ResNet-101), stage 5 has 3 (stages 3-5 downsample by 2).

ResNet-18 / ResNet-34 (He et al. 2016, Table 1) use *basic* blocks of two
3x3 convs (``res{stage}{block}_branch2a/2b`` + ``bn..._branch2a/2b``; the
first block of stages 3-5 downsamples in branch2a and in the projection
shortcut ``branch1``; stage 2 has no projection) with 64/128/256/512
channels; blocks per stage 2-2-2-2 and 3-4-6-3. Same stem, same names, so
the layer groups below apply. There are no pretrained files for them
(keras.applications has none): they train from random weights, where on
the real nuclei of ``benchmarks/real_nuclei.py`` ResNet-18-FPN scored level
with ResNet-50-FPN at 0.6x the step time (one run; ``benchmarks/RESULTS.md``).

For an input whose height and width are divisible by 32 the outputs C2..C5
of every ResNet here are exactly H/4..H/32 (H/2..H/16 with
``first_stride=1``). ``zero_init_residual=True`` (Config.BACKBONE_ZERO_INIT_RESIDUAL)
starts the last batch norm of every block at gamma 0.

Batch norms are plain ``keras.layers.BatchNormalization``; the model freezes
them (``trainable=False`` -> inference mode in Keras 3) when TRAIN_BN is
False.

Pretrained files (``IMAGENET_FILES``): ResNet-50 from fchollet's
deep-learning-models release (Matterport's names; Keras 3 downloads a file of
the same name with keras.applications' names) and ResNet-101 from
keras.applications. Files with keras.applications' layer names
(``conv1_conv``, ``conv2_block1_1_conv``, ...) load through
`keras_resnet_to_matterport`.
"""

import re

from backbones.registry import register

CHANNELS = (256, 512, 1024, 2048)
BASIC_CHANNELS = (64, 128, 256, 512)    # ResNet-18 / ResNet-34

# Matterport's train(layers=...) groups for ResNet.
LAYER_GROUPS = {
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)",
    "5+": r"(res5.*)|(bn5.*)",
    "all": r"(conv1.*)|(bn_conv1)|(pool1)|(res[2-5].*)|(bn[2-5].*)",
}

_KERAS_RESNET = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
# backbone name -> its ImageNet file (see backbones.registry for the fields).
IMAGENET_FILES = {
    "resnet50": {
        "file": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "description": "ResNet-50 trained on ImageNet-1k, without the classifier, with "
                       "Matterport's layer names (conv1, bn_conv1, res2a_branch2a, ...): the "
                       "file Matterport's samples loaded for --weights=imagenet.",
        "layout": "matterport",
        "url": "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
               "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "size": 94653016,
        "md5": "a268eb855778b3df3c7506639542a6af",
        "alternative_md5": ["4d473c1dd8becc155b73f8504c6f6626"],
        "verify": "md5",
        "weighted_layers": 106,
        "notes": "md5 as in Matterport's get_imagenet_weights(). Keras 2.2+ and Keras 3 "
                 "download a different file under the same name (" + _KERAS_RESNET +
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, md5 in "
                 "alternative_md5) whose layers have Keras' names (conv1_conv, "
                 "conv2_block1_1_conv, ...); mrcnn recognises that layout and renames the "
                 "layers while loading, so either file works.",
    },
    "resnet101": {
        "file": "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "description": "ResNet-101 trained on ImageNet-1k, without the classifier, from "
                       "keras.applications.ResNet101 (Keras' layer names, renamed to "
                       "Matterport's while loading).",
        "layout": "keras-applications-resnet",
        "url": _KERAS_RESNET + "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5": "88cf7a10940856eca736dc7b7e228a21",
        "verify": "md5",
        "weighted_layers": 208,
        "notes": "md5 from keras/src/applications/resnet.py (WEIGHTS_HASHES). Matterport's "
                 "samples had no ImageNet file for ResNet-101 and loaded the ResNet-50 one, "
                 "which leaves res4g..res4w random.",
    },
}

# (filters of the 1x1/3x3 convs, output filters, stride of the first block)
_STAGES = {2: (64, 256, 1), 3: (128, 512, 2), 4: (256, 1024, 2),
           5: (512, 2048, 2)}


def _bottleneck(x, stage, block, filters, out_filters, strides, shortcut, zero_last=False):
    """One bottleneck block; `shortcut` is True for a conv (projection) block.

    Args:
        x: input tensor [batch, h, w, c].
        stage, block: stage number (2..5) and block letter ("a", "b", ...).
        filters: channels of branch2a/2b.
        out_filters: channels of branch2c and of the output.
        strides: stride of branch2a and of the shortcut (1 or 2).
        shortcut: whether to use the projection shortcut (branch1).
        zero_last: initialise branch2c's batch-norm gamma to 0 (the block starts
            as its shortcut).

    Returns:
        Tensor [batch, h/strides, w/strides, out_filters].
    """
    import keras  # imported when a model is built: `import backbones` stays light
    conv = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    y = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=True,
                            name=conv + "2a")(x)
    y = keras.layers.BatchNormalization(name=bn + "2a")(y)
    y = keras.layers.Activation("relu", name=conv + "2a_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=True,
                            name=conv + "2b")(y)
    y = keras.layers.BatchNormalization(name=bn + "2b")(y)
    y = keras.layers.Activation("relu", name=conv + "2b_relu")(y)
    y = keras.layers.Conv2D(out_filters, 1, use_bias=True,
                            name=conv + "2c")(y)
    y = keras.layers.BatchNormalization(name=bn + "2c",
                                        gamma_initializer=_last_gamma(zero_last))(y)
    if shortcut:
        x = keras.layers.Conv2D(out_filters, 1, strides=strides,
                                use_bias=True, name=conv + "1")(x)
        x = keras.layers.BatchNormalization(name=bn + "1")(x)
    y = keras.layers.Add(name=f"res{stage}{block}_add")([y, x])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _basic_block(x, stage, block, filters, strides, shortcut, zero_last=False):
    """One basic block (ResNet-18/34): two 3x3 convs; `shortcut` adds a projection.

    Args:
        x: input tensor [batch, h, w, c].
        stage, block: stage number (2..5) and block letter ("a", "b", ...).
        filters: channels of both convs and of the output.
        strides: stride of branch2a and of the shortcut (1 or 2).
        shortcut: whether to use the projection shortcut (branch1).
        zero_last: initialise branch2b's batch-norm gamma to 0.

    Returns:
        Tensor [batch, h/strides, w/strides, filters].
    """
    import keras
    conv = f"res{stage}{block}_branch"
    bn = f"bn{stage}{block}_branch"
    y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=True,
                            name=conv + "2a")(x)
    y = keras.layers.BatchNormalization(name=bn + "2a")(y)
    y = keras.layers.Activation("relu", name=conv + "2a_relu")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=True, name=conv + "2b")(y)
    y = keras.layers.BatchNormalization(name=bn + "2b",
                                        gamma_initializer=_last_gamma(zero_last))(y)
    if shortcut:
        x = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=True,
                                name=conv + "1")(x)
        x = keras.layers.BatchNormalization(name=bn + "1")(x)
    y = keras.layers.Add(name=f"res{stage}{block}_add")([y, x])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(y)


def _last_gamma(zero):
    """Gamma initializer of a residual branch's last batch norm."""
    return "zeros" if zero else "ones"


def _stem(inputs, first_stride):
    """conv1 (7x7) + bn_conv1 + ReLU + pool1: [batch, H, W, C] -> stride 2 * first_stride."""
    import keras
    if first_stride not in (1, 2):
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride!r}")
    # Pad 3 + valid 7x7 conv = "same" geometry: ceil(H / first_stride).
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(inputs)
    x = keras.layers.Conv2D(64, 7, strides=first_stride, use_bias=True,
                            name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn_conv1")(x)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)


def basic_resnet_graph(inputs, blocks, first_stride=2, zero_init_residual=False):
    """Builds a ResNet of basic blocks (ResNet-18/34) with Matterport's names.

    Args:
        inputs: symbolic image tensor [batch, H, W, C] (molded image).
        blocks: blocks in stages 2..5, e.g. (2, 2, 2, 2) for ResNet-18,
            (3, 4, 6, 3) for ResNet-34.
        first_stride: stride of conv1, 2 (default) or 1.
        zero_init_residual: every block's last batch norm starts at gamma 0.

    Returns:
        [C2, C3, C4, C5]: tensors [batch, H/s, W/s, c] for s = (4, 8, 16, 32)
        (halved with first_stride=1) and c = (64, 128, 256, 512).
    """
    x = _stem(inputs, first_stride)
    outputs = []
    for stage, count, filters in zip((2, 3, 4, 5), blocks, BASIC_CHANNELS):
        for i in range(count):
            first = i == 0 and stage > 2
            x = _basic_block(x, stage, chr(ord("a") + i), filters, 2 if first else 1,
                             shortcut=first, zero_last=zero_init_residual)
        outputs.append(x)
    return outputs


def resnet_graph(inputs, blocks_stage4, first_stride=2, zero_init_residual=False):
    """Builds a Matterport-named ResNet on `inputs`.

    Args:
        inputs: symbolic image tensor [batch, H, W, C] (molded image).
        blocks_stage4: number of blocks in stage 4 (6: ResNet-50,
            23: ResNet-101).
        first_stride: stride of conv1, 2 (default) or 1.
        zero_init_residual: every block's last batch norm (branch2c) starts at
            gamma 0 (Config.BACKBONE_ZERO_INIT_RESIDUAL).

    Returns:
        [C2, C3, C4, C5]: tensors [batch, H/s, W/s, c] for
        s = (4, 8, 16, 32) (halved with first_stride=1) and
        c = (256, 512, 1024, 2048).
    """
    x = _stem(inputs, first_stride)
    counts = {2: 3, 3: 4, 4: blocks_stage4, 5: 3}
    outputs = []
    for stage in (2, 3, 4, 5):
        filters, out_filters, strides = _STAGES[stage]
        for i in range(counts[stage]):
            x = _bottleneck(x, stage, chr(ord("a") + i), filters, out_filters,
                            strides if i == 0 else 1, shortcut=(i == 0),
                            zero_last=zero_init_residual)
        outputs.append(x)
    return outputs


def keras_resnet_to_matterport(layer_name):
    """Matterport's name for a keras.applications ResNet layer, or None.

    ``conv1_conv`` -> ``conv1``, ``conv1_bn`` -> ``bn_conv1``,
    ``conv{s}_block{b}_{i}_conv`` -> ``res{s}{letter b}_branch{1|2a|2b|2c}``
    (i = 0, 1, 2, 3) and ``..._bn`` -> ``bn{s}{letter}_branch...``; layers
    without a counterpart (``pool1_pad``, ...) -> None.
    """
    if layer_name == "conv1_conv":
        return "conv1"
    if layer_name == "conv1_bn":
        return "bn_conv1"
    m = re.fullmatch(r"conv([2-5])_block(\d+)_([0-3])_(conv|bn)", layer_name)
    if not m:
        return None
    stage, block, i, kind = m.groups()
    branch = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}[i]
    letter = chr(ord("a") + int(block) - 1)
    return f"{'res' if kind == 'conv' else 'bn'}{stage}{letter}_branch{branch}"


@register("resnet50", channels=CHANNELS, layer_groups=LAYER_GROUPS,
          pretrained={"imagenet": IMAGENET_FILES["resnet50"]},
          rename=keras_resnet_to_matterport)
def resnet50(inputs, *, first_stride=2, zero_init_residual=False):
    """ResNet-50 (stage 4 = res4a..res4f). See `resnet_graph`."""
    return resnet_graph(inputs, 6, first_stride=first_stride,
                        zero_init_residual=zero_init_residual)


@register("resnet101", channels=CHANNELS, layer_groups=LAYER_GROUPS,
          pretrained={"imagenet": IMAGENET_FILES["resnet101"]},
          rename=keras_resnet_to_matterport)
def resnet101(inputs, *, first_stride=2, zero_init_residual=False):
    """ResNet-101 (stage 4 = res4a..res4w). See `resnet_graph`."""
    return resnet_graph(inputs, 23, first_stride=first_stride,
                        zero_init_residual=zero_init_residual)


@register("resnet18", channels=BASIC_CHANNELS, layer_groups=LAYER_GROUPS)
def resnet18(inputs, *, first_stride=2, zero_init_residual=False):
    """ResNet-18 (basic blocks 2-2-2-2; no pretrained file). See `basic_resnet_graph`."""
    return basic_resnet_graph(inputs, (2, 2, 2, 2), first_stride=first_stride,
                              zero_init_residual=zero_init_residual)


@register("resnet34", channels=BASIC_CHANNELS, layer_groups=LAYER_GROUPS)
def resnet34(inputs, *, first_stride=2, zero_init_residual=False):
    """ResNet-34 (basic blocks 3-4-6-3; no pretrained file). See `basic_resnet_graph`."""
    return basic_resnet_graph(inputs, (3, 4, 6, 3), first_stride=first_stride,
                              zero_init_residual=zero_init_residual)
