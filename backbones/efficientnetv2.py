"""EfficientNetV2 backbones (B0-B3, S, M, L) from ``keras.applications``.

Each backbone is a NESTED ``keras.Model`` named after the variant
(``"efficientnetv2-b0"``, ...) that is called once on the image tensor and
returns the four endpoints [C2, C3, C4, C5]. Being a sub-model, it can be
addressed as one layer of the Mask R-CNN model and ImageNet weight files
load straight into it::

    backbone = keras_model.get_layer("efficientnetv2-b0")
    backbone.load_weights("efficientnetv2-b0_notop.h5")

(legacy ``.h5`` files saved from ``keras.applications.EfficientNetV2B0(
include_top=False)`` match the sub-model's weighted layers one to one, in
order; ``.weights.h5`` files saved from the sub-model itself also load).
Weights can also be given when building: ``weights="imagenet"`` (downloaded
by Keras) or ``weights=<path>``.

Inside the sub-model the molded image (RGB minus the mean pixel, values
about -128..128) goes through ``effnetv2_rescale`` (``Rescaling(1/128)``,
giving about [-1, 1], the range EfficientNetV2 was trained on) and then the
``keras.applications`` network built with ``include_top=False,
include_preprocessing=False``.

Endpoints are found from the built network by output size: the layers are
grouped into blocks (``stem``, ``block2b``, ``block4a``, ..., ``top``), the
stride of a block is the stride of its last layer, and the endpoint at
stride s is the last layer of the last block with stride s (for B0:
``block2b_add`` -> 4, ``block3b_add`` -> 8, ``block5e_add`` -> 16,
``top_activation`` -> 32).

``first_stride=1`` rebuilds the network with the stem convolution at
stride 1, so the strides become (2, 4, 8, 16).

Pretrained files: each variant declares keras.applications' ImageNet file
(``efficientnetv2-<variant>_notop.h5``, md5 from Keras' source,
``IMAGENET_FILES``), which loads by layer name into the nested model.

Layer groups (Matterport's ``train(layers=...)``) map stages to blocks by
stride: "3+" = blocks with output stride >= 8 (block3 and later, plus
``top_``), "4+" = stride >= 16 (block4+), "5+" = stride 32 (block6+).
Each regex also matches the sub-model's own name; the model applies it with
a recursive walk over nested models (see ``mrcnn.training.trainable.set_trainable``)
that matches the INNER layer names with ``re.fullmatch``.
"""

import functools
import os
import re

from backbones.registry import register

# variant -> (keras.applications constructor name, number of blocks,
#             channels of C2..C5)
VARIANTS = {
    "b0": ("EfficientNetV2B0", 6, (32, 48, 112, 1280)),
    "b1": ("EfficientNetV2B1", 6, (32, 48, 112, 1280)),
    "b2": ("EfficientNetV2B2", 6, (32, 56, 120, 1408)),
    "b3": ("EfficientNetV2B3", 6, (40, 56, 136, 1536)),
    "s": ("EfficientNetV2S", 6, (48, 64, 160, 1280)),
    "m": ("EfficientNetV2M", 7, (48, 80, 176, 1280)),
    "l": ("EfficientNetV2L", 7, (64, 96, 224, 1280)),
}

_KERAS_EFFNETV2 = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                   "efficientnet_v2/")
# variant -> (md5 of the ImageNet notop file as in keras/src/applications/
#             efficientnet_v2.py WEIGHTS_HASHES, layers with weights of
#             keras.applications' model with include_top=False)
IMAGENET_FILES = {
    "b0": ("893217f2bb855e2983157299931e43ff", 150),
    "b1": ("0e80663031ca32d657f9caa404b6ec37", 184),
    "b2": ("1dfe2e7a5d45b6632553a8961ea609eb", 192),
    "b3": ("f6abf7b5849ac99a89b50dd3fd532856", 224),
    "s": ("af0682fb74e8c54910f2d4393339c070", 280),
    "m": ("1b8dc055df72dde80d614482840fe342", 402),
    "l": ("b0b66b5c863aef5b46e8608fe1711615", 556),
}

# Output stride of each block of every EfficientNetV2 variant (block index
# -> stride); block 7 exists only in M and L.
BLOCK_STRIDES = {1: 2, 2: 4, 3: 8, 4: 16, 5: 16, 6: 32, 7: 32}

_PROBE_SIZE = 256  # probe input side used to measure layer strides


def layer_groups(model_name, num_blocks):
    """Layer-group regexes of an EfficientNetV2 sub-model.

    Args:
        model_name: name of the nested backbone model.
        num_blocks: number of blocks of the variant (6 or 7).

    Returns:
        Dict "3+" / "4+" / "5+" / "all" -> regex (for ``re.fullmatch``) over
        the nested model's name and its inner layer names.
    """
    def blocks_from(min_stride):
        ids = "".join(str(b) for b in range(1, num_blocks + 1)
                      if BLOCK_STRIDES[b] >= min_stride)
        return f"({re.escape(model_name)})|(block[{ids}][a-z]+_.*)|(top_.*)"

    return {
        "3+": blocks_from(8),
        "4+": blocks_from(16),
        "5+": blocks_from(32),
        "all": (f"({re.escape(model_name)})|(effnetv2_.*)|(stem_.*)"
                r"|(block\d+[a-z]+_.*)|(top_.*)"),
    }


def imagenet_file(variant):
    """The pretrained-file declaration of a variant's ImageNet weights.

    Args:
        variant: "b0", "b1", "b2", "b3", "s", "m" or "l".

    Returns:
        A dict for ``register(..., pretrained={"imagenet": ...})`` (fields
        as in ``backbones.registry``).
    """
    app_name = VARIANTS[variant][0]
    md5, weighted_layers = IMAGENET_FILES[variant]
    name = f"efficientnetv2-{variant}"
    return {
        "file": f"{name}_notop.h5",
        "description": f"EfficientNetV2-{variant.upper()} ImageNet weights without the "
                       f"classifier, as "
                       f"downloaded by keras.applications.{app_name}(include_top=False, "
                       f"weights='imagenet'); loaded by layer name into the nested backbone "
                       f"model '{name}'.",
        "layout": "keras-applications",
        "url": f"{_KERAS_EFFNETV2}{name}_notop.h5",
        "md5": md5,
        "verify": "md5",
        "weighted_layers": weighted_layers,
        "notes": f"md5 from keras/src/applications/efficientnet_v2.py (WEIGHTS_HASHES). "
                 f"weighted_layers counts the layers with weights of "
                 f"keras.applications.{app_name}(include_top=False); not read from the file.",
    }


def _block_of(layer_name):
    """Block a layer belongs to: "block4a", "stem", "top", or the name."""
    match = re.match(r"(block\d+[a-z]+)_", layer_name)
    if match:
        return match.group(1)
    return layer_name.split("_")[0]


def feature_endpoints(model, strides, probe_size=_PROBE_SIZE):
    """Names of the layers that output the features at the given strides.

    The model is probed symbolically (no computation) on a
    ``probe_size`` x ``probe_size`` input to get every layer's output size;
    layers are grouped into blocks by name and the endpoint at stride s is
    the last layer of the last block whose output has stride s.

    Args:
        model: functional ``keras.Model`` with one NHWC image input.
        strides: the strides wanted, e.g. (4, 8, 16, 32).
        probe_size: input side for the probe (a multiple of max(strides)).

    Returns:
        List of layer names, one per stride.

    Raises:
        ValueError: if no block has one of the strides.
    """
    import keras  # imported when a model is built
    layers = [l for l in model.layers
              if not isinstance(l, keras.layers.InputLayer)]
    channels = model.inputs[0].shape[-1]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    specs = probe.compute_output_spec(
        keras.KerasTensor((1, probe_size, probe_size, channels)))
    block_last = {}  # block -> (position, layer name, stride); dict ordered
    for pos, (layer, spec) in enumerate(zip(layers, specs)):
        block = _block_of(layer.name)
        block_last.pop(block, None)  # keep insertion order = last position
        stride = (probe_size // spec.shape[1]
                  if len(spec.shape) == 4 and spec.shape[1] else None)
        block_last[block] = (pos, layer.name, stride)
    ordered = sorted(block_last.values())
    names = []
    for s in strides:
        candidates = [name for _, name, stride in ordered if stride == s]
        if not candidates:
            raise ValueError(f"model {model.name!r} has no block with output "
                             f"stride {s}; block strides: "
                             f"{sorted({st for *_, st in ordered if st})}")
        names.append(candidates[-1])
    return names


def _with_stem_stride(model, stride):
    """Copy of `model` rebuilt from its config with stem_conv at `stride`."""
    import keras
    config = model.get_config()
    for layer in config["layers"]:
        if layer["config"].get("name") == "stem_conv":
            layer["config"]["strides"] = [stride, stride]
            break
    else:
        raise ValueError(f"model {model.name!r} has no 'stem_conv' layer")
    rebuilt = keras.Model.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def efficientnetv2(inputs, *, variant, first_stride=2, weights=None):
    """Builds an EfficientNetV2 sub-model on `inputs`.

    Args:
        inputs: symbolic molded image [batch, H, W, C] (values ~ -128..128).
        variant: "b0", "b1", "b2", "b3", "s", "m" or "l".
        first_stride: stride of the stem conv, 2 (default) or 1.
        weights: None (random init), "imagenet" (Keras downloads the notop
            ImageNet weights; needs C == 3) or a path to a weights file that
            ``keras.Model.load_weights`` reads into the sub-model.

    Returns:
        [C2, C3, C4, C5]: tensors [batch, H/s, W/s, c] for s = (4, 8, 16, 32)
        (halved with first_stride=1) and c = ``VARIANTS[variant][2]``, all
        produced by one call of the nested model ``efficientnetv2-<variant>``.
    """
    import keras
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNetV2 variant {variant!r}; "
                         f"expected one of {sorted(VARIANTS)}")
    if first_stride not in (1, 2):
        raise ValueError(f"first_stride must be 1 or 2, got {first_stride!r}")
    is_path = isinstance(weights, (str, os.PathLike)) and weights != "imagenet"
    if not (weights is None or weights == "imagenet" or is_path):
        raise ValueError(f"weights must be None, 'imagenet' or a file path, "
                         f"got {weights!r}")
    if is_path and not os.path.exists(weights):
        raise ValueError(f"weights file {os.fspath(weights)!r} does not exist")

    app_name, _, _ = VARIANTS[variant]
    name = f"efficientnetv2-{variant}"
    # Spatial size left open: the sub-model accepts any image size.
    image = keras.Input(shape=(None, None, inputs.shape[-1]),
                        name="effnetv2_input")
    x = keras.layers.Rescaling(1.0 / 128.0, name="effnetv2_rescale")(image)
    network = getattr(keras.applications, app_name)(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_tensor=x,
        include_preprocessing=False)
    if first_stride != 2:
        network = _with_stem_stride(network, first_stride)

    strides = tuple(s * first_stride // 2 for s in (4, 8, 16, 32))
    endpoints = feature_endpoints(network, strides)
    backbone = keras.Model(
        network.inputs, [network.get_layer(n).output for n in endpoints],
        name=name)
    if is_path:
        backbone.load_weights(weights)
    return list(backbone(inputs))


for _variant, (_, _num_blocks, _channels) in VARIANTS.items():
    _name = f"efficientnetv2-{_variant}"
    _builder = functools.partial(efficientnetv2, variant=_variant)
    _builder.__name__ = _name
    _builder.__doc__ = efficientnetv2.__doc__
    register(_name, channels=_channels,
             layer_groups=layer_groups(_name, _num_blocks),
             pretrained={"imagenet": imagenet_file(_variant)})(_builder)
del _variant, _num_blocks, _channels, _name, _builder
